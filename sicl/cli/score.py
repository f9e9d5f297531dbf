"""`sicl score PREDICTIONS.jsonl [...]`: metrics keyed by task, as JSON on stdout (the object metrics.json holds)."""

from __future__ import annotations

import argparse

from sicl.data.manifest import TASKS
from sicl.errors import SiclError

#: shown at the end of --help
EXAMPLES = [
    'sicl score runs/eval/zs/predictions.jsonl',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", nargs="+", metavar="PREDICTIONS.jsonl",
                        help="predictions file(s): manifest rows plus 'prediction'; several files (e.g. shards of "
                             "one run) are pooled and scored together, and an id may appear only once")
    parser.add_argument("--task", action="append", choices=TASKS, default=None,
                        help="score only this task (repeatable)")


def run(args: argparse.Namespace) -> int:
    from sicl.eval.metrics import dumps, read_predictions, score_rows

    rows = []
    seen: dict[object, str] = {}
    for path in args.predictions:
        for row in read_predictions(path):
            if row["id"] in seen:
                raise SiclError(f"{path}: id {row['id']!r} is also in {seen[row['id']]} (files are pooled; "
                                "score separate runs with separate commands)")
            seen[row["id"]] = path
            rows.append(row)
    if args.task:
        rows = [r for r in rows if r["task"] in args.task]
    if not rows:
        what = f" of task {'/'.join(args.task)}" if args.task else ""
        raise SiclError(f"no prediction rows{what} in {', '.join(args.predictions)}")
    print(dumps(score_rows(rows)))
    return 0
