"""What a formula may evaluate, checked before anything is evaluated.

formulaic turns the expressions of a formula (``np.log(x)``, ``I(x ** 2)``, ``C(k)``) into
columns with Python's ``eval``. A formula is data, not a program: it may come from a
colleague, a notebook found online or a saved fit. So hierbayes evaluates it in a
restricted namespace and checks every expression's syntax tree first:

- names read as values must be columns of the data, or entries of the user's
  ``namespace=`` (what they pass explicitly, like bambi's ``extra_namespace``);
- called names must be one of the documented transforms (:data:`FUNCTIONS`), or a
  ``namespace`` entry;
- attributes are allowed on ``np`` (its numeric functions, :data:`NUMPY_NAMES`), on
  ``contr`` (the contrast codings) and on ``namespace`` entries, never on anything
  else, and never a name starting with ``_``;
- dunder names, ``__import__``, ``eval``, ``exec``, ``compile``, ``open``, ``getattr``,
  ``globals``, ``locals``, ``vars`` and the like, lambdas, comprehensions, ``:=`` and
  f-strings are refused.

Anything else raises :class:`~hierbayes.common.errors.FormulaError` naming the offending name,
with a caret under it in the formula. formulaic is then given only
:func:`evaluation_context` (its own documented transforms stay available), never the
caller's variables.

Examples
--------
>>> formula_variables("x + np.log(z) + C(k, contr.treatment('b'))", ["x", "z", "k"])
['x', 'z', 'k']
>>> formula_variables("I(__import__('os').system('ls'))", ["x"])
Traceback (most recent call last):
...
hierbayes.common.errors.FormulaError: '__import__' may not be used in a formula: ...
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
from formulaic import Formula
from formulaic.errors import FormulaicError
from formulaic.transforms import TRANSFORMS
from formulaic.utils.code import sanitize_variable_names

from hierbayes.common.errors import DataError, FormulaError, HierbayesError, did_you_mean

__all__ = ["FUNCTIONS", "NUMPY_NAMES", "CONTRASTS", "formula_variables", "expression_variables", "formula_factors",
           "evaluation_context", "check_namespace", "column_list", "known_columns"]

_FORMULAIC_TRANSFORMS = ("C", "I", "Q", "scale", "center", "standardize", "poly", "bs", "cr", "cs", "cc",
                         "hashed", "lag", "log", "log10", "log2", "exp", "exp2",
                         "Treatment", "Sum", "Helmert", "Poly", "Diff")
_OURS = {"sqrt": np.sqrt, "abs": np.abs}

_AUTOCORRELATION = ("autocorrelation term, which hierbayes does not fit; model the dependence with a group "
                    "term such as (1 | subject)")
BRMS_TERMS: dict[str, str] = {
    "s": "smooth term, which hierbayes does not fit; write a spline basis such as bs(x, df=5) or cr(x, df=5), "
         "or poly(x, 3)",
    "t2": "tensor-product smooth, which hierbayes does not fit; write bs(x, df=5) * bs(z, df=5) or poly terms",
    "gp": "Gaussian-process term, which hierbayes does not fit; write a spline basis such as bs(x, df=5)",
    "mo": "monotonic effect, which hierbayes does not fit; write C(x) for one effect per category, or x for a "
          "linear trend",
    "me": "measurement-error term, which hierbayes does not fit; use the measured values, or y | se(s) for a "
          "response with known error",
    "mi": "missing-value imputation, which hierbayes does not do; rows with missing values are dropped with a "
          "warning (or refused with na_action='error')",
    "mm": "multi-membership term, which hierbayes does not fit",
    "gr": "grouping function; write the factor itself: (1 | g)",
    **{name: _AUTOCORRELATION for name in ("ar", "ma", "arma", "cosy", "car", "sar", "unstr", "fcor")},
}
"""brms terms a formula may not use, each with what to write instead (the error says both)."""

FUNCTIONS: dict[str, Any] = {**{name: TRANSFORMS[name] for name in _FORMULAIC_TRANSFORMS}, **_OURS}
"""The functions a formula may call by name: formulaic's documented transforms and ``sqrt``, ``abs``."""

