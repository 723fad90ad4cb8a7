"""Which sampler path each benchmark model takes on this machine, from one short fit each.

The default path is nutpie through hierbayes' compiled-model cache; when a private hook of
nutpie, numba, PyTensor or PyMC is missing or not as tested
(:func:`hierbayes.backend.compat.fast_path_available`), fits take nutpie's public API,
which is slower. This prints the probe's answer, then one line per model of the suite
(``bench/suite.py``): the path its fit took (``fit.idata.attrs["sampler_path"]``) and
where the fit's time went.

Examples
--------
``python bench/paths.py --suite quick`` (``make bench-paths``)
``python bench/paths.py --suite full --sampler pymc``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import SUITES  # noqa: E402

import hierbayes as hb  # noqa: E402
from hierbayes.backend.compat import fast_path_available  # noqa: E402


def path_line(model, draws: int, tune: int, chains: int, sampler: str) -> str:
    """Fit ``model`` (a suite model) briefly; one line: its name, the path taken, and the fit's timings."""
    data = model.data()
    t0 = time.perf_counter()
    fit = hb.Model(model.formula, data, model.family).fit(draws=draws, tune=tune, chains=chains, seed=1,
                                                           sampler=sampler, progressbar=False, warn=False)
    seconds = time.perf_counter() - t0
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in fit.timings.items())
    return f"{model.name:<18} {fit.idata.attrs['sampler_path']:<30} fit {seconds:6.1f} s ({parts})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--tune", type=int, default=100)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--sampler", default="auto", help="auto (nutpie), nutpie, pymc or numpyro")
    args = parser.parse_args(argv)
    reason = fast_path_available()
    print("# fast path: available" if reason is None else f"# fast path unavailable: {reason}", flush=True)
    for model in SUITES[args.suite]:
        print(path_line(model, args.draws, args.tune, args.chains, args.sampler), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
