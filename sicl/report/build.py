"""``build_report``: results.csv, report.md and PNG plots from evaluation run folders (docs/report.md)."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sicl import __version__
from sicl.report import plots
from sicl.report.collect import (
    METRIC_ORDER,
    ReportError,
    Run,
    collect_runs,
    direction,
    is_quality,
    metric_family,
    metric_label,
    order_key,
    primary_metrics,
    sort_metrics,
    sort_rows,
)
from sicl.report.reading import (
    Results,
    Target,
    TargetResult,
    check_target,
    fmt,
    mean_over_eval_sets,
    reading,
    sweep_eval_sets,
)

CSV_COLUMNS = ["method", "eval_set", "k", "metric", "value"]
DEFAULT_TITLE = "sicl evaluation report"
#: Cost metrics that get a table in report.md (all of them are in results.csv).
COST_TABLE_METRICS = ["seconds_per_query", "prompt_tokens", "peak_rss_mb", "peak_gpu_mb"]


#: characters that would turn a method or eval-set name into markup in report.md (an ``_`` only at a word edge)
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md_text(name: str) -> str:
    """A name as literal markdown text: ``**x**``, ``*x*``, ``[a](b)``, ``<b>``, ``&amp;`` print as written."""
    return _MD_SPECIAL.sub(r"\\\1", name)


def _md_view(runs: list[Run], res: Results) -> tuple[list[Run], Results]:
    """``runs`` and ``res`` with method and eval-set names escaped for report.md (results.csv, the plots and the
    HTML Listen section use the raw names)."""

    def row(r):
        return dataclasses.replace(r, method=md_text(r.method), eval_set=md_text(r.eval_set))

    md_runs = [dataclasses.replace(r, method=md_text(r.method), eval_set=md_text(r.eval_set),
                                   rows=[row(x) for x in r.rows]) for r in runs]
    md_res = Results([row(x) for x in res.rows], res.main_k,
                     primary={md_text(e): m for e, m in res.primary.items()})
    return md_runs, md_res


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


def _headline_rule(res: Results) -> str:
    zero = [m for m in res.methods if res.zero_k(m)]  # run only at k=0, whatever they are called
    rule = f"each method is compared at k={res.main_k}"
    if zero:
        rule += f", except {_names(zero)} at k=0"
    return rule + "; where that k was not run, the method's nearest k is used and shown next to the value"


def _names(items: list[str]) -> str:
    items = list(items)
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _short(text: object, out: Path | None) -> str:
    """A path (or ``file:PATH``) relative to the report folder when it lies inside it."""
    s = str(text)
    if out is None:
        return s
    prefix, _, path = s.rpartition("file:") if s.startswith("file:") else ("", "", s)
    try:
        rel = Path(path).resolve().relative_to(Path(out).resolve())
    except (ValueError, OSError):
        return s
    return f"{prefix}{'file:' if s.startswith('file:') else ''}{rel.as_posix()}"


def _distinct(values) -> list:
    seen: dict = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def _n_per_set(runs: list[Run]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in runs:
        n = r.info.get("n")
        if isinstance(n, int) and not isinstance(n, bool):
            out[r.eval_set] = max(out.get(r.eval_set, 0), n)
    return out


def families(res: Results) -> list[tuple[list[str], list[tuple[str, str]]]]:
    """The main tables: eval sets grouped by the family of their primary metric (WER and CER together), each as
    (metrics, [(eval_set, metric), ...]), ordered as METRIC_ORDER."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for e in res.eval_sets:
        m = res.primary_metric(e)
        if m is not None:
            groups.setdefault(metric_family(m), []).append((e, m))
    out = [(sort_metrics(m for _, m in cols), cols) for cols in groups.values()]
    return sorted(out, key=lambda fc: order_key(fc[0][0], METRIC_ORDER))


def _family_label(metrics: list[str], with_direction: bool = True) -> str:
    if len(metrics) == 1:
        return metric_label(metrics[0], with_direction)
    label = " / ".join(metric_label(m, False) for m in metrics)
    dirs = {direction(m) for m in metrics}
    if with_direction and len(dirs) == 1 and None not in dirs:
        label += f" ({dirs.pop()} is better)"
    return label


