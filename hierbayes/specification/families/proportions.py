"""Proportions with exact 0s and 1s: the zero-one-inflated beta and the ordered beta.

A beta response lies strictly between 0 and 1, so a proportion with exact 0s or 1s (a
slider at its end, a share of none or all) needs more than the beta. PyMC has neither
family, so each is a ``pm.CustomDist`` with its log density written here (and checked
against a hand computation in ``tests/unit/test_families_mixtures.py``) and NumPy draws.

``zero_one_inflated_beta`` (brms's ``zero_one_inflated_beta``): with probability ``zoi`` the
response is 0 or 1, 1 with the conditional probability ``coi``; otherwise it is
``Beta(mu phi, (1 - mu) phi)``. The 0s and 1s are a process apart from the proportions.

``ordered_beta`` (Kubinec 2022; R's ordbetareg): one process for all responses. The linear
predictor ``eta`` sets the mean ``mu = logistic(eta)`` of the beta part and, through two
ordered cutpoints on the logit scale, how likely the ends are::

    P(y = 0)     = 1 - logistic(eta - cutzero)
    P(y = 1)     = logistic(eta - cutone)
    p(0 < y < 1) = (logistic(eta - cutzero) - logistic(eta - cutone)) Beta(y; mu phi, (1 - mu) phi)

so a predictor that raises the proportions also makes 1s more likely and 0s less. The sampler
sees ``cutzero`` (real) and ``cutgap`` (positive); ``cutone = cutzero + cutgap`` is recorded and
summarised beside them.

Examples
--------
>>> import numpy as np
>>> from hierbayes.specification.families import get_family
>>> zoib = get_family("zoib")
>>> float(zoib.expected_response(np.array([0.0]), {"zoi": 0.2, "coi": 0.75, "phi": 5.0})[0])  # 0.2 0.75 + 0.8 0.5
0.55
"""

from __future__ import annotations

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.specification import priors as P
from hierbayes.specification.families.core import Family, ResponseSummary, refuse_rows, register_family
from hierbayes.specification.families.mixtures import beta_draws, mixture_mean, mixture_variance

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")
special = deferred_import("scipy.special")

__all__ = ["check_proportion", "zero_one_inflated_beta_logp", "ordered_beta_logp", "cutone"]


def check_proportion(y, trials, column):
    """Refuse responses outside [0, 1] (0 and 1 included), naming the value and rows."""
    refuse_rows(y, ~((y >= 0) & (y <= 1)), column, "lie between 0 and 1 (both included) for this family")


def _beta_logp(y, mu, phi):
    """``log Beta(y; mu phi, (1 - mu) phi)`` at the proportions strictly inside (0, 1), 0.5 elsewhere (so the
    branch not taken has finite gradients)."""
    inside = pt.and_(pt.gt(y, 0), pt.lt(y, 1))
    return pm.logp(pm.Beta.dist(alpha=mu * phi, beta=(1 - mu) * phi), pt.switch(inside, y, 0.5))


def _outside_unit(y, logp):
    return pt.switch(pt.or_(pt.lt(y, 0), pt.gt(y, 1)), -np.inf, logp)


def zero_one_inflated_beta_logp(y, mu, phi, zoi, coi):
    """Log density of the zero-one-inflated beta at each ``y``: ``log(zoi (1 - coi))`` at 0, ``log(zoi coi)``
    at 1, ``log(1 - zoi) + log Beta(y; mu phi, (1 - mu) phi)`` between.

    >>> from scipy import stats
    >>> y = pt.as_tensor(np.array([0.0, 0.3, 1.0]))
    >>> ours = zero_one_inflated_beta_logp(y, 0.4, 5.0, 0.1, 0.7).eval()
    >>> bool(np.allclose(ours, [np.log(0.1 * 0.3), np.log(0.9) + stats.beta.logpdf(0.3, 2, 3), np.log(0.07)]))
    True
    """
    between = pt.log1p(-zoi) + _beta_logp(y, mu, phi)
    logp = pt.switch(pt.eq(y, 0), pt.log(zoi) + pt.log1p(-coi), pt.switch(pt.eq(y, 1), pt.log(zoi) + pt.log(coi),
                                                                         between))
    return _outside_unit(y, logp)


def ordered_beta_logp(y, eta, phi, cutzero, cutgap):
    """Log density of the ordered beta at each ``y`` (Kubinec 2022), from the logit ``eta``.

    With ``a = eta - cutzero`` and ``b = a - cutgap = eta - cutone``: ``log(1 - logistic(a)) =
    -softplus(a)`` at 0, ``log logistic(b) = -softplus(-b)`` at 1, and between them
    ``log(logistic(a) - logistic(b)) = -softplus(-a) - softplus(b) + log(1 - exp(-cutgap))``
    plus the beta's log density.

    >>> from scipy import stats, special
    >>> y = pt.as_tensor(np.array([0.0, 0.3, 1.0]))
    >>> ours = ordered_beta_logp(y, 0.5, 4.0, -1.0, 3.0).eval()
    >>> mu, middle = special.expit(0.5), special.expit(1.5) - special.expit(-1.5)
    >>> hand = [np.log(1 - special.expit(1.5)), np.log(middle) + stats.beta.logpdf(0.3, 4 * mu, 4 * (1 - mu)),
    ...         np.log(special.expit(-1.5))]
    >>> bool(np.allclose(ours, hand))  # Python floats enter as float32 constants here
    True
    """
    a = eta - cutzero
    b = a - cutgap
    between = -pt.softplus(-a) - pt.softplus(b) + pt.log1mexp(-cutgap) + _beta_logp(y, pt.sigmoid(eta), phi)
    logp = pt.switch(pt.eq(y, 0), -pt.softplus(a), pt.switch(pt.eq(y, 1), -pt.softplus(-b), between))
    return _outside_unit(y, logp)


