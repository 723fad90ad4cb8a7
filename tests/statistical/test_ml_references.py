"""Agreement with maximum likelihood on real data: lme4, glmmTMB and ordinal (``validation/reference``).

Each row of ``ROWS`` is a case of ``validation/reference/references.json``: a dataset an R package
ships, a model, and R's maximum-likelihood estimates in hierbayes's parameterisation. hierbayes
fits the same rows with its default (weak) priors, and each posterior mean must lie within a
tolerance of the ML estimate, in units of that parameter's posterior SD:

- fixed effects, thresholds and family parameters (``sigma``, ``alpha``, ...): 0.5 SD. The data
  are informative and the priors weak, so the posterior mean sits at the ML estimate up to the
  posterior's skew and Monte Carlo error (about 0.05 SD at 2 x 500 draws). Measured on the rows
  that run today, seeds 1-3: fixed effects within 0.15 SD, sigma and alpha within 0.25 SD;
- group SDs: 1 SD. With 15-23 levels the posterior of an SD is skewed right, so its mean lies
  above the ML estimate, which is itself biased low (the gap lme4's REML corrects): measured
  +0.37 to +0.63 SD here (sleepstudy, cbpp, Salamanders; seeds 1-3);
- correlations: 0.5 SD (sleepstudy's is near 0, where the LKJ(2) prior pulls it, so the prior
  moves the mean little: measured within 0.06 SD).

and a fixed effect's posterior SD must be 0.8 to 1.35 times its ML standard error (it is a bit
larger: it carries the uncertainty of the variance components, which the ML SE holds fixed;
measured 1.0-1.17). A wrong sign, a wrongly scaled parameter or a missing term misses by
several SDs. A few cases widen a tolerance, each with the reason and the measured value beside it.
"""

from __future__ import annotations

import functools

import pandas as pd
import pytest
import reference_numbers as R
from scipy.special import expit

import hierbayes as hb

FIT = dict(draws=500, tune=500, chains=2, seed=1, progressbar=False, warn=False)
TOLERANCE = {"fixed": 0.5, "threshold": 0.5, "family": 0.5, "cor": 0.5, "sd": 1.0}  # posterior SDs; see above
SE_RATIO = (0.8, 1.35)  # posterior SD / ML SE of a fixed effect or threshold


def row(case: str, *marks: pytest.MarkDecorator, **tolerance: float):
    """One case of the JSON with its tolerances (``TOLERANCE`` unless given here, by kind or by label)."""
    return pytest.param(case, {**TOLERANCE, **tolerance}, marks=marks, id=case)


ROWS = [
    # families hierbayes has today
    row("gaussian_sleepstudy_lme4"),
    row("gaussian_sleepstudy_glmmTMB"),
    row("binomial_cbpp_lme4"),
    row("binomial_cbpp_glmmTMB"),
    row("poisson_salamanders"),
    row("poisson_salamanders_lme4"),
    row("negative_binomial_salamanders"),
    # the family pack (issue 18)
    # beta: 32 rows, phi = 302 (SE 91): its posterior is skewed right like an SD's, and the default
    # prior (brms's Gamma(0.01, 0.01)) has rate 0.01, a factor e^-3 at phi = 300: measured -1.06 SDs
    row("beta_gasoline", phi=1.25),
    row("gamma_cake"),  # 270 rows: shape 52 (SE 4.9) is well determined
    row("lognormal_cake"),
    # zi alone: 38% structural zeros (SE 0.03), well determined
    row("zero_inflated_poisson_salamanders"),
    # zi = 0.07 with SE 0.13: barely identified against alpha, at the boundary where a
    # probability's posterior mean lies well above the ML mode; alpha trades off with it
    row("zero_inflated_negative_binomial_salamanders",
        zi=1.0, alpha=1.0),
    row("hurdle_poisson_salamanders"),
    # 72 ratings, 9 judges: thresholds and effects (SE 0.3-1.0) are informative; sd(judge) has 9 levels
    row("cumulative_logit_wine"),
    row("cumulative_probit_wine"),
    # distributional formulas (sigma ~ Days, zi ~ mined, hu ~ mined)
    row("gaussian_sigma_days_sleepstudy"),
    # zi ~ mined: the zero-inflation logit and the count part's mined effect trade off (the two
    # explain the same zeros at mined sites), a curved joint posterior whose Laplace SEs at the mode
    # understate its spread (measured: posterior SD 1.43 x the Intercept's ML SE, means 0.53-0.55 SDs
    # off for the two mined effects, sd(site) +1.08 SDs as group SDs' skew puts them)
    row("zero_inflated_poisson_zi_mined_salamanders", se_ratio=(0.8, 1.6), sd=1.25,
        **{"mined[T.yes]": 0.75, "zi_mined[T.yes]": 0.75}),
    # zi_Intercept = -2.0 with SE 0.9: few structural zeros at unmined sites, a weakly identified logit
    row("zero_inflated_negative_binomial_zi_mined_salamanders", zi_Intercept=1.0, **{"zi_mined[T.yes]": 1.0}),
    row("hurdle_poisson_hu_mined_salamanders"),
]


