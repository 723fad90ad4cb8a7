"""Design + priors -> ``pm.Model``: the third stage.

Every array that depends on the data or on prior values enters as ``pm.Data``, so
the compiled model depends only on the *structure* (family, terms, blocks, level
counts, prior kinds). :func:`structure_key` names that structure; the sampler keeps
one compiled model per key and refits new data or new priors by swapping the data.

Group effects of a factor with J levels and Q varying coefficients:

- non-centered: ``z[J, Q] ~ Normal(0, 1)``, and for each block
  ``u = z @ L.T`` with ``L = diag(sd) @ chol(corr)`` (``chol(corr) ~ LKJ``), or
  ``u = z * sd`` for ``||`` and one-coefficient blocks. When a coefficient is also a
  fixed effect, ``z`` is drawn as its level mean ``z_mean`` and Helmert contrasts
  ``z_contrasts`` (the same iid normal ``z``), and the fixed effect is sampled plus the
  effects' mean (``Intercept_centered`` and ``beta`` then hold ``alpha + mean(u)``; ``b``
  holds the fixed effects): the sum the data fix becomes one coordinate
  (:func:`hierbayes.coordinates.sheared`, for factors whose levels are of even size);
- centered: ``u[j] ~ MvNormal(0, L L')`` per level (``Normal(0, sd)`` when independent);
  one centered factor (:func:`~hierbayes.coordinates.hierarchical_centering`: the one with the most rows per
  level) instead draws ``v[j] ~ MvNormal(mu, L L')`` centred on the fixed effects ``mu``
  of its coefficients (Gelfand, Sahu and Carlin 1995): the linear predictor uses
  ``v[j]`` in place of ``mu + u[j]`` and the posterior records ``r[j] = v[j] - mu``.
  This is the same model (a shift of unit Jacobian), and the intercept mixes much
  better when the levels hold many rows.

The fixed-effect columns other than the intercept are centred; the posterior keeps
the intercept on the original scale as ``b`` (dim ``term``) next to
``Intercept_centered``.

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> sorted(m.pymc_model.named_vars)[:4]
['Intercept_centered', 'Reaction', 'X', 'Z_Subject']
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .deferred import deferred_import
from .design import Design
from .errors import DataError
from .coordinates import (CENTERED, centred_slopes, centring_shift, effect_means, factor_blocks, fixed_shift,
                          fixed_slopes, folded_factors, helmert_rest, hierarchical_centering, less_shift,
                          parameterization_of, sheared)
from .families import Family
from .parameters import FIXED_DIM, coef_dim, cor_dim, cor_pairs, factor_dim, lkj_label, safe_name
from .priors import PRIOR_KINDS, Prior

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["build_model", "model_data", "model_coords", "initial_values", "prior_blocks", "pack_data", "structure_key", "PARAMETERIZATIONS", "response_name"]

PARAMETERIZATIONS = ("non-centered", *CENTERED)
SLOPE_DIM = "slope"


def response_name(design: Design) -> str:
    """Name of the observed variable: the response expression as an identifier."""
    return safe_name(design.spec.response.expr)


def internal_names(design: Design) -> set[str]:
    """Names the PyMC model gives its own variables, data and dims (a factor's dim may not take one).

    >>> import hierbayes as hb
    >>> {"b", "sigma", "sd_Subject"} <= internal_names(hb.Model("Reaction ~ Days + (1 | Subject)",
    ...                                                        hb.datasets.load("sleepstudy")).design)
    True
    """
    from .collapsed import STAT_NAMES

    names = {"b", "beta", "Intercept_centered", "sigma", "nu", "alpha", "X", "X_mean", "y_obs", "trials",
             "offset", FIXED_DATA, FIXED_DIM, SLOPE_DIM, response_name(design), *STAT_NAMES}
    names |= {f"{base}_{kind}" for base in ("beta", "sd") for kind in PRIOR_KINDS}
    for factor in design.factors:
        s = safe_name(factor)
        names |= {f"{prefix}_{s}" for prefix in ("z", "z_mean", "z_contrasts", "sd", "r", "cor", "g", "Z", "u", "ubar")}
        names |= {coef_dim(factor), cor_dim(factor)}
    return names


def check_factor_names(design: Design) -> None:
    """Refuse a grouping factor whose name the model already uses for one of its own variables."""
    taken = internal_names(design)
    for factor in design.factors:
        if factor in taken:
            raise DataError(f"grouping factor {factor!r} has the name of one of the model's own variables; "
                            f"rename the column (for example df.rename(columns={{{factor!r}: {factor + '_group'!r}}}))")


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


def prior_blocks(design: Design, family: Family) -> list[tuple[str, list[str], bool]]:
    """(variable, labels, scalar) of every group of parameters with a prior other than LKJ.

    A group whose labels have priors of several kinds becomes one variable per kind
    (:func:`_prior_groups`).

    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    >>> [name for name, _, _ in prior_blocks(m.design, m.family)]
    ['Intercept_centered', 'beta', 'sd_Subject', 'sigma']
    """
    slopes = [design.fixed_names[j] for j in fixed_slopes(design)]
    blocks = [("Intercept_centered", ["Intercept"], True)] if design.has_intercept else []
    if slopes:
        blocks.append(("beta", slopes, False))
    for factor in design.factors:
        blocks.append((f"sd_{safe_name(factor)}", [f"sd({c}|{factor})" for c in design.factor_coefs(factor)], False))
    return blocks + [(name, [name], True) for name, _ in family.parameters]


def initial_values(design: Design, family: Family, priors: Mapping[str, Prior],
                   data: Mapping[str, np.ndarray], parameterization: str | Mapping[str, str] = "non-centered",
                   collapse: bool = False) -> dict[str, np.ndarray]:
    """Where the sampler starts every parameter with a prior, on the sampler's scale.

    Each starts at its prior's location (PyMC's ``support_point``: ``mu``, a half
    distribution's scale, an exponential's mean), positive parameters on the log scale
    under PyMC's value name (``sigma_log__``); the effects drawn around the fixed effects
    (:func:`hierarchical_centering`) start at the fixed effects' starts. Parameters absent
    here (standardized or zero-mean group effects, correlation Cholesky factors) start at
    zero, which is the identity for a correlation. The prior values come from ``data``
    (:func:`model_data`), so new data or new priors move the start without the PyMC model.

    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
    >>> start = initial_values(m.design, m.family, m.priors, model_data(m.design, m.family, m.priors))
    >>> round(float(start["Intercept_centered"]), 1), sorted(start)
    (298.5, ['Intercept_centered', 'beta', 'sd_Subject_log__', 'sigma_log__'])
    >>> start = initial_values(m.design, m.family, m.priors, model_data(m.design, m.family, m.priors), "centered")
    >>> start["u_Subject_0"][:2].round(1)  # the level intercepts start at the fixed intercept
    array([[298.5],
           [298.5]])
    """
    out, natural = {}, {}
    for name, labels, _ in prior_blocks(design, family):
        for var, kind, idx in _prior_groups(name, labels, priors):
            spec = PRIOR_KINDS[kind]
            value = np.asarray(spec.start({p: np.asarray(data[f"{var}__{p}"]) for p in spec.parameters}), dtype=float)
            natural[name] = np.zeros(len(labels)) if name not in natural else natural[name]
            natural[name][idx] = value
            out[f"{var}_log__" if spec.support == "positive" else var] = (
                np.log(value) if spec.support == "positive" else value)
    if centering := hierarchical_centering(design, parameterization, collapse):
        factor, centred = centering
        alpha = natural["Intercept_centered"][0] if design.has_intercept else None
        means = np.array(effect_means(design, factor, centred, alpha, natural.get("beta"), data.get("X_mean")))
        intercept_only = parameterization_of(parameterization, factor) == "centered-intercept"
        for k, _, sl in factor_blocks(design, factor):
            if means[sl].any():  # centered-intercept: u holds the intercepts only, the first column
                start = means[sl][:1] if intercept_only else means[sl]
                out[f"u_{safe_name(factor)}_{k}"] = np.tile(start, (len(design.factors[factor].levels), 1))
    return out


def model_coords(design: Design) -> dict[str, list]:
    """The PyMC model's coordinates: fixed-effect terms, and each factor's levels, coefficients
    and correlation pairs (the dims of :mod:`hierbayes.parameters`)."""
    coords = {FIXED_DIM: list(design.fixed_names), SLOPE_DIM: [design.fixed_names[j] for j in fixed_slopes(design)]}
    for factor, fd in design.factors.items():
        coords[factor_dim(factor)] = list(fd.levels)
        coords[coef_dim(factor)] = list(design.factor_coefs(factor))
        pairs = cor_pairs(design, factor)
        if pairs:
            coords[cor_dim(factor)] = [f"{a},{b}" for a, b in pairs]
    return coords


def model_data(design: Design, family: Family, priors: Mapping[str, Prior],
               collapse: bool = False) -> dict[str, np.ndarray]:
    """Every ``pm.Data`` value of the model, by name: data arrays and prior parameters.

    With ``collapse``, the rows are replaced by the sufficient statistics of
    :mod:`hierbayes.collapsed`.
    """
    data: dict[str, np.ndarray] = {"y_obs": design.y}
    if design.trials is not None:
        data["trials"] = design.trials
    if design.offset is not None:
        data["offset"] = design.offset
    slopes = fixed_slopes(design)
    X = design.X[:, slopes]
    if design.has_intercept:
        data["X_mean"] = X.mean(axis=0)
        X = X - data["X_mean"]
    data["X"] = X
    for factor, fd in design.factors.items():
        s = safe_name(factor)
        data[f"g_{s}"] = fd.index
        data[f"Z_{s}"] = _factor_Z(design, factor)

    for name, labels, scalar in prior_blocks(design, family):
        for var, kind, idx in _prior_groups(name, labels, priors):
            for p in PRIOR_KINDS[kind].parameters:
                values = np.array([priors[labels[i]].values[p] for i in idx], dtype=float)
                data[f"{var}__{p}"] = values[0] if scalar else values
    for k, block in enumerate(design.blocks):
        if block.block.correlated and len(block.coef_names) > 1:
            data[f"corr_chol_{k}__eta"] = np.float64(priors[lkj_label(block)].values["eta"])
    if collapse:
        from .collapsed import collapsed_data

        data = collapsed_data(data, design)
    return data


FIXED_DATA = "fixed_data"  # the pm.Data vector holding every value whose size the structure fixes


def _is_row_data(name: str) -> bool:
    """Arrays with one entry per row (their length changes with the data, not the structure)."""
    return name in ("y_obs", "trials", "offset", "X") or name.startswith(("g_", "Z_"))


def pack_data(data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's ``pm.Data`` values: the row arrays by name, everything else in one vector.

    Prior parameters, ``X_mean`` and the collapsed sufficient statistics have sizes fixed by
    the structure, so they travel as one flat vector (``fixed_data``, in ``data``'s order):
    every separate shared variable costs numba about half a second to compile into nutpie's
    C callback (``bench/NOTES.md``).
    """
    out = {name: value for name, value in data.items() if _is_row_data(name)}
    fixed = [np.ravel(np.asarray(value, dtype=float)) for name, value in data.items() if not _is_row_data(name)]
    out[FIXED_DATA] = np.concatenate(fixed) if fixed else np.zeros(0)
    return out


