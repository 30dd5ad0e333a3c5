"""The book: result pages, the scorecard, the plots, the outputs a notebook writes and Fig. 2's
diagram. The top layer below the CLI.
"""
