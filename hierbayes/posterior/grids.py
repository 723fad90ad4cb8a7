"""The rows that interpretation predicts: the model's predictors, data grids and reference grids.

- :func:`data_grid`: every combination of chosen values, the other predictors at their mean
  (numeric) or most common level (categorical), as marginaleffects's ``datagrid``;
- :func:`reference_grid`: emmeans's balanced grid of every level of every categorical predictor;
- :func:`conditional_grid`: the grid of a conditional-effects plot (brms's ``conditional_effects``).

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> predictor_columns(model), fixed_predictors(model), is_categorical(model, "Subject")
(['Days', 'Subject'], ['Days'], True)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.common.errors import HierbayesError, did_you_mean
from hierbayes.specification.evaluation import expression_variables

__all__ = ["formula_designs", "predictor_columns", "fixed_predictors", "is_categorical", "levels_of", "fitting_rows",
           "check_predictor", "fixed_interactions",
           "data_grid", "reference_grid", "conditional_grid", "CONDITIONAL_POINTS"]

CONDITIONAL_POINTS = 100  # grid points of a numeric predictor in a conditional-effects plot


# --- the model's columns -------------------------------------------------------------------------

def formula_designs(model) -> tuple:
    """The designs whose formulas read the predictors: the mean's, or a nominal model's parts (one per category
    after the first; its mean has no terms)."""
    return model.design.parts if model.family.nominal else (model.design,)


def _response_columns(model) -> set[str]:
    design = model.design
    used = set()
    for formula in formula_designs(model):
        used |= set(formula.fixed_spec.required_variables)
        for b in formula.blocks:
            used |= set(b.spec.required_variables) | set(b.block.factor_columns)
    for expr, ospec in design.offset_specs:
        used |= {expr} if ospec is None else set(ospec.required_variables)
    return set(model.data.columns) - used


def predictor_columns(model) -> list[str]:
    """The columns the model's right-hand side reads (fixed part, group terms, grouping factors, offsets), in
    the data's order."""
    response = _response_columns(model)
    return [c for c in model.data.columns if c not in response]


def fixed_predictors(model) -> list[str]:
    """The columns of the population-level part, in the order the formula first uses them."""
    columns, found, required = list(model.data.columns), [], set()
    for design in formula_designs(model):
        for term in design.fixed_spec.terms:
            for factor in term.factors:
                if factor.expr != "1":
                    found += expression_variables(factor.expr, columns, design.context)
        required |= set(design.fixed_spec.required_variables)
    return [c for c in dict.fromkeys(found) if c in required]


def fixed_interactions(model) -> list[tuple[str, str]]:
    """The two-way interactions of the population-level part, as the pair of columns each reads, in the
    formula's order (``Days:group`` gives ``("Days", "group")``). As brms's ``conditional_effects``, a term
    that reads three or more columns (``x:z:w``) is left out; its two-way terms are listed when the formula
    has them.

    Examples
    --------
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy").assign(late=lambda d: d["Days"] > 4)
    >>> fixed_interactions(hb.Model("Reaction ~ Days * late + (1 | Subject)", df))
    [('Days', 'late')]
    """
    columns, found = list(model.data.columns), []
    for design in formula_designs(model):
        for term in design.fixed_spec.terms:
            if len(term.factors) < 2:
                continue
            read = list(dict.fromkeys(v for factor in term.factors
                                      for v in expression_variables(factor.expr, columns, design.context)))
            if len(read) == 2:
                found.append((read[0], read[1]))
    return list(dict.fromkeys(found))


def _encoder_states(model):
    for design in formula_designs(model):
        for spec in (design.fixed_spec, *(b.spec for b in design.blocks)):
            yield from spec.encoder_state.items()


def _categorical_state(model, column: str) -> dict | None:
    """The encoder state of a categorical expression of ``column`` alone (``trt``, ``C(dose)``), if any."""
    columns = list(model.data.columns)
    for expr, (kind, state) in _encoder_states(model):
        if getattr(kind, "value", kind) == "categorical" and \
                expression_variables(expr, columns, model.design.context) == [column]:
            return state
    return None


def is_categorical(model, column: str) -> bool:
    """Whether the model reads ``column`` as categorical: text, booleans, pandas categories, or a number
    the formula encodes as levels (``C(dose)``). Grouping columns are categorical."""
    values = model.data[column]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    if any(column in b.block.factor_columns for design in formula_designs(model) for b in design.blocks):
        return True
    return _categorical_state(model, column) is not None


def levels_of(model, column: str) -> list:
    """The levels of a categorical column in the model's order (its reference level first)."""
    state = _categorical_state(model, column)
    if state is not None and "categories" in state:
        return list(state["categories"])
    values = fitting_rows(model)[column]
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [v for v in values.cat.categories if v in set(values)]
    return sorted(pd.unique(values), key=lambda v: (str(type(v)), v))


