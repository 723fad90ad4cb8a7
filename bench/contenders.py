"""The contenders, each run inside a fresh worker process by ``run.py``.

A contender is a function ``(model, data, settings) -> Outcome``: it imports its
library (timed), builds, compiles and samples (each timed where the library lets us
see the boundary) and returns the posterior draws of the parameters users read —
fixed effects, group SDs and correlations, group effects and family parameters —
never the non-centered auxiliaries.

- ``hierbayes``: ``hb.Model(formula, data, family).fit(...)`` with every default.
- ``bambi``: bambi 0.21 with its default sampler (PyMC's NUTS).
- ``bambi-nutpie``: the same bambi model through ``inference_method="nutpie"``
  (``nutpie.compile_pymc_model`` is wrapped to time the compile).
- ``pymc``: a hand-written PyMC model of the same structure (non-centered,
  ``LKJCholeskyCov`` for correlated blocks, ``u[:, k][g]`` indexing), compiled and
  sampled with nutpie directly.
- ``hierbayes-noncentered`` (``collapse=False, parameterization="non-centered"``: every
  group effect sampled, non-centered) and ``hierbayes-auto`` (``parameterization="auto"``,
  the default since 2026-11-22): variants for the collapsed and per-block work; ``hierbayes-ta09``: ``target_accept=0.9``, the
  default until the benchmark showed 0.8 (PyMC's, bambi's and brms's) mixes better.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Outcome:
    """What a contender hands back: timings (s), draws by name (chain, draw, ...), sampler stats."""

    timings: dict[str, float]
    draws: dict[str, np.ndarray]
    divergences: int
    extra: dict = field(default_factory=dict)


def _timed(fn, timings: dict, key: str):
    t0 = time.perf_counter()
    out = fn()
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
    return out


def _divergences(sample_stats) -> int:
    return int(np.asarray(sample_stats["diverging"]).sum()) if "diverging" in sample_stats else -1


def _dataset_draws(posterior, names) -> dict[str, np.ndarray]:
    return {n: posterior[n].transpose("chain", "draw", ...).values for n in names}


# --- hierbayes --------------------------------------------------------------------------------------

def hierbayes_contender(fit_options: dict | None = None, **options) -> Callable:
    def run(model, data, s) -> Outcome:
        timings: dict[str, float] = {}
        hb = _timed(lambda: __import__("hierbayes"), timings, "import")
        t0 = time.perf_counter()
        formula = hb.Formula(model.formula, **model.auxiliary_formulas) if model.auxiliary else model.formula
        m = hb.Model(formula, data, model.family, **options)
        timings["build"] = time.perf_counter() - t0
        fit = m.fit(draws=s["draws"], tune=s["tune"], chains=s["chains"], seed=s["seed"], progressbar=False,
                    warn=False, **(fit_options or {}))
        for key in ("build", "compile", "sample"):
            timings[key] = timings.get(key, 0.0) + fit.timings.get(key, 0.0)
        timings["fit"] = time.perf_counter() - t0
        post = fit.posterior
        names = sorted({p.var for p in fit.parameters} | {v for v in post.data_vars if str(v).startswith("r_")})
        extra = {k: v for k, v in fit.timings.items() if k not in ("build", "compile", "sample")}
        return Outcome(timings, _dataset_draws(post, names), _divergences(fit.idata["sample_stats"].to_dataset()),
                       extra)
    return run


# --- bambi ------------------------------------------------------------------------------------------

def bambi_contender(inference_method: str = "pymc") -> Callable:
    def run(model, data, s) -> Outcome:
        timings: dict[str, float] = {}
        bmb = _timed(lambda: __import__("bambi"), timings, "import")
        t0 = time.perf_counter()
        formula = bmb.Formula(model.bambi_formula, *model.bambi_auxiliary) if model.auxiliary else model.bambi_formula
        m = bmb.Model(formula, data, family=model.family)
        m.build()
        timings["build"] = time.perf_counter() - t0
        if inference_method == "nutpie":
            import nutpie

            compile_pymc_model = nutpie.compile_pymc_model

            def timed_compile(*args, **kwargs):
                return _timed(lambda: compile_pymc_model(*args, **kwargs), timings, "compile")
            nutpie.compile_pymc_model = timed_compile
        t1 = time.perf_counter()
        idata = m.fit(draws=s["draws"], tune=s["tune"], chains=s["chains"], random_seed=s["seed"],
                      inference_method=inference_method, progressbar=False)
        timings["sample"] = time.perf_counter() - t1 - timings.get("compile", 0.0)
        timings["fit"] = time.perf_counter() - t0
        post = idata["posterior"].to_dataset()
        return Outcome(timings, _dataset_draws(post, list(post.data_vars)),
                       _divergences(idata["sample_stats"].to_dataset()))
    return run


# --- hand-written PyMC ------------------------------------------------------------------------------

def _handwritten_model(model, data):
    """The suite model in plain PyMC, with priors scaled to the data as hierbayes scales its defaults."""
    import pymc as pm
    import pytensor.tensor as pt

    y = data[model.response].to_numpy(dtype=float)
    gaussian = model.family == "gaussian"
    scale = float(y.std()) if gaussian else 1.0
    if gaussian:
        location = float(y.mean())
    elif model.family == "bernoulli":
        location = float(np.log(y.mean() / (1 - y.mean())))
    else:
        location = float(np.log(y.mean()))
    X = data[list(model.fixed)].to_numpy(dtype=float)
    X_mean = X.mean(axis=0)
    Xc = X - X_mean
    with pm.Model() as pm_model:
        intercept_c = pm.Normal("Intercept_centered", location, 2.5 * scale)
        beta = pm.Normal("beta", 0.0, 2.5 * scale / X.std(axis=0), shape=X.shape[1])
        eta = intercept_c + Xc @ beta
        pm.Deterministic("b", pt.concatenate([pt.atleast_1d(intercept_c - X_mean @ beta), beta]))
        for block in model.blocks:
            codes = data[block.factor].astype("category").cat.codes.to_numpy()
            J = int(codes.max()) + 1
            Z = data[list(block.slopes)].to_numpy(dtype=float)
            q = 1 + len(block.slopes)
            sd_scale = scale / np.concatenate([[1.0], Z.std(axis=0)])
            f = block.factor
            z = pm.Normal(f"z_{f}", 0.0, 1.0, shape=(J, q))
            if block.correlated and q > 1:
                chol, corr, sd = pm.LKJCholeskyCov(f"chol_{f}", n=q, eta=2.0,
                                                   sd_dist=pm.HalfNormal.dist(sd_scale, shape=q),
                                                   compute_corr=True)
                pm.Deterministic(f"sd_{f}", sd)
                pm.Deterministic(f"cor_{f}", corr[np.triu_indices(q, 1)])
                r = pm.Deterministic(f"r_{f}", z @ chol.T)
            else:
                sd = pm.HalfNormal(f"sd_{f}", sd_scale, shape=q)
                r = pm.Deterministic(f"r_{f}", z * sd)
            eta = eta + r[:, 0][codes]
            for k in range(1, q):
                eta = eta + Z[:, k - 1] * r[:, k][codes]
        if gaussian:
            sigma = pm.Exponential("sigma", 1.0 / scale)
            pm.Normal(model.response, eta, sigma, observed=y)
        elif model.family == "bernoulli":
            pm.Bernoulli(model.response, logit_p=eta, observed=y)
        else:
            pm.Poisson(model.response, pt.exp(eta), observed=y)
    names = ["b"] + [f"{p}_{b.factor}" for b in model.blocks for p in ("sd", "r")]
    names += [f"cor_{b.factor}" for b in model.blocks if b.correlated and b.slopes]
    return pm_model, names + (["sigma"] if gaussian else [])


def pymc_contender(**_) -> Callable:
    def run(model, data, s) -> Outcome:
        timings: dict[str, float] = {}
        nutpie = _timed(lambda: (__import__("pymc"), __import__("nutpie"))[1], timings, "import")
        pm_model, names = _timed(lambda: _handwritten_model(model, data), timings, "build")
        compiled = _timed(lambda: nutpie.compile_pymc_model(pm_model), timings, "compile")
        tree = _timed(lambda: nutpie.sample(compiled, draws=s["draws"], tune=s["tune"], chains=s["chains"],
                                            seed=s["seed"], progress_bar=False), timings, "sample")
        timings["fit"] = timings["build"] + timings["compile"] + timings["sample"]
        post = tree["posterior"].to_dataset()
        return Outcome(timings, _dataset_draws(post, names), _divergences(tree["sample_stats"].to_dataset()))
    return run


CONTENDERS: dict[str, Callable[[], Callable]] = {
    "hierbayes": lambda: hierbayes_contender(),
    "bambi": lambda: bambi_contender("pymc"),
    "bambi-nutpie": lambda: bambi_contender("nutpie"),
    "pymc": lambda: pymc_contender(),
    "hierbayes-noncentered": lambda: hierbayes_contender(collapse=False, parameterization="non-centered"),
    "hierbayes-auto": lambda: hierbayes_contender(parameterization="auto"),
    # every group effect sampled (the crossed designs' path before one factor was integrated out)
    "hierbayes-sampled": lambda: hierbayes_contender(collapse=False),
    # crossed designs: the factors left to the sampler drawn centered (hierarchically, around the intercept)
    "hierbayes-centered": lambda: hierbayes_contender(parameterization="centered"),
    "hierbayes-noncentered-collapsed": lambda: hierbayes_contender(parameterization="non-centered"),
    # the intercepts centered, the slopes non-centered: "auto"'s choice before the levels were partially centered
    "hierbayes-centered-intercept": lambda: hierbayes_contender(parameterization="centered-intercept"),
    "hierbayes-ta09": lambda: hierbayes_contender({"target_accept": 0.9}),  # the default before 2026-11-22
}
DEFAULT_CONTENDERS = ("hierbayes", "bambi", "bambi-nutpie", "pymc")
