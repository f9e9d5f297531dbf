"""CoVoST 2: ``covost_v2.{src}_{tgt}.{split}.tsv`` (``path, sentence, translation, client_id``) or the
un-split release ``covost_v2.{src}_{tgt}.tsv`` with a ``split`` column, plus the Common Voice clips.

The un-split release may lack ``sentence``/``client_id`` (CoVoST's own script joins them from Common
Voice's ``validated.tsv``); when a ``validated.tsv`` sits beside the clips folder we do the same join.

CoVoST's ``get_covost_splits.py`` writes the split files with pandas ``to_csv(sep='\\t',
quoting=QUOTE_NONE, escapechar='\\')``: a backslash escapes the next character (``He said \\"yes\\".``),
so a backslash before any character there means that character. The un-split release is read the same
way by that script, but only the escapes pandas itself writes (backslash before a backslash, a ``"``, a tab
or a line break) are undone in it, so a stray literal backslash in an unescaped release file is kept.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from sicl.data.importers._common import Scan, check_not_input, read_tsv, text
from sicl.data.manifest import Example
from sicl.errors import SiclError

HELP = "CoVoST 2 TSVs (covost_v2.SRC_TGT[.SPLIT].tsv) + Common Voice clips -> st"
SPLIT_HELP = "train, dev or test (default: every split found)"
NAME_RE = re.compile(r"^covost_v2\.([^._]+)_([^._]+)(?:\.([A-Za-z_]+))?\.tsv$")
SPLIT_ALIASES = {"validation": "dev", "valid": "dev"}
SPLITS = ("train", "dev", "test")
#: split-column value -> CoVoST 2 split (the official ``get_v2_split``: train = train + train_covost; dev and
#: test are only ``dev`` / ``test``; ``dev_covost`` / ``test_covost`` are in no CoVoST 2 split).
SPLIT_COLUMN = {"train": "train", "train_covost": "train", "dev": "dev", "test": "test"}
#: characters pandas' writer escapes with QUOTE_NONE + escapechar='\\' (escapechar, quotechar, delimiter,
#: line breaks): the only escapes undone in the un-split release file.
_WRITER_ESCAPED = '\\"\t\n\r'
_TOKEN = re.compile(r"\\(.)|\t|[^\\\t]+|\\", re.S)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", type=Path, default=None, metavar="DIR",
                        help="Common Voice clips folder (default: SRC/clips, else clips/ beside the TSV)")
    parser.add_argument("--pair", default=None, metavar="SRC_TGT",
                        help="language pair such as fr_en when SRC is a folder holding several pairs")


def _parse_name(path: Path) -> tuple[str, str, str | None] | None:
    m = NAME_RE.match(path.name)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def locate(src: Path, pair: str | None, split: str | None) -> tuple[list[Path], str, str, bool]:
    """``(tsv files, src_lang, tgt_lang, filter_by_split_column)``."""
    if src.is_file():
        parsed = _parse_name(src)
        if parsed is None:
            if not pair or "_" not in pair:
                raise SiclError(f"{src}: cannot tell the language pair from the file name "
                                "(expected covost_v2.SRC_TGT[.SPLIT].tsv); pass --pair SRC_TGT")
            s, t = pair.split("_", 1)
            return [src], s, t, True
        s, t, file_split = parsed
        if file_split and split and file_split != split:
            raise SiclError(f"{src}: this is the {file_split!r} split but --split {split} was given")
        return [src], s, t, file_split is None
    files = {p: _parse_name(p) for p in sorted(src.glob("covost_v2.*.tsv"))}
    files = {p: v for p, v in files.items() if v is not None}
    pairs = sorted({f"{s}_{t}" for s, t, _ in files.values()})
    if not pairs:
        raise SiclError(f"{src}: no covost_v2.SRC_TGT[.SPLIT].tsv file here")
    if pair is None:
        if len(pairs) > 1:
            raise SiclError(f"{src}: several language pairs ({', '.join(pairs)}); choose one with --pair")
        pair = pairs[0]
    elif pair not in pairs:
        raise SiclError(f"{src}: no TSV for pair {pair} (found: {', '.join(pairs)})")
    s, t = pair.split("_", 1)
    split_files = {sp: p for p, (a, b, sp) in files.items() if f"{a}_{b}" == pair and sp}
    unsplit = src / f"covost_v2.{pair}.tsv"
    if split:
        if split in split_files:
            return [split_files[split]], s, t, False
        if unsplit.is_file():
            return [unsplit], s, t, True
        raise SiclError(f"{src}: no {split!r} split for {pair} (found: {', '.join(split_files) or 'none'})")
    if split_files:
        order = sorted(split_files, key=lambda sp: (SPLITS.index(sp) if sp in SPLITS else 9, sp))
        return [split_files[sp] for sp in order], s, t, False
    return [unsplit], s, t, True


def _clips_folder(src: Path, tsv: Path, given: Path | None) -> Path:
    if given is not None:
        if not given.is_dir():
            raise SiclError(f"{given}: clips folder not found")
        return given
    options = ([src / "clips"] if src.is_dir() else []) + [tsv.parent / "clips"]
    options = list(dict.fromkeys(options))  # SRC/clips and clips/ beside a TSV in SRC are one folder
    for c in options:
        if c.is_dir():
            return c
    raise SiclError(f"no clips folder at {' or '.join(map(str, options))}; pass --clips DIR "
                    "(the Common Voice clips of the source language)")


def _cv_side_info(clips: Path, out: Scan) -> dict[str, tuple[str, str]]:
    """path -> (sentence, client_id) from Common Voice's validated.tsv beside the clips, if there."""
    tsv = clips.parent / "validated.tsv"
    if not tsv.is_file():
        return {}
    out.inputs.append(tsv)
    _, rows = read_tsv(tsv, required=("path", "sentence"))
    return {r["path"]: (text(r["sentence"]), text(r.get("client_id"))) for _, r in rows}


