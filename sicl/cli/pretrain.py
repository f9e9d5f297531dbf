"""`sicl pretrain [CONFIG.yaml] [key=value ...] [--resume]`: pretrain tiny-omni (``sicl.pretrain``).

Full-parameter training of the project's tiny Qwen2.5-Omni thinker on freshly synthesised speech; the run folder
(``out_dir``) gets ``checkpoint/`` (resumable), ``final/`` (the model), ``metrics.json`` and ``train.log``.
``python -m sicl.pretrain`` is the same command. See docs/tiny-omni.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sicl.cli import threads_arg
from sicl.config import field_help

#: shown at the end of --help
EXAMPLES = [
    'sicl pretrain configs/pretrain/tiny-omni.yaml max_minutes=60',
    'sicl pretrain configs/pretrain/tiny-omni.yaml --resume max_minutes=120',
    'sicl pretrain configs/pretrain/tiny-omni-v2.yaml init=tiny-omni out_dir=runs/pretrain-v3',
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sicl.pretrain.train import PretrainConfig

    keys = ", ".join(field_help(PretrainConfig))
    parser.add_argument("config", nargs="?", default=None, metavar="CONFIG.yaml",
                        help="pretraining config (configs/pretrain); without it, the defaults and key=value")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"config overrides, values as YAML (keys: {keys})")
    parser.add_argument("--threads", type=threads_arg, default=None,
                        help="torch CPU threads for training, 0: torch's default (same as the key threads=N)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from out_dir/checkpoint (same as the key resume=true) with the run's own "
                             "settings (out_dir/config.yaml; max_minutes, max_steps and operational keys such as "
                             "threads, device, workers may change: RESUME_SAFE_KEYS in sicl/pretrain/train.py); "
                             "without it, an out_dir that holds a run is refused")


def run(args: argparse.Namespace) -> int:
    from sicl.config import load_config
    from sicl.guard import output_lock
    from sicl.pretrain.train import PretrainConfig, train

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not Path(config).exists():
        config, overrides = None, [config, *overrides]  # no config file: the first word is an override
    overrides += [f"threads={args.threads}"] * (args.threads is not None) + ["resume=true"] * args.resume
    cfg = load_config(PretrainConfig, config, overrides)
    with output_lock(cfg.out_dir, "sicl pretrain"):
        metrics = train(cfg)
    print(f"sicl pretrain: model in {Path(cfg.out_dir) / 'final'} (step {metrics['train']['step']}, "
          f"{metrics['train']['minutes']:.1f} min)")
    return 0
