"""`sicl train CONFIG.yaml [key=value ...] [--resume]`: SICL-AT or direct fine-tuning (LoRA).

Also runs under ``accelerate launch [--config_file configs/accelerate/X.yaml] -m sicl train ...`` (DDP,
DeepSpeed ZeRO-2, FSDP). The output folder gets ``adapter_config.json`` + ``adapter_model.safetensors``,
``config.yaml`` (resolved), ``log_history.jsonl``, ``run.json``, TensorBoard logs and checkpoints. Without
``--resume`` an ``output_dir`` that already holds a run is refused (one folder, one run). See docs/training.md.
"""

from __future__ import annotations

import argparse

from sicl.cli import threads_arg
from sicl.config import field_help

#: shown at the end of --help
EXAMPLES = [
    'sicl train configs/demo/sicl-at1.yaml',
    'sicl train configs/demo/sicl-at1.yaml max_steps=50 output_dir=runs/train/a --resume',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sicl.train.sicl_at_config import TrainConfig

    keys = ", ".join(field_help(TrainConfig))
    parser.add_argument("config", metavar="CONFIG.yaml", help="training config (configs/demo, configs/paper)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"config overrides, values as YAML (keys: {keys}; nested: lora.r=16)")
    parser.add_argument("--threads", type=threads_arg, default=None,
                        help="torch CPU threads while training, 0: torch's default (same as the key threads=N)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint-N in output_dir (same config); without it an "
                             "output_dir that already holds a run is refused")


def run(args: argparse.Namespace) -> int:
    from sicl.config import load_config
    from sicl.guard import output_lock, stop_on_signals
    from sicl.train.sicl_at import train
    from sicl.train.sicl_at_config import TrainConfig

    extra = [f"threads={args.threads}"] if args.threads is not None else []
    cfg = load_config(TrainConfig, args.config, [*args.overrides, *extra])
    with output_lock(cfg.output_dir, "sicl train"), stop_on_signals():
        out = train(cfg, resume=args.resume)
    print(f"sicl train: adapter and logs in {out}")
    return 0
