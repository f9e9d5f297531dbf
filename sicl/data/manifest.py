"""The manifest contract: JSON Lines, UTF-8, one example per line.

Required: ``id`` (unique string), ``audio`` (path; relative paths resolve against the manifest's folder),
``task`` (``asr`` | ``st`` | ``sqa`` | ``aqa``). ``target`` is the gold output and is required wherever gold
is needed. Optional: ``question``, ``choices`` (distinct; ``target`` must be one of them), ``lang`` (default
``en``), ``target_lang``, ``transcript``, ``speaker``, ``duration`` (seconds), ``meta`` (free object).

This module is the only reader and writer of manifests. Rows are data: they are parsed with ``json`` and
checked field by field, never evaluated.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sicl.atomic import atomic_open
from sicl.errors import ManifestError

TASKS = ("asr", "st", "sqa", "aqa")
REQUIRED = ("id", "audio", "task")
_STR_FIELDS = ("id", "audio", "task", "target", "question", "lang", "target_lang", "transcript", "speaker")
FIELDS = ("id", "audio", "task", "target", "question", "choices", "lang", "target_lang", "transcript",
          "speaker", "duration", "meta")


@dataclass
class Example:
    """One manifest row. ``audio`` holds a resolved (absolute) path once read from a file."""

    id: str
    audio: str
    task: str
    target: str | None = None
    question: str | None = None
    choices: list[str] | None = None
    lang: str = "en"
    target_lang: str | None = None
    transcript: str | None = None
    speaker: str | None = None
    duration: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text_for_retrieval(self) -> str | None:
        """Source-language text that describes the audio (the ASR target, else ``transcript``)."""
        if self.task == "asr":
            return self.target
        return self.transcript

    def to_dict(self, base: Path | None = None) -> dict[str, Any]:
        """JSON-ready dict; ``audio`` is made relative to ``base`` when it lies below it. Unset optional
        fields are left out (``lang`` is always written)."""
        out: dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if name == "audio":
                value = _relativize(value, base)
            if value is None or (name == "meta" and not value):
                continue
            out[name] = value
        return out


def parse_row(obj: Any, base: Path | None = None) -> tuple[Example | None, list[str]]:
    """Check one decoded JSON value against the contract. Returns ``(example, problems)``; the example is
    ``None`` when a problem makes it unusable."""
    problems: list[str] = []
    if not isinstance(obj, dict):
        return None, [f"row is a JSON {json_type_name(obj)}, expected an object"]
    for name in REQUIRED:
        if name not in obj or obj[name] is None or obj[name] == "":
            problems.append(f"missing required field '{name}'")
    for name in _STR_FIELDS:
        if name in obj and obj[name] is not None and not isinstance(obj[name], str):
            problems.append(f"field '{name}' must be a string, got {json_type_name(obj[name])}")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(map(repr, unknown))} (put free-form data in 'meta')")
    task = obj.get("task")
    if isinstance(task, str) and task and task not in TASKS:
        problems.append(f"unknown task '{task}' (expected one of {', '.join(TASKS)})")
    choices = obj.get("choices")
    if choices is not None:
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            problems.append("field 'choices' must be a list of strings")
        elif len(choices) < 2:
            problems.append("field 'choices' must hold at least 2 options")
        elif len(set(choices)) < len(choices):
            dup = next(c for i, c in enumerate(choices) if c in choices[:i])
            problems.append(f"field 'choices' holds {dup!r} more than once (the answer would be ambiguous)")
        elif isinstance(obj.get("target"), str) and obj["target"] not in choices:
            problems.append(f"target {obj['target']!r} is not one of the choices")
    duration = obj.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float)
                                 or not (duration >= 0 and math.isfinite(duration))):
        # json reads NaN and Infinity: neither is a length
        problems.append("field 'duration' must be a non-negative, finite number of seconds")
    meta = obj.get("meta")
    if meta is not None and not isinstance(meta, dict):
        problems.append("field 'meta' must be an object")
    if problems:
        return None, problems
    audio = obj["audio"]
    if base is not None and not os.path.isabs(audio):
        audio = str((base / audio).resolve())
    ex = Example(
        id=obj["id"], audio=audio, task=task, target=obj.get("target"), question=obj.get("question"),
        choices=list(choices) if choices is not None else None, lang=obj.get("lang") or "en",
        target_lang=obj.get("target_lang"), transcript=obj.get("transcript"), speaker=obj.get("speaker"),
        duration=float(duration) if duration is not None else None, meta=dict(meta or {}),
    )
    return ex, []


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type (``null``, ``true``, ``string``, ...), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def json_error(e: json.JSONDecodeError) -> str:
    """``invalid JSON (MESSAGE at column N)``; json's messages may already end in 'at'."""
    msg = e.msg[:-3] if e.msg.endswith(" at") else e.msg
    return f"invalid JSON ({msg} at column {e.colno})"


