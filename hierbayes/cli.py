"""The ``hierbayes`` command line.

``hierbayes demo [sleepstudy|radon]`` fits a bundled example and prints its summary;
``hierbayes fit DATA.csv "FORMULA"`` fits a CSV file. Exit codes: 0 success, 1 fitted
with convergence warnings (said in words), 2 bad input (one line on stderr).

Examples
--------
>>> main(["fit", "no-such-file.csv", "y ~ x"])
2
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

import pandas as pd

from .errors import ConvergenceWarning, HierbayesError

__all__ = ["main", "DEMOS"]

DEMOS = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "gaussian"),
    "radon": ("log_radon ~ floor + (1 + floor | county)", "gaussian"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hierbayes", description="Bayesian multilevel regression.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    def sampling_options(p):
        p.add_argument("--draws", type=int, default=1000)
        p.add_argument("--tune", type=int, default=1000)
        p.add_argument("--chains", type=int, default=4)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--sampler", default="auto", choices=["auto", "nutpie", "pymc"])
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    demo = sub.add_parser("demo", help="fit a bundled example and print its summary")
    demo.add_argument("name", nargs="?", default="sleepstudy", choices=sorted(DEMOS))
    sampling_options(demo)
    fit = sub.add_parser("fit", help="fit FORMULA to a CSV file")
    fit.add_argument("data")
    fit.add_argument("formula")
    fit.add_argument("--family", default="gaussian")
    fit.add_argument("--na", default="drop", choices=["drop", "error"])
    sampling_options(fit)
    return parser


def _read(path: str) -> pd.DataFrame:
    try:
        if path.endswith(".parquet"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=None, engine="python")
    except FileNotFoundError:
        raise HierbayesError(f"no such data file: {path!r}") from None
    except pd.errors.EmptyDataError:
        raise HierbayesError(f"the data file {path!r} is empty") from None


def _run(args) -> int:
    from . import datasets
    from .model import Model

    if args.command == "demo":
        formula, family = DEMOS[args.name]
        data = datasets.load(args.name)
        print(f"hierbayes demo: {formula} on the bundled {args.name} data ({len(data)} rows)", flush=True)
    else:
        formula, family, data = args.formula, args.family, _read(args.data)
    model = Model(formula, data, family, na_action=getattr(args, "na", "drop"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fit = model.fit(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                        sampler=args.sampler, progressbar=not args.no_progress)
    print(fit)
    problems = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    for w in problems:
        print(f"warning: {w.message}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except HierbayesError as err:
        if args.debug:
            raise
        print(f"hierbayes: error: {err}", file=sys.stderr)
        return 2
