"""Design + priors -> ``pm.Model``: the third stage.

Every array that depends on the data or on prior values enters as ``pm.Data``, so
the compiled model depends only on the *structure* (family, terms, blocks, level
counts, prior kinds). :func:`structure_key` names that structure; the sampler keeps
one compiled model per key and refits new data or new priors by swapping the data.

Group effects of a factor with J levels and Q varying coefficients:

- non-centered (default): ``z[J, Q] ~ Normal(0, 1)``, and for each block
  ``u = z @ L.T`` with ``L = diag(sd) @ chol(corr)`` (``chol(corr) ~ LKJ``), or
  ``u = z * sd`` for ``||`` and one-coefficient blocks;
- centered: ``u[j] ~ MvNormal(0, L L')`` per level (``Normal(0, sd)`` when independent).

The fixed-effect columns other than the intercept are centred; the posterior keeps
the intercept on the original scale as ``b`` (dim ``term``) next to
``Intercept_centered``.

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> sorted(m.pymc_model.named_vars)[:4]
['Intercept_centered', 'Intercept_centered__mu', 'Intercept_centered__sigma', 'Reaction']
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .design import Design
from .families import Family
from .parameters import FIXED_DIM, coef_dim, cor_dim, cor_pairs, factor_dim, lkj_label, safe_name
from .priors import PRIOR_KINDS, Prior

__all__ = ["build_model", "model_data", "structure_key", "PARAMETERIZATIONS", "response_name"]

PARAMETERIZATIONS = ("non-centered", "centered")
SLOPE_DIM = "slope"


def response_name(design: Design) -> str:
    """Name of the observed variable: the response expression as an identifier."""
    return safe_name(design.spec.response.expr)


def _slopes(design: Design) -> list[int]:
    return [j for j, n in enumerate(design.fixed_names) if n != "Intercept"]


def _varying_columns(design: Design, factor: str) -> list[int]:
    """Positions (in the factor's coefficients) of the non-intercept Z columns."""
    return [k for k, c in enumerate(design.factor_coefs(factor)) if c != "Intercept"]


def _factor_Z(design: Design, factor: str) -> np.ndarray:
    Z = np.concatenate([b.Z for b in design.blocks if b.factor == factor], axis=1)
    return Z[:, _varying_columns(design, factor)]


def _prior_groups(name: str, labels: list[str], priors: Mapping[str, Prior]) -> list[tuple[str, str, list[int]]]:
    """Split labels by prior kind: (variable name, kind, positions)."""
    kinds: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        kinds.setdefault(priors[label].kind, []).append(i)
    if len(kinds) == 1:
        return [(name, next(iter(kinds)), list(range(len(labels))))]
    return [(f"{name}_{kind}", kind, idx) for kind, idx in kinds.items()]


def model_data(design: Design, family: Family, priors: Mapping[str, Prior]) -> dict[str, np.ndarray]:
    """Every ``pm.Data`` value of the model, by name: data arrays and prior parameters."""
    data: dict[str, np.ndarray] = {"y_obs": design.y}
    if design.trials is not None:
        data["trials"] = design.trials
    if design.offset is not None:
        data["offset"] = design.offset
    slopes = _slopes(design)
    X = design.X[:, slopes]
    if design.has_intercept:
        data["X_mean"] = X.mean(axis=0)
        X = X - data["X_mean"]
    data["X"] = X
    for factor, fd in design.factors.items():
        s = safe_name(factor)
        data[f"g_{s}"] = fd.index
        data[f"Z_{s}"] = _factor_Z(design, factor)

    def add_prior(name: str, labels: list[str], scalar: bool = False) -> None:
        for var, kind, idx in _prior_groups(name, labels, priors):
            for p in PRIOR_KINDS[kind].parameters:
                values = np.array([priors[labels[i]].values[p] for i in idx], dtype=float)
                data[f"{var}__{p}"] = values[0] if scalar else values

    if design.has_intercept:
        add_prior("Intercept_centered", ["Intercept"], scalar=True)
    if slopes:
        add_prior("beta", [design.fixed_names[j] for j in slopes])
    for factor in design.factors:
        add_prior(f"sd_{safe_name(factor)}", [f"sd({c}|{factor})" for c in design.factor_coefs(factor)])
    for k, block in enumerate(design.blocks):
        if block.block.correlated and len(block.coef_names) > 1:
            data[f"corr_chol_{k}__eta"] = np.float64(priors[lkj_label(block)].values["eta"])
    for name, _ in family.parameters:
        add_prior(name, [name], scalar=True)
    return data


def _parameterization_of(parameterization, factor: str) -> str:
    return parameterization.get(factor, "non-centered") if isinstance(parameterization, Mapping) else parameterization


def structure_key(design: Design, family: Family, priors: Mapping[str, Prior], parameterization) -> tuple:
    """What the compiled model depends on; equal keys can share one compiled model."""
    return (
        family.name, family.link, response_name(design), design.fixed_names,
        design.offset is not None, design.trials is not None,
        tuple((b.factor, b.coef_names, b.block.correlated, len(design.factors[b.factor].levels))
              for b in design.blocks),
        tuple((label, p.kind) for label, p in priors.items()),
        tuple(_parameterization_of(parameterization, f) for f in design.factors),
    )


def build_model(design: Design, family: Family, priors: Mapping[str, Prior],
                parameterization: str | Mapping[str, str] = "non-centered") -> pm.Model:
    """Write the PyMC model of ``design`` with ``family`` and ``priors``.

    Parameters
    ----------
    design : Design
    family : Family
    priors : mapping of label -> Prior
        As returned by :func:`hierbayes.parameters.resolve_priors` (every parameter).
    parameterization : {"non-centered", "centered"} or dict of factor -> one of them

    Returns
    -------
    pymc.Model
    """
    data = model_data(design, family, priors)
    slopes = _slopes(design)
    coords = {FIXED_DIM: list(design.fixed_names), SLOPE_DIM: [design.fixed_names[j] for j in slopes]}
    for factor, fd in design.factors.items():
        coords[factor_dim(factor)] = list(fd.levels)
        coords[coef_dim(factor)] = list(design.factor_coefs(factor))
        pairs = cor_pairs(design, factor)
        if pairs:
            coords[cor_dim(factor)] = [f"{a},{b}" for a, b in pairs]

    with pm.Model(coords=coords) as model:
        shared = {name: pm.Data(name, value) for name, value in data.items()}

        def prior_rv(name: str, labels: list[str], dims: str | None = None, scalar: bool = False):
            groups = _prior_groups(name, labels, priors)
            if len(groups) == 1:
                (var, kind, _), = groups
                params = {p: shared[f"{var}__{p}"] for p in PRIOR_KINDS[kind].parameters}
                if scalar:
                    return PRIOR_KINDS[kind].distribution(var, **params)
                return PRIOR_KINDS[kind].distribution(var, **params, dims=dims)
            out = pt.zeros(len(labels))
            for var, kind, idx in groups:
                params = {p: shared[f"{var}__{p}"] for p in PRIOR_KINDS[kind].parameters}
                out = pt.set_subtensor(out[idx], PRIOR_KINDS[kind].distribution(var, **params, shape=len(idx)))
            return pm.Deterministic(name, out, dims=dims)

        eta = 0.0
        parts = []
        if slopes:
            beta = prior_rv("beta", [design.fixed_names[j] for j in slopes], dims=SLOPE_DIM)
            eta = eta + shared["X"] @ beta
        if design.has_intercept:
            alpha = prior_rv("Intercept_centered", ["Intercept"], scalar=True)
            eta = eta + alpha
            parts.append(alpha - (shared["X_mean"] @ beta if slopes else 0.0))
        if slopes:
            parts.append(beta)
        if parts:
            b = pt.concatenate([pt.atleast_1d(p) for p in parts])
            order = (["Intercept"] if design.has_intercept else []) + coords[SLOPE_DIM]
            perm = [order.index(n) for n in design.fixed_names]  # formula order of the columns
            pm.Deterministic("b", b[perm], dims=FIXED_DIM)
        if design.offset is not None:
            eta = eta + shared["offset"]

        for factor, fd in design.factors.items():
            eta = eta + _group_effects(design, factor, shared, prior_rv, _parameterization_of(parameterization, factor))

        if not design.fixed_names and not design.factors:
            eta = eta + pt.zeros_like(shared["y_obs"])
        params = {name: prior_rv(name, [name], scalar=True) for name, _ in family.parameters}
        mean = family.link_function.inverse_tensor(eta)
        family.likelihood(response_name(design), eta, mean, params, shared["y_obs"], shared.get("trials"), None)
    return model


def _group_effects(design: Design, factor: str, shared, prior_rv, parameterization: str):
    """Add the effects of one factor to the model; return their term of the linear predictor."""
    s = safe_name(factor)
    coefs = design.factor_coefs(factor)
    J, Q = len(design.factors[factor].levels), len(coefs)
    fdim, cdim = factor_dim(factor), coef_dim(factor)
    sd = prior_rv(f"sd_{s}", [f"sd({c}|{factor})" for c in coefs], dims=cdim)
    z = pm.Normal(f"z_{s}", 0.0, 1.0, dims=(fdim, cdim)) if parameterization == "non-centered" else None
    effects, cors, start = [], [], 0
    for k, block in enumerate(design.blocks):
        if block.factor != factor:
            continue
        q = len(block.coef_names)
        sl = slice(start, start + q)
        start += q
        if block.block.correlated and q > 1:
            chol = pm.LKJCorr(f"corr_chol_{k}", n=q, eta=shared[f"corr_chol_{k}__eta"])
            corr = chol @ chol.T
            pairs = [(i, j) for j in range(q) for i in range(j)]  # the order of parameters.cor_pairs
            cors.append(corr[[i for i, _ in pairs], [j for _, j in pairs]])
            L = sd[sl][:, None] * chol
            if z is not None:
                effects.append(z[:, sl] @ L.T)
            else:
                effects.append(pm.MvNormal(f"u_{s}_{k}", mu=np.zeros(q), chol=L, shape=(J, q)))
        elif z is not None:
            effects.append(z[:, sl] * sd[sl])
        else:
            effects.append(pm.Normal(f"u_{s}_{k}", 0.0, sd[sl], shape=(J, q)))
    r = pm.Deterministic(f"r_{s}", pt.concatenate(effects, axis=1) if len(effects) > 1 else effects[0],
                         dims=(fdim, cdim))
    if cors:
        pm.Deterministic(f"cor_{s}", pt.concatenate(cors) if len(cors) > 1 else cors[0], dims=cor_dim(factor))
    g = shared[f"g_{s}"]
    Z = shared[f"Z_{s}"]
    term, zcol = 0.0, 0
    for k, coef in enumerate(coefs):
        if coef == "Intercept":
            term = term + r[:, k][g]
        else:
            term = term + Z[:, zcol] * r[:, k][g]
            zcol += 1
    return term
