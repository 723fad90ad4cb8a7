"""Link functions: ``eta = g(mean)`` with the inverse, in NumPy and PyTensor, and its derivative.

A family names its links by these keys (:data:`LINKS`); a family parameter with a formula of its
own gets the link of its support (:func:`parameter_link`).

Examples
--------
>>> LINKS["logit"].inverse(0.0), LINKS["log"].forward(1.0)
(np.float64(0.5), np.float64(0.0))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import HierbayesError

pt = deferred_import("pytensor.tensor")
pytensor = deferred_import("pytensor")
special = deferred_import("scipy.special")
stats = deferred_import("scipy.stats")

__all__ = ["Link", "LINKS", "PARAMETER_LINKS", "parameter_link"]


@dataclass(frozen=True)
class Link:
    """A link function g: ``eta = g(mean)``.

    Attributes
    ----------
    name : str
    forward : callable
        ``mean -> eta`` in NumPy.
    inverse : callable
        ``eta -> mean`` in NumPy (predictions, the ICC, the pooling fits).
    inverse_tensor : callable
        ``eta -> mean`` in PyTensor (the model).
    mean_derivative : callable, optional
        ``eta -> d mean / d eta`` in NumPy: the weights of the no- and complete-pooling
        fits. Without it, the derivative of ``inverse_tensor`` by PyTensor, compiled.
    threshold_variance : float, optional
        For a link that is the CDF of a standard distribution (a threshold model of a binary
        or binomial response), that distribution's variance: the residual variance on the
        link scale of the ICC (logit: pi^2/3, probit: 1; Nakagawa, Johnson and Schielzeth 2017).

    Examples
    --------
    >>> import numpy as np
    >>> LINKS["logit"].derivative(np.array([0.0])).tolist()
    [0.25]
    >>> LINKS["log"].bounded, LINKS["identity"].bounded
    (True, False)
    """

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]
    inverse_tensor: Callable[[Any], Any]
    mean_derivative: Callable[[np.ndarray], np.ndarray] | None = None
    threshold_variance: float | None = None

    def derivative(self, eta: np.ndarray) -> np.ndarray:
        """``d mean / d eta`` at ``eta``: ``mean_derivative``, or the gradient of ``inverse_tensor``."""
        if self.mean_derivative is not None:
            return self.mean_derivative(eta)
        eta = np.asarray(eta, dtype=float)
        return _tensor_derivative(self.inverse_tensor)(eta.ravel()).reshape(eta.shape)

    @property
    def bounded(self) -> bool:
        """Whether the mean has a bound that an estimate can run off to: a finite mean at infinite eta."""
        with np.errstate(all="ignore"):
            return bool(np.isfinite(self.inverse(np.array([-np.inf, np.inf]))).any())


@functools.lru_cache(maxsize=32)
def _tensor_derivative(inverse_tensor: Callable[[Any], Any]) -> Callable[[np.ndarray], np.ndarray]:
    """``eta -> d mean / d eta`` by PyTensor's gradient of ``inverse_tensor`` (Python linker: quick to compile)."""
    eta = pt.vector("eta", dtype="float64")
    return pytensor.function([eta], pytensor.grad(inverse_tensor(eta).sum(), eta), mode="FAST_COMPILE")


def _probit_inverse_tensor(eta):
    return 0.5 * pt.erfc(-eta / np.sqrt(2.0))


LINKS: dict[str, Link] = {
    "identity": Link("identity", lambda m: m, lambda e: e, lambda e: e, np.ones_like),
    "log": Link("log", np.log, np.exp, lambda e: pt.exp(e), np.exp),
    "logit": Link("logit", lambda m: special.logit(m), lambda e: special.expit(e), lambda e: pt.sigmoid(e),
                  lambda e: special.expit(e) * special.expit(-e), threshold_variance=np.pi**2 / 3),
    "probit": Link("probit", lambda m: stats.norm.ppf(m), lambda e: stats.norm.cdf(e), _probit_inverse_tensor,
                   lambda e: stats.norm.pdf(e), threshold_variance=1.0),
    "cloglog": Link("cloglog", lambda m: np.log(-np.log1p(-m)), lambda e: -np.expm1(-np.exp(e)),
                    lambda e: -pt.expm1(-pt.exp(e)), lambda e: np.exp(e - np.exp(e)),
                    threshold_variance=np.pi**2 / 6),
    "inverse": Link("inverse", lambda m: 1.0 / m, lambda e: 1.0 / e, lambda e: 1.0 / e, lambda e: -1.0 / e**2),
    "sqrt": Link("sqrt", np.sqrt, np.square, lambda e: pt.sqr(e), lambda e: 2.0 * e),
    "softplus": Link("softplus", lambda m: np.log(np.expm1(m)), lambda e: np.logaddexp(0.0, e),
                     lambda e: pt.softplus(e), lambda e: special.expit(e)),
    "tan_half": Link("tan_half", lambda m: np.tan(m / 2.0), lambda e: 2.0 * np.arctan(e),
                     lambda e: 2.0 * pt.arctan(e), lambda e: 2.0 / (1.0 + e**2)),
}
"""Every link a family may take, by name (brms's names; ``tan_half`` is von Mises's)."""

PARAMETER_LINKS = {"positive": "log", "unit": "logit", "real": "identity"}
"""The link of a family parameter's own formula (distributional regression), by the parameter's support."""


def parameter_link(support: str) -> Link:
    """The link on which a family parameter of ``support`` gets a formula: log for a positive parameter
    (``sigma``, ``alpha``, ``nu``), logit for a probability (``zi``), identity for a real one (brms's
    defaults).

    >>> parameter_link("positive").name, parameter_link("unit").name, parameter_link("real").name
    ('log', 'logit', 'identity')
    """
    if support not in PARAMETER_LINKS:
        raise HierbayesError(f"a parameter of support {support!r} cannot have a formula; the supports that can are "
                             f"{sorted(PARAMETER_LINKS)}")
    return LINKS[PARAMETER_LINKS[support]]
