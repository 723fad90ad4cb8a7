"""Every private hook of nutpie, numba, PyTensor and PyMC that hierbayes uses, in one place.

The default sampler path (:mod:`hierbayes.backend.compiled_cache`, :mod:`hierbayes.backend.expansion`)
is fast because it reaches into its dependencies: nutpie's compile steps, numba's C callback
internals and the serialization of their machine code, PyTensor's numba cache index and linker,
PyMC's initial point function. None of these is a public API, so any release may rename or change them.
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
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from pathlib import Path
from weakref import WeakKeyDictionary

from hierbayes.common.errors import BackendWarning

__all__ = ["TESTED_VERSIONS", "package_version", "HookError", "fast_path_available", "record_failure", "warn_fallback", "reset",
           "quiet_blas", "make_functions", "prepare_dims_and_coords", "unconstrained_parameter", "make_user_data",
           "make_extraction_fn", "compiled_model_class", "new_compiled_model", "with_coords", "compile_cfunc",
           "load_cfunc", "machine", "numba_source_key", "jitted", "inline_ofg_node", "make_initial_point_fn"]

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


@cache
def package_version(package: str) -> str | None:
    """The installed version of ``package`` (None if it is not installed), looked up once per
    process: an imported package's own ``__version__``, else ``importlib.metadata``, which scans
    every folder on the path at each call (~20 ms; the fast path's first fit asks for six).

    >>> package_version("numpy") == __import__("numpy").__version__
    True
    """
    module = sys.modules.get(package)
    if isinstance(version := getattr(module, "__version__", None), str):
        return version
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _check_versions() -> str | None:
    for package, series in TESTED_VERSIONS.items():
        version = package_version(package)
        if version is None:
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
        from llvmlite import binding
        from numba.core import ccallback, codegen, compiler, compiler_lock, serialize, sigutils
    except ImportError as error:
        return f"numba's compiler cannot be imported ({error})"
    try:
        _expect({"linkonce_odr", "internal"} <= set(binding.Linkage.__members__), "llvmlite.binding.Linkage",
                "has no linkonce_odr or internal")
        _attr(serialize, "dumps", "numba.core.serialize.dumps")
        _attr(compiler_lock, "global_compiler_lock", "numba.core.compiler_lock.global_compiler_lock")
        result = _attr(compiler, "CompileResult", "numba.core.compiler.CompileResult")
        _attr(result, "_reduce", "numba.core.compiler.CompileResult._reduce")
        _expect(_parameters(_attr(result, "_rebuild", "numba.core.compiler.CompileResult._rebuild"))
                == ["target_context", "libdata", "fndesc", "env", "signature", "objectmode", "lifted", "typeann",
                    "reload_init", "referenced_envs"],
                "numba.core.compiler.CompileResult._rebuild", "has another signature")
        library = _attr(codegen, "CPUCodeLibrary", "numba.core.codegen.CPUCodeLibrary")
        _expect({"_optimize_final_module", "_final_module"} <= _names_read(library.finalize),
                "numba.core.codegen.CPUCodeLibrary.finalize", "no longer optimizes _final_module by "
                "_optimize_final_module")
        _expect(isinstance(getattr(library, "has_dynamic_globals", None), property),
                "numba.core.codegen.CPUCodeLibrary.has_dynamic_globals", "is missing")
        _attr(_attr(codegen, "JITCPUCodegen", "numba.core.codegen.JITCPUCodegen"), "magic_tuple",
              "numba.core.codegen.JITCPUCodegen.magic_tuple")
        cfunc = _attr(ccallback, "CFunc", "numba.core.ccallback.CFunc")
        _expect(_parameters(cfunc.__init__)[:5] == ["self", "pyfunc", "sig", "locals", "options"],
                "numba.core.ccallback.CFunc", "takes other arguments")
        _attr(cfunc, "_compile_uncached", "numba.core.ccallback.CFunc._compile_uncached")
        set_by_load = {"_cache_hits", "_library", "_wrapper_name", "_wrapper_address"}
        _expect(set_by_load <= _names_read(cfunc.compile), "numba.core.ccallback.CFunc.compile",
                f"no longer sets {sorted(set_by_load - _names_read(cfunc.compile))}")
        _expect("_wrapper_address" in _names_read(cfunc.address.fget), "numba.core.ccallback.CFunc.address",
                "no longer reads _wrapper_address")
        probe = cfunc(_probe_function, sigutils.normalize_signature("int64()"), locals={}, options={})
        for name in ("_cache_hits", "_sig", "_targetdescr"):
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

def _cfunc(py_func, signature):
    from numba.core import sigutils
    from numba.core.ccallback import CFunc

    return CFunc(py_func, sigutils.normalize_signature(signature), locals={}, options={})


def _attach(compiled, result) -> None:
    """Make ``compiled`` (a ``CFunc``) the C callback of the compile result ``result``, as ``CFunc.compile`` does."""
    compiled._library = result.library
    compiled._wrapper_name = result.fndesc.llvm_cfunc_wrapper_name
    compiled._wrapper_address = result.library.get_pointer_to_function(compiled._wrapper_name)


def _private_copies(library) -> None:
    """Make the copies of the functions a C callback calls private to its machine code.

    numba links into a library every function it calls, and gives those copies weak symbols
    (``linkonce_odr``): when a process already holds a function of the same name, a call goes
    there instead. A structure's first compile holds them: PyTensor compiles each node of the log
    density on its own before it links them, and numba optimizes the linked copies again, so
    their last bits differ. The callback of the process that compiled would then compute
    otherwise than the same callback loaded by any later process (which holds nothing else):
    other draws for the same seed. Made private after numba's optimization, the copies are the
    code numba made, and they are what runs wherever the callback is.
    """
    from llvmlite import binding

    optimize = library._optimize_final_module

    def optimize_then_make_private():
        optimize()
        for function in library._final_module.functions:
            if not function.is_declaration and function.linkage == binding.Linkage.linkonce_odr:
                function.linkage = binding.Linkage.internal

    library._optimize_final_module = optimize_then_make_private


def compile_cfunc(py_func, signature) -> tuple:
    """``numba.cfunc(signature)(py_func)``, compiled here, and its machine code for the disk cache.

    The functions the callback calls are compiled into it, private to it (:func:`_private_copies`),
    so it computes the same numbers here as when :func:`load_cfunc` loads it in another process.

    Returns
    -------
    (CFunc, bytes or None)
        The callback, and what :func:`load_cfunc` rebuilds it from (None when numba cannot
        serialize it: it holds pointers of this process).
    """
    from numba.core import serialize
    from numba.core.compiler_lock import global_compiler_lock

    compiled = _cfunc(py_func, signature)
    with global_compiler_lock:
        result = compiled._compile_uncached()
        _private_copies(result.library)
        portable = not result.library.has_dynamic_globals and not result.lifted  # finalizes the library
        payload = serialize.dumps(result._reduce()) if portable else None
        _attach(compiled, result)
    return compiled, payload


def load_cfunc(signature, payload: bytes):
    """The C callback that :func:`compile_cfunc` serialized as ``payload`` (nothing is compiled).

    Raises
    ------
    Exception
        Whatever numba raises for a payload it cannot rebuild, or ValueError for one of
        another signature: the caller discards it and compiles.
    """
    import pickle

    from numba.core import compiler
    from numba.core.compiler_lock import global_compiler_lock

    def not_loaded(*args):  # stands in for the Python function, which a loaded callback never runs
        raise RuntimeError("hierbayes: a cached C callback was called without being loaded")

    compiled = _cfunc(not_loaded, signature)
    with global_compiler_lock:
        context = compiled._targetdescr.target_context
        context.refresh()
        state = pickle.loads(payload)
        if not isinstance(state, tuple) or len(state) != len(_parameters(compiler.CompileResult._rebuild)) - 1:
            raise ValueError("not a compiled C callback")
        result = compiler.CompileResult._rebuild(context, *state)
        if result.signature != compiled._sig:
            raise ValueError(f"a C callback of signature {result.signature}, not {compiled._sig}")
        _attach(compiled, result)
        compiled._cache_hits += 1
    return compiled


def machine() -> tuple:
    """What numba's machine code depends on besides versions: target triple, CPU name and features."""
    from numba.core import registry

    return tuple(registry.cpu_target.target_context.codegen().magic_tuple())


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
