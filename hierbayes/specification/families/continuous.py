"""Continuous families, parameterised and named as brms names them.

``beta`` (proportions), ``gamma``, ``lognormal``, ``weibull``, ``exponential`` and ``wald``
(positive responses), ``exgaussian``, ``skew_normal``, ``laplace`` and ``asymmetric_laplace``
(real responses; the last is quantile regression) and ``von_mises`` (angles). Each entry
gives its PyMC distribution (``distribution``; the likelihood is that distribution observed,
and the response draws are its draws), so censoring and truncation can wrap it.

In every family ``mu``, the inverse link of the linear predictor, is the mean of the
response, except three, as in brms: ``lognormal``'s ``mu`` is the mean of ``log y`` (the
expected response is ``exp(mu + sigma^2 / 2)``), ``asymmetric_laplace``'s ``mu`` is the
``quantile`` of the response, and ``von_mises``'s ``mu`` is the mean direction.

Examples
--------
>>> from hierbayes.specification.families import get_family
>>> get_family("inverse.gaussian").name, get_family("vonmises").link, get_family("beta").parameters
('wald', 'tan_half', (('phi', 'positive'),))
>>> asymmetric_laplace(quantile=0.9).constants
(('quantile', 0.9),)
"""

from __future__ import annotations

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import HierbayesError
from hierbayes.specification import priors as P
from hierbayes.specification.families.core import (
    Family,
    ResponseSummary,
    check_positive,
    check_real,
    check_unit_interval,
    get_family,
    refuse_rows,
    register_family,
)

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")
special = deferred_import("scipy.special")
stats = deferred_import("scipy.stats")
dist_math = deferred_import("pymc.distributions.dist_math")

__all__ = ["asymmetric_laplace", "with_quantile", "check_angle", "skew_normal_location_scale"]


# --- response checks and helpers --------------------------------------------------------------------

def check_angle(y, trials, column):
    """Refuse angles outside [-pi, pi] (von Mises), naming the rows."""
    refuse_rows(y, ~((y >= -np.pi) & (y <= np.pi)), column,
                "be an angle in radians in [-pi, pi] for the von_mises family", "Wrap angles with np.angle(np.exp(1j * y))")


def _weibull_dist(mu, p, trials):
    """Weibull with mean ``mu`` (brms): scale ``mu / Gamma(1 + 1/shape)``."""
    return pm.Weibull.dist(alpha=p["shape"], beta=mu / pt.exp(pt.gammaln(1.0 + 1.0 / p["shape"])))


def skew_normal_location_scale(mean, sigma, alpha, sqrt=np.sqrt):
    """The skew normal's location ``xi`` and scale ``omega`` with mean ``mean`` and SD ``sigma`` (brms).

    With ``delta = alpha / sqrt(1 + alpha^2)``: ``omega = sigma / sqrt(1 - 2 delta^2 / pi)``
    and ``xi = mean - omega delta sqrt(2 / pi)``. ``sqrt`` is NumPy's or PyTensor's.

    >>> xi, omega = skew_normal_location_scale(1.0, 2.0, 0.0)  # alpha 0: the normal
    >>> float(xi), float(omega)
    (1.0, 2.0)
    """
    delta = alpha / sqrt(1.0 + alpha**2)
    omega = sigma / sqrt(1.0 - 2.0 / np.pi * delta**2)
    return mean - omega * delta * np.sqrt(2.0 / np.pi), omega


def _skew_normal_logp(value, alpha, xi, omega):
    """``log(2 phi(z) Phi(alpha z) / omega)`` with PyMC's stable normal log CDF.

    PyMC's ``SkewNormal`` computes ``log(1 + erf(alpha z / sqrt 2))``, which is off by 1e-8
    relative at a log density of -60 and -inf from ``alpha z`` about -30 on: one response far
    on the short tail would stop the sampler.
    """
    z = (value - xi) / omega
    return np.log(2.0) - 0.5 * np.log(2 * np.pi) - pt.log(omega) - z**2 / 2 + dist_math.normal_lcdf(0.0, 1.0, alpha * z)


