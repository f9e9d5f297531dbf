"""Find evaluation runs on disk and turn them into flat result rows.

A *run* is a folder holding ``run.json`` and ``metrics.json`` (written by ``sicl eval --out DIR``). A sweep folder
holds a summary ``run.json`` (with ``"ks"``) and one run per ``k=N/`` subfolder; the summary itself has no
``metrics.json`` and is not a run. ``run.json`` files without a ``metrics.json`` next to them (training runs,
unfinished evaluations) are ignored. Format and rules: docs/report.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sicl.errors import SiclError


class ReportError(SiclError):
    """The runs given to ``sicl report`` cannot be read or hold nothing to report."""


#: Method order of every table and plot; other methods follow alphabetically.
METHOD_ORDER = ["zero-shot", "vanilla-icl", "sicl-at1", "sicl-at2", "sicl-at3", "direct-ft"]
#: Eval-set order (the demo's); others follow alphabetically.
EVAL_SET_ORDER = ["child-science", "child-reading", "adult", "names", "translate", "aqa"]
#: Quality metrics whose direction is known.
LOWER_IS_BETTER = {"wer", "wer_utterance_capped", "cer"}
HIGHER_IS_BETTER = {"bleu", "accuracy", "acc", "chrf", "f1", "exact_match"}
#: Family of a quality metric: the report's main tables put one family per table (WER and CER of ASR sets share
#: one, so a zh/ja set headlined by CER sits next to English sets headlined by WER).
METRIC_FAMILY = {"wer": "asr", "cer": "asr", "wer_utterance_capped": "asr"}
#: Display names.
METRIC_NAMES = {"wer": "WER", "wer_utterance_capped": "WER (utterance mean, capped at 1)", "cer": "CER",
                "bleu": "BLEU", "accuracy": "accuracy"}
#: Order of quality metrics in the report; others follow alphabetically.
METRIC_ORDER = ["wer", "wer_utterance_capped", "cer", "bleu", "accuracy"]
#: Cost metrics taken from run.json (per query unless named otherwise), in report order.
COST_METRICS = ["seconds_per_query", "prompt_tokens", "audio_tokens", "text_tokens", "generated_tokens",
                "peak_rss_mb", "peak_gpu_mb", "seconds"]
COST_NAMES = {"seconds_per_query": "seconds / query", "prompt_tokens": "prompt tokens / query",
              "audio_tokens": "audio tokens / query", "text_tokens": "text tokens / query",
              "generated_tokens": "generated tokens / query", "peak_rss_mb": "peak RSS (MB)",
              "peak_gpu_mb": "peak GPU memory (MB)", "seconds": "total seconds"}

_K_DIR = re.compile(r"^k=(\d+)$")
#: Largest number of demonstrations a run.json may name: beyond it the file is malformed, not a run.
MAX_K = 10_000


@dataclass(frozen=True)
class ResultRow:
    """One number: ``results.csv`` holds the first five fields.

    ``kind`` is ``quality`` (a metric from metrics.json), ``count`` (its ``n``), ``breakdown`` (a value inside a
    nested breakdown such as ``by_category``) or ``cost`` (from run.json). ``task`` is the metrics.json key.
    """

    method: str
    eval_set: str
    k: int
    metric: str
    value: float
    kind: str = "quality"
    task: str | None = None
    source: str = ""


@dataclass
class Run:
    """One evaluation run as found on disk."""

    path: Path
    method: str
    eval_set: str
    k: int
    info: dict
    metrics: dict
    sweep: Path | None = None
    rows: list[ResultRow] = field(default_factory=list)


def _read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ReportError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ReportError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        return json.loads(text)
    except ValueError as e:  # not JSON, or an integer longer than Python reads
        raise ReportError(f"{path}: not valid JSON: {e}") from None


def _number(v: object) -> float | None:
    """A finite number as float; bools, strings, None and NaN/inf are not numbers here."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def order_key(name: str, order: list[str]) -> tuple:
    return (order.index(name), "") if name in order else (len(order), name)


def sort_methods(names) -> list[str]:
    return sorted(set(names), key=lambda n: order_key(n, METHOD_ORDER))


