"""The continuous families' test table: one row per family, read by the unit and the statistical tests.

Each :class:`Case` names the family (and the asymmetric Laplace's quantile), the true values
of a simulation of ``y ~ x + (1 | g)`` on the family's default link, and the response's
distribution in SciPy written independently of hierbayes, in brms's parameterisation: the
reference for the log density, and the simulator of the recovery tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from recovery import exact_effects, groups
from scipy import special, stats

import hierbayes as hb


def _skew_normal(mu, p):
    """brms: mu the mean, sigma the SD, alpha the skewness; scipy's location xi and scale omega from them."""
    delta = p["alpha"] / np.sqrt(1 + p["alpha"] ** 2)
    omega = p["sigma"] / np.sqrt(1 - 2 * delta**2 / np.pi)
    return stats.skewnorm(p["alpha"], loc=mu - omega * delta * np.sqrt(2 / np.pi), scale=omega)


def _asymmetric_laplace(mu, p):
    """brms: q (1 - q) / sigma exp(-rho_q((y - mu) / sigma)); scipy's kappa^2 = q / (1 - q), scale sigma / sqrt(q (1 - q))."""
    q = p["quantile"]
    return stats.laplace_asymmetric(np.sqrt(q / (1 - q)), loc=mu, scale=p["sigma"] / np.sqrt(q * (1 - q)))


SCIPY: dict[str, Callable] = {  # (mu, params) -> frozen SciPy distribution of the response
    "beta": lambda mu, p: stats.beta(mu * p["phi"], (1 - mu) * p["phi"]),
    "gamma": lambda mu, p: stats.gamma(p["shape"], scale=mu / p["shape"]),
    "lognormal": lambda mu, p: stats.lognorm(p["sigma"], scale=np.exp(mu)),
    "weibull": lambda mu, p: stats.weibull_min(p["shape"], scale=mu / special.gamma(1 + 1 / p["shape"])),
    "exponential": lambda mu, p: stats.expon(scale=mu),
    "wald": lambda mu, p: stats.invgauss(mu / p["shape"], scale=p["shape"]),  # mean mu, shape lambda
    "exgaussian": lambda mu, p: stats.exponnorm(p["beta"] / p["sigma"], loc=mu - p["beta"], scale=p["sigma"]),
    "skew_normal": _skew_normal,
    "laplace": lambda mu, p: stats.laplace(mu, p["sigma"]),
    "asymmetric_laplace": _asymmetric_laplace,
    "von_mises": lambda mu, p: stats.vonmises(p["kappa"], loc=mu),
}


@dataclass(frozen=True)
class Case:
    family: str
    params: dict[str, float]  # the family's own parameters (true values)
    intercept: float = 1.0
    slope: float = 0.5
    sd: float = 0.5  # sd(Intercept|g)
    constants: dict[str, float] = field(default_factory=dict)
    prior: dict[str, Callable] = field(default_factory=dict)  # parameter -> (y -> documented default prior)

    @property
    def id(self) -> str:
        return self.family + "".join(f"_{k}{v:g}" for k, v in self.constants.items())

    def entry(self) -> hb.Family:
        family = hb.get_family(self.family)
        return family.with_constants(**self.constants) if self.constants else family

    def response(self, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        y = SCIPY[self.family](mu, {**self.params, **self.entry_constants}).rvs(random_state=rng)
        return np.angle(np.exp(1j * y)) if self.family == "von_mises" else y  # SciPy's angles are not wrapped

    @property
    def entry_constants(self) -> dict[str, float]:
        return dict(self.entry().constants)

    def truth(self) -> dict[str, float]:
        return {"Intercept": self.intercept, "x": self.slope, "sd(Intercept|g)": self.sd, **self.params}

    def simulate(self, seed: int = 0, n_levels: int = 30, per_level: int = 12) -> pd.DataFrame:
        """``y ~ x + (1 | g)`` with exactly ``sd`` between the level intercepts."""
        rng = np.random.default_rng(seed)
        g = groups(n_levels, per_level)
        x = rng.normal(size=g.size)
        eta = self.intercept + self.slope * x + exact_effects(rng, n_levels, self.sd)[pd.factorize(g)[0]]
        mu = self.entry().link_function.inverse(eta)
        return pd.DataFrame({"g": g, "x": x, "y": self.response(mu, rng)})


def _exponential(scale: Callable) -> Callable:
    return lambda y: hb.Exponential(1 / scale(y))


def _sd(y):
    return float(np.std(y, ddof=1))


PRECISION = lambda y: hb.Gamma(0.01, 0.01)  # noqa: E731  (phi, gamma's shape: brms's)

CASES = [
    Case("beta", {"phi": 12.0}, intercept=0.3, prior={"phi": PRECISION}),
    Case("gamma", {"shape": 4.0}, prior={"shape": PRECISION}),
    Case("lognormal", {"sigma": 0.4}, prior={"sigma": _exponential(lambda y: _sd(np.log(y)))}),
    Case("weibull", {"shape": 2.5}, prior={"shape": lambda y: hb.Gamma(2, 0.5)}),
    Case("exponential", {}),
    Case("wald", {"shape": 8.0}, prior={"shape": lambda y: hb.Gamma(2, 0.1 / np.mean(y))}),
    Case("exgaussian", {"sigma": 0.3, "beta": 0.6},
         prior={"sigma": _exponential(_sd), "beta": _exponential(_sd)}),
    Case("skew_normal", {"sigma": 0.5, "alpha": 4.0},
         prior={"sigma": _exponential(_sd), "alpha": lambda y: hb.Normal(0, 4)}),
    Case("laplace", {"sigma": 0.3}, prior={"sigma": _exponential(_sd)}),
    Case("asymmetric_laplace", {"sigma": 0.1}, constants={"quantile": 0.9}, prior={"sigma": _exponential(_sd)}),
    Case("von_mises", {"kappa": 6.0}, intercept=0.3, slope=0.4, sd=0.3, prior={"kappa": lambda y: hb.Gamma(2, 0.1)}),
]
