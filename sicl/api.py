"""A small Python API for notebooks: the four things the commands do, as functions.

    import sicl

    demos = sicl.retrieve("runs/world/child-science/test.jsonl", "runs/world/child-science/pool.jsonl", k=3)
    adapter = sicl.train("configs/demo/sicl-at1.yaml", max_steps=50, output_dir="runs/train/nb")
    metrics = sicl.evaluate("runs/world/child-science/test.jsonl", "runs/eval/nb", adapter=adapter,
                            pool="runs/world/child-science/pool.jsonl", k=3)
    sicl.score("runs/eval/nb/predictions.jsonl")

Each function runs exactly the code of its command (``sicl retrieve``, ``sicl train``, ``sicl eval``,
``sicl score``), with the same files written, the same output-folder lock (a second writer on a folder is
refused) and the same errors (:class:`sicl.errors.SiclError`). Keyword
arguments are Python values, used as given (never parsed as YAML or as a command line): a misspelt keyword,
a value of the wrong type or an empty input is a :class:`SiclError` naming the argument, as on the command line.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sicl.errors import SiclError


def _examples(data: Any, caller: str, name: str, require_target: bool = False) -> list[Any]:
    from sicl.data.manifest import Example, read_manifest

    if isinstance(data, (str, os.PathLike)):
        return read_manifest(data, require_target=require_target)
    if isinstance(data, Iterable) and not isinstance(data, (bytes, Mapping)):
        rows = list(data)
        if all(isinstance(r, Example) for r in rows):
            return rows
    raise SiclError(f"{caller}: {name} must be a manifest path or a list of sicl.data.manifest.Example, "
                    f"got {type(data).__name__}")


def _plain(value: Any) -> Any:
    """A keyword value as config data: paths as strings, tuples as lists (nested too); anything else as given."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_keywords(caller: str, options: Mapping[str, Any], cls: type, named: Sequence[str],
                    set_by_name: Sequence[str]) -> None:
    """``options`` must be fields of ``cls`` that no named parameter of ``caller`` already sets."""
    fields = [f.name for f in dataclasses.fields(cls) if f.name not in set_by_name]
    unknown = [k for k in options if k not in fields]
    if unknown:
        raise SiclError(f"{caller}: unknown keyword argument(s) {', '.join(unknown)} (accepted: "
                        f"{', '.join([*named, *fields])})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_flag(caller: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise SiclError(f"{caller}: {name} must be True or False, got {value!r}")


def retrieve(data: Any, pool: Any, k: int = 3, retriever: str = "ticl", pseudo_labeler: str = "backbone",
             model: str = "tiny-omni", **options: Any) -> dict[str, list[tuple[str, float]]]:
    """``{query id: [(demo id, score), ...]}`` for a manifest path (or a list of ``Example``) of queries and
    a pool; ``options`` are :class:`sicl.retrieval.RetrievalConfig` fields (``embedder``, ``device``, ...)."""
    from sicl.config import load_config
    from sicl.retrieval import RetrievalConfig
    from sicl.retrieval import retrieve as _retrieve

    caller = "sicl.retrieve"
    _check_keywords(caller, options, RetrievalConfig, ("data", "pool", "k", "retriever", "pseudo_labeler", "model"),
                    ("k", "retriever", "pseudo_labeler", "model"))
    if not _is_int(k) or k < 0:
        raise SiclError(f"{caller}: k must be an int >= 0, got {k!r}")
    values = {"retriever": retriever, "k": k, "pseudo_labeler": pseudo_labeler, "model": _plain(model),
              **{key: _plain(v) for key, v in options.items()}}
    cfg = load_config(RetrievalConfig, values=values, caller=caller)
    queries, demos = _examples(data, caller, "data"), _examples(pool, caller, "pool", require_target=True)
    rows = _retrieve(queries, demos, config=cfg)
    return {q.id: [(d, float(s)) for d, s in row] for q, row in zip(queries, rows, strict=True)}


def train(config: str | Path, overrides: Sequence[str] = (), resume: bool = False, **keys: Any) -> Path:
    """Train an adapter from a config file; ``keys`` are config keys (``max_steps=50``, ``lora={'r': 16}``,
    ``output_dir="runs/x #2"``), taken as the Python values given and applied after ``overrides`` (command-line
    style strings, ``["lora.r=16"]``, values parsed as YAML). Returns the output folder."""
    from sicl.config import load_config
    from sicl.guard import output_lock
    from sicl.train.sicl_at import train as _train
    from sicl.train.sicl_at_config import TrainConfig

    caller = "sicl.train"
    if not isinstance(config, (str, os.PathLike)):
        raise SiclError(f"{caller}: config must be the path of a YAML config file, got {type(config).__name__}")
    if isinstance(overrides, (str, bytes)) or not all(isinstance(o, str) for o in overrides):
        raise SiclError(f"{caller}: overrides must be a list of 'key=value' strings, got {overrides!r}")
    _check_flag(caller, "resume", resume)
    cfg = load_config(TrainConfig, config, list(overrides), values={k: _plain(v) for k, v in keys.items()},
                      caller=caller)
    with output_lock(cfg.output_dir, caller):  # one writer per folder, as `sicl train`
        return _train(cfg, resume=resume)


def evaluate(data: str | Path, out: str | Path, model: str = "tiny-omni", pool: str | Path | None = None,
             k: int | Sequence[int] = 0, adapter: str | Path | None = None, resume: bool = False,
             **options: Any) -> dict[str, Any]:
    """Evaluate (zero-shot, vanilla ICL, an adapter) into ``out``; returns ``metrics.json`` (for a list of k,
    ``{k: metrics}``). ``options`` are ``sicl eval``'s (``retriever``, ``pseudo_labeler``, ``batch_size``,
    ``limit``, ``device``, ...)."""
    from sicl.config import load_config
    from sicl.eval.runner import EvalConfig
    from sicl.eval.runner import evaluate as _evaluate
    from sicl.guard import output_lock

    caller = "sicl.evaluate"
    _check_keywords(caller, options, EvalConfig, ("data", "out", "model", "pool", "k", "adapter", "resume"),
                    ("data", "out", "model", "pool", "ks", "adapter"))
    if _is_int(k):
        ks = [k]
    elif isinstance(k, (list, tuple)) and k and all(_is_int(v) for v in k):
        ks = sorted(set(k))  # as `sicl eval --k 4,0,2`
    else:
        ks = None
    if ks is None or ks[0] < 0:
        raise SiclError(f"{caller}: k must be an int >= 0 or a non-empty list of them, got {k!r}")
    _check_flag(caller, "resume", resume)
    for name, value in (("data", data), ("out", out)):
        if not isinstance(value, (str, os.PathLike)):
            raise SiclError(f"{caller}: {name} must be a path, got {type(value).__name__}")
    values = {"data": _plain(data), "out": _plain(out), "model": _plain(model), "pool": _plain(pool) or None,
              "ks": ks, "adapter": _plain(adapter) or None, **{key: _plain(v) for key, v in options.items()}}
    cfg = load_config(EvalConfig, values=values, caller=caller)
    with output_lock(cfg.out, caller):  # one writer per folder, as `sicl eval`
        folder = _evaluate(cfg, resume=resume)
    if len(ks) == 1:
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    return {kk: json.loads((folder / f"k={kk}" / "metrics.json").read_text(encoding="utf-8")) for kk in ks}


def score(predictions: str | Path | Sequence[dict[str, Any]], scorer: str = "official",
          **options: Any) -> dict[str, Any]:
    """Metrics of a predictions file (or rows), as ``sicl score`` prints them; ``scorer`` is ``official`` (each
    benchmark's own script), ``mimo-eval`` or ``lenient`` (see docs/metrics.md). No rows is an error, as in
    ``sicl score``."""
    from sicl.eval.metrics import read_predictions, score_rows

    caller = "sicl.score"
    if options:  # as the other functions: a misspelt keyword names the accepted ones
        raise SiclError(f"{caller}: unknown keyword argument(s) {', '.join(options)} (accepted: predictions, scorer)")
    if not isinstance(scorer, str):
        raise SiclError(f"{caller}: scorer must be a name (official, mimo-eval, lenient), got {scorer!r}")
    if isinstance(predictions, (str, os.PathLike)):
        rows = read_predictions(predictions)
        where = f" in {os.fspath(predictions)}"
    elif isinstance(predictions, Iterable) and not isinstance(predictions, (bytes, Mapping)):
        rows, where = list(predictions), " given"
    else:
        raise SiclError(f"{caller}: predictions must be a predictions.jsonl path or a list of rows (dicts), got "
                        f"{type(predictions).__name__}")
    if not rows:
        raise SiclError(f"{caller}: no prediction rows{where}")
    return score_rows(rows, scorer)
