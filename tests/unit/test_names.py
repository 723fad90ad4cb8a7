"""One module names everything (hierbayes.specification.names).

Two guards: every variable, data and dim of the PyMC models hierbayes writes, in every
parameterization, is a name the registry produces for that design; and no module other than
the registry assembles such a name itself (a scan of the sources), so a future
``f"u_{s}_{k}"`` somewhere else fails here rather than in a user's posterior.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.model import data as contract
from hierbayes.specification import names as N
from hierbayes.specification.parameters import model_parameters

PACKAGE = Path(hb.__file__).resolve().parent
REGISTRY = PACKAGE / "specification" / "names.py"


def crossed(seed: int = 0, items: int = 12, raters: int = 8, n: int = 240) -> pd.DataFrame:
    """Crossed items and raters of even level sizes (so the non-centered factors are sheared)."""
    rng = np.random.default_rng(seed)
    item = np.repeat(np.arange(items), n // items)
    rater = rng.permutation(np.repeat(np.arange(raters), n // raters))
    x, x2 = rng.normal(3.0, 1.0, n), rng.normal(size=n)
    y = 2.0 + 0.5 * x + rng.normal(0, 0.7, items)[item] + rng.normal(0, 0.5, raters)[rater] + rng.normal(0, 1, n)
    return pd.DataFrame({"y": y, "x": x, "x2": x2, "item": [f"i{i:02d}" for i in item],
                         "rater": [f"r{j:02d}" for j in rater], "count": rng.poisson(np.exp(0.3 + 0.2 * x2)),
                         "grade": np.digitize(y, np.quantile(y, [0.25, 0.5, 0.75]))})


def uneven() -> pd.DataFrame:
    """Items of 2 to 20 rows: too uneven to shear."""
    df = crossed()
    return df[[not (item < "i06" and i % 20 >= 2) for i, item in zip(df.index, df["item"])]]


C, CI, NC = "centered", "centered-intercept", "non-centered"

# (formula, data, family, parameterization, priors, collapse): every way a factor's effects are drawn
MODELS = {
    "non-centered sheared, correlated and ||": ("y ~ x + (1 + x | item) + (1 + x2 || rater)", crossed, "gaussian",
                                                NC, {}, False),
    "non-centered plain": ("y ~ x + (1 + x | item) + (1 | rater)", uneven, "gaussian", NC, {}, False),
    "centered, folded into the centred factor": ("y ~ x + (1 | item) + (1 | rater)", crossed, "gaussian", C, {}, False),
    "centered, two blocks on a factor": ("count ~ x + x2 + (1 + x | item) + (0 + x2 | item)", crossed, "poisson", C,
                                         {}, False),
    "centered without a fixed intercept": ("y ~ 0 + x + (1 + x | item)", crossed, "gaussian", C, {}, False),
    "centered-intercept, correlated": ("count ~ x + (1 + x | item)", crossed, "poisson", CI, {}, False),
    "centered-intercept, folded, ||": ("y ~ x + (1 + x || item) + (1 | rater)", crossed, "gaussian",
                                       {"item": CI, "rater": C}, {}, False),
    "one factor of each": ("y ~ x + (1 + x | item) + (1 | rater)", crossed, "gaussian", {"item": C}, {}, False),
    "priors of several kinds": ("count ~ x + x2 + (1 + x + x2 | item)", crossed, "poisson", NC,
                                {"x": hb.StudentT(4, 0, 1), "sd(x|item)": hb.Exponential(2)}, False),
    "collapsed": ("y ~ x + (1 + x | item)", crossed, "gaussian", "auto", {}, True),
    "collapsed, nested": ("y ~ x + (1 | item/rater)", crossed, "gaussian", "auto", {}, True),
    "collapsed, crossed: item integrated out, rater sampled": ("y ~ x + (1 + x | item) + (1 | rater)", crossed,
                                                                "gaussian", "auto", {}, True),
    "no grouping factor": ("count ~ x", crossed, "poisson", NC, {}, False),
    "ordinal thresholds, centered": ("grade ~ x + (1 + x | item)", crossed, "cumulative", C, {}, False),
    "ordinal thresholds, sheared": ("grade ~ x + (1 | item) + (1 | rater)", crossed, "sratio", NC, {}, False),
    "a categorical response: the formula once per category": ("grade ~ x + (1 + x | item) + (1 | rater)", crossed,
                                                              "categorical", "auto", {}, None),
    "a family parameter's own formula": (hb.Formula("y ~ x + (1 + x | item)", sigma="~ x2 + (1 + x2 | item) + (1 | rater)"),
                                         crossed, "gaussian", "auto", {"sigma_x2": hb.StudentT(4, 0, 1)}, None),
}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request) -> hb.Model:
    formula, data, family, parameterization, priors, collapse = MODELS[request.param]
    return hb.Model(formula, data(), family, priors=priors, parameterization=parameterization, collapse=collapse)


def test_every_variable_data_and_dim_of_the_pymc_model_is_a_registry_name(model):
    names = contract.internal_names(model.design, model.family)
    levels = {N.factor_dim(f) for f in model.design.all_factors}
    assert not names & set(model.design.factors)
    for pymc_model in {id(m): m for m in (model.pymc_model, model.fitting_model)}.values():
        unnamed = set(pymc_model.named_vars) - names
        assert not unnamed, f"not named by hierbayes.specification.names: {sorted(unnamed)}"
        assert set(pymc_model.coords) <= names | levels
        assert {dim for dims in pymc_model.named_vars_to_dims.values() for dim in dims} <= names | levels
    data = contract.model_data(model.design, model.family, model.priors, model.collapsed, model.parameterization)
    assert set(data) <= names


def test_every_printed_parameter_is_a_variable_of_the_model(model):
    """The labels and the model meet in the registry: each parameter's variable and selection exist."""
    pymc_model = model.pymc_model
    for p in model_parameters(model.design, model.family):
        assert p.var in pymc_model.named_vars, p.label
        for dim, coord in p.sel.items():
            assert coord in pymc_model.coords[dim], p.label
    for factor in model.design.factors:
        assert N.effects_var(factor) in pymc_model.named_vars


