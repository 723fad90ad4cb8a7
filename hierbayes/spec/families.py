"""The family registry: likelihood, link, parameters and default priors, as data.

Each :class:`Family` says everything the rest of the package needs to know about a
response distribution, in one place: the PyMC likelihood on the linear predictor,
the same log density and random draws in NumPy (for LOO, posterior predictive draws
and predictions without recompiling), which responses it accepts, its own parameters
with their default priors, and its residual variance on the latent scale (for the
ICC). Add a family with :func:`register_family`.

Examples
--------
>>> get_family("poisson").link
'log'
>>> get_family("bernoulli", link="probit").link
'probit'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hierbayes.deferred import deferred_import
from hierbayes.errors import DataError, HierbayesError
from hierbayes.spec import priors as P

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")
special = deferred_import("scipy.special")
stats = deferred_import("scipy.stats")

__all__ = ["Family", "Link", "FAMILIES", "LINKS", "get_family", "register_family"]


@dataclass(frozen=True)
class Link:
    """A link function g: ``eta = g(mean)``; ``inverse`` maps eta to the mean."""

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]
    inverse_tensor: Callable[[Any], Any]


def _probit_inverse_tensor(eta):
    return 0.5 * pt.erfc(-eta / np.sqrt(2.0))


LINKS: dict[str, Link] = {
    "identity": Link("identity", lambda m: m, lambda e: e, lambda e: e),
    "log": Link("log", np.log, np.exp, lambda e: pt.exp(e)),
    "logit": Link("logit", lambda m: special.logit(m), lambda e: special.expit(e), lambda e: pt.sigmoid(e)),
    "probit": Link("probit", lambda m: stats.norm.ppf(m), lambda e: stats.norm.cdf(e), _probit_inverse_tensor),
}


@dataclass(frozen=True)
class ResponseSummary:
    """What the default priors are scaled by: the response's centre and spread."""

    location: float  # link(mean of y), the centre of the intercept prior
    scale: float  # sd(y) on the identity link, 1 on the others


@dataclass(frozen=True)
class Family:
    """A response distribution and everything that depends on it.

    Attributes
    ----------
    name : str
        As users write it: ``"gaussian"``, ``"poisson"``, ...
    link : str
        Key of :data:`LINKS`; ``links`` lists the ones allowed.
    parameters : tuple of (name, support)
        The family's own parameters (``sigma``, ``nu``, ``alpha``), by printed name.
    default_priors : callable
        ``ResponseSummary -> {parameter name: Prior}``.
    likelihood : callable
        ``(name, eta, mean, params, observed, trials, dims) -> PyMC variable``.
    log_density : callable
        ``(y, mean, params, trials) -> array``: pointwise log likelihood in NumPy.
    random : callable
        ``(rng, mean, params, trials) -> array``: draws of the response.
    check_response : callable
        ``(y, trials, column) -> None``; raises :class:`DataError` outside the support.
    latent_variance : callable
        ``(mean_at_intercept, params) -> array``: distribution-specific variance on the
        link scale (Nakagawa, Johnson & Schielzeth 2017), used by the ICC.
    response_variance : callable
        ``(mean, params, trials) -> array``: variance of the response given its mean (of the
        count of successes for binomial), used by the Bayesian R-squared.
    """

    name: str
    link: str
    links: tuple[str, ...]
    parameters: tuple[tuple[str, str], ...]
    default_priors: Callable[[ResponseSummary], dict[str, P.Prior]]
    likelihood: Callable[..., Any]
    log_density: Callable[..., np.ndarray]
    random: Callable[..., np.ndarray]
    check_response: Callable[[np.ndarray, np.ndarray | None, str], None]
    latent_variance: Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray]
    response_variance: Callable[..., np.ndarray]
    needs_trials: bool = False
    link_likelihoods: tuple[tuple[str, Callable[..., Any]], ...] = ()

    @property
    def link_function(self) -> Link:
        return LINKS[self.link]

    @property
    def likelihood_on_link(self) -> Callable[..., Any]:
        """``likelihood``, or the same density written on the linear predictor for this link.

        ``link_likelihoods`` pairs a link with a likelihood of the same signature that works from
        ``eta`` directly (cheaper gradients); the others use ``likelihood`` with the mean.

        >>> get_family("bernoulli").likelihood_on_link.__name__, get_family("bernoulli", link="probit").likelihood_on_link.__name__
        ('_bernoulli_logit_like', '_bernoulli_like')
        """
        return dict(self.link_likelihoods).get(self.link, self.likelihood)

    def summarise_response(self, y: np.ndarray, trials: np.ndarray | None) -> ResponseSummary:
        """Centre and scale of the response used to scale the default priors."""
        mean = float(np.mean(y / trials)) if trials is not None else float(np.mean(y))
        if self.link == "identity":
            sd = float(np.std(y, ddof=1)) if y.size > 1 else 1.0
            return ResponseSummary(mean, sd if sd > 0 else 1.0)
        eps = 1e-3
        if self.link in ("logit", "probit"):
            mean = min(max(mean, eps), 1 - eps)
        else:
            mean = max(mean, eps)
        return ResponseSummary(float(LINKS[self.link].forward(mean)), 1.0)