NUMPY_NAMES = frozenset(
    [name for name in dir(np) if isinstance(getattr(np, name, None), np.ufunc)]
    + ["where", "clip", "round", "around", "mean", "median", "std", "min", "max", "quantile", "pi", "e"])
"""What a formula may take from ``np``: its ufuncs (``np.log``, ``np.sqrt``, ``np.maximum``, ...),
a few array functions and the constants ``np.pi`` and ``np.e`` (no file, pickle or module access)."""

CONTRASTS = frozenset({"treatment", "sum", "helmert", "poly", "diff", "custom", "SAS"})
"""The contrast codings of ``contr`` (``C(k, contr.sum)``)."""

_MODULES = {"np": NUMPY_NAMES, "contr": CONTRASTS}
_FORBIDDEN = frozenset({"__import__", "eval", "exec", "compile", "open", "getattr", "setattr", "delattr",
                        "hasattr", "globals", "locals", "vars", "dir", "input", "breakpoint", "help", "exit",
                        "quit", "type", "object", "memoryview", "super"})  # Python's own; a column may take these names
_NODES = (ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.IfExp, ast.Compare, ast.Call, ast.keyword,
          ast.Constant, ast.Attribute, ast.Subscript, ast.Slice, ast.Name, ast.List, ast.Tuple, ast.Dict, ast.Set,
          ast.Starred, ast.Load, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)
_CONSTRUCTS = {ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
               ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator expression",
               ast.NamedExpr: "an assignment (:=)", ast.JoinedStr: "an f-string", ast.Await: "await",
               ast.Yield: "yield", ast.YieldFrom: "yield"}
_RULE = ("a formula may use the data's columns, the documented transforms (C, I, Q, scale, center, poly, log, "
         "exp, sqrt, ...), NumPy's numeric functions as np.<name>, and what you pass in namespace=")


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _position(formula: str | None, token: str) -> int | None:
    """Where ``token`` (a name, or ``.attr``) first stands as a whole token in ``formula``."""
    if not formula:
        return None
    match = re.search(rf"(?<![\w.]){re.escape(token)}(?!\w)", formula) or re.search(re.escape(token), formula)
    return match.start() if match else None


def _refuse(message: str, formula: str | None, token: str) -> FormulaError:
    position = _position(formula, token)
    return FormulaError(message, formula if position is not None else None, position)


def _parse_python(expr: str, formula: str | None) -> tuple[ast.Expression, dict[str, str]]:
    """The syntax tree of one Python expression, backticked names sanitised as formulaic does."""
    aliases: dict[str, str] = {}
    code = sanitize_variable_names(expr, {}, aliases)
    try:
        return ast.parse(code, mode="eval"), aliases
    except RecursionError:
        raise FormulaError(f"the expression {expr!r} is nested too deeply to read", formula) from None
    except (SyntaxError, ValueError) as err:
        reason = getattr(err, "msg", str(err))
        raise FormulaError(f"cannot read the expression {expr!r}: {reason}", formula) from None


