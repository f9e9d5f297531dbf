"""Files of an evaluation run: atomic JSON/CSV writes and the append-only, kill-safe predictions file.

``predictions.jsonl`` is written one batch at a time: the batch's lines are written in one call, flushed
and fsync'd, so a kill (even ``kill -9``) loses at most the batch in flight and leaves at worst one torn
last line. :func:`load_predictions` reads such a file back, dropping (and, for the file a process owns,
truncating) a torn tail, so ``--resume`` continues exactly where the run stopped.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sicl.atomic import atomic_write_text
from sicl.errors import SiclError


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c) for c in columns})
    return atomic_write_text(path, buf.getvalue())


def load_predictions(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """Rows of a predictions file. A torn last line (no newline: the process died mid-write) is dropped,
    and with ``repair`` cut from the file so appends continue on a clean line. A broken line anywhere
    else is an error naming it."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data) and repair:
        with open(path, "r+b") as fh:
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())
    rows = []
    for n, line in enumerate(data[:end].decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "id" not in row:
                raise ValueError("not an object with an 'id'")
        except ValueError as e:
            raise SiclError(f"{path}:{n}: not a prediction row ({e}); delete the file to start over") from None
        rows.append(row)
    return rows


class PredictionWriter:
    """Appends rows to a predictions file; each :meth:`write` is one write + flush + fsync."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        self._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
