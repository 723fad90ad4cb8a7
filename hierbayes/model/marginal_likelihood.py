"""The collapsed Gaussian log-likelihood as one PyTensor Op, with its gradient written out.

:mod:`hierbayes.model.collapsed` integrates a factor's group effects out; what remains is, per
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
``L' Z_j'Z_j L / s^2 = M_j - I``.) With a nested factor (scale factor ``K``), ``M_j`` becomes
the block ``G_j`` of a level and its nested levels, ``L`` the block-diagonal of ``L`` and
copies of ``K``, and the same formulas hold with ``G_j^-1`` taken blockwise through the
Schur complement of the nested levels (:func:`_kernel`). The derivation is checked against finite differences
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
>>> from hierbayes.model.collapsed import sufficient_statistics
>>> y = np.array([1.0, 3.0])
>>> st = sufficient_statistics(y, np.ones((2, 1)), np.array([0, 0]), np.ones((2, 1)), 1)
>>> f, d_theta, d_sigma, d_L, d_K = loglik_and_gradient(st, np.array([2.0]), 1.0, np.array([[1.0]]))
>>> bool(np.isclose(f, multivariate_normal([2, 2], [[2, 1], [1, 2]]).logpdf(y)))
True
"""

from __future__ import annotations

import hashlib
import inspect
import math
from functools import cache

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from hierbayes.specification.names import STAT, STAT_NAMES

__all__ = ["marginal_loglik", "crossed_marginal_loglik", "loglik_and_gradient", "register_jax", "STATS"]

# the Op's data inputs, in order (the nested factor's V* and first: empty without one)
STATS = tuple(name for name in STAT_NAMES if name != STAT.shift)
_LOG_2PI = math.log(2 * math.pi)


# Plain loops over tiny matrices: BLAS calls, NumPy array expressions and helper functions
# cost more here (to run, and above all for numba to compile: each helper's specialization is
# another compile) than the arithmetic. Numba compiles this in about a second.

@numba.njit(error_model="numpy")
def _spd_inverse(M, out, R):
    """``out = M^-1`` for a small symmetric positive definite ``M`` (``R``: scratch); returns ``log det M``."""
    q = M.shape[0]
    logdet = 0.0
    for a in range(q):  # M = R R'
        for b in range(a + 1):
            acc = M[a, b]
            for k in range(b):
                acc -= R[a, k] * R[b, k]
            R[a, b] = math.sqrt(acc) if a == b else acc / R[b, b]
        logdet += 2.0 * math.log(R[a, a])
    for a in range(q):  # R^-1 (lower triangular), kept transposed in the upper triangle of out
        out[a, a] = 1.0 / R[a, a]
        for b in range(a):
            acc = 0.0
            for k in range(b, a):
                acc -= R[a, k] * out[b, k]
            out[b, a] = acc / R[a, a]
    for a in range(q):  # M^-1 = R^-T R^-1, into R's upper triangle
        for b in range(a, q):
            acc = 0.0
            for k in range(b, q):
                acc += out[a, k] * out[b, k]
            R[a, b] = acc
    for a in range(q):
        for b in range(a, q):
            out[a, b] = R[a, b]
            out[b, a] = R[a, b]
    return logdet


@numba.njit(error_model="numpy")
def _level_terms(Zy, ZW, ZZ, theta, L, s2, w, c, ZL, M, Minv, R):
    """One level's ``w = Z'r`` (from ``Z'y``, ``Z'W``), ``c = L'w``, ``ZL = Z'Z L``, ``M = I + L'Z'Z L / s^2``
    and ``M^-1`` into the buffers (``R``: scratch); returns ``log det M``."""
    q, p = ZW.shape
    for a in range(q):
        acc = Zy[a]
        for b in range(p):
            acc -= ZW[a, b] * theta[b]
        w[a] = acc
    for a in range(q):
        acc = 0.0
        for k in range(q):
            acc += L[k, a] * w[k]
        c[a] = acc
        for b in range(q):
            acc = 0.0
            for k in range(q):
                acc += ZZ[a, k] * L[k, b]
            ZL[a, b] = acc
    for a in range(q):
        for b in range(q):
            acc = 0.0
            for k in range(q):
                acc += L[k, a] * ZL[k, b]
            M[a, b] = acc / s2 + (1.0 if a == b else 0.0)
    return _spd_inverse(M, Minv, R)


