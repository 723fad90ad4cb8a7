"""Which columns of the data a formula reads, and what ``.`` stands for.

Checked before anything is evaluated: every expression goes through
:mod:`hierbayes.specification.evaluation`, so a formula that may not run is refused here.

Examples
--------
>>> from hierbayes.specification.formula import parse
>>> used_columns(parse("y ~ scale(x) + (1 | g/h)"), ["y", "x", "g", "h", "z"])
['y', 'x', 'g', 'h']
"""

from __future__ import annotations

import keyword
from collections.abc import Collection
from dataclasses import replace

from hierbayes.common.errors import DataError, FormulaError
from hierbayes.specification.evaluation import formula_variables, known_columns
from hierbayes.specification.formula import MAX_TERMS, ModelSpec, dot_positions

__all__ = ["used_columns", "expression_columns", "expand_dot", "as_arithmetic"]


def as_arithmetic(expr: str) -> str:
    """``expr`` wrapped in ``I()`` when it has an operator outside parentheses and backticks.

    formulaic reads such operators as formula syntax: ``n - hits`` would mean the column
    ``n`` without the term ``hits``, not a subtraction.

    >>> as_arithmetic("n - hits"), as_arithmetic("np.log(t)")
    ('I(n - hits)', 'np.log(t)')
    """
    depth, quoted = 0, False
    for ch in expr:
        quoted ^= ch == "`"
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and not quoted and ch in "+-*/:^%":
            return f"I({expr})"
    return expr


def _value_text(expr: str, columns) -> str | None:
    """The formulaic text of a one-column expression (response, cbind column, offset); None when
    ``expr`` is a column itself."""
    return None if expr in columns else as_arithmetic(expr)


def used_columns(spec: ModelSpec, columns, namespace: Collection[str] = ()) -> list[str]:
    """Columns of the data that the formula reads, in the data's order, after checking that every
    expression may be evaluated (:mod:`hierbayes.specification.evaluation`).

    Parameters
    ----------
    spec : ModelSpec
    columns : sequence of str
        The data's columns.
    namespace : collection of str
        Names the user passed in ``namespace=`` (not columns).

    Raises
    ------
    FormulaError
        For anything a formula may not evaluate (``__import__``, an unknown function, ...).
    DataError
        For an unknown column, or a used column that the data have twice.

    Examples
    --------
    >>> from hierbayes.specification.formula import parse
    >>> used_columns(parse("y ~ scale(x) + (1 | g/h)"), ["y", "x", "g", "h", "z"])
    ['y', 'x', 'g', 'h']
    """
    columns = list(columns)
    spec = expand_dot(spec, columns, namespace)
    wanted = expression_columns(spec, columns, namespace)
    for b in (*spec.blocks, *(b for part in spec.parts for b in part.blocks)):
        wanted += known_columns(b.factor_columns, columns)
    wanted = list(dict.fromkeys(wanted))
    for name in wanted:
        if (copies := columns.count(name)) > 1:
            raise DataError(f"the data have {copies} columns named {name!r}; the formula cannot tell which one it "
                            "means: rename or drop the copies")
    return [c for c in columns if c in set(wanted)]


def expression_columns(spec: ModelSpec, columns: list, namespace: Collection[str]) -> list[str]:
    """Columns read by the formula's expressions (all but the grouping factors), checked for evaluation."""
    wanted = _response_columns(spec, columns, namespace)
    for expr in spec.offsets:
        text = _value_text(expr, columns)
        wanted += [expr] if text is None else formula_variables(text, columns, namespace, spec.formula)
    for part in (spec, *spec.parts):  # the mean's formula, then each family parameter's
        where = "the formula" if part is spec else f"the formula for {part.response.expr!r}"
        for text in (part.fixed, *(b.expr for b in part.blocks)):
            wanted += formula_variables(text, columns, namespace, part.formula, where)
    return wanted


def _response_columns(spec: ModelSpec, columns: list, namespace: Collection[str]) -> list[str]:
    out: list[str] = []
    exprs = spec.response.counts or (spec.response.expr, spec.response.failures)  # a multinomial's count columns
    for expr in (*exprs, *spec.response.addition_expressions):
        if expr is not None:
            text = _value_text(expr, columns)
            out += [expr] if text is None else formula_variables(text, columns, namespace, spec.formula)
    return out


def expand_dot(spec: ModelSpec, columns, namespace: Collection[str] = ()) -> ModelSpec:
    """``spec`` with ``.`` in its fixed part written out: every column of the data except the
    response's and the grouping factors' (lme4's ``.`` leaves out the response only; a grouping
    column as a fixed effect too would be collinear with its varying intercepts).

    Examples
    --------
    >>> from hierbayes.specification.formula import parse
    >>> expand_dot(parse("y ~ . + (1 | g)"), ["y", "x", "body mass", "g"]).fixed
    '(x + `body mass`)'
    """
    positions = dot_positions(spec.fixed)
    if not positions:
        return spec
    columns = list(columns)
    left_out = {*_response_columns(spec, columns, namespace), *(c for b in spec.blocks for c in b.factor_columns)}
    others = [c for c in columns if c not in left_out]
    tilde = spec.formula.index("~")
    where = next((i for i in dot_positions(spec.formula) if i > tilde), None)
    if not others:
        raise FormulaError("'.' stands for every column except the response and the grouping factors, and the data "
                           "have no other column", spec.formula, where)
    if len(others) > MAX_TERMS:
        raise FormulaError(f"'.' stands for {len(others)} columns; a formula has at most {MAX_TERMS} terms",
                           spec.formula, where)
    if bad := [c for c in others if not isinstance(c, str) or "`" in c]:
        raise FormulaError(f"'.' cannot name the column {bad[0]!r} in a formula (column names must be text "
                           "without backticks); rename it or list the predictors", spec.formula, where)
    text = "(" + " + ".join(c if c.isidentifier() and not keyword.iskeyword(c) else f"`{c}`" for c in others) + ")"
    fixed = spec.fixed
    for i in reversed(positions):
        fixed = fixed[:i] + text + fixed[i + 1:]
    return replace(spec, fixed=fixed)