def model_for(ref: dict) -> hb.Model:
    """The hierbayes model of a reference case (distributional formulas after the response's, as brms)."""
    formula = hb.Formula(ref["formula"], **ref["distributional"]) if ref["distributional"] else ref["formula"]
    return hb.Model(formula, R.data(ref["dataset"]), family=ref["family"], link=ref["link"])


@functools.cache
def summary_of(case: str) -> pd.DataFrame:
    """The posterior summary of a case's model; cases that share a model (lme4 and glmmTMB) share the fit."""
    ref = R.case(case)
    return _summary(ref["dataset"], ref["formula"], tuple(ref["distributional"].items()), ref["family"], ref["link"])


@functools.cache
def _summary(dataset, formula, distributional, family, link) -> pd.DataFrame:
    ref = dict(dataset=dataset, formula=formula, distributional=dict(distributional), family=family, link=link)
    return model_for(ref).fit(**FIT).summary()


@pytest.mark.parametrize(("case", "tolerance"), ROWS)
def test_posterior_means_agree_with_maximum_likelihood(case, tolerance):
    table = summary_of(case)
    missing = sorted(set(R.estimates(case)) - set(table.index))
    assert not missing, f"{case}: no row for {missing} in the summary {list(table.index)}"
    assert table["r_hat"].max() < 1.1, f"{case}: chains disagree, r_hat {table['r_hat'].max():.3f}"
    misses = []
    for label, e in R.case(case)["estimates"].items():
        mean, sd = table.loc[label, "mean"], table.loc[label, "sd"]
        z = (mean - e["estimate"]) / sd
        tol = tolerance.get(label, tolerance[e["kind"]])
        if abs(z) > tol:
            misses.append(f"{label}: posterior mean {mean:.4g}, ML {e['estimate']:.4g}, {z:+.2f} posterior SDs (> {tol})")
        if e["kind"] in ("fixed", "threshold") and e["se"] is not None:
            lo, hi = tolerance.get("se_ratio", SE_RATIO)
            if not lo * e["se"] < sd < hi * e["se"]:
                misses.append(f"{label}: posterior SD {sd:.4g} against ML SE {e['se']:.4g}")
    assert not misses, f"{case} ({R.case(case)['engine']}):\n" + "\n".join(misses)


@pytest.mark.parametrize(("lme4_case", "tmb_case"), [
    ("gaussian_sleepstudy_lme4", "gaussian_sleepstudy_glmmTMB"),
    ("binomial_cbpp_lme4", "binomial_cbpp_glmmTMB"),
    ("poisson_salamanders_lme4", "poisson_salamanders"),
])
def test_lme4_and_glmmTMB_agree(lme4_case, tmb_case):
    """Two R packages on the same model: the conversions to hierbayes's labels and scales hold.

    Within 1% of glmmTMB's SE: their optimisers stop at slightly different points (measured: at
    most 0.25% of an SE, Salamanders' mined[T.yes]); a wrong conversion (a variance for an SD, a
    log scale) is off by far more."""
    lme4, tmb, se = R.estimates(lme4_case), R.estimates(tmb_case), R.standard_errors(tmb_case)
    assert set(lme4) == set(tmb)
    for label in lme4:
        assert abs(lme4[label] - tmb[label]) < 0.01 * se[label], (label, lme4[label], tmb[label])


def test_hurdle_probabilities_are_the_shares_of_zeros():
    """A hurdle's zero part is a logistic regression of its own: at the ML estimate, hu is the share
    of zeros at each level of its formula (a check of glmmTMB's zi read as brms's hu, logit scale)."""
    df = R.data("salamanders")
    zero = df["count"].eq(0)
    assert R.estimates("hurdle_poisson_salamanders")["hu"] == pytest.approx(zero.mean(), abs=1e-5)
    by_level = R.estimates("hurdle_poisson_hu_mined_salamanders")
    logit = {"no": by_level["hu_Intercept"], "yes": by_level["hu_Intercept"] + by_level["hu_mined[T.yes]"]}
    for level, eta in logit.items():
        assert expit(eta) == pytest.approx(zero[df["mined"] == level].mean(), abs=1e-5), level


def test_every_case_converged_and_has_a_row():
    """R's fits all converged, and no case of the JSON is left out of ``ROWS``."""
    cases = R.references()["cases"]
    for name, ref in cases.items():
        assert ref["convergence"]["ok"], (name, ref["convergence"])
        assert len(R.data(ref["dataset"])) == R.references()["datasets"][ref["dataset"]]["rows"]
    assert {p.values[0] for p in ROWS} == set(cases)
