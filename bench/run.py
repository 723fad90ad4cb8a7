"""Benchmark hierbayes against bambi and a hand-written PyMC model.

Usage (from the repository root)::

    .venv/bin/python bench/run.py --suite quick            # writes bench/results.md and .json
    .venv/bin/python bench/run.py --suite full --timeout 1800
    .venv/bin/python bench/run.py --suite quick --contenders hierbayes,bambi --repeats 3
    .venv/bin/python bench/run.py --suite quick --cache cold   # empty compile caches per run

Every (model, contender) run is a fresh worker process (``run.py --worker``), so the
whole-process wall time includes the interpreter, the imports, building, compiling and
sampling, as a user's script would. Contenders alternate within each model (and the
order rotates between repeats) so that they share the machine's state and the ratios
are meaningful. All contenders get the same data, draws, tuning, chains and seed.

Measured per run:

- ``wall``: from launching the worker to holding the posterior (s);
- ``import``, ``build``, ``compile``, ``sample``: where the library shows the boundary;
  ``fit`` is everything after the import and the data load;
- min bulk ESS and max R-hat over every parameter users read (fixed effects, group SDs
  and correlations, group effects, family parameters), min ESS per second of ``fit``;
- divergences; peak memory: the largest ``ru_maxrss`` of the worker and its children.

``--cache warm`` (default) uses the machine's PyTensor/numba caches as they are (a
user's second day); ``--cache cold`` gives every worker empty cache directories (a new
machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PACKAGES = ("hierbayes", "bambi", "pymc", "pytensor", "nutpie", "numba", "numpy", "arviz-stats")


# --- worker -----------------------------------------------------------------------------------------

def _convergence(draws: dict) -> dict:
    """Min bulk ESS, its parameter and max R-hat over every scalar of every variable."""
    import numpy as np
    from arviz_stats.base import array_stats

    min_ess, min_name, max_rhat = float("inf"), "", 0.0
    for name, values in draws.items():
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        moved = np.moveaxis(flat, (0, 1), (-2, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            ess = np.asarray(array_stats.ess(moved, method="bulk"))
            rhat = np.asarray(array_stats.rhat(moved))
        keep = np.ptp(flat, axis=(0, 1)) > 0  # constant entries (fixed zeros) carry no information
        if keep.any():
            if ess[keep].min() < min_ess:
                min_ess, min_name = float(ess[keep].min()), name
            max_rhat = max(max_rhat, float(rhat[keep].max()))
    return {"min_ess_bulk": min_ess, "min_ess_var": min_name, "max_rhat": max_rhat,
            "n_values": int(sum(v[0, 0].size for v in draws.values()))}


def _peak_memory_mb() -> float:
    kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return kb / 1024


def worker(spec: dict) -> None:
    """Run one contender on one model and write the result JSON to ``spec["out"]``."""
    import pandas as pd
    from contenders import CONTENDERS
    from suite import MODELS

    model = MODELS[spec["model"]]
    t0 = time.perf_counter()
    data = pd.read_pickle(spec["data"])
    load = time.perf_counter() - t0
    outcome = CONTENDERS[spec["contender"]]()(model, data, spec["settings"])
    ready = time.time()
    outcome.timings["load"] = load
    result = {
        "model": model.name, "contender": spec["contender"], "status": "ok",
        "wall": ready - spec["launched"], "timings": outcome.timings, "divergences": outcome.divergences,
        **_convergence(outcome.draws), "extra": outcome.extra,
    }
    result["ess_per_s"] = result["min_ess_bulk"] / outcome.timings["fit"]
    result["peak_mb"] = _peak_memory_mb()
    Path(spec["out"]).write_text(json.dumps(result))


# --- orchestration ------------------------------------------------------------------------------------

def _versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def _source_state() -> str:
    """The hierbayes commit benchmarked, and whether the working tree had changes."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "hierbayes")
    return commit + (" with uncommitted changes to hierbayes/" if dirty else "")


def _machine() -> dict:
    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = float("nan")
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1), "load_before": os.getloadavg()[0]}