# --- response checks -------------------------------------------------------------


def _check_real(y, trials, column):
    pass


def _check_counts(y, trials, column):
    bad = (y < 0) | (y != np.round(y))
    if bad.any():
        value = y[bad][0]
        raise DataError(
            f"response {column!r} must be non-negative whole counts for this family; "
            f"found {value:g} ({int(bad.sum())} such rows)"
        )


def _check_binary(y, trials, column):
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise DataError(
            f"response {column!r} must be 0 or 1 for the bernoulli family; found {y[bad][0]:g} "
            f"({int(bad.sum())} such rows). For counts out of n trials use cbind(successes, failures) "
            "with family='binomial'"
        )


def _check_binomial(y, trials, column):
    _check_counts(y, None, column)
    if trials is None:
        raise DataError("the binomial family needs trials: write the response as cbind(successes, failures)")
    if (trials < y).any():
        raise DataError(f"successes exceed trials in {column!r} on {int((trials < y).sum())} rows")


# --- the families ------------------------------------------------------------------


def _normal_like(name, eta, mean, params, observed, trials, dims):
    return pm.Normal(name, mu=mean, sigma=params["sigma"], observed=observed, shape=observed.shape)


def _student_like(name, eta, mean, params, observed, trials, dims):
    return pm.StudentT(name, nu=params["nu"], mu=mean, sigma=params["sigma"], observed=observed, shape=observed.shape)


def _bernoulli_like(name, eta, mean, params, observed, trials, dims):
    return pm.Bernoulli(name, p=mean, observed=observed, shape=observed.shape)


def _log1p_exp(eta):
    """``log(1 + e^eta)`` (softplus) as ``max(eta, 0) + log1p(exp(-|eta|))``: no overflow, one ``log1p``."""
    return pt.maximum(eta, 0.0) + pt.log1p(pt.exp(-pt.abs(eta)))


def bernoulli_logit_logp(y, eta):
    """Log likelihood of each 0/1 response ``y`` with logit ``eta``: ``y eta - log(1 + e^eta)``.

    PyMC's ``Bernoulli`` computes both branches of ``switch(y, log p, log(1 - p))`` for
    every row, two softplus per row; this is one: the bernoulli 20k-row gradient went from
    1.1 ms to about 0.65 ms (``bench/NOTES.md``).

    >>> import numpy as np
    >>> y, eta = np.array([0.0, 1.0, 1.0]), np.array([-2.0, 0.5, 40.0])
    >>> exact = y * eta - np.logaddexp(0, eta)
    >>> bool(np.allclose(bernoulli_logit_logp(pt.as_tensor(y), pt.as_tensor(eta)).eval(), exact, rtol=1e-14))
    True
    """
    return y * eta - _log1p_exp(eta)


