"""`sicl synth`: build the embedded synthetic speech world (espeak-ng voices, template text)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sicl.cli import positive_int

#: shown at the end of --help
EXAMPLES = [
    'sicl synth --out runs/world --size small',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder to write the world into")
    parser.add_argument("--seed", type=int, default=0, help="world seed (same seed -> identical files)")
    parser.add_argument("--size", choices=["small", "default"], default="default",
                        help="small: ~1/10 of default (seconds); default: ~10k clips (about a minute)")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="synthesis processes (results do not depend on it)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete world is there")


def run(args: argparse.Namespace) -> int:
    from sicl.data.synth.world import SIZES, build_world, format_summary
    from sicl.errors import SiclError
    from sicl.progress import progress as tqdm

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SiclError(f"--out {args.out}: is a file; give a folder for the world")
    total = sum(sum(c) for c in SIZES[args.size].values())
    with tqdm(total=total, unit="clip", desc="synth", dynamic_ncols=True) as bar:
        summary = build_world(args.out, seed=args.seed, size=args.size, workers=args.workers,
                              force=args.force, progress=bar.update)
    if summary.get("skipped"):
        print(f"{args.out}: complete world (seed={args.seed}, size={args.size}) already there; --force rebuilds")
    print(format_summary(summary))
    return 0
