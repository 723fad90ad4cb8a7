"""Property-based tests of formula -> design -> parameter names (hypothesis; no sampling).

Random formulas combine fixed terms (numeric, categorical, interactions, with or without an
intercept), group terms (``|`` and ``||``, several coefficients, several blocks on one factor),
nesting (``g/k``) and crossing (``g:h`` and separate factors), over random data with missing
values. For every combination the design must have arrays of the right shapes, level indices
that map each row back to its own level, and printed parameter names that go back in
through ``priors=``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hierbayes as hb
from hierbayes.common.errors import DataWarning, PriorError
from hierbayes.specification.design import make_design
from hierbayes.specification.families import get_family
from hierbayes.specification.formula import parse
from hierbayes.specification.parameters import model_parameters, prior_targets, resolve_priors

FIXED_TERMS = ["x1", "x2", "f", "x1:x2", "x1:f"]
NUMERIC_EXPRS = ["1", "x1", "1 + x1", "0 + x2", "x1 + x2", "0 + x1 + x2"]
FACTORS = ["g", "h", "g:h", "g/k"]
RESPONSES = {"gaussian": "y", "student_t": "y", "poisson": "count", "negative_binomial": "count",
             "bernoulli": "binary"}
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


def expand(factor: str) -> list[str]:
    """``g/k`` is ``g`` and ``g:k``; anything else is itself."""
    if "/" in factor:
        a, b = factor.split("/")
        return [a, f"{a}:{b}"]
    return [factor]


@st.composite
def blocks(draw):
    """Group terms on distinct expanded factors (one coefficient never varies twice by a factor)."""
    chosen = draw(st.lists(st.sampled_from(FACTORS), min_size=1, max_size=3, unique=True))
    out, seen = [], set()
    for factor in chosen:
        names = expand(factor)
        if seen & set(names):
            continue
        seen |= set(names)
        out.append((draw(st.sampled_from(NUMERIC_EXPRS)), draw(st.booleans()), factor))
    return out


@st.composite
def datasets(draw):
    n = draw(st.integers(24, 60))
    n_g, n_h, n_k, n_f = (draw(st.integers(2, m)) for m in (6, 5, 3, 3))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x1": rng.normal(size=n), "x2": rng.uniform(-2, 2, n),
        "f": [f"f{i % n_f}" for i in rng.permutation(n)],
        "g": [f"G{i % n_g}" for i in rng.permutation(n)],
        "h": [f"H{i % n_h}" for i in rng.permutation(n)],
        "k": [f"k{i % n_k}" for i in rng.permutation(n)],
        "y": rng.normal(size=n), "count": rng.poisson(3.0, n), "binary": rng.integers(0, 2, n),
    })
    df.loc[0, "binary"], df.loc[1, "binary"] = 0, 1
    missing = draw(st.lists(st.integers(2, n - 1), max_size=3, unique=True))
    df.loc[missing, "x1"] = np.nan
    return df


@st.composite
def models(draw):
    fixed = draw(st.lists(st.sampled_from(FIXED_TERMS), max_size=3, unique=True))
    intercept = draw(st.booleans()) or not fixed
    family = draw(st.sampled_from(sorted(RESPONSES)))
    terms = ([] if intercept else ["0"]) + fixed
    group_terms = draw(blocks())
    rhs = " + ".join((terms or ["1"]) + [f"({e} {'|' if c else '||'} {f})" for e, c, f in group_terms])
    return f"{RESPONSES[family]} ~ {rhs}", family, group_terms, intercept, fixed


def design_of(formula: str, family: str, df: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return make_design(parse(formula), df, get_family(family))


def kept_rows(df: pd.DataFrame, formula: str) -> pd.DataFrame:
    return df[df["x1"].notna()] if "x1" in formula else df


@SETTINGS
@given(model=models(), df=datasets())
def test_design_arrays_have_the_right_shapes_and_levels(model, df):
    formula, family, group_terms, intercept, fixed = model
    d = design_of(formula, family, df)
    kept = kept_rows(df, formula)
    n = len(kept)
    assert d.n_obs == n and d.n_dropped == len(df) - n
    assert d.y.shape == (n,)
    np.testing.assert_array_equal(d.y, kept[RESPONSES[family]].to_numpy(dtype=float))

    # fixed effects: one column per name, rows aligned with the kept data
    assert d.X.shape == (n, len(d.fixed_names))
    assert ("Intercept" in d.fixed_names) == intercept
    if intercept:
        np.testing.assert_array_equal(d.X[:, d.fixed_names.index("Intercept")], 1.0)
    for name in ("x1", "x2"):
        if name in fixed:
            np.testing.assert_array_equal(d.X[:, d.fixed_names.index(name)], kept[name].to_numpy())
    dummies = [j for j, c in enumerate(d.fixed_names) if c.startswith("f[")]
    if "f" in fixed:
        assert dummies and set(np.unique(d.X[:, dummies])) <= {0.0, 1.0}

    # grouping factors: expanded nesting, first-appearance order, levels observed in the kept rows
    expected = list(dict.fromkeys(name for _, _, f in group_terms for name in expand(f)))
    assert list(d.factors) == expected
    for name, fd in d.factors.items():
        labels = kept[name.split(":")].astype(str).agg(":".join, axis=1).to_numpy()
        assert fd.index.shape == (n,) and fd.index.min() >= 0 and fd.index.max() < len(fd.levels)
        assert set(fd.levels) == set(labels) and len(set(fd.levels)) == len(fd.levels)
        np.testing.assert_array_equal(np.asarray(fd.levels)[fd.index], labels)
        assert fd.counts.sum() == n and (fd.counts > 0).all()

    # blocks: Z is (rows, coefficients); an intercept column is ones and numeric columns are the data
    assert len(d.blocks) == sum(len(expand(f)) for _, _, f in group_terms)
    for block in d.blocks:
        assert block.Z.shape == (n, len(block.coef_names))
        assert ("Intercept" in block.coef_names) == (not block.block.expr.startswith("0"))
        for j, coef in enumerate(block.coef_names):
            column = np.ones(n) if coef == "Intercept" else kept[coef].to_numpy()
            np.testing.assert_array_equal(block.Z[:, j], column)


@SETTINGS
@given(model=models(), df=datasets())
def test_printed_parameter_names_round_trip_through_priors(model, df):
    formula, family, group_terms, _, _ = model
    d = design_of(formula, family, df)
    fam = get_family(family)
    labels = [p.label for p in model_parameters(d, fam)]
    assert len(labels) == len(set(labels))
    for factor in d.factors:
        for coef in d.factor_coefs(factor):
            assert f"sd({coef}|{factor})" in labels
    correlated = [b for b in d.blocks if b.block.correlated and len(b.coef_names) > 1]
    n_cor = sum(len(b.coef_names) * (len(b.coef_names) - 1) // 2 for b in correlated)
    assert sum(label.startswith("cor(") for label in labels) == n_cor

    # every prior target, given by its printed name with a distinct value, is the prior in force
    supports = {"real": lambda i: hb.Normal(i, 1 + i), "positive": lambda i: hb.HalfNormal(1 + i),
                "correlation": lambda i: hb.LKJ(1 + i)}
    targets = prior_targets(d, fam)
    given_priors = {label: supports[support](i) for i, (label, _, support) in enumerate(targets)}
    assert resolve_priors(d, fam, given_priors) == given_priors
    # and the Model reports them under the same names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        table = hb.Model(formula, df, family, priors=given_priors).prior_summary()
    assert list(table.index) == [label for label, _, _ in targets]
    assert (table["source"] == "user").all()


@SETTINGS
@given(model=models(), df=datasets(), data=st.data())
def test_a_misspelt_parameter_name_is_refused_by_name(model, df, data):
    formula, family, _, _, _ = model
    d = design_of(formula, family, df)
    fam = get_family(family)
    label = data.draw(st.sampled_from([label for label, _, _ in prior_targets(d, fam)]))
    wrong = label.replace("|", "| ") if "|" in label else label + "_"
    with pytest.raises(PriorError, match=re.escape(f"prior given for {wrong!r}") + ".*" + re.escape(f"did you mean {label!r}")):
        resolve_priors(d, fam, {wrong: hb.HalfNormal(1)})
