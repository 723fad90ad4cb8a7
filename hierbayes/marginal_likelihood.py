"""The collapsed Gaussian log-likelihood as one PyTensor Op, with its gradient written out.

:mod:`hierbayes.collapsed` integrates a factor's group effects out; what remains is, per
level ``j``, a ``q x q`` Cholesky of ``M_j = I + L' Z_j'Z_j L / s^2`` and a few small
products. Written as a PyTensor graph this was ~135 nodes, each compiled separately by
numba, and half of a fresh machine's compile time (``bench/NOTES.md``); here it is one
loop over the levels that returns the log-likelihood and its gradient together, compiled
once (numba) and called once per gradient evaluation.

With ``r_j = y_j - W_j theta``, ``w_j = Z_j' r_j``, ``c_j = L' w_j``, ``m_j = M_j^-1 c_j``,
``Q = sum_j c_j' m_j`` and ``rr = sum_j r_j' r_j``::

    f = -1/2 (N log 2 pi + N log s^2 + sum_j log det M_j + (rr - Q / s^2) / s^2)

    df/dtheta = (W'y - W'W theta) / s^2 - sum_j Z_j'W_j' L m_j / s^4
    df/dL     = sum_j [ -Z_j'Z_j L M_j^-1 / s^2 + (w_j m_j' - Z_j'Z_j L m_j m_j' / s^2) / s^4 ]
    df/ds^2   = -1/2 (N / s^2 - (J q - sum_j tr M_j^-1) / s^2 - rr / s^4
                      - (Q - sum_j m_j'm_j) / s^6 + 2 Q / s^6)

(``d log det M_j = tr(M_j^-1 dM_j)``, ``d (c'M^-1 c) = 2 m'dc - m' dM m``, and
``L' Z_j'Z_j L / s^2 = M_j - I``.) The derivation is checked against finite differences
and against the dense ``N(W theta, Z L L' Z' + s^2 I)`` density in ``tests/test_collapsed.py``.

The Op has a NumPy ``perform`` (the numba kernel called from Python), a numba
implementation for nutpie and PyMC's samplers, and a JAX one (:func:`register_jax`, for
``sampler="numpyro"``; JAX differentiates it itself). The module imports PyTensor, so
only the building of a collapsed model imports it.

Examples
--------
Two rows of one level, ``u ~ N(0, 1)``, ``sigma = 1``: the rows are ``N(2, [[2, 1], [1, 2]])``.

>>> import numpy as np
>>> from scipy.stats import multivariate_normal
>>> from hierbayes.collapsed import sufficient_statistics
>>> y = np.array([1.0, 3.0])
>>> st = sufficient_statistics(y, np.ones((2, 1)), np.array([0, 0]), np.ones((2, 1)), 1)
>>> f, d_theta, d_sigma, d_L = loglik_and_gradient(st, np.array([2.0]), 1.0, np.array([[1.0]]))
>>> bool(np.isclose(f, multivariate_normal([2, 2], [[2, 1], [1, 2]]).logpdf(y)))
True
"""

from __future__ import annotations

import hashlib
import inspect
import math
from functools import cache

import numpy as np

import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

__all__ = ["marginal_loglik", "loglik_and_gradient", "register_jax", "STATS"]

STATS = ("cz_N", "cz_yy", "cz_Wy", "cz_WW", "cz_Zy", "cz_ZW", "cz_ZZ")  # the Op's data inputs, in order
_LOG_2PI = math.log(2 * math.pi)


