"""Formula text -> :class:`ModelSpec`: the first stage of the pipeline.

We parse only what no library parses for us: the response (including lme4's
``cbind(successes, failures)`` and brms's addition terms after a ``|``: ``y | weights(w) +
trunc(lb = 0)``), the split of the right-hand side into its fixed
part and its group terms ("bars"), ``offset(...)`` terms, and the grouping factors
(``a/b`` nesting, ``a:b`` interactions). Every expression inside is left as text for
formulaic to turn into design columns in :mod:`hierbayes.specification.design`.

A group term ``( expr | factor )`` is kept whole as one :class:`Block`: its
coefficients share one correlation matrix. ``( expr || factor )`` is one block with
independent coefficients.

Examples
--------
>>> spec = parse("Reaction ~ Days + (Days | Subject)")
>>> spec.response.expr, spec.fixed
('Reaction', 'Days')
>>> spec.blocks
(Block(expr='Days', factor='Subject', correlated=True),)
>>> [b.factor for b in parse("y ~ 1 + (1 | school/class)").blocks]
['school', 'school:class']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from hierbayes.common.errors import FormulaError

__all__ = ["Addition", "ADDITION_TERMS", "Block", "Response", "ModelSpec", "Formula", "parse", "check_parts",
           "dot_positions", "MAX_TERMS"]

_NAME = re.compile(r"^(?!\d)[\w.]+$|^`[^`]+`$")  # \w: letters of any script (Schüler, 学校)
MAX_TERMS = 1000
"""The most terms (``+``-separated, group terms included) a formula may have."""


@dataclass(frozen=True)
class Block:
    """One group term: coefficients of ``expr`` varying over the levels of ``factor``.

    ``factor`` is a column name or an interaction ``a:b`` of column names (its levels
    are the observed combinations). ``correlated`` is False for ``||`` terms.
    """

    expr: str
    factor: str
    correlated: bool = True

    @property
    def factor_columns(self) -> tuple[str, ...]:
        """The data columns that make up the grouping factor."""
        return tuple(part.strip("`") for part in self.factor.split(":"))

    def __str__(self) -> str:
        bar = "|" if self.correlated else "||"
        return f"({self.expr} {bar} {self.factor})"


ADDITION_TERMS: dict[str, tuple[str, ...]] = {
    "trials": ("trials",),
    "weights": ("weights",),
    "cens": ("cens", "y2"),
    "trunc": ("lb", "ub"),
    "se": ("se", "sigma"),
}
"""brms's addition terms on the response, each with its arguments in brms's order (and names)."""


@dataclass(frozen=True)
class Addition:
    """One of brms's addition terms on the response: ``weights(w)``, ``cens(c, y2)``, ``trunc(lb = 0)``.

    ``arguments`` pairs each argument given with its text (a column, an expression or a number;
    ``sigma`` of ``se`` is ``TRUE`` or ``FALSE``), in brms's order of the term's arguments.

    >>> parse("y | trunc(ub = 10) ~ x").response.additions[0]
    Addition(term='trunc', arguments=(('ub', '10'),))
    """

    term: str
    arguments: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The text of argument ``name``, None when it was not given."""
        return dict(self.arguments).get(name)

    def __str__(self) -> str:
        """As brms writes it: ``weights(w)``, ``cens(c, y2)``, ``trunc(lb = 0)``, ``se(s, sigma = TRUE)``."""
        return f"{self.term}({', '.join(f'{k} = {v}' if k in ('lb', 'ub', 'sigma') else v for k, v in self.arguments)})"


@dataclass(frozen=True)
class Response:
    """The left-hand side: one expression, or ``cbind(successes, failures)``, or ``cbind(y1, y2, y3, ...)`` (a
    multinomial's ``counts``, one column per category; ``expr`` is then the whole text), with brms's addition
    terms after ``|`` (:class:`Addition`)."""

    expr: str
    failures: str | None = None
    additions: tuple[Addition, ...] = ()
    counts: tuple[str, ...] = ()

    @property
    def is_cbind(self) -> bool:
        return self.failures is not None

    def addition(self, term: str) -> Addition | None:
        """The addition term ``term`` (``"weights"``, ...) of this response, None without it."""
        return next((a for a in self.additions if a.term == term), None)

    @property
    def addition_expressions(self) -> tuple[str, ...]:
        """The texts of the addition terms' arguments that read the data (not numbers, not ``sigma``).

        >>> parse("y | cens(c, y2) + trunc(lb = 0) + se(s, sigma = TRUE) ~ 1").response.addition_expressions
        ('c', 'y2', 's')
        """
        return tuple(v for a in self.additions for k, v in a.arguments if k != "sigma" and not is_number(v))