def _comparison_table(res: Results, cols: list[tuple[str, str]], mixed: bool) -> list[str]:
    """Rows = methods (fixed order), columns = (eval set, metric) at each method's headline k; the best value of
    each column (every tied one) in bold."""
    rows, raw = [], []
    for m in res.methods:
        ks = {(e, x): res.headline(m, e, x) for e, x in cols}
        present = {c: kv for c, kv in ks.items() if kv[1] is not None}
        if not present and not any(res.ks(m, e) for e, _ in cols):
            continue  # the method has no run on these sets (another family's table shows it)
        # the k column names a k the method was run at: --k where it was, else the nearest one (smaller on a tie);
        # a method run on these sets whose every value is missing (null or non-finite) keeps its row (the k it was
        # run at, every value "—") rather than vanishing from the table
        common = {k for k, _ in present.values()} or {k for k, _ in ks.values() if k is not None}
        main = min(common, key=lambda k: (abs(k - res.main_k), k))
        rows.append((m, main, ks))
        raw.append([ks[c][1] for c in cols])
    if not rows:
        return []
    best = []
    for j, (_, x) in enumerate(cols):
        vals = [r[j] for r in raw if r[j] is not None]
        d = direction(x)
        best.append(None if len(vals) < 2 or d is None else (min(vals) if d == "lower" else max(vals)))
    body = []
    for m, main, ks in rows:
        cells = []
        for j, c in enumerate(cols):
            k, v = ks[c]
            if v is None:
                cells.append("—")
                continue
            text = fmt(c[1], v)
            if best[j] is not None and v == best[j]:
                text = f"**{text}**"
            cells.append(text + ("" if k == main else f" (k={k})"))
        body.append([m, main, *cells])
    header = [f"{e} ({metric_label(x, False)})" if mixed else e for e, x in cols]
    return [_table(["method", "k", *header], body), ""]


#: What each scorer is, for the report's sentence (sicl.eval.scorers, docs/metrics.md).
SCORER_TEXT = {
    "official": "each benchmark's own scoring script (MMAU/MMAR string match on the whole output, MMSU letter rule, "
                "Whisper-normalised WER, sacreBLEU), so numbers compare with published tables",
    "mimo-eval": "MiMo-Audio-Eval's evaluators (its answer extraction before the MMAU string match, mean utterance "
                 "WER without cap), so numbers compare with MiMo-Audio's published ones",
    "lenient": "sicl's development rule (answer extraction and option-letter mapping before the string match): "
               "not comparable with any published number",
}
UNNAMED_SCORER = "unnamed"


def run_scorers(runs: list[Run]) -> dict[str, int]:
    """scorer name -> number of runs scored with it (from the ``"scorer"`` each task of metrics.json names;
    ``"unnamed"`` for a metrics.json written before scorers were named, whose choice accuracy used the rule
    now called ``lenient``)."""
    out: dict[str, int] = {}
    for r in runs:
        names = {v.get("scorer") for v in (r.metrics or {}).values() if isinstance(v, dict)} - {None}
        for name in sorted(names) or [UNNAMED_SCORER]:
            out[str(name)] = out.get(str(name), 0) + 1
    return out


def _scoring_sentence(runs: list[Run]) -> str:
    used = run_scorers(runs)
    if len(used) == 1:
        (name,) = used
        what = SCORER_TEXT.get(name, "older metrics.json files that do not name their scorer (choice accuracy then "
                                     "used the rule now called lenient)" if name == UNNAMED_SCORER else "")
        return f"Scored with `{name}`" + (f": {what}." if what else ".")
    parts = ", ".join(f"`{n}` ({c} run{'s' if c != 1 else ''})" for n, c in sorted(used.items()))
    return (f"Warning: the runs were scored with different scorers, {parts}; numbers from different scorers are "
            "not comparable (re-score with `sicl score --scorer NAME`).")


def _intro(runs: list[Run], res: Results) -> list[str]:
    sets = []
    for metrics, cols in families(res):
        for x in metrics:
            es = [e for e, m in cols if m == x]
            d = direction(x)
            sets.append(f"{_names(es)} ({metric_label(x, False)}{f', {d} is better' if d else ''})")
    models = _distinct(str(r.info["model"]) for r in runs if r.info.get("model"))
    n = sorted(set(_n_per_set(runs).values()))
    n_text = "" if not n else (f"{n[0]} queries per eval set" if len(n) == 1 else f"{n[0]}–{n[-1]} queries per eval set")
    text = (f"This report compares {len(res.methods)} method{'s' if len(res.methods) != 1 else ''} "
            f"({_names(res.methods)}) on {len(res.eval_sets)} eval set{'s' if len(res.eval_sets) != 1 else ''}: "
            f"{_names(sets) if sets else _names(res.eval_sets)}")
    if models:
        text += f", with model {_names(models)}"
    text += f". Headline k: {_headline_rule(res)}."
    text += f" {len(runs)} evaluation run{'s' if len(runs) != 1 else ''}"
    text += f", {n_text}." if n_text else "."
    text += " " + _scoring_sentence(runs)
    text += (" The tables below give each method's headline number; targets, plots, a short reading, the k-sweep,"
             " cost and the settings follow; results.csv holds every number.")
    return ["## What this is", "", text, ""]


