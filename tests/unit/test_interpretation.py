"""Predictions, comparisons, slopes, marginal means, contrasts, hypotheses and conditional effects.

Each quantity is checked against the same quantity computed here by hand from the posterior
draws (``b``, ``r_g``) with NumPy, not through the functions under test: exactly where the
arithmetic is the same, to the finite difference's accuracy for slopes.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

import hierbayes as hb
from hierbayes.posterior.grids import conditional_grid, data_grid, fixed_interactions
from hierbayes.posterior.hypotheses import parse_claim
from hierbayes.posterior.marginal_means import polynomial_contrasts
from hierbayes.viz.effects import effect_lines

matplotlib.use("Agg")

SAMPLING = dict(draws=150, tune=200, chains=2, seed=3, progressbar=False, warn=False)


def simulated(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 8, n)
    df = pd.DataFrame({"x": rng.normal(1.0, 2.0, n), "trt": rng.choice(["ctl", "drug"], n),
                       "dose": rng.choice(["low", "mid", "high"], n), "g": [f"g{j}" for j in g]})
    u = rng.normal(0, 0.4, 8)[g]
    drug, dose = (df["trt"] == "drug").to_numpy(), df["dose"].map({"high": 0.4, "low": 0.0, "mid": 0.1}).to_numpy()
    df["y"] = 1.0 + 0.5 * df["x"] + 0.8 * drug + u + rng.normal(0, 1, n)
    df["count"] = rng.poisson(np.exp(0.3 + 0.15 * df["x"] + 0.4 * drug + dose + u))
    df["event"] = rng.binomial(1, expit(-0.2 + 0.4 * df["x"] + 0.9 * drug + u))
    return df


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return simulated()


@pytest.fixture(scope="module")
def gaussian(data):
    return hb.Model("y ~ x + trt + (1 | g)", data).fit(**SAMPLING)


@pytest.fixture(scope="module")
def poisson(data):
    return hb.Model("count ~ x + trt + dose + (1 | g)", data, "poisson").fit(**SAMPLING)


@pytest.fixture(scope="module")
def bernoulli(data):
    return hb.Model("event ~ x + trt + (1 | g)", data, "bernoulli").fit(**SAMPLING)


def coef(fit, term: str) -> np.ndarray:
    """Draws (chain, draw, 1) of one population-level coefficient."""
    return fit.posterior["b"].sel(term=term).transpose("chain", "draw").values[..., None]


def group_intercepts(fit, data: pd.DataFrame) -> np.ndarray:
    """Each row's fitted group intercept, (chain, draw, rows)."""
    r = fit.posterior["r_g"].sel(g__coef="Intercept")
    return np.stack([r.sel(g=level).transpose("chain", "draw").values for level in data["g"]], axis=-1)


def eta_by_hand(fit, data: pd.DataFrame, *, drug=None, x=None, known: bool = True) -> np.ndarray:
    """The linear predictor of every row from ``b`` and ``r_g``, with ``trt`` (as drug or not) and ``x`` set."""
    x = data["x"].to_numpy() if x is None else x
    drug = (data["trt"] == "drug").to_numpy() if drug is None else drug
    eta = coef(fit, "Intercept") + coef(fit, "x") * x + coef(fit, "trt[T.drug]") * drug
    if "dose[T.low]" in fit.model.design.fixed_names:
        eta = eta + coef(fit, "dose[T.low]") * (data["dose"] == "low").to_numpy() \
            + coef(fit, "dose[T.mid]") * (data["dose"] == "mid").to_numpy()
    return eta + group_intercepts(fit, data) if known else eta


# --- comparisons and slopes --------------------------------------------------------------------------

def test_gaussian_comparison_of_a_binary_treatment_is_its_coefficient_exactly(gaussian):
    for groups in ("population", "known", "new"):  # a new level has one drawn effect in both counterfactuals
        draws = gaussian.comparisons("trt", groups=groups, draws=True, seed=1)
        assert draws.dims == ("chain", "draw", "row") and list(draws["contrast"].values) == ["drug - ctl"]
        np.testing.assert_allclose(draws.values, coef(gaussian, "trt[T.drug]"), rtol=0, atol=1e-10)
    table = gaussian.comparisons("trt")
    assert list(table.columns) == ["term", "contrast", "estimate", "sd", "2.5%", "97.5%"]
    assert table["estimate"].iloc[0] == pytest.approx(coef(gaussian, "trt[T.drug]").mean(), abs=1e-10)
    np.testing.assert_allclose(gaussian.slopes("x", draws=True).values, coef(gaussian, "x"), atol=1e-7)
    rows = gaussian.comparisons("trt", by=False, draws=True)  # one comparison per row
    assert rows.sizes["row"] == gaussian.model.design.n_obs and {"x", "trt"} <= set(rows.coords) and "y" not in rows.coords
    np.testing.assert_allclose(rows.values, np.broadcast_to(coef(gaussian, "trt[T.drug]"), rows.shape), atol=1e-10)


