"""nutpie through its public API only: the sampler path when the fast path's hooks are unavailable.

:func:`compile_public` is ``nutpie.compile_pymc_model`` on a private copy of the PyMC
model (``pymc.model.fgraph.clone_model``: its ``pm.Data`` are copies, so neither the
compile nor a refit touches the user's model), with hierbayes' starting values passed as
``initial_points`` and PyMC's uniform(-1, 1) jitter of every free variable
(``jitter_rvs``), as the fast path jitters its starts. :func:`refit` swaps new data of the
same structure in with nutpie's ``with_data``.

What differs from the fast path (:mod:`hierbayes.backend.compiled_cache`):

- every new structure compiles in full in every process (about 10-20 s for sleepstudy), and
  nutpie computes the model's deterministics at every draw (the fast path computes them
  after sampling, :mod:`hierbayes.backend.expansion`); :meth:`PublicModel.complete` drops the
  sampler's transformed variables, so the posterior has the fast path's variables, dims and
  coordinates;
- parameters without a hierbayes start begin at PyMC's support point (the fast path starts
  them at zero on the sampler's scale), and a refit keeps the starting values of the
  structure's first fit (nutpie's ``with_data`` keeps the initial point function), so the
  draws of a refit are not those of a fresh fit with the same seed; the posterior is the same.

Examples
--------
The posterior nutpie returns, as the fast path gives it:

>>> import numpy as np, xarray as xr
>>> public = PublicModel(compiled=None, transformed=("sigma_log__",), order=("mu", "sigma_log__", "sigma"),
...                      named=frozenset())
>>> draws = xr.Dataset({name: (("chain", "draw"), np.zeros((1, 3))) for name in ("sigma", "sigma_log__", "mu")})
>>> list(public.complete(draws).data_vars)
['mu', 'sigma']

Compiling a model this way (about 10 s for sleepstudy)::

    m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
    data = contract.model_data(m.design, m.family, m.priors, m.collapsed, m.parameterization)
    public = compile_public(m.fitting_model, contract.initial_values(m.design, m.family, m.priors, data,
                                                                     m.parameterization, m.collapsed))
    nutpie.sample(public.compiled, seed=1)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import xarray as xr

from hierbayes.backend.compat import quiet_blas
from hierbayes.backend.expansion import named_coords_only

__all__ = ["PublicModel", "compile_public", "refit"]


@dataclasses.dataclass(frozen=True)
class PublicModel:
    """nutpie's compiled model of a private copy of a PyMC model, and how to finish its draws.

    Attributes
    ----------
    compiled : nutpie.compile_pymc.CompiledPyMCModel
        What ``nutpie.sample`` runs.
    transformed : tuple of str
        The sampler's transformed variables (``sigma_log__``), dropped from the posterior.
    """

    compiled: object
    transformed: tuple[str, ...]
    order: tuple[str, ...]
    named: frozenset[str]

    def complete(self, posterior: xr.Dataset, data: Mapping[str, np.ndarray] | None = None) -> xr.Dataset:
        """nutpie's posterior as the fast path's (:meth:`hierbayes.backend.expansion.Expansion.complete`):
        without the transformed variables, in the model's order, labelled by the model's coordinates
        (``data`` is unused: nutpie computed the deterministics itself)."""
        kept = [name for name in self.order if name in posterior and name not in self.transformed]
        posterior = posterior[kept + [name for name in posterior.data_vars if name not in {*kept, *self.transformed}]]
        return named_coords_only(posterior, set(self.named))


def compile_public(model, starts: Mapping[str, np.ndarray]) -> PublicModel:
    """``nutpie.compile_pymc_model`` of a copy of ``model``, starting at ``starts``.

    Parameters
    ----------
    model : pymc.Model
        Not changed, and not referenced by the result.
    starts : mapping of value-variable name -> array
        :func:`hierbayes.model.data.initial_values` (on the sampler's scale: ``sigma_log__``).

    Returns
    -------
    PublicModel
    """
    import nutpie
    from pymc.model.fgraph import clone_model

    own = clone_model(model)
    value_to_rv = {value.name: rv for rv, value in own.rvs_to_values.items() if rv in own.free_RVs}
    initial = {}
    for name, value in starts.items():
        rv = value_to_rv[name]
        transform = own.rvs_to_transforms.get(rv)
        value = np.asarray(value, dtype=rv.dtype)
        # PyMC takes initial values on the parameter's own scale (as pymc.initial_point converts names)
        initial[rv] = value if transform is None else transform.backward(value, *rv.owner.inputs)
    with quiet_blas():
        compiled = nutpie.compile_pymc_model(own, backend="numba", initial_points=initial,
                                             jitter_rvs=set(own.free_RVs))
    transformed = tuple(own.rvs_to_values[rv].name for rv in own.free_RVs if own.rvs_to_transforms.get(rv) is not None)
    return PublicModel(compiled, transformed, _variable_order(model),
                       frozenset(dim for dims in model.named_vars_to_dims.values() for dim in dims))


def _variable_order(model) -> tuple[str, ...]:
    """The order of ``model.unobserved_value_vars`` (a copy orders its deterministics otherwise),
    read without building their graphs."""
    transformed = [rv for rv in model.free_RVs if model.rvs_to_transforms.get(rv) is not None]
    return tuple([model.rvs_to_values[rv].name for rv in model.free_RVs] + [rv.name for rv in transformed]
                 + [var.name for var in model.deterministics])


def refit(public: PublicModel, data: Mapping[str, np.ndarray]) -> PublicModel:
    """``public`` with new data of the same structure (nutpie's ``with_data``)."""
    # PyTensor drops pm.Data the graph never reads (Z of an intercept-only block): nutpie does not know them
    known = {var.name for var in public.compiled.shared_var_keys}
    return dataclasses.replace(public, compiled=public.compiled.with_data(
        **{name: value for name, value in data.items() if name in known}))