def sort_eval_sets(names) -> list[str]:
    return sorted(set(names), key=lambda n: order_key(n, EVAL_SET_ORDER))


def sort_metrics(names) -> list[str]:
    return sorted(set(names), key=lambda n: order_key(n, METRIC_ORDER))


def direction(metric: str) -> str | None:
    """``lower``, ``higher`` or None (unknown) for a quality metric name (``task/metric`` allowed)."""
    base = metric.rsplit("/", 1)[-1]
    if base in LOWER_IS_BETTER:
        return "lower"
    if base in HIGHER_IS_BETTER:
        return "higher"
    return None


def is_quality(metric: str) -> bool:
    """A quality metric is one whose direction is known (wer, cer, bleu, accuracy, ...); every other scalar of
    metrics.json (n, substitutions, ref_words, correct, empty_predictions, ...) is a count."""
    return direction(metric) is not None


def metric_family(metric: str) -> str:
    base = metric.rsplit("/", 1)[-1]
    return METRIC_FAMILY.get(base, metric)


def metric_label(metric: str, with_direction: bool = True) -> str:
    task, _, base = metric.rpartition("/")
    name = METRIC_NAMES.get(base, COST_NAMES.get(base, base))
    if task:
        name = f"{task} {name}"
    d = direction(metric)
    if with_direction and d:
        name += f" ({d} is better)"
    return name


def find_run_files(dirs: list[Path]) -> list[Path]:
    """Every ``run.json`` below ``dirs`` that has a ``metrics.json`` next to it, sorted, without duplicates."""
    found: dict[Path, None] = {}
    for d in dirs:
        d = Path(d)
        if d.is_file() and d.name in ("run.json", "metrics.json"):
            d = d.parent
        if not d.is_dir():
            raise ReportError(f"{d}: no such directory")
        for root, subdirs, files in os.walk(d):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
            if "run.json" in files and "metrics.json" in files:
                found.setdefault(Path(root).resolve() / "run.json")
    return sorted(found)


def _run_fields(path: Path, info: object, need_k: bool) -> tuple[str, str, int | None]:
    if not isinstance(info, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(info).__name__}")
    out = []
    for key in ("method", "eval_set"):
        v = info.get(key)
        if not isinstance(v, str) or not v.strip():
            raise ReportError(f"{path}: missing or empty {key!r} (a string)")
        out.append(v.strip())
    k = info.get("k")
    if k is None and need_k:
        m = _K_DIR.match(path.parent.name)
        if not m:
            raise ReportError(f"{path}: missing 'k' (an integer)")
        if len(m.group(1)) > len(str(MAX_K)):
            raise ReportError(f"{path}: missing 'k', and its folder {path.parent.name[:20]}... names more than "
                              f"{MAX_K} demonstrations")
        k = int(m.group(1))
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_K):
        shown = json.dumps(k) if not isinstance(k, int) or isinstance(k, bool) or abs(k) < 10**15 else \
            f"an integer of {len(str(abs(k)))} digits"
        raise ReportError(f"{path}: 'k' must be a non-negative integer of at most {MAX_K}, got {shown}")
    return out[0], out[1], k


def _sweep_summary(run_json: Path, cache: dict) -> tuple[Path, dict] | None:
    """The summary run.json of the sweep that ``run_json``'s folder belongs to (``SWEEP/k=N/run.json``)."""
    folder = run_json.parent
    if not _K_DIR.match(folder.name):
        return None
    parent = folder.parent / "run.json"
    if parent not in cache:
        cache[parent] = None
        if parent.is_file():
            info = _read_json(parent)
            if isinstance(info, dict) and isinstance(info.get("ks"), list):
                cache[parent] = info
    info = cache[parent]
    return (parent, info) if info is not None else None


