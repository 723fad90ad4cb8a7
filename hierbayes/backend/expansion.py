"""The sampler's unconstrained draws -> every variable of the model, once, after sampling.

nutpie calls an *expand* callback at every draw to turn the sampler's unconstrained point
into the model's variables (``sd`` from ``log(sd)``, the correlations from their
transform, the Deterministics ``b``, ``r_<factor>``, ...). numba compiled that callback
for every new model structure: about 2 s CPU of a fresh machine's first sleepstudy fit
(``bench/NOTES.md``). Here nutpie stores the unconstrained point as it is (one C callback
for every model, compiled once per machine), and :meth:`Expansion.complete` computes the
rest for all draws at once from the same PyTensor graph, vectorized over the draws and run
by PyTensor's Python linker, which compiles nothing.

An :class:`Expansion` is plain data (a rewritten graph and names): it is pickled with the
compiled model on disk, so a later process needs no PyMC model to expand its draws. The
data the graph reads (centring means, the design of ``b``) are its inputs, never frozen in.

Examples
--------
>>> import numpy as np, xarray as xr
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ 1 + (1 | Subject)", hb.datasets.load("sleepstudy"), collapse=False)
>>> expansion = expansion_of(m.fitting_model)
>>> expansion.outputs[:2]
('sd_Subject', 'sigma')
>>> draws = xr.Dataset({name: (("chain", "draw", *[f"{name}_dim_{i}" for i in range(len(shape))]),
...                            np.zeros((1, 3, *shape))) for name, shape in expansion.free.items()})
>>> float(expansion.complete(draws, {})["sigma"].max())  # exp(log sigma = 0)
1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import xarray as xr

from hierbayes.backend import compat

__all__ = ["Expansion", "expansion_of", "named_coords_only", "lean_rewrites"]


@dataclass(frozen=True, eq=False)
class Expansion:
    """The variables of a model as one vectorized function of its unconstrained draws.

    Attributes
    ----------
    free : dict of name -> shape
        The sampler's variables (PyMC's value variables), in nutpie's order.
    transformed : tuple of str
        Those of ``free`` that are transforms (``sd_Subject_log__``): dropped from the posterior.
    outputs : tuple of str
        The variables computed from them, in PyMC's order.
    data : tuple of str
        The ``pm.Data`` the graph reads, by name.
    dims : dict
        Dimension names by variable (PyMC's ``named_vars_to_dims``).
    graph : pytensor.graph.fg.FunctionGraph
        Inputs: each free variable with a leading draw axis, then ``data``; outputs: ``outputs``.
    """

    free: dict[str, tuple[int, ...]]
    transformed: tuple[str, ...]
    outputs: tuple[str, ...]
    data: tuple[str, ...]
    dims: dict[str, tuple[str, ...]]
    graph: object

    @cached_property
    def _function(self):
        import pytensor
        from pytensor.compile.mode import Mode

        with lean_rewrites():  # Python implementations throughout, even for the core of a Blockwise
            return pytensor.function(self.graph.inputs, self.graph.outputs, mode=Mode(linker="py", optimizer=None),
                                     on_unused_input="ignore", accept_inplace=True)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_function"}  # the compiled function stays behind

    def complete(self, posterior: xr.Dataset, data: Mapping[str, np.ndarray]) -> xr.Dataset:
        """``posterior`` of the free variables -> the model's variables (transforms dropped).

        Parameters
        ----------
        posterior : xarray.Dataset
            Draws of every variable in ``free`` over ``(chain, draw, ...)``.
        data : mapping
            The values of the model's ``pm.Data`` by name (at least those in ``data``).
        """
        inputs = [np.asarray(data[name]) for name in self.data]
        by_chain = [self._function(*[posterior[name].values[chain].reshape(-1, *shape)  # one chain at a time:
                                     for name, shape in self.free.items()], *inputs)  # less memory in flight
                    for chain in range(posterior.sizes["chain"])]
        expanded = {}
        for name, values in zip(self.outputs, zip(*by_chain)):
            value = np.stack([np.asarray(v) for v in values])
            dims = self.dims.get(name) or tuple(f"{name}_dim_{i}" for i in range(value.ndim - 2))
            expanded[name] = (("chain", "draw", *dims), value)
        kept = posterior.drop_vars(list(self.transformed))
        return named_coords_only(kept.assign(expanded), {dim for dims in self.dims.values() for dim in dims})


def named_coords_only(posterior: xr.Dataset, named: set[str]) -> xr.Dataset:
    """``posterior`` with the coordinates of ``chain``, ``draw`` and the model's ``named`` dims only.

    nutpie labels every dim, including those of the sampler's transformed variables
    (``sd_Subject_log___dim_0``) and unnamed ones (``z_contrasts_g_dim_0``: ``0, 1, ...``);
    the posterior keeps the labels of the model's coordinates, whichever path drew it.
    """
    return posterior.drop_vars([name for name in posterior.coords if name not in {"chain", "draw", *named}])


def expansion_of(model, shapes: Mapping[str, tuple[int, ...]] | None = None) -> Expansion:
    """The :class:`Expansion` of a ``pm.Model``: its variables from its value variables.

    PyMC's own graph of each variable (``model.unobserved_value_vars``), simplified for one
    draw (with the value variables' shapes known, the transforms' shape arithmetic folds
    away), then vectorized over a leading draw axis and simplified again, so that every op
    takes all draws at once (about 0.6 s for sleepstudy's correlated model).

    Parameters
    ----------
    model : pymc.Model
    shapes : mapping, optional
        The shape of each value variable (nutpie's ``shape_info``); read at PyMC's initial
        point by default, which compiles a function.
    """
    import pytensor.tensor as pt
    from pytensor.compile import SharedVariable
    from pytensor.graph import clone_replace, graph_inputs
    from pytensor.graph.fg import FunctionGraph
    from pytensor.graph.replace import vectorize_graph
    from pytensor.graph.rewriting.utils import rewrite_graph

    free = [model.rvs_to_values[rv] for rv in model.free_RVs]
    names = {value.name for value in free}
    outputs = [var for var in model.unobserved_value_vars if var.name not in names]
    if shapes is None:
        shapes = {name: np.shape(value) for name, value in model.initial_point().items()}
    graph = _inlined(outputs)
    shared = list(dict.fromkeys(v for v in graph_inputs(graph) if isinstance(v, SharedVariable)))
    # one draw, with the value variables' shapes known: the transforms' shape arithmetic folds away
    core = {value: pt.tensor(value.name, dtype=value.dtype, shape=tuple(shapes[value.name])) for value in free}
    as_inputs = {var: var.type(name=var.name) for var in shared}
    fgraph = FunctionGraph([*core.values(), *as_inputs.values()], clone_replace(graph, {**core, **as_inputs}),
                           clone=False)
    with lean_rewrites():
        rewrite_graph(fgraph, include=("canonicalize", "stabilize", "specialize"), exclude=("fusion", "inplace"))
        batched = {value: pt.tensor(value.name, dtype=value.dtype, shape=(None, *value.type.shape))
                   for value in core.values()}
        graph = vectorize_graph(list(fgraph.outputs), batched)
        fgraph = FunctionGraph([*batched.values(), *as_inputs.values()], graph, clone=False)
        rewrite_graph(fgraph, include=("canonicalize", "specialize"), exclude=("fusion", "inplace"))
    fgraph = FunctionGraph(fgraph.inputs, fgraph.outputs, clone=True)  # without the rewriters' features
    transforms = {model.rvs_to_values[rv].name for rv in model.free_RVs if model.rvs_to_transforms.get(rv) is not None}
    return Expansion(
        free={value.name: tuple(int(n) for n in shapes[value.name]) for value in free},
        transformed=tuple(value.name for value in free if value.name in transforms),
        outputs=tuple(var.name for var in outputs), data=tuple(var.name for var in shared),
        dims={name: tuple(dims) for name, dims in model.named_vars_to_dims.items()}, graph=fgraph)


def lean_rewrites(*, in_python: bool = True):
    """PyTensor settings for building graphs quickly, as a context manager.

    New variables carry no stack trace (``traceback__limit=0``; extracting it was a quarter
    of the rewrites' time). With ``in_python``, the ops that constant folding (or a
    Python-linked function) runs are executed in Python instead of being built with g++
    (``cxx=""``); PyTensor then also caps fused elementwise loops at NumPy's 32 operands,
    so a graph meant for numba is rewritten with ``in_python=False``.
    """
    import pytensor

    return pytensor.config.change_flags(traceback__limit=0, **({"cxx": ""} if in_python else {}))


def _inlined(outputs: list) -> list:
    """``outputs`` with every ``OpFromGraph`` (``pt.pad`` in the correlations' transform) replaced by
    its inner graph, whose ops take a draw axis natively: vectorized whole, an ``OpFromGraph``
    runs once per draw in Python (0.5 s of 4,000 sleepstudy draws)."""
    from pytensor.compile.builders import OpFromGraph
    from pytensor.graph.fg import FunctionGraph
    from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter

    @node_rewriter([OpFromGraph])
    def inline(fgraph, node):
        return compat.inline_ofg_node(node)

    fgraph = FunctionGraph(outputs=outputs, clone=True, copy_inputs=False)  # the model's graph is left as it is
    dfs_rewriter(inline).rewrite(fgraph)
    return list(fgraph.outputs)
