"""Predictions from the posterior draws, for the fitting data or for new rows.

New rows go through the fitting data's own design state: formulaic's model specs,
kept in :class:`~hierbayes.specification.design.Design`, re-apply ``scale``/``center`` with the
fitting data's constants and encode categorical columns with the fitting data's
levels, so new data are never re-centred on themselves (a single new row included).

Group effects of the new rows come from one of three sources (``groups=``):

- ``"known"``: the fitted effect of each level, draw by draw. A level not seen in
  fitting is an error, unless ``allow_new_levels=True``, which draws its effect as for
  ``"new"``.
- ``"population"``: none; the population-level prediction (lme4's ``re.form=NA``).
- ``"new"``: every level of the new rows is treated as a new level: its effect is drawn
  from the fitted population distribution ``N(0, L L')``, ``L = diag(sd) @ chol(cor)``,
  once per posterior draw and level (brms's ``sample_new_levels="gaussian"``), so the
  prediction carries the uncertainty of a level never seen.

Draws stay aligned with the posterior: draw ``(c, d)`` of a prediction uses draw
``(c, d)`` of every parameter.

Examples
--------
>>> import pandas as pd
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> new = pd.DataFrame({"Days": [0, 9], "Subject": ["308", "a new subject"]})
>>> draws = fit.predict(new, allow_new_levels=True, seed=1)
>>> draws.dims, draws.shape
(('chain', 'draw', 'obs'), (2, 200, 2))
>>> list(fit.predict_summary(new, groups="population").columns)
['mean', 'sd', '2.5%', '97.5%']
"""

from __future__ import annotations

import copy
import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from hierbayes.common.errors import DataError, HierbayesError
from hierbayes.model.data import response_name
from hierbayes.posterior.summaries import draw_stats
from hierbayes.specification.additions import drawn_arguments
from hierbayes.specification.design import Design, column_values, level_label
from hierbayes.specification.evaluation import expression_variables
from hierbayes.specification.families.core import parameter_link
from hierbayes.specification.formula import is_number
from hierbayes.specification.linear_predictor import design_effects, fixed_effect_draws, linear_predictor
from hierbayes.specification.names import THRESHOLD_DIM, THRESHOLDS, FactorNames, cor_pair
from hierbayes.specification.readers import as_pandas

__all__ = ["NewRows", "new_rows", "observed_data", "new_level_effects", "predict", "predict_rows", "rows_linear_predictor",
           "predict_summary", "family_parameter_draws",
           "KINDS", "GROUPS"]

KINDS = ("mean", "response")
ORDINAL_KINDS = ("probabilities",)  # an ordinal or nominal family's too
KIND_ALIASES = {"prediction": "response", "epred": "mean"}
"""brms's words for the kinds: its ``predict()``/``posterior_predict()`` draws the response (our
``"response"``), its ``fitted()``/``posterior_epred()`` the expected value (our ``"mean"``)."""
GROUPS = ("known", "population", "new")
OBS_DIM = "obs"
CATEGORY_DIM = "category"  # an ordinal or nominal response's categories, in kind="probabilities"


@dataclass(frozen=True)
class FactorRows:
    """One grouping factor on the rows: the level name of each row and its ``Z`` columns."""

    factor: str
    labels: np.ndarray  # (n,) str
    Z: np.ndarray  # (n, Q), the factor's coefficients in design.factor_coefs order


@dataclass(frozen=True)
class NewRows:
    """The design of the rows to predict, built with the fitting data's state; ``additions`` holds the
    response's addition data that draws of the response depend on (truncation bounds, known SDs)."""

    X: np.ndarray
    offset: np.ndarray | None
    factors: tuple[FactorRows, ...]
    trials: np.ndarray | None
    index: pd.Index
    additions: Mapping[str, np.ndarray] = field(default_factory=dict)
    parts: tuple[tuple[str, NewRows], ...] = ()  # the rows of each family parameter's formula

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    def take(self, positions: np.ndarray) -> NewRows:
        """The rows at ``positions`` (0-based), in that order."""
        def pick(values):
            return None if values is None else values[positions]

        return NewRows(self.X[positions], pick(self.offset),
                       tuple(FactorRows(f.factor, f.labels[positions], f.Z[positions]) for f in self.factors),
                       pick(self.trials), self.index[positions],
                       {k: v[positions] for k, v in self.additions.items()},
                       tuple((name, rows.take(positions)) for name, rows in self.parts))