def test_poisson_comparisons_equal_the_averages_by_hand(poisson, data):
    drug = coef(poisson, "trt[T.drug]")
    known = poisson.comparisons("trt", groups="known", draws=True).values
    off, on = (np.exp(eta_by_hand(poisson, data, drug=d)) for d in (0, 1))
    np.testing.assert_allclose(known, (on.mean(-1) - off.mean(-1))[..., None], rtol=1e-10)
    ratio = poisson.comparisons("trt", comparison="ratio", groups="known", draws=True).values
    np.testing.assert_allclose(ratio, np.exp(drug), rtol=1e-10)  # a log link: the ratio is exp(coefficient)
    x = data["x"].to_numpy()
    step = np.std(x, ddof=1)
    by_sd = poisson.comparisons({"x": "sd"}, groups="known", draws=True).values
    plus = np.exp(eta_by_hand(poisson, data, x=x + step)).mean(-1) - np.exp(eta_by_hand(poisson, data)).mean(-1)
    np.testing.assert_allclose(by_sd, plus[..., None], rtol=1e-10)
    lnratio = poisson.comparisons({"x": 1}, comparison="lnratio", draws=True).values
    np.testing.assert_allclose(lnratio, coef(poisson, "x"), rtol=1e-10)
    fixed = poisson.comparisons({"x": (0, 2)}, draws=True).values  # every row at 0, then at 2
    at = [np.exp(eta_by_hand(poisson, data, x=np.full(len(x), v), known=False)).mean(-1) for v in (0.0, 2.0)]
    np.testing.assert_allclose(fixed, (at[1] - at[0])[..., None], rtol=1e-10)


def test_pairwise_and_reference_comparisons_of_a_three_level_factor(poisson):
    pairwise = poisson.comparisons({"dose": "pairwise"})
    assert pairwise["contrast"].tolist() == ["low - high", "mid - high", "mid - low"]
    draws = poisson.comparisons({"dose": "pairwise"}, draws=True).values
    np.testing.assert_allclose(draws[..., 2], draws[..., 1] - draws[..., 0], atol=1e-10)
    reference = poisson.comparisons("dose", draws=True).values
    np.testing.assert_allclose(reference, draws[..., :2], atol=1e-12)


def test_poisson_and_bernoulli_slopes_equal_the_derivative_by_hand(poisson, bernoulli, data):
    mu = np.exp(eta_by_hand(poisson, data))
    np.testing.assert_allclose(poisson.slopes("x", groups="known", draws=True).values,
                               (coef(poisson, "x") * mu).mean(-1)[..., None], rtol=1e-6)
    p = expit(eta_by_hand(bernoulli, data, known=False))
    np.testing.assert_allclose(bernoulli.slopes("x", draws=True).values,
                               (coef(bernoulli, "x") * p * (1 - p)).mean(-1)[..., None], rtol=1e-6)
    by = bernoulli.slopes("x", by="trt", draws=True)
    assert list(by["trt"].values) == ["ctl", "drug"]
    for k, level in enumerate(["ctl", "drug"]):
        rows = (data["trt"] == level).to_numpy()
        np.testing.assert_allclose(by.values[..., k], (coef(bernoulli, "x")[..., 0] * (p * (1 - p))[..., rows].mean(-1)),
                                   rtol=1e-6)


def test_bernoulli_log_odds_ratio_of_averaged_probabilities(bernoulli, data):
    lnor = bernoulli.comparisons("trt", comparison="lnor", draws=True).values[..., 0]
    off, on = (expit(eta_by_hand(bernoulli, data, drug=d, known=False)).mean(-1) for d in (0, 1))
    np.testing.assert_allclose(lnor, logit(on) - logit(off), rtol=1e-10)


# --- predictions ------------------------------------------------------------------------------------

