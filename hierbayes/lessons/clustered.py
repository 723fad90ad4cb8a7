"""Clustered data before any model: the intra-class correlation by one-way ANOVA.

The ICC is the share of the response's variance that lies between clusters,
``tau^2 / (tau^2 + sigma^2)``. The classical estimate comes from the one-way analysis of
variance of the response by cluster (Fisher; Donner and Koval 1980; Snijders and Bosker
2012, section 3.3.1), with no model fitted:

``ICC = (MSB - MSW) / (MSB + (n0 - 1) MSW)``

where ``MSB`` and ``MSW`` are the between- and within-cluster mean squares and ``n0`` is the
adjusted mean cluster size, ``n0 = (N - sum_j n_j^2 / N) / (J - 1)`` for ``J`` clusters of
sizes ``n_j`` and ``N`` rows (the common size when clusters are balanced). For balanced
clusters this is the REML estimate of the random-intercept model whenever it is positive;
it is negative when clusters differ less than chance would make them, which a variance
ratio cannot be. A multilevel model's own ICC, with its uncertainty, is ``fit.icc()``.

Examples
--------
>>> import pandas as pd
>>> import hierbayes as hb
>>> df = pd.DataFrame({"y": [1, 2, 3, 4, 5, 6, 7, 8, 9], "school": list("AAABBCCCC")})
>>> round(hb.icc_anova(df, "y", "school"), 4)  # = 90/103
0.8738
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hierbayes.common.errors import DataError, did_you_mean

__all__ = ["icc_anova"]


def _column(data: pd.DataFrame, name: str, what: str) -> pd.Series:
    if name not in data.columns:
        close = did_you_mean(name, data.columns)
        hint = f"; did you mean {close!r}?" if close else ""
        raise DataError(f"the {what} column {name!r} is not in the data{hint} "
                        f"(columns: {', '.join(map(str, data.columns))})")
    column = data[name]
    if column.isna().any():
        raise DataError(f"the {what} column {name!r} has {int(column.isna().sum())} missing values: "
                        "drop those rows first")
    return column


def icc_anova(data: pd.DataFrame, response: str, cluster: str) -> float:
    """Intra-class correlation of ``response`` within ``cluster``, by one-way ANOVA.

    ``(MSB - MSW) / (MSB + (n0 - 1) MSW)``, with ``MSB`` and ``MSW`` the between- and
    within-cluster mean squares and ``n0 = (N - sum n_j^2 / N) / (J - 1)`` the adjusted mean
    cluster size of ``J`` clusters of sizes ``n_j`` (``N`` rows). See the module's notes.

    Parameters
    ----------
    data : pandas.DataFrame
    response : str
        The numeric response column.
    cluster : str
        The column whose values name the clusters (any type).

    Returns
    -------
    float
        The estimate; negative when the clusters' means differ less than chance alone makes them.

    Raises
    ------
    DataError
        When a column is missing or has missing values, the response is not numeric, there are
        fewer than two clusters, no cluster has two rows (nothing within clusters to compare), or the
        response is constant.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> cluster = np.repeat(np.arange(200), 10)
    >>> y = rng.normal(0, 1, 200)[cluster] + rng.normal(0, 2, cluster.size)  # true ICC 1 / (1 + 4) = 0.2
    >>> round(icc_anova(pd.DataFrame({"y": y, "class": cluster}), "y", "class"), 2)
    0.2
    """
    y, g = _column(data, response, "response"), _column(data, cluster, "cluster")
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        raise DataError(f"the response column {response!r} must be numeric for the ICC, not {y.dtype}")
    groups = y.astype(float).groupby(g.to_numpy(), sort=False)
    sizes, means = groups.size().to_numpy(dtype=float), groups.mean().to_numpy()
    n_clusters, n_rows = sizes.size, sizes.sum()
    if n_clusters < 2:
        raise DataError(f"the ICC needs at least two clusters, and the cluster column {cluster!r} has {n_clusters}")
    if n_rows == n_clusters:
        raise DataError(f"every cluster of {cluster!r} has one row: there is no within-cluster variation to compare")
    grand = y.to_numpy(dtype=float).mean()
    msb = np.sum(sizes * (means - grand) ** 2) / (n_clusters - 1)
    msw = groups.var(ddof=0).mul(groups.size()).sum() / (n_rows - n_clusters)
    n0 = (n_rows - np.sum(sizes**2) / n_rows) / (n_clusters - 1)
    if msb + (n0 - 1) * msw == 0:
        raise DataError(f"the response column {response!r} is constant: it has no variance to divide")
    return float((msb - msw) / (msb + (n0 - 1) * msw))
