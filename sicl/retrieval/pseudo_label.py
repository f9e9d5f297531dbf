"""Pseudo-labels: what an ASR model hears in a query clip, the text TICL retrieves with.

Labelers (``--pseudo-labeler``):

- ``backbone``: the auditory LLM's own zero-shot transcription (any sicl backbone, ``--model``, default
  ``tiny-omni``), greedy, with the shared answer extraction of :mod:`sicl.episodes.prompts`.
- ``hf-asr:<name-or-folder>``: a Hugging Face ASR model through ``transformers.pipeline`` (Whisper-style
  seq2seq or CTC), greedy; e.g. ``hf-asr:openai/whisper-large-v3-turbo`` (the TICL authors' choice) when
  downloads are allowed.
- ``gold``: the manifest's own text (oracle; for ablations, and for training queries when configured).
- ``file:<predictions.jsonl>``: the ``prediction`` of each query id in an earlier run's predictions file
  (e.g. a zero-shot ``sicl eval`` run, or any external ASR's output in that format). One fixed labeler for
  every method of a study means every method at a given k sees the same demonstrations, as with the TICL
  authors' fixed Whisper labeler.

Labels of model labelers are cached per clip, keyed by the labeler's identity (model fingerprint and
settings) and the clip's audio content hash, so re-running retrieval (or another k) transcribes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sicl.data.audio import SAMPLE_RATE, load_audio
from sicl.data.manifest import Example
from sicl.errors import SiclError
from sicl.retrieval.cache import StringCache, model_fingerprint


class PseudoLabeler(Protocol):
    #: Everything the output depends on besides the audio; the cache namespace.
    id: str

    def label(self, examples: Sequence[Example], wavs: Sequence[np.ndarray]) -> list[str]: ...


class GoldLabeler:
    """The oracle: the example's own source-language text (ASR target, else ``transcript``)."""

    id = "gold"

    def label(self, examples: Sequence[Example], wavs: Sequence[np.ndarray]) -> list[str]:
        out = []
        for ex in examples:
            if not ex.text_for_retrieval:
                raise SiclError(f"query {ex.id!r}: pseudo-labeler 'gold' needs its "
                                f"{'target' if ex.task == 'asr' else 'transcript'}, which is missing")
            out.append(ex.text_for_retrieval)
        return out


