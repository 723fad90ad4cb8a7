"""The HTML report of a fit: one self-contained page (images embedded as PNG data).

The page says what was fitted (formula, family, data, priors), whether the sampler can
be trusted (the convergence checks of :meth:`Fit.diagnostics
<hierbayes.api.Fit.diagnostics>` in plain words), and shows the tables (fixed effects,
variance components, ICC, group effects per factor) and the plots (partial pooling per
grouping factor, traces, posterior predictive check). A model without a grouping factor
(complete pooling) has no group effects, ICC or shrinkage plots, and the page says so where
they would be. It loads nothing from the network, so it can be mailed or archived as one file.

- :func:`report_images`: the plots as PNG bytes, by file stem (``shrinkage_Subject``,
  ``trace``, ``ppc``); the command line writes the same bytes as ``.png`` files.
- :func:`report_tables`: the tables, by file stem (``fixed_effects``, ...).
- :func:`render_report`: the HTML text; :func:`write_report` writes it.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> page = render_report(fit, images={})
>>> page.startswith("<!DOCTYPE html>") and 'id="table-group_effects_Subject"' in page
True
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from hierbayes.common.errors import HierbayesError
from hierbayes.common.version import __version__
from hierbayes.posterior.diagnostics import few_levels
from hierbayes.posterior.fit import NO_GROUPS, formula_links
from hierbayes.posterior.summaries import format_table
from hierbayes.specification.names import file_stem, part_label

__all__ = ["report_images", "report_tables", "render_report", "write_report", "report_stems", "factor_stem",
           "part_factors",
           "MAX_TABLE_ROWS", "TABLE_STEMS", "IMAGE_STEMS", "FACTOR_TABLE", "FACTOR_IMAGE"]

MAX_TABLE_ROWS = 1000  # rows of one group-effects table shown in the page (the CSV has all)
TABLE_STEMS = ("summary", "fixed_effects", "variance_components", "icc", "diagnostics", "priors")
IMAGE_STEMS = ("trace", "ppc")
FACTOR_TABLE, FACTOR_IMAGE = "group_effects", "shrinkage"  # one table and one plot per grouping factor

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 70em;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
code, .formula { font-family: ui-monospace, Menlo, Consolas, monospace; }
.formula { font-size: 1.15em; background: #f4f4f4; padding: 0.3em 0.6em; display: inline-block; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e3e3e3; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child, table.words td { text-align: left; }
.ok { color: #1a7f37; } .bad { color: #b42318; font-weight: 600; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; max-width: 50em; }
"""

_FIGURE_TEXT = {
    "shrinkage": ("Partial pooling of {term} by {factor}. Each open circle is a level's own estimate (no pooling: "
                  "its data alone); the arrow leads to the model's estimate (partial pooling), which borrows "
                  "strength from the other levels. Levels with few rows move most toward the population mean "
                  "(dashed line); levels with many rows keep close to their own data."),
    "trace": ("Posterior density (left) and trace (right) of every population-level parameter, one colour per "
              "parameter and one line style per chain. "
              "Chains that overlap and look like stationary noise, with no trends, are what good sampling "
              "looks like; divergent transitions are marked."),
    "ppc": ("Posterior predictive check: data sets simulated from the fitted model against the observed "
            "response. Where the observed data sit outside the simulated ones, the model misses a feature "
            "of the data. The data sets are those of a random sample of posterior draws (and, for large "
            "data, of rows), as the note under the title says."),
}


# --- pieces -------------------------------------------------------------------------------------

def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def factor_stem(kind: str, factor: str, part: str | None = None) -> str:
    """The file stem of a grouping factor's table or plot (``kind`` is :data:`FACTOR_TABLE` or
    :data:`FACTOR_IMAGE`), its name made file-safe: ``group_effects_school_class``; in a family
    parameter's formula (``part``), ``group_effects_g__sigma``."""
    return file_stem(kind, factor, part)


