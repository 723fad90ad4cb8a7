"""The linear predictor from posterior draws, in NumPy.

``eta = offset + X b + sum over factors and coefficients of Z[:, k] * r[level, k]``,
draw by draw. Used for the pointwise log-likelihood (LOO), posterior predictive
draws and predictions, so none of them needs another compiled function.

Examples
--------
>>> import numpy as np
>>> b = np.array([[1.0, 2.0]])                 # one draw, two fixed effects
>>> X = np.array([[1.0, 0.0], [1.0, 1.0]])
>>> r = np.array([[[0.5], [-0.5]]])             # one draw, two levels, one coefficient
>>> linear_predictor(b, X, None, [(r, np.array([0, 1]), np.ones((2, 1)))])
array([[1.5, 2.5]])
"""

from __future__ import annotations

import numpy as np

from hierbayes.specification.names import FactorNames, FixedNames

__all__ = ["linear_predictor", "design_effects", "posterior_effects"]


def linear_predictor(b: np.ndarray | None, X: np.ndarray, offset: np.ndarray | None,
                     effects: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Linear predictor for every draw.

    Parameters
    ----------
    b : ndarray (..., p) or None
        Fixed effects per draw (leading dims are the sample dims). None: no fixed effects,
        the sample dims then come from ``effects`` (a single draw when it is empty too).
    X : ndarray (N, p)
    offset : ndarray (N,) or None
    effects : list of (r, index, Z)
        Per grouping factor: effects ``r`` (..., J, Q), level index (N,) and ``Z`` (N, Q).

    Returns
    -------
    ndarray (..., N)
    """
    shape = b.shape[:-1] if b is not None else effects[0][0].shape[:-2] if effects else ()
    eta = np.zeros((*shape, X.shape[0]))
    if b is not None and X.shape[1]:
        eta += np.einsum("...p,np->...n", b, X)
    if offset is not None:
        eta += offset
    for r, index, Z in effects:
        for k in range(Z.shape[1]):
            eta += r[..., index, k] * Z[:, k]
    return eta


def fixed_effect_draws(posterior, design) -> np.ndarray:
    """The population-level effects ``b`` per draw, (chain, draw, term); no terms (``y ~ 0``): (chain, draw, 0).
    For a family parameter's formula (``design.part``), its own (``b_sigma``)."""
    if design.fixed_names:
        names = FixedNames(design.part)
        return posterior[names.effects].transpose("chain", "draw", names.dim).values
    return np.zeros((posterior.sizes["chain"], posterior.sizes["draw"], 0))


def design_effects(design) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(factor, level index, Z with all the factor's coefficients) for each factor of a design."""
    out = []
    for factor, fd in design.factors.items():
        Z = np.concatenate([blk.Z for blk in design.blocks if blk.factor == factor], axis=1)
        out.append((factor, fd.index, Z))
    return out


def posterior_effects(posterior, design) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The ``effects`` argument of :func:`linear_predictor` for the fitting data."""
    return [(posterior[FactorNames(f, design.part).effects].values, index, Z) for f, index, Z in design_effects(design)]
