"""The posterior of a model and its summaries: what ``hb.Fit`` is built on.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> bool(fit.fixed_effects().loc["Days", "mean"] > 5)
True
>>> fit.posterior["r_Subject"].sel(Subject="308", Subject__coef="Days").shape
(2, 200)
"""

from __future__ import annotations

import html
import warnings
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from hierbayes.backend.sampling import describe_attempts
from hierbayes.common.errors import ConvergenceWarning, HierbayesError
from hierbayes.common.version import __version__
from hierbayes.model.collapsed import collapse_reason
from hierbayes.model.data import model_coords, response_name
from hierbayes.model.parameterization import describe as describe_parameterization
from hierbayes.posterior.diagnostics import check_convergence, few_levels
from hierbayes.posterior.predict import observed_data
from hierbayes.posterior.summaries import draw_stats, format_table, interval_names, parameter_draws, summary_table
from hierbayes.specification.linear_predictor import fixed_effect_draws, linear_predictor, posterior_effects
from hierbayes.specification.names import FIXED_DIM, FIXED_EFFECTS, FactorNames, FixedNames
from hierbayes.specification.parameters import Parameter, model_parameters

__all__ = ["Posterior", "NO_GROUPS", "formula_links"]

NO_GROUPS = ("The model has no grouping factor (no group term such as (1 | g)), so every row shares the "
             "population-level effects: complete pooling.")
"""Said where a reader looks for group-level effects (summary, report) in a model without a group term."""

LOG_LIKELIHOOD_MAX_VALUES = 50_000_000  # draws x rows kept in memory (400 MB); above it, on request only


def formula_links(model) -> dict[str, str]:
    """The link of each formula by what it predicts (``mu``, the mean; a family parameter), as summaries print
    them: a nominal model's categories are on the family's link (log odds against the reference), with no mean's."""
    family, parts = model.family, model.design.parts
    links = {} if family.nominal else {"mu": family.link}
    return links | {p.part: family.link if family.nominal else family.formula_link(p.part).name for p in parts}


