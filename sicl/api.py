"""A small Python API for notebooks: the four things the commands do, as functions.

    import sicl

    demos = sicl.retrieve("runs/world/child-science/test.jsonl", "runs/world/child-science/pool.jsonl", k=3)
    adapter = sicl.train("configs/demo/sicl-at1.yaml", max_steps=50, output_dir="runs/train/nb")
    metrics = sicl.evaluate("runs/world/child-science/test.jsonl", "runs/eval/nb", adapter=adapter,
                            pool="runs/world/child-science/pool.jsonl", k=3)
    sicl.score("runs/eval/nb/predictions.jsonl")

Each function runs exactly the code of its command (``sicl retrieve``, ``sicl train``, ``sicl eval``,
``sicl score``), with the same files written and the same errors (:class:`sicl.errors.SiclError`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _examples(data: Any, require_target: bool = False) -> list[Any]:
    from sicl.data.manifest import read_manifest

    if isinstance(data, (str, Path)):
        return read_manifest(data, require_target=require_target)
    return list(data)


def retrieve(data: Any, pool: Any, k: int = 3, retriever: str = "ticl", pseudo_labeler: str = "backbone",
             model: str = "tiny-omni", **options: Any) -> dict[str, list[tuple[str, float]]]:
    """``{query id: [(demo id, score), ...]}`` for a manifest path (or a list of ``Example``) of queries and
    a pool; ``options`` are :class:`sicl.retrieval.RetrievalConfig` fields (``embedder``, ``device``, ...)."""
    from sicl.retrieval import RetrievalConfig
    from sicl.retrieval import retrieve as _retrieve

    queries, demos = _examples(data), _examples(pool, require_target=True)
    cfg = RetrievalConfig(retriever=retriever, k=k, pseudo_labeler=pseudo_labeler, model=model, **options)
    rows = _retrieve(queries, demos, config=cfg)
    return {q.id: [(d, float(s)) for d, s in row] for q, row in zip(queries, rows, strict=True)}


def train(config: str | Path, overrides: Sequence[str] = (), resume: bool = False, **keys: Any) -> Path:
    """Train an adapter from a config file; ``keys`` are config keys (``max_steps=50``, ``lora={'r': 16}``)
    applied after ``overrides`` (``["lora.r=16"]``). Returns the output folder."""
    from sicl.config import load_config
    from sicl.train.sicl_at import train as _train
    from sicl.train.sicl_at_config import TrainConfig

    extra = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in keys.items()]
    cfg = load_config(TrainConfig, config, [*overrides, *extra])
    return _train(cfg, resume=resume)


def evaluate(data: str | Path, out: str | Path, model: str = "tiny-omni", pool: str | Path | None = None,
             k: int | Sequence[int] = 0, adapter: str | Path | None = None, resume: bool = False,
             **options: Any) -> dict[str, Any]:
    """Evaluate (zero-shot, vanilla ICL, an adapter) into ``out``; returns ``metrics.json`` (for a list of k,
    ``{k: metrics}``). ``options`` are ``sicl eval``'s (``retriever``, ``pseudo_labeler``, ``batch_size``,
    ``limit``, ``device``, ...)."""
    from sicl.eval.runner import EvalConfig
    from sicl.eval.runner import evaluate as _evaluate

    ks = [k] if isinstance(k, int) else list(k)
    cfg = EvalConfig(data=str(data), out=str(out), model=str(model), pool=str(pool) if pool else None, ks=ks,
                     adapter=str(adapter) if adapter else None, **options)
    folder = _evaluate(cfg, resume=resume)
    if len(ks) == 1:
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    return {kk: json.loads((folder / f"k={kk}" / "metrics.json").read_text(encoding="utf-8")) for kk in ks}


def score(predictions: str | Path | Sequence[dict[str, Any]], scorer: str = "official") -> dict[str, Any]:
    """Metrics of a predictions file (or rows), as ``sicl score`` prints them; ``scorer`` is ``official`` (each
    benchmark's own script), ``mimo-eval`` or ``lenient`` (see docs/metrics.md)."""
    from sicl.eval.metrics import score_file, score_rows

    if isinstance(predictions, (str, Path)):
        return score_file(predictions, scorer)
    return score_rows(predictions, scorer)
