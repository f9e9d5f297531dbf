"""`sicl demo --out DIR [--size small|default] [--fresh] [key=value ...]`: the SICL-AT study on the
embedded world (synthetic speech + the shipped tiny-omni), end to end: zero-shot, vanilla ICL, SICL-AT1/2/3,
direct fine-tuning, and a report. The study is data: ``configs/demo/study.yaml`` (see sicl/study.py).
Finished stages are reused on a re-run unless ``--fresh``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: shown at the end of --help
EXAMPLES = [
    'sicl demo --out runs/demo',
    'sicl demo --out runs/demo-small --size small eval_limit=20',
    'sicl demo --out runs/demo-vllm --backend vllm   # run from .venv-vllm (make vllm-env)',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default: %(default)s)")
    parser.add_argument("--config", type=Path, default=None,
                        help="study config (default: configs/demo/study.yaml of this checkout)")
    parser.add_argument("--size", choices=["small", "default"], default=None,
                        help="synthetic world size (default: the config's; small: seconds, for tests)")
    parser.add_argument("--seed", type=int, default=None, help="world seed (default: the config's)")
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (same as the key threads=N)")
    parser.add_argument("--backend", default=None,
                        help="evaluation engine, hf or vllm (same as the key backend=; vllm: run from the vLLM "
                             "environment, make vllm-env)")
    parser.add_argument("--fresh", action="store_true", help="delete previous results in --out first")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="study config overrides, values as YAML (e.g. eval_limit=20 train_overrides=[max_steps=5])")


def run(args: argparse.Namespace) -> int:
    from sicl.errors import ConfigError
    from sicl.study import run_study

    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    overrides = list(args.overrides)
    if args.threads is not None:
        overrides.append(f"threads={args.threads}")
    if args.backend is not None:
        overrides.append(f"backend={args.backend}")
    if args.size:
        overrides.append(f"world_size={args.size}")
    if args.seed is not None:
        overrides.append(f"world_seed={args.seed}")
    from sicl.guard import output_lock, stop_on_signals

    with output_lock(args.out, "sicl demo"), stop_on_signals():
        summary = run_study(args.out, args.config, overrides, fresh=args.fresh, workers=args.workers)
    for t in summary.get("targets", []):
        print(f"      {t['text']}")
    print(f"sicl demo: report in {args.out / 'report.md'} ({summary['wall_seconds']:.0f} s, "
          f"peak RSS {summary['peak_rss_mb']:.0f} MB)")
    return 0