def part_factors(design) -> list[tuple[str, str]]:
    """(parameter, factor) of each grouping factor in a family parameter's own formula."""
    return [(d.part, f) for d in design.parts for f in d.factors]


def report_stems(factors, parts: list[tuple[str, str]] = ()) -> tuple[list[str], list[str]]:
    """The file stems of every table and every plot a report may have, for these grouping factors
    (and those of family parameters' formulas, :func:`part_factors`).

    A model has some of them only (``icc`` needs a varying intercept); the command line
    checks an output folder against all of them before fitting.
    """
    return ([*TABLE_STEMS, *(factor_stem(FACTOR_TABLE, f) for f in factors),
             *(factor_stem(FACTOR_TABLE, f, p) for p, f in parts)],
            [*(factor_stem(FACTOR_IMAGE, f) for f in factors), *IMAGE_STEMS])


def shrinkage_term(fit, factor: str) -> str:
    """The coefficient a factor's shrinkage plot shows: its intercept, else its first varying coefficient."""
    coefs = fit.model.design.factor_coefs(factor)
    return "Intercept" if "Intercept" in coefs else coefs[0]


def report_images(fit, seed: int | None = 0) -> tuple[dict[str, bytes], list[str]]:
    """Draw the report's plots and encode them as PNG.

    Parameters
    ----------
    fit : Fit
    seed : int, optional
        For the replicated data of the posterior predictive check.

    Returns
    -------
    images : dict of str -> bytes
        ``shrinkage_<factor>`` (factor names made file-safe), ``trace``, ``ppc``.
    notes : list of str
        One sentence per plot that could not be drawn for this model, saying why.
    """
    images, notes = {}, []
    for factor in fit.model.design.factors:
        term = shrinkage_term(fit, factor)
        try:
            images[factor_stem(FACTOR_IMAGE, factor)] = _png(fit.plot_shrinkage(factor, term).figure)
        except HierbayesError as err:
            notes.append(f"No shrinkage plot for {factor}: {err}")
    if fit.model.family.nominal:  # the factors are in the categories' formulas
        notes += [f"No shrinkage plot for {factor}: the {fit.model.family.name} family has one linear predictor per "
                  "category after the first, each with its own group effects (see Group effects)"
                  for factor in fit.model.design.all_factors]
    images["trace"] = _png(fit.plot_trace())
    images["ppc"] = _png(fit.plot_ppc(seed=seed).figure)
    return images, notes


def report_tables(fit) -> dict[str, pd.DataFrame]:
    """The tables of the report (and of the command line's CSV files), by file stem.

    ``summary``, ``fixed_effects``, ``variance_components``, ``icc`` (when a factor has a
    varying intercept), ``group_effects_<factor>`` (one row per level and coefficient),
    ``diagnostics`` and ``priors``.
    """
    tables = {"summary": fit.summary(), "fixed_effects": fit.fixed_effects(),
              "variance_components": fit.variance_components()}
    try:
        tables["icc"] = fit.icc()
    except HierbayesError:
        pass  # no varying intercept: no ICC
    for factor in fit.model.design.factors:
        tables[factor_stem(FACTOR_TABLE, factor)] = fit.group_effects(factor)
    for part, factor in part_factors(fit.model.design):
        tables[factor_stem(FACTOR_TABLE, factor, part)] = fit.group_effects(factor, part=part)
    tables["diagnostics"] = fit.diagnostics()
    tables["priors"] = fit.model.prior_summary()
    return tables


