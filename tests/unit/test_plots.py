"""Plots (hierbayes.viz.plots): the artists drawn, not just the absence of errors.

Two fits on a design built to show shrinkage: 12 levels of 2 to 150 rows and noisy
observations, so small levels' own estimates are far off and move most. The gaussian fit has
a varying intercept (``y ~ x + (1 | g)``), so every arrow of its shrinkage plot points at the
population mean; the poisson fit has correlated varying slopes (``y ~ x + (x | g)``), where
shrinkage is toward the population in two dimensions at once.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402
from scipy import stats  # noqa: E402

import hierbayes as hb  # noqa: E402
from hierbayes.viz import plots  # noqa: E402

FIT = dict(draws=300, tune=300, chains=2, seed=5, progressbar=False, warn=False)
SIZES = [2, 2, 3, 4, 6, 10, 15, 25, 40, 60, 100, 150]


def shrinkage_design(seed: int, family: str) -> pd.DataFrame:
    """Gaussian: intercepts vary (tau 1, sigma 2). Poisson: intercepts and slopes vary, correlated."""
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{j:02d}" for j in range(len(SIZES))], SIZES)
    level = pd.factorize(g, sort=True)[0]
    x = rng.normal(size=g.size)
    u = rng.multivariate_normal([0, 0], [[1, 0.3], [0.3, 0.25]], len(SIZES))
    if family == "gaussian":
        y = 1.0 + u[level, 0] + 0.5 * x + rng.normal(0, 2.0, g.size)
    else:
        y = rng.poisson(np.exp(0.5 * (1.0 + u[level, 0] + (0.5 + u[level, 1]) * x)))
    return pd.DataFrame({"g": g, "x": x, "y": y})


@pytest.fixture(scope="module")
def gaussian_fit():
    return hb.Model("y ~ x + (1 | g)", shrinkage_design(0, "gaussian")).fit(**FIT)


@pytest.fixture(scope="module")
def poisson_fit():
    return hb.Model("y ~ x + (x | g)", shrinkage_design(1, "poisson"), family="poisson").fit(**FIT)


@pytest.fixture(scope="module")
def sleepstudy_fit():
    return hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")).fit(**FIT)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def scatter(ax, label: str) -> np.ndarray:
    return next(c for c in ax.collections if isinstance(c, PathCollection) and c.get_label() == label).get_offsets()


def line(ax, label: str):
    return next(ln for ln in ax.get_lines() if ln.get_label() == label)


# --- shrinkage ----------------------------------------------------------------------------------

def test_shrinkage_arrows_go_from_own_estimate_to_partial_pooling_toward_the_population(gaussian_fit):
    table = gaussian_fit.pooling("g")
    ax = gaussian_fit.plot_shrinkage("g")
    arrows = plots.shrinkage_arrows(ax)
    assert len(arrows) == len(SIZES)
    starts = np.array([a.xyann[1] for a in arrows])
    ends = np.array([a.xy[1] for a in arrows])
    np.testing.assert_allclose(starts, table["no_pooling"])
    np.testing.assert_allclose(ends, table["partial_pooling"])
    population = line(ax, "population mean").get_ydata()[0]
    assert population == pytest.approx(table["population"].iloc[0])
    assert np.all(np.sign(ends - starts) == np.sign(population - starts))
    assert np.all(np.abs(ends - population) < np.abs(starts - population))
    assert line(ax, "complete pooling").get_ydata()[0] == pytest.approx(table["complete_pooling"].iloc[0])
    assert ax.get_xscale() == "log"
    intervals = next(c for c in ax.collections if isinstance(c, LineCollection))
    assert len(intervals.get_segments()) == len(SIZES)


def test_smallest_groups_move_most(gaussian_fit):
    arrows = plots.shrinkage_arrows(gaussian_fit.plot_shrinkage("g"))
    by_size = sorted(arrows, key=lambda a: a.xy[0])  # x is the level's number of rows
    length = [abs(a.xy[1] - a.xyann[1]) for a in by_size]
    assert min(length[:2]) > 5 * length[-1]
    assert np.mean(length[:4]) > 5 * np.mean(length[-4:])


def test_shrinkage_of_a_poisson_slope_sorted_on_the_log_scale(poisson_fit):
    table = poisson_fit.pooling("g", "x")
    ax = poisson_fit.plot_shrinkage("g", "x", x="sorted")
    assert len(plots.shrinkage_arrows(ax)) == int(table["no_pooling"].notna().sum())
    offsets = scatter(ax, "partial pooling (posterior mean)")
    order = np.argsort(offsets[:, 0])
    assert np.all(np.diff(offsets[order, 1]) >= 0)
    assert ax.get_ylabel() == "x (log scale)"
    missing = int(table["no_pooling"].isna().sum())
    notes = [t.get_text() for t in ax.texts if "without an estimate" in t.get_text()]
    assert notes == ([f"{missing} level{'s' if missing > 1 else ''} without an estimate of its own "
                      "(see pooling()['reason'])"] if missing else [])


def test_shrinkage_2d_arrows_and_population_contours(poisson_fit):
    ax = poisson_fit.plot_shrinkage_2d("g")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Intercept (log scale)", "x (log scale)")
    arrows = plots.shrinkage_arrows(ax)
    assert len(arrows) == int(poisson_fit.pooling("g")["no_pooling"].notna().sum())
    contours = [c for c in ax.collections if isinstance(c, ContourSet)]
    assert len(contours) == 1 and len(contours[0].levels) == 3
    # the arrows end nearer the population mean, in the population's own metric
    summary = poisson_fit.summary()
    sd = summary.loc[["sd(Intercept|g)", "sd(x|g)"], "mean"].to_numpy()
    rho = summary.loc["cor(Intercept,x|g)", "mean"]
    inv = np.linalg.inv(np.outer(sd, sd) * np.array([[1, rho], [rho, 1]]))
    centre = scatter(ax, "population mean")[0]

    def distance(p):
        d = np.asarray(p) - centre
        return d @ inv @ d

    closer = [distance(a.xy) < distance(a.xyann) for a in arrows]
    assert sum(closer) >= len(arrows) - 1


def test_population_contours_of_one_normal_are_its_chi_square_ellipses():
    mean, cov = np.array([[1.0, -2.0]]), np.array([[[4.0, 1.2], [1.2, 1.0]]])
    levels, _ = plots._mixture_levels(mean, cov, [0.95, 0.5], n=20000)
    expected = np.exp(-0.5 * stats.chi2.ppf([0.95, 0.5], 2)) / (2 * np.pi * np.sqrt(np.linalg.det(cov[0])))
    np.testing.assert_allclose(levels, expected, rtol=0.05)


def test_shrinkage_2d_needs_two_coefficients(gaussian_fit):
    with pytest.raises(hb.HierbayesError, match=r"needs two varying coefficients; 'g' has only \['Intercept'\]"):
        gaussian_fit.plot_shrinkage_2d("g")


# --- forest, funnel, trace, pair, ppc -------------------------------------------------------------

def test_group_effects_forest_is_sorted_with_the_population_mean(poisson_fit):
    ax = poisson_fit.plot_group_effects("g", "x")
    table = poisson_fit.group_effects("g").xs("x", level="coefficient").sort_values("total_mean")
    np.testing.assert_allclose(scatter(ax, "posterior mean")[:, 0], table["total_mean"])
    segments = next(c for c in ax.collections if isinstance(c, LineCollection)).get_segments()
    np.testing.assert_allclose([s[0][0] for s in segments], table["total_2.5%"])
    assert [t.get_text() for t in ax.get_yticklabels()] == list(table.index)
    assert line(ax, "population mean").get_xdata()[0] == pytest.approx(poisson_fit.fixed_effects().loc["x", "mean"])


def test_funnel_shows_every_draw_with_divergences_marked(poisson_fit):
    ax = plots.plot_funnel(poisson_fit)
    diverging = int(poisson_fit.idata["sample_stats"]["diverging"].sum())
    drawn = len(scatter(ax, "draws")) + len(scatter(ax, f"divergent ({diverging})"))
    assert drawn == 2 * 300
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("r_g[g00,Intercept]", "log sd(Intercept|g)")


@pytest.mark.parametrize("which", ["gaussian_fit", "poisson_fit"])
def test_trace_has_a_density_and_a_trace_per_printed_parameter(which, request):
    fit = request.getfixturevalue(which)
    fig = fit.plot_trace()
    labels = [p.label for p in fit.parameters]
    assert len(fig.axes) == 2 * len(labels)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    # every panel named above it (not by rotated y-labels that run into each other)
    assert sorted(titles) == sorted([f"{label}: posterior density" for label in labels]
                                    + [f"{label}: trace" for label in labels])
    assert all(len(ax.get_lines()) >= 2 for ax in fig.axes)  # one line per chain
    assert all(ax.get_ylabel() == "" for ax in fig.axes)


def test_pair_plot_defaults_to_the_funnel_of_the_smallest_level(gaussian_fit):
    fig = gaussian_fit.plot_pair()
    labels = {ax.get_xlabel() for ax in fig.axes} | {ax.get_ylabel() for ax in fig.axes}
    assert {"r_g[g00,Intercept]", "log sd(Intercept|g)"} <= labels
    points = [c for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in points) >= 2 * 300


def test_pair_plot_names_an_unknown_label(gaussian_fit):
    with pytest.raises(hb.HierbayesError, match=r"no parameter labelled 'sd\(Intercept\|h\)'.*did you mean "
                                                 r"'sd\(Intercept\|g\)'"):
        gaussian_fit.plot_pair(["sd(Intercept|h)", "x"])


def test_ppc_of_a_continuous_response_overlays_replicated_densities(gaussian_fit):
    ax = gaussian_fit.plot_ppc(n_draws=20)
    lines = ax.get_lines()
    assert len(lines) == 21
    observed = line(ax, "observed")
    y = gaussian_fit.model.design.y
    exact = stats.gaussian_kde(y)(observed.get_xdata())
    np.testing.assert_allclose(observed.get_ydata(), exact, atol=1e-3 * exact.max())  # plots.density's promise
    assert ax.texts[0].get_text() == "20 of 600 draws, chosen at random"  # one per line; every row is there


@pytest.mark.parametrize("values", [np.random.default_rng(0).normal(size=300),
                                    np.random.default_rng(1).standard_t(3, size=50_000),
                                    np.r_[np.random.default_rng(2).exponential(size=2000), 40.0]])
def test_binned_density_is_the_kernel_density_within_a_thousandth_of_its_peak(values):
    grid = np.linspace(values.min(), values.max(), 200)
    exact = stats.gaussian_kde(values)(grid)
    np.testing.assert_allclose(plots.density(values, grid), exact, atol=1e-3 * exact.max())


def test_ppc_of_counts_compares_frequencies_value_by_value(poisson_fit):
    replicated = poisson_fit.posterior_predictive(seed=2).values  # every draw, so the plot uses them all
    ax = poisson_fit.plot_ppc(max_draws=replicated.shape[0] * replicated.shape[1])
    y = poisson_fit.model.design.y.astype(int)
    bars = ax.patches
    heights = np.array([b.get_height() for b in bars])
    np.testing.assert_array_equal(heights[: y.max() + 1], np.bincount(y))
    assert len(bars) >= y.max() + 1 and len(bars) == int(max(y.max(), np.quantile(replicated, 0.995))) + 1
    assert ax.containers[-1].has_yerr  # the replicated frequencies with their intervals
    assert not ax.texts  # every draw and row: nothing subsampled, nothing to say


PLOTS = {
    "shrinkage": lambda f: f.plot_shrinkage("g"),
    "shrinkage_sorted": lambda f: f.plot_shrinkage("g", x="sorted"),
    "shrinkage_2d": lambda f: f.plot_shrinkage_2d("g"),
    "group_effects": lambda f: f.plot_group_effects("g"),
    "funnel": lambda f: plots.plot_funnel(f),
    "ppc": lambda f: f.plot_ppc(),
    "trace": lambda f: f.plot_trace(),
    "pair": lambda f: f.plot_pair(),
}
CASES = [(fit, name) for fit in ("gaussian_fit", "poisson_fit") for name in PLOTS
         if (fit, name) != ("gaussian_fit", "shrinkage_2d")]  # one varying coefficient: see above


@pytest.mark.parametrize("which, name", CASES)
def test_every_plot_renders_to_png(which, name, request):
    out = PLOTS[name](request.getfixturevalue(which))
    fig = out if isinstance(out, matplotlib.figure.Figure) else out.figure
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(ax.has_data() for ax in fig.axes if ax.get_visible() and ax.axison)


def test_shrinkage_rejects_an_unknown_layout(gaussian_fit):
    with pytest.raises(hb.HierbayesError, match="x must be 'auto', 'n' or 'sorted', not 'size'"):
        gaussian_fit.plot_shrinkage("g", x="size")


def test_balanced_levels_are_sorted_by_estimate_and_named_and_the_legend_sits_below_the_points(sleepstudy_fit):
    ax = sleepstudy_fit.plot_shrinkage("Subject")  # 10 rows per subject: a rows axis would say nothing
    table = sleepstudy_fit.pooling("Subject")
    assert ax.get_xscale() == "linear" and ax.get_xlabel().endswith("sorted by partial-pooling estimate")
    offsets = scatter(ax, "partial pooling (posterior mean)")
    assert np.all(np.diff(offsets[np.argsort(offsets[:, 0]), 1]) >= 0)
    named = [t.get_text() for t in ax.get_xticklabels()]
    assert sorted(named) == sorted(str(level) for level in table.index)
    ax.figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 <= ax.get_window_extent().y0  # wholly below the axes: it covers no point


# --- a big fit: the posterior predictive check plots a bounded sample -------------------------------

def big_fit(rows: int = 200_000, chains: int = 2, draws: int = 500, family: str = "gaussian",
            whole: bool = False, slope: float = 0.5) -> hb.Fit:
    """A ``y ~ x + (1 | g)`` fit of ``rows`` rows, its posterior written by hand (no sampling); ``whole``
    rounds a gaussian response to whole numbers; ``slope`` is x's."""
    import xarray as xr

    rng = np.random.default_rng(0)
    g = rng.integers(0, 50, rows)
    x = rng.normal(size=rows)
    eta = (0.5 if family == "poisson" else 1.0) + slope * x + rng.normal(0, 0.3, 50)[g]
    y = rng.poisson(np.exp(eta)) if family == "poisson" else eta + rng.normal(size=rows)
    data = pd.DataFrame({"y": np.round(y) if whole else y, "x": x,
                         "g": np.array([f"g{i:02d}" for i in range(50)])[g]})
    model = hb.Model("y ~ x + (1 | g)", data, family=family)
    levels = list(model.design.factors["g"].levels)
    shape = (chains, draws)
    variables = {
        "b": (("chain", "draw", "term"), np.broadcast_to([0.5 if family == "poisson" else 1.0, slope], (*shape, 2))
              + rng.normal(0, 0.01, (*shape, 2))),
        "r_g": (("chain", "draw", "g", "g__coef"), rng.normal(0, 0.3, (*shape, len(levels), 1))),
        "sd_g": (("chain", "draw", "g__coef"), rng.gamma(100, 0.003, (*shape, 1))),
    }
    if family == "gaussian":
        variables["sigma"] = (("chain", "draw"), rng.gamma(1000, 0.001, shape))
    posterior = xr.Dataset(variables, coords={"term": ["Intercept", "x"], "g": levels, "g__coef": ["Intercept"]})
    stats_ = xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, dtype=bool))})
    return hb.Fit(model, xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats_}), sampler="by hand")


