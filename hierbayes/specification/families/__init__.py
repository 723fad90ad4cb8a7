"""The family registry: one :class:`Family` entry says everything about a response distribution.

An entry holds the PyMC likelihood on the linear predictor (the model; through
:mod:`hierbayes.specification.likelihood` also the pointwise log-likelihood of LOO and, by
default, draws of the response), the links it takes, its own parameters and their default
priors, which responses it accepts, and its variance. :mod:`.core` defines the entry and the
registry; each module beside it registers a group of families. Add your own with
:func:`register_family` (``docs/families.md``, "Adding a family", lists every field).

Examples
--------
>>> get_family("poisson").link
'log'
>>> get_family("bernoulli", link="probit").link
'probit'
"""

from hierbayes.specification.families import (  # noqa: F401  (register the families)
    classic,
    continuous,
    mixtures,
    nominal,
    ordinal,
    proportions,
)
from hierbayes.specification.families.continuous import asymmetric_laplace, with_quantile
from hierbayes.specification.families.core import (
    ALIASES,
    FAMILIES,
    LINKS,
    Family,
    Link,
    ResponseSummary,
    Thresholds,
    get_family,
    register_family,
)

__all__ = ["Family", "Link", "Thresholds", "FAMILIES", "LINKS", "ALIASES", "ResponseSummary", "get_family",
           "register_family", "asymmetric_laplace", "with_quantile"]
