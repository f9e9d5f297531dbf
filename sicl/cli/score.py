"""`sicl score PREDICTIONS.jsonl [...] [--scorer official|mimo-eval|lenient]`: metrics keyed by task, as JSON on
stdout (the object metrics.json holds). The scorer picks whose published rule is applied (docs/metrics.md)."""

from __future__ import annotations

import argparse

from sicl.data.manifest import TASKS
from sicl.errors import SiclError
from sicl.eval.scorers import DEFAULT_SCORER, SCORER_NAMES

#: shown at the end of --help
EXAMPLES = [
    'sicl score runs/eval/zs/predictions.jsonl                       # official: the benchmarks\' own scripts',
    'sicl score runs/eval/zs/predictions.jsonl --scorer mimo-eval    # MiMo-Audio-Eval\'s rules',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", nargs="+", metavar="PREDICTIONS.jsonl",
                        help="predictions file(s): manifest rows plus 'prediction'; several files (e.g. shards of "
                             "one run) are pooled and scored together, and an id may appear only once")
    parser.add_argument("--task", action="append", choices=TASKS, default=None,
                        help="score only this task (repeatable)")
    parser.add_argument("--scorer", choices=SCORER_NAMES, default=DEFAULT_SCORER,
                        help="whose rules: official (each benchmark's own script: MMAU/MMAR string match on the "
                             "whole output, MMSU letter rule, Whisper-normalised WER), mimo-eval "
                             "(MiMo-Audio-Eval's evaluators), lenient (sicl's development rule, not comparable "
                             "with published numbers) (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from sicl.data.manifest import row_location
    from sicl.eval.metrics import dumps, read_predictions, score_rows

    rows = []
    seen: dict[object, str] = {}
    for path in args.predictions:
        for row in read_predictions(path):
            if row["id"] in seen:
                raise SiclError(f"{row_location(path, row['id'])}: id {row['id']!r} is also in "
                                f"{row_location(seen[row['id']], row['id'])} (files are pooled; "
                                "score separate runs with separate commands)")
            seen[row["id"]] = path
            rows.append(row)
    if args.task:
        rows = [r for r in rows if r["task"] in args.task]
    if not rows:
        what = f" of task {'/'.join(args.task)}" if args.task else ""
        raise SiclError(f"no prediction rows{what} in {', '.join(args.predictions)}")
    print(dumps(score_rows(rows, args.scorer)))
    return 0