def ppc_with_peak_memory(fit):
    """``fit.plot_ppc(seed=1)`` and the most memory Python held while drawing it (bytes)."""
    import tracemalloc

    tracemalloc.start()
    try:
        ax = fit.plot_ppc(seed=1)
        return ax, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_reports_predictive_check_of_a_big_fit_computes_a_bounded_sample(monkeypatch):
    from hierbayes.posterior import checking
    from hierbayes.viz import report

    fit = big_fit()
    computed = []
    predict_rows = checking.predict_rows

    def recorded(*args, **kwargs):
        replicated = predict_rows(*args, **kwargs)
        computed.append(replicated.shape)
        return replicated

    monkeypatch.setattr(checking, "predict_rows", recorded)
    ax, peak = ppc_with_peak_memory(fit)
    assert computed == [(1, 50, 50_000)]  # the 50 draws of the 50 lines, for 50,000 of the 200,000 rows
    assert peak < 250e6  # the whole draws x rows matrix alone would be 1.6 GB
    assert len(ax.get_lines()) == 51
    assert [t.get_text() for t in ax.texts] == ["50 of 1,000 draws and 50,000 of 200,000 rows, chosen at random"]
    assert ax.get_title() == "Posterior predictive check"
    assert "posterior_predictive" not in fit.idata.children  # nothing of that size is kept in the fit
    computed.clear()
    figures = []

    def kept(fig):  # the report's figures, before they are encoded
        figures.append(fig)
        return b"png"

    monkeypatch.setattr(report, "_png", kept)
    report.report_images(fit, seed=1)
    assert computed == [(1, 50, 50_000)]
    (ppc,) = [fig for fig in figures if fig.axes[0].get_title() == "Posterior predictive check"]
    assert ppc.axes[0].texts[0].get_text() == "50 of 1,000 draws and 50,000 of 200,000 rows, chosen at random"


