"""Stage 3, the sampler: a PyMC model and its data in, draws out.

``sampling`` runs NUTS (nutpie by default; PyMC or NumPyro on request);
``compiled_cache`` keeps compiled models in memory and on disk so that a model of the
same structure is never compiled twice (``disk_cache``: the folder, safe to read, written
whole, under a size cap); ``expansion`` gives the sampler a lean model and
computes the recorded quantities after sampling. ``compat`` holds every private hook of
nutpie, numba, PyTensor and PyMC these use and checks them; when they fail, ``public``
runs nutpie through its public API instead.

Depends on :mod:`hierbayes.specification` and :mod:`hierbayes.model` only.
"""
