"""Fits through the compile cache on disk (hierbayes.backend.disk_cache, hierbayes.backend.compiled_cache): a
damaged entry is compiled and written again, a cache others could write is never loaded, a location that cannot
be used costs speed and not the fit, the cache stays under its cap, and the first fit of a structure on a fresh
machine gives the draws of every later process."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import hierbayes as hb
from hierbayes.backend import disk_cache
from hierbayes.backend.disk_cache import CALLBACKS, MODELS
from hierbayes.backend.sampling import FAST_PATH, clear_cache

FORMULA = "Reaction ~ Days + (1 | Subject)"
SHORT = dict(draws=60, tune=60, chains=1, seed=2, progressbar=False, warn=False)
BENCH = Path(__file__).resolve().parents[2] / "bench"


def _as_a_new_process(cache: Path, monkeypatch) -> None:
    """Fit as a new process with ``cache`` as its compile cache: nothing compiled in memory, nothing warned."""
    monkeypatch.setenv("HIERBAYES_CACHE_DIR", str(cache))
    clear_cache()
    disk_cache.reset()


def _fit(data, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = hb.Model(FORMULA, data).fit(**SHORT, **options)
    return fit, [str(w.message) for w in caught if issubclass(w.category, hb.BackendWarning)]


@pytest.fixture(scope="module")
def warm(tmp_path_factory, sleepstudy):
    """A cache folder holding FORMULA's compiled model, and that fit's draws."""
    cache = tmp_path_factory.mktemp("warm") / "cache"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _as_a_new_process(cache, monkeypatch)
        fit, said = _fit(sleepstudy)
    assert fit.timings["build"] > 0 and said == []
    yield cache, fit.posterior
    clear_cache()


def _copy(warm, tmp_path) -> Path:
    return Path(shutil.copytree(warm[0], tmp_path / "cache"))


def _files(cache: Path) -> dict[str, Path]:
    callbacks = sorted((cache / CALLBACKS).iterdir(), key=lambda p: p.stat().st_size)
    (entry,) = (cache / MODELS).iterdir()
    return {"model": entry, "copy callback": callbacks[0], "log density callback": callbacks[-1]}


DAMAGES = {
    "truncated": lambda data: data[: len(data) // 2],
    "garbage": lambda data: os.urandom(len(data)),
    "a valid file of something else": None,  # the checksum holds; numba or pickle cannot make a model of it
}


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("which", ["model", "log density callback", "copy callback"])
def test_a_damaged_entry_is_compiled_and_written_again_and_the_fit_goes_on(warm, tmp_path, monkeypatch, sleepstudy,
                                                                            which, damage):
    cache = _copy(warm, tmp_path)
    path = _files(cache)[which]
    _as_a_new_process(cache, monkeypatch)
    if DAMAGES[damage] is None:
        kind = MODELS if which == "model" else CALLBACKS
        disk_cache.write(kind, path.name, pickle.dumps({"n_dim": 3}) if which == "model" else b"not machine code")
    else:
        path.write_bytes(DAMAGES[damage](path.read_bytes()))
    fit, said = _fit(sleepstudy)
    assert fit.idata.attrs["sampler_path"] == FAST_PATH  # not the slow public path, and no error
    assert fit.timings["build"] > 0  # compiled again
    assert len(said) == 1 and said[0].startswith(f"hierbayes removed {path} from its compile cache, because ")
    np.testing.assert_array_equal(fit.posterior["b"].values, warm[1]["b"].values)
    kind = MODELS if which == "model" else CALLBACKS
    assert disk_cache.read(kind, path.name) is not None  # written anew

    _as_a_new_process(cache, monkeypatch)
    again, said = _fit(sleepstudy)
    assert again.timings["build"] == 0 and said == []  # repaired: loaded, nothing compiled
    np.testing.assert_array_equal(again.posterior["b"].values, warm[1]["b"].values)


@pytest.mark.parametrize("mode", [0o770, 0o757])
def test_a_cache_others_can_write_is_not_loaded_and_the_fit_compiles(warm, tmp_path, monkeypatch, sleepstudy, mode):
    cache = _copy(warm, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}
    cache.chmod(mode)
    _as_a_new_process(cache, monkeypatch)
    fit, said = _fit(sleepstudy)
    second, said_again = _fit(sleepstudy.assign(Reaction=sleepstudy["Reaction"] + 1))
    assert fit.idata.attrs["sampler_path"] == FAST_PATH and fit.timings["build"] > 0  # compiled, not loaded
    assert second.timings["compile"] < 1  # the compiled model is kept in memory
    who = "its group" if mode == 0o770 else "every user"
    assert said == [f"hierbayes does not use its compile cache in {cache}, because {cache} can be written by {who} "
                    f"(mode {mode:o}): every new process compiles models again; set HIERBAYES_CACHE_DIR to a "
                    f"folder only you can write"] and said_again == []
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == before  # nothing read (touched) or written
    np.testing.assert_array_equal(fit.posterior["b"].values, warm[1]["b"].values)


def test_a_cache_shared_with_another_kind_of_machine_never_loads_its_machine_code(warm, tmp_path, monkeypatch,
                                                                                    sleepstudy):
    from hierbayes.backend import compat

    cache = _copy(warm, tmp_path)
    _as_a_new_process(cache, monkeypatch)
    triple, cpu, features = compat.machine()
    monkeypatch.setattr(compat, "machine", lambda: (triple, "another-cpu", features))
    fit, said = _fit(sleepstudy)
    assert fit.timings["build"] > 0 and said == []  # compiled for this machine, beside the other's
    assert disk_cache.usage().models == 2
    np.testing.assert_array_equal(fit.posterior["b"].values, warm[1]["b"].values)


def test_a_cache_location_that_cannot_be_created_costs_speed_not_the_fit(tmp_path, monkeypatch, sleepstudy):
    (tmp_path / "results.csv").write_text("the user's")
    cache = tmp_path / "results.csv" / "cache"
    _as_a_new_process(cache, monkeypatch)
    fit, said = _fit(sleepstudy)
    second, said_again = _fit(sleepstudy.assign(Reaction=sleepstudy["Reaction"] * 2))
    assert fit.idata.attrs["sampler_path"] == second.idata.attrs["sampler_path"] == FAST_PATH
    assert second.timings["compile"] < 1
    assert len(said) == 1 and said[0].startswith(f"hierbayes cannot keep compiled models in {cache} (")
    assert said_again == [] and (tmp_path / "results.csv").read_text() == "the user's"


def test_the_cache_stays_under_its_cap_least_recently_used_first(warm, tmp_path, monkeypatch, sleepstudy):
    cache = _copy(warm, tmp_path)
    first = _files(cache)
    size = sum(p.stat().st_size for p in first.values())
    _as_a_new_process(cache, monkeypatch)
    monkeypatch.setenv(disk_cache.MAX_MB_VARIABLE, str(1.6 * size / 1e6))  # room for one structure and a half
    cap = disk_cache.max_bytes()
    other = hb.Model("Reaction ~ 1 + (1 | Subject)", sleepstudy).fit(**SHORT)  # another structure
    assert other.timings["build"] > 0
    assert not first["log density callback"].exists()  # the least recently used (and the largest) file
    assert first["copy callback"].exists()  # shared by both structures, and just used
    assert disk_cache.usage().size <= cap
    _as_a_new_process(cache, monkeypatch)
    fit, _ = _fit(sleepstudy)
    assert fit.timings["build"] > 0  # evicted: compiled again, and kept again
    assert first["log density callback"].exists() and disk_cache.usage().size <= cap
    np.testing.assert_array_equal(fit.posterior["b"].values, warm[1]["b"].values)


def test_cache_info_and_clear_from_the_command_line(warm, tmp_path):
    cache = _copy(warm, tmp_path)
    (cache / "notes.txt").write_text("the user's")
    env = {**os.environ, "HIERBAYES_CACHE_DIR": str(cache)}
    size = sum(p.stat().st_size for p in cache.rglob("*.*") if p.name != "notes.txt")

    def run(*args):
        done = subprocess.run([sys.executable, "-m", "hierbayes", "cache", *args], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("info") == (f"hierbayes cache: {cache}\n  usable: yes\n  size: {size / 1e6:.1f} MB in 3 files "
                           f"(1 compiled models, 2 compiled callbacks)\n  cap: 1000 MB (set HIERBAYES_CACHE_MAX_MB "
                           f"to change it)\n")
    assert run("clear") == f"hierbayes: removed 3 files ({size / 1e6:.1f} MB) from the compile cache {cache}\n"
    assert [p.name for p in cache.iterdir()] == ["notes.txt"]


# --- cold and warm: the same draws --------------------------------------------------------------------

FIT_BOTH = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {bench!r})
    from suite import bernoulli_slope, crossed, poisson_intercept
    import hierbayes as hb

    # each differed between the two processes before (poisson at 1e-11, crossed on another path);
    # bernoulli's rows go through hierbayes's own SIMD Op (specification/families/logit_rows.py)
    models = {{"poisson": hb.Model("y ~ x + (1 | g)", poisson_intercept(4000, 100), family="poisson"),
               "crossed": hb.Model("y ~ x + (1 | item) + (1 | rater)", crossed(600, 20, 15)),
               "bernoulli": hb.Model("y ~ x + (1 | g)", bernoulli_slope(2000, 40), family="bernoulli")}}
    out = {{}}
    for name, model in models.items():
        fit = model.fit(draws=100, tune=100, chains=2, seed=3, progressbar=False, warn=False)
        out.update({{f"{{name}}/{{k}}": np.asarray(v) for k, v in fit.posterior.data_vars.items()}})
        out[f"{{name}}/build"], out[f"{{name}}/compile"] = fit.timings["build"], fit.timings["compile"]
    np.savez(sys.argv[1], **out)
""")


