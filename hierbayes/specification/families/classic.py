"""The six classic families: gaussian, student_t, bernoulli, binomial, poisson, negative_binomial.

Each gives its ``likelihood`` (the observed variable, on the link where it has a cheaper one) and
its ``distribution``, which weights, censoring and truncation wrap
(:mod:`hierbayes.specification.additions`).

Examples
--------
>>> from hierbayes.specification.families import get_family
>>> get_family("negbin").name, get_family("poisson").link
('negative_binomial', 'log')
"""

from __future__ import annotations

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.specification import priors as P
from hierbayes.specification.families.core import (
    Family,
    ResponseSummary,
    check_binary,
    check_binomial,
    check_counts,
    check_real,
    register_family,
)

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["bernoulli_logit_logp", "binomial_logit_logp"]

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
    every row, two softplus per row; this is one. Vectors of one length (the model's rows) go
    through :func:`~hierbayes.specification.families.logit_rows.logit_rows`, one SIMD pass for the
    log density and its gradient; other shapes through the same formula in PyTensor.

    >>> import numpy as np
    >>> y, eta = np.array([0.0, 1.0, 1.0]), np.array([-2.0, 0.5, 40.0])
    >>> exact = y * eta - np.logaddexp(0, eta)
    >>> bool(np.allclose(bernoulli_logit_logp(pt.as_tensor(y), pt.as_tensor(eta)).eval(), exact, rtol=1e-14))
    True
    """
    if _rows_of_one_length(y, eta):
        from hierbayes.specification.families.logit_rows import logit_rows

        return logit_rows(y, eta)[0]
    return y * eta - _log1p_exp(eta)


def _rows_of_one_length(*vectors) -> bool:
    """Whether the one-pass Op (:mod:`~hierbayes.specification.families.logit_rows`) takes these: vectors
    that do not broadcast against each other. Other shapes (draws x rows) keep the PyTensor graph."""
    vectors = [pt.as_tensor_variable(v) for v in vectors]
    return all(v.ndim == 1 and v.type.broadcastable == vectors[0].type.broadcastable for v in vectors)


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
    if _rows_of_one_length(y, eta) and (pt.as_tensor_variable(n).ndim == 0 or _rows_of_one_length(y, n)):
        from hierbayes.specification.families.logit_rows import logit_rows

        return log_choose + logit_rows(y, eta, n)[0]
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


def _normal_dist(mean, params, trials):
    return pm.Normal.dist(mu=mean, sigma=params["sigma"])


def _student_dist(mean, params, trials):
    return pm.StudentT.dist(nu=params["nu"], mu=mean, sigma=params["sigma"])


def _bernoulli_dist(mean, params, trials):
    return pm.Bernoulli.dist(p=mean)


def _binomial_dist(mean, params, trials):
    return pm.Binomial.dist(n=trials, p=mean)


def _poisson_dist(mean, params, trials):
    return pm.Poisson.dist(mu=mean)


def _negbin_dist(mean, params, trials):
    return pm.NegativeBinomial.dist(mu=mean, alpha=params["alpha"])


def _gaussian_priors(r: ResponseSummary) -> dict[str, P.Prior]:
    return {"sigma": P.Exponential(1.0 / r.scale)}


def _student_priors(r: ResponseSummary) -> dict[str, P.Prior]:
    return {"sigma": P.Exponential(1.0 / r.scale), "nu": P.Gamma(2.0, 0.1)}


def _t_variance(p):
    """Variance of a Student-t with nu > 2 (infinite otherwise)."""
    return np.where(p["nu"] > 2, p["sigma"] ** 2 * p["nu"] / np.maximum(p["nu"] - 2, 1e-12), np.inf)


def _nb_p(mean, alpha):
    return alpha / (alpha + mean)


def _binary_variance(mean, params):
    """Variance of one trial: ``mean (1 - mean)``."""
    return mean * (1 - mean)


register_family(Family(
    name="gaussian", link="identity", links=("identity", "log"),
    parameters=(("sigma", "positive"),),
    default_priors=_gaussian_priors,
    likelihood=_normal_like,
    distribution=_normal_dist,
    check_response=check_real,
    variance=lambda m, p: np.broadcast_to(p["sigma"] ** 2, np.shape(m)),
    quasi_variance=np.ones_like,
    random=lambda rng, m, p, n: rng.normal(m, p["sigma"]),
), aliases=("normal",))
register_family(Family(
    name="student_t", link="identity", links=("identity", "log"),
    parameters=(("sigma", "positive"), ("nu", "positive")),
    default_priors=_student_priors,
    likelihood=_student_like,
    distribution=_student_dist,
    check_response=check_real,
    variance=lambda m, p: np.broadcast_to(_t_variance(p), np.shape(m)),
    quasi_variance=np.ones_like,
    random=lambda rng, m, p, n: m + p["sigma"] * rng.standard_t(p["nu"], size=np.shape(m)),
), aliases=("t", "studentt"))
register_family(Family(
    name="bernoulli", link="logit", links=("logit", "probit"),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=_bernoulli_like,
    distribution=_bernoulli_dist,
    link_likelihoods=(("logit", _bernoulli_logit_like),),
    check_response=check_binary,
    variance=_binary_variance,
    random=lambda rng, m, p, n: rng.binomial(1, m),
    threshold_model=True,
), aliases=("logistic",))
register_family(Family(
    name="binomial", link="logit", links=("logit", "probit"),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=_binomial_like,
    distribution=_binomial_dist,
    link_likelihoods=(("logit", _binomial_logit_like),),
    check_response=check_binomial,
    variance=_binary_variance,
    random=lambda rng, m, p, n: rng.binomial(np.asarray(n).astype(np.int64), m),
    threshold_model=True,
    needs_trials=True,
))
register_family(Family(
    name="poisson", link="log", links=("log", "identity"),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=_poisson_like,
    distribution=_poisson_dist,
    check_response=check_counts,
    variance=lambda m, p: m,
    random=lambda rng, m, p, n: rng.poisson(m),
))
register_family(Family(
    name="negative_binomial", link="log", links=("log", "identity"),
    parameters=(("alpha", "positive"),),
    default_priors=lambda r: {"alpha": P.Exponential(0.1)},
    likelihood=_negbin_like,
    distribution=_negbin_dist,
    check_response=check_counts,
    variance=lambda m, p: m + m**2 / p["alpha"],
    quasi_variance=lambda m: m,  # Poisson quasi-likelihood: the mean structure without alpha
    random=lambda rng, m, p, n: rng.negative_binomial(p["alpha"], _nb_p(m, p["alpha"])),
), aliases=("negbinomial", "negbin"))

