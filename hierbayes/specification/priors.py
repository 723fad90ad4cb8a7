"""The prior registry: the distributions a user may put on a parameter.

A :class:`Prior` is data (a kind and its parameters). Which PyMC distribution a kind
means, which parameters it takes and which support it covers is written once, in
:data:`PRIOR_KINDS`. The model builder passes the parameter values into PyMC as data,
so a new prior of the same kind refits without recompiling.

Examples
--------
>>> Normal(0, 10)
Normal(mu=0, sigma=10)
>>> HalfNormal(50).support
'positive'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import PriorError

pm = deferred_import("pymc")
stats = deferred_import("scipy.stats")

__all__ = [
    "Prior",
    "PRIOR_KINDS",
    "Normal",
    "StudentT",
    "HalfNormal",
    "HalfStudentT",
    "HalfCauchy",
    "Exponential",
    "Gamma",
    "Beta",
    "LKJ",
]


@dataclass(frozen=True)
class PriorKind:
    """How one kind of prior maps onto PyMC: the class, its parameters, its support, and
    where the sampler starts (``start``: the distribution's location on the natural scale
    from its parameter values, PyMC's ``support_point``; ``None`` for correlations, which
    start at the identity)."""

    pymc_name: str  # the PyMC class, by name so that importing hierbayes does not import PyMC
    parameters: tuple[str, ...]
    support: str  # "real", "positive", "unit" (between 0 and 1) or "correlation"
    start: Callable[[dict], Any] | None = None
    log_density: Callable[[Any, dict], Any] | None = None  # (values, params) -> log density, SciPy's

    @property
    def distribution(self) -> Any:
        """The PyMC distribution class."""
        return getattr(pm, self.pymc_name)


def _half_t(x, p):
    return np.log(2.0) + stats.t.logpdf(x, p["nu"], 0.0, p["sigma"])


PRIOR_KINDS: dict[str, PriorKind] = {
    "Normal": PriorKind("Normal", ("mu", "sigma"), "real", lambda p: p["mu"],
                        lambda x, p: stats.norm.logpdf(x, p["mu"], p["sigma"])),
    "StudentT": PriorKind("StudentT", ("nu", "mu", "sigma"), "real", lambda p: p["mu"],
                          lambda x, p: stats.t.logpdf(x, p["nu"], p["mu"], p["sigma"])),
    "HalfNormal": PriorKind("HalfNormal", ("sigma",), "positive", lambda p: p["sigma"],
                            lambda x, p: stats.halfnorm.logpdf(x, scale=p["sigma"])),
    "HalfStudentT": PriorKind("HalfStudentT", ("nu", "sigma"), "positive", lambda p: p["sigma"], _half_t),
    "HalfCauchy": PriorKind("HalfCauchy", ("beta",), "positive", lambda p: p["beta"],
                            lambda x, p: stats.halfcauchy.logpdf(x, scale=p["beta"])),
    "Exponential": PriorKind("Exponential", ("lam",), "positive", lambda p: 1 / p["lam"],
                             lambda x, p: stats.expon.logpdf(x, scale=1 / p["lam"])),
    "Gamma": PriorKind("Gamma", ("alpha", "beta"), "positive", lambda p: p["alpha"] / p["beta"],
                       lambda x, p: stats.gamma.logpdf(x, p["alpha"], scale=1 / p["beta"])),
    "Beta": PriorKind("Beta", ("alpha", "beta"), "unit", lambda p: p["alpha"] / (p["alpha"] + p["beta"]),
                      lambda x, p: stats.beta.logpdf(x, p["alpha"], p["beta"])),
    # on a correlation matrix R: (eta - 1) log det R, up to its normalising constant
    "LKJ": PriorKind("LKJCorr", ("eta",), "correlation", None,
                     lambda R, p: (p["eta"] - 1.0) * np.linalg.slogdet(R)[1]),
}


@dataclass(frozen=True)
class Prior:
    """A prior distribution: a kind from :data:`PRIOR_KINDS` and its parameter values."""

    kind: str
    params: tuple[tuple[str, float], ...]

    @property
    def support(self) -> str:
        return PRIOR_KINDS[self.kind].support

    @property
    def values(self) -> dict[str, float]:
        return dict(self.params)

    def log_density(self, values):
        """The prior's log density at ``values`` (NumPy, elementwise; for LKJ, at correlation matrices
        ``(..., q, q)``, up to a constant).

        >>> float(Normal(1.0, 2.0).log_density(1.0)).__round__(6)
        -1.612086
        """
        return PRIOR_KINDS[self.kind].log_density(np.asarray(values, dtype=float), self.values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v:.4g}" for k, v in self.params)
        return f"{self.kind}({inner})"


def _make(kind: str, *values: float) -> Prior:
    names = PRIOR_KINDS[kind].parameters
    params = tuple((n, float(v)) for n, v in zip(names, values, strict=True))
    for name, value in params:
        if name != "mu" and not value > 0:
            raise PriorError(f"{kind}: parameter {name} must be positive, got {value}")
    return Prior(kind, params)


def Normal(mu: float = 0.0, sigma: float = 1.0) -> Prior:
    """Normal(mu, sigma) on a real-valued parameter (fixed effects)."""
    return _make("Normal", mu, sigma)


def StudentT(nu: float, mu: float = 0.0, sigma: float = 1.0) -> Prior:
    """Student-t(nu, mu, sigma) on a real-valued parameter."""
    return _make("StudentT", nu, mu, sigma)


def HalfNormal(sigma: float = 1.0) -> Prior:
    """Half-normal with scale ``sigma`` on a positive parameter (SDs, sigma)."""
    return _make("HalfNormal", sigma)


def HalfStudentT(nu: float = 3.0, sigma: float = 1.0) -> Prior:
    """Half-Student-t, brms's default shape for group SDs."""
    return _make("HalfStudentT", nu, sigma)


def HalfCauchy(beta: float = 1.0) -> Prior:
    """Half-Cauchy with scale ``beta`` on a positive parameter."""
    return _make("HalfCauchy", beta)


def Exponential(lam: float = 1.0) -> Prior:
    """Exponential with rate ``lam`` (mean 1/lam) on a positive parameter."""
    return _make("Exponential", lam)


def Gamma(alpha: float, beta: float) -> Prior:
    """Gamma with shape ``alpha`` and rate ``beta`` on a positive parameter."""
    return _make("Gamma", alpha, beta)


def Beta(alpha: float = 1.0, beta: float = 1.0) -> Prior:
    """Beta(alpha, beta) on a probability (a zero-inflation or hurdle probability); Beta(1, 1) is uniform."""
    return _make("Beta", alpha, beta)


def LKJ(eta: float = 2.0) -> Prior:
    """LKJ(eta) on a correlation matrix; eta = 1 is uniform, larger shrinks to 0."""
    return _make("LKJ", eta)


def check_support(label: str, prior: Prior, support: str) -> None:
    """Raise :class:`PriorError` when ``prior`` cannot describe a parameter of ``support``."""
    if not isinstance(prior, Prior):
        raise PriorError(f"prior for {label!r} must be made with hb.Normal, hb.HalfNormal, ...; got {prior!r}")
    if prior.support != support:
        wanted = {"real": "Normal or StudentT", "positive": "HalfNormal, HalfStudentT, Exponential or Gamma",
                  "unit": "Beta", "correlation": "LKJ"}[support]
        raise PriorError(f"{label!r} is a {support} parameter; its prior must be {wanted}, not {prior.kind}")
