"""Compile a PyMC model for nutpie once per structure, and keep the result on disk.

Where the time of ``nutpie.compile_pymc_model`` goes, measured on sleepstudy in a new
process with warm PyTensor caches (``bench/NOTES.md``): PyTensor's own numba functions
for the log density and its gradient are loaded from PyTensor's disk cache, but
nutpie then wraps them in two ``numba.cfunc`` C callbacks, and numba compiles those
again in every process (about 90% of the compile time). Numba cannot cache them
itself: its cache index hashes the pickled closure of the wrapper, which holds
nutpie's freshly drawn uuid keys and the data arrays, so the key never repeats. nutpie
also passes the data arrays themselves into the wrapper, where numba freezes them as
constants: compiling a model of a million rows embeds a million numbers.

:func:`compile_model` does what ``compile_pymc_model`` does on its default path,
with these changes: the C callbacks are kept on disk under a key built from what their code
depends on (PyTensor's key of the inner function, the layout of the shared data, the
versions of numba, llvmlite, nutpie and PyTensor, the machine), and they are compiled against
one-element placeholders of the data (same rank and dtype; the real data reach the
callbacks through nutpie's pointers at run time). Models of one structure (equal
:func:`hierbayes.model.data.structure_key`) produce equal keys; so a new process loads
the callbacks instead of compiling them. For a structure's first compile, the shapes are
read at hierbayes's starts (:func:`shapes_at`) rather than at PyMC's initial point, and the
callbacks copy their outputs by loops (:func:`logp_callback`): together about half of a
fresh machine's compile. nutpie's per-draw expansion is not compiled at all: nutpie stores
the unconstrained point through one copy callback shared by every model
(:func:`copy_callback`), and :mod:`hierbayes.backend.expansion` computes the model's variables
after sampling.

A callback compiled here runs the same machine code as the one a later process loads
(:func:`hierbayes.backend.compat.compile_cfunc` keeps the functions it calls private to it),
so a structure's first fit gives the draws of every later fit with the same seed.

Given the structure key and the starts, :func:`compile_model` also writes the rest of the
compiled model (shapes, dims, the slots of the shared data, the draws' expansion) to ``models/``: a later
process then rebuilds it with :func:`load_model` from that entry and the callbacks alone,
without building the PyMC model (which took ~3 s of a new process's sleepstudy fit).

Every private name of nutpie, numba, PyTensor and PyMC used here is reached through
:mod:`hierbayes.backend.compat`, which checks them; when they are not as tested,
:mod:`hierbayes.backend.sampling` takes nutpie's public API instead (:mod:`hierbayes.backend.public`).

The disk cache (:mod:`hierbayes.backend.disk_cache`: ``$HIERBAYES_CACHE_DIR``, default
``~/.cache/hierbayes``) is read only when only you can write it, its files are written whole
and checked when read (a damaged one is compiled and written again), and it is held under a
size cap; deleting the directory is always safe.

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
>>> compiled = compile_model(m.fitting_model)
>>> int(compiled.n_dim)  # Intercept, Days, sd(Intercept|Subject), sigma
4
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import cache, partial, wraps
from pathlib import Path

import numpy as np

from hierbayes.backend import compat, disk_cache
from hierbayes.backend.disk_cache import cache_dir
from hierbayes.backend.expansion import Expansion, expansion_of, lean_rewrites

__all__ = ["compile_model", "load_model", "with_data", "detached", "start_function", "cache_dir"]

_PACKAGES = ("numba", "llvmlite", "nutpie", "pytensor", "pymc", "numpy")  # their versions key every entry


def _versions() -> tuple:
    return tuple((p, compat.package_version(p)) for p in _PACKAGES)


_CALLBACK_FORMAT = 2  # 2: the functions a callback calls are private to it, files checksummed


def _callback_name(key: str) -> str:
    return f"callback-{key}.nbc"


def _cfunc(py_func, signature, key: str | None):
    """``numba.cfunc(signature)(py_func)``: loaded from the disk cache under ``key``, else compiled here and kept
    there (not kept when ``key`` is None)."""
    if key is not None and (loaded := _load_cfunc(signature, key)) is not None:
        return loaded
    compiled, payload = compat.compile_cfunc(py_func, signature)
    if key is not None and payload is not None:
        disk_cache.write(disk_cache.CALLBACKS, _callback_name(key), payload)
    return compiled


def _load_cfunc(signature, key: str):
    """The C callback saved under ``key``, or None when it is not on disk (never compiles); one that cannot be
    loaded is discarded."""
    name = _callback_name(key)
    payload = disk_cache.read(disk_cache.CALLBACKS, name)
    if payload is None:
        return None
    try:
        return compat.load_cfunc(signature, payload)
    except Exception as error:  # noqa: BLE001 - whatever numba makes of a bad file, it is no callback
        disk_cache.discard(disk_cache.CALLBACKS, name, f"numba cannot load it ({type(error).__name__}: {error})")
        return None


def _key(kind: str, inner, dims: tuple, shared: list[tuple[str, int, str]]) -> str | None:
    """Cache key of a C callback around PyTensor's numba function ``inner`` (None: not cacheable)."""
    inner_key = compat.numba_source_key(inner)
    if inner_key is None:
        return None
    text = repr((kind, inner_key, dims, shared, _versions(), sys.version_info[:2], _wrapper_stamp(), compat.machine(),
                 _CALLBACK_FORMAT))
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def _wrapper_stamp() -> str:
    """Hash of the C callbacks' Python source: a change there makes new cache entries."""
    import inspect

    source = "".join(inspect.getsource(f) for f in (logp_callback, copy_callback))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


