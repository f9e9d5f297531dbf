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
    import time

    from sicl.data.synth.world import SIZES, build_world, check_world_args, format_summary
    from sicl.guard import Interrupted
    from sicl.progress import progress as tqdm

    check_world_args(args.out, args.seed, args.size)
    total = sum(sum(c) for c in SIZES[args.size].values())
    received: list[tuple[int, float]] = []

    def on_signal(signum: int, _frame: object) -> None:
        # SIGTERM (a cluster, `timeout`) stops the build as Ctrl-C does: the build asks for it before each split and
        # while clips are synthesised (stop=), then stops with its synthesis processes terminated. Not raised here:
        # an exception at any moment could break a pool of processes while it starts. A repeated signal within 2 s
        # changes nothing (timeout sends SIGTERM twice: to the command, then to its process group); a later one
        # aborts at once.
        if received and time.monotonic() - received[0][1] >= 2:
            raise KeyboardInterrupt
        received.append((signum, time.monotonic()))

    handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with tqdm(total=total, unit="clip", desc="synth", dynamic_ncols=True) as bar:
            summary = build_world(args.out, seed=args.seed, size=args.size, workers=args.workers,
                                  force=args.force, progress=bar.update, stop=lambda: bool(received))
    except KeyboardInterrupt:
        sig = signal.Signals(received[0][0] if received else signal.SIGINT)
        again = f"sicl synth --out {args.out} --seed {args.seed} --size {args.size}"
        raise Interrupted(f"{sig.name} received: the finished splits are kept in {args.out}; run `{again}` (without "
                          f"--force) to finish the world", sig) from None
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    if summary.get("skipped"):
        print(f"{args.out}: complete world (seed={args.seed}, size={args.size}) already there; --force rebuilds")
    print(format_summary(summary))
    return 0
