"""Many fits at once on Dask: K-fold cross-validation, simulation studies, one model per segment.

:func:`fit_many` sends each model to a Dask worker, which fits it (compiling each model
structure once per worker, or loading it from the disk cache of
:mod:`hierbayes.backend.compiled_cache`) and sends back the posterior. The fits come back in the
order of the models, as fits (:class:`hierbayes.Fit` for ``hb.Model``) around the caller's own
models. Without a client, a ``LocalCluster`` with one single-threaded worker process per
core is started for the call and closed after it; pass ``client=`` to use any cluster.

Needs ``dask[distributed]`` (``pip install 'hierbayes[dask]'``).

Examples
--------
A sketch (not run here: it starts worker processes)::

    import hierbayes as hb
    from hierbayes.posterior.parallel import fit_many
    df = hb.datasets.load("sleepstudy")
    folds = [df[df["Days"] % 3 != k] for k in range(3)]
    models = [hb.Model("Reaction ~ Days + (Days | Subject)", d) for d in folds]
    fits = fit_many(models, seed=1, draws=500, tune=500, chains=2)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from hierbayes.common.errors import HierbayesError

__all__ = ["fit_many", "fold_seeds", "check_client"]


def fold_seeds(seed: int | None, n: int) -> list[int]:
    """``n`` independent seeds derived from one (``numpy.random.SeedSequence.spawn``).

    Examples
    --------
    >>> fold_seeds(1, 3) == fold_seeds(1, 3), len(set(fold_seeds(1, 3)))
    (True, 3)
    """
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(c.generate_state(1)[0] % 2**31) for c in children]


def check_client(client) -> None:
    """Refuse anything but a ``dask.distributed.Client`` as ``client=``, before any fit starts.

    Examples
    --------
    >>> check_client("tcp://127.0.0.1:8786")
    Traceback (most recent call last):
    ...
    hierbayes.common.errors.HierbayesError: client must be a dask.distributed.Client (or None), not str; connect with Client('tcp://127.0.0.1:8786')
    """
    try:
        from dask.distributed import Client
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise HierbayesError("parallel fits need dask: pip install 'hierbayes[dask]'") from err
    if not isinstance(client, Client):
        hint = f"; connect with Client({client!r})" if isinstance(client, str) else ""
        raise HierbayesError(f"client must be a dask.distributed.Client (or None), not {type(client).__name__}{hint}")


def _fit_remotely(model, options: dict):
    """Runs on a worker: fit, and send back only what the caller's Fit needs (its class, so this module
    needs no import of the fit classes, which import :mod:`~hierbayes.posterior.crossvalidation` and this)."""
    fit = model.fit(**options)
    return type(fit), fit.idata, fit.sampler, fit.timings


def fit_many(models: Sequence, *, client=None, seed: int | None = None, seeds: Sequence[int] | None = None,
             warn: bool = True, **fit_options) -> list:
    """Fit ``models`` in parallel on Dask and return their fits, in order.

    Parameters
    ----------
    models : sequence of Model
    client : dask.distributed.Client, optional
        Any cluster's client. By default a ``LocalCluster`` of one single-threaded
        worker process per core (at most one per model), closed afterwards.
    seed : int, optional
        Derive one seed per model from this (:func:`fold_seeds`).
    seeds : sequence of int, optional
        One seed per model (instead of ``seed``).
    warn : bool
        Warn here, in the caller's process, for every fit whose diagnostics fail.
    **fit_options
        Passed to :meth:`Model.fit` (``draws``, ``tune``, ``chains``, ``sampler`` ...).

    Returns
    -------
    list of Fit
    """
    if client is not None:
        check_client(client)
    models = list(models)
    if not models:
        return []
    if seeds is not None and seed is not None:
        raise HierbayesError("give either seed (one for all) or seeds (one per model), not both")
    if seeds is None:
        seeds = fold_seeds(seed, len(models))
    if len(seeds) != len(models):
        raise HierbayesError(f"seeds has {len(seeds)} values for {len(models)} models")
    fit_options = {"progressbar": False, **fit_options, "warn": False}
    own = client is None
    if own:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as err:  # pragma: no cover - depends on the installation
            raise HierbayesError("parallel fits need dask: pip install 'hierbayes[dask]'") from err
        workers = max(1, min(len(models), os.cpu_count() or 1))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = [client.submit(_fit_remotely, m, {**fit_options, "seed": s}, pure=False)
                   for m, s in zip(models, seeds)]
        results = client.gather(futures)
    finally:
        if own:
            client.close()
            cluster.close()
    fits = []
    for model, s, (fit_class, idata, sampler, timings) in zip(models, seeds, results):
        fit = fit_class(model, idata, sampler=sampler, timings=timings, seed=s)
        if warn:
            fit.warn_if_unconverged()
        fits.append(fit)
    return fits
