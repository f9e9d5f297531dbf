"""Speakers of the synthetic world: espeak-ng voice settings, adult populations and child classrooms.

A :class:`VoiceSpec` is one speaker. Adults vary accent x variant x pitch x rate. Child-like voices use a
high espeak pitch, a fast or uneven rate, extra pauses between words (hesitant reading) and a pitch+formant
shift (``shift``) applied after synthesis, which mimics a shorter vocal tract. Populations are drawn from
fixed seeds, so every split (and model pretraining) sees the same speaker inventory; each child domain has
its own classroom, shared by its pool and test splits, and a separate small group of children for train.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from sicl.data.synth import tts

ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd"]
#: Accent -> label used by AQA accent questions (accents without a label are never asked about).
ACCENT_LABELS = {"en-us": "american", "en-gb-x-rp": "british", "en-gb-scotland": "scottish", "en-029": "caribbean"}
MALE = ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]
FEMALE = ["f1", "f2", "f3", "f4"]
_POPULATION_SEED = 90210


@dataclass(frozen=True)
class VoiceSpec:
    """One speaker. ``rate`` is the effective words per minute after ``shift``; ``rate_jitter`` is the
    relative per-utterance rate variation (uneven speakers); ``word_gap`` adds pauses (x10 ms)."""

    speaker: str
    accent: str = "en-us"
    variant: str = "m1"
    pitch: int = 50
    rate: int = 160
    pitch_range: int = 50
    child: bool = False
    shift: float = 1.0
    rate_jitter: float = 0.0
    word_gap: int = 0

    @property
    def gender(self) -> str:
        return "female" if self.variant.startswith("f") else "male"

    def to_dict(self) -> dict:
        return asdict(self)

    def synthesize(self, text: str, rng: np.random.Generator | None = None, rate_scale: float = 1.0) -> np.ndarray:
        """Speak ``text``; ``rng`` draws the utterance's rate jitter (deterministic given the rng)."""
        rate = self.rate * rate_scale
        if self.rate_jitter and rng is not None:
            rate *= 1.0 + self.rate_jitter * float(rng.uniform(-1.0, 1.0))
        # The shift shortens audio by `shift`; ask espeak for a slower rate so the result is at `rate`.
        espeak_rate = int(np.clip(round(rate / self.shift), 80, 450))
        wav = tts.synthesize(text, f"{self.accent}+{self.variant}", espeak_rate, self.pitch, self.pitch_range,
                             word_gap=self.word_gap)
        return tts.shift_pitch_formants(wav, self.shift)


def _rng(tag: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([_POPULATION_SEED, *map(ord, tag)]))


def sample_adult(rng: np.random.Generator, speaker: str) -> VoiceSpec:
    variant = (MALE + FEMALE)[int(rng.integers(len(MALE) + len(FEMALE)))]
    return VoiceSpec(speaker=speaker, accent=ACCENTS[int(rng.integers(len(ACCENTS)))], variant=variant,
                     pitch=int(rng.integers(25, 71)), rate=int(rng.integers(140, 186)),
                     pitch_range=int(rng.integers(30, 71)), rate_jitter=0.03)


def sample_child(rng: np.random.Generator, speaker: str) -> VoiceSpec:
    """A child of world v2: a moderate step beyond tiny-omni v2's pretraining voices (one in four of which has a
    shift of 1.02-1.12; pitch up to 92). Calibrated on a development set with a tiny-omni v2 checkpoint: adult
    sentences spoken by these children 0.20 WER, by children with shift 1.08-1.22 / pitch 65-92 0.40
    (docs/synthetic-world.md). World v1's children (shift 1.15-1.35, pitch 75-99, rate 170-230, jitter up to 0.2,
    35 % hesitant with 40-130 ms pauses) were outside anything the model heard: every method failed on them alike."""
    hesitant = rng.random() < 0.3  # a word-by-word reader
    return VoiceSpec(speaker=speaker, accent=ACCENTS[int(rng.integers(len(ACCENTS)))],
                     variant=(FEMALE + ["m3", "m6"])[int(rng.integers(len(FEMALE) + 2))],
                     pitch=int(rng.integers(60, 89)), rate=int(rng.integers(160, 216)),
                     pitch_range=int(rng.integers(50, 91)), child=True, shift=round(float(rng.uniform(1.03, 1.13)), 3),
                     rate_jitter=round(float(rng.uniform(0.0, 0.08)), 3),
                     word_gap=int(rng.integers(2, 7)) if hesitant else 0)


def adult_population(n: int = 300) -> list[VoiceSpec]:
    """The adult speaker inventory (fixed): ids ``adult-000`` ..."""
    rng = _rng("adult")
    return [sample_adult(rng, f"adult-{i:03d}") for i in range(n)]


def classroom(name: str, n: int = 12) -> list[VoiceSpec]:
    """A fixed group of child speakers, e.g. ``classroom("science")`` (pool+test) or
    ``classroom("science-train")`` (the children of the small fine-tuning set)."""
    rng = _rng("child-" + name)
    return [sample_child(rng, f"{name}-kid{i:02d}") for i in range(n)]


def sample_wide(rng: np.random.Generator, speaker: str) -> VoiceSpec:
    """A speaker of tiny-omni v2's pretraining population: the adult ranges widened (pitch 10-92, rate
    120-230, uneven rates, some pauses) and one speaker in four with a light vocal-tract shift (1.02-1.12),
    so child voices (shift 1.15-1.35, pitch 75-99) are a moderate step beyond what the model heard rather
    than outside it."""
    shifted = rng.random() < 0.25
    variant = (MALE + FEMALE + ["f5"])[int(rng.integers(len(MALE) + len(FEMALE) + 1))]
    return VoiceSpec(speaker=speaker, accent=ACCENTS[int(rng.integers(len(ACCENTS)))], variant=variant,
                     pitch=int(rng.integers(10, 93)), rate=int(rng.integers(120, 231)),
                     pitch_range=int(rng.integers(20, 95)),
                     shift=round(float(rng.uniform(1.02, 1.12)), 3) if shifted else 1.0,
                     rate_jitter=round(float(rng.uniform(0.0, 0.12)), 3),
                     word_gap=int(rng.integers(2, 9)) if rng.random() < 0.15 else 0)


def sample_odd(rng: np.random.Generator, speaker: str) -> VoiceSpec:
    """An unusual voice for tiny-omni's same-voice chats (``voice`` pretraining kind): a wide-population voice
    with a strong vocal-tract shift, down (0.82-0.95) or up beyond world v2's children (1.14-1.25), so that a
    clip is hard to transcribe alone and the same speaker's earlier clips are worth reading. Never a world
    child: the shift ranges avoid world v2's children (1.03-1.13)."""
    voice = sample_wide(rng, speaker)
    shift = float(rng.uniform(0.82, 0.95)) if rng.random() < 0.5 else float(rng.uniform(1.14, 1.25))
    return replace(voice, shift=round(shift, 3))


def pretrain_population(n: int = 800) -> list[VoiceSpec]:
    """tiny-omni v2's pretraining speakers (fixed): the world's 300 adults plus ``n`` wider voices."""
    rng = _rng("pretrain-wide")
    return adult_population() + [sample_wide(rng, f"wide-{i:03d}") for i in range(n)]
