"""Simulated designs with known values, and the check that a fit recovers them.

Shared by the recovery tests (``tests/statistical/test_recovery.py`` and the family tables):
the simulated group effects are drawn with exactly the target mean (0) and covariance
(:func:`exact_effects`), so the data identify the true values themselves rather than one
random draw of them; :func:`assert_recovered` puts every true value inside its 99% interval
with the posterior mean within three posterior SDs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import hierbayes as hb


def exact_effects(rng: np.random.Generator, n: int, sd, corr: float = 0.0) -> np.ndarray:
    """n draws of group effects whose sample mean is 0 and sample covariance is exactly the target."""
    sd = np.atleast_1d(np.asarray(sd, dtype=float))
    q = sd.size
    target = np.outer(sd, sd) * (np.full((q, q), corr) + (1 - corr) * np.eye(q))
    z = rng.normal(size=(n, q))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False).reshape(q, q))).T
    u = z @ np.linalg.cholesky(target).T
    return u[:, 0] if q == 1 else u


def groups(n_levels: int, per_level: int, prefix: str = "g") -> np.ndarray:
    return np.repeat([f"{prefix}{j:02d}" for j in range(n_levels)], per_level)


def assert_recovered(fit: hb.Fit, truth: dict[str, float]) -> None:
    table = fit.summary(prob=0.99)
    for label, value in truth.items():
        row = table.loc[label]
        assert row["0.5%"] <= value <= row["99.5%"], f"{label}: true {value} outside [{row['0.5%']:.3f}, {row['99.5%']:.3f}]"
        assert abs(row["mean"] - value) <= 3 * row["sd"], f"{label}: mean {row['mean']:.3f} far from {value}"
    assert table["r_hat"].max() < 1.1  # mixing is checked in test_sleepstudy and bench/, correctness here


def varying_intercept(rng, n_levels=30, per_level=10):
    g = groups(n_levels, per_level)
    x = rng.normal(size=g.size)
    u = exact_effects(rng, n_levels, 0.8)[pd.factorize(g)[0]]
    return pd.DataFrame({"g": g, "x": x, "eta": 1.0 + 0.5 * x + u})


TRUE_VI = {"Intercept": 1.0, "x": 0.5, "sd(Intercept|g)": 0.8}


def numeric_gradient(fun, x, h: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar ``fun`` at ``x``, one coordinate at a time (for checking gradients)."""
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        out[i] = (fun(up) - fun(down)) / (2 * h)
    return out
