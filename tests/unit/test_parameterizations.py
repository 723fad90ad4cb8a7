"""The parameterizations of a factor's effects (hierbayes.model.parameterizations), table by table.

Each row is a model and the parameterization each of its factors takes: the chooser must pick it,
it must create its variables (in the sampler's order), and, being a change of coordinates with a
constant Jacobian, the model's log density must equal the non-centered model's at the same group
effects, SDs, correlations and fixed effects (``tests/same_effects.py``). No sampling.
"""

from __future__ import annotations

import pytest
from same_effects import assert_same_log_density, crossed, grouped_counts, nested_counts, uneven_crossed

import hierbayes as hb
from hierbayes.model.parameterizations import (
    PARAMETERIZATIONS,
    AroundParent,
    Centered,
    CenteredIntercept,
    Folded,
    HierarchicallyCentered,
    NonCentered,
    PartiallyCentered,
    ShearedNonCentered,
    factor_parameterizations,
)
from hierbayes.specification import names as N

C, CI, NC, PC = "centered", "centered-intercept", "non-centered", "partially-centered"
I, IX = ("Intercept",), ("Intercept", "x")

# (formula, data, family, parameterization) -> each factor's parameterization, and the variables of the
# group effects in the order the model creates them (fixed effects and family parameters aside)
TABLE = {
    "non-centered, sheared": (
        ("y ~ x + (1 + x | item) + (1 | rater)", crossed, "gaussian", NC),
        {"item": ShearedNonCentered(IX), "rater": ShearedNonCentered(I)},
        ["sd_item", "z_mean_item", "z_contrasts_item", "corr_chol_0", "sd_rater", "z_mean_rater", "z_contrasts_rater"]),
    "non-centered, levels too uneven to shear": (
        ("y ~ x + (1 + x | item) + (1 | rater)", uneven_crossed, "gaussian", NC),
        {"item": NonCentered(), "rater": ShearedNonCentered(I)},
        ["sd_item", "z_item", "corr_chol_0", "sd_rater", "z_mean_rater", "z_contrasts_rater"]),
    "centered, crossed: one folded into the other": (
        ("y ~ x + (1 | item) + (1 | rater)", crossed, "gaussian", C),
        {"item": Folded(Centered()), "rater": HierarchicallyCentered(Centered(), I)},
        ["sd_item", "u_item_0", "ubar_item_0", "sd_rater", "u_rater_1"]),
    "centered, a folded || block": (
        ("y ~ x + (1 + x || item) + (1 | rater)", crossed, "gaussian", C),
        {"item": Folded(Centered()), "rater": HierarchicallyCentered(Centered(), I)},
        ["sd_item", "u_item_0", "ubar_item_0", "sd_rater", "u_rater_1"]),
    "centered, ||": (
        ("y ~ x + (1 + x || g)", grouped_counts, "poisson", C),
        {"g": HierarchicallyCentered(Centered(), IX)},
        ["sd_g", "u_g_0"]),
    "centered, a shared slope without a fixed intercept": (
        ("y ~ 0 + x + (1 + x | item)", crossed, "gaussian", C),
        {"item": HierarchicallyCentered(Centered(), ("x",))},
        ["sd_item", "corr_chol_0", "u_item_0"]),
    "centered, a varying slope without a fixed one": (
        ("y ~ 1 + (1 + x | g)", grouped_counts, "poisson", C),
        {"g": HierarchicallyCentered(Centered(), I)},
        ["sd_g", "corr_chol_0", "u_g_0"]),
    "centered, correlated": (
        ("y ~ x + (1 + x | g)", grouped_counts, "poisson", C),
        {"g": HierarchicallyCentered(Centered(), IX)},
        ["sd_g", "corr_chol_0", "u_g_0"]),
    "centered, two blocks on a factor": (
        ("y ~ x + z + (1 + x | g) + (0 + z | g)", grouped_counts, "poisson", C),
        {"g": HierarchicallyCentered(Centered(), ("Intercept", "x", "z"))},
        ["sd_g", "corr_chol_0", "u_g_0", "u_g_1"]),
    "centered-intercept, correlated": (
        ("y ~ x + (1 + x | g)", grouped_counts, "poisson", CI),
        {"g": HierarchicallyCentered(CenteredIntercept(), I)},
        ["sd_g", "z_slopes_g", "corr_chol_0", "u_g_0"]),
    "centered-intercept, ||": (
        ("y ~ x + (1 + x || g)", grouped_counts, "poisson", CI),
        {"g": HierarchicallyCentered(CenteredIntercept(), I)},
        ["sd_g", "z_slopes_g", "u_g_0"]),
    "centered-intercept, the intercept's term second": (
        ("y ~ x + (0 + x | g) + (1 | g)", grouped_counts, "poisson", CI),
        {"g": HierarchicallyCentered(CenteredIntercept(), I)},
        ["sd_g", "z_slopes_g", "u_g_1"]),
    "centered-intercept and non-centered": (
        ("y ~ x + (1 + x | item) + (1 | rater)", crossed, "gaussian", {"item": CI}),
        {"item": HierarchicallyCentered(CenteredIntercept(), I), "rater": NonCentered()},
        ["sd_rater", "z_rater", "sd_item", "z_slopes_item", "corr_chol_0", "u_item_0"]),
    "centered-intercept, folded": (
        ("y ~ x + (1 + x | item) + (1 | rater)", crossed, "gaussian", {"item": CI, "rater": C}),
        {"item": Folded(CenteredIntercept()), "rater": HierarchicallyCentered(Centered(), I)},
        ["sd_item", "z_slopes_item", "corr_chol_0", "u_item_0", "ubar_item_0", "sd_rater", "u_rater_1"]),
    "centered-intercept, folded, ||": (
        ("y ~ x + (1 + x || item) + (1 | rater)", crossed, "gaussian", {"item": CI, "rater": C}),
        {"item": Folded(CenteredIntercept()), "rater": HierarchicallyCentered(Centered(), I)},
        ["sd_item", "z_slopes_item", "u_item_0", "ubar_item_0", "sd_rater", "u_rater_1"]),
    "centered and sheared non-centered": (
        ("y ~ x + (1 | item) + (1 + x | rater)", crossed, "gaussian", {"item": C}),
        {"item": HierarchicallyCentered(Centered(), I), "rater": ShearedNonCentered(("x",))},
        ["sd_rater", "z_mean_rater", "z_contrasts_rater", "corr_chol_1", "sd_item", "u_item_0"]),
    "centered, nested: the class around its school": (
        ("y ~ x + (1 | school) + (1 | klass)", nested_counts, "poisson", C),
        {"school": HierarchicallyCentered(Centered(), I), "klass": AroundParent(Centered(), "school", 1, ("school", I))},
        ["sd_school", "u_school_0", "sd_klass", "u_klass_1"]),
    "centered, three nested levels (/ and correlated slopes)": (
        ("y ~ x + (1 + x | district/school/klass)", nested_counts, "poisson", C),
        {"district": HierarchicallyCentered(Centered(), IX),
         "district:school": AroundParent(Centered(), "district", 1, ("district", IX)),
         "district:school:klass": AroundParent(Centered(), "district:school", 2, ("district", IX))},
        ["sd_district", "corr_chol_0", "u_district_0", "sd_district_school", "corr_chol_1", "u_district_school_1",
         "sd_district_school_klass", "corr_chol_2", "u_district_school_klass_2"]),
    "centered, nested beside a crossed factor that takes the fixed effects": (
        ("y ~ x + (1 | rater) + (1 | school) + (1 + x | klass)", nested_counts, "poisson",
         {"rater": C, "school": C, "klass": CI}),
        {"rater": HierarchicallyCentered(Centered(), I), "school": Folded(Centered()),
         "klass": AroundParent(CenteredIntercept(), "school", 1, None)},
        ["sd_school", "u_school_1", "ubar_school_1", "sd_rater", "u_rater_0", "sd_klass", "z_slopes_klass",
         "corr_chol_2", "u_klass_2"]),
    "partially centered, correlated: around both fixed effects": (
        ("y ~ x + (1 + x | g)", grouped_counts, "poisson", PC),
        {"g": HierarchicallyCentered(PartiallyCentered(), IX)},
        ["sd_g", "corr_chol_0", "t_g_0_0", "t_g_0_1"]),
    "partially centered, ||": (
        ("y ~ x + (1 + x || g)", grouped_counts, "poisson", PC),
        {"g": HierarchicallyCentered(PartiallyCentered(), IX)},
        ["sd_g", "t_g_0_0", "t_g_0_1"]),
    "partially centered, two blocks on a factor": (
        ("y ~ x + z + (1 + x | g) + (0 + z | g)", grouped_counts, "poisson", PC),
        {"g": HierarchicallyCentered(PartiallyCentered(), ("Intercept", "x", "z"))},
        ["sd_g", "corr_chol_0", "t_g_0_0", "t_g_0_1", "t_g_1_0"]),
    "partially centered beside a centered crossed factor: neither folded": (
        ("y ~ x + (1 + x | item) + (1 | rater)", crossed, "gaussian", {"item": PC, "rater": C}),
        {"item": PartiallyCentered(), "rater": HierarchicallyCentered(Centered(), I)},
        ["sd_item", "corr_chol_0", "t_item_0_0", "t_item_0_1", "sd_rater", "u_rater_1"]),
    "partially centered, nested in a centered factor: around its school": (
        ("y ~ x + (1 | school) + (1 + x | klass)", nested_counts, "poisson", {"school": C, "klass": PC}),
        {"school": HierarchicallyCentered(Centered(), I), "klass": AroundParent(PartiallyCentered(), "school", 1, ("school", I))},
        ["sd_school", "u_school_0", "sd_klass", "corr_chol_1", "t_klass_1_0", "t_klass_1_1"]),
    "nested, the parent non-centered: nothing around it": (
        ("y ~ x + (1 | school) + (1 | klass)", nested_counts, "poisson", {"klass": C}),
        {"school": NonCentered(), "klass": HierarchicallyCentered(Centered(), I)},
        ["sd_school", "z_school", "sd_klass", "u_klass_1"]),
}
NOT_NON_CENTERED = [row for row, (_, chosen, _) in TABLE.items()
                    if not all(isinstance(p, NonCentered) for p in chosen.values())]


