"""Record, or compare, the posterior draws of the default path for a fixed seed.

A refactor that moves code must not change what users get: run this before the change
(``--out A``), after it (``--out B --compare A``), and the largest absolute difference per
model is printed (0.0 means bit-identical draws).

Examples
--------
``python bench/same_draws.py --out /tmp/draws_before``
``python bench/same_draws.py --out /tmp/draws_after --compare /tmp/draws_before``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import MODELS  # noqa: E402

import hierbayes as hb  # noqa: E402

# (label, suite model, Model keyword arguments)
CASES = [
    ("sleepstudy", "sleepstudy", {}),
    ("sleepstudy_noncentered_uncollapsed", "sleepstudy", {"parameterization": "non-centered", "collapse": False}),
    ("radon_slope", "radon_slope", {}),
    ("crossed_20k", "crossed_20k", {}),
    ("bernoulli_20k", "bernoulli_20k", {}),
]


def record(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for label, name, opts in CASES:
        m = MODELS[name]
        fit = hb.Model(m.formula, m.data(), m.family, **opts).fit(
            draws=200, tune=200, chains=2, seed=7, progressbar=False, warn=False)
        arrays = {k: np.asarray(v) for k, v in fit.posterior.data_vars.items()}
        np.savez(out / f"{label}.npz", **arrays)
        print(f"{label}: {len(arrays)} variables recorded")


def compare(out: Path, base: Path) -> int:
    worst = 0.0
    for label, _, _ in CASES:
        a, b = np.load(out / f"{label}.npz"), np.load(base / f"{label}.npz")
        if set(a) != set(b):
            print(f"{label}: variables differ: {sorted(set(a) ^ set(b))}")
            worst = np.inf
            continue
        diff = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
        worst = max(worst, diff)
        print(f"{label}: {len(a)} variables, largest absolute difference {diff:.3g}")
    return 0 if worst == 0.0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, help="a directory an earlier run wrote")
    args = parser.parse_args()
    record(args.out)
    return compare(args.out, args.compare) if args.compare else 0


if __name__ == "__main__":
    raise SystemExit(main())