def _kernel(N, yy, Wy, WW, Zy, ZW, ZZ, theta, sigma, L):
    """Log-likelihood and its gradients in theta, sigma and L (plain loops: numba compiles this)."""
    J, q = Zy.shape
    p = theta.shape[0]
    s2 = sigma * sigma
    WWt = np.zeros(p)
    for a in range(p):
        for b in range(p):
            WWt[a] += WW[a, b] * theta[b]
    rr = yy
    d_theta = np.zeros(p)
    for a in range(p):
        rr += theta[a] * (WWt[a] - 2.0 * Wy[a])
        d_theta[a] = (Wy[a] - WWt[a]) / s2
    d_L = np.zeros((q, q))
    logdet, Q, tr_Minv, mm = 0.0, 0.0, 0.0, 0.0
    w, c, m, Lm = np.empty(q), np.empty(q), np.empty(q), np.empty(q)
    ZL, M, R, Rinv = np.empty((q, q)), np.empty((q, q)), np.empty((q, q)), np.empty((q, q))
    for j in range(J):
        for a in range(q):  # w = Z'r, ZL = Z'Z L
            w[a] = Zy[j, a]
            for b in range(p):
                w[a] -= ZW[j, a, b] * theta[b]
            for b in range(q):
                acc = 0.0
                for k in range(q):
                    acc += ZZ[j, a, k] * L[k, b]
                ZL[a, b] = acc
        for a in range(q):  # c = L'w, M = I + L' ZL / s2
            acc = 0.0
            for k in range(q):
                acc += L[k, a] * w[k]
            c[a] = acc
            for b in range(q):
                acc = 0.0
                for k in range(q):
                    acc += L[k, a] * ZL[k, b]
                M[a, b] = acc / s2 + (1.0 if a == b else 0.0)
        R[:] = 0.0  # M = R R'
        for a in range(q):
            for b in range(a + 1):
                acc = M[a, b]
                for k in range(b):
                    acc -= R[a, k] * R[b, k]
                R[a, b] = math.sqrt(acc) if a == b else acc / R[b, b]
            logdet += 2.0 * math.log(R[a, a])
        Rinv[:] = 0.0  # R^-1, lower triangular
        for a in range(q):
            Rinv[a, a] = 1.0 / R[a, a]
            for b in range(a):
                acc = 0.0
                for k in range(b, a):
                    acc -= R[a, k] * Rinv[k, b]
                Rinv[a, b] = acc / R[a, a]
        for a in range(q):  # m = M^-1 c = Rinv' Rinv c
            acc = 0.0
            for k in range(a + 1):
                acc += Rinv[a, k] * c[k]
            Lm[a] = acc  # Rinv c, for now
        for a in range(q):
            acc = 0.0
            for k in range(a, q):
                acc += Rinv[k, a] * Lm[k]
            m[a] = acc
        for a in range(q):
            Q += c[a] * m[a]
            mm += m[a] * m[a]
            for k in range(a, q):
                tr_Minv += Rinv[k, a] * Rinv[k, a]
        for a in range(q):  # L m
            acc = 0.0
            for k in range(q):
                acc += L[a, k] * m[k]
            Lm[a] = acc
        for b in range(p):
            acc = 0.0
            for a in range(q):
                acc += ZW[j, a, b] * Lm[a]
            d_theta[b] -= acc / (s2 * s2)
        for a in range(q):
            Zm = 0.0  # (Z'Z L m)_a
            for k in range(q):
                Zm += ZL[a, k] * m[k]
            for b in range(q):
                ZLMinv = 0.0  # (Z'Z L M^-1)_ab, M^-1 = Rinv' Rinv
                for k in range(q):
                    Minv_kb = 0.0
                    for i in range(max(k, b), q):
                        Minv_kb += Rinv[i, k] * Rinv[i, b]
                    ZLMinv += ZL[a, k] * Minv_kb
                d_L[a, b] += -ZLMinv / s2 + (w[a] * m[b] - Zm * m[b] / s2) / (s2 * s2)
    value = -0.5 * (N * _LOG_2PI + N * math.log(s2) + logdet + (rr - Q / s2) / s2)
    d_s2 = -0.5 * (N / s2 - (J * q - tr_Minv) / s2 - rr / (s2 * s2) - (Q - mm) / (s2 * s2 * s2)
                   + 2.0 * Q / (s2 * s2 * s2))
    return value, d_theta, 2.0 * sigma * d_s2, d_L


def _cache_version() -> int:
    """Changes with the kernel's source, so that PyTensor's numba cache never serves an old kernel."""
    return int(hashlib.sha256(inspect.getsource(_kernel).encode()).hexdigest()[:12], 16)


@cache
def _jitted():
    """The kernel compiled for calls from Python (``perform``, :func:`loglik_and_gradient`)."""
    import numba

    return numba.njit(cache=True)(_kernel)


def loglik_and_gradient(stats, theta, sigma, L):
    """Collapsed log-likelihood and its gradients ``(f, df/dtheta, df/dsigma, df/dL)`` in NumPy.

    Parameters
    ----------
    stats : mapping
        :func:`hierbayes.collapsed.sufficient_statistics`.
    theta : ndarray (p,)
        Coefficients of ``W`` (empty when the model has no fixed effects).
    sigma : float
        Residual SD.
    L : ndarray (q, q)
        ``blockdiag(diag(sd) @ chol(corr))``.
    """
    args = [np.asarray(stats[name], dtype=float) for name in STATS]
    f, d_theta, d_sigma, d_L = _jitted()(float(args[0]), float(args[1]), *args[2:],
                                         np.asarray(theta, dtype=float), float(sigma), np.asarray(L, dtype=float))
    return float(f), d_theta, float(d_sigma), d_L


