"""The compile cache on disk (hierbayes.backend.disk_cache) and ``hierbayes cache``: read only from folders only
you can write, written whole and checked when read, never a reason for a fit to fail, held under its size cap.
Nothing here compiles a model (tests/integration/test_compile_cache.py runs fits through the cache)."""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
from pathlib import Path

import pytest

from hierbayes import cli
from hierbayes.backend import disk_cache
from hierbayes.backend.disk_cache import CALLBACKS, MODELS
from hierbayes.common.errors import BackendWarning, HierbayesError

ENTRY = "a" * 64 + ".pkl"
CALLBACK = "callback-" + "b" * 64 + ".nbc"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder (not created yet), and a process that has given no cache warning."""
    root = tmp_path / "cache"
    monkeypatch.setenv("HIERBAYES_CACHE_DIR", str(root))
    monkeypatch.delenv(disk_cache.MAX_MB_VARIABLE, raising=False)
    disk_cache.reset()
    yield root
    disk_cache.reset()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cache_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, BackendWarning)]


def test_the_folders_are_private_and_entries_are_written_whole_with_their_checksum(cache):
    disk_cache.write(MODELS, ENTRY, b"layout")
    disk_cache.write(CALLBACKS, CALLBACK, b"machine code")
    assert _mode(cache) == _mode(cache / MODELS) == _mode(cache / CALLBACKS) == 0o700
    data = (cache / MODELS / ENTRY).read_bytes()
    assert data.endswith(b"layout") and hashlib.sha256(b"layout").digest() in data
    assert _mode(cache / MODELS / ENTRY) == 0o600
    assert sorted(p.name for p in cache.rglob("*")) == sorted([MODELS, CALLBACKS, ENTRY, CALLBACK])  # no temporaries
    assert disk_cache.read(MODELS, ENTRY) == b"layout" and disk_cache.read(CALLBACKS, CALLBACK) == b"machine code"
    assert disk_cache.read(MODELS, "c" * 64 + ".pkl") is None  # not there


def test_a_write_that_fails_midway_leaves_the_old_entry_and_no_temporary_file(cache, monkeypatch):
    disk_cache.write(MODELS, ENTRY, b"old")

    def crash(src, dst):
        raise KeyboardInterrupt  # the process is stopped between writing and renaming

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(disk_cache.os, "replace", crash)
        disk_cache.write(MODELS, ENTRY, b"new")
    assert os.listdir(cache / MODELS) == [ENTRY]
    assert disk_cache.read(MODELS, ENTRY) == b"old"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "flipped"])
def test_a_damaged_entry_is_never_unpickled_but_removed_and_said_once(cache, damage):
    disk_cache.write(MODELS, ENTRY, b"x" * 1000)
    path = cache / MODELS / ENTRY
    data = path.read_bytes()
    damaged = {"truncated": data[:600], "garbage": os.urandom(len(data)), "empty": b"",
               "flipped": data[:-1] + bytes([data[-1] ^ 1])}[damage]
    path.write_bytes(damaged)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert disk_cache.read(MODELS, ENTRY) is None
        assert disk_cache.read(MODELS, ENTRY) is None  # gone, and not said again
    assert not path.exists()
    assert _cache_warnings(caught) == [f"hierbayes removed {path} from its compile cache, because it is damaged "
                                       f"(truncated or overwritten); the model is compiled and kept again"]
    disk_cache.write(MODELS, ENTRY, b"again")
    assert disk_cache.read(MODELS, ENTRY) == b"again"


@pytest.mark.parametrize("where", ["root", "subfolder"])
@pytest.mark.parametrize("bits, who", [(stat.S_IWGRP, "its group"), (stat.S_IWOTH, "every user")])
def test_nothing_is_read_from_or_written_to_a_folder_others_can_write(cache, where, bits, who):
    disk_cache.write(MODELS, ENTRY, b"layout")
    folder = cache if where == "root" else cache / MODELS
    folder.chmod(0o700 | bits)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert disk_cache.read(MODELS, ENTRY) is None
        disk_cache.write(MODELS, "d" * 64 + ".pkl", b"other")
        assert disk_cache.read(MODELS, ENTRY) is None
    assert (cache / MODELS / ENTRY).exists() and not (cache / MODELS / ("d" * 64 + ".pkl")).exists()
    messages = _cache_warnings(caught)
    assert len(messages) == 1  # once per process
    assert messages[0] == (f"hierbayes does not use its compile cache in {cache}, because {folder} can be written by "
                           f"{who} (mode {0o700 | bits:o}): every new process compiles models again; set "
                           f"HIERBAYES_CACHE_DIR to a folder only you can write")
    assert disk_cache.usage().problem == f"{folder} can be written by {who} (mode {0o700 | bits:o})"


def test_nothing_is_read_from_a_cache_of_another_user(cache, monkeypatch):
    disk_cache.write(MODELS, ENTRY, b"layout")
    me = os.geteuid()
    monkeypatch.setattr(disk_cache.os, "geteuid", lambda: me + 1)  # as another user sees it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert disk_cache.read(MODELS, ENTRY) is None
    assert _cache_warnings(caught) == [
        f"hierbayes does not use its compile cache in {cache}, because {cache} belongs to another user (uid {me}; "
        f"you are uid {me + 1}): every new process compiles models again; set HIERBAYES_CACHE_DIR to a folder only "
        f"you can write"]
    with pytest.raises(HierbayesError, match=f"not clearing the compile cache: {cache} belongs to another user"):
        disk_cache.clear()
    assert (cache / MODELS / ENTRY).exists()


def test_a_file_others_can_write_is_not_read(cache):
    disk_cache.write(MODELS, ENTRY, b"layout")
    (cache / MODELS / ENTRY).chmod(0o666)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert disk_cache.read(MODELS, ENTRY) is None
    assert not (cache / MODELS / ENTRY).exists()
    assert _cache_warnings(caught)[0].endswith("can be written by its group and every user (mode 666); the model "
                                               "is compiled and kept again")


@pytest.mark.parametrize("location", ["below a file", "a file"])
def test_a_location_that_cannot_be_created_costs_speed_not_the_fit(tmp_path, monkeypatch, location):
    (tmp_path / "notes.txt").write_text("mine")
    root = tmp_path / "notes.txt" / "cache" if location == "below a file" else tmp_path / "notes.txt"
    monkeypatch.setenv("HIERBAYES_CACHE_DIR", str(root))
    disk_cache.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        disk_cache.write(MODELS, ENTRY, b"layout")
        assert disk_cache.read(MODELS, ENTRY) is None
        disk_cache.write(CALLBACKS, CALLBACK, b"code")
    messages = _cache_warnings(caught)
    assert len(messages) == 1 and messages[0].startswith(f"hierbayes cannot keep compiled models in {root} (")
    assert messages[0].endswith("every new process compiles them again; set HIERBAYES_CACHE_DIR to a folder you "
                                "can write")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    expected = (f"{root} cannot be created: {tmp_path / 'notes.txt'} is a file" if location == "below a file"
                else f"{root} is not a folder")
    assert disk_cache.usage().problem == expected
    disk_cache.reset()


def _write_at(name: str, kind: str, size: int, when: float) -> Path:
    disk_cache.write(kind, name, b"x" * size)
    path = disk_cache.cache_dir() / kind / name
    os.utime(path, (when, when))
    return path


def test_the_least_recently_used_files_go_when_the_cache_is_over_its_cap(cache, monkeypatch):
    monkeypatch.setenv(disk_cache.MAX_MB_VARIABLE, "0.01")  # 10,000 bytes
    names = [f"{i}" * 64 + ".pkl" for i in range(4)]
    paths = [_write_at(name, MODELS, 1500, when=1_000_000 + i) for i, name in enumerate(names)]
    callback = _write_at(CALLBACK, CALLBACKS, 1500, when=1_000_010)
    assert all(p.exists() for p in paths) and disk_cache.usage().size < 10_000
    assert disk_cache.read(MODELS, names[0]) == b"x" * 1500  # used now: the most recent
    disk_cache.write(MODELS, "e" * 64 + ".pkl", b"y" * 4000)  # over the cap: the two least recently used go
    assert [p.exists() for p in paths] == [True, False, False, True]
    assert callback.exists() and disk_cache.usage().size <= 10_000
    usage = disk_cache.usage()
    assert (usage.models, usage.callbacks, usage.cap) == (3, 1, 10_000)


def test_the_cap_is_a_number_of_megabytes(cache, monkeypatch):
    assert disk_cache.max_bytes() == 1_000_000_000  # 1 GB by default
    for bad in ("lots", "-1", "nan", "inf"):
        monkeypatch.setenv(disk_cache.MAX_MB_VARIABLE, bad)
        with pytest.raises(HierbayesError, match=f"HIERBAYES_CACHE_MAX_MB must be a number of megabytes, 0 or more "
                                                 rf"\(0 keeps nothing on disk\), not '{bad}'"):
            disk_cache.max_bytes()
    monkeypatch.setenv(disk_cache.MAX_MB_VARIABLE, "0")
    disk_cache.write(MODELS, ENTRY, b"layout")
    assert not cache.exists()


def test_only_files_hierbayes_wrote_are_counted_and_cleared(cache):
    disk_cache.write(MODELS, ENTRY, b"layout")
    disk_cache.write(CALLBACKS, CALLBACK, b"code" * 100)
    old_numba = ["callback-" + "c" * 32 + ".py312.nbi", "callback-" + "c" * 32 + ".py312.1.nbc"]
    for name in old_numba:  # written by numba for earlier versions of hierbayes
        (cache / CALLBACKS / name).write_bytes(b"old")
    mine = [cache / "notes.txt", cache / MODELS / "results.pkl"]
    for path in mine:
        path.write_text("the user's")
    usage = disk_cache.usage()
    assert (usage.files, usage.models, usage.callbacks) == (4, 1, 3)
    cleared = disk_cache.clear()
    assert cleared.files == 4 and cleared.size == usage.size
    assert all(path.read_text() == "the user's" for path in mine)
    assert not (cache / CALLBACKS).exists() and (cache / MODELS).exists()  # emptied folders go, others stay
    assert disk_cache.is_ours(MODELS, ".%s.k2j3h4g5.tmp" % ENTRY) and not disk_cache.is_ours(MODELS, "fit.nc")


# --- hierbayes cache info / clear --------------------------------------------------------------------

def test_cache_info_says_where_what_how_much_and_whether_it_is_used(cache, capsys, monkeypatch):
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert out == (f"hierbayes cache: {cache}\n  usable: yes\n  size: 0.0 MB in 0 files (0 compiled models, "
                   f"0 compiled callbacks)\n  cap: 1000 MB (set HIERBAYES_CACHE_MAX_MB to change it)\n")
    disk_cache.write(MODELS, ENTRY, b"x" * 250_000)
    disk_cache.write(CALLBACKS, CALLBACK, b"x" * 1_000_000)
    monkeypatch.setenv(disk_cache.MAX_MB_VARIABLE, "20")
    cache.chmod(0o770)
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "  size: 1.3 MB in 2 files (1 compiled models, 1 compiled callbacks)\n" in out
    assert f"  usable: no: {cache} can be written by its group (mode 770)\n" in out
    assert out.endswith("  cap: 20 MB (set HIERBAYES_CACHE_MAX_MB to change it)\n")
    monkeypatch.setenv(disk_cache.MAX_MB_VARIABLE, "a lot")
    assert cli.main(["cache", "info"]) == 2
    assert "hierbayes: error: HIERBAYES_CACHE_MAX_MB must be a number of megabytes" in capsys.readouterr().err


def test_cache_clear_removes_what_hierbayes_wrote_and_says_how_much(cache, capsys):
    assert cli.main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == f"hierbayes: the compile cache {cache} holds nothing to remove\n"
    disk_cache.write(MODELS, ENTRY, b"x" * 1_500_000)
    disk_cache.write(CALLBACKS, CALLBACK, b"x")
    (cache / "keep.txt").write_text("the user's")
    assert cli.main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == f"hierbayes: removed 2 files (1.5 MB) from the compile cache {cache}\n"
    assert [p.name for p in cache.iterdir()] == ["keep.txt"]