def _fields(line: str, any_escape: bool) -> list[str]:
    """Split one record on unescaped tabs and undo backslash escapes (all of them, or only the ones pandas
    writes). Escaped line breaks become spaces: a manifest text is one line."""
    fields, cur = [], []
    for m in _TOKEN.finditer(line):
        tok = m.group(0)
        if m.group(1) is not None:
            ch = m.group(1)
            if any_escape or ch in _WRITER_ESCAPED:
                cur.append(" " if ch in "\r\n" else ch)
            else:
                cur.append(tok)
        elif tok == "\t":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(tok)
    fields.append("".join(cur))
    return fields


def _ends_escaped(line: str) -> bool:
    """True when the line break after ``line`` is escaped (an odd run of backslashes ends it)."""
    if not line.endswith("\n"):
        return False
    body = line.rstrip("\r\n")
    return (len(body) - len(body.rstrip("\\"))) % 2 == 1


def read_escaped_tsv(path: Path, required: tuple[str, ...], any_escape: bool
                     ) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """``read_tsv`` for a TSV written by pandas with ``escapechar='\\'``: tabs and line breaks may be
    escaped, and escapes are undone (see module doc)."""
    def records(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        for start, line in lines:
            while _ends_escaped(line):  # an escaped line break continues the record on the next line
                nxt = next(lines, None)
                if nxt is None:
                    break
                line += nxt[1]
            yield start, line

    return read_tsv(path, required, split=lambda line: _fields(line, any_escape), join=records)


def scan(src: Path, args: argparse.Namespace) -> Scan:
    split = SPLIT_ALIASES.get(args.split, args.split)
    tsvs, src_lang, tgt_lang, by_column = locate(src, args.pair, split)
    clips = _clips_folder(src, tsvs[0], args.clips)
    out = Scan(inputs=list(tsvs))
    check_not_input(Path(args.out), out)  # before reading: the index named as --out is the first problem
    for tsv in tsvs:
        header, rows = read_escaped_tsv(tsv, ("path", "translation") + (("split",) if by_column else ()),
                                        any_escape=not by_column)
        side = _cv_side_info(clips, out) if "sentence" not in header or "client_id" not in header else {}
        file_split = (_parse_name(tsv) or (None, None, None))[2]
        for line_no, row in rows:
            where = f"{tsv}:{line_no}"
            row_split = file_split
            if by_column:
                value = text(row["split"])
                row_split = SPLIT_COLUMN.get(value)
                if row_split is None:  # dev_covost, test_covost, empty or unknown: in no CoVoST 2 split
                    out.drop(f"with split {value!r} (in no CoVoST 2 split)" if value else "with an empty split")
                    continue
                if split and row_split != split:
                    continue
            rel = text(row["path"])
            translation = text(row["translation"])
            if not rel:
                out.bad_rows.append((where, "empty 'path'"))
                continue
            if not translation:
                out.drop("with an empty translation")
                continue
            sentence, client = side.get(rel, ("", ""))
            sentence = text(row.get("sentence")) or sentence
            client = text(row.get("client_id")) or client
            meta = {"split": row_split} if row_split else {}
            out.add(Example(id=Path(rel).stem, audio=str((clips / rel).resolve()), task="st",
                            target=translation, transcript=sentence or None, lang=src_lang,
                            target_lang=tgt_lang, speaker=client or None, meta=meta), where)
    return out
