"""The vocabulary every parameterization of a factor's effects shares: the factor being drawn
(:class:`FactorEffects`, with its :class:`Block` s and the :class:`FixedEffects` drawn so far), what a
parameterization returns (:class:`Effects`), and the contract itself (:class:`Parameterization`).
The parameterizations are in :mod:`hierbayes.model.parameterizations`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hierbayes.model.coordinates import factor_blocks
from hierbayes.model.correlations import correlation
from hierbayes.model.levels import Levels, all_levels
from hierbayes.specification.design import Design
from hierbayes.specification.names import FactorNames

__all__ = ["FixedEffects", "Block", "FactorEffects", "Effects", "Parameterization",
           "BEFORE_FIXED_EFFECTS", "AFTER_FIXED_EFFECTS", "LAST"]

# when a factor is drawn: the non-centered ones first (their means shift the fixed effects' priors),
# the hierarchically centred one last (its mean takes the folded factors' mean intercepts), then the
# factors drawn around a parent's effects (AroundParent: order LAST + their depth below the parent)
BEFORE_FIXED_EFFECTS, AFTER_FIXED_EFFECTS, LAST = 0, 1, 2


@dataclass(frozen=True)
class FixedEffects:
    """The fixed effects as the model samples them: ``Intercept_centered`` (``alpha``), the slopes
    ``beta``, and the mean intercepts of the factors drawn so far (:class:`Folded`)."""

    alpha: Any = None
    beta: Any = None
    mean_intercepts: tuple = ()


@dataclass
class Block:
    """One block of a factor's coefficients being drawn: its position ``k`` in ``design.blocks``, its
    coefficients and their slice ``sl`` of the factor's, and ``L = diag(sd) @ chol(corr)`` when correlated."""

    k: int
    coefs: tuple[str, ...]
    sl: slice
    factor_sd: Any
    L: Any = None

    @property
    def q(self) -> int:
        return len(self.coefs)

    @property
    def sd(self):
        """The block's SDs (a new subtensor at each use, as the model has always been written)."""
        return self.factor_sd[self.sl]

    def scale(self, z):
        """Standardized effects (levels x the block's coefficients) as effects: ``z L'``."""
        return z @ self.L.T if self.L is not None else z * self.sd

    def scale_mean(self, z_mean):
        """A standardized mean (one per coefficient) as the effects' mean: ``L z_mean``."""
        return self.L @ z_mean if self.L is not None else z_mean * self.sd


@dataclass
class FactorEffects:
    """One grouping factor's effects while they are added to the PyMC model: what a parameterization reads.

    ``centre`` (the effects' means, :class:`HierarchicallyCentered`, or per level,
    :class:`AroundParent`; None: zero) and ``levels``
    (how a block's centered effects are drawn: :func:`all_levels` or :meth:`Folded.levels`) are
    set by the parameterizations that wrap another (on a ``dataclasses.replace`` copy, which shares
    ``cors``); ``cors`` collects the correlated blocks' correlations as :meth:`blocks` draws them;
    ``parent_intercepts``: :class:`AroundParent`'s parent intercept at each level.
    """

    design: Design
    factor: str
    shared: Mapping
    sd: Any
    fixed: FixedEffects = FixedEffects()
    centre: Any = None
    levels: Callable[..., Levels] = all_levels
    cors: list = field(default_factory=list)
    parent_intercepts: Any = None

    @property
    def names(self) -> FactorNames:
        return FactorNames(self.factor, self.design.part)

    @property
    def coefs(self) -> tuple[str, ...]:
        return self.design.factor_coefs(self.factor)

    @property
    def J(self) -> int:
        return len(self.design.factors[self.factor].levels)

    def blocks(self) -> Iterator[Block]:
        """The factor's blocks in order; a correlated block's correlation is drawn when the block is reached."""
        for k, block, sl in factor_blocks(self.design, self.factor):
            q = len(block.coef_names)
            b = Block(k, block.coef_names, sl, self.sd)
            if block.block.correlated and q > 1:
                chol, cor = correlation(self.names.corr_chol(k), q, self.shared)
                self.cors.append(cor)
                b.L = self.sd[sl][:, None] * chol
            yield b

    def centre_of(self, b: Block):
        """The centre of block ``b``'s effects: zero, its coefficients' fixed effects, or per level."""
        return np.zeros(b.q) if self.centre is None else self.centre[..., b.sl]


@dataclass(frozen=True)
class Effects:
    """A factor's effects as a parameterization drew them, block by block.

    Attributes
    ----------
    recorded : list
        Per block, levels x its coefficients: ``r_<factor>`` is these less ``centre``.
    drawn : list
        Per block, what the linear predictor adds (without a folded mean intercept).
    level_means : list
        Per block, the mean over the levels of each coefficient's effects (:class:`ShearedNonCentered`).
    mean_intercept : tensor or None
        The mean varying intercept left out of ``drawn`` (:class:`Folded`).
    centre : tensor or None
        The effects' means, one per coefficient (:class:`HierarchicallyCentered`).
    through_recorded : bool
        The linear predictor reads ``r_<factor>`` itself (False: ``drawn``).
    per_level : tensor or None
        What the linear predictor takes, levels x coefficients (set by :func:`add_group_effects`).
    """

    recorded: list
    drawn: list
    level_means: list = field(default_factory=list)
    mean_intercept: Any = None
    centre: Any = None
    through_recorded: bool = True
    per_level: Any = None


class Parameterization(ABC):
    """How one grouping factor's effects are drawn: the sampler's coordinates for them.

    Examples
    --------
    The same model, its effects drawn two ways (their SDs first, then each way's own variables):

    >>> import hierbayes as hb
    >>> from hierbayes.model.parameterizations import factor_parameterizations
    >>> sleep = hb.datasets.load("sleepstudy")
    >>> for p in ("non-centered", "centered"):
    ...     m = hb.Model("Reaction ~ Days + (Days | Subject)", sleep, parameterization=p, collapse=False)
    ...     print(factor_parameterizations(m.design, p)["Subject"], [v.name for v in m.pymc_model.free_RVs][:4])
    ShearedNonCentered(coefs=('Intercept', 'Days')) ['sd_Subject', 'z_mean_Subject', 'z_contrasts_Subject', 'corr_chol_0']
    HierarchicallyCentered(inner=Centered(), coefs=('Intercept', 'Days')) ['b_slopes', 'Intercept_centered', 'sd_Subject', 'corr_chol_0']
    """

    value: ClassVar[str]  # its name in ``parameterization=``
    order: ClassVar[int] = AFTER_FIXED_EFFECTS

    @abstractmethod
    def draw(self, fx: FactorEffects) -> Effects:
        """Add the factor's variables to the model being built (its SDs are drawn) and return its effects."""

    def fixed_effect_shift(self, design: Design, factor: str, effects: Effects) -> dict[str, Any]:
        """What each fixed effect is sampled plus (none; :class:`ShearedNonCentered`: the effects' mean)."""
        return {}

    @property
    def fixed_means(self) -> tuple[str, ...]:
        """The coefficients whose fixed effect is the mean of this factor's effects (none; :class:`HierarchicallyCentered`)."""
        return ()

    def starts(self, design: Design, factor: str, alpha, beta, data: Mapping) -> dict[str, np.ndarray]:
        """Where the sampler starts this factor's variables that do not start at zero, given the
        fixed effects' starts (``Intercept_centered``, ``b_slopes``; NumPy) and the model's data
        (:func:`hierbayes.model.data.model_data`): none."""
        return {}
