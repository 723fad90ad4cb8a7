"""hierbayes: Bayesian multilevel regression from lme4/brms formulas.

The pipeline, one subpackage per stage (``docs/architecture.md`` draws it)::

    specification/  formula text + DataFrame -> ModelSpec -> Design arrays (families, priors, labels)
    model/          Design + priors -> pm.Model (parameterizations, the sampler's data contract)
    backend/        pm.Model + data -> draws (nutpie, the compiled-model cache, compatibility layer)
    posterior/      draws -> Posterior: summaries, diagnostics, predictions, checks, pooling
    viz/            plots and the HTML report;   lessons/  teaching and calibration

``api`` puts the stages behind ``hb.Model`` and ``hb.Fit``; ``cli`` is the command line;
``posterior.saved`` saves and loads fits; ``common`` holds the errors every stage raises.
Lower stages never import higher ones.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> list(fit.variance_components().index)
['sd(Intercept|Subject)', 'sd(Days|Subject)', 'cor(Intercept,Days|Subject)', 'sigma']
"""

from hierbayes import datasets
from hierbayes.api import Fit, Model, load
from hierbayes.common.errors import (
    BackendWarning,
    ConvergenceWarning,
    DataError,
    DataWarning,
    FormulaError,
    HierbayesError,
    PriorError,
)
from hierbayes.common.version import __version__
from hierbayes.lessons.calibration import calibrate
from hierbayes.lessons.clustered import icc_anova
from hierbayes.lessons.teaching import compare_parameterizations
from hierbayes.posterior.comparison import compare
from hierbayes.specification.families import Family, asymmetric_laplace, get_family, register_family
from hierbayes.specification.formula import Formula
from hierbayes.specification.priors import (
    LKJ,
    Beta,
    Exponential,
    Gamma,
    HalfCauchy,
    HalfNormal,
    HalfStudentT,
    Normal,
    StudentT,
)
from hierbayes.specification.readers import read_data

__all__ = [
    "Model", "Formula", "Fit", "compare", "load", "read_data", "datasets", "get_family", "register_family", "Family",
    "asymmetric_laplace",
    "Normal", "StudentT", "HalfNormal", "HalfStudentT", "HalfCauchy", "Exponential", "Gamma", "Beta", "LKJ",
    "HierbayesError", "FormulaError", "DataError", "PriorError", "ConvergenceWarning", "DataWarning",
    "BackendWarning",
    "compare_parameterizations",
    "calibrate", "icc_anova", "__version__",
]
