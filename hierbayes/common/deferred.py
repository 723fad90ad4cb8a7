"""Heavy dependencies imported when first used, not when hierbayes is imported.

A fit whose compiled model is on disk (:func:`hierbayes.backend.compiled_cache.load_model`) needs
neither PyMC nor PyTensor nor matplotlib; importing them costs a new process about
1.5 s (``python -X importtime -c "import hierbayes"``). Modules write
``pm = deferred_import("pymc")`` and use ``pm.Normal`` as usual: the module is imported
at the first attribute access.

Examples
--------
>>> special = deferred_import("scipy.special")
>>> float(special.expit(0.0))
0.5
>>> import pickle
>>> pickle.loads(pickle.dumps(special))
<deferred import of 'scipy.special'>
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["deferred_import"]


class DeferredModule:
    """Stands for a module and imports it at the first attribute access."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        if attr.startswith("__") or attr == "_name":  # copy and pickle probe dunders on a bare instance
            raise AttributeError(attr)
        module: ModuleType = importlib.import_module(self._name)
        return getattr(module, attr)

    def __reduce__(self):
        return deferred_import, (self._name,)

    def __repr__(self) -> str:
        return f"<deferred import of {self._name!r}>"


def deferred_import(name: str) -> DeferredModule:
    """``importlib.import_module(name)``, done at the first use of an attribute."""
    return DeferredModule(name)