# --- the new-data design ----------------------------------------------------------------------

def _fitted_rows(design: Design, groups: str = "known") -> NewRows:
    factors = () if groups == "population" else \
        tuple(FactorRows(f, np.asarray(design.factors[f].levels, dtype=object)[index], Z)
              for f, index, Z in design_effects(design))
    return NewRows(design.X, design.offset, factors, design.trials, pd.RangeIndex(design.n_obs, name=OBS_DIM),
                   {arg: design.additions[arg] for arg in drawn_arguments(design.spec.response)},
                   tuple((part.part, _fitted_rows(part, groups)) for part in design.parts))


def _required_columns(design: Design, groups: str, kind: str, needs_trials: bool) -> list[str]:
    needed = [c for part in (design, *design.parts) for c in part.fixed_spec.required_variables]
    for expr, ospec in design.offset_specs:
        needed += [expr] if ospec is None else list(ospec.required_variables)
    if groups != "population":
        for b in (b for part in (design, *design.parts) for b in part.blocks):
            needed += list(b.spec.required_variables) + list(b.block.factor_columns)
    if kind == "response":
        needed += [text for text in _response_texts(design, needs_trials).values() if not is_number(text)]
    return list(dict.fromkeys(needed))


def _response_texts(design: Design, needs_trials: bool) -> dict[str, str]:
    """What draws of the response read besides the linear predictor, by argument: the trials (``cbind``'s
    two columns or ``trials()``'s expression) and the addition terms' truncation bounds and known SDs."""
    r = design.spec.response
    texts = dict(drawn_arguments(r))
    if needs_trials and r.is_cbind:
        texts.update(successes=r.expr, failures=r.failures)
    elif needs_trials and r.counts and r.addition("trials") is None:  # a multinomial's total: its counts' sum
        texts.update({f"count {column}": column for column in r.counts})
    elif needs_trials:
        texts["trials"] = r.addition("trials").get("trials")
    return texts


