"""Every name hierbayes gives: printed labels, PyMC variables, data and dims.

A model has four kinds of names, and this module builds every one of them; the rest of
the package looks them up here, so that a name cannot drift between the module that
writes a variable and the modules that read it (``tests/unit/test_names.py`` scans the
sources for names assembled elsewhere).

- **labels** users read in tables and type in ``priors=``: ``sd(Days|Subject)``,
  ``cor(Intercept,Days|Subject)``, ``r_Subject[308,Days]`` (fixed effects and family
  parameters are labelled by their own names: ``Days``, ``sigma``);
- **posterior variables**: ``b`` (the fixed effects), ``sd_<factor>``, ``cor_<factor>``,
  ``r_<factor>`` and the family parameters, with their **dims** ``term``,
  ``<factor>`` (the levels), ``<factor>__coef`` and ``<factor>__cor``;
- **the sampler's coordinates**, the free variables of the PyMC model:
  ``Intercept_centered``, ``b_slopes``, ``z_<factor>``, ``u_<factor>_<k>``, ``corr_chol_<k>``, ...
  (:class:`FactorNames` lists a factor's);
- **data** the PyMC model reads (:mod:`hierbayes.model.data`): ``y_obs``, ``X``,
  ``g_<factor>``, ``Z_<factor>``, the prior parameters ``<variable>__<parameter>`` and the
  collapsed model's sufficient statistics (:data:`STAT`).

A family parameter with a formula of its own (distributional regression, ``part`` below) has
the same kinds of names, marked by the parameter: labels ``sigma_Days``,
``sd(sigma_Intercept|Subject)``, ``r_Subject__sigma[308,Intercept]``; variables ``b_sigma`` (dim
``sigma_term``), ``sd_Subject__sigma``, ``r_Subject__sigma`` (dims ``Subject``, shared with the
mean's, and ``Subject__sigma__coef``); sampled ``Intercept_centered__sigma``, ``b_slopes__sigma``,
``z_Subject__sigma``, ``corr_chol__sigma_0``; data ``X__sigma``, ``g_Subject__sigma``
(:class:`FixedNames` and :class:`FactorNames` with ``part``).

A factor's name may hold characters that are not allowed in an identifier
(``school:class``); its variables use :func:`safe_name` of it, its dims and labels the name
itself.

Examples
--------
>>> names = FactorNames("Subject")
>>> names.sd, names.effects, names.coef_dim, names.sd_label("Days")
('sd_Subject', 'r_Subject', 'Subject__coef', 'sd(Days|Subject)')
>>> names.cor_label("Intercept", "Days"), names.effect_label("308", "Days"), names.block(0)
('cor(Intercept,Days|Subject)', 'r_Subject[308,Days]', 'u_Subject_0')
>>> FactorNames("school:class").effects, prior_data(SLOPES, "mu"), corr_chol(1)
('r_school_class', 'b_slopes__mu', 'corr_chol_1')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass

__all__ = ["FactorNames", "FixedNames", "part_label", "part_class", "safe_name", "factor_dim", "coef_dim", "cor_dim", "effects_var", "group_effect_label",
           "corr_chol", "prior_data", "kind_variable", "prior_variables", "log_value", "logodds_value", "cor_pair", "response_name", "is_row_data",
           "model_names", "threshold_label", "threshold_coords", "ordered_value", "category_part", "CATEGORY_PART",
           "FIXED_EFFECTS", "INTERCEPT_CENTERED", "SLOPES", "FIXED_DIM", "SLOPE_DIM", "RESPONSE_DATA", "TRIALS_DATA",
           "OFFSET_DATA", "ADDITION_DATA", "X_DATA", "X_MEAN_DATA", "FIXED_DATA", "ROW_DATA", "COLLAPSED_LOGLIK",
           "STAT", "STAT_NAMES", "THRESHOLDS", "THRESHOLDS_CENTERED", "THRESHOLD_DIM"]

# --- the fixed effects ---------------------------------------------------------------------------
FIXED_EFFECTS = "b"                       # posterior: every fixed effect on the data's scale, dim FIXED_DIM
INTERCEPT_CENTERED = "Intercept_centered"  # sampled: the intercept at the centred slope columns
SLOPES = "b_slopes"                       # sampled: the fixed slopes, dim SLOPE_DIM (not "beta": a family
                                          # parameter may take that name, brms's exgaussian's)
FIXED_DIM = "term"
SLOPE_DIM = "slope"

# --- the thresholds of an ordinal family (they take the intercept's place) ---------------------
THRESHOLDS = "thresholds"                    # posterior: the K-1 thresholds on the data's scale, dim THRESHOLD_DIM
THRESHOLDS_CENTERED = "thresholds_centered"  # sampled: the thresholds at the slope columns' means
THRESHOLD_DIM = "threshold"                  # coordinates "1" .. "K-1"

# --- the linear predictors of a nominal response (categorical, multinomial): one per category after the first ---
CATEGORY_PART = "mu"  # brms's prefix: category "car" is predicted by the part "mucar" (mucar_Intercept, r_g__mucar)


def category_part(category) -> str:
    """The part (linear predictor, as a distributional parameter's) of a nominal response's ``category``:
    brms's ``mu<category>``, the category as an identifier (:func:`safe_name`).

    >>> category_part("car"), category_part(2), category_part("on foot")
    ('mucar', 'mu2', 'muon_foot')
    """
    return f"{CATEGORY_PART}{safe_name(str(category))}"


# --- data -----------------------------------------------------------------------------------------
RESPONSE_DATA = "y_obs"
TRIALS_DATA = "trials"
OFFSET_DATA = "offset"
X_DATA = "X"            # the fixed slopes' columns, centred when there is an intercept
X_MEAN_DATA = "X_mean"  # their means
FIXED_DATA = "fixed_data"  # one vector holding every value whose size the structure fixes
ADDITION_DATA = {  # the response's addition terms (specification.additions), by argument: weights(w), cens(c, y2), ...
    "weights": "y_weights", "cens": "y_cens", "y2": "y_cens_upper", "lb": "y_lower", "ub": "y_upper", "se": "y_se"}
ROW_DATA = (RESPONSE_DATA, TRIALS_DATA, OFFSET_DATA, X_DATA,
            *ADDITION_DATA.values())  # one entry per row (with each factor's index, columns)
_INDEX, _COLUMNS = "g_", "Z_"  # the prefixes of a factor's row data (FactorNames.index, FactorNames.columns)

COLLAPSED_LOGLIK = "collapsed_loglik"  # the potential of the group effects integrated out


# --- the parts of a distributional model --------------------------------------------------------------
def _with_part(name: str, part: str | None) -> str:
    return name if part is None else f"{name}__{part}"


def part_label(coef: str, part: str | None) -> str:
    """A coefficient's printed name: its own in the mean's formula, prefixed by the family parameter
    in that parameter's formula (brms's ``sigma_Intercept``, ``sigma_Days``).

    >>> part_label("Days", None), part_label("Days", "sigma")
    ('Days', 'sigma_Days')
    """
    return coef if part is None else f"{part}_{coef}"


def part_class(cls: str, part: str | None) -> str:
    """A prior class (``"b"``, ``"Intercept"``, ``"sd"``, ``"cor"``) of a part: ``"b_sigma"``; the mean's: ``"b"``."""
    return cls if part is None else f"{cls}_{part}"


