"""CoVoST 2: ``covost_v2.{src}_{tgt}.{split}.tsv`` (``path, sentence, translation, client_id``) or the
un-split release ``covost_v2.{src}_{tgt}.tsv`` with a ``split`` column, plus the Common Voice clips.

The un-split release may lack ``sentence``/``client_id`` (CoVoST's own script joins them from Common
Voice's ``validated.tsv``); when a ``validated.tsv`` sits beside the clips folder we do the same join.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sicl.data.importers._common import Scan, read_tsv, text
from sicl.data.manifest import Example
from sicl.errors import SiclError

HELP = "CoVoST 2 TSVs (covost_v2.SRC_TGT[.SPLIT].tsv) + Common Voice clips -> st"
SPLIT_HELP = "train, dev or test (default: every split found)"
NAME_RE = re.compile(r"^covost_v2\.([^._]+)_([^._]+)(?:\.([A-Za-z_]+))?\.tsv$")
SPLIT_ALIASES = {"validation": "dev", "valid": "dev"}
SPLITS = ("train", "dev", "test")


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
    for c in options:
        if c.is_dir():
            return c
    raise SiclError(f"no clips folder at {' or '.join(map(str, options))}; pass --clips DIR "
                    "(the Common Voice clips of the source language)")


def _cv_side_info(clips: Path) -> dict[str, tuple[str, str]]:
    """path -> (sentence, client_id) from Common Voice's validated.tsv beside the clips, if there."""
    tsv = clips.parent / "validated.tsv"
    if not tsv.is_file():
        return {}
    _, rows = read_tsv(tsv, required=("path", "sentence"))
    return {r["path"]: (text(r["sentence"]), text(r.get("client_id"))) for _, r in rows}


def scan(src: Path, args: argparse.Namespace) -> Scan:
    split = SPLIT_ALIASES.get(args.split, args.split)
    tsvs, src_lang, tgt_lang, by_column = locate(src, args.pair, split)
    clips = _clips_folder(src, tsvs[0], args.clips)
    out = Scan()
    for tsv in tsvs:
        header, rows = read_tsv(tsv, required=("path", "translation") + (("split",) if by_column else ()))
        side = _cv_side_info(clips) if "sentence" not in header or "client_id" not in header else {}
        file_split = (_parse_name(tsv) or (None, None, None))[2]
        for line_no, row in rows:
            where = f"{tsv}:{line_no}"
            row_split = file_split
            if by_column:
                # CoVoST marks extra training rows as "train_covost"; they belong to train.
                row_split = text(row["split"]).removesuffix("_covost")
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
