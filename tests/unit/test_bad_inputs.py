"""Every row of docs/bad-inputs.md, through the Python API and through the command line.

A row's data start from sleepstudy (180 rows, Reaction, Days, Subject) and are changed to
carry one fault. Through Python the fault raises a :class:`~hierbayes.common.errors.HierbayesError`
(or warns) with a message naming the column, term or value; through the command line it
gives exit code 2 with that message on stderr and no traceback (or, for the warnings,
exit 0 with the warning on stderr), and no output folder. Nothing here compiles a model.

The output-folder rows (``out-...``) go through :func:`hierbayes.cli.write_run` in Python (the
function that writes a run folder, refusing before anything is written) and ``--out`` on the
command line; the folder they name is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes import cli
from hierbayes.common.errors import DataError, DataWarning, FormulaError, HierbayesError

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-inputs.md"
BASE = "Reaction ~ Days + (Days | Subject)"


def _set(column, rows, value, dtype=None):
    def change(d):
        d = d.astype({column: dtype}) if dtype else d.copy()
        d.loc[rows, column] = value
        return d
    return change


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, and what both front doors must say."""

    formula: str = BASE
    change: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    family: str = "gaussian"
    error: type | None = DataError  # None: a DataWarning, and the fit goes ahead
    message: str = ""  # regular expression the message must match
    options: dict = field(default_factory=dict)  # Model keywords; the CLI gets the same as flags
    file_text: str | None = None  # the data file's exact text (file-level faults)
    sep: str | None = None
    parquet: bool = False  # the command line reads the data from Parquet (types a CSV cannot carry)
    fit: dict = field(default_factory=dict)  # model.fit keywords (the seed); the CLI gets them as flags
    out: Callable[[Path], Path] | None = None  # makes the output folder in a test folder holding home/ and work/
    force: bool = False  # --force (write_run(force=True))
    environment: dict = field(default_factory=dict)  # variables holding the fault, read when fitting (before compiling)


def _folder_with(name: str, content: str = "mine"):
    def make(folder: Path) -> Path:
        (folder / "run").mkdir()
        (folder / "run" / name).write_text(content)
        return folder / "run"
    return make


def _file(folder: Path) -> Path:
    (folder / "results.csv").write_text("a,b\n1,2\n")
    return folder / "results.csv"


def _inside_a_file(folder: Path) -> Path:
    return _file(folder) / "run"