def _shared_data(data: Mapping[str, np.ndarray]) -> dict:
    """``pm.Data`` for the packed values; each fixed-size value is a slice of ``fixed_data``."""
    packed = pack_data(data)
    shared = {name: pm.Data(name, value) for name, value in packed.items()}
    start = 0
    for name, value in data.items():
        if not _is_row_data(name):
            shape = np.shape(value)
            size = int(np.prod(shape))
            piece = shared[FIXED_DATA][start:start + size]
            shared[name] = piece.reshape(shape) if shape else piece[0]
            start += size
    return shared


def structure_key(design: Design, family: Family, priors: Mapping[str, Prior], parameterization,
                  collapse: bool = False) -> tuple:
    """What the compiled model depends on; equal keys can share one compiled model."""
    return (
        family.name, family.link, response_name(design), design.fixed_names,
        design.offset is not None, design.trials is not None,
        tuple((b.factor, b.coef_names, b.block.correlated, len(design.factors[b.factor].levels))
              for b in design.blocks),
        tuple((label, p.kind) for label, p in priors.items()),
        tuple(parameterization_of(parameterization, f) for f in design.factors),
        bool(collapse),
        hierarchical_centering(design, parameterization, collapse),
        tuple(sheared(design, parameterization, collapse).items()),
    )


