"""A pretraining ``source`` (see sicl.pretrain.train: ``generate_items(kind, n, seed, exclude=...)``) made of short
tones with number-word targets: fast enough for a pretraining run inside a test."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sicl.testing import tone

KINDS = ("adult",)
_WORDS = "one two three four five six seven eight nine".split()


@dataclass
class ToneItem:
    task: str
    target: str
    wav: np.ndarray
    transcript: str | None = None
    meta: dict = field(default_factory=dict)


def tokenizer_corpus(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(_WORDS, 3)) for _ in range(n)]


def generate_items(kind: str, n: int, seed: int, workers: int = 1, exclude=(), **options) -> list[ToneItem]:
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        i = int(rng.integers(len(_WORDS)))
        text = " ".join([_WORDS[i]] * int(rng.integers(1, 3)))
        out.append(ToneItem("asr", text, tone(0.4 + 0.1 * i, freq=150 + 40 * i)))
    return out
