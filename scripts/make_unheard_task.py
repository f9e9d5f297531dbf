"""An ASR task of sentences made only of words that no tiny-omni pretraining clip speaks (pretraining's ``unheard``
kind, the world's adult voices): SICL-AT training queries, a demonstration pool, and development queries. It asks
whether a model takes a word's spelling from an audio demonstration that speaks it (docs/demo.md, "Can SICL-AT
teach v7 to take a word from an audio demonstration?").

    python scripts/make_unheard_task.py OUT [--n-train 900] [--n-pool 900] [--n-dev 60] [--seed 61000000]

Writes OUT/unheard/pool.jsonl, OUT/unheard/train.jsonl (the development queries: ``diag_demo_dev.py --world OUT
--sets unheard`` reads ``train.jsonl``), OUT/sicl-train.jsonl (SICL-AT queries) and OUT/audio/*.wav.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n-train", type=int, default=900)
    ap.add_argument("--n-pool", type=int, default=900)
    ap.add_argument("--n-dev", type=int, default=60)
    ap.add_argument("--seed", type=int, default=61_000_000, help="far from pretraining's held-out seeds (90,000,000+)")
    args = ap.parse_args(argv)
    from sicl.data.audio import write_audio
    from sicl.data.manifest import Example, write_manifest
    from sicl.data.synth import pretrain_items as P

    n = args.n_pool + args.n_dev + args.n_train
    items = P.generate_items("unheard", n, seed=args.seed, workers=1)
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    (args.out / "unheard").mkdir(exist_ok=True)
    rows = []
    for it in items:
        path = args.out / "audio" / f"{it.id}.wav"
        write_audio(path, it.wav)
        rows.append(Example(id=it.id, audio=str(path.resolve()), task="asr", target=it.target, speaker=it.speaker))
    a, b = args.n_pool, args.n_pool + args.n_dev
    write_manifest(args.out / "unheard" / "pool.jsonl", rows[:a])
    write_manifest(args.out / "unheard" / "train.jsonl", rows[a:b])
    write_manifest(args.out / "sicl-train.jsonl", rows[b:])
    print(f"{len(rows)} clips in {args.out}: pool {a}, development {b - a}, SICL-AT queries {len(rows) - b}")
    return 0


if __name__ == "__main__":  # the synthesis pool re-imports __main__ in its workers: keep work out of module level
    raise SystemExit(main())