class MarginalLoglik(Op):
    """``(N, yy, Wy, WW, Zy, ZW, ZZ, theta, sigma, L) -> (f, df/dtheta, df/dsigma, df/dL)``.

    The gradient outputs are what :meth:`pullback` hands back, so a log density and its
    gradient cost one pass over the levels.
    """

    __props__ = ()

    def make_node(self, *inputs):
        inputs = [pt.as_tensor_variable(x).astype("float64") for x in inputs]
        theta, L = inputs[-3], inputs[-1]
        return Apply(self, inputs, [pt.dscalar(), theta.type(), pt.dscalar(), L.type()])

    def perform(self, node, inputs, outputs):
        N, yy, *arrays, theta, sigma, L = inputs
        values = _jitted()(float(N), float(yy), *arrays, theta, float(sigma), L)
        for slot, value in zip(outputs, values):
            slot[0] = np.asarray(value, dtype="float64")

    def infer_shape(self, fgraph, node, shapes):
        return [(), shapes[-3], (), shapes[-1]]

    def pullback(self, inputs, outputs, output_grads):
        if not all(isinstance(g.type, DisconnectedType) for g in output_grads[1:]):
            raise NotImplementedError("hierbayes: the collapsed log-likelihood has no second derivatives")
        g = output_grads[0]
        data = [grad_not_implemented(self, i, x) for i, x in enumerate(inputs[:len(STATS)])]
        return [*data, g * outputs[1], g * outputs[2], g * outputs[3]]


@register_funcify_default_op_cache_key(MarginalLoglik)
def numba_funcify_marginal_loglik(op, node, **kwargs):
    kernel = numba_basic.numba_njit(_kernel)

    @numba_basic.numba_njit
    def marginal_loglik(N, yy, Wy, WW, Zy, ZW, ZZ, theta, sigma, L):
        f, d_theta, d_sigma, d_L = kernel(N.item(), yy.item(), Wy, WW, Zy, ZW, ZZ, theta, sigma.item(), L)
        return np.asarray(f), d_theta, np.asarray(d_sigma), d_L

    return marginal_loglik, _cache_version()


_OP = MarginalLoglik()


def marginal_loglik(stats, theta, sigma, L):
    """The collapsed log-likelihood of all rows as a PyTensor scalar (one Op; see the module).

    Parameters
    ----------
    stats : mapping
        :data:`STATS` as tensors (slices of the model's ``fixed_data``).
    theta : tensor (p,) or None
        Coefficients of ``W``; None when the model has no fixed effects.
    sigma : tensor
        Residual SD.
    L : tensor (q, q)
    """
    theta = pt.zeros(0) if theta is None else theta
    return _OP(*(stats[name] for name in STATS), theta, sigma, L)[0]


@cache
def register_jax() -> None:
    """Give the Op a JAX implementation (``sampler="numpyro"``); JAX differentiates it itself."""
    import jax
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    def loglik(N, yy, Wy, WW, Zy, ZW, ZZ, theta, sigma, L):
        s2 = sigma**2
        rr = yy - 2 * theta @ Wy + theta @ WW @ theta
        c = (Zy - ZW @ theta) @ L                                         # (J, q)
        M = jnp.eye(L.shape[0]) + jnp.einsum("ka,jkl,lb->jab", L, ZZ, L) / s2
        R = jnp.linalg.cholesky(M)
        v = jax.scipy.linalg.solve_triangular(R, c[..., None], lower=True)[..., 0]
        logdet = 2 * jnp.log(jnp.diagonal(R, axis1=-2, axis2=-1)).sum()
        return -0.5 * (N * _LOG_2PI + N * jnp.log(s2) + logdet + (rr - (v**2).sum() / s2) / s2)

    value_and_grad = jax.value_and_grad(loglik, argnums=(7, 8, 9))

    @jax_funcify.register(MarginalLoglik)
    def jax_funcify_marginal_loglik(op, **kwargs):
        def marginal_loglik(*inputs):
            f, (d_theta, d_sigma, d_L) = value_and_grad(*inputs)
            return f, d_theta, d_sigma, d_L

        return marginal_loglik
