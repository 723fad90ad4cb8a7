"""Ctrl-C during sampling and seeds outside a sampler's range: ``model.fit`` never returns a partial fit.

nutpie's blocking ``sample`` and PyMC's sampling loops catch the KeyboardInterrupt of Ctrl-C and
return the draws made so far (nutpie pads the missing ones with NaN); hierbayes raises
:class:`~hierbayes.common.errors.SamplingInterrupted` (a KeyboardInterrupt) instead, for every sampler
path, and refuses a partial trace however it comes. Ctrl-C is simulated deterministically:
``signal.raise_signal(SIGINT)`` from inside the sampler's wait or step, a real signal to this
process at a known point. Every model here is ``Reaction ~ Days + (1 | Subject)``.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import xarray as xr
from nutpie.sample import _BackgroundSampler

import hierbayes as hb
from hierbayes.backend import compat
from hierbayes.backend.sampling import FAST_PATH, PUBLIC_PATH, check_seed, clear_cache, incomplete_draws
from hierbayes.common.errors import HierbayesError, SamplingInterrupted

FORMULA = "Reaction ~ Days + (1 | Subject)"
QUICK = dict(draws=50, tune=50, chains=2, seed=1, progressbar=False, warn=False)
LONG = dict(draws=200_000, tune=100, chains=2, seed=1, progressbar=False, warn=False)


@pytest.fixture(scope="module")
def model(sleepstudy) -> hb.Model:
    return hb.Model(FORMULA, sleepstudy)


@pytest.fixture
def public_path(monkeypatch):
    """nutpie's public API, as when the fast path's hooks are missing (compiled once per test)."""
    compat.reset()
    clear_cache()
    monkeypatch.setattr(compat, "fast_path_available", lambda: "a hook is missing (test)")
    yield
    compat.reset()
    clear_cache()


@pytest.fixture(autouse=True)
def python_ctrl_c():
    """Ctrl-C as in a user's process: Python's own SIGINT handler (another test of the same worker
    process may have left a handler of its own)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def ctrl_c_while_waiting(monkeypatch) -> list[str]:
    """Ctrl-C a moment into nutpie's wait for the draws; returns the log of the sampler's calls."""
    calls: list[str] = []
    wait, cancel = _BackgroundSampler.wait, _BackgroundSampler.cancel

    def interrupted_wait(self, *, timeout=None):
        calls.append("wait")
        time.sleep(0.2)  # sampling for real (in nutpie's threads), then the user presses Ctrl-C
        signal.raise_signal(signal.SIGINT)
        return wait(self, timeout=timeout)

    def logged_cancel(self):
        calls.append("cancel")
        return cancel(self)

    monkeypatch.setattr(_BackgroundSampler, "wait", interrupted_wait)
    monkeypatch.setattr(_BackgroundSampler, "cancel", logged_cancel)
    return calls


def partial_trace_on_wait(monkeypatch) -> None:
    """nutpie's own answer to Ctrl-C: abort, and return the trace so far (NaN-padded) as the result."""
    def aborted_wait(self, *, timeout=None):
        time.sleep(1.0)
        return self.abort()

    monkeypatch.setattr(_BackgroundSampler, "wait", aborted_wait)


# --- nutpie, fast path and public API -----------------------------------------------------------

def test_ctrl_c_during_nutpie_sampling_raises_and_cancels_the_sampler(model, monkeypatch):
    assert model.fit(**QUICK).idata.attrs["sampler_path"] == FAST_PATH  # compiled before the interrupt
    calls = ctrl_c_while_waiting(monkeypatch)
    with pytest.raises(KeyboardInterrupt, match=r"sampling was interrupted \(Ctrl-C\); no fit was made") as caught:
        model.fit(**LONG)
    assert isinstance(caught.value, SamplingInterrupted)
    assert calls == ["wait", "cancel"]  # the sampler's threads are stopped, not left running
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is Python's again


def test_a_nan_padded_nutpie_trace_is_refused(model, monkeypatch):
    partial_trace_on_wait(monkeypatch)
    with pytest.raises(SamplingInterrupted, match=r"sampling stopped early: the sampler returned .*200000"):
        model.fit(**LONG)


