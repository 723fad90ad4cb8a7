"""The family registry's core: :class:`Family`, :class:`Link`, :func:`register_family`, :func:`get_family`.

One :class:`Family` entry says everything about a response distribution; the entries live
in the modules beside this one (:mod:`~hierbayes.specification.families.classic` and the
others), each calling :func:`register_family`.

An entry holds the PyMC likelihood on the linear predictor (the model; through
:mod:`hierbayes.specification.likelihood` also the pointwise log-likelihood of LOO and, by
default, draws of the response), the links it takes (each :class:`Link` with its
inverse and derivative), its own parameters and their default priors, which responses
it accepts, and its variance: ``variance(mu, params)`` for the Bayesian R-squared and
the ICC, ``quasi_variance(mu)`` for the no- and complete-pooling fits. What an entry
leaves out is derived from its other fields where that is exact; otherwise the call that
needs it raises a :class:`~hierbayes.common.errors.HierbayesError` naming the family and the
missing field. Add a family with :func:`register_family` (``docs/families.md``,
"Adding a family", lists every field).

Examples
--------
>>> get_family("poisson").link
'log'
>>> get_family("bernoulli", link="probit").link
'probit'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import DataError, HierbayesError
from hierbayes.specification import additions as _additions
from hierbayes.specification import likelihood as _likelihood
from hierbayes.specification import priors as P
from hierbayes.specification.families.links import LINKS, PARAMETER_LINKS, Link, parameter_link
from hierbayes.specification.names import category_part

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")
pytensor = deferred_import("pytensor")
special = deferred_import("scipy.special")
stats = deferred_import("scipy.stats")

__all__ = ["Family", "Link", "Thresholds", "FAMILIES", "LINKS", "PARAMETER_LINKS", "parameter_link", "ResponseSummary",
           "get_family", "register_family",
           "check_real", "check_counts", "check_binary", "check_binomial", "check_positive", "check_unit_interval", "refuse_rows"]


@dataclass(frozen=True)
class ResponseSummary:
    """What the default priors are scaled by: the response's centre and spread."""

    location: float  # link(mean of y), the centre of the intercept prior
    scale: float  # sd(y) on the identity link, 1 on the others
    thresholds: tuple[float, ...] = ()  # an ordinal family's thresholds that reproduce the categories' shares
    category_logits: tuple[float, ...] = ()  # a nominal family's log(share_k / share_1), k = 2 .. K


