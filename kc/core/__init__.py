"""The paper's mathematics: g (Eq. 1), its loss (Eq. 2), the decomposition into orders (Eq. 3-4),
the variances and instability (Sec. 4.2) and the similarity baselines. Pure functions on tensors;
imports nothing else of ``kc``.
"""
