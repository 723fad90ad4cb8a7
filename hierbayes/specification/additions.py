"""brms's addition terms on the response: ``y | weights(w) + cens(c, y2) + trunc(lb = 0) + se(s)``.

The formula's parser (:mod:`hierbayes.specification.formula`) reads them into
:class:`~hierbayes.specification.formula.Addition` entries of the response; this module says
which families take which term (:func:`check_additions`), reads their values from the data
(:func:`addition_data`, called by :func:`~hierbayes.specification.design.make_design`) and
writes the likelihood they make (:func:`observed_variable`, through
:meth:`~hierbayes.specification.families.Family.observed_variable`, so the model and LOO's
pointwise log-likelihood are the one density). The semantics are brms's:

- ``trials(n)``: the binomial trials (as ``cbind(successes, n - successes)``);
- ``weights(w)``: each row's log-likelihood times ``w``;
- ``cens(c)``, ``cens(c, y2)``: per row ``"none"`` (the density), ``"left"`` (``log F(y)``),
  ``"right"`` (``log(1 - F(y))``) or ``"interval"`` (``log(F(y2) - F(y))``); also -1, 0, 1, 2
  and False/True as brms;
- ``trunc(lb = , ub = )``: the distribution truncated to ``[lb, ub]`` (numbers or columns);
- ``se(s)``: a known standard error per row (gaussian): ``Normal(mu, s)``, or with
  ``se(s, sigma = TRUE)`` ``Normal(mu, sqrt(sigma^2 + s^2))``.

Predictions draw from the truncated distribution (and with ``se``, its standard deviation);
censoring and weights do not change them.

Examples
--------
>>> import numpy as np, pandas as pd
>>> import hierbayes as hb
>>> df = pd.DataFrame({"y": [1.2, 0.7, 3.0, 2.2], "w": [1.0, 2.0, 1.0, 0.5]})
>>> model = hb.Model("y | weights(w) + trunc(lb = 0) ~ 1", df)
>>> sorted(model.design.additions)
['lb', 'weights']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import DataError, FormulaError
from hierbayes.specification.formula import Response, is_number

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")
random_variables = deferred_import("pytensor.tensor.random.basic")

__all__ = ["check_additions", "response_family", "addition_data", "observed_variable", "draw_additions", "drawn_arguments",
           "CENSORING", "DRAWN"]

CENSORING: dict[Any, int] = {"none": 0, "left": -1, "right": 1, "interval": 2, "false": 0, "true": 1,
                             0: 0, -1: -1, 1: 1, 2: 2}
"""brms's censoring codes: a row's value of the ``cens()`` column -> -1 (left), 0, 1 (right), 2 (interval)
(False and True, equal to 0 and 1, are uncensored and right-censored, as in brms)."""

DRAWN = ("lb", "ub", "se")
"""The addition data that change draws of the response (truncation, the known SD); weights and censoring do not."""


def check_additions(response: Response, family) -> None:
    """Refuse an addition term the ``family`` does not take (a :class:`~hierbayes.common.errors.FormulaError`
    naming the term and the family), before any data are read.

    >>> from hierbayes.specification.formula import parse
    >>> from hierbayes.specification.families import get_family
    >>> check_additions(parse("y | se(s) ~ 1").response, get_family("poisson"))
    Traceback (most recent call last):
    ...
    hierbayes.common.errors.FormulaError: se(s) is a known standard error of a gaussian response; the poisson family ...
    """
    for a in response.additions:
        term = str(a)
        if a.term == "trials" and not family.needs_trials:
            raise FormulaError(f"{term} gives the number of trials of a binomial response; the {family.name} family "
                               "has no trials")
        if a.term == "se" and family.name != "gaussian":
            raise FormulaError(f"{term} is a known standard error of a gaussian response; the {family.name} family "
                               "does not take it")
        if a.term != "trials" and family.nominal and family.needs_trials:
            raise FormulaError(f"{term}: the {family.name} family's counts take no addition term but trials()")
        if a.term in ("cens", "trunc") and (family.threshold_model or family.nominal):
            raise FormulaError(f"{term}: the {family.name} family's response cannot be censored or truncated")
        if a.term in ("weights", "cens", "trunc") and family.distribution is None:
            raise FormulaError(f"{term} needs the {family.name} family's distribution, which it was registered "
                               "without: register it with distribution=...")


def _no_priors(summary) -> dict:
    return {}


def response_family(response: Response, family):
    """``family``, or without its ``sigma`` when ``se(s)`` gives each row's standard deviation
    (brms's ``se(s, sigma = FALSE)``, the default): the model then has no residual SD.

    >>> from hierbayes.specification.formula import parse
    >>> from hierbayes.specification.families import get_family
    >>> response_family(parse("y | se(s) ~ 1").response, get_family("gaussian")).parameters
    ()
    """
    se = response.addition("se")
    if se is None or se.get("sigma") == "TRUE" or family.name != "gaussian":
        return family
    return replace(family, parameters=(), default_priors=_no_priors, variance=None, latent_variance=None,
                   random=None)


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    return f"{len(rows)} rows (first at rows {rows[:5].tolist()})"


def _censoring(values: pd.Series | np.ndarray, column: str) -> np.ndarray:
    """brms's censoring words or codes -> -1, 0, 1, 2, refusing anything else (naming the rows)."""
    values = pd.Series(values).reset_index(drop=True)
    words = values.map(lambda v: v.strip().lower() if isinstance(v, str) else v)
    codes = words.map(lambda v: CENSORING.get(v, np.nan) if isinstance(v, (str, bool, np.bool_, int, float,
                                                                           np.integer, np.floating)) else np.nan)
    bad = codes.isna().to_numpy()
    if bad.any():
        raise DataError(f"cens({column}): {values[bad].iloc[0]!r} is not a censoring code on {_rows(bad)}; a row is "
                        "'none', 'left', 'right' or 'interval' (or 0, -1, 1, 2 as brms)")
    return codes.to_numpy(dtype=float)


def addition_data(response: Response, data: pd.DataFrame, y: np.ndarray,
                  column: Callable[[str, str], np.ndarray]) -> dict[str, np.ndarray]:
    """The addition terms' values on the rows, by argument (``weights``, ``cens``, ``y2``, ``lb``, ``ub``,
    ``se``), checked; ``trials()`` is read by the design as the binomial trials.

    Parameters
    ----------
    response : Response
    data : pandas.DataFrame
        The rows in use (missing values dropped).
    y : ndarray
        The response.
    column : callable
        ``(expression, what) -> values``: a numeric expression of the data.

    Raises
    ------
    DataError
        Naming the term, the value and the rows: negative weights, a censoring code outside brms's,
        an interval without an upper bound above ``y``, rows outside the truncation bounds, standard
        errors that are not positive.
    """
    out: dict[str, np.ndarray] = {}
    n = len(y)

    def values(expr: str, what: str) -> np.ndarray:
        return np.full(n, float(expr)) if is_number(expr) else np.asarray(column(expr, what), dtype=float)

    if (w := response.addition("weights")) is not None:
        out["weights"] = values(w.get("weights"), f"weights({w.get('weights')})")
        if (bad := ~(out["weights"] >= 0)).any():
            raise DataError(f"weights({w.get('weights')}) must be 0 or more; found {out['weights'][bad][0]:g} on "
                            f"{_rows(bad)}")
    if (c := response.addition("cens")) is not None:
        expr = c.get("cens")
        raw = data[expr] if expr in data.columns else column(expr, f"cens({expr})")
        out["cens"] = _censoring(raw, expr)
        interval = out["cens"] == 2
        if interval.any() and c.get("y2") is None:
            raise DataError(f"cens({expr}) has 'interval' on {_rows(interval)}; their upper bound comes from "
                            f"cens({expr}, y2)")
        if c.get("y2") is not None:
            upper = values(c.get("y2"), f"cens({expr}, {c.get('y2')})")
            if (bad := interval & ~(upper > y)).any():
                raise DataError(f"cens({expr}, {c.get('y2')}): an interval's upper bound must be above the response; "
                                f"it is not on {_rows(bad)}")
            out["y2"] = np.where(interval, upper, y)  # unused outside the intervals
    if (t := response.addition("trunc")) is not None:
        for key in ("lb", "ub"):
            if t.get(key) is not None:
                out[key] = values(t.get(key), f"trunc({key} = {t.get(key)})")
        bad = (y < out.get("lb", -np.inf)) | (y > out.get("ub", np.inf))
        if bad.any():
            raise DataError(f"{t}: the response lies outside the truncation bounds on {_rows(bad)}, such as "
                            f"{y[bad][0]:g}; a truncated response is never outside its bounds")
        if (empty := ~(out.get("lb", -np.inf) < out.get("ub", np.inf))).any():
            raise DataError(f"{t}: the lower bound is not below the upper bound on {_rows(empty)}")
    if (s := response.addition("se")) is not None:
        out["se"] = values(s.get("se"), f"se({s.get('se')})")
        with_sigma = s.get("sigma") == "TRUE"
        if (bad := ~(out["se"] >= 0) if with_sigma else ~(out["se"] > 0)).any():
            raise DataError(f"se({s.get('se')}) must be {'0 or more' if with_sigma else 'above 0'}; found "
                            f"{out['se'][bad][0]:g} on {_rows(bad)}")
    return out


def draw_additions(additions: Mapping[str, Any]) -> dict[str, Any]:
    """The addition data draws of the response depend on (:data:`DRAWN`)."""
    return {k: v for k, v in additions.items() if k in DRAWN}


def drawn_arguments(response: Response) -> dict[str, str]:
    """The texts of the arguments that draws of the response read (:data:`DRAWN`), by argument.

    >>> from hierbayes.specification.formula import parse
    >>> drawn_arguments(parse("y | weights(w) + trunc(lb = 0, ub = top) ~ 1").response)
    {'lb': '0', 'ub': 'top'}
    """
    return {k: v for a in response.additions for k, v in a.arguments if k in DRAWN}


# --- the likelihood -------------------------------------------------------------------------------

def _distribution(family, mean, params: Mapping, trials, additions: Mapping):
    """The response's distribution given the addition data: ``Normal(mean, se)`` (or with ``sigma``,
    ``sqrt(sigma^2 + se^2)``) under ``se()``, else the family's ``distribution``; truncated under ``trunc()``."""
    if "se" in additions:
        sd = additions["se"] if "sigma" not in params else pt.sqrt(params["sigma"] ** 2 + additions["se"] ** 2)
        base = pm.Normal.dist(mu=mean, sigma=sd)
    else:
        base = family.distribution(mean, params, trials)
    if "lb" in additions or "ub" in additions:
        base = pm.Truncated.dist(base, lower=additions.get("lb"), upper=additions.get("ub"))
    return base


def poisson_log_survival(lb, mu):
    """``log P(Y >= lb)`` for ``Y ~ Poisson(mu)``, finite with a finite gradient wherever it is representable.

    ``P(Y >= lb)`` is the regularised lower incomplete gamma function ``P(lb, mu)`` (``pt.gammainc``, whose
    gradient in ``mu`` is the Gamma density). Its log is taken where it is below 1/2, else ``log1p(-Q(lb, mu))``
    of the upper function, so neither a tail near 0 (``lb = 11``, ``mu = 0.14``: 9e-18, which PyMC's
    ``log(1 - F(lb - 1))`` rounds to ``log 0``) nor one near 1 (``lb = 1``, ``mu = 800``: ``F(0) = e^-800``
    underflows, a NaN gradient) loses its precision. ``lb <= 0`` truncates nothing: 0.

    >>> round(float(poisson_log_survival(11.0, 0.14).eval()), 4)  # log(8.9e-18)
    -39.2578
    """
    lb, mu = pt.as_tensor(lb, dtype="float64"), pt.as_tensor(mu)
    k = pt.maximum(lb, 1.0)  # P(Y >= lb) = 1 for lb <= 0, where the incomplete gamma is not defined
    p, q = pt.gammainc(k, mu), pt.gammaincc(k, mu)
    small = p < 0.5
    # each branch's input kept finite where the other is taken, so the unused branch's gradient is 0, not NaN
    tail = pt.switch(small, pt.log(pt.switch(small, p, 1.0)), pt.log1p(-pt.switch(small, 0.0, q)))
    return pt.switch(lb <= 0, 0.0, tail)


def _lower_truncated_poisson_rate(family, mean, params: Mapping, trials, additions: Mapping):
    """The rate of a Poisson truncated below only (no ``ub``, no ``se``), whose normaliser
    :func:`poisson_log_survival` writes stably; else None (PyMC's :class:`pm.Truncated` is exact there)."""
    if "lb" not in additions or "ub" in additions or "se" in additions:
        return None
    base = family.distribution(mean, params, trials)
    return base.owner.inputs[-1] if isinstance(base.owner.op, random_variables.PoissonRV) else None


def _log_density(family, value, mean, params: Mapping, trials, additions: Mapping):
    """Each row's log density under the addition data: a Poisson truncated below with the stable normaliser
    :func:`poisson_log_survival`, every other distribution by PyMC (:func:`_distribution`)."""
    rate = _lower_truncated_poisson_rate(family, mean, params, trials, additions)
    if rate is None:
        return pm.logp(_distribution(family, mean, params, trials, additions), value)
    lb = additions["lb"]
    logp = pm.logp(pm.Poisson.dist(mu=rate), value) - poisson_log_survival(lb, rate)
    return pt.switch(pt.lt(value, lb), -np.inf, logp)


_CENSORED_DENSITY = {
    0: None,  # the density itself: _log_density
    -1: lambda d, y, y2: pm.logcdf(d, y),
    1: lambda d, y, y2: pm.logccdf(d, y),
    2: lambda d, y, y2: pm.math.logdiffexp(pm.logcdf(d, y2), pm.logcdf(d, y)),
}


def _pointwise_logp(family, value, mean, params: Mapping, trials, additions: Mapping):
    """Each row's log-likelihood: censored rows by their CDF (each kind of row on its own rows, so no
    row computes, or differentiates, another kind's density), times the weights."""
    mean = pt.broadcast_to(mean, value.shape)
    if "cens" not in additions:
        logp = _log_density(family, value, mean, params, trials, additions)
    else:
        logp = pt.zeros(value.shape, dtype="float64")  # a count's value is whole, its log density is not
        for code, density in _CENSORED_DENSITY.items():
            if code == 2 and "y2" not in additions:
                continue  # no interval without its upper bound (addition_data)
            rows = pt.nonzero(pt.eq(additions["cens"], code))[0]
            picked = {k: v[rows] for k, v in additions.items()}
            args = (mean[..., rows], params, None if trials is None else trials[rows], picked)
            density_ = (_log_density(family, value[..., rows], *args) if density is None else
                        density(_distribution(family, *args), value[..., rows], picked.get("y2")))
            logp = pt.set_subtensor(logp[..., rows], density_)
    return logp * additions["weights"] if "weights" in additions else logp


def observed_variable(family, name: str, mean, params: Mapping, observed, trials, additions: Mapping):
    """The observed variable of a response with addition terms: draws from the (truncated) distribution,
    the log density censored and weighted (:mod:`hierbayes.specification.additions`).

    Called by :meth:`~hierbayes.specification.families.Family.observed_variable` inside a ``pm.Model``
    context; ``additions`` maps argument names (``weights``, ``cens``, ``y2``, ``lb``, ``ub``, ``se``) to
    tensors with one value per row.
    """
    keys, roles = tuple(params), tuple(additions)
    inputs = [pt.broadcast_to(mean, observed.shape),  # one mean per row, as the draws have
              *(pt.as_tensor(params[k]) for k in keys), *([] if trials is None else [trials]),
              *(additions[r] for r in roles)]

    def unpack(args):
        values = dict(zip(keys, args[1:1 + len(keys)]))
        rest = args[1 + len(keys):]
        n, rest = (None, rest) if trials is None else (rest[0], rest[1:])
        return args[0], values, n, dict(zip(roles, rest))

    def dist(*args):  # the last argument is the size, which the shapes of the others fix
        return _distribution(family, *unpack(args[:-1]))

    def logp(value, *args):
        return _pointwise_logp(family, value, *unpack(args))

    return pm.CustomDist(name, *inputs, dist=dist, logp=logp, observed=observed, shape=observed.shape)
