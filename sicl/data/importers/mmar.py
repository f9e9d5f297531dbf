"""MMAR: ``MMAR-meta.json`` (a JSON list, or JSON Lines) of ``id, audio_path, question, choices, answer,
modality, category, sub-category``; ``audio_path`` is relative to the JSON's folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from sicl.data.importers._common import Scan
from sicl.data.importers._qa import scan_qa

HELP = "MMAR (MMAR-meta.json + audio) -> aqa"
SPLIT_HELP = "MMAR has a single set"
USES_SPLIT = False
META_KEYS = ("modality", "category", "sub-category", "language", "source")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """MMAR needs no options of its own."""


def scan(src: Path, args: argparse.Namespace) -> Scan:
    return scan_qa(src, audio_key="audio_path", meta_keys=META_KEYS,
                   patterns=("MMAR-meta.json", "MMAR-meta.jsonl", "*.json", "*.jsonl"), what="MMAR meta",
                   benchmark="mmar", lang_key="language")
