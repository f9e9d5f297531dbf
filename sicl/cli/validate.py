"""`sicl validate MANIFEST`: one line per problem, a summary, exit 1 if anything is wrong."""

from __future__ import annotations

import argparse
import sys

from sicl.data.audio import DEFAULT_MAX_SECONDS
from sicl.data.validate import validate_manifest

#: shown at the end of --help
EXAMPLES = [
    'sicl validate data/cv-test.jsonl --require-target',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", nargs="?", default=None, metavar="MANIFEST", help="JSON Lines manifest to check")
    parser.add_argument("--data", default=None, metavar="M.jsonl", help="the manifest, as in the other commands")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help="longest allowed clip in seconds (default: %(default)s, the Qwen2.5-Omni window)")
    parser.add_argument("--no-audio", action="store_true", help="check rows only, do not decode audio")
    parser.add_argument("--require-target", action="store_true",
                        help="every row must carry 'target' (training sets, pools, scoring)")


def run(args: argparse.Namespace) -> int:
    from sicl.data.validate import check_max_seconds
    from sicl.errors import SiclError

    check_max_seconds(args.max_seconds)  # before anything is read: nan would pass every clip, -1 fail every one
    if (args.manifest is None) == (args.data is None):
        raise SiclError("give the manifest once: sicl validate M.jsonl (or --data M.jsonl)")
    args.manifest = args.manifest or args.data
    report = validate_manifest(args.manifest, max_seconds=args.max_seconds, check_audio=not args.no_audio,
                               require_target=args.require_target, progress=sys.stderr.isatty())
    for p in report.problems:
        # line 0 is the file as a whole (e.g. no rows at all): no line to name
        print(f"{args.manifest}: {p.message}" if p.line == 0 else f"{args.manifest}:{p}")
    if report.ok:
        print(f"{args.manifest}: OK, {report.rows} rows")
        return 0
    if report.rows == 0:
        print(f"{args.manifest}: {len(report.problems)} problem(s), no rows to check")
        return 1
    bad_lines = len({p.line for p in report.problems if p.line > 0})
    print(f"{args.manifest}: {len(report.problems)} problem(s) on {bad_lines} of {report.rows} rows")
    return 1