@pytest.mark.slow
def test_a_fresh_machine_gives_the_draws_of_every_later_process(tmp_path):
    """The first process has every cache empty (hierbayes's and PyTensor's, so PyTensor compiles each node of the
    log density itself); the second loads the compiled models that the first kept. Same seed, same draws."""
    script = tmp_path / "fit_both.py"
    script.write_text(FIT_BOTH.format(bench=str(BENCH)))
    # not a folder named "hierbayes": beside the script, it would be imported in place of the package
    env = {**os.environ, "HIERBAYES_CACHE_DIR": str(tmp_path / "compile-cache"),
           "PYTENSOR_FLAGS": ",".join(filter(None, [os.environ.get("PYTENSOR_FLAGS"),
                                                    f"base_compiledir={tmp_path / 'pytensor'}"]))}
    runs = []
    for run in ("cold", "warm"):
        done = subprocess.run([sys.executable, str(script), str(tmp_path / f"{run}.npz")], env=env, timeout=900,
                              capture_output=True, text=True)
        assert done.returncode == 0, f"the {run} process failed:\n{done.stderr[-3000:]}"
        runs.append(dict(np.load(tmp_path / f"{run}.npz")))
    cold, warm = runs
    for name in ("crossed", "poisson", "bernoulli"):
        assert cold[f"{name}/build"] > 0 and warm[f"{name}/build"] == 0  # compiled, then loaded
        assert warm[f"{name}/compile"] < 5  # the fast path: loaded, not compiled
    assert cold.keys() == warm.keys()
    for key in cold:
        if not key.endswith(("/build", "/compile")):
            np.testing.assert_array_equal(warm[key], cold[key], err_msg=key)
