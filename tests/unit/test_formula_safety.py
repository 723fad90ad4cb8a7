"""A formula is data, not a program: nothing in a formula, or in a saved fit's formula, runs code.

Every attack below would run ``os.system`` (or read a file, or reach Python's internals)
if formulaic evaluated the formula with Python's full ``eval``; each must be refused
with a :class:`~hierbayes.common.errors.FormulaError` naming the offending name, before anything
is evaluated, and the sentinel file must never appear. The documented transforms keep
working, and the user's own functions work when passed explicitly (``namespace=``),
when predicting and when loading.
"""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_predict import fake_fit

import hierbayes as hb
from hierbayes import cli
from hierbayes.common.errors import DataError, FormulaError
from hierbayes.specification.design import make_design
from hierbayes.specification.evaluation import FUNCTIONS, evaluation_context, formula_variables
from hierbayes.specification.families import get_family
from hierbayes.specification.formula import parse


@pytest.fixture
def df():
    rng = np.random.default_rng(2)
    n = 40
    return pd.DataFrame({"y": rng.normal(size=n), "x": rng.uniform(1, 3, size=n), "z": rng.normal(size=n),
                         "k": np.tile(["lo", "mid", "hi", "lo"], n // 4), "p": rng.uniform(0.1, 0.9, size=n),
                         "n": np.full(n, 10), "s": rng.integers(0, 10, size=n), "t": rng.uniform(1, 2, size=n),
                         "g": np.repeat(list("abcd"), n // 4), "my x": rng.uniform(1, 2, size=n)})


def _touch(path) -> str:
    return f"__import__('os').system('touch {path}')"


ATTACKS = [  # (formula with {run} for a command that would create the sentinel, the name the error must give)
    ("y ~ x + I({run}) + (1 | g)", "__import__"),
    ("I(y + {run}) ~ x + (1 | g)", "__import__"),
    ("y ~ x + offset(I({run})) + (1 | g)", "__import__"),
    ("cbind(s, n - {run}) ~ x + (1 | g)", "__import__"),
    ("y ~ x + (I({run}) | g)", "__import__"),
    ("y ~ x + {{{run}}} + (1 | g)", "__import__"),  # formulaic's {python} braces
    ("y ~ x + I(eval(\"{run}\")) + (1 | g)", "eval"),
    ("y ~ x + I(exec(\"{run}\")) + (1 | g)", "exec"),
    ("y ~ x + I(len(open('/etc/hostname').read())) + (1 | g)", "open"),
    ("y ~ x + I(getattr(np, 'load')('f.npy', allow_pickle=True)) + (1 | g)", "getattr"),
    ("y ~ x + I(np.load('f.npy', allow_pickle=True)) + (1 | g)", "np.load"),
    ("y ~ x + I(np.lib.npyio.load('f.npy')) + (1 | g)", "np.lib"),
    ("y ~ x + I(x.__class__.__mro__[1].__subclasses__()) + (1 | g)", "__class__"),
    ("y ~ x + I(len(globals())) + (1 | g)", "globals"),
    ("y ~ x + I(len(vars())) + (1 | g)", "vars"),
    ("y ~ x + I(len(locals())) + (1 | g)", "locals"),
    ("y ~ x + I(compile('1', 'f', 'eval')) + (1 | g)", "compile"),
    ("y ~ x + I((lambda: 1)()) + (1 | g)", "a lambda"),
    ("y ~ x + I(sum([v for v in x])) + (1 | g)", "a comprehension"),
    ("y ~ x + I(x.to_csv('out.csv')) + (1 | g)", "x.to_csv"),
    ("y ~ x + I(system('true')) + (1 | g)", "system"),
]


@pytest.mark.parametrize(("formula", "name"), ATTACKS)
def test_code_in_a_formula_is_refused_before_it_runs(df, tmp_path, formula, name):
    sentinel = tmp_path / "ran"
    text = formula.format(run=_touch(sentinel))
    with pytest.raises(FormulaError, match=re.escape(name if " " in name else repr(name))) as info:
        hb.Model(text, df)
    assert not sentinel.exists()
    err = info.value
    if err.position is not None:  # the caret stands under the offending name
        token = name.split(".")[-1] if "." in name else name
        assert text[err.position:].lstrip(".").startswith(token)


def test_refusal_names_the_name_with_a_caret_under_it(df):
    formula = "y ~ x + I(__import__('os').getcwd()) + (1 | g)"
    with pytest.raises(FormulaError) as info:
        hb.Model(formula, df)
    message = str(info.value)
    assert message.startswith("'__import__' may not be used in a formula: it could run code")
    assert message.endswith(f"\n  {formula}\n  {' ' * formula.index('__import__')}^")


def test_a_backticked_name_is_a_column_never_a_function(df, tmp_path):
    sentinel = tmp_path / "ran"
    with pytest.raises(DataError, match="unknown column '__import__'"):
        hb.Model(f"y ~ x + I(`__import__`('os').system('touch {sentinel}')) + (1 | g)", df)
    assert not sentinel.exists()


def test_an_unknown_function_is_named_with_the_way_to_pass_it(df):
    with pytest.raises(FormulaError, match=r"'logit' is not a function a formula may call; .*"
                                           r"hb.Model\(\.\.\., namespace=\{'logit': logit\}\)"):
        hb.Model("y ~ logit(p) + (1 | g)", df)


def test_formulaic_sees_no_variables_of_ours_or_the_caller(df):
    """formulaic's default context is the caller's frame: it used to see design.py's modules (``re``, ``pd``)."""
    secret = 41  # noqa: F841 (the formula must not see it)
    for formula in ("y ~ I(re.escape('x') == 'x') + (1 | g)", "y ~ I(pd.isna(x)) + (1 | g)"):
        with pytest.raises(FormulaError, match="attributes may be taken of np, contr and namespace entries only"):
            hb.Model(formula, df)
    with pytest.raises(DataError, match="unknown column 'secret'"):
        hb.Model("y ~ I(x + secret) + (1 | g)", df)
    assert set(evaluation_context()) == {"sqrt", "abs"}
    assert set(evaluation_context({"f": len})) == {"sqrt", "abs", "f"}
    assert hb.Model("y ~ x + (1 | g)", df).design.context == evaluation_context()


# --- what a formula may use ---------------------------------------------------------------------

def _column(formula: str, df: pd.DataFrame, **kw) -> np.ndarray:
    """The one non-intercept fixed-effect column of ``formula``."""
    d = make_design(parse(formula), df, get_family("gaussian"), **kw)
    return d.X[:, [i for i, n in enumerate(d.fixed_names) if n != "Intercept"]]


@pytest.mark.parametrize(("term", "expected"), [
    ("np.log(x)", lambda d: np.log(d["x"])),
    ("log(x)", lambda d: np.log(d["x"])),
    ("exp(z)", lambda d: np.exp(d["z"])),
    ("sqrt(x)", lambda d: np.sqrt(d["x"])),
    ("abs(z)", lambda d: np.abs(d["z"])),
    ("I(x ** 2)", lambda d: d["x"] ** 2),
    ("np.where(z > 0, x, 0)", lambda d: np.where(d["z"] > 0, d["x"], 0)),
    ("np.maximum(z, 0)", lambda d: np.maximum(d["z"], 0)),
    ("center(x)", lambda d: d["x"] - d["x"].mean()),
    ("scale(x)", lambda d: (d["x"] - d["x"].mean()) / d["x"].std()),
    ("Q('my x')", lambda d: d["my x"]),
    ("np.log(`my x`)", lambda d: np.log(d["my x"])),
    ("I(x * np.pi)", lambda d: d["x"] * np.pi),
])
def test_documented_transforms_still_work(df, term, expected):
    got = _column(f"y ~ {term} + (1 | g)", df)
    np.testing.assert_allclose(got[:, 0], np.asarray(expected(df), dtype=float), rtol=1e-6)


@pytest.mark.parametrize(("term", "n_columns"), [
    ("C(k)", 2), ("C(k, contr.sum)", 2), ("C(k, Treatment('mid'))", 2), ("poly(x, 2)", 2), ("bs(x, df=4)", 4),
    ("x * z", 3), ("x:z", 1), ("standardize(x)", 1),
])
def test_documented_terms_give_their_columns(df, term, n_columns):
    assert _column(f"y ~ {term} + (1 | g)", df).shape[1] == n_columns


def test_offsets_and_cbind_are_arithmetic_in_the_restricted_namespace(df):
    d = make_design(parse("cbind(s, n - s) ~ x + offset(np.log(t)) + (1 | g)"), df, get_family("binomial"))
    np.testing.assert_allclose(d.trials, df["n"])
    np.testing.assert_allclose(d.offset, np.log(df["t"]))


def test_every_documented_function_is_callable_by_name():
    assert {"C", "I", "Q", "scale", "center", "poly", "log", "exp", "sqrt", "bs"} <= set(FUNCTIONS)
    assert formula_variables("x + np.log(z) + C(k, contr.treatment('b'))", ["x", "z", "k"]) == ["x", "z", "k"]


# --- the user's own functions -------------------------------------------------------------------

def logit(p):
    return np.log(p / (1 - p))


def test_a_namespace_function_is_used_for_fitting_and_new_data(df):
    model = hb.Model("y ~ logit(p) + (1 | g)", df, namespace={"logit": logit})
    np.testing.assert_allclose(model.design.X[:, 1], logit(df["p"]))
    fit = fake_fit(model, 5, b=[1.0, 2.0], r_g=[[0.0]] * 4, sd_g=[1.0], sigma=1.0)
    new = pd.DataFrame({"p": [0.5, 0.8], "g": ["a", "b"]})
    np.testing.assert_allclose(fit.predict(new).values[0, 0], 1 + 2 * logit(new["p"]))


def test_namespace_values_and_modules_are_used_as_given(df):
    model = hb.Model("y ~ I(x - ref) + (1 | g)", df, namespace={"ref": 2.0})
    np.testing.assert_allclose(model.design.X[:, 1], df["x"] - 2.0)
    assert "ref" not in model.data.columns


@pytest.mark.parametrize(("namespace", "message"), [
    ({"x": np.log}, "namespace entry 'x' has the name of a column of the data"),
    ({"__import__": __import__}, "namespace entry '__import__' must be a plain Python name"),
    ({"two words": np.log}, "must be a plain Python name"),
    ([np.log], "namespace must be a dict"),
])
def test_bad_namespaces_are_refused(df, namespace, message):
    with pytest.raises(hb.HierbayesError, match=message):
        hb.Model("y ~ x + (1 | g)", df, namespace=namespace)


# --- saved fits ---------------------------------------------------------------------------------

def _saved(model: hb.Model, path) -> hb.Fit:
    """A fit of ``model`` with draws written by hand (no sampling), saved to ``path``."""
    d = model.design
    fit = fake_fit(model, 5, b=np.arange(len(d.fixed_names), dtype=float), r_g=[[0.5]] * 4, sd_g=[1.0], sigma=1.0)
    fit.save(path)
    return fit


def _with_formula(path, target, formula: str) -> None:
    tree = xr.open_datatree(path, engine="h5netcdf").load()
    tree.attrs["formula"] = formula
    tree.to_netcdf(target, engine="h5netcdf")


def _cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_opening_a_crafted_fit_runs_nothing(df, tmp_path):
    _saved(hb.Model("y ~ x + (1 | g)", df), tmp_path / "fit.nc")
    sentinel = tmp_path / "ran"
    _with_formula(tmp_path / "fit.nc", tmp_path / "crafted.nc", f"y ~ x + I({_touch(sentinel)}) + (1 | g)")
    with pytest.raises(hb.HierbayesError, match=r"'.*crafted\.nc' was not opened: its formula .* uses something a "
                                                r"formula may not: '__import__' may not be used in a formula"):
        hb.load(tmp_path / "crafted.nc")
    assert not sentinel.exists()
    code, stdout, stderr = _cli(["summary", tmp_path / "crafted.nc"])  # the command line opens it the same way
    assert code == 2 and stdout == "" and "Traceback" not in stderr
    assert re.match(r"hierbayes: error: '.*crafted\.nc' was not opened: .*'__import__' may not be used", stderr)
    assert not sentinel.exists()


def test_a_fit_made_with_namespace_functions_says_what_it_needs_and_opens_with_them(df, tmp_path):
    fit = _saved(hb.Model("y ~ logit(p) + (1 | g)", df, namespace={"logit": logit}), tmp_path / "fit.nc")
    with pytest.raises(hb.HierbayesError, match=r"'.*fit\.nc' was not opened: its formula 'y ~ logit\(p\) \+ \(1 \| g\)'"
                                                r".*'logit' is not a function a formula may call.*"
                                                r"hb\.load\(path, namespace=\{\.\.\.\}\)"):
        hb.load(tmp_path / "fit.nc")
    again = hb.load(tmp_path / "fit.nc", namespace={"logit": logit})
    new = pd.DataFrame({"p": [0.3, 0.6], "g": ["a", "c"]})
    pd.testing.assert_frame_equal(again.predict_summary(new), fit.predict_summary(new))
    np.testing.assert_allclose(again.model.design.X, fit.model.design.X)


def test_a_zarr_fit_asking_for_the_pickle_codec_is_refused_before_it_is_read(df, tmp_path):
    import json

    _saved(hb.Model("y ~ x + (1 | g)", df), tmp_path / "fit.zarr")
    assert hb.load(tmp_path / "fit.zarr").summary().shape[0] == 4  # as written: opens
    meta = tmp_path / "fit.zarr" / "posterior" / "sigma" / "zarr.json"
    spec = json.loads(meta.read_text())
    spec["codecs"].append({"name": "numcodecs.pickle", "configuration": {"protocol": 5}})
    meta.write_text(json.dumps(spec))
    with pytest.raises(hb.HierbayesError, match=r"'.*fit\.zarr' was not opened: posterior/sigma/zarr\.json asks for "
                                                r"the pickle codec, which runs code while reading"):
        hb.load(tmp_path / "fit.zarr")
