"""The nominal families: ``categorical`` (one of K unordered categories) and ``multinomial`` (counts of each).

brms's multinomial logit: the first category is the reference, and each other category ``c`` has a
linear predictor ``mu<c>`` of its own, with the formula's fixed and group terms, so that

    ``P(y = k) = softmax(0, mu_2, ..., mu_K)_k``.

The K - 1 linear predictors are the parts of a distributional model (:mod:`hierbayes.specification.formula`),
one per category after the first, named by :func:`~hierbayes.specification.names.category_part`
(``mucar``; labels ``mucar_Intercept``, ``mucar_x``, ``sd(mucar_Intercept|g)``, effects ``r_g__mucar``):
:func:`nominal_model` writes the formula once per part (or takes a part's own formula from
``hb.Formula(..., mucar="~ x")``) and gives the family one real parameter per part
(:meth:`~hierbayes.specification.families.Family.with_categories`). Each part's group effects are their own
block (brms's ``(1 | p | g)``, correlated across the parts, is refused by the parser).

- ``categorical``: the response is one column of K >= 3 categories (text, a pandas Categorical, or
  numbers); the categories are in the Categorical's order, else sorted. The design holds each row's
  category position 0 .. K-1 (pandas' codes); the likelihood is PyMC's ``Categorical`` on the logits.
- ``multinomial``: the response is ``cbind(y1, y2, y3)``, K >= 3 count columns whose names are the
  categories (in that order), with the total ``trials(n)`` or, without it, their row sum; PyMC's
  ``Multinomial`` on the softmax. The design holds the counts ``(N, K)``; predictions of the response
  draw counts of each category.

Examples
--------
>>> import pandas as pd
>>> from hierbayes.specification.families import get_family
>>> nominal_categories(pd.Series(["car", "bus", "walk", "car"]), "mode")
('bus', 'car', 'walk')
>>> get_family("categorical").with_categories(("bus", "car", "walk")).parameters
(('mucar', 'real'), ('muwalk', 'real'))
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import DataError, FormulaError
from hierbayes.specification.families.core import Family, check_real, refuse_rows, register_family
from hierbayes.specification.formula import ModelSpec, Response
from hierbayes.specification.names import category_part

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["nominal_categories", "nominal_codes", "nominal_model", "category_logits", "count_columns", "count_matrix",
           "check_category_counts"]


def category_logits(eta, params):
    """The logits ``(..., N, K)`` of every category: the reference's ``eta`` and each part's linear predictor,
    ``params``' values in the categories' order (a part with an intercept only is one value, broadcast)."""
    return pt.stack(pt.broadcast_arrays(eta, *params.values()), axis=-1)


def _categorical_like(name, eta, mean, params, observed, trials, dims):
    return pm.Categorical(name, logit_p=category_logits(eta, params), observed=observed, shape=observed.shape)


def _categorical_distribution(mean, params, trials):
    """The categorical response's distribution, which ``weights()`` wraps: the reference's linear predictor is 0."""
    return pm.Categorical.dist(logit_p=category_logits(pt.zeros_like(mean), params))


def _multinomial_like(name, eta, mean, params, observed, trials, dims):
    return pm.Multinomial(name, n=trials, p=pt.special.softmax(category_logits(eta, params), axis=-1),
                          observed=observed, shape=observed.shape)


# --- the response --------------------------------------------------------------------------------

def _plain(value):
    """A category as a plain Python value: whole floats as ints (a numeric column read as floats)."""
    value = value.item() if isinstance(value, np.generic) else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def nominal_categories(values: pd.Series, column: str) -> tuple:
    """The categories of an unordered response, in order (a pandas Categorical's, else sorted), the first the
    reference.

    Raises
    ------
    DataError
        Naming ``column``: a Categorical category without rows, fewer than three categories (two:
        bernoulli), or two categories whose parts would share a name (``a b`` and ``a_b``).
    """
    values = values.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = tuple(_plain(c) for c in values.cat.categories)
        empty = [c for c, n in zip(categories, np.bincount(values.cat.codes, minlength=len(categories))) if n == 0]
        if empty:
            raise DataError(f"response {column!r} has categories without rows: {empty}; their linear predictors "
                            f"cannot be estimated. Drop them (df[{column!r}] = df[{column!r}].cat."
                            "remove_unused_categories()) or merge them with another category")
    else:
        categories = tuple(dict.fromkeys(sorted((_plain(v) for v in values.unique()),
                                                key=lambda v: (isinstance(v, str), v))))
    if len(categories) < 3:
        raise DataError(f"response {column!r} has {len(categories)} categories {list(categories)}; the categorical "
                        "family needs at least 3 (for two, use family='bernoulli' with the response coded 0/1)")
    parts = [category_part(c) for c in categories]
    if len(set(parts)) < len(parts):
        same = next(p for p in parts if parts.count(p) > 1)
        twins = [c for c, p in zip(categories, parts) if p == same]
        raise DataError(f"response {column!r} has categories {twins} whose linear predictors would share the name "
                        f"{same!r} (symbols become '_'); rename one of them")
    return categories


def nominal_codes(values: pd.Series, family: Family, column: str) -> np.ndarray:
    """Each row's category position 0 .. K-1 among ``family.categories``; a :class:`DataError` for a category
    that has no rows left (once rows with missing values are dropped)."""
    position = {c: k for k, c in enumerate(family.categories)}
    codes = np.array([position[_plain(v)] for v in values], dtype=np.float64)
    empty = [c for c, n in zip(family.categories, np.bincount(codes.astype(np.int64), minlength=len(position)))
             if n == 0]
    if empty:
        raise DataError(f"response {column!r} has no rows of the categories {empty} once rows with missing values "
                        "are dropped; their linear predictors cannot be estimated")
    return codes


def count_columns(response: Response, columns) -> tuple:
    """A multinomial response's categories: the names of its ``cbind`` count columns, in order.

    Raises
    ------
    FormulaError
        For a response that is not ``cbind`` of three or more columns of the data (two: binomial).
    """
    if response.is_cbind:
        raise FormulaError(f"the multinomial family needs three or more count columns, cbind(y1, y2, y3); for two, "
                           f"cbind({response.expr}, {response.failures}), use family='binomial'")
    if not response.counts:
        raise FormulaError(f"the multinomial family's response is one count column per category, cbind(y1, y2, y3) "
                           f"(total: their row sum, or trials(n)), not {response.expr!r}; for one column of categories "
                           "use family='categorical'")
    if missing := [c for c in response.counts if c not in columns]:
        raise DataError(f"the multinomial family's count columns must be columns of the data; {missing[0]!r} is not one "
                        "(compute it as a column first)")
    if len(set(response.counts)) < len(response.counts):
        raise FormulaError(f"{response.expr} names a count column twice")
    return response.counts


def count_matrix(data: pd.DataFrame, family: Family) -> np.ndarray:
    """A multinomial response's counts ``(N, K)``, one column per category; a :class:`DataError` naming the column
    for values that are not numbers, negative or not whole, or a category that never occurs."""
    for column in family.categories:
        values = data[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise DataError(f"count column {column!r} must hold whole numbers; it holds {values.dtype} values")
        bad = (values < 0) | (values != np.round(values))
        refuse_rows(values.to_numpy(dtype=float), bad.to_numpy(), column, "hold non-negative whole counts")
        if not (values > 0).any():
            raise DataError(f"count column {column!r} is 0 in every row: its category never occurs, so its linear "
                            "predictor cannot be estimated; leave it out of cbind()")
    return data[list(family.categories)].to_numpy(dtype=np.float64)


def check_category_counts(y, trials, column):
    """Refuse rows whose counts total 0 (they say nothing about the categories) and totals other than ``trials``."""
    total = y.sum(axis=1)
    refuse_rows(total, total == 0, column, "have a positive total in every row (the counts of a row whose total is 0 "
                "carry no information)", "Drop those rows")
    if trials is not None:
        refuse_rows(total, total != trials, column, "sum to trials() in every row", "Give the total as trials(n), "
                    "or leave trials() out to take the row sums")


def nominal_model(spec: ModelSpec, data: pd.DataFrame, family: Family) -> tuple[ModelSpec, Family]:
    """The formula and family of a nominal model: the formula once per category after the first, as parts
    ``mu<c>`` (a part given its own formula, ``hb.Formula(..., mucar="~ x")``, keeps it), and the family with
    those categories. Another family passes through unchanged.

    Raises
    ------
    FormulaError
        For an ``offset()``, a part's formula for a parameter the model does not have (naming its parts), or
        a response the family does not take.
    DataError
        For a response column the data lack, or with fewer than three categories.
    """
    if not family.nominal:
        return spec, family
    categories = _response_categories(spec, data, family)
    family = family.with_categories(categories)
    if spec.offsets:
        raise FormulaError(f"the {family.name} family takes no offset(): each category after the first has a "
                           f"linear predictor of its own; drop offset({spec.offsets[0]})")
    names = [name for name, _ in family.parameters]
    own = {part.response.expr: part for part in spec.parts}
    if unknown := sorted(set(own) - set(names)):
        raise FormulaError(f"the {family.name} model has no parameter {unknown[0]!r}; its linear predictors, one per "
                           f"category after the reference {categories[0]!r}, are: {', '.join(map(repr, names))}")
    rhs = spec.formula.split("~", 1)[1]
    parts = tuple(own.get(name) or replace(spec, formula=f"{name} ~{rhs}", response=Response(name), parts=())
                  for name in names)
    return replace(spec, fixed="0", blocks=(), parts=parts), family


def _response_categories(spec: ModelSpec, data: pd.DataFrame, family: Family) -> tuple:
    response = spec.response
    if family.needs_trials:  # multinomial
        return count_columns(response, data.columns)
    if response.is_cbind or response.counts:
        raise FormulaError(f"the {family.name} family takes one response column of categories, without cbind(); for "
                           "counts of each category use family='multinomial'")
    if response.expr not in data.columns:
        raise DataError(f"the {family.name} family's response must be a column of the data; {response.expr!r} is not "
                        "one (compute it as a column first)")
    return nominal_categories(data[response.expr], response.expr)


register_family(Family(
    name="categorical", link="logit", links=("logit",),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=_categorical_like,
    distribution=_categorical_distribution,
    check_response=check_real,
    nominal=True,
))
register_family(Family(
    name="multinomial", link="logit", links=("logit",),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=_multinomial_like,
    check_response=check_category_counts,
    needs_trials=True,
    nominal=True,
))
