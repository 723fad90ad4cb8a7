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

from hierbayes.specification.names import FactorNames

__all__ = ["check_convergence", "few_levels", "FEW_LEVELS", "RHAT_MAX", "ESS_PER_CHAIN_MIN", "EBFMI_MIN", "TREEDEPTH_MAX_FRACTION"]

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
EBFMI_MIN = 0.3
TREEDEPTH_MAX_FRACTION = 0.01
FEW_LEVELS = 5  # a grouping factor with fewer levels has SDs its prior decides

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


def few_levels(design) -> list[str]:
    """One warning per grouping factor with fewer than :data:`FEW_LEVELS` levels, saying what to do.

    A group SD is estimated from as many values as the factor has levels: from 2 or 3, its
    posterior is mostly its prior, and the sampler meets a funnel (brms's fit of a poisson
    ``(temperature | weather)`` on 2 weather levels had R-hat 1.07 and a tail ESS of 14).

    Examples
    --------
    >>> import pandas as pd
    >>> import hierbayes as hb
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "g": list("aaabbb")})
    >>> print(few_levels(hb.Model("y ~ 1 + (1 | g)", df).design)[0])  # doctest: +ELLIPSIS
    grouping factor 'g' has only 2 levels (fewer than 5): its SD sd(Intercept|g) rests on 2 values, ...
    """
    out = []
    for factor, fd in design.factors.items():
        J = len(fd.levels)
        if J >= FEW_LEVELS:
            continue
        names = FactorNames(factor)
        labels = [names.sd_label(c) for c in design.factor_coefs(factor)]
        what = f"SD {labels[0]}" if len(labels) == 1 else f"SDs {', '.join(labels)} (and correlations)"
        out.append(f"grouping factor {factor!r} has only {J} levels (fewer than {FEW_LEVELS}): its {what} rests on "
                   f"{J} values, so its posterior is mostly its prior and the sampler may mix poorly. Collect more "
                   f"levels, make {factor!r} a fixed effect (a term of the formula instead of a group term), or give "
                   f"the SD an informative prior (priors={{{labels[0]!r}: hb.HalfNormal(...)}} on a scale you know).")
    return out