CASES = {
    "unknown-column": Case("Reaction ~ Dayz + (Days | Subject)",
                           message=r"unknown column 'Dayz' in the formula; did you mean 'Days'\?"),
    "misspelled-factor": Case("Reaction ~ Days + (Days | Subjct)",
                              message=r"unknown column 'Subjct' in the formula; did you mean 'Subject'\?"),
    "unbalanced-parenthesis": Case("Reaction ~ Days + (Days | Subject", error=FormulaError,
                                   message=r"unbalanced parenthesis: '\(' is never closed\n  Reaction ~ Days \+ "
                                           r"\(Days \| Subject\n {20}\^"),
    "empty-group-term": Case("Reaction ~ Days + ( | Subject)", error=FormulaError,
                             message=r"empty group term: write \(1 \| g\) for a varying intercept\n"
                                     r"  Reaction ~ Days \+ \( \| Subject\)\n {22}\^"),
    "double-bar-categorical": Case("Reaction ~ Days + (C(Days) || Subject)", error=FormulaError,
                                   message=r"group term \(C\(Days\) \|\| Subject\): '\|\|' with a categorical "
                                           r"variable is ambiguous"),
    "response-not-numeric": Case("status ~ Days + (Days | Subject)", change=lambda d: d.assign(status="ok"),
                                 message=r"response 'status' must be numeric; it holds \w+ values such as 'ok'"),
    "text-in-numeric-column": Case(change=_set("Days", 5, "abc", object),
                                   message=r"column 'Days' holds numbers and text: 'abc' \(row 5\) is not a number"),
    "missing-values-dropped": Case(change=lambda d: _set("Subject", 9, np.nan)(_set("Days", 7, np.nan)(
                                       _set("Reaction", 3, np.nan)(d))), error=None,
                                   message=r"dropped 3 of 180 rows with missing values in 'Reaction' \(1\), "
                                           r"'Days' \(1\), 'Subject' \(1\)"),
    "missing-values-refused": Case(change=_set("Subject", [2, 9], np.nan), options={"na_action": "error"},
                                   message=r"2 rows have missing values in 'Subject' \(2\)"),
    "infinite-value": Case(change=_set("Reaction", 3, np.inf),
                           message=r"column 'Reaction' has 1 infinite values \(first at row 3\)"),
    "one-level-factor": Case("Reaction ~ Days + (1 | site)", change=lambda d: d.assign(site="Lab A"),
                             message=r"grouping factor 'site' has only one level \('Lab A'\)"),
    "level-per-row": Case("Reaction ~ Days + (1 | visit)", change=lambda d: d.assign(visit=np.arange(len(d))),
                          error=None, message=r"grouping factor 'visit' has as many levels as rows \(180\); .*not "
                                              r"identifiable"),
    "negative-count": Case("count ~ Days + (1 | Subject)", family="poisson",
                           change=lambda d: d.assign(count=d["Days"] - 1),
                           message=r"response 'count' must be non-negative whole counts .*-1"),
    "non-integer-count": Case("count ~ Days + (1 | Subject)", family="negative_binomial",
                              change=lambda d: d.assign(count=d["Days"] + 0.5),
                              message=r"response 'count' must be non-negative whole counts .*0\.5"),
    "bernoulli-not-binary": Case("slept ~ Days + (1 | Subject)", family="bernoulli",
                                 change=lambda d: d.assign(slept=np.where(d["Days"] > 4, 1, 2)),
                                 message=r"response 'slept' must be 0 or 1 for the bernoulli family; found .*2"),
    "successes-above-trials": Case("cbind(hits, n - hits) ~ Days + (1 | Subject)", family="binomial",
                                   change=lambda d: d.assign(hits=d["Days"], n=8),
                                   message=r"failures column 'n - hits' must hold non-negative whole counts; "
                                           r"found -1 \(18 such rows\); successes exceed trials"),
    "categorical-two-categories": Case("mode ~ Days + (1 | Subject)", family="categorical",
                                      change=lambda d: d.assign(mode=np.where(d["Days"] > 4, "bus", "car")),
                                      message=r"response 'mode' has 2 categories \['bus', 'car'\]; the categorical "
                                              r"family needs at least 3 \(for two, use family='bernoulli'"),
    "multinomial-negative-count": Case("cbind(bus, car, walk) ~ Days + (1 | Subject)", family="multinomial",
                                       change=lambda d: d.assign(bus=d["Days"] - 1, car=2, walk=3),
                                       message=r"response 'bus' must hold non-negative whole counts; found -1 on 18 "
                                               r"rows"),
    "multinomial-not-whole": Case("cbind(bus, car, walk) ~ Days + (1 | Subject)", family="multinomial",
                                  change=lambda d: d.assign(bus=1, car=d["Days"] + 0.5, walk=3),
                                  message=r"response 'car' must hold non-negative whole counts; found 0\.5 on 180 rows"),
    "multinomial-zero-total": Case("cbind(bus, car, walk) ~ Days + (1 | Subject)", family="multinomial",
                                   change=lambda d: d.assign(**dict.fromkeys(["bus", "car", "walk"],
                                                                             np.where(d["Days"] == 0, 0, 2))),
                                   message=r"response 'cbind\(bus, car, walk\)' must have a positive total in every "
                                           r"row .*; found 0 on 18 rows"),
    "multinomial-empty-category": Case("cbind(bus, car, walk) ~ Days + (1 | Subject)", family="multinomial",
                                       change=lambda d: d.assign(bus=1, car=d["Days"], walk=0),
                                       message=r"count column 'walk' is 0 in every row: its category never occurs"),
    "multinomial-two-columns": Case("cbind(bus, car) ~ Days + (1 | Subject)", family="multinomial",
                                    error=FormulaError, change=lambda d: d.assign(bus=1, car=2),
                                    message=r"the multinomial family needs three or more count columns, "
                                            r"cbind\(y1, y2, y3\); for two, cbind\(bus, car\), use "
                                            r"family='binomial'"),
    "addition-unknown-term": Case("Reaction | foo(Days) ~ Days + (Days | Subject)", error=FormulaError,
                                  message=r"unknown addition term 'foo\(Days\)' on the response; the addition terms "
                                          r"are trials\(\), weights\(\), cens\(\), trunc\(\), se\(\)"),
    "trials-not-binomial": Case("Reaction | trials(Days) ~ Days + (Days | Subject)", error=FormulaError,
                                message=r"trials\(Days\) gives the number of trials of a binomial response; the "
                                        r"gaussian family has no trials"),
    "se-not-gaussian": Case("count | se(Days) ~ Days + (1 | Subject)", family="poisson", error=FormulaError,
                            change=lambda d: d.assign(count=d["Days"]),
                            message=r"se\(Days\) is a known standard error of a gaussian response; the poisson "
                                    r"family does not take it"),
    "negative-weights": Case("Reaction | weights(w) ~ Days + (Days | Subject)",
                             change=lambda d: d.assign(w=d["Days"] - 1),
                             message=r"weights\(w\) must be 0 or more; found -1 on 18 rows \(first at rows "
                                     r"\[0, 10, 20, 30, 40\]\)"),
    "censoring-code-unknown": Case("Reaction | cens(censored) ~ Days + (Days | Subject)",
                                   change=lambda d: d.assign(censored=["up" if i in (3, 8) else "none"
                                                                       for i in range(len(d))]),
                                   message=r"cens\(censored\): 'up' is not a censoring code on 2 rows \(first at rows "
                                           r"\[3, 8\]\); a row is 'none', 'left', 'right' or 'interval'"),
    "outside-truncation": Case("Reaction | trunc(ub = 400) ~ Days + (Days | Subject)",
                               message=r"trunc\(ub = 400\): the response lies outside the truncation bounds on 8 rows "
                                       r"\(first at rows \[5, 8, 9, 56, 96\]\), such as 414.69; a truncated response "
                                       r"is never outside its bounds"),
    "constant-response": Case(change=lambda d: d.assign(Reaction=250.0),
                              message=r"response 'Reaction' is constant \(every value is 250\)"),
    "collinear-fixed-effects": Case("Reaction ~ Days + Hours + (Days | Subject)",
                                    change=lambda d: d.assign(Hours=24 * d["Days"]),
                                    message=r"fixed effects are perfectly collinear: 'Hours' is a linear combination "
                                            r"of 'Days'"),
    "code-in-formula": Case("Reaction ~ Days + I(__import__('os').getpid()) + (Days | Subject)", error=FormulaError,
                            message=r"'__import__' may not be used in a formula: it could run code; .*\n"
                                    r"  Reaction ~ Days \+ I\(__import__\('os'\)\.getpid\(\)\) \+ \(Days \| Subject\)\n"
                                    r" {22}\^"),
    "unknown-function": Case("Reaction ~ logit(Days) + (Days | Subject)", error=FormulaError,
                             message=r"'logit' is not a function a formula may call; .*namespace=\{'logit': logit\}"),
    "brms-smooth": Case("Reaction ~ s(Days) + (Days | Subject)", error=FormulaError,
                        message=r"s\(\.\.\.\) is brms's smooth term, which hierbayes does not fit; write a spline "
                                r"basis such as bs\(x, df=5\)"),
    "brms-monotonic": Case("Reaction ~ mo(Days) + (Days | Subject)", error=FormulaError,
                           message=r"mo\(\.\.\.\) is brms's monotonic effect, .*write C\(x\)"),
    "brms-shared-id": Case("Reaction ~ Days + (Days | p | Subject)", error=FormulaError,
                           message=r"\(expr \| id \| factor\) is brms's group term with an ID shared across "
                                   r"formula parts, .*write \(expr \| factor\)"),
    "bar-inside-parentheses": Case("Reaction ~ (Days + (1 | Subject))", error=FormulaError,
                                   message=r"a group term is \(expr \| factor\), with the '\|' outside any inner "
                                           r"parentheses\n.*\n {24}\^"),
    "too-many-terms": Case("Reaction ~ " + " + ".join(["Days"] * 20_000) + " + (Days | Subject)", error=FormulaError,
                           message=r"the formula has 20001 terms; a formula has at most 1000"),
    "dot-with-no-columns": Case("Reaction ~ . + (1 | Subject)", change=lambda d: d.drop(columns="Days"),
                                error=FormulaError, message=r"'\.' stands for every column except the response and "
                                                            r"the grouping factors, and the data have no other column"),
    "factor-names-clash": Case("Reaction ~ Days + (1 | lab.site) + (1 | lab_site)",
                               change=lambda d: d.assign(**{"lab.site": d["Subject"], "lab_site": d["Days"] % 3}),
                               message=r"grouping factors 'lab\.site' and 'lab_site' would share the internal name "
                                       r"'lab_site'"),
    "duplicate-column": Case(change=lambda d: pd.concat([d, d[["Days"]] * 24], axis=1),
                             message=r"2 columns named 'Days'; .* rename"),
    "date-column": Case("Reaction ~ date + (1 | Subject)", parquet=True,
                        change=lambda d: d.assign(date=pd.Timestamp("2024-03-01") + pd.to_timedelta(d["Days"], "D")),
                        message=r"column 'date' holds dates and times \(datetime64.*\); a formula needs numbers: "
                                r"convert it first, e\.g\. df\['date'\] = \(df\['date'\] - df\['date'\]\.min\(\)\)\.dt\.days"),
    "duration-column": Case("Reaction ~ awake + (1 | Subject)", parquet=True,
                            change=lambda d: d.assign(awake=pd.to_timedelta(16 + 24 * d["Days"], "h")),
                            message=r"column 'awake' holds durations \(timedelta64.*\); a formula needs numbers: "
                                    r"convert it first, e\.g\. df\['awake'\] = df\['awake'\]\.dt\.total_seconds\(\)"),
    "value-too-large": Case("Reaction ~ dose + (1 | Subject)", change=lambda d: d.assign(dose=d["Days"] * 1e300),
                            message=r"column 'dose' has values as large as 9e\+300, too large to scale priors by "
                                    r"\(hierbayes takes values up to 1e\+100\); rescale it first, e\.g\. divide it by "
                                    r"1e300"),
    "nothing-to-estimate": Case("count ~ 0", family="poisson", change=lambda d: d.assign(count=d["Days"]),
                                error=FormulaError,
                                message=r"the model count ~ 0 has nothing to estimate: no population-level effect, "
                                        r"no group term, and the poisson family has no parameter of its own; add an "
                                        r"intercept \(count ~ 1\) or a predictor"),
    "empty-file": Case(file_text="", message=r"the data file .*empty-file\.csv. is empty"),
    "header-only-file": Case(file_text="Reaction,Days,Subject\n", message=r"the data are empty \(0 rows\)"),
    "semicolon-delimiter": Case(file_text="Reaction;Days;Subject\n" + "".join(
                                    f"{250 + 3 * d + s},5;{d};s{s}\n" for s in range(6) for d in range(10)),
                                error=None, message=r"data: 60 rows; groups: Subject \(6 levels\)"),
    "wrong-delimiter": Case(file_text="Reaction;Days;Subject\n250;0;a\n260;1;b\n", sep=",",
                            message=r"could not tell the column delimiter of '.*wrong-delimiter\.csv': with the comma "
                                    r"delimiter its header 'Reaction;Days;Subject' is one column, but it contains "
                                    r"the semicolon delimiter"),
    "seed-out-of-range": Case(fit={"seed": -1}, error=HierbayesError,
                              message=r"seed must be a whole number from 0 to 2\*\*64 - 1 for the nutpie sampler, "
                                      r"not -1"),
    "out-holds-other-files": Case(out=_folder_with("thesis.docx"), error=HierbayesError,
                                  message=r"output folder '.*run' holds 'thesis\.docx', which hierbayes did not write; "
                                          r"choose another --out, or pass --force to write the run beside them"),
    "out-file-name-taken": Case(out=_folder_with("report.html"), force=True, error=HierbayesError,
                                message=r"output folder '.*run' holds 'report\.html', which hierbayes did not write "
                                        r"and the run would overwrite, even with --force"),
    "out-is-working-folder": Case(out=lambda folder: Path("."), error=HierbayesError,
                                  message=r"--out '\.' is the current folder; a run needs a folder of its own"),
    "out-contains-working-folder": Case(out=lambda folder: Path(".."), error=HierbayesError,
                                        message=r"--out '\.\.' is a folder that contains the current folder"),
    "out-is-home-folder": Case(out=lambda folder: folder / "home", error=HierbayesError,
                               message=r"--out '.*home' is your home folder"),
    "out-is-a-file": Case(out=_file, error=HierbayesError,
                          message=r"output '.*results\.csv' exists and is a file, not a folder"),
    "out-inside-a-file": Case(out=_inside_a_file, error=HierbayesError,
                              message=r"cannot create the output folder '.*results\.csv/run': '.*results\.csv' is "
                                      r"a file"),
    "cache-cap-not-a-number": Case(environment={"HIERBAYES_CACHE_MAX_MB": "lots"}, error=HierbayesError,
                                   message=r"HIERBAYES_CACHE_MAX_MB must be a number of megabytes, 0 or more \(0 keeps "
                                           r"nothing on disk\), not 'lots'"),
}


