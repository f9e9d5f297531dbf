"""`sicl prepare CORPUS SRC --out OUT.jsonl`: import a corpus in its native layout into a manifest.

Each corpus is a sub-command with its own options (``sicl prepare myst --help``); the importers live in
:mod:`sicl.data.importers` and docs/importers.md describes every layout and field mapping.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sicl.data.importers import IMPORTERS, build_parser, get_importer, run_import
from sicl.errors import SiclError

#: shown at the end of --help
EXAMPLES = [
    'sicl prepare commonvoice ~/cv-corpus/en --split test --out data/cv-test.jsonl',
    'sicl prepare myst ~/myst --split development --out data/myst-dev.jsonl',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="corpus", metavar="CORPUS", required=True,
                                title="corpora", description="see docs/importers.md for each layout")
    for name in IMPORTERS:
        mod = get_importer(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        build_parser(name, p)


def run(args: argparse.Namespace) -> int:
    from sicl.data.importers._common import check_max_seconds, check_out

    # Checked before anything is read or decoded, each as one line (no traceback).
    check_max_seconds(args.max_seconds)
    check_out(Path(args.out))
    mod = get_importer(args.corpus)
    if args.split and not getattr(mod, "USES_SPLIT", True):
        why = mod.SPLIT_HELP
        if why.startswith("not used"):  # "not used (reason)" -> "reason"
            why = why.removeprefix("not used").strip().removeprefix("(").removesuffix(")")
        raise SiclError(f"--split is not used by the {args.corpus} importer" + (f" ({why})" if why else ""))
    run_import(args, args.corpus)
    return 0