def build_model(design: Design, family: Family, priors: Mapping[str, Prior],
                parameterization: str | Mapping[str, str] = "non-centered", collapse: bool = False) -> pm.Model:
    """Write the PyMC model of ``design`` with ``family`` and ``priors``.

    Parameters
    ----------
    design : Design
    family : Family
    priors : mapping of label -> Prior
        As returned by :func:`hierbayes.parameters.resolve_priors` (every parameter).
    parameterization : {"non-centered", "centered"} or dict of factor -> one of them
    collapse : bool
        Integrate the group effects out (:mod:`hierbayes.collapsed`; gaussian, one factor or two nested):
        the model then samples no group effects and ``parameterization`` is unused.

    Returns
    -------
    pymc.Model
    """
    data = model_data(design, family, priors, collapse)
    slopes = fixed_slopes(design)
    coords = model_coords(design)
    centering = hierarchical_centering(design, parameterization, collapse)
    centred = centering[1] if centering else ()
    alpha = beta = None

    with pm.Model(coords=coords) as model:
        shared = _shared_data(data)

        def prior_rv(name: str, labels: list[str], dims: str | None = None, scalar: bool = False, shift=None):
            """The parameters ``labels`` under their priors; with ``shift`` (a tensor, one per label;
            real-line priors only, all of which have a location ``mu``), their priors moved by it."""
            groups = _prior_groups(name, labels, priors)

            def params_of(var, kind, idx):
                params = {p: shared[f"{var}__{p}"] for p in PRIOR_KINDS[kind].parameters}
                if shift is not None:
                    params["mu"] = params["mu"] + (shift[0] if scalar else shift[idx])
                return params

            if len(groups) == 1:
                (var, kind, idx), = groups
                if scalar:
                    return PRIOR_KINDS[kind].distribution(var, **params_of(var, kind, idx))
                return PRIOR_KINDS[kind].distribution(var, **params_of(var, kind, idx), dims=dims)
            out = pt.zeros(len(labels))
            for var, kind, idx in groups:
                out = pt.set_subtensor(out[idx], PRIOR_KINDS[kind].distribution(var, **params_of(var, kind, idx),
                                                                                shape=len(idx)))
            return pm.Deterministic(name, out, dims=dims)

        # non-centered factors first: the fixed effects they share are sampled with their effects' means
        # added (see coordinates.sheared), so their priors need the effects' scales
        shear = sheared(design, parameterization, collapse)
        nc_terms, shared_means = [], {}
        for factor in shear:
            term, _, means = _group_effects(design, factor, shared, prior_rv, "non-centered",
                                            split_mean=bool(shear[factor]))
            nc_terms.append(term)
            for coef in shear[factor]:
                shared_means[coef] = shared_means.get(coef, 0.0) + means[design.factor_coefs(factor).index(coef)]
        shift = pt.stack(fixed_shift(design, shared_means, shared.get("X_mean"))) if shared_means else None

        eta = sum(nc_terms) if nc_terms else 0.0
        parts = []
        if slopes:
            beta = prior_rv("beta", [design.fixed_names[j] for j in slopes], dims=SLOPE_DIM,
                            shift=None if shift is None else shift[1:])
            if shift is not None:
                beta = beta - shift[1:]
            if not collapse:
                # column by column, not X @ beta: these fuse into the rows' loop, and the n-long BLAS
                # dot of X @ beta's gradient spins a second OpenBLAS thread (bench/NOTES.md)
                for j in range(len(slopes)):
                    if j not in centred_slopes(design, centred):  # those enter through the factor's effects
                        eta = eta + shared["X"][:, j] * beta[j]
        if design.has_intercept:
            alpha = prior_rv("Intercept_centered", ["Intercept"], scalar=True, shift=shift)
            if shift is not None:
                alpha = alpha - shift[0]
            if "Intercept" not in centred:
                eta = eta + less_shift(alpha, centring_shift(design, centred, beta, shared.get("X_mean")))
            parts.append(alpha - (shared["X_mean"] @ beta if slopes else 0.0))
        if slopes:
            parts.append(beta)
        if parts:
            b = pt.concatenate([pt.atleast_1d(p) for p in parts])
            order = (["Intercept"] if design.has_intercept else []) + coords[SLOPE_DIM]
            perm = [order.index(n) for n in design.fixed_names]  # formula order of the columns
            pm.Deterministic("b", b[perm], dims=FIXED_DIM)
        if design.offset is not None and not collapse:
            eta = eta + shared["offset"]

        if collapse:
            from .marginal_likelihood import marginal_loglik

            from .collapsed import nesting

            pair = nesting(design)
            factor = pair[0] if pair else next(iter(design.factors))
            L = _factor_cholesky(design, factor, shared, prior_rv)
            K = _factor_cholesky(design, pair[1], shared, prior_rv) if pair else None
            params = {name: prior_rv(name, [name], scalar=True) for name, _ in family.parameters}
            theta = [alpha - shared["cz_shift"]] if design.has_intercept else []
            theta = pt.concatenate([pt.atleast_1d(t) for t in theta + ([beta] if slopes else [])]) if parts else None
            pm.Potential("collapsed_loglik", marginal_loglik(shared, theta, params["sigma"], L, K))
            return model
        folded = folded_factors(design, parameterization, centering)
        mean_intercepts = []
        # the hierarchically centred factor last: its mean takes the folded factors' mean intercepts
        rest = [f for f in design.factors if f not in shear]
        for factor in sorted(rest, key=lambda f: bool(centering) and f == centering[0]):
            means = None
            if centering and factor == centering[0]:
                means = effect_means(design, factor, centred, alpha, beta, shared.get("X_mean"))
                if mean_intercepts:
                    i = design.factor_coefs(factor).index("Intercept")
                    means[i] = means[i] + sum(mean_intercepts)
            term, mean_intercept, _ = _group_effects(design, factor, shared, prior_rv,
                                                     parameterization_of(parameterization, factor), means,
                                                     fold=factor in folded)
            eta = eta + term
            if mean_intercept is not None:
                mean_intercepts.append(mean_intercept)

        if not design.fixed_names and not design.factors:
            eta = eta + pt.zeros_like(shared["y_obs"])
        params = {name: prior_rv(name, [name], scalar=True) for name, _ in family.parameters}
        mean = family.link_function.inverse_tensor(eta)
        family.likelihood_on_link(response_name(design), eta, mean, params, shared["y_obs"], shared.get("trials"),
                                  None)
    return model


