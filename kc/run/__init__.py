"""Running notebooks: the manifest, profiles and parameters, run keys and records, execution, jobs,
published results and their comparison. May import every layer but the book and the CLI.
"""
