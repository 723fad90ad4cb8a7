"""Saving a fit to one file (netCDF) or folder (zarr) and loading it back.

A saved fit is the fit's DataTree (posterior, sample stats, observed data,
log-likelihood and any predictive groups) plus what rebuilds its model exactly: the
formula, family, link, the priors the user gave, the parameterization, and the
columns of the fitting data that the formula uses (stored losslessly as Parquet bytes
in the group ``hierbayes_data``). Loading rebuilds the :class:`~hierbayes.api.Model`
from those, which restores the whole design state (level names, categorical levels,
``scale``/``center`` constants) without pickling any object, and attaches the stored
draws; summaries, plots and predictions of the loaded fit are those of the original.

A file written by another hierbayes version, a file that is not a hierbayes fit, or a
damaged file raises :class:`~hierbayes.common.errors.HierbayesError`.

Saving never loses work: the fit is written to a temporary file (or folder) beside the
target and renamed into place only when complete, so a save that fails (a full disk) or is
interrupted leaves the previous file as it was and no temporary behind. Only a fit saved by
hierbayes is ever replaced: an existing file or folder that is not one is refused.

Examples
--------
>>> import tempfile, os
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> path = os.path.join(tempfile.mkdtemp(), "sleep.nc")
>>> fit.save(path)
>>> again = hb.load(path)
>>> again.summary().equals(fit.summary())
True
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from hierbayes.common.errors import DataWarning, FormulaError, HierbayesError
from hierbayes.common.version import __version__
from hierbayes.specification.columns import used_columns
from hierbayes.specification.families import get_family
from hierbayes.specification.formula import Formula
from hierbayes.specification.names import FixedNames, factor_dim
from hierbayes.specification.priors import Prior

__all__ = ["save_fit", "load_fit", "FORMAT_VERSION", "FORMATS", "interrupts_deferred", "ordinary_permissions",
           "saved_fit_attrs"]

FORMAT_VERSION = 1
FORMATS = ("netcdf", "zarr")
DATA_GROUP = "hierbayes_data"
AUXILIARY = "auxiliary"  # the family parameters' formulas (hb.Formula), JSON; absent from files of earlier releases
_META = ("hierbayes_format", "hierbayes_version", "formula", "family", "link", "user_priors", "priors",
         "parameterization", "collapse", "sampler", "seed", "prob", "timings")


# --- metadata ----------------------------------------------------------------------------------

def _priors_json(priors) -> str:
    return json.dumps({label: [p.kind, [list(kv) for kv in p.params]] for label, p in priors.items()})


def _priors_from_json(text: str) -> dict[str, Prior]:
    return {label: Prior(kind, tuple((str(k), float(v)) for k, v in params))
            for label, (kind, params) in json.loads(text).items()}


def _metadata(fit) -> dict[str, str | int | float]:
    m = fit.model
    main, auxiliary = (m.formula.main, dict(m.formula.auxiliary)) if isinstance(m.formula, Formula) else (m.formula, {})
    return {
        "hierbayes_format": FORMAT_VERSION, "hierbayes_version": __version__,
        "formula": main, AUXILIARY: json.dumps(auxiliary), "family": m.family.name, "link": m.family.link,
        "family_constants": json.dumps(dict(m.family.constants)),
        "user_priors": _priors_json(m.user_priors), "priors": _priors_json(m.priors),
        "parameterization": json.dumps(m.parameterization), "collapse": json.dumps(getattr(m, "collapsed", None)),
        "sampler": fit.sampler,
        "seed": json.dumps(fit.seed), "prob": float(fit.prob), "timings": json.dumps(fit.timings),
    }


def _data_bytes(model) -> np.ndarray:
    """The used columns of the fitting data (missing rows included) as Parquet bytes."""
    data = model.data[used_columns(model.spec, model.data.columns, model.design.context)]
    buffer = io.BytesIO()
    try:
        data.to_parquet(buffer)
    except Exception as err:  # pyarrow refuses mixed-type object columns
        raise HierbayesError(f"cannot store the fitting data: {err}; give each column one type") from None
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


# --- save ---------------------------------------------------------------------------------------

def _format(path: Path, format: str | None) -> str:
    if format is None:
        return "zarr" if path.suffix == ".zarr" else "netcdf"
    if format not in FORMATS:
        raise HierbayesError(f"format must be one of {FORMATS}, not {format!r}")
    return format


def save_fit(fit, path: str | os.PathLike, format: str | None = None) -> None:
    """Write ``fit`` to ``path``: netCDF (one file) or zarr (a folder, for ``.zarr`` paths), atomically.

    The fit is written beside ``path`` under a temporary name and renamed to ``path`` only when
    complete: a failed or interrupted save leaves an earlier file at ``path`` as it was.

    Parameters
    ----------
    fit : Fit
    path : str or path
        Replaced if it holds a fit saved by hierbayes (any version); anything else there is refused.
    format : {"netcdf", "zarr"}, optional
        By default zarr for a path ending in ``.zarr``, netCDF otherwise.

    Raises
    ------
    HierbayesError
        When ``path`` exists and is not a fit saved by hierbayes (a folder of other files, a
        data file, a symbolic link), or its folder does not exist; nothing is written then.
    """
    path = Path(path)
    fmt = _format(path, format)
    _check_target(path, fmt)
    tree = fit.idata.copy()
    tree[DATA_GROUP] = xr.DataTree(xr.Dataset({"parquet": ("byte", _data_bytes(fit.model))}))
    tree.attrs = {**fit.idata.attrs, **_metadata(fit)}
    if fmt == "zarr":
        _replace_with(path, lambda tmp: _write_zarr(tree, tmp), folder=True)
    else:
        _replace_with(path, lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf"), folder=False)


def _write_zarr(tree: xr.DataTree, folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Zarr format 3 specification")
        tree.to_zarr(folder, mode="w")


# --- replacing only what hierbayes wrote, atomically ------------------------------------------

_ZARR_FILE = re.compile(r"zarr\.json|\.z(array|attrs|group|metadata)|\d+(\.\d+)*")  # metadata, chunk names


def saved_fit_attrs(path: Path) -> dict | None:
    """The root attributes of ``path`` if it is a fit saved by hierbayes (any version), else None.

    Only the metadata is read (nothing is loaded, nothing can run).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = xr.open_datatree(path, engine="zarr" if path.is_dir() else "h5netcdf")
            attrs = dict(tree.attrs)
            tree.close()
    except Exception:
        return None
    return attrs if "hierbayes_format" in attrs else None


