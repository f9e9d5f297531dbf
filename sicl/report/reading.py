"""Look-ups over result rows, the headline k of each method, targets, and factual sentences about the numbers.

Everything here is computed from the rows: no sentence states anything that is not a comparison of two numbers
in the table. Targets are data (:class:`Target`) so a caller (the demo) can say whether each one is met.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields

from sicl.report.collect import (
    COST_METRICS,
    METRIC_ORDER,
    ReportError,
    ResultRow,
    direction,
    metric_label,
    sort_eval_sets,
    sort_methods,
    sort_metrics,
)

#: Headline k of methods that use demonstrations when none is given (the `sicl eval --k` default).
DEFAULT_MAIN_K = 3
ZERO_SHOT, VANILLA = "zero-shot", "vanilla-icl"


def fmt(metric: str, value: float | None) -> str:
    """A value as the report prints it."""
    if value is None:
        return "—"
    base = metric.rsplit("/", 1)[-1].split("[", 1)[0]
    if base == "n":
        return f"{value:.0f}"
    if base in ("seconds_per_query", "seconds"):
        return f"{value:.3g}"
    if base.endswith("_mb"):
        return f"{value:.0f}"
    if base.endswith("tokens"):
        return f"{value:.1f}"
    if base in ("bleu", "chrf") or abs(value) >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}"


class Results:
    """Index over result rows: values by (method, eval_set, k, metric) and the headline k of each method."""

    def __init__(self, rows: Iterable[ResultRow], main_k: int | None = None, primary: dict[str, str] | None = None):
        self.rows = list(rows)
        self.main_k = DEFAULT_MAIN_K if main_k is None else int(main_k)
        #: eval_set -> metric named ``"primary"`` by its metrics.json (:func:`sicl.report.collect.primary_metrics`)
        self.primary = dict(primary or {})
        self._v: dict[tuple[str, str, int, str], float] = {}
        self._ks: dict[tuple[str, str], set[int]] = {}
        for r in self.rows:
            self._v[(r.method, r.eval_set, r.k, r.metric)] = r.value
            self._ks.setdefault((r.method, r.eval_set), set()).add(r.k)
        self.methods = sort_methods(r.method for r in self.rows)
        self.eval_sets = sort_eval_sets(r.eval_set for r in self.rows)

    def value(self, method: str, eval_set: str, k: int, metric: str) -> float | None:
        return self._v.get((method, eval_set, k, metric))

    def ks(self, method: str | None = None, eval_set: str | None = None) -> list[int]:
        return sorted({k for (m, e), ks in self._ks.items() for k in ks
                       if (method is None or m == method) and (eval_set is None or e == eval_set)})

    def eval_sets_of(self, method: str) -> list[str]:
        return [e for e in self.eval_sets if self.ks(method, e)]

    def metrics(self, kind: str = "quality", eval_set: str | None = None) -> list[str]:
        names = {r.metric for r in self.rows if r.kind == kind and (eval_set is None or r.eval_set == eval_set)}
        if kind == "cost":
            return [m for m in COST_METRICS if m in names]
        return sort_metrics(names)

    def primary_metric(self, eval_set: str) -> str | None:
        """The eval set's headline metric: the one its metrics.json names ``"primary"`` (CER for zh/ja ASR), else
        the first of METRIC_ORDER it has, else its first quality metric."""
        names = self.metrics("quality", eval_set)
        if self.primary.get(eval_set) in names:
            return self.primary[eval_set]
        for m in METRIC_ORDER:
            if m in names:
                return m
        return names[0] if names else None

    def zero_k(self, method: str) -> bool:
        """Whether the results hold ``method`` only at k=0 (on every eval set): a method used without
        demonstrations (zero-shot, a fine-tuned model, whatever it is called). It is compared at k=0 and named
        without "at k=0". Decided by the runs found, never by the method's name."""
        return self.ks(method) == [0]

    def headline_k(self, method: str, eval_set: str) -> int | None:
        """k at which ``method`` is compared on ``eval_set``: ``main_k`` when it was run there, else its nearest
        k (the smaller on a tie). A method run only at k=0 (:meth:`zero_k`) is therefore compared at k=0, and a
        method also run with demonstrations at ``main_k``, whatever the methods are called."""
        ks = self.ks(method, eval_set)
        if not ks:
            return None
        return min(ks, key=lambda k: (abs(k - self.main_k), k))

    def headline(self, method: str, eval_set: str, metric: str) -> tuple[int | None, float | None]:
        k = self.headline_k(method, eval_set)
        return k, (None if k is None else self.value(method, eval_set, k, metric))

    def reference(self, name: str, eval_set: str, metric: str) -> tuple[str, int, float] | None:
        """A baseline's (label, k, value): ``zero-shot`` falls back to vanilla ICL at k=0 when no zero-shot run
        exists; ``vanilla-icl`` is taken at its headline k."""
        k, v = self.headline(name, eval_set, metric)
        if v is not None:
            return (name if k == 0 else f"{name} at k={k}", k, v)
        if name == ZERO_SHOT:
            v = self.value(VANILLA, eval_set, 0, metric)
            if v is not None:
                return (f"{VANILLA} at k=0", 0, v)
        return None

    def best(self, pattern: str, eval_set: str, metric: str, k: int | None = None) -> tuple[str, int, float] | None:
        """Best (method, k, value) among methods matching ``pattern`` (fnmatch) at their headline k (or ``k``)."""
        better = direction(metric) or "higher"
        cands = []
        for m in self.methods:
            if not fnmatch.fnmatchcase(m, pattern):
                continue
            mk = k if k is not None else self.headline_k(m, eval_set)
            v = None if mk is None else self.value(m, eval_set, mk, metric)
            if v is not None:
                cands.append((m, mk, v))
        if not cands:
            return None
        return (min if better == "lower" else max)(cands, key=lambda c: c[2])

    def best_all(self, pattern: str, eval_set: str, metric: str) -> list[tuple[str, int, float]]:
        """Every (method, k, value) that ties for the best, as :meth:`best` (exact equality), in method order."""
        top = self.best(pattern, eval_set, metric)
        if top is None:
            return []
        out = []
        for m in self.methods:
            if fnmatch.fnmatchcase(m, pattern):
                k, v = self.headline(m, eval_set, metric)
                if v is not None and v == top[2]:
                    out.append((m, k, v))
        return out


