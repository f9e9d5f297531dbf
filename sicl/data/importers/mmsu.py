"""MMSU: rows ``id, audio, question, choice_a..choice_d, answer_gt`` as JSON (a list), JSON Lines or
parquet. In parquet (the Hugging Face release) ``audio`` may be an embedded ``{"bytes", "path"}`` struct:
the bytes are written to ``audio/`` beside the output manifest so the manifest can point at real files.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sicl.data.importers._common import (
    Scan,
    check_not_input,
    cleanup_on_error,
    distinct_choices,
    field_text,
    pick_meta,
    read_json_records,
    require_keys,
    resolve_answer,
    resolve_audio,
    text_fields,
)
from sicl.data.manifest import Example, json_type_name
from sicl.errors import SiclError

HELP = "MMSU (JSON / JSONL / parquet with choice_a..d, answer_gt) -> sqa"
SPLIT_HELP = "MMSU has a single test set"
USES_SPLIT = False
REQUIRED = ("id", "audio", "question", "choice_a", "choice_b", "answer_gt")
CHOICE_KEYS = ("choice_a", "choice_b", "choice_c", "choice_d")
#: fields that must be text (a string, or a number such as an id 7); a list or object makes the row unusable
TEXT_KEYS = ("id", "question", *CHOICE_KEYS, "answer_gt")
# Several spellings are in circulation; keep whichever the file has.
# The Hugging Face release (ddwang2000/MMSU) has task_name, category (perception / reasoning), sub-category
# (linguistics / paralinguistics), sub-sub-category (semantics, phonology, ...) and linguistics_sub_discipline:
# the breakdowns the MMSU leaderboard reports.
META_KEYS = ("task_name", "task", "category", "sub-category", "sub_category", "subcategory", "sub-sub-category",
             "sub_sub_category", "linguistics_sub_discipline", "sub_task")
FORMATS = (".parquet", ".jsonl", ".json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio-dir", type=Path, default=None, metavar="DIR",
                        help="where embedded parquet audio is written (default: audio/ beside OUT)")


def locate(src: Path) -> list[Path]:
    """SRC itself, or every parquet file below the folder SRC, else its single JSON / JSONL file."""
    if src.is_file():
        return [src]
    parquet = sorted(src.rglob("*.parquet"))
    if parquet:
        return parquet
    found = sorted(p for p in src.iterdir() if p.suffix.lower() in (".json", ".jsonl"))
    if len(found) != 1:
        what = "several JSON files (" + ", ".join(p.name for p in found[:5]) + ")" if found else "no data file"
        raise SiclError(f"{src}: {what}; pass the MMSU file itself as SRC")
    return found


def iter_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SiclError(f"{path}: reading parquet needs pyarrow; install it with "
                        "`pip install 'sicl[parquet]'` (or `pip install pyarrow`)") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError for non-parquet input
        raise SiclError(f"{path}: cannot read parquet ({str(e).splitlines()[0][:200]})") from None
    missing = [c for c in REQUIRED if c not in pf.schema_arrow.names]
    if missing:
        raise SiclError(f"{path}: missing required column(s) {', '.join(missing)}")
    i = 0
    for batch in pf.iter_batches(batch_size=256):  # batches: embedded audio can be gigabytes in all
        for row in batch.to_pylist():
            yield f"{path} row {i}", row
            i += 1


def safe_filename(name: str) -> str:
    """``name`` as a file name: runs of anything but letters, digits, ``._-`` become ``_`` (never empty)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "clip"


def _sniff_suffix(data: bytes) -> str:
    if data[:4] == b"fLaC":
        return ".flac"
    if data[:4] == b"OggS":
        return ".ogg"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return ".mp3"
    return ".wav"


def audio_path(value: Any, rid: str, base: Path, audio_dir: Path, scan: Scan) -> Path | None:
    """Where a row's audio lives: a relative path, or embedded bytes written out under ``audio_dir``.
    ``None`` when there is none (or the value is neither a path nor a ``{"bytes", "path"}`` struct)."""
    if isinstance(value, dict):
        data, name = value.get("bytes"), field_text(value.get("path")) or ""
        if data:
            suffix = Path(name).suffix.lower() or _sniff_suffix(data)
            target = audio_dir / f"{safe_filename(rid)}{suffix}"
            n = 1
            while target in scan.created:  # two rows with one id: do not overwrite the first clip
                n += 1
                target = audio_dir / f"{safe_filename(rid)}_{n}{suffix}"
            scan.stage(target).write_bytes(data)  # moved to target only if the import succeeds
            return target
        value = name
    rel = field_text(value)
    return resolve_audio(base, rel).resolve() if rel else None


def scan(src: Path, args: argparse.Namespace) -> Scan:
    out = Scan()
    audio_dir = (args.audio_dir or Path(args.out).parent / "audio").resolve()
    out.inputs += locate(src)
    check_not_input(Path(args.out), out)  # before reading: --out = a data file is the first problem
    with cleanup_on_error(out):  # a bad record after some embedded audio was staged leaves nothing behind
        for path in out.inputs:
            _scan_file(path, audio_dir, out)
    return out


def _scan_file(path: Path, audio_dir: Path, out: Scan) -> None:
    """Queue the records of one MMSU data file."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        records: Any = iter_parquet(path)
    elif suffix in (".json", ".jsonl"):
        records = read_json_records(path)
    else:
        raise SiclError(f"{path}: unsupported file type (expected {', '.join(FORMATS)})")
    for where, obj in records:
        row = require_keys(obj, REQUIRED, where)
        fields = text_fields(row, TEXT_KEYS, where, out)
        if fields is None:
            continue
        rid = fields["id"]
        if not fields["question"]:
            why = "null" if row["question"] is None else "empty"
            out.bad_rows.append((where, f"id {rid!r}: 'question' is {why}"))
            continue
        choices = [c for c in (fields[k] for k in CHOICE_KEYS) if c]
        target = resolve_answer(fields["answer_gt"], choices)  # a letter indexes the choices as published
        if target is None:
            out.bad_rows.append((where, f"id {rid!r}: answer_gt {fields['answer_gt']!r} "
                                        "is none of the choices"))
            continue
        choices = distinct_choices(choices, out)
        if row["audio"] is not None and not isinstance(row["audio"], str | dict):
            out.bad_rows.append((where, f"id {rid!r}: 'audio' must be a path or a {{bytes, path}} struct, "
                                        f"got {json_type_name(row['audio'])}"))
            continue
        audio = audio_path(row["audio"], rid, path.parent, audio_dir, out)
        if audio is None:
            out.bad_rows.append((where, f"id {rid!r}: no audio"))
            continue
        out.add(Example(id=rid, audio=str(audio), task="sqa", target=target,
                        question=fields["question"], choices=choices,
                        meta={**pick_meta(row, META_KEYS), "benchmark": "mmsu"}), where)
