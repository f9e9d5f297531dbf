"""Corpus importers: each turns one corpus, in the layout it is distributed in, into a sicl manifest.

Every importer module defines ``HELP`` (one line), ``SPLIT_HELP`` (and ``USES_SPLIT = False`` when
``--split`` means nothing to it), ``add_arguments(parser)`` for its own
options and ``scan(src, args) -> Scan`` which reads the corpus index; decoding, checking and writing are
shared (:func:`sicl.data.importers._common.finish`). Modules are imported on demand.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from sicl.errors import SiclError

#: corpus name -> module. See docs/importers.md for each corpus's layout and field mapping.
IMPORTERS: dict[str, str] = {
    "commonvoice": "sicl.data.importers.commonvoice",
    "covost2": "sicl.data.importers.covost2",
    "mmsu": "sicl.data.importers.mmsu",
    "mmau": "sicl.data.importers.mmau",
    "mmar": "sicl.data.importers.mmar",
    "myst": "sicl.data.importers.myst",
    "fleurs": "sicl.data.importers.fleurs",
    "librispeech": "sicl.data.importers.librispeech",
    "folder": "sicl.data.importers.folder",
    "hf": "sicl.data.importers.hf",
    "lhotse": "sicl.data.importers.lhotse_cuts",
}


def get_importer(name: str) -> ModuleType:
    """The importer module for corpus ``name``."""
    if name not in IMPORTERS:
        raise SiclError(f"unknown corpus {name!r} (known: {', '.join(IMPORTERS)})")
    return importlib.import_module(IMPORTERS[name])


def build_parser(name: str, parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the common and the corpus-specific options of importer ``name`` to ``parser``."""
    from sicl.data.importers._common import add_common_arguments

    mod = get_importer(name)
    parser = parser or argparse.ArgumentParser(prog=f"sicl prepare {name}")
    add_common_arguments(parser, mod.SPLIT_HELP)
    mod.add_arguments(parser)
    return parser


def run_import(args: argparse.Namespace, name: str) -> int:
    """Run importer ``name`` with parsed options; returns the number of rows written."""
    from sicl.data.importers._common import Scan, check_jobs, check_max_seconds, check_not_input, finish

    check_max_seconds(args.max_seconds)
    check_jobs(args.jobs)
    src = Path(args.src)
    if not src.exists():
        raise SiclError(f"{src}: no such file or folder")
    mod = get_importer(name)
    if args.split and not getattr(mod, "USES_SPLIT", True):
        raise SiclError(f"--split is not used by the {name} importer ({mod.SPLIT_HELP})")
    if src.is_file():  # the commonest slip (`--out` = the index given as SRC), refused before any reading
        check_not_input(Path(args.out), Scan(inputs=[src]))
    scan = mod.scan(src, args)
    return finish(scan, Path(args.out), max_seconds=args.max_seconds, strict=args.strict,
                  jobs=args.jobs, id_prefix=args.id_prefix, source=str(src))


def prepare(name: str, src: str | Path, out: str | Path, **options: Any) -> int:
    """Python entry point: ``prepare("myst", "/data/myst", "myst.jsonl", split="test", min_words=3)``.
    Options are the command-line options with ``_`` for ``-``; returns the number of rows written."""
    args = build_parser(name).parse_args([str(src), "--out", str(out)])
    for key, value in options.items():
        if not hasattr(args, key):
            raise SiclError(f"importer {name!r} has no option {key!r}")
        setattr(args, key, value)
    return run_import(args, name)