@numba.njit(error_model="numpy")
def _one_coefficient(Zy, ZW, ZZ, theta, l, s2, d_theta, d_Zy):
    """The loop over the levels of :func:`_kernel` for one varying coefficient (``L = l``, ``M_j`` a number);
    adds to ``d_theta``, fills ``d_Zy``; returns ``(sum log M_j, Q, sum m_j^2, sum 1 / M_j, df/dl)``."""
    p = theta.shape[0]
    s4 = s2 * s2
    logdet, Q, mm, tr, d_l = 0.0, 0.0, 0.0, 0.0, 0.0
    for j in range(Zy.shape[0]):
        zz = ZZ[j, 0, 0]
        w = Zy[j, 0]
        for b in range(p):
            w -= ZW[j, 0, b] * theta[b]
        M = 1.0 + l * l * zz / s2
        Minv = 1.0 / M
        logdet += math.log(M)
        m = l * w * Minv
        Q += l * w * m
        mm += m * m
        tr += Minv
        d_l += -zz * l * Minv / s2 + (w - zz * l * m / s2) * m / s4
        lm = l * m / s4
        for b in range(p):
            d_theta[b] -= ZW[j, 0, b] * lm
        d_Zy[j, 0] = lm
    return logdet, Q, mm, tr, d_l


