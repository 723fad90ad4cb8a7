"""The benchmark models: data, formulas and structure, by suite.

Every model is written three ways from one :class:`BenchModel`: the hierbayes formula,
the bambi formula (bambi 0.21 has no correlated group effects, so a ``(x | g)`` block is
fitted uncorrelated there; ``bambi_note`` says so in the table) and a plain structure
(response, numeric fixed columns, blocks) from which the hand-written PyMC model is built.

Simulated data are drawn from a fixed seed, so every contender and every run sees the
same rows.

Examples
--------
>>> m = SUITES["tiny"][0]
>>> df = m.data()
>>> df.shape, m.formula
((240, 3), 'y ~ x + (1 | g)')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DATASETS = Path(__file__).resolve().parent.parent / "hierbayes" / "datasets"


@dataclass(frozen=True)
class Block:
    """``(1 + slopes | factor)``; ``correlated`` is ``|`` rather than ``||``."""

    factor: str
    slopes: tuple[str, ...] = ()
    correlated: bool = True


@dataclass(frozen=True)
class BenchModel:
    """One suite model: its data and the same structure in each contender's words."""

    name: str
    family: str
    response: str
    fixed: tuple[str, ...]
    blocks: tuple[Block, ...]
    data: Callable[[], pd.DataFrame]
    description: str = ""
    auxiliary: tuple[tuple[str, str], ...] = ()  # (family parameter, right-hand side): distributional parts

    @property
    def auxiliary_formulas(self) -> dict[str, str]:
        """The distributional parts as ``hb.Formula`` keywords: ``{"sigma": "~ x"}``."""
        return {name: f"~ {rhs}" for name, rhs in self.auxiliary}

    @property
    def bambi_auxiliary(self) -> list[str]:
        """The same parts as bambi's additional formulas: ``["sigma ~ x"]``."""
        return [f"{name} ~ {rhs}" for name, rhs in self.auxiliary]

    @property
    def formula(self) -> str:
        """The hierbayes (lme4) formula."""
        return self._formula(correlated=True)

    @property
    def bambi_formula(self) -> str:
        """bambi's formula: the same terms; bambi fits every block uncorrelated."""
        return self._formula(correlated=False)

    @property
    def bambi_note(self) -> str:
        """What bambi fits differently, for the table ('' when it fits the same model)."""
        if any(b.correlated and b.slopes for b in self.blocks):
            return "bambi: uncorrelated (x || g) version"
        return ""

    def _formula(self, correlated: bool) -> str:
        terms = list(self.fixed) or ["1"]
        for b in self.blocks:
            bar = "||" if correlated and not b.correlated else "|"  # bambi: one bar, always uncorrelated
            terms.append(f"({' + '.join(('1', *b.slopes))} {bar} {b.factor})")
        return f"{self.response} ~ {' + '.join(terms)}"


# --- data ---------------------------------------------------------------------------------------

def sleepstudy() -> pd.DataFrame:
    return pd.read_csv(DATASETS / "sleepstudy.csv", dtype={"Subject": str})


def radon() -> pd.DataFrame:
    df = pd.read_csv(DATASETS / "radon.csv", dtype={"county": str})
    return df[["log_radon", "floor", "county"]].astype({"floor": float})


def _levels(prefix: str, index: np.ndarray) -> pd.Categorical:
    width = len(str(int(index.max())))
    names = np.array([f"{prefix}{i:0{width}d}" for i in range(int(index.max()) + 1)])
    return pd.Categorical(names[index], categories=names)


def _correlated_effects(rng, J: int, sds: tuple[float, float], rho: float) -> np.ndarray:
    cov = np.array([[sds[0] ** 2, rho * sds[0] * sds[1]], [rho * sds[0] * sds[1], sds[1] ** 2]])
    return rng.multivariate_normal([0.0, 0.0], cov, size=J)


def _all_levels_index(rng, n: int, J: int, weights: np.ndarray | None = None) -> np.ndarray:
    """A level per row; every level appears at least once (weights: relative level sizes)."""
    p = None if weights is None else weights / weights.sum()
    g = np.concatenate([np.arange(J), rng.choice(J, size=n - J, p=p)])
    return rng.permutation(g)


