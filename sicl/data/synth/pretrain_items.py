"""Items for tiny-omni v2's pretraining (``source: sicl.data.synth.pretrain_items`` in configs/pretrain/).

Same contract as :func:`sicl.data.synth.items.generate_items` (deterministic for given ``(kind, n, seed)``),
with the open-vocabulary kinds of :mod:`open_text` and the wider voice population of
:func:`voices.pretrain_population`:

* ``open``: ASR on :func:`open_text.open_sentence` (thousands of heard words, free word order, numbers);
* ``adult``, ``translate``, ``sqa``, ``aqa``: the world's tasks, spoken by the wide population;
* ``context``: contextual ASR: a text hint (a word list or a note) names made-up words the clip may speak
  (:func:`open_text.context_sentence`); the hint is ``meta["hint"]`` and goes before the instruction;
* ``shared``: chats whose clips share words (:func:`open_text.shared_chat`): consecutive items with the same
  ``meta["chat"]`` are one conversation's turns, in order, each clip in its own voice; ``meta["labelled"]`` says
  whether the turn's transcript can be known (every made-up word it speaks was spoken in an earlier turn);
* ``respelt``: ``shared`` chats whose made-up names are respelt so that they sound like another spelling
  (:func:`open_text.respell`; tiny-omni v9): the model's own guess from the sound is wrong, the earlier
  transcript is right;
* ``voice``: same-voice chats: 2-5 unrelated open-vocabulary clips spoken by one unusual voice
  (:func:`voices.sample_odd`: a strong vocal-tract shift, a fresh speaker per chat); every turn after the first
  is ``labelled``. The earlier turns, with their transcripts, are the only evidence of how this speaker sounds:
  the in-context speaker adaptation that real omni models show and tiny-omni v8 lacks (docs/demo.md);
* ``unheard``: ASR on sentences made only of words no pretraining clip speaks (evaluation only);
* ``child-science``, ``child-reading``: the world's child kinds, as in ``items`` (evaluation only).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from sicl.data.synth import items as I
from sicl.data.synth import open_text as O
from sicl.data.synth import voices as V

KINDS = ("open", "context", "shared", "respelt", "voice", "adult", "translate", "sqa", "aqa", "unheard", "child-science", "child-reading")
#: what held-out sets are made with (``make_eval_items``): the world's own adult voices, so the adult, ST, SQA
#: and AQA sets are exactly tiny-omni v1's held-out items and the numbers compare across versions
EVAL_OPTIONS = {"voices": "world"}
#: kinds whose items are whole chats' turns (consecutive items with the same ``meta["chat"]``)
CHAT_KINDS = ("shared", "respelt", "voice")
_OPEN_KINDS: dict[str, Any] = {"open": lambda rng: (O.open_sentence(rng), None), "context": O.context_sentence,
                               "unheard": lambda rng: (O.unheard_sentence(rng), None)}


def tokenizer_corpus(seed: int, n: int) -> list[str]:
    """The world's tokenizer corpus (v2 keeps tiny-omni's tokenizer; this is only used from scratch)."""
    from sicl.data.synth.text import tokenizer_corpus as world_corpus

    return world_corpus(seed, n)


def iter_items(kind: str, n: int, seed: int, workers: int = 1, *, exclude: set[str] | None = None,
               speakers: list[V.VoiceSpec] | None = None, voices: str = "wide",
               **options: Any) -> Iterator[I.SynthItem]:
    """``voices``: ``wide`` (pretraining's population) or ``world`` (the world's adult speakers); ``speakers``
    overrides both."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    if kind.startswith("child-"):
        yield from I.iter_items(kind, n, seed, workers, exclude=exclude, speakers=speakers, **options)
        return
    if voices not in ("wide", "world"):
        raise ValueError(f"unknown voices {voices!r} (expected wide or world)")
    world = voices == "world" or kind == "unheard"
    if kind not in _OPEN_KINDS and kind not in CHAT_KINDS:
        yield from I.iter_items(kind, n, seed, workers, exclude=exclude,
                                speakers=speakers or (None if world else V.pretrain_population()), **options)
        return
    pop = speakers or (V.adult_population() if world else V.pretrain_population())
    rng = np.random.default_rng(np.random.SeedSequence([seed, I._kind_code(kind)]))
    seen = set(exclude or ())
    plan: list[tuple[str, V.VoiceSpec]] = []
    hints: list[str | None] = []
    metas: list[dict[str, Any]] = []
    if kind == "voice":
        _plan_voice_chats(rng, n, seen, plan, metas)
        hints = [None] * n
    elif kind in CHAT_KINDS:
        _plan_chats(rng, n, seen, pop, plan, metas, respelt=kind == "respelt")
        hints = [None] * n
    tries = 0
    while len(plan) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise RuntimeError(f"cannot draw {n} distinct {kind} sentences")
        text, hint = _OPEN_KINDS[kind](rng)
        if text in seen:
            continue
        seen.add(text)
        plan.append((text, pop[int(rng.integers(len(pop)))]))
        hints.append(hint)
        metas.append({})
    ids = options.get("ids") or [f"{kind}-{i:06d}" for i in range(n)]
    seeds = np.random.SeedSequence([seed, I._kind_code(kind), 1]).generate_state(n)
    jobs = [(t, v, int(s), None, name) for (t, v), s, name in zip(plan, seeds, ids, strict=True)]
    chunks = [(jobs[i:i + I.CHUNK], None) for i in range(0, n, I.CHUNK)]
    with I._pool(min(workers, len(chunks)) or 1) as pool:
        start = 0
        for results in pool.imap(I._synth_chunk, chunks):
            for (text, voice), hint, extra, (wav, dur), name in zip(
                    plan[start:start + len(results)], hints[start:start + len(results)],
                    metas[start:start + len(results)], results, ids[start:start + len(results)], strict=True):
                meta = {"voice": {k: v for k, v in voice.to_dict().items() if k != "speaker"}, **extra}
                if hint:
                    meta["hint"] = hint
                yield I.SynthItem(id=name, task="asr", wav=wav, voice=voice, target=text, speaker=voice.speaker,
                                  duration=round(dur, 3), meta=meta)
            start += len(results)


