"""Every private hook of nutpie, numba, PyTensor and PyMC that hierbayes uses, in one place.

The default sampler path (:mod:`hierbayes.backend.compiled_cache`, :mod:`hierbayes.backend.expansion`)
is fast because it reaches into its dependencies: nutpie's compile steps, numba's cache
classes and C callback internals, PyTensor's numba cache index and linker, PyMC's initial
point function. None of these is a public API, so any release may rename or change them.
This module holds each of them behind a small function, and nothing else in hierbayes
touches a private name of a dependency.

:func:`fast_path_available` checks once per process that the hooks are there and look as
they did when tested (attributes, signatures, the names the code reads, versions within
:data:`TESTED_VERSIONS`) and answers None or the reason. When the answer is a reason, or
a hook fails during a fit (:class:`HookError`, or any error of the fast path:
:func:`record_failure`), :mod:`hierbayes.backend.sampling` fits through nutpie's public API
instead and :func:`warn_fallback` says why, once per process.

The probe imports nothing that a fit of a structure compiled before does not import
already (numba, nutpie, PyTensor's numba cache): PyMC's hook is checked where it is used,
when a model is compiled.

Examples
--------
>>> fast_path_available() is None  # numba, nutpie, PyTensor and PyMC as tested
True
>>> sorted(TESTED_VERSIONS)
['numba', 'nutpie', 'pymc', 'pytensor']
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import traceback
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from pathlib import Path
from weakref import WeakKeyDictionary

from hierbayes.errors import BackendWarning

__all__ = ["TESTED_VERSIONS", "HookError", "fast_path_available", "record_failure", "warn_fallback", "reset",
           "quiet_blas", "make_functions", "prepare_dims_and_coords", "unconstrained_parameter", "make_user_data",
           "make_extraction_fn", "compiled_model_class", "new_compiled_model", "with_coords", "cached_cfunc",
           "load_cfunc", "numba_source_key", "jitted", "inline_ofg_node", "make_initial_point_fn"]

TESTED_VERSIONS: dict[str, str] = {"numba": "0.68", "nutpie": "0.16", "pytensor": "3.3", "pymc": "6.4"}
"""The release series (major.minor) of each dependency whose private hooks were tested."""

_BLAS_WARNING = "PyTensor could not link to a BLAS"


class HookError(RuntimeError):
    """A private hook of a dependency is missing or not as tested; ``hook`` names it."""

    def __init__(self, hook: str, problem: str = "is missing"):
        self.hook = hook
        super().__init__(f"{hook} {problem}")


# --- the answer -----------------------------------------------------------------------------------

_state = {"failure": None, "warned": False}  # the process's fast-path failure, and whether it was told
_state_lock = threading.Lock()


def fast_path_available() -> str | None:
    """None when the fast path's hooks are all there and as tested, else why not (one sentence).

    Checked once per process (:func:`reset` forgets it); a failure during a fit
    (:func:`record_failure`) is the answer from then on.

    Examples
    --------
    >>> reason = fast_path_available()
    >>> reason is None or isinstance(reason, str)
    True
    """
    return _state["failure"] or _probe()


def record_failure(error: BaseException) -> str:
    """Take ``error`` (raised by the fast path during a fit) as the reason not to use it again.

    Returns
    -------
    str
        The reason, naming the hook (or the dependency's function) that failed.
    """
    if isinstance(error, HookError):
        reason = str(error)
    else:
        where = _dependency_frame(error)
        reason = f"{type(error).__name__}: {error}" + (f" (in {where})" if where else "")
    with _state_lock:
        _state["failure"] = _state["failure"] or reason
    return reason


def warn_fallback(reason: str) -> None:
    """Warn, once per process, that fits go through nutpie's public API, and why."""
    with _state_lock:
        if _state["warned"]:
            return
        _state["warned"] = True
    package = str(Path(__file__).resolve().parent.parent)
    warnings.warn(f"hierbayes fits through nutpie's public API, which is slower (every new model structure "
                  f"compiles in full, nothing is kept on disk), because its fast path is unavailable: {reason}",
                  BackendWarning, skip_file_prefixes=(package,))


def reset() -> None:
    """Forget the probe's answer, a recorded failure and the warning (for tests)."""
    with _state_lock:
        _state.update(failure=None, warned=False)
    _probe.cache_clear()


@contextmanager
def quiet_blas():
    """Hide PyTensor's warning that it found no BLAS to link to, inside the block only.

    PyTensor warns once per process, when its C backend first looks for BLAS; hierbayes
    runs its models with numba (which brings its own BLAS) or compiles small helper
    functions, so the warning says nothing about a fit.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BLAS_WARNING)
        yield


def _dependency_frame(error: BaseException) -> str | None:
    """``package/module.py:function`` of the innermost frame of ``error`` in one of the four dependencies."""
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        parts = Path(frame.filename).parts
        for package in TESTED_VERSIONS:
            if package in parts:
                tail = parts[len(parts) - 1 - parts[::-1].index(package):]
                found = f"{'/'.join(tail)}:{frame.name}"
    return found


@cache
def _probe() -> str | None:
    for check in (_check_versions, _check_nutpie, _check_numba, _check_pytensor):
        try:
            reason = check()
        except Exception as error:  # noqa: BLE001 - a probe that fails is an answer
            reason = f"checking the hooks failed: {type(error).__name__}: {error}"
        if reason:
            return reason
    return None


def _check_versions() -> str | None:
    for package, series in TESTED_VERSIONS.items():
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            return f"{package} is not installed"
        if version.split(".")[:2] != series.split("."):
            return f"{package} {version} is outside the tested {series}.x"
    return None


def _parameters(func) -> list[str]:
    return list(inspect.signature(func).parameters)


def _names_read(func) -> set[str]:
    return set(inspect.unwrap(func).__code__.co_names)


def _expect(ok: bool, hook: str, problem: str) -> None:
    if not ok:
        raise HookError(hook, problem)


def _attr(obj, name: str, hook: str):
    try:
        return getattr(obj, name)
    except AttributeError:
        raise HookError(hook) from None


_NUTPIE_SIGNATURES = {
    "_make_functions": ["model", "mode", "compute_grad", "join_expanded", "pymc_initial_point_fn", "var_names"],
    "_compute_shapes": ["model"],
    "_prepare_dims_and_coords": ["model", "shape_info", "reparameterized_names"],
    "make_user_data": ["shared_var_keys", "shared_data"],
    "make_extraction_fn": ["inner", "shared_data", "shared_var_keys", "record_dtype"],
}
# the fields hierbayes gives nutpie's compiled model (new_compiled_model)
_COMPILED_FIELDS = {"dims", "reparameterized_names", "compiled_logp_func", "compiled_expand_func", "initial_point_func",
                    "shared_data", "shared_var_keys", "user_data", "n_expanded", "shape_info", "logp_func",
                    "expand_func", "_n_dim", "_shapes", "_coords"}


def _check_nutpie() -> str | None:
    try:
        from nutpie import compile_pymc as ncp
    except ImportError as error:
        return f"nutpie.compile_pymc cannot be imported ({error})"
    try:
        for name, expected in _NUTPIE_SIGNATURES.items():
            func = _attr(ncp, name, f"nutpie.compile_pymc.{name}")
            _expect(_parameters(func) == expected, f"nutpie.compile_pymc.{name}",
                    f"takes ({', '.join(_parameters(func))}), not ({', '.join(expected)})")
        _expect("_compute_shapes" in _names_read(ncp._make_functions), "nutpie.compile_pymc._compute_shapes",
                "is no longer what _make_functions calls for the shapes")
        _expect(isinstance(_attr(ncp, "_UNCONSTRAINED_PARAMETER", "nutpie.compile_pymc._UNCONSTRAINED_PARAMETER"),
                           str), "nutpie.compile_pymc._UNCONSTRAINED_PARAMETER", "is not a string")
        cls = _attr(ncp, "CompiledPyMCModel", "nutpie.compile_pymc.CompiledPyMCModel")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = {name for name, f in fields.items() if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        _expect(_COMPILED_FIELDS <= set(fields), "nutpie.compile_pymc.CompiledPyMCModel",
                f"lacks the fields {sorted(_COMPILED_FIELDS - set(fields))}")
        _expect(required <= _COMPILED_FIELDS, "nutpie.compile_pymc.CompiledPyMCModel",
                f"needs the new fields {sorted(required - _COMPILED_FIELDS)}")
    except HookError as error:
        return str(error)
    return None


def _check_numba() -> str | None:
    try:
        import numba
        from numba.core import caching, ccallback, sigutils
    except ImportError as error:
        return f"numba's cache classes cannot be imported ({error})"
    if numba.config.CACHE_LOCATOR_CLASSES:
        return "NUMBA_CACHE_LOCATOR_CLASSES is set, so numba would not use hierbayes' cache locator"
    try:
        locator = _attr(caching, "_CacheLocator", "numba.core.caching._CacheLocator")
        ours = {"ensure_cache_path", "get_cache_path", "get_source_stamp", "get_disambiguator", "from_function"}
        _expect(set(getattr(locator, "__abstractmethods__", ())) <= ours, "numba.core.caching._CacheLocator",
                "has new abstract methods")
        _expect(_parameters(locator.from_function) == ["py_func", "py_file"],
                "numba.core.caching._CacheLocator.from_function", "has another signature")
        impl = _attr(caching, "CompileResultCacheImpl", "numba.core.caching.CompileResultCacheImpl")
        _expect(isinstance(getattr(impl, "_locator_classes", None), list),
                "numba.core.caching.CompileResultCacheImpl._locator_classes", "is missing")
        _expect({"_locator_classes", "_locator"} <= _names_read(impl.__init__),
                "numba.core.caching.CacheImpl.__init__", "no longer reads _locator_classes")
        _expect(_parameters(impl.get_filename_base) == ["self", "fullname", "abiflags"],
                "numba.core.caching.CompileResultCacheImpl.get_filename_base", "has another signature")
        cache_cls = _attr(caching, "FunctionCache", "numba.core.caching.FunctionCache")
        _expect(_parameters(_attr(cache_cls, "_index_key", "numba.core.caching.FunctionCache._index_key"))
                == ["self", "sig", "codegen"], "numba.core.caching.FunctionCache._index_key", "has another signature")
        _expect("_impl_class" in _names_read(cache_cls.__init__) and "_py_func" in _names_read(cache_cls.__init__),
                "numba.core.caching.Cache.__init__", "no longer reads _impl_class")
        _expect(_parameters(cache_cls.load_overload) == ["self", "sig", "target_context"],
                "numba.core.caching.Cache.load_overload", "has another signature")
        cfunc = _attr(ccallback, "CFunc", "numba.core.ccallback.CFunc")
        _expect(_parameters(cfunc.__init__)[:5] == ["self", "pyfunc", "sig", "locals", "options"],
                "numba.core.ccallback.CFunc", "takes other arguments")
        set_by_load = {"_cache", "_sig", "_targetdescr", "_cache_hits", "_library", "_wrapper_name", "_wrapper_address"}
        _expect(set_by_load <= _names_read(cfunc.compile), "numba.core.ccallback.CFunc.compile",
                f"no longer sets {sorted(set_by_load - _names_read(cfunc.compile))}")
        _expect("_wrapper_address" in _names_read(cfunc.address.fget), "numba.core.ccallback.CFunc.address",
                "no longer reads _wrapper_address")
        probe = cfunc(_probe_function, sigutils.normalize_signature("int64()"), locals={}, options={})
        for name in ("_cache", "_cache_hits", "_sig", "_targetdescr"):
            _attr(probe, name, f"numba.core.ccallback.CFunc.{name}")
    except HookError as error:
        return str(error)
    return None


def _probe_function():
    return 0


def _check_pytensor() -> str | None:
    try:
        from pytensor.compile import rewriting
        from pytensor.link import basic
        from pytensor.link.numba import cache as numba_cache
    except ImportError as error:
        return f"PyTensor's numba cache cannot be imported ({error})"
    try:
        index = _attr(numba_cache, "CACHED_SRC_FUNCTIONS", "pytensor.link.numba.cache.CACHED_SRC_FUNCTIONS")
        _expect(isinstance(index, Mapping | WeakKeyDictionary), "pytensor.link.numba.cache.CACHED_SRC_FUNCTIONS",
                "is not a mapping")
        _expect(_parameters(_attr(rewriting, "inline_ofg_node", "pytensor.compile.rewriting.inline_ofg_node"))
                == ["node"], "pytensor.compile.rewriting.inline_ofg_node", "has another signature")
        _expect("jit_fn" in _names_read(_attr(basic, "JITLinker", "pytensor.link.basic.JITLinker").make_all),
                "pytensor.link.basic.JITLinker.make_all", "no longer sets the thunk's jit_fn")
    except HookError as error:
        return str(error)
    return None


# --- nutpie --------------------------------------------------------------------------------------

_PATCH_LOCK = threading.Lock()  # held while nutpie's shape function is swapped


def _nutpie(name: str):
    from nutpie import compile_pymc as ncp

    return _attr(ncp, name, f"nutpie.compile_pymc.{name}")


def make_functions(model, *, initial_point_fn: Callable, shapes: Callable | None = None, var_names=None) -> tuple:
    """nutpie's compile of ``model`` (``_make_functions``, numba mode, with the gradient).

    Parameters
    ----------
    model : pymc.Model
    initial_point_fn : callable
        PyMC's initial point function (nutpie wraps it).
    shapes : callable, optional
        ``model -> {name: shape}``, in place of nutpie's ``_compute_shapes`` for this call
        (nutpie's module function is swapped under a lock and put back).
    var_names : list of str, optional
        The variables nutpie's expand function computes (None: all).

    Returns
    -------
    tuple
        ``(n_dim, n_expanded, logp_fn, expand_fn, initial_point_fn, shape_info, reparameterized_names)``.
    """
    from nutpie import compile_pymc as ncp

    make = _nutpie("_make_functions")
    with _PATCH_LOCK:
        nutpie_shapes = _nutpie("_compute_shapes")
        if shapes is not None:
            ncp._compute_shapes = shapes
        try:
            out = make(model, mode="NUMBA", compute_grad=True, join_expanded=True,
                       pymc_initial_point_fn=initial_point_fn, var_names=var_names)
        finally:
            ncp._compute_shapes = nutpie_shapes
    _expect(isinstance(out, tuple) and len(out) == 7, "nutpie.compile_pymc._make_functions",
            "no longer returns its 7 values")
    return out


def prepare_dims_and_coords(model, shape_info, reparameterized_names) -> tuple[dict, dict]:
    """nutpie's dims and coordinates of a compiled model (``_prepare_dims_and_coords``)."""
    return _nutpie("_prepare_dims_and_coords")(model, shape_info, reparameterized_names)


def unconstrained_parameter() -> str:
    """The name of nutpie's coordinate of the sampler's unconstrained values."""
    return _nutpie("_UNCONSTRAINED_PARAMETER")


def make_user_data(shared_var_keys, shared_data):
    """nutpie's record of pointers to the shared data that its C callbacks read."""
    return _nutpie("make_user_data")(shared_var_keys, shared_data)


def make_extraction_fn(inner, shared_data, shared_var_keys, record_dtype):
    """nutpie's numba function that calls ``inner`` with the shared data read from the record."""
    return _nutpie("make_extraction_fn")(inner, shared_data, shared_var_keys, record_dtype)


def compiled_model_class() -> type:
    """nutpie's ``CompiledPyMCModel``."""
    return _nutpie("CompiledPyMCModel")


def new_compiled_model(cls: type, *, n_dim: int, coords: dict, shapes: dict, **fields):
    """An instance of ``cls`` (a subclass of ``CompiledPyMCModel``), whose dimension,
    coordinates and shapes are private fields."""
    return cls(_n_dim=n_dim, _coords=coords, _shapes=shapes, **fields)


def with_coords(compiled, coords: dict, **changes):
    """``compiled`` with other coordinates (a private field) and ``changes`` to public fields."""
    return dataclasses.replace(compiled, _coords=coords, **changes)


# --- numba ---------------------------------------------------------------------------------------

_KEYS: WeakKeyDictionary = WeakKeyDictionary()  # Python function of a callback -> (cache key, directory)


@cache
def _cache_class():
    """numba cache classes that file a function under its entry in ``_KEYS`` (built on first use)."""
    import sys

    from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator

    class StructureLocator(_CacheLocator):
        def __init__(self, key: str, directory: Path):
            self._key = key
            self._path = directory

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
            entry = _KEYS.get(py_func)
            return None if entry is None else cls(*entry)

    class StructureCacheImpl(CompileResultCacheImpl):
        _locator_classes = [StructureLocator]

        def get_filename_base(self, fullname, abiflags):
            # named by the key alone, so that a later process can load it without the function
            major, minor = sys.version_info[:2]
            return f"callback-{self._locator.get_disambiguator()}.py{major}{minor}{abiflags}"

    class StructureCache(FunctionCache):
        _impl_class = StructureCacheImpl

        def _index_key(self, sig, codegen):
            return (sig, codegen.magic_tuple(), _KEYS[self._py_func][0])

    return StructureCache


def cached_cfunc(py_func, signature, key: str | None, directory: Path):
    """``numba.cfunc(signature)(py_func)``, loaded from / saved to ``directory`` under ``key``
    (not cached when ``key`` is None)."""
    from numba.core import sigutils
    from numba.core.ccallback import CFunc

    compiled = CFunc(py_func, sigutils.normalize_signature(signature), locals={}, options={})
    if key is not None:
        _KEYS[py_func] = (key, directory)
        compiled._cache = _cache_class()(py_func)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=Warning)
        compiled.compile()
    return compiled


def load_cfunc(signature, key: str, directory: Path):
    """The C callback saved under ``key`` in ``directory``, or None when it is not there (never compiles)."""
    from numba.core import sigutils
    from numba.core.ccallback import CFunc

    def not_loaded(*args):  # stands in for the Python function, which a loaded callback never runs
        raise RuntimeError("hierbayes: a cached C callback was called without being loaded")

    compiled = CFunc(not_loaded, sigutils.normalize_signature(signature), locals={}, options={})
    _KEYS[not_loaded] = (key, directory)
    compiled._cache = _cache_class()(not_loaded)
    cres = compiled._cache.load_overload(compiled._sig, compiled._targetdescr.target_context)
    if cres is None:
        return None
    compiled._cache_hits += 1
    compiled._library = cres.library
    compiled._wrapper_name = cres.fndesc.llvm_cfunc_wrapper_name
    compiled._wrapper_address = cres.library.get_pointer_to_function(compiled._wrapper_name)
    return compiled


# --- PyTensor and PyMC ---------------------------------------------------------------------------

def numba_source_key(inner) -> str | None:
    """PyTensor's cache key of the numba function ``inner`` it generated (None when it has none)."""
    from pytensor.link.numba import cache as numba_cache

    index = _attr(numba_cache, "CACHED_SRC_FUNCTIONS", "pytensor.link.numba.cache.CACHED_SRC_FUNCTIONS")
    return index.get(getattr(inner, "py_func", None))


def jitted(function):
    """The numba function inside a PyTensor function compiled in numba mode."""
    return _attr(_attr(function, "vm", "pytensor.compile.function.types.Function.vm"), "jit_fn",
                 "pytensor.link.basic.JITLinker thunk's jit_fn")


def inline_ofg_node(node) -> list:
    """The outputs of an ``OpFromGraph`` node written with its inner graph."""
    from pytensor.compile import rewriting

    return _attr(rewriting, "inline_ofg_node", "pytensor.compile.rewriting.inline_ofg_node")(node)


def make_initial_point_fn(**kwargs) -> Callable:
    """PyMC's initial point function of a model (``pymc.initial_point.make_initial_point_fn``)."""
    from pymc import initial_point

    make = _attr(initial_point, "make_initial_point_fn", "pymc.initial_point.make_initial_point_fn")
    _expect(set(kwargs) <= set(_parameters(make)), "pymc.initial_point.make_initial_point_fn",
            f"takes ({', '.join(_parameters(make))})")
    return make(**kwargs)
