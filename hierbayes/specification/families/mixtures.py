"""Zero-inflated, hurdle and beta-binomial families: responses with too many zeros or too much spread.

Each is PyMC's own distribution (``pm.ZeroInflatedPoisson``, ``pm.HurdleGamma``,
``pm.BetaBinomial``, ...), registered as the family's ``distribution``; the hurdle counts draw
from PyMC's but take their log density in closed form (:func:`hurdle_count_logp`: PyMC's has a
NaN gradient at large means). The parameters take
brms's names: ``zi`` is the probability of a structural zero (PyMC's ``psi`` is the
probability of the other component, ``psi = 1 - zi``), ``hu`` the probability of a zero
under a hurdle (PyMC's ``psi = 1 - hu``), ``phi`` the beta-binomial precision. The
negative binomial's dispersion is ``alpha``, as in the ``negative_binomial`` family (brms
calls it ``shape``).

``mu`` (the inverse link of the linear predictor) is the mean of the count or positive part:
of the Poisson or negative binomial before zeros are added or removed, of the gamma, and the
median ``exp(meanlog)`` of the lognormal. The expected response, brms's ``posterior_epred``,
is ``expected_value``: ``(1 - zi) mu`` for a zero-inflated count, ``(1 - hu) mu / (1 - P(0))``
for a hurdle count. The no- and complete-pooling fits of ``fit.pooling()`` use the count part's
variance function (``mu``; ``mu (1 - mu)`` per trial; ``mu^2`` for the positive
continuous parts): they estimate the link of the response's mean with ``zi`` or ``hu`` left out.

Examples
--------
>>> import numpy as np
>>> from hierbayes.specification.families import get_family
>>> zip_ = get_family("zero_inflated_poisson")
>>> zip_.expected_response(np.log(np.array([4.0])), {"zi": 0.25}).tolist()  # (1 - zi) mu
[3.0]
>>> get_family("hurdle_negbinomial").name, get_family("betabinomial").needs_trials
('hurdle_negative_binomial', True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.specification import priors as P
from hierbayes.specification.families.core import (
    Family,
    ResponseSummary,
    check_binomial,
    check_counts,
    refuse_rows,
    register_family,
)

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")
stats = deferred_import("scipy.stats")

__all__ = ["Parts", "hurdle_count_logp", "mixture_mean", "mixture_variance", "check_nonnegative", "inflate", "positive_draws", "beta_draws"]

Parts = Callable[[np.ndarray, dict], list]
"""``(mu, params) -> [(weight, E[y | part], E[y^2 | part]), ...]``: a response's parts other than exact 0s."""


def mixture_mean(parts: Parts) -> Callable[[np.ndarray, dict], np.ndarray]:
    """The expected response of a mixture whose non-zero parts are ``parts``: ``sum weight * E[y | part]``.

    >>> ziP = lambda mu, p: [(1 - p["zi"], mu, mu + mu**2)]  # zero-inflated Poisson
    >>> float(mixture_mean(ziP)(np.array(4.0), {"zi": 0.25}))
    3.0
    """
    return lambda mu, params: sum(w * m1 for w, m1, _ in parts(mu, params))


def mixture_variance(parts: Parts) -> Callable[[np.ndarray, dict], np.ndarray]:
    """The variance of a mixture whose non-zero parts are ``parts``: ``sum weight * E[y^2 | part] - mean^2``.

    >>> ziP = lambda mu, p: [(1 - p["zi"], mu, mu + mu**2)]
    >>> float(mixture_variance(ziP)(np.array(4.0), {"zi": 0.25}))  # (1 - zi) mu (1 + zi mu)
    6.0
    """
    mean = mixture_mean(parts)
    return lambda mu, params: sum(w * m2 for w, _, m2 in parts(mu, params)) - mean(mu, params) ** 2


def check_nonnegative(y, trials, column):
    """Refuse responses below zero (hurdle gamma, hurdle lognormal), naming the value and rows."""
    refuse_rows(y, ~(y >= 0), column, "be 0 or above for this family")


