"""The ``hierbayes`` command line: a full analysis without opening Python.

Commands
--------
``hierbayes fit DATA "FORMULA" [--family F] [--link L] [--draws N] [--tune N] [--chains N]
[--seed S] [--sampler S] [--out DIR] [--force] [--na drop|error] [--sep SEP] [--dry-run]``
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
was run, and the list of files); a model without a group term has no ICC, group-effect or
shrinkage files, and its report says so. It is written into a temporary folder beside the
target and moved into place only when complete, so an interrupted or failed run leaves
no complete-looking folder (and a previous run's folder intact).

Nothing hierbayes did not write is ever deleted or overwritten. Rerunning into a run folder
replaces only the files its ``hierbayes-run.json`` lists (plain names of run files that are
regular files in the folder; anything else a manifest says is ignored). A folder holding
anything else is refused before fitting, unless ``--force``: then the run's files are
written beside the others, which are kept (a file of the user's with the name of a run
file is refused even then). ``--out`` must be writable, and not the current folder, the
home folder, the filesystem root or a folder containing one of them.

Exit codes: 0 success; 1 fitted, but a convergence check failed (said in words on
stderr); 2 bad input (one line on stderr, no traceback; ``--debug`` shows it);
3 an internal error (a bug: the traceback is printed); 130 interrupted (Ctrl-C, sampling
included: nothing is written).

Examples
--------
>>> main(["fit", "no-such-file.csv", "y ~ x"])
2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from hierbayes.backend.sampling import SAMPLERS
from hierbayes.common.errors import ConvergenceWarning, DataWarning, FormulaError, HierbayesError
from hierbayes.posterior.saved import interrupts_deferred, ordinary_permissions
from hierbayes.viz.report import FACTOR_IMAGE, FACTOR_TABLE, IMAGE_STEMS, TABLE_STEMS, part_factors, report_stems

__all__ = ["main", "DEMOS", "RUN_MANIFEST", "FIT_FILE", "REPORT_FILE", "write_run", "check_out", "run_files"]

DEMOS = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "gaussian"),
    "radon": ("log_radon ~ floor + (1 + floor | county)", "gaussian"),
}
RUN_MANIFEST = "hierbayes-run.json"
FIT_FILE = "fit.nc"
REPORT_FILE = "report.html"
_RUN_FILE = re.compile("|".join([  # a name a run writes; a manifest is believed about such names only
    "(" + "|".join([*TABLE_STEMS, FACTOR_TABLE + r"_\w+"]) + r")\.csv",
    "(" + "|".join([*IMAGE_STEMS, FACTOR_IMAGE + r"_\w+"]) + r")\.png",
    *(re.escape(name) for name in (FIT_FILE, REPORT_FILE, RUN_MANIFEST))]))
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
    sampling.add_argument("--out", type=Path, help="output folder (only files an earlier run wrote are replaced)")
    sampling.add_argument("--force", action="store_true",
                          help="write into an --out folder that holds other files, beside them (they are kept)")
    sampling.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    parser = argparse.ArgumentParser(prog="hierbayes", parents=[common],
                                     description="Bayesian multilevel regression from lme4/brms formulas.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", parents=[common, sampling], help="fit a bundled example end to end")
    demo.add_argument("name", nargs="?", default="sleepstudy", choices=sorted(DEMOS))
    fit = sub.add_parser("fit", parents=[common, sampling], help="fit FORMULA to a CSV or Parquet file")
    fit.add_argument("data", help="CSV (delimiter detected) or Parquet (.parquet) file")
    fit.add_argument("formula", help='lme4/brms formula, e.g. "y ~ x + (1 + x | g)"')
    fit.add_argument("--aux", action="append", default=[], metavar="PARAMETER=FORMULA",
                     help='a formula for a family parameter, e.g. --aux "sigma=~ x + (1 | g)" (repeatable)')
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

def run_files(model) -> set[str]:
    """Every file name a run of ``model`` may write (``icc.csv`` only with a varying intercept, ...)."""
    tables, images = report_stems(model.design.factors, part_factors(model.design))
    return {f"{t}.csv" for t in tables} | {f"{i}.png" for i in images} | {FIT_FILE, REPORT_FILE, RUN_MANIFEST}


def _regular_file(path: Path) -> bool:
    """A regular file itself: not a folder, not a symbolic link (to anything)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _our_files(folder: Path) -> set[str]:
    """The files of ``folder`` that an earlier run wrote: those its manifest lists, if each is a run
    file's plain name (no ``..``, no path) and a regular file directly in ``folder``."""
    if not _regular_file(folder / RUN_MANIFEST):
        return set()
    try:
        listed = json.loads((folder / RUN_MANIFEST).read_text(encoding="utf-8"))["files"]
    except Exception:  # not a manifest we can read: nothing in the folder is known to be ours
        return set()
    if not isinstance(listed, list):
        return set()
    return {name for name in listed
            if isinstance(name, str) and _RUN_FILE.fullmatch(name) and _regular_file(folder / name)}