def _foreign_in_zarr(folder: Path) -> str | None:
    """The first entry of ``folder`` that a zarr store does not hold (a file a user put there), or None."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()  # the same answer every time
        for name in sorted(files):
            if not _ZARR_FILE.fullmatch(name):
                return str(Path(root, name).relative_to(folder))
    return None


def _check_target(path: Path, fmt: str) -> None:
    """Refuse to save over anything that is not a fit saved by hierbayes (before writing anything)."""
    where = str(path)
    if path.is_symlink():
        raise HierbayesError(f"cannot save to {where!r}: it is a symbolic link; save to the path it points to, "
                             "or choose another path")
    if not path.parent.is_dir():
        raise HierbayesError(f"cannot save to {where!r}: the folder {str(path.parent)!r} does not exist")
    if not path.exists():
        return
    if fmt == "netcdf" and path.is_dir():
        raise HierbayesError(f"cannot save a netCDF file to {where!r}: it is a folder (save to a file path, or "
                             "use a .zarr path or format='zarr' to save a folder)")
    if fmt == "zarr" and not path.is_dir():
        raise HierbayesError(f"cannot save a zarr folder to {where!r}: it is a file")
    if path.is_dir() and not any(path.iterdir()):
        return  # an empty folder: nothing in it to lose
    if saved_fit_attrs(path) is None:
        what = "folder" if path.is_dir() else "file"
        raise HierbayesError(f"{where!r} exists and is not a fit saved by hierbayes; hierbayes replaces only its own "
                             f"saved fits: choose another path, or move that {what} away")
    if path.is_dir() and (foreign := _foreign_in_zarr(path)) is not None:
        raise HierbayesError(f"{where!r} holds {foreign!r}, which is not part of a saved fit; hierbayes replaces a "
                             "saved fit only when nothing else is in it: choose another path, or move that file away")


def ordinary_permissions(path: Path) -> None:
    """Give a file or folder made by :mod:`tempfile` (private to its owner) the permissions of a new one."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


