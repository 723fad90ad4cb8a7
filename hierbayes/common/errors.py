"""Exceptions and warnings raised by hierbayes.

Every error a user can cause is a :class:`HierbayesError` whose message names the
column, term or value at fault, so that the mistake costs a second, not a compile.
"""

from __future__ import annotations

__all__ = [
    "HierbayesError",
    "FormulaError",
    "DataError",
    "PriorError",
    "ConvergenceWarning",
    "DataWarning",
    "BackendWarning",
    "SamplingInterrupted",
    "InitialPointError",
]


def did_you_mean(name: str, candidates) -> str | None:
    """The candidate closest to ``name`` (case-insensitive), or None when nothing is close.

    >>> did_you_mean("day", ["Days", "Subject"])
    'Days'
    """
    import difflib

    lowered = {str(c).lower(): str(c) for c in candidates}
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


class HierbayesError(ValueError):
    """Base class of every error caused by the user's formula, data or options."""


class FormulaError(HierbayesError):
    """The formula text cannot be parsed; the message shows where.

    Parameters
    ----------
    message : str
        What is wrong.
    formula : str, optional
        The formula text, shown with a caret under ``position``.
    position : int, optional
        0-based character offset of the fault in ``formula``.
    """

    def __init__(self, message: str, formula: str | None = None, position: int | None = None):
        self.formula = formula
        self.position = position
        if formula is not None and position is not None:
            message = f"{message}\n  {formula}\n  {' ' * position}^"
        super().__init__(message)


class DataError(HierbayesError):
    """The data do not fit the formula or the family (the message names the column)."""


class InitialPointError(HierbayesError):
    """The sampler could not start: the log density or its gradient is not finite at its initial point.

    Usually a response on a scale far from where the priors put it (responses spanning many orders
    of magnitude on a log link, a prior located far from the data); the message says what to do.
    """


class PriorError(HierbayesError):
    """A prior names no parameter of the model, or does not fit the parameter's support."""


class ConvergenceWarning(UserWarning):
    """The sampler's diagnostics say the posterior draws may not be trustworthy."""


class DataWarning(UserWarning):
    """Something in the data changes what is fitted (rows dropped, weak identification)."""


class BackendWarning(UserWarning):
    """The sampler's fast path is unavailable (a dependency changed); fits take a slower one.

    Shown once per process, with the reason (:func:`hierbayes.backend.compat.fast_path_available`);
    ``fit.idata.attrs["sampler_path"]`` tells which path a fit took. Also shown, once per folder and
    reason, when the compile cache on disk cannot be used (a folder another user could write, one that
    cannot be created or written) or held a damaged file (:mod:`hierbayes.backend.disk_cache`): fits
    then compile what the cache would have held.
    """


class SamplingInterrupted(KeyboardInterrupt):
    """Sampling was interrupted (Ctrl-C), or the sampler returned fewer draws than asked: no fit is made.

    A :class:`KeyboardInterrupt`, so that ``except KeyboardInterrupt`` and Jupyter's interrupt
    see it as one; the message says how far sampling got.
    """