def _shape(size, *params):
    return tuple(size) if size is not None and len(size) else np.broadcast_shapes(*(np.shape(p) for p in params))


def _zoib_draws(mu, phi, zoi, coi, rng=None, size=None):
    """Draws of the zero-one-inflated beta (``pm.CustomDist``'s ``random`` signature)."""
    shape = _shape(size, mu, phi, zoi, coi)
    ends = (rng.random(shape) < coi).astype(float)
    return np.where(rng.random(shape) < zoi, ends, beta_draws(rng, mu, phi, size=shape))


def _ordered_beta_draws(eta, phi, cutzero, cutgap, rng=None, size=None):
    """Draws of the ordered beta (``pm.CustomDist``'s ``random`` signature)."""
    shape = _shape(size, eta, phi, cutzero, cutgap)
    mu = special.expit(eta)
    zero, one = special.expit(cutzero - eta), special.expit(eta - cutzero - cutgap)
    u = rng.random(shape)
    between = beta_draws(rng, mu, phi, size=shape)
    return np.where(u < zero, 0.0, np.where(u >= 1 - one, 1.0, between))


def _beta_square(mu, phi):
    """E[y^2] of ``Beta(mu phi, (1 - mu) phi)``: its variance ``mu (1 - mu) / (1 + phi)`` plus ``mu^2``."""
    return mu * (1 - mu) / (1 + phi) + mu**2


def _zoib_parts(mu, p):
    return [(p["zoi"], p["coi"], p["coi"]), (1 - p["zoi"], mu, _beta_square(mu, p["phi"]))]


def cutone(params: dict):
    """The ordered beta's upper cutpoint, ``cutzero + cutgap`` (tensors or arrays)."""
    return params["cutzero"] + params["cutgap"]


def _ordered_beta_parts(mu, p):
    eta = special.logit(mu)
    one = special.expit(eta - cutone(p))
    middle = special.expit(eta - p["cutzero"]) - one
    return [(one, 1.0, 1.0), (middle, mu, _beta_square(mu, p["phi"]))]


def _zoib_like(name, eta, mean, params, observed, trials, dims):
    return pm.CustomDist(name, mean, params["phi"], params["zoi"], params["coi"], logp=zero_one_inflated_beta_logp,
                         random=_zoib_draws, observed=observed, shape=observed.shape)


def _ordered_beta_like(name, eta, mean, params, observed, trials, dims):
    return pm.CustomDist(name, eta, params["phi"], params["cutzero"], params["cutgap"], logp=ordered_beta_logp,
                         random=_ordered_beta_draws, observed=observed, shape=observed.shape)


def _ordered_beta_priors(r: ResponseSummary) -> dict[str, P.Prior]:
    """phi as ordbetareg's default; the cutpoints start 3 logits either side of the mean response."""
    return {"phi": P.Exponential(0.1), "cutzero": P.Normal(r.location - 3.0, 2.5), "cutgap": P.Gamma(3.0, 0.5)}


def _unit_variance(mu):
    """V(mu) = mu (1 - mu): the pooling fits' variance function of the proportion families."""
    return mu * (1 - mu)


register_family(Family(
    name="zero_one_inflated_beta", link="logit", links=("logit", "probit"),
    parameters=(("phi", "positive"), ("zoi", "unit"), ("coi", "unit")),
    default_priors=lambda r: {"phi": P.Gamma(0.01, 0.01), "zoi": P.Beta(1.0, 1.0), "coi": P.Beta(1.0, 1.0)},
    likelihood=_zoib_like,
    check_response=check_proportion,
    expected_value=mixture_mean(_zoib_parts),
    variance=mixture_variance(_zoib_parts),
    quasi_variance=_unit_variance,
    random=lambda rng, mu, p, n: _zoib_draws(mu, p["phi"], p["zoi"], p["coi"], rng=rng),
), aliases=("zoib",))
register_family(Family(
    name="ordered_beta", link="logit", links=("logit",),
    parameters=(("phi", "positive"), ("cutzero", "real"), ("cutgap", "positive")),
    default_priors=_ordered_beta_priors,
    likelihood=_ordered_beta_like,
    check_response=check_proportion,
    expected_value=mixture_mean(_ordered_beta_parts),
    variance=mixture_variance(_ordered_beta_parts),
    quasi_variance=_unit_variance,
    derived=(("cutone", cutone),),
    random=lambda rng, mu, p, n: _ordered_beta_draws(special.logit(mu), p["phi"], p["cutzero"], p["cutgap"], rng=rng),
))