class Posterior:
    """Posterior draws of a model, with summaries by posterior mean and 95% equal-tailed intervals.

    The posterior stage of the pipeline; :class:`hierbayes.Fit` adds plots, the MAP lesson and saving.

    Attributes
    ----------
    model : Model
    idata : xarray.DataTree
        The ArviZ DataTree: ``posterior``, ``sample_stats``, ``observed_data`` and
        ``log_likelihood`` groups. Group effects are ``r_<factor>`` with dims
        ``(<factor>, <factor>__coef)``, coordinates the level names.
    sampler : str
    timings : dict
        Seconds spent building, compiling and sampling.
    """

    def __init__(self, model, idata: xr.DataTree, *, sampler: str, timings: dict | None = None,
                 seed: int | None = None, prob: float = 0.95):
        self.model = model
        self.idata = idata
        self.sampler = sampler
        self.timings = dict(timings or {})
        self.seed = seed
        self.prob = prob
        self.settings: dict = {}  # the sampler settings of Model.fit (none for a loaded fit)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, model, run, *, seed: int | None, log_likelihood: bool = False) -> Posterior:
        """Label the raw sampler output with the model's coordinates and add the data groups."""
        design = model.design
        posterior = run.tree["posterior"].to_dataset()
        coords = model_coords(design)
        posterior = posterior.assign_coords({k: v for k, v in coords.items() if k in posterior.dims})
        groups = {
            "posterior": posterior,
            "sample_stats": run.tree["sample_stats"].to_dataset(),
            "observed_data": observed_data(model),
        }
        tree = xr.DataTree.from_dict(groups)
        tree.attrs.update({"hierbayes_version": __version__, "formula": str(model.formula),
                           "family": model.family.name, "link": model.family.link, "sampler": run.sampler, "sampler_path": run.path})
        if run.attempts:  # the target acceptance rate of the kept draws, and any reruns after divergences
            tree.attrs["target_accept"] = run.attempts[-1][0]
        if refits := describe_attempts(run.attempts):
            tree.attrs["divergence_refits"] = refits
        fit = cls(model, tree, sampler=run.sampler, timings=run.timings, seed=seed)
        if log_likelihood and posterior.sizes["chain"] * posterior.sizes["draw"] * design.n_obs <= LOG_LIKELIHOOD_MAX_VALUES:
            fit.add_log_likelihood()
        return fit

    def add_log_likelihood(self) -> None:
        """Store the pointwise log-likelihood in the ``log_likelihood`` group (for LOO).

        Each value is the log density of the sampled model's observed variable at that draw's
        linear predictor and family parameters: the family's PyMC likelihood, compiled
        (:meth:`~hierbayes.specification.families.Family.log_likelihood`), not a second implementation.
        A collapsed fit scores the rows given the group effects drawn after sampling, as
        the non-collapsed model would.
        """
        d, fam, post = self.model.design, self.model.family, self.posterior
        b = fixed_effect_draws(post, d)
        effects, params = posterior_effects(post, d), self._family_draws()
        logp = np.empty((post.sizes["chain"], post.sizes["draw"], d.n_obs))
        for c in range(logp.shape[0]):  # a chain at a time: temporaries of draws x rows, not chains x draws x rows
            eta = linear_predictor(b[c], d.X, d.offset, [(r[c], i, Z) for r, i, Z in effects])
            logp[c] = fam.log_likelihood(d.observed, eta, {k: v[c] for k, v in params.items()}, d.trials,
                                         d.additions)
        name = response_name(d)
        self.idata["log_likelihood"] = xr.DataTree(xr.Dataset({name: (("chain", "draw", "obs"), logp)}))

    # -- draws ----------------------------------------------------------------------------------
    @property
    def posterior(self) -> xr.Dataset:
        """The posterior draws as an xarray Dataset."""
        return self.idata["posterior"].to_dataset()

    @cached_property
    def parameters(self) -> list[Parameter]:
        """Every summarised parameter with its printed label and posterior variable."""
        return model_parameters(self.model.design, self.model.family)

    def _family_draws(self) -> dict[str, np.ndarray]:
        """The family parameters' draws for the fitting rows (:func:`~hierbayes.posterior.predict.family_parameter_draws`)."""
        from hierbayes.posterior.predict import family_parameter_draws

        return family_parameter_draws(self.model, self.posterior)

    def linear_predictor(self) -> np.ndarray:
        """Linear predictor of the fitting data, (chain, draw, obs)."""
        post, d = self.posterior, self.model.design
        b = fixed_effect_draws(post, d)
        return linear_predictor(b, d.X, d.offset, posterior_effects(post, d))

    def expected_mean(self) -> np.ndarray:
        """Expected response (mean on the response scale) of the fitting data, (chain, draw, obs)."""
        return self.model.family.expected_response(self.linear_predictor(), self._family_draws())

    # -- prediction and checking (logic in predict.py, checking.py) --------------------------------
    def predict(self, data: pd.DataFrame | None = None, kind: str = "mean", groups: str = "known", *,
                allow_new_levels: bool = False, seed: int | None = None) -> xr.DataArray:
        """Posterior draws of predictions, (chain, draw, obs); see :func:`hierbayes.posterior.predict.predict`."""
        from hierbayes.posterior.predict import predict

        return predict(self, data, kind, groups, allow_new_levels=allow_new_levels, seed=seed)

    def predict_summary(self, data: pd.DataFrame | None = None, kind: str = "mean", groups: str = "known", *,
                        allow_new_levels: bool = False, seed: int | None = None,
                        prob: float | None = None) -> pd.DataFrame:
        """Mean, SD and interval of the predictions per row; see :func:`hierbayes.posterior.predict.predict_summary`."""
        from hierbayes.posterior.predict import predict_summary

        return predict_summary(self, data, kind, groups, allow_new_levels=allow_new_levels, seed=seed, prob=prob)

    def posterior_predictive(self, seed: int | None = None) -> xr.DataArray:
        """Replicated data, stored in ``idata["posterior_predictive"]``; see :mod:`hierbayes.posterior.checking`."""
        from hierbayes.posterior.checking import posterior_predictive

        return posterior_predictive(self, seed=seed)

    def prior_predictive(self, draws: int = 500, seed: int | None = None) -> xr.DataArray:
        """Data drawn from the priors, stored with the prior draws in ``idata``; returns the data draws."""
        tree = self.model.sample_prior_predictive(draws=draws, seed=seed)
        for group in ("prior", "prior_predictive"):
            self.idata[group] = tree[group]
        return self.idata["prior_predictive"][response_name(self.model.design)]

    def loo(self, warn: bool = True):
        """PSIS-LOO (arviz-stats ELPDData), high Pareto k explained; see :func:`hierbayes.posterior.checking.loo`."""
        from hierbayes.posterior.checking import loo

        return loo(self, warn=warn)

    def kfold(self, k: int = 10, by: str | None = None, seed: int | None = None, client=None, **fit_kwargs):
        """Grouped K-fold cross-validation (whole levels of ``by`` held out: predicting new groups), the
        refits in parallel on Dask with ``client=``; see :func:`hierbayes.posterior.crossvalidation.kfold`."""
        from hierbayes.posterior.crossvalidation import kfold

        return kfold(self, k, by, seed, client=client, **fit_kwargs)

    def prior_sensitivity(self, threshold: float = 0.05) -> pd.DataFrame:
        """Power-scaling prior and likelihood sensitivity of every printed parameter (priorsense);
        see :func:`hierbayes.posterior.sensitivity.prior_sensitivity`."""
        from hierbayes.posterior.sensitivity import prior_sensitivity

        return prior_sensitivity(self, threshold)

    def r2(self, prob: float | None = None, summary: bool = True):
        """Bayesian R-squared; see :func:`hierbayes.posterior.checking.bayes_r2`."""
        from hierbayes.posterior.checking import bayes_r2

        return bayes_r2(self, prob=prob, summary=summary)

    # -- interpretation (logic in interpretation.py, marginal_means.py, hypotheses.py) -----------------
    def predictions(self, newdata=None, by=None, groups: str = "population", kind: str = "mean",
                    scale: str = "response", **kwargs):
        """Predictions for rows or a grid (a dict of column -> values), averaged within ``by`` groups;
        see :func:`hierbayes.posterior.interpretation.predictions`.

        For example ``fit.predictions({"Days": [0, 9]})``.
        """
        from hierbayes.posterior.interpretation import predictions

        return predictions(self, newdata, by, groups, kind, scale, **kwargs)

    def comparisons(self, variables, by=None, comparison="difference", groups: str = "population", **kwargs):
        """Average counterfactual comparisons (``{"trt": "pairwise"}``, ``{"x": "sd"}``, ``{"x": (15, 25)}``);
        see :func:`hierbayes.posterior.interpretation.comparisons`.

        For example ``fit.comparisons({"Days": (0, 9)})``.
        """
        from hierbayes.posterior.interpretation import comparisons

        return comparisons(self, variables, by, comparison, groups, **kwargs)

    def slopes(self, variables, by=None, groups: str = "population", **kwargs):
        """Average marginal effects of numeric predictors; see :func:`hierbayes.posterior.interpretation.slopes`.

        For example ``fit.slopes("Days")``.
        """
        from hierbayes.posterior.interpretation import slopes

        return slopes(self, variables, by, groups, **kwargs)

    def marginal_means(self, specs, by=None, scale: str = "response", **kwargs):
        """Estimated marginal means over a balanced reference grid (emmeans);
        see :func:`hierbayes.posterior.marginal_means.marginal_means`.

        For example ``fit.marginal_means("trt")``.
        """
        from hierbayes.posterior.marginal_means import marginal_means

        return marginal_means(self, specs, by, scale, **kwargs)

    def contrasts(self, specs, method="pairwise", by=None, scale: str = "response", **kwargs):
        """Contrasts of marginal means: ``"pairwise"``, ``"trt.vs.ctrl"``, ``"poly"``;
        see :func:`hierbayes.posterior.marginal_means.contrasts`.

        For example ``fit.contrasts("trt", "trt.vs.ctrl")``.
        """
        from hierbayes.posterior.marginal_means import contrasts

        return contrasts(self, specs, method, by, scale, **kwargs)

    def hypothesis(self, claims, **kwargs) -> pd.DataFrame:
        """brms's ``hypothesis()``: ``"Days > 5"``, ``"sd(Intercept|Subject) > 20"``, ``"Intercept + 3 * Days = 280"``,
        per level with ``scope="coef"`` or ``"ranef"`` and ``group=``, or with ``class_="sd"``;
        see :func:`hierbayes.posterior.hypotheses.hypothesis`.

        For example ``fit.hypothesis("Days > 5")``.
        """
        from hierbayes.posterior.hypotheses import hypothesis

        return hypothesis(self, claims, **kwargs)

    # -- tables ---------------------------------------------------------------------------------
    def _table(self, parameters: list[Parameter], prob: float | None) -> pd.DataFrame:
        return summary_table(parameter_draws(self.posterior, parameters), [p.label for p in parameters],
                             prob or self.prob)

    def summary(self, prob: float | None = None) -> pd.DataFrame:
        """Every population-level parameter: fixed effects, variance components, family parameters.

        Columns ``mean``, ``sd``, the equal-tailed interval (``2.5%``, ``97.5%`` for
        ``prob=0.95``), ``ess_bulk``, ``ess_tail``, ``r_hat``. Group effects are in
        :meth:`group_effects`.
        """
        return self._table(self.parameters, prob)

    def fixed_effects(self, prob: float | None = None) -> pd.DataFrame:
        """Population-level effects, indexed by term as formulaic names it (``floor[T.1]``)."""
        return self._table([p for p in self.parameters if p.cls in ("Intercept", "b")], prob)

    def variance_components(self, prob: float | None = None) -> pd.DataFrame:
        """Group SDs ``sd(x|g)``, correlations ``cor(a,b|g)`` and family parameters (``sigma``)."""
        return self._table([p for p in self.parameters if p.cls not in ("Intercept", "b")], prob)

    def group_effects(self, factor: str, prob: float | None = None, part: str | None = None) -> pd.DataFrame:
        """Per level and varying coefficient: the deviation and the group's total coefficient.

        The deviation ``r`` is the level's departure from the population value; the total
        is ``population coefficient + r`` (just ``r`` when the coefficient has no
        population-level term). With ``part`` (``"sigma"``), those of that family parameter's
        own formula, on its link.

        Returns
        -------
        DataFrame
            MultiIndex (level, coefficient); columns ``n`` (observations of the level),
            ``mean``, ``sd``, interval, ``total_mean``, ``total_sd`` and the total's interval.

        Raises
        ------
        HierbayesError
            When ``factor`` is not a grouping factor of the model (or the model has none), or
            ``part`` names no family parameter with a formula of its own.
        """
        design = self.model.design.check_part(part)
        design.check_factor(factor)
        prob = prob or self.prob
        post = self.posterior
        names, fixed = FactorNames(factor, part), FixedNames(part)
        r = post[names.effects].transpose("chain", "draw", names.level_dim, names.coef_dim).values
        coefs = design.factor_coefs(factor)
        total = r.copy()
        for k, coef in enumerate(coefs):
            if coef in design.fixed_names:
                total[..., k] += post[fixed.effects].sel({fixed.dim: coef}).transpose("chain", "draw").values[..., None]
        levels = design.factors[factor].levels
        index = pd.MultiIndex.from_product([levels, coefs], names=[factor, "coefficient"])
        dev = {k: v.ravel() for k, v in draw_stats(r, prob).items()}
        tot = {f"total_{k}": v.ravel() for k, v in draw_stats(total, prob).items()}
        n = np.repeat(design.factors[factor].counts, len(coefs))
        return pd.DataFrame({"n": n, **dev, **tot}, index=index)

    def icc(self, prob: float | None = None) -> pd.DataFrame:
        """Intra-class correlation of each grouping factor that has a varying intercept.

        ``ICC_g = sd(Intercept|g)^2 / (sum_h sd(Intercept|h)^2 + v)``, draw by draw, where
        ``v`` is the residual variance on the latent (link) scale: ``sigma^2`` for
        gaussian, ``pi^2/3`` for logit, ``1`` for probit, ``log(1 + 1/lambda)`` for poisson
        and ``log(1 + 1/lambda + 1/alpha)`` for negative binomial with
        ``lambda = exp(Intercept + sum_h sd(Intercept|h)^2 / 2)`` (Nakagawa, Johnson and
        Schielzeth 2017): the family's ``icc_variance`` (its registry entry's
        ``latent_variance``, or the default from its ``variance``). Varying slopes are not in
        the denominator (the ICC at x = 0).

        Raises
        ------
        HierbayesError
            When the model has no grouping factor (complete pooling), or none with a varying intercept,
            or when a family parameter has its own formula (the residual variance then differs by row).
        """
        d, fam, post = self.model.design, self.model.family, self.posterior
        if fam.nominal:
            raise HierbayesError(f"the ICC is undefined for the {fam.name!r} family: each category after the first has "
                                 "a linear predictor and group effects of its own, with no one residual variance; "
                                 "compare their sd(mu<category>_Intercept|g) in fit.summary() instead")
        if d.parts:
            raise HierbayesError(f"the ICC is undefined when {d.parts[0].part} has a formula of its own: the residual "
                                 "variance differs by row, so no one share of the variance is the groups'; compare "
                                 "sd(Intercept|g) with the predicted values of fit.predict(kind=...) instead")
        if not d.factors:
            raise HierbayesError(f"the ICC needs a grouping factor, and the model {self.model.spec.formula} has none "
                                 "(it is the complete-pooling model)")
        variances = {f: post[FactorNames(f).sd].sel({FactorNames(f).coef_dim: "Intercept"}).transpose(
                         "chain", "draw").values ** 2 for f in d.factors if "Intercept" in d.factor_coefs(f)}
        if not variances:
            raise HierbayesError("the ICC needs a varying intercept, and no grouping factor has one")
        total = sum(variances.values())
        intercept = post[FIXED_EFFECTS].sel({FIXED_DIM: "Intercept"}).values if "Intercept" in d.fixed_names else 0.0
        lam = fam.link_function.inverse(intercept + total / 2) if fam.link == "log" else intercept
        params = {name: post[name].transpose("chain", "draw").values for name, _ in fam.parameters}
        residual = fam.icc_variance(np.asarray(lam) * np.ones_like(total), params)
        draws = np.stack([v / (total + residual) for v in variances.values()], axis=-1)
        return pd.DataFrame(draw_stats(draws, prob or self.prob), index=pd.Index(list(variances), name="factor"))

    # -- pooling (logic in pooling.py) --------------------------------------------------------------
    def pooling(self, factor: str, term: str = "Intercept", prob: float | None = None,
                part: str | None = None) -> pd.DataFrame:
        """No, complete and partial pooling of ``term`` per level (of a family parameter's formula with
        ``part="sigma"``); see :func:`hierbayes.posterior.pooling.pooling`."""
        from hierbayes.posterior.pooling import pooling

        return pooling(self, factor, term, prob, part)

    # -- diagnostics -------------------------------------------------------------------------------
    def diagnostics(self) -> pd.DataFrame:
        """R-hat, ESS, divergences, tree depth and E-BFMI, each with a plain-language message.

        R-hat and ESS cover every summarised parameter and every group effect.
        """
        table = self.summary()
        design = self.model.design
        for formula, factor in ((d, f) for d in (design, *design.parts) for f in d.factors):
            names = FactorNames(factor, formula.part)
            r = self.posterior[names.effects]
            draws = r.transpose("chain", "draw", ...).values.reshape(r.sizes["chain"], r.sizes["draw"], -1)
            labels = [names.effect_label(lvl, c) for lvl in r[names.level_dim].values for c in r[names.coef_dim].values]
            table = pd.concat([table, summary_table(draws, labels)])
        return check_convergence(self.idata["sample_stats"].to_dataset(), table)

    def warn_if_unconverged(self) -> bool:
        """Warn (:class:`~hierbayes.common.errors.ConvergenceWarning`) for every failed check; True if all pass."""
        checks = self.diagnostics()
        failed = checks[~checks["ok"]]
        for message in failed["message"]:
            warnings.warn(message, ConvergenceWarning, stacklevel=3)
        return failed.empty

    # -- display -----------------------------------------------------------------------------------
    def _sections(self, prob: float | None = None) -> list[tuple[str, pd.DataFrame]]:
        table = self.summary(prob)
        design, sections = self.model.design, []
        for factor, fd in design.all_factors.items():  # a nominal model's are in its categories' formulas
            rows = [p.label for p in self.parameters if p.factor == factor]
            sections.append((f"~{factor} (levels: {len(fd.levels)})", table.loc[rows]))
        fixed = [p.label for p in self.parameters if p.cls in ("Intercept", "b")]
        if fixed:
            sections.append(("Population-level effects:", table.loc[fixed]))
        reported = set(self.model.family.reported)  # its parameters without a formula, and derived values
        family = [p.label for p in self.parameters if p.label in reported]
        if family:
            sections.append(("Family-specific parameters:", table.loc[family]))
        return sections

    def _header(self) -> list[str]:
        m, post = self.model, self.posterior
        lo, hi = interval_names(self.prob)
        return [
            f" Family: {m.family.name}",
            "  Links: " + "; ".join(f"{part} = {link}" for part, link in formula_links(m).items()),
            f"Formula: {m.spec.formula}",
            *(f"         {part.spec.formula}" for part in m.design.parts),
            f"   Data: {m.design.n_obs} rows" + (f" ({m.design.n_dropped} dropped for missing values)"
                                                  if m.design.n_dropped else ""),
            f"  Draws: {post.sizes['chain']} chains x {post.sizes['draw']} draws (sampler: {self.sampler})",
            *([f"         ({self.idata.attrs['divergence_refits']})"] if self.idata.attrs.get("divergence_refits") else []),
            *([f"         ({self.idata.attrs['parameterization_refit']})"]
              if self.idata.attrs.get("parameterization_refit") else []),
            *filter(None, [describe_parameterization(m)]),
            *([f"         (not integrated out: {collapse_reason(m.design, m.family)})"]
              if m.design.parts and m.design.factors else []),
            f"Posterior means and SDs; {100 * self.prob:g}% equal-tailed intervals [{lo}, {hi}]",
        ]

    def describe(self, digits: int = 2, prob: float | None = None) -> str:
        """The printed summary (``print(fit)``), with estimates to ``digits`` decimals.

        Warnings first (failed convergence checks), then the model, the group-level and
        population-level estimates and the family's parameters, as brms's ``summary()``.
        ESS are whole numbers and R-hat has three decimals, whatever ``digits`` is.
        """
        lines = [f"WARNING: {message}" for message in self._failed_checks()] + self._header() + [""]
        if not self.model.design.all_factors:
            lines += [f"Group-level effects: none. {NO_GROUPS}", ""]
        group_started = False
        for title, frame in self._sections(prob):
            if title.startswith("~") and not group_started:
                lines.append("Group-level effects:")
                group_started = True
            lines += [title, format_table(frame, digits).to_string(), ""]
        failed = self._failed_checks()
        lines.append("Diagnostics: all checks passed." if not failed else "Diagnostics: " + " ".join(failed))
        lines += [f"Few levels: {message}" for message in few_levels(self.model.design)]
        return "\n".join(lines)

    def _failed_checks(self) -> list[str]:
        checks = self.diagnostics()
        return list(checks.loc[~checks["ok"], "message"])

    def __repr__(self) -> str:
        return self.describe()

    def _repr_html_(self) -> str:
        """The notebook's view: everything :meth:`describe` prints, warnings first."""
        failed = self._failed_checks()
        parts = ["<div class='hierbayes-fit'>"]
        if failed:
            parts.append("<div class='hierbayes-warnings' style='background:#fdecea;border-left:4px solid #d93025;"
                         "padding:0.3em 0.8em'><b>Do not trust these numbers yet:</b><ul>"
                         + "".join(f"<li>{html.escape(m)}</li>" for m in failed) + "</ul></div>")
        parts.append("<pre>" + html.escape("\n".join(self._header())) + "</pre>")
        if not self.model.design.all_factors:
            parts += ["<h4>Group-level effects: none</h4>", f"<p>{html.escape(NO_GROUPS)}</p>"]
        for title, frame in self._sections():
            parts += [f"<h4>{html.escape(title)}</h4>", format_table(frame).to_html(border=0)]
        parts.append("<p>Diagnostics: all checks passed.</p>" if not failed else
                     "<p>Diagnostics: " + html.escape(" ".join(failed)) + "</p>")
        parts += [f"<p class='few-levels'>Few levels: {html.escape(message)}</p>"
                  for message in few_levels(self.model.design)]
        parts.append("</div>")
        return "\n".join(parts)
