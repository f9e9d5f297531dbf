"""`sicl report RUN_DIR... --out DIR`: results.csv, report.md and PNG plots from evaluation runs.

Every folder below the RUN_DIRs that holds ``run.json`` and ``metrics.json`` (written by ``sicl eval``) is a run;
sweeps (``k=N/`` subfolders) are found the same way. Files, columns, plots and rules: docs/report.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sicl.report.build import DEFAULT_TITLE, build_report
from sicl.report.collect import ReportError
from sicl.report.reading import DEFAULT_MAIN_K, Target

#: shown at the end of --help
EXAMPLES = [
    'sicl report runs/eval/* --out runs/report',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="evaluation run folders, or folders holding many of them")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="folder for report.md, results.csv and plots/")
    parser.add_argument("--title", default=DEFAULT_TITLE, help="report title (default: %(default)r)")
    parser.add_argument("--k", type=int, default=None, metavar="N",
                        help=f"headline k (default: {DEFAULT_MAIN_K}): each method at this k, or at its nearest "
                             "run k (a method run only at k=0, such as zero-shot, is compared at k=0)")
    parser.add_argument("--note", action="append", default=[], metavar="TEXT",
                        help="a line for the report (repeatable): lines starting with MET / NOT MET / EXEMPT / not "
                             "evaluated go to its Targets section, others to Notes")
    parser.add_argument("--targets", type=Path, default=None, metavar="FILE.json",
                        help="JSON list of targets to check in the reading section (see docs/report.md)")


def _load_targets(path: Path | None) -> list[Target]:
    """The targets of ``--targets FILE.json``; any problem is one line naming the file, the entry and the key."""
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ReportError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ReportError(f"{path}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                          "save it as UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise ReportError(f"{path}: expected a JSON list of target objects, got {type(data).__name__}")
    targets = []
    for i, d in enumerate(data):
        try:
            targets.append(Target.from_dict(d))
        except ReportError as e:
            raise ReportError(f"{path}: entry [{i}]: {e}") from None
    return targets


def run(args: argparse.Namespace) -> int:
    if args.k is not None and args.k < 0:
        raise ReportError("--k must be >= 0")
    targets = _load_targets(args.targets)
    written = build_report(args.run_dirs, args.out, title=args.title, main_k=args.k, notes=args.note,
                           targets=targets,
                           warn=lambda m: print(f"sicl report: warning: {m}", file=sys.stderr))
    print(f"wrote {written['report']}, {written['results']} and {len(written['plots'])} plot(s) "
          f"in {args.out / 'plots'}")
    return 0
