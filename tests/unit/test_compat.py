"""The compatibility layer (hierbayes.backend.compat): its probe names the private hook that is missing or
changed, a failure during a fit becomes the answer, and the fallback is told once per process."""

from __future__ import annotations

import warnings

import pytest

import hierbayes as hb
from hierbayes.backend import compat


@pytest.fixture(autouse=True)
def fresh_probe():
    compat.reset()
    yield
    compat.reset()


def test_the_installed_dependencies_have_every_hook():
    assert compat.fast_path_available() is None


@pytest.mark.parametrize("module, name", [
    ("numba.core.compiler", "CompileResult"),
    ("numba.core.serialize", "dumps"),
    ("numba.core.codegen", "CPUCodeLibrary"),
    ("nutpie.compile_pymc", "_make_functions"),
    ("nutpie.compile_pymc", "_UNCONSTRAINED_PARAMETER"),
    ("pytensor.link.numba.cache", "CACHED_SRC_FUNCTIONS"),
])
def test_a_missing_hook_is_named(monkeypatch, module, name):
    monkeypatch.delattr(f"{module}.{name}")
    compat.reset()
    assert compat.fast_path_available() == f"{module}.{name} is missing"


def test_a_changed_signature_or_new_version_is_a_reason(monkeypatch):
    import nutpie.compile_pymc

    monkeypatch.setattr(nutpie.compile_pymc, "make_user_data", lambda keys, data, dtype: None)
    reason = compat.fast_path_available()
    assert reason.startswith("nutpie.compile_pymc.make_user_data takes (keys, data, dtype)")
    monkeypatch.undo()

    compat.reset()
    monkeypatch.setitem(compat.TESTED_VERSIONS, "numba", "0.61")
    reason = compat.fast_path_available()
    assert reason.startswith("numba 0.68") and reason.endswith("is outside the tested 0.61.x")


def test_a_changed_numba_hook_is_a_reason(monkeypatch):
    from numba.core import codegen, compiler

    monkeypatch.setattr(compiler.CompileResult, "_rebuild", classmethod(lambda cls, target_context, libdata: None))
    assert compat.fast_path_available() == "numba.core.compiler.CompileResult._rebuild has another signature"
    monkeypatch.undo()

    compat.reset()
    monkeypatch.setattr(codegen.CPUCodeLibrary, "finalize", lambda self: None)  # no longer optimizes, links, ...
    assert compat.fast_path_available() == ("numba.core.codegen.CPUCodeLibrary.finalize no longer optimizes "
                                            "_final_module by _optimize_final_module")


def test_a_failure_during_a_fit_is_the_answer_from_then_on():
    # a function of nutpie's (by its file) that raises, as a changed hook would
    namespace = {}
    exec(compile("def _make_functions(model):\n    raise ValueError('too many values to unpack')\n",
                 "/site-packages/nutpie/compile_pymc.py", "exec"), namespace)
    try:
        namespace["_make_functions"](None)
    except ValueError as error:
        reason = compat.record_failure(error)
    assert reason == "ValueError: too many values to unpack (in nutpie/compile_pymc.py:_make_functions)"
    assert compat.fast_path_available() == reason
    compat.record_failure(compat.HookError("later.hook"))
    assert compat.fast_path_available() == reason  # the first failure stays the reason


def test_the_fallback_is_told_once_per_process_as_a_backend_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compat.warn_fallback("numba.core.caching._CacheLocator is missing")
        compat.warn_fallback("another reason")
    assert len(caught) == 1 and caught[0].category is hb.BackendWarning
    message = str(caught[0].message)
    assert "\n" not in message and message.endswith("unavailable: numba.core.caching._CacheLocator is missing")
    assert caught[0].filename == __file__  # it points at the caller outside hierbayes


def test_quiet_blas_hides_only_pytensors_blas_warning_and_only_inside():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with compat.quiet_blas():
            warnings.warn("PyTensor could not link to a BLAS installation.", UserWarning)
            warnings.warn("something else", UserWarning)
        warnings.warn("PyTensor could not link to a BLAS installation.", UserWarning)
    assert [str(w.message)[:14] for w in caught] == ["something else", "PyTensor could"]