def _results(res: Results) -> list[str]:
    fams = families(res)
    if not fams:
        return ["## Results", "", "The runs hold no quality metric (WER, CER, BLEU, accuracy).", ""]
    out = ["## Results", "", "Rows: methods, each at its headline k (column k); columns: eval sets, each on its "
           "primary metric; the best value of each column in **bold** (every one of them on a tie).", ""]
    for metrics, cols in fams:
        out += [f"### {_family_label(metrics)}", ""]
        out += _comparison_table(res, cols, mixed=len(metrics) > 1)
    return out


_TARGET_NOTE = re.compile(r"^\s*(not met|met|not evaluated|exempt)\b", re.IGNORECASE)


#: statuses of a verdict passed to :func:`build_report` (``verdicts=[(status, sentence), ...]``)
VERDICTS = ("met", "not met", "exempt", "not evaluated")


def _targets(target_results: list[TargetResult], notes: list[str],
             verdicts: list[tuple[str, str]] | None = None) -> list[str]:
    """The Targets section (checked :class:`Target` results, verdicts checked by the caller, then notes that
    read as verdicts: ``MET: ...``, ``NOT MET: ...``, ``EXEMPT: ...``, ``not evaluated: ...``, the command line's
    way) and the Notes section (every other note)."""
    checks: list[tuple[str, str]] = [(("met" if r.met else "not evaluated" if r.met is None else "not met"),
                                      r.sentence) for r in target_results]
    for status, sentence in verdicts or []:
        if status not in VERDICTS:
            raise ValueError(f"verdict status must be one of {VERDICTS}, not {status!r}")
        checks.append((status, sentence))
    for n in notes:
        m = _TARGET_NOTE.match(n)
        if m:
            checks.append((m.group(1).lower(), n))
    other = [n for n in notes if not _TARGET_NOTE.match(n)]
    out = []
    if checks:
        met = sum(1 for v, _ in checks if v == "met")
        exempt = sum(1 for v, _ in checks if v == "exempt")
        out += ["## Targets", "", f"{met} of {len(checks) - exempt} met" + (f" ({exempt} exempt)." if exempt else "."),
                ""]
        out += [f"- {c}" for _, c in checks] + [""]
    if other:
        out += ["## Notes", ""] + [f"- {n}" for n in other] + [""]
    return out


def _plots_section(res: Results, plot_paths: dict[tuple, str]) -> list[str]:
    out = []
    for metrics, _ in families(res):
        p = plot_paths.get(("methods", tuple(metrics)))
        if p:
            out += [f"![{_family_label(metrics)} per eval set]({p})", ""]
    for e in res.eval_sets:
        m = res.primary_metric(e)
        p = plot_paths.get(("vs_k", e, m))
        if p:
            out += [f"![{e} {metric_label(m, False)} vs k]({p})", ""]
    if plot_paths.get(("cost",)):
        out += [f"![cost vs k]({plot_paths[('cost',)]})", ""]
    return (["## Plots", "", "Methods per eval set (headline k), the primary metric vs k, and cost vs k.", ""] + out
            if out else [])


def _sweep(res: Results, eval_set: str, metric: str) -> list[str]:
    ks = res.ks(eval_set=eval_set)
    rows = []
    for m in res.methods:
        vals = [res.value(m, eval_set, k, metric) for k in ks]
        if any(v is not None for v in vals):
            rows.append([m, *(fmt(metric, v) for v in vals)])
    return [f"### {eval_set}: {metric_label(metric)}", "", _table(["method", *(f"k={k}" for k in ks)], rows), ""]


def _cost(res: Results) -> list[str]:
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
    return out


def _more_metrics(res: Results) -> list[str]:
    """Quality metrics other than each eval set's primary one (capped WER, CER of English sets, ...)."""
    out = []
    for metric in res.metrics("quality"):
        cols = [(e, metric) for e in res.eval_sets
                if metric in res.metrics("quality", e) and res.primary_metric(e) != metric]
        if cols:
            out += [f"### {metric_label(metric)}", ""] + _comparison_table(res, cols, mixed=False)
    return ["## More metrics", "", "Each eval set's other quality metrics, as in Results.", "", *out] if out else []


