"""Table 1 (Sec. 4.2): instability of g between networks, with its convergence and feature-point checks.
"""