def documented_rows() -> list[str]:
    """The case ids of the table in docs/bad-inputs.md (first cell of each row, in backticks)."""
    return re.findall(r"^\|\s*`([a-z0-9-]+)`\s*\|", DOC.read_text(), flags=re.M)


def test_every_documented_row_has_a_case_and_back():
    rows = documented_rows()
    assert len(rows) == len(set(rows))
    assert set(rows) == set(CASES)


def _data_file(case: Case, name: str, sleepstudy: pd.DataFrame, folder: Path) -> Path:
    path = folder / f"{name}.{'parquet' if case.parquet else 'csv'}"
    if case.parquet:
        case.change(sleepstudy).to_parquet(path)
    elif case.file_text is not None:
        path.write_text(case.file_text)
    else:
        (case.change(sleepstudy) if case.change else sleepstudy).to_csv(path, index=False)
    return path


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


@pytest.fixture
def places(tmp_path, monkeypatch) -> Path:
    """A test folder with ``home/`` (the home folder) and ``work/`` (the current folder)."""
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


def _set_environment(case: Case, monkeypatch) -> None:
    for variable, value in case.environment.items():
        monkeypatch.setenv(variable, value)


@pytest.mark.parametrize("name", list(CASES))
def test_python_api(name, sleepstudy, tmp_path, places, monkeypatch):
    case = CASES[name]
    _set_environment(case, monkeypatch)
    if case.out is not None:  # the function that writes a run folder; the fit's draws are never read
        from test_predict import fake_fit

        def make():
            cli.write_run(fake_fit(hb.Model(case.formula, sleepstudy), 1), case.out(tmp_path), force=case.force)
    elif case.fit:
        def make():
            return hb.Model(case.formula, sleepstudy).fit(**case.fit, progressbar=False, warn=False)
    elif case.file_text is not None:  # file-level faults: hb.read_data is the Python front door
        def make():
            data = hb.read_data(_data_file(case, name, sleepstudy, tmp_path), sep=case.sep)
            return hb.Model(case.formula, data, case.family, **case.options)
    else:
        def make():
            data = case.change(sleepstudy) if case.change else sleepstudy
            model = hb.Model(case.formula, data, case.family, **case.options)
            return model.fit(draws=10, tune=10, chains=1, progressbar=False) if case.environment else model
    if case.error is not None:
        with pytest.raises(case.error, match=case.message):
            make()
    elif name == "semicolon-delimiter":  # read correctly: nothing to warn about
        assert re.search(case.message, repr(make()))
    else:
        with pytest.warns(DataWarning, match=case.message):
            make()