def _loops(res: Results) -> list[str]:
    """Looping outputs per method and eval set at the headline k (metrics.json ``looping_outputs``, of ``n``)."""
    sets = [e for e in res.eval_sets if "looping_outputs" in res.metrics("count", e)]
    rows = []
    for m in res.methods:
        cells = []
        for e in sets:
            k = res.headline_k(m, e)
            loops = None if k is None else res.value(m, e, k, "looping_outputs")
            n = None if k is None else res.value(m, e, k, "n")
            cells.append("—" if loops is None else f"{int(loops)} / {int(n)}" if n else f"{int(loops)}")
        if any(c != "—" for c in cells):
            rows.append([m, *cells])
    if not rows or not any(res.value(r.method, r.eval_set, r.k, "looping_outputs") for r in res.rows
                           if r.metric == "looping_outputs"):
        return []
    return ["## Looping outputs", "",
            "Outputs in which a span of up to 8 words is said 3 or more times in a row (counted on the raw output), "
            "of the queries scored, each method at its headline k. A loop runs to the token budget and can add "
            "~100 insertions, so on a small eval set a few loops can decide a corpus WER comparison; "
            "`--loop-trim 3` / `loop_trim: 3` scores without them (docs/evaluation.md).", "",
            _table(["method", *sets], rows), ""]


def _breakdowns(res: Results) -> list[str]:
    names = [n for n in res.metrics("breakdown") if is_quality(n.partition("[")[0])]
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


def _k_values(res: Results, method: str) -> str:
    sets = res.eval_sets_of(method)
    parts = []
    for k in res.ks(method):
        on = [e for e in sets if k in res.ks(method, e)]
        parts.append(str(k) if len(on) == len(sets) else f"{k} ({', '.join(on)})")
    return ", ".join(parts)


def _demo_source(run: Run, out: Path | None) -> str | None:
    r = run.info.get("retriever")
    pl = run.info.get("pseudo_labeler")
    if not r and not pl:
        return None
    parts = [str(r) if r else "—"]
    if pl:
        text = _short(pl, out)
        text = "/".join("{eval_set}" if c == run.eval_set else c for c in text.split("/"))
        parts.append(text)
    return " / ".join(parts)


def _settings(runs: list[Run], res: Results, warnings: list[str], out_dir: Path | None = None) -> list[str]:
    out = ["## Settings", ""]
    out.append(f"- {len(runs)} run(s) of {len(res.methods)} method(s) on {len(res.eval_sets)} eval set(s); "
               f"report by sicl {__version__}.")
    out.append(f"- Headline k: {_headline_rule(res)}.")
    out.append("- Scorer: " + ", ".join(f"`{n}` ({c} run{'s' if c != 1 else ''})"
                                         for n, c in sorted(run_scorers(runs).items()))
               + " (`sicl score --scorer`, docs/metrics.md).")
    out += [f"- warning: {w}" for w in warnings]
    out.append("- Files: `results.csv` (one row per number: `method,eval_set,k,metric,value`, counts and cost "
               "included), `plots/` (the PNG plots above).")
    out.append("")
    models = _distinct(str(r.info.get("model", "—")) for r in runs)
    rows = []
    for m in res.methods:
        mine = [r for r in runs if r.method == m]
        adapters = _distinct(_short(r.info["adapter"], out_dir) for r in mine if r.info.get("adapter"))
        sets = res.eval_sets_of(m)
        n = _n_per_set(mine)
        ns = sorted(set(n.values()))
        n_text = "—" if not ns else (str(ns[0]) if len(ns) == 1 else
                                     ", ".join(f"{e} {n[e]}" for e in sets if e in n))
        sources = _distinct(s for r in mine if r.k > 0 and (s := _demo_source(r, out_dir)))
        row = [m, ", ".join(adapters) or "—",
               f"all {len(sets)}" if len(sets) == len(res.eval_sets) and len(sets) > 1 else ", ".join(sets),
               _k_values(res, m), n_text, "; ".join(sources) if sources else "— (no demonstrations)"]
        if len(models) > 1:
            row.insert(1, ", ".join(_distinct(str(r.info.get("model", "—")) for r in mine)))
        rows.append(row)
    header = ["method", "adapter", "eval sets", "k values", "n queries per set", "retriever / pseudo-labeler"]
    if len(models) > 1:
        header.insert(1, "model")
    out += [_table(header, rows, text_columns=len(header)), ""]
    return out


