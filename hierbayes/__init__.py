"""hierbayes: Bayesian multilevel regression from lme4/brms formulas.

The pipeline, one module per stage::

    formula.py -> design.py -> build.py -> sampling.py -> fit.py
    (text -> ModelSpec -> Design arrays -> pm.Model -> draws -> Fit summaries)

with the registries ``families.py`` and ``priors.py`` and the label map ``parameters.py``.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> list(fit.variance_components().index)
['sd(Intercept|Subject)', 'sd(Days|Subject)', 'cor(Intercept,Days|Subject)', 'sigma']
"""

__version__ = "0.1.0"

import warnings as _warnings

# nutpie compiles with numba, so PyTensor's C/BLAS linker is not on our path; its
# warning that BLAS is missing only confuses users.
_warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)

from . import datasets  # noqa: E402
from .errors import (  # noqa: E402
    ConvergenceWarning,
    DataError,
    DataWarning,
    FormulaError,
    HierbayesError,
    PriorError,
)
from .families import Family, get_family, register_family  # noqa: E402
from .fit import Fit  # noqa: E402
from .checking import compare  # noqa: E402
from .io import load_fit as load  # noqa: E402
from .model import Model  # noqa: E402
from .readers import read_data  # noqa: E402
from .priors import LKJ, Exponential, Gamma, HalfCauchy, HalfNormal, HalfStudentT, Normal, StudentT  # noqa: E402
from .teaching import compare_parameterizations  # noqa: E402
from .validation import calibrate  # noqa: E402

__all__ = [
    "Model", "Fit", "compare", "load", "read_data", "datasets", "get_family", "register_family", "Family",
    "Normal", "StudentT", "HalfNormal", "HalfStudentT", "HalfCauchy", "Exponential", "Gamma", "LKJ",
    "HierbayesError", "FormulaError", "DataError", "PriorError", "ConvergenceWarning", "DataWarning",
    "compare_parameterizations",
    "calibrate",
]
