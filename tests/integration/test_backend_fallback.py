"""The fallback to nutpie's public API (hierbayes.backend.public): with nutpie's private helpers renamed,
as a nutpie release might, fits still run, say so once, and land on the fast path's posterior."""

from __future__ import annotations

import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.backend import compat
from hierbayes.backend.sampling import FAST_PATH, PUBLIC_PATH, clear_cache

OPTIONS = dict(draws=500, tune=500, chains=2, seed=11, progressbar=False, warn=False)
RENAMED = ("_make_functions", "_compute_shapes", "make_user_data")


@pytest.fixture(autouse=True)
def fresh_backend():
    compat.reset()
    clear_cache()
    yield
    compat.reset()
    clear_cache()


def rename_nutpie_helpers(monkeypatch) -> None:
    """nutpie as a release that renamed ``RENAMED`` would be: its own code (``compile_pymc_model``) works,
    the old names are gone from ``nutpie.compile_pymc``."""
    import nutpie
    from nutpie import compile_pymc as ncp

    env = dict(vars(ncp))  # the module as nutpie's own code sees it
    for name, value in vars(ncp).items():
        if isinstance(value, types.FunctionType) and value.__module__ == ncp.__name__:
            copy = types.FunctionType(value.__code__, env, value.__name__, value.__defaults__, value.__closure__)
            copy.__kwdefaults__, copy.__qualname__ = value.__kwdefaults__, value.__qualname__
            env[name] = copy
            if name not in RENAMED:
                monkeypatch.setattr(ncp, name, copy)
    for name in RENAMED:
        monkeypatch.setattr(ncp, f"{name}_renamed", env[name], raising=False)
        monkeypatch.delattr(ncp, name)
    monkeypatch.setattr(nutpie, "compile_pymc_model", env["compile_pymc_model"])
    compat.reset()
    clear_cache()


def fit_counting_warnings(formula, data, **model_options):
    """The fit and the number of BackendWarnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = hb.Model(formula, data, **model_options).fit(**OPTIONS)
    return fit, [w for w in caught if issubclass(w.category, hb.BackendWarning)]


def assert_same_posterior(fast, public, k: float = 4.0) -> None:
    """Same variables, dims and coordinates; posterior means within ``k`` Monte Carlo standard errors."""
    a, b = fast.idata["posterior"].to_dataset(), public.idata["posterior"].to_dataset()
    assert list(a.data_vars) == list(b.data_vars)
    assert {name: a[name].dims for name in a.data_vars} == {name: b[name].dims for name in b.data_vars}
    assert sorted(a.coords) == sorted(b.coords)
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values)
    x, y = fast.summary(), public.summary()  # fixed effects, SDs, correlations, sigma
    assert list(x.index) == list(y.index)
    mcse = np.sqrt(x["sd"] ** 2 / x["ess_bulk"] + y["sd"] ** 2 / y["ess_bulk"])
    z = (x["mean"] - y["mean"]).abs() / mcse
    assert (z < k).all(), pd.DataFrame({"fast": x["mean"], "public": y["mean"], "mcse": mcse, "z": z})
    assert (x["ess_bulk"] > 50).all() and (y["ess_bulk"] > 50).all()  # MCSEs worth the name
    assert (x["r_hat"] < 1.05).all() and (y["r_hat"] < 1.05).all()


def test_a_default_fit_without_nutpies_private_helpers_lands_on_the_fast_paths_posterior(monkeypatch, sleepstudy):
    formula = "Reaction ~ Days + (Days | Subject)"
    fast, told = fit_counting_warnings(formula, sleepstudy)
    assert not told and fast.idata.attrs["sampler_path"] == FAST_PATH
    assert compat.fast_path_available() is None

    rename_nutpie_helpers(monkeypatch)
    assert compat.fast_path_available() == "nutpie.compile_pymc._make_functions is missing"
    public, told = fit_counting_warnings(formula, sleepstudy)
    assert hb.Model(formula, sleepstudy).collapsed  # the collapsed model's custom Op, compiled by nutpie itself
    assert len(told) == 1 and "nutpie.compile_pymc._make_functions is missing" in str(told[0].message)
    assert public.idata.attrs["sampler_path"] == PUBLIC_PATH
    assert_same_posterior(fast, public)
    # lme4 (REML): Intercept 251.4, Days 10.47, sd 24.7 and 5.9, sigma 25.6
    means = public.summary()["mean"]
    assert abs(means["Intercept"] - 251.4) < 8 and abs(means["Days"] - 10.47) < 1.5
    assert 15 < means["sd(Intercept|Subject)"] < 40 and 4 < means["sd(Days|Subject)"] < 10
    assert abs(means["sigma"] - 25.6) < 2.5


def test_a_sampled_model_and_its_refit_with_other_data_through_the_public_path(monkeypatch, sleepstudy):
    formula, options = "Reaction ~ Days + (Days | Subject)", dict(parameterization="non-centered", collapse=False)
    other = sleepstudy[sleepstudy["Days"] < 8].assign(Reaction=lambda d: 1.5 * d["Reaction"])  # fewer rows, new scale
    fast = [fit_counting_warnings(formula, data, **options)[0] for data in (sleepstudy, other)]
    assert [f.idata.attrs["sampler_path"] for f in fast] == [FAST_PATH] * 2

    rename_nutpie_helpers(monkeypatch)
    public, told = fit_counting_warnings(formula, sleepstudy, **options)
    assert len(told) == 1 and public.idata.attrs["sampler_path"] == PUBLIC_PATH
    refit, told = fit_counting_warnings(formula, other, **options)
    assert not told  # once per process
    assert refit.idata.attrs["sampler_path"] == PUBLIC_PATH
    assert refit.timings["build"] == 0 and refit.timings["compile"] < 1.0  # compiled.with_data, no compile
    assert refit.posterior.sizes == fast[1].posterior.sizes
    for f, p in zip(fast, (public, refit)):
        assert_same_posterior(f, p)
    # the refit sampled the other data, not the first fit's
    assert refit.summary().loc["Intercept", "mean"] - public.summary().loc["Intercept", "mean"] > 80


def test_a_model_without_a_group_term_through_the_public_path(monkeypatch, sleepstudy):
    """The pooled baseline (no grouping factor, nothing integrated out) lands on the fast path's posterior."""
    fast, told = fit_counting_warnings("Reaction ~ Days", sleepstudy)
    assert not told and fast.idata.attrs["sampler_path"] == FAST_PATH
    rename_nutpie_helpers(monkeypatch)
    public, told = fit_counting_warnings("Reaction ~ Days", sleepstudy)
    assert len(told) == 1 and public.idata.attrs["sampler_path"] == PUBLIC_PATH
    assert_same_posterior(fast, public)
    means = public.summary()["mean"]  # OLS: 251.4, 10.47, residual SD 47.7
    assert abs(means["Intercept"] - 251.4) < 3 and abs(means["Days"] - 10.47) < 0.6 and abs(means["sigma"] - 47.7) < 1.5


def test_bench_paths_prints_the_path_of_each_suite_model():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "bench" / "paths.py"), "--suite", "tiny", "--draws", "50",
                           "--tune", "50"], capture_output=True, text=True, timeout=600, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    header, line = done.stdout.splitlines()
    assert header == "# fast path: available"
    assert line.split()[:4] == ["tiny", "nutpie", "(compiled-model", "cache)"] and " fit " in line
