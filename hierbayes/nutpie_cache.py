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
with two changes: the C callbacks are cached under a key built from what their code
depends on (PyTensor's key of the inner function, the layout of the shared data, the
versions of numba, llvmlite, nutpie and PyTensor), and they are compiled against
one-element placeholders of the data (same rank and dtype; the real data reach the
callbacks through nutpie's pointers at run time). Models of one structure (equal
:func:`hierbayes.build.structure_key`) produce equal keys; so a new process loads
the callbacks instead of compiling them.

The cache lives in ``$HIERBAYES_CACHE_DIR`` (default ``~/.cache/hierbayes``); deleting
the directory is always safe.

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
import os
import sys
import threading
import warnings
from functools import wraps
from importlib import metadata
from pathlib import Path
from weakref import WeakKeyDictionary

import numpy as np

__all__ = ["compile_model", "with_data", "cache_dir"]

_KEYS: WeakKeyDictionary = WeakKeyDictionary()  # wrapper function -> its cache key
_VERSIONS = tuple((p, metadata.version(p)) for p in ("numba", "llvmlite", "nutpie", "pytensor", "pymc", "numpy"))


def cache_dir() -> Path:
    """Where compiled C callbacks are kept: ``$HIERBAYES_CACHE_DIR`` or ``~/.cache/hierbayes``."""
    root = os.environ.get("HIERBAYES_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hierbayes"


def _caching_classes():
    """numba cache classes that file a function under its entry in ``_KEYS`` (built on first use)."""
    from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator

    class StructureLocator(_CacheLocator):
        def __init__(self, key: str):
            self._key = key
            self._path = cache_dir() / "numba"

        def ensure_cache_path(self):
            self._path.mkdir(parents=True, exist_ok=True)

        def get_cache_path(self):
            return str(self._path)

        def get_source_stamp(self):
            return 0  # the key holds the versions

        def get_disambiguator(self):
            return self._key[:32]

        @classmethod
        def from_function(cls, py_func, py_file):
            key = _KEYS.get(py_func)
            return None if key is None else cls(key)

    class StructureCacheImpl(CompileResultCacheImpl):
        _locator_classes = [StructureLocator]

    class StructureCache(FunctionCache):
        _impl_class = StructureCacheImpl

        def _index_key(self, sig, codegen):
            return (sig, codegen.magic_tuple(), _KEYS[self._py_func])

    return StructureCache


_CACHE_CLASS = None


def _cfunc(py_func, signature, key: str | None):
    """``numba.cfunc(signature)(py_func)``, loaded from / saved to the cache when ``key`` is given."""
    global _CACHE_CLASS
    from numba.core import sigutils
    from numba.core.ccallback import CFunc

    compiled = CFunc(py_func, sigutils.normalize_signature(signature), locals={}, options={})
    if key is not None:
        _CACHE_CLASS = _CACHE_CLASS or _caching_classes()
        _KEYS[py_func] = key
        compiled._cache = _CACHE_CLASS(py_func)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=Warning)
        compiled.compile()
    return compiled


def _key(kind: str, inner, dims: tuple, shared: list[tuple[str, int, str]]) -> str | None:
    """Cache key of a C callback around PyTensor's numba function ``inner`` (None: not cacheable)."""
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    inner_key = CACHED_SRC_FUNCTIONS.get(getattr(inner, "py_func", None))
    if inner_key is None:
        return None
    text = repr((kind, inner_key, dims, shared, _VERSIONS, sys.version_info[:2]))
    return hashlib.sha256(text.encode()).hexdigest()


def _with_lock(func):
    lock = threading.Lock()

    @wraps(func)
    def locked(*args, **kwargs):
        with lock:
            return func(*args, **kwargs)

    return locked


def compile_model(model):
    """Compile ``model`` for ``nutpie.sample`` as ``nutpie.compile_pymc_model(model)`` does.

    Parameters
    ----------
    model : pymc.Model

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        Supports ``with_data`` like nutpie's own.
    """
    from nutpie import compile_pymc as ncp
    from pymc.initial_point import make_initial_point_fn

    initial_point_fn = _with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs), return_transformed=True))
    (n_dim, n_expanded, logp_fn_pt, expand_fn_pt, initial_point_fn, shape_info,
     reparameterized_names) = ncp._make_functions(model, mode="NUMBA", compute_grad=True, join_expanded=True,
                                                  pymc_initial_point_fn=initial_point_fn)
    logp_fn, expand_fn = logp_fn_pt.vm.jit_fn, expand_fn_pt.vm.jit_fn

    shared_data, shared_var_keys, layout = {}, {}, []
    for var in dict.fromkeys([*logp_fn_pt.get_shared(), *expand_fn_pt.get_shared()]):
        key = f"shared_{len(shared_data)}"
        shared_data[key] = np.array(var.get_value(), order="C", copy=True)
        shared_data[key].flags.writeable = False
        shared_var_keys[var] = key
        layout.append((var.name, shared_data[key].ndim, str(shared_data[key].dtype)))
    user_data = ncp.make_user_data(shared_var_keys, shared_data)
    # the callbacks see the data only through user_data's pointers; compile them against
    # placeholders of the same rank and dtype so that no data are frozen into their code
    placeholders = {}
    for key, value in shared_data.items():
        placeholders[key] = np.zeros((1,) * value.ndim, dtype=value.dtype)
        placeholders[key].flags.writeable = False

    logp_keys = [shared_var_keys[v] for v in logp_fn_pt.get_shared()]
    logp_raw, logp_sig = ncp._make_c_logp_func(n_dim, logp_fn, user_data, logp_keys, placeholders)
    logp_numba = _cfunc(logp_raw, logp_sig, _key("logp", logp_fn, (n_dim,), layout))
    expand_keys = [shared_var_keys[v] for v in expand_fn_pt.get_shared()]
    expand_raw, expand_sig = ncp._make_c_expand_func(n_dim, n_expanded, expand_fn, user_data, expand_keys,
                                                     placeholders)
    expand_numba = _cfunc(expand_raw, expand_sig, _key("expand", expand_fn, (n_dim, n_expanded), layout))

    dims, coords = ncp._prepare_dims_and_coords(model, shape_info, reparameterized_names)
    return ncp.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp_numba, compiled_expand_func=expand_numba, initial_point_func=initial_point_fn,
        shared_data=shared_data, shared_var_keys=shared_var_keys, user_data=user_data, n_expanded=n_expanded,
        shape_info=shape_info, logp_func=logp_fn_pt, expand_func=expand_fn_pt,
        reparameterized_names=reparameterized_names,
    )


def with_data(compiled, **data):
    """``compiled.with_data(**data)`` whose initial points also come from the new data.

    nutpie's ``with_data`` swaps the data of the C callbacks but keeps the initial-point
    function, which reads the PyMC model's own ``pm.Data`` (prior locations and scales
    derive from the data): chains would start from the old data's initial point, and a
    refit would not give the draws of a fresh fit with the same seed. The new initial-point
    function sets the model's shared values to the new data while it runs and puts the
    old ones back, so the PyMC model itself is left as it was.
    """
    import dataclasses

    updated = compiled.with_data(**data)
    initial = compiled.initial_point_func
    lock = threading.Lock()

    def initial_point(seed):
        with lock:
            old = {var: var.get_value(borrow=True) for var in updated.shared_var_keys}
            try:
                for var, key in updated.shared_var_keys.items():
                    var.set_value(updated.shared_data[key], borrow=True)
                return initial(seed)
            finally:
                for var, value in old.items():
                    var.set_value(value, borrow=True)

    return dataclasses.replace(updated, initial_point_func=initial_point)
