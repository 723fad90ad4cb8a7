"""Default priors scaled to the data, overrides by printed name or class, and clear refusals."""

import numpy as np
import pytest

import hierbayes as hb
from hierbayes.common.errors import PriorError


@pytest.fixture(scope="module")
def model(sleepstudy):
    return hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)


def test_defaults_follow_the_documented_formulas(model, sleepstudy):
    s = sleepstudy["Reaction"].std(ddof=1)
    sd_days = sleepstudy["Days"].std(ddof=0)
    p = model.priors
    assert p["Intercept"].kind == "Normal"
    np.testing.assert_allclose(p["Intercept"].values["mu"], sleepstudy["Reaction"].mean())
    np.testing.assert_allclose(p["Intercept"].values["sigma"], 2.5 * s)
    np.testing.assert_allclose(p["Days"].values["sigma"], 2.5 * s / sd_days)
    np.testing.assert_allclose(p["sd(Intercept|Subject)"].values["sigma"], s)
    np.testing.assert_allclose(p["sd(Days|Subject)"].values["sigma"], s / sd_days)
    np.testing.assert_allclose(p["sigma"].values["lam"], 1 / s)
    assert p["cor(Intercept,Days|Subject)"] == hb.LKJ(2)


def test_glm_defaults_are_on_the_link_scale():
    rng = np.random.default_rng(0)
    import pandas as pd

    df = pd.DataFrame({"y": rng.poisson(4.0, 60), "x": rng.normal(0, 2, 60), "g": np.repeat(list("abcdef"), 10)})
    p = hb.Model("y ~ x + (1 | g)", df, "poisson").priors
    np.testing.assert_allclose(p["Intercept"].values["mu"], np.log(df["y"].mean()))
    np.testing.assert_allclose(p["Intercept"].values["sigma"], 2.5)
    np.testing.assert_allclose(p["x"].values["sigma"], 2.5 / df["x"].std(ddof=0))
    np.testing.assert_allclose(p["sd(Intercept|g)"].values["sigma"], 1.0)


def test_override_by_label_and_by_class(sleepstudy):
    m = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy,
                 priors={"Days": hb.Normal(0, 10), "sd": hb.HalfStudentT(3, 20),
                         "sd(Days|Subject)": hb.Exponential(0.2), "cor": hb.LKJ(1)})
    assert m.priors["Days"] == hb.Normal(0, 10)
    assert m.priors["sd(Intercept|Subject)"] == hb.HalfStudentT(3, 20)  # class
    assert m.priors["sd(Days|Subject)"] == hb.Exponential(0.2)  # label beats class
    assert m.priors["cor(Intercept,Days|Subject)"] == hb.LKJ(1)
    table = m.prior_summary()
    assert table.loc["Days", "source"] == "user" and table.loc["sigma", "source"] == "default"
    assert table.loc["sd(Days|Subject)", "prior"] == "Exponential(lam=0.2)"


def test_prior_summary_lists_every_parameter(model):
    assert list(model.prior_summary().index) == [
        "Intercept", "Days", "sd(Intercept|Subject)", "sd(Days|Subject)", "sigma", "cor(Intercept,Days|Subject)"]


@pytest.mark.parametrize(
    ("priors", "message"),
    [
        ({"day": hb.Normal(0, 1)}, "'day', which is not a parameter of this model; did you mean 'Days'"),
        ({"sd(Days|Subjects)": hb.HalfNormal(1)}, "did you mean 'sd\\(Days\\|Subject\\)'"),
        ({"Days": hb.HalfNormal(1)}, "'Days' is a real parameter; its prior must be Normal or StudentT"),
        ({"sigma": hb.Normal(0, 1)}, "'sigma' is a positive parameter"),
        ({"cor": hb.HalfNormal(1)}, "must be LKJ"),
        ({"Days": 3.0}, "must be made with hb.Normal"),
    ],
)
def test_bad_priors(sleepstudy, priors, message):
    with pytest.raises(PriorError, match=message):
        hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy, priors=priors)


def test_prior_parameters_must_be_valid():
    with pytest.raises(PriorError, match="sigma must be positive"):
        hb.HalfNormal(-1)