@dataclass(frozen=True)
class FixedNames:
    """The names of the fixed effects of the mean's formula (``part=None``) or of a family parameter's.

    >>> FixedNames().effects, FixedNames().dim, FixedNames().X
    ('b', 'term', 'X')
    >>> n = FixedNames("sigma")
    >>> n.effects, n.dim, n.slopes, n.intercept_centered, n.X, n.X_mean, n.slope_dim
    ('b_sigma', 'sigma_term', 'b_slopes__sigma', 'Intercept_centered__sigma', 'X__sigma', 'X_mean__sigma', 'sigma_slope')
    """

    part: str | None = None

    @property
    def effects(self) -> str:
        """Posterior variable of every fixed effect on the data's scale, dim :attr:`dim`."""
        return FIXED_EFFECTS if self.part is None else f"{FIXED_EFFECTS}_{self.part}"

    @property
    def dim(self) -> str:
        return FIXED_DIM if self.part is None else f"{self.part}_{FIXED_DIM}"

    @property
    def slope_dim(self) -> str:
        return SLOPE_DIM if self.part is None else f"{self.part}_{SLOPE_DIM}"

    @property
    def intercept_centered(self) -> str:
        return _with_part(INTERCEPT_CENTERED, self.part)

    @property
    def slopes(self) -> str:
        return _with_part(SLOPES, self.part)

    @property
    def X(self) -> str:
        return _with_part(X_DATA, self.part)

    @property
    def X_mean(self) -> str:
        return _with_part(X_MEAN_DATA, self.part)

    def label(self, coef: str) -> str:
        """:func:`part_label`."""
        return part_label(coef, self.part)


