"""The documentation site builds with ``mkdocs build --strict``: no broken link, image or reference.

The build runs the lesson notebooks (docs/_hooks/notebooks.py) unless this session's cache already
holds them executed (tests/integration/test_notebooks.py runs them through the same function), so
each notebook runs once per session whichever test asks first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import xarray as xr
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[2]
# a Sphinx role left as text: as written (:func:`x`) or after Markdown made the backticks code (:func:<code>x)
RAW_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|attr|data|obj|exc|const):(?:`|<code>)")


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, timeout=3600, env=env, cwd=ROOT)


def test_site_builds_strictly_with_the_api_reference(tmp_path):
    stored = {p.name: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")}
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("hierbayes.api.Model", "hierbayes.api.Fit", "hierbayes.specification.readers.read_data", "hierbayes.cli"):
        assert f'id="{name}"' in api, name  # rendered from the docstrings
    assert (tmp_path / "site" / "images" / "shrinkage_sleepstudy.png").is_file()
    pages = {p.relative_to(tmp_path / "site").as_posix(): p.read_text() for p in (tmp_path / "site").rglob("*.html")}
    raw = {page: RAW_ROLE.findall(text) for page, text in pages.items() if RAW_ROLE.search(text)}
    assert not raw, raw
    # the roles became links: ':meth:`Fit.save`' in hb.load's docstring, ':class:`Fit`' in Model.fit's
    assert re.search(r'<a class="autorefs autorefs-internal"[^>]*href="#hierbayes.api.Fit.save"><code>Fit.save\(\)</code></a>', api)
    assert re.search(r'<a class="autorefs autorefs-internal"[^>]*href="#hierbayes.api.Fit"><code>Fit</code></a>', api)
    # hb.Model's docstring is assigned at run time (from ModelDefinition): its parameter table is rendered
    model = api[api.index('id="hierbayes.api.Model"'):api.index('id="hierbayes.api.Model.fit_class"')]
    for parameter in ("formula", "family", "priors", "parameterization", "collapse", "namespace"):
        assert f"<code>{parameter}</code>" in model, parameter

    # every lesson notebook is a page of the "Lessons" section, executed (its plots are in the page) ...
    assert re.search(r'<span class="md-ellipsis">\s*Lessons\s*</span>', pages["index.html"]), "no Lessons section"
    for name in stored:
        stem = name.removesuffix(".ipynb")
        page = pages[f"lessons/{stem}/index.html"]
        title = nbformat.reads(stored[name].decode(), as_version=4).cells[0].source.splitlines()[0].removeprefix("# ")
        assert f"<title>{title}" in page, name
        assert "data:image/png;base64," in page, f"{name} is rendered without its outputs"
        assert f'href="../lessons/{stem}/"' in pages["api/index.html"], f"{name} is not in the nav"
    # ... a link from one lesson to another leads to that lesson's page ...
    assert 'href="../03_crossed_random_factors/"' in pages["lessons/08_stimuli_as_a_random_factor/index.html"]
    # the migration page is in the nav; tables show group terms with their bars, (1 | g), though the
    # Markdown escapes them for GitHub, (1 \| g)
    assert 'href="migration/"' in pages["index.html"]
    assert "<code>lmer(y ~ x + (1 | g), data)</code>" in pages["migration/index.html"]
    assert "<code>y ~ x + (1 | g)</code>" in pages["formulas/index.html"]
    escaped = {page: n for page, text in pages.items() if (n := text.count("\\|"))}
    assert not escaped, escaped
    # ... and the repository's notebooks stay without outputs
    assert {p.name: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")} == stored


def hierbayes_text(page: str) -> str:
    """The migration page without its lme4/brms/bambi columns: the prose and each table row's last cell."""
    lines = []
    for line in page.splitlines():
        if line.startswith("|"):  # a cell ends at a bar outside backticks
            line = re.findall(r"((?:`[^`]*`|[^`|])*)\|", line[1:])[-1]
        lines.append(line)
    return "\n".join(lines)


def calls(text: str, name: str) -> set[str]:
    """The attributes of ``name`` (``fit``, ``model``, ``hb``) that ``text`` calls or names: ``fit.loo()`` -> loo."""
    return set(re.findall(rf"(?<![\w.]){name}\.([A-Za-z_]\w*)", text))


def test_every_call_on_the_migration_page_exists():
    import hierbayes as hb

    page = hierbayes_text((ROOT / "docs" / "migration.md").read_text())
    assert "bmb." not in page and "brm(" not in page
    fit, model, package = calls(page, "fit"), calls(page, "model"), calls(page, "hb")
    # the page covers what the lme4/brms/bambi user looks for first
    assert {"fixed_effects", "group_effects", "variance_components", "plot_ppc", "loo", "predict", "icc",
            "r2", "diagnostics", "save", "compare_map"} <= fit
    assert {"prior_summary", "fit", "sample_prior_predictive"} <= model and {"Model", "compare", "load"} <= package
    # methods and properties are on the classes, attributes (fit.idata, fit.model) on the objects
    a_model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    a_fit = hb.Fit(a_model, xr.DataTree(), sampler="nutpie")  # no draws needed to know its attributes
    assert sorted(name for name in fit if not (hasattr(hb.Fit, name) or name in vars(a_fit))) == []
    assert sorted(name for name in model if not (hasattr(hb.Model, name) or name in vars(a_model))) == []
    assert sorted(name for name in package if not hasattr(hb, name)) == []
    # predict's kinds and groups, as the page writes them
    from hierbayes.posterior.predict import GROUPS, KINDS
    from hierbayes.specification.families import FAMILIES

    assert set(re.findall(r'kind="(\w+)"', page)) == set(KINDS)
    assert set(re.findall(r'groups="(\w+)"', page)) <= set(GROUPS)
    assert set(re.findall(r'family="(\w+)"', page)) <= set(FAMILIES)


BROKEN = {"[the CLI](no-such-page.md)": "no-such-page.md", "![plot](images/no-such.png)": "images/no-such.png",
          "[Model][hierbayes.no_such_object]": "hierbayes.no_such_object"}
BROKEN_LESSON_LINK = "no_such_lesson.ipynb"  # from a lesson notebook to a notebook that is not a lesson


def test_broken_links_images_and_references_fail_the_build(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    with open(docs / "index.md", "a") as fh:
        fh.write("".join(f"\n{text}\n" for text in BROKEN))
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")  # the hook finds them beside mkdocs.yml
    nbformat.write(new_notebook(cells=[new_markdown_cell(f"# 99. A lesson\n\nSee [that one]({BROKEN_LESSON_LINK})."),
                                       new_code_cell("1 + 1")]), tmp_path / "notebooks" / "99_a_lesson.ipynb")
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {docs}"))
    result = build(config, tmp_path / "site")
    assert result.returncode == 1
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("WARNING")]
    assert len(warnings) == len(BROKEN) + 1
    for target in [*BROKEN.values(), BROKEN_LESSON_LINK]:
        assert any(target in line for line in warnings), target
