"""Target 2 of issue 5: a second fit of a structure, with new data or new priors, in a new process.

Usage (from the repository root)::

    .venv/bin/python bench/second_fit.py --repeats 5     # writes bench/results_second_fit.md

One process fits sleepstudy's ``Reaction ~ Days + (Days | Subject)`` so that the structure is
compiled and kept on disk (``$HIERBAYES_CACHE_DIR``, a fresh folder here); then each repeat
launches new processes that fit the same structure with new data (the response plus noise) and
with new priors, 4 chains x (1000 tune + 1000 draws), and time ``Model(...)`` + ``fit()``
(``fit``) apart from the import (``import``).

The development environment has ``dask`` installed for the tests; xarray then imports dask the
first time it builds an array (~0.4 s), which a plain ``pip install hierbayes`` (dask is only a
test extra) does not. Each fit therefore runs twice, as installed and with dask hidden
(``sys.modules["dask"] = None``, which xarray reads as "not installed").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent

FIT = """
import json, sys, time
if {hide_dask}:
    sys.modules["dask"] = None
t0 = time.perf_counter()
import hierbayes as hb
import numpy as np
data = hb.datasets.load("sleepstudy")
t1 = time.perf_counter()
case = {case!r}
if case == "new data":
    data = data.assign(Reaction=data["Reaction"] + np.random.default_rng({seed}).normal(0, 10, len(data)))
priors = {{"Days": hb.Normal(10, 5), "sd": hb.HalfNormal(40)}} if case == "new priors" else None
fit = hb.Model("Reaction ~ Days + (Days | Subject)", data, priors=priors).fit(
    draws=1000, tune=1000, chains=4, seed={seed}, progressbar=False, warn=False)
t2 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "fit": t2 - t1, **fit.timings}}))
"""


def run_fit(case: str, hide_dask: bool, seed: int, env: dict) -> dict:
    code = FIT.format(case=case, hide_dask=hide_dask, seed=seed)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results_second_fit.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hb-second-fit-") as cache:
        env = {**os.environ, "HIERBAYES_CACHE_DIR": cache}
        first = run_fit("first fit", False, 0, env)  # compiles the structure and keeps it on disk
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        load = os.getloadavg()[0]
        runs = {}
        for r in range(args.repeats):
            for case in ("new data", "new priors"):
                for hide in (False, True):
                    runs.setdefault((case, hide), []).append(run_fit(case, hide, r + 1, env))
    lines = [
        "# Target 2: a second fit of sleepstudy's structure in a new process",
        "",
        f"Command: `python bench/second_fit.py --repeats {args.repeats}`  ",
        f"Run: {started}; load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}  ",
        f"Python {sys.version.split()[0]}; {os.cpu_count()} cores. The structure's first fit (compiling it, "
        f"empty hierbayes cache, warm numba/PyTensor caches) took {first['fit']:.1f} s.",
        "",
        "`fit`: `hb.Model(...)` and `.fit()` (4 chains x (1000 + 1000)), after the import; medians (min-max) of "
        f"{args.repeats} new processes each. `load`: rebuilding the compiled model from disk; `sample`: nutpie's "
        "sampling and its conversion to xarray. `dask hidden`: as installed by `pip install hierbayes`, without "
        "the tests' dask (xarray imports dask at its first array when dask is installed).",
        "",
        "| case | dask | import | fit | load | sample |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (case, hide), rs in runs.items():
        cells = []
        for key in ("import", "fit", "compile", "sample"):
            values = [r[key] for r in rs]
            cells.append(f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})")
        lines.append(f"| {case} | {'hidden' if hide else 'installed'} | " + " | ".join(cells) + " |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