@contextlib.contextmanager
def interrupts_deferred():
    """Hold Ctrl-C (SIGINT) until the block ends, so that renames made together finish together.

    The interrupt is raised (Python's KeyboardInterrupt) once the block is done. Signal
    handlers belong to the main thread: elsewhere, or when Ctrl-C is not Python's
    KeyboardInterrupt, nothing changes.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is not signal.default_int_handler:
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


def _replace_with(path: Path, write: Callable[[Path], None], folder: bool) -> None:
    """``write(tmp)`` into a temporary file or folder beside ``path``, then rename it to ``path``.

    Whatever ``write`` does, ``path`` is untouched until the rename, and the temporary is
    removed if anything fails.
    """
    prefix = f".{path.name}.tmp-"
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
        os.close(handle)
        tmp = Path(name)
    old = None
    try:
        write(tmp)
        ordinary_permissions(tmp)
        if folder and path.exists():  # a folder cannot be renamed over a non-empty one: set the old one aside
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            with interrupts_deferred():
                os.replace(path, old / path.name)
                try:
                    os.replace(tmp, path)
                except BaseException:
                    os.replace(old / path.name, path)
                    raise
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# --- load ---------------------------------------------------------------------------------------

_ZARR_METADATA = (".zarray", ".zmetadata", "zarr.json")


def _codec_names(node, inside: bool = False):
    """Every codec ``id``/``name`` in zarr metadata (v2 ``compressor``/``filters``, v3 ``codecs``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if inside and key in ("id", "name") and isinstance(value, str):
                yield value
            yield from _codec_names(value, inside or key in ("compressor", "filters", "codecs"))
    elif isinstance(node, list):
        for value in node:
            yield from _codec_names(value, inside)


def _check_zarr_codecs(path: Path) -> None:
    """Refuse a zarr folder whose metadata asks for the pickle codec, which would run code while
    reading (zarr and numcodecs refuse it too, unless an environment variable allows it)."""
    for meta in (p for p in path.rglob("*") if p.name in _ZARR_METADATA and p.is_file()):
        try:
            names = list(_codec_names(json.loads(meta.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # unreadable metadata fails below, when zarr reads it
        if any("pickle" in name.lower() for name in names):
            raise HierbayesError(f"{str(path)!r} was not opened: {meta.relative_to(path)} asks for the pickle codec, "
                                 "which runs code while reading (hierbayes never writes it)")


def _read_tree(path: Path) -> xr.DataTree:
    if not path.exists():
        raise HierbayesError(f"no saved fit at {str(path)!r}")
    if path.is_dir():
        _check_zarr_codecs(path)
    engine = "zarr" if path.is_dir() else "h5netcdf"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = xr.open_datatree(path, engine=engine)
            loaded = tree.load()
            tree.close()
    except Exception as err:
        raise HierbayesError(f"cannot read {str(path)!r} as a saved fit (not a netCDF file or zarr folder, or "
                             f"damaged): {type(err).__name__}: {err}") from None
    return loaded


def _check_header(attrs, path: Path) -> None:
    if "hierbayes_format" not in attrs:
        raise HierbayesError(f"{str(path)!r} was not written by Fit.save (it has no hierbayes metadata)")
    version = str(attrs.get("hierbayes_version"))
    if version != __version__:
        raise HierbayesError(f"{str(path)!r} was written by hierbayes {version}; this is hierbayes {__version__}. "
                             f"Load it with hierbayes {version}, or refit the model with this version")
    if int(attrs["hierbayes_format"]) != FORMAT_VERSION:
        raise HierbayesError(f"{str(path)!r} has file format {attrs['hierbayes_format']}; this hierbayes reads "
                             f"format {FORMAT_VERSION}")


def _check_draws(model, posterior: xr.Dataset, path: Path) -> None:
    """The rebuilt design must label the stored draws exactly as when they were sampled."""
    expected = {FixedNames(d.part).dim: d.fixed_names for d in (model.design, *model.design.parts) if d.fixed_names}
    expected.update({factor_dim(f): fd.levels for f, fd in model.design.all_factors.items()})
    for dim, labels in expected.items():
        stored = tuple(str(v) for v in posterior[dim].values) if dim in posterior.coords else None
        if stored != tuple(labels):
            raise HierbayesError(f"{str(path)!r} is inconsistent: the stored draws' {dim!r} labels do not match "
                                 "the model rebuilt from the stored data")


def _model(model_class: type, meta: dict, data: pd.DataFrame, options: dict, path: Path):
    """The model rebuilt from the file's formula, which is checked like any formula before anything in it
    is evaluated (:mod:`hierbayes.specification.evaluation`): a saved fit cannot run code."""
    auxiliary = json.loads(meta.get(AUXILIARY, "{}"))
    formula = Formula(meta["formula"], **auxiliary) if auxiliary else meta["formula"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # the warnings of the original fit, once was enough
            family = get_family(meta["family"], meta["link"]).with_constants(**meta["family_constants"])
            return model_class(formula, data, family, **options)
    except HierbayesError as err:
        what = "uses something a formula may not" if isinstance(err, FormulaError) else "cannot be rebuilt"
        raise HierbayesError(f"{str(path)!r} was not opened: its formula {str(formula)!r} {what}: {str(err).splitlines()[0]}. "
                             "A fit made with hb.Model(..., namespace={...}) is opened with the same entries: "
                             "hb.load(path, namespace={...})") from None


def load_fit(path: str | os.PathLike, *, model_class: type, fit_class: type,
             namespace: Mapping[str, Any] | None = None):
    """Read a fit written by :meth:`Fit.save <hierbayes.Fit.save>` (``hb.load`` is this with
    :class:`hierbayes.Model` and :class:`hierbayes.Fit`).

    Parameters
    ----------
    path : str or path
    model_class, fit_class : type
        What to rebuild the model and the fit as.
    namespace : dict, optional
        The functions the fit's formula used from ``hb.Model(..., namespace=...)``; a saved
        fit stores their names in its formula, never their code.

    Returns
    -------
    Fit
        With its model rebuilt from the stored formula, family, priors and data.

    Raises
    ------
    HierbayesError
        If the file is missing, damaged, not a saved fit, or from another hierbayes version, or
        if its formula uses anything a formula may not (naming the file and the term).
    """
    path = Path(path)
    tree = _read_tree(path)
    attrs = dict(tree.attrs)
    _check_header(attrs, path)
    try:
        if DATA_GROUP not in tree.children or "posterior" not in tree.children:
            raise KeyError(f"the groups {DATA_GROUP!r} and 'posterior' must both be present")
        raw = tree[DATA_GROUP]["parquet"].values.astype(np.uint8).tobytes()
        data = pd.read_parquet(io.BytesIO(raw))
        meta = {k: attrs[k] for k in _META} | ({AUXILIARY: attrs[AUXILIARY]} if AUXILIARY in attrs else {})
        meta["family_constants"] = json.loads(attrs.get("family_constants", "{}"))  # absent before families had any
        user_priors, priors = _priors_from_json(meta["user_priors"]), _priors_from_json(meta["priors"])
        options = {"parameterization": json.loads(meta["parameterization"]), "priors": user_priors,
                   "namespace": namespace}
        if (collapse := json.loads(meta["collapse"])) is not None:
            options["collapse"] = collapse  # whether the likelihood integrated the group effects out
        seed, timings = json.loads(meta["seed"]), json.loads(meta["timings"])
    except Exception as err:
        raise HierbayesError(f"{str(path)!r} is damaged: its hierbayes metadata or data cannot be read "
                             f"({type(err).__name__}: {err})") from None
    model = _model(model_class, meta, data, options, path)
    if model.priors != priors:
        raise HierbayesError(f"{str(path)!r} is inconsistent: the priors rebuilt from its data differ from the stored ones")
    _check_draws(model, tree["posterior"].to_dataset(), path)
    groups = {f"/{name}": node.to_dataset() for name, node in tree.children.items() if name != DATA_GROUP}
    idata = xr.DataTree.from_dict(groups)
    idata.attrs = {k: v for k, v in attrs.items() if k not in (*_META, AUXILIARY) or k in ("hierbayes_version", "formula",
                                                                          "family", "link", "sampler")}
    return fit_class(model, idata, sampler=meta["sampler"], timings=timings, seed=seed, prob=float(meta["prob"]))