# nutpie's log-density C callback (``nutpie.compile_pymc._make_c_logp_func``),
# with one change: the outputs are copied and checked by loops. nutpie's ``out[...] = grad`` and
# ``np.all(np.isfinite(out))`` pull numba's shape-mismatch error message (unicode formatting) into
# both compiles: on a fresh machine, sleepstudy's fit took 9.2 s CPU instead of 13.3 s without
# them (bench/NOTES.md).

def _c_signature(*pointers):
    import numba

    return numba.types.int64(*pointers, numba.types.voidptr)


def logp_callback(n_dim: int, logp_fn, user_data, shared_keys, shared_data):
    """``(dim, x, grad_out, logp_out, user_data) -> status``: 0, or 1 on an exception, 3 for a
    non-finite gradient, 4 for a non-finite log density, -1 for a wrong dimension (nutpie's codes)."""
    import numba

    extract = compat.make_extraction_fn(logp_fn, shared_data, shared_keys, user_data.dtype)
    double_p = numba.types.CPointer(numba.types.double)

    def logp_numba(dim, x_, out_, logp_, user_data_):
        if dim != n_dim:
            return -1
        try:
            x = numba.carray(x_, (n_dim,))
            out = numba.carray(out_, (n_dim,))
            logp = numba.carray(logp_, ())
            logp_val, grad = extract(x, user_data_)
            logp[()] = logp_val
            finite = True
            for i in range(n_dim):
                out[i] = grad[i]
                finite = finite and np.isfinite(grad[i])
            if not finite:
                return 3
            if not np.isfinite(logp_val):
                return 4
        except Exception:  # noqa: BLE001
            return 1
        return 0

    return logp_numba, _c_signature(numba.types.uint64, double_p, double_p, double_p)


def copy_callback():
    """nutpie's expand callback when the draws are expanded after sampling (:mod:`hierbayes.backend.expansion`):
    ``(dim, n_expanded, x, out, user_data) -> status`` copies the unconstrained point; -1 for unequal sizes.
    The same for every model, so compiled once per machine."""
    import numba

    double_p = numba.types.CPointer(numba.types.double)

    def copy_numba(dim, expanded, x_, out_, user_data_):
        if dim != expanded:
            return -1
        x = numba.carray(x_, (dim,))
        out = numba.carray(out_, (dim,))
        for i in range(dim):
            out[i] = x[i]
        return 0

    return copy_numba, _c_signature(numba.types.uint64, numba.types.uint64, double_p, double_p)


def _copy_key() -> str:
    text = repr(("copy", _versions(), sys.version_info[:2], _wrapper_stamp(), compat.machine(), _CALLBACK_FORMAT))
    return hashlib.sha256(text.encode()).hexdigest()


def _with_lock(func):
    lock = threading.Lock()

    @wraps(func)
    def locked(*args, **kwargs):
        with lock:
            return func(*args, **kwargs)

    return locked


