"""Generation backends for ``sicl eval``: the one step that turns episodes into text.

The runner only needs :class:`GenerationBackend`: ``generate(episodes) -> [Generation]`` (raw text plus
token counts for the cost columns) and ``plan(demos)`` (told once, before generating, which demonstration
clips the run will use). Everything else (retrieval, ordering, batching, sharding, resume, files) stays
in :mod:`sicl.eval.runner`, so another engine (e.g. vLLM) is one new class registered under a name:

    @register_backend("vllm")
    def _load_vllm(cfg) -> GenerationBackend: ...

and ``sicl eval --backend vllm`` picks it. ``hf`` (the default) runs a sicl backbone through transformers;
``vllm`` runs Qwen2.5-Omni models on vLLM (:mod:`sicl.eval.vllm_backend`, imported only when chosen).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from sicl.data.manifest import Example
from sicl.errors import SiclError
from sicl.models.backbone import DEFAULT_MAX_NEW_TOKENS, Backbone, max_positions, task_limit
from sicl.models.tower_cache import TowerCache

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "Generation", "GenerationBackend", "HFBackend", "backends", "load_backend",
           "register_backend", "shared_tower_cache", "task_limit"]


@dataclass
class Generation:
    """One episode's output: raw text (special tokens removed) and its token counts."""

    text: str
    prompt_audio_tokens: int = 0
    prompt_text_tokens: int = 0
    generated_tokens: int = 0


class GenerationBackend(Protocol):
    name: str
    #: the prompt preset (answer extraction must use the same one)
    preset: str

    def plan(self, demos: Sequence[Example]) -> None:
        """Every demonstration clip the run will use (lets a backend encode them once, deterministically)."""

    def generate(self, episodes: Sequence[Any]) -> list[Generation]:
        """Greedy output per episode, in order. Must not depend on which other episodes share the call
        in a way that changes results run to run: the runner always passes the same batches."""


_BACKENDS: dict[str, Callable[..., GenerationBackend]] = {}


def register_backend(name: str) -> Callable[[Callable[..., GenerationBackend]], Callable[..., GenerationBackend]]:
    def deco(fn: Callable[..., GenerationBackend]) -> Callable[..., GenerationBackend]:
        _BACKENDS[name] = fn
        return fn

    return deco


def backends() -> list[str]:
    return sorted(_BACKENDS)


def load_backend(name: str, **kwargs: Any) -> GenerationBackend:
    if name not in _BACKENDS:
        raise SiclError(f"unknown generation backend {name!r} (known: {', '.join(backends())})")
    return _BACKENDS[name](**kwargs)


