"""ModelSpec + DataFrame -> :class:`Design`: validated arrays, the second stage.

The fixed part and each block's expression become columns through formulaic, whose
model specs carry the stateful transforms (``scale``, ``center``, categorical
levels) that new data must reuse. A grouping factor becomes an integer level index
per row and the tuple of its level names; a block is that index plus its ``Z[N, q]``
columns. No dense rows-by-levels matrix is ever built.

Validation happens here, before any model is compiled: unknown columns, a
non-numeric response, values outside the family's support, infinite values, a
one-level factor, collinear fixed effects. Rows with missing values in the columns
the formula uses are dropped with a warning that says how many and which columns
(or refused with ``na_action="error"``); nothing else is dropped.

Examples
--------
>>> import pandas as pd
>>> from hierbayes.specification.formula import parse
>>> from hierbayes.specification.families import get_family
>>> df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0], "x": [0, 1, 0, 1], "g": list("aabb")})
>>> d = make_design(parse("y ~ x + (1 | g)"), df, get_family("gaussian"))
>>> d.fixed_names, d.factors["g"].levels, d.factors["g"].index.tolist()
(('Intercept', 'x'), ('a', 'b'), [0, 0, 1, 1])
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from formulaic import model_matrix
from formulaic.errors import FormulaicError

from hierbayes.common.errors import DataError, DataWarning, FormulaError, HierbayesError
from hierbayes.specification.additions import addition_data, check_additions
from hierbayes.specification.columns import as_arithmetic, expand_dot, expression_columns, used_columns
from hierbayes.specification.evaluation import check_namespace, evaluation_context, formula_variables
from hierbayes.specification.families import Family
from hierbayes.specification.families.nominal import count_matrix, nominal_codes
from hierbayes.specification.families.ordinal import category_codes, category_scores, ordinal_response
from hierbayes.specification.formula import Block, ModelSpec, check_parts
from hierbayes.specification.readers import as_pandas

__all__ = ["Design", "BlockDesign", "FactorDesign", "make_design", "level_label", "column_values"]


@dataclass(frozen=True)
class FactorDesign:
    """A grouping factor: level names, a level index per row, observations per level."""

    name: str
    levels: tuple[str, ...]
    index: np.ndarray  # int32 (N,)
    # within(): the answer for each other factor, kept (a pass over the rows each); never copied by replace()
    _within: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.index, minlength=len(self.levels))

    def within(self, top: FactorDesign) -> np.ndarray | None:
        """``parent[k]``, the level of factor ``top`` that holds level ``k`` of this factor, when every
        level of this factor has rows and lies within one level of ``top``; else None.

        >>> school = FactorDesign("school", ("a", "b"), np.array([0, 0, 1, 1]))
        >>> FactorDesign("class", ("x", "y", "z"), np.array([0, 1, 2, 2])).within(school).tolist()
        [0, 0, 1]
        """
        kept = self._within.get(id(top))
        if kept is None or kept[0] is not top:
            parent = np.zeros(len(self.levels), dtype=np.int64)
            parent[self.index] = top.index  # nested when every row agrees
            nested = np.array_equal(parent[self.index], top.index) and np.bincount(
                self.index, minlength=len(parent)).all()
            kept = self._within[id(top)] = (top, parent if nested else None)
        return kept[1]


@dataclass(frozen=True)
class BlockDesign:
    """One group term on the data: its factor, coefficient names and ``Z[N, q]``."""

    block: Block
    coef_names: tuple[str, ...]
    Z: np.ndarray
    spec: Any = field(repr=False)  # formulaic ModelSpec, for new data

    @property
    def factor(self) -> str:
        return self.block.factor

    @property
    def label(self) -> str:
        return f"{'+'.join(self.coef_names)}|{self.factor}"


@dataclass(frozen=True)
class Design:
    """Everything the model builder needs, as arrays, plus the state for new data.

    Attributes
    ----------
    y, trials : ndarray
        Response (and binomial trials, from ``cbind`` or ``trials()``, else None).
    X : ndarray (N, p)
        Fixed-effect columns named by ``fixed_names`` (formulaic's names).
    offset : ndarray (N,) or None
    blocks : tuple of BlockDesign
    factors : dict of FactorDesign, by factor name
    n_dropped : int
        Rows dropped for missing values (with the warning saying so).
    context : dict
        What the formula's expressions may see besides the data and formulaic's transforms
        (:func:`~hierbayes.specification.evaluation.evaluation_context`); new data are
        evaluated with it too.
    categories : tuple
        An ordinal response's categories in order (empty for the other families); ``y``
        holds each row's category score (:mod:`~hierbayes.specification.families.ordinal`).
    additions : dict of ndarray (N,)
        The response's addition terms' values by argument (``weights``, ``cens``, ``y2``, ``lb``,
        ``ub``, ``se``; :func:`~hierbayes.specification.additions.addition_data`).
    """

    spec: ModelSpec
    y: np.ndarray
    trials: np.ndarray | None
    X: np.ndarray
    fixed_names: tuple[str, ...]
    offset: np.ndarray | None
    blocks: tuple[BlockDesign, ...]
    factors: dict[str, FactorDesign]
    n_dropped: int
    fixed_spec: Any = field(repr=False)
    offset_specs: tuple[Any, ...] = field(repr=False, default=())
    context: dict[str, Any] = field(repr=False, default_factory=dict)  # what formulaic may see besides the data
    categories: tuple = ()
    additions: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    parts: tuple[Design, ...] = ()  # the designs of the family parameters with a formula, over the same rows
    part: str | None = None  # the family parameter this design predicts (None: the mean)

    def part_design(self, parameter: str) -> Design | None:
        """The design of ``parameter``'s formula (distributional regression), or None when it is one number."""
        return next((d for d in self.parts if d.part == parameter), None)

    def check_part(self, part: str | None) -> Design:
        """The design of ``part``'s formula (``"sigma"``; None: the mean's, this one); a
        :class:`~hierbayes.common.errors.HierbayesError` naming the parts there are when it has none."""
        if part is None:
            return self
        design = self.part_design(part)
        if design is None:
            raise HierbayesError(f"{part!r} has no formula of its own in this model; the parameters that do: "
                                 f"{[d.part for d in self.parts]} (part=None is the mean's formula)")
        return design

    @property
    def all_factors(self) -> dict[str, FactorDesign]:
        """The grouping factors of every formula: the mean's, then those only in a family parameter's."""
        return {f: fd for d in (self, *self.parts) for f, fd in d.factors.items()}

    @property
    def n_obs(self) -> int:
        return int(self.y.shape[0])

    @property
    def has_intercept(self) -> bool:
        return "Intercept" in self.fixed_names

    @property
    def category_scores(self) -> np.ndarray:
        """An ordinal response's score of each category (its number, else 1 .. K)."""
        return category_scores(self.categories)

    @property
    def observed(self) -> np.ndarray:
        """The response as the likelihood sees it: ``y``, or an ordinal response's category position 0 .. K-1."""
        return category_codes(self.y, self.categories) if self.categories else self.y

    def fixed_columns(self, values: np.ndarray) -> np.ndarray:
        """This design's fixed-effect columns of ``values``, evaluated by ``fixed_spec`` (whose intercept an
        ordinal family's thresholds replace)."""
        names = list(self.fixed_spec.column_names)
        return values[:, [names.index(n) for n in self.fixed_names]]

    def factor_coefs(self, factor: str) -> tuple[str, ...]:
        """All varying coefficients of ``factor``, across its blocks, in order."""
        return tuple(c for b in self.blocks if b.factor == factor for c in b.coef_names)

    def check_factor(self, factor: str) -> FactorDesign:
        """The levels of grouping factor ``factor``; a :class:`~hierbayes.common.errors.HierbayesError` naming
        the model's factors if it has no such factor, or saying that it has none (complete pooling).

        >>> import pandas as pd
        >>> from hierbayes.specification.formula import parse
        >>> from hierbayes.specification.families import get_family
        >>> df = pd.DataFrame({"y": [1.0, 2.0, 4.0], "x": [0.0, 1.0, 2.0]})
        >>> make_design(parse("y ~ x"), df, get_family("gaussian")).check_factor("g")
        Traceback (most recent call last):
        ...
        hierbayes.common.errors.HierbayesError: 'g' is not a grouping factor: the model y ~ x has no grouping factor ...
        """
        if factor in self.factors:
            return self.factors[factor]
        if not self.factors:
            raise HierbayesError(f"{factor!r} is not a grouping factor: the model {self.spec.formula} has no grouping "
                                 "factor (no group term such as (1 | g)), so it has no group effects and no partial "
                                 "pooling; it is the complete-pooling model")
        raise HierbayesError(f"{factor!r} is not a grouping factor of this model; the factors are {list(self.factors)}")


# --- evaluation through formulaic -------------------------------------------------------------

def _matrix(expr: str, data: pd.DataFrame, what: str, context: Mapping[str, Any]):
    """formulaic's columns of ``expr`` on ``data``, seeing only ``context`` besides the data and its
    own transforms, once :func:`~hierbayes.specification.evaluation.formula_variables` has checked
    everything ``expr`` would evaluate."""
    formula_variables(expr, data.columns, context)
    try:
        with np.errstate(all="ignore"):
            mm = model_matrix(expr, data, na_action="ignore", context=context)
    except FormulaicError as err:
        raise FormulaError(f"cannot read {what} {expr!r}: {err}") from None
    except Exception as err:  # formulaic wraps evaluation errors of user expressions
        raise DataError(f"cannot evaluate {what} {expr!r}: {err}") from None
    values = np.asarray(mm, dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        raise DataError(f"{what}: column {mm.model_spec.column_names[j]!r} has {int(bad[:, j].sum())} "
                        "infinite or undefined values after its transform (e.g. log of a value <= 0)")
    for j, name in enumerate(mm.model_spec.column_names):
        _check_size(values[:, j], f"{what}: column {name!r}")
    return values, mm.model_spec


LARGEST = 1e100
"""The largest absolute value a column may hold: default priors are scaled by the data's spread,
whose square overflows double precision not far beyond (1e300 is finite; its square is not)."""


def _check_size(values: np.ndarray, what: str) -> None:
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if largest > LARGEST:
        scale = f"1e{int(np.floor(np.log10(largest)))}"
        raise DataError(f"{what} has values as large as {largest:.3g}, too large to scale priors by (hierbayes takes "
                        f"values up to {LARGEST:.0e}); rescale it first, e.g. divide it by {scale}")


def column_values(expr: str, data: pd.DataFrame, what: str, context: Mapping[str, Any]) -> np.ndarray:
    """The values of a one-column numeric expression (a column, or arithmetic of columns) on ``data``."""
    return _single_column(expr, data, what, context)[0]


def _single_column(expr: str, data: pd.DataFrame, what: str, context: Mapping[str, Any]) -> tuple[np.ndarray, Any]:
    if expr in data.columns:
        col = data[expr]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            example = col.dropna().iloc[0] if col.notna().any() else None
            raise DataError(f"{what} {expr!r} must be numeric; it holds {col.dtype} values such as {example!r}")
        return col.to_numpy(dtype=float), None
    values, mspec = _matrix(f"0 + {as_arithmetic(expr)}", data, what, context)
    if values.shape[1] != 1:
        raise DataError(f"{what} {expr!r} must be one numeric column; it gave {values.shape[1]} columns")
    return values[:, 0], mspec


def level_label(value: Any) -> str:
    """How a level of a grouping factor is named, in tables and at prediction time: its text,
    with whole floats written as integers, so that a column read as floats (``308.0``, as a
    CSV column with a gap becomes) and new data with ``308`` or ``"308"`` name one level.

    >>> [level_label(v) for v in (308.0, np.int64(308), "308", 2.5, "a")]
    ['308', '308', '308', '2.5', 'a']
    """
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _factor_levels(data: pd.DataFrame, block: Block) -> FactorDesign:
    """Level names (observed combinations for ``a:b``) and a level index per row."""
    parts = []
    for column in block.factor_columns:
        col = data[column]
        if isinstance(col.dtype, pd.CategoricalDtype):
            order = [c for c in col.cat.categories if (col == c).any()]
        else:
            order = sorted(col.unique(), key=lambda v: (str(type(v)), v) if not isinstance(v, str) else ("str", v))
        labels = [level_label(v) for v in order]
        if len(set(labels)) < len(labels):
            same = next(label for label in labels if labels.count(label) > 1)
            raise DataError(f"grouping factor column {column!r} has different values that print the same, "
                            f"{same!r}; give the column one type (e.g. df[{column!r}].astype(str))")
        parts.append((col.map({v: i for i, v in enumerate(order)}).to_numpy(), labels))
    if len(parts) == 1:
        codes, names = parts[0]
        return FactorDesign(block.factor, tuple(names), codes.astype(np.int32))
    combined = np.zeros(len(data), dtype=np.int64)
    for codes, names in parts:
        combined = combined * len(names) + codes
    observed, index = np.unique(combined, return_inverse=True)
    labels = []
    for code in observed:
        pieces = []
        for _codes, names in reversed(parts):
            code, r = divmod(code, len(names))
            pieces.append(names[r])
        labels.append(":".join(reversed(pieces)))
    return FactorDesign(block.factor, tuple(labels), index.astype(np.int32))


def _collinear_message(X: np.ndarray, names: tuple[str, ...]) -> str | None:
    """Name a fixed-effect column that is a linear combination of earlier ones."""
    kept: list[int] = []
    scale = np.maximum(np.abs(X).max(axis=0), 1e-300)
    Xs = X / scale
    for j in range(X.shape[1]):
        if not kept:
            if np.allclose(Xs[:, j], 0):
                return f"fixed-effect column {names[j]!r} is all zeros"
            kept.append(j)
            continue
        A = Xs[:, kept]
        coef, *_ = np.linalg.lstsq(A, Xs[:, j], rcond=None)
        resid = Xs[:, j] - A @ coef
        if np.linalg.norm(resid) <= 1e-8 * max(np.linalg.norm(Xs[:, j]), 1.0):
            partners = [names[k] for k, c in zip(kept, coef) if abs(c) > 1e-8] or [names[k] for k in kept]
            return (f"fixed effects are perfectly collinear: {names[j]!r} is a linear combination of "
                    f"{', '.join(repr(p) for p in partners)}; drop one of these terms")
        kept.append(j)
    return None


# --- the design ----------------------------------------------------------------------------------

def make_design(spec: ModelSpec, data: pd.DataFrame, family: Family, na_action: str = "drop",
                namespace: Mapping[str, Any] | None = None) -> Design:
    """Validate ``data`` against ``spec`` and ``family`` and build the design arrays.

    Parameters
    ----------
    spec : ModelSpec
        From :func:`hierbayes.specification.formula.parse`.
    data : pandas.DataFrame
    family : Family
    na_action : {"drop", "error"}
        Rows with missing values in used columns are dropped with a
        :class:`~hierbayes.common.errors.DataWarning` (``"drop"``) or refused (``"error"``).
    namespace : dict, optional
        Functions and values the formula may use besides the data's columns and the
        documented transforms (:mod:`hierbayes.specification.evaluation`).

    Returns
    -------
    Design
    """
    data = as_pandas(data)
    if len(data) == 0:
        raise DataError("the data are empty (0 rows)")
    if na_action not in ("drop", "error"):
        raise DataError(f"na_action must be 'drop' or 'error', not {na_action!r}")
    context = evaluation_context(check_namespace(namespace, data.columns))
    check_additions(spec.response, family)
    check_parts(spec, family)
    columns = used_columns(spec, data.columns, context)
    spec = expand_dot(spec, data.columns, context)
    _check_kinds(spec, data, context)
    data, n_dropped = _drop_missing(data, columns, na_action)
    _check_finite(data, columns)
    _check_numbers_stored_as_text(spec, data, columns)

    expr, categories = spec.response.expr, ()
    if family.nominal:  # each row's category position 0 .. K-1, or a multinomial's counts (N, K)
        y = count_matrix(data, family) if family.needs_trials else nominal_codes(data[expr], family, expr)
    elif spec.response.counts:
        raise DataError(f"{expr} has {len(spec.response.counts)} count columns: the response of family='multinomial', "
                        f"not {family.name!r}")
    elif family.thresholds is None:
        y, _ = _single_column(expr, data, "response", context)
    else:  # each row's category score, and the categories in order
        if spec.response.is_cbind:
            raise DataError(f"the {family.name} family takes one response column of ordered categories, not cbind()")
        y, categories = ordinal_response(data[expr] if expr in data.columns else
                                         pd.Series(_single_column(expr, data, "response", context)[0]), expr)
    trials = None
    if spec.response.is_cbind:
        failures, _ = _single_column(spec.response.failures, data, "failures column", context)
        _check_counts_column(failures, spec.response.failures)
        trials = y + failures
        if family.name == "bernoulli":
            raise DataError("cbind(successes, failures) needs family='binomial', not 'bernoulli'")
    elif (n := spec.response.addition("trials")) is not None:
        trials = column_values(n.get("trials"), data, "trials()", context)
        _check_counts_column(trials, n.get("trials"), "trials")
    elif spec.response.counts:  # a multinomial's total: the row sums
        trials = y.sum(axis=1)
    elif family.needs_trials:
        raise DataError(f"the {family.name} family needs the response as cbind(successes, failures) or "
                        "successes | trials(n)")
    if not np.isfinite(y).all():
        raise DataError(f"response {spec.response.expr!r} has infinite or undefined values after its transform")
    family.check_response(y, trials, spec.response.expr)
    if np.ptp(y) == 0 and trials is None:
        raise DataError(f"response {spec.response.expr!r} is constant (every value is {y[0]:g}): nothing to model")

    X, fixed_spec, fixed_names = _fixed_matrix(spec.fixed, data, "fixed effects", context,
                                               thresholds=family.thresholds is not None)

    offset, offset_specs = None, []
    for expr in spec.offsets:
        values, ospec = _single_column(expr, data, "offset", context)
        offset = values if offset is None else offset + values
        offset_specs.append((expr, ospec))

    factors: dict[str, FactorDesign] = {}
    blocks = _group_terms(spec, data, family, context, factors)
    _check_something_to_estimate(spec, fixed_names, blocks, family)
    additions = addition_data(spec.response, data, y, lambda expr, what: column_values(expr, data, what, context))
    parts = []
    for part in spec.parts:  # over the same rows; a factor's levels are the mean's
        X_part, part_spec, part_names = _fixed_matrix(part.fixed, data, f"the formula for {part.response.expr!r}",
                                                      context)
        part_blocks = _group_terms(part, data, family, context, factors)
        parts.append(Design(part, y, None, X_part, part_names, None, tuple(part_blocks),
                            {b.factor: factors[b.factor] for b in part_blocks}, n_dropped, part_spec, (), context,
                            part=part.response.expr))
    return Design(spec, y, trials, X, fixed_names, offset, tuple(blocks),
                  {b.factor: factors[b.factor] for b in blocks}, n_dropped, fixed_spec, tuple(offset_specs), context,
                  categories=categories, additions=additions, parts=tuple(parts))


def _fixed_matrix(text: str, data: pd.DataFrame, what: str, context: Mapping[str, Any], thresholds: bool = False):
    """The fixed-effect columns of ``text``, formulaic's spec of them and their names, refused when collinear.

    An ordinal family's ``thresholds`` replace the intercept: the columns are coded with it (a factor
    keeps its reference level; ``0 +`` or ``- 1`` change nothing), and it is then dropped.
    """
    X, fixed_spec = _matrix(f"1 + ({text})" if thresholds else text, data, what, context)
    names = tuple(fixed_spec.column_names)
    if (message := _collinear_message(X, names)) is not None:
        raise DataError(message if what == "fixed effects" else f"{what}: {message}")
    if thresholds:  # formulaic puts the intercept first
        X, names = X[:, 1:], names[1:]
    return X, fixed_spec, names


def _group_terms(spec: ModelSpec, data: pd.DataFrame, family: Family, context: Mapping[str, Any],
                 factors: dict[str, FactorDesign]) -> list[BlockDesign]:
    """The group terms of one formula on the data; each new grouping factor is added to ``factors``."""
    blocks = []
    for block in spec.blocks:
        if block.factor not in factors:
            factors[block.factor] = _checked_factor(data, block, family)
        Z, zspec = _matrix(block.expr, data, f"group term {block}", context)
        names = tuple(zspec.column_names)
        if not names:
            raise FormulaError(f"group term {block} has no coefficients")
        if not block.correlated and any("[" in n for n in names):
            raise FormulaError(
                f"group term {block}: '||' with a categorical variable is ambiguous (its levels would be "
                "forced independent); write ( ... | factor ) or give one numeric column per coefficient")
        blocks.append(BlockDesign(block, names, Z, zspec))
    for factor in dict.fromkeys(b.factor for b in blocks):
        coefs = [c for b in blocks if b.factor == factor for c in b.coef_names]
        if len(set(coefs)) < len(coefs):
            dup = next(c for c in coefs if coefs.count(c) > 1)
            raise FormulaError(f"coefficient {dup!r} varies by {factor!r} in more than one group term")
    return blocks


def _check_something_to_estimate(spec: ModelSpec, fixed_names, blocks, family: Family) -> None:
    """Refuse a model without a single parameter (``count ~ 0`` with poisson): nothing to sample."""
    if not fixed_names and not blocks and not family.parameters and family.thresholds is None:
        raise FormulaError(f"the model {spec.formula} has nothing to estimate: no population-level effect, no group "
                           f"term, and the {family.name} family has no parameter of its own; add an intercept "
                           f"({spec.formula.split('~')[0].strip()} ~ 1) or a predictor")


def _drop_missing(data: pd.DataFrame, columns: list[str], na_action: str) -> tuple[pd.DataFrame, int]:
    missing = data[columns].isna()
    rows = missing.any(axis=1)
    if not rows.any():
        return data, 0
    counts = missing.sum()
    detail = ", ".join(f"{c!r} ({int(n)})" for c, n in counts.items() if n)
    if na_action == "error":
        raise DataError(f"{int(rows.sum())} rows have missing values in {detail}; "
                        "remove or impute them, or pass na_action='drop'")
    warnings.warn(f"dropped {int(rows.sum())} of {len(data)} rows with missing values in {detail}",
                  DataWarning, stacklevel=4)
    kept = data.loc[~rows]
    if len(kept) == 0:
        raise DataError(f"every row has a missing value in {detail}")
    return kept, int(rows.sum())


def _check_finite(data: pd.DataFrame, columns: list[str]) -> None:
    for c in columns:
        col = data[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            values = col.to_numpy(dtype=float)
            if np.isinf(values).any():
                raise DataError(f"column {c!r} has {int(np.isinf(values).sum())} infinite values "
                                f"(first at row {data.index[np.isinf(values)][0]!r})")
            _check_size(values, f"column {c!r}")


def _check_kinds(spec: ModelSpec, data: pd.DataFrame, context: Mapping[str, Any]) -> None:
    """Refuse dates, durations and complex numbers where the formula needs numbers (a grouping
    factor may hold dates: a level is a level)."""
    for c in dict.fromkeys(expression_columns(spec, list(data.columns), context)):
        dtype = data[c].dtype
        if pd.api.types.is_timedelta64_dtype(dtype):
            raise DataError(f"column {c!r} holds durations ({dtype}); a formula needs numbers: convert it first, "
                            f"e.g. df[{c!r}] = df[{c!r}].dt.total_seconds() / 86400 for days")
        if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
            raise DataError(f"column {c!r} holds dates and times ({dtype}); a formula needs numbers: convert it "
                            f"first, e.g. df[{c!r}] = (df[{c!r}] - df[{c!r}].min()).dt.days for days since the first")
        if pd.api.types.is_complex_dtype(dtype):
            raise DataError(f"column {c!r} holds complex numbers; a formula needs real numbers")


def _check_numbers_stored_as_text(spec: ModelSpec, data: pd.DataFrame, columns: list[str]) -> None:
    """Refuse a text column whose values are mostly numbers: a typo, not a categorical predictor.

    Grouping-factor columns and columns wrapped in ``C(...)`` are categorical on purpose.
    """
    blocks = (*spec.blocks, *(b for part in spec.parts for b in part.blocks))
    exprs = [spec.response.expr, spec.response.failures or "", spec.fixed, *spec.offsets,
             *(part.fixed for part in spec.parts), *(b.expr for b in blocks)]
    categorical = set(re.findall(r"\bC\(\s*`?([^`),]+?)`?\s*[,)]", " ".join(exprs)))
    if (cens := spec.response.addition("cens")) is not None:
        categorical.add(cens.get("cens"))  # censoring words and codes, read by specification.additions
    categorical.update(c for b in blocks for c in b.factor_columns)
    for c in columns:
        col = data[c]
        if c in categorical or not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
            continue
        present = col[col.notna()]
        numbers = pd.to_numeric(present, errors="coerce")
        text = present[numbers.isna()]
        if 0 < len(text) <= numbers.notna().sum():
            raise DataError(f"column {c!r} holds numbers and text: {text.iloc[0]!r} (row {text.index[0]!r}) is not a "
                            f"number ({len(text)} such rows). Fix the value(s), or write C({c}) to treat the column "
                            "as categorical")


def _check_counts_column(values: np.ndarray, column: str, what: str = "failures column") -> None:
    bad = (values < 0) | (values != np.round(values))
    if bad.any():
        hint = "; successes exceed trials there" if values[bad][0] < 0 and what != "trials" else ""
        raise DataError(f"{what} {column!r} must hold non-negative whole counts; found {values[bad][0]:g} "
                        f"({int(bad.sum())} such rows){hint}")


def _checked_factor(data: pd.DataFrame, block: Block, family: Family) -> FactorDesign:
    factor = _factor_levels(data, block)
    if len(factor.levels) < 2:
        raise DataError(f"grouping factor {block.factor!r} has only one level ({factor.levels[0]!r}); "
                        "a varying effect needs at least two levels")
    if len(factor.levels) == len(data) and "sigma" in dict(family.parameters):
        warnings.warn(f"grouping factor {block.factor!r} has as many levels as rows ({len(data)}); with a "
                      f"{family.name} family its effects are not identifiable from the residual sigma",
                      DataWarning, stacklevel=4)
    return factor