def is_number(text: str) -> bool:
    """Whether ``text`` is a number written out (``0``, ``-2.5``, ``Inf``), not an expression of the data."""
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ModelSpec:
    """What the formula says, before any data are seen.

    Attributes
    ----------
    formula : str
        The text as given.
    response : Response
        The left-hand side.
    fixed : str
        The fixed (population-level) part, as formulaic text (``"1"`` when only an
        intercept; may contain ``0 +`` or ``- 1``).
    offsets : tuple of str
        Expressions inside ``offset(...)``, added to the linear predictor with
        coefficient 1.
    blocks : tuple of Block
        The group terms, with ``a/b`` already expanded.
    parts : tuple of ModelSpec
        The formulas of the family's parameters (distributional regression, :class:`Formula`), each
        with the parameter's name as its response; none for a plain formula.
    """

    formula: str
    response: Response
    fixed: str
    offsets: tuple[str, ...]
    blocks: tuple[Block, ...]
    parts: tuple[ModelSpec, ...] = ()

    @property
    def factors(self) -> tuple[str, ...]:
        """Grouping factors in order of first appearance."""
        return tuple(dict.fromkeys(b.factor for b in self.blocks))


@dataclass(frozen=True, init=False)
class Formula:
    """A formula for the mean and one for each of the family's parameters that varies by row
    (distributional regression: brms's ``bf(y ~ x, sigma ~ x)``, bambi's ``bmb.Formula("y ~ x", "sigma ~ x")``).

    Parameters
    ----------
    main : str
        The response and the mean's predictors, as for a plain formula.
    **auxiliary : str
        A right-hand side per family parameter, on that parameter's link (log for a positive
        parameter, logit for a probability, identity for a real one): ``sigma="~ x + (1 | g)"``
        (``"sigma ~ x + (1 | g)"`` says the same). Fixed and group terms as in ``main``; no
        response, no ``offset()``, no ``.``.

    Examples
    --------
    >>> f = Formula("Reaction ~ Days + (Days | Subject)", sigma="~ Days + (1 | Subject)")
    >>> f.auxiliary
    (('sigma', '~ Days + (1 | Subject)'),)
    >>> spec = parse(f)
    >>> spec.parts[0].response.expr, spec.parts[0].fixed, spec.parts[0].blocks
    ('sigma', 'Days', (Block(expr='1', factor='Subject', correlated=True),))
    >>> str(f)
    'Reaction ~ Days + (Days | Subject), sigma ~ Days + (1 | Subject)'
    """

    main: str
    auxiliary: tuple[tuple[str, str], ...]

    def __init__(self, main: str, **auxiliary: str):
        object.__setattr__(self, "main", main)
        object.__setattr__(self, "auxiliary", tuple(auxiliary.items()))

    def part_formulas(self) -> dict[str, str]:
        """Each parameter's formula written out with the parameter as its response: ``{"sigma": "sigma ~ x"}``."""
        out = {}
        for name, text in self.auxiliary:
            if not isinstance(text, str) or "~" not in text:
                raise FormulaError(f"the formula for {name!r} must be text with a '~', as {name}=\"~ x + (1 | g)\"; "
                                   f"got {text!r}")
            lhs, rhs = text.split("~", 1)
            if lhs.strip() not in ("", name):
                raise FormulaError(f"the formula for {name!r} has the response {lhs.strip()!r}: a parameter's "
                                   f"formula has no response of its own; write {name}=\"~{rhs}\"", text, 0)
            out[name] = f"{name} ~{rhs}"
        return out

    def __str__(self) -> str:
        return ", ".join([self.main.strip(), *(text.strip() for text in self.part_formulas().values())])