def metric_rows(metrics: object, where: Path) -> list[tuple[str, float, str, str | None]]:
    """(metric, value, kind, task) for every scalar in a metrics.json object.

    Task dicts give their scalars (quality metrics, :func:`is_quality`, as kind ``quality``; ``n`` and the other
    counts as kind ``count``); a metric name that occurs under several tasks of the
    same run is written ``task/metric``. Nested dicts (``by_category``, ``by_lang``, ...) give breakdown rows
    ``metric[dim=value]`` (``dim`` without ``by_``), or ``dim[value]`` when they map straight to numbers.
    """
    if not isinstance(metrics, dict):
        raise ReportError(f"{where}: expected a JSON object keyed by task, got {type(metrics).__name__}")
    if not metrics:
        raise ReportError(f"{where}: no task metrics (expected an object keyed by task, e.g. "
                          '{"asr": {"n": 10, "wer": 0.2}}, got {})')
    for task, v in metrics.items():
        if not isinstance(v, dict) and _number(v) is None:
            raise ReportError(f"{where}: task {task!r} is {_shown(v)}, not an object of metrics "
                              '(e.g. {"n": 10, "wer": 0.2})')
    seen: dict[str, int] = {}
    for v in metrics.values():
        if isinstance(v, dict):
            for name, x in v.items():
                if _number(x) is not None:
                    seen[name] = seen.get(name, 0) + 1
    out: list[tuple[str, float, str, str | None]] = []
    for task, v in metrics.items():
        x = _number(v)
        if x is not None:  # a top-level scalar: a metric without a task
            out.append((task, x, "quality" if is_quality(task) else "count", None))
            continue
        if not isinstance(v, dict):
            continue
        prefixed = any(seen.get(n, 0) > 1 for n, x in v.items() if n != "n" and _number(x) is not None)
        for name, val in v.items():
            x = _number(val)
            if x is None and (is_quality(name) or name == "n") and val is not None \
                    and not (isinstance(val, float) and math.isnan(val)):
                raise ReportError(f"{where}: {task}.{name} is {json.dumps(val)}, not a number")
            full = f"{task}/{name}" if seen.get(name, 0) > 1 else name
            if x is not None:
                out.append((full, x, "quality" if is_quality(name) else "count", task))
            elif isinstance(val, dict):
                dim = name[3:] if name.startswith("by_") else name
                for group, gv in val.items():
                    gx = _number(gv)
                    if gx is not None:
                        prefix = f"{task}/" if prefixed else ""
                        out.append((f"{prefix}{dim}[{group}]", gx, "breakdown", task))
                    elif isinstance(gv, dict):
                        for m, mv in gv.items():
                            mx = _number(mv)
                            if mx is not None:
                                prefix = f"{task}/" if seen.get(m, 0) > 1 else ""
                                out.append((f"{prefix}{m}[{dim}={group}]", mx, "breakdown", task))
    if not any(kind in ("quality", "count") for _, _, kind, _ in out):
        raise ReportError(f"{where}: no metric in any task ({', '.join(map(repr, metrics))}): each task needs "
                          'numbers such as {"n": 10, "wer": 0.2}')
    return out


def _shown(v: object) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def primary_metrics(runs: list[Run]) -> dict[str, str]:
    """eval_set -> the metric a task of its metrics.json names as ``"primary"`` (e.g. ``"cer"`` for zh/ja ASR), as
    the metric is named in the rows (``task/name`` where prefixed); eval sets without one are left out."""
    out: dict[str, str] = {}
    for run in runs:
        if run.eval_set in out or not isinstance(run.metrics, dict):
            continue
        names = {(r.task, r.metric) for r in run.rows if r.kind == "quality"}
        for task, v in run.metrics.items():
            want = v.get("primary") if isinstance(v, dict) else None
            if not isinstance(want, str):
                continue
            for full in (want, f"{task}/{want}"):
                if (task, full) in names:
                    out[run.eval_set] = full
                    break
            if run.eval_set in out:
                break
    return out