class HFBackend:
    """Any sicl :class:`~sicl.models.backbone.Backbone` (every registered family) in this process, through
    the protocol only: batched, left-padded, greedy (:meth:`~sicl.models.backbone.Backbone.generate_batch`).

    Demonstration clips go through the frozen audio front end once per run (:class:`TowerCache`) and their
    outputs are spliced into every prompt that uses them. They are encoded in fixed groups (sorted by
    length, then id, ``encode_batch`` per group) decided by :meth:`plan`, so a clip's cached output does
    not depend on which query needed it first: a resumed or sharded run computes bit-identical inputs.
    Query clips are encoded with their batch and cached too (a k-sweep encodes each query once).

    ``tower_cache``: a cache shared with other backends of the same base model (the tower is frozen and
    adapters touch only the language model), e.g. across the methods of a study; see
    :func:`shared_tower_cache`."""

    name = "hf"

    def __init__(self, backbone: Backbone, max_new_tokens: int | Mapping[str, int] | None = None,
                 encode_batch: int = 16, tower_cache: TowerCache | None = None) -> None:
        self.backbone = backbone
        self.preset = backbone.preset
        self.max_new_tokens = max_new_tokens
        self.encode_batch = encode_batch
        if tower_cache is not None:
            tower_cache.backbone = backbone  # same frozen tower; encode with the live model
        self.cache = tower_cache if tower_cache is not None else TowerCache(backbone)
        self._audio = self.cache.audio_paths
        self._group: dict[str, list[Example]] = {}
        self.seconds_encoding = 0.0
        #: the language model's positions (None: unknown); a longer prompt is refused before generating
        self.max_positions = max_positions(backbone.model)

    def plan(self, demos: Sequence[Example]) -> None:
        uniq = {ex.id: ex for ex in demos if ex.id not in self._group}
        order = sorted(uniq.values(), key=lambda ex: (ex.duration or 0.0, ex.id))
        for i in range(0, len(order), self.encode_batch):
            group = order[i:i + self.encode_batch]
            for ex in group:
                self._group[ex.id] = group

    def _fill(self, episodes: Sequence[Any]) -> None:
        for ep in episodes:
            for ex in [*ep.demos, ep.query]:
                seen = self._audio.setdefault(ex.id, ex.audio)
                if seen != ex.audio:
                    raise SiclError(f"example id {ex.id!r} names two audio files ({seen}, {ex.audio}); "
                                    f"ids must be unique across the sets evaluated with one tower cache")
        for ep in episodes:
            for d in ep.demos:
                if d.id not in self.cache:
                    if d.id not in self._group:
                        self.plan([d])
                    self.cache.fill(self._group[d.id])
        self.cache.fill([ep.query for ep in episodes])  # this batch's queries, as one group

    def check_prompt_lengths(self, episodes: Sequence[Any], prompt_lens: Sequence[int]) -> None:
        """A prompt longer than the model's positions (``max_position_embeddings``) would run and give garbage:
        refused, naming the query, the prompt's length and the limit."""
        limit = self.max_positions
        if not limit:
            return
        for ep, n in zip(episodes, prompt_lens, strict=True):
            if n > limit:
                k = len(getattr(ep, "demos", ()) or ())
                fix = "use a smaller --k (fewer demonstrations) or a pool of shorter clips and transcripts" if k \
                    else "use a shorter clip"
                raise SiclError(f"query {ep.query.id!r}: the prompt is {n} tokens ({k} demonstration"
                                f"{'' if k == 1 else 's'}), more than the model's {limit} positions "
                                f"(max_position_embeddings), so its output would be garbage; {fix}")

    @torch.no_grad()
    def generate(self, episodes: Sequence[Any]) -> list[Generation]:
        if not episodes:
            return []
        bb = self.backbone
        t0 = time.perf_counter()
        self._fill(episodes)
        self.seconds_encoding += time.perf_counter() - t0
        limits = [task_limit(self.max_new_tokens, ep.query.task) for ep in episodes]
        batch = bb.render(episodes, with_labels=False, padding_side="left", tower_outputs=self.cache)
        prompt_lens = batch.attention_mask.sum(1).tolist()
        self.check_prompt_lengths(episodes, prompt_lens)
        rows = bb.generate_batch(batch, limits)
        results, clip = [], 0
        for row, ep, n_prompt in zip(rows, episodes, prompt_lens, strict=True):
            n_clips = len(ep.demos) + 1
            audio = sum(batch.audio_tokens[clip:clip + n_clips])
            clip += n_clips
            results.append(Generation(text=bb.decode(row), prompt_audio_tokens=int(audio),
                                      prompt_text_tokens=int(n_prompt - audio), generated_tokens=len(row)))
        return results


@register_backend("hf")
def _load_hf(model: str = "tiny-omni", adapter: str | None = None, device: str = "cpu",
             dtype: str = "float32", preset: str = "plain", allow_download: bool = False,
             max_new_tokens: int | Mapping[str, int] | None = None, backbone: Backbone | None = None,
             tower_cache: TowerCache | None = None, audio_tokenizer: str | None = None) -> HFBackend:
    if backbone is None:
        from sicl.models.registry import load_backbone

        backbone = load_backbone(model, adapter=adapter, dtype=dtype, device=device, preset=preset,
                                 allow_download=allow_download, audio_tokenizer=audio_tokenizer)
    backbone.model.eval()
    return HFBackend(backbone, max_new_tokens=max_new_tokens, tower_cache=tower_cache)


@register_backend("vllm")
def _load_vllm(**kwargs: Any) -> GenerationBackend:
    """vLLM's native Qwen2.5-Omni (:mod:`sicl.eval.vllm_backend`); needs the vLLM environment (``make vllm-env``)."""
    from sicl.eval.vllm_backend import load_vllm_backend

    return load_vllm_backend(**kwargs)


def shared_tower_cache() -> TowerCache:
    """An empty tower-output cache to pass to several evaluations of one base model (adapters included):
    ``evaluate(cfg, tower_cache=cache)``. Tower outputs do not depend on the batch a clip was encoded
    with (Qwen2.5-Omni's tower encodes each clip's windows separately), so sharing keeps results exact."""
    return TowerCache(None)