def _kernel(N, yy, Wy, WW, Zy, ZW, ZZ, Vy, VW, VV, VZ, first, theta, sigma, L, K):
    """Log-likelihood and its gradients in theta, sigma, L and K (loops: numba compiles this).

    ``K=None`` (no nested factor) compiles without the nested factor's code and buffers (numba
    prunes the ``K is not None`` branches), in about half the time.

    Level ``j`` of the factor (``Z``, ``L``) has the levels ``first[j]:first[j + 1]`` of the
    nested factor (``V``, ``K``; none for a single factor). With ``B_k = L' Z'V_k K / s^2``
    and ``D_k = I + K'V_k'V_k K / s^2``, the level's ``G`` has the Schur complement
    ``S = I + L'Z'Z L / s^2 - sum_k B_k D_k^-1 B_k'``; ``G^-1``, ``log det G`` and
    ``m = G^-1 c`` come from ``q x q`` and ``q_v x q_v`` inverses only:
    ``m_1 = S^-1 (c_1 - sum_k B_k D_k^-1 c_k)``, ``m_k = D_k^-1 (c_k - B_k' m_1)``,
    ``(G^-1)_1k = -S^-1 B_k D_k^-1``, ``(G^-1)_kk = D_k^-1 + D_k^-1 B_k' S^-1 B_k D_k^-1``.
    """
    J, q = Zy.shape
    qv = Vy.shape[1]
    p = theta.shape[0]
    s2 = sigma * sigma
    s4 = s2 * s2
    rr = yy
    d_theta = np.zeros(p)
    for a in range(p):
        WWt = 0.0
        for b in range(p):
            WWt += WW[a, b] * theta[b]
        rr += theta[a] * (WWt - 2.0 * Wy[a])
        d_theta[a] = (Wy[a] - WWt) / s2
    d_L, d_K, d_Zy = np.zeros((q, q)), np.zeros((qv, qv)), np.zeros((J, q))
    w1, c1, r1, m1, Hm1 = np.zeros(q), np.zeros(q), np.zeros(q), np.zeros(q), np.zeros(q)
    ZL, S, Sinv, T11, Rq = np.zeros((q, q)), np.zeros((q, q)), np.zeros((q, q)), np.zeros((q, q)), np.zeros((q, q))
    Jv = Vy.shape[0]
    if K is not None:
        w_v, c_v, VK_v, Dinv_v, BD_v = (np.zeros((Jv, qv)), np.zeros((Jv, qv)), np.zeros((Jv, qv, qv)),
                                        np.zeros((Jv, qv, qv)), np.zeros((Jv, q, qv)))  # per nested level
        mk, Hmk = np.zeros(qv), np.zeros(qv)
        D, Gkk, Rv = np.zeros((qv, qv)), np.zeros((qv, qv)), np.zeros((qv, qv))
        B, SBD = np.zeros((q, qv)), np.zeros((q, qv))
        VZL = np.zeros((qv, q))
    logdet, Q, tr_Ginv, mm = 0.0, 0.0, 0.0, 0.0
    looped = J
    if q == 1 and Vy.shape[0] == 0:  # one coefficient, no nested factor: scalars, ~12x faster than the q x q loops at q = 1
        logdet, Q, mm, tr_Ginv, d_L[0, 0] = _one_coefficient(Zy, ZW, ZZ, theta, L[0, 0], s2, d_theta, d_Zy)
        looped = 0  # the general loop below has nothing left to do
    for j in range(looped):
        logdet_M = _level_terms(Zy[j], ZW[j], ZZ[j], theta, L, s2, w1, c1, ZL, S, Sinv, Rq)  # S = M, Sinv = M^-1
        for a in range(q):
            r1[a] = c1[a]
        start, stop = 0, 0
        if K is not None:  # numba drops this branch when K is None: a single factor compiles without it
            start, stop = int(first[j]), int(first[j + 1])
            for k in range(start, stop):  # the Schur complement of the nested levels, and their terms kept
                wk, ck, VK, Dinv, BD = w_v[k], c_v[k], VK_v[k], Dinv_v[k], BD_v[k]
                logdet += _level_terms(Vy[k], VW[k], VV[k], theta, K, s2, wk, ck, VK, D, Dinv, Rv)
                for a in range(q):  # B = L' Z'V K / s2 (VZ[k] is V'Z), BD = B D^-1
                    for b in range(qv):
                        acc = 0.0
                        for i in range(q):
                            for l in range(qv):
                                acc += L[i, a] * VZ[k, l, i] * K[l, b]
                        B[a, b] = acc / s2
                for a in range(q):
                    for b in range(qv):
                        acc = 0.0
                        for l in range(qv):
                            acc += B[a, l] * Dinv[l, b]
                        BD[a, b] = acc
                for a in range(q):
                    for b in range(q):
                        acc = 0.0
                        for l in range(qv):
                            acc += BD[a, l] * B[b, l]
                        S[a, b] -= acc
                    acc = 0.0
                    for l in range(qv):
                        acc += BD[a, l] * ck[l]
                    r1[a] -= acc
            if stop > start:
                logdet += _spd_inverse(S, Sinv, Rq)
                for a in range(q):
                    acc = 0.0
                    for b in range(q):
                        acc += Sinv[a, b] * r1[b]
                    m1[a] = acc
            for k in range(start, stop):  # their gradient terms
                wk, ck, VK, Dinv, BD = w_v[k], c_v[k], VK_v[k], Dinv_v[k], BD_v[k]
                for a in range(q):  # SBD = S^-1 B D^-1 = -(G^-1)_1k
                    for b in range(qv):
                        acc = 0.0
                        for l in range(q):
                            acc += Sinv[a, l] * BD[l, b]
                        SBD[a, b] = acc
                for a in range(qv):  # m_k, (G^-1)_kk, V'Z L
                    acc = 0.0
                    for l in range(qv):
                        acc += Dinv[a, l] * ck[l]
                    for l in range(q):
                        acc -= BD[l, a] * m1[l]
                    mk[a] = acc
                    for b in range(qv):
                        acc = Dinv[a, b]
                        for l in range(q):
                            acc += BD[l, a] * SBD[l, b]
                        Gkk[a, b] = acc
                    for b in range(q):
                        acc = 0.0
                        for l in range(q):
                            acc += VZ[k, a, l] * L[l, b]
                        VZL[a, b] = acc
                for a in range(qv):  # H Lambda m in the block of K
                    acc = 0.0
                    for l in range(q):
                        acc += VZL[a, l] * m1[l]
                    for l in range(qv):
                        acc += VK[a, l] * mk[l]
                    Hmk[a] = acc
                for a in range(qv):  # d_K, block (k, k) of H Lambda G^-1: V'Z L (G^-1)_1k + V'V K (G^-1)_kk
                    for b in range(qv):
                        acc = 0.0
                        for l in range(q):
                            acc -= VZL[a, l] * SBD[l, b]
                        for l in range(qv):
                            acc += VK[a, l] * Gkk[l, b]
                        d_K[a, b] += -acc / s2 + (wk[a] - Hmk[a] / s2) * mk[b] / s4
                for l in range(qv):  # K m_k feeds the block of L, theta; Q, m'm, tr G^-1
                    Km = 0.0
                    for b in range(qv):
                        Km += K[l, b] * mk[b]
                    for a in range(q):
                        Hm1[a] += VZ[k, l, a] * Km
                    for a in range(p):
                        d_theta[a] -= VW[k, l, a] * Km / s4
                    Q += ck[l] * mk[l]
                    mm += mk[l] * mk[l]
                    tr_Ginv += Gkk[l, l]
                for a in range(q):  # block (1, 1) of H Lambda G^-1 gets Z'V K (G^-1)_k1
                    for b in range(q):
                        acc = 0.0
                        for l in range(qv):
                            KG = 0.0
                            for i in range(qv):
                                KG -= K[l, i] * SBD[b, i]
                            acc += VZ[k, l, a] * KG
                        T11[a, b] += acc
        if stop == start:  # no nested levels: S = M
            logdet += logdet_M
            for a in range(q):
                acc = 0.0
                for b in range(q):
                    acc += Sinv[a, b] * r1[b]
                m1[a] = acc
        for a in range(q):  # the block of L: Z'Z L S^-1 (+ the nested terms in T11), H Lambda m
            acc = 0.0
            for b in range(q):
                acc += ZL[a, b] * m1[b]
            Hm1[a] += acc
            for b in range(q):
                acc = 0.0
                for l in range(q):
                    acc += ZL[a, l] * Sinv[l, b]
                T11[a, b] += acc
        for a in range(q):
            for b in range(q):
                d_L[a, b] += -T11[a, b] / s2 + (w1[a] - Hm1[a] / s2) * m1[b] / s4
                T11[a, b] = 0.0
            Lm = 0.0
            for b in range(q):
                Lm += L[a, b] * m1[b]
            for b in range(p):
                d_theta[b] -= ZW[j, a, b] * Lm / s4
            d_Zy[j, a] = Lm / s4
            Q += c1[a] * m1[a]
            mm += m1[a] * m1[a]
            tr_Ginv += Sinv[a, a]
        for a in range(q):
            Hm1[a] = 0.0
    dim = J * q + Jv * qv
    value = -0.5 * (N * _LOG_2PI + N * math.log(s2) + logdet + (rr - Q / s2) / s2)
    d_s2 = -0.5 * (N / s2 - (dim - tr_Ginv) / s2 - rr / s4 - (Q - mm) / (s4 * s2) + 2.0 * Q / (s4 * s2))
    return value, d_theta, 2.0 * sigma * d_s2, d_L, d_K, d_Zy


