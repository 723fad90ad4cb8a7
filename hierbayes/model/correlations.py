"""A correlated block's correlations: the LKJ prior on the Cholesky factor of its correlation matrix,
and the ``cor_<factor>`` record of them (used by :mod:`hierbayes.model.parameterizations` and
:mod:`hierbayes.model.pymc_model`)."""

from __future__ import annotations

from collections.abc import Mapping

from hierbayes.common.deferred import deferred_import
from hierbayes.specification.names import FactorNames, prior_data

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["correlation", "record_correlations"]


def correlation(name: str, q: int, shared: Mapping):
    """A block's Cholesky factor of its correlation matrix (LKJ prior), variable ``name``
    (:meth:`FactorNames.corr_chol <hierbayes.specification.names.FactorNames.corr_chol>`), and its correlations."""
    chol = pm.LKJCorr(name, n=q, eta=shared[prior_data(name, "eta")])
    corr = chol @ chol.T
    pairs = [(i, j) for j in range(q) for i in range(j)]  # the order of parameters.cor_pairs
    return chol, corr[[i for i, _ in pairs], [j for _, j in pairs]]


def record_correlations(names: FactorNames, cors: list) -> None:
    """Record a factor's correlations, block after block, as ``cor_<factor>`` (nothing without any)."""
    if cors:
        pm.Deterministic(names.cor, pt.concatenate(cors) if len(cors) > 1 else cors[0], dims=names.cor_dim)