def _can_write(folder: Path, out: Path) -> None:
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".hierbayes-check-", dir=folder))
    except OSError as err:
        raise HierbayesError(f"cannot write the output folder {str(out)!r}: {str(folder)!r} is not writable "
                             f"({err.strerror}); choose another --out") from None


def _refuse_places(out: Path, real: Path) -> None:
    """The current folder, the home folder, the filesystem root, or a folder holding one of them."""
    cwd = Path.cwd().resolve()
    try:
        home = Path.home().resolve()
    except RuntimeError:  # no home folder known
        home = None
    if real == Path(real.anchor):
        what = "the filesystem root"
    elif real == home:
        what = "your home folder"
    elif real == cwd:
        what = "the current folder"
    elif real in cwd.parents:
        what = "a folder that contains the current folder"
    elif home is not None and real in home.parents:
        what = "a folder that contains your home folder"
    else:
        return
    raise HierbayesError(f"--out {str(out)!r} is {what}; a run needs a folder of its own: choose another --out "
                         f"(e.g. {str(DEFAULT_OUT / 'run')!r})")


def check_out(out: str | os.PathLike, *, force: bool = False, names: set[str] | frozenset[str] = frozenset()) -> None:
    """Refuse, before any fitting, an output folder that a run must not write into.

    Parameters
    ----------
    out : str or path-like
        The run folder.
    force : bool
        Allow a folder that holds files an earlier run did not write: the run's files go beside them.
    names : set of str
        The files the run may write (:func:`run_files`); with ``force``, a file of another's by
        one of these names is refused all the same.

    Raises
    ------
    HierbayesError
        For the current folder, the home folder, the filesystem root or a folder containing one
        of them; a file; a folder that cannot be written; a folder holding anything an earlier run
        did not write (without ``force``, naming the folder and the first such file).
    """
    out = Path(out)
    target = Path(os.path.abspath(out))
    real = target.resolve()
    _refuse_places(out, real)
    if os.path.lexists(target) and not target.is_dir():
        raise HierbayesError(f"output {str(out)!r} exists and is a file, not a folder; choose another --out")
    if not real.exists():
        ancestor = next(p for p in real.parents if os.path.lexists(p))
        if not ancestor.is_dir():
            raise HierbayesError(f"cannot create the output folder {str(out)!r}: {str(ancestor)!r} is a file")
        _can_write(ancestor, out)
        return
    _can_write(real.parent, out)  # the run is written beside the folder first
    _can_write(real, out)
    if os.stat(real).st_dev != os.stat(real.parent).st_dev:
        raise HierbayesError(f"output folder {str(out)!r} is a mount point: the run cannot be moved into it "
                             "when complete; choose a folder inside it")
    foreign = sorted(set(os.listdir(real)) - _our_files(real))
    if not foreign:
        return
    if not force:
        others = f" and {len(foreign) - 1} other files or folders" if len(foreign) > 1 else ""
        raise HierbayesError(f"output folder {str(out)!r} holds {foreign[0]!r}{others}, which hierbayes did not "
                             "write; choose another --out, or pass --force to write the run beside them (they are "
                             "kept)")
    if clash := sorted(set(foreign) & set(names)):
        raise HierbayesError(f"output folder {str(out)!r} holds {clash[0]!r}, which hierbayes did not write and the "
                             "run would overwrite, even with --force; move it away or choose another --out")


