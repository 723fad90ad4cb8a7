"""One factor of a crossed gaussian design integrated out (hierbayes.model.collapsed and
marginal_likelihood): the log density given the sampled factor's effects against the dense
multivariate normal, its gradient against finite differences, and which factor is integrated out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from recovery import numeric_gradient
from scipy import stats

import hierbayes as hb
from hierbayes.model.collapsed import collapse_reason, sufficient_statistics
from hierbayes.model.coordinates import MAX_COEFS, integrated_factors, sampled_design
from hierbayes.model.marginal_likelihood import crossed_marginal_loglik, register_jax
from hierbayes.model.parameterization import describe
from hierbayes.specification.names import STAT


def _problem(seed=0, n=48, Jg=6, Jh=4, q=2):
    """Rows of a factor ``g`` (varying intercept, and with ``q=2`` a slope on ``x``; integrated out) crossed
    with ``h`` (varying intercept, sampled): data, and a point of the parameters."""
    rng = np.random.default_rng(seed)
    g = np.concatenate([np.arange(Jg), rng.integers(0, Jg, n - Jg)])
    h = np.concatenate([np.arange(Jh), rng.integers(0, Jh, n - Jh)])
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    A = rng.normal(size=(q, q))
    L = np.linalg.cholesky(A @ A.T + q * np.eye(q))
    point = {"b": rng.normal(size=2), "c": rng.normal(size=Jh), "sigma": 1.3, "L": L}
    return {"y": rng.normal(3.0, 2.0, n), "X": X, "g": g, "h": h, "Zg": np.column_stack([np.ones(n), x][:q]),
            "Jg": Jg}, point


def _dense_loglik(d, b, c, sigma, L):
    """``y ~ N(X b + c[h], Z_g (I_J x L L') Z_g' + s^2 I)``: every row at once."""
    same = d["g"][:, None] == d["g"][None, :]
    V = same * (d["Zg"] @ L @ L.T @ d["Zg"].T) + sigma**2 * np.eye(len(d["y"]))
    return stats.multivariate_normal(d["X"] @ b + c[d["h"]], V).logpdf(d["y"])


def _compiled(d, mode):
    """The crossed log-likelihood of the point and PyTensor's gradient of it in ``b, c, sigma, L``."""
    b, c, sigma, L = pt.dvector("b"), pt.dvector("c"), pt.dscalar("sigma"), pt.dmatrix("L")
    ZZ = sufficient_statistics(d["y"], d["X"][:, :0], d["g"], d["Zg"], d["Jg"])[STAT.ZZ]
    residual = pt.as_tensor(d["y"]) - pt.as_tensor(d["X"]) @ b - c[pt.as_tensor(d["h"])]
    coefs = ("Intercept", "x")[:d["Zg"].shape[1]]
    f = crossed_marginal_loglik(residual, pt.as_tensor(d["g"]), pt.as_tensor(d["Zg"][:, 1:]), coefs,
                                d["Jg"], pt.as_tensor(ZZ), pt.as_tensor(float(len(d["y"]))), sigma, L)
    inputs = [b, c, sigma, L]
    return pytensor.function(inputs, [f, *pt.grad(f, inputs)], mode=mode)


# FAST_COMPILE runs the Op's perform; NUMBA its numba implementation (nutpie's); JAX its JAX one (numpyro's);
# one varying coefficient takes the kernel's scalar loop, two its q x q one
@pytest.mark.parametrize("mode, q", [("FAST_COMPILE", 2), ("NUMBA", 2), ("JAX", 2), ("FAST_COMPILE", 1), ("NUMBA", 1)])
def test_crossed_loglik_and_gradient_equal_the_dense_density(mode, q):
    if mode == "JAX":
        import jax  # noqa: F401  (a test dependency: a missing install must fail, not skip)

        register_jax()
    d, p = _problem(q=q)
    value, d_b, d_c, d_sigma, d_L = _compiled(d, mode)(p["b"], p["c"], p["sigma"], p["L"])
    dense = lambda b=p["b"], c=p["c"], s=p["sigma"], L=p["L"]: _dense_loglik(d, b, c, s, L)  # noqa: E731
    assert float(value) == pytest.approx(dense(), rel=1e-10)
    np.testing.assert_allclose(d_b, numeric_gradient(lambda b: dense(b=b), p["b"]), rtol=1e-6, atol=1e-6)
    # the sampled factor's effects reach the likelihood through the level sums Z'r and r'r
    np.testing.assert_allclose(d_c, numeric_gradient(lambda c: dense(c=c), p["c"]), rtol=1e-6, atol=1e-6)
    assert float(d_sigma) == pytest.approx(float(numeric_gradient(lambda s: dense(s=float(s)), p["sigma"])),
                                           rel=1e-6)
    np.testing.assert_allclose(np.tril(d_L), np.tril(numeric_gradient(lambda L: dense(L=L), p["L"])),
                               rtol=1e-6, atol=1e-6)


def _frame(seed=1, n=120):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                         "g": [f"g{i}" for i in np.arange(n) % 12], "h": [f"h{i}" for i in np.arange(n) % 5],
                         "k": [f"k{i}" for i in (np.arange(n) // 7) % 3]})


def test_the_factor_with_the_most_levels_is_integrated_out_and_the_others_sampled():
    m = hb.Model("y ~ x + (1 + x | g) + (1 | h)", _frame())
    assert m.collapsed and integrated_factors(m.design) == ("g",)
    assert list(sampled_design(m.design).factors) == ["h"]
    names = {v.name for v in m.fitting_model.free_RVs}
    assert "sd_g" in names and "corr_chol_0" in names  # g's SDs and correlation, not its effects
    assert not any(n.endswith("_g") and not n.startswith("sd_") for n in names)
    assert any(n.endswith("_h") and not n.startswith("sd_") for n in names)  # h's effects are sampled
    assert describe(m).startswith("Group effects: g integrated out and drawn exactly afterwards "
                                  "given the sampled effects of h (collapsed); h ")
    three = hb.Model("y ~ x + (1 | g) + (1 | h) + (1 | k)", _frame())
    assert three.collapsed and integrated_factors(three.design) == ("g",)
    assert list(sampled_design(three.design).factors) == ["h", "k"]
    assert not hb.Model("y ~ x + (1 | g) + (1 | h)", _frame(), collapse=False).collapsed


def test_a_factor_of_too_many_coefficients_is_sampled_and_the_other_integrated_out():
    df = _frame()
    columns = [f"x{i}" for i in range(MAX_COEFS)]
    df = df.assign(**{c: np.random.default_rng(i).normal(size=len(df)) for i, c in enumerate(columns)})
    wide = f"(1 + {' + '.join(columns)} || g)"
    m = hb.Model(f"y ~ x + {wide} + (1 | h)", df)
    assert integrated_factors(m.design) == ("h",) and list(sampled_design(m.design).factors) == ["g"]
    reason = collapse_reason(hb.Model(f"y ~ x + {wide}", df).design, m.family)
    assert reason == f"'g' has {MAX_COEFS + 1} varying coefficients (at most {MAX_COEFS} are integrated out)"


def test_collapsed_models_of_one_coefficient_compile_to_jax():
    """sampler="numpyro" jaxifies the model unfrozen: a factor's scale must not need its length at run time."""
    from pymc.sampling.jax import get_jaxified_logp

    register_jax()
    for formula in ("y ~ x + (1 | g)", "y ~ x + (1 | g) + (1 | h)"):
        model = hb.Model(formula, _frame()).fitting_model
        point = model.initial_point()
        values = [point[v.name] for v in model.value_vars]
        jax_logp = get_jaxified_logp(model)(values)  # PyMC 6: the log density itself by default
        assert float(jax_logp) == pytest.approx(float(model.compile_logp()(point)), rel=1e-9)
