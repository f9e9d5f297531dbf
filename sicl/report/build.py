"""``build_report``: results.csv, report.md and PNG plots from evaluation run folders (docs/report.md)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sicl import __version__
from sicl.report import plots
from sicl.report.collect import (
    ZERO_K_METHODS,
    Run,
    collect_runs,
    metric_label,
    sort_rows,
)
from sicl.report.reading import Results, Target, fmt, mean_over_eval_sets, reading, sweep_eval_sets

CSV_COLUMNS = ["method", "eval_set", "k", "metric", "value"]
DEFAULT_TITLE = "sicl evaluation report"
#: Cost metrics that get a table in report.md (all of them are in results.csv).
COST_TABLE_METRICS = ["seconds_per_query", "prompt_tokens", "peak_rss_mb", "peak_gpu_mb"]


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> str:
    def cell(x: object) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def results_csv(rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([r.method, r.eval_set, r.k, r.metric, repr(float(r.value))])
    return buf.getvalue()


def _headline_rule(main_k: int) -> str:
    zero = ", ".join(sorted(ZERO_K_METHODS))
    return (f"each method is compared at k={main_k}, except {zero} at k=0; where that k was not run, the "
            "method's nearest k is used and shown next to the value")


def _settings(runs: list[Run], res: Results, notes: list[str]) -> list[str]:
    out = ["## Settings", ""]
    out.append(f"- {len(runs)} run(s) of {len(res.methods)} method(s) on {len(res.eval_sets)} eval set(s); "
               f"report by sicl {__version__}.")
    out.append(f"- Headline k: {_headline_rule(res.main_k)}.")
    for n in notes:
        out.append(f"- {n}")
    out.append("")
    rows = []
    for r in runs:
        n = r.info.get("n")
        adapter = r.info.get("adapter")
        rows.append([r.method, r.eval_set, r.k, r.info.get("model", "—"),
                     "—" if adapter in (None, "") else adapter, "—" if n is None else n,
                     r.info.get("retriever", "—")])
    out += [_table(["method", "eval set", "k", "model", "adapter", "n", "retriever"], rows, text_columns=7), ""]
    return out


def _comparison(res: Results, metric: str, plot: str | None) -> list[str]:
    eval_sets = [e for e in res.eval_sets if metric in res.metrics("quality", e)]
    rows = []
    for m in res.methods:
        ks = {e: res.headline(m, e, metric) for e in eval_sets}
        present = {e: kv for e, kv in ks.items() if kv[1] is not None}
        if not present:
            continue
        common = {k for k, _ in present.values()}
        main = min(common) if len(common) == 1 else (0 if m in ZERO_K_METHODS else res.main_k)
        cells = []
        for e in eval_sets:
            k, v = ks[e]
            cells.append("—" if v is None else fmt(metric, v) + ("" if k == main else f" (k={k})"))
        rows.append([m, main, *cells])
    if not rows:
        return []
    out = [f"### {metric_label(metric)}", "", _table(["method", "k", *eval_sets], rows), ""]
    if plot:
        out += [f"![{metric_label(metric)} per eval set]({plot})", ""]
    return out


def _sweep(res: Results, eval_set: str, metric: str, plot: str | None) -> list[str]:
    ks = res.ks(eval_set=eval_set)
    rows = []
    for m in res.methods:
        vals = [res.value(m, eval_set, k, metric) for k in ks]
        if any(v is not None for v in vals):
            rows.append([m, *(fmt(metric, v) for v in vals)])
    out = [f"### {eval_set}: {metric_label(metric)}", "", _table(["method", *(f"k={k}" for k in ks)], rows), ""]
    if plot:
        out += [f"![{eval_set} {metric_label(metric, False)} vs k]({plot})", ""]
    return out


def _cost(res: Results, plot: str | None) -> list[str]:
    present = set(res.metrics("cost"))
    out = ["## Cost", ""]
    if not present:
        return out + ["The runs record no timing, token or memory figures.", ""]
    ks = res.ks()
    out += ["Per method, the mean over the eval sets it was run on at the most k values (the same sets at every "
            "k; listed in the last column); every run's own figures are in results.csv.", ""]
    for c in COST_TABLE_METRICS:
        if c not in present:
            continue
        rows = []
        for m in res.methods:
            s = mean_over_eval_sets(res, m, c)
            if s:
                rows.append([m, *(fmt(c, s.get(k)) for k in ks), ", ".join(sweep_eval_sets(res, m, c))])
        out += [f"### {metric_label(c)}", "", _table(["method", *(f"k={k}" for k in ks), "eval sets"], rows), ""]
    if plot:
        out += [f"![cost vs k]({plot})", ""]
    return out


def _breakdowns(res: Results) -> list[str]:
    names = res.metrics("breakdown")
    if not names:
        return []
    out = ["## Breakdowns", "", "Values inside the runs' breakdowns (metrics.json), each method at its headline k.", ""]
    for e in res.eval_sets:
        groups: dict[str, list[str]] = {}
        for name in names:
            if "[" in name:
                base, _, rest = name.partition("[")
                dim = rest.rstrip("]").split("=", 1)[0] if "=" in rest else base
                label = f"{base} by {dim}" if "=" in rest else base
                groups.setdefault(label, []).append(name)
        for label, cols in groups.items():
            rows = []
            for m in res.methods:
                k = res.headline_k(m, e)
                vals = [None if k is None else res.value(m, e, k, c) for c in cols]
                if any(v is not None for v in vals):
                    rows.append([m, k, *(fmt(c, v) for c, v in zip(cols, vals, strict=True))])
            if rows:
                heads = [c.partition("[")[2].rstrip("]").split("=", 1)[-1] for c in cols]
                out += [f"### {e}: {label}", "", _table(["method", "k", *heads], rows), ""]
    return out


def render_markdown(runs: list[Run], res: Results, title: str, notes: list[str], sentences: list[str],
                    plot_paths: dict[tuple, str]) -> str:
    out = [f"# {title}", ""]
    out += _settings(runs, res, notes)
    if sentences:
        out += ["## Reading", "", "Generated from the numbers below.", ""]
        out += [f"- {s}" for s in sentences] + [""]
    out += ["## Results", "", f"Rows: methods; columns: eval sets; k: {_headline_rule(res.main_k)}.", ""]
    for metric in res.metrics("quality"):
        out += _comparison(res, metric, plot_paths.get(("methods", metric)))
    swept = [(e, m) for e in res.eval_sets if (m := res.primary_metric(e))
             and any(len([k for k in res.ks(x, e) if res.value(x, e, k, m) is not None]) >= 2 for x in res.methods)]
    out += ["## k-sweep", ""]
    if swept:
        out += ["Each eval set's primary metric at every k that was run.", ""]
        for e, m in swept:
            out += _sweep(res, e, m, plot_paths.get(("vs_k", e, m)))
    else:
        out += ["No method was run at more than one k.", ""]
    out += _cost(res, plot_paths.get(("cost",)))
    out += _breakdowns(res)
    out += ["## Files", "",
            "- `results.csv`: one row per number (`method,eval_set,k,metric,value`), cost rows included.",
            "- `plots/`: the PNG plots above.", ""]
    return "\n".join(out)


def _make_plots(res: Results, folder: Path) -> dict[tuple, Path]:
    made: dict[tuple, Path] = {}
    for metric in res.metrics("quality"):
        p = plots.methods_bars(res, metric, folder / f"methods_{plots.safe_name(metric)}.png")
        if p:
            made[("methods", metric)] = p
    for e in res.eval_sets:
        m = res.primary_metric(e)
        if m:
            p = plots.metric_vs_k(res, e, m, folder / f"{plots.safe_name(m)}_vs_k_{plots.safe_name(e)}.png")
            if p:
                made[("vs_k", e, m)] = p
    p = plots.cost_vs_k(res, folder / "cost_vs_k.png")
    if p:
        made[("cost",)] = p
    return made


def build_report(run_dirs: Iterable[Path], out: Path, title: str = DEFAULT_TITLE, main_k: int | None = None,
                 notes: list[str] | None = None, targets: Iterable[Target | dict] | None = None,
                 warn=None) -> dict:
    """Write ``out/results.csv``, ``out/report.md`` and ``out/plots/*.png`` from the runs below ``run_dirs``.

    Everything is built in a hidden staging folder inside ``out`` first and moved into place only when all of it
    succeeded; ``out/plots/`` is replaced as a whole. Raises :class:`sicl.report.collect.ReportError` (nothing
    written) when no run is found or a run's files are malformed. Returns ``{"report": Path, "results": Path,
    "plots": [Path, ...], "warnings": [str, ...]}``.
    """
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    runs = collect_runs(list(run_dirs), warn=_warn)
    targets = [t if isinstance(t, Target) else Target.from_dict(t) for t in (targets or [])]
    rows = [r for run in runs for r in run.rows]
    res = Results(rows, main_k)
    sentences = reading(res, targets=targets)
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        (stage / "results.csv").write_text(results_csv(sort_rows(rows)), encoding="utf-8")
        made = _make_plots(res, stage / "plots")
        rel = {key: f"plots/{p.name}" for key, p in made.items()}
        notes_all = list(notes or []) + [f"warning: {w}" for w in warnings]
        (stage / "report.md").write_text(render_markdown(runs, res, title, notes_all, sentences, rel),
                                         encoding="utf-8")
        old = out / "plots"
        if old.exists():
            os.replace(old, stage / "old-plots")
        if (stage / "plots").exists():
            os.replace(stage / "plots", old)
        os.replace(stage / "results.csv", out / "results.csv")
        os.replace(stage / "report.md", out / "report.md")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)
    return {"report": out / "report.md", "results": out / "results.csv",
            "plots": sorted(out / "plots" / p.name for p in made.values()), "warnings": warnings}