def test_ctrl_c_on_nutpie_public_api_raises(model, monkeypatch, public_path):
    calls = ctrl_c_while_waiting(monkeypatch)
    with pytest.warns(hb.BackendWarning), pytest.raises(SamplingInterrupted, match="interrupted"):
        model.fit(**LONG)
    assert calls == ["wait", "cancel"]
    partial_trace_on_wait(monkeypatch)
    with pytest.raises(SamplingInterrupted, match="sampling stopped early"):
        model.fit(**LONG)
    monkeypatch.undo()
    monkeypatch.setattr(compat, "fast_path_available", lambda: "a hook is missing (test)")
    assert model.fit(**QUICK).idata.attrs["sampler_path"] == PUBLIC_PATH  # and a whole run still fits


# --- PyMC ----------------------------------------------------------------------------------------

def test_ctrl_c_during_pymc_sampling_stops_every_chain(model, monkeypatch):
    """PyMC catches the KeyboardInterrupt in each chain and goes on to the next one; hierbayes stops."""
    from pymc.step_methods.hmc.nuts import NUTS

    steps = []
    astep = NUTS.astep

    def step_then_ctrl_c(self, q0):
        steps.append(1)
        if len(steps) == 30:
            signal.raise_signal(signal.SIGINT)
        return astep(self, q0)

    monkeypatch.setattr(NUTS, "astep", step_then_ctrl_c)
    with pytest.raises(SamplingInterrupted, match="interrupted"):
        model.fit(draws=300, tune=100, chains=2, cores=1, seed=1, sampler="pymc", progressbar=False, warn=False)
    assert len(steps) == 30  # stopped at once: not one more step, no second chain
    monkeypatch.undo()


# --- what a partial trace looks like ---------------------------------------------------------------

def posterior(values: np.ndarray) -> xr.DataTree:
    return xr.DataTree.from_dict({"posterior": xr.Dataset({
        "mu": (("chain", "draw"), values), "b": (("chain", "draw", "term"), np.repeat(values[..., None], 2, -1))})})


def test_incomplete_draws_finds_padding_and_missing_draws():
    whole = np.ones((2, 10))
    assert incomplete_draws(posterior(whole), 10, 2) is None
    padded = whole.copy()
    padded[1, 6:] = np.nan  # nutpie: chain 1 stopped after 6 draws
    assert incomplete_draws(posterior(padded), 10, 2) == "only 6 of the 10 draws of chain 1 (the rest padded with NaN)"
    assert incomplete_draws(posterior(whole[:, :4]), 10, 2) == "2 chains of 4 draws instead of 2 of 10"
    assert incomplete_draws(posterior(whole[:1]), 10, 2) == "1 chains of 10 draws instead of 2 of 10"
    one_nan = whole.copy()
    one_nan[0, 3] = np.nan
    tree = posterior(one_nan)
    tree["posterior"]["b"][0, 3, 0] = 1.0  # a NaN in one variable is not a padded draw
    assert incomplete_draws(tree, 10, 2) is None


# --- seeds -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed, sampler, message", [
    (-1, "nutpie", "from 0 to 2\\*\\*64 - 1 for the nutpie sampler, not -1"),
    (2**64, "nutpie", f"for the nutpie sampler, not {2**64}"),
    (2**63, "numpyro", "from 0 to 2\\*\\*63 - 1 for the numpyro sampler"),
    (-5, "pymc", "0 or more for the pymc sampler, not -5"),
    (1.5, "nutpie", "not 1.5"),
    (True, "nutpie", "not True"),
    ("7", "nutpie", "not '7'"),
])
def test_a_seed_outside_the_samplers_range_is_named(seed, sampler, message):
    with pytest.raises(HierbayesError, match=f"seed must be a whole number .*{message}"):
        check_seed(seed, sampler)


def test_seeds_in_range_are_kept():
    assert check_seed(2**64 - 1, "nutpie") == 2**64 - 1
    assert check_seed(np.int64(5), "pymc") == 5 and check_seed(3.0, "nutpie") == 3
    assert check_seed(2**80, "pymc") == 2**80
    assert 0 <= check_seed(None, "nutpie") < 2**31


@pytest.mark.parametrize("sampler", ["auto", "pymc"])
def test_model_fit_refuses_a_bad_seed_before_building_anything(sleepstudy, sampler):
    model = hb.Model("Reaction ~ Days + (Days || Subject)", sleepstudy)
    with pytest.raises(HierbayesError, match="seed must be a whole number .* not -1"):
        model.fit(seed=-1, sampler=sampler)
    assert "pymc_model" not in vars(model) and "fitting_model" not in vars(model)  # nothing built or compiled