def _correlation(k: int, q: int, shared):
    """Block ``k``'s Cholesky factor of its correlation matrix (LKJ prior) and its correlations."""
    chol = pm.LKJCorr(f"corr_chol_{k}", n=q, eta=shared[f"corr_chol_{k}__eta"])
    corr = chol @ chol.T
    pairs = [(i, j) for j in range(q) for i in range(j)]  # the order of parameters.cor_pairs
    return chol, corr[[i for i, _ in pairs], [j for _, j in pairs]]


def _record_correlations(factor: str, cors: list) -> None:
    if cors:
        pm.Deterministic(f"cor_{safe_name(factor)}", pt.concatenate(cors) if len(cors) > 1 else cors[0],
                         dims=cor_dim(factor))


def _factor_cholesky(design: Design, factor: str, shared, prior_rv):
    """``L = blockdiag(diag(sd) @ chol(corr))`` over all the factor's coefficients (collapsed models)."""
    coefs = design.factor_coefs(factor)
    sd = prior_rv(f"sd_{safe_name(factor)}", [f"sd({c}|{factor})" for c in coefs], dims=coef_dim(factor))
    L, cors = pt.zeros((len(coefs), len(coefs))), []
    for k, block, sl in factor_blocks(design, factor):
        q = len(block.coef_names)
        if block.block.correlated and q > 1:
            chol, cor = _correlation(k, q, shared)
            cors.append(cor)
            L = pt.set_subtensor(L[sl, sl], sd[sl][:, None] * chol)
        else:
            L = pt.set_subtensor(L[sl, sl], pt.diag(sd[sl]))
    _record_correlations(factor, cors)
    return L


