"""The log likelihood of logit-link binary and binomial rows, and its score, as one Op.

For ``y`` successes of ``n`` trials with logit ``eta`` each row gives

    log p = y eta - n log(1 + e^eta),    d log p / d eta = y - n / (1 + e^-eta).

Written as a PyTensor graph this costs an ``exp`` and a ``log1p`` a row, each a call into the
C library (numba has no vector math library here), and a second pass for the gradient: 0.44 ms
of the 0.55 ms gradient of the 20,000-row bernoulli benchmark (``bench/NOTES.md``). Here both
come from one loop that LLVM turns into SIMD code, because the two functions are polynomials:

- ``e = exp(-|eta|) = 2^-k exp(r)`` with ``k`` the nearest integer to ``|eta| / ln 2``: ``exp(r)``
  by its Taylor polynomial of degree 13 on ``|r| <= ln(2)/2``, ``2^-k`` written straight into the
  exponent bits of a double (within one unit in the last place of ``exp``); ``e = 0`` beyond
  ``|eta| = 708``.
- ``log(1 + e) = 2 atanh(z)`` with ``z = e / (2 + e) <= 1/3``: 16 odd terms of its series.
- ``log(1 + e^eta) = max(eta, 0) + log(1 + e)`` and ``1 / (1 + e^-eta)`` is ``1 / (1 + e)``
  or ``e / (1 + e)`` by the sign of ``eta``.

Each row's log density is within ``1e-15`` of the exact one in relative terms and its score in
absolute terms (``tests/unit/test_logit_rows.py``). The Op's other implementations (``perform`` for
PyTensor's Python and C modes, JAX for ``sampler="numpyro"``) use their libraries' own
functions. Batched inputs (draws x rows) go through PyTensor's ``Blockwise`` by
:attr:`LogitRows.gufunc_signature`.

Examples
--------
>>> import numpy as np, pytensor.tensor as pt
>>> y, n, eta = np.array([0.0, 2.0, 5.0]), np.array([1.0, 4.0, 5.0]), np.array([-2.0, 0.5, 40.0])
>>> logp, score = logit_rows(pt.as_tensor(y), pt.as_tensor(eta), pt.as_tensor(n))
>>> bool(np.allclose(logp.eval(), y * eta - n * np.logaddexp(0, eta), rtol=1e-14))
True
"""

from __future__ import annotations

import hashlib
import inspect
import math
from functools import cache

import numpy as np
import pytensor.tensor as pt
from llvmlite import ir
from numba import types
from numba.extending import intrinsic
from pytensor.gradient import DisconnectedType, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

__all__ = ["LogitRows", "logit_rows", "logit_rows_numpy"]

_INVERSE_FACTORIALS = tuple(1.0 / math.factorial(k) for k in range(14))
_ATANH_SERIES = tuple(1.0 / (2 * k + 1) for k in range(16))
_INV_LN2 = 1.4426950408889634
_LN2_HIGH, _LN2_LOW = 0.6931471803691238, 1.9082149292705877e-10  # ln 2 in two parts (Cody and Waite)
_ROUNDER = 6755399441055744.0  # 1.5 * 2^52: adding it rounds to an integer held in the low bits
_LARGEST = 708.0  # exp(-708) is the smallest normal double's order; beyond, e counts as 0


@intrinsic
def _float_bits(typingctx, x):
    """A double's 64 bits as an integer (LLVM's ``bitcast``: no instruction, so loops stay SIMD)."""
    return types.int64(types.float64), lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(64))


@intrinsic
def _bits_as_float(typingctx, bits):
    """64 bits as a double: the inverse of :func:`_float_bits`."""
    return types.float64(types.int64), lambda context, builder, sig, args: builder.bitcast(args[0], ir.DoubleType())


def _rows_kernel(y, n, eta, logp, score):  # pragma: no cover - compiled by numba (tests run it compiled)
    f, a = _INVERSE_FACTORIALS, _ATANH_SERIES
    many = n.shape[0] > 1  # n is one value (bernoulli: 1) or one per row
    for i in range(eta.shape[0]):
        x = eta[i]
        ax = min(abs(x), _LARGEST)
        # e = exp(-ax) = 2^-k exp(r), k = round(ax / ln 2), |r| <= ln(2) / 2
        m = -ax * _INV_LN2 + _ROUNDER
        k = m - _ROUNDER
        r = (-ax - k * _LN2_HIGH) - k * _LN2_LOW
        p = f[13]
        p = p * r + f[12]; p = p * r + f[11]; p = p * r + f[10]; p = p * r + f[9]; p = p * r + f[8]  # noqa: E702
        p = p * r + f[7]; p = p * r + f[6]; p = p * r + f[5]; p = p * r + f[4]  # noqa: E702
        p = p * r + f[3]; p = p * r + f[2]; p = p * r + f[1]; p = p * r + f[0]  # noqa: E702
        e = p * _bits_as_float((_float_bits(m) + 1023) << 52) if abs(x) <= _LARGEST else 0.0
        # log(1 + e) = 2 atanh(z), z = e / (2 + e) <= 1/3
        z = e / (2.0 + e)
        w = z * z
        q = a[15]
        q = q * w + a[14]; q = q * w + a[13]; q = q * w + a[12]; q = q * w + a[11]  # noqa: E702
        q = q * w + a[10]; q = q * w + a[9]; q = q * w + a[8]; q = q * w + a[7]  # noqa: E702
        q = q * w + a[6]; q = q * w + a[5]; q = q * w + a[4]; q = q * w + a[3]  # noqa: E702
        q = q * w + a[2]; q = q * w + a[1]; q = q * w + a[0]  # noqa: E702
        reciprocal = 1.0 / (1.0 + e)
        trials = n[i] if many else n[0]
        # y eta - n max(eta, 0) as one product: exactly 0 for y = n, eta > 0 (there log p = -n log(1 + e))
        logp[i] = (y[i] - (trials if x > 0.0 else 0.0)) * x - trials * (2.0 * z * q)
        score[i] = y[i] - trials * (reciprocal if x >= 0.0 else e * reciprocal)


