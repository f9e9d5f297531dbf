"""Check a manifest row by row: JSON, fields and types, unique ids, known task, target among choices,
and every audio file (exists, decodes, non-empty, finite, within the length limit)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sicl.data.audio import DEFAULT_MAX_SECONDS, SAMPLE_RATE, load_audio
from sicl.data.manifest import has_text, iter_lines, parse_row
from sicl.errors import AudioError, SiclError


def check_max_seconds(value: float | None) -> None:
    """Refuse a clip-length limit that is not a positive, finite number (``nan`` would let every clip pass,
    ``-1`` would fail every one); ``None`` means no limit. The same message for every command."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise SiclError(f"--max-seconds must be a positive number of seconds, not {value!r}")


@dataclass
class Problem:
    line: int
    id: str | None
    message: str

    def __str__(self) -> str:
        rid = f" id {self.id!r}:" if self.id is not None else ""
        return f"line {self.line}:{rid} {self.message}"


@dataclass
class Report:
    rows: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems and self.rows > 0


def validate_manifest(path: str | Path, max_seconds: float | None = DEFAULT_MAX_SECONDS,
                      check_audio: bool = True, require_target: bool = False,
                      progress: bool = False) -> Report:
    """Collect every problem in the manifest (never stops at the first). A ``max_seconds`` that is not a
    positive number is a :class:`SiclError` before anything is read."""
    check_max_seconds(max_seconds)
    path = Path(path)
    base = path.resolve().parent
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    rows = 0
    lines: Iterator = iter_lines(path)
    if progress:
        from sicl.progress import progress as tqdm
        lines = tqdm(lines, desc="validate", unit="row", leave=False)
    for line_no, obj, err in lines:
        rows += 1
        if err:
            problems.append(Problem(line_no, None, err))
            continue
        rid = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None
        ex, row_problems = parse_row(obj, base)
        problems.extend(Problem(line_no, rid, p) for p in row_problems)
        if rid is not None:
            if rid in first_line:
                problems.append(Problem(line_no, rid, f"duplicate id (first on line {first_line[rid]})"))
            else:
                first_line[rid] = line_no
        if ex is None:
            continue
        if require_target and not has_text(ex.target):
            what = "blank" if ex.target else "missing"
            problems.append(Problem(line_no, rid, f"{what} 'target' (gold output required here)"))
        if check_audio:
            try:
                wav = load_audio(ex.audio, max_seconds=max_seconds)
            except AudioError as e:
                problems.append(Problem(line_no, rid, str(e)))
                continue
            if ex.duration is not None and abs(len(wav) / SAMPLE_RATE - ex.duration) > 0.5:
                problems.append(Problem(line_no, rid, f"'duration' is {ex.duration:g} s but the audio "
                                                      f"is {len(wav) / SAMPLE_RATE:.2f} s"))
    if rows == 0:
        problems.append(Problem(0, None, "manifest holds no rows"))
    return Report(rows=rows, problems=problems)