def test_a_big_count_fit_takes_100_draws_for_its_intervals():
    ax = big_fit(rows=60_000, draws=300, family="poisson").plot_ppc(seed=1)
    assert ax.patches and ax.containers[-1].has_yerr  # observed frequencies, replicated ones with intervals
    assert ax.texts[0].get_text() == "100 of 600 draws and 50,000 of 60,000 rows, chosen at random"


def test_counts_in_the_millions_take_at_most_40_bars_of_widening_bins():
    from hierbayes.posterior.checking import MAX_COUNT_BARS

    fit = big_fit(rows=2_000, draws=100, family="poisson", slope=5.0)
    y = fit.model.design.y
    assert y.max() > 1_000_000  # one bar per value would be millions of bars (the report ran out of memory)
    ax, peak = ppc_with_peak_memory(fit)
    assert peak < 50e6
    heights = np.array([b.get_height() for b in ax.patches])
    assert len(heights) <= MAX_COUNT_BARS and heights.sum() == len(y)
    labels = [t.get_text() for t in ax.get_xticklabels()]  # every few bars, at most 12 (they do not overlap)
    assert labels[0].startswith("0") and labels[-1].endswith("M") and len(labels) <= 12
    assert heights[0] == np.sum(y <= int(labels[0].split("-")[-1]))  # the first bin's rows, counted
    assert ax.get_xlabel().startswith("y, in bins of values")


def test_whole_observed_values_of_a_continuous_family_show_one_density_per_sampled_draw():
    ax = big_fit(rows=60_000, draws=300, whole=True).plot_ppc(seed=1)  # replicated values are not whole
    assert len(ax.get_lines()) == 51
    assert ax.texts[0].get_text() == "50 of 600 draws and 50,000 of 60,000 rows, chosen at random"
