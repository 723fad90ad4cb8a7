"""MkDocs hook: the lesson notebooks, executed, as pages of the site ("Lessons" in the nav).

The notebooks live in ``notebooks/`` beside mkdocs.yml and are committed without outputs. For the
site each one is run (a fresh kernel on this interpreter, as ``tests/integration/test_notebooks.py``
runs them) and the executed copy becomes the page ``lessons/<name>.ipynb``, which mkdocs-jupyter
renders (with ``execute: false``: the notebook arrives executed). The repository copies are never
written.

One execution serves the docs build and the notebook tests: :func:`executed` keeps each executed
notebook in ``<hierbayes cache>/notebooks/`` (``$HIERBAYES_CACHE_DIR``, which the test session
points to a temporary folder of its own), under a key of everything the outputs depend on (the
notebook, every file of the hierbayes package, the interpreter and the installed distributions'
versions). Whoever asks first runs the notebook, holding a lock, and the others read its result,
so a test session runs each notebook once however many builds and tests ask for it, and an
unchanged notebook is not run again by the next ``mkdocs build``.

A link from one lesson to another (``[lesson 3](03_crossed_random_factors.ipynb)``) is pointed at
that lesson's page; a link to a notebook that is not a lesson is a warning (an error with
``--strict``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import nbformat
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

log = logging.getLogger("mkdocs.hooks.notebooks")

SOURCE = "notebooks"  # beside mkdocs.yml
SECTION, FOLDER = "Lessons", "lessons"
TIMEOUT = 600  # seconds per cell
NOTEBOOK_LINK = re.compile(r'href="(?P<name>[^"/:#?]+\.ipynb)(?P<anchor>#[^"]*)?"')


@functools.cache
def environment_digest() -> bytes:
    """A digest of every file of the hierbayes package, the interpreter and the installed distributions."""
    import hierbayes

    digest = hashlib.sha256()
    package = Path(hierbayes.__file__).resolve().parent
    for file in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(file.relative_to(package).as_posix().encode() + b"\0" + file.read_bytes())
    versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    digest.update("\n".join([sys.version, *versions]).encode())
    return digest.digest()


def cache_key(path: Path) -> str:
    """A digest of everything an executed notebook's outputs depend on: it and :func:`environment_digest`."""
    return hashlib.sha256(environment_digest() + path.read_bytes()).hexdigest()[:32]


def cache_folder() -> Path | None:
    """``<hierbayes cache>/notebooks``, created private; None when it is not safe to read (not ours, or shared)."""
    from hierbayes.backend.disk_cache import cache_dir

    folder = cache_dir() / "notebooks"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = folder.stat()
    except OSError:
        return None
    if hasattr(os, "geteuid") and (status.st_uid != os.geteuid() or status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
        log.warning("not using %s for executed notebooks: another user may write it", folder)
        return None
    return folder


@contextmanager
def _locked(lock: Path):
    """Hold an exclusive lock on ``lock`` (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: each process may run the notebook itself
        yield
        return
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(path: Path) -> nbformat.NotebookNode:
    """Execute ``path`` in a fresh kernel of this interpreter (working folder: the notebook's own)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="hierbayes-kernel-") as root:
        spec = Path(root) / "hierbayes-docs"
        spec.mkdir()
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "hierbayes", "language": "python", "env": {"PYTHONHASHSEED": "0"},
        }))
        km = KernelManager(kernel_name="hierbayes-docs", kernel_spec_manager=KernelSpecManager(kernel_dirs=[root]))
        NotebookClient(nb, km=km, timeout=TIMEOUT, resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def executed(path: Path) -> tuple[nbformat.NotebookNode, Path | None]:
    """The notebook at ``path`` with its outputs, and the file that holds them (None if not cached).

    Read from the cache when the same notebook ran on the same package and interpreter, else run
    (a failing cell raises ``nbclient.exceptions.CellExecutionError`` with its traceback).
    """
    path = Path(path).resolve()
    folder = cache_folder()
    if folder is None:
        return run(path), None
    target = folder / f"{path.stem}-{cache_key(path)}.ipynb"
    with _locked(folder / f"{path.stem}.lock"):
        if target.is_file():
            log.info("executed notebook from the cache: %s", path.name)
            return nbformat.read(target, as_version=4), target
        log.info("executing %s", path.name)
        nb = run(path)
        partial = target.with_suffix(".tmp")
        nbformat.write(nb, partial)
        os.replace(partial, target)
        for older in folder.glob(f"{path.stem}-*.ipynb"):  # one executed copy per notebook
            if older != target:
                older.unlink(missing_ok=True)
    return nb, target


def lessons(config) -> list[Path]:
    return sorted((Path(config.config_file_path).parent / SOURCE).glob("*.ipynb"))


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns .ipynb files into pages
def on_files(files: Files, config) -> Files:
    pages = []
    for path in lessons(config):
        nb, stored = executed(path)
        if stored is None:  # no usable cache: a file of this build's own
            stored = Path(tempfile.mkdtemp(prefix="hierbayes-lessons-")) / path.name
            nbformat.write(nb, stored)
        uri = f"{FOLDER}/{path.name}"
        files.append(File.generated(config, uri, abs_src_path=str(stored)))
        pages.append(uri)
    if pages and config.nav is not None and not any(isinstance(e, dict) and SECTION in e for e in config.nav):
        config.nav.append({SECTION: pages})
    return files


def on_page_content(html: str, page, config, files: Files) -> str:
    """Point a lesson's links to other lessons at their pages."""
    if not page.file.src_uri.startswith(f"{FOLDER}/"):
        return html

    def relink(match: re.Match) -> str:
        target = files.get_file_from_path(f"{FOLDER}/{match['name']}")
        if target is None:
            log.warning("%s links to %s, which is not a lesson notebook", page.file.src_uri, match["name"])
            return match[0]
        return f'href="{get_relative_url(target.url, page.url)}{match["anchor"] or ""}"'

    return NOTEBOOK_LINK.sub(relink, html)