@dataclass(frozen=True)
class Thresholds:
    """What makes a family ordinal: the formula's intercept becomes K - 1 thresholds (K categories).

    The response is one of K ordered categories; with ``F`` the inverse link,
    ``c_k = F(tau_k - eta)`` for each threshold ``tau_k`` says how the linear predictor
    ``eta`` splits the categories (``P(y <= k)`` for ``cumulative``, ``P(y = k | y >= k)``
    for ``sratio``).

    Attributes
    ----------
    ordered : bool
        The thresholds increase (sampled with PyMC's ordered transform): ``cumulative``'s.
        brms leaves ``sratio``'s free.
    probabilities : callable
        ``(c, xp) -> P(y = k)``: the K category probabilities on the last axis from the
        ``c_k`` (last axis K - 1), written with ``xp`` = NumPy or PyTensor's tensor module
        (``concatenate``, ``cumprod``, ``ones_like``): predictions, and the model's draws where
        PyMC has no distribution of the family.
    locations : callable
        ``(link, shares) -> thresholds``: the thresholds at which ``eta = 0`` gives the
        categories the shares ``shares`` (K values summing to 1), ``link`` the link in
        NumPy: the centres of the default threshold priors and the sampler's start.

    Examples
    --------
    >>> import numpy as np
    >>> cumulative = get_family("cumulative")
    >>> cumulative.thresholds.locations(LINKS["logit"].forward, np.array([0.25, 0.5, 0.25])).round(4).tolist()
    [-1.0986, 1.0986]
    >>> cumulative.category_probabilities(np.array([0.0]), np.array([-1.0986123, 1.0986123])).round(4).tolist()
    [[0.25, 0.5, 0.25]]
    """

    ordered: bool
    probabilities: Callable[[Any, Any], Any]
    locations: Callable[[Callable[[np.ndarray], np.ndarray], np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Family:
    """A response distribution and everything that depends on it: one registry entry.

    ``params`` below is a dict of the family's parameters by name (draws or numbers);
    ``trials`` the binomial trials (None otherwise).

    Attributes
    ----------
    name : str
        As users write it: ``"gaussian"``, ``"poisson"``, ...
    link : str
        Key of :data:`LINKS`: the link in use (the first of ``links`` by default).
    links : tuple of str
        The links the family takes.
    parameters : tuple of (name, support)
        The family's own parameters (``sigma``, ``nu``, ``alpha``) by printed name, with
        their support (``"positive"`` or ``"real"``): sampled with a prior, summarised.
    default_priors : callable
        ``ResponseSummary -> {parameter name: Prior}``: a default prior for every parameter.
    likelihood : callable or None
        ``(name, eta, mean, params, observed, trials, dims) -> PyMC variable``: the
        observed variable of the model. The pointwise log-likelihood (LOO) is its compiled
        log density, and without ``random`` response draws are its compiled draws. None:
        ``distribution`` registered as the observed variable.
    check_response : callable
        ``(y, trials, column) -> None``; raises :class:`DataError` outside the support.
    variance : callable, optional
        ``(mean, params) -> array``: variance of a response (of one trial for binomial)
        given ``mean``, the inverse link of the linear predictor (as ``expected_value`` takes
        it). The Bayesian R-squared (times the trials); the ICC's latent variance on the
        identity and log links; ``quasi_variance`` of a family without parameters.
    quasi_variance : callable, optional
        ``mean -> array``: the variance function V(mu) of the no- and complete-pooling
        fits (quasi-likelihood by IRLS), needed up to a constant factor only. Default
        ``variance(mean, {})`` for a family without parameters.
    latent_variance : callable, optional
        ``(mean_at_intercept, params) -> array``: distribution-specific variance on the
        link scale (Nakagawa, Johnson & Schielzeth 2017), used by the ICC. Default: for a
        ``threshold_model``, the link's ``threshold_variance``; else from ``variance``: itself on the identity link, ``log(1 + variance / mean^2)`` on the
        log link (the lognormal approximation).
    expected_value : callable, optional
        ``(mean, params) -> array``: the expected response given ``mean`` (the inverse link of
        the linear predictor, the distribution's location) and the parameters, where the two
        differ: lognormal's ``exp(mu + sigma^2 / 2)``, a zero-inflated count's ``(1 - zi) mu``.
        Predictions of ``kind="mean"`` (brms's ``posterior_epred``). Default: ``mean`` itself.
    distribution : callable, optional
        ``(mean, params, trials) -> unnamed PyMC distribution`` (``pm.Gamma.dist(...)``): the
        response's distribution, which censoring and truncation wrap (``pm.Censored``,
        ``pm.Truncated``), and the likelihood when ``likelihood`` is None.
    constants : tuple of (name, value)
        Fixed values the likelihood reads from ``params`` as if they were parameters
        (asymmetric Laplace's ``quantile``); part of :attr:`fingerprint`, so families that
        differ in them never share a compiled model. Set them with :meth:`with_constants`.
    location_response : callable, optional
        ``y -> array``: the response on the scale where the inverse link of the linear
        predictor is its mean, where that is not ``y`` itself (lognormal: ``log y``). The
        default priors are scaled by it and the no- and complete-pooling fits regress it.
    random : callable, optional
        ``(rng, mean, params, trials) -> array``: draws of the response in NumPy
        (predictions, posterior predictive checks, calibration). Default: draws of
        ``likelihood``'s variable, compiled.
    needs_trials : bool
        The response is ``cbind(successes, failures)``.
    threshold_model : bool
        The response is a latent variable cut at a threshold, whose distribution's CDF is
        the inverse link (bernoulli, binomial): the ICC's residual variance is then the
        link's ``threshold_variance`` (logit pi^2/3, probit 1) unless ``latent_variance`` is given.
    link_likelihoods : tuple of (link, callable)
        Likelihoods of ``likelihood``'s signature written on ``eta`` for one link
        (cheaper gradients); see :attr:`likelihood_on_link`.
    derived : tuple of (name, callable)
        Quantities computed from the parameters, ``params -> value`` in PyTensor and NumPy alike
        (ordered beta's ``cutone = cutzero + cutgap``): recorded in the posterior under ``name``
        and summarised with the parameters, without a prior of their own.
    nominal : bool
        The response is one of K unordered categories (``categorical``) or counts of each
        (``multinomial``): the formula is fitted once per category after the first, as the parts
        ``mu<category>`` of a distributional model, and the likelihood reads their linear predictors
        from ``params`` in the categories' order, the first category's being ``eta`` (zero)
        (:mod:`hierbayes.specification.families.nominal`).
    categories : tuple
        A nominal family's categories in order, the first the reference: set from the data by
        :meth:`with_categories` (empty in the registry).
    thresholds : Thresholds, optional
        An ordinal family's: the formula's intercept becomes K - 1 thresholds (labels
        ``Intercept[1]`` .. ``Intercept[K-1]``), which the likelihood reads as
        ``params["thresholds"]`` (one vector, the last axis), and the response is coded
        0 .. K-1 for the likelihood (:mod:`hierbayes.specification.families.ordinal`).
    """

    name: str
    link: str
    links: tuple[str, ...]
    parameters: tuple[tuple[str, str], ...]
    default_priors: Callable[[ResponseSummary], dict[str, P.Prior]]
    likelihood: Callable[..., Any] | None
    check_response: Callable[[np.ndarray, np.ndarray | None, str], None]
    variance: Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray] | None = None
    quasi_variance: Callable[[np.ndarray], np.ndarray] | None = None
    latent_variance: Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray] | None = None
    expected_value: Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray] | None = None
    distribution: Callable[..., Any] | None = None
    constants: tuple[tuple[str, float], ...] = ()
    location_response: Callable[[np.ndarray], np.ndarray] | None = None
    random: Callable[..., np.ndarray] | None = None
    needs_trials: bool = False
    threshold_model: bool = False
    link_likelihoods: tuple[tuple[str, Callable[..., Any]], ...] = ()
    derived: tuple[tuple[str, Callable[[dict], Any]], ...] = ()
    thresholds: Thresholds | None = None
    nominal: bool = False
    categories: tuple = ()

    def __post_init__(self):
        # tuples, so an entry written with lists still hashes (its compiled functions are cached by it)
        if self.likelihood is None and self.distribution is None:
            raise HierbayesError(f"family {self.name!r}: give a likelihood or a distribution")
        for field in ("links", "parameters", "link_likelihoods", "constants", "derived"):
            object.__setattr__(self, field, tuple(tuple(v) if isinstance(v, list) else v for v in getattr(self, field)))
        unknown = [link for link in (self.link, *self.links) if link not in LINKS]
        if unknown:
            raise HierbayesError(f"family {self.name!r}: unknown link {unknown[0]!r}; the links are {sorted(LINKS)}")
        if self.link not in self.links:
            raise HierbayesError(f"family {self.name!r}: its link {self.link!r} is not among its links {self.links}")

    @property
    def reported(self) -> tuple[str, ...]:
        """The names of the family's parameters and derived quantities, as summaries print them."""
        return tuple(name for name, _ in self.parameters + self.derived)

    @property
    def link_function(self) -> Link:
        return LINKS[self.link]

    def formula_link(self, parameter: str) -> Link:
        """The link of ``parameter``'s own formula (distributional regression): :func:`parameter_link` of
        its support.

        >>> get_family("negative_binomial").formula_link("alpha").name
        'log'
        """
        return parameter_link(dict(self.parameters)[parameter])

    @property
    def likelihood_on_link(self) -> Callable[..., Any]:
        """``likelihood``, or the same density written on the linear predictor for this link.

        ``link_likelihoods`` pairs a link with a likelihood of the same signature that works from
        ``eta`` directly (cheaper gradients); the others use ``likelihood`` with the mean.

        >>> get_family("bernoulli").likelihood_on_link.__name__, get_family("bernoulli", link="probit").likelihood_on_link.__name__
        ('_bernoulli_logit_like', '_bernoulli_like')
        """
        return dict(self.link_likelihoods).get(self.link, self.likelihood or self._registered_distribution)

    def _registered_distribution(self, name, eta, mean, params, observed, trials, dims):
        """The likelihood of a family given as a ``distribution``: that distribution, observed."""
        return pm.modelcontext(None).register_rv(self.distribution(mean, params, trials), name, observed=observed)

    def observed_variable(self, name: str, eta, params: dict, observed, trials=None, dims=None, additions=None):
        """Add the response's PyMC variable on the linear predictor ``eta``: the one place the
        model (:mod:`hierbayes.model.pymc_model`) and the pointwise log-likelihood
        (:mod:`hierbayes.specification.likelihood`) write the likelihood, so LOO scores the
        density that was sampled. Call inside a ``pm.Model`` context. ``additions`` holds the
        response's addition data by argument (:mod:`hierbayes.specification.additions`)."""
        mean = self.link_function.inverse_tensor(eta)
        params = self._with_constants(params)
        for derived, value in self.derived:
            pm.Deterministic(derived, value(params))
        if additions:
            return _additions.observed_variable(self, name, mean, params, observed, trials, additions)
        return self.likelihood_on_link(name, eta, mean, params, observed, trials, dims)

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the code that enters the model (the likelihood on this link and the inverse
        link), so a family registered again under the same name with other code gets a model of
        its own, not a compiled one of the same name from the cache.

        >>> get_family("poisson").fingerprint == get_family("poisson").fingerprint
        True
        """
        parts = [self.name, self.link, repr(self.parameters), repr(self.needs_trials), repr(self.constants)]
        derived = tuple(function for _, function in self.derived)
        parts.append(repr([name for name, _ in self.derived]))
        for function in (self.likelihood_on_link, self.distribution, self.link_function.inverse_tensor, *derived):
            code = getattr(function, "__code__", None)
            parts.append(repr(function) if code is None else _code_text(code))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def with_constants(self, **values: float) -> Family:
        """This family with other values of its ``constants`` (a new entry; the registry's is unchanged).

        >>> get_family("asymmetric_laplace").with_constants(quantile=0.9).constants
        (('quantile', 0.9),)
        """
        known = dict(self.constants)
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise HierbayesError(f"the {self.name!r} family has no constant {unknown[0]!r}; its constants are "
                                 f"{sorted(known) or 'none'}")
        return replace(self, constants=tuple((name, float(values.get(name, value))) for name, value in known.items()))

    def with_categories(self, categories: tuple) -> Family:
        """A nominal family for the response's ``categories`` (the first the reference): one real parameter,
        a part with the formula of its own, per other category (a new entry; the registry's is unchanged).

        >>> get_family("categorical").with_categories(("bus", "car", "walk")).parameters
        (('mucar', 'real'), ('muwalk', 'real'))
        """
        return replace(self, categories=tuple(categories),
                       parameters=tuple((category_part(c), "real") for c in categories[1:]))

    def nominal_probabilities(self, eta: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        """A nominal family's category probabilities ``(..., N, K)``: the softmax of ``eta`` (the reference's)
        and its parts' linear predictors ``params[mu<c>]`` (each broadcast against ``eta``)."""
        logits = np.broadcast_arrays(eta, *(params[name] for name, _ in self.parameters))
        return special.softmax(np.stack(logits, axis=-1), axis=-1)

    def _with_constants(self, params: dict) -> dict:
        """``params`` and the family's constants: what its functions read."""
        return {**params, **dict(self.constants)}

    def response_on_location_scale(self, y: np.ndarray) -> np.ndarray:
        """The response on the scale where the inverse link is its mean: ``location_response(y)``, else ``y``."""
        return y if self.location_response is None else self.location_response(y)

    def _missing(self, field: str, needed_by: str) -> HierbayesError:
        if self.nominal:
            return HierbayesError(f"the {self.name!r} family is nominal: {needed_by} needs the {field} of a response "
                                  "with one mean on the link's scale; its categories have one linear predictor "
                                  "each after the first")
        if self.thresholds is not None:
            return HierbayesError(f"the {self.name!r} family is ordinal: {needed_by} needs the {field} of a response "
                                  "with a mean on the link's scale, which ordered categories do not have")
        return HierbayesError(f"the {self.name!r} family has no {field}, which {needed_by} needs: register the "
                              f"family with {field}=... (see 'Adding a family' in docs/families.md)")

    # -- what the rest of the package calls ------------------------------------------------------
    def log_likelihood(self, y: np.ndarray, eta: np.ndarray, params: dict[str, np.ndarray],
                       trials: np.ndarray | None = None, additions: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Pointwise log-likelihood, ``eta``'s shape: the compiled log density of the model's own
        observed variable (:func:`hierbayes.specification.likelihood.log_likelihood`), with the
        response's addition data (weighted, censored, truncated)."""
        return _likelihood.log_likelihood(self, y, eta, params, trials, additions)

    def expected_response(self, eta: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        """The expected response given ``eta``: ``expected_value`` of the inverse link, else the inverse link.

        >>> import numpy as np
        >>> get_family("poisson").expected_response(np.log(np.array([2.0, 5.0])), {}).round(12).tolist()
        [2.0, 5.0]
        """
        mean = self.link_function.inverse(eta)
        return mean if self.expected_value is None else self.expected_value(mean, self._with_constants(params))

    def category_probabilities(self, eta: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """An ordinal family's ``P(y = k)``, ``(..., N, K)``, from ``eta`` ``(..., N)`` and the thresholds ``(..., K-1)``."""
        if self.thresholds is None:
            raise HierbayesError(f"the {self.name!r} family is not ordinal: its responses have no category probabilities")
        c = self.link_function.inverse(np.asarray(thresholds)[..., None, :] - np.asarray(eta)[..., None])
        return self.thresholds.probabilities(c, np)

    def draw(self, rng: np.random.Generator, eta: np.ndarray, params: dict[str, np.ndarray],
             trials: np.ndarray | None = None, additions: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Draws of the response given ``eta``: ``random`` on the mean, else the likelihood's own draws
        (always with truncation bounds or known SDs among ``additions``; weights and censoring do not
        change draws)."""
        additions = _additions.draw_additions(additions or {})
        if self.random is not None and not additions:
            return self.random(rng, self.link_function.inverse(eta), self._with_constants(params), trials)
        return _likelihood.draw(self, rng, eta, params, trials, additions)

    def response_variance(self, mean: np.ndarray, params: dict[str, np.ndarray],
                          trials: np.ndarray | float = 1.0) -> np.ndarray:
        """Variance of a response (the count of successes for binomial) given its mean: ``trials * variance``."""
        if self.variance is None:
            raise self._missing("variance", "the Bayesian R-squared (fit.r2())")
        return trials * self.variance(mean, self._with_constants(params))

    def working_variance(self, mean: np.ndarray) -> np.ndarray:
        """V(mu) of the no- and complete-pooling fits: ``quasi_variance``, else ``variance(mean, {})``."""
        if self.quasi_variance is not None:
            return self.quasi_variance(mean)
        if self.variance is not None and not self.parameters:
            return self.variance(mean, {})
        raise self._missing("quasi_variance", "the no- and complete-pooling estimates (fit.pooling())")

    def icc_variance(self, mean: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        """Residual variance on the link scale for the ICC: ``latent_variance``, else derived from ``variance``."""
        params = self._with_constants(params)
        if self.latent_variance is not None:
            return self.latent_variance(mean, params)
        if self.threshold_model and (threshold := self.link_function.threshold_variance) is not None:
            return np.full(np.shape(mean), threshold)
        if self.variance is not None and self.link == "identity":
            return self.variance(mean, params)
        if self.variance is not None and self.link == "log":
            return np.log1p(self.variance(mean, params) / mean**2)
        raise self._missing("latent_variance", f"the ICC with the {self.link} link (fit.icc())")

    def summarise_response(self, y: np.ndarray, trials: np.ndarray | None) -> ResponseSummary:
        """Centre and scale of the response used to scale the default priors (an ordinal family's: the
        thresholds that give the categories their shares in the data)."""
        if self.nominal:  # y: each row's category 0 .. K-1, or a multinomial's counts (N, K)
            counts = y.sum(axis=0) if y.ndim == 2 else np.bincount(y.astype(np.int64), minlength=len(self.categories))
            return ResponseSummary(0.0, 1.0, category_logits=tuple(float(v) for v in np.log(counts[1:] / counts[0])))
        if self.thresholds is not None:
            _, counts = np.unique(y, return_counts=True)
            locations = self.thresholds.locations(self.link_function.forward, counts / counts.sum())
            return ResponseSummary(0.0, 1.0, tuple(float(v) for v in locations))
        y = self.response_on_location_scale(y)
        mean = float(np.mean(y / trials)) if trials is not None else float(np.mean(y))
        if self.link == "identity":
            sd = float(np.std(y, ddof=1)) if y.size > 1 else 1.0
            return ResponseSummary(mean, sd if sd > 0 else 1.0)
        eps = 1e-3
        if self.link in ("logit", "probit", "cloglog"):
            mean = min(max(mean, eps), 1 - eps)
        elif self.link != "tan_half":  # an angle's link takes any mean in (-pi, pi); the others positive ones
            mean = max(mean, eps)
        return ResponseSummary(float(LINKS[self.link].forward(mean)), TAN_HALF_SCALE if self.link == "tan_half" else 1.0)


TAN_HALF_SCALE = 0.4
"""The prior scale ``s`` of a mean on the tan_half link (von_mises), where the other links have 1: the
intercept Normal(m, 1), a slope Normal(0, 1 / sd(x)), an SD HalfNormal(0.4). The mean direction
``2 atan(eta)`` reaches +-pi only as ``eta`` goes to +-inf, so a mean near pi is two far-apart branches
of ``eta`` that the sampler cannot cross; under Normal(0, 2.5) ``|eta| > tan(1.4) = 5.8`` (a direction
within 0.34 rad of pi) has prior mass 0.02 and ``|eta| > tan(1) = 1.56`` (beyond 2 rad) 0.53, under
Normal(0, 1) 7e-9 and 0.12."""


def _code_text(code) -> str:
    """A function's code as text that is the same in every process (nested code included, no addresses)."""
    consts = tuple(_code_text(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts)
    return repr((code.co_code, consts, code.co_names, code.co_varnames))


# --- response checks -------------------------------------------------------------


def check_real(y, trials, column):
    pass


def check_counts(y, trials, column):
    bad = (y < 0) | (y != np.round(y))
    if bad.any():
        value = y[bad][0]
        raise DataError(
            f"response {column!r} must be non-negative whole counts for this family; "
            f"found {value:g} ({int(bad.sum())} such rows)"
        )


def check_binary(y, trials, column):
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise DataError(
            f"response {column!r} must be 0 or 1 for the bernoulli family; found {y[bad][0]:g} "
            f"({int(bad.sum())} such rows). For counts out of n trials use cbind(successes, failures) "
            "with family='binomial'"
        )


def refuse_rows(y, bad, column: str, requirement: str, hint: str = "") -> None:
    """The support checks' error, when any row is ``bad``: the column, what it ``must`` be, the first value
    outside and the rows, then ``hint``.

    >>> refuse_rows(np.array([1.0, -2.0]), np.array([False, True]), "y", "be above 0 for this family")
    Traceback (most recent call last):
    ...
    hierbayes.common.errors.DataError: response 'y' must be above 0 for this family; found -2 on 1 rows (first at rows [1])
    """
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"response {column!r} must {requirement}; found {y[bad][0]:g} on {bad.sum()} rows "
                        f"(first at rows {rows[:5].tolist()})" + (f". {hint}" if hint else ""))


def check_positive(y, trials, column):
    """Refuse responses that are not above zero (gamma, lognormal, weibull, ...), naming the rows."""
    refuse_rows(y, ~(y > 0), column, "be above 0 for this family")


def check_unit_interval(y, trials, column):
    """Refuse proportions outside (0, 1) (beta), naming the rows and the families that take exact 0s and 1s."""
    refuse_rows(y, ~((y > 0) & (y < 1)), column, "lie strictly between 0 and 1 for this family",
                "For proportions with exact 0s or 1s use family='ordered_beta' or 'zero_one_inflated_beta'")


def check_binomial(y, trials, column):
    check_counts(y, None, column)
    if trials is None:
        raise DataError("the binomial family needs trials: write the response as cbind(successes, failures)")
    if (trials < y).any():
        raise DataError(f"successes exceed trials in {column!r} on {int((trials < y).sum())} rows")


FAMILIES: dict[str, Family] = {}


ALIASES: dict[str, str] = {}
"""Other names users write for a family (``"normal"`` for ``"gaussian"``)."""


def register_family(family: Family, aliases: tuple[str, ...] = ()) -> Family:
    """Add ``family`` to the registry under ``family.name`` (replacing any earlier one).

    Every field of :class:`Family` and what it powers is in ``docs/families.md``
    ("Adding a family"); ``variance``, ``quasi_variance``, ``latent_variance`` and
    ``random`` are optional.

    Examples
    --------
    A gamma response with a log link and a shape parameter (the built-in ``gamma`` is this one,
    with every optional field):

    >>> import numpy as np, pandas as pd, pymc as pm
    >>> import hierbayes as hb
    >>> def gamma_like(name, eta, mean, params, observed, trials, dims):
    ...     shape = params["shape"]
    ...     return pm.Gamma(name, alpha=shape, beta=shape / mean, observed=observed, shape=observed.shape)
    >>> def positive(y, trials, column):
    ...     if (y <= 0).any():
    ...         raise hb.DataError(f"response {column!r} must be positive for the gamma family")
    >>> gamma = hb.register_family(hb.Family(
    ...     name="my_gamma", link="log", links=("log", "identity"), parameters=(("shape", "positive"),),
    ...     default_priors=lambda r: {"shape": hb.Gamma(2.0, 0.5)}, likelihood=gamma_like,
    ...     check_response=positive, variance=lambda mu, p: mu**2 / p["shape"], quasi_variance=np.square))
    >>> df = pd.DataFrame({"y": [1.2, 0.7, 3.1, 2.2, 0.4, 1.9], "g": list("aabbcc")})
    >>> model = hb.Model("y ~ 1 + (1 | g)", df, family="my_gamma")
    >>> model.prior_summary().loc["shape", "prior"]
    'Gamma(alpha=2, beta=0.5)'
    >>> from hierbayes.posterior.pooling import no_pooling  # each level's own fit: log of its mean
    >>> no_pooling(model.design, model.family, "g").estimates[:, 0].round(4).tolist()
    [-0.0513, 0.9746, 0.1398]
    >>> gamma.draw(np.random.default_rng(1), np.zeros((2, 3)), {"shape": 2.0}).shape  # from the likelihood
    (2, 3)

    ``model.fit()`` then samples it, and LOO, predictions, the ICC, R-squared and
    ``fit.pooling`` work as for the built-in families.
    """
    FAMILIES[family.name] = family
    ALIASES.update({alias: family.name for alias in aliases})
    return family


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
        key = ALIASES.get(key, key)
        if key not in FAMILIES:
            raise HierbayesError(f"unknown family {family!r}; choose one of {sorted(FAMILIES)}")
        fam = FAMILIES[key]
    if link is None or link == fam.link:
        return fam
    if link not in fam.links:
        raise HierbayesError(f"family {fam.name!r} takes the links {fam.links}, not {link!r}")
    return replace(fam, link=link)
