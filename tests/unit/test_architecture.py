"""The house rules, checked on the source: stages import downward only, no import loop
(imports inside functions count; only ``if TYPE_CHECKING:`` blocks are exempt), at most
ten modules and subpackages at the package root, no module over 600 lines.

The stage order is that of the pipeline (``docs/architecture.md``)::

    common, datasets  <  specification  <  model  <  backend  <  posterior
    <  viz, lessons  <  api  <  cli, the package itself
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "hierbayes"

# rank of each stage: a module may import modules of a lower or equal rank only
RANKS = {
    "common": 0, "datasets": 0,
    "specification": 1, "model": 2, "backend": 3, "posterior": 4, "viz": 5, "lessons": 5,
    "api": 7, "cli": 8, "__main__": 9, "__init__": 9,
}
MAX_ROOT_MODULES = 10
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    """``hierbayes.model.data`` -> ``model``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(path: Path) -> set[str]:
    """Every hierbayes module ``path`` imports, at any depth of the code (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hierbayes"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.startswith("hierbayes"):
                for alias in node.names:
                    sub = f"{base}.{alias.name}"  # `from hierbayes.model import data` imports a module
                    found.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists()
                              or (PACKAGE.parent / sub.replace(".", "/")).is_dir() else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(me)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imported_modules(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_import_helper_sees_function_level_imports_and_skips_type_checking(tmp_path):
    source = PACKAGE / "api.py"
    found = imported_modules(source)
    assert "hierbayes.posterior.fitting" in found  # a module-level import
    assert {"hierbayes.viz.plots", "hierbayes.lessons.modes"} <= found  # imported inside methods


def test_every_stage_is_known():
    unknown = {stage(m) for m in import_graph()} - set(RANKS)
    assert not unknown, f"modules outside the known stages: {unknown}; add the stage to RANKS and docs/architecture.md"


def test_lower_stages_never_import_higher_ones():
    upward = [f"{m} -> {t}" for m, targets in import_graph().items() for t in targets
              if t != "hierbayes" and RANKS[stage(t)] > RANKS[stage(m)]]
    assert not upward, "imports against the pipeline's direction:\n" + "\n".join(upward)


def test_no_import_loop():
    graph = {m: {t for t in ts if t != "hierbayes"} for m, ts in import_graph().items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    assert not cycles, "import loops:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_at_most_ten_modules_and_subpackages_at_the_package_root():
    """The package's own files (``__init__``, ``__main__``) aside: what a newcomer reads first."""
    root = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in {"__init__.py", "__main__.py"})
    root += sorted(p.name + "/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert len(root) <= MAX_ROOT_MODULES, root


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_600_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
