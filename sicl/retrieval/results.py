"""The retrieval file: one JSON line per query, ``{"id", "demos": [pool ids, best first], "scores"}``,
plus a sidecar ``<file>.meta.json`` with the settings, inputs and package versions that produced it.

Both are written to temporary files and renamed only when complete, so a failed or interrupted run
leaves no partial output (and never a results file whose sidecar describes another run).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sicl.atomic import write_temp
from sicl.errors import ManifestError
from sicl.versions import versions


def meta_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def write_retrievals(path: str | Path, query_ids: Sequence[str], results: Sequence[Sequence[tuple[str, float]]],
                     meta: dict[str, Any]) -> Path:
    """Write results and sidecar atomically (both complete, or neither replaced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for qid, demos in zip(query_ids, results, strict=True):
        row = {"id": qid, "demos": [d for d, _ in demos], "scores": [round(float(s), 6) for _, s in demos]}
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    meta = {**meta, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(),
            "queries_count": len(query_ids)}
    tmp_rows = write_temp(path, "".join(lines))
    try:
        tmp_meta = write_temp(meta_path(path), json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    except BaseException:
        Path(tmp_rows).unlink(missing_ok=True)
        raise
    os.replace(tmp_rows, path)
    os.replace(tmp_meta, meta_path(path))
    return path


def read_retrievals(path: str | Path) -> dict[str, list[tuple[str, float]]]:
    """``{query id: [(pool id, score), ...]}`` from a retrieval file (what training and evaluation load)."""
    out: dict[str, list[tuple[str, float]]] = {}
    try:
        fh = open(path, encoding="utf-8-sig")  # a BOM written by an editor is skipped
    except OSError as e:
        raise ManifestError(f"{path}: cannot open retrieval file ({e.strerror})") from None
    with fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                demos, scores = list(row["demos"]), list(row.get("scores") or [0.0] * len(row["demos"]))
                out[str(row["id"])] = list(zip(demos, map(float, scores), strict=True))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise ManifestError(f"{path}:{line_no}: not a retrieval row ({type(e).__name__}: {e})") from None
    return out
