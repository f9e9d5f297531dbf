"""LibriSpeech (OpenSLR 12), as distributed: ``LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac``
with one ``<speaker>-<chapter>.trans.txt`` per chapter (``<utterance id> <TRANSCRIPT>`` per line, upper case) and
``SPEAKERS.TXT`` (``ID | SEX | SUBSET | MINUTES | NAME``, ``;`` comments) at the root.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sicl.data.importers._common import Scan, utf8_lines
from sicl.data.manifest import Example
from sicl.errors import SiclError

HELP = "LibriSpeech (<split>/<speaker>/<chapter>/*.flac + *.trans.txt) -> asr"
SPLIT_HELP = ("a subset folder: test-clean, test-other, dev-clean, dev-other, train-clean-100, ... (default: every "
              "one present; not needed when SRC is a subset folder)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lowercase", action="store_true",
                        help="write the transcripts in lower case (as distributed they are upper case; scoring "
                             "normalises case either way, but demonstrations show the model what they hold)")


def _is_subset(folder: Path) -> bool:
    return any(folder.glob("*/*/*.trans.txt"))


def _subsets(src: Path, split: str | None) -> list[Path]:
    if src.is_file():
        raise SiclError(f"{src}: give the LibriSpeech folder or one of its subsets, not a file")
    if not any(src.glob("*/*/*/*.trans.txt")) and (src / "LibriSpeech").is_dir():
        src = src / "LibriSpeech"  # the folder the archives were extracted into
    if split:
        if (src / split).is_dir():
            return [src / split]
        if src.name == split and _is_subset(src):
            return [src]
        have = ", ".join(sorted(p.name for p in src.iterdir() if p.is_dir() and _is_subset(p))) or "none"
        raise SiclError(f"{src}: no subset folder {split!r} (found: {have})")
    if _is_subset(src):
        return [src]
    found = sorted(p for p in src.iterdir() if p.is_dir() and _is_subset(p))
    if not found:
        raise SiclError(f"{src}: no LibriSpeech subset here (expected <subset>/<speaker>/<chapter>/*.trans.txt)")
    return found


def _speakers(root: Path, inputs: list[Path]) -> dict[str, str]:
    """speaker id -> sex (``f`` / ``m``) from SPEAKERS.TXT, if the file is there; malformed lines are ignored
    (the file is documentation, not an index: a bad line must not stop an import)."""
    for folder in (root, root.parent):
        path = folder / "SPEAKERS.TXT"
        if path.is_file():
            inputs.append(path)
            out = {}
            # a byte that is not UTF-8 (in a reader's name, say) costs only that name: the columns used are ASCII
            for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
                if line.startswith(";"):
                    continue
                parts = [p.strip() for p in line.split("|")]
                if len(parts) >= 2 and parts[0].isdigit() and parts[1].lower() in ("f", "m"):
                    out[parts[0]] = parts[1].lower()
            return out
    return {}


def scan(src: Path, args: argparse.Namespace) -> Scan:
    subsets = _subsets(src, args.split)
    out = Scan()
    sexes = _speakers(subsets[0].parent, out.inputs)
    for subset in subsets:
        for trans in sorted(subset.glob("*/*/*.trans.txt")):
            speaker, chapter = trans.parent.parent.name, trans.parent.name
            out.inputs.append(trans)
            with open(trans, "rb") as fh:
                for line_no, line in utf8_lines(fh, trans):
                    line = line.strip()
                    if not line:
                        continue
                    where = f"{trans}:{line_no}"
                    utt, _, text = line.replace("\t", " ").partition(" ")
                    text = " ".join(text.split())
                    if not text:  # LibriSpeech has no empty utterances: a truncated or damaged line
                        raise SiclError(f"{where}: utterance id {utt!r} with no transcript (a line is "
                                        "'<utterance id> <TRANSCRIPT>')")
                    if not utt.startswith(f"{speaker}-{chapter}-"):
                        out.bad_rows.append((where, f"utterance id {utt!r} is not of speaker {speaker}, chapter "
                                                    f"{chapter}"))
                        continue
                    meta = {"split": subset.name, "chapter": chapter}
                    if speaker in sexes:
                        meta["gender"] = sexes[speaker]
                    out.add(Example(id=utt, audio=str((trans.parent / f"{utt}.flac").resolve()), task="asr",
                                    target=text.lower() if args.lowercase else text, lang="en", speaker=speaker,
                                    meta=meta), where)
    return out
