"""Zero-shot WER of a model on child voices drawn with given ranges (development data; never a world's test split).

    python scripts/calibrate_children.py MODEL [SHIFT_LO SHIFT_HI PITCH_LO PITCH_HI JITTER MAX_GAP]

Draws 8 children like a classroom (``voices.sample_child``) with the shift, pitch, jitter and pause ranges given
(default: world v2's), has them speak 32 world-v2 science sentences and 32 adult sentences (seed 4242, far from the
world's seeds) and prints the WER of each set. docs/synthetic-world.md has the numbers behind world v2's children.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import torch


def children(lo: float, hi: float, plo: int, phi: int, jitter: float, gap: int, n: int = 8) -> list:
    from sicl.data.synth import voices as V

    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        k = V.sample_child(rng, f"cal{i}")
        out.append(replace(k, shift=round(float(rng.uniform(lo, hi)), 3), pitch=int(rng.integers(plo, phi)),
                           rate_jitter=round(float(rng.uniform(0, jitter)), 3), word_gap=min(k.word_gap, gap)))
    return out


def main(argv: list[str]) -> None:
    from sicl.data.synth import items as I
    from sicl.data.synth import text as T
    from sicl.models import tiny_omni
    from sicl.models.zoo import resolve_model
    from sicl.pretrain.evaluate import generate, score

    torch.set_num_threads(1)
    model, processor = tiny_omni.load_tiny_omni(resolve_model(argv[0]))
    ranges = [float(x) for x in argv[1:7]] if len(argv) >= 7 else [1.03, 1.13, 60, 89, 0.08, 6]
    kids = children(ranges[0], ranges[1], int(ranges[2]), int(ranges[3]), ranges[4], int(ranges[5]))
    for kind in ("child-science", "adult"):
        items = I.generate_items(kind, 32, seed=4242, speakers=kids, version=2,
                                 topics=T.SCIENCE_TOPICS if kind == "child-science" else None)
        hyps = generate(model, processor.tokenizer, items, batch_size=16)
        print(f"{kind:14s} WER {score('wer', items, hyps):.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
