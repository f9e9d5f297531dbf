"""PNG plots of a report (matplotlib's Agg canvas through ``Figure``; pyplot's global state is never touched)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from sicl.report.collect import metric_label
from sicl.report.reading import Results, mean_over_eval_sets

COST_PLOT_METRICS = ["seconds_per_query", "prompt_tokens", "peak_rss_mb"]


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "x"


def _figure(width: float = 6.0, height: float = 3.8, cols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols if cols > 1 else width, height), dpi=100)
    axes = [fig.add_subplot(1, cols, i + 1) for i in range(cols)]
    return fig, axes


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # names in scripts the bundled font lacks (CJK method or eval-set names) draw as boxes; the report's
        # tables carry the names, so this is no reason to print a warning per glyph and plot
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Software": None})
    return path


#: after matplotlib's ten cycle colours come round again, each further ten methods get their own line style,
#: marker and bar hatch, so no two methods of one plot look the same
_STYLES = (("-", "o", None), ("--", "s", "//"), (":", "^", ".."), ("-.", "D", "xx"), ((0, (5, 1)), "v", "--"))


def _style(res: Results, method: str) -> tuple[str, object, str, str | None]:
    """The same (colour, line style, marker, bar hatch) for a method in every plot, from its place in the method
    order."""
    i = res.methods.index(method)
    line, marker, hatch = _STYLES[(i // 10) % len(_STYLES)]
    return f"C{i % 10}", line, marker, hatch


def _line(res: Results, method: str) -> dict:
    color, line, marker, _ = _style(res, method)
    return {"color": color, "linestyle": line, "marker": marker}


def _bar(res: Results, method: str) -> dict:
    color, _, _, hatch = _style(res, method)
    return {"color": color, "hatch": hatch, "edgecolor": "white" if hatch else None}


def metric_vs_k(res: Results, eval_set: str, metric: str, path: Path) -> Path | None:
    """One line per method: ``metric`` against k on ``eval_set`` (None when nobody has two k values)."""
    series = {}
    for m in res.methods:
        pts = [(k, v) for k in res.ks(m, eval_set) if (v := res.value(m, eval_set, k, metric)) is not None]
        if pts:
            series[m] = pts
    if not any(len(p) >= 2 for p in series.values()):
        return None
    fig, (ax,) = _figure()
    for m, pts in series.items():
        ax.plot([k for k, _ in pts], [v for _, v in pts], label=m, **_line(res, m))
    ax.set_xticks(sorted({k for pts in series.values() for k, _ in pts}))
    ax.set_xlabel("k (demonstrations per query)")
    ax.set_ylabel(metric_label(metric))
    ax.set_title(f"{eval_set}: {metric_label(metric, with_direction=False)} vs k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def family_bars(res: Results, cols: list[tuple[str, str]], label: str, path: Path) -> Path | None:
    """Grouped bars: one group per (eval set, metric) column of a main table, one bar per method at its headline
    k; a column's metric is named under its eval set when the columns use more than one (WER and CER)."""
    methods = [m for m in res.methods if any(res.headline(m, e, x)[1] is not None for e, x in cols)]
    if not cols or not methods:
        return None
    mixed = len({x for _, x in cols}) > 1
    fig, (ax,) = _figure(width=max(6.0, 1.4 * len(cols) + 2))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        xs, ys = [], []
        for j, (e, x) in enumerate(cols):
            _, v = res.headline(m, e, x)
            if v is not None:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(v)
        ks = sorted({k for e, _ in cols if (k := res.headline_k(m, e)) is not None})
        ax.bar(xs, ys, width=width, label=f"{m} (k={','.join(map(str, ks))})", **_bar(res, m))
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([f"{e}\n({metric_label(x, False)})" if mixed else e for e, x in cols])
    ax.set_ylabel(label)
    ax.set_title(f"{label.rsplit(' (', 1)[0] if label.endswith(' is better)') else label} per eval set (headline k)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def cost_vs_k(res: Results, path: Path) -> Path | None:
    """Seconds per query, prompt tokens and peak RSS against k, one line per method (mean over the eval sets it
    was swept on; :func:`sicl.report.reading.sweep_eval_sets`)."""
    panels = []
    for c in COST_PLOT_METRICS:
        series = {m: s for m in res.methods if (s := mean_over_eval_sets(res, m, c))}
        if series:
            panels.append((c, series))
    if not panels:
        return None
    fig, axes = _figure(width=4.2, cols=len(panels))
    for ax, (c, series) in zip(axes, panels, strict=True):
        for m, s in series.items():
            ks = sorted(s)
            ax.plot(ks, [s[k] for k in ks], label=m, **_line(res, m))
        ax.set_xticks(sorted({k for s in series.values() for k in s}))
        ax.set_xlabel("k (demonstrations per query)")
        ax.set_ylabel(metric_label(c) + " (lower is better)")
        ax.set_title(metric_label(c), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Cost vs k (per method: mean over its fully swept eval sets)")
    return _save(fig, path)