def test_factor_names_use_the_factor_in_labels_and_dims_and_an_identifier_in_variables():
    names = N.FactorNames("school:class")
    assert (names.effects, names.sd, names.block(3), names.index) == ("r_school_class", "sd_school_class",
                                                                     "u_school_class_3", "g_school_class")
    assert (names.level_dim, names.coef_dim, names.cor_dim) == ("school:class", "school:class__coef",
                                                                "school:class__cor")
    assert names.sd_label("x") == "sd(x|school:class)" and names.effect_label("a:1", "x") == "r_school:class[a:1,x]"
    assert N.is_row_data(names.columns) and not N.is_row_data(N.prior_data(names.sd, "sigma"))


def test_a_factor_named_as_a_models_variable_is_refused():
    df = crossed().rename(columns={"rater": "z_mean_item"})
    with pytest.raises(hb.DataError, match="name of one of the model's own variables"):
        hb.Model("y ~ x + (1 | item) + (1 | z_mean_item)", df)


def test_a_factor_named_as_another_familys_parameter_is_refused_only_with_that_family():
    df = crossed().rename(columns={"rater": "shape"})
    df["y"] = np.exp(df["y"] / 4)  # positive, for the gamma family
    assert "shape" in hb.Model("y ~ x + (1 | shape)", df).design.factors  # gaussian: no parameter named shape
    with pytest.raises(hb.DataError, match="grouping factor 'shape' has the name of one of the model's own variables"):
        hb.Model("y ~ x + (1 | shape)", df, family="gamma")


# --- no names assembled outside the registry ---------------------------------------------------------

# the registry's prefixes and label shapes, with "{}" where a formatted value goes
_ASSEMBLED = re.compile(
    r"^(r|sd|cor|z|z_mean|z_contrasts|z_slopes|u|ubar|g|Z|corr_chol|b_slopes|cz)_\{\}"  # r_{factor}, u_{s}_{k}, ...
    r"|(sd|cor)\(\{\}|\|\{\}\)"  # sd({coef}|{factor}), ...|{factor})
    r"|\{\}__|\{\}_log__"        # {var}__{param}, {factor}__coef, {var}_log__
    r"|^\{\},\{\}$|^\{\}_\{\}$"  # cor pairs a,b; a variable's part by prior kind
)
_PREFIXES = {"r_", "sd_", "cor_", "z_", "z_mean_", "z_contrasts_", "z_slopes_", "u_", "ubar_", "g_", "Z_",
             "corr_chol_", "b_slopes_", "cz_"}
_FIXED = {N.INTERCEPT_CENTERED, N.SLOPES, N.FIXED_DATA, N.RESPONSE_DATA, N.X_MEAN_DATA, N.COLLAPSED_LOGLIK,
          *N.STAT_NAMES}
_ALLOWED = {("specification/priors.py", "beta")}  # the HalfCauchy and Gamma distributions' own parameter


def assembled_names(source: str, where: str = "") -> list[str]:
    """The registry's names that ``source`` builds or spells out itself (docstrings aside)."""
    tree = ast.parse(source)
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            template = "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
            if _ASSEMBLED.search(template):
                found.append(f"line {node.lineno}: f-string {template!r}")
            for part in node.values:  # its literal parts are checked here, not again below
                docstrings.add(id(part))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            template = re.sub(r"\{[^{}]*\}", "{}", node.value)  # a str.format template
            spelled = node.value in _FIXED or node.value in _PREFIXES or ("{" in node.value
                                                                          and _ASSEMBLED.search(template))
            if spelled and (where, node.value) not in _ALLOWED:
                found.append(f"line {node.lineno}: {node.value!r}")
    return found


def test_the_scan_finds_a_name_assembled_or_spelled_out():
    source = ('def f(s, k, c, g):\n    """Reads u_{s}_{k}."""\n'
              '    return f"u_{s}_{k}", f"sd({c}|{g})", "Intercept_centered", "corr_chol_", "r_{}".format(g)\n')
    assert [hit.split(": ", 1)[1] for hit in assembled_names(source)] == [
        "f-string 'u_{}_{}'", "f-string 'sd({}|{})'", "'Intercept_centered'", "'corr_chol_'", "'r_{}'"]
    assert assembled_names('x = f"shrinkage_{g}"; y = "Days"') == []


@pytest.mark.parametrize("path", sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                                        if p != REGISTRY))
def test_no_module_but_the_registry_builds_a_name(path):
    found = assembled_names((PACKAGE / path).read_text(), path)
    assert not found, f"{path} builds names of hierbayes.specification.names itself: {found}"
