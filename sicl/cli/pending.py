"""Placeholder for commands whose implementation has not landed yet: says so and exits 2."""

from __future__ import annotations

import argparse
import sys

ISSUES = {"demo": 8}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    issue = ISSUES.get(args.command)
    where = f" (tracked in issue #{issue})" if issue else ""
    print(f"sicl {args.command}: not implemented yet{where}", file=sys.stderr)
    return 2
