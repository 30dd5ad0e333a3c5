"""Fig. 4 (Sec. 4.4-4.5): compression and born-again networks.
"""
