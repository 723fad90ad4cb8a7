"""emmeans on the posterior draws: estimated marginal means on a balanced reference grid, and their contrasts.

The reference grid (:func:`~hierbayes.posterior.grids.reference_grid`) crosses every level of
every categorical predictor, numeric predictors at their mean; each cell is predicted at the
population level, draw by draw, and the cells are averaged with equal weights over the
factors not reported. Contrasts are linear combinations of the marginal means' draws.

Examples
--------
>>> import numpy as np, pandas as pd
>>> import hierbayes as hb
>>> rng = np.random.default_rng(1)
>>> df = pd.DataFrame({"dose": np.repeat(["low", "mid", "high"], 20), "x": rng.normal(size=60)})
>>> df["y"] = df["dose"].map({"low": 1.0, "mid": 2.0, "high": 3.0}) + 0.5 * df["x"] + rng.normal(0, 0.5, 60)
>>> fit = hb.Model("y ~ dose + x", df).fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> fit.marginal_means("dose")["dose"].tolist()
['high', 'low', 'mid']
>>> fit.contrasts("dose", "trt.vs.ctrl")["contrast"].tolist()
['low - high', 'mid - high']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hierbayes.common.errors import HierbayesError
from hierbayes.posterior.grids import check_predictor, is_categorical, levels_of, reference_grid
from hierbayes.posterior.interpretation import frame_draws, group_average, per_category, summarise
from hierbayes.posterior.predict import CATEGORY_DIM

__all__ = ["marginal_means", "contrasts", "polynomial_contrasts", "contrast_matrix"]



def _mean_draws(fit, specs, by, scale: str) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    specs = [specs] if isinstance(specs, str) else list(specs)
    by_columns = [] if by is None else ([by] if isinstance(by, str) else list(by))
    for c in (*specs, *by_columns):
        check_predictor(fit.model, c)
        if not is_categorical(fit.model, c):
            raise HierbayesError(f"marginal means are over the levels of categorical predictors, and {c!r} is "
                                 f"numeric; for chosen values of it use predictions({{{c!r}: [...]}}, by={c!r})")
    grid = reference_grid(fit.model, [*specs, *by_columns])
    (values,) = frame_draws(fit, [grid], groups="population", scale=scale)
    grid, columns = per_category(fit, grid, [*by_columns, *specs])  # a nominal family's: within each category
    by_columns = [c for c in columns if c not in specs]
    labels, means = group_average(values, grid, [*by_columns, *specs])
    # the model's order of the levels (the reference level first), not the sorted one
    position = {c: {level: k for k, level in enumerate(levels_of(fit.model, c) if c != CATEGORY_DIM else
                                                       pd.unique(grid[c]))} for c in labels.columns}
    order = sorted(range(len(labels)), key=lambda i: tuple(position[c][labels[c].iloc[i]] for c in labels.columns))
    return labels.iloc[order].reset_index(drop=True), means[..., order], by_columns


def marginal_means(fit, specs: str | Sequence[str], by: str | Sequence[str] | None = None,
                   scale: str = "response", *, prob: float | None = None, draws: bool = False):
    """Estimated marginal means (emmeans): the prediction per level, averaged with equal weights over the others.

    The reference grid crosses every level of every categorical predictor (balanced: each
    combination counts once, whatever its number of rows), numeric predictors at their mean;
    each cell is predicted at the population level (group effects zero, emmeans's default
    for mixed models), then the cells are averaged over the factors not in ``specs`` (or
    ``by``), draw by draw. The averaging is on ``scale``: with ``"response"`` the means of the
    expected response (emmeans's ``regrid = "response"``); with ``"link"`` emmeans's default
    linear-predictor means, which ``type = "response"`` then back-transforms one by one.

    Parameters
    ----------
    fit : Fit
    specs : str or list of str
        Categorical predictors whose levels (or combinations of levels) are reported.
    by : str or list of str, optional
        Further categorical predictors: marginal means within each of their levels.
    scale : {"response", "link"}
    prob, draws
        As :func:`predictions`.

    Returns
    -------
    DataFrame or DataArray
        The ``by`` and ``specs`` columns, ``estimate``, ``sd``, interval.

    Examples
    --------
    >>> import numpy as np
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy")
    >>> df["trt"] = np.where(df["Subject"].astype(int) % 2 == 0, "drug", "placebo")
    >>> fit = hb.Model("Reaction ~ Days + trt + (Days | Subject)", df).fit(
    ...     draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    >>> marginal_means(fit, "trt")["trt"].tolist()
    ['drug', 'placebo']
    """
    labels, means, _ = _mean_draws(fit, specs, by, scale)
    return summarise(fit, labels, means, prob, draws)


def polynomial_contrasts(k: int) -> np.ndarray:
    """Orthogonal polynomial contrasts of ``k`` equally spaced levels, (k - 1, k), scaled to integers where they
    can be, as emmeans's ``poly`` (R's ``contr.poly`` up to scale).

    >>> polynomial_contrasts(4).astype(int).tolist()
    [[-3, -1, 1, 3], [1, -1, -1, 1], [-1, 3, -3, 1]]
    """
    x = np.arange(k) - (k - 1) / 2
    q, _ = np.linalg.qr(np.vander(x, k, increasing=True))
    rows = []
    for column in q[:, 1:].T:
        column = column * np.sign(column[-1])
        scaled = column / np.abs(column[np.abs(column) > 1e-10]).min()
        rows.append(np.round(scaled) if np.allclose(scaled, np.round(scaled), atol=1e-8) else column)
    return np.array(rows).reshape(k - 1, k)


_DEGREES = ("linear", "quadratic", "cubic", "quartic")


def contrast_matrix(method, names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The labels and coefficients (contrasts x levels) of an emmeans contrast ``method`` over ``names``."""
    k, eye = len(names), np.eye(len(names))
    if isinstance(method, Mapping):
        coefs = np.array([np.asarray(v, dtype=float) for v in method.values()])
        if coefs.ndim != 2 or coefs.shape[1] != k:
            raise HierbayesError(f"each custom contrast needs {k} coefficients, one per level of {list(names)}")
        return [str(m) for m in method], coefs
    if method == "pairwise":
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    elif method == "revpairwise":
        pairs = [(j, i) for i in range(k) for j in range(i + 1, k)]
    elif method == "trt.vs.ctrl":
        pairs = [(j, 0) for j in range(1, k)]
    elif method == "poly":
        return [_DEGREES[d] if d < len(_DEGREES) else f"degree {d + 1}" for d in range(k - 1)], polynomial_contrasts(k)
    else:
        raise HierbayesError("method must be 'pairwise', 'revpairwise', 'trt.vs.ctrl', 'poly' or a dict of "
                             f"name -> coefficients, not {method!r}")
    return [f"{names[a]} - {names[b]}" for a, b in pairs], np.array([eye[a] - eye[b] for a, b in pairs]).reshape(-1, k)


def contrasts(fit, specs: str | Sequence[str], method="pairwise", by: str | Sequence[str] | None = None,
              scale: str = "response", *, prob: float | None = None, draws: bool = False):
    """Contrasts of estimated marginal means (emmeans's ``contrast``), draw by draw.

    Parameters
    ----------
    fit : Fit
    specs, by, scale
        As :func:`marginal_means`; the contrasts are within each ``by`` level.
    method : {"pairwise", "revpairwise", "trt.vs.ctrl", "poly"} or dict
        ``"pairwise"``: every earlier level minus every later one (``a - b``, as emmeans);
        ``"trt.vs.ctrl"``: every level minus the first; ``"poly"``: orthogonal polynomial
        contrasts (equally spaced levels, integer coefficients as emmeans); a dict of
        name -> coefficients (one per level) for contrasts of your own.
    prob, draws
        As :func:`predictions`.

    Returns
    -------
    DataFrame or DataArray
        ``contrast``, the ``by`` columns, ``estimate``, ``sd``, interval.

    Examples
    --------
    >>> import numpy as np
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy")
    >>> df["trt"] = np.where(df["Subject"].astype(int) % 2 == 0, "drug", "placebo")
    >>> fit = hb.Model("Reaction ~ Days + trt + (Days | Subject)", df).fit(
    ...     draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    >>> table = contrasts(fit, "trt", "trt.vs.ctrl")   # each level against the first
    >>> table["contrast"].tolist()
    ['placebo - drug']
    >>> means = marginal_means(fit, "trt")["estimate"]
    >>> bool(np.isclose(table["estimate"].iloc[0], means.iloc[1] - means.iloc[0]))
    True
    """
    labels, means, by_columns = _mean_draws(fit, specs, by, scale)
    spec_columns = [c for c in labels.columns if c not in by_columns]
    keys = [tuple(row) for row in labels[by_columns].itertuples(index=False)]
    groups = [np.array([i for i, k in enumerate(keys) if k == key]) for key in dict.fromkeys(keys)]  # in level order
    parts = []
    for positions in groups:
        cells = labels.iloc[positions]
        names = [" ".join(str(v) for v in row) for row in cells[spec_columns].itertuples(index=False)]
        names_out, coefs = contrast_matrix(method, names)
        head = cells[by_columns].iloc[[0] * len(names_out)].reset_index(drop=True)
        head.insert(0, "contrast", names_out)
        parts.append((head, means[..., positions] @ coefs.T))
    return summarise(fit, pd.concat([p[0] for p in parts], ignore_index=True),
                     np.concatenate([p[1] for p in parts], axis=-1), prob, draws)