def _skew_normal_dist(mu, p, trials):
    """PyMC's ``SkewNormal(alpha, xi, omega)`` with brms's mean ``mu`` and SD ``sigma`` (log density
    of :func:`_skew_normal_logp`)."""
    xi, omega = skew_normal_location_scale(mu, p["sigma"], p["alpha"], sqrt=pt.sqrt)
    return pm.CustomDist.dist(p["alpha"], xi, omega, logp=_skew_normal_logp, class_name="SkewNormal",
                              dist=lambda a, x, o, size: pm.SkewNormal.dist(alpha=a, mu=x, sigma=o, size=size))


def _skew_normal_random(rng, mu, p, trials):
    xi, omega = skew_normal_location_scale(mu, p["sigma"], p["alpha"])
    return stats.skewnorm.rvs(p["alpha"], loc=xi, scale=omega, size=np.shape(xi * omega), random_state=rng)


def _laplace_moments(q, sigma):
    """Mean shift and variance of brms's asymmetric Laplace ``(q (1 - q) / sigma) exp(-rho_q((y - mu) / sigma))``."""
    shift = sigma * (1.0 - 2.0 * q) / (q * (1.0 - q))
    variance = sigma**2 * (1.0 - 2.0 * q + 2.0 * q**2) / (q**2 * (1.0 - q) ** 2)
    return shift, variance


def _constant(values, shape):
    return np.broadcast_to(values, np.shape(shape))


# --- default priors ---------------------------------------------------------------------------------

def _precision_prior(r: ResponseSummary) -> P.Prior:
    """``phi`` of beta, ``shape`` of gamma: brms's Gamma(0.01, 0.01), nearly flat on the log scale.

    A weakly informative Gamma(2, 0.1) (mean 20) was tried first: on 32 proportions measured to
    within a percent (``GasolineYield``, phi 302 by maximum likelihood) it pulled the posterior mean
    of phi down to 91 and inflated every coefficient's SD by half, so a precision's prior must
    let the data speak across its range (2 to several thousands). The sampler starts at the
    prior's mean, 1, where the likelihood is well behaved.
    """
    return P.Gamma(0.01, 0.01)


def _sigma_prior(r: ResponseSummary) -> P.Prior:
    """A scale on the data's scale: Exponential(1 / s), mean ``s``, as the gaussian's ``sigma``."""
    return P.Exponential(1.0 / r.scale)


def _weibull_shape_prior(r: ResponseSummary) -> P.Prior:
    """Weibull ``shape``: Gamma(2, 0.5), mean 4.

    Shapes from about 0.5 (a falling hazard) through 1 (the exponential) to about 10 (nearly
    a point) are plausible; brms's Gamma(0.01, 0.01) would start the sampler at 1 with a
    prior SD of 10.
    """
    return P.Gamma(2.0, 0.5)


def _wald_shape_prior(r: ResponseSummary) -> P.Prior:
    """Inverse Gaussian ``shape`` (lambda): Gamma(2, 0.1 / mean(y)), mean ``20 mean(y)``.

    ``shape`` has the response's units (the squared coefficient of variation is
    ``mu / shape``), so its prior is scaled by the mean response, ``exp`` of the summary's
    location on the log link: a CV from about 0.1 to 1 is plausible.
    """
    return P.Gamma(2.0, 0.1 / np.exp(r.location))


def _kappa_prior(r: ResponseSummary) -> P.Prior:
    """von Mises ``kappa``: Gamma(2, 0.1), mean 20 (a circular SD of about 0.23 rad).

    brms's Gamma(2, 0.01) is proper, but its mean of 200 (where the sampler starts) is
    nearly a point mass; with rate 0.1 concentrations from about 1 to 60 stay plausible.
    """
    return P.Gamma(2.0, 0.1)


