"""Audio I/O: any format libsndfile reads -> mono float32 at 16 kHz.

Bad audio is an error naming the file; nothing is silently truncated or skipped here (importers decide
whether to skip, and say so).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from sicl.errors import AudioError

SAMPLE_RATE = 16_000
#: Qwen2.5-Omni's audio window; longer clips would be truncated by its processor.
DEFAULT_MAX_SECONDS = 30.0
#: Shortest clip: a Whisper-style audio tower (10 ms mel hop, two 2x reductions) gives no frame at all for
#: 0.02 s or less, so the model would hear nothing.
MIN_SECONDS = 0.025


def load_audio(
    path: str | Path,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    sample_rate: int = SAMPLE_RATE,
    min_seconds: float | None = MIN_SECONDS,
) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sample_rate`` Hz.

    Raises :class:`AudioError` (message names the file) when the file is missing, cannot be decoded, is a
    truncated MP3, holds no samples, holds NaN/inf, is shorter than ``min_seconds`` (too short for an audio
    tower to hear) or longer than ``max_seconds`` (``None`` disables either limit). Decoder chatter (libmpg123
    prints notes about broken MP3 frames to the process's stderr) is kept off the terminal.
    """
    path = Path(path)
    head = _head(path)
    mpeg = _maybe_mpeg(path, head)
    try:
        with _quiet_stderr(mpeg), sf.SoundFile(str(path)) as f:
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
    if mpeg and frames > 0 and _has_vbr_tag(head) and wav.shape[0] < 0.95 * frames - native_sr * 0.05:
        # A Xing/Info/VBRI tag states the exact frame count; mpg123 decodes what there is and says nothing.
        raise AudioError(f"{path}: audio is truncated (its MP3 header declares {frames / native_sr:.2f} s, "
                         f"only {wav.shape[0] / native_sr:.2f} s decode)")
    if not np.isfinite(wav).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    mono = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    # Some decoders (mp3) report frames only approximately; check the real length as well.
    seconds = mono.shape[0] / native_sr
    if max_seconds is not None and seconds > max_seconds + 1e-6:
        raise AudioError(f"{path}: audio is {seconds:.2f} s, longer than the {max_seconds:g} s limit")
    if min_seconds is not None and seconds < min_seconds - 1e-9:
        raise AudioError(f"{path}: audio is {_short_seconds(seconds)}, too short (the minimum is {min_seconds:g} s: "
                         "an audio tower gives no frame for less)")
    if native_sr != sample_rate:
        mono = soxr.resample(mono, native_sr, sample_rate, quality="HQ")
    if mono.shape[0] == 0:  # one sample at 44.1 kHz resamples to none
        raise AudioError(f"{path}: audio is empty ({wav.shape[0]} sample(s) at {native_sr} Hz, none at "
                         f"{sample_rate} Hz)")
    return np.ascontiguousarray(mono, dtype=np.float32)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (cheap; no decoding)."""
    path = Path(path)
    head = _head(path)
    try:
        with _quiet_stderr(_maybe_mpeg(path, head)):
            info = sf.info(str(path))
    except Exception as e:
        raise AudioError(f"{path}: cannot read audio header ({_decode_problem(e, path)})") from None
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


def _head(path: Path) -> bytes:
    """The file's first bytes (format sniffing); a missing, unreadable or empty file is an :class:`AudioError`
    naming it, before libsndfile's vaguer messages."""
    if not path.is_file():
        raise AudioError(f"{path}: {'is a folder, not an audio file' if path.is_dir() else 'audio file not found'}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as e:
        raise AudioError(f"{path}: cannot read audio file ({e.strerror})") from None
    if not head:
        raise AudioError(f"{path}: file is empty (0 bytes), not audio")
    return head


#: Suffixes libsndfile hands to libmpg123 whatever the content.
_MPEG_SUFFIXES = frozenset({".mp1", ".mp2", ".mp3", ".mpa", ".mpga", ".mpeg", ".mpg"})


def _id3_size(head: bytes) -> int:
    """Bytes taken by a leading ID3v2 tag (0 if none)."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = 0
    for b in head[6:10]:  # "syncsafe": 7 bits per byte
        size = (size << 7) | (b & 0x7F)
    return 10 + size + (10 if head[5] & 0x10 else 0)


def _maybe_mpeg(path: Path, head: bytes) -> bool:
    """Whether libsndfile may give the file to libmpg123: an MPEG suffix, an ID3v2 tag or an MPEG frame sync."""
    if path.suffix.lower() in _MPEG_SUFFIXES or head[:3] == b"ID3":
        return True
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def _has_vbr_tag(head: bytes) -> bool:
    """Whether the first MPEG frame carries a Xing/Info or VBRI tag (an exact frame count, so a shorter decode
    means the file was cut). Looked for right after the frame header and its side information."""
    start = _id3_size(head)
    frame = head[start:start + 64]
    if len(frame) < 40 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return False
    return b"Xing" in frame[4:40] or b"Info" in frame[4:40] or frame[36:40] == b"VBRI"


#: What libmpg123 prints about a broken MP3: ``Note: Illegal Audio-MPEG-Header ...``, ``Note: Trying to
#: resync...``, ``Warning: Xing stream size off ...``, ``[src/libmpg123/parse.c:...] warning: ...``.
_MPG123_NOISE = re.compile(rb"^(?:Note: |Warning: |\[[^\]\n]*libmpg123[^\]\n]*\] )")


class _StderrFilter:
    """While libmpg123 decodes, file descriptor 2 points at a temporary file, and what lands there is copied to
    the real stderr without libmpg123's lines: it prints them straight to the process's stderr, where Python
    cannot catch them. Anything else written meanwhile (a progress bar, a warning from another thread) is passed
    on when a decode ends. Reference-counted under a lock, so threads that decode at once share one redirection
    and the real stderr comes back after the last one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: int | None = None
        self.capture: Any = None
        self.offset = 0

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                _flush_python_stderr()
                try:
                    saved = os.dup(2) if hasattr(os, "pread") else None
                except OSError:  # no stderr at all: nothing to keep clean
                    saved = None
                if saved is not None:
                    self.capture = tempfile.TemporaryFile()
                    os.dup2(self.capture.fileno(), 2)
                    self.saved, self.offset = saved, 0
            self.depth += 1

    def exit(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.saved is None:
                return
            if self.depth == 0:
                _flush_python_stderr()
            self._forward()
            if self.depth == 0:
                os.dup2(self.saved, 2)
                os.close(self.saved)
                self.capture.close()
                self.saved, self.capture = None, None

    def _forward(self) -> None:
        data = os.pread(self.capture.fileno(), 1 << 20, self.offset)
        while data:
            self.offset += len(data)
            kept = b"".join(line for line in data.splitlines(keepends=True) if not _MPG123_NOISE.match(line))
            if kept:
                try:
                    os.write(self.saved, kept)
                except OSError:
                    pass
            data = os.pread(self.capture.fileno(), 1 << 20, self.offset)


    def after_fork_in_child(self) -> None:
        """A process forked mid-decode gets its real stderr back and a fresh state (the parent's decode is not
        the child's)."""
        self.lock = threading.Lock()
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)
        self.depth, self.saved, self.capture, self.offset = 0, None, None, 0


def _flush_python_stderr() -> None:
    try:
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed or replaced stderr: nothing to flush
        pass


_stderr_filter = _StderrFilter()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_stderr_filter.after_fork_in_child)


@contextlib.contextmanager
def _quiet_stderr(enabled: bool = True) -> Iterator[None]:
    """Keep libmpg123's notes off stderr while the body runs (:class:`_StderrFilter`); a no-op when not
    ``enabled`` (files libsndfile decodes without libmpg123)."""
    if not enabled:
        yield
        return
    _stderr_filter.enter()
    try:
        yield
    finally:
        _stderr_filter.exit()


def _short_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 0.1 else f"{seconds:.3f} s"


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