def _model_table(fit) -> pd.DataFrame:
    m, post = fit.model, fit.posterior
    d = m.design
    rows = {
        "formula": m.spec.formula,
        **{f"formula for {part.part}": f"{part.spec.formula} (link: {formula_links(m)[part.part]})"
           for part in d.parts},
        "family": f"{m.family.name} (link: {m.family.link})",
        "rows fitted": f"{d.n_obs}" + (f" ({d.n_dropped} dropped for missing values)" if d.n_dropped else ""),
    }
    for factor, fd in d.all_factors.items():
        counts = fd.counts
        sizes = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()} to {counts.max()}"
        varying = [part_label(c, part.part) for part in (d, *d.parts) for c in part.factor_coefs(factor)]
        rows[f"grouping factor {factor}"] = (f"{len(fd.levels)} levels, {sizes} rows per level; varying: "
                                             f"{', '.join(varying)}")
    if not d.all_factors:
        rows["grouping factors"] = "none (complete pooling)"
    rows["sampler"] = (f"{fit.sampler}: {post.sizes['chain']} chains x {post.sizes['draw']} draws"
                       + (f", seed {fit.seed}" if fit.seed is not None else ""))
    reruns = [fit.idata.attrs.get(key) for key in ("divergence_refits", "parameterization_refit")]
    if any(reruns):  # what Model.fit did after divergences or chains stuck apart, as the printed summary says
        rows["sampler reruns"] = "; ".join(filter(None, reruns))
    if fit.timings:
        rows["time (s)"] = ", ".join(f"{k} {v:.1f}" for k, v in fit.timings.items())
    rows["hierbayes"] = __version__
    return pd.DataFrame({"value": list(rows.values())}, index=pd.Index(list(rows), name="model"))


def _table_html(name: str, frame: pd.DataFrame, index: bool = True, words: bool = False) -> str:
    """A table with id ``table-<name>``, numbers as the printed summary has them
    (:func:`~hierbayes.posterior.summaries.format_table`); ``words`` left-aligns cells that hold text."""
    shown = frame.head(MAX_TABLE_ROWS)
    shown = shown.rename_axis(index=None) if words else format_table(shown)
    note = (f"<p>The first {MAX_TABLE_ROWS} of {len(frame)} rows; all are in <code>{html.escape(name)}.csv</code>.</p>"
            if len(frame) > MAX_TABLE_ROWS else "")
    return note + shown.to_html(table_id=f"table-{name}", border=0, na_rep="", index=index,
                                float_format=lambda v: f"{v:.4g}", classes="words" if words else None)