def inflate(rng: np.random.Generator, probability, draws: np.ndarray, value: float = 0.0) -> np.ndarray:
    """``draws`` with each replaced by ``value`` with ``probability`` (a structural zero, a hurdle's zero)."""
    draws = np.asarray(draws, dtype=float)
    return np.where(rng.random(draws.shape) < probability, value, draws)


def positive_draws(rng: np.random.Generator, count) -> np.ndarray:
    """Draws of a count distribution (a frozen ``scipy.stats`` one) given that it is above 0, by its inverse CDF."""
    zero = count.cdf(0)
    return np.maximum(count.ppf(rng.uniform(zero, 1.0)), 1.0)


def beta_draws(rng: np.random.Generator, mu, phi, size=None) -> np.ndarray:
    """Draws of ``Beta(mu phi, (1 - mu) phi)``; a shape that underflowed to 0 (a prior draw of a tiny
    ``phi``) is taken as the smallest positive number, the limit of a point mass at that end."""
    tiny = np.finfo(float).tiny
    return rng.beta(np.maximum(mu * phi, tiny), np.maximum((1 - mu) * phi, tiny), size=size)


def _nb_zero(mu, alpha):
    """P(0) of a negative binomial with mean ``mu`` and dispersion ``alpha``: ``(alpha / (alpha + mu))^alpha``."""
    return np.exp(alpha * (np.log(alpha) - np.log(alpha + mu)))


def _nb(mu, alpha):
    return stats.nbinom(alpha, alpha / (alpha + mu))


def hurdle_count_logp(count: Callable[..., object], log_zero: Callable[..., object]) -> Callable[..., object]:
    """The log density of a hurdle count in closed form, for ``count(mu, *rest)``, an unnamed PyMC count
    distribution, and ``log_zero(mu, *rest)``, its ``log p(0)``: ``log hu`` at 0, else
    ``log(1 - hu) + log p(y) - log(1 - p(0))``.

    PyMC's hurdle divides by the count's ``P(y > 0)`` through its log CDF, ``log(gammaincc(1, mu))``
    for the Poisson, whose gradient is NaN once ``exp(-mu)`` underflows (``mu`` above about 745):
    NUTS then diverges on every step of a model that meets such a mean, even in warm-up. Here
    ``log(1 - p(0))`` is ``log1mexp(log_zero)`` (``-mu`` for the Poisson, ``-alpha log1p(mu / alpha)``
    for the negative binomial), finite with an accurate gradient for every positive ``mu``.

    >>> import numpy as np, pytensor.tensor as pt
    >>> logp = hurdle_count_logp(lambda mu: pm.Poisson.dist(mu=mu), lambda mu: -mu)
    >>> y, mu = pt.as_tensor(np.array([0.0, 3.0])), pt.as_tensor(np.array([2.0, 2000.0]))
    >>> logp(y, mu, 0.25).eval().round(4).tolist()  # log .25; log .75 + 3 log 2000 - 2000 - log 3!
    [-1.3863, -1979.2767]
    """
    def logp(value, mu, hu, *rest):
        dist = count(mu, *rest)
        positive = pt.maximum(value, 1)  # the branch not taken is still differentiated: keep it finite
        log_positive = pm.logp(dist, positive) - pt.log1mexp(log_zero(mu, *rest))
        return pt.switch(pt.eq(value, 0), pt.log(hu), pt.log1p(-hu) + log_positive)

    return logp


def _hurdle_count(hurdle: Callable[..., object], count: Callable[..., object],
                  log_zero: Callable[..., object]) -> Callable[..., object]:
    """``(mu, params, trials) -> distribution`` of a hurdle count family: PyMC's ``hurdle`` for its draws,
    :func:`hurdle_count_logp` of ``count`` and ``log_zero`` for its log density. ``hurdle`` and ``count`` take
    ``(mu, hu, *rest, size)`` and ``(mu, *rest)``, ``rest`` the count's own parameters (``alpha``)."""
    def distribution(mu, p, n):
        rest = [p[name] for name in ("alpha",) if name in p]
        return pm.CustomDist.dist(mu, p["hu"], *rest, dist=hurdle,
                                  logp=hurdle_count_logp(count, log_zero), class_name="HurdleCount")

    return distribution


# --- the parts of each response (weight, first and second moments) --------------------------------