def expression_variables(expr: str, columns: Collection[str], namespace: Collection[str] = (),
                         formula: str | None = None, where: str = "the formula") -> list[str]:
    """The columns a Python expression reads, in order, after checking it may be evaluated.

    Parameters
    ----------
    expr : str
        One expression as formulaic evaluates it (``np.log(x)``, ``I(n - hits)``); names in
        backticks and ``Q('...')`` arguments are columns.
    columns : collection of str
        The data's columns: names the expression may read as values.
    namespace : collection of str
        Names the user passed explicitly; they may be read, called and their attributes used.
    formula : str, optional
        The whole formula, for the caret under a refused name.

    Raises
    ------
    FormulaError
        For anything a formula may not use (see the module docstring), naming it.
    DataError
        For a name read as a value that is not a column (``unknown column``).
    """
    tree, aliases = _parse_python(expr, formula)
    _refuse_code(tree, aliases, columns, expr, formula)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    bases = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    variables: list[str] = []

    def value(name: str) -> None:  # checked where it stands, so that the first fault is the one named
        variables.extend(known_columns([name], columns, namespace, formula, where))

    for node in _reading_order(tree):
        if isinstance(node, ast.Name) and node.id in aliases:  # a backticked column: always a value
            value(aliases[node.id])
        elif isinstance(node, ast.Name) and id(node) in bases:
            continue  # checked with its attribute, below
        elif isinstance(node, ast.Name) and id(node) in called:
            if node.id in BRMS_TERMS and node.id not in namespace:
                raise _refuse(f"{node.id}(...) is brms's {BRMS_TERMS[node.id]}", formula, node.id)
            if node.id not in FUNCTIONS and node.id not in namespace:
                raise _refuse(f"{node.id!r} is not a function a formula may call; {_RULE} "
                              f"(hb.Model(..., namespace={{{node.id!r}: {node.id}}}))", formula, node.id)
        elif isinstance(node, ast.Name) and (node.id in columns or node.id not in FUNCTIONS):
            value(node.id)  # (not C(k, Sum), which passes a transform as a value)
        elif isinstance(node, ast.Attribute):
            _check_attribute(node, namespace, formula, expr)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Q":
            if not (node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                raise FormulaError(f"Q() takes a column name in quotes, as in Q('my column'), not {expr!r}", formula)
            value(node.args[0].value)
        elif isinstance(node, ast.Call) and not isinstance(node.func, (ast.Name, ast.Attribute)):
            raise FormulaError(f"only named functions may be called in a formula, not the result of "
                               f"{ast.unparse(node.func)!r}; {_RULE}", formula)
    return list(dict.fromkeys(variables))


def _reading_order(tree: ast.AST) -> list[ast.AST]:
    """The nodes of ``tree`` that have a place in the text, leftmost first, inner before outer."""
    placed = [n for n in ast.walk(tree) if hasattr(n, "col_offset")]
    return sorted(placed, key=lambda n: (n.lineno, n.col_offset, n.end_lineno, n.end_col_offset))


def _refuse_code(tree: ast.Expression, aliases: Mapping[str, str], columns: Collection[str], expr: str,
                 formula: str | None) -> None:
    """Raise for the first construct or name (in reading order) that could run code."""
    nodes = list(ast.walk(tree))
    for node in nodes:
        kind = next((what for cls, what in _CONSTRUCTS.items() if isinstance(node, cls)), None)
        if kind is not None or not isinstance(node, _NODES):
            raise FormulaError(f"{kind or type(node).__name__} may not be used in a formula ({expr!r}); {_RULE}",
                               formula)
    for node in _reading_order(tree):
        name = node.id if isinstance(node, ast.Name) and node.id not in aliases else None
        if name is not None and (_dunder(name) or (name in _FORBIDDEN and name not in columns)):
            raise _refuse(f"{name!r} may not be used in a formula: it could run code; {_RULE}", formula, name)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise _refuse(f"the attribute {node.attr!r} may not be used in a formula: it could run code; {_RULE}",
                          formula, "." + node.attr)


def _check_attribute(node: ast.Attribute, namespace: Collection[str], formula: str | None, expr: str) -> None:
    """``np.log`` and ``contr.sum`` (one listed attribute), or any attribute path of a namespace entry."""
    chain, base = [node.attr], node.value
    while isinstance(base, ast.Attribute):
        chain.insert(0, base.attr)
        base = base.value
    if isinstance(base, ast.Name) and base.id in namespace:
        return
    if not isinstance(base, ast.Name) or base.id not in _MODULES:
        name = f"{base.id}.{chain[0]}" if isinstance(base, ast.Name) else f"{ast.unparse(base)}.{chain[0]}"
        raise _refuse(f"{name!r} may not be used in a formula: attributes may be taken of np, contr and namespace "
                      f"entries only; {_RULE}", formula, "." + chain[0])
    if chain[0] not in _MODULES[base.id] or len(chain) > 1:
        name = f"{base.id}.{chain[0]}" if chain[0] not in _MODULES[base.id] else f"{base.id}.{'.'.join(chain[:2])}"
        raise _refuse(f"{name!r} is not one of the functions a formula may use from {base.id}; {_RULE}",
                      formula, "." + (chain[0] if chain[0] not in _MODULES[base.id] else chain[1]))


def known_columns(variables: Collection[str], columns: Collection[str], namespace: Collection[str] = (),
                  formula: str | None = None, where: str = "the formula") -> list[str]:
    """``variables`` that are columns, in order; DataError for a name that is neither column nor namespace
    (naming ``where`` it is: the formula, or a family parameter's formula)."""
    out = []
    for name in dict.fromkeys(variables):
        if name in columns:
            out.append(name)
        elif name not in namespace:
            close = did_you_mean(name, columns)
            hint = f"; did you mean {close!r}?" if close else f"; the data have {column_list(columns)}"
            raise DataError(f"unknown column {name!r} in {where}{hint}")
    return out


def column_list(columns) -> str:
    """The first dozen column names, quoted, for messages."""
    cols = [str(c) for c in columns]
    return ", ".join(repr(c) for c in cols[:12]) + (", ..." if len(cols) > 12 else "")


def formula_factors(text: str, formula: str | None = None) -> list[tuple[str, str]]:
    """formulaic's factors of formula ``text``: (expression, ``"lookup"``/``"python"``/``"literal"``).

    These are exactly the expressions formulaic will evaluate; reading them evaluates nothing.
    """
    try:
        parsed = Formula(text)
        return [(factor.expr, factor.eval_method.value) for term in parsed for factor in term.factors]
    except RecursionError:
        raise FormulaError(f"{text!r} is nested too deeply to read", formula) from None
    except (FormulaicError, SyntaxError, AttributeError, ValueError, TypeError) as err:
        reason = getattr(err, "msg", None) or (str(err).splitlines()[0] if str(err) else type(err).__name__)
        raise FormulaError(f"cannot read {text!r}: {reason}", formula) from None


def formula_variables(text: str, columns: Collection[str], namespace: Collection[str] = (),
                      formula: str | None = None, where: str = "the formula") -> list[str]:
    """The columns formula ``text`` (formulaic syntax: ``x * z + np.log(t)``) reads, in order, after
    checking that everything in it may be evaluated.

    Raises
    ------
    FormulaError
        For anything a formula may not use (:func:`expression_variables`).
    DataError
        For an unknown column.
    """
    variables: list[str] = []
    for expr, method in formula_factors(text, formula):
        if method == "lookup":
            if _dunder(expr):
                raise _refuse(f"{expr!r} may not be used in a formula; {_RULE}", formula, expr)
            variables.extend(known_columns([expr], columns, namespace, formula, where))
        elif method == "python":
            variables.extend(expression_variables(expr, columns, namespace, formula, where))
    return list(dict.fromkeys(variables))


def check_namespace(namespace: Mapping[str, Any] | None, columns) -> dict[str, Any]:
    """The user's ``namespace=`` as a dict, refused when a name is not an identifier, is a dunder
    name, or is also a column of the data (formulaic would silently read the column)."""
    if namespace is None:
        return {}
    if not isinstance(namespace, Mapping):
        raise HierbayesError(f"namespace must be a dict of names to functions or values, not "
                             f"{type(namespace).__name__}")
    columns = set(map(str, columns))
    for name in namespace:
        if not isinstance(name, str) or not name.isidentifier() or _dunder(name):
            raise HierbayesError(f"namespace entry {name!r} must be a plain Python name (no dunder names)")
        if name in columns:
            raise HierbayesError(f"namespace entry {name!r} has the name of a column of the data; a formula "
                                 "would read the column. Rename one of them")
    return dict(namespace)


def evaluation_context(namespace: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything formulaic may see besides the data and its own transforms: ``sqrt``, ``abs`` and
    the user's ``namespace``. Never the caller's variables (formulaic's default)."""
    return {**_OURS, **(namespace or {})}
