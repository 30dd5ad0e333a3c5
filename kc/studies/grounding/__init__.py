"""Beyond the paper: grounding the instability in layer pairs and noisy inputs.
"""
