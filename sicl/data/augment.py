"""Query augmentation for episodic training: harder copies of the training queries.

SICL-AT trains on high-resource sets the model already transcribes well (tiny-omni: adult WER ~0.1), so
few of its episodes reward reading the demonstrations or stopping where the query's own speech ends.
:func:`augment_queries` adds perturbed copies of the queries, the two standard ASR augmentations:

* **speed perturbation** (Ko et al. 2015, Kaldi's ``speed`` recipe): the clip is resampled as if it had
  been recorded at ``factor`` x 16 kHz, so tempo and pitch move together (soxr does the resampling);
* **additive noise**: white noise at a signal-to-noise ratio drawn from ``snr_db``.

A copy keeps its source's transcript, answer and metadata, gets the id ``<source id>~aug<j>`` and
``meta["augmented_from"]``, and is written once, deterministically from ``(seed, source id, j)``, so a
resumed run finds the same files. Demonstrations are never augmented.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soxr

from sicl.data.audio import DEFAULT_MAX_SECONDS, SAMPLE_RATE, audio_duration, load_audio, write_audio
from sicl.data.manifest import Example
from sicl.errors import SiclError


@dataclass
class AugmentSettings:
    copies: int = field(default=0, metadata={"help": "perturbed copies per training query (0: off)"})
    speed: list[float] = field(default_factory=lambda: [0.9, 1.1], metadata={
        "help": "speed-perturbation factor range [min, max] (1.0: none)"})
    noise_prob: float = field(default=0.5, metadata={"help": "share of copies that also get white noise"})
    snr_db: list[float] = field(default_factory=lambda: [10.0, 30.0], metadata={
        "help": "signal-to-noise ratio range in dB for the noisy copies"})
    seed: int = field(default=0, metadata={"help": "perturbations are a function of (seed, query id, copy)"})

    def check(self) -> None:
        if self.copies < 0:
            raise SiclError(f"query_augment.copies must be >= 0, got {self.copies}")
        for name, rng, lo in (("speed", self.speed, 1e-3), ("snr_db", self.snr_db, -1e9)):
            if len(rng) != 2 or rng[0] > rng[1] or rng[0] < lo:
                raise SiclError(f"query_augment.{name} must be [min, max] with min <= max"
                                f"{' and min > 0' if name == 'speed' else ''}, got {rng}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise SiclError(f"query_augment.noise_prob must be in [0, 1], got {self.noise_prob}")


def speed_perturb(wav: np.ndarray, factor: float) -> np.ndarray:
    """Play ``wav`` ``factor`` times faster (pitch up for factor > 1), as Kaldi's speed perturbation does."""
    if abs(factor - 1.0) < 1e-6:
        return np.asarray(wav, dtype=np.float32)
    return soxr.resample(np.asarray(wav, dtype=np.float32), SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)


def add_noise(wav: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` relative to the clip's mean power (a silent clip stays silent)."""
    wav = np.asarray(wav, dtype=np.float32)
    power = float(np.mean(wav.astype(np.float64) ** 2)) if wav.size else 0.0
    if power <= 0.0:
        return wav
    noise = rng.standard_normal(wav.shape) * np.sqrt(power / 10 ** (snr_db / 10))
    return (wav + noise).astype(np.float32)


def augment_queries(queries: Sequence[Example], settings: AugmentSettings, out_dir: str | Path,
                    max_seconds: float | None = DEFAULT_MAX_SECONDS) -> list[Example]:
    """The perturbed copies of ``queries`` (not the queries themselves), written under ``out_dir``. A slowed-down
    copy never runs past ``max_seconds`` (the audio window): its factor is raised to what fits (a 29 s query at
    0.9 would be 32 s, which training would refuse mid-run)."""
    settings.check()
    if settings.copies == 0:
        return []
    out_dir = Path(out_dir)
    out: list[Example] = []
    spec = json.dumps({"speed": settings.speed, "noise_prob": settings.noise_prob, "snr_db": settings.snr_db,
                       "seed": settings.seed}, sort_keys=True)
    for q in queries:
        wav = None
        for j in range(1, settings.copies + 1):
            # The file name carries a digest of the settings and source, so changed settings never reuse a file.
            key = hashlib.sha1(f"{spec}|{q.id}|{q.audio}|{j}".encode()).hexdigest()[:16]
            path = out_dir / f"{key}.wav"
            digest = int(key, 16)
            rng = np.random.default_rng([settings.seed, digest])
            factor = float(rng.uniform(*settings.speed))
            noisy = bool(rng.random() < settings.noise_prob)
            snr = float(rng.uniform(*settings.snr_db))
            if max_seconds is not None and factor < 1.0:
                # from the header, so a re-run that finds the file decides the same factor without decoding
                seconds = audio_duration(q.audio)
                factor = max(factor, min(1.0, seconds / (max_seconds * 0.99)))
            if not path.exists():
                if wav is None:
                    wav = load_audio(q.audio, max_seconds=None)
                aug = speed_perturb(wav, factor)
                if noisy:
                    aug = add_noise(aug, snr, rng)
                # per-process temporary name: the ranks of a multi-process run may write the same copy at once
                tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.wav")
                write_audio(tmp, aug)
                tmp.replace(path)  # never a half-written clip under the final name
            meta = {**(q.meta or {}), "augmented_from": q.id, "speed": round(factor, 4)}
            if noisy:
                meta["snr_db"] = round(snr, 2)
            duration = q.duration / factor if q.duration else None
            out.append(replace(q, id=f"{q.id}~aug{j}", audio=str(path), duration=duration, meta=meta))
    return out
