"""Table 2 and Fig. 1: the variances of the orders of g (Eq. 3-4).
"""
