"""The experiment engine: data sets, architectures, training, the cache and the cached building
blocks (networks, features, fits of g). Imports only :mod:`kc.core`.
"""
