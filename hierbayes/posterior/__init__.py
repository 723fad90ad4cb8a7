"""Stage 4, the posterior: draws labelled, summarised, checked and used.

``fitting`` runs a model through the sampler; ``fit`` is the posterior and its tables
(:class:`~hierbayes.posterior.fit.Posterior`); ``summaries`` computes means and intervals;
``diagnostics`` judges convergence; ``predict`` predicts new data; ``checking`` does
predictive checks, LOO and R-squared; ``pooling`` compares no, complete and partial
pooling; ``parallel`` fits many models on Dask.

Depends on the stages below it, never on :mod:`hierbayes.viz` or :mod:`hierbayes.lessons`.
"""
