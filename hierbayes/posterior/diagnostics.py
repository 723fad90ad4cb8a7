"""Convergence diagnostics in plain words.

Five checks, each with its threshold and what to do when it fails:

=================  ==========================  =======================================
check              passes when                 meaning
=================  ==========================  =======================================
r_hat              max R-hat <= 1.01           chains agree with each other
ess_bulk/ess_tail  min ESS >= 100 per chain    enough independent draws for means and
                                               tail intervals
divergences        none                        the sampler did not meet curvature it
                                               cannot follow (posterior may be biased)
tree_depth         < 1% of draws saturate      NUTS was not cut short
e_bfmi             >= 0.3 in every chain       momentum resampling explores the energy
=================  ==========================  =======================================

Examples
--------
>>> import numpy as np, pandas as pd, xarray as xr
>>> stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 100), bool)),
...                     "energy": (("chain", "draw"), np.random.default_rng(0).normal(size=(2, 100)))})
>>> table = pd.DataFrame({"r_hat": [1.0], "ess_bulk": [900.0], "ess_tail": [800.0]})
>>> bool(check_convergence(stats, table).loc["divergences", "ok"])
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.base import array_stats

__all__ = ["check_convergence", "RHAT_MAX", "ESS_PER_CHAIN_MIN", "EBFMI_MIN", "TREEDEPTH_MAX_FRACTION"]

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
EBFMI_MIN = 0.3
TREEDEPTH_MAX_FRACTION = 0.01

_STAT_NAMES = {  # our name: names used by nutpie, PyMC
    "diverging": ("diverging",),
    "max_depth": ("maxdepth_reached", "reached_max_treedepth"),
    "energy": ("energy",),
}


def _stat(stats: xr.Dataset, name: str) -> np.ndarray | None:
    for candidate in _STAT_NAMES[name]:
        if candidate in stats:
            return stats[candidate].transpose("chain", "draw").values
    return None


def check_convergence(sample_stats: xr.Dataset, table: pd.DataFrame) -> pd.DataFrame:
    """Run the five checks.

    Parameters
    ----------
    sample_stats : xarray.Dataset
        The sampler's statistics (``chain``, ``draw`` dims).
    table : DataFrame
        Posterior summary with ``r_hat``, ``ess_bulk`` and ``ess_tail`` per parameter.

    Returns
    -------
    DataFrame
        Index: check; columns ``value``, ``threshold``, ``ok``, ``message``.
    """
    n_chains = int(sample_stats.sizes.get("chain", 1))
    n_draws = n_chains * int(sample_stats.sizes.get("draw", 1))
    rows = []

    def add(check, value, threshold, ok, good, bad):
        rows.append({"check": check, "value": value, "threshold": threshold, "ok": bool(ok),
                     "message": good if ok else bad})

    rhat = table["r_hat"].astype(float)
    worst = rhat.idxmax() if rhat.notna().any() else None
    max_rhat = float(rhat.max()) if worst is not None else np.nan
    add("r_hat", max_rhat, RHAT_MAX, not max_rhat > RHAT_MAX,
        "R-hat <= 1.01 everywhere: the chains agree.",
        f"R-hat reaches {max_rhat:.3f} (for {worst}): the chains disagree, so the draws do not yet describe "
        "one posterior. Run longer chains (more tune and draws); if it persists, simplify the model or "
        "give weakly informative priors.")
    min_ess = ESS_PER_CHAIN_MIN * n_chains
    for kind in ("bulk", "tail"):
        ess = table[f"ess_{kind}"].astype(float)
        low = ess.idxmin() if ess.notna().any() else None
        value = float(ess.min()) if low is not None else np.nan
        what = "means and SDs" if kind == "bulk" else "interval bounds"
        add(f"ess_{kind}", value, min_ess, not value < min_ess,
            f"{kind} ESS >= {min_ess} ({ESS_PER_CHAIN_MIN} per chain): enough draws for {what}.",
            f"{kind} ESS is only {value:.0f} (for {low}); {what} are imprecise. Increase draws.")
    diverging = _stat(sample_stats, "diverging")
    n_div = int(diverging.sum()) if diverging is not None else 0
    add("divergences", n_div, 0, n_div == 0, "No divergent transitions.",
        f"{n_div} of {n_draws} transitions diverged: the sampler met curvature it could not follow and the "
        "posterior may be biased. Raise target_accept (e.g. 0.99); if divergences remain, use the "
        "non-centered parameterization or more informative priors on the group SDs.")
    depth = _stat(sample_stats, "max_depth")
    frac = float(depth.mean()) if depth is not None else 0.0
    add("tree_depth", frac, TREEDEPTH_MAX_FRACTION, not frac > TREEDEPTH_MAX_FRACTION,
        "NUTS never hit its maximum tree depth (or rarely).",
        f"{100 * frac:.1f}% of draws hit the maximum tree depth: sampling was cut short and is inefficient. "
        "Rescale predictors or reparameterize; raising the maximum depth only hides it.")
    energy = _stat(sample_stats, "energy")
    if energy is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            ebfmi = np.asarray(array_stats.bfmi(energy, chain_axis=0, draw_axis=1)).ravel()
        low = float(np.nanmin(ebfmi)) if np.isfinite(ebfmi).any() else np.nan
        add("e_bfmi", low, EBFMI_MIN, not low < EBFMI_MIN, "E-BFMI >= 0.3 in every chain.",
            f"E-BFMI is {low:.2f} in some chain (below 0.3): the sampler explores the posterior's energy "
            "poorly, typical of funnels. Try the non-centered parameterization or reparameterize.")
    return pd.DataFrame(rows).set_index("check")
