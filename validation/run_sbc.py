"""Full simulation-based calibration: every block structure and every family.

Runs :func:`hierbayes.calibrate` on each case below (hundreds of simulations each by
default) and writes ``validation/results.md`` with the command that made it, the versions,
one verdict line per case and the per-parameter uniformity tests, plus the raw ranks as
``validation/ranks/<case>.csv``.

Usage::

    python validation/run_sbc.py                       # all cases, defaults below
    python validation/run_sbc.py --n-sims 200 --draws 200 --tune 200 --thin 2
    python validation/run_sbc.py --cases poisson bernoulli --out /tmp/sbc.md

Each case compiles once (10-60 s) and then costs about a second per simulation.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pandas as pd

import hierbayes as hb
from hierbayes.lessons.calibration import Calibration, calibration_data

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Case:
    name: str
    formula: str
    family: str = "gaussian"
    options: dict = field(default_factory=dict)
    what: str = ""


CASES = [
    Case("intercept", "y ~ x + (1 | g)", what="varying intercept (gaussian: group effects integrated out)"),
    Case("intercept_nc", "y ~ x + (1 | g)", options={"collapse": False}, what="varying intercept, non-centered"),
    Case("correlated", "y ~ x + (x | g)", what="correlated intercept + slope (collapsed)"),
    Case("correlated_nc", "y ~ x + (x | g)", options={"collapse": False},
         what="correlated intercept + slope, non-centered"),
    Case("correlated_centered", "y ~ x + (x | g)", options={"collapse": False, "parameterization": "centered"},
         what="correlated intercept + slope, centered"),
    Case("uncorrelated", "y ~ x + (x || g)", options={"collapse": False}, what="|| block"),
    Case("nested", "y ~ x + (1 | g/c)", what="c nested in g"),
    Case("crossed", "y ~ x + (1 | g) + (1 | h)", what="g crossed with h"),
    Case("bernoulli", "binary ~ x + (1 | g)", "bernoulli"),
    Case("binomial", "cbind(successes, failures) ~ x + (1 | g)", "binomial"),
    Case("poisson", "count ~ x + (1 | g)", "poisson"),
    Case("negative_binomial", "count ~ x + (1 | g)", "negative_binomial"),
    Case("student_t", "y ~ x + (1 | g)", "student_t"),
    Case("poisson_correlated", "count ~ x + (x | g)", "poisson", what="correlated slope on the log link"),
    # issue 21, target 6: the small design at the defaults of hb.Model ("auto"; reruns after divergences)
    Case("poisson_correlated_auto", "count ~ x + (x | g)", "poisson", options={"parameterization": "auto"},
         what="correlated slope on the log link, parameterization chosen from the data"),
    # the family pack (issue 18): python validation/run_sbc.py --cases beta gamma ... --out validation/results_families.md
    # A precision's default prior (brms's Gamma(0.01, 0.01)) draws precisions of 1e-30 whose data are all 0s and 1s
    # (or constant), which no model takes: these cases are calibrated under a proper Gamma(2, 0.1) on it.
    Case("beta", "proportion ~ x + (1 | g)", "beta", options={"priors": {"phi": hb.Gamma(2.0, 0.1)}}),
    Case("gamma", "positive ~ x + (1 | g)", "gamma", options={"priors": {"shape": hb.Gamma(2.0, 0.1)}}),
    Case("lognormal", "positive ~ x + (1 | g)", "lognormal"),
    Case("weibull", "positive ~ x + (1 | g)", "weibull"),
    Case("zero_inflated_poisson", "count ~ x + (1 | g)", "zero_inflated_poisson"),
    Case("hurdle_poisson", "count ~ x + (1 | g)", "hurdle_poisson"),
    Case("beta_binomial", "cbind(successes, failures) ~ x + (1 | g)", "beta_binomial",
         options={"priors": {"phi": hb.Gamma(2.0, 0.1)}}),
]


def run_case(case: Case, args) -> Calibration:
    data = calibration_data(groups=args.groups, per_group=args.per_group, crossed=5, nested=3, seed=args.seed)
    return hb.calibrate(case.formula, data, case.family, n_sims=args.n_sims, draws=args.draws, tune=args.tune,
                        chains=args.chains, thin=args.thin, seed=args.seed, **case.options)


def case_line(case: Case, cal: Calibration) -> str:
    table = cal.table()
    verdict = "pass" if table["ok"].all() else "FAIL: " + ", ".join(f"`{p}`" for p in table.index[~table["ok"]])
    options = ", ".join(f"{k}={v}" for k, v in case.options.items()) or "defaults"
    return row([case.name, f"`{case.formula}`", case.family, options, cal.n_sims, cal.n_draws,
                f"{int(cal.divergences.sum())} ({int((cal.divergences > 0).sum())} sims)", cal.rejected,
                f"{cal.seconds:.0f}", f"{table['p_chi2'].min():.3f}", f"{table['p_pot_c'].min():.3f}", verdict])


def markdown(table: pd.DataFrame) -> str:
    """A DataFrame as a markdown table (without pandas' optional tabulate dependency)."""
    header = [table.index.name or ""] + [str(c) for c in table.columns]
    rows = [[str(i)] + [str(v) for v in row] for i, row in zip(table.index, table.itertuples(index=False))]
    return "\n".join(row(r) for r in [header, ["---"] * len(header), *rows])


def row(cells) -> str:
    """One markdown table row; a ``|`` inside a cell (formulas, labels) is escaped."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def write_results(path: Path, command: str, done: list[tuple[Case, Calibration]], args, started: float) -> None:
    lines = [
        "# Simulation-based calibration results",
        "",
        "Made by (from the repository root):",
        "",
        f"    {command}",
        "",
        f"hierbayes {hb.__version__}, pymc {version('pymc')}, nutpie {version('nutpie')}, "
        f"arviz-stats {version('arviz-stats')}, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d')}; {time.time() - started:.0f} s in all.",
        "",
        f"Design: `calibration_data(groups={args.groups}, per_group={args.per_group}, crossed=5, nested=3, "
        f"seed={args.seed})` ({args.groups * args.per_group} rows). Priors: the defaults for that data, held "
        f"fixed. Each refit: {args.chains} chains x {args.draws} draws after {args.tune} tuning steps, thinned "
        f"by {args.thin}, so each rank is among L = {args.chains * -(-args.draws // args.thin)} kept draws. Besides "
        "the printed parameters, the group effects of each factor's first level are ranked (`r_g[g0,...]`).",
        "",
        "How to read it: for each parameter, `p_chi2` is a chi-square test of the binned ranks and `p_pot_c` "
        "arviz-stats' POT-C uniformity test (Tesso et al. 2026) of the randomised fractional ranks. A case "
        "fails when a p-value is below 0.01 / (2 K) for its K parameters (Bonferroni), so about one case in a "
        "hundred fails by chance. Divergences are counted over all refits of a case.",
        "",
        row(["case", "formula", "family", "options", "sims", "L", "divergences", "rejected", "seconds",
             "min p_chi2", "min p_pot_c", "verdict"]),
        row(["---"] * 12),
    ]
    lines += [case_line(case, cal) for case, cal in done]
    lines += ["", "## Per parameter", ""]
    for case, cal in done:
        table = cal.table().round(4)
        lines += [f"### {case.name}: `{case.formula}` ({case.family}{', ' + case.what if case.what else ''})", "",
                  markdown(table), ""]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-sims", type=int, default=500)
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--tune", type=int, default=400)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--thin", type=int, default=4)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--per-group", type=int, default=6)
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--cases", nargs="*", default=[c.name for c in CASES],
                        choices=[c.name for c in CASES], metavar="CASE")
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--ranks", type=Path, default=HERE / "ranks")
    args = parser.parse_args(argv)
    command = "python validation/run_sbc.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    args.ranks.mkdir(parents=True, exist_ok=True)
    started, done, errors = time.time(), [], []
    for case in (c for c in CASES if c.name in args.cases):
        print(f"[{time.time() - started:6.0f} s] {case.name}: {case.formula} ({case.family})", flush=True)
        try:
            cal = run_case(case, args)
        except Exception as err:  # one broken case must not lose the others' results
            errors.append(f"{case.name}: {type(err).__name__}: {err}")
            print(f"    ERROR {errors[-1]}", flush=True)
            continue
        cal.ranks.to_csv(args.ranks / f"{case.name}.csv", index_label="simulation")
        done.append((case, cal))
        write_results(args.out, command.strip(), done, args, started)
        print(f"    {case_line(case, cal)}", flush=True)
    failed = [case.name for case, cal in done if not cal.passed()]
    print("all cases calibrated" if not failed else f"not calibrated: {failed}")
    for error in errors:
        print(f"error: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