def test_predictions_by_group_are_the_group_means_of_predict(poisson, data):
    table = poisson.predictions(by="trt", groups="known")
    draws = poisson.predict(groups="known").values
    for level in ("ctl", "drug"):
        rows = (data["trt"] == level).to_numpy()
        mean = draws[..., rows].mean(-1)
        row = table[table["trt"] == level].iloc[0]
        assert row["estimate"] == pytest.approx(mean.mean(), rel=1e-12)
        assert row["2.5%"] == pytest.approx(np.quantile(mean, 0.025), rel=1e-12)
    overall = poisson.predictions(by=True, draws=True).values
    np.testing.assert_allclose(overall[..., 0], poisson.predict(groups="population").values.mean(-1), rtol=1e-12)


def test_predictions_on_a_grid_and_on_the_link_scale(poisson, data):
    grid = poisson.predictions({"x": [0.0, 2.0], "trt": ["drug"]}, scale="link", draws=True)
    assert list(grid["x"].values) == [0.0, 2.0] and set(grid["dose"].values) == {data["dose"].mode()[0]}
    dose = data["dose"].mode()[0]
    expected = coef(poisson, "Intercept") + coef(poisson, "x") * np.array([0.0, 2.0]) + coef(poisson, "trt[T.drug]")
    if dose != "high":
        expected = expected + coef(poisson, f"dose[T.{dose}]")
    np.testing.assert_allclose(grid.values, expected, rtol=1e-10)
    response = poisson.predictions({"x": [0.0, 2.0], "trt": ["drug"]})
    np.testing.assert_allclose(response["estimate"], np.exp(expected).mean(axis=(0, 1)), rtol=1e-10)
    assert list(response.columns[:4]) == ["x", "trt", "dose", "estimate"]
    assert list(poisson.predictions({"x": [0.0]}, groups="known").columns[:4]) == ["x", "trt", "dose", "g"]


def test_data_grid_holds_numbers_at_their_mean_and_levels_at_the_most_common(poisson, data):
    grid = data_grid(poisson.model, {"trt": ["ctl", "drug"]})
    assert len(grid) == 2 and grid["x"].iloc[0] == pytest.approx(data["x"].mean())
    assert grid["dose"].iloc[0] == data["dose"].mode()[0] and grid["g"].iloc[0] == data["g"].mode()[0]


# --- marginal means and contrasts --------------------------------------------------------------------

def test_marginal_means_average_the_reference_grid_with_equal_weights(poisson, data):
    means = poisson.marginal_means("dose", draws=True)
    assert list(means["dose"].values) == ["high", "low", "mid"]
    x = data["x"].mean()
    for k, level in enumerate(["high", "low", "mid"]):
        shift = 0.0 if level == "high" else coef(poisson, f"dose[T.{level}]")
        cells = [np.exp(coef(poisson, "Intercept") + coef(poisson, "x") * x + drug * coef(poisson, "trt[T.drug]")
                        + shift) for drug in (0, 1)]
        np.testing.assert_allclose(means.values[..., k], ((cells[0] + cells[1]) / 2)[..., 0], rtol=1e-10)


def test_contrasts_are_differences_of_the_marginal_means(poisson):
    m = poisson.marginal_means("dose", draws=True).values
    pairwise = poisson.contrasts("dose", draws=True)
    assert list(pairwise["contrast"].values) == ["high - low", "high - mid", "low - mid"]
    np.testing.assert_allclose(pairwise.values, np.stack([m[..., 0] - m[..., 1], m[..., 0] - m[..., 2],
                                                          m[..., 1] - m[..., 2]], axis=-1), atol=1e-12)
    control = poisson.contrasts("dose", "trt.vs.ctrl", draws=True).values
    np.testing.assert_allclose(control, np.stack([m[..., 1] - m[..., 0], m[..., 2] - m[..., 0]], axis=-1), atol=1e-12)
    poly = poisson.contrasts("dose", "poly")
    assert poly["contrast"].tolist() == ["linear", "quadratic"]
    assert poly["estimate"].iloc[1] == pytest.approx((m[..., 0] - 2 * m[..., 1] + m[..., 2]).mean(), rel=1e-10)
    custom = poisson.contrasts("dose", {"high vs the rest": [1, -0.5, -0.5]}, draws=True)
    np.testing.assert_allclose(custom.values[..., 0], m[..., 0] - (m[..., 1] + m[..., 2]) / 2, atol=1e-12)
    by = poisson.contrasts("trt", by="dose", draws=True)
    cells = poisson.marginal_means("trt", by="dose", draws=True)
    assert list(by["dose"].values) == ["high", "low", "mid"]
    np.testing.assert_allclose(by.values[..., 0], cells.values[..., 0] - cells.values[..., 1], atol=1e-12)


