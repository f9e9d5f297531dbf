"""Hugging Face ``datasets`` data on disk -> asr rows: a ``save_to_disk`` folder (a Dataset, or a DatasetDict whose
split is chosen with ``--split``), or local ``.parquet`` / ``.arrow`` files (one file or a folder of them).

Read with pyarrow alone (no ``datasets`` import, so its audio decoding, which needs torchcodec, is never involved).
The audio column may hold ``{"bytes", "path"}`` structs (``Audio(decode=False)``, the on-disk form of every
``datasets`` audio column: embedded bytes are written under ``--audio-dir``, paths are used where they are),
plain path strings, or ``{"array", "sampling_rate"}`` values (written out as FLAC).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sicl.data.importers._common import Scan, cleanup_on_error, field_text, not_text
from sicl.data.importers.mmsu import audio_path, safe_filename
from sicl.data.manifest import Example
from sicl.errors import SiclError

HELP = "Hugging Face datasets: save_to_disk folder or local parquet/arrow with an audio column -> asr"
SPLIT_HELP = ("split of a DatasetDict folder, or of a Hub-style folder (its test-*.parquet or test/ files); "
              "train, validation, test, ...")
TEXT_COLUMNS = ("text", "sentence", "transcript", "transcription", "normalized_text", "raw_text", "target")
ID_COLUMNS = ("id", "utterance_id", "segment_id", "audio_id", "key", "file", "path")
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id", "spk_id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio-column", default="audio", metavar="C", help="audio column (default: audio)")
    parser.add_argument("--text-column", default=None, metavar="C",
                        help=f"transcript column (default: the first of {', '.join(TEXT_COLUMNS)})")
    parser.add_argument("--id-column", default=None, metavar="C",
                        help=f"id column (default: the first of {', '.join(ID_COLUMNS[:4])}, else FILE-ROW)")
    parser.add_argument("--speaker-column", default=None, metavar="C",
                        help=f"speaker column (default: the first of {', '.join(SPEAKER_COLUMNS)} if present)")
    parser.add_argument("--lang", default="en", help="language of the rows (default: en)")
    parser.add_argument("--audio-dir", type=Path, default=None, metavar="DIR",
                        help="where embedded audio is written (default: audio/ beside OUT)")


def locate(src: Path, split: str | None) -> list[Path]:
    """The data files of SRC (see module docstring), in order. ``split`` picks a split of a DatasetDict, or
    the files of a folder laid out as on the Hub (``test-*.parquet``, ``test/...``, ``data/test-*``)."""
    if src.is_file():
        if split is not None:
            raise SiclError(f"{src}: --split {split!r} needs a folder of splits, not a single file; "
                            "pass the split's file as SRC instead")
        return [src]
    if (src / "dataset_dict.json").is_file():
        try:
            splits = json.loads((src / "dataset_dict.json").read_text()).get("splits", [])
        except (ValueError, AttributeError) as e:
            raise SiclError(f"{src / 'dataset_dict.json'}: not a datasets DatasetDict ({e})") from None
        if split is None:
            if len(splits) != 1:
                raise SiclError(f"{src}: a DatasetDict with splits {', '.join(splits)}; choose one with --split")
            split = splits[0]
        if split not in splits:
            raise SiclError(f"{src}: no split {split!r} (splits: {', '.join(splits)})")
        return locate(src / split, None)
    if (src / "state.json").is_file():
        if split is not None:
            raise SiclError(f"{src}: a single Dataset (save_to_disk) has no splits; drop --split {split!r}")
        try:
            files = [src / f["filename"] for f in json.loads((src / "state.json").read_text())["_data_files"]]
        except (ValueError, KeyError, TypeError) as e:
            raise SiclError(f"{src / 'state.json'}: not a datasets save_to_disk state ({e})") from None
        return files
    found = sorted([*src.rglob("*.parquet"), *src.rglob("*.arrow")])
    if not found:
        raise SiclError(f"{src}: no dataset here (no dataset_dict.json, state.json, *.parquet or *.arrow)")
    if split is None:
        return found
    picked = [p for p in found if _in_split(p.relative_to(src), split)]
    if not picked:
        names = ", ".join(str(p.relative_to(src)) for p in found[:5]) + (", ..." if len(found) > 5 else "")
        raise SiclError(f"{src}: no files of split {split!r} (looked for {split}-*.parquet/.arrow or a "
                        f"{split}/ folder; found {names})")
    return picked


def _in_split(rel: Path, split: str) -> bool:
    """Whether a data file belongs to ``split`` as the Hub lays files out: a ``split/`` folder on the way,
    or a file named ``split-00000-of-00001.parquet`` / ``split.parquet``."""
    if split in rel.parts[:-1]:
        return True
    name = rel.name
    return name.startswith(f"{split}-") or name.startswith(f"{split}.")


def _tables(path: Path) -> Iterator[Any]:
    """pyarrow record batches of one data file."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SiclError("reading Hugging Face data needs pyarrow: pip install 'sicl[parquet]'") from None
    try:
        if path.suffix.lower() == ".parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=256)
            return
        with open(path, "rb") as fh:
            try:
                reader: Any = pa.ipc.open_stream(fh)  # what datasets writes
            except pa.ArrowInvalid:
                fh.seek(0)
                reader = pa.ipc.open_file(fh)
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)
                return
            yield from reader
    except OSError as e:
        raise SiclError(f"{path}: cannot read ({e})") from None
    except Exception as e:  # pyarrow's ArrowInvalid etc.: a damaged or foreign file
        raise SiclError(f"{path}: not a parquet/arrow table ({str(e).splitlines()[0][:200]})") from None