_HELPERS = (_spd_inverse, _level_terms, _one_coefficient)


def _cache_version() -> int:
    """Changes with the kernel's source, so that PyTensor's numba cache never serves an old kernel."""
    source = "".join(inspect.getsource(f) for f in (_kernel, *(h.py_func for h in _HELPERS)))
    return int(hashlib.sha256(source.encode()).hexdigest()[:12], 16)


@cache
def _jitted():
    """The kernel compiled for calls from Python (``perform``, :func:`loglik_and_gradient`)."""
    import numba

    return numba.njit(cache=True, error_model="numpy")(_kernel)


def loglik_and_gradient(stats, theta, sigma, L, K=None):
    """Collapsed log-likelihood and its gradients ``(f, df/dtheta, df/dsigma, df/dL, df/dK)`` in NumPy.

    Parameters
    ----------
    stats : mapping
        :func:`hierbayes.model.collapsed.sufficient_statistics` (and, with a nested factor,
        :func:`hierbayes.model.collapsed.nested_statistics`).
    theta : ndarray (p,)
        Coefficients of ``W`` (empty when the model has no fixed effects).
    sigma : float
        Residual SD.
    L, K : ndarray (q, q), (q_v, q_v)
        ``blockdiag(diag(sd) @ chol(corr))`` of the factor and of the nested factor (None: none).
    """
    args = [np.asarray(value, dtype=float) for value in _with_nested(stats, np.zeros)]
    K = np.zeros((0, 0)) if K is None else np.asarray(K, dtype=float)
    f, d_theta, d_sigma, d_L, d_K, _ = _jitted()(float(args[0]), float(args[1]), *args[2:],
                                                 np.asarray(theta, dtype=float), float(sigma), np.asarray(L, dtype=float), K)
    return float(f), d_theta, float(d_sigma), d_L, d_K