@pytest.mark.parametrize("k, rows", [
    (3, [[-1, 0, 1], [1, -2, 1]]),
    (4, [[-3, -1, 1, 3], [1, -1, -1, 1], [-1, 3, -3, 1]]),
    (5, [[-2, -1, 0, 1, 2], [2, -1, -2, -1, 2], [-1, 2, 0, -2, 1], [1, -4, 6, -4, 1]]),
])
def test_polynomial_contrasts_are_the_orthogonal_polynomial_tables(k, rows):
    np.testing.assert_array_equal(polynomial_contrasts(k), rows)


# --- hypotheses --------------------------------------------------------------------------------------

def test_hypothesis_probabilities_are_shares_of_draws(gaussian):
    x, intercept = coef(gaussian, "x").ravel(), coef(gaussian, "Intercept").ravel()
    sd = gaussian.posterior["sd_g"].sel(g__coef="Intercept").values.ravel()
    drug = coef(gaussian, "trt[T.drug]").ravel()
    table = gaussian.hypothesis(["x > 0.5", "sd(Intercept | g) < 0.3", "Intercept + 3 * x = 2.5",
                                 "`trt[T.drug]` - 2 * (x / 2) > 0", "-trt[T.drug] < -0.7"])
    p = np.mean(x > 0.5)
    assert table.loc["x > 0.5", "Post.Prob"] == pytest.approx(p)
    assert table.loc["x > 0.5", "Evid.Ratio"] == pytest.approx(p / (1 - p))
    assert table.loc["x > 0.5", "Estimate"] == pytest.approx(x.mean() - 0.5)
    assert table.loc["x > 0.5", "CI.Lower"] == pytest.approx(np.quantile(x - 0.5, 0.05))
    assert table.loc["x > 0.5", "CI.Upper"] == np.inf
    assert table.loc["sd(Intercept | g) < 0.3", "Post.Prob"] == pytest.approx(np.mean(sd < 0.3))
    point = table.loc["Intercept + 3 * x = 2.5"]
    assert point["Estimate"] == pytest.approx(np.mean(intercept + 3 * x - 2.5))
    assert point["Est.Error"] == pytest.approx(np.std(intercept + 3 * x, ddof=1))
    assert point["CI.Lower"] == pytest.approx(np.quantile(intercept + 3 * x - 2.5, 0.025))
    assert np.isnan(point["Evid.Ratio"]) and np.isnan(point["Post.Prob"])
    assert table.iloc[3]["Post.Prob"] == pytest.approx(np.mean(drug - x > 0))
    assert table.iloc[4]["Post.Prob"] == pytest.approx(np.mean(drug > 0.7))
    level = gaussian.hypothesis("r_g[g1,Intercept] > 0", draws=True)
    np.testing.assert_allclose(level.values[..., 0], gaussian.posterior["r_g"].sel(g="g1", g__coef="Intercept").values)


def test_hypothesis_class_group_and_scope_as_brms(gaussian, data):
    post = gaussian.posterior
    sd = post["sd_g"].sel(g__coef="Intercept").values
    by_class = gaussian.hypothesis("Intercept < 0.3", class_="sd", group="g")
    assert by_class.loc["Intercept < 0.3", "Post.Prob"] == pytest.approx(np.mean(sd < 0.3))
    levels = sorted(data["g"].unique())
    ranef = gaussian.hypothesis("Intercept > 0", scope="ranef", group="g")
    coefs = gaussian.hypothesis(["Intercept > 1", "x > 0.5"], scope="coef", group="g")
    assert list(ranef["Group"]) == levels and list(coefs["Group"]) == [lv for lv in levels for _ in range(2)]
    for level in levels:
        r = post["r_g"].sel(g=level, g__coef="Intercept").values
        row = ranef[ranef["Group"] == level].iloc[0]
        assert row["Post.Prob"] == pytest.approx(np.mean(r > 0)) and row["Estimate"] == pytest.approx(r.mean())
        own = coefs[(coefs["Group"] == level)]
        assert own.loc["Intercept > 1", "Post.Prob"] == pytest.approx(np.mean(coef(gaussian, "Intercept")[..., 0] + r > 1))
        # x has no group effect: every level's coefficient is the population one (brms's coef())
        assert own.loc["x > 0.5", "Post.Prob"] == pytest.approx(np.mean(coef(gaussian, "x") > 0.5))
    draws = gaussian.hypothesis("Intercept > 0", scope="ranef", group="g", draws=True)
    assert list(draws["hypothesis"].values) == [f"Intercept > 0 [{lv}]" for lv in levels]