@dataclass(frozen=True)
class CollapsedStatistics:
    """Data names of the sufficient statistics of a collapsed model (:mod:`hierbayes.model.collapsed`).

    ``W`` are the fixed-effect columns, ``Z`` the factor's varying columns, ``V`` the nested
    factor's; ``first`` delimits each outer level's nested levels.
    """

    N: str = "cz_N"
    shift: str = "cz_shift"
    yy: str = "cz_yy"
    Wy: str = "cz_Wy"
    WW: str = "cz_WW"
    Zy: str = "cz_Zy"
    ZW: str = "cz_ZW"
    ZZ: str = "cz_ZZ"
    Vy: str = "cz_Vy"
    VW: str = "cz_VW"
    VV: str = "cz_VV"
    VZ: str = "cz_VZ"
    first: str = "cz_first"


STAT = CollapsedStatistics()
STAT_NAMES: tuple[str, ...] = astuple(STAT)


def safe_name(name: str) -> str:
    """A factor or response label as a plain identifier for internal variable names.

    The one place where hierbayes sanitises a name: the PyMC variables of a factor
    (``sd_<name>``, ``r_<name>``) and the observed variable (also the response's name in the
    fit's DataTree, where ``/`` may not appear) are built from it. Letters of any script stay.

    >>> safe_name("Reaction/1000"), safe_name("school:class"), safe_name("Schüler")
    ('Reaction_1000', 'school_class', 'Schüler')
    """
    return re.sub(r"\W", "_", name)


@dataclass(frozen=True)
class FactorNames:
    """The names of one grouping factor's labels, variables, data and dims.

    Parameters
    ----------
    factor : str
        The factor as the formula names it (``Subject``, ``school:class``).

    Examples
    --------
    >>> n = FactorNames("g")
    >>> n.z, n.z_mean, n.z_contrasts, n.z_slopes, n.block_mean(2), n.index, n.columns
    ('z_g', 'z_mean_g', 'z_contrasts_g', 'z_slopes_g', 'ubar_g_2', 'g_g', 'Z_g')
    """

    factor: str
    part: str | None = None  # the family parameter whose formula the factor is in (None: the mean's)

    @property
    def safe(self) -> str:
        """The factor as an identifier, with the part's suffix (``Subject__sigma``)."""
        return _with_part(safe_name(self.factor), self.part)

    @property
    def _dim_stem(self) -> str:
        return _with_part(self.factor, self.part)

    # -- the posterior's variables and dims
    @property
    def effects(self) -> str:
        """The group effects, dims (:attr:`level_dim`, :attr:`coef_dim`), as deviations from the fixed effects."""
        return f"r_{self.safe}"

    @property
    def sd(self) -> str:
        """The SD of each varying coefficient, dim :attr:`coef_dim`."""
        return f"sd_{self.safe}"

    @property
    def cor(self) -> str:
        """The correlations within correlated blocks, dim :attr:`cor_dim`."""
        return f"cor_{self.safe}"

    @property
    def level_dim(self) -> str:
        """Dim of the levels: the factor's own name (``posterior.sel(Subject="308")``), shared by every part."""
        return self.factor

    @property
    def coef_dim(self) -> str:
        """Dim of the varying coefficients (``Subject__coef``; a part's: ``Subject__sigma__coef``)."""
        return f"{self._dim_stem}__coef"

    @property
    def cor_dim(self) -> str:
        """Dim of the correlation pairs (coordinates :func:`cor_pair`)."""
        return f"{self._dim_stem}__cor"

    # -- the sampler's coordinates (hierbayes.model.parameterizations)
    @property
    def z(self) -> str:
        """Standardized effects, levels x coefficients (non-centered)."""
        return f"z_{self.safe}"

    @property
    def z_mean(self) -> str:
        """The standardized effects' mean over the levels (sheared non-centered)."""
        return f"z_mean_{self.safe}"

    @property
    def z_contrasts(self) -> str:
        """The standardized effects' Helmert contrasts (sheared non-centered)."""
        return f"z_contrasts_{self.safe}"

    @property
    def z_slopes(self) -> str:
        """The slopes' standardized effects given the intercepts (centered-intercept)."""
        return f"z_slopes_{self.safe}"

    def block(self, k: int) -> str:
        """The centered effects of block ``k`` (its position in ``design.blocks``)."""
        return f"u_{self.safe}_{k}"

    def block_mean(self, k: int) -> str:
        """The mean over the levels of block ``k``'s centered effects (folded)."""
        return f"ubar_{self.safe}_{k}"

    def partial(self, k: int, c: int) -> str:
        """The effects of coefficient ``c`` of block ``k`` drawn part-way between centered and non-centered
        (:class:`hierbayes.model.parameterizations.PartiallyCentered`)."""
        return f"t_{self.safe}_{k}_{c}"

    # -- data
    @property
    def index(self) -> str:
        """The level of each row."""
        return _INDEX + self.safe

    @property
    def columns(self) -> str:
        """The varying slopes' columns (the intercept's is all ones and not stored)."""
        return _COLUMNS + self.safe

    @property
    def level_ranks(self) -> str:
        """Each level's place when the levels are ordered by their number of rows, most first
        (a factor sampled beside one integrated out: :class:`hierbayes.model.parameterizations.CenteredByMean`)."""
        return f"rank_{self.safe}"

    @property
    def centering_weights(self) -> str:
        """Each level's weight, per coefficient, between non-centered (0) and centered (1)
        (:func:`hierbayes.model.parameterization.centering_weights`)."""
        return f"centering_{self.safe}"

    @property
    def parent_levels(self) -> str:
        """For a factor nested in another, the other's level of each of its levels
        (:func:`hierbayes.model.coordinates.nested_in`)."""
        return f"parent_{self.safe}"

    def corr_chol(self, k: int) -> str:
        """The Cholesky factor of block ``k``'s correlation matrix (:func:`corr_chol` of the part)."""
        return corr_chol(k, self.part)

    # -- labels
    def sd_label(self, coef: str) -> str:
        """``sd(Days|Subject)``; a part's coefficient carries its prefix: ``sd(sigma_Intercept|Subject)``."""
        return f"sd({part_label(coef, self.part)}|{self.factor})"

    def cor_label(self, *coefs: str) -> str:
        """``cor(Intercept,Days|Subject)``: a correlation, or with more coefficients a block's LKJ prior."""
        return f"cor({','.join(part_label(c, self.part) for c in coefs)}|{self.factor})"

    def effect_label(self, level: str, coef: str) -> str:
        """``r_Subject[308,Days]``: one group effect (a part's: ``r_Subject__sigma[308,Intercept]``)."""
        return f"r_{self._dim_stem}[{level},{coef}]"

    def names(self, blocks: Iterable[tuple[int, int]]) -> set[str]:
        """Every variable, data and dim name of this factor (its level dim aside), with ``blocks`` its blocks'
        positions and sizes."""
        out = {self.effects, self.sd, self.cor, self.z, self.z_mean, self.z_contrasts, self.z_slopes, self.index,
               self.columns, self.parent_levels, self.level_ranks, self.centering_weights, self.coef_dim, self.cor_dim}
        for k, q in blocks:
            out |= {self.block(k), self.block_mean(k), self.corr_chol(k), prior_data(self.corr_chol(k), "eta"),
                    *(self.partial(k, c) for c in range(q))}
        return out


