"""Audio I/O: any format libsndfile reads -> mono float32 at 16 kHz.

Bad audio is an error naming the file; nothing is silently truncated or skipped here (importers decide
whether to skip, and say so).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sicl.errors import AudioError

SAMPLE_RATE = 16_000
#: Qwen2.5-Omni's audio window; longer clips would be truncated by its processor.
DEFAULT_MAX_SECONDS = 30.0


def load_audio(
    path: str | Path,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sample_rate`` Hz.

    Raises :class:`AudioError` (message names the file) when the file is missing, cannot be decoded,
    holds no samples, holds NaN/inf, or is longer than ``max_seconds`` (``None`` disables the limit).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: {'is a folder, not an audio file' if path.is_dir() else 'audio file not found'}")
    try:
        with sf.SoundFile(str(path)) as f:
            native_sr = f.samplerate
            frames = f.frames
            if max_seconds is not None and frames > 0 and frames / native_sr > max_seconds + 1e-6:
                raise AudioError(
                    f"{path}: audio is {frames / native_sr:.2f} s, longer than the {max_seconds:g} s limit"
                )
            wav = f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:  # libsndfile raises several types for corrupt/unsupported input
        raise AudioError(f"{path}: cannot decode audio ({_decode_problem(e, path)})") from None
    if wav.size == 0 or wav.shape[0] == 0:
        raise AudioError(f"{path}: audio is empty (0 samples)")
    if not np.isfinite(wav).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    mono = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    # Some decoders (mp3) report frames only approximately; check the real length as well.
    seconds = mono.shape[0] / native_sr
    if max_seconds is not None and seconds > max_seconds + 1e-6:
        raise AudioError(f"{path}: audio is {seconds:.2f} s, longer than the {max_seconds:g} s limit")
    if native_sr != sample_rate:
        mono = soxr.resample(mono, native_sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (cheap; no decoding)."""
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioError(f"{path}: cannot read audio header ({_short(e)})") from None
    return float(info.frames) / float(info.samplerate) if info.samplerate else 0.0


def write_audio(path: str | Path, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono audio; the container follows the suffix (.wav, .flac, .ogg, .mp3)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = np.asarray(wav, dtype=np.float32)
    subtype = "PCM_16" if path.suffix.lower() in {".wav", ".flac"} else None
    sf.write(str(path), np.clip(wav, -1.0, 1.0), sample_rate, subtype=subtype)


def audio_hash(wav: np.ndarray) -> str:
    """Content hash of decoded 16 kHz audio: the same recording under another name or path hashes the
    same. (Re-encoding with a lossy codec changes samples and therefore the hash.)"""
    q = np.round(np.asarray(wav, dtype=np.float32) * 32767.0).astype(np.int16)
    return hashlib.sha1(q.tobytes()).hexdigest()


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-1 of a file's bytes (used as a cache key for per-clip artefacts)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__


def _decode_problem(e: Exception, path: Path) -> str:
    """libsndfile's reason without its ``Error opening 'PATH': `` prefix (the message names the file already).
    For a file that exists, its 'File does not exist or is not a regular file' means no decoder took it
    (an mp3 that is really text, say)."""
    msg = _short(e).removeprefix(f"Error opening {str(path)!r}: ")
    if "does not exist or is not a regular file" in msg:
        return "not a recognised audio format"
    return msg
