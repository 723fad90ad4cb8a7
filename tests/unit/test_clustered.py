"""hb.icc_anova: the one-way ANOVA estimator of the intra-class correlation.

Checked against a computation by hand on unbalanced clusters, against the REML variance
ratio of statsmodels' MixedLM on a large balanced design (where the two estimators agree),
and for its refusals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

import hierbayes as hb


def test_unbalanced_clusters_by_hand():
    # clusters A (1, 2, 3), B (4, 5), C (6, 7, 8, 9): means 2, 4.5, 7.5; grand mean 5; N = 9, J = 3
    df = pd.DataFrame({"y": np.arange(1.0, 10.0), "g": list("AAABBCCCC")})
    msb = (3 * (2 - 5) ** 2 + 2 * (4.5 - 5) ** 2 + 4 * (7.5 - 5) ** 2) / (3 - 1)  # 52.5 / 2
    msw = ((1 + 0 + 1) + (0.25 + 0.25) + (2.25 + 0.25 + 0.25 + 2.25)) / (9 - 3)  # 7.5 / 6
    n0 = (9 - (3**2 + 2**2 + 4**2) / 9) / (3 - 1)  # 26 / 9, below the plain mean size 3
    assert hb.icc_anova(df, "y", "g") == pytest.approx((msb - msw) / (msb + (n0 - 1) * msw), rel=1e-12)
    assert hb.icc_anova(df, "y", "g") == pytest.approx(90 / 103, rel=1e-12)


def test_the_adjusted_size_matters_for_unbalanced_clusters():
    # with the plain mean size (N / J = 3) instead of n0 = 26/9 the estimate would be 25 / 28.75
    df = pd.DataFrame({"y": np.arange(1.0, 10.0), "g": list("AAABBCCCC")})
    assert hb.icc_anova(df, "y", "g") != pytest.approx(25 / 28.75, rel=1e-6)


def test_agrees_with_the_reml_variance_ratio_of_mixedlm_on_a_balanced_design():
    rng = np.random.default_rng(11)
    clusters, size, tau, sigma = 80, 15, 0.8, 1.5
    g = np.repeat(np.arange(clusters), size)
    df = pd.DataFrame({"y": 3 + rng.normal(0, tau, clusters)[g] + rng.normal(0, sigma, g.size), "g": g})
    fit = smf.mixedlm("y ~ 1", df, groups="g").fit(reml=True)
    between, within = float(fit.cov_re.iloc[0, 0]), float(fit.scale)
    assert hb.icc_anova(df, "y", "g") == pytest.approx(between / (between + within), abs=2e-4)
    assert hb.icc_anova(df, "y", "g") == pytest.approx(tau**2 / (tau**2 + sigma**2), abs=0.08)


def test_negative_when_clusters_differ_less_than_chance():
    # identical cluster means: no variance between clusters at all, so MSB = 0 < MSW
    df = pd.DataFrame({"y": [1.0, 3.0, 1.0, 3.0, 1.0, 3.0], "g": ["a", "a", "b", "b", "c", "c"]})
    assert hb.icc_anova(df, "y", "g") == pytest.approx(-1 / (2 - 1))  # -MSW / ((n0 - 1) MSW), n0 = 2


def test_cluster_labels_of_any_type():
    df = pd.DataFrame({"y": np.arange(1.0, 10.0), "g": [10, 10, 10, 20, 20, 3.5, 3.5, 3.5, 3.5]})
    assert hb.icc_anova(df, "y", "g") == pytest.approx(90 / 103)


@pytest.mark.parametrize("frame, response, cluster, message", [
    (pd.DataFrame({"y": [1.0, 2.0], "school": ["a", "b"]}), "y", "schol", "'schol' is not in the data; did you mean 'school'"),
    (pd.DataFrame({"y": [1.0, 2.0], "g": ["a", "b"]}), "score", "g", "response column 'score' is not in the data"),
    (pd.DataFrame({"y": [1.0, np.nan, 3.0], "g": ["a", "a", "b"]}), "y", "g", "'y' has 1 missing values"),
    (pd.DataFrame({"y": [1.0, 2.0, 3.0], "g": ["a", None, "b"]}), "y", "g", "cluster column 'g' has 1 missing values"),
    (pd.DataFrame({"y": ["x", "y", "z", "w"], "g": list("aabb")}), "y", "g", "'y' must be numeric"),
    (pd.DataFrame({"y": [1.0, 2.0, 3.0], "g": ["a", "a", "a"]}), "y", "g", "at least two clusters, and the cluster column 'g' has 1"),
    (pd.DataFrame({"y": [1.0, 2.0, 3.0], "g": ["a", "b", "c"]}), "y", "g", "every cluster of 'g' has one row"),
    (pd.DataFrame({"y": [2.0, 2.0, 2.0, 2.0], "g": list("aabb")}), "y", "g", "'y' is constant"),
])
def test_refusals_name_the_column(frame, response, cluster, message):
    with pytest.raises(hb.DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hb.icc_anova(frame, response, cluster)
