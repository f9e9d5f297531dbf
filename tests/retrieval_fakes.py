"""Small stand-ins for the retrieval tests: corpora of tone clips, counting embedders and labelers."""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sicl.data.manifest import Example, write_manifest
from sicl.testing import write_tone


def make_corpus(folder: Path, texts: Sequence[str], prefix: str = "p", freqs: Sequence[float] | None = None,
                speakers: Sequence[str] | None = None, task: str = "asr") -> list[Example]:
    """One short tone clip per text (distinct audio per item unless frequencies repeat with the seed)."""
    out = []
    for i, text in enumerate(texts):
        freq = freqs[i] if freqs is not None else 150.0 + 7.0 * i
        path = write_tone(folder / "audio" / f"{prefix}{i}.wav", seconds=0.3, freq=freq, seed=i)
        out.append(Example(id=f"{prefix}{i}", audio=str(path.resolve()), task=task, target=text,
                           speaker=speakers[i] if speakers else f"spk{i}", duration=0.3))
    return out


def copy_clip(src: Example, folder: Path, new_id: str, target: str | None = None) -> Example:
    """The same recording under another id and path (the leak the content hash must catch)."""
    dst = folder / "audio" / f"{new_id}.wav"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src.audio, dst)
    return Example(id=new_id, audio=str(dst.resolve()), task=src.task, target=target or src.target,
                   speaker="someone-else", duration=src.duration)


def save(folder: Path, name: str, examples: list[Example]) -> Path:
    return write_manifest(folder / name, examples)


class BagOfWords:
    """Text embedder: hashed word counts. Counts its calls so tests can prove the cache is used."""

    id = "test-bag-of-words:v1"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls = 0
        self.texts = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, zlib.crc32(w.encode()) % self.dim] += 1.0
        return out


class Spectrum:
    """Audio embedder: coarse magnitude spectrum, so tones of close frequency are close."""

    id = "test-spectrum:v1"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        rows = []
        for w in wavs:
            mag = np.abs(np.fft.rfft(w[:4096], n=4096))[:1024]
            rows.append(mag.reshape(64, 16).sum(1))
        return np.asarray(rows, np.float32)


class DropWords:
    """Pseudo-labeler that mishears: drops every third word of the gold text. Counts its calls."""

    id = "test-drop-words:v1"

    def __init__(self) -> None:
        self.calls = 0

    def label(self, examples: Sequence[Example], wavs: Sequence[np.ndarray]) -> list[str]:
        self.calls += 1
        return [" ".join(w for n, w in enumerate((ex.target or "").split()) if n % 3 != 2) for ex in examples]