def _with_nested(stats, zeros) -> list:
    """The Op's data inputs in order, with empty nested-factor statistics when there is none."""
    J, q = stats[STAT.Zy].shape[0], stats[STAT.ZZ].shape[-1]
    p = stats[STAT.Wy].shape[0]
    absent = {STAT.Vy: (0, 0), STAT.VW: (0, 0, p), STAT.VV: (0, 0, 0), STAT.VZ: (0, 0, q), STAT.first: (J + 1,)}
    return [stats[name] if name in stats else zeros(absent[name]) for name in STATS]


class MarginalLoglik(Op):
    """``(N, yy, Wy, WW, Zy, ZW, ZZ, Vy, VW, VV, VZ, first, theta, sigma, L, K) -> (f, df/dtheta,
    df/dsigma, df/dL, df/dK, df/dZy)``.

    The gradient outputs are what :meth:`pullback` hands back, so a log density and its
    gradient cost one pass over the levels. ``yy``, ``Wy`` and ``Zy`` have gradients too
    (``df/dyy = -1/(2 s^2)``, ``df/dWy = theta / s^2``, ``df/dZy_j = L m_j / s^4``): in a crossed
    design they are sums of residuals that depend on the sampled effects
    (:func:`crossed_marginal_loglik`).
    """

    __props__ = ()

    def make_node(self, *inputs):
        inputs = [pt.as_tensor_variable(x).astype("float64") for x in inputs]
        theta, L, K = inputs[-4], inputs[-2], inputs[-1]
        Zy = inputs[STATS.index(STAT.Zy)]
        return Apply(self, inputs, [pt.dscalar(), theta.type(), pt.dscalar(), L.type(), K.type(), Zy.type()])

    def perform(self, node, inputs, outputs):
        N, yy, *arrays, theta, sigma, L, K = inputs
        values = _jitted()(float(N), float(yy), *arrays, theta, float(sigma), L, K)
        for slot, value in zip(outputs, values):
            slot[0] = np.asarray(value, dtype="float64")

    def infer_shape(self, node, shapes):
        return [(), shapes[-4], (), shapes[-2], shapes[-1], shapes[STATS.index(STAT.Zy)]]

    def pullback(self, inputs, outputs, output_grads):
        if not all(isinstance(g.type, DisconnectedType) for g in output_grads[1:]):
            raise NotImplementedError("hierbayes: the collapsed log-likelihood has no second derivatives")
        g = output_grads[0]
        data = [grad_not_implemented(self, i, x) for i, x in enumerate(inputs[:len(STATS)])]
        theta, sigma = inputs[-4], inputs[-3]
        data[STATS.index(STAT.yy)] = g * (-0.5 / sigma**2)
        data[STATS.index(STAT.Wy)] = g * theta / sigma**2
        data[STATS.index(STAT.Zy)] = g * outputs[5]
        return [*data, g * outputs[1], g * outputs[2], g * outputs[3], g * outputs[4]]


