"""The ``hierbayes`` command line: a full analysis without opening Python.

Commands
--------
``hierbayes fit DATA "FORMULA" [--family F] [--link L] [--draws N] [--tune N] [--chains N]
[--seed S] [--sampler S] [--out DIR] [--na drop|error] [--sep SEP] [--dry-run]``
    Reads a CSV (delimiter detected) or Parquet file, fits with a progress bar, prints
    the brms-like summary and writes the run folder (below). ``--dry-run`` validates the
    data and formula, prints the model and its priors, and stops before compiling.
``hierbayes demo [sleepstudy|radon]``
    The same on a bundled data set (default output ``hierbayes_output/demo_<name>``).
``hierbayes summary RUN_DIR_OR_FILE``
    Reprints the summary of a saved fit (a run folder or its ``fit.nc``).
``hierbayes cache info|clear``
    Where the compile cache is, how much it holds, its cap and whether it is used; or delete
    what hierbayes wrote there (:mod:`hierbayes.backend.disk_cache`).

The run folder (default ``hierbayes_output/<data file stem>``) holds ``summary.csv``,
``fixed_effects.csv``, ``variance_components.csv``, ``icc.csv`` (with a varying
intercept), ``group_effects_<factor>.csv``, ``diagnostics.csv``, ``priors.csv``,
``fit.nc`` (read back by ``hb.load``), ``shrinkage_<factor>.png``, ``trace.png``,
``ppc.png``, ``report.html`` (one self-contained page) and ``hierbayes-run.json`` (what
was run, and the list of files). It is written into a temporary folder beside the
target and renamed into place only when complete, so an interrupted or failed run leaves
no complete-looking folder (and a previous run's folder intact). An existing folder is
replaced only if an earlier hierbayes run wrote it.

Exit codes: 0 success; 1 fitted, but a convergence check failed (said in words on
stderr); 2 bad input (one line on stderr, no traceback; ``--debug`` shows it);
3 an internal error (a bug: the traceback is printed); 130 interrupted.

Examples
--------
>>> main(["fit", "no-such-file.csv", "y ~ x"])
2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from hierbayes.backend.sampling import SAMPLERS
from hierbayes.errors import ConvergenceWarning, DataWarning, HierbayesError

__all__ = ["main", "DEMOS", "RUN_MANIFEST", "FIT_FILE", "write_run"]

DEMOS = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "gaussian"),
    "radon": ("log_radon ~ floor + (1 + floor | county)", "gaussian"),
}
RUN_MANIFEST = "hierbayes-run.json"
FIT_FILE = "fit.nc"
DEFAULT_OUT = Path("hierbayes_output")

EXIT_OK, EXIT_UNCONVERGED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


# --- arguments ----------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sampling = argparse.ArgumentParser(add_help=False)
    sampling.add_argument("--draws", type=int, default=1000, help="kept draws per chain (default 1000)")
    sampling.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (default 1000)")
    sampling.add_argument("--chains", type=int, default=4, help="number of chains (default 4)")
    sampling.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sampling.add_argument("--sampler", default="auto", choices=list(SAMPLERS))
    sampling.add_argument("--out", type=Path, help="output folder (replaced only if hierbayes wrote it)")
    sampling.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    parser = argparse.ArgumentParser(prog="hierbayes", parents=[common],
                                     description="Bayesian multilevel regression from lme4/brms formulas.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", parents=[common, sampling], help="fit a bundled example end to end")
    demo.add_argument("name", nargs="?", default="sleepstudy", choices=sorted(DEMOS))
    fit = sub.add_parser("fit", parents=[common, sampling], help="fit FORMULA to a CSV or Parquet file")
    fit.add_argument("data", help="CSV (delimiter detected) or Parquet (.parquet) file")
    fit.add_argument("formula", help='lme4/brms formula, e.g. "y ~ x + (1 + x | g)"')
    fit.add_argument("--family", default="gaussian")
    fit.add_argument("--link", default=None, help="another of the family's links (e.g. probit)")
    fit.add_argument("--na", default="drop", choices=["drop", "error"],
                     help="rows with missing values: drop them (with a count) or refuse (default drop)")
    fit.add_argument("--sep", default=None, help="CSV delimiter (detected when omitted)")
    fit.add_argument("--dry-run", action="store_true", help="validate data and formula, print the model, stop")
    summary = sub.add_parser("summary", parents=[common], help="reprint the summary of a saved fit")
    summary.add_argument("path", type=Path, help=f"a run folder or a saved fit file ({FIT_FILE})")
    cache = sub.add_parser("cache", parents=[common], help="the compile cache on disk: what it holds, or clear it")
    cache.add_argument("action", choices=["info", "clear"],
                       help="info: location, size, cap and whether it is used; clear: delete what hierbayes wrote")
    return parser


# --- the run folder ----------------------------------------------------------------------------

def _check_out(out: Path) -> None:
    """Refuse, before any fitting, an output folder that a hierbayes run did not write."""
    if out.exists() and not out.is_dir():
        raise HierbayesError(f"output {str(out)!r} exists and is a file, not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / RUN_MANIFEST).is_file():
        raise HierbayesError(f"output folder {str(out)!r} exists and was not written by hierbayes; "
                             "choose another --out (or remove it)")


def _write_files(fit, folder: Path, notes: list[str], about: dict) -> list[str]:
    from hierbayes.viz.report import render_report, report_images, report_tables

    tables = report_tables(fit)
    for name, frame in tables.items():
        keep_index = not name.startswith("group_effects_")
        (frame if keep_index else frame.reset_index()).to_csv(folder / f"{name}.csv", index=keep_index)
    fit.save(folder / FIT_FILE)  # before the plots add replicated data to fit.idata
    images, plot_notes = report_images(fit, seed=fit.seed)
    for name, png in images.items():
        (folder / f"{name}.png").write_bytes(png)
    page = render_report(fit, images, [*notes, *plot_notes], tables=tables)
    (folder / "report.html").write_text(page, encoding="utf-8")
    files = sorted(p.name for p in folder.iterdir())
    checks = tables["diagnostics"]
    manifest = {**about, "hierbayes_version": _version(), "files": files + [RUN_MANIFEST],
                "converged": bool(checks["ok"].all()), "notes": [*notes, *plot_notes]}
    (folder / RUN_MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest["files"]


def _version() -> str:
    from hierbayes.version import __version__

    return __version__


def write_run(fit, out: str | os.PathLike, notes: Sequence[str] = (), about: dict | None = None) -> list[str]:
    """Write the run folder of ``fit`` atomically: a temporary folder beside ``out``, renamed when complete.

    Parameters
    ----------
    fit : Fit
    out : str or path-like
        The folder to create; an existing one is replaced only if a hierbayes run wrote it.
    notes : sequence of str
        Sentences for the report (rows dropped, ...).
    about : dict, optional
        What was run (data file, command), stored in ``hierbayes-run.json``.

    Returns
    -------
    list of str
        The files written.
    """
    out = Path(out)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        files = _write_files(fit, tmp, list(notes), dict(about or {}))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp made it private; the run folder is an ordinary folder
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


# --- commands ------------------------------------------------------------------------------------

def _say_warnings(caught) -> list[str]:
    """Print hierbayes's data warnings on stderr; re-issue any other warning; return the messages."""
    said = []
    for w in caught:
        if issubclass(w.category, (DataWarning, ConvergenceWarning)):
            said.append(str(w.message))
            print(f"hierbayes: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return said


def _model(args):
    from hierbayes import datasets
    from hierbayes.api import Model
    from hierbayes.specification.readers import read_data

    if args.command == "demo":
        formula, family = DEMOS[args.name]
        data, link, na = datasets.load(args.name), None, "drop"
        print(f"hierbayes demo: {formula} on the bundled {args.name} data ({len(data)} rows)", flush=True)
    else:
        formula, family, link, na = args.formula, args.family, args.link, args.na
        data = read_data(args.data, sep=args.sep)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        model = Model(formula, data, family, link=link, na_action=na)
    return model, _say_warnings(caught)


def _default_out(args) -> Path:
    if args.command == "demo":
        return DEFAULT_OUT / f"demo_{args.name}"
    return DEFAULT_OUT / Path(args.data).stem


def _fit(args) -> int:
    model, notes = _model(args)
    if getattr(args, "dry_run", False):
        print(model)
        print(model.prior_summary().to_string())
        print("hierbayes: the data and formula are valid (dry run: nothing fitted)")
        return EXIT_OK
    out = args.out or _default_out(args)
    _check_out(out)
    fit = model.fit(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed, sampler=args.sampler,
                    progressbar=not args.no_progress, warn=False)
    print(fit, flush=True)
    about = {"command": args.command, "formula": model.formula, "family": model.family.name,
             "link": model.family.link, "data": args.name if args.command == "demo" else str(args.data),
             "draws": args.draws, "tune": args.tune, "chains": args.chains, "seed": args.seed}
    write_run(fit, out, notes, about)
    print(f"hierbayes: wrote {out}{os.sep} (open {out / 'report.html'})")
    return _convergence_exit(fit)


def _convergence_exit(fit) -> int:
    checks = fit.diagnostics()
    failed = checks[~checks["ok"]]
    for message in failed["message"]:
        print(f"hierbayes: warning: {message}", file=sys.stderr)
    return EXIT_UNCONVERGED if len(failed) else EXIT_OK


def _summary(args) -> int:
    from hierbayes.api import load as load_fit

    path = args.path / FIT_FILE if args.path.is_dir() else args.path
    fit = load_fit(path)
    print(fit)
    return _convergence_exit(fit)


def _cache(args) -> int:
    from hierbayes.backend import disk_cache

    if args.action == "clear":
        cleared = disk_cache.clear()
        where = disk_cache.cache_dir()
        if cleared.files:
            print(f"hierbayes: removed {cleared.files} files ({cleared.size / 1e6:.1f} MB) from the compile cache "
                  f"{where}")
        else:
            print(f"hierbayes: the compile cache {where} holds nothing to remove")
        return EXIT_OK
    usage = disk_cache.usage()
    print(f"hierbayes cache: {usage.location}")
    print(f"  usable: {'yes' if usage.problem is None else f'no: {usage.problem}'}")
    print(f"  size: {usage.size / 1e6:.1f} MB in {usage.files} files ({usage.models} compiled models, "
          f"{usage.callbacks} compiled callbacks)")
    print(f"  cap: {usage.cap / 1e6:g} MB (set {disk_cache.MAX_MB_VARIABLE} to change it)")
    return EXIT_OK


def _run(args) -> int:
    if args.command == "summary":
        return _summary(args)
    if args.command == "cache":
        return _cache(args)
    return _fit(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (``sys.argv[1:]`` when omitted).

    Returns
    -------
    int
        0 success, 1 convergence warnings, 2 bad input, 3 internal error, 130 interrupted.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2), already printed
        return int(stop.code or 0)
    try:
        return _run(args)
    except HierbayesError as err:
        if args.debug:
            raise
        print(f"hierbayes: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("hierbayes: interrupted; no output folder was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        if args.debug:
            raise
        traceback.print_exc()
        print("hierbayes: internal error (a bug in hierbayes, please report it with the traceback above)",
              file=sys.stderr)
        return EXIT_INTERNAL