def _zip_parts(mu, p):
    return [(1 - p["zi"], mu, mu + mu**2)]


def _zinb_parts(mu, p):
    return [(1 - p["zi"], mu, mu + mu**2 / p["alpha"] + mu**2)]


def _hurdle_poisson_parts(mu, p):
    positive = -np.expm1(-mu)
    return [(1 - p["hu"], mu / positive, (mu + mu**2) / positive)]


def _hurdle_nb_parts(mu, p):
    positive = 1 - _nb_zero(mu, p["alpha"])
    return [(1 - p["hu"], mu / positive, (mu + mu**2 / p["alpha"] + mu**2) / positive)]


def _hurdle_gamma_parts(mu, p):
    return [(1 - p["hu"], mu, mu**2 * (1 + 1 / p["shape"]))]


def _hurdle_lognormal_parts(mu, p):
    return [(1 - p["hu"], mu * np.exp(p["sigma"] ** 2 / 2), mu**2 * np.exp(2 * p["sigma"] ** 2))]


def _zero_inflated_mean(mu, p):
    """``(1 - zi) mu``: the zero-inflated binomial's expected proportion of successes."""
    return (1 - p["zi"]) * mu


# --- default priors (brms's where ours do not differ) ----------------------------------------------

def _probability_prior(name: str) -> Callable[[ResponseSummary], dict[str, P.Prior]]:
    return lambda r: {name: P.Beta(1.0, 1.0)}


def _with_alpha(name: str) -> Callable[[ResponseSummary], dict[str, P.Prior]]:
    return lambda r: {name: P.Beta(1.0, 1.0), "alpha": P.Exponential(0.1)}


# --- the families ---------------------------------------------------------------------------------

COUNT_LINKS = ("log", "identity")
PROBABILITY_LINKS = ("logit", "probit")
POSITIVE_LINKS = ("log", "identity")


def _poisson_variance(mu):
    """V(mu) = mu: the pooling fits' variance function of the count families (their count part's)."""
    return mu