class FileLabeler:
    """Labels read from a predictions file (``id`` + ``prediction`` per JSON line)."""

    def __init__(self, path: str | Path) -> None:
        import hashlib
        import json

        self.path = Path(path)
        try:
            raw = self.path.read_bytes()
        except OSError as e:
            raise SiclError(f"{self.path}: cannot read pseudo-labels ({e.strerror})") from None
        self.labels: dict[str, str] = {}
        first: dict[str, int] = {}
        # split on newlines only (as JSON Lines is): str.splitlines would also break inside a label at U+2028
        for n, data in enumerate(raw.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1):  # a BOM is no label
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SiclError(f"{self.path}:{n}: not UTF-8 (byte {data[e.start]:#04x} at column {e.start + 1})"
                                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SiclError(f"{self.path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(
                    row.get("prediction"), str):
                raise SiclError(f"{self.path}:{n}: a pseudo-label row needs string fields id and prediction")
            qid, label = row["id"], row["prediction"]
            if qid in self.labels and self.labels[qid] != label:  # which one is meant? silently the last, before
                raise SiclError(f"{self.path}:{n}: id {qid!r} already has a different prediction on line "
                                f"{first[qid]} (one pseudo-label per query)")
            first.setdefault(qid, n)
            self.labels[qid] = label
        self.id = f"file:{hashlib.sha1(raw).hexdigest()}"

    def label(self, examples: Sequence[Example], wavs: Sequence[np.ndarray]) -> list[str]:
        missing = [ex.id for ex in examples if ex.id not in self.labels]
        if missing:
            raise SiclError(f"{self.path}: no pseudo-label for {len(missing)} query id(s), e.g. {missing[0]!r}")
        return [self.labels[ex.id] for ex in examples]


class BackboneLabeler:
    """Zero-shot ASR by a sicl backbone. Every clip is asked for a transcription (also ST queries: TICL
    matches what was said, in the source language)."""

    def __init__(self, model: str = "tiny-omni", max_new_tokens: int = 128, allow_download: bool = False,
                 backbone: Any = None, device: str = "auto") -> None:
        from sicl.retrieval.embed import backbone_id

        self.model, self.allow_download, self._backbone, self.device = model, allow_download, backbone, device
        self.max_new_tokens = max_new_tokens
        # The prompt preset changes the output, so it is part of the cache identity ("plain" when loaded here).
        preset = backbone.preset if backbone is not None else "plain"
        self.id = f"{backbone_id(model, allow_download)}:preset={preset}:max_new_tokens={max_new_tokens}"

    @property
    def backbone(self) -> Any:  # loaded on first use: a fully cached run needs no model
        if self._backbone is None:
            from sicl.retrieval.embed import load_shared_backbone

            self._backbone = load_shared_backbone(self.model, self.allow_download, self.device)
        return self._backbone

    def label(self, examples: Sequence[Example], wavs: Sequence[np.ndarray]) -> list[str]:
        from sicl.episodes.episode import Episode
        from sicl.models.chat_audio import extract_answers

        # As ASR, whatever the query's task; answers never leak in because nothing but audio is rendered.
        asr = [dataclasses.replace(ex, task="asr", question=None, choices=None, target=None) for ex in examples]
        episodes = [Episode(query=ex) for ex in asr]
        tower = dict(zip([ex.id for ex in asr], self.backbone.encode_audio(list(wavs)), strict=True))
        texts = self.backbone.generate(episodes, max_new_tokens=self.max_new_tokens, tower_outputs=tower)
        return extract_answers(texts, episodes, self.backbone.preset)


class HFASRLabeler:
    """Any transformers ASR checkpoint through ``pipeline("automatic-speech-recognition")``."""

    def __init__(self, model: str, max_new_tokens: int = 128, allow_download: bool = False,
                 batch_size: int = 8, device: str = "auto") -> None:
        import torch
        from transformers import pipeline

        from sicl.device import helper_dtype, resolve_device
        from sicl.models.zoo import resolve_model

        path = resolve_model(model, allow_download=allow_download)
        dev = resolve_device(device)
        try:
            self.pipe = pipeline("automatic-speech-recognition", model=str(path), device=dev,
                                 dtype=getattr(torch, helper_dtype(dev)))
        except Exception as e:  # unknown architecture, missing processor files: the user picked a bad model
            raise SiclError(f"{model}: cannot load as an ASR pipeline ({str(e).splitlines()[0][:200]})") from None
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.id = f"hf-asr:{model_fingerprint(path)}:max_new_tokens={max_new_tokens}"

    def label(self, examples: Sequence[Example], wavs: Sequence[np.ndarray]) -> list[str]:
        inputs = [{"raw": np.asarray(w, dtype=np.float32), "sampling_rate": SAMPLE_RATE} for w in wavs]
        kwargs: dict[str, Any] = {}
        if self.pipe.type == "seq2seq_whisper" or self.pipe.model.can_generate():
            kwargs["generate_kwargs"] = {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        out = self.pipe(inputs, batch_size=self.batch_size, **kwargs)
        return [str(o["text"]).strip() for o in out]


def make_labeler(spec: str, model: str = "tiny-omni", max_new_tokens: int = 128,
                 allow_download: bool = False, device: str = "auto") -> PseudoLabeler:
    """``backbone`` | ``gold`` | ``hf-asr:<name-or-folder>`` | ``file:<predictions.jsonl>``."""
    if spec == "gold":
        return GoldLabeler()
    if spec.startswith("file:") and len(spec) > len("file:"):
        return FileLabeler(spec.split(":", 1)[1])
    if spec == "backbone":
        return BackboneLabeler(model, max_new_tokens, allow_download, device=device)
    if spec.startswith("hf-asr:") and len(spec) > len("hf-asr:"):
        return HFASRLabeler(spec.split(":", 1)[1], max_new_tokens, allow_download, device=device)
    raise SiclError(f"unknown pseudo-labeler {spec!r} (expected backbone, gold, hf-asr:<model> "
                    "or file:<predictions.jsonl>)")


def pseudo_labels(examples: Sequence[Example], hashes: Sequence[str], labeler: PseudoLabeler,
                  cache_dir: str | Path | None = None, batch_size: int = 8, progress: bool = False) -> list[str]:
    """One label per example, from the cache where possible; new labels are cached batch by batch."""
    if isinstance(labeler, GoldLabeler | FileLabeler):
        return labeler.label(examples, [])
    cache = StringCache(cache_dir, "pseudo-label", labeler.id)
    todo: dict[str, Example] = {}
    for ex, h in zip(examples, hashes, strict=True):
        if h not in cache and h not in todo:
            todo[h] = ex  # identical audio under two ids is transcribed once
    items = list(todo.items())
    bar = None
    if progress and items:
        from sicl.progress import progress as tqdm

        bar = tqdm(total=len(items), desc="pseudo-labelling", unit="clip", leave=False, disable=None)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        wavs = [load_audio(ex.audio, max_seconds=None) for _, ex in chunk]
        labels = labeler.label([ex for _, ex in chunk], wavs)
        cache.update({h: text for (h, _), text in zip(chunk, labels, strict=True)})
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return [cache.get(h) or "" for h in hashes]