def one_factor_slope(n: int, J: int, seed: int = 1) -> pd.DataFrame:
    """``y = 1 + 0.5 x + u0[g] + u1[g] x + e``; sd(u) = (0.7, 0.3), cor 0.3, sigma 1."""
    rng = np.random.default_rng(seed)
    g = _all_levels_index(rng, n, J)
    x = rng.normal(size=n)
    u = _correlated_effects(rng, J, (0.7, 0.3), 0.3)
    y = 1.0 + 0.5 * x + u[g, 0] + u[g, 1] * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g": _levels("g", g)})


def crossed(n: int, Ja: int, Jb: int, seed: int = 2, skew: float = 0.0) -> pd.DataFrame:
    """``y = 1 + 0.5 x + u[item] + v[rater] + e``; sd(u) = 0.5, sd(v) = 0.3, sigma 1.

    ``skew`` > 0 draws level sizes from a lognormal (unbalanced, partially crossed).
    """
    rng = np.random.default_rng(seed)
    wa = rng.lognormal(0, skew, Ja) if skew else None
    wb = rng.lognormal(0, skew, Jb) if skew else None
    a, b = _all_levels_index(rng, n, Ja, wa), _all_levels_index(rng, n, Jb, wb)
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.5, Ja)[a] + rng.normal(0, 0.3, Jb)[b] + rng.normal(size=n)
    # (a factor named "b" would collide with hierbayes's posterior variable b)
    return pd.DataFrame({"y": y, "x": x, "item": _levels("i", a), "rater": _levels("r", b)})


def nested(schools: int, classes: int, pupils: int, seed: int = 6) -> pd.DataFrame:
    """Pupils in classes in schools: ``y = 1 + 0.5 x + u0[school] + u1[school] x + v[class] + e``;
    sd(u) = (0.7, 0.3), cor 0.3, sd(v) = 0.5, sigma 1. Class labels are unique across schools."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(schools), classes * pupils)
    klass = np.repeat(np.arange(schools * classes), pupils)
    x = rng.normal(size=school.size)
    u = _correlated_effects(rng, schools, (0.7, 0.3), 0.3)
    y = 1.0 + 0.5 * x + u[school, 0] + u[school, 1] * x + rng.normal(0, 0.5, schools * classes)[klass]
    return pd.DataFrame({"y": y + rng.normal(size=school.size), "x": x, "school": _levels("s", school),
                         "klass": _levels("c", klass)})


def insteval_like(seed: int = 3) -> pd.DataFrame:
    """InstEval's shape: 73,421 ratings of 1,128 lecturers ``d`` by 2,972 students ``s``.

    Students rate about 25 lecturers each and lecturers get very unequal numbers of
    ratings (lognormal popularity), so the factors are partially crossed as in the real
    data; ``service`` is a binary lecture attribute.
    """
    rng = np.random.default_rng(seed)
    n, Js, Jd = 73_421, 2_972, 1_128
    s = _all_levels_index(rng, n, Js, rng.lognormal(0, 0.5, Js))
    d = _all_levels_index(rng, n, Jd, rng.lognormal(0, 1.0, Jd))
    service = (rng.random(Jd) < 0.4).astype(float)[d]
    y = (3.2 - 0.07 * service + rng.normal(0, 0.32, Js)[s] + rng.normal(0, 0.52, Jd)[d]
         + rng.normal(0, 1.18, n))
    return pd.DataFrame({"y": y, "service": service, "s": _levels("s", s), "d": _levels("d", d)})


def insteval() -> pd.DataFrame:
    """The real InstEval ratings (lme4): 73,421 ratings of 1,128 lecturers ``d`` by 2,972 students
    ``s``, each pair once; from the shared data folder next to the repository."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "InstEval.csv"
    df = pd.read_csv(path, usecols=["s", "d", "dept", "service", "y"])
    return df.assign(y=df["y"].astype(float), service=df["service"].astype(float),
                     **{factor: pd.Categorical(df[factor].astype(str)) for factor in ("s", "d", "dept")})


def movielens_like(seed: int = 7) -> pd.DataFrame:
    """MovieLens-1M's shape: 1,000,209 ratings of 3,706 movies ``item`` by 6,040 users ``user``.

    ``y = 3.6 + u[user] + v[item] + e``; sd(u) = 0.45, sd(v) = 0.5, sigma 0.9; users and movies
    of lognormal activity and popularity (partially crossed, most pairs never seen).
    """
    rng = np.random.default_rng(seed)
    n, Ju, Ji = 1_000_209, 6_040, 3_706
    u = _all_levels_index(rng, n, Ju, rng.lognormal(0, 1.0, Ju))
    i = _all_levels_index(rng, n, Ji, rng.lognormal(0, 1.5, Ji))
    y = 3.6 + rng.normal(0, 0.45, Ju)[u] + rng.normal(0, 0.5, Ji)[i] + rng.normal(0, 0.9, n)
    return pd.DataFrame({"y": y, "user": _levels("u", u), "item": _levels("m", i)})