def _pick(names: list[str], given: str | None, candidates: tuple[str, ...], what: str, where: Path,
          required: bool = True) -> str | None:
    if given:
        if given not in names:
            raise SiclError(f"{where}: no {what} column {given!r} (columns: {', '.join(names)})")
        return given
    hit = next((c for c in candidates if c in names), None)
    if hit is None and required:
        raise SiclError(f"{where}: no {what} column (looked for {', '.join(candidates)}; columns: "
                        f"{', '.join(names)}); name it with --{what}-column")
    return hit


def scan(src: Path, args: argparse.Namespace) -> Scan:
    out = Scan(inputs=[p for p in (src / "dataset_dict.json", src / "state.json") if p.is_file()])
    audio_dir = (args.audio_dir or Path(args.out).parent / "audio").resolve()
    with cleanup_on_error(out):  # a failure after some audio was staged leaves nothing behind
        for path in locate(src, args.split):
            out.inputs.append(path)
            _scan_file(path, audio_dir, args, out)
    return out


def _scan_file(path: Path, audio_dir: Path, args: argparse.Namespace, out: Scan) -> None:
    """Queue the rows of one data file."""
    from sicl.data.audio import write_audio

    row_no = 0
    cols: tuple[str | None, ...] | None = None
    for batch in _tables(path):
        if cols is None:
            names = list(batch.schema.names)
            if args.audio_column not in names:
                raise SiclError(f"{path}: no audio column {args.audio_column!r} (columns: {', '.join(names)})")
            cols = (_pick(names, args.text_column, TEXT_COLUMNS, "text", path),
                    _pick(names, args.id_column, ID_COLUMNS[:4], "id", path, required=False),
                    _pick(names, args.speaker_column, SPEAKER_COLUMNS, "speaker", path, required=False))
        text_col, id_col, spk_col = cols
        for row in batch.to_pylist():
            where = f"{path} row {row_no}"
            rid = field_text(row.get(id_col)) if id_col else ""
            transcript = field_text(row.get(text_col))
            speaker = field_text(row.get(spk_col)) if spk_col else ""
            wrong = next((c for c, v in ((id_col, rid), (text_col, transcript), (spk_col, speaker))
                          if v is None), None)
            rid = rid or f"{path.stem}-{row_no:06d}"
            row_no += 1
            if wrong is not None:  # a list or struct: its Python repr must not reach the manifest
                out.bad_rows.append((where, not_text(wrong, row.get(wrong))))
                continue
            if not transcript:  # checked first: no audio is extracted for a row that is left out
                out.drop("empty transcript")
                continue
            value = row.get(args.audio_column)
            if isinstance(value, dict) and value.get("array") is not None:
                target = audio_dir / f"{safe_filename(rid)}.flac"
                n = 1
                while target in out.created:  # two rows with one id: do not overwrite the first clip
                    n += 1
                    target = audio_dir / f"{safe_filename(rid)}_{n}.flac"
                write_audio(out.stage(target), np.asarray(value["array"], dtype=np.float32),
                            int(value.get("sampling_rate") or 16000))
                audio: Path | None = target
            else:
                audio = audio_path(value, rid, path.parent, audio_dir, out)
            if audio is None:
                out.bad_rows.append((where, f"id {rid!r}: no audio"))
                continue
            out.add(Example(id=rid, audio=str(audio), task="asr", target=transcript, lang=args.lang,
                            speaker=speaker or None), where)