@pytest.mark.parametrize("options, message", [
    ({"class_": "sd"}, "class_='sd' needs group=, one of the model's grouping factors ['g'], not None"),
    ({"scope": "coef", "group": "h"}, "scope='coef' needs group=, one of the model's grouping factors ['g'], not 'h'"),
    ({"scope": "fixef"}, "scope must be one of ['standard', 'ranef', 'coef'], not 'fixef'"),
    ({"class_": "sigma"}, "class_ must be 'b' (population-level effects), 'sd' or 'cor'"),
])
def test_hypothesis_class_and_scope_errors_name_the_problem(gaussian, options, message):
    with pytest.raises(hb.HierbayesError) as err:
        gaussian.hypothesis("x > 0", **options)
    assert message in str(err.value)


@pytest.mark.parametrize("claim, message", [
    ("xx > 0", "'xx' is not a parameter of this model; did you mean 'x'"),
    ("sd(Intercept|h) > 1", "did you mean 'sd(Intercept|g)'"),
    ("`sigmaa` > 1", "did you mean 'sigma'"),
    ("__import__('os') > 0", "found a function call (__import__('os'))"),
    ("x.real > 0", "found an attribute"),
    ("x ** 2 > 0", "found a power"),
    ("x > 'a'", "found 'a'"),
    ("x + 1", "one of =, <, > (none found)"),
    ("0 < x < 1", "(2 found)"),
])
def test_hypothesis_errors_name_the_problem(gaussian, claim, message):
    with pytest.raises(hb.HierbayesError) as err:
        gaussian.hypothesis(claim)
    assert message in str(err.value)


def test_claims_are_parsed_without_evaluating_them():
    claim = parse_claim("sd(Intercept | g) > 2 * `x`", ["x", "sd(Intercept|g)"])
    assert claim.sign == ">" and set(claim.names.values()) == {"x", "sd(Intercept|g)"}


# --- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda f: f.slopes("trt"), "'trt' is categorical"),
    (lambda f: f.comparisons("xx"), "'xx' is not a predictor of the model"),
    (lambda f: f.comparisons({"trt": ("ctl", "placebo")}), "'placebo' is not a level of 'trt'"),
    (lambda f: f.comparisons("x", comparison="odds"), "comparison must be one of"),
    (lambda f: f.predictions(scale="logit"), "scale must be one of"),
    (lambda f: f.predictions(by="dosage"), "by: 'dosage' is not a column of the data; did you mean 'dose'"),
    (lambda f: f.marginal_means("x"), "'x' is numeric"),
    (lambda f: f.contrasts("dose", "helmert"), "method must be"),
    (lambda f: f.conditional_effects("x", levels=["g1"]), "pass groups='known'"),
])
def test_bad_requests_name_the_problem(poisson, call, message):
    with pytest.raises(hb.HierbayesError, match=None) as err:
        call(poisson)
    assert message in str(err.value)


# --- the plot and a loaded fit ---------------------------------------------------------------------------

def test_the_plotted_lines_are_the_predictions_on_the_same_grid(bernoulli):
    fig = bernoulli.conditional_effects("x:trt", points=True)
    ax = fig.axes[0]
    grid, split = conditional_grid(bernoulli.model, "x", "trt")
    table = bernoulli.predictions(grid)
    lines = effect_lines(ax)
    assert [line.get_label() for line in lines] == ["ctl", "drug"] and split == "trt"
    for line in lines:
        rows = table[grid["trt"] == line.get_label()]
        assert len(rows) == 100
        np.testing.assert_allclose(line.get_xdata(), rows["x"], rtol=1e-12)
        np.testing.assert_allclose(line.get_ydata(), rows["estimate"], rtol=1e-12)
    known = bernoulli.conditional_effects("x", groups="known", levels=["g1", "g5"])
    grid, _ = conditional_grid(bernoulli.model, "x", levels=["g1", "g5"])
    table = bernoulli.predictions(grid, groups="known")
    for line in effect_lines(known.axes[0]):
        np.testing.assert_allclose(line.get_ydata(), table[grid["g"] == line.get_label()]["estimate"], rtol=1e-12)
    categorical = bernoulli.conditional_effects("trt").axes[0]
    (points,) = effect_lines(categorical)
    np.testing.assert_allclose(np.asarray(points.get_ydata(), dtype=float), bernoulli.predictions({"trt": ["ctl", "drug"]})["estimate"])
    everything = bernoulli.conditional_effects()
    assert [ax.get_xlabel() for ax in everything.axes if ax.get_visible()] == ["x", "trt"]