def _session_rss_gb(sid: int) -> float:
    """Resident memory of every process in session ``sid`` (the worker and its children), GB."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # field 6 of stat: the session id
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: resident pages
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**30


def _wait(proc, timeout: float, max_memory_gb: float) -> str | None:
    """Wait for the worker; kill it (and say why) past the time or memory limit."""
    start = time.time()
    while proc.poll() is None:
        reason = None
        if time.time() - start > timeout:
            reason = f"timeout after {timeout:g} s"
        elif _session_rss_gb(proc.pid) > max_memory_gb:
            reason = f"killed: memory above {max_memory_gb:g} GB"
        if reason:
            os.killpg(proc.pid, 9)
            proc.wait()
            return reason
        time.sleep(0.5)
    return None


def worker_env(cache: str, tmp: str) -> dict[str, str]:
    """The worker's environment: this one, with every compile cache under ``tmp`` for ``cache="cold"``.

    A new machine has three caches, all emptied: PyTensor's (``base_compiledir``, not just
    ``compiledir``: PyTensor keeps its numba cache under ``base_compiledir/numba``, which a new
    ``compiledir`` alone leaves warm), numba's own (``NUMBA_CACHE_DIR``) and hierbayes's
    (``HIERBAYES_CACHE_DIR``).
    """
    env = dict(os.environ)
    if cache == "cold":
        env["PYTENSOR_FLAGS"] = ",".join(filter(None, [env.get("PYTENSOR_FLAGS", ""), f"base_compiledir={tmp}/pytensor"]))
        env["NUMBA_CACHE_DIR"] = f"{tmp}/numba"
        env["HIERBAYES_CACHE_DIR"] = f"{tmp}/hierbayes"
    return env


def run_one(model_name: str, contender: str, data_path: Path, settings: dict, timeout: float,
            cache: str, max_memory_gb: float = 8.0) -> dict:
    """Launch one worker; return its result (or a status saying why there is none)."""
    with tempfile.TemporaryDirectory(prefix="hb-bench-") as tmp:
        env = worker_env(cache, tmp)
        out = Path(tmp) / "result.json"
        spec = {"model": model_name, "contender": contender, "data": str(data_path), "settings": settings,
                "out": str(out), "launched": time.time()}
        log_path = Path(tmp) / "worker.log"
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen([sys.executable, str(HERE / "run.py"), "--worker", json.dumps(spec)], env=env,
                                    stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
            stopped = _wait(proc, timeout, max_memory_gb)
        if stopped:
            return {"model": model_name, "contender": contender, "status": stopped, "wall": None}
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(log_path.read_text().strip().splitlines()[-8:])
            return {"model": model_name, "contender": contender, "status": f"failed (exit {proc.returncode})",
                    "wall": None, "log": tail}
        return json.loads(out.read_text())


def _median_result(runs: list[dict]) -> dict:
    """The run with the median wall time (all runs stay in the JSON)."""
    ok = [r for r in runs if r["status"] == "ok"]
    if not ok:
        return runs[0]
    ok.sort(key=lambda r: r["wall"])
    best = dict(ok[(len(ok) - 1) // 2])
    best["repeats"] = len(ok)
    best["wall_all"] = [round(r["wall"], 2) for r in ok]
    return best


def run_suite(suite: str, contenders: list[str], settings: dict, repeats: int, timeout: float,
              cache: str, warmup: bool = False, models: list[str] | None = None, max_memory_gb: float = 8.0,
              log=print) -> dict:
    """Every model of ``suite`` with every contender, alternating; returns the results document."""
    from suite import SUITES

    document = {"suite": suite, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join([Path(sys.executable).name, *sys.argv]), "settings": settings,
                "cache": cache, "warmup": warmup, "timeout": timeout, "max_memory_gb": max_memory_gb, "source": _source_state(), "machine": _machine(),
                "versions": _versions(), "models": []}
    with tempfile.TemporaryDirectory(prefix="hb-bench-data-") as tmp:
        for model in SUITES[suite]:
            if models and model.name not in models:
                continue
            data_path = Path(tmp) / f"{model.name}.pkl"
            data = model.data()
            data.to_pickle(data_path)
            runs: dict[str, list[dict]] = {c: [] for c in contenders}
            if warmup:  # one unrecorded run each, so that every contender meets warm caches
                for c in contenders:
                    run_one(model.name, c, data_path, settings, timeout, cache, max_memory_gb)
            for r in range(repeats):
                order = contenders if r % 2 == 0 else contenders[::-1]
                for c in order:
                    result = run_one(model.name, c, data_path, settings, timeout, cache, max_memory_gb)
                    runs[c].append(result)
                    log(f"{model.name:16s} {c:22s} " + (f"wall {result['wall']:7.1f} s  min ESS "
                        f"{result['min_ess_bulk']:7.0f}  ESS/s {result['ess_per_s']:7.1f}"
                        if result["status"] == "ok" else result["status"]))
            document["models"].append({
                "name": model.name, "description": model.description, "family": model.family,
                "formula": model.formula, "bambi_formula": model.bambi_formula, "note": model.bambi_note,
                "rows": len(data), "results": {c: _median_result(rs) for c, rs in runs.items()},
                "runs": runs,
            })
    document["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    document["machine"]["load_after"] = os.getloadavg()[0]
    return document


# --- report -------------------------------------------------------------------------------------------

def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value != value:
        return "—"
    return f"{value:,.{digits}f}"


def _ratio(a, b) -> str:
    if a is None or b is None or not b:
        return "—"
    return f"{a / b:.2f}"


def markdown(document: dict) -> str:
    """The results document as a Markdown report: a header and one table per model."""
    m, s = document["machine"], document["settings"]
    lines = [
        f"# hierbayes benchmark: suite `{document['suite']}`", "",
        f"Command: `{document['command']}`  ", f"Run: {document['started']} to {document.get('finished', '?')} (UTC)  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['platform']}, Python {m['python']}; "
        f"load average before: {m['load_before']:.2f}, after: {m.get('load_after', float('nan')):.2f}  ",
        f"hierbayes source: {document.get('source', '?')}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in document["versions"].items()) + "  ",
        f"Settings: {s['chains']} chains x ({s['tune']} tune + {s['draws']} draws), seed {s['seed']}; "
        f"compile caches: {document['cache']}" + (" (after one unrecorded warm-up run per contender)"
                                                   if document.get("warmup") else ""), "",
        "Times in seconds. `wall`: fresh process to posterior (interpreter, imports, data load, build, compile, "
        "sample). `fit`: everything after the imports and the data load. `min ESS`: minimum bulk ESS over every "
        "parameter users read (fixed effects, group SDs and correlations, every group effect, family parameters); "
        "`ESS/s` = min ESS / fit. Ratios are to bambi with its default sampler (`x bambi`) and with nutpie "
        "(`x bambi-nutpie`): wall ratio below 1 and ESS/s ratio above 1 favour the row. `—`: not measurable "
        "separately (bambi's default sampler compiles inside `pm.sample`).", "",
    ]
    for model in document["models"]:
        results = model["results"]
        lines += [f"## {model['name']}: `{model['formula']}` ({model['family']}, {model['description']})", ""]
        if model["note"]:
            lines += [f"*{model['note']}: `{model['bambi_formula']}`.*", ""]
        lines += ["| contender | wall | import | build | compile | sample | fit | min ESS | ESS/s | max R-hat "
                  "| div. | peak MB | wall x bambi | ESS/s x bambi | wall x bambi-nutpie | ESS/s x bambi-nutpie |",
                  "|---|" + "---:|" * 15]
        refs = {name: results.get(name, {}) for name in ("bambi", "bambi-nutpie")}
        for name, r in results.items():
            if r["status"] != "ok":
                lines.append(f"| {name} | {r['status']} |" + " |" * 14)
                continue
            t = r["timings"]
            ratios = []
            for ref in refs.values():
                ok = ref.get("status") == "ok"
                ratios += [_ratio(r["wall"], ref["wall"]) if ok else "—",
                           _ratio(r["ess_per_s"], ref["ess_per_s"]) if ok else "—"]
            lines.append(
                f"| {name} | {_fmt(r['wall'])} | {_fmt(t.get('import'))} | {_fmt(t.get('build'), 2)} | "
                f"{_fmt(t.get('compile'))} | {_fmt(t.get('sample'))} | {_fmt(t['fit'])} | "
                f"{_fmt(r['min_ess_bulk'], 0)} | {_fmt(r['ess_per_s'])} | {_fmt(r['max_rhat'], 3)} | "
                f"{r['divergences']} | {_fmt(r['peak_mb'], 0)} | " + " | ".join(ratios) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from contenders import CONTENDERS, DEFAULT_CONTENDERS
    from suite import SUITES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--contenders", default=",".join(DEFAULT_CONTENDERS),
                        help=f"comma-separated, from {sorted(CONTENDERS)}")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per run before it is killed")
    parser.add_argument("--cache", choices=("warm", "cold"), default="warm")
    parser.add_argument("--warmup", action="store_true", help="one unrecorded run per contender and model first")
    parser.add_argument("--models", help="comma-separated subset of the suite's models")
    parser.add_argument("--max-memory-gb", type=float, default=8.0,
                        help="kill a run whose processes hold more resident memory (the machine is shared)")
    parser.add_argument("--out", type=Path, default=HERE, help="directory for results.md and results.json")
    parser.add_argument("--name", default="results", help="file stem of the outputs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contenders {unknown}; choose from {sorted(CONTENDERS)}")
    settings = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "seed": args.seed}
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    document = run_suite(args.suite, contenders, settings, args.repeats, args.timeout, args.cache, args.warmup,
                         models, args.max_memory_gb)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(document, indent=1))
    (args.out / f"{args.name}.md").write_text(markdown(document))
    print(f"wrote {args.out / (args.name + '.md')} and {args.out / (args.name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
