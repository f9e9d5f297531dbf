"""Task items of the synthetic world, generated in memory: shared by the world writer and model pretraining.

``generate_items(kind, n, seed)`` is deterministic: the text, the voices and the audio depend only on
``(kind, n, seed)`` (plus the keyword options), never on ``workers``. Text and voices are drawn in the
calling process; audio is synthesised in fixed chunks of ``CHUNK`` items, each chunk in a fresh worker
process, because espeak-ng carries state (pitch flutter, echo) from one utterance to the next inside a
process, so a clip is reproducible only given the same preceding clips from a fresh start.

Pretraining use: ``generate_items("adult" | "translate" | "sqa" | "aqa", n, seed=S, exclude=world_sentences(DIR))``
with a seed the world never uses (the world derives its per-split seeds from ``(seed, kind, split)`` through
``numpy.random.SeedSequence``, see ``split_seed``); ``exclude`` drops any sentence of the world's splits.

Workers are started with the ``forkserver`` method (safe from a process that has torch threads), so a
script calling this must guard its entry point with ``if __name__ == "__main__":``. A clip is ~160 KB of
float32 (2.4 s on average): stream large sets with ``iter_items`` instead of holding tens of thousands.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.pool
import os
import signal
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from multiprocessing import popen_forkserver, popen_spawn_posix
from pathlib import Path
from typing import Any

import numpy as np

from sicl.data.synth import text as T
from sicl.data.synth import voices as V
from sicl.data.synth.tts import SAMPLE_RATE

KINDS = ("adult", "translate", "sqa", "aqa", "child-science", "child-reading", "names")
CHUNK = 128  # items per fresh process; part of the determinism contract (changing it changes audio)
_TASK = {"adult": "asr", "translate": "st", "sqa": "sqa", "aqa": "aqa", "child-science": "asr",
         "child-reading": "asr", "names": "asr"}


@dataclass
class SynthItem:
    """An ``Example`` without an audio path, with the waveform (float32, 16 kHz) and the speaker's voice.
    ``wav`` is empty when the audio was written to disk by ``iter_items(..., audio_dir=...)``."""

    id: str
    task: str
    wav: np.ndarray
    voice: V.VoiceSpec
    target: str | None = None
    question: str | None = None
    choices: list[str] | None = None
    lang: str = "en"
    target_lang: str | None = None
    transcript: str | None = None
    speaker: str | None = None
    duration: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _kind_code(kind: str) -> int:
    return zlib.crc32(kind.encode())


def split_seed(seed: int, kind: str, split: str) -> int:
    """The seed the world uses for one split: a hash of (seed, kind, split), far from small user seeds."""
    ss = np.random.SeedSequence([seed, _kind_code(kind), _kind_code(split)])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


# ------------------------------------------------------------------------------------------ planning
def _aqa_plan(i: int, rng: np.random.Generator, cats: list[str], adults: list[V.VoiceSpec],
              kids: list[V.VoiceSpec]) -> tuple[dict, V.VoiceSpec, float | None]:
    """One AQA item; category and answer cycle with ``i`` so answers are balanced."""
    cat = cats[i % len(cats)]
    question, options, difficulty = T.AQA_QUESTIONS[cat]
    turn = i // len(cats)
    voice = adults[int(rng.integers(len(adults)))]
    gain = None
    text = T.adult_sentence(rng).text
    choices = list(options)
    if cat == "age":
        answer = options[turn % 2]
        if answer == "a child":
            voice = kids[int(rng.integers(len(kids)))]
    elif cat == "pitch":
        answer = options[turn % 2]
        voice = replace(voice, variant=V.FEMALE[int(rng.integers(len(V.FEMALE)))], pitch=int(rng.integers(85, 100))) \
            if answer == "high" else replace(voice, variant=V.MALE[int(rng.integers(len(V.MALE)))],
                                             pitch=int(rng.integers(0, 15)))
    elif cat == "loudness":
        answer = options[turn % 2]
        gain = float(rng.uniform(0.7, 0.95)) if answer == "loud" else float(rng.uniform(0.02, 0.06))
    elif cat == "gender":
        answer = options[turn % 2]
        pool = V.MALE if answer == "male" else V.FEMALE
        voice = replace(voice, variant=pool[int(rng.integers(len(pool)))], pitch=int(rng.integers(35, 61)))
    elif cat == "rate":
        answer = options[turn % 2]
        voice = replace(voice, rate=int(rng.integers(240, 290)) if answer == "fast" else int(rng.integers(95, 120)),
                        rate_jitter=0.0)
    elif cat == "count":
        answer = options[turn % len(options)]
        k = options.index(answer) + 2
        words = sorted(T.ADULT_VOCAB)
        text = " ".join(words[int(j)] for j in rng.choice(len(words), k, replace=False))
        others = [o for o in options if o != answer]
        choices = [answer] + [others[int(j)] for j in rng.choice(len(others), 3, replace=False)]
    else:  # accent
        labels = list(V.ACCENT_LABELS.items())
        accent, answer = labels[turn % len(labels)]
        voice = replace(voice, accent=accent)
    choices = [choices[int(j)] for j in rng.permutation(len(choices))]
    fields = dict(target=answer, question=question, choices=choices, transcript=text,
                  meta={"category": cat, "difficulty": difficulty})
    return fields, voice, gain


@dataclass
class Reread:
    """A sentence to be read again by another speaker (``iter_items(rereads=...)``): the item's ``fields``
    (``target``, ``meta``) and the speakers who read it already. Items sharing one ``Reread``'s ``read_by`` set
    get distinct speakers: the set grows as speakers are drawn."""

    fields: dict[str, Any]
    read_by: set[str]


def _reread(rng: np.random.Generator, r: Reread, voices: list[V.VoiceSpec]) -> tuple[dict, V.VoiceSpec]:
    free = [v for v in voices if v.speaker not in r.read_by]
    if not free:
        raise ValueError(f"every one of the {len(voices)} speakers read {r.fields.get('target')!r} already")
    voice = free[int(rng.integers(len(free)))]
    r.read_by.add(voice.speaker)
    return {**r.fields, "meta": dict(r.fields.get("meta") or {})}, voice


def _plan(kind: str, n: int, seed: int, exclude: set[str], speakers: list[V.VoiceSpec] | None,
          topics: list[str] | list[int] | None, version: int = 1,
          rereads: list[Reread] | None = None) -> list[tuple[dict, V.VoiceSpec, float | None]]:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, _kind_code(kind)]))
    child = kind.startswith("child-")
    domain = kind.removeprefix("child-")
    voices = speakers or (V.classroom(domain) if child else V.adult_population())
    kids = V.classroom("aqa")
    cats = list(T.AQA_QUESTIONS)
    plan: list[tuple[dict, V.VoiceSpec, float | None]] = []
    if rereads:  # other speakers' readings of given sentences come first; fresh sentences fill the rest
        if kind not in ("adult", "child-science", "child-reading", "names"):
            raise ValueError(f"rereads are for ASR kinds, not {kind!r}")
        plan = [(*_reread(rng, r, voices), None) for r in rereads[:n]]
    seen = set(exclude)
    tries = 0
    while len(plan) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise RuntimeError(f"cannot draw {n} distinct {kind} sentences (exclude holds {len(exclude)})")
        i = len(plan)
        gain = None
        if kind == "aqa":
            fields, voice, gain = _aqa_plan(i, rng, cats, voices, kids)
        else:
            voice = voices[int(rng.integers(len(voices)))]
            if kind == "sqa":
                sent, q, choices, answer = T.sqa_item(rng)
                fields = dict(target=answer, question=q, choices=choices, transcript=sent.text)
            elif child:
                topic = topics[i % len(topics)] if topics else None
                sent = (T.science_sentence if domain == "science" else T.reading_sentence)(rng, topic, version)
                fields = dict(target=sent.text, meta={"topic": sent.topic})
            elif kind == "names":
                from sicl.data.synth.open_text import name_sentence

                sent = name_sentence(rng, topics[i % len(topics)] if topics else None)
                fields = dict(target=sent.text, meta={"topic": sent.topic, "names": sent.slots["names"].split()})
            elif kind == "adult" and version >= 2:
                from sicl.data.synth.open_text import world_adult_sentence

                sent = world_adult_sentence(rng)
                fields = dict(target=sent.text, **({"meta": {"topic": sent.topic}} if sent.topic else {}))
            else:
                sent = T.adult_sentence(rng)
                fields = dict(target=sent.text)
                if kind == "translate":
                    fields = dict(target=T.translate(sent.text), transcript=sent.text, target_lang=T.TARGET_LANG)
        spoken = fields.get("transcript") or fields["target"]
        if kind != "aqa" or fields["meta"]["category"] != "count":
            if spoken in seen:
                continue
            seen.add(spoken)
        plan.append((fields, voice, gain))
    return plan


# ------------------------------------------------------------------------------------------ synthesis
def _synth_chunk(args: tuple) -> list[tuple[np.ndarray | None, float]]:
    """Runs in a fresh process: synthesise a chunk in order (see module docstring)."""
    jobs, audio_dir = args
    out = []
    for text, voice, utt_seed, gain, name in jobs:
        wav = voice.synthesize(text, np.random.default_rng(utt_seed))
        if gain is not None:  # AQA loudness: set the peak level
            wav = (wav * (gain / max(float(np.abs(wav).max()), 1e-6))).astype(np.float32)
        if audio_dir is not None:
            from sicl.data.audio import write_audio

            write_audio(Path(audio_dir) / f"{name}.flac", wav)
            out.append((None, len(wav) / SAMPLE_RATE))
        else:
            out.append((wav, len(wav) / SAMPLE_RATE))
    return out


def _worker_init() -> None:
    """A pool worker ignores SIGINT and SIGTERM: stopping it is left to the process that started it (its owner),
    which terminates the pool with SIGKILL (:class:`_Pool`). Ctrl-C and ``timeout`` signal the command's whole
    process group, a cluster or systemd each of its processes: a worker killed by that may hold one of the pool's
    queue locks (an idle worker waiting for a chunk holds one), and terminating the pool then waits for that lock
    forever; one interrupted mid-clip printed a traceback. Ignored, both are also unblocked (a worker inherits the
    fork server's mask, :func:`_start_forkserver`; one already sent is dropped). A worker whose owner died (SIGKILL;
    pretraining's data workers are terminated while they synthesise) exits at once and quietly
    (:func:`_exit_with_parent`): finishing its chunk, it printed a BrokenPipeError traceback."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()


def _exit_with_parent() -> None:
    parent = mp.parent_process()
    if parent is not None:
        parent.join()  # returns once the process that started this worker has exited
        os._exit(0)


#: what a terminal (Ctrl-C), ``timeout``, a cluster or systemd (SIGTERM) send to a command's processes
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _start_forkserver() -> None:
    """Start the fork server with SIGINT and SIGTERM blocked (it keeps that mask, and the workers it forks start with
    it). A SIGTERM sent to every process of the command would otherwise kill it while the pool still starts a
    process for every chunk through it: the pool's worker-handler thread then dies with a traceback (``EOFError``),
    and terminating the pool waits for that thread forever. It exits once its parent and the workers it forked
    have exited."""
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()  # first: starting it unblocks SIGINT and SIGTERM again when done
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _KillingForkServerPopen(popen_forkserver.Popen):
    def terminate(self) -> None:
        self.kill()  # the worker ignores SIGTERM (_worker_init)


class _KillingSpawnPopen(popen_spawn_posix.Popen):
    def terminate(self) -> None:
        self.kill()


class _ForkServerWorker(mp.context.ForkServerProcess):
    _Popen = staticmethod(_KillingForkServerPopen)


class _SpawnWorker(mp.context.SpawnProcess):
    _Popen = staticmethod(_KillingSpawnPopen)


class _Pool(multiprocessing.pool.Pool):
    """A pool whose workers are stopped with SIGKILL where the stock pool sends SIGTERM, which they ignore
    (:func:`_worker_init`): by ``terminate`` (on leaving ``with``), once it holds the queue locks, and by
    multiprocessing's clean-up of a process's daemon children when it exits."""

    @staticmethod
    def Process(ctx: Any, *args: Any, **kwds: Any) -> Any:  # noqa: N802 (multiprocessing's name)
        return (_ForkServerWorker if ctx.get_start_method() == "forkserver" else _SpawnWorker)(*args, **kwds)


def _pool(workers: int) -> _Pool:
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["sicl.data.synth.items", "sicl.data.audio"])
        _start_forkserver()
    # maxtasksperchild=1: every chunk starts from a pristine espeak-ng state.
    return _Pool(processes=max(1, workers), maxtasksperchild=1, initializer=_worker_init, context=ctx)