UTF8_BOM = b"\xef\xbb\xbf"


def has_text(value: Any) -> bool:
    """A string with something besides whitespace (a blank ``target`` is no gold answer)."""
    return isinstance(value, str) and bool(value.strip())


def _raw_lines(fh: BinaryIO) -> Iterator[bytes]:
    """Lines as bytes without their ending; ``\n``, ``\r\n`` and a lone ``\r`` each end a line (as text
    mode's universal newlines do). Splitting bytes is safe: no byte of a multi-byte UTF-8 character is
    below 0x80."""
    for chunk in fh:
        if chunk.endswith(b"\n"):
            chunk = chunk[:-1]
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
        yield from chunk.split(b"\r") if b"\r" in chunk else (chunk,)


def iter_lines(path: str | Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield ``(line_number, decoded_json_or_None, error_or_None)`` for each non-blank line. Each line is
    decoded on its own, so a bad byte is reported on its own line and the lines around it are still read.
    A UTF-8 byte order mark at the start of the file (Windows editors write one) is skipped."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise ManifestError(f"{path}: cannot open manifest ({e.strerror})") from None
    with fh:
        for line_no, raw in enumerate(_raw_lines(fh), start=1):
            if line_no == 1:
                raw = raw.removeprefix(UTF8_BOM)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = f"bad byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line"
                yield line_no, None, f"line is not valid UTF-8 ({bad})"
                continue
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line), None
            except json.JSONDecodeError as e:
                yield line_no, None, json_error(e)


def row_location(path: str | Path, row_id: Any) -> str:
    """``PATH:LINE`` of the row whose ``id`` is ``row_id`` (just ``PATH`` when no row has it), for error messages
    about a row read earlier: one more pass over the file, on the error path only."""
    line = next((n for n, obj, _ in iter_lines(path) if isinstance(obj, dict) and obj.get("id") == row_id), None)
    return f"{path}:{line}" if line is not None else str(path)


def read_manifest(path: str | Path, require_target: bool = False) -> list[Example]:
    """Read and check a manifest; the first broken row raises ``ManifestError("FILE:LINE: ...")``."""
    path = Path(path)
    base = path.resolve().parent
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for line_no, obj, err in iter_lines(path):
        where = f"{path}:{line_no}"
        if err:
            raise ManifestError(f"{where}: {err}")
        ex, problems = parse_row(obj, base)
        if problems:
            rid = obj.get("id") if isinstance(obj, dict) else None
            raise ManifestError(f"{where}: {'id ' + repr(rid) + ': ' if rid else ''}{problems[0]}")
        assert ex is not None
        if ex.id in seen:
            raise ManifestError(f"{where}: duplicate id {ex.id!r} (first on line {seen[ex.id]})")
        if require_target and not has_text(ex.target):
            what = "is blank" if ex.target else "is required here"
            raise ManifestError(f"{where}: id {ex.id!r}: 'target' {what} (gold output)")
        seen[ex.id] = line_no
        examples.append(ex)
    if not examples:
        raise ManifestError(f"{path}: manifest holds no rows")
    return examples


def write_manifest(path: str | Path, examples: Iterable[Example]) -> Path:
    """Write atomically: rows go to a temporary file in the same folder, which then replaces ``path``.
    Audio paths below the manifest's folder are written relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.resolve().parent
    ids: set[str] = set()
    with atomic_open(path) as fh:
        for ex in examples:
            if ex.id in ids:
                raise ManifestError(f"{path}: refusing to write duplicate id {ex.id!r}")
            ids.add(ex.id)
            fh.write(json.dumps(ex.to_dict(base), ensure_ascii=False) + "\n")
    return path


def _relativize(audio: str, base: Path | None) -> str:
    if base is None or not os.path.isabs(audio):
        return audio
    try:
        return Path(audio).resolve().relative_to(base).as_posix()
    except ValueError:
        return audio
