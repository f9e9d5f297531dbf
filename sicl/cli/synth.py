"""`sicl synth`: build the embedded synthetic speech world (espeak-ng voices, template text)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sicl.cli import non_negative_int, positive_int

#: shown at the end of --help
EXAMPLES = [
    'sicl synth --out runs/world --size small',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True,
                        help="folder to write the world into: new, empty, or holding a world (a build that was "
                             "stopped goes on where it stopped when run again with the same settings)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="world seed, >= 0 (same seed -> identical files)")
    parser.add_argument("--size", choices=["small", "default"], default="default",
                        help="small: ~1/10 of default (seconds); default: ~10k clips (about a minute)")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="synthesis processes (results do not depend on it)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild from scratch even if a complete (or partly built) world is there, or build "
                             "into a folder that holds other files (world files of the same name are replaced)")


def run(args: argparse.Namespace) -> int:
    import signal

    from sicl.data.synth.world import SIZES, build_world, check_world_args, format_summary
    from sicl.guard import Interrupted
    from sicl.progress import progress as tqdm

    check_world_args(args.out, args.seed, args.size)
    total = sum(sum(c) for c in SIZES[args.size].values())
    try:
        with tqdm(total=total, unit="clip", desc="synth", dynamic_ncols=True) as bar:
            summary = build_world(args.out, seed=args.seed, size=args.size, workers=args.workers,
                                  force=args.force, progress=bar.update)
    except KeyboardInterrupt:
        again = f"sicl synth --out {args.out} --seed {args.seed} --size {args.size}"
        raise Interrupted(f"SIGINT received: the finished splits are kept in {args.out}; run `{again}` (without "
                          f"--force) to finish the world", signal.SIGINT) from None
    if summary.get("skipped"):
        print(f"{args.out}: complete world (seed={args.seed}, size={args.size}) already there; --force rebuilds")
    print(format_summary(summary))
    return 0