register_family(Family(
    name="beta", link="logit", links=("logit", "probit", "cloglog"),
    parameters=(("phi", "positive"),),
    default_priors=lambda r: {"phi": _precision_prior(r)},
    likelihood=None,
    distribution=lambda mu, p, n: pm.Beta.dist(mu=mu, nu=p["phi"]),  # shapes mu phi, (1 - mu) phi
    check_response=check_unit_interval,
    variance=lambda m, p: m * (1 - m) / (1 + p["phi"]),
    quasi_variance=lambda m: m * (1 - m),
    # Var(logit y) of y ~ Beta(a, b) is exactly trigamma(a) + trigamma(b): the residual variance on the logit scale
    latent_variance=lambda m, p: special.polygamma(1, m * p["phi"]) + special.polygamma(1, (1 - m) * p["phi"]),
    # NumPy's draws: a precision drawn from its vague prior can be 1e-30, where PyMC's compiled beta
    # sampler loops for minutes and NumPy's returns 0s and 1s at once
    random=lambda rng, m, p, n: rng.beta(np.maximum(m * p["phi"], 1e-12), np.maximum((1 - m) * p["phi"], 1e-12)),
))
register_family(Family(
    name="gamma", link="log", links=("log", "identity", "inverse"),
    parameters=(("shape", "positive"),),
    default_priors=lambda r: {"shape": _precision_prior(r)},
    likelihood=None,
    distribution=lambda mu, p, n: pm.Gamma.dist(alpha=p["shape"], beta=p["shape"] / mu),  # mean mu
    check_response=check_positive,
    variance=lambda m, p: m**2 / p["shape"],
    quasi_variance=np.square,
))
register_family(Family(
    name="lognormal", link="identity", links=("identity",),
    parameters=(("sigma", "positive"),),
    default_priors=lambda r: {"sigma": _sigma_prior(r)},  # r is of log y (location_response)
    likelihood=None,
    distribution=lambda mu, p, n: pm.LogNormal.dist(mu=mu, sigma=p["sigma"]),
    check_response=check_positive,
    expected_value=lambda mu, p: np.exp(mu + p["sigma"] ** 2 / 2),
    variance=lambda m, p: np.expm1(p["sigma"] ** 2) * m**2,  # of y given its expected value m
    quasi_variance=np.ones_like,  # the pooling fits regress log y (location_response): least squares
    latent_variance=lambda m, p: _constant(p["sigma"] ** 2, m),  # log y's residual variance
    location_response=np.log,
))
register_family(Family(
    name="weibull", link="log", links=("log", "identity", "inverse", "softplus"),
    parameters=(("shape", "positive"),),
    default_priors=lambda r: {"shape": _weibull_shape_prior(r)},
    likelihood=None,
    distribution=_weibull_dist,
    check_response=check_positive,
    variance=lambda m, p: m**2 * np.expm1(special.gammaln(1 + 2 / p["shape"]) - 2 * special.gammaln(1 + 1 / p["shape"])),
    quasi_variance=np.square,
))
register_family(Family(
    name="exponential", link="log", links=("log", "identity", "inverse", "softplus"),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=None,
    distribution=lambda mu, p, n: pm.Exponential.dist(scale=mu),
    check_response=check_positive,
    variance=lambda m, p: m**2,
))
register_family(Family(
    name="wald", link="log", links=("log", "identity", "inverse"),
    parameters=(("shape", "positive"),),
    default_priors=lambda r: {"shape": _wald_shape_prior(r)},
    likelihood=None,
    distribution=lambda mu, p, n: pm.Wald.dist(mu=mu, lam=p["shape"]),
    random=lambda rng, m, p, n: rng.wald(m, p["shape"]),  # NumPy draws: PyMC's run in numba's object mode
    check_response=check_positive,
    variance=lambda m, p: m**3 / p["shape"],
    quasi_variance=lambda m: m**3,
), aliases=("inverse.gaussian", "inverse_gaussian"))
register_family(Family(
    name="exgaussian", link="identity", links=("identity", "log", "inverse"),
    parameters=(("sigma", "positive"), ("beta", "positive")),
    default_priors=lambda r: {"sigma": _sigma_prior(r), "beta": _sigma_prior(r)},
    likelihood=None,
    # mu is the mean (brms): the gaussian's mean is mu - beta, beta the exponential's mean
    distribution=lambda mu, p, n: pm.ExGaussian.dist(mu=mu - p["beta"], sigma=p["sigma"], nu=p["beta"]),
    check_response=check_real,
    variance=lambda m, p: _constant(p["sigma"] ** 2 + p["beta"] ** 2, m),
    quasi_variance=np.ones_like,
), aliases=("exgauss", "ex_gaussian"))
register_family(Family(
    name="skew_normal", link="identity", links=("identity", "log", "inverse"),
    parameters=(("sigma", "positive"), ("alpha", "real")),
    default_priors=lambda r: {"sigma": _sigma_prior(r), "alpha": P.Normal(0.0, 4.0)},  # brms's alpha prior
    likelihood=None,
    distribution=_skew_normal_dist,
    random=_skew_normal_random,  # NumPy draws: PyMC's skew normal draws run in numba's object mode
    check_response=check_real,
    variance=lambda m, p: _constant(p["sigma"] ** 2, m),  # sigma is the response's SD (brms)
    quasi_variance=np.ones_like,
), aliases=("skewnormal",))
register_family(Family(
    name="laplace", link="identity", links=("identity", "log"),
    parameters=(("sigma", "positive"),),
    default_priors=lambda r: {"sigma": _sigma_prior(r)},
    likelihood=None,
    distribution=lambda mu, p, n: pm.Laplace.dist(mu=mu, b=p["sigma"]),  # density exp(-|y - mu| / sigma) / (2 sigma)
    check_response=check_real,
    variance=lambda m, p: _constant(2 * p["sigma"] ** 2, m),
    quasi_variance=np.ones_like,  # least squares: the mean is the median
), aliases=("double_exponential",))
register_family(Family(
    name="asymmetric_laplace", link="identity", links=("identity", "log", "inverse"),
    parameters=(("sigma", "positive"),),
    default_priors=lambda r: {"sigma": _sigma_prior(r)},
    likelihood=None,
    # brms's q (1 - q) / sigma exp(-rho_q((y - mu) / sigma)) is PyMC's with kappa^2 = q / (1 - q), b = sqrt(q (1 - q)) / sigma
    distribution=lambda mu, p, n: pm.AsymmetricLaplace.dist(
        mu=mu, b=np.sqrt(p["quantile"] * (1 - p["quantile"])) / p["sigma"], q=p["quantile"]),
    constants=(("quantile", 0.5),),
    check_response=check_real,
    expected_value=lambda mu, p: mu + _laplace_moments(p["quantile"], p["sigma"])[0],
    variance=lambda m, p: _constant(_laplace_moments(p["quantile"], p["sigma"])[1], m),
    # no quasi_variance: least squares would estimate the mean, not the quantile, so fit.pooling() says so
), aliases=("asym_laplace", "asymmetriclaplace"))
register_family(Family(
    name="von_mises", link="tan_half", links=("tan_half", "identity"),
    parameters=(("kappa", "positive"),),
    default_priors=lambda r: {"kappa": _kappa_prior(r)},
    likelihood=None,
    distribution=lambda mu, p, n: pm.VonMises.dist(mu=mu, kappa=p["kappa"]),
    check_response=check_angle,
    quasi_variance=np.ones_like,  # least squares on the angles: good while they stay away from -pi and pi
    # no variance and no latent_variance: a circular response has neither R-squared nor an ICC on a linear scale
), aliases=("vonmises",))