@numba.njit
def _no_nested_scale(K):
    return None


@numba.njit
def _nested_scale(K):
    return K


@register_funcify_default_op_cache_key(MarginalLoglik)
def numba_funcify_marginal_loglik(op, node, **kwargs):
    kernel = numba_basic.numba_njit(_kernel, error_model="numpy")  # no ZeroDivisionError checks
    # without a nested factor (K is 0 x 0), the kernel gets K=None and compiles without the nested code
    single_factor = node.inputs[-1].type.shape == (0, 0)

    nested_scale = _no_nested_scale if single_factor else _nested_scale

    @numba_basic.numba_njit
    def marginal_loglik(N, yy, Wy, WW, Zy, ZW, ZZ, Vy, VW, VV, VZ, first, theta, sigma, L, K):
        f, d_theta, d_sigma, d_L, d_K, d_Zy = kernel(N.item(), yy.item(), Wy, WW, Zy, ZW, ZZ, Vy, VW, VV, VZ, first,
                                                     theta, sigma.item(), L, nested_scale(K))
        return np.asarray(f), d_theta, np.asarray(d_sigma), d_L, d_K, d_Zy

    # PyTensor's default cache key sees the Op, not K's static shape: the salt tells the two kernels apart
    return marginal_loglik, 2 * _cache_version() + single_factor


_OP = MarginalLoglik()


def marginal_loglik(stats, theta, sigma, L, K=None):
    """The collapsed log-likelihood of all rows as a PyTensor scalar (one Op; see the module).

    Parameters
    ----------
    stats : mapping
        :data:`STATS` as tensors (slices of the model's ``fixed_data``); the nested
        factor's may be absent.
    theta : tensor (p,) or None
        Coefficients of ``W``; None when the model has no fixed effects.
    sigma : tensor
        Residual SD.
    L, K : tensor (q, q), (q_v, q_v)
        Scale factors of the factor and of the nested factor (None: no nested factor).
    """
    theta = pt.zeros(0) if theta is None else theta
    K = pt.zeros((0, 0)) if K is None else K
    return _OP(*_with_nested(stats, pt.zeros), theta, sigma, L, K)[0]


def crossed_marginal_loglik(residual, index, Z, coefs: tuple[str, ...], J: int, ZZ, N, sigma, L):
    """The log-likelihood of all rows with one factor of a crossed design integrated out.

    Given the sampled factors' effects and the fixed effects, the integrated factor's levels
    are independent, so the single-factor algebra holds with the residual
    ``r = y - offset - X b - sum_f Z_f u_f`` in place of ``y`` and no fixed effects: the Op
    takes ``yy = r'r`` and the level sums ``Zy_j = Z_j' r`` (``np.bincount``'s PyTensor twin,
    ``inc_subtensor``), and their gradients reach the sampled effects through the rows.

    Parameters
    ----------
    residual : tensor (N,)
        ``y`` less everything sampled (the linear predictor without the integrated factor).
    index : tensor (N,)
        The integrated factor's level of each row.
    Z : tensor (N, q - 1 or q)
        Its varying columns other than the intercept (:attr:`FactorNames.columns`).
    coefs : tuple of str
        Its varying coefficients, ``"Intercept"`` standing for a column of ones.
    J : int
        Its number of levels.
    ZZ : tensor (J, q, q)
        ``Z_j'Z_j`` per level (:func:`hierbayes.model.collapsed.collapsed_data`).
    N : tensor
        Number of rows.
    sigma, L : tensor
        Residual SD; ``blockdiag(diag(sd) @ chol(corr))`` of the integrated factor (q x q).
    """
    q = len(coefs)
    columns, k = [], 0
    for coef in coefs:
        if coef == "Intercept":
            columns.append(residual)
        else:
            columns.append(Z[:, k] * residual)
            k += 1
    Zy = pt.stack([pt.inc_subtensor(pt.zeros(J)[index], col) for col in columns], axis=1)
    stats = {STAT.N: N, STAT.yy: pt.sum(residual**2), STAT.Wy: pt.zeros(0), STAT.WW: pt.zeros((0, 0)),
             STAT.Zy: Zy, STAT.ZW: pt.zeros((J, q, 0)), STAT.ZZ: ZZ}
    return _OP(*_with_nested(stats, pt.zeros), pt.zeros(0), sigma, L, pt.zeros((0, 0)))[0]


