"""How the levels of one block of a factor's centered effects are drawn: all at once
(:func:`all_levels`), or as their mean and Helmert contrasts (:func:`mean_and_contrasts`).
:mod:`hierbayes.model.parameterizations` passes one of them to its parameterizations as
``FactorEffects.levels`` (their ``fx``: the factor being drawn, a
:class:`~hierbayes.model.parameterizations.FactorEffects`); :class:`~hierbayes.model.parameterizations.Folded`
has its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hierbayes.deferred import deferred_import
from hierbayes.model.coordinates import helmert_rest

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["Levels", "all_levels", "mean_and_contrasts"]


@dataclass(frozen=True)
class Levels:
    """A block's centered effects of every level: ``recorded`` (as ``r_<factor>`` records them, plus
    their centre), ``drawn`` (as the linear predictor takes them) and the ``mean_intercept`` left
    out of ``drawn`` (:class:`Folded`; else None)."""

    recorded: Any
    drawn: Any
    mean_intercept: Any = None


def _normal_rows(name: str, centre, sd, L, shape):
    """Rows iid ``N(centre, L L')``, or ``N(centre, diag(sd)^2)`` without ``L``."""
    if L is not None:
        return pm.MvNormal(name, mu=centre, chol=L, shape=shape)
    return pm.Normal(name, centre, sd, shape=shape)


def all_levels(fx: Any, k: int, centre, q: int, L, sd, mean_sd, intercept: int | None) -> Levels:
    """Every level's centered effects of block ``k`` as one variable, ``u_<factor>_<k>`` (J x q).

    ``sd`` is the SD of the ``q`` columns (``L``: their Cholesky factor when correlated);
    ``mean_sd`` (the same SDs, as their own node) and ``intercept`` (the intercept's column)
    serve :meth:`Folded.levels`.
    """
    u = _normal_rows(fx.names.block(k), centre, sd, L, (fx.J, q))
    return Levels(u, u)


def mean_and_contrasts(fx: Any, k: int, centre, q: int, L, sd, mean_sd, intercept: int | None) -> Levels:
    """:func:`all_levels`, with the intercept's block drawn as its level mean ``ubar_<factor>_<k>``
    (``N(centre, L L' / J)``) and J - 1 Helmert contrasts ``u_<factor>_<k>`` (iid ``N(0, L L')``) over
    the levels ordered by their row counts (:func:`~hierbayes.model.coordinates.level_ranks`): the
    same J iid rows, by an orthogonal map and a permutation (:class:`CenteredByMean`)."""
    if intercept is None:
        return all_levels(fx, k, centre, q, L, sd, mean_sd, intercept)
    J, names = fx.J, fx.names
    contrasts = helmert_rest(_normal_rows(names.block(k), np.zeros(q), sd, L, (J - 1, q)), J)
    if L is not None:
        ubar = pm.MvNormal(names.block_mean(k), mu=centre, chol=L / np.sqrt(J), shape=q)
    else:
        ubar = pm.Normal(names.block_mean(k), centre, mean_sd / np.sqrt(J), shape=q)
    v = (ubar + contrasts)[pt.cast(fx.shared[names.level_ranks], "int64")]
    return Levels(v, v)
