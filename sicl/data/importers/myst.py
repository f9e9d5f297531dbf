"""MyST children's speech: ``SRC/data/<split>/<student>/<session>/<utt>.flac`` with ``<utt>.trn`` beside
each clip. Transcripts carry markup for noises, side speech and unintelligible words, which is removed.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sicl.data.importers._common import Scan
from sicl.data.manifest import Example
from sicl.errors import SiclError

HELP = "MyST (data/<split>/<student>/<session>/*.flac + .trn) -> asr (markup removed)"
SPLIT_HELP = "train, development (alias: dev) or test (default: all three)"
SPLITS = ("train", "development", "test")
SPLIT_ALIASES = {"dev": "development", "validation": "development"}

# Innermost groups first, repeated until nothing changes, so nested markup such as "(<NOISE>)" goes too.
_GROUPS = re.compile(r"<[^<>]*>|\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}")
# Filler tokens, one at a time: "+um", "+uh", also "+um+". A '+' never pairs with another token's '+', so
# "+um the magnet +uh sticks" keeps "the magnet" and "sticks".
_FILLER = re.compile(r"\+[^+\s]+\+?")
# Control characters (C0, DEL, C1), byte-order marks and replacement characters never belong in a target.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ufeff\ufffd]")
# What may be left behind: stray '*' and unmatched bracket characters (never part of a spoken word).
_STRAY = re.compile(r"[*<>()\[\]{}+]")


def clean_transcript(raw: str) -> str:
    """Remove MyST markup: ``<...>`` tags, ``(...)`` incl. ``(*)``, ``[...]``, ``{...}``, ``+um``-style
    filler tokens (each on its own; ``+um+`` too), stray ``*``; control characters become spaces; collapse
    whitespace. An utterance that held only markup becomes ``''``."""
    text = _CONTROL.sub(" ", raw)
    while True:
        new = _GROUPS.sub(" ", text)
        if new == text:
            break
        text = new
    text = _FILLER.sub(" ", text)
    return " ".join(_STRAY.sub(" ", text).split())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-seconds", type=float, default=0.0, metavar="S",
                        help="leave out utterances shorter than S seconds (common choice: 0.5)")
    parser.add_argument("--min-words", type=int, default=0, metavar="N",
                        help="leave out utterances with fewer than N words after cleaning (common: 3)")


def _splits(root: Path, split: str | None) -> list[Path]:
    present = [s for s in SPLITS if (root / s).is_dir()]
    if split is None:
        if not present:
            raise SiclError(f"{root}: no {'/'.join(SPLITS)} folder (expected SRC/data/<split>/...; SRC is "
                            "the myst_child_conv_speech folder or its data/)")
        return [root / s for s in present]
    split = SPLIT_ALIASES.get(split, split)
    if not (root / split).is_dir():
        raise SiclError(f"{root}: no split folder {split!r} (found: {', '.join(present) or 'none'})")
    return [root / split]


def _read_trn(path: Path) -> str:
    """UTF-8 (a BOM is dropped), else Windows-1252 (a few old transcripts: ``\\x92`` is a right quote, not
    a C1 control); control characters are removed by :func:`clean_transcript`."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SiclError(f"{path}: cannot read ({e.strerror})") from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # the 5 undefined bytes become U+FFFD, then spaces


def _by_suffix(folder: Path, suffix: str) -> list[Path]:
    """Files below ``folder`` whose suffix is ``suffix`` in any case (``.flac``, ``.FLAC``), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() == suffix and p.is_file())


def scan(src: Path, args: argparse.Namespace) -> Scan:
    if src.is_file():
        raise SiclError(f"{src}: give the MyST folder (the one holding data/), not a file")
    if not (src / "data").is_dir() and (src / "myst_child_conv_speech").is_dir():
        src = src / "myst_child_conv_speech"  # the LDC extraction root holds the corpus folder
    root = src / "data" if (src / "data").is_dir() else src
    out = Scan(min_seconds=max(0.0, args.min_seconds))
    for split_dir in _splits(root, args.split):
        trns = _by_suffix(split_dir, ".trn")
        have_trn = {p.with_suffix("") for p in trns}
        clips = {f.with_suffix(""): f for f in _by_suffix(split_dir, ".flac")}
        orphans = sum(1 for stem in clips if stem not in have_trn)
        if orphans:
            out.drop("clips without a .trn transcript", orphans)
        out.inputs += trns
        for trn in trns:
            rel = trn.relative_to(split_dir).parts
            transcript = clean_transcript(_read_trn(trn))
            if not transcript:
                out.drop("empty after removing markup")
                continue
            if len(transcript.split()) < args.min_words:
                out.drop(f"under {args.min_words} words")
                continue
            meta = {"split": split_dir.name}
            if len(rel) >= 3:
                meta["session"] = rel[1]
            audio = clips.get(trn.with_suffix(""), trn.with_suffix(".flac"))
            out.add(Example(id=trn.stem, audio=str(audio.resolve()), task="asr",
                            target=transcript, lang="en", speaker=rel[0] if len(rel) >= 2 else None,
                            meta=meta), str(trn))
    return out