def shapes_at(model, point: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Shapes of every value variable, free variable and deterministic of ``model`` at ``point``.

    nutpie's ``_compute_shapes`` evaluates PyMC's initial point function to get ``point``;
    compiling that function is the slowest step of a cold compile (about 10 s: the
    support point of ``LKJCholeskyCov`` holds a ``Scan`` that PyTensor compiles with its C
    backend). hierbayes already has the starting values (:func:`hierbayes.model.data.initial_values`),
    so the shapes are read at those instead, by the same small shape function nutpie compiles.
    """
    import pytensor
    from pytensor.tensor import as_tensor

    trace_vars = {var.name: var for var in model.value_vars + model.free_RVs + model.deterministics
                  if var not in model.observed_RVs + model.potentials}
    givens = [(obs, model.rvs_to_values[obs]) for obs in model.observed_RVs]
    givens += [(var, np.asarray(point[name], dtype=var.dtype)) for name, var in trace_vars.items() if name in point]
    for rv in model.free_RVs:  # parameters without a start (they start at zero): shaped by their prior
        value = model.rvs_to_values[rv]
        if value.name in point:
            continue
        if None not in value.type.shape:
            givens.append((value, np.zeros(value.type.shape, dtype=value.dtype)))
        elif (transform := model.rvs_to_transforms.get(rv)) is not None:
            givens.append((value, transform.forward(rv, *rv.owner.inputs)))
        else:
            givens.append((value, rv))
    shape_fn = pytensor.function(inputs=[], outputs=[as_tensor(var.shape) for var in trace_vars.values()],
                                 givens=givens, mode="FAST_COMPILE", on_unused_input="ignore")
    return dict(zip(trace_vars, shape_fn()))


def start_function(shape_info, n_dim: int, starts: Mapping[str, np.ndarray]):
    """nutpie's initial-point function: ``starts`` (by value-variable name, zero elsewhere)
    plus uniform(-1, 1) jitter drawn from the chain's seed, as PyMC jitters its starts.

    Parameters
    ----------
    shape_info : (names, slices, shapes)
        nutpie's layout of the expanded draws; the first ``n_dim`` entries are the sampler's.
    n_dim : int
    starts : mapping of value-variable name -> array
        :func:`hierbayes.model.data.initial_values`.
    """
    x0, known = np.zeros(n_dim), set()
    for name, where, shape in zip(*shape_info):
        if where.stop > n_dim:
            break
        known.add(name)
        if name in starts:
            x0[where] = np.broadcast_to(starts[name], tuple(int(n) for n in shape)).ravel()
    if unknown := set(starts) - known:
        raise RuntimeError(f"hierbayes: initial values for variables the model does not sample: {sorted(unknown)}")
    x0.flags.writeable = False

    def initial_point(seed) -> np.ndarray:
        return x0 + np.random.default_rng(seed).uniform(-1.0, 1.0, n_dim)

    return initial_point


@cache
def _compiled_class():
    """nutpie's compiled PyMC model with the :class:`~hierbayes.backend.expansion.Expansion` of its draws."""
    from dataclasses import make_dataclass

    return make_dataclass("CompiledModel", [("expansion", Expansion | None, None)],
                          bases=(compat.compiled_model_class(),), frozen=True)


def compile_model(model, starts: Mapping[str, np.ndarray] | None = None, structure: Hashable | None = None):
    """Compile ``model`` for ``nutpie.sample`` as ``nutpie.compile_pymc_model(model)`` does.

    Parameters
    ----------
    model : pymc.Model
    starts : mapping, optional
        Initial values by value-variable name (:func:`start_function`); PyMC's
        jittered support point by default.
    structure : hashable, optional
        The model's structure key; with ``starts``, the compiled model is also kept on
        disk under it, so that :func:`load_model` can rebuild it in a later process
        without the PyMC model.

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        Supports ``with_data`` like nutpie's own.
    """
    if starts is None:
        initial_point_fn = _with_lock(compat.make_initial_point_fn(
            model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs), return_transformed=True))
    else:  # nutpie only wraps this function; ours replaces the wrapper below, so PyMC's is never built
        initial_point_fn = _not_built
    with lean_rewrites(in_python=False):  # the rewrites without stack traces: ~0.5 s CPU
        # var_names=[]: nutpie stores the unconstrained point; hierbayes.backend.expansion computes the rest;
        # with starts, the shapes are read at them (nutpie would build PyMC's initial point function for them)
        (n_dim, n_expanded, logp_fn_pt, expand_fn_pt, initial_point_fn, shape_info,
         reparameterized_names) = compat.make_functions(
            model, initial_point_fn=initial_point_fn, var_names=[],
            shapes=None if starts is None else partial(shapes_at, point=starts))
    if starts is not None:
        initial_point_fn = start_function(shape_info, n_dim, starts)
    logp_fn = compat.jitted(logp_fn_pt)

    shared_data, shared_var_keys, layout = {}, {}, []
    for var in logp_fn_pt.get_shared():
        key = f"shared_{len(shared_data)}"
        shared_data[key] = np.array(var.get_value(), order="C", copy=True)
        shared_data[key].flags.writeable = False
        shared_var_keys[var] = key
        layout.append((var.name, shared_data[key].ndim, str(shared_data[key].dtype)))
    user_data = compat.make_user_data(shared_var_keys, shared_data)
    # the callbacks see the data only through user_data's pointers; compile them against
    # placeholders of the same rank and dtype so that no data are frozen into their code
    placeholders = {}
    for key, value in shared_data.items():
        placeholders[key] = np.zeros((1,) * value.ndim, dtype=value.dtype)
        placeholders[key].flags.writeable = False

    logp_keys = [shared_var_keys[v] for v in logp_fn_pt.get_shared()]
    logp_raw, logp_sig = logp_callback(n_dim, logp_fn, user_data, logp_keys, placeholders)
    logp_key = _key("logp", logp_fn, (n_dim,), layout)
    logp_numba = _cfunc(logp_raw, logp_sig, logp_key)
    expand_raw, expand_sig = copy_callback()
    expand_key = _copy_key()
    expand_numba = _cfunc(expand_raw, expand_sig, expand_key)
    shapes = {name: tuple(int(n) for n in shape) for name, _, shape in zip(*shape_info)}
    expansion = expansion_of(model, shapes)

    dims, coords = compat.prepare_dims_and_coords(model, shape_info, reparameterized_names)
    compiled = compat.new_compiled_model(
        _compiled_class(), n_dim=n_dim, dims=dims, coords=coords, shapes=shapes,
        compiled_logp_func=logp_numba, compiled_expand_func=expand_numba, initial_point_func=initial_point_fn,
        shared_data=shared_data, shared_var_keys=shared_var_keys, user_data=user_data, n_expanded=n_expanded,
        shape_info=shape_info, logp_func=logp_fn_pt, expand_func=expand_fn_pt,
        reparameterized_names=[], expansion=expansion,  # the transformed draws stay for the expansion
    )
    if structure is not None and starts is not None and logp_key and expand_key:
        _save_entry(structure, {
            "n_dim": int(n_dim), "n_expanded": int(n_expanded), "dims": dims,
            "shape_info": ([str(n) for n in shape_info[0]], [slice(int(w.start), int(w.stop)) for w in shape_info[1]],
                           [np.asarray(x, dtype=np.int64) for x in shape_info[2]]),
            "expansion": expansion,
            "unconstrained": list(coords[compat.unconstrained_parameter()]),
            "layout": [(key, *slot) for key, slot in zip(shared_data, layout)],
            "callbacks": {"logp": (logp_sig, logp_key), "expand": (expand_sig, expand_key)},
        })
    return compiled


