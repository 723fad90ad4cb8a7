"""The draws' expansion after sampling (hierbayes.backend.expansion): every variable of the model from the
sampler's unconstrained draws, equal to PyMC's own values of the same variables draw by draw."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import hierbayes as hb
from hierbayes.backend.expansion import expansion_of
from hierbayes.model import data as contract


def _grouped(seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), 6)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(0, 0.7, 12)[g] + rng.normal(0, 1, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in g], "h": [f"h{j % 4}" for j in range(g.size)]})


CASES = [  # formula, options: correlated blocks, the shear, centered factors, crossed factors, a GLMM
    ("Reaction ~ Days + (Days | Subject)", dict(collapse=False, parameterization="non-centered")),
    ("Reaction ~ Days + (Days | Subject)", dict(collapse=False, parameterization="centered-intercept")),
    ("Reaction ~ Days + (Days || Subject)", dict(collapse=False, parameterization="centered")),
    ("y ~ x + (1 + x | g) + (1 | h)", dict(collapse=False)),
    ("y ~ x + (1 | g) + (0 + x | h)", dict(family="student_t", collapse=False)),
]


@pytest.mark.parametrize(("formula", "options"), CASES)
def test_the_expansion_is_pymcs_own_value_of_every_variable(formula, options, sleepstudy):
    data = sleepstudy if "Reaction" in formula else _grouped()
    m = hb.Model(formula, data, **options)
    model = m.fitting_model
    expansion = pickle.loads(pickle.dumps(expansion_of(model)))  # as a later process reads it from disk
    rng = np.random.default_rng(1)
    chains, draws = 2, 3
    posterior = xr.Dataset({
        name: (("chain", "draw", *[f"{name}_dim_{i}" for i in range(len(shape))]),
               rng.normal(0, 0.5, (chains, draws, *shape)))
        for name, shape in expansion.free.items()})
    values = contract.pack_data(contract.model_data(m.design, m.family, m.priors, m.collapsed, m.parameterization))
    expanded = expansion.complete(posterior, values)

    assert not set(expansion.transformed) & set(expanded.data_vars)  # log(sd) etc. are dropped
    assert set(expansion.outputs) <= set(expanded.data_vars) and "b" in expanded
    pymc_values = model.compile_fn(list(model.unobserved_value_vars), inputs=model.value_vars,
                                   on_unused_input="ignore", point_fn=False, mode="FAST_COMPILE")
    for c in range(chains):
        for d in range(draws):
            reference = pymc_values(*[posterior[v.name].values[c, d] for v in model.value_vars])
            for var, value in zip(model.unobserved_value_vars, reference):
                if var.name in expanded:
                    np.testing.assert_allclose(expanded[var.name].values[c, d], value, rtol=1e-10, atol=1e-12,
                                               err_msg=var.name)
    for name in expansion.outputs:  # named dimensions where PyMC has them (levels, coefficients)
        assert expanded[name].dims[2:] == tuple(model.named_vars_to_dims.get(name, expanded[name].dims[2:]))


def test_every_structure_shares_one_expand_callback(tmp_path, monkeypatch, sleepstudy):
    from hierbayes.backend.compiled_cache import compile_model

    monkeypatch.setenv("HIERBAYES_CACHE_DIR", str(tmp_path))
    first = compile_model(hb.Model("Reaction ~ 1 + (1 | Subject)", sleepstudy, collapse=False).fitting_model)
    other = compile_model(hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy, collapse=False).fitting_model)
    assert first.compiled_expand_func._cache_hits == 0 and other.compiled_expand_func._cache_hits == 1
    assert other.compiled_logp_func._cache_hits == 0
    assert other.n_expanded == other.n_dim  # nutpie stores the unconstrained point; the rest comes after