def model_of(row: str, parameterization=None) -> hb.Model:
    formula, data, family, chosen = TABLE[row][0]
    return hb.Model(formula, data(), family, parameterization=parameterization or chosen, collapse=False)


@pytest.mark.parametrize("row", list(TABLE))
def test_each_factor_takes_its_parameterization_and_creates_its_variables(row):
    m = model_of(row)
    _, chosen, variables = TABLE[row]
    assert factor_parameterizations(m.design, m.parameterization) == chosen
    assert {p.value for p in chosen.values()} <= set(PARAMETERIZATIONS)
    others = {N.INTERCEPT_CENTERED, N.SLOPES, *(name for name, _ in m.family.parameters)}
    assert [v.name for v in m.pymc_model.free_RVs if v.name not in others] == variables


@pytest.mark.parametrize("row", NOT_NON_CENTERED)
def test_log_density_is_the_non_centered_one_at_the_same_effects(row):
    """log p(alpha, beta, v, sd) = log p_non-centered(alpha', beta', z = (v - mu) L^-T, sd) - log |dv/dz|."""
    assert_same_log_density(model_of(row), model_of(row, NC))


def test_no_effects_are_drawn_when_they_are_integrated_out():
    m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    assert m.collapsed and factor_parameterizations(m.design, m.parameterization, collapse=True) == {}
    assert [v.name for v in m.fitting_model.free_RVs] == ["b_slopes", "Intercept_centered", "sd_Subject", "corr_chol_0",
                                                          "sigma"]


def test_wrapped_parameterizations_keep_the_users_word():
    assert HierarchicallyCentered(CenteredIntercept(), I).value == CI and Folded(Centered()).value == C
    assert ShearedNonCentered(I).value == NC and PARAMETERIZATIONS == (NC, C, CI, PC)
    assert HierarchicallyCentered(PartiallyCentered(), I).value == PC