def test_with_no_argument_every_main_effect_and_two_way_interaction_gets_a_panel(data):
    """As brms: x, trt, w, then x by trt (a line per level) and x by w (mean and mean +/- 1 SD)."""
    df = data.assign(w=np.random.default_rng(5).normal(3.0, 2.0, len(data)))
    fit = hb.Model("y ~ x * trt + x * w + (1 | g)", df).fit(**SAMPLING)
    fig = fit.conditional_effects()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left").split("\n")[0] for ax in panels] == ["x", "trt", "w", "x by trt", "x by w"]
    assert [ax.get_xlabel() for ax in panels] == ["x", "trt", "w", "x", "x"]
    assert "held at trt = " in panels[0].get_title(loc="left")  # a main effect in an interaction: at one level
    for ax, second in zip(panels[3:], ["trt", "w"]):
        legend = ax.get_legend()
        assert legend.get_title().get_text() == second
        assert legend.get_bbox_to_anchor().x0 >= ax.get_window_extent().x1  # beside the panel, over no data
        grid, split = conditional_grid(fit.model, "x", second)
        table = fit.predictions(grid)
        lines = effect_lines(ax)
        values = list(dict.fromkeys(grid[second]))
        assert split == second and len(lines) == len(values) == len(legend.get_texts())
        for line, value in zip(lines, values):
            rows = table[grid[second] == value]
            np.testing.assert_allclose(line.get_xdata(), rows["x"], rtol=1e-12)
            np.testing.assert_allclose(line.get_ydata(), rows["estimate"], rtol=1e-12)
    mean, sd = df["w"].mean(), df["w"].std()
    assert [t.get_text() for t in panels[4].get_legend().get_texts()] == [
        f"{mean + sd:.3g} (mean + SD)", f"{mean:.3g} (mean)", f"{mean - sd:.3g} (mean - SD)"]
    # the interaction's slope is the formula's: the lines' slopes differ by the x:trt coefficient, draw-averaged
    drug, ctl = (np.polyfit(line.get_xdata(), line.get_ydata(), 1)[0] for line in effect_lines(panels[3])[::-1])
    assert drug - ctl == pytest.approx(float(coef(fit, "x:trt[T.drug]").mean()), rel=1e-9)


def test_the_two_way_interactions_of_a_formula():
    df = simulated().assign(w=1.0 + np.arange(240) % 7)
    model = hb.Model("y ~ x * trt * w + I(x ** 2):dose + (1 | g)", df)
    assert fixed_interactions(model) == [("x", "trt"), ("x", "w"), ("trt", "w"), ("x", "dose")]
    assert fixed_interactions(hb.Model("y ~ x + trt + (x | g)", df)) == []


def test_a_loaded_fit_reads_the_same(gaussian, tmp_path):
    gaussian.save(tmp_path / "fit.nc")
    loaded = hb.load(tmp_path / "fit.nc")
    pd.testing.assert_frame_equal(loaded.comparisons({"x": 1, "trt": "reference"}),
                                  gaussian.comparisons({"x": 1, "trt": "reference"}))
    pd.testing.assert_frame_equal(loaded.hypothesis("x > 0.5"), gaussian.hypothesis("x > 0.5"))
    pd.testing.assert_frame_equal(loaded.contrasts("trt"), gaussian.contrasts("trt"))


def test_population_predictions_of_the_fitting_data_leave_the_group_effects_out(poisson, data):
    """predict() without new data, groups="population": the same as the fitting rows passed as new data."""
    own = poisson.predict(groups="population").values
    np.testing.assert_allclose(own, poisson.predict(data, groups="population").values, rtol=1e-12)
    np.testing.assert_allclose(own, np.exp(eta_by_hand(poisson, data, known=False)), rtol=1e-10)
