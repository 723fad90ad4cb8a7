"""``pm.Model`` -> posterior draws: the fourth stage.

Three NUTS implementations: nutpie (compiled with numba; the default, see below),
PyMC's own, and numpyro's (JAX; ``sampler="numpyro"``, needs ``jax`` and ``numpyro``
installed, runs on a GPU when JAX sees one). A compiled nutpie model is kept per model *structure*
(:func:`hierbayes.model.data.structure_key`) for the life of the process, so a second fit
of the same structure with new data or new priors swaps the data into the compiled
model instead of compiling again.

Why nutpie by default: on sleepstudy ``(Days | Subject)``, 4 x (1000 + 1000), nutpie
samples in about 1 s after an 11-18 s compile, PyMC's NUTS takes about 140 s
(``bench/results.md``).

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = m.fit(draws=100, tune=100, chains=2, seed=1, progressbar=False, warn=False)
>>> dict(fit.posterior.sizes)["draw"]
100
"""

from __future__ import annotations

import contextlib
import numbers
import signal
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from hierbayes.backend import compat, disk_cache
from hierbayes.backend.compiled_cache import compile_model, detached, load_model, with_data
from hierbayes.backend.public import compile_public, refit
from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import HierbayesError, InitialPointError, SamplingInterrupted

pm = deferred_import("pymc")

__all__ = ["SAMPLERS", "PATHS", "SEED_LIMITS", "REFIT_TARGET_ACCEPT", "SamplerRun", "run_sampler", "clear_cache",
           "check_seed", "incomplete_draws", "count_divergences", "describe_attempts"]

SAMPLERS = ("auto", "nutpie", "pymc", "numpyro")
FAST_PATH, PUBLIC_PATH = "nutpie (compiled-model cache)", "nutpie (public API)"
PATHS = (FAST_PATH, PUBLIC_PATH, "pymc", "numpyro")
"""What :attr:`SamplerRun.path` says: how the draws were made."""
SEED_LIMITS = {"nutpie": 2**64, "numpyro": 2**63, "pymc": None}
"""The seeds each sampler takes: whole numbers from 0 up to this one excluded (None: no upper limit).
nutpie's seed is an unsigned 64-bit integer, JAX's (numpyro) a signed one."""
REFIT_TARGET_ACCEPT = (0.95, 0.99)
"""The target acceptance rates of the reruns after divergences (``adapt_divergences=True``), in turn;
only those above the one asked are used. brms users know it as ``control = list(adapt_delta = ...)``."""

# compiled nutpie models by (path, structure): each was compiled from a private copy of a PyMC
# model or holds none (compiled_cache.detached), so no user's model is kept or changed here
_COMPILED: dict[Hashable, object] = {}


@dataclass
class SamplerRun:
    """The raw result of one sampler run, with where its time went (seconds) and the path it took
    (one of :data:`PATHS`)."""

    tree: xr.DataTree
    sampler: str
    timings: dict[str, float] = field(default_factory=dict)
    path: str = ""
    attempts: list[tuple[float, int]] = field(default_factory=list)
    """``(target_accept, divergences)`` of every run, the last one's draws kept (one entry without reruns)."""


def clear_cache() -> None:
    """Forget every compiled model of this process."""
    _COMPILED.clear()


def resolve_sampler(sampler: str) -> str:
    if sampler not in SAMPLERS:
        raise HierbayesError(f"sampler must be one of {SAMPLERS}, not {sampler!r}")
    return "nutpie" if sampler == "auto" else sampler


