"""The run folder never loses work: what the command line may replace, refuse, and leave as it was.

A rerun replaces only the files the earlier run's manifest lists (and only plain run-file names
that are regular files in the folder); anything else is refused, or kept with ``--force``; a
failed, interrupted (Ctrl-C, simulated and real) or refused run leaves an earlier run's folder
byte for byte as it was, and nothing beside it. Every fit has the structure of
``Reaction ~ Days + (Days | Subject)`` (the demo's), compiled once per module.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hierbayes as hb
from hierbayes import cli
from hierbayes.viz import report

FORMULA = "Reaction ~ Days + (Days | Subject)"
FAST = ["--draws", "100", "--tune", "100", "--chains", "2", "--seed", "3", "--no-progress"]


def run(argv) -> tuple[int, str, str]:
    """``hierbayes argv`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry under ``folder`` (links as their target text, folders as a mark), for byte comparisons."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            entries[key] = b"-> " + os.readlink(path).encode()
        elif path.is_dir():
            entries[key] = b"<folder>"
        else:
            entries[key] = path.read_bytes()
    return entries


@pytest.fixture(scope="module")
def fit(sleepstudy) -> hb.Fit:
    return hb.Model(FORMULA, sleepstudy).fit(draws=100, tune=100, chains=2, seed=3, progressbar=False, warn=False)


@pytest.fixture
def earlier_run(fit, tmp_path) -> Path:
    """A complete run folder, as an earlier ``hierbayes fit`` left it."""
    out = tmp_path / "runs" / "sleep"
    cli.write_run(fit, out, about={"command": "earlier"})
    return out


def manifest(out: Path) -> dict:
    return json.loads((out / cli.RUN_MANIFEST).read_text())


# --- what a rerun replaces -------------------------------------------------------------------------

def test_a_rerun_into_a_folder_with_a_file_of_the_users_is_refused_and_changes_nothing(csv_path, earlier_run):
    (earlier_run / "notes.txt").write_text("my notes on this run")
    before = snapshot(earlier_run.parent)
    code, stdout, stderr = run(["fit", csv_path, FORMULA, *FAST, "--out", earlier_run])
    assert code == 2 and stdout == ""  # refused before fitting
    assert stderr == (f"hierbayes: error: output folder {str(earlier_run)!r} holds 'notes.txt', which hierbayes did "
                      "not write; choose another --out, or pass --force to write the run beside them (they are kept)\n")
    assert snapshot(earlier_run.parent) == before


def test_force_writes_beside_the_users_files_and_replaces_only_the_earlier_runs(csv_path, earlier_run):
    (earlier_run / "notes.txt").write_text("my notes on this run")
    (earlier_run / "data").mkdir()
    (earlier_run / "data" / "raw.csv").write_text("a,b\n1,2\n")
    (earlier_run / "shrinkage_Old.png").write_bytes(b"an earlier run's plot of a factor now gone")
    listed = manifest(earlier_run)
    (earlier_run / cli.RUN_MANIFEST).write_text(json.dumps({**listed, "files": [*listed["files"], "shrinkage_Old.png"]}))
    code, _, stderr = run(["fit", csv_path, FORMULA, *FAST, "--out", earlier_run, "--force"])
    assert code in (0, 1), stderr
    assert (earlier_run / "notes.txt").read_text() == "my notes on this run"
    assert (earlier_run / "data" / "raw.csv").read_text() == "a,b\n1,2\n"
    assert not (earlier_run / "shrinkage_Old.png").exists()  # the earlier run's, not written again: removed
    new = manifest(earlier_run)
    assert new["command"] == "fit" and "notes.txt" not in new["files"] and "data" not in new["files"]
    assert {p.name for p in earlier_run.iterdir()} == {*new["files"], "notes.txt", "data"}
    assert sorted(p.name for p in earlier_run.parent.iterdir()) == ["sleep"]  # no temporary or set-aside folder


def test_a_folder_with_a_manifest_is_never_replaced_whole(csv_path, tmp_path):
    """The trial's accident: a thesis folder that happened to hold a hierbayes-run.json."""
    thesis = tmp_path / "thesis"
    (thesis / "data").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("three years of work")
    (thesis / "data" / "survey.csv").write_text("y,x\n1,2\n")
    (thesis / cli.RUN_MANIFEST).write_text(json.dumps({"files": ["summary.csv", cli.RUN_MANIFEST]}))
    before = snapshot(thesis)
    code, _, stderr = run(["fit", csv_path, FORMULA, *FAST, "--out", thesis])
    assert code == 2 and "holds 'data' and 1 other files or folders, which hierbayes did not write" in stderr
    assert snapshot(thesis) == before
    code, _, stderr = run(["fit", csv_path, FORMULA, *FAST, "--out", thesis, "--force"])
    assert code in (0, 1), stderr
    after = snapshot(thesis)
    assert {k: v for k, v in after.items() if k in before and k != cli.RUN_MANIFEST} == \
        {k: v for k, v in before.items() if k != cli.RUN_MANIFEST}


def test_a_manifest_is_never_believed_about_paths_outside_the_folder_or_links(csv_path, earlier_run, fit):
    outside = earlier_run.parent / "precious.txt"
    outside.write_text("not the run's")
    (earlier_run / "thesis.docx").write_text("mine")
    (earlier_run / "sub").mkdir()
    (earlier_run / "sub" / "summary.csv").write_text("mine too")
    listed = manifest(earlier_run)["files"]
    lies = ["../precious.txt", str(outside), "thesis.docx", "sub/summary.csv", "sub", "..", "/"]
    (earlier_run / cli.RUN_MANIFEST).write_text(json.dumps({"files": [*listed, *lies]}))
    cli.write_run(fit, earlier_run, force=True)
    assert outside.read_text() == "not the run's"
    assert (earlier_run / "thesis.docx").read_text() == "mine"
    assert (earlier_run / "sub" / "summary.csv").read_text() == "mine too"
    # a run file replaced by a link to a file of the user's is not the run's any more: never overwritten
    (earlier_run / "trace.png").unlink()
    (earlier_run / "trace.png").symlink_to(outside)
    before = snapshot(earlier_run.parent)
    with pytest.raises(hb.HierbayesError, match=r"holds 'trace\.png', which hierbayes did not write and the run "
                                                r"would overwrite, even with --force"):
        cli.write_run(fit, earlier_run, force=True)
    assert snapshot(earlier_run.parent) == before


def test_an_unreadable_manifest_makes_nothing_ours(earlier_run, fit):
    (earlier_run / cli.RUN_MANIFEST).write_text("{ not json")
    before = snapshot(earlier_run)
    with pytest.raises(hb.HierbayesError, match="which hierbayes did not write"):
        cli.write_run(fit, earlier_run)
    with pytest.raises(hb.HierbayesError, match="holds 'diagnostics.csv', which hierbayes did not write and the run"):
        cli.write_run(fit, earlier_run, force=True)
    assert snapshot(earlier_run) == before


def test_a_failed_move_is_undone_and_the_earlier_run_stays_whole(earlier_run, fit, monkeypatch):
    (earlier_run / "notes.txt").write_text("mine")
    before = snapshot(earlier_run.parent)
    replace, calls = os.replace, []

    def fails_on_the_fifth(source, target):
        calls.append(target)
        if len(calls) == 5:  # the earlier files set aside, some new ones moved in
            raise OSError(5, "Input/output error")
        replace(source, target)

    monkeypatch.setattr(cli.os, "replace", fails_on_the_fifth)
    with pytest.raises(OSError, match="Input/output error"):
        cli.write_run(fit, earlier_run, force=True)
    monkeypatch.undo()
    assert snapshot(earlier_run.parent) == before


def test_a_failed_first_run_leaves_no_folder_it_made(fit, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full while drawing the plots")

    monkeypatch.setattr(report, "report_images", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        cli.write_run(fit, tmp_path / "new" / "deeper" / "run")
    assert list(tmp_path.iterdir()) == []


# --- where a run may go ---------------------------------------------------------------------------

def test_out_must_be_writable(fit, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    mkdtemp = cli.tempfile.mkdtemp

    def read_only(*args, dir=None, **kwargs):  # a read-only folder (root may write anywhere, so simulated)
        if Path(dir) == locked:
            raise PermissionError(13, "Permission denied")
        return mkdtemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(cli.tempfile, "mkdtemp", read_only)
    for out in (locked / "run", locked / "a" / "b"):
        with pytest.raises(hb.HierbayesError, match=rf"cannot write the output folder '{out}': '{locked}' is not "
                                                    r"writable \(Permission denied\)"):
            cli.write_run(fit, out)
    assert list(locked.iterdir()) == []


# --- Ctrl-C ----------------------------------------------------------------------------------------

def _interrupt_sampling(monkeypatch, how: str) -> None:
    """Ctrl-C a moment into nutpie's wait, or nutpie's own answer to it (the NaN-padded trace so far)."""
    from nutpie.sample import _BackgroundSampler

    wait = _BackgroundSampler.wait

    def interrupted(self, *, timeout=None):
        time.sleep(0.5)
        if how == "padded":
            return self.abort()
        signal.raise_signal(signal.SIGINT)
        return wait(self, timeout=timeout)

    monkeypatch.setattr(_BackgroundSampler, "wait", interrupted)


@pytest.fixture
def python_ctrl_c():
    """Python's own SIGINT handler, as a command-line process has it: a tool run earlier in the same test
    worker may have left another one, and then Ctrl-C is not a KeyboardInterrupt that sampling can stop on."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("how", ["ctrl-c", "padded"])
def test_an_interrupted_rerun_exits_130_and_leaves_the_earlier_run_untouched(csv_path, earlier_run, monkeypatch, how,
                                                                             python_ctrl_c):
    before = snapshot(earlier_run.parent)
    _interrupt_sampling(monkeypatch, how)
    code, stdout, stderr = run(["fit", csv_path, FORMULA, "--draws", "200000", "--tune", "100", "--chains", "2",
                                "--no-progress", "--out", earlier_run])
    assert code == 130
    assert stderr == ("hierbayes: interrupted; no output folder was written (an earlier run's folder is as it "
                      "was)\n")
    assert stdout == ""  # no summary of a fit that is not one
    assert snapshot(earlier_run.parent) == before


def test_ctrl_c_in_a_real_process_stops_sampling_and_keeps_the_earlier_run(sleepstudy, earlier_run):
    """SIGINT to ``python -m hierbayes demo`` while it samples: exit 130, one line, the earlier run intact."""
    hb.Model(FORMULA, sleepstudy).fit(draws=10, tune=10, chains=1, progressbar=False, warn=False)  # compiled on disk
    before = snapshot(earlier_run.parent)
    child = subprocess.Popen([sys.executable, "-m", "hierbayes", "demo", "sleepstudy", "--draws", "2000000",
                              "--tune", "100", "--chains", "2", "--no-progress", "--out", str(earlier_run)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().startswith("hierbayes demo:")  # the data are read; fitting starts
        time.sleep(8)  # the compiled model is loaded from the disk cache and sampling is under way
        assert child.poll() is None
        child.send_signal(signal.SIGINT)
        sent = time.monotonic()
        stdout, stderr = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    assert time.monotonic() - sent < 30  # stopped, not run to its end
    assert stderr.strip().splitlines()[-1] == ("hierbayes: interrupted; no output folder was written (an earlier "
                                               "run's folder is as it was)")
    assert "Traceback" not in stderr and "Population-level effects" not in stdout
    assert snapshot(earlier_run.parent) == before
