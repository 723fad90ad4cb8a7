"""brms's ``hypothesis()``: claims about parameters, checked on the posterior draws.

A claim compares two arithmetic expressions of printed parameter names (as in
``fit.summary()``'s index and the group effects' labels ``r_Subject[308,Days]``) and
numbers: ``"Days > 5"``, ``"Intercept + 3 * Days = 280"``, ``"sd(Intercept|Subject) > 20"``.
Per draw, ``lhs - rhs`` is computed; its mean is the ``Estimate``, its SD the
``Est.Error``, with the interval at the fit's ``prob``. A one-sided claim (``<``, ``>``) also
has ``Post.Prob``, the share of draws satisfying it, and ``Evid.Ratio = p / (1 - p)``, its
posterior odds; its interval is one-sided, as brms's. For a point claim (``=``) brms's
evidence ratio is the Savage-Dickey density ratio, which needs draws from the prior:
hierbayes leaves ``Post.Prob`` and ``Evid.Ratio`` empty (NaN) there.

The text is never evaluated: it is parsed (Python's ``ast``) and only parameter names,
numbers, ``+ - * /`` and parentheses are accepted. Names that are not identifiers
(``sd(Intercept|Subject)``, ``trt[T.b]``) are recognised as whole printed names, or may be
written in backticks.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> table = fit.hypothesis(["Days > 5", "sd(Intercept|Subject) > 20", "Intercept + 3 * Days = 280"])
>>> list(table.columns)
['Estimate', 'Est.Error', 'CI.Lower', 'CI.Upper', 'Evid.Ratio', 'Post.Prob', 'Star']
>>> float(table.loc["Days > 5", "Post.Prob"])
1.0
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from hierbayes.common.errors import HierbayesError, did_you_mean
from hierbayes.posterior.summaries import parameter_draws
from hierbayes.specification.parameters import group_effect_parameters

__all__ = ["Claim", "parse_claim", "hypothesis", "claim_draws", "claim_names", "SCOPES"]

_OPERATORS = re.compile(r"<=|>=|==|=|<|>")
_BACKTICKS = re.compile(r"`([^`]*)`")
_SIGN = {"<": "<", "<=": "<", ">": ">", ">=": ">", "=": "=", "==": "="}
_OPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}
_ALLOWED = "parameter names, numbers, + - * / and parentheses"


@dataclass(frozen=True)
class Claim:
    """A parsed claim: ``expression`` (``lhs - rhs``, parsed) compared by ``sign`` with zero."""

    text: str
    sign: str  # "<", ">" or "="
    expression: ast.Expression
    names: dict[str, str]  # placeholder or identifier in the expression -> printed name


def _labels(fit) -> dict[str, object]:
    params = [*fit.parameters, *group_effect_parameters(fit.model.design)]
    return {p.label: p for p in params}


def _unknown(name: str, labels) -> HierbayesError:
    close = did_you_mean(name, labels)
    hint = f"did you mean {close!r}?" if close else "the names are those of fit.summary()'s index and the group " \
                                                     "effects' labels (r_<factor>[<level>,<coefficient>])"
    return HierbayesError(f"hypothesis: {name!r} is not a parameter of this model; {hint}")


def _describe(node: ast.AST) -> str:
    text = ast.unparse(node) if not isinstance(node, ast.expr_context) else type(node).__name__
    kinds = {ast.Call: "a function call", ast.Attribute: "an attribute", ast.Subscript: "a subscript",
             ast.Compare: "a second comparison", ast.Pow: "a power (**)", ast.Lambda: "a lambda"}
    what = next((v for k, v in kinds.items() if isinstance(node, k)), type(node).__name__)
    return f"{what} ({text})" if not isinstance(node, ast.operator) else what


def parse_claim(text: str, labels: Sequence[str]) -> Claim:
    """Parse a claim ``lhs <op> rhs`` safely, its names checked against ``labels``.

    Raises
    ------
    HierbayesError
        Naming the problem: no or several comparison operators, an unknown name (with the
        closest printed name), or anything but names, numbers, ``+ - * /`` and parentheses.

    Examples
    --------
    >>> parse_claim("sd(Intercept | g) > 2 * x", ["x", "sd(Intercept|g)"]).names
    {'_p0_': 'sd(Intercept|g)', 'x': 'x'}
    """
    if not isinstance(text, str) or not text.strip():
        raise HierbayesError(f"hypothesis: a claim is a text such as 'x > 0', not {text!r}")
    names: dict[str, str] = {}

    def placeholder(label: str) -> str:
        key = next((k for k, v in names.items() if v == label), None) or f"_p{len(names)}_"
        names[key] = label
        return f" {key} "

    def quoted(match: re.Match) -> str:
        name = match.group(1).strip()
        if name not in labels:
            raise _unknown(name, labels)
        return placeholder(name)

    body = _BACKTICKS.sub(quoted, text)
    special = sorted((lbl for lbl in labels if not lbl.isidentifier()), key=len, reverse=True)
    for label in special:  # whole printed names; spaces allowed between their characters
        pattern = r"(?<![\w.])" + r"\s*".join(map(re.escape, label)) + r"(?![\w.])"
        body = re.sub(pattern, lambda m, lbl=label: placeholder(lbl), body)
    operators = _OPERATORS.findall(body)
    if len(operators) != 1:
        raise HierbayesError(f"hypothesis {text!r}: a claim compares two sides with one of =, <, > "
                             f"({'none' if not operators else len(operators)} found)")
    lhs, rhs = _OPERATORS.split(body)
    try:
        tree = ast.parse(f"({lhs.strip() or 'None'}) - ({rhs.strip() or 'None'})", mode="eval")
    except SyntaxError:
        raise HierbayesError(f"hypothesis {text!r} is not an expression of {_ALLOWED}") from None
    for node in ast.walk(tree.body):
        if isinstance(node, ast.Name):
            if node.id not in names:
                if node.id not in labels:
                    raise _unknown(node.id, labels)
                names[node.id] = node.id
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
                raise HierbayesError(f"hypothesis {text!r} may use only {_ALLOWED}; found {node.value!r}")
        elif not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Load, *_OPS)):
            written = re.sub(r"\s+", "", ast.unparse(node)) if isinstance(node, ast.expr) else ""
            if isinstance(node, (ast.Call, ast.Subscript)) and did_you_mean(written, labels):
                raise _unknown(written, labels)  # a misspelt printed name, such as sd(Intercept|h)
            raise HierbayesError(f"hypothesis {text!r} may use only {_ALLOWED}; found {_describe(node)}")
    return Claim(text, _SIGN[operators[0]], tree, names)


def _evaluate(node: ast.AST, values: dict[str, np.ndarray]):
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, values)
    if isinstance(node, ast.BinOp):
        return _OPS[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, values)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name):
        return values[node.id]
    return float(node.value)


def claim_draws(fit, claims: Sequence[str], names: dict[str, list[str]] | None = None
                ) -> tuple[list[Claim], np.ndarray]:
    """The parsed claims and the draws of their ``lhs - rhs``, (chain, draw, claim).

    ``names`` maps each name a claim may use to the printed parameters whose draws it stands for
    (summed: a level's coefficient is its fixed effect plus its group effect); every printed name
    stands for itself by default.
    """
    labels = _labels(fit)
    names = names if names is not None else {label: [label] for label in labels}
    parsed = [parse_claim(c, list(names)) for c in claims]
    post = fit.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    out = np.empty((*shape, len(parsed)))
    for k, claim in enumerate(parsed):
        keys = list(claim.names)
        values = {key: sum(parameter_draws(post, [labels[label]])[..., 0] for label in names[claim.names[key]])
                  for key in keys}
        out[..., k] = np.broadcast_to(_evaluate(claim.expression, values), shape)
    return parsed, out


SCOPES = ("standard", "ranef", "coef")


def claim_names(fit, class_: str = "b", group: str | None = None, scope: str = "standard"
                ) -> list[tuple[str | None, dict[str, list[str]]]]:
    """What the names of a claim stand for, per level of ``group`` (brms's ``class``, ``group``, ``scope``).

    Returns ``[(level, {name: printed parameters summed})]``; ``level`` is None for one claim
    about the whole model (``scope="standard"``).

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(
    ...     draws=100, tune=100, chains=2, seed=1, progressbar=False, warn=False)
    >>> claim_names(fit, "sd", "Subject")
    [(None, {'Intercept': ['sd(Intercept|Subject)'], 'Days': ['sd(Days|Subject)']})]
    >>> claim_names(fit, scope="coef", group="Subject")[0]
    ('308', {'Intercept': ['Intercept', 'r_Subject[308,Intercept]'], 'Days': ['Days', 'r_Subject[308,Days]']})
    """
    if scope not in SCOPES:
        raise HierbayesError(f"hypothesis: scope must be one of {list(SCOPES)}, not {scope!r}")
    if class_ not in ("b", "sd", "cor"):
        raise HierbayesError(f"hypothesis: class_ must be 'b' (population-level effects), 'sd' or 'cor' "
                             f"(of a grouping factor), not {class_!r}; other parameters are named in the claim "
                             f"itself, as in fit.summary()'s index")
    factors = list(fit.model.design.factors)
    needs_group = class_ != "b" or scope != "standard"
    if needs_group and group not in factors:
        why = f"class_={class_!r}" if class_ != "b" else f"scope={scope!r}"
        raise HierbayesError(f"hypothesis: {why} needs group=, one of the model's grouping factors {factors}, "
                             f"not {group!r}")
    if not needs_group:
        return [(None, {p.label: [p.label] for p in _labels(fit).values()})]
    if class_ != "b":
        return [(None, {"__".join(p.sel[next(iter(p.sel))].split(",")): [p.label] for p in fit.parameters
                        if p.cls == class_ and p.factor == group and p.part is None})]
    fixed = {p.sel["term"]: p.label for p in fit.parameters if p.var == "b" and p.part is None and "term" in p.sel}
    effects = [p for p in group_effect_parameters(fit.model.design) if p.factor == group and p.part is None]
    out: dict[str, dict[str, list[str]]] = {}
    for p in effects:
        level, coef = p.sel.values()
        base = [fixed[coef]] if scope == "coef" and coef in fixed else []
        out.setdefault(level, {})[coef] = [*base, p.label]
    if scope == "coef":  # brms's coef(): fixed effects with no group effect are the same for every level
        for names in out.values():
            names.update({coef: [label] for coef, label in fixed.items() if coef not in names})
    return list(out.items())


def hypothesis(fit, claims: str | Sequence[str], *, class_: str = "b", group: str | None = None,
               scope: str = "standard", prob: float | None = None, draws: bool = False):
    """Check claims about parameters on the posterior draws, as brms's ``hypothesis()``.

    Parameters
    ----------
    fit : Fit
    claims : str or list of str
        ``"lhs <op> rhs"`` with ``op`` one of ``=``, ``<``, ``>`` (``==``, ``<=``, ``>=`` are
        read as these); see the module docstring for the names.
    class_ : {"b", "sd", "cor"}
        brms's ``class``: with ``"sd"`` (or ``"cor"``) and ``group``, the names of the claim are
        the factor's coefficients (``"Intercept > 20"`` for ``sd(Intercept|Subject) > 20``; a
        correlation is ``Intercept__Days``, as brms).
    group : str, optional
        The grouping factor, for ``class_="sd"``/``"cor"`` and for ``scope="ranef"``/``"coef"``.
    scope : {"standard", "ranef", "coef"}
        brms's ``scope``: ``"ranef"`` checks the claim for every level of ``group`` with the names
        standing for that level's group effects, ``"coef"`` for that level's own coefficients
        (fixed plus group effect, brms's ``coef()``); the table gains a ``Group`` column.
    prob : float, optional
        Interval mass (the fit's ``prob`` by default): two-sided ``[alpha/2, 1 - alpha/2]``
        quantiles for ``=`` with ``alpha = 1 - prob``, one-sided for ``<`` (upper bound at
        ``1 - alpha``) and ``>`` (lower bound at ``alpha``), as brms.
    draws : bool
        Return the draws of ``lhs - rhs``, a DataArray ``(chain, draw, hypothesis)``.

    Returns
    -------
    DataFrame
        Indexed by the claims (with ``Group``, the level, for ``scope="ranef"``/``"coef"``): ``Estimate``, ``Est.Error``, ``CI.Lower``, ``CI.Upper``,
        ``Evid.Ratio``, ``Post.Prob`` (NaN for ``=``) and ``Star`` (``*`` when 0 is outside the interval).

    Raises
    ------
    HierbayesError
        For an unknown name (with the closest printed name) or anything that is not a name,
        a number, ``+ - * /`` or parentheses.

    Examples
    --------
    >>> import numpy as np
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy")
    >>> df["trt"] = np.where(df["Subject"].astype(int) % 2 == 0, "drug", "placebo")
    >>> fit = hb.Model("Reaction ~ Days + trt + (Days | Subject)", df).fit(
    ...     draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    >>> table = hypothesis(fit, "Days > 5")   # brms: the estimate is of Days - 5
    >>> list(table.index), bool(table.loc["Days > 5", "Post.Prob"] > 0.9)
    (['Days > 5'], True)
    """
    claims = [claims] if isinstance(claims, str) else list(claims)
    contexts = claim_names(fit, class_, group, scope)
    results = [(level, *claim_draws(fit, claims, names)) for level, names in contexts]
    post = fit.posterior
    if draws:
        values = np.concatenate([v for _, _, v in results], axis=-1)
        index = claims if len(results) == 1 and results[0][0] is None else \
            [f"{c} [{level}]" for level, _, _ in results for c in claims]
        return xr.DataArray(values, dims=("chain", "draw", "hypothesis"),
                            coords={"chain": post["chain"].values, "draw": post["draw"].values, "hypothesis": index})
    alpha = 1 - (prob or fit.prob)
    rows = []
    for level, parsed, values in results:
        flat = values.reshape(-1, len(parsed))
        for k, claim in enumerate(parsed):
            rows.append({**({} if level is None else {"Group": level}), **_claim_row(flat[:, k], claim.sign, alpha)})
    index = pd.Index([c for _ in results for c in claims], name="Hypothesis")
    return pd.DataFrame(rows, index=index)


def _claim_row(v: np.ndarray, sign: str, alpha: float) -> dict:
    if sign == "=":
        lo, hi = np.quantile(v, [alpha / 2, 1 - alpha / 2])
        p = ratio = np.nan
    else:
        lo, hi = (-np.inf, np.quantile(v, 1 - alpha)) if sign == "<" else (np.quantile(v, alpha), np.inf)
        p = float(np.mean(v < 0) if sign == "<" else np.mean(v > 0))
        ratio = np.inf if p == 1 else p / (1 - p)
    return {"Estimate": v.mean(), "Est.Error": v.std(ddof=1), "CI.Lower": lo, "CI.Upper": hi,
            "Evid.Ratio": ratio, "Post.Prob": p, "Star": "*" if lo > 0 or hi < 0 else ""}
