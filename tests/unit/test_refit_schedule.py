"""The reruns after divergences: which target_accept values, which seeds, when to stop."""

from __future__ import annotations

import numpy as np
import xarray as xr

from hierbayes.backend import sampling


def run_with(divergent: int, draws: int = 10, chains: int = 2) -> xr.DataTree:
    flags = np.zeros((chains, draws), bool)
    flags.flat[:divergent] = True
    return xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), np.zeros((chains, draws)))}),
                                  "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), flags)})})


def test_reruns_go_up_the_schedule_and_stop_at_the_first_clean_run():
    asked = []

    def sample(accept, attempt):
        asked.append((accept, attempt))
        return run_with({0: 4, 1: 0}[attempt])

    tree, attempts = sampling._until_no_divergences(sample, sampling._target_accepts(0.8, True), 10, 2)
    assert asked == [(0.8, 0), (0.95, 1)] and attempts == [(0.8, 4), (0.95, 0)]
    assert sampling.count_divergences(tree) == 0


def test_the_last_run_is_kept_when_divergences_remain():
    tree, attempts = sampling._until_no_divergences(lambda a, i: run_with(3 - i), [0.8, 0.95, 0.99], 10, 2)
    assert attempts == [(0.8, 3), (0.95, 2), (0.99, 1)] and sampling.count_divergences(tree) == 1
    assert sampling.describe_attempts(attempts) == ("3 divergences at target_accept 0.8; refitted at 0.95: "
                                                    "2 divergences; at 0.99: 1 divergence")


def test_schedule_only_raises_target_accept_and_can_be_switched_off():
    assert sampling._target_accepts(0.8, True) == [0.8, 0.95, 0.99]
    assert sampling._target_accepts(0.97, True) == [0.97, 0.99]
    assert sampling._target_accepts(0.99, True) == [0.99]
    assert sampling._target_accepts(0.8, False) == [0.8]
    assert sampling.describe_attempts([(0.8, 5)]) == ""


def test_rerun_seeds_differ_and_stay_in_the_samplers_range():
    assert sampling._refit_seed(7, 1, "nutpie") == 8
    assert sampling._refit_seed(2**64 - 1, 1, "nutpie") == 0
    assert sampling._refit_seed(2**63 - 1, 2, "numpyro") == 1
    assert sampling._refit_seed(10**30, 1, "pymc") == 10**30 + 1