def _source_version() -> int:
    """Changes with the kernel's source, so that PyTensor's numba cache never serves an old kernel."""
    return int(hashlib.sha256(inspect.getsource(_rows_kernel).encode()).hexdigest()[:12], 16)


def logit_rows_numpy(y, eta, n=1.0) -> tuple[np.ndarray, np.ndarray]:
    """Each row's log density and score in NumPy: ``perform``'s implementation and the tests' reference.

    The same formula as the kernel, with NumPy's ``exp`` and ``log1p``.

    >>> logp, score = logit_rows_numpy(np.array([1.0]), np.array([0.0]))
    >>> float(logp[0]), float(score[0])
    (-0.6931471805599453, 0.5)
    """
    y, eta, n = (np.asarray(v, dtype="float64") for v in (y, eta, n))
    e = np.exp(-np.abs(eta))
    logp = (y - np.where(eta > 0.0, n, 0.0)) * eta - n * np.log1p(e)
    score = y - n * np.where(eta >= 0.0, 1.0, e) / (1.0 + e)
    return logp, score


class LogitRows(Op):
    """``(y, n, eta) -> (log p, d log p / d eta)``, one value each per row.

    ``y`` and ``eta`` are vectors of one length; ``n`` is a vector of that length or of length 1
    (one number of trials for every row). The log density's gradient is the score output, so
    a log density and its gradient cost one pass over the rows.
    """

    __props__ = ()
    gufunc_signature = "(i),(j),(i)->(i),(i)"

    def make_node(self, y, n, eta):
        y, n, eta = (pt.as_tensor_variable(v).astype("float64") for v in (y, n, eta))
        if not y.ndim == n.ndim == eta.ndim == 1:
            raise TypeError(f"hierbayes: LogitRows takes vectors, not arrays of {y.ndim}, {n.ndim}, {eta.ndim} dimensions")
        return Apply(self, [y, n, eta], [eta.type(), eta.type()])

    def perform(self, node, inputs, outputs):
        y, n, eta = inputs
        if y.shape != eta.shape:
            raise ValueError(f"hierbayes: {y.shape[0]} responses for {eta.shape[0]} linear predictors")
        logp, score = logit_rows_numpy(y, eta, n)
        outputs[0][0], outputs[1][0] = logp, score

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[2], shapes[2]]

    def pullback(self, inputs, outputs, output_grads):
        g_logp, g_score = output_grads
        if not isinstance(g_score.type, DisconnectedType):
            raise NotImplementedError("hierbayes: the logit rows' log density has no second derivatives")
        y, n, eta = inputs
        return [grad_undefined(self, 0, y), grad_undefined(self, 1, n), g_logp * outputs[1]]


_OP = LogitRows()


def logit_rows(y: pt.TensorLike, eta: pt.TensorLike, n: pt.TensorLike | None = None) -> list[pt.TensorVariable]:
    """Each row's log density of ``y`` successes in ``n`` trials at logit ``eta``, and its score.

    Parameters
    ----------
    y, eta : vector
        Successes and linear predictors, one per row (PyTensor or NumPy).
    n : vector, scalar or None
        Trials per row, or one number for all rows; None is 1 (bernoulli).

    Returns
    -------
    list of two PyTensor vectors
        ``log p`` and ``d log p / d eta`` of each row.

    Examples
    --------
    >>> logp, score = logit_rows(np.array([1.0, 0.0]), np.array([0.0, 0.0]))
    >>> logp.eval().round(4).tolist(), score.eval().tolist()
    ([-0.6931, -0.6931], [0.5, -0.5])
    """
    n = pt.ones(1) if n is None else pt.as_tensor_variable(n)
    if n.ndim == 0:
        n = n[None]
    return _OP(y, n, eta)


@register_funcify_default_op_cache_key(LogitRows)
def numba_funcify_logit_rows(op, node, **kwargs):
    """The numba implementation: :func:`_rows_kernel` into two new vectors."""
    # "contract" only (fused multiply-adds): the polynomials' order is kept and NaN propagates
    kernel = numba_basic.numba_njit(_rows_kernel, fastmath={"contract"}, error_model="numpy")

    @numba_basic.numba_njit
    def logit_rows_op(y, n, eta):
        if y.shape[0] != eta.shape[0] or (n.shape[0] != 1 and n.shape[0] != eta.shape[0]):
            raise ValueError("hierbayes: the logit rows' inputs differ in length")
        logp, score = np.empty_like(eta), np.empty_like(eta)
        kernel(y, n, eta, logp, score)
        return logp, score

    # PyTensor's default cache key sees the Op, not the kernel: the salt changes with its source
    return logit_rows_op, _source_version()


@cache
def register_jax() -> None:
    """Give the Op a JAX implementation (``sampler="numpyro"``)."""
    import jax
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    @jax_funcify.register(LogitRows)
    def jax_funcify_logit_rows(op, **kwargs):
        def logit_rows_op(y, n, eta):
            return y * eta - n * jnp.logaddexp(0.0, eta), y - n * jax.nn.sigmoid(eta)

        return logit_rows_op
