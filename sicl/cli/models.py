"""`sicl models`: list built-in models (path, parameters, size, whether weights are present), install a trained
model folder as a built-in, or size a GPU for a Qwen2.5-Omni config without its weights (``--estimate``)."""

from __future__ import annotations

import argparse
from pathlib import Path

#: shown at the end of --help
EXAMPLES = [
    'sicl models',
    'sicl models --install runs/pretrain-tiny-omni/final',
    'sicl models --estimate qwen2.5-omni-7b            # parameters, bf16 weights, LoRA, memory per episode',
    'sicl models --estimate /path/to/Qwen2.5-Omni-3B --k 3 --clip-seconds 30 --json',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--install", metavar="DIR", help="copy a trained model folder into the zoo as --name")
    parser.add_argument("--name", default=None, help="built-in name for --install (default tiny-omni)")
    parser.add_argument("--estimate", metavar="CONFIG",
                        help="size a Qwen2.5-Omni thinker without its weights: qwen2.5-omni-7b, qwen2.5-omni-3b, a "
                             "model folder or a config.json (parameters, bf16 weights, LoRA parameters, memory of "
                             "one training episode and of generation; see sicl/models/estimate.py)")
    # defaults are filled in by run(), so an --estimate option given without --estimate is an error, not ignored
    parser.add_argument("--k", type=int, default=None, help="demonstrations per episode for --estimate (default 3)")
    parser.add_argument("--clip-seconds", type=float, default=None,
                        help="length of every clip for --estimate (default 30)")
    parser.add_argument("--lora-r", type=int, default=None, help="LoRA rank for --estimate (default 8)")
    parser.add_argument("--lora-dropout", type=float, default=None,
                        help="LoRA dropout for --estimate (default 0.05, configs/paper; the demo configs use 0)")
    parser.add_argument("--no-measure", action="store_true",
                        help="--estimate without measuring activations (skips about 30 s of CPU work)")
    parser.add_argument("--json", action="store_true", help="--estimate as JSON")


#: options of --estimate and their defaults
ESTIMATE_DEFAULTS = {"k": 3, "clip_seconds": 30.0, "lora_r": 8, "lora_dropout": 0.05, "no_measure": False,
                     "json": False}


def run(args: argparse.Namespace) -> int:
    import math

    from sicl.errors import SiclError
    from sicl.models import zoo

    def flag(dest: str) -> str:
        return "--" + dest.replace("_", "-")

    given = [flag(d) for d in ESTIMATE_DEFAULTS if getattr(args, d) is not None and getattr(args, d) is not False]
    if args.estimate and args.install:
        raise SiclError("--estimate and --install are separate tasks: give one")
    if given and not args.estimate:
        raise SiclError(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} with --estimate CONFIG")
    if args.name is not None and not args.install:
        raise SiclError("--name only applies with --install DIR")
    if args.estimate:
        from sicl.models.estimate import estimate, format_estimate, to_json

        for dest, default in ESTIMATE_DEFAULTS.items():
            if getattr(args, dest) is None:
                setattr(args, dest, default)
        if args.k < 0:
            raise SiclError(f"--k must be >= 0, got {args.k}")
        if not (math.isfinite(args.clip_seconds) and args.clip_seconds > 0):
            raise SiclError(f"--clip-seconds must be a number > 0, got {args.clip_seconds:g}")
        if args.lora_r < 1:
            raise SiclError(f"--lora-r must be >= 1, got {args.lora_r}")
        if not 0 <= args.lora_dropout < 1:
            raise SiclError(f"--lora-dropout must be in [0, 1), got {args.lora_dropout:g}")
        est = estimate(args.estimate, k=args.k, clip_seconds=args.clip_seconds, lora_r=args.lora_r,
                       measure=not args.no_measure, lora_dropout=args.lora_dropout)
        print(to_json(est) if args.json else format_estimate(est))
        return 0
    if args.install:
        args.name = args.name or "tiny-omni"
        if args.name not in zoo.BUILTINS:
            raise SiclError(f"unknown built-in name {args.name!r} ({', '.join(zoo.BUILTINS)})")
        src = Path(args.install)
        if not (src / "config.json").is_file():
            raise SiclError(f"{src}: not a model folder (no config.json)")
        dest = zoo.install_model(src, zoo.builtin_path(args.name))
        print(f"installed {args.name} at {dest}")
        return 0
    print(f"{'name':<12} {'weights':<8} {'params':>9} {'size':>9}  path")
    for info in zoo.list_builtins():
        params = f"{info.parameters / 1e6:.2f}M" if info.parameters else "-"
        size = f"{info.bytes_on_disk / 1e6:.1f}MB" if info.bytes_on_disk else "-"
        print(f"{info.name:<12} {'yes' if info.has_weights else 'no':<8} {params:>9} {size:>9}  {info.path}")
        print(f"{'':<12} {info.description}")
    return 0
