"""Common Voice: ``<lang>/clips/*.mp3`` plus ``validated.tsv``, ``train.tsv``, ``dev.tsv``, ``test.tsv``...

Handles CV 15.0+ columns (``sentence_id``, ``sentence_domain``) and older releases (no such columns,
``accent`` instead of ``accents``, paths without the ``.mp3`` suffix in the earliest TSV releases).

The TSVs are plain tab-separated text without quoting or escapes (released files hold raw, even unbalanced,
quote marks): a sentence's quotes are its own. A few released sentences hold nothing but quote marks (``""``, left when
markup was stripped upstream); such rows are left out like empty ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sicl.data.importers._common import Scan, check_not_input, pick_meta, read_tsv, text
from sicl.data.manifest import Example
from sicl.errors import SiclError

HELP = "Common Voice language folder (clips/*.mp3 + validated/train/dev/test.tsv) -> asr"
SPLIT_HELP = "which TSV to read: validated (default), train, dev, test, other, invalidated, ..."
META_KEYS = ("age", "gender", "accents", "variant", "sentence_domain")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", type=Path, default=None, metavar="DIR",
                        help="folder of the mp3 clips (default: clips/ beside the TSV)")


def locate(src: Path, split: str | None) -> Path:
    """The TSV to read: SRC itself when it is a file, else ``SRC/<split>.tsv``."""
    if src.is_file():
        return src
    split = split or "validated"
    tsv = src / (split if split.endswith(".tsv") else f"{split}.tsv")
    if not tsv.is_file():
        have = ", ".join(sorted(p.stem for p in src.glob("*.tsv"))) or "none"
        raise SiclError(f"{src}: no {tsv.name} (TSVs here: {have})")
    return tsv


def scan(src: Path, args: argparse.Namespace) -> Scan:
    tsv = locate(src, args.split)
    clips = args.clips or tsv.parent / "clips"
    if not clips.is_dir():
        raise SiclError(f"{clips}: clips folder not found (pass --clips DIR)")
    folder_lang = tsv.parent.name
    out = Scan(inputs=[tsv])
    check_not_input(Path(args.out), out)  # before reading: the index named as --out is the first problem
    _, rows = read_tsv(tsv, required=("path", "sentence"))
    for line_no, row in rows:
        where = f"{tsv}:{line_no}"
        rel = text(row["path"])
        sentence = text(row["sentence"])
        if not rel:
            out.bad_rows.append((where, "empty 'path'"))
            continue
        if not sentence:
            out.drop("with an empty sentence")
            continue
        if not any(ch.isalnum() for ch in sentence):  # e.g. '""': markup stripped upstream left only quotes
            out.drop("with a sentence of punctuation only")
            continue
        audio = clips / rel
        if not audio.suffix and not audio.exists():  # earliest TSV releases name clips without ".mp3"
            audio = audio.with_name(audio.name + ".mp3")
        if not row.get("accents") and row.get("accent"):
            row["accents"] = row["accent"]
        meta = pick_meta(row, META_KEYS)
        meta["split"] = tsv.stem
        out.add(Example(id=Path(rel).stem, audio=str(audio.resolve()), task="asr", target=sentence,
                        lang=text(row.get("locale")) or folder_lang, speaker=text(row.get("client_id")) or None,
                        meta=meta), where)
    return out