def binomial_logit_logp(y, n, eta):
    """Log likelihood of each count ``y`` of ``n`` trials with logit ``eta``:
    ``log C(n, y) + y eta - n log(1 + e^eta)`` (one softplus per row, as for bernoulli).

    >>> import numpy as np
    >>> from scipy import stats
    >>> y, n, eta = np.array([0.0, 3.0, 10.0]), np.array([5.0, 7.0, 10.0]), np.array([-2.0, 0.5, 4.0])
    >>> ours = binomial_logit_logp(pt.as_tensor(y), pt.as_tensor(n), pt.as_tensor(eta)).eval()
    >>> bool(np.allclose(ours, stats.binom.logpmf(y, n, 1 / (1 + np.exp(-eta))), rtol=1e-12))
    True
    """
    log_choose = pt.gammaln(n + 1.0) - pt.gammaln(y + 1.0) - pt.gammaln(n - y + 1.0)
    return log_choose + y * eta - n * _log1p_exp(eta)


def _bernoulli_logit_like(name, eta, mean, params, observed, trials, dims):
    """``Bernoulli(logit_p=eta)`` with the log density of :func:`bernoulli_logit_logp` (draws from PyMC's)."""
    return pm.CustomDist(name, eta, dist=lambda e, size: pm.Bernoulli.dist(logit_p=e, size=size),
                         logp=bernoulli_logit_logp, observed=observed, shape=observed.shape)


def _binomial_logit_like(name, eta, mean, params, observed, trials, dims):
    """``Binomial(n, logit_p=eta)`` with the log density of :func:`binomial_logit_logp` (draws from PyMC's)."""
    return pm.CustomDist(name, trials, eta, dist=lambda n, e, size: pm.Binomial.dist(n=n, logit_p=e, size=size),
                         logp=binomial_logit_logp, observed=observed, shape=observed.shape)


def _binomial_like(name, eta, mean, params, observed, trials, dims):
    return pm.Binomial(name, n=trials, p=mean, observed=observed, shape=observed.shape)


def _poisson_like(name, eta, mean, params, observed, trials, dims):
    return pm.Poisson(name, mu=mean, observed=observed, shape=observed.shape)


def _negbin_like(name, eta, mean, params, observed, trials, dims):
    return pm.NegativeBinomial(name, mu=mean, alpha=params["alpha"], observed=observed, shape=observed.shape)


def _gaussian_priors(r: ResponseSummary) -> dict[str, P.Prior]:
    return {"sigma": P.Exponential(1.0 / r.scale)}


def _student_priors(r: ResponseSummary) -> dict[str, P.Prior]:
    return {"sigma": P.Exponential(1.0 / r.scale), "nu": P.Gamma(2.0, 0.1)}


def _t_variance(p):
    """Variance of a Student-t with nu > 2 (infinite otherwise)."""
    return np.where(p["nu"] > 2, p["sigma"] ** 2 * p["nu"] / np.maximum(p["nu"] - 2, 1e-12), np.inf)