def render_markdown(runs: list[Run], res: Results, title: str, notes: list[str], sentences: list[str],
                    plot_paths: dict[tuple, str], target_results: list[TargetResult] | None = None,
                    warnings: list[str] | None = None, out_dir: Path | None = None,
                    verdicts: list[tuple[str, str]] | None = None) -> str:
    """report.md: title, what this is, results (main tables), targets, plots, reading, k-sweep, cost, more
    metrics, breakdowns, settings (docs/report.md)."""
    out = [f"# {title}", ""]
    out += _intro(runs, res)
    out += _results(res)
    out += _targets(list(target_results or []), list(notes), verdicts)
    out += _plots_section(res, plot_paths)
    if sentences:
        out += ["## Reading", "", "Generated from the numbers above, on each eval set's primary metric.", ""]
        out += [f"- {s}" for s in sentences] + [""]
    swept = [(e, m) for e in res.eval_sets if (m := res.primary_metric(e))
             and any(len([k for k in res.ks(x, e) if res.value(x, e, k, m) is not None]) >= 2 for x in res.methods)]
    out += ["## k-sweep", ""]
    if swept:
        out += ["Each eval set's primary metric at every k that was run.", ""]
        for e, m in swept:
            out += _sweep(res, e, m)
    else:
        out += ["No method was run at more than one k.", ""]
    out += _cost(res)
    out += _more_metrics(res)
    out += _loops(res)
    out += _breakdowns(res)
    out += _settings(runs, res, list(warnings or []), out_dir)
    return "\n".join(out).rstrip("\n") + "\n"


def _make_plots(res: Results, folder: Path) -> dict[tuple, Path]:
    made: dict[tuple, Path] = {}
    for metrics, cols in families(res):
        p = plots.family_bars(res, cols, _family_label(metrics),
                              folder / f"methods_{plots.safe_name('_'.join(metrics))}.png")
        if p:
            made[("methods", tuple(metrics))] = p
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


def _target(t: Target | dict, i: int) -> Target:
    """A target of ``build_report(targets=...)``, checked (:meth:`Target.problems`); a problem names its index."""
    try:
        t = t if isinstance(t, Target) else Target.from_dict(t)
        for key, problem in t.problems():
            raise ReportError(f"{key} {problem}" if key else problem)
    except ReportError as e:
        raise ReportError(f"target [{i}]: {e}") from None
    return t


def build_report(run_dirs: Iterable[Path], out: Path, title: str = DEFAULT_TITLE, main_k: int | None = None,
                 notes: list[str] | None = None, targets: Iterable[Target | dict] | None = None,
                 warn=None, verdicts: Iterable[tuple[str, str]] | None = None) -> dict:
    """Write ``out/results.csv``, ``out/report.md``, ``out/report.html`` (self-contained, with audio examples) and
    ``out/plots/*.png`` from the runs below ``run_dirs``.

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
    targets = [_target(t, i) for i, t in enumerate(targets or [])]
    rows = [r for run in runs for r in run.rows]
    res = Results(rows, main_k, primary=primary_metrics(runs))
    md_runs, md_res = _md_view(runs, res)
    sentences = reading(md_res)
    target_results = [check_target(res, t, name=md_text) for t in targets]  # report.md's sentences
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        (stage / "results.csv").write_text(results_csv(sort_rows(rows)), encoding="utf-8")
        made = _make_plots(res, stage / "plots")
        rel = {(key[0], md_text(key[1]), *key[2:]) if key[0] == "vs_k" else key: f"plots/{p.name}"
               for key, p in made.items()}
        md = render_markdown(md_runs, md_res, title, list(notes or []), sentences, rel, target_results=target_results,
                             warnings=warnings, out_dir=out, verdicts=list(verdicts or []))
        (stage / "report.md").write_text(md, encoding="utf-8")
        from sicl.report.html import examples_section, render_html

        (stage / "report.html").write_text(render_html(md, stage, title, examples_section(runs, res)),
                                           encoding="utf-8")
        old = out / "plots"
        if old.exists():
            os.replace(old, stage / "old-plots")
        if (stage / "plots").exists():
            os.replace(stage / "plots", old)
        os.replace(stage / "results.csv", out / "results.csv")
        os.replace(stage / "report.md", out / "report.md")
        os.replace(stage / "report.html", out / "report.html")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)
    return {"report": out / "report.md", "html": out / "report.html", "results": out / "results.csv",
            "plots": sorted(out / "plots" / p.name for p in made.values()), "warnings": warnings}