def _write_files(fit, folder: Path, notes: list[str], about: dict) -> list[str]:
    from hierbayes.viz.report import render_report, report_images, report_tables

    tables = report_tables(fit)
    for name, frame in tables.items():
        keep_index = not name.startswith("group_effects_")
        (frame if keep_index else frame.reset_index()).to_csv(folder / f"{name}.csv", index=keep_index)
    fit.save(folder / FIT_FILE)
    images, plot_notes = report_images(fit, seed=fit.seed)
    for name, png in images.items():
        (folder / f"{name}.png").write_bytes(png)
    page = render_report(fit, images, [*notes, *plot_notes], tables=tables)
    (folder / REPORT_FILE).write_text(page, encoding="utf-8")
    files = sorted(p.name for p in folder.iterdir())
    checks = tables["diagnostics"]
    manifest = {**about, "hierbayes_version": _version(), "files": files + [RUN_MANIFEST],
                "converged": bool(checks["ok"].all()), "notes": [*notes, *plot_notes]}
    (folder / RUN_MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest["files"]


def _version() -> str:
    from hierbayes.common.version import __version__

    return __version__


def write_run(fit, out: str | os.PathLike, notes: Sequence[str] = (), about: dict | None = None, *,
              force: bool = False) -> list[str]:
    """Write the run folder of ``fit`` atomically: a temporary folder beside ``out``, moved in when complete.

    Parameters
    ----------
    fit : Fit
    out : str or path-like
        The folder to write. In an existing one, only the files an earlier run's manifest lists
        are replaced (:func:`check_out` says which folders are refused).
    notes : sequence of str
        Sentences for the report (rows dropped, ...).
    about : dict, optional
        What was run (data file, command), stored in ``hierbayes-run.json``.
    force : bool
        Write beside files an earlier run did not write (they are kept).

    Returns
    -------
    list of str
        The files written.

    Raises
    ------
    HierbayesError
        For an output folder :func:`check_out` refuses; nothing is written then.
    """
    names = run_files(fit.model)
    check_out(out, force=force, names=names)
    real = Path(os.path.abspath(out)).resolve()
    created = _make_folders(real.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.tmp-", dir=real.parent))
    try:
        files = _write_files(fit, tmp, list(notes), dict(about or {}))
        ordinary_permissions(tmp)  # mkdtemp made it private; the run folder is an ordinary folder
        if real.is_dir():
            _move_into(real, tmp, files, out)
            tmp.rmdir()
        else:
            os.replace(tmp, real)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # deepest first; only the ones this run made, and only while empty
            if any(folder.iterdir()):
                break
            folder.rmdir()
        raise
    return files


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones created, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return missing


def _move_into(folder: Path, tmp: Path, files: list[str], out) -> None:
    """Replace the earlier run's files of ``folder`` by the new ones in ``tmp``, all or none.

    The earlier files are set aside (manifest first) and the new ones moved in (manifest
    last), with Ctrl-C held meanwhile; if a move fails, every move is undone. Files an earlier
    run did not write are never touched.
    """
    ours = _our_files(folder)
    if clash := sorted(name for name in files if os.path.lexists(folder / name) and name not in ours):
        raise HierbayesError(f"output folder {str(out)!r} now holds {clash[0]!r}, which hierbayes did not write and "
                             "the run would overwrite (it appeared during the fit); nothing was written")
    old = sorted(sorted(ours), key=lambda name: name != RUN_MANIFEST)  # the manifest first: no longer complete
    new = sorted(sorted(files), key=lambda name: name == RUN_MANIFEST)  # and last: complete when all is there
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    moved: list[tuple[Path, Path]] = []
    try:
        with interrupts_deferred():
            try:
                for source, target in [*((folder / n, aside / n) for n in old), *((tmp / n, folder / n) for n in new)]:
                    os.replace(source, target)
                    moved.append((source, target))
            except BaseException:
                for source, target in reversed(moved):
                    os.replace(target, source)
                raise
    finally:
        if len(moved) == len(old) + len(new):
            shutil.rmtree(aside, ignore_errors=True)  # the earlier run's files, replaced
        else:
            with contextlib.suppress(OSError):
                aside.rmdir()  # empty once every move was undone; kept otherwise, the earlier files in it


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
    from hierbayes.specification.formula import Formula
    from hierbayes.specification.readers import read_data

    if args.command == "demo":
        formula, family = DEMOS[args.name]
        data, link, na = datasets.load(args.name), None, "drop"
        print(f"hierbayes demo: {formula} on the bundled {args.name} data ({len(data)} rows)", flush=True)
    else:
        formula, family, link, na = args.formula, args.family, args.link, args.na
        if args.aux:
            formula = Formula(formula, **_auxiliary(args.aux))
        data = read_data(args.data, sep=args.sep)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        model = Model(formula, data, family, link=link, na_action=na)
    return model, _say_warnings(caught)


def _auxiliary(options: list[str]) -> dict[str, str]:
    """``--aux "sigma=~ x"`` options as ``{"sigma": "~ x"}``."""
    out = {}
    for option in options:
        name, sep, text = option.partition("=")
        if not sep or not name.strip().isidentifier():
            raise FormulaError(f"--aux takes PARAMETER=FORMULA, as --aux \"sigma=~ x + (1 | g)\"; got {option!r}")
        out[name.strip()] = text
    return out


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
    check_out(out, force=args.force, names=run_files(model))
    fit = model.fit(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed, sampler=args.sampler,
                    progressbar=not args.no_progress, warn=False)
    print(fit, flush=True)
    about = {"command": args.command, "formula": str(model.formula), "family": model.family.name,
             "link": model.family.link, "data": args.name if args.command == "demo" else str(args.data),
             "draws": args.draws, "tune": args.tune, "chains": args.chains, "seed": args.seed}
    write_run(fit, out, notes, about, force=args.force)
    print(f"hierbayes: wrote {out}{os.sep} (open {out / REPORT_FILE})")
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
        print("hierbayes: interrupted; no output folder was written (an earlier run's folder is as it was)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (``hierbayes summary RUN | head``): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return EXIT_OK
    except Exception:
        if args.debug:
            raise
        traceback.print_exc()
        print("hierbayes: internal error (a bug in hierbayes, please report it with the traceback above)",
              file=sys.stderr)
        return EXIT_INTERNAL