def bernoulli_slope(n: int = 20_000, J: int = 500, seed: int = 4) -> pd.DataFrame:
    """``logit p = -0.5 + x + u0[g] + u1[g] x``; sd(u) = (0.8, 0.4), cor 0.3."""
    rng = np.random.default_rng(seed)
    g = _all_levels_index(rng, n, J)
    x = rng.normal(size=n)
    u = _correlated_effects(rng, J, (0.8, 0.4), 0.3)
    eta = -0.5 + x + u[g, 0] + u[g, 1] * x
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": _levels("g", g)})


def poisson_intercept(n: int = 10_000, J: int = 200, seed: int = 5) -> pd.DataFrame:
    """``log mu = 0.5 + 0.3 x + u[g]``; sd(u) = 0.5."""
    rng = np.random.default_rng(seed)
    g = _all_levels_index(rng, n, J)
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, J)[g])).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": _levels("g", g)})


def beta_proportions(n: int = 2_000, J: int = 50, seed: int = 7) -> pd.DataFrame:
    """``logit mu = -0.5 + 0.5 x + u[g]``, sd(u) = 0.5, precision phi = 10: proportions in (0, 1)."""
    rng = np.random.default_rng(seed)
    g = _all_levels_index(rng, n, J)
    x = rng.normal(size=n)
    mu = 1 / (1 + np.exp(-(-0.5 + 0.5 * x + rng.normal(0, 0.5, J)[g])))
    y = np.clip(rng.beta(mu * 10, (1 - mu) * 10), 1e-6, 1 - 1e-6)
    return pd.DataFrame({"y": y, "x": x, "g": _levels("g", g)})


def zero_inflated_counts(n: int = 2_000, J: int = 50, seed: int = 8) -> pd.DataFrame:
    """``log mu = 0.5 + 0.3 x + u[g]``, sd(u) = 0.5, with 30% structural zeros."""
    rng = np.random.default_rng(seed)
    g = _all_levels_index(rng, n, J)
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, J)[g])) * (rng.random(n) > 0.3)
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": _levels("g", g)})


def ordinal_ratings(n: int = 2_000, J: int = 50, seed: int = 9) -> pd.DataFrame:
    """Five ordered categories: ``P(y <= k) = logistic(tau_k - 0.8 x - u[g])``, tau = (-1.5, -0.5, 0.5, 1.5),
    sd(u) = 0.7; the response an ordered categorical of 1..5."""
    rng = np.random.default_rng(seed)
    g = _all_levels_index(rng, n, J)
    x = rng.normal(size=n)
    latent = 0.8 * x + rng.normal(0, 0.7, J)[g] + rng.logistic(size=n)
    y = 1 + np.searchsorted(np.array([-1.5, -0.5, 0.5, 1.5]), latent)
    return pd.DataFrame({"y": pd.Categorical(y, categories=[1, 2, 3, 4, 5], ordered=True), "x": x,
                         "g": _levels("g", g)})


def heteroscedastic(n: int = 2_000, J: int = 50, seed: int = 10) -> pd.DataFrame:
    """``y = 1 + 0.5 x + u[g] + e``, sd(u) = 0.5, with ``log sigma = -0.2 + 0.4 x``."""
    rng = np.random.default_rng(seed)
    g = _all_levels_index(rng, n, J)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 0.5, J)[g] + rng.normal(0, np.exp(-0.2 + 0.4 * x))
    return pd.DataFrame({"y": y, "x": x, "g": _levels("g", g)})


# --- suites ---------------------------------------------------------------------------------------

TINY = BenchModel("tiny", "gaussian", "y", ("x",), (Block("g"),), lambda: one_factor_slope(240, 12),
                  "simulated, 240 rows, 12 groups (harness check)")
SLEEPSTUDY = BenchModel("sleepstudy", "gaussian", "Reaction", ("Days",), (Block("Subject", ("Days",)),),
                        sleepstudy, "180 rows, 18 subjects")
RADON_INTERCEPT = BenchModel("radon_intercept", "gaussian", "log_radon", ("floor",), (Block("county"),),
                             radon, "919 homes, 85 counties")
