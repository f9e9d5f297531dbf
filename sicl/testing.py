"""Tiny fixtures shared by the tests (and usable by anyone writing their own): synthetic audio files,
manifests and corpus layouts made on the fly. Nothing here downloads anything."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from sicl.data.manifest import Example, write_manifest


def tone(seconds: float = 1.0, sample_rate: int = 16_000, freq: float = 220.0, channels: int = 1,
         seed: int = 0) -> np.ndarray:
    """A short voiced-sounding signal (harmonic tone + a little noise), shape (n,) or (n, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wav = sum(np.sin(2 * np.pi * freq * h * t) / h for h in (1, 2, 3)) * 0.2
    wav = (wav + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)
    if channels > 1:
        wav = np.stack([wav * (1.0 - 0.1 * c) for c in range(channels)], axis=1)
    return wav


def write_tone(path: str | Path, seconds: float = 1.0, sample_rate: int = 16_000, channels: int = 1,
               freq: float = 220.0, seed: int = 0) -> Path:
    """Write a tone in the format given by the suffix (wav, flac, ogg, mp3)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, sample_rate, freq, channels, seed), sample_rate)
    return path


def write_rows(path: str | Path, rows: list[dict | str]) -> Path:
    """Write raw JSONL rows (dicts are JSON-encoded, strings written verbatim) — for malformed manifests."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def tiny_asr_manifest(folder: str | Path, n: int = 4, seconds: float = 0.5, task: str = "asr") -> Path:
    """A valid manifest of ``n`` short tone clips with made-up transcripts."""
    folder = Path(folder)
    words = ["alpha", "beta", "gamma", "delta", "echo", "foxtrot", "golf", "hotel"]
    examples = []
    for i in range(n):
        audio = write_tone(folder / "audio" / f"utt{i}.wav", seconds=seconds, freq=180.0 + 20 * i, seed=i)
        examples.append(Example(id=f"utt{i}", audio=str(audio.resolve()), task=task,
                                target=f"{words[i % len(words)]} {words[(i + 3) % len(words)]}",
                                speaker=f"spk{i % 2}", duration=seconds))
    return write_manifest(folder / "manifest.jsonl", examples)
