"""MMAU test-mini: a JSON list of ``id, audio_id, question, choices, answer, task, category /
sub-category, difficulty, dataset``; ``audio_id`` (``./test-mini-audios/<uuid>.wav``) is relative to
the JSON's folder. Given a folder (e.g. a clone of the MMAU repository, which also holds ``mmau-test.json``,
the test split without answers), its ``*test-mini*.json`` is read."""

from __future__ import annotations

import argparse
from pathlib import Path

from sicl.data.importers._common import Scan
from sicl.data.importers._qa import scan_qa

HELP = "MMAU test-mini JSON (+ test-mini-audios/) -> aqa"
SPLIT_HELP = "pass the JSON of the split you want as SRC"
USES_SPLIT = False
META_KEYS = ("task", "category", "sub-category", "difficulty", "dataset", "split")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """MMAU needs no options of its own."""


def scan(src: Path, args: argparse.Namespace) -> Scan:
    return scan_qa(src, audio_key="audio_id", meta_keys=META_KEYS,
                   patterns=("*test-mini*.json", "mmau*.json", "*.json"), what="MMAU JSON",
                   benchmark="mmau")