RADON_SLOPE = BenchModel("radon_slope", "gaussian", "log_radon", ("floor",), (Block("county", ("floor",)),),
                         radon, "919 homes, 85 counties")
CROSSED = BenchModel("crossed_20k", "gaussian", "y", ("x",), (Block("item"), Block("rater")),
                     lambda: crossed(20_000, 300, 200), "simulated, 20,000 rows, 300 x 200 crossed levels")
BERNOULLI = BenchModel("bernoulli_20k", "bernoulli", "y", ("x",), (Block("g", ("x",)),), bernoulli_slope,
                       "simulated, 20,000 rows, 500 groups")
POISSON = BenchModel("poisson_10k", "poisson", "y", ("x",), (Block("g"),), poisson_intercept,
                     "simulated, 10,000 rows, 200 groups")
ONE_FACTOR_1M = BenchModel("one_factor_1M", "gaussian", "y", ("x",), (Block("g", ("x",)),),
                           lambda: one_factor_slope(1_000_000, 2_000), "simulated, 1,000,000 rows, 2,000 groups")
# bambi (formulae) holds a dense rows x levels dummy matrix per varying coefficient: 32 GB at 1M rows, so
# it cannot fit ONE_FACTOR_1M on a 23.5 GB machine; this tenth of it bounds bambi's ESS/s there (target 4)
ONE_FACTOR_100K = BenchModel("one_factor_100k", "gaussian", "y", ("x",), (Block("g", ("x",)),),
                             lambda: one_factor_slope(100_000, 2_000), "simulated, 100,000 rows, 2,000 groups")
NESTED = BenchModel("nested_20k", "gaussian", "y", ("x",), (Block("school", ("x",)), Block("klass")),
                    lambda: nested(200, 10, 10), "simulated, 20,000 pupils, 2,000 classes nested in 200 schools")
INSTEVAL = BenchModel("insteval_like", "gaussian", "y", ("service",), (Block("s"), Block("d")), insteval_like,
                      "simulated, 73,421 rows, 2,972 students x 1,128 lecturers, partially crossed")
INSTEVAL_REAL = BenchModel("insteval", "gaussian", "y", ("service",), (Block("s"), Block("d")), insteval,
                           "the real data, 73,421 rows, 2,972 students x 1,128 lecturers, each pair once")
INSTEVAL_DEPT = BenchModel("insteval_dept", "gaussian", "y", ("service",), (Block("s"), Block("d"), Block("dept")),
                           insteval, "the real data, 73,421 rows, 2,972 students x 1,128 lecturers x 14 departments")
MOVIELENS = BenchModel("movielens_like_1M", "gaussian", "y", (), (Block("user"), Block("item")), movielens_like,
                       "simulated, 1,000,209 rows, 6,040 users x 3,706 movies, partially crossed")

BETA = BenchModel("beta_2k", "beta", "y", ("x",), (Block("g"),), beta_proportions,
                  "simulated proportions, 2,000 rows, 50 groups")
ZERO_INFLATED = BenchModel("zip_2k", "zero_inflated_poisson", "y", ("x",), (Block("g"),), zero_inflated_counts,
                           "simulated counts with 30% extra zeros, 2,000 rows, 50 groups")
CUMULATIVE = BenchModel("cumulative_2k", "cumulative", "y", ("x",), (Block("g"),), ordinal_ratings,
                        "simulated 5-point ratings, 2,000 rows, 50 groups")
SIGMA_X = BenchModel("sigma_x_2k", "gaussian", "y", ("x",), (Block("g"),), heteroscedastic,
                     "simulated, 2,000 rows, 50 groups, sigma ~ x", auxiliary=(("sigma", "x"),))

SUITES: dict[str, list[BenchModel]] = {
    "tiny": [TINY],
    "quick": [SLEEPSTUDY, RADON_INTERCEPT, RADON_SLOPE],
    "full": [SLEEPSTUDY, RADON_INTERCEPT, RADON_SLOPE, CROSSED, BERNOULLI, POISSON, ONE_FACTOR_1M, ONE_FACTOR_100K,
             INSTEVAL, NESTED],
    "families": [BETA, ZERO_INFLATED, CUMULATIVE, SIGMA_X],
    "crossed": [INSTEVAL, INSTEVAL_REAL, INSTEVAL_DEPT, MOVIELENS],
}
MODELS: dict[str, BenchModel] = {m.name: m for models in SUITES.values() for m in models}
