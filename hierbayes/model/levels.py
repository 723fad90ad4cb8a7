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

from hierbayes.common.deferred import deferred_import
from hierbayes.model.coordinates import helmert_rest

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["Levels", "all_levels", "mean_and_contrasts", "mean_and_contrast_rows"]


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


def mean_and_contrast_rows(fx: Any, k: int, q: int, L, sd, mean_sd, rows_centre, mean_centre) -> tuple:
    """Block ``k``'s J levels as their mean ``ubar_<factor>_<k>`` (``N(mean_centre, L L' / J)``, SD
    ``mean_sd / sqrt(J)`` without ``L``) and the Helmert contrasts ``H w`` of J - 1 rows
    ``u_<factor>_<k>`` (iid ``N(rows_centre, L L')``): ``(ubar, H w)``, J iid rows by an orthogonal map."""
    J, names = fx.J, fx.names
    contrasts = helmert_rest(_normal_rows(names.block(k), rows_centre, sd, L, (J - 1, q)), J)
    if L is not None:
        ubar = pm.MvNormal(names.block_mean(k), mu=mean_centre, chol=L / np.sqrt(J), shape=q)
    else:
        ubar = pm.Normal(names.block_mean(k), mean_centre, mean_sd / np.sqrt(J), shape=q)
    return ubar, contrasts


def mean_and_contrasts(fx: Any, k: int, centre, q: int, L, sd, mean_sd, intercept: int | None) -> Levels:
    """:func:`all_levels`, with the intercept's block drawn as its level mean around ``centre`` and
    contrasts around zero (:func:`mean_and_contrast_rows`) over the levels ordered by their row counts
    (:func:`~hierbayes.model.coordinates.level_ranks`): the same J iid rows, by an orthogonal map and a
    permutation (:class:`CenteredByMean`)."""
    if intercept is None:
        return all_levels(fx, k, centre, q, L, sd, mean_sd, intercept)
    ubar, contrasts = mean_and_contrast_rows(fx, k, q, L, sd, mean_sd, np.zeros(q), centre)
    v = (ubar + contrasts)[pt.cast(fx.shared[fx.names.level_ranks], "int64")]
    return Levels(v, v)
