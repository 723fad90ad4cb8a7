"""Formula text -> ModelSpec: group terms kept whole, nesting expanded, errors with positions."""

import re

import pytest

from hierbayes.common.errors import FormulaError
from hierbayes.specification.formula import Block, Response, parse


@pytest.mark.parametrize(
    ("formula", "fixed", "blocks"),
    [
        ("y ~ x + (1 | g)", "x", [Block("1", "g", True)]),
        ("y ~ x + (x | g)", "x", [Block("x", "g", True)]),
        ("y ~ x + (1 + x | g)", "x", [Block("1 + x", "g", True)]),
        ("y ~ x + (x || g)", "x", [Block("x", "g", False)]),
        ("y ~ x + (0 + x | g)", "x", [Block("0 + x", "g", True)]),
        ("y ~ 1 + (1 | a/b)", "1", [Block("1", "a", True), Block("1", "a:b", True)]),
        ("y ~ 1 + (1 | a/b/c)", "1", [Block("1", "a"), Block("1", "a:b"), Block("1", "a:b:c")]),
        ("y ~ (1 | a:b)", "1", [Block("1", "a:b", True)]),
        ("y ~ x + (1 | a) + (1 | b)", "x", [Block("1", "a"), Block("1", "b")]),
        ("y ~ x + (1 | g) + (0 + x | g)", "x", [Block("1", "g"), Block("0 + x", "g")]),
        ("y ~ 0 + x*z + (C(k) | g)", "0 + x*z", [Block("C(k)", "g")]),
        ("y ~ x - 1", "x - 1", []),
        ("y~x+(x|g)", "x", [Block("x", "g")]),
    ],
)
def test_blocks_are_kept_whole(formula, fixed, blocks):
    spec = parse(formula)
    assert spec.fixed == fixed
    assert list(spec.blocks) == blocks


def test_a_correlated_block_is_one_block_with_all_its_terms():
    spec = parse("y ~ x + (1 + x + z | g)")
    assert len(spec.blocks) == 1 and spec.blocks[0].correlated
    assert spec.blocks[0].expr == "1 + x + z"


def test_offset_cbind_and_factors():
    spec = parse("cbind(s, f) ~ x + offset(np.log(t)) + (1 | a/b) + (x | c)")
    assert spec.response == Response("s", "f") and spec.response.is_cbind
    assert spec.offsets == ("np.log(t)",)
    assert spec.fixed == "x"
    assert spec.factors == ("a", "a:b", "c")
    assert spec.blocks[1].factor_columns == ("a", "b")


def test_intercept_only_fixed_part():
    assert parse("y ~ (1 | g)").fixed == "1"


@pytest.mark.parametrize(
    ("formula", "message", "position"),
    [
        ("y ~ x + (1 | g", "'(' is never closed", 8),
        ("y ~ x + 1 | g)", "')' without '('", 13),
        ("y ~ x + ( | g)", "empty group term", 10),
        ("y ~ x + (1 | )", "no grouping factor", 13),
        ("y ~ x + 1 | g", "must be in parentheses", 10),
        ("y ~ x +", "empty term", 7),
        ("y x", "exactly one '~'", 3),
        ("~ x", "no response", 0),
        ("y ~ x + (1 | g + h)", "must be a column name", 13),
        ("y ~ x + (1 | g | h)", "ID shared across formula parts", 11),
        ("y ~ x + (1 | g | h | k)", "one '|'", 15),
    ],
)
def test_syntax_errors_show_where(formula, message, position):
    with pytest.raises(FormulaError, match=re.escape(message)) as info:
        parse(formula)
    assert info.value.position == position
    # the caret sits under the fault
    lines = str(info.value).splitlines()
    assert lines[-1].index("^") - 2 == position and lines[-2].strip() == formula.strip()


def test_empty_formula():
    with pytest.raises(FormulaError, match="empty"):
        parse("   ")
