"""A formula over a DataFrame, validated, ready to fit: the model behind ``hb.Model``.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> model.prior_summary().loc["sd(Days|Subject)", "prior"]
'HalfNormal(sigma=19.61)'
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import pandas as pd

from hierbayes.common.errors import HierbayesError
from hierbayes.model import collapsed as _collapsed
from hierbayes.model import data as _data
from hierbayes.model.coordinates import centres_intercept_only, parameterization_of, sampled_design
from hierbayes.model.parameterization import (
    CENTERED_ABOVE,
    CENTERED_ABOVE_BESIDE_INTEGRATED,
    choose_parameterization,
)
from hierbayes.model.pymc_model import build_model
from hierbayes.specification.additions import response_family
from hierbayes.specification.columns import expand_dot, used_columns
from hierbayes.specification.design import Design, make_design
from hierbayes.specification.evaluation import check_namespace
from hierbayes.specification.families import Family, get_family, with_quantile
from hierbayes.specification.families.nominal import nominal_model
from hierbayes.specification.formula import Formula, ModelSpec, parse
from hierbayes.specification.parameters import check_distinct_names, default_priors, prior_targets, resolve_priors
from hierbayes.specification.priors import Prior
from hierbayes.specification.readers import as_pandas

__all__ = ["ModelDefinition"]


class ModelDefinition:
    """A Bayesian multilevel regression model: formula, data, family and priors, validated.

    The model stage of the pipeline; :class:`hierbayes.Model` adds fitting to it.

    Validation (formula syntax, columns, family support, priors) happens here, before
    anything is compiled.

    Parameters
    ----------
    formula : str or Formula
        lme4/brms-style: ``"y ~ x + (1 + x | g) + (1 | h)"``; see :mod:`hierbayes.specification.formula`.
        ``hb.Formula("y ~ x + (1 | g)", sigma="~ x + (1 | g)")`` gives family parameters formulas of
        their own (distributional regression; docs/formulas.md).
    data : DataFrame
        pandas, polars, a pyarrow table or any dataframe narwhals reads. The model keeps its own copy
        of the columns the formula uses (``model.data``), so
        later changes to this DataFrame do not reach the model, its fits or saved files.
    family : str or Family, default "gaussian"
        ``gaussian``, ``student_t``, ``bernoulli``, ``binomial``, ``poisson``,
        ``negative_binomial``, and the continuous ``beta``, ``gamma``, ``lognormal``, ``weibull``,
        ``exponential``, ``wald``, ``exgaussian``, ``skew_normal``, ``laplace``,
        ``asymmetric_laplace`` and ``von_mises`` (see :mod:`hierbayes.specification.families`).
    link : str, optional
        Another of the family's links (``"probit"`` for bernoulli).
    quantile : float in (0, 1), optional
        The quantile that ``family="asymmetric_laplace"`` models (quantile regression; by
        default the median): the same as ``family=hb.asymmetric_laplace(quantile=...)``.
    priors : dict, optional
        Priors by printed name (``"Days"``, ``"sd(Days|Subject)"``, ``"sigma"``) or by
        class (``"b"``, ``"sd"``, ``"cor"``); the rest keep their defaults.
    parameterization : {"auto", "non-centered", "centered", "centered-intercept", "partially-centered"} or dict, default "auto"
        How sampled group effects are drawn, for every grouping factor or per factor name.
        ``"non-centered"`` (``r_j = L z_j``) mixes well when a level's data say little next
        to the spread of the levels; ``"centered"`` draws the effects around the fixed
        effects in one factor (:func:`hierbayes.model.coordinates.hierarchical_centering`), which
        mixes far better when levels have much data; ``"centered-intercept"`` draws the
        varying intercepts centered and the slopes non-centered given them, for levels with
        much data about their intercept and little about their slopes; ``"partially-centered"``
        draws each level's effects part-way between the two, as far as that level's data say
        (:class:`hierbayes.model.parameterizations.PartiallyCentered`). ``"auto"`` chooses per
        factor from a method-of-moments estimate of how much each level's data say about each
        coefficient (:mod:`hierbayes.model.parameterization`): centered when nine levels in ten
        are well informed about every coefficient, partially centered when they are about the
        intercept only, else non-centered. The choice is in
        :attr:`parameterization_choice` and in the fit's summary. Unused when the effects are
        integrated out (:attr:`collapsed`), except for the factors a crossed design samples.
    collapse : bool, optional
        Integrate the group effects out of the likelihood and draw them back exactly
        after sampling (:mod:`hierbayes.model.collapsed`). By default (None) this is done
        wherever it is exact: a gaussian model with every varying term on one grouping
        factor, or on a factor and one nested in it (``(1 | school/class)``); with crossed
        factors, the factor with the most levels is integrated out and the others' effects
        are sampled. ``False`` turns it off; ``True`` refuses models where it is not exact.
    na_action : {"drop", "error"}, default "drop"
        Rows with missing values in used columns: dropped with a warning, or refused.
    namespace : dict, optional
        Your own functions (or values) for the formula, by the name it uses:
        ``namespace={"logit": scipy.special.logit}`` for ``"y ~ logit(p) + (1 | g)"``. A formula
        is evaluated with the data's columns, NumPy as ``np`` and the documented transforms only
        (:mod:`hierbayes.specification.evaluation`), never with the variables of your session.
        A saved fit does not store these; pass them again to :func:`hierbayes.load`.

    Examples
    --------
    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"),
    ...              priors={"Days": hb.Normal(0, 10)})
    >>> m.priors["Days"]
    Normal(mu=0, sigma=10)
    """

    fit_class: type | None = None
    """The class of this model's fits (:class:`hierbayes.Fit` for ``hb.Model``; None: the plain
    :class:`~hierbayes.posterior.fit.Posterior`)."""

    def __init__(self, formula: str | Formula, data: pd.DataFrame, family: str | Family = "gaussian", *,
                 link: str | None = None, quantile: float | None = None, priors: Mapping[str, Prior] | None = None,
                 parameterization: str | Mapping[str, str] = "auto", na_action: str = "drop",
                 collapse: bool | None = None, namespace: Mapping[str, Any] | None = None):
        self.formula = formula
        # as given, for a refit with changes (Fit.update): "auto" stays "auto" on new data
        self.options: dict[str, Any] = {"parameterization": parameterization, "collapse": collapse,
                                        "na_action": na_action}
        self.family = get_family(family, link)
        if quantile is not None:
            self.family = with_quantile(self.family, quantile)
        data = as_pandas(data)
        self.namespace: dict[str, Any] = check_namespace(namespace, data.columns)
        # the formula is checked before anything in it is evaluated; "." becomes the columns it stands for
        self.spec: ModelSpec = expand_dot(parse(formula), data.columns, self.namespace)
        self.family = response_family(self.spec.response, self.family)  # se(s): no sigma unless se(s, sigma = TRUE)
        # categorical, multinomial: the formula once per category after the first, and the family of the categories
        self.spec, self.family = nominal_model(self.spec, data, self.family)
        # our own copy of the columns the formula reads: later edits of the caller's DataFrame must not
        # leak into predictions, checks or saved fits
        self.data: pd.DataFrame = data[used_columns(self.spec, data.columns, self.namespace)].copy()
        self.design: Design = make_design(self.spec, self.data, self.family, na_action=na_action,
                                          namespace=self.namespace)
        check_distinct_names(self.design)
        _data.check_factor_names(self.design, self.family)
        self.user_priors = dict(priors or {})
        self.priors: dict[str, Prior] = resolve_priors(self.design, self.family, self.user_priors)
        self.collapsed: bool = _check_collapse(collapse, self.design, self.family)
        self.parameterization_choice = None
        if isinstance(parameterization, str) and parameterization == "auto":
            if self.collapsed and not sampled_design(self.design).factors:  # no effects sampled: nothing to choose
                parameterization = "non-centered"
            else:
                above = CENTERED_ABOVE_BESIDE_INTEGRATED if self.collapsed else CENTERED_ABOVE
                parameterization, self.parameterization_choice = choose_parameterization(self.design, self.family,
                                                                                         above)
        self.parameterization = _check_parameterization(parameterization, self.design)
        self.refitted_from: dict[str, str] = {}  # factors drawn otherwise than chosen (reparameterized)

    def reparameterized(self, parameterization: str | Mapping[str, str]) -> ModelDefinition:
        """This model with its sampled group effects drawn in other coordinates: the same posterior,
        another compiled model. ``refitted_from`` keeps, per factor that changed, what it was.

        >>> import hierbayes as hb
        >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"), collapse=False)
        >>> other = m.reparameterized({"Subject": "non-centered"})
        >>> m.parameterization, other.parameterization, other.refitted_from
        ({'Subject': 'centered'}, {'Subject': 'non-centered'}, {'Subject': 'centered'})
        """
        other = copy.copy(self)
        for built in ("pymc_model", "fitting_model"):  # cached_property values: the new coordinates build their own
            other.__dict__.pop(built, None)
        other.parameterization = _check_parameterization(parameterization, self.design)
        other.refitted_from = {f: was for f in self.design.factors
                               if (was := parameterization_of(self.parameterization, f))
                               != parameterization_of(other.parameterization, f)}
        return other

    # -- the PyMC model ------------------------------------------------------------------------
    @cached_property
    def pymc_model(self):
        """The PyMC model (built on first use)."""
        return build_model(self.design, self.family, self.priors, self.parameterization)

    @cached_property
    def fitting_model(self):
        """The PyMC model the sampler runs: with the group effects integrated out when
        :attr:`collapsed`, else :attr:`pymc_model`."""
        if not self.collapsed:
            return self.pymc_model
        return build_model(self.design, self.family, self.priors, self.parameterization, collapse=True)

    @property
    def structure(self) -> tuple:
        """Key of this model's structure: models with equal keys share one compiled model."""
        return _data.structure_key(self.design, self.family, self.priors, self.parameterization, self.collapsed)

    def prior_summary(self) -> pd.DataFrame:
        """Every prior in force, by printed parameter name, and whether it is a default.

        Returns
        -------
        pandas.DataFrame
            Index ``parameter``; columns ``class``, ``prior``, ``source``.
        """
        defaults = default_priors(self.design, self.family)
        rows = []
        for label, cls, _ in prior_targets(self.design, self.family):
            prior = self.priors[label]
            rows.append({"parameter": label, "class": cls, "prior": repr(prior),
                         "source": "default" if defaults.get(label) == prior else "user"})
        return pd.DataFrame(rows).set_index("parameter")

    def __repr__(self) -> str:
        d = self.design
        groups = ", ".join(f"{f} ({len(fd.levels)} levels)" for f, fd in d.all_factors.items()) or "none"
        return (f"hierbayes.Model: {str(self.formula).strip() if d.parts else self.spec.formula}\n  family: {self.family.name} (link: {self.family.link})\n"
                f"  data: {d.n_obs} rows; groups: {groups}")


def _check_collapse(value, design: Design, family: Family) -> bool:
    if value not in (None, True, False):
        raise HierbayesError(f"collapse must be True, False or None (where exact), not {value!r}")
    reason = _collapsed.collapse_reason(design, family)
    if value and reason:
        raise HierbayesError(f"collapse=True is not possible: {reason}")
    return reason is None and value is not False


def _check_parameterization(value, design: Design):
    allowed = _data.PARAMETERIZATIONS
    if isinstance(value, Mapping):
        for factor, p in value.items():
            if factor not in design.factors:
                raise HierbayesError(f"parameterization given for {factor!r}, which is not a grouping factor "
                                     f"of this model ({list(design.factors)})")
            if p not in allowed:
                raise HierbayesError(f"parameterization for {factor!r} must be one of {allowed}, not {p!r}")
    elif value not in allowed:
        raise HierbayesError(f"parameterization must be one of {(*allowed, 'auto')}, not {value!r}")
    for factor in design.factors:
        if parameterization_of(value, factor) == "centered-intercept" and (
                why := centres_intercept_only(design, factor)):
            raise HierbayesError(f'parameterization "centered-intercept" is not possible: {why}')
    return dict(value) if isinstance(value, Mapping) else value
