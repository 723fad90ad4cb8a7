"""fit.kfold(client=...): the K refits run on Dask worker processes and give the serial run's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.posterior.crossvalidation import WEIGHT_COLUMN, _held_out_elpd, _weighted
from hierbayes.posterior.parallel import fold_seeds

FIT = dict(draws=100, tune=100, chains=2, progressbar=False, warn=False)


def test_kfold_on_a_local_cluster_equals_the_serial_run(sleepstudy):
    from dask.distributed import Client, LocalCluster

    fit = hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy).fit(seed=3, **FIT)
    serial = fit.kfold(k=3, by="Subject")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        on_dask = fit.kfold(k=3, by="Subject", client=client)
        workers = set(client.scheduler_info()["workers"])
    assert len(workers) == 2
    assert type(on_dask) is type(serial) and (on_dask.k, on_dask.by) == (3, "Subject")
    pd.testing.assert_series_equal(on_dask.folds, serial.folds)
    np.testing.assert_allclose(on_dask.elpd_i.to_numpy(), serial.elpd_i.to_numpy(), rtol=0, atol=1e-10)
    assert on_dask.elpd == pytest.approx(serial.elpd, rel=0, abs=1e-10)
    assert on_dask.se == pytest.approx(serial.se, rel=0, abs=1e-10)
    assert on_dask.elpd_i.index.equals(serial.elpd_i.index) and np.isfinite(serial.elpd_i).all()

    # each fold's refit has a seed of its own, derived from the fit's (so the same wherever it runs)
    held_out = serial.folds.to_numpy() == 1
    weighted = sleepstudy.assign(**{WEIGHT_COLUMN: (~held_out).astype(float)})
    refit = hb.Model(_weighted("Reaction ~ Days + (1 | Subject)"), weighted).fit(seed=fold_seeds(3, 3)[1], **FIT)
    np.testing.assert_array_equal(_held_out_elpd(refit, held_out), serial.elpd_i[held_out].to_numpy())

    with pytest.raises(hb.HierbayesError, match=r"client must be a dask.distributed.Client \(or None\), not str; "
                                                r"connect with Client\('tcp://127.0.0.1:8786'\)"):
        fit.kfold(k=3, by="Subject", client="tcp://127.0.0.1:8786")
    with pytest.raises(hb.HierbayesError, match=r"client must be a dask.distributed.Client \(or None\), not int"):
        fit.kfold(k=3, by="Subject", client=2)
