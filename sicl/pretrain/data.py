"""Data for tiny-omni pretraining: synthetic single-example instructions, featurised once, streamed.

Worker processes call the synthetic world's ``generate_items`` with their own seeds (far from the world's),
drop sentences that appear in a held-out world's test splits, compute log-mel features at real length and
token ids, and send finished examples to the trainer. The trainer keeps a replay buffer and samples batches
from it, so the GPU never waits for synthesis and the CPU run reuses clips while fresh ones arrive.

Batch keys (``collate``): ``input_ids``/``attention_mask``/``labels`` ``(B, T)`` (right padded; labels are
-100 except on the answer and its ``<|im_end|>``), ``input_features`` ``(B, 128, F)`` and
``feature_attention_mask`` ``(B, F)`` (F = longest clip in mel frames), ``ctc_targets`` (flat int),
``ctc_lengths`` ``(B,)`` (0 where the example has no transcript).
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
import multiprocessing as mp
import os
import queue
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sicl.episodes import prompts
from sicl.models.processor import feature_extractor, log_mel, num_audio_tokens

CTC_ALPHABET = " abcdefghijklmnopqrstuvwxyz'0123456789"  # index 0 of the head is the CTC blank
SEED_OFFSET = 7_000_000  # pretraining seeds live far from any world-building seed


@dataclass
class Sample:
    """One featurised example (numpy, so it pickles cheaply between processes): any number of clips (0 for
    text-only data), token ids, and the labelled token spans (assistant answers, or a whole raw document)."""

    features: list[np.ndarray]  # one (128, L) float16 array per clip, in prompt order
    input_ids: np.ndarray  # (T,) int32
    spans: list[tuple[int, int]]  # [start, end) token ranges that carry the loss
    ctc: list[np.ndarray]  # one (C,) int16 array of character ids per clip, empty when no transcript
    kind: str


def ctc_encode(text: str | None) -> np.ndarray:
    """Lower-cased characters of a transcript as CTC ids (1-based; unknown characters become spaces)."""
    if not text:
        return np.zeros(0, np.int16)
    t = re.sub(r"[^a-z0-9' ]", " ", text.lower())
    t = re.sub(r"\s+", " ", t).strip()
    return np.array([CTC_ALPHABET.index(c) + 1 for c in t], np.int16)


def held_out_sentences(worlds: str | Path | None) -> set[str]:
    """Spoken sentences of the test splits of one or more built worlds (comma-separated folders), never
    to be trained on. A folder that holds no built world is an error, not an empty set: a typo here would
    silently let test sentences into pretraining."""
    from sicl.data.synth.world import world_sentences

    found: set[str] = set()
    for world in world_folders(worlds):
        found |= world_sentences(world)
    return found


def world_folders(worlds: str | Path | None) -> list[Path]:
    """The folders of ``exclude_world`` (comma-separated), each checked to hold a complete world (``world.json``);
    relative paths are resolved from the current directory. Cheap: :func:`sicl.pretrain.train.train` calls it
    before it writes anything."""
    from sicl.data.synth.world import PARTIAL
    from sicl.errors import SiclError

    if not worlds:
        return []
    here = f"relative paths are resolved from the current directory {Path.cwd()}"
    folders = []
    for entry in str(worlds).split(","):
        name = entry.strip()
        if not name:
            raise SiclError(f"exclude_world: {str(worlds)!r} has an empty entry (expected folders separated by commas)")
        world = Path(name).expanduser()
        if not world.exists():
            raise SiclError(f"exclude_world: {name}: no such folder" + ("" if world.is_absolute() else f" ({here})"))
        if (world / PARTIAL).is_file() and not (world / "world.json").is_file():
            raise SiclError(f"exclude_world: {name} holds an unfinished world build (finish it with the same "
                            f"command: sicl synth --out {name} ...)")
        if not (world / "world.json").is_file():
            raise SiclError(f"exclude_world: {name} holds no built world (build it with: sicl synth --out {name})")
        folders.append(world)
    return folders


def item_instruction(item: Any, preset: str = "plain") -> str:
    """The user text after an item's clip: its task instruction, after the item's text hint when it has one
    (contextual ASR, ``meta["hint"]``)."""
    hint = (getattr(item, "meta", None) or {}).get("hint")
    text = prompts.example_instruction(item, preset)
    return f"{hint}\n{text}" if hint else text


def prompt_text(tokenizer: Any, item: Any, n_audio: int, preset: str = "plain") -> str:
    """Chat prompt (with generation prompt) whose single ``<|AUDIO|>`` is expanded to ``n_audio`` copies."""
    messages = [{"role": "user", "content": prompts.user_content(item_instruction(item, preset))}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return text.replace(tokenizer.audio_token, tokenizer.audio_token * n_audio, 1)


def featurize(item: Any, tokenizer: Any, extractor: Any = None, preset: str = "plain") -> Sample:
    feats = log_mel(item.wav, extractor)
    prompt_ids = tokenizer(prompt_text(tokenizer, item, num_audio_tokens(feats.shape[1]), preset),
                           add_special_tokens=False)["input_ids"]
    answer = prompts.answer_text(item.target, item.task, preset) + "<|im_end|>"
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    transcript = item.transcript or (item.target if item.task == "asr" else None)
    n = len(prompt_ids) + len(answer_ids)
    return Sample([feats.astype(np.float16)], np.array(prompt_ids + answer_ids, np.int32), [(len(prompt_ids), n)],
                  [ctc_encode(transcript)], item.kind if hasattr(item, "kind") else item.task)


@functools.lru_cache(maxsize=4)
def _chat_pieces(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Token ids of the chat's opening system turn (``<|im_start|>system ... <|im_end|>\n``) and of the
    newline between turns; computed once per tokenizer (they are asked for on every chat built)."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    sys_ids = tokenizer(text[: text.index("<|im_start|>user")], add_special_tokens=False)["input_ids"]
    return sys_ids, tokenizer("\n", add_special_tokens=False)["input_ids"]


def compose_chat(samples: list[Sample], tokenizer: Any) -> Sample:
    """One multi-turn chat from single-turn samples (several unrelated clips in one prompt, as in real omni
    models' instruction data); every assistant turn carries the loss. Token ids equal those of the
    chat template's rendering of the same turns (tested)."""
    sys_ids, nl = _chat_pieces(tokenizer)
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    for i, s in enumerate(samples):
        own = s.input_ids.tolist()
        if own[: len(sys_ids)] != sys_ids:
            raise ValueError("sample does not start with the default system turn")
        if i:
            own = nl + own[len(sys_ids):]
            shift = len(ids) - len(sys_ids) + len(nl)
        else:
            shift = 0
        spans += [(a + shift, b + shift) for a, b in s.spans]
        ids += own
    return Sample([f for s in samples for f in s.features], np.array(ids, np.int32), spans,
                  [c for s in samples for c in s.ctc], "chat")


def featurize_text(turns: list[tuple[str, str]], document: str | None, tokenizer: Any) -> Sample:
    """A text-only example: a chat of (user, assistant) turns (loss on the assistant turns) or a raw
    document (loss on every token)."""
    if document is not None:
        ids = tokenizer(document, add_special_tokens=False)["input_ids"]
        return Sample([], np.array(ids, np.int32), [(1, len(ids))], [], "text")
    sys_ids, nl = _chat_pieces(tokenizer)
    ids, spans = list(sys_ids), []
    for i, (user, answer) in enumerate(turns):
        if i:
            ids += nl
        ids += tokenizer(f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n",
                         add_special_tokens=False)["input_ids"]
        a = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        spans.append((len(ids), len(ids) + len(a)))
        ids += a
    return Sample([], np.array(ids, np.int32), spans, [], "text")


def collate(samples: list[Sample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded token batch; ``input_features`` holds every clip of the batch in prompt order
    (``(N_clips, 128, F)``, absent when the batch has no audio), ``ctc_lengths`` one entry per clip."""
    b = len(samples)
    t = max(len(s.input_ids) for s in samples)
    clips = [f for s in samples for f in s.features]
    ids = torch.full((b, t), pad_id, dtype=torch.long)
    att = torch.zeros((b, t), dtype=torch.long)
    labels = torch.full((b, t), -100, dtype=torch.long)
    for i, s in enumerate(samples):
        n = len(s.input_ids)
        ids[i, :n] = torch.from_numpy(s.input_ids.astype(np.int64))
        att[i, :n] = 1
        for a, e in s.spans:
            labels[i, a:e] = ids[i, a:e]
    out = {"input_ids": ids, "attention_mask": att, "labels": labels}
    if clips:
        f = max(c.shape[1] for c in clips)
        feats = torch.zeros((len(clips), 128, f), dtype=torch.float32)
        fmask = torch.zeros((len(clips), f), dtype=torch.long)
        for i, c in enumerate(clips):
            feats[i, :, :c.shape[1]] = torch.from_numpy(c.astype(np.float32))
            fmask[i, :c.shape[1]] = 1
        ctc = [torch.from_numpy(c.astype(np.int64)) for s in samples for c in s.ctc]
        out.update(input_features=feats, feature_attention_mask=fmask, ctc_targets=torch.cat(ctc),
                   ctc_lengths=torch.tensor([len(c) for c in ctc], dtype=torch.long))
    return out


def _worker(rank: int, out_q: Any, stop: Any, tokenizer_dir: str, source: str, kinds: list[str],
            weights: list[float], seed: int, chunk: int, exclude: set[str], preset: str) -> None:
    """Generate -> featurise forever; one chunk of one kind at a time (exclusion happens in generate_items)."""
    torch.set_num_threads(1)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    synth = importlib.import_module(source)
    fe = feature_extractor()
    rng = random.Random(seed * 1000 + rank)
    parent = os.getppid()
    n = 0
    while not stop.is_set() and os.getppid() == parent:  # exit when the trainer dies without telling us
        kind = rng.choices(kinds, weights)[0]
        chunk_seed = SEED_OFFSET + seed * 100_000_000 + rank * 1_000_000 + n
        n += 1
        items = (item for item in synth.generate_items(kind, chunk, seed=chunk_seed, exclude=exclude)
                 if (item.meta or {}).get("category") != "age")  # child voices: never in pretraining
        samples = (_shared_chats(items, tok, fe, preset) if kind in getattr(synth, "CHAT_KINDS", ("shared",))
                   else (_featurized(item, tok, fe, preset, kind) for item in items))
        for s in samples:
            while not stop.is_set() and os.getppid() == parent:
                try:
                    out_q.put(s, timeout=0.5)
                    break
                except queue.Full:
                    continue


def _featurized(item: Any, tok: Any, fe: Any, preset: str, kind: str) -> Sample:
    s = featurize(item, tok, fe, preset)
    s.kind = kind
    return s


def _shared_chats(items: Any, tok: Any, fe: Any, preset: str) -> Any:
    """One chat per run of consecutive items with the same ``meta["chat"]`` (the ``shared`` kind: clips that
    share words, :func:`sicl.data.synth.open_text.shared_chat`); a turn that is not ``meta["labelled"]``
    (it speaks a made-up word no earlier turn spelled) is context only: no loss on its answer. A chat with
    no labelled turn is dropped."""
    for _, turns in itertools.groupby(items, key=lambda it: (it.meta or {}).get("chat")):
        turns = list(turns)
        samples = [featurize(it, tok, fe, preset) for it in turns]
        for it, s in zip(turns, samples, strict=True):
            if not (it.meta or {}).get("labelled", True):
                s.spans = []
        if any(s.spans for s in samples):
            chat = compose_chat(samples, tok)
            chat.kind = "shared"
            yield chat


class ClipStream:
    """Background synthesis into a replay buffer; :meth:`batch` samples from the buffer."""

    def __init__(self, tokenizer_dir: str | Path, source: str, mix: dict[str, float], workers: int,
                 seed: int, buffer_size: int, exclude: set[str] | None = None, chunk: int = 48,
                 preset: str = "plain") -> None:
        ctx = mp.get_context("spawn")  # fork after torch/OpenMP init can deadlock
        # Not daemonic: generate_items starts its own synthesis process per chunk, which daemons may not.
        self.q = ctx.Queue(maxsize=4096)
        self.stop = ctx.Event()
        # Text-only examples cost microseconds, so every text batch is made fresh here, never replayed: v2's
        # first run drew them from the replay buffer, where ~2,500 examples were drawn ~6 times each and the
        # model memorised their answers instead of learning to copy (docs/tiny-omni.md).
        self.fresh_text = mix.get("text", 0) > 0
        self.text_rng = np.random.default_rng(SEED_OFFSET + seed * 100_000_000 + 999_000_000)
        kinds = [k for k, w in mix.items() if w > 0 and k != "text"]
        self.procs = [ctx.Process(target=_worker, daemon=False,
                                  args=(r, self.q, self.stop, str(tokenizer_dir), source, kinds,
                                        [mix[k] for k in kinds], seed, chunk, exclude or set(), preset))
                      for r in range(workers)]
        for p in self.procs:
            p.start()
        self.buffers: dict[str, list[Sample]] = {"audio": []}
        self.buffer_size = buffer_size
        self.received = 0
        self.drawn = 0  # clips drawn from the buffer into batches (a chat draws several)
        self.rng = random.Random(seed)

    def drain(self, min_new: int = 0) -> int:
        """Move finished samples into the buffer; block until ``min_new`` have arrived."""
        got = 0
        while True:
            try:
                s = self.q.get(timeout=5.0) if got < min_new else self.q.get_nowait()
            except queue.Empty:
                if got >= min_new:
                    return got
                if not any(p.is_alive() for p in self.procs):
                    raise RuntimeError("all data workers died (see their traceback above)") from None
                continue
            got += 1
            self.received += len(s.features)
            # Shared-word chats come whole from the workers and are replayed whole (their own buffer, a
            # quarter of the size); every other sample is one clip, combined into chats here.
            name, cap = ("shared", max(1, self.buffer_size // 4)) if s.kind == "shared" else ("audio", self.buffer_size)
            buf = self.buffers.setdefault(name, [])
            if len(buf) < cap:
                buf.append(s)
            else:  # replace a random old sample: the buffer keeps a mix of ages
                buf[self.rng.randrange(cap)] = s

    def owed(self, max_replay: float) -> int:
        """Fresh clips still to wait for so that clips drawn / clips received stays <= ``max_replay``
        (0: never wait). On a GPU the trainer can draw clips far faster than the workers synthesise them
        (tiny-omni v7's run: ~60 fresh clips/s, ~530 examples/s trained with the cap at 6)."""
        if max_replay <= 0:
            return 0
        return max(0, math.ceil(self.drawn / max_replay) - self.received)

    @property
    def buffer(self) -> list[Sample]:
        return self.buffers["audio"]

    def ready(self, group: str) -> bool:
        if group == "text":
            return self.fresh_text
        return bool(self.buffers.get("shared" if group == "shared" else "audio"))

    def batch(self, size: int, group: str = "single", tokenizer: Any = None,
              clips: tuple[int, int] = (2, 5)) -> list[Sample]:
        """``size`` examples of one group: ``single`` (one clip each), ``text`` (no audio), ``chat``
        (each a multi-turn chat of ``clips[0]..clips[1]`` unrelated buffered clips; needs ``tokenizer``) or
        ``shared`` (buffered chats whose clips share words, the ``shared`` kind)."""
        if group == "text":
            from sicl.data.synth import open_text

            if not self.fresh_text or tokenizer is None:
                raise ValueError("text batches need 'text' in the mix and a tokenizer")
            return [featurize_text(*open_text.text_example(self.text_rng), tokenizer) for _ in range(size)]
        if group == "shared":
            chats = self.buffers["shared"]
            out = [chats[self.rng.randrange(len(chats))] for _ in range(size)]
            self.drawn += sum(len(c.features) for c in out)
            return out
        buf = self.buffers["audio"]
        pick = lambda: buf[self.rng.randrange(len(buf))]  # noqa: E731
        if group != "chat":
            self.drawn += size
            return [pick() for _ in range(size)]
        chats = [[pick() for _ in range(self.rng.randint(*clips))] for _ in range(size)]
        self.drawn += sum(len(c) for c in chats)
        return [compose_chat(c, tokenizer) for c in chats]

    def close(self) -> None:
        self.stop.set()
        for p in self.procs:
            p.join(timeout=2)
            if p.is_alive():
                p.terminate()