def _group_effects(design: Design, factor: str, shared, prior_rv, parameterization: str, means: list | None = None,
                   fold: bool = False, split_mean: bool = False):
    """Add the effects of one factor to the model; return their term of the linear predictor,
    with ``fold`` the mean of its varying intercepts (else None), and with ``split_mean``
    the mean of the effects of each coefficient over the levels (else None).

    With ``means`` (one per coefficient, :func:`effect_means`; centered only) the effects
    are drawn around them, the linear predictor takes them as drawn and ``r_<factor>``
    records them less their means. With ``fold`` (centered only, :func:`folded_factors`)
    the block with the intercept is drawn as its level mean ``ubar_<factor>_<k>`` and the
    Helmert contrasts ``u_<factor>_<k>`` (J - 1 rows); the linear predictor leaves out the
    mean intercept, which the caller adds to the centred factor's mean.

    ``"centered-intercept"`` draws the intercepts so (``u_<factor>_<k>``, one column) and
    every slope non-centered given them: ``z_slopes_<factor>`` (J x slopes) iid ``N(0, 1)``
    and, in the intercept's correlated block, ``r_slopes = L[1:, 0] d + L[1:, 1:] z`` with
    ``d = (v - mu) / L[0, 0]`` the standardized intercepts (the conditional normal of the
    slopes given the intercept; ``d`` is the non-centered intercept, so the model is the same).
    """
    s = safe_name(factor)
    coefs = design.factor_coefs(factor)
    J = len(design.factors[factor].levels)
    fdim, cdim = factor_dim(factor), coef_dim(factor)
    sd = prior_rv(f"sd_{s}", [f"sd({c}|{factor})" for c in coefs], dims=cdim)
    z = z_mean = z_slopes = None
    if parameterization == "non-centered" and split_mean:  # see coordinates.sheared
        z_mean = pm.Normal(f"z_mean_{s}", 0.0, 1.0 / np.sqrt(J), dims=cdim)
        z = z_mean + helmert_rest(pm.Normal(f"z_contrasts_{s}", 0.0, 1.0, shape=(J - 1, len(coefs))), J)
    elif parameterization == "non-centered":
        z = pm.Normal(f"z_{s}", 0.0, 1.0, dims=(fdim, cdim))
    elif parameterization == "centered-intercept":
        z_slopes = pm.Normal(f"z_slopes_{s}", 0.0, 1.0, shape=(J, len(coefs) - 1))
        slope_col = {c: i for i, c in enumerate(c for c in coefs if c != "Intercept")}
    mu = None if means is None else pt.stack([pt.as_tensor_variable(m, dtype="float64") for m in means])
    drawn, recorded, cors, mean_intercept, level_means = [], [], [], None, []
    for k, block, sl in factor_blocks(design, factor):
        q = len(block.coef_names)
        centre = np.zeros(q) if mu is None else mu[sl]
        folded = fold and "Intercept" in block.coef_names
        rows = J - 1 if folded else J
        L = None  # the block's Cholesky factor of its covariance, when correlated
        if block.block.correlated and q > 1:
            chol, cor = _correlation(k, q, shared)
            cors.append(cor)
            L = sd[sl][:, None] * chol
        if z_slopes is not None:
            zb = z_slopes[:, [slope_col[c] for c in block.coef_names if c != "Intercept"]]
            if "Intercept" not in block.coef_names:
                effects = zb @ L.T if L is not None else zb * sd[sl]
                recorded.append(effects)
                drawn.append(effects)
                continue
            assert block.coef_names[0] == "Intercept"  # the design's order within a term
            scale = sd[sl][0]  # L[0, 0]: the first row of a correlation's Cholesky factor is (1, 0, ...)
            lead = pm.Normal(f"u_{s}_{k}", centre[0], scale, shape=(rows, 1))
            if folded:
                ubar = pm.Normal(f"ubar_{s}_{k}", 0.0, scale / np.sqrt(J), shape=1)
                contrasts = helmert_rest(lead, J)
                lead, mean_intercept = contrasts + ubar, ubar[0]
            if q > 1:
                d = (lead - centre[0]) / scale
                rest = d * L[1:, 0][None, :] + zb @ L[1:, 1:].T if L is not None else zb * sd[sl][1:]
                recorded.append(pt.concatenate([lead, rest], axis=1))
                drawn.append(pt.concatenate([contrasts if folded else lead, rest], axis=1))
            else:
                recorded.append(lead)
                drawn.append(contrasts if folded else lead)
            continue
        if L is not None:
            if z is not None:
                effects = z[:, sl] @ L.T
                if z_mean is not None:
                    level_means.append(L @ z_mean[sl])
            else:
                effects = pm.MvNormal(f"u_{s}_{k}", mu=centre, chol=L, shape=(rows, q))
            if folded:
                ubar = pm.MvNormal(f"ubar_{s}_{k}", mu=np.zeros(q), chol=L / np.sqrt(J), shape=q)
        elif z is not None:
            effects = z[:, sl] * sd[sl]
            if z_mean is not None:
                level_means.append(z_mean[sl] * sd[sl])
        else:
            effects = pm.Normal(f"u_{s}_{k}", centre, sd[sl], shape=(rows, q))
            if folded:
                ubar = pm.Normal(f"ubar_{s}_{k}", 0.0, sd[sl] / np.sqrt(J), shape=q)
        if folded:
            i = block.coef_names.index("Intercept")
            effects = helmert_rest(effects, J)
            mean_intercept = ubar[i]
            recorded.append(effects + ubar)
            drawn.append(effects + pt.set_subtensor(ubar[i], 0.0) if q > 1 else effects)
        else:
            recorded.append(effects)
            drawn.append(effects)
    v = pt.concatenate(recorded, axis=1) if len(recorded) > 1 else recorded[0]
    r = pm.Deterministic(f"r_{s}", v if mu is None else v - mu, dims=(fdim, cdim))
    _record_correlations(factor, cors)
    g = shared[f"g_{s}"]
    Z = shared[f"Z_{s}"]
    term, zcol = 0.0, 0
    # the effects as drawn: their means are in the linear predictor through them
    effect = r if mu is None and not fold else (pt.concatenate(drawn, axis=1) if len(drawn) > 1 else drawn[0])
    for k, coef in enumerate(coefs):
        if coef == "Intercept":
            term = term + effect[:, k][g]
        else:
            term = term + Z[:, zcol] * effect[:, k][g]
            zcol += 1
    return term, mean_intercept, pt.concatenate(level_means) if level_means else None