@cache
def register_jax() -> None:
    """Give the Op a JAX implementation (``sampler="numpyro"``); JAX differentiates it itself."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular
    from pytensor.link.jax.dispatch import jax_funcify

    def chol_solve(R, b):  # (R R')^-1 b for stacks of small systems
        return solve_triangular(R, solve_triangular(R, b, lower=True), lower=True, trans=1)

    def loglik(N, yy, Wy, WW, Zy, ZW, ZZ, Vy, VW, VV, VZ, first, theta, sigma, L, K):
        s2 = sigma**2
        rr = yy - 2 * theta @ Wy + theta @ WW @ theta
        c = (Zy - ZW @ theta) @ L                                          # (J, q)
        S = jnp.eye(L.shape[0]) + jnp.einsum("ka,jkl,lb->jab", L, ZZ, L) / s2
        logdet, Q = 0.0, 0.0
        if Vy.shape[0]:  # Schur complement of the nested levels
            J = Zy.shape[0]
            parent = jnp.repeat(jnp.arange(J), jnp.diff(first).astype(int), total_repeat_length=Vy.shape[0])
            ck = (Vy - VW @ theta) @ K
            RD = jnp.linalg.cholesky(jnp.eye(K.shape[0]) + jnp.einsum("ka,jkl,lb->jab", K, VV, K) / s2)
            B = jnp.einsum("ka,jlk,lb->jab", L, VZ, K) / s2                # (Jv, q, qv)
            DinvBt = chol_solve(RD, jnp.swapaxes(B, 1, 2))                 # D^-1 B'
            Dinvc = chol_solve(RD, ck[..., None])[..., 0]
            S = S - jax.ops.segment_sum(B @ DinvBt, parent, J)
            c = c - jax.ops.segment_sum((B @ Dinvc[..., None])[..., 0], parent, J)
            logdet = 2 * jnp.log(jnp.diagonal(RD, axis1=-2, axis2=-1)).sum()
            Q = (ck * Dinvc).sum()
        R = jnp.linalg.cholesky(S)
        v = solve_triangular(R, c[..., None], lower=True)[..., 0]
        logdet = logdet + 2 * jnp.log(jnp.diagonal(R, axis1=-2, axis2=-1)).sum()
        Q = Q + (v**2).sum()
        return -0.5 * (N * _LOG_2PI + N * jnp.log(s2) + logdet + (rr - Q / s2) / s2)

    value_and_grad = jax.value_and_grad(loglik, argnums=(12, 13, 14, 15, 4))

    @jax_funcify.register(MarginalLoglik)
    def jax_funcify_marginal_loglik(op, **kwargs):
        def marginal_loglik(*inputs):
            f, (d_theta, d_sigma, d_L, d_K, d_Zy) = value_and_grad(*inputs)
            return f, d_theta, d_sigma, d_L, d_K, d_Zy

        return marginal_loglik
