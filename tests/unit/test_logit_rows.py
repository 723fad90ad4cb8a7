"""The logit rows' Op: each implementation against the exact log density and score, row by row."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import expit, logsumexp

from hierbayes.specification.families.logit_rows import LogitRows, logit_rows, logit_rows_numpy


def exact_rows(y, eta, n):
    """The log density and score from SciPy's own functions (log1p of tiny values stays exact there)."""
    softplus = logsumexp(np.stack([np.zeros_like(eta), eta]), axis=0)
    logp = np.where((y == n) & (eta > 0), -n * np.log1p(np.exp(-np.abs(eta))), y * eta - n * softplus)
    return logp, y - n * expit(eta)


def eta_grid():
    tails = np.logspace(-300, np.log10(60), 600)
    return np.concatenate([np.linspace(-60, 60, 24001), tails, -tails, [0.0, -0.0, 40.0, -40.0, 40.0001]])


def compiled(mode: str, n_is_vector: bool):
    y, eta = pt.dvector("y"), pt.dvector("eta")
    n = pt.dvector("n") if n_is_vector else pt.dscalar("n")
    logp, score = logit_rows(y, eta, n)
    return pytensor.function([y, eta, n], [logp, score], mode=mode)


# (mode, n per row?): numba runs the SIMD kernel, FAST_COMPILE (Python linker) runs ``perform``
IMPLEMENTATIONS = [("NUMBA", False), ("NUMBA", True), ("FAST_COMPILE", False), ("FAST_COMPILE", True)]


@pytest.mark.parametrize("mode, n_is_vector", IMPLEMENTATIONS)
@pytest.mark.parametrize("successes", ["none", "all", "some"])
def test_each_rows_log_density_and_score_are_exact_to_rounding(mode, n_is_vector, successes):
    eta = eta_grid()
    rng = np.random.default_rng(3)
    n = rng.integers(1, 9, eta.size).astype(float) if n_is_vector else np.float64(7.0)
    trials = np.broadcast_to(n, eta.shape)
    y = {"none": np.zeros_like(eta), "all": trials.copy(), "some": np.floor(trials / 2)}[successes]
    logp, score = compiled(mode, n_is_vector)(y, eta, n)
    ref_logp, ref_score = exact_rows(y, eta, trials)
    # a unit or two of rounding of the largest term, n |eta| (up to 480 here), and of the result
    terms = np.maximum.reduce([np.ones_like(eta), trials * np.abs(eta), np.abs(ref_logp)])
    assert np.max(np.abs(logp - ref_logp) / terms) < 1e-15
    assert np.max(np.abs(score - ref_score) / trials) < 1e-15
    # in relative terms too, down to the far tails (log densities of -1e-300)
    tiny = np.abs(ref_logp) > 1e-300
    assert np.max(np.abs(logp - ref_logp)[tiny] / np.maximum(np.abs(ref_logp)[tiny], 1e-300)) < 1e-15 * 480


def test_the_simd_kernel_agrees_with_numpys_functions():
    rng = np.random.default_rng(0)
    eta = rng.normal(0, 3, 5000)
    y = (rng.random(eta.size) < expit(eta)).astype(float)
    numba_rows = compiled("NUMBA", False)(y, eta, 1.0)
    for ours, reference in zip(numba_rows, logit_rows_numpy(y, eta)):
        np.testing.assert_allclose(ours, reference, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_a_missing_linear_predictor_gives_a_missing_log_density(mode):
    logp, _ = compiled(mode, False)(np.array([1.0, 0.0]), np.array([np.nan, 0.5]), 1.0)
    assert np.isnan(logp[0]) and np.isclose(logp[1], -np.logaddexp(0, 0.5))


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_rows_of_different_lengths_are_refused(mode):
    with pytest.raises(ValueError, match="hierbayes: .*(differ in length|3 responses for 2)"):
        compiled(mode, False)(np.zeros(3), np.zeros(2), 1.0)


def test_only_vectors_are_taken():
    with pytest.raises(TypeError, match="LogitRows takes vectors"):
        LogitRows()(pt.dmatrix(), pt.dvector(), pt.dmatrix())


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_the_gradient_is_the_score_and_there_is_no_second_derivative(mode):
    y, eta = np.array([0.0, 1.0, 1.0, 0.0]), np.array([-3.0, -0.2, 2.5, 41.0])
    eta_var = pt.dvector("eta")
    total = logit_rows(pt.as_tensor(y), eta_var)[0].sum()
    gradient = pytensor.grad(total, eta_var)
    np.testing.assert_allclose(pytensor.function([eta_var], gradient, mode=mode)(eta), y - expit(eta), rtol=1e-14)
    with pytest.raises(NotImplementedError, match="no second derivatives"):
        pytensor.grad(gradient.sum(), eta_var)


def test_draws_by_rows_go_through_blockwise_row_by_row():
    from pytensor.graph.replace import vectorize_graph

    y, eta = np.array([0.0, 1.0, 1.0]), pt.dvector("eta")
    rows = logit_rows(pt.as_tensor(y), eta)[0]
    draws = pt.dmatrix("draws")
    batched = pytensor.function([draws], vectorize_graph(rows, {eta: draws}), mode="NUMBA")
    values = np.random.default_rng(1).normal(0, 2, (4, 3))
    np.testing.assert_allclose(batched(values), y * values - np.logaddexp(0, values), rtol=1e-13)


def test_a_bernoulli_models_log_density_runs_through_the_op():
    """The model's gradient uses the one-pass Op, not the graph of two transcendental calls a row."""
    import pandas as pd

    import hierbayes as hb

    rng = np.random.default_rng(2)
    data = pd.DataFrame({"x": rng.normal(size=120), "g": rng.integers(0, 6, 120).astype(str)})
    data["y"] = (rng.random(120) < expit(data["x"])).astype(int)
    model = hb.Model("y ~ x + (1 | g)", data, family="bernoulli").fitting_model
    function = model.logp_dlogp_function(ravel_inputs=True)
    ops = {type(node.op).__name__ for node in function._pytensor_function.maker.fgraph.apply_nodes}
    assert "LogitRows" in ops
    assert "Log1p" not in str(ops) and "Softplus" not in str(ops)
