"""A plain folder of audio files plus a transcript table (CSV or TSV with a header: ``file, text`` and
optionally ``speaker``, ``lang``). The generic way in for any ASR corpus without its own importer."""

from __future__ import annotations

import argparse
import csv
import io
import os
from pathlib import Path

from sicl.data.importers._common import Scan, check_not_input, single_file, text
from sicl.data.manifest import Example
from sicl.errors import SiclError

HELP = "folder of audio + transcript CSV/TSV (columns file, text[, speaker, lang]) -> asr"
SPLIT_HELP = "not used"
USES_SPLIT = False
DELIMITERS = (",", "\t", "|", ";")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transcripts", type=Path, default=None, metavar="FILE",
                        help="transcript table (default: the single *.csv / *.tsv in SRC)")
    parser.add_argument("--lang", default="en", help="language of rows without a 'lang' column (default: en)")


def _delimiter(path: Path, header_line: str) -> str:
    """Tab for .tsv; otherwise the delimiter that splits the header into columns including file and text
    (so 'metadata.csv' written with '|' works too)."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    for d in DELIMITERS:
        cols = [c.strip() for c in header_line.split(d)]
        if "file" in cols and "text" in cols:
            return d
    try:
        return csv.Sniffer().sniff(header_line, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","


def scan(src: Path, args: argparse.Namespace) -> Scan:
    if not src.is_dir():
        raise SiclError(f"{src}: expected the audio folder (the transcript table goes in --transcripts)")
    table = args.transcripts or single_file(src, ("*.csv", "*.tsv"), "transcript table (*.csv / *.tsv)",
                                            choose="pass the one to read with --transcripts FILE")
    check_not_input(Path(args.out), Scan(inputs=[table]))  # before reading: --out = the table is the problem
    # Decoded whole before parsing so that invalid UTF-8 anywhere (the header too) is one error naming the line.
    try:
        data = table.read_bytes()
    except OSError as e:
        raise SiclError(f"{table}: cannot open ({e.strerror})") from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SiclError(f"{table}:{line}: not valid UTF-8 ({e.reason}); save the table as UTF-8") from None
    fh = io.StringIO(content, newline="")
    src_abs = Path(os.path.normpath(src.absolute()))
    out = Scan(inputs=[table])
    with fh:
        header_line = fh.readline()
        fh.seek(0)
        delim = _delimiter(table, header_line)
        # TSVs are read without quote handling (as Common Voice's), CSVs with standard quoting. Strict: a
        # malformed quote is an error, and a row spanning lines (an unterminated quote) is refused below.
        reader = csv.reader(fh, delimiter=delim, strict=True,
                            quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL)
        start = 1  # line on which the row being read starts
        try:
            header = [c.strip() for c in next(reader, [])]
            missing = [c for c in ("file", "text") if c not in header]
            if missing:
                raise SiclError(f"{table}:1: missing required column(s) {', '.join(missing)} "
                                f"(header has: {', '.join(h for h in header if h) or 'nothing'}; "
                                "a header line is required)")
            col = {name: i for i, name in enumerate(header)}
            while True:
                start = reader.line_num + 1
                values = next(reader, None)
                if values is None:
                    break
                where = f"{table}:{start}"
                if reader.line_num != start or any("\n" in v or "\r" in v for v in values):
                    raise SiclError(f"{where}: a field runs over several lines (unterminated quote?); "
                                    "each row must be on one line")
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):  # too few: a truncated line, not a row with empty fields
                    raise SiclError(f"{where}: {len(values)} fields, the header has {len(header)}")
                row = {name: values[i] for name, i in col.items()}
                rel, transcript = text(row["file"]), text(row["text"])
                if not rel:
                    out.bad_rows.append((where, "empty 'file'"))
                    continue
                if not transcript:
                    out.drop("with an empty transcript")
                    continue
                rid = _row_id(src_abs, rel)
                out.add(Example(id=rid, audio=str((src / rel).resolve()), task="asr", target=transcript,
                                lang=text(row.get("lang")) or args.lang,
                                speaker=text(row.get("speaker")) or None), where)
        except csv.Error as e:
            why = "unterminated quote (the row never ends)" if "end of data" in str(e) else f"malformed row ({e})"
            raise SiclError(f"{table}:{start}: {why}") from None
    return out


def _row_id(src_abs: Path, rel: str) -> str:
    """The path below SRC without its suffix (``wavs/a``): unique even when subfolders reuse file names.
    ``./``, ``..`` and absolute paths are normalised first; a file outside SRC gets its bare file stem
    (repeats are renamed ``~2`` ... as for any repeated id)."""
    path = Path(os.path.normpath(src_abs / rel))  # an absolute ``rel`` replaces src_abs
    try:
        return path.relative_to(src_abs).with_suffix("").as_posix()
    except ValueError:
        return path.stem