# --- the whole compiled model on disk -----------------------------------------------------------------

_ENTRY_FORMAT = 3
_ENTRY_KEYS = {"n_dim", "n_expanded", "dims", "shape_info", "expansion", "unconstrained", "layout", "callbacks"}


@cache
def _source_stamp() -> str:
    """Hash of the stages that write and compile the PyMC model (every module of ``specification/``,
    ``model/`` and ``backend/``): a change there makes new entries."""
    package = Path(__file__).resolve().parent.parent
    files = sorted(f for stage in ("specification", "model", "backend") for f in (package / stage).glob("*.py"))
    text = b"".join(f.relative_to(package).as_posix().encode() + f.read_bytes() for f in files)
    return hashlib.sha256(text).hexdigest()


def _entry_name(structure: Hashable) -> str:
    """The file of a structure's compiled model: for this machine too, as its callbacks' machine code is."""
    text = repr((_ENTRY_FORMAT, structure, _versions(), sys.version_info[:2], _source_stamp(), compat.machine()))
    return f"{hashlib.sha256(text.encode()).hexdigest()}.pkl"


def _save_entry(structure: Hashable, entry: dict) -> None:
    disk_cache.write(disk_cache.MODELS, _entry_name(structure), pickle.dumps(entry))


@dataclass(frozen=True)
class SharedSlot:
    """Stands in for a PyMC shared variable in a model loaded from disk (nutpie reads its name and rank)."""

    name: str
    ndim: int