def _img_html(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="figure-{html.escape(name)}"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(name)}" data-name="{html.escape(name)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _diagnostics_html(checks: pd.DataFrame) -> str:
    failed = checks[~checks["ok"]]
    if failed.empty:
        head = ("<p class='ok'>All convergence checks passed: the chains agree (R-hat), there are enough "
                "independent draws (ESS), and the sampler met no divergences, depth limits or energy problems. "
                "The posterior summaries below can be trusted as far as sampling goes.</p>")
    else:
        items = "".join(f"<li>{html.escape(m)}</li>" for m in failed["message"])
        head = (f"<p class='bad'>{len(failed)} of {len(checks)} convergence checks failed; treat the numbers "
                f"below with caution until they pass:</p><ul>{items}</ul>")
    passed = "".join(f"<li class='ok'>{html.escape(m)}</li>" for m in checks.loc[checks["ok"], "message"])
    return head + (f"<p>Passed:</p><ul>{passed}</ul>" if passed and not failed.empty else "")


_TABLE_TITLES = {
    "fixed_effects": ("Population-level effects", "Posterior mean, SD and equal-tailed interval of each fixed "
                      "effect, with bulk and tail ESS and R-hat."),
    "variance_components": ("Variance components", "Standard deviations of the group effects (sd), their "
                            "correlations (cor) and the family's own parameters."),
    "icc": ("Intra-class correlation", "Share of the (latent) variance due to each grouping factor's varying "
            "intercept."),
}


def render_report(fit, images: Mapping[str, bytes], notes: Sequence[str] = (), title: str | None = None,
                  tables: Mapping[str, pd.DataFrame] | None = None) -> str:
    """The report as one self-contained HTML page.

    Parameters
    ----------
    fit : Fit
    images : mapping of str -> bytes
        PNG images by name, as from :func:`report_images`.
    notes : sequence of str
        Sentences shown near the top (rows dropped, plots not drawn, ...).
    title : str, optional
    tables : mapping, optional
        From :func:`report_tables` (computed when omitted).

    Returns
    -------
    str
        Tables have ids ``table-<name>`` (``table-model``, ``table-fixed_effects``, ...);
        figures have ids ``figure-<name>``.
    """
    tables = dict(tables) if tables is not None else report_tables(fit)
    title = title or f"hierbayes: {fit.model.spec.formula}"
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='formula'>{html.escape(fit.model.spec.formula)}</p>"]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
    parts += ["<h2>Model</h2>", _table_html("model", _model_table(fit), words=True),
              "<h3>Priors</h3>", "<p>Every prior in force; 'default' ones are scaled to the data.</p>",
              _table_html("priors", tables["priors"], words=True)]
    parts += ["<h2>Diagnostics</h2>", _diagnostics_html(tables["diagnostics"]),
              *(f"<p class='bad few-levels'>{html.escape(m)}</p>" for m in few_levels(fit.model.design)),
              _table_html("diagnostics", tables["diagnostics"], words=True)]
    parts.append("<h2>Estimates</h2><p>Every number is a posterior mean (never a mode), with a "
                 f"{100 * fit.prob:g}% equal-tailed credible interval.</p>")
    pooled = not fit.model.design.all_factors
    for name, (heading, text) in _TABLE_TITLES.items():
        if name == "variance_components" and pooled:
            text = "The family's own parameters; the model has no group effects, so no SDs or correlations of them."
        if name in tables and tables[name].empty:
            parts += [f"<h3>{heading}</h3>", f"<p id='no-{name}'>None: this model has none of these parameters.</p>"]
        elif name in tables:
            parts += [f"<h3>{heading}</h3>", f"<p>{text}</p>", _table_html(name, tables[name])]
    if pooled:
        parts += ["<h3>Group effects</h3>", f"<p id='no-group-effects'>None. {html.escape(NO_GROUPS)} So there are no "
                  "group effects, no intra-class correlation and no shrinkage plots.</p>"]
    for part, factor in [(None, f) for f in fit.model.design.factors] + part_factors(fit.model.design):
        name = factor_stem(FACTOR_TABLE, factor, part)
        heading = factor if part is None else f"{factor}, in the formula for {part} (on its link)"
        table = tables[name].reset_index()
        parts += [f"<h3>Group effects: {html.escape(heading)}</h3>",
                  "<p>Per level and varying coefficient: the level's deviation from the population value "
                  "(mean, sd, interval) and its total coefficient (total_*), with n, its number of rows.</p>",
                  f"<details id='details-{html.escape(name)}'{' open' if len(table) <= 12 else ''}>"
                  f"<summary>{len(table)} rows: show or hide</summary>",
                  _table_html(name, table, index=False), "</details>"]
    parts.append("<h2>Plots</h2>")
    if pooled:
        parts.append("<p id='no-shrinkage'>No shrinkage plots: the model has no grouping factor, so no level's "
                     "estimate is pooled toward the population (see Group effects above).</p>")
    for factor in fit.model.design.factors:
        name = factor_stem(FACTOR_IMAGE, factor)
        if name in images:
            text = _FIGURE_TEXT["shrinkage"].format(term=shrinkage_term(fit, factor), factor=factor)
            parts.append(_img_html(name, images[name], text))
    for name in ("trace", "ppc"):
        if name in images:
            parts.append(_img_html(name, images[name], _FIGURE_TEXT[name]))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(fit, path: str | os.PathLike, seed: int | None = 0) -> None:
    """Draw the plots and write the report of ``fit`` to ``path`` (one HTML file).

    Parameters
    ----------
    fit : Fit
    path : str or path-like
    seed : int, optional
        For the posterior predictive check.
    """
    images, notes = report_images(fit, seed=seed)
    Path(path).write_text(render_report(fit, images, notes), encoding="utf-8")
