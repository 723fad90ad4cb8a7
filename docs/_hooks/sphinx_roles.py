"""A Griffe extension for the API reference: Sphinx roles in the docstrings become links.

The docstrings are numpydoc, written with Sphinx roles (:func:`hierbayes.compare`,
:class:`~hierbayes.posterior.fit.Posterior`, :meth:`group_effects`). mkdocstrings reads
Markdown, where a role would show as raw text. Before the docstrings are rendered, each role
becomes an optional mkdocs-autorefs reference, resolved as Sphinx resolves it (absolute, else
from the object's class, module and package outward): a link when the target is on a page of
the site, else its name in code, never an error. ``~`` shows the last name only, as in Sphinx.

It also gives a class whose docstring is assigned at run time (``__doc__ = ...``, as
``hierbayes.Model`` and ``hierbayes.Fit`` borrow theirs) that docstring, which static analysis
cannot see.

Loaded from mkdocs.yml (``plugins: mkdocstrings: handlers: python: options: extensions``).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?P<role>func|meth|class|mod|attr|data|obj|exc|const|ref):`(?P<target>[^`]+)`")
CALLABLE_ROLES = {"func", "meth"}


def _exists(loader: griffe.GriffeLoader, path: str) -> str | None:
    """The canonical path of ``path`` if Griffe knows the object, else None."""
    try:
        found = loader.modules_collection[path]
        return found.canonical_path if found.is_alias else found.path
    except Exception:  # unknown, or an alias to something not loaded (xarray, pandas)
        return None


def resolve(obj: griffe.Object, target: str, loader: griffe.GriffeLoader) -> str | None:
    """The full path ``target`` names, seen from ``obj``'s docstring, or None."""
    target = target.lstrip(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        if found := _exists(loader, f"{scope.path}.{target}"):
            return found
        scope = scope.parent
    return _exists(loader, target)


def replace_roles(text: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str:
    """``text`` with every Sphinx role replaced by an optional cross-reference (or code)."""

    def link(match: re.Match) -> str:
        role, target = match["role"], match["target"].strip()
        if "<" in target and target.endswith(">"):  # :func:`title <target>`
            title, target = (part.strip() for part in target[:-1].split("<", 1))
        else:
            title = target.lstrip("~.")
            if target.startswith("~"):
                title = title.rsplit(".", 1)[-1]
        if role in CALLABLE_ROLES and not title.endswith(")"):
            title += "()"
        code = f"<code>{html.escape(title)}</code>"
        path = resolve(obj, target.lstrip("~"), loader)
        if path is None:
            return f"`{title}`"
        return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'

    return ROLE.sub(link, text)


class SphinxRoles(griffe.Extension):
    """Sphinx roles as cross-references, and docstrings assigned at run time."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.is_class and obj.docstring is None and "__doc__" in obj.members:
            runtime = getattr(griffe.dynamic_import(obj.path), "__doc__", None)
            if runtime:
                obj.docstring = griffe.Docstring(runtime, parent=obj, parser=loader.docstring_parser,
                                                 parser_options=loader.docstring_options)
        if obj.docstring is not None and ":`" in obj.docstring.value:
            obj.docstring.value = replace_roles(obj.docstring.value, obj, loader)