def asymmetric_laplace(quantile: float = 0.5, link: str | None = None) -> Family:
    """The asymmetric Laplace family whose ``mu`` is the ``quantile`` of the response: quantile regression.

    brms's ``asym_laplace``: density ``q (1 - q) / sigma exp(-rho_q((y - mu) / sigma))`` with
    the check loss ``rho_q(u) = u (q - [u < 0])``; its mode is ``mu`` and ``P(y < mu) = q``.
    Two quantiles never share a compiled model (``quantile`` is one of the family's
    ``constants``).

    Parameters
    ----------
    quantile : float in (0, 1), default 0.5 (the median)
    link : str, optional

    Examples
    --------
    >>> import hierbayes as hb
    >>> family = hb.asymmetric_laplace(quantile=0.9)
    >>> family.name, family.constants
    ('asymmetric_laplace', (('quantile', 0.9),))
    >>> # hb.Model("y ~ x + (1 | g)", df, family=family).fit(): the 90% quantile of y given x
    """
    return with_quantile(get_family("asymmetric_laplace", link), quantile)


def with_quantile(family: Family, quantile: float) -> Family:
    """``family`` with its constant ``quantile`` (asymmetric Laplace's), checked to lie strictly in (0, 1).

    >>> with_quantile(get_family("asym_laplace"), 0.25).constants
    (('quantile', 0.25),)
    """
    try:
        value = float(quantile)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise HierbayesError(f"the {family.name} family's quantile must lie strictly between 0 and 1, got {quantile!r}")
    return family.with_constants(quantile=value)