def _parse_part(name: str, text: str) -> ModelSpec:
    """One parameter's formula (``sigma ~ x + (1 | g)``): fixed and group terms only."""
    spec = parse(text)
    if spec.offsets:
        raise FormulaError(f"the formula for {name!r} has an offset; offsets enter the mean's formula only",
                           text, text.index("offset"))
    if (dots := [i for i in dot_positions(text) if i > text.index("~")]):
        raise FormulaError(f"'.' cannot stand for columns in the formula for {name!r}; list its predictors",
                           text, dots[0])
    return spec


def check_parts(spec: ModelSpec, family) -> None:
    """Refuse a formula for a parameter the family does not have (naming the ones it has).

    ``family`` is a :class:`~hierbayes.specification.families.Family` (its name and parameters are read).

    >>> from hierbayes.specification.families import get_family
    >>> check_parts(parse(Formula("y ~ x", sigma="~ x")), get_family("bernoulli"))
    Traceback (most recent call last):
    ...
    hierbayes.common.errors.FormulaError: the bernoulli family has no parameter 'sigma'; its parameters are: none
    """
    own = [name for name, _ in family.parameters]
    for part in spec.parts:
        if part.response.expr not in own:
            listed = ", ".join(repr(n) for n in own) or "none"
            raise FormulaError(f"the {family.name} family has no parameter {part.response.expr!r}; its parameters "
                               f"are: {listed}")


def _split_top_level(text: str, sep: str, start: int, formula: str) -> list[tuple[str, int]]:
    """Split ``text`` on ``sep`` outside parentheses; return (piece, offset) pairs.

    ``start`` is the offset of ``text`` in ``formula`` (for error positions).
    """
    pieces, depth, last, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError("unbalanced parenthesis: ')' without '('", formula, start + i)
        elif depth == 0 and text.startswith(sep, i):
            pieces.append((text[last:i], start + last))
            i += len(sep)
            last = i
            continue
        i += 1
    if depth > 0:
        raise FormulaError("unbalanced parenthesis: '(' is never closed", formula, start + text.rfind("(") if "(" in text else start)
    pieces.append((text[last:], start + last))
    return pieces


def _strip(piece: str, offset: int) -> tuple[str, int]:
    stripped = piece.lstrip()
    return stripped.rstrip(), offset + len(piece) - len(stripped)