def factor_dim(factor: str) -> str:
    """Dim of the levels of ``factor`` (:attr:`FactorNames.level_dim`)."""
    return FactorNames(factor).level_dim


def coef_dim(factor: str) -> str:
    """Dim of the varying coefficients of ``factor`` (:attr:`FactorNames.coef_dim`)."""
    return FactorNames(factor).coef_dim


def cor_dim(factor: str) -> str:
    """Dim of the correlation pairs of ``factor`` (:attr:`FactorNames.cor_dim`)."""
    return FactorNames(factor).cor_dim


def effects_var(factor: str) -> str:
    """Posterior variable of the group effects of ``factor`` (:attr:`FactorNames.effects`)."""
    return FactorNames(factor).effects


def group_effect_label(factor: str, level: str, coef: str) -> str:
    """Printed label of one group effect (:meth:`FactorNames.effect_label`)."""
    return FactorNames(factor).effect_label(level, coef)


def corr_chol(k: int, part: str | None = None) -> str:
    """The Cholesky factor of block ``k``'s correlation matrix (LKJ prior); ``k`` counts the blocks of
    the mean's formula, or of ``part``'s (``corr_chol_0``, ``corr_chol__sigma_0``)."""
    return f"corr_chol_{k}" if part is None else f"corr_chol__{part}_{k}"


def prior_data(var: str, parameter: str) -> str:
    """The data holding parameter ``parameter`` of the prior of variable ``var`` (``b_slopes__mu``)."""
    return f"{var}__{parameter}"


def kind_variable(var: str, kind: str) -> str:
    """The part of ``var`` whose priors are of ``kind``, when its labels' priors are of several kinds (``b_slopes_StudentT``)."""
    return f"{var}_{kind}"