def _check_columns(data: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise DataError(f"the new data lack the column {missing[0]!r}, which the model uses"
                        + (f" (also missing: {', '.join(repr(c) for c in missing[1:])})" if missing[1:] else ""))
    for c in columns:
        nan = data[c].isna().to_numpy()
        if nan.any():
            raise DataError(f"column {c!r} of the new data has {int(nan.sum())} missing values "
                            f"(first at row {data.index[nan][0]!r}); predictions need every used value")


def _check_numbers(data: pd.DataFrame, fitting: pd.DataFrame, columns: list[str]) -> None:
    """Raise :class:`DataError` for a value that is not a number in a column the model was fitted with numbers.

    Left to formulaic, a text value would make the column categorical on the new data alone,
    and fail with a message about generated columns.
    """
    for c in columns:
        if c not in fitting.columns or not pd.api.types.is_numeric_dtype(fitting[c].dtype) \
                or pd.api.types.is_numeric_dtype(data[c].dtype):
            continue
        values = data[c]
        bad = values[[not isinstance(v, numbers.Real) for v in values]]
        if len(bad):
            raise DataError(f"column {c!r} of the new data holds {bad.iloc[0]!r} (row {bad.index[0]!r}), which is not a "
                            f"number; the model was fitted with numbers in {c!r} ({len(bad)} such rows)")


def _check_categories(spec, data: pd.DataFrame, context) -> None:
    """Raise :class:`DataError` for a categorical value the fitting data did not have."""
    for factor, (kind, state) in spec.encoder_state.items():
        if getattr(kind, "value", kind) != "categorical" or "categories" not in state:
            continue
        columns = [factor] if factor in data.columns else expression_variables(factor, data.columns, context)
        if len(columns) != 1:
            continue  # formulaic's own warning, turned into an error below, still catches it
        column = columns[0]
        values = data[column]
        unknown = values[~values.isin(state["categories"])]
        if len(unknown):
            raise DataError(f"column {column!r} of the new data has the level {unknown.iloc[0]!r}, which the "
                            f"fitting data did not have (its levels: {list(state['categories'])}); no coefficient "
                            "was estimated for it")


def _evaluate(spec, data: pd.DataFrame, what: str, context) -> np.ndarray:
    """Columns of ``spec`` on ``data``, with the fitting data's transforms and levels, seeing only
    the design's restricted ``context`` besides the data (the expressions were checked when fitting).

    formulaic writes into the state of the spec it evaluates (a column of a new kind gets an
    encoding of its own), so the evaluation runs on a copy: whatever the new data, the fitted
    model's design is never changed.
    """
    _check_categories(spec, data, context)
    spec = spec.update(encoder_state=copy.deepcopy(spec.encoder_state),
                       transform_state=copy.deepcopy(spec.transform_state))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            values = np.asarray(spec.get_model_matrix(data, context=context), dtype=float)
        except Exception as err:  # formulaic wraps failures of user expressions
            raise DataError(f"cannot evaluate {what} on the new data: {err}") from None
    for w in caught:
        if "categories outside" in str(w.message):
            raise DataError(f"{what} on the new data: {w.message}")
    return values


def _level_labels(data: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """The level name of each new row, spelt as the design spells the fitting data's levels
    (:func:`~hierbayes.specification.design.level_label`: ``308``, ``308.0`` and ``"308"`` are one level)."""
    parts = [np.array([level_label(v) for v in data[c]], dtype=object) for c in columns]
    labels = parts[0]
    for p in parts[1:]:
        labels = labels + ":" + p
    return labels


def new_rows(model, data: pd.DataFrame | None, groups: str = "known", kind: str = "mean") -> NewRows:
    """The design of ``data`` under the fitted ``model`` (the fitting data when ``None``).

    Parameters
    ----------
    model : Model
    data : pandas.DataFrame or None
        Rows to predict; needs the predictor columns (and grouping columns unless
        ``groups="population"``), not the response.
    groups : {"known", "population", "new"}
    kind : {"mean", "response"}
        Binomial response draws also need the ``cbind`` columns (trials).

    Raises
    ------
    DataError
        For a missing column, a missing value, a value that is not a number in a column
        fitted with numbers, or a categorical level of a fixed effect that the fitting data
        did not have (naming the column and the value). ``model`` is never changed.

    Examples
    --------
    >>> import pandas as pd
    >>> import hierbayes as hb
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0], "x": [0.0, 1, 2, 3], "g": list("aabb")})
    >>> rows = new_rows(hb.Model("y ~ scale(x) + (1 | g)", df), pd.DataFrame({"x": [1.5], "g": ["a"]}))
    >>> rows.X.tolist()   # x = 1.5 is the fitting mean: scale(x) = 0, not re-centred on itself
    [[1.0, 0.0]]
    """
    design = model.design
    if data is None:
        return _fitted_rows(design, groups)  # as new rows: no group effects for groups="population"
    data = as_pandas(data, "new data")
    if len(data) == 0:
        raise DataError("the new data are empty (0 rows)")
    columns = _required_columns(design, groups, kind, model.family.needs_trials)
    _check_columns(data, columns)
    factor_columns = {c for part in (design, *design.parts) for b in part.blocks
                      for c in b.block.factor_columns}  # levels, matched as labels
    _check_numbers(data, model.data, [c for c in columns if c not in factor_columns])
    offset = None
    for expr, ospec in design.offset_specs:
        values = data[expr].to_numpy(dtype=float) if ospec is None else _evaluate(ospec, data, f"offset {expr!r}", design.context)[:, 0]
        offset = values if offset is None else offset + values
    values = {}
    if kind == "response":
        for arg, text in _response_texts(design, model.family.needs_trials).items():
            values[arg] = np.full(len(data), float(text)) if is_number(text) else \
                column_values(text, data, f"{arg} {text!r} on the new data", design.context)
    trials = values.pop("trials", None)
    if counts := [values.pop(key) for key in list(values) if key.startswith("count ")]:
        trials = np.sum(counts, axis=0)
    if "failures" in values:
        trials = values.pop("successes") + values.pop("failures")
    index = pd.Index(data.index, name=OBS_DIM)
    parts = tuple((part.part, NewRows(X, None, factors, None, index))
                  for part in design.parts for X, factors in [_formula_rows(part, data, groups)])
    X, factors = _formula_rows(design, data, groups)
    return NewRows(X, offset, factors, trials, index, values, parts)


def _formula_rows(design: Design, data: pd.DataFrame, groups: str) -> tuple[np.ndarray, tuple[FactorRows, ...]]:
    """One formula's fixed-effect columns and factors on new rows (the mean's, or a family parameter's)."""
    what = "the fixed effects" if design.part is None else f"the formula for {design.part!r}"
    X = design.fixed_columns(_evaluate(design.fixed_spec, data, what, design.context))
    factors = []
    if groups != "population":
        for factor in design.factors:
            blocks = [b for b in design.blocks if b.factor == factor]
            Z = np.concatenate([_evaluate(b.spec, data, f"group term {b.block}", design.context) for b in blocks], axis=1)
            factors.append(FactorRows(factor, _level_labels(data, blocks[0].block.factor_columns), Z))
    return X, tuple(factors)


# --- group effects of the rows -------------------------------------------------------------------

def _draws(posterior: xr.Dataset, var: str, *dims: str) -> np.ndarray:
    return posterior[var].transpose("chain", "draw", *dims).values


def new_level_effects(posterior: xr.Dataset, design: Design, factor: str, n_levels: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Effects of ``n_levels`` new levels of ``factor``, drawn from the population per posterior draw.

    For each block of the factor, ``u = z @ L.T`` with ``z ~ N(0, I)``,
    ``L = diag(sd) @ chol(cor)`` from that draw's ``sd_<factor>`` and ``cor_<factor>``
    (``L = diag(sd)`` for ``||`` and one-coefficient blocks). Blocks on one factor are
    independent of each other, as in the model.

    Returns
    -------
    ndarray (chain, draw, n_levels, Q)
    """
    names = FactorNames(factor, design.part)
    sd = _draws(posterior, names.sd, names.coef_dim)
    chains, draws, _ = sd.shape
    out = np.empty((chains, draws, n_levels, sd.shape[-1]))
    start = 0
    for block in (b for b in design.blocks if b.factor == factor):
        coefs = block.coef_names
        q = len(coefs)
        sl = slice(start, start + q)
        start += q
        z = rng.standard_normal((chains, draws, n_levels, q))
        if block.block.correlated and q > 1:
            corr = np.broadcast_to(np.eye(q), (chains, draws, q, q)).copy()
            cor = posterior[names.cor]
            for j in range(q):
                for i in range(j):
                    value = cor.sel({names.cor_dim: cor_pair(coefs[i], coefs[j])}).transpose("chain", "draw").values
                    corr[..., i, j] = corr[..., j, i] = value
            L = sd[..., sl, None] * np.linalg.cholesky(corr)
            out[..., sl] = np.einsum("cdnk,cdqk->cdnq", z, L)
        else:
            out[..., sl] = z * sd[..., None, sl]
    return out


def _unseen_error(factor: str, unseen: list[str]) -> DataError:
    shown = ", ".join(repr(v) for v in unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
    what = f"level {shown} of grouping factor {factor!r} was" if len(unseen) == 1 else \
        f"levels {shown} of grouping factor {factor!r} were"
    return DataError(f"{what} not in the fitting data; pass "
                     "allow_new_levels=True (or groups='new') to draw their effects from the fitted population "
                     "distribution, or groups='population' to leave the group effects out")


def factor_effects(posterior: xr.Dataset, design: Design, rows: FactorRows, groups: str,
                   allow_new_levels: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(r, index, Z)`` of one factor for :func:`hierbayes.specification.linear_predictor.linear_predictor`."""
    factor = rows.factor
    if groups == "new":
        names, index = np.unique(rows.labels.astype(str), return_inverse=True)
        return new_level_effects(posterior, design, factor, len(names), rng), index, rows.Z
    levels = design.factors[factor].levels
    position = {lvl: i for i, lvl in enumerate(levels)}
    index = np.array([position.get(lbl, -1) for lbl in rows.labels], dtype=np.int64)
    names = FactorNames(factor, design.part)
    known = _draws(posterior, names.effects, names.level_dim, names.coef_dim)
    if (index >= 0).all():
        return known, index, rows.Z
    unseen = list(dict.fromkeys(rows.labels[index < 0]))
    if not allow_new_levels:
        raise _unseen_error(factor, unseen)
    new = new_level_effects(posterior, design, factor, len(unseen), rng)
    extra = {lbl: len(levels) + k for k, lbl in enumerate(unseen)}
    index[index < 0] = [extra[lbl] for lbl in rows.labels[index < 0]]
    return np.concatenate([known, new], axis=2), index, rows.Z


# --- predictions ---------------------------------------------------------------------------

def family_parameter_draws(model, posterior: xr.Dataset, rows: NewRows | None = None, groups: str = "known", *,
                           allow_new_levels: bool = False, rng: np.random.Generator | None = None
                           ) -> dict[str, np.ndarray]:
    """The draws of the family's own parameters (``sigma``, ...) for ``rows`` (the fitting rows by default):
    ``(chain, draw, 1)`` for a parameter that is one number, ``(chain, draw, N)`` for one with its own
    formula (the inverse of its link at its linear predictor, whose group effects follow ``groups``
    as the mean's do).

    Examples
    --------
    >>> import numpy as np, pandas as pd, hierbayes as hb
    >>> rng = np.random.default_rng(3)
    >>> df = pd.DataFrame({"x": rng.normal(size=60)})
    >>> df["y"] = rng.normal(0, np.exp(0.2 + 0.5 * df["x"]))
    >>> model = hb.Model(hb.Formula("y ~ 1", sigma="~ x"), df)
    >>> draws = model.sample_prior_predictive(draws=5, seed=1)["prior"].to_dataset()  # or a fit's posterior
    >>> b = draws["b_sigma"].values  # (chain, draw, sigma_term)
    >>> by_hand = np.exp(b[..., :1] + b[..., 1:] * df["x"].to_numpy())
    >>> bool(np.allclose(family_parameter_draws(model, draws)["sigma"], by_hand))
    True
    """
    design = model.design
    rows = _fitted_rows(design) if rows is None else rows
    part_rows = dict(rows.parts)
    rng = np.random.default_rng() if rng is None else rng
    out = {}
    for name, support in model.family.parameters:
        part = design.part_design(name)
        if part is None:
            out[name] = posterior[name].transpose("chain", "draw").values[..., None]
            continue
        these = part_rows[name]
        effects = [factor_effects(posterior, part, fr, groups, allow_new_levels, rng) for fr in these.factors]
        eta = linear_predictor(fixed_effect_draws(posterior, part), these.X, None, effects)
        out[name] = parameter_link(support).inverse(eta)
    if model.family.thresholds is not None:  # an ordinal family's, (chain, draw, K-1)
        out[THRESHOLDS] = posterior[THRESHOLDS].transpose("chain", "draw", THRESHOLD_DIM).values
    return out


def observed_data(model) -> xr.Dataset:
    """The fitting rows' response as a fit records it (``observed_data``), named as the PyMC variable: dim ``obs``,
    and ``category`` for a multinomial's counts of each category."""
    y = model.design.y
    coords = {CATEGORY_DIM: [level_label(c) for c in model.family.categories]} if y.ndim == 2 else {}
    return xr.Dataset({response_name(model.design): ((OBS_DIM, CATEGORY_DIM)[:y.ndim], y)}, coords=coords)


def _check_options(model, kind: str, groups: str) -> None:
    ordinal = ORDINAL_KINDS if model.family.thresholds is not None or model.family.nominal else ()
    kinds = (*KINDS, *ordinal, *(name for name, _ in model.family.parameters))
    if kind not in kinds:
        raise HierbayesError(f"kind must be one of {kinds}, not {kind!r}")
    if groups not in GROUPS:
        raise HierbayesError(f"groups must be one of {GROUPS}, not {groups!r}")


def predict(fit, data: pd.DataFrame | None = None, kind: str = "mean", groups: str = "known", *,
            allow_new_levels: bool = False, seed: int | np.random.Generator | None = None) -> xr.DataArray:
    """Posterior draws of the prediction for each row of ``data``.

    Parameters
    ----------
    fit : Fit
    data : pandas.DataFrame, optional
        New rows (the fitting data when omitted).
    kind : {"mean", "response", "probabilities"} or the name of a family parameter
        ``"mean"`` is brms's ``fitted()`` / ``posterior_epred()`` (also accepted as ``"epred"``);
        ``"response"`` is brms's ``predict()`` / ``posterior_predict()`` (also ``"prediction"``).
        ``"mean"``: the expected response (on the response scale, through the inverse
        link); ``"response"``: draws of the response itself, adding the family's
        observation noise; a family parameter (``"sigma"``): its value for each row (with a
        formula of its own, the inverse of its link at its linear predictor; else the same
        for every row). For an ordinal family (``cumulative``, ``sratio``), each category
        has a score (its number for a numeric response, else its position 1 .. K):
        ``"response"`` draws scores, ``"mean"`` is ``sum_k score_k P(y = k)`` (brms's
        ``conditional_effects``), and ``"probabilities"`` gives every ``P(y = k)``, with a
        ``category`` dim after ``obs`` (ordinal families only). For a nominal family
        (``categorical``, ``multinomial``), ``"mean"`` and ``"probabilities"`` both give every
        ``P(y = k)`` (with the ``category`` dim), ``"response"`` draws a category's position
        0 .. K-1 in ``fit.model.family.categories`` (categorical) or the counts of each category
        (multinomial, with the ``category`` dim), and a part's name (``"mucar"``) its linear predictor.
    groups : {"known", "population", "new"}
        Where group effects come from; see :mod:`hierbayes.posterior.predict`.
    allow_new_levels : bool
        With ``groups="known"``: draw the effects of unseen levels from the population
        instead of raising.
    seed : int or numpy Generator, optional
        For the draws of new-level effects and of the response.

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, obs)`` (and ``category`` for ``"probabilities"``), draw-aligned
        with the posterior; ``obs`` is the index of ``data``.
    """
    kind = KIND_ALIASES.get(kind, kind)
    _check_options(fit.model, kind, groups)
    rows = new_rows(fit.model, data, groups, kind)
    return predict_rows(fit.model, fit.posterior, rows, kind, groups, allow_new_levels=allow_new_levels,
                        rng=np.random.default_rng(seed))


def rows_linear_predictor(model, post: xr.Dataset, rows: NewRows, groups: str = "known", *,
                          allow_new_levels: bool = False, rng: np.random.Generator) -> np.ndarray:
    """The linear predictor of the rows of a :class:`NewRows`, (chain, draw, obs): what :func:`predict_rows`
    puts through the family's mean, and the link scale of :mod:`hierbayes.posterior.interpretation`."""
    design = model.design
    effects = [factor_effects(post, design, fr, groups, allow_new_levels, rng) for fr in rows.factors]
    return linear_predictor(fixed_effect_draws(post, design), rows.X, rows.offset, effects)


def predict_rows(model, post: xr.Dataset, rows: NewRows, kind: str = "mean", groups: str = "known", *,
                 allow_new_levels: bool = False, rng: np.random.Generator) -> xr.DataArray:
    """:func:`predict` of the rows of a :class:`NewRows`, for the draws of ``post``.

    ``post`` may be a subset of a fit's draws (:func:`hierbayes.posterior.checking.predictive_sample`
    predicts a few draws of a few rows); the result has its chains and draws.
    """
    design, family = model.design, model.family
    eta = rows_linear_predictor(model, post, rows, groups, allow_new_levels=allow_new_levels, rng=rng)
    trials = None if rows.trials is None else np.rint(rows.trials).astype(np.int64)  # numpy's binomial wants ints
    coords = {"chain": post["chain"].values, "draw": post["draw"].values, OBS_DIM: rows.index.values}
    dims = ("chain", "draw", OBS_DIM)
    ordinal = family.thresholds is not None
    # the family's parameters only where they are needed (a location family's mean is the inverse link)
    params = family_parameter_draws(model, post, rows, groups, allow_new_levels=allow_new_levels, rng=rng) \
        if kind != "mean" or family.expected_value or ordinal or family.nominal else {}
    if family.nominal and kind in ("mean", "probabilities", "response"):
        values = family.nominal_probabilities(eta, params) if kind != "response" else \
            family.draw(rng, eta, params, trials, rows.additions)
        if kind != "response" or values.ndim > eta.ndim:  # a multinomial's counts have the category axis too
            dims, coords[CATEGORY_DIM] = (*dims, CATEGORY_DIM), [level_label(c) for c in family.categories]
    elif kind == "probabilities" or (kind == "mean" and ordinal):
        values = family.category_probabilities(eta, params.get(THRESHOLDS))
        if kind == "mean":  # an ordinal response's expected score
            values = values @ design.category_scores
        else:
            dims, coords[CATEGORY_DIM] = (*dims, CATEGORY_DIM), [level_label(c) for c in design.categories]
    elif kind == "response":
        values = family.draw(rng, eta, params, trials, rows.additions)
        if design.categories:  # the likelihood draws a category's position 0 .. K-1
            values = design.category_scores[np.asarray(values, dtype=np.int64)]
    elif kind == "mean":
        values = family.expected_response(eta, params)
    else:
        values = np.broadcast_to(params[kind], eta.shape)
    return xr.DataArray(np.asarray(values, dtype=float), dims=dims, coords=coords,
                        name=response_name(design), attrs={"kind": kind, "groups": groups})


def predict_summary(fit, data: pd.DataFrame | None = None, kind: str = "mean", groups: str = "known", *,
                    allow_new_levels: bool = False, seed: int | np.random.Generator | None = None,
                    prob: float | None = None) -> pd.DataFrame:
    """Posterior mean, SD and equal-tailed interval of the prediction for each row.

    Takes the arguments of :func:`predict`, plus ``prob`` (the interval's mass,
    the fit's by default). The index is the index of ``data``.
    """
    if kind == "probabilities" or (fit.model.family.nominal and kind not in dict(fit.model.family.parameters)):
        raise HierbayesError("predict_summary summarises one number per row; for the category probabilities use "
                             "fit.predict(kind='probabilities').mean(('chain', 'draw'))")
    draws = predict(fit, data, kind, groups, allow_new_levels=allow_new_levels, seed=seed)
    stats = draw_stats(draws.values, prob or fit.prob)
    return pd.DataFrame(stats, index=pd.Index(draws[OBS_DIM].values, name=OBS_DIM))