def _outer_parens(term: str) -> bool:
    """True when ``term`` is wrapped whole in one pair of parentheses."""
    if not (term.startswith("(") and term.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(term):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(term) - 1:
            return False
    return True


def _call_argument(term: str, name: str) -> str | None:
    """The argument text of ``name(...)`` when ``term`` is exactly that call."""
    match = re.fullmatch(rf"{name}\s*\((.*)\)", term, flags=re.S)
    if match is None or not _outer_parens(term[term.index("(") :]):
        return None
    return match.group(1).strip()


def _factor_names(text: str, offset: int, formula: str) -> list[str]:
    """Expand a grouping-factor expression: ``a/b/c`` -> ``a, a:b, a:b:c``."""
    nested = [_strip(p, o) for p, o in _split_top_level(text, "/", offset, formula)]
    factors, prefix = [], []
    for part, pos in nested:
        names = [_strip(p, o) for p, o in _split_top_level(part, ":", pos, formula)]
        for name, npos in names:
            if not name:
                raise FormulaError("empty grouping factor", formula, npos)
            if name.startswith("gr(") or name.startswith("mm("):
                raise FormulaError(f"{name.split('(')[0]}(...) is brms's grouping function, which hierbayes does not "
                                   "take; write the factor itself: (1 | g)", formula, npos)
            if not _NAME.match(name):
                raise FormulaError(
                    f"grouping factor {name!r} must be a column name (or a:b, a/b of column names)",
                    formula,
                    npos,
                )
        prefix = prefix + [n for n, _ in names]
        factors.append(":".join(prefix))
    return factors


def _parse_block(inner: str, offset: int, formula: str) -> list[Block]:
    """Parse the inside of ``( expr | factor )`` or ``( expr || factor )`` (redundant parentheses
    around it, as in ``((1 | g))``, are dropped)."""
    while _outer_parens(inner.strip()):
        stripped, offset = _strip(inner, offset)
        inner, offset = stripped[1:-1], offset + 1
    for sep, correlated in (("||", False), ("|", True)):  # noqa: B007 (used after the loop)
        parts = _split_top_level(inner, sep, offset, formula)
        if len(parts) == 2:
            break
        if len(parts) == 3 and sep == "|":
            raise FormulaError("(expr | id | factor) is brms's group term with an ID shared across formula parts, "
                               "which hierbayes does not fit; write (expr | factor)", formula, parts[1][1] - len(sep))
        if len(parts) > 2:
            raise FormulaError(f"a group term takes one '{sep}'", formula, parts[2][1] - len(sep))
    else:
        raise FormulaError("a group term is (expr | factor), with the '|' outside any inner parentheses",
                           formula, offset + inner.index("|"))
    (expr, epos), (factor, fpos) = (_strip(*parts[0]), _strip(*parts[1]))
    if not expr:
        raise FormulaError(
            "empty group term: write (1 | g) for a varying intercept", formula, epos
        )
    if not factor:
        raise FormulaError("group term has no grouping factor after '|'", formula, fpos)
    if "|" in expr:
        raise FormulaError("'|' inside the expression of a group term", formula, epos + expr.index("|"))
    return [Block(expr, f, correlated) for f in _factor_names(factor, fpos, formula)]


def parse(formula: str | Formula) -> ModelSpec:
    """Parse an lme4/brms-style formula.

    Parameters
    ----------
    formula : str or Formula
        ``response ~ fixed terms + (expr | factor) + ...``. Group terms may use
        ``||`` (uncorrelated), ``a/b`` (nested: ``a`` and ``a:b``) and ``a:b``
        (interaction factor). ``offset(expr)`` enters with coefficient 1. A
        :class:`Formula` adds a formula for some of the family's parameters (``parts``).

    Returns
    -------
    ModelSpec

    Raises
    ------
    FormulaError
        With the position of the fault shown under the formula.

    Examples
    --------
    >>> parse("y ~ x + offset(np.log(t)) + (1 | g)").offsets
    ('np.log(t)',)
    """
    if isinstance(formula, Formula):
        parts = tuple(_parse_part(name, text) for name, text in formula.part_formulas().items())
        return replace(parse(formula.main), parts=parts)
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError("the formula is empty; write it as 'y ~ x + (1 | g)'")
    if formula.count("~") != 1:
        where = formula.find("~", formula.find("~") + 1) if formula.count("~") > 1 else len(formula)
        raise FormulaError("a formula needs exactly one '~' between response and predictors", formula, where)
    tilde = formula.index("~")
    lhs, lpos = _strip(formula[:tilde], 0)
    if not lhs:
        raise FormulaError("no response before '~'", formula, 0)
    _split_top_level(lhs, "~", lpos, formula)  # checks the parentheses
    response = _parse_response(lhs, lpos, formula)

    rhs_text = formula[tilde + 1 :]
    terms = [_strip(p, o) for p, o in _split_top_level(rhs_text, "+", tilde + 1, formula)]
    if len(terms) > MAX_TERMS:
        raise FormulaError(f"the formula has {len(terms)} terms; a formula has at most {MAX_TERMS}")
    fixed, offsets, blocks = [], [], []
    for term, pos in terms:
        if not term:
            raise FormulaError("empty term (a '+' with nothing on one side)", formula, pos)
        if _outer_parens(term) and "|" in term:
            blocks.extend(_parse_block(term[1:-1], pos + 1, formula))
        elif "|" in term:
            raise FormulaError("a group term must be in parentheses: (expr | factor)", formula, pos + term.index("|"))
        elif (arg := _call_argument(term, "offset")) is not None:
            if not arg:
                raise FormulaError("offset() needs an expression", formula, pos)
            offsets.append(arg)
        else:
            fixed.append(term)
    return ModelSpec(
        formula=formula.strip(),
        response=response,
        fixed=" + ".join(fixed) if fixed else "1",
        offsets=tuple(offsets),
        blocks=tuple(blocks),
    )


def dot_positions(text: str) -> list[int]:
    """Offsets of each ``.`` that stands alone (lme4's "every other column") in ``text``: not part of
    a name (``np.log``, ``g.1``), a number (``.5``) or a backticked or quoted name.

    >>> dot_positions("x + . - z"), dot_positions("np.log(x) + g.1 + .5")
    ([4], [])
    """
    found, quote = [], None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "`'\"":
            quote = ch
        elif ch == "." and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_.")) and not (
                i + 1 < len(text) and (text[i + 1].isalnum() or text[i + 1] in "_.")):
            found.append(i)
    return found


