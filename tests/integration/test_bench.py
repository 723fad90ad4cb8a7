"""The benchmark harness (bench/run.py) runs end to end on the tiny suite.

Timings are never asserted here: speed targets live in bench/results.md.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, str(BENCH / "run.py"), "--suite", "tiny", "--contenders", "hierbayes,bambi-nutpie",
           "--draws", "100", "--tune", "100", "--chains", "2", "--out", str(out), "--name", "tiny"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    return json.loads((out / "tiny.json").read_text()), (out / "tiny.md").read_text()


@pytest.mark.slow
def test_tiny_suite_measures_every_contender(tiny_results):
    document, report = tiny_results
    assert document["settings"] == {"draws": 100, "tune": 100, "chains": 2, "seed": 1}
    assert {"hierbayes", "bambi", "pymc", "nutpie"} <= set(document["versions"])
    (model,) = document["models"]
    assert model["name"] == "tiny" and model["rows"] == 240
    for name in ("hierbayes", "bambi-nutpie"):
        r = model["results"][name]
        assert r["status"] == "ok", r
        t = r["timings"]
        # the whole process holds the imports and the fit; the fit holds build + compile + sample
        assert r["wall"] > t["import"] + t["fit"] > 0
        assert t["fit"] >= t["build"] + t["compile"] + t["sample"] - 1e-6
        assert 0 < r["min_ess_bulk"] < 2 * 200 * 3 and r["ess_per_s"] == pytest.approx(r["min_ess_bulk"] / t["fit"])
        assert 0.99 < r["max_rhat"] < 2
        assert r["divergences"] >= 0 and r["peak_mb"] > 50
    # 12 group effects + fixed effects + sd + sigma: the diagnostics cover the group effects too
    assert model["results"]["hierbayes"]["n_values"] == 2 + 1 + 12 + 1
    assert model["results"]["bambi-nutpie"]["n_values"] == 2 + 1 + 12 + 1
    row = next(line for line in report.splitlines() if line.startswith("| bambi-nutpie |"))
    assert row.split("|")[-3:-1] == [" 1.00 ", " 1.00 "]  # ratios of the reference to itself
    assert "## tiny: `y ~ x + (1 | g)`" in report


def test_suite_designs_have_the_sizes_of_the_issue():
    spec = importlib.util.spec_from_file_location("bench_suite", BENCH / "suite.py")
    suite = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = suite  # dataclasses look their module up
    spec.loader.exec_module(suite)
    MODELS = suite.MODELS
    inst = MODELS["insteval_like"].data()
    assert len(inst) == 73_421 and inst["s"].nunique() == 2_972 and inst["d"].nunique() == 1_128
    cells = inst.groupby(["s", "d"], observed=True).ngroups
    assert cells < 0.05 * 2_972 * 1_128  # partially crossed: few student-lecturer pairs observed
    crossed = MODELS["crossed_20k"].data()
    assert (len(crossed), crossed["item"].nunique(), crossed["rater"].nunique()) == (20_000, 300, 200)
    movies = MODELS["movielens_like_1M"].data()
    assert (len(movies), movies["user"].nunique(), movies["item"].nunique()) == (1_000_209, 6_040, 3_706)
    slope = MODELS["radon_slope"]
    assert slope.formula == "log_radon ~ floor + (1 + floor | county)"
    assert slope.bambi_formula == "log_radon ~ floor + (1 + floor | county)" and slope.bambi_note
    assert MODELS["bernoulli_20k"].data()["y"].isin([0, 1]).all()


def test_the_real_insteval_has_every_student_lecturer_pair_once(shared_data):
    """lme4's InstEval, read from ../shared beside the checkout (skipped cleanly where it is absent)."""
    spec = importlib.util.spec_from_file_location("bench_suite", BENCH / "suite.py")
    suite = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = suite
    spec.loader.exec_module(suite)
    real = suite.MODELS["insteval"].data()
    assert len(real) == real.groupby(["s", "d"], observed=True).ngroups == 73_421
    assert (real["s"].nunique(), real["d"].nunique()) == (2_972, 1_128)


def test_cold_cache_gives_pytensor_numba_and_hierbayes_new_folders(tmp_path):
    """A cold worker finds every cache under its own folder: PyTensor's numba cache lives under
    base_compiledir (not compiledir), so that is the flag the harness must set."""
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    env = run.worker_env("cold", str(tmp_path))
    probe = ("import os; from pytensor.configdefaults import config; from pytensor.link.numba import cache; "
             "print(config.base_compiledir); print(cache.NUMBA_CACHE_PATH); print(os.environ['NUMBA_CACHE_DIR']); "
             "print(os.environ['HIERBAYES_CACHE_DIR'])")
    out = subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True).stdout
    folders = out.split()
    assert len(folders) == 4 and all(Path(f).is_relative_to(tmp_path) for f in folders), folders
    assert run.worker_env("warm", str(tmp_path)).get("NUMBA_CACHE_DIR") != env["NUMBA_CACHE_DIR"]
