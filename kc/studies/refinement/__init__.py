"""Tables 3 and 4 (Sec. 4.3): refining features with g and fine-tuning the layers above.
"""
