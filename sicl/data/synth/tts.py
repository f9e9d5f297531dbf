"""espeak-ng speech synthesis through ctypes, returning float32 mono audio at 16 kHz.

Why ctypes: the Python bindings for espeak (``py-espeak-ng``, ``espeakng``) either shell out to the
``espeak-ng`` binary (needs a system package, i.e. root) or are unmaintained. The ``espeakng-loader`` wheel
bundles ``libespeak-ng.so`` together with its voice data, so calling the C API directly works everywhere
pip works, with no root and no subprocess per utterance (about 15 ms per 3-second clip).

The library keeps global state, so each process initialises it once (lazily, on first use) and calls are
serialised with a lock. We reseed espeak-ng's random generators before every utterance, but some state
(pitch flutter phase, echo buffer) still carries from one utterance to the next within a process, so a clip
is reproducible only given the same sequence of earlier clips since process start. ``items.py`` therefore
synthesises fixed chunks, each in a fresh process (this keeps parallel builds byte-identical to serial ones).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

import numpy as np
import soxr

SAMPLE_RATE = 16_000

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_lock = threading.Lock()
_state: dict[str, object] = {}


def _init() -> tuple[ctypes.CDLL, int, list[np.ndarray]]:
    """Load and initialise libespeak-ng once per process (re-initialise after a fork)."""
    if _state.get("pid") == os.getpid():
        return _state["lib"], _state["rate"], _state["chunks"]  # type: ignore[return-value]
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                 espeakng_loader.get_data_path().encode(), 0)
    if rate <= 0:
        raise RuntimeError("espeak-ng failed to initialise (data path missing?)")
    chunks: list[np.ndarray] = []

    def collect(wav, n, _events):  # called from inside espeak_Synth, same thread
        # An exception cannot leave a ctypes callback (Python prints "Exception ignored on calling ctypes
        # callback" and goes on): a Ctrl-C arriving here stops the synthesis (return 1) and is raised again by
        # synthesize once espeak_Synth has returned.
        try:
            if n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        except KeyboardInterrupt:
            _state["interrupted"] = True
            return 1
        return 0

    cb = _CALLBACK(collect)
    lib.espeak_SetSynthCallback(cb)
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    _state.update(pid=os.getpid(), lib=lib, rate=rate, chunks=chunks, cb=cb, libc=libc)
    return lib, rate, chunks


def synthesize(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50, pitch_range: int = 50,
               volume: int = 100, word_gap: int = 0) -> np.ndarray:
    """Speak ``text`` with espeak-ng; returns float32 mono at 16 kHz (leading/trailing silence kept short).

    ``voice`` is an espeak voice name with an optional variant (``en-gb-scotland+m3``); ``rate`` is words per
    minute (80-450), ``pitch`` and ``pitch_range`` are 0-99, ``word_gap`` is extra pause per word in 10 ms.
    """
    if not text.strip():
        raise ValueError("cannot synthesize empty text")
    with _lock:
        lib, native_rate, chunks = _init()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"unknown espeak voice {voice!r}")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range), (_VOLUME, volume),
                             (_WORDGAP, word_gap)):
            lib.espeak_SetParameter(param, int(value), 0)
        # espeak-ng draws noise from libc rand() and its own generator; reseed both per utterance.
        _state["libc"].srand(12345)  # type: ignore[attr-defined]
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed(12345)
        chunks.clear()
        data = text.encode("utf-8") + b"\0"
        err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if _state.pop("interrupted", False):
            chunks.clear()
            raise KeyboardInterrupt
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err}")
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        chunks.clear()
    wav = pcm.astype(np.float32) / 32768.0
    wav = soxr.resample(wav, native_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return trim_silence(wav)


def phonemes(text: str, voice: str = "en-us") -> str:
    """espeak-ng's phonemes for ``text`` (IPA) in ``voice``: what :func:`synthesize` would say, without the
    audio. Two spellings with the same phonemes are homophones to the synthesiser (used to respell made-up
    words, :func:`sicl.data.synth.open_text.respell`)."""
    with _lock:
        lib, _, _ = _init()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"unknown espeak voice {voice!r}")
        buf = ctypes.c_char_p(text.encode("utf-8"))
        out: list[str] = []
        ptr = ctypes.pointer(buf)
        while ptr.contents.value:  # one call per clause; the pointer advances past it
            res = lib.espeak_TextToPhonemes(ptr, _CHARS_UTF8, 0x02)  # 0x02: IPA
            out.append((res or b"").decode("utf-8"))
    return " ".join(x.strip() for x in out if x.strip())


def trim_silence(wav: np.ndarray, threshold: float = 1e-3, pad: float = 0.1) -> np.ndarray:
    """Cut silence at both ends, keeping ``pad`` seconds (espeak adds a long pause at the end)."""
    idx = np.flatnonzero(np.abs(wav) > threshold)
    if idx.size == 0:
        return wav
    p = int(pad * SAMPLE_RATE)
    return np.ascontiguousarray(wav[max(0, idx[0] - p): idx[-1] + p])


def shift_pitch_formants(wav: np.ndarray, factor: float) -> np.ndarray:
    """Raise pitch and formants together by ``factor`` (a shorter vocal tract, i.e. child-like).

    Resampling the signal to ``SAMPLE_RATE / factor`` and playing it at ``SAMPLE_RATE`` scales every
    frequency by ``factor`` but also shortens it by ``factor``; callers compensate by asking espeak for a
    slower rate beforehand, so the result keeps a natural duration.
    """
    if abs(factor - 1.0) < 1e-6:
        return wav
    out = soxr.resample(wav, SAMPLE_RATE, int(round(SAMPLE_RATE / factor)), quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)
