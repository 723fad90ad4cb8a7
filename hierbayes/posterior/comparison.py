"""Comparing fits of the same data by PSIS-LOO (``hb.compare``).

Each fit's pointwise log-likelihood (:meth:`~hierbayes.posterior.fit.Posterior.add_log_likelihood`)
goes through :func:`hierbayes.posterior.checking.loo_with_message`, and arviz-stats ranks
them and estimates the model weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from hierbayes.common.errors import DataWarning, HierbayesError
from hierbayes.posterior.checking import loo_with_message
from hierbayes.posterior.fit import Posterior

__all__ = ["compare"]


def compare(fits: Mapping[str, object], method: str = "stacking") -> pd.DataFrame:
    """Rank fits of the same data by PSIS-LOO.

    Parameters
    ----------
    fits : dict of name -> Fit
        At least two fits of the same response values.
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}
        How the model weights are estimated.

    Returns
    -------
    pandas.DataFrame
        One row per fit, best first: ``rank``, ``elpd``, ``p``, ``elpd_diff`` (to the
        best) and its standard error ``dse``, ``weight`` and ArviZ's diagnostic columns.

    Examples
    --------
    >>> import hierbayes as hb
    >>> data = hb.datasets.load("sleepstudy")
    >>> kw = dict(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    >>> default = hb.Model("Reaction ~ Days + (Days | Subject)", data).fit(**kw)
    >>> no_trend = hb.Model("Reaction ~ Days + (Days | Subject)", data,   # Days forced to about 0
    ...                     priors={"Days": hb.Normal(0, 0.1), "sd(Days|Subject)": hb.HalfNormal(0.1)}).fit(**kw)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # a few influential rows (Pareto k) in sleepstudy
    ...     table = hb.compare({"default priors": default, "no trend": no_trend})
    >>> table.index[0], bool(table.loc["no trend", "elpd_diff"] < 0)
    ('default priors', True)
    """
    from arviz_stats import compare as az_compare

    if not isinstance(fits, Mapping) or len(fits) < 2:
        raise HierbayesError("compare needs a dict of at least two fits, such as {'model a': fit_a, 'model b': fit_b}")
    for name, fit in fits.items():
        if not isinstance(fit, Posterior):
            raise HierbayesError(f"{name!r} is a {type(fit).__name__}, not a hierbayes Fit")
    (first, ref), *rest = fits.items()
    for name, fit in rest:
        y0, y1 = ref.model.design.y, fit.model.design.y
        if y0.shape != y1.shape or not np.array_equal(y0, y1):
            raise HierbayesError(f"{name!r} and {first!r} were fitted to different response values "
                                 f"({y1.size} and {y0.size} rows); LOO compares fits of the same data only")
    results = {}
    for name, fit in fits.items():
        results[name], message = loo_with_message(fit)
        if message:
            warnings.warn(f"{name!r}: {message}", DataWarning, stacklevel=2)
    return az_compare(results, method=method, round_to="none")
