"""`sicl demo --out DIR`: the SICL-AT study on the embedded world.

What runs today: the synthetic world is built (or reused) and every manifest is validated, and the built-in
models are listed. Evaluation and the report are not implemented yet, so the study stops there; the command
says so instead of pretending.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from sicl.errors import SiclError

NOT_YET = ("evaluation and the report are not implemented yet (issue #7), so the study itself "
           "(zero-shot, vanilla ICL, SICL-AT1/2/3, direct fine-tuning; issue #8) does not run yet; "
           "`sicl retrieve` and `sicl train` work on their own")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default: %(default)s)")
    parser.add_argument("--size", choices=["small", "default"], default="default",
                        help="size of the synthetic world (small: seconds, for tests)")
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes")
    parser.add_argument("--fresh", action="store_true", help="delete previous results in --out first")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sicl.data.synth.world import SIZES, build_world
    from sicl.data.validate import validate_manifest
    from sicl.models.zoo import list_builtins

    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    data = args.out / "data"
    print(f"[1/3] synthetic world -> {data}")
    total = sum(sum(c) for c in SIZES[args.size].values())
    with tqdm(total=total, unit="clip", desc="synth", dynamic_ncols=True) as bar:
        summary = build_world(data, seed=args.seed, size=args.size, workers=args.workers, progress=bar.update)
    print(f"      {summary['clips']} clips, {summary['audio_hours']:.2f} h of audio"
          + (" (reused)" if summary.get("skipped") else ""))

    manifests = sorted(data.glob("*/*.jsonl"))
    print(f"[2/3] validating {len(manifests)} manifests")
    bad = 0
    for path in tqdm(manifests, desc="validate", unit="manifest", dynamic_ncols=True):
        report = validate_manifest(path, require_target=True)
        for p in report.problems:
            print(f"{path}:{p}")
        bad += len(report.problems)
    if bad:
        raise SiclError(f"{bad} problem(s) in the synthetic world's manifests (see above)")

    print("[3/3] built-in models")
    for info in list_builtins():
        state = "weights present" if info.has_weights else "weights missing"
        print(f"      {info.name}: {info.path} ({state})")
    print(f"sicl demo: stopped after the data stage: {NOT_YET}.")
    return 0