def _parse_response(lhs: str, pos: int, formula: str) -> Response:
    pieces = _split_top_level(lhs, "|", pos, formula)
    if len(pieces) > 2:
        raise FormulaError("the response takes one '|', before its addition terms: y | weights(w) + trunc(lb = 0)",
                           formula, pieces[2][1] - 1)
    (lhs, pos), additions = _strip(*pieces[0]), ()
    if len(pieces) == 2:
        if not lhs:
            raise FormulaError("no response before '|'", formula, pos)
        additions = _parse_additions(*pieces[1], formula)
    arg = _call_argument(lhs, "cbind")
    if arg is None:
        return Response(lhs, additions=additions)
    parts = [_strip(p, o) for p, o in _split_top_level(arg, ",", pos + lhs.index("(") + 1, formula)]
    if len(parts) < 2 or not all(p for p, _ in parts):
        raise FormulaError("cbind() takes two columns, cbind(successes, failures), or one count column per category "
                           "of a multinomial response, cbind(y1, y2, y3)", formula, pos)
    if len(parts) > 2:  # a multinomial's counts
        return Response(lhs, additions=additions, counts=tuple(p for p, _ in parts))
    if any(a.term == "trials" for a in additions):
        raise FormulaError("cbind(successes, failures) already gives the trials; drop trials() or write "
                           "successes | trials(n)", formula, pos)
    return Response(parts[0][0], parts[1][0], additions)


def _parse_additions(text: str, pos: int, formula: str) -> tuple[Addition, ...]:
    """The addition terms after the response's ``|``: ``weights(w) + trunc(lb = 0)``."""
    additions: list[Addition] = []
    for term, tpos in (_strip(p, o) for p, o in _split_top_level(text, "+", pos, formula)):
        match = re.fullmatch(r"(\w+)\s*\(", term[: term.find("(") + 1]) if "(" in term else None
        name = match.group(1) if match else term
        known = ", ".join(f"{t}()" for t in ADDITION_TERMS)
        if name not in ADDITION_TERMS or _call_argument(term, name) is None:
            raise FormulaError(f"unknown addition term {term!r} on the response; the addition terms are {known}",
                               formula, tpos)
        if any(a.term == name for a in additions):
            raise FormulaError(f"the addition term {name}() is given twice", formula, tpos)
        additions.append(_parse_addition(name, _call_argument(term, name), tpos + term.index("(") + 1, formula))
    return tuple(additions)


def _parse_addition(name: str, text: str, pos: int, formula: str) -> Addition:
    """One addition term's arguments, positional (in brms's order) or named (``lb = 0``)."""
    roles = ADDITION_TERMS[name]
    given: dict[str, str] = {}
    pieces = _split_top_level(text, ",", pos, formula) if text.strip() else []
    for k, (arg, apos) in enumerate(_strip(p, o) for p, o in pieces):
        key, eq, value = arg.partition("=")
        if eq and not value.startswith("=") and re.fullmatch(r"\s*\w+\s*", key):
            key, value = key.strip(), value.strip()
        else:
            key, value = (roles[k] if k < len(roles) else None), arg
        if key not in roles:
            raise FormulaError(f"{name}() takes the arguments {', '.join(roles)}; not {arg!r}", formula, apos)
        if key in given or not value:
            raise FormulaError(f"{name}(): argument {key} is given twice or empty", formula, apos)
        given[key] = value
    if name == "trunc" and not given:
        raise FormulaError("trunc() needs a bound: trunc(lb = 0), trunc(ub = 10) or both", formula, pos)
    if name != "trunc" and roles[0] not in given:
        raise FormulaError(f"{name}() needs its first argument, {roles[0]}", formula, pos)
    if "sigma" in given:
        flag = given["sigma"].upper()
        if flag not in ("TRUE", "FALSE", "T", "F"):
            raise FormulaError(f"se(): sigma must be TRUE or FALSE, not {given['sigma']!r}", formula, pos)
        given["sigma"] = "TRUE" if flag.startswith("T") else "FALSE"
    for key in ("lb", "ub"):
        if key in given and not is_number(given[key]) and not _NAME.match(given[key]):
            raise FormulaError(f"trunc(): {key} must be a number or a column name, not {given[key]!r}", formula, pos)
    return Addition(name, tuple((k, given[k]) for k in roles if k in given))