def _until_stopped(results: Any, stop: Callable[[], bool] | None) -> Iterator[Any]:
    """A pool's ``imap`` results, asking ``stop`` every 0.2 s while the next chunk is synthesised; when it says so:
    KeyboardInterrupt (as Ctrl-C), raised here, where the caller's pool is whole and terminated on the way out (a
    signal handler raising at any moment could interrupt the pool while it starts a process)."""
    if stop is None:
        yield from results
        return
    while not stop():
        try:
            chunk = results.next(timeout=0.2)
        except StopIteration:
            return
        except mp.TimeoutError:
            continue
        yield chunk
    raise KeyboardInterrupt


def iter_items(kind: str, n: int, seed: int, workers: int = 1, *, exclude: set[str] | None = None,
               speakers: list[V.VoiceSpec] | None = None, topics: list[str] | list[int] | None = None,
               ids: list[str] | None = None, audio_dir: str | Path | None = None,
               version: int = 1, rereads: list[Reread] | None = None,
               stop: Callable[[], bool] | None = None) -> Iterator[SynthItem]:
    """Yield the items of ``generate_items`` in order, as chunks finish (keeps memory flat).

    ``exclude``: spoken sentences never to produce. ``speakers``: voices to draw from (default: the adult
    population, or the domain's classroom for child kinds). ``topics``: child topics, or ``names`` topic
    indices (:func:`open_text.name_topics`), cycled. ``ids``: item
    ids (default ``<kind>-<i>``). ``audio_dir``: write ``<id>.flac`` there from the workers instead of
    returning waveforms. ``version``: the text of that world version (2: rare-word topics in adult speech and
    longer child sentences; 1: the original grammars). Child voices are always the current classrooms.
    ``rereads``: the first ``len(rereads)`` items read these sentences again, each by a speaker not in its
    ``read_by`` (ASR kinds; world v4's shared sentences); the rest are fresh sentences, none in ``exclude``.
    ``stop``: asked while the workers synthesise (every 0.2 s); true: the pool is terminated and KeyboardInterrupt
    raised (``sicl synth`` stops so on SIGTERM and SIGINT).
    """
    plan = _plan(kind, n, seed, exclude or set(), speakers, topics, version, rereads)
    ids = ids or [f"{kind}-{i:06d}" for i in range(n)]
    if len(ids) != n:
        raise ValueError("ids must hold n entries")
    seeds = np.random.SeedSequence([seed, _kind_code(kind), 1]).generate_state(n)
    jobs = [((f.get("transcript") or f["target"]), v, int(s), g, name)
            for (f, v, g), s, name in zip(plan, seeds, ids, strict=True)]
    chunks = [(jobs[i:i + CHUNK], str(audio_dir) if audio_dir else None) for i in range(0, n, CHUNK)]
    if stop is not None and stop():
        raise KeyboardInterrupt
    with _pool(min(workers, len(chunks)) or 1) as pool:
        start = 0
        for results in _until_stopped(pool.imap(_synth_chunk, chunks), stop):
            for (fields, voice, _), (wav, dur), name in zip(plan[start:start + len(results)], results,
                                                            ids[start:start + len(results)], strict=True):
                meta = dict(fields.pop("meta", {}) or {})
                meta["voice"] = {k: v for k, v in voice.to_dict().items() if k != "speaker"}
                yield SynthItem(id=name, task=_TASK[kind], wav=wav if wav is not None else np.zeros(0, np.float32),
                                voice=voice, speaker=voice.speaker, duration=round(dur, 3), meta=meta, **fields)
            start += len(results)


def generate_items(kind: str, n: int, seed: int, workers: int = 1, **options: Any) -> list[SynthItem]:
    """``n`` items of ``kind`` (adult | translate | sqa | aqa | child-science | child-reading | names); identical for
    any ``workers``. Options: see :func:`iter_items`."""
    return list(iter_items(kind, n, seed, workers, **options))
