"""The studies behind the notebooks, one shape each: settings built from the notebook's
parameters (``from_params``), a ``run`` that computes through the cached
:mod:`kc.engine.experiments`, and pure functions from results to tables and :class:`kc.studies.claims.Claim`.
Nothing here writes files (that is :mod:`kc.book.output`) or draws (that is :mod:`kc.book.plotting`)."""