def cost_values(info: dict) -> dict[str, float]:
    """Cost metrics of one run from the run.json ``sicl eval`` writes (missing or null entries are left out)."""

    def section(name: str) -> dict:
        v = info.get(name)
        return v if isinstance(v, dict) else {}

    timing, tokens, memory = section("timing"), section("tokens"), section("memory")

    def first(d: dict, *keys: str) -> float | None:
        for key in keys:
            x = _number(d.get(key))
            if x is not None:
                return x
        return None

    found = {
        "seconds_per_query": first(timing, "seconds_per_query"),
        "seconds": first(timing, "seconds_total"),
        "audio_tokens": first(tokens, "prompt_audio_tokens"),
        "text_tokens": first(tokens, "prompt_text_tokens"),
        "generated_tokens": first(tokens, "generated_tokens"),
        "prompt_tokens": first(tokens, "prompt_tokens"),
        "peak_rss_mb": first(memory, "peak_rss_mb"),
        "peak_gpu_mb": first(memory, "cuda_max_memory_allocated_mb"),
    }
    if found["prompt_tokens"] is None and found["audio_tokens"] is not None and found["text_tokens"] is not None:
        found["prompt_tokens"] = found["audio_tokens"] + found["text_tokens"]
    return {key: found[key] for key in COST_METRICS if found.get(key) is not None}


def collect_runs(run_dirs: list[Path], warn=None) -> list[Run]:
    """Every run below ``run_dirs``, one per (method, eval_set, k).

    In a sweep, method and eval_set come from the sweep's summary run.json, so that a method's line includes its
    k=0 point. When several runs share (method, eval_set, k), the one whose run.json was written last is kept and
    ``warn`` (default: print to stderr) is told which were dropped.
    """
    if warn is None:
        def warn(msg: str) -> None:
            print(f"sicl report: warning: {msg}", file=sys.stderr)
    files = find_run_files([Path(d) for d in run_dirs])
    if not files:
        raise ReportError("no evaluation runs found (a run is a folder with run.json and metrics.json) under: "
                          + ", ".join(str(d) for d in run_dirs))
    sweeps: dict = {}
    chosen: dict[tuple[str, str, int], Run] = {}
    for f in files:
        info = _read_json(f)
        method, eval_set, k = _run_fields(f, info, need_k=True)
        summary = _sweep_summary(f, sweeps)
        sweep = None
        if summary is not None:
            sweep, sinfo = summary
            try:
                method, eval_set, _ = _run_fields(sweep, sinfo, need_k=False)
            except ReportError:
                pass
        metrics_path = f.parent / "metrics.json"
        metrics = _read_json(metrics_path)
        run = Run(path=f.parent, method=method, eval_set=eval_set, k=int(k), info=info, metrics=metrics,
                  sweep=sweep.parent if sweep else None)
        src = str(f)
        for name, value, kind, task in metric_rows(metrics, metrics_path):
            run.rows.append(ResultRow(method, eval_set, run.k, name, value, kind, task, src))
        for name, value in cost_values(info).items():
            run.rows.append(ResultRow(method, eval_set, run.k, name, value, "cost", None, src))
        key = (method, eval_set, run.k)
        old = chosen.get(key)
        if old is not None:
            newer = f.stat().st_mtime >= (old.path / "run.json").stat().st_mtime
            keep, drop = (run, old) if newer else (old, run)
            warn(f"{method} / {eval_set} / k={run.k} appears in {old.path} and {run.path}; "
                 f"using {keep.path} (written last), ignoring {drop.path}")
            chosen[key] = keep
        else:
            chosen[key] = run
    runs = list(chosen.values())
    runs.sort(key=lambda r: (order_key(r.method, METHOD_ORDER), order_key(r.eval_set, EVAL_SET_ORDER), r.k))
    return runs


def sort_rows(rows) -> list[ResultRow]:
    """Rows by method, eval set, k, kind (quality, count, breakdown, cost), metric."""
    kinds = ["quality", "count", "breakdown", "cost"]

    def key(r: ResultRow) -> tuple:
        mkey = (COST_METRICS.index(r.metric), "") if r.kind == "cost" else order_key(r.metric, METRIC_ORDER)
        return (order_key(r.method, METHOD_ORDER), order_key(r.eval_set, EVAL_SET_ORDER), r.k,
                kinds.index(r.kind), mkey)

    return sorted(rows, key=key)


def collect_results(run_dirs: list[Path], warn=None) -> list[ResultRow]:
    """All result rows of the runs below ``run_dirs`` (the rows of results.csv), in :func:`sort_rows` order."""
    return sort_rows(row for run in collect_runs(run_dirs, warn=warn) for row in run.rows)