def _cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _flags(case: Case) -> list[str]:
    flags = ["--family", case.family]
    if case.options.get("na_action") == "error":
        flags += ["--na", "error"]
    if case.sep:
        flags += ["--sep", case.sep]
    for option, value in case.fit.items():
        flags += [f"--{option}", value]
    if case.force:
        flags += ["--force"]
    return flags


@pytest.mark.parametrize("name", list(CASES))
def test_command_line(name, sleepstudy, tmp_path, places, monkeypatch):
    case = CASES[name]
    _set_environment(case, monkeypatch)
    path = _data_file(case, name, sleepstudy, tmp_path)
    out = tmp_path / "run" if case.out is None else case.out(tmp_path)
    before = _snapshot(tmp_path)
    if case.error is not None:
        code, stdout, stderr = _cli(["fit", path, case.formula, *_flags(case), "--out", out, "--no-progress"])
        assert code == 2
        assert stderr.startswith("hierbayes: error: ")
        assert re.search(case.message, stderr[len("hierbayes: error: "):].rstrip("\n"))
        assert "Traceback" not in stderr
        if case.error is not FormulaError:  # a formula error adds the formula and a caret under the fault
            assert stderr.count("\n") == 1
        assert stdout == ""
    else:
        code, stdout, stderr = _cli(["fit", path, case.formula, *_flags(case), "--dry-run", "--out", out])
        assert code == 0
        assert re.search(case.message, stderr + stdout)
    if case.out is None:
        assert not out.exists()  # nothing written, not even half
    assert _snapshot(tmp_path) == before  # nothing written, changed or removed


def test_bad_input_in_a_real_process_has_no_traceback_unless_debug(tmp_path):
    """The entry point as a user runs it: one line on stderr and exit 2; ``--debug`` lets the exception out."""
    path = tmp_path / "data.csv"
    path.write_text("y,x,g\n1,2,a\n2,3,b\n3,5,b\n")
    argv = ["fit", str(path), "y ~ x + (1 | gg)"]
    plain = subprocess.run([sys.executable, "-m", "hierbayes", *argv], capture_output=True, text=True, timeout=300)
    assert plain.returncode == 2
    assert plain.stderr == "hierbayes: error: unknown column 'gg' in the formula; did you mean 'g'?\n"
    with pytest.raises(DataError, match="unknown column 'gg'"):  # Python prints its traceback
        cli.main([*argv, "--debug"])