def prior_variables(var: str, kinds: Iterable[str]) -> set[str]:
    """``var`` and its parts by prior kind (:func:`kind_variable`): what a group of labels may be sampled as.

    >>> sorted(prior_variables(SLOPES, ["Normal", "StudentT"]))
    ['b_slopes', 'b_slopes_Normal', 'b_slopes_StudentT']
    """
    return {var} | {kind_variable(var, kind) for kind in kinds}


def log_value(var: str) -> str:
    """PyMC's name of a positive variable's value on the log scale, where the sampler works (``sigma_log__``)."""
    return f"{var}_log__"


def logodds_value(var: str) -> str:
    """PyMC's name of a probability's value on the log-odds scale, where the sampler works (``zi_logodds__``)."""
    return f"{var}_logodds__"


def threshold_label(k: int) -> str:
    """Printed label of an ordinal model's ``k``-th threshold (1-based), brms's ``Intercept[k]``.

    >>> threshold_label(1), threshold_coords(4)
    ('Intercept[1]', ['1', '2', '3'])
    """
    return f"Intercept[{k}]"


def threshold_coords(n_categories: int) -> list[str]:
    """Coordinates along :data:`THRESHOLD_DIM` of a response with ``n_categories`` categories: ``"1"`` .. ``"K-1"``."""
    return [str(k) for k in range(1, n_categories)]


def ordered_value(var: str) -> str:
    """PyMC's name of an ordered vector's value (first value, log gaps), where the sampler works (``thresholds_centered_ordered__``)."""
    return f"{var}_ordered__"


def cor_pair(a: str, b: str) -> str:
    """Coordinate of the correlation of coefficients ``a`` and ``b`` along :func:`cor_dim`."""
    return f"{a},{b}"


def file_stem(kind: str, factor: str, part: str | None = None) -> str:
    """The file-safe stem of one grouping factor's table or plot in a run folder (of ``part``'s formula).

    >>> file_stem("group_effects", "school:class"), file_stem("group_effects", "g", "sigma")
    ('group_effects_school_class', 'group_effects_g__sigma')
    """
    return f"{kind}_{FactorNames(factor, part).safe}"


def response_name(design) -> str:
    """Name of the observed variable: the response expression as an identifier."""
    return safe_name(design.spec.response.expr)


def is_row_data(name: str) -> bool:
    """Data with one entry per row, whose length changes with the data rather than the structure.

    >>> is_row_data(X_DATA), is_row_data(FactorNames("g").index), is_row_data(X_MEAN_DATA)
    (True, True, False)
    """
    return name in ROW_DATA or name.startswith((_INDEX, _COLUMNS, f"{X_DATA}__"))  # a part's X__sigma


def model_names(design, prior_parameters: Mapping[str, Sequence[str]], family_parameters: Iterable[str]) -> set[str]:
    """Every name a PyMC model of ``design`` may give its variables, data and dims (the levels' dims aside).

    Parameters
    ----------
    design : Design
    prior_parameters : mapping of prior kind -> its parameters
        Every kind a prior may be of (a variable whose labels' priors are of several kinds
        splits into one variable per kind, :func:`kind_variable`).
    family_parameters : iterable of str
        The family parameters' names (they name their variables).

    Examples
    --------
    >>> import hierbayes as hb
    >>> d = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).design
    >>> names = model_names(d, {"Normal": ("mu", "sigma")}, ["sigma"])
    >>> {"r_Subject", "u_Subject_0", "corr_chol_0__eta", "b_slopes_Normal__mu", "Reaction"} <= names
    True
    """
    variables, out = set(family_parameters), set()
    for part in (design, *getattr(design, "parts", ())):  # the mean's formula, then each parameter's
        fixed = FixedNames(part.part)
        variables.add(fixed.intercept_centered)
        for var in (fixed.slopes, *(FactorNames(f, part.part).sd for f in part.factors)):
            variables |= prior_variables(var, prior_parameters)
        for factor in part.factors:
            out |= FactorNames(factor, part.part).names((k, len(b.coef_names)) for k, b in enumerate(part.blocks)
                                                        if b.factor == factor)
        out |= {fixed.effects, fixed.dim, fixed.slope_dim, fixed.X, fixed.X_mean}
    variables |= prior_variables(THRESHOLDS_CENTERED, prior_parameters)
    out |= variables | {prior_data(var, p) for var in variables for params in prior_parameters.values() for p in params}
    out |= {THRESHOLDS, THRESHOLD_DIM, ordered_value(THRESHOLDS_CENTERED)}
    return out | {*ROW_DATA, FIXED_DATA, COLLAPSED_LOGLIK, *STAT_NAMES, response_name(design)}
