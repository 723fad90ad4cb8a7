"""von_mises's default priors on the tan_half link keep the mean direction off the branches at +-pi.

The mean direction ``2 atan(eta)`` reaches +-pi only as ``eta`` goes to +-inf; at the generic
scale (Intercept Normal(m, 2.5)) the calibration failed, at ``s = 0.4`` it passes
(``validation/results_families.md``, ``von_mises``).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import hierbayes as hb
from hierbayes.lessons.calibration import calibration_data
from hierbayes.specification.families.core import TAN_HALF_SCALE


@pytest.fixture(scope="module")
def data():
    return calibration_data(groups=10, per_group=6, seed=2018)


def test_von_mises_default_priors_on_tan_half(data):
    priors = hb.Model("angle ~ x + (1 | g)", data, "von_mises").priors
    m = np.tan(data["angle"].mean() / 2)
    assert priors["Intercept"].values == pytest.approx({"mu": m, "sigma": 1.0})
    assert priors["x"].values == pytest.approx({"mu": 0.0, "sigma": 1.0 / data["x"].std(ddof=0)})
    assert priors["sd(Intercept|g)"].values == pytest.approx({"sigma": TAN_HALF_SCALE})


def test_the_intercept_prior_rarely_puts_the_direction_near_pi():
    """Prior mass of a direction within 0.34 rad of pi (|eta| > tan(1.4)) and beyond 2 rad (|eta| > tan(1))."""
    sd = 2.5 * TAN_HALF_SCALE
    near_pi, beyond_2 = (2 * stats.norm.sf(np.tan(a) / sd) for a in (1.4, 1.0))
    assert near_pi < 1e-8 and beyond_2 == pytest.approx(0.1195, abs=1e-3)
    assert 2 * stats.norm.sf(np.tan(1.4) / 2.5) == pytest.approx(0.0203, abs=1e-3)  # the generic scale's


def test_other_links_keep_the_generic_scale(data):
    priors = hb.Model("angle ~ x + (1 | g)", data, "von_mises", link="identity").priors
    assert priors["Intercept"].values["sigma"] == pytest.approx(2.5 * data["angle"].std(ddof=1))
    assert hb.Model("count ~ x + (1 | g)", data, "poisson").priors["Intercept"].values["sigma"] == 2.5
