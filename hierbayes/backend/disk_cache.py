"""The compiled-model cache on disk: where it is, when it may be read, how it is written, how large it grows.

The cache is the folder :func:`cache_dir` (``$HIERBAYES_CACHE_DIR``, else ``~/.cache/hierbayes``) with two
subfolders that hierbayes writes: ``models/`` (one pickled layout per model structure) and ``numba/``
(the machine code of the C callbacks, as numba serializes it: also a pickle). Loading a pickle can run
code, and :mod:`hierbayes.backend.compiled_cache` loads both, so the cache is used on these terms:

Safety
    The folder and its subfolders are created with mode 0700. Nothing is read from a folder (the cache
    folder, or the subfolder of the file) that is not owned by the current user or that its group or
    other users may write, nor from a file like that: such a cache is not used at all, and one
    :class:`~hierbayes.common.errors.BackendWarning` per process says which folder and why. Fits then compile
    their models as if the cache were empty and keep them in memory only.
Integrity
    Every file is written whole or not at all (a temporary file in the same folder, flushed to the disk,
    then renamed over the old one) and begins with a checksum of its contents: a truncated or damaged file
    is recognized before anything of it is unpickled, deleted, and compiled and written again.
Location
    A cache folder that cannot be created or written (under a read-only folder, below a file) costs speed,
    never a fit: one warning per process, and no disk cache.
Size
    At most ``$HIERBAYES_CACHE_MAX_MB`` megabytes (:data:`DEFAULT_MAX_MB` by default; 0 writes nothing):
    after each write, the least recently used files are deleted until the cache is under its cap. A file's
    last use is its modification time, which every load sets (not the access time, which many file systems
    do not keep).

Only files whose names hierbayes gives (:func:`is_ours`) inside the two subfolders are counted,
evicted or cleared (:func:`clear`); anything else in the folder is left alone.

Examples
--------
>>> import os, tempfile
>>> from unittest import mock
>>> with mock.patch.dict(os.environ, HIERBAYES_CACHE_DIR=tempfile.mkdtemp()):
...     write(MODELS, "0" * 64 + ".pkl", b"a compiled model")
...     print(read(MODELS, "0" * 64 + ".pkl"), usage().models, clear().files)
b'a compiled model' 1 1
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from hierbayes.common.errors import BackendWarning, HierbayesError

__all__ = ["MODELS", "CALLBACKS", "DEFAULT_MAX_MB", "MAX_MB_VARIABLE", "cache_dir", "max_bytes", "problem", "read",
           "write", "discard", "is_ours", "usage", "clear", "CacheUsage", "Cleared", "reset"]

MODELS, CALLBACKS = "models", "numba"
"""The two subfolders: compiled models' layouts, and the C callbacks' machine code."""
DEFAULT_MAX_MB = 1000.0
MAX_MB_VARIABLE = "HIERBAYES_CACHE_MAX_MB"
_MB = 1_000_000
_HEADER = b"hierbayes cache 1\n"  # then the SHA-256 of the contents, then the contents
_DIGEST = 32
_STALE_TEMPORARY = 3600.0  # seconds after which a temporary file is a crashed writer's, not a writer's

# the names hierbayes gives its files, by subfolder (callback-<key>.py312.nbi / .1.nbc: written by numba for
# earlier versions of hierbayes); temporary files: ours (.<name>.<random>.tmp) and numba's (<name>.tmp.<uuid>)
_NAMES = {
    MODELS: re.compile(r"[0-9a-f]{64}\.pkl"),
    CALLBACKS: re.compile(r"callback-[0-9a-f]{32,64}(\.nbc|\.py\d+\.nbi|\.py\d+\.\d+\.nbc)"),
}
_TEMPORARY = re.compile(r"\.(?P<ours>.+)\.[^.]+\.tmp|(?P<numbas>.+)\.tmp\.[0-9a-f]{16}")

_warned: set[str] = set()
_lock = threading.Lock()


def cache_dir() -> Path:
    """The cache folder: ``$HIERBAYES_CACHE_DIR``, else ``$XDG_CACHE_HOME/hierbayes`` or ``~/.cache/hierbayes``."""
    root = os.environ.get("HIERBAYES_CACHE_DIR")
    if root:
        return Path(root).expanduser().absolute()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").absolute() / "hierbayes"


def max_bytes() -> int:
    """The cache's cap in bytes: ``$HIERBAYES_CACHE_MAX_MB`` megabytes (10^6 bytes), :data:`DEFAULT_MAX_MB` by default.

    Raises
    ------
    HierbayesError
        When the variable is not a number of megabytes, 0 or more.
    """
    text = os.environ.get(MAX_MB_VARIABLE, "").strip()
    if not text:
        return int(DEFAULT_MAX_MB * _MB)
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes >= 0):
        raise HierbayesError(f"{MAX_MB_VARIABLE} must be a number of megabytes, 0 or more (0 keeps nothing on "
                             f"disk), not {text!r}")
    return int(megabytes * _MB)


def reset() -> None:
    """Forget which warnings this process gave (for tests)."""
    with _lock:
        _warned.clear()


# --- is the cache safe and usable -------------------------------------------------------------------

def _foreign(status: os.stat_result, what: Path) -> str | None:
    """Why a file or folder with ``status`` may hold what someone else wrote (None: only you can write it)."""
    if not hasattr(os, "geteuid"):  # Windows: no owners and modes of this kind
        return None
    if status.st_uid != os.geteuid():
        return f"{what} belongs to another user (uid {status.st_uid}; you are uid {os.geteuid()})"
    writers = [who for bit, who in ((stat.S_IWGRP, "its group"), (stat.S_IWOTH, "every user"))
               if status.st_mode & bit]
    if writers:
        return f"{what} can be written by {' and '.join(writers)} (mode {stat.S_IMODE(status.st_mode):o})"
    return None


def _folder_problem(folder: Path) -> str | None:
    """Why the existing ``folder`` cannot hold the cache (None: it can)."""
    try:
        status = folder.stat()
    except OSError as error:
        return f"{folder} cannot be read ({error.strerror or error})"
    if not stat.S_ISDIR(status.st_mode):
        return f"{folder} is not a folder"
    if reason := _foreign(status, folder):
        return reason
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} cannot be written"
    return None


def problem(kind: str | None = None) -> str | None:
    """Why the cache (or its subfolder ``kind``) cannot be used, without creating anything; None when it can.

    A folder that does not exist yet is usable when it can be created.
    """
    root = cache_dir()
    for folder in [root, *((root / k for k in (MODELS, CALLBACKS)) if kind is None else [root / kind])]:
        if folder.exists():
            if reason := _folder_problem(folder):
                return reason
            continue
        parent = folder.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return f"{folder} cannot be created: {parent} is a file"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"{folder} cannot be created: {parent} cannot be written"
    return None


def _warn(message: str) -> None:
    with _lock:
        if message in _warned:
            return
        _warned.add(message)
    package = str(Path(__file__).resolve().parent.parent)
    warnings.warn(message, BackendWarning, skip_file_prefixes=(package,))


def _folder(kind: str) -> Path | None:
    """The subfolder ``kind`` of the cache, created (mode 0700) if needed; None, after one warning per process,
    when the cache is unsafe or cannot be created or written."""
    root = cache_dir()
    folder = root / kind
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as error:
        _warn(f"hierbayes cannot keep compiled models in {root} ({error.strerror or error}): every new process "
              f"compiles them again; set HIERBAYES_CACHE_DIR to a folder you can write")
        return None
    for where in (root, folder):
        if reason := _folder_problem(where):
            _warn(f"hierbayes does not use its compile cache in {root}, because {reason}: every new process "
                  f"compiles models again; set HIERBAYES_CACHE_DIR to a folder only you can write")
            return None
    return folder


def is_ours(kind: str, name: str) -> bool:
    """Whether ``name`` in the subfolder ``kind`` is a name hierbayes gives its files (or their temporary files)."""
    if kind not in _NAMES:
        return False
    if _NAMES[kind].fullmatch(name):
        return True
    temporary = _TEMPORARY.fullmatch(name)
    return bool(temporary and _NAMES[kind].fullmatch(temporary["ours"] or temporary["numbas"]))


# --- reading and writing ------------------------------------------------------------------------------

def read(kind: str, name: str) -> bytes | None:
    """The contents of the cache file ``name`` of ``kind``; None when it is not there or the cache is not usable.

    A file that is damaged (its checksum does not match: truncated, overwritten) or that someone else may
    have written is deleted, and None returned: the caller compiles again and writes it anew. A file that is
    read is marked as used now (its modification time), for the size cap.
    """
    folder = _folder(kind)
    if folder is None:
        return None
    path = folder / name
    try:
        with open(path, "rb") as file:
            reason = _foreign(os.fstat(file.fileno()), path)
            data = None if reason else file.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        reason, data = f"it cannot be read ({error.strerror or error})", None
    if data is not None:
        contents = data[len(_HEADER) + _DIGEST:]
        if data.startswith(_HEADER) and hashlib.sha256(contents).digest() == data[len(_HEADER):][:_DIGEST]:
            try:
                os.utime(path)  # used now: the last to be evicted
            except OSError:
                pass
            return contents
        reason = "it is damaged (truncated or overwritten)"
    discard(kind, name, reason)
    return None


def discard(kind: str, name: str, reason: str) -> None:
    """Delete the cache file ``name`` of ``kind`` (it cannot be used: ``reason``), saying so once."""
    folder = cache_dir() / kind
    if is_ours(kind, name):
        try:
            (folder / name).unlink()
        except OSError:
            pass
    _warn(f"hierbayes removed {folder / name} from its compile cache, because {reason}; the model is compiled "
          f"and kept again")


def write(kind: str, name: str, contents: bytes) -> None:
    """Keep ``contents`` as the cache file ``name`` of ``kind``, whole or not at all, then hold the cache to its cap.

    Nothing is written when the cache is not usable or its cap is 0; a write that fails (a full disk)
    is said once per process and costs only the next process's compile.
    """
    if max_bytes() == 0:
        return
    folder = _folder(kind)
    if folder is None:
        return
    path = folder / name
    try:
        _write_whole(path, _HEADER + hashlib.sha256(contents).digest() + contents)
    except OSError as error:
        _warn(f"hierbayes could not keep a compiled model in {folder} ({error.strerror or error}): the next "
              f"process compiles it again")
        return
    _hold_to_cap(keep=path)


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file beside it, flushed to the disk, renamed over it."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    try:  # the rename itself, on the disk
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)


# --- size ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _File:
    path: Path
    kind: str
    size: int
    used: float  # modification time: written or last loaded


def _files() -> list[_File]:
    """Every file hierbayes wrote in the cache (none when the cache folder is someone else's)."""
    found = []
    root = cache_dir()
    for kind in (MODELS, CALLBACKS):
        try:
            entries = list(os.scandir(root / kind))
        except OSError:
            continue
        for entry in entries:
            if not is_ours(kind, entry.name):
                continue
            try:
                status = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(status.st_mode):
                found.append(_File(Path(entry.path), kind, status.st_size, status.st_mtime))
    return found


def _temporary(file: _File) -> bool:
    return _TEMPORARY.fullmatch(file.path.name) is not None


def _hold_to_cap(keep: Path) -> None:
    """Delete the least recently used files until the cache is under its cap (never ``keep``, just written)."""
    cap, files = max_bytes(), _files()
    total = sum(f.size for f in files)
    if total <= cap:
        return
    now = time.time()
    for file in sorted(files, key=lambda f: f.used):
        if total <= cap:
            break
        if file.path == keep or (_temporary(file) and now - file.used < _STALE_TEMPORARY):
            continue  # another process may be writing it
        try:
            file.path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue
        total -= file.size


@dataclass(frozen=True)
class CacheUsage:
    """What ``hierbayes cache info`` says: where the cache is, what it holds, its cap, whether it can be used."""

    location: Path
    size: int
    """Bytes in the files hierbayes wrote."""
    files: int
    models: int
    """Compiled models (layouts in ``models/``)."""
    callbacks: int
    """Compiled C callbacks (machine code in ``numba/``)."""
    cap: int
    problem: str | None
    """Why the cache cannot be used (None: it can)."""


def usage() -> CacheUsage:
    """The cache's location, size, number of entries, cap, and whether it can be used (nothing is created)."""
    files = _files()
    return CacheUsage(cache_dir(), sum(f.size for f in files), len(files),
                      sum(f.kind == MODELS and not _temporary(f) for f in files),
                      sum(f.kind == CALLBACKS and not _temporary(f) for f in files), max_bytes(), problem())


@dataclass(frozen=True)
class Cleared:
    """What :func:`clear` deleted: how many files, how many bytes."""

    files: int
    size: int


def clear() -> Cleared:
    """Delete every file hierbayes wrote in the cache (and its two subfolders when they are left empty).

    Raises
    ------
    HierbayesError
        When the cache folder belongs to another user: what is in it was not written by you.
    """
    root = cache_dir()
    for folder in (root, root / MODELS, root / CALLBACKS):
        try:
            status = folder.stat()
        except OSError:
            continue
        if hasattr(os, "geteuid") and status.st_uid != os.geteuid():
            raise HierbayesError(f"not clearing the compile cache: {folder} belongs to another user "
                                 f"(uid {status.st_uid}); set HIERBAYES_CACHE_DIR to your own cache")
    files = size = 0
    for file in _files():
        try:
            file.path.unlink()
        except OSError:
            continue
        files, size = files + 1, size + file.size
    for kind in (MODELS, CALLBACKS):
        try:
            (root / kind).rmdir()  # only when empty
        except OSError:
            pass
    return Cleared(files, size)