def fitting_rows(model) -> pd.DataFrame:
    """The rows the model was fitted to (the model's columns, rows with missing values dropped)."""
    return model.data.dropna().reset_index(drop=True)


def check_predictor(model, column: str) -> None:
    """Raise :class:`HierbayesError` when ``column`` is not a predictor of the model, suggesting the closest."""
    names = predictor_columns(model)
    if column not in names:
        close = did_you_mean(column, names)
        hint = f"did you mean {close!r}? " if close else ""
        raise HierbayesError(f"{column!r} is not a predictor of the model {model.formula}; {hint}its predictors are "
                             f"{names}")


def _typical(model, values: pd.Series, column: str):
    """A numeric column's mean, a categorical one's most common level (the first of a tie), as marginaleffects's
    ``datagrid``."""
    if is_categorical(model, column):
        return values.mode().iloc[0]
    return float(values.mean())


def _as_values(value) -> list:
    if isinstance(value, (str, bytes)) or np.ndim(value) == 0:
        return [value]
    return list(value)


def data_grid(model, values: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Every combination of ``values``, the model's other columns at their mean (numeric) or most common level
    (categorical): marginaleffects's ``datagrid``.

    Examples
    --------
    >>> import hierbayes as hb
    >>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    >>> data_grid(model, {"Days": [0, 9]})[["Days", "Subject"]].values.tolist()
    [[0, '308'], [9, '308']]
    """
    values = dict(values or {})
    for column in values:
        check_predictor(model, column)
    base = fitting_rows(model)
    grid = pd.DataFrame(list(itertools.product(*(_as_values(v) for v in values.values()))), columns=list(values))
    for column in base.columns:
        if column not in values:
            grid[column] = _typical(model, base[column], column)
    return grid


def reference_grid(model, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """emmeans's reference grid: every level of every categorical predictor of the population-level part,
    numeric ones at their mean.

    ``columns`` adds the levels of further categorical columns (grouping factors).
    """
    chosen = list(dict.fromkeys([*fixed_predictors(model), *(columns or [])]))
    factors = {c: levels_of(model, c) for c in chosen if is_categorical(model, c)}
    return data_grid(model, factors)



def _factor_column(model, factor: str | None) -> str:
    design = model.design
    if factor is None:
        if len(design.factors) != 1:
            raise HierbayesError("levels= picks levels of a grouping factor; name it with factor= (the factors are "
                                 f"{list(design.factors)})" if design.factors else
                                 f"levels= picks levels of a grouping factor, and the model {model.formula} has none")
        factor = next(iter(design.factors))
    design.check_factor(factor)
    columns = next(b.block.factor_columns for b in design.blocks if b.factor == factor)
    if len(columns) != 1:
        raise HierbayesError(f"levels= needs a grouping factor of one column; {factor!r} is made of {list(columns)}")
    return columns[0]


def conditional_grid(model, effect: str, second: str | None = None, *, levels: Sequence | None = None,
                     factor: str | None = None, points: int = CONDITIONAL_POINTS) -> tuple[pd.DataFrame, str | None]:
    """The grid of one conditional effect: ``effect`` over ``points`` values from its minimum to its maximum
    (numeric) or its levels (categorical), crossed with the values of ``second``, the other
    predictors at their mean or most common level (:func:`data_grid`).

    A numeric ``second`` takes its mean and the mean plus and minus one SD, as brms; with
    ``levels``, the second variable is the column of the grouping ``factor``, at those levels.
    Returns the grid and the name of the column that tells its lines apart (or None).

    Examples
    --------
    >>> import hierbayes as hb
    >>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    >>> grid, lines = conditional_grid(model, "Days", levels=["308", "309"])
    >>> len(grid), lines, sorted(set(grid["Subject"]))
    (200, 'Subject', ['308', '309'])
    """
    check_predictor(model, effect)
    base = fitting_rows(model)
    if levels is not None:
        if second is not None:
            raise HierbayesError("give either a second variable (effect='x:z') or levels= of a grouping factor")
        second = _factor_column(model, factor)
    values: dict[str, Any] = {effect: levels_of(model, effect) if is_categorical(model, effect) else
                              np.linspace(base[effect].min(), base[effect].max(), points)}
    if second is not None:
        check_predictor(model, second)
        if levels is not None:
            values[second] = list(levels)
        elif is_categorical(model, second):
            values[second] = levels_of(model, second)
        else:
            mean, sd = float(base[second].mean()), float(base[second].std())
            values[second] = [mean + sd, mean, mean - sd]
    return data_grid(model, values), second