def _at(res: Results, method: str, k: int) -> str:
    return method if res.zero_k(method) else f"{method} at k={k}"


def _compare(metric: str, v: float, ref: float) -> str:
    """How ``v`` stands to ``ref``: a ratio for lower-is-better metrics, a difference otherwise."""
    if direction(metric) == "lower" and ref > 0:
        return f"{v / ref:.2f}x"
    d = v - ref
    return f"{'+' if d >= 0 else '-'}{fmt(metric, abs(d))} vs"


@dataclass(frozen=True)
class Target:
    """A target stated as data: ``method`` (a name or an fnmatch pattern such as ``sicl-at*``: the best match)
    on ``eval_set`` ``metric`` must stand in ``relation`` to ``factor`` x ``baseline`` (a method, at its headline
    k) or to the number ``value``. ``relation`` defaults to ``<=`` for lower-is-better metrics, ``>=`` else."""

    eval_set: str = ""  # required: the defaults let a config loader name what is missing (:meth:`problems`)
    metric: str = ""
    method: str = ""
    baseline: str | None = None
    factor: float = 1.0
    relation: str | None = None
    value: float | None = None
    k: int | None = None
    label: str | None = None

    #: keys every target needs
    REQUIRED = ("eval_set", "metric", "method")

    @classmethod
    def from_dict(cls, d: dict) -> Target:
        """A target from a JSON/YAML mapping, every key checked (:meth:`problems`): one-line :class:`ReportError`
        naming the key and what is wrong."""
        if not isinstance(d, dict):
            raise ReportError(f"a target must be an object with {', '.join(cls.REQUIRED)}, ..., got "
                              f"{type(d).__name__} {_show(d)}")
        known = [f.name for f in fields(cls)]
        extra = sorted(str(k) for k in set(d) - set(known))
        if extra:
            raise ReportError(f"unknown key(s) {', '.join(extra)}; known: {', '.join(known)}")
        missing = [k for k in cls.REQUIRED if k not in d]
        if missing:
            raise ReportError(f"missing required key(s) {', '.join(missing)} (a target needs "
                              f"{', '.join(cls.REQUIRED)}, and one of baseline or value)")
        t = cls(**d)
        for key, problem in t.problems():
            raise ReportError(f"{key} {problem}" if key else problem)
        return t

    def problems(self) -> Iterator[tuple[str, str]]:
        """``(key, problem)`` for every value of the wrong type or out of range (``key`` is ``""`` for a problem
        of the whole target). :meth:`from_dict` raises the first; the demo's study config names it with the
        target's index (``targets[2].factor``)."""
        for key in self.REQUIRED:
            v = getattr(self, key)
            if v == "":
                yield key, f"is missing or empty (a target needs {', '.join(self.REQUIRED)})"
            elif not isinstance(v, str) or not v.strip():
                yield key, f"must be a non-empty string, got {_show(v)}"
        for key in ("baseline", "relation", "label"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                yield key, f"must be a non-empty string (or left out), got {_show(v)}"
        if not _finite(self.factor) or self.factor <= 0:
            yield "factor", f"must be a positive finite number, got {_show(self.factor)}"
        if self.value is not None and not _finite(self.value):
            yield "value", f"must be a finite number, got {_show(self.value)}"
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 0):
            yield "k", f"must be a non-negative integer (or left out), got {_show(self.k)}"
        if (self.baseline is None) == (self.value is None):
            yield "", "needs exactly one of 'baseline' (a method) or 'value' (a number)"
        if self.relation not in (None, "<", "<=", ">", ">="):
            yield "relation", f"must be one of <, <=, >, >=, got {_show(self.relation)}"


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _show(v: object) -> str:
    """A value as the target file spells it (JSON), cut short."""
    try:
        text = json.dumps(v, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class TargetResult:
    target: Target
    met: bool | None  # None: not evaluated (a number is missing)
    sentence: str


_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _plain(text: str) -> str:
    return text


def missing_reason(res: Results, method: str, eval_set: str, metric: str, k: int | None = None,
                   name: Callable[[str], str] = _plain) -> str:
    """Why ``res`` has no ``metric`` for ``method`` (a name or pattern) on ``eval_set``, with the names it does
    have, so that a misspelt eval set, metric or method is plain: ``no eval set 'aqa2' in the runs (known: ...)``;
    ``""`` when every name is known (the number itself is missing). ``name`` writes each method, eval-set or
    metric name (``sicl.report.build.md_text`` for report.md)."""
    N = name
    if eval_set not in res.eval_sets:
        return f"no eval set {N(repr(eval_set))} in the runs; known: {', '.join(map(N, res.eval_sets)) or 'none'}"
    if not any(r.eval_set == eval_set and r.metric == metric for r in res.rows):
        known = res.metrics("quality", eval_set) or sorted({r.metric for r in res.rows if r.eval_set == eval_set})
        return f"{N(eval_set)} has no metric {N(repr(metric))}; known: {', '.join(map(N, known)) or 'none'}"
    pattern = any(c in method for c in "*?[")
    matching = [m for m in res.methods if fnmatch.fnmatchcase(m, method)]
    if not matching:
        return f"no method {'matches' if pattern else 'named'} {N(repr(method))}; known: {', '.join(map(N, res.methods))}"
    ran = [m for m in matching if res.ks(m, eval_set)]
    if not ran:
        return f"{_names([N(m) for m in matching])} {'was' if len(matching) == 1 else 'were'} not run on {N(eval_set)}"
    if k is not None:
        return "; ".join(f"{N(m)} was run on {N(eval_set)} at k={', '.join(map(str, res.ks(m, eval_set)))}"
                         for m in ran)
    return ""


def check_target(res: Results, t: Target, name: Callable[[str], str] = _plain) -> TargetResult:
    """``t`` checked on ``res``: met, not met, or not evaluated (None) when a number is missing, and the sentence
    saying so with the numbers. ``name`` writes each method and eval-set name in the sentence
    (``sicl.report.build.md_text`` for report.md, where a name's markdown characters must print literally)."""
    N = name
    metric = metric_label(t.metric, with_direction=False)
    rel = t.relation or (">=" if direction(t.metric) == "higher" else "<=")
    head = f"{t.label}: " if t.label else ""
    pattern = any(c in t.method for c in "*?[")
    got = res.best(t.method, t.eval_set, t.metric, t.k)
    if got is None:
        why = missing_reason(res, t.method, t.eval_set, t.metric, t.k, name=N)
        return TargetResult(t, None, f"{head}not evaluated: no {metric} for {N(t.method)} on {N(t.eval_set)}"
                                     f"{f' ({why})' if why else ''}.")
    m, mk, v = got
    at = N(m) + _at(res, m, mk)[len(m):]
    who = f"best {N(t.method)} ({at})" if pattern else at
    if t.value is not None:
        threshold, what = float(t.value), fmt(t.metric, float(t.value))
    else:
        ref = res.reference(t.baseline, t.eval_set, t.metric)
        if ref is None:
            why = missing_reason(res, t.baseline, t.eval_set, t.metric, name=N)
            return TargetResult(t, None, f"{head}not evaluated: no {metric} for {N(t.baseline)} on {N(t.eval_set)}"
                                         f"{f' ({why})' if why else ''}.")
        label, rk, rv = ref
        base = label.split(" at k=")[0]  # the reference's method name
        shown = N(base) + label[len(base):]
        threshold = t.factor * rv
        what = (f"{shown} ({fmt(t.metric, rv)})" if t.factor == 1
                else f"{t.factor:g} x {shown} ({t.factor:g} x {fmt(t.metric, rv)} = {fmt(t.metric, threshold)})")
    met = _OPS[rel](v, threshold)
    verdict = "met" if met else "NOT met"
    loops = ""
    if t.value is None and t.metric in ("wer", "cer"):  # a few looping outputs can decide a corpus WER
        a, b = res.value(m, t.eval_set, mk, "looping_outputs"), res.value(base, t.eval_set, rk, "looping_outputs")
        if a is not None and b is not None and (a or b):
            loops = f" Looping outputs: {N(m)} {int(a)}, {N(base)} {int(b)}."
    return TargetResult(t, met, f"{head}{verdict}: on {N(t.eval_set)}, {who} has {metric} {fmt(t.metric, v)}, "
                                f"{'' if met else 'not '}{rel} {what}.{loops}")


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _who(res: Results, items: list[tuple[str, int]]) -> str:
    """Methods with their k, the k said once when they share it: ``vanilla-icl and sicl-at1 at k=3``."""
    ks = {k for m, k in items if not res.zero_k(m)}
    if len(ks) == 1 and not any(res.zero_k(m) for m, _ in items):
        return f"{_names([m for m, _ in items])} at k={ks.pop()}"
    return _names([_at(res, m, k) for m, k in items])


#: Methods the reading compares with zero-shot and vanilla ICL (when none is present: every other method).
FOCUS = "sicl-at*"


def target_sentences(res: Results, targets: Iterable[Target | dict] | None) -> list[str]:
    """One sentence per target (met / NOT met / not evaluated, with the numbers)."""
    return [check_target(res, t if isinstance(t, Target) else Target.from_dict(t)).sentence for t in (targets or [])]


def reading(rows: Iterable[ResultRow] | Results, main_k: int | None = None,
            targets: Iterable[Target | dict] | None = None) -> list[str]:
    """Factual sentences about the numbers: targets (met / NOT met / not evaluated) when given, then per eval set
    (on its primary metric, each method at its headline k) one sentence naming the best method — or every method
    that ties for it — and one comparing each SICL-AT method (methods matching ``sicl-at*``; every method other
    than the two references when there is none) with zero-shot and vanilla ICL; methods with identical values are
    named together."""
    res = rows if isinstance(rows, Results) else Results(rows, main_k)
    out = target_sentences(res, targets)
    for e in res.eval_sets:
        metric = res.primary_metric(e)
        if metric is None:
            continue
        name = metric_label(metric, with_direction=False)
        d = direction(metric)
        heading = f"{name}{f' ({d} is better)' if d else ''}"
        tops = res.best_all("*", e, metric)
        if len(tops) == 1:
            m, k, v = tops[0]
            out.append(f"On {e}, the best {heading} is {_at(res, m, k)} with {fmt(metric, v)}.")
        elif tops:
            everyone = [m for m in res.methods if res.headline(m, e, metric)[1] is not None]
            who = _who(res, [(m, k) for m, k, _ in tops])
            if len(tops) == len(everyone):
                out.append(f"On {e}, all {len(tops)} methods tie on {heading} at {fmt(metric, tops[0][2])} "
                           f"({who}): no best method.")
            else:
                out.append(f"On {e}, {len(tops)} methods tie for the best {heading} at {fmt(metric, tops[0][2])}: "
                           f"{who}.")
        refs = [r for r in (res.reference(ZERO_SHOT, e, metric), res.reference(VANILLA, e, metric)) if r]
        if not refs:
            continue
        focus = [m for m in res.methods if fnmatch.fnmatchcase(m, FOCUS)] or \
            [m for m in res.methods if m not in (ZERO_SHOT, VANILLA)]
        groups: dict[tuple[int, float], list[str]] = {}
        for m in focus:
            k, v = res.headline(m, e, metric)
            if v is not None:
                groups.setdefault((k, v), []).append(m)
        if not groups:
            continue
        ref_text = " and ".join(f"{label} ({fmt(metric, rv)})" for label, _, rv in refs)
        parts = []
        for (k, v), ms in groups.items():
            vs = ", ".join(f"{_compare(metric, v, rv)} {label.split(' ')[0]}" for label, _, rv in refs)
            at = "" if all(res.zero_k(m) for m in ms) else f" at k={k}"
            has = " all have" if len(ms) > 1 else " has"
            parts.append(f"{_names(ms)}{at}{has} {fmt(metric, v)} ({vs})")
        out.append(f"On {e}, {name} against {ref_text}: {'; '.join(parts)}.")
    return out


def mean_over_eval_sets(res: Results, method: str, metric: str) -> dict[int, float]:
    """k -> mean of ``metric`` over :func:`sweep_eval_sets` (the same eval sets at every k)."""
    sets = sweep_eval_sets(res, method, metric)
    out: dict[int, float] = {}
    for k in res.ks(method):
        vals = [v for e in sets if (v := res.value(method, e, k, metric)) is not None]
        if len(vals) == len(sets) and vals:
            out[k] = sum(vals) / len(vals)
    return out


def sweep_eval_sets(res: Results, method: str, metric: str) -> list[str]:
    """The eval sets on which ``method`` has ``metric`` at the most k values (so that a mean over them compares
    like with like across k); an eval set with fewer k values is left out."""
    have = {e: frozenset(k for k in res.ks(method, e) if res.value(method, e, k, metric) is not None)
            for e in res.eval_sets}
    have = {e: ks for e, ks in have.items() if ks}
    if not have:
        return []
    most = max(len(ks) for ks in have.values())
    best = sorted({ks for ks in have.values() if len(ks) == most}, key=sorted)[0]
    return [e for e, ks in have.items() if ks == best]