register_family(Family(
    name="zero_inflated_poisson", link="log", links=COUNT_LINKS,
    parameters=(("zi", "unit"),),
    default_priors=_probability_prior("zi"),
    likelihood=None,
    distribution=lambda mu, p, n: pm.ZeroInflatedPoisson.dist(psi=1 - p["zi"], mu=mu),
    check_response=check_counts,
    expected_value=mixture_mean(_zip_parts),
    variance=mixture_variance(_zip_parts),
    quasi_variance=_poisson_variance,
    random=lambda rng, mu, p, n: inflate(rng, p["zi"], rng.poisson(mu)),
))
register_family(Family(
    name="zero_inflated_negative_binomial", link="log", links=COUNT_LINKS,
    parameters=(("zi", "unit"), ("alpha", "positive")),
    default_priors=_with_alpha("zi"),
    likelihood=None,
    distribution=lambda mu, p, n: pm.ZeroInflatedNegativeBinomial.dist(psi=1 - p["zi"], mu=mu, alpha=p["alpha"]),
    check_response=check_counts,
    expected_value=mixture_mean(_zinb_parts),
    variance=mixture_variance(_zinb_parts),
    quasi_variance=_poisson_variance,
    random=lambda rng, mu, p, n: inflate(rng, p["zi"], rng.negative_binomial(p["alpha"], p["alpha"] / (p["alpha"] + mu))),
), aliases=("zero_inflated_negbinomial", "zero_inflated_negativebinomial"))
register_family(Family(
    name="zero_inflated_binomial", link="logit", links=PROBABILITY_LINKS,
    parameters=(("zi", "unit"),),
    default_priors=_probability_prior("zi"),
    likelihood=None,
    distribution=lambda mu, p, n: pm.ZeroInflatedBinomial.dist(psi=1 - p["zi"], n=n, p=mu),
    check_response=check_binomial,
    expected_value=_zero_inflated_mean,
    quasi_variance=lambda mu: mu * (1 - mu),
    random=lambda rng, mu, p, n: inflate(rng, p["zi"], rng.binomial(np.asarray(n).astype(np.int64), mu)),
    needs_trials=True,
))
register_family(Family(
    name="beta_binomial", link="logit", links=PROBABILITY_LINKS,
    parameters=(("phi", "positive"),),
    default_priors=lambda r: {"phi": P.Gamma(0.01, 0.01)},
    likelihood=None,
    distribution=lambda mu, p, n: pm.BetaBinomial.dist(alpha=mu * p["phi"], beta=(1 - mu) * p["phi"], n=n),
    check_response=check_binomial,
    quasi_variance=lambda mu: mu * (1 - mu),
    random=lambda rng, mu, p, n: rng.binomial(np.asarray(n).astype(np.int64), beta_draws(rng, mu, p["phi"])),
    needs_trials=True,
), aliases=("betabinomial",))
register_family(Family(
    name="hurdle_poisson", link="log", links=COUNT_LINKS,
    parameters=(("hu", "unit"),),
    default_priors=_probability_prior("hu"),
    likelihood=None,
    distribution=_hurdle_count(lambda mu, hu, size: pm.HurdlePoisson.dist(psi=1 - hu, mu=mu, size=size),
                               lambda mu: pm.Poisson.dist(mu=mu), lambda mu: -mu),
    check_response=check_counts,
    expected_value=mixture_mean(_hurdle_poisson_parts),
    variance=mixture_variance(_hurdle_poisson_parts),
    quasi_variance=_poisson_variance,
    random=lambda rng, mu, p, n: inflate(rng, p["hu"], positive_draws(rng, stats.poisson(mu))),
))
register_family(Family(
    name="hurdle_negative_binomial", link="log", links=COUNT_LINKS,
    parameters=(("hu", "unit"), ("alpha", "positive")),
    default_priors=_with_alpha("hu"),
    likelihood=None,
    distribution=_hurdle_count(
        lambda mu, hu, alpha, size: pm.HurdleNegativeBinomial.dist(psi=1 - hu, mu=mu, alpha=alpha, size=size),
        lambda mu, alpha: pm.NegativeBinomial.dist(mu=mu, alpha=alpha),
        lambda mu, alpha: -alpha * pt.log1p(mu / alpha)),
    check_response=check_counts,
    expected_value=mixture_mean(_hurdle_nb_parts),
    variance=mixture_variance(_hurdle_nb_parts),
    quasi_variance=_poisson_variance,
    random=lambda rng, mu, p, n: inflate(rng, p["hu"], positive_draws(rng, _nb(mu, p["alpha"]))),
), aliases=("hurdle_negbinomial", "hurdle_negativebinomial"))
register_family(Family(
    name="hurdle_gamma", link="log", links=POSITIVE_LINKS,
    parameters=(("hu", "unit"), ("shape", "positive")),
    default_priors=lambda r: {"hu": P.Beta(1.0, 1.0), "shape": P.Gamma(0.01, 0.01)},
    likelihood=None,
    distribution=lambda mu, p, n: pm.HurdleGamma.dist(psi=1 - p["hu"], alpha=p["shape"], beta=p["shape"] / mu),
    check_response=check_nonnegative,
    expected_value=mixture_mean(_hurdle_gamma_parts),
    variance=mixture_variance(_hurdle_gamma_parts),
    quasi_variance=np.square,
    random=lambda rng, mu, p, n: inflate(rng, p["hu"], rng.gamma(p["shape"], mu / p["shape"])),
))
register_family(Family(
    name="hurdle_lognormal", link="log", links=POSITIVE_LINKS,
    parameters=(("hu", "unit"), ("sigma", "positive")),
    default_priors=lambda r: {"hu": P.Beta(1.0, 1.0), "sigma": P.HalfStudentT(3.0, 2.5)},
    likelihood=None,
    distribution=lambda mu, p, n: pm.HurdleLogNormal.dist(psi=1 - p["hu"], mu=pt.log(mu), sigma=p["sigma"]),
    check_response=check_nonnegative,
    expected_value=mixture_mean(_hurdle_lognormal_parts),
    variance=mixture_variance(_hurdle_lognormal_parts),
    quasi_variance=np.square,
    random=lambda rng, mu, p, n: inflate(rng, p["hu"], rng.lognormal(np.log(mu), p["sigma"])),
))