def check_seed(seed, sampler: str) -> int:
    """``seed`` as the whole number ``sampler`` (resolved, not ``"auto"``) takes; a random one for None.

    Raises
    ------
    HierbayesError
        For a seed that is not a whole number or is outside the sampler's range (:data:`SEED_LIMITS`).

    Examples
    --------
    >>> check_seed(7, "nutpie")
    7
    >>> check_seed(-1, "nutpie")
    Traceback (most recent call last):
    ...
    hierbayes.common.errors.HierbayesError: seed must be a whole number from 0 to 2**64 - 1 for the nutpie sampler, not -1
    """
    if seed is None:
        return int(np.random.default_rng().integers(2**31))
    limit = SEED_LIMITS[sampler]
    whole = not isinstance(seed, bool) and (isinstance(seed, numbers.Integral)
                                            or (isinstance(seed, float) and seed.is_integer()))
    if not whole or seed < 0 or (limit is not None and seed >= limit):
        allowed = "0 or more" if limit is None else f"from 0 to 2**{limit.bit_length() - 1} - 1"
        shown = str(seed) if isinstance(seed, numbers.Real) else repr(seed)
        raise HierbayesError(f"seed must be a whole number {allowed} for the {sampler} sampler, not {shown}")
    return int(seed)


def count_divergences(tree: xr.DataTree) -> int:
    """Divergent transitions in a sampler run's ``sample_stats`` (0 when it records none)."""
    if "sample_stats" not in tree.children or "diverging" not in tree["sample_stats"].data_vars:
        return 0
    return int(tree["sample_stats"]["diverging"].sum())


def describe_attempts(attempts: list[tuple[float, int]]) -> str:
    """The reruns after divergences, in words ("" for a single run).

    Examples
    --------
    >>> describe_attempts([(0.8, 3), (0.95, 0)])
    '3 divergences at target_accept 0.8; refitted at 0.95: 0 divergences'
    >>> describe_attempts([(0.8, 12), (0.95, 1), (0.99, 1)])
    '12 divergences at target_accept 0.8; refitted at 0.95: 1 divergence; at 0.99: 1 divergence'
    """
    if len(attempts) < 2:
        return ""

    def count(n: int) -> str:
        return f"{n} divergence{'' if n == 1 else 's'}"

    (first, n0), (second, n1), *rest = attempts
    return "; ".join([f"{count(n0)} at target_accept {first:g}", f"refitted at {second:g}: {count(n1)}",
                      *(f"at {accept:g}: {count(n)}" for accept, n in rest)])


def _target_accepts(target_accept: float, adapt_divergences: bool) -> list[float]:
    """The target acceptance rates to try in turn: the one asked, then the higher refit ones."""
    return [target_accept] + ([t for t in REFIT_TARGET_ACCEPT if t > target_accept] if adapt_divergences else [])


def _refit_seed(seed: int, attempt: int, sampler: str) -> int:
    """The seed of rerun ``attempt`` (0: the first run): new draws, within the sampler's range."""
    limit = SEED_LIMITS[sampler]
    return seed + attempt if limit is None else (seed + attempt) % limit


def incomplete_draws(tree: xr.DataTree, draws: int, chains: int) -> str | None:
    """What the sampler's posterior lacks of ``chains`` x ``draws``, in words; None when it is whole.

    A sampler stopped early returns what it has: fewer chains or draws than asked (PyMC), or
    chains whose missing draws are padded with NaN in every variable (nutpie; a real draw is
    never NaN everywhere).

    Examples
    --------
    >>> x = np.ones((2, 5))
    >>> x[1, 3:] = np.nan
    >>> incomplete_draws(xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), x)})}), 5, 2)
    'only 3 of the 5 draws of chain 1 (the rest padded with NaN)'
    """
    posterior = tree["posterior"].to_dataset() if "posterior" in tree.children else xr.Dataset()
    got_chains, got_draws = posterior.sizes.get("chain", 0), posterior.sizes.get("draw", 0)
    if got_chains < chains or got_draws < draws or not posterior.data_vars:
        return f"{got_chains} chains of {got_draws} draws instead of {chains} of {draws}"
    padded = np.ones((got_chains, got_draws), dtype=bool)
    for var in posterior.data_vars.values():
        values = var.transpose("chain", "draw", ...).values.reshape(got_chains, got_draws, -1)
        if not np.issubdtype(values.dtype, np.floating):
            return None  # nutpie pads only floating-point draws
        padded &= np.isnan(values).all(axis=-1)
    if not padded.any():
        return None
    chain = int(np.flatnonzero(padded.any(axis=1))[0])
    kept = int((~padded[chain]).sum())
    return f"only {kept} of the {draws} draws of chain {chain} (the rest padded with NaN)"