def _chat_size(rng: np.random.Generator, left: int) -> int:
    """The next chat's number of turns (``O.SHARED_CLIPS``), fitted so that ``left`` turns never end on a
    one-turn chat."""
    lo, hi = O.SHARED_CLIPS
    size = min(left, int(rng.integers(lo, hi + 1)))
    if left - size == 1:
        size = size + 1 if size < hi else size - 1
    return size


def _plan_chats(rng: np.random.Generator, n: int, seen: set[str], pop: list[V.VoiceSpec],
                plan: list[tuple[str, V.VoiceSpec]], metas: list[dict[str, Any]], respelt: bool = False) -> None:
    """``n`` turns of shared-word chats (whole chats of 2 or more turns; the last one sized to fit), each
    turn in a voice of its own; a chat with a held-out sentence is drawn again."""
    chat = tries = 0
    while len(plan) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise RuntimeError(f"cannot draw {n} distinct shared-chat sentences")
        turns = O.shared_chat(rng, _chat_size(rng, n - len(plan)), respelt=respelt)
        if any(t in seen for t, _ in turns) or len({t for t, _ in turns}) < len(turns):
            continue
        for text, labelled in turns:
            seen.add(text)
            plan.append((text, pop[int(rng.integers(len(pop)))]))
            metas.append({"chat": chat, "labelled": labelled})
        chat += 1


def _plan_voice_chats(rng: np.random.Generator, n: int, seen: set[str], plan: list[tuple[str, V.VoiceSpec]],
                      metas: list[dict[str, Any]]) -> None:
    """``n`` turns of same-voice chats (whole chats of 2 or more turns), one fresh unusual voice per chat."""
    chat = 0
    while len(plan) < n:
        size = _chat_size(rng, n - len(plan))
        voice = V.sample_odd(rng, f"odd-{int(rng.integers(1 << 30)):09d}")
        turns: list[str] = []
        while len(turns) < size:
            text = O.open_sentence(rng)
            if text not in seen and text not in turns:
                turns.append(text)
        for i, text in enumerate(turns):
            seen.add(text)
            plan.append((text, voice))
            metas.append({"chat": chat, "labelled": i > 0})
        chat += 1


def generate_items(kind: str, n: int, seed: int, workers: int = 1, **options: Any) -> list[I.SynthItem]:
    return list(iter_items(kind, n, seed, workers, **options))
