"""Collapsed Gaussian effects (hierbayes.model.collapsed): exact marginal likelihood, exact effect draws,
and agreement with the non-centered fit on sleepstudy and radon."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from recovery import numeric_gradient
from scipy import stats

import hierbayes as hb
from hierbayes.model.collapsed import (
    collapse_reason,
    draw_group_effects,
    nested_statistics,
    nesting,
    sufficient_statistics,
)
from hierbayes.model.marginal_likelihood import loglik_and_gradient, marginal_loglik, register_jax
from hierbayes.posterior.summaries import summary_table
from hierbayes.specification.parameters import effects_var

# block structures on one factor: (columns of Z per block, correlated)
STRUCTURES = {
    "intercept": [(["1"], True)],
    "intercept+slope": [(["1", "x"], True)],
    "intercept||slope": [(["1"], True), (["x"], True)],
    "three correlated": [(["1", "x", "w"], True)],
    "slope+pair": [(["x"], True), (["1", "w"], True)],
}


def _problem(structure, seed=0, n=70, J=6, p=2):
    rng = np.random.default_rng(seed)
    g = np.concatenate([np.arange(J), rng.integers(0, J, n - J)])
    cols = {"1": np.ones(n), "x": rng.normal(size=n), "w": rng.uniform(-1, 1, n)}
    Z = np.column_stack([cols[c] for block, _ in structure for c in block])
    W = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y = rng.normal(3.0, 2.0, n)
    q = Z.shape[1]
    L = np.zeros((q, q))
    start = 0
    for block, _ in structure:  # block-diagonal: a random Cholesky factor per block
        k = len(block)
        A = rng.normal(size=(k, k))
        L[start:start + k, start:start + k] = np.linalg.cholesky(A @ A.T + k * np.eye(k))
        start += k
    return y, W, g, Z, J, rng.normal(size=p), 1.3, L


def _dense_loglik(y, W, g, Z, J, theta, sigma, L, shift):
    total = 0.0
    for j in range(J):
        rows = g == j
        V = Z[rows] @ L @ L.T @ Z[rows].T + sigma**2 * np.eye(rows.sum())
        total += stats.multivariate_normal(W[rows] @ theta, V).logpdf(y[rows] - shift)
    return total


def _compiled_loglik(st, mode, with_theta=True):
    """The Op's log-likelihood and PyTensor's gradient of it, compiled in ``mode``."""
    th, sg, LL = pt.dvector("theta"), pt.dscalar("sigma"), pt.dmatrix("L")
    f = marginal_loglik({k: pt.as_tensor(v) for k, v in st.items()}, th if with_theta else None, sg, LL)
    inputs = [th, sg, LL] if with_theta else [sg, LL]
    return pytensor.function(inputs, [f, *pt.grad(f, inputs)], mode=mode)


# FAST_COMPILE runs the Op's perform (the numba kernel called from Python); NUMBA compiles the
# graph around the Op's numba implementation: one structure suffices for that glue
@pytest.mark.parametrize("name, mode", [(name, "FAST_COMPILE") for name in STRUCTURES] + [("three correlated", "NUMBA")])
def test_marginal_loglik_equals_the_dense_multivariate_normal(name, mode):
    y, W, g, Z, J, theta, sigma, L = _problem(STRUCTURES[name])
    st = sufficient_statistics(y, W, g, Z, J, shift=2.5)
    value, *_ = _compiled_loglik(st, mode)(theta, sigma, L)
    assert float(value) == pytest.approx(_dense_loglik(y, W, g, Z, J, theta, sigma, L, 2.5), rel=1e-10)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_marginal_loglik_gradient_matches_finite_differences_of_the_dense_density(name):
    y, W, g, Z, J, theta, sigma, L = _problem(STRUCTURES[name], seed=3)
    st = sufficient_statistics(y, W, g, Z, J, shift=2.5)
    dense = lambda th, s, LL: _dense_loglik(y, W, g, Z, J, th, s, LL, 2.5)  # noqa: E731
    _, d_theta, d_sigma, d_L = _compiled_loglik(st, "FAST_COMPILE")(theta, sigma, L)
    np.testing.assert_allclose(d_theta, numeric_gradient(lambda t: dense(t, sigma, L), theta), rtol=1e-6, atol=1e-6)
    assert float(d_sigma) == pytest.approx(float(numeric_gradient(lambda s: dense(theta, float(s), L), sigma)),
                                           rel=1e-6)
    # only the lower triangle of L is a parameter; the upper one is zero in every model
    np.testing.assert_allclose(np.tril(d_L), np.tril(numeric_gradient(lambda LL: dense(theta, sigma, LL), L)),
                               rtol=1e-6, atol=1e-6)


def test_marginal_loglik_without_fixed_effects_and_in_numpy():
    y, W, g, Z, J, theta, sigma, L = _problem(STRUCTURES["intercept+slope"])
    st = sufficient_statistics(y, W[:, :0], g, Z, J)
    value, d_sigma, d_L = _compiled_loglik(st, "NUMBA", with_theta=False)(sigma, L)
    assert float(value) == pytest.approx(_dense_loglik(y, W[:, :0], g, Z, J, np.zeros(0), sigma, L, 0.0), rel=1e-10)
    f, d_theta, d_sigma_np, d_L_np, _ = loglik_and_gradient(st, np.zeros(0), sigma, L)
    assert f == pytest.approx(float(value), rel=1e-12) and d_theta.shape == (0,)
    assert d_sigma_np == pytest.approx(float(d_sigma), rel=1e-12)
    np.testing.assert_allclose(d_L_np, d_L, rtol=1e-12)


def test_marginal_loglik_in_jax_matches_numba():
    import jax  # noqa: F401  (a test dependency: a missing install must fail, not skip)

    register_jax()
    y, W, g, Z, J, theta, sigma, L = _problem(STRUCTURES["three correlated"])
    st = sufficient_statistics(y, W, g, Z, J, shift=2.5)
    for got, want in zip(_compiled_loglik(st, "JAX")(theta, sigma, L), _compiled_loglik(st, "NUMBA")(theta, sigma, L)):
        np.testing.assert_allclose(got, want, rtol=1e-9)


def test_sufficient_statistics_match_dense_sums():
    y, W, g, Z, J, *_ = _problem(STRUCTURES["slope+pair"])
    st = sufficient_statistics(y, W, g, Z, J)
    D = np.eye(J)[g]  # rows x levels, only in this small test
    np.testing.assert_allclose(st["cz_ZZ"], np.einsum("nj,na,nb->jab", D, Z, Z))
    np.testing.assert_allclose(st["cz_ZW"], np.einsum("nj,na,nb->jab", D, Z, W))
    np.testing.assert_allclose(st["cz_Zy"], np.einsum("nj,na,n->ja", D, Z, y))
    np.testing.assert_allclose(st["cz_WW"], W.T @ W)
    assert st["cz_N"] == len(y) and st["cz_yy"] == pytest.approx(y @ y)


def test_effect_draws_have_the_conditional_posterior_moments():
    y, W, g, Z, J, theta, sigma, L = _problem(STRUCTURES["intercept+slope"], seed=3)
    st = sufficient_statistics(y, W, g, Z, J)
    S = 40_000
    u = draw_group_effects(st, np.tile(theta, (S, 1)), np.full(S, sigma), np.tile(L, (S, 1, 1)),
                           np.random.default_rng(1), max_values=50_000)  # several chunks
    for j in range(J):
        rows = g == j
        precision = np.linalg.inv(L @ L.T) + Z[rows].T @ Z[rows] / sigma**2
        cov = np.linalg.inv(precision)
        mean = cov @ Z[rows].T @ (y[rows] - W[rows] @ theta) / sigma**2
        assert (np.abs(u[:, j].mean(axis=0) - mean) < 4.5 * np.sqrt(np.diag(cov) / S)).all(), j
        np.testing.assert_allclose(np.cov(u[:, j].T), cov, rtol=0.05, atol=0.02 * np.abs(cov).max())


# --- a factor with a nested factor: schools, and classes within schools ---------------------------------

def _nested_problem(seed=1, N=90, J=4, Jv=11):
    """Rows of ``Jv`` classes in ``J`` schools (classes numbered out of school order), a random
    Cholesky factor per factor, and the pieces of the dense density."""
    rng = np.random.default_rng(seed)
    parent = rng.permutation(np.concatenate([np.arange(J), rng.integers(0, J, Jv - J)]))  # class -> school
    gv = np.concatenate([np.arange(Jv), rng.integers(0, Jv, N - Jv)])
    W = np.column_stack([np.ones(N), rng.normal(size=N)])
    Z = np.column_stack([np.ones(N), rng.normal(size=N)])
    V = np.column_stack([np.ones(N), rng.uniform(-1, 1, N)])
    L = np.array([[1.2, 0.0], [0.3, 0.5]])
    K = np.array([[0.7, 0.0], [-0.2, 0.4]])
    return dict(y=rng.normal(1.0, 2.0, N), W=W, Z=Z, V=V, g=parent[gv], gv=gv, parent=parent, J=J,
                theta=rng.normal(size=2), sigma=0.8, L=L, K=K)


def _nested_stats(P, shift=0.0):
    st = sufficient_statistics(P["y"], P["W"], P["g"], P["Z"], P["J"], shift)
    st.update(nested_statistics(P["y"], P["W"], P["Z"], P["gv"], P["V"], P["parent"], shift))
    return st


def _nested_covariance(P, rows, L, K, sigma):
    Vk = P["V"][rows][:, None, :] * (P["gv"][rows][:, None] == np.arange(len(P["parent"])))[..., None]  # rows x classes x qv
    Vflat = Vk.reshape(rows.sum(), -1)
    return (P["Z"][rows] @ L @ L.T @ P["Z"][rows].T + Vflat @ np.kron(np.eye(len(P["parent"])), K @ K.T) @ Vflat.T
            + sigma**2 * np.eye(rows.sum()))


def _nested_dense(P, theta, sigma, L, K, shift=0.0):
    total = 0.0
    for j in range(P["J"]):
        rows = P["g"] == j
        total += stats.multivariate_normal(P["W"][rows] @ theta, _nested_covariance(P, rows, L, K, sigma)).logpdf(
            P["y"][rows] - shift)
    return total


@pytest.mark.parametrize("mode", ["NUMBA", "JAX"])
def test_nested_marginal_loglik_and_gradient_equal_the_dense_density(mode):
    P = _nested_problem()
    st = _nested_stats(P, shift=0.5)
    th, sg, LL, KK = pt.dvector("theta"), pt.dscalar("sigma"), pt.dmatrix("L"), pt.dmatrix("K")
    if mode == "JAX":
        register_jax()
    f = marginal_loglik({k: pt.as_tensor(v) for k, v in st.items()}, th, sg, LL, KK)
    fn = pytensor.function([th, sg, LL, KK], [f, *pt.grad(f, [th, sg, LL, KK])], mode=mode)
    value, d_theta, d_sigma, d_L, d_K = fn(P["theta"], P["sigma"], P["L"], P["K"])
    dense = lambda t, s, L, K: _nested_dense(P, t, s, L, K, shift=0.5)  # noqa: E731
    th0, s0, L0, K0 = P["theta"], P["sigma"], P["L"], P["K"]
    assert float(value) == pytest.approx(dense(th0, s0, L0, K0), rel=1e-10)
    np.testing.assert_allclose(d_theta, numeric_gradient(lambda t: dense(t, s0, L0, K0), th0), rtol=1e-6, atol=1e-6)
    assert float(d_sigma) == pytest.approx(float(numeric_gradient(lambda s: dense(th0, float(s), L0, K0), s0)),
                                           rel=1e-6)
    np.testing.assert_allclose(np.tril(d_L), np.tril(numeric_gradient(lambda x: dense(th0, s0, x, K0), L0)),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.tril(d_K), np.tril(numeric_gradient(lambda x: dense(th0, s0, L0, x), K0)),
                               rtol=1e-6, atol=1e-6)


def test_nested_effect_draws_have_the_conditional_posterior_moments():
    P = _nested_problem(seed=4, N=40, J=2, Jv=5)
    st = _nested_stats(P)
    S = 40_000
    u, e = draw_group_effects(st, np.tile(P["theta"], (S, 1)), np.full(S, P["sigma"]), np.tile(P["L"], (S, 1, 1)),
                              np.random.default_rng(2), K=np.tile(P["K"], (S, 1, 1)), max_values=100_000)
    e = e[:, np.argsort(np.argsort(P["parent"], kind="stable"))]  # classes back in their own order
    # the exact joint conditional of (u, e) given the rows, by dense Gaussian algebra
    Jv, q = len(P["parent"]), 2
    Vk = (P["V"][:, None, :] * (P["gv"][:, None] == np.arange(Jv))[..., None]).reshape(len(P["y"]), -1)
    Zs = P["Z"][:, None, :] * (P["g"][:, None] == np.arange(P["J"]))[..., None]
    X = np.column_stack([Zs.reshape(len(P["y"]), -1), Vk])                     # rows x all effects
    prior = np.zeros((X.shape[1],) * 2)
    prior[:P["J"] * q, :P["J"] * q] = np.kron(np.eye(P["J"]), P["L"] @ P["L"].T)
    prior[P["J"] * q:, P["J"] * q:] = np.kron(np.eye(Jv), P["K"] @ P["K"].T)
    cov = np.linalg.inv(np.linalg.inv(prior) + X.T @ X / P["sigma"] ** 2)
    mean = cov @ X.T @ (P["y"] - P["W"] @ P["theta"]) / P["sigma"] ** 2
    draws = np.concatenate([u.reshape(S, -1), e.reshape(S, -1)], axis=1)
    assert (np.abs(draws.mean(axis=0) - mean) < 4.5 * np.sqrt(np.diag(cov) / S)).all()
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.03 * np.abs(cov).max())


def test_nesting_is_recognised_and_told_from_crossed_factors():
    df = pd.DataFrame({"y": np.arange(8.0), "school": list("aabbbbcc"), "klass": list("xyxyzzxx"),
                       "rater": list("pqpqpqpq")})
    design = hb.Model("y ~ 1 + (1 | school/klass)", df, collapse=False).design
    top, nested, parent = nesting(design)
    assert (top, nested) == ("school", "school:klass")
    levels = design.factors["school:klass"].levels
    assert [design.factors["school"].levels[p] for p in parent] == [lvl.split(":")[0] for lvl in levels]
    crossed = hb.Model("y ~ 1 + (1 | school) + (1 | rater)", df, collapse=False)
    assert nesting(crossed.design) is None
    assert collapse_reason(crossed.design, crossed.family) is None  # one factor integrated out, the other sampled
    assert hb.Model("y ~ 1 + (1 | school/klass)", df).collapsed


def test_collapse_is_used_exactly_where_it_is_exact(sleepstudy):
    assert hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).collapsed
    assert not hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy, collapse=False).collapsed
    two = sleepstudy.assign(half=(sleepstudy["Days"] > 4).astype(str))
    assert hb.Model("Reaction ~ Days + (1 | Subject) + (1 | half)", two).collapsed  # crossed: Subject integrated out
    with pytest.raises(hb.HierbayesError, match="student_t family is not gaussian"):
        hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, family="student_t", collapse=True)
    with pytest.raises(hb.HierbayesError, match="sigma has a formula of its own"):
        hb.Model(hb.Formula("Reaction ~ Days + (1 | Subject) + (1 | half)", sigma="~ Days"), two, collapse=True)
    with pytest.raises(hb.HierbayesError, match="collapse must be True, False or None"):
        hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, collapse="yes")
    names = {v.name for v in hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fitting_model.free_RVs}
    assert not any(n.startswith("z_") for n in names)  # no group effects in the sampler


def _agree(a: hb.Fit, b: hb.Fit, z: float = 4.5) -> None:
    """Means and SDs of every parameter and group effect agree within Monte Carlo error."""
    def table(fit):
        tables = [fit.summary()]
        for factor in fit.model.design.factors:
            r = fit.posterior[effects_var(factor)].transpose("chain", "draw", ...)
            labels = [f"r_{factor}[{lvl},{c}]" for lvl in r[factor].values for c in r[f"{factor}__coef"].values]
            tables.append(summary_table(r.values.reshape(r.shape[0], r.shape[1], -1), labels))
        return pd.concat(tables)

    ta, tb = table(a), table(b)
    assert list(ta.index) == list(tb.index)
    # standard errors: sd / sqrt(ess) for a mean; for an SD about sd / sqrt(2 ess) with normal
    # tails, so sd / sqrt(ess) leaves room for heavier ones
    se = np.sqrt(ta["sd"] ** 2 / ta["ess_bulk"] + tb["sd"] ** 2 / tb["ess_bulk"])
    for column in ("mean", "sd"):
        bad = (ta[column] - tb[column]).abs() > z * se
        assert not bad.any(), pd.concat([ta.loc[bad, [column, "ess_bulk"]], tb.loc[bad, [column, "ess_bulk"]]], axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("dataset, formula, factor", [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "Subject"),
    ("radon", "log_radon ~ floor + (1 | county)", "county"),
])
def test_collapsed_and_non_centered_fits_agree(request, dataset, formula, factor):
    data = request.getfixturevalue(dataset)
    settings = dict(draws=1000, tune=700, chains=2, progressbar=False, warn=False)
    collapsed = hb.Model(formula, data).fit(seed=11, **settings)
    plain = hb.Model(formula, data, collapse=False, parameterization="non-centered").fit(seed=12, **settings)
    assert collapsed.model.collapsed and not plain.model.collapsed
    assert f"Group effects: {factor} integrated out and drawn exactly afterwards (collapsed)" in repr(collapsed)
    assert f"Group effects: {factor} non-centered" in repr(plain)
    assert int(collapsed.idata["sample_stats"]["diverging"].sum()) == 0
    _agree(collapsed, plain)
    # the exact draws of the effects are nearly independent: their ESS is high
    effects = collapsed.diagnostics()
    assert effects.loc["ess_bulk", "value"] > 400


@pytest.mark.slow
def test_nested_collapsed_and_non_centered_fits_agree():
    rng = np.random.default_rng(5)
    school = np.repeat(np.arange(10), 20)
    klass = np.tile(np.repeat(np.arange(4), 5), 10)  # 4 classes of 5 pupils per school
    x = rng.normal(size=school.size)
    y = (2 + 0.5 * x + rng.normal(0, 1.0, 10)[school] + rng.normal(0, 0.3, 10)[school] * x
         + rng.normal(0, 0.6, (10, 4))[school, klass] + rng.normal(0, 0.8, school.size))
    df = pd.DataFrame({"y": y, "x": x, "school": [f"s{i}" for i in school], "klass": [f"c{i}" for i in klass]})
    formula = "y ~ x + (x | school) + (1 | school:klass)"
    settings = dict(draws=1000, tune=700, chains=2, progressbar=False, warn=False)
    collapsed = hb.Model(formula, df).fit(seed=11, **settings)
    plain = hb.Model(formula, df, collapse=False, parameterization="non-centered").fit(seed=12, **settings)
    assert collapsed.model.collapsed and not plain.model.collapsed
    assert "school:klass integrated out and drawn exactly afterwards (collapsed)" in repr(collapsed)
    assert int(collapsed.idata["sample_stats"]["diverging"].sum()) == 0
    assert collapsed.posterior["r_school_klass"].sel({"school:klass": "s3:c2"}).size == 2000
    _agree(collapsed, plain)


@pytest.mark.slow
def test_crossed_collapsed_and_sampled_fits_agree():
    """One factor of a crossed design integrated out, the other sampled: the same posterior as every
    effect sampled, group effects of both factors included (partially crossed, unequal levels)."""
    rng = np.random.default_rng(8)
    n, Jg, Jh = 300, 30, 10
    g = np.concatenate([np.arange(Jg), rng.integers(0, Jg, n - Jg)])
    h = np.concatenate([np.arange(Jh), rng.choice(Jh, n - Jh, p=rng.dirichlet(np.ones(Jh)))])
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(0, 0.7, Jg)[g] + rng.normal(0, 0.3, Jg)[g] * x + rng.normal(0, 0.5, Jh)[h]
         + rng.normal(0, 1.0, n))
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})
    formula = "y ~ x + (1 + x | g) + (1 | h)"
    settings = dict(draws=600, tune=500, chains=2, progressbar=False, warn=False)
    collapsed = hb.Model(formula, df).fit(seed=11, **settings)
    plain = hb.Model(formula, df, collapse=False).fit(seed=12, **settings)
    assert collapsed.model.collapsed and not plain.model.collapsed
    assert "g integrated out and drawn exactly afterwards given the sampled effects of h (collapsed)" in repr(collapsed)
    assert int(collapsed.idata["sample_stats"]["diverging"].sum()) == 0
    assert collapsed.posterior["r_g"].shape == (2, 600, Jg, 2)
    _agree(collapsed, plain)