def _nb_p(mean, alpha):
    return alpha / (alpha + mean)


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family`` to the registry under ``family.name`` (replacing any earlier one)."""
    FAMILIES[family.name] = family
    return family


register_family(Family(
    name="gaussian", link="identity", links=("identity", "log"),
    parameters=(("sigma", "positive"),),
    default_priors=_gaussian_priors,
    likelihood=_normal_like,
    log_density=lambda y, m, p, n: stats.norm.logpdf(y, m, p["sigma"]),
    random=lambda rng, m, p, n: rng.normal(m, p["sigma"]),
    check_response=_check_real,
    latent_variance=lambda m, p: p["sigma"] ** 2,
    response_variance=lambda m, p, n: np.broadcast_to(p["sigma"] ** 2, np.shape(m)),
))
register_family(Family(
    name="student_t", link="identity", links=("identity", "log"),
    parameters=(("sigma", "positive"), ("nu", "positive")),
    default_priors=_student_priors,
    likelihood=_student_like,
    log_density=lambda y, m, p, n: stats.t.logpdf(y, p["nu"], m, p["sigma"]),
    random=lambda rng, m, p, n: m + p["sigma"] * rng.standard_t(p["nu"], size=np.shape(m)),
    check_response=_check_real,
    latent_variance=lambda m, p: _t_variance(p),
    response_variance=lambda m, p, n: np.broadcast_to(_t_variance(p), np.shape(m)),
))
register_family(Family(
    name="bernoulli", link="logit", links=("logit", "probit"),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=_bernoulli_like,
    link_likelihoods=(("logit", _bernoulli_logit_like),),
    log_density=lambda y, m, p, n: stats.bernoulli.logpmf(y, m),
    random=lambda rng, m, p, n: rng.binomial(1, m),
    check_response=_check_binary,
    latent_variance=lambda m, p: np.full(np.shape(m), np.pi**2 / 3),
    response_variance=lambda m, p, n: m * (1 - m),
))
register_family(Family(
    name="binomial", link="logit", links=("logit", "probit"),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=_binomial_like,
    link_likelihoods=(("logit", _binomial_logit_like),),
    log_density=lambda y, m, p, n: stats.binom.logpmf(y, n, m),
    random=lambda rng, m, p, n: rng.binomial(np.asarray(n).astype(np.int64), m),
    check_response=_check_binomial,
    latent_variance=lambda m, p: np.full(np.shape(m), np.pi**2 / 3),
    response_variance=lambda m, p, n: n * m * (1 - m),
    needs_trials=True,
))
register_family(Family(
    name="poisson", link="log", links=("log", "identity"),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=_poisson_like,
    log_density=lambda y, m, p, n: stats.poisson.logpmf(y, m),
    random=lambda rng, m, p, n: rng.poisson(m),
    check_response=_check_counts,
    latent_variance=lambda m, p: np.log1p(1.0 / m),
    response_variance=lambda m, p, n: m,
))
register_family(Family(
    name="negative_binomial", link="log", links=("log", "identity"),
    parameters=(("alpha", "positive"),),
    default_priors=lambda r: {"alpha": P.Exponential(0.1)},
    likelihood=_negbin_like,
    log_density=lambda y, m, p, n: stats.nbinom.logpmf(y, p["alpha"], _nb_p(m, p["alpha"])),
    random=lambda rng, m, p, n: rng.negative_binomial(p["alpha"], _nb_p(m, p["alpha"])),
    check_response=_check_counts,
    latent_variance=lambda m, p: np.log1p(1.0 / m + 1.0 / p["alpha"]),
    response_variance=lambda m, p, n: m + m**2 / p["alpha"],
))

_ALIASES = {"normal": "gaussian", "t": "student_t", "studentt": "student_t", "logistic": "bernoulli",
            "negbinomial": "negative_binomial", "negbin": "negative_binomial"}


def get_family(family: str | Family, link: str | None = None) -> Family:
    """Look up a family by name (or pass a :class:`Family` through), with an optional link.

    Examples
    --------
    >>> get_family("gaussian").parameters
    (('sigma', 'positive'),)
    """
    if isinstance(family, Family):
        fam = family
    else:
        key = str(family).lower().replace("-", "_")
        key = _ALIASES.get(key, key)
        if key not in FAMILIES:
            raise HierbayesError(f"unknown family {family!r}; choose one of {sorted(FAMILIES)}")
        fam = FAMILIES[key]
    if link is None or link == fam.link:
        return fam
    if link not in fam.links:
        raise HierbayesError(f"family {fam.name!r} takes the links {fam.links}, not {link!r}")
    return replace(fam, link=link)