def load_model(structure: Hashable, coords: Mapping[str, list], data: Mapping[str, np.ndarray],
               starts: Mapping[str, np.ndarray]):
    """The compiled model of ``structure`` from disk, with ``data``, or None when it is not there.

    No PyMC model is built and nothing is compiled: the entry written by
    :func:`compile_model` holds the layout, and numba's cache holds the callbacks.

    Parameters
    ----------
    structure : hashable
        :func:`hierbayes.model.data.structure_key`.
    coords : mapping
        The model's coordinates (:func:`hierbayes.model.data.model_coords`).
    data : mapping
        Every shared value by name (:func:`hierbayes.model.data.pack_data`).
    starts : mapping
        :func:`hierbayes.model.data.initial_values`.
    """
    name = _entry_name(structure)
    raw = disk_cache.read(disk_cache.MODELS, name)
    if raw is None:
        return None
    try:
        return _rebuild(pickle.loads(raw), coords, data, starts)
    except Exception as error:  # noqa: BLE001 - an entry that is not what compile_model wrote
        disk_cache.discard(disk_cache.MODELS, name, f"it is not a compiled model of this version "
                                                    f"({type(error).__name__}: {error})")
        return None


def _rebuild(entry, coords: Mapping[str, list], data: Mapping[str, np.ndarray], starts: Mapping[str, np.ndarray]):
    """:func:`load_model` from the unpickled ``entry``; None when its callbacks are not on disk or its layout is not
    that of ``data``."""
    if not isinstance(entry, dict) or not _ENTRY_KEYS <= set(entry):
        raise ValueError(f"an entry without {sorted(_ENTRY_KEYS - set(entry if isinstance(entry, dict) else ()))}")
    callbacks = {kind: _load_cfunc(sig, key) for kind, (sig, key) in entry["callbacks"].items()}
    if None in callbacks.values():
        return None  # numba's files were removed or damaged: compile again
    shared_var_keys, shared_data = {}, {}
    for key, name, ndim, dtype in entry["layout"]:
        if name not in data:
            return None  # an entry of another layout under this key: compile again
        value = np.array(data[name], dtype=dtype, order="C", copy=True)
        if value.ndim != ndim:
            return None
        value.flags.writeable = False
        shared_var_keys[SharedSlot(name, ndim)] = key
        shared_data[key] = value
    shape_info = entry["shape_info"]
    return compat.new_compiled_model(
        _compiled_class(), n_dim=entry["n_dim"], dims=entry["dims"], coords=_coords_index(coords, entry["unconstrained"]),
        shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=callbacks["logp"], compiled_expand_func=callbacks["expand"],
        initial_point_func=start_function(shape_info, entry["n_dim"], starts),
        shared_data=shared_data, shared_var_keys=shared_var_keys,
        user_data=compat.make_user_data(shared_var_keys, shared_data), n_expanded=entry["n_expanded"],
        shape_info=shape_info, logp_func=None, expand_func=None,
        reparameterized_names=[], expansion=entry["expansion"],
    )


def detached(compiled):
    """``compiled`` holding nothing of the PyMC model it was compiled from.

    The C callbacks read the data only through ``user_data``; the PyTensor functions
    and the model's shared variables (which the model's user may change) are dropped,
    as in a model from :func:`load_model`. This is what the sampler keeps for a
    structure in memory.
    """
    import dataclasses

    slots = {SharedSlot(var.name, var.ndim): key for var, key in compiled.shared_var_keys.items()}
    return dataclasses.replace(compiled, logp_func=None, expand_func=None, shared_var_keys=slots)


def with_data(compiled, starts: Mapping[str, np.ndarray], coords: Mapping[str, list], **data):
    """``compiled.with_data(**data)``, with the new data's starts and coordinates (level names).

    nutpie's own ``with_data`` keeps the old initial-point function, which would start
    the chains from the old data's prior locations: a refit would then not give the draws
    of a fresh fit with the same seed.
    """
    updated = compiled.with_data(**data)
    return compat.with_coords(
        updated, _coords_index(coords, compiled.coords[compat.unconstrained_parameter()]),
        initial_point_func=start_function(compiled.shape_info, compiled.n_dim, starts))


def _coords_index(coords: Mapping[str, list], unconstrained) -> dict:
    """nutpie's coordinates: the model's, and the names of the sampler's unconstrained values."""
    import pandas as pd

    return {**{name: pd.Index(values) for name, values in coords.items()},
            compat.unconstrained_parameter(): pd.Index(unconstrained)}


def _not_built(seed):
    raise RuntimeError("hierbayes: PyMC's initial point function was not built (starts were given)")