class _Interrupt(BaseException):
    """Ctrl-C during sampling: not a KeyboardInterrupt, so that no sampler's loop catches it."""


@contextlib.contextmanager
def _interrupts_stop_sampling():
    """Ctrl-C (SIGINT) in the block stops it with :class:`SamplingInterrupted`, whatever the sampler.

    nutpie and PyMC catch the KeyboardInterrupt of Ctrl-C and return the draws made so far
    (PyMC then goes on to its next chain); during the block Ctrl-C raises an exception they do
    not catch instead. Signal handlers belong to the main thread; elsewhere, or when Ctrl-C is
    not Python's KeyboardInterrupt (ignored, or the system's default), nothing changes.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is not signal.default_int_handler:
        yield
        return

    def stop(signum, frame):
        raise _Interrupt

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    except _Interrupt:
        raise SamplingInterrupted("sampling was interrupted (Ctrl-C); no fit was made") from None
    finally:
        signal.signal(signal.SIGINT, previous)


def _nutpie_sample(compiled, **options) -> xr.DataTree:
    """``nutpie.sample`` with Ctrl-C passed on.

    nutpie's blocking call catches the KeyboardInterrupt and returns the draws so far, padded
    with NaN, as if sampling had finished; here the wait is ours, so an interrupt cancels the
    sampler and propagates. nutpie's failure to start from the initial point (a Rust panic, a
    ``BaseException`` nothing else catches, or a RuntimeError) becomes :class:`InitialPointError`.
    """
    import nutpie

    try:
        sampler = nutpie.sample(compiled, blocking=False, **options)
    except BaseException as error:
        raise _panic_as_error(error) from None
    try:
        return sampler.wait()
    except BaseException as error:
        with contextlib.suppress(BaseException):  # a panicked sampler may refuse to be cancelled too
            sampler.cancel()
        raise _panic_as_error(error) from None


def _panic_as_error(error: BaseException) -> BaseException:
    """nutpie's failure to start as :class:`InitialPointError`; any other exception (Ctrl-C) unchanged.

    nutpie raises a RuntimeError ("All initialization points failed") when the log density is not
    finite at the jittered initial point, and panics, in a worker thread, when it is finite but its
    gradient is not usable ("bad initial gradient: Invalid initial point"); the exception Python
    receives then only says that the sampler's state was poisoned.

    Examples
    --------
    >>> type(_panic_as_error(KeyboardInterrupt())).__name__
    'KeyboardInterrupt'
    """
    failed_start = isinstance(error, RuntimeError) and str(error).startswith("All initialization points failed")
    if type(error).__name__ != "PanicException" and not failed_start:
        return error
    return InitialPointError(
        "the sampler (nutpie) could not start: the log density or its gradient is not finite at its initial "
        "point (the priors' locations, the mean's intercept at the data's, jittered by +-1 on the sampler's "
        f"scale; nutpie: {str(error).splitlines()[0] if str(error) else 'panic'}). This happens when the priors "
        "put the response on a scale far from the data's, e.g. a stated slope or shape prior that makes exp(eta) "
        "or y ** shape overflow on a response spanning many orders of magnitude. Rescale the response (e.g. "
        "divide by a power of 10) or predictors, or center and tighten the stated priors of the slopes and of "
        "the family's parameters")


def run_sampler(build, data: Mapping[str, np.ndarray], key: Hashable, *, coords: Mapping[str, list],
                starts: Mapping[str, np.ndarray], sampler: str = "auto", draws: int = 1000, tune: int = 1000,
                chains: int = 4, cores: int | None = None, seed: int | None = None, target_accept: float = 0.8,
                progressbar: bool = True, adapt_divergences: bool = True) -> SamplerRun:
    """Sample the model that ``build()`` writes, reusing a compiled model for ``key``.

    With nutpie, a compiled model is looked for in this process, then on disk
    (:func:`hierbayes.backend.compiled_cache.load_model`: no PyMC model is built), and only then
    built and compiled. When the fast path's private hooks are unavailable
    (:func:`hierbayes.backend.compat.fast_path_available`) or fail, nutpie's public API is used
    instead (:mod:`hierbayes.backend.public`), with one warning per process. ``build()``'s model
    is never changed: PyMC's samplers run a copy of it.

    Parameters
    ----------
    build : callable
        ``() -> pm.Model``; called only when no model of this ``key`` is compiled.
    data : mapping
        Values of every ``pm.Data`` of the model, swapped into a cached model.
    key : hashable
        The model's structure.
    coords : mapping
        The model's coordinates (:func:`hierbayes.model.data.model_coords`).
    starts : mapping
        Initial values (:func:`hierbayes.model.data.initial_values`), jittered per chain.
    adapt_divergences : bool
        After a run with divergent transitions, run again at the higher target acceptance rates
        of :data:`REFIT_TARGET_ACCEPT` in turn (smaller steps), with new seeds, until one has
        none; the last run's draws are kept and :attr:`SamplerRun.attempts` records every run.
        nutpie reruns the same compiled model (nothing is compiled again).

    Raises
    ------
    HierbayesError
        For a bad option (draws, seed, ...), before anything is built or compiled.
    SamplingInterrupted
        When sampling is interrupted (Ctrl-C) or the sampler returns fewer draws than asked:
        no partial result is ever returned.
    """
    sampler = resolve_sampler(sampler)
    for name, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if int(value) != value or value < (1 if name != "tune" else 0):
            raise HierbayesError(f"{name} must be a positive whole number, not {value!r}")
    if not 0 < target_accept < 1:
        raise HierbayesError(f"target_accept must be between 0 and 1, not {target_accept!r}")
    seed = check_seed(seed, sampler)
    timings: dict[str, float] = {}
    if sampler == "nutpie":
        disk_cache.max_bytes()  # a bad HIERBAYES_CACHE_MAX_MB is said before anything is compiled
        compiled, finish, path = _nutpie_model(build, data, key, coords, starts, timings)
        t2 = time.perf_counter()

        def sample(accept: float, attempt: int) -> xr.DataTree:
            return _nutpie_sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores,
                                  seed=_refit_seed(seed, attempt, sampler), save_warmup=False,
                                  progress_bar=progressbar, target_accept=accept)

        tree, attempts = _until_no_divergences(sample, _target_accepts(target_accept, adapt_divergences), draws,
                                               chains)
        tree["posterior"] = finish.complete(tree["posterior"].to_dataset(), data)
        timings["sample"] = time.perf_counter() - t2
        return SamplerRun(tree, sampler, timings, path, attempts)
    t0 = time.perf_counter()
    # a copy of the user's model (its pm.Data copied too), so that set_data never changes theirs
    from pymc.model.fgraph import clone_model

    model = clone_model(build())
    pm.set_data(dict(data), model=model)
    timings["build"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    # numpyro (JAX) compiles the whole sampler with XLA each time: the path to a GPU
    def external() -> dict:  # a new dict per run: pm.sample writes target_accept into the one it is given
        return {"nuts": {"chain_method": "vectorized"}} if sampler == "numpyro" else {}

    if sampler == "numpyro":
        from hierbayes.model.marginal_likelihood import register_jax
        from hierbayes.specification.families.logit_rows import register_jax as register_logit_rows_jax

        register_jax()  # the collapsed log-likelihood's JAX implementation
        register_logit_rows_jax()  # and the logit rows' one

    def sample(accept: float, attempt: int) -> xr.DataTree:
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=_refit_seed(seed, attempt, sampler),
                         target_accept=accept, progressbar=progressbar, nuts_sampler=sampler,
                         model=model, compute_convergence_checks=False, **external())

    tree, attempts = _until_no_divergences(sample, _target_accepts(target_accept, adapt_divergences), draws, chains)
    timings["sample"] = time.perf_counter() - t1
    return SamplerRun(tree, sampler, timings, sampler, attempts)


def _until_no_divergences(sample: Callable[[float, int], xr.DataTree], accepts: list[float], draws: int,
                          chains: int) -> tuple[xr.DataTree, list[tuple[float, int]]]:
    """Run ``sample(target_accept, attempt)`` at each of ``accepts`` in turn until a run has no divergences.

    Returns the last run and ``(target_accept, divergences)`` of every run.
    """
    attempts: list[tuple[float, int]] = []
    for attempt, accept in enumerate(accepts):
        with compat.quiet_blas(), _interrupts_stop_sampling():
            tree = sample(accept, attempt)
        _check_whole(tree, draws, chains)
        attempts.append((accept, count_divergences(tree)))
        if attempts[-1][1] == 0:
            break
    return tree, attempts


def _check_whole(tree: xr.DataTree, draws: int, chains: int) -> None:
    """Raise :class:`SamplingInterrupted` unless the sampler returned every draw of every chain."""
    if (missing := incomplete_draws(tree, draws, chains)) is not None:
        raise SamplingInterrupted(f"sampling stopped early: the sampler returned {missing}; no fit was made")


class _BuildFailed(Exception):
    """``build()`` raised: the model's own error, not the fast path's."""


def _nutpie_model(build: Callable, data, key, coords, starts, timings: dict):
    """``(compiled model, its finisher of the draws, path)``: the fast path when it works."""
    def built():
        try:
            return build()
        except Exception as error:
            raise _BuildFailed from error

    reason = compat.fast_path_available()
    try:
        if reason is None:
            try:
                compiled = _fast_model(built, data, key, coords, starts, timings)
                return compiled, compiled.expansion, FAST_PATH
            except _BuildFailed:
                raise
            except Exception as error:  # a hook that is there but fails or behaves otherwise
                reason = compat.record_failure(error)
        compat.warn_fallback(reason)
        public = _public_model(built, data, key, starts, timings)
        return public.compiled, public, PUBLIC_PATH
    except _BuildFailed as failed:
        raise failed.__cause__ from None


def _fast_model(build, data, key, coords, starts, timings: dict):
    t0 = time.perf_counter()
    cache_key = (FAST_PATH, key)
    if cache_key in _COMPILED:
        cached = _COMPILED[cache_key]
        # PyTensor drops pm.Data the graph never reads (Z of an intercept-only block)
        known = {var.name for var in cached.shared_var_keys}
        compiled = with_data(cached, starts, coords, **{k: v for k, v in data.items() if k in known})
        timings["build"], timings["compile"] = 0.0, time.perf_counter() - t0
    elif (compiled := load_model(key, coords, data, starts)) is not None:
        _COMPILED[cache_key] = compiled  # from disk: no PyMC model built, nothing compiled
        timings["build"], timings["compile"] = 0.0, time.perf_counter() - t0
    else:
        model = build()
        t1 = time.perf_counter()
        # nutpie's compile, with the C callbacks and the model's layout kept on disk; kept in
        # memory without the PyTensor functions and shared variables of the user's model
        compiled = detached(compile_model(model, starts, structure=key))
        _COMPILED[cache_key] = compiled
        timings["build"], timings["compile"] = t1 - t0, time.perf_counter() - t1
    return compiled


def _public_model(build, data, key, starts, timings: dict):
    t0 = time.perf_counter()
    cache_key = (PUBLIC_PATH, key)
    if cache_key in _COMPILED:
        public = refit(_COMPILED[cache_key], data)
        timings["build"], timings["compile"] = 0.0, time.perf_counter() - t0
    else:
        model = build()
        t1 = time.perf_counter()
        public = _COMPILED[cache_key] = compile_public(model, starts)
        timings["build"], timings["compile"] = t1 - t0, time.perf_counter() - t1
    return public
