"""The speed paths: nutpie's C callbacks kept on disk by structure (hierbayes.backend.compiled_cache), loaded
by a later compile of the same structure and reading that model's own data; and the per-factor
choice of ``parameterization="auto"`` (hierbayes.model.parameterization)."""

from __future__ import annotations

import ctypes

import numpy as np
import nutpie
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.backend.compiled_cache import compile_model
from hierbayes.model import data as contract
from hierbayes.model.parameterization import (
    coefficient_kappas,
    describe,
    one_way_anova,
    slope_kappas,
)
from hierbayes.specification import names as N


def _pointer(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


def _callback_logp(compiled, x: np.ndarray, status: int = 0) -> tuple[float, np.ndarray]:
    """Call the compiled C callback directly, as nutpie's sampler does."""
    x = np.ascontiguousarray(x, dtype=float)
    grad, logp = np.zeros_like(x), np.zeros(1)
    got = compiled.compiled_logp_func.ctypes(ctypes.c_uint64(x.size), _pointer(x), _pointer(grad), _pointer(logp),
                                             ctypes.c_void_p(compiled.user_data.ctypes.data))
    assert got == status
    return float(logp[0]), grad


def _callback_expand(compiled, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=float)
    out = np.zeros(compiled.n_expanded)
    status = compiled.compiled_expand_func.ctypes(ctypes.c_uint64(x.size), ctypes.c_uint64(out.size), _pointer(x),
                                                  _pointer(out), ctypes.c_void_p(compiled.user_data.ctypes.data))
    assert status == 0
    return out


def test_a_structure_compiles_once_and_later_compiles_load_it_from_disk(tmp_path, monkeypatch, sleepstudy):
    monkeypatch.setenv("HIERBAYES_CACHE_DIR", str(tmp_path))
    cache = tmp_path
    formula = "Reaction ~ 1 + (1 | Subject)"
    first = compile_model(hb.Model(formula, sleepstudy, collapse=False).fitting_model)
    assert first.compiled_logp_func._cache_hits == 0
    assert len(list((cache / "numba").glob("*.nbc"))) == 2  # the log density, and the copy of the draws

    # new data of the same structure, with fewer rows: every subject keeps some
    fewer = sleepstudy[sleepstudy["Days"] < 7].assign(Reaction=lambda d: 2 * d["Reaction"] + 5)
    second = compile_model(hb.Model(formula, fewer, collapse=False).fitting_model)
    assert second.compiled_logp_func._cache_hits == 1 and second.compiled_expand_func._cache_hits == 1
    x = first.initial_point_func(0)
    values = []
    for compiled in (first, second):  # the loaded callback reads its own model's data
        logp, grad = _callback_logp(compiled, x)
        logp_pytensor, grad_pytensor = compiled.logp_func(x)
        assert logp == pytest.approx(float(logp_pytensor), rel=1e-10)
        np.testing.assert_allclose(grad, grad_pytensor, rtol=1e-9)
        np.testing.assert_allclose(_callback_expand(compiled, x), compiled.expand_func(x)[0], rtol=1e-12)
        values.append(logp)
    assert values[0] != pytest.approx(values[1])
    # nutpie's status codes: a non-finite gradient is 3 (sigma = exp(800) overflows)
    _callback_logp(first, np.where(np.arange(x.size) == x.size - 1, 800.0, x), status=3)

    # the loaded callbacks sample the posterior; lme4 (REML): intercept 298.5 (SE 9.05),
    # sd(Intercept|Subject) 35.8, residual sd 44.3
    m = hb.Model(formula, sleepstudy, collapse=False)
    loaded = compile_model(m.fitting_model)
    assert loaded.compiled_logp_func._cache_hits == 1
    draws = nutpie.sample(loaded, draws=300, tune=300, chains=2, seed=3, progress_bar=False).posterior.to_dataset()
    post = loaded.expansion.complete(draws, contract.pack_data(contract.model_data(m.design, m.family, m.priors, False)))
    assert abs(float(post["b"].mean()) - 298.5) < 10
    assert 30 < float(post["sd_Subject"].mean()) < 50 and 41 < float(post["sigma"].mean()) < 48

    # another structure never meets these entries
    other = compile_model(hb.Model(formula, sleepstudy).fitting_model)  # collapsed: another graph
    assert other.compiled_logp_func._cache_hits == 0
    assert len(list((cache / "numba").glob("*.nbc"))) == 3  # its own log density; the copy is shared



def test_a_refit_through_the_process_cache_gives_the_draws_of_a_fresh_fit(sleepstudy):
    from hierbayes.backend.sampling import clear_cache

    folds = [sleepstudy[sleepstudy["Days"] % 3 != k] for k in range(2)]
    options = dict(draws=100, tune=100, chains=2, seed=5, progressbar=False, warn=False)
    clear_cache()
    fresh = hb.Model("Reaction ~ Days + (Days | Subject)", folds[1]).fit(**options)
    clear_cache()
    hb.Model("Reaction ~ Days + (Days | Subject)", folds[0]).fit(**options)
    refit = hb.Model("Reaction ~ Days + (Days | Subject)", folds[1]).fit(**options)
    assert refit.timings["compile"] < 0.5  # the data were swapped into the compiled model
    # the chains start from the new data's initial point, so the draws are the fresh fit's
    np.testing.assert_array_equal(refit.posterior["b"].values, fresh.posterior["b"].values)

# --- parameterization="auto" -----------------------------------------------------------------------

def _grouped(rng, J, n_per, tau, sigma=1.0, family="gaussian"):
    g = np.repeat(np.arange(J), n_per)
    x = rng.normal(size=g.size)
    eta = 0.5 * x + rng.normal(0, tau, J)[g]
    if family == "bernoulli":
        y = (rng.random(g.size) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = eta + rng.normal(0, sigma, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{j:03d}" for j in g]})


@pytest.mark.parametrize("J, n_per, tau", [(300, 4, 0.5), (40, 60, 2.0)])
def test_one_way_anova_recovers_the_two_variances(J, n_per, tau):
    rng = np.random.default_rng(J)
    n = rng.integers(1, 2 * n_per, J)  # unbalanced levels
    g = np.repeat(np.arange(J), n)
    y = rng.normal(0, tau, J)[g] + rng.normal(0, 1.5, g.size)
    tau2, s2 = one_way_anova(y, g, J)
    assert s2 == pytest.approx(1.5**2, rel=0.1)
    assert tau2 == pytest.approx(tau**2, rel=0.35)


def test_auto_centers_factors_whose_levels_say_a_lot():
    rng = np.random.default_rng(5)
    informative = _grouped(rng, J=20, n_per=50, tau=1.0)       # kappa about 50
    vague = _grouped(rng, J=100, n_per=3, tau=0.2)             # kappa about 0.1
    for data, expected in ((informative, "centered"), (vague, "non-centered")):
        m = hb.Model("y ~ x + (1 | g)", data, parameterization="auto", collapse=False)
        assert m.parameterization == {"g": expected}
        kappa = m.parameterization_choice.loc["g", "kappa_q10"]
        assert (kappa > 10) if expected == "centered" else (kappa < 0.5)
        shear = "; the effects' mean is sampled with the fixed Intercept" if expected == "non-centered" else ""
        why = ("in 90% of levels the data outweigh the prior 2.5-fold or more" if expected == "centered" else
               "in more than 10% of levels the data outweigh the prior less than 2.5-fold")
        assert describe(m).startswith(f"Group effects: g {expected} (")
        assert describe(m).endswith(f"chosen because {why} (kappa {kappa:.2g}){shear}")
    # bernoulli: the same ratio on the response scale
    m = hb.Model("y ~ x + (1 | g)", _grouped(rng, 20, 200, 1.5, family="bernoulli"), family="bernoulli",
                 parameterization="auto")
    assert m.parameterization == {"g": "centered"}


def test_auto_is_the_default_and_a_collapsed_model_chooses_nothing():
    informative = _grouped(np.random.default_rng(5), J=20, n_per=50, tau=1.0)
    sampled = hb.Model("y ~ x + (1 | g)", informative, collapse=False)
    assert sampled.parameterization == {"g": "centered"} and sampled.parameterization_choice is not None
    collapsed = hb.Model("y ~ x + (1 | g)", informative)  # gaussian, one factor: the effects are integrated out
    assert collapsed.collapsed and collapsed.parameterization_choice is None
    assert describe(collapsed) == "Group effects: g integrated out and drawn exactly afterwards (collapsed)"
    chosen = hb.Model("y ~ x + (1 | g)", informative, collapse=False, parameterization="non-centered")
    assert chosen.parameterization == "non-centered" and chosen.parameterization_choice is None


@pytest.mark.parametrize("J, n_per, tau", [(400, 10, 0.4), (40, 60, 1.0)])
def test_slope_kappas_recover_the_slope_variance(J, n_per, tau):
    rng = np.random.default_rng(J)
    g = np.repeat(np.arange(J), rng.integers(3, 2 * n_per, J))
    x = rng.normal(1.0, 2.0, g.size)
    y = rng.normal(0, 1, J)[g] + rng.normal(0, tau, J)[g] * x + rng.normal(0, 1.5, g.size)
    kappa, tau2, s2 = slope_kappas(y, x, g, J)
    assert s2 == pytest.approx(1.5**2, rel=0.1) and tau2 == pytest.approx(tau**2, rel=0.35)
    Sxx = np.bincount(g, weights=(x - (np.bincount(g, weights=x) / np.bincount(g))[g]) ** 2)
    np.testing.assert_allclose(kappa, Sxx * tau2 / s2)


def test_auto_centers_each_level_as_far_as_its_data_say_when_the_slopes_are_ill_informed():
    rng = np.random.default_rng(7)
    data = _grouped(rng, J=20, n_per=50, tau=1.0)             # the intercept: kappa about 50
    data["y"] += rng.normal(0, 0.02, 20)[data["g"].str[1:].astype(int)] * data["x"]  # a slope that barely varies
    m = hb.Model("y ~ x + (x | g)", data, parameterization="auto", collapse=False)
    table = m.parameterization_choice
    assert m.parameterization == {"g": "partially-centered"} and table.loc["g", "limiting"] == "x"
    assert table.loc["g", "kappa_q10"] < 1 and table.loc["g", "intercept_kappa_q10"] > 10
    # each level's weights travel as data: kappa / (1 + kappa), the intercepts nearly centered, the slopes not
    weights = contract.model_data(m.design, m.family, m.priors, m.collapsed, m.parameterization)[
        N.FactorNames("g").centering_weights]
    kappas = coefficient_kappas(m.design, m.family, "g")
    np.testing.assert_allclose(weights, np.column_stack([k / (1 + k) for k, _, _ in kappas.values()]))
    assert weights.shape == (20, 2) and weights[:, 0].min() > 0.9 and weights[:, 1].max() < 0.5
    assert describe(m).startswith("Group effects: g partially centered (each level's effects drawn part-way between "
                                  "centered and non-centered, as far as its data say), chosen because in 90% "
                                  "of levels the data outweigh the prior 2.5-fold or more for the intercept (kappa ")
    assert describe(m).endswith(f"but not for x (kappa {table.loc['g', 'kappa_q10']:.2g})")
    assert hb.Model("y ~ x + (1 | g)", data, parameterization="auto", collapse=False).parameterization == {
        "g": "centered"}


def test_auto_keeps_a_factor_non_centered_when_more_than_one_level_in_ten_says_little():
    """InstEval's students: most levels well informed (median kappa above 1), a quarter not."""
    rng = np.random.default_rng(8)
    rich = _grouped(rng, J=60, n_per=40, tau=0.5)                 # kappa about 10
    poor = _grouped(rng, J=20, n_per=1, tau=0.5).assign(g=lambda d: "p" + d["g"])  # one row each: kappa 0.1-0.2
    m = hb.Model("y ~ x + (1 | g)", pd.concat([rich, poor], ignore_index=True), parameterization="auto",
                 collapse=False)
    kappas = coefficient_kappas(m.design, m.family, "g")["Intercept"][0]
    assert np.median(kappas) > 1 and m.parameterization_choice.loc["g", "kappa_q10"] < 1
    assert m.parameterization == {"g": "non-centered"}
    assert hb.Model("y ~ x + (1 | g)", rich, parameterization="auto", collapse=False).parameterization == {
        "g": "centered"}


def test_auto_chooses_per_factor_and_leaves_slope_only_factors_non_centered():
    rng = np.random.default_rng(6)
    data = _grouped(rng, J=20, n_per=50, tau=1.0)
    data["h"] = [f"h{j}" for j in rng.integers(0, 300, len(data))]  # 300 levels of about 3 rows, no effect
    m = hb.Model("y ~ x + (1 | g) + (1 | h) + (0 + x | g2)", data.assign(g2=data["g"]), parameterization="auto")
    assert m.parameterization == {"g": "centered", "h": "non-centered", "g2": "non-centered"}
    assert np.isnan(m.parameterization_choice.loc["g2", "kappa_q10"])
    with pytest.raises(hb.HierbayesError, match="'auto'"):
        hb.Model("y ~ x + (1 | g)", data, parameterization="automatic")


# --- numpyro and Dask -------------------------------------------------------------------------------

@pytest.mark.slow
def test_numpyro_sampler_fits_end_to_end(sleepstudy):
    import numpyro  # noqa: F401  (a test dependency: a missing install must fail, not skip)
    fit = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(
        draws=200, tune=200, chains=2, seed=4, sampler="numpyro", progressbar=False, warn=False)
    assert fit.sampler == "numpyro" and fit.idata.attrs["sampler"] == "numpyro"
    fe = fit.fixed_effects()
    for term, (estimate, se) in {"Intercept": (251.405, 6.825), "Days": (10.467, 1.546)}.items():  # lme4
        assert abs(fe.loc[term, "mean"] - estimate) < 0.6 * se, term
    assert 20 < fit.variance_components().loc["sd(Intercept|Subject)", "mean"] < 35
    assert fit.group_effects("Subject").shape == (36, 9)
    assert int(fit.idata["sample_stats"]["diverging"].sum()) == 0


def test_the_logit_rows_jax_implementation_matches():
    """JAX (``sampler="numpyro"``) runs the logit rows' Op with JAX's own functions: the same numbers."""
    import pytensor
    import pytensor.tensor as pt
    from scipy.special import expit

    from hierbayes.specification.families.logit_rows import logit_rows, register_jax

    register_jax()
    y, n, eta = (pt.dvector(name) for name in ("y", "n", "eta"))
    rows = pytensor.function([y, n, eta], logit_rows(y, eta, n), mode="JAX")
    yv, nv, etav = np.array([0.0, 2.0, 5.0]), np.array([1.0, 4.0, 5.0]), np.array([-2.0, 0.5, 3.0])
    logp, score = rows(yv, nv, etav)
    np.testing.assert_allclose(logp, yv * etav - nv * np.logaddexp(0, etav), rtol=1e-12)
    np.testing.assert_allclose(score, yv - nv * expit(etav), rtol=1e-12)


@pytest.mark.slow
def test_numpyro_sampler_fits_a_bernoulli_model_like_nutpie():
    """The numpyro path registers the logit rows' JAX implementation itself (``backend/sampling.py``)."""
    from scipy.special import expit

    rng = np.random.default_rng(5)
    data = pd.DataFrame({"x": rng.normal(size=400), "g": rng.integers(0, 8, 400).astype(str)})
    data["y"] = (rng.random(400) < expit(0.8 * data["x"] - 0.5 + rng.normal(0, 0.5, 8)[data["g"].astype(int)])).astype(int)
    model = hb.Model("y ~ x + (1 | g)", data, family="bernoulli")
    settings = dict(draws=300, tune=300, chains=2, seed=2, progressbar=False, warn=False)
    numpyro_fit, nutpie_fit = model.fit(sampler="numpyro", **settings), model.fit(**settings)
    assert numpyro_fit.sampler == "numpyro"
    ours, theirs = numpyro_fit.fixed_effects(), nutpie_fit.fixed_effects()
    for term in ("Intercept", "x"):  # the same posterior: means within a third of a posterior SD
        assert abs(ours.loc[term, "mean"] - theirs.loc[term, "mean"]) < ours.loc[term, "sd"] / 3, term


@pytest.mark.slow
def test_fit_many_on_a_local_cluster_matches_fitting_one_by_one(sleepstudy):
    from dask.distributed import Client, LocalCluster

    from hierbayes.posterior.parallel import fit_many, fold_seeds

    folds = [sleepstudy[sleepstudy["Days"] % 3 != k] for k in range(3)]
    models = [hb.Model("Reaction ~ Days + (Days | Subject)", d) for d in folds]
    options = dict(draws=100, tune=100, chains=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        fits = fit_many(models, client=client, seed=7, warn=False, **options)
    seeds = fold_seeds(7, 3)
    assert [f.seed for f in fits] == seeds and [f.model for f in fits] == models
    for model, fit, s in zip(models[:2], fits, seeds):  # the same draws as a fit in this process
        here = model.fit(seed=s, progressbar=False, warn=False, **options)
        np.testing.assert_allclose(fit.posterior["b"].values, here.posterior["b"].values, rtol=1e-12)
        np.testing.assert_allclose(fit.posterior["r_Subject"].values, here.posterior["r_Subject"].values,
                                   rtol=1e-12)
    assert fits[0].fixed_effects().loc["Days", "mean"] != fits[1].fixed_effects().loc["Days", "mean"]
    with pytest.raises(hb.HierbayesError, match="seeds has 2 values for 3 models"):
        fit_many(models, client=client, seeds=[1, 2])


# --- the whole compiled model on disk ---------------------------------------------------------------

def test_initial_values_are_pymcs_support_points_for_every_prior_kind(sleepstudy):
    """hierbayes starts the chains where PyMC would (before jitter), without building the model,
    and the shapes read at those starts are the ones nutpie reads at PyMC's initial point."""
    from nutpie.compile_pymc import _compute_shapes
    from pymc.initial_point import make_initial_point_fn

    from hierbayes.backend.compiled_cache import shapes_at
    from hierbayes.model import data as contract

    sleep = sleepstudy.assign(n=(sleepstudy["Reaction"] // 50).astype(int))
    cases = [
        ("Reaction ~ Days + (Days | Subject)", sleep, "gaussian", {}, {}),
        ("Reaction ~ Days + (Days || Subject)", sleep, "student_t",
         {"Intercept": hb.StudentT(3, 250, 50), "sd(Intercept|Subject)": hb.HalfCauchy(20),
          "sd(Days|Subject)": hb.Gamma(2, 0.2), "nu": hb.Gamma(2, 0.1), "sigma": hb.HalfStudentT(3, 30)},
         {"parameterization": "centered"}),
        ("n ~ Days + (1 | Subject)", sleep, "negative_binomial", {"Days": hb.StudentT(4, 0.1, 1)}, {}),
        ("Reaction ~ Days + (Days | Subject)", sleep, "gaussian", {"sd": hb.Exponential(0.05)}, {"collapse": False}),
    ]
    for formula, data, family, priors, options in cases:
        m = hb.Model(formula, data, family=family, priors=priors, **options)
        values = contract.model_data(m.design, m.family, m.priors, m.collapsed, m.parameterization)
        ours = contract.initial_values(m.design, m.family, m.priors, values, m.parameterization, m.collapsed)
        theirs = make_initial_point_fn(model=m.fitting_model, return_transformed=True)(0)
        assert set(ours) <= set(theirs), formula
        for name, value in theirs.items():
            np.testing.assert_allclose(ours.get(name, np.zeros_like(value)), value, rtol=1e-12, atol=0,
                                       err_msg=f"{formula}: {name}")
        shapes, nutpies = shapes_at(m.fitting_model, ours), _compute_shapes(m.fitting_model)
        assert shapes.keys() == nutpies.keys(), formula
        for name, shape in nutpies.items():
            np.testing.assert_array_equal(shapes[name], shape, err_msg=f"{formula}: {name}")


def test_a_new_process_loads_the_whole_compiled_model_without_building_pymc(tmp_path, monkeypatch, sleepstudy):
    from hierbayes.backend.sampling import clear_cache

    monkeypatch.setenv("HIERBAYES_CACHE_DIR", str(tmp_path))
    options = dict(draws=150, tune=150, chains=2, seed=9, progressbar=False, warn=False)
    formula = "Reaction ~ Days + (Days | Subject)"
    clear_cache()
    first = hb.Model(formula, sleepstudy).fit(**options)
    assert first.timings["build"] > 0 and len(list((tmp_path / "models").glob("*.pkl"))) == 1

    clear_cache()  # as a new process: nothing compiled in memory, the disk as the first fit left it
    again = hb.Model(formula, sleepstudy)
    second = again.fit(**options)
    assert "fitting_model" not in again.__dict__ and "pymc_model" not in again.__dict__  # no PyMC model built
    assert second.timings["build"] == 0 and second.timings["compile"] < 3
    np.testing.assert_array_equal(second.posterior["b"].values, first.posterior["b"].values)  # the same code
    assert list(second.posterior["Subject"].values) == list(first.posterior["Subject"].values)

    # new data of the same structure (other subject names, rescaled response): loaded, and its own posterior
    renamed = sleepstudy.assign(Subject=lambda d: "s" + d["Subject"].astype(str), Reaction=lambda d: d["Reaction"] / 10)
    clear_cache()
    third_model = hb.Model(formula, renamed)
    third = third_model.fit(**options)
    assert "fitting_model" not in third_model.__dict__
    assert str(third.posterior["Subject"].values[0]).startswith("s")
    assert float(third.posterior["b"].sel(term="Intercept").mean()) == pytest.approx(25.1, abs=1.5)  # lme4: 251.4 / 10

    # numba's files gone: the entry alone is not a compiled model, so the next fit builds and compiles
    from hierbayes.backend.compiled_cache import load_model
    from hierbayes.model import data as contract

    for path in (tmp_path / "numba").iterdir():
        path.unlink()
    m = hb.Model(formula, sleepstudy)
    values = contract.model_data(m.design, m.family, m.priors, m.collapsed, m.parameterization)
    assert load_model(m.structure, contract.model_coords(m.design), contract.pack_data(values),
                      contract.initial_values(m.design, m.family, m.priors, values)) is None
    clear_cache()


def test_importing_hierbayes_leaves_pymc_pytensor_and_matplotlib_for_later():
    """A fit loaded from disk needs none of them; importing them cost a new process ~1.5 s."""
    import subprocess
    import sys

    code = "import sys, hierbayes; print(sorted({'pymc', 'pytensor', 'matplotlib.pyplot'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- cheaper GLMM gradients ----------------------------------------------------------------------------

def test_logit_likelihoods_are_pymcs_row_by_row():
    """The logit-link bernoulli and binomial log densities written on eta (one softplus per row)."""
    import pymc as pm
    import pytensor.tensor as pt
    from scipy.special import expit

    from hierbayes.specification.families.classic import bernoulli_logit_logp, binomial_logit_logp

    rng = np.random.default_rng(0)
    eta = np.concatenate([rng.normal(0, 5, 200), [-800.0, 800.0]])  # far tails: no overflow
    y = (rng.random(eta.size) < expit(eta)).astype(float)
    ours = bernoulli_logit_logp(pt.as_tensor(y), pt.as_tensor(eta)).eval()
    np.testing.assert_allclose(ours, pm.logp(pm.Bernoulli.dist(logit_p=eta), y.astype(int)).eval(), rtol=1e-10)
    n = rng.integers(1, 30, eta.size).astype(float)
    k = rng.binomial(n.astype(int), expit(eta)).astype(float)
    ours = binomial_logit_logp(pt.as_tensor(k), pt.as_tensor(n), pt.as_tensor(eta)).eval()
    np.testing.assert_allclose(ours, pm.logp(pm.Binomial.dist(n=n.astype(int), logit_p=eta), k.astype(int)).eval(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", ["bernoulli", "binomial"])
def test_logit_models_have_the_log_density_and_gradient_of_pymcs_own_likelihood(family):
    """The whole model's log density and gradient equal those of the same model with PyMC's likelihood."""
    import dataclasses

    from scipy.special import expit

    rng = np.random.default_rng(1)
    data = pd.DataFrame({"x": rng.normal(size=300), "g": rng.integers(0, 12, 300).astype(str),
                         "n": rng.integers(1, 20, 300)})
    p = expit(0.5 * data["x"] - 0.3)
    data["y"] = (rng.random(300) < p).astype(int) if family == "bernoulli" else rng.binomial(data["n"], p)
    data["f"] = data["n"] - data["y"]
    formula = "y ~ x + (x | g)" if family == "bernoulli" else "cbind(y, f) ~ x + (x | g)"
    plain = dataclasses.replace(hb.get_family(family), link_likelihoods=())
    fast = hb.Model(formula, data, family=family).fitting_model
    reference = hb.Model(formula, data, family=plain).fitting_model
    assert type(fast.observed_RVs[0].owner.op) is not type(reference.observed_RVs[0].owner.op)
    point = {k: v + 0.3 for k, v in fast.initial_point().items()}
    mode = "FAST_COMPILE"  # PyTensor's Python linker: the same numbers, no numba compile
    assert fast.compile_logp(mode=mode)(point) == pytest.approx(reference.compile_logp(mode=mode)(point), rel=1e-12)
    np.testing.assert_allclose(fast.compile_dlogp(mode=mode)(point), reference.compile_dlogp(mode=mode)(point),
                               rtol=1e-10)
