"""Sec. 4.1 and Fig. 3: diagnosing a network's representation with g.
"""
