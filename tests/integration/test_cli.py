"""The command line end to end: the run folder, its numbers, exit codes, atomic writing.

Every fit here has the structure of ``Reaction ~ Days + (Days | Subject)`` on 18 subjects,
so the module compiles one model and refits it in about a second.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes import cli
from hierbayes.viz import report

FORMULA = "Reaction ~ Days + (Days | Subject)"
FAST = ["--draws", "200", "--tune", "200", "--chains", "2", "--seed", "3", "--no-progress"]
EXPECTED_FILES = {
    "summary.csv", "fixed_effects.csv", "variance_components.csv", "icc.csv", "group_effects_Subject.csv",
    "diagnostics.csv", "priors.csv", "fit.nc", "shrinkage_Subject.png", "trace.png", "ppc.png", "report.html",
    cli.RUN_MANIFEST,
}


def run(argv) -> tuple[int, str, str]:
    """``hierbayes argv`` in this process (sharing its compiled models): exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


class Tables(HTMLParser):
    """Body rows (``<tbody>``) of every ``<table id=...>`` of a page, as lists of cell texts."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table = self._row = None
        self._body = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("id", ""), [])
        elif tag == "tbody":
            self._body = True
        elif tag == "tr" and self._table is not None and self._body:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = self._row = None
        elif tag == "tbody":
            self._body = False

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data.strip()


@pytest.fixture(scope="module")
def cli_run(csv_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "sleep"
    code, stdout, stderr = run(["fit", csv_path, FORMULA, *FAST, "--out", out])
    return out, code, stdout, stderr


@pytest.fixture(scope="module")
def loaded(cli_run):
    return hb.load(cli_run[0] / cli.FIT_FILE)


def test_run_folder_has_every_file_and_no_leftovers(cli_run):
    out, code, _, stderr = cli_run
    assert code in (0, 1), stderr
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES
    manifest = json.loads((out / cli.RUN_MANIFEST).read_text())
    assert set(manifest["files"]) == EXPECTED_FILES
    assert manifest["formula"] == FORMULA and manifest["draws"] == 200
    assert [p.name for p in out.parent.iterdir()] == ["sleep"]  # the temporary folder was renamed, none is left
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_csv_files_hold_the_numbers_of_the_python_api(cli_run, loaded):
    out = cli_run[0]
    for name, table in [("summary", loaded.summary()), ("fixed_effects", loaded.fixed_effects()),
                        ("variance_components", loaded.variance_components()), ("icc", loaded.icc())]:
        written = pd.read_csv(out / f"{name}.csv", index_col=0)
        assert list(written.index) == list(table.index)
        np.testing.assert_allclose(written.to_numpy(float), table.to_numpy(float), rtol=1e-12, err_msg=name)
    effects = pd.read_csv(out / "group_effects_Subject.csv", dtype={"Subject": str})
    expected = loaded.group_effects("Subject").reset_index()
    assert effects[["Subject", "coefficient"]].equals(expected[["Subject", "coefficient"]])
    numeric = expected.columns[2:]
    np.testing.assert_allclose(effects[numeric].to_numpy(float), expected[numeric].to_numpy(float), rtol=1e-12)


def test_cli_fit_is_the_python_api_fit(cli_run, loaded, sleepstudy):
    """Same data, formula, sampler settings and seed: the same draws as fitting in Python."""
    fit = hb.Model(FORMULA, sleepstudy).fit(draws=200, tune=200, chains=2, seed=3, progressbar=False, warn=False)
    pd.testing.assert_frame_equal(fit.summary(), loaded.summary())
    assert loaded.model.design.n_obs == 180


def test_exit_code_says_whether_the_checks_passed(cli_run, loaded):
    _, code, stdout, stderr = cli_run
    checks = loaded.diagnostics()
    failed = list(checks.loc[~checks["ok"], "message"])
    assert code == (1 if failed else 0)
    assert all(message in stderr for message in failed)
    assert "Population-level effects:" in stdout and "sd(Days|Subject)" in stdout


def test_summary_command_reprints_the_saved_fit(cli_run, loaded):
    out, code, stdout, _ = cli_run
    for target in (out, out / cli.FIT_FILE):
        again, printed, _ = run(["summary", target])
        assert again == code
        assert printed.strip() == repr(loaded).strip()
        assert printed.strip() in stdout  # exactly what the fit printed
    assert run(["summary", out / "missing.nc"])[0] == 2


def test_report_has_every_table_with_the_csv_rows(cli_run):
    out = cli_run[0]
    page = (out / "report.html").read_text()
    tables = Tables(page).tables
    csvs = {p.stem for p in out.glob("*.csv")} - {"summary"}  # summary = fixed effects + variance components
    assert set(tables) == {f"table-{name}" for name in csvs} | {"table-model"}
    for name in csvs:
        written = pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False)
        rows = tables[f"table-{name}"]
        assert len(rows) == len(written), name
        assert [r[0] for r in rows] == list(written.iloc[:, 0]), name  # same rows, same order
    for png in out.glob("*.png"):
        assert f'data-name="{png.stem}"' in page
    assert "http://" not in page and "https://" not in page  # self-contained: nothing fetched


def test_report_speaks_about_the_model_and_diagnostics(loaded):
    page = report.render_report(loaded, images={})
    model = dict(Tables(page).tables["table-model"])
    assert model["formula"] == FORMULA
    assert model["grouping factor Subject"].startswith("18 levels, 10 rows per level; varying: Intercept, Days")
    checks = loaded.diagnostics()
    if checks["ok"].all():
        assert "All convergence checks passed" in page
    else:
        assert f"{int((~checks['ok']).sum())} of {len(checks)} convergence checks failed" in page


def test_unconverged_fit_with_dropped_rows_exits_1_and_says_why(csv_path, tmp_path):
    data = pd.read_csv(csv_path).astype({"Days": float})
    data.loc[[4, 50], "Reaction"] = np.nan
    data.loc[7, "Days"] = np.nan
    path = tmp_path / "holes.csv"
    data.to_csv(path, index=False)
    out = tmp_path / "run"
    code, stdout, stderr = run(["fit", path, FORMULA, "--draws", "20", "--tune", "20", "--chains", "2",
                                "--no-progress", "--out", out])
    assert code == 1  # 40 draws cannot reach the ESS threshold of 200
    assert "ESS is only" in stderr
    assert "dropped 3 of 180 rows with missing values in 'Reaction' (2), 'Days' (1)" in stderr
    assert "177 rows (3 dropped for missing values)" in stdout
    assert "dropped 3 of 180 rows" in (out / "report.html").read_text()
    assert json.loads((out / cli.RUN_MANIFEST).read_text())["converged"] is False


def test_demo_writes_the_same_outputs(tmp_path):
    out = tmp_path / "demo"
    code, stdout, _ = run(["demo", "sleepstudy", *FAST, "--out", out])
    assert code in (0, 1)
    assert stdout.startswith(f"hierbayes demo: {FORMULA} on the bundled sleepstudy data (180 rows)")
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES


def test_parquet_input_and_dry_run(sleepstudy, tmp_path):
    path = tmp_path / "sleep.parquet"
    sleepstudy.to_parquet(path)
    code, stdout, _ = run(["fit", path, FORMULA, "--dry-run", "--out", tmp_path / "never"])
    assert code == 0
    assert "data: 180 rows; groups: Subject (18 levels)" in stdout
    assert "sd(Days|Subject)" in stdout  # the priors table
    assert not (tmp_path / "never").exists()


def test_interrupted_write_leaves_no_complete_looking_folder(loaded, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def broken(*args, **kwargs):  # after the CSV files and fit.nc are written
        raise RuntimeError("disk full while drawing the plots")

    monkeypatch.setattr(report, "report_images", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        cli.write_run(loaded, out)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary twin


def test_failed_rewrite_keeps_the_previous_run_whole(loaded, tmp_path, monkeypatch):
    out = tmp_path / "run"
    files = cli.write_run(loaded, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(files) == set(before)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "report_images", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.write_run(loaded, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_interrupted_cli_run_exits_130_without_output(csv_path, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hb.Fit, "save", interrupted)
    code, _, stderr = run(["fit", csv_path, FORMULA, *FAST, "--out", tmp_path / "run"])
    assert code == 130 and "no output folder was written" in stderr
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_a_folder_hierbayes_did_not_write(csv_path, tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    code, stdout, stderr = run(["fit", csv_path, FORMULA, *FAST, "--out", mine])
    assert code == 2
    assert "output folder" in stderr and "thesis" in stderr and "holds 'chapter1.tex', which hierbayes did not write" in stderr
    assert stdout == ""  # refused before fitting
    assert [p.name for p in mine.iterdir()] == ["chapter1.tex"]


def test_usage_errors_and_help(capsys):
    assert cli.main(["--help"]) == 0
    assert "fit" in capsys.readouterr().out
    assert cli.main(["fit"]) == 2  # argparse's usage error
    assert "required" in capsys.readouterr().err


def test_summary_into_a_pipe_closed_early_is_not_an_error(cli_run):
    """``hierbayes summary RUN | head``: the reader may stop before hierbayes writes (here it reads
    nothing: ``true`` exits at once); hierbayes exits 0 with no traceback, not an internal error."""
    out = cli_run[0]
    command = f"{shlex.quote(sys.executable)} -m hierbayes summary {shlex.quote(str(out))} | true"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
