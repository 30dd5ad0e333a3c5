"""Beyond the paper: planted pairs of known structure and what g recovers of them.
"""
