"""The backbone protocol: what sicl needs from an auditory LLM.

A backbone turns :class:`~sicl.episodes.episode.Episode` objects into model inputs (``render``), runs
them (``forward`` -> logits, ``generate`` -> text) and exposes its frozen audio front end (``encode_audio``:
a tower's output, or a codec's codes) so callers can compute each clip's audio once and pass it back to
``render``: the front end never trains, so a clip's output never changes, and skipping it is the main
speed-up for repeated demonstrations.

Training (:mod:`sicl.train.sicl_at`) and evaluation (:mod:`sicl.eval.backends`) call only what
:class:`Backbone` declares: ``batch_tensors`` (what a collator ships), ``model_inputs`` (the keyword
arguments of ``model(...)``, with the frozen embedding and audio splice already done), ``generate_batch``
(greedy ids from a rendered batch), ``decode``, ``decoder_layers`` / ``output_head`` (for the trainer's
answer-only fast path). The registry that finds a family for a folder is :mod:`sicl.models.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

IGNORE_INDEX = -100


@dataclass
class Batch:
    """Rendered episodes. Shapes: ``B`` episodes, ``L`` tokens, ``N`` clips (all episodes, prompt order),
    ``M`` mel bins, ``T`` mel frames.

    - ``input_ids``, ``attention_mask``: (B, L) long; padding side as requested at render time.
    - ``labels``: (B, L) long, ``-100`` except the query answer tokens and its end-of-turn token; ``None``
      for generation prompts.
    - ``input_features`` (N, M, T) float and ``feature_attention_mask`` (N, T) long: mel features, set
      when the tower must run; ``audio_embeds``: N tensors (n_i, hidden), set instead when cached tower
      outputs were given.
    - ``audio_tokens``: placeholders per clip (N ints); ``clip_ids``: example id per clip.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None = None
    input_features: torch.Tensor | None = None
    feature_attention_mask: torch.Tensor | None = None
    audio_embeds: list[torch.Tensor] | None = None
    audio_tokens: list[int] = field(default_factory=list)
    clip_ids: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    episode_ids: list[str] = field(default_factory=list)
    padding_side: str = "right"

    def to(self, device: torch.device | str) -> Batch:
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device)
            elif f.name == "audio_embeds" and v is not None:
                v = [t.to(device) for t in v]
            moved[f.name] = v
        return Batch(**moved)


@runtime_checkable
class Backbone(Protocol):
    """What training and evaluation call. ``model`` may be wrapped by PEFT after loading; its forward takes
    ``attention_mask``, ``position_ids``, ``use_cache`` plus :meth:`model_inputs`'s keywords and returns an
    object with ``.logits`` (B, L, V)."""

    family: str
    model: Any
    processor: Any
    #: the text tokenizer (``tokenizer(text, add_special_tokens=False)["input_ids"]``, ``decode``)
    tokenizer: Any
    preset: str
    max_audio_seconds: float
    audio_tokens_per_second: float
    #: token that ends an answer (the label mask's last token, where generation stops)
    eot_id: int
    pad_id: int

    def num_audio_tokens(self, n_samples: int) -> int: ...

    def render(self, episodes: Sequence[Any], with_labels: bool = True, padding_side: str = "right",
               tower_outputs: Mapping[str, torch.Tensor] | None = None,
               wavs: Mapping[str, np.ndarray] | None = None) -> Batch: ...

    def forward(self, batch: Batch) -> torch.Tensor: ...

    def loss(self, batch: Batch) -> torch.Tensor: ...

    def encode_audio(self, wavs: Sequence[np.ndarray], names: Sequence[str] | None = None) -> list[torch.Tensor]:
        """Each clip's frozen audio representation (a tower's output rows, or codec codes), in order;
        ``names`` label the clips in error messages."""
        ...

    def batch_tensors(self, batch: Batch) -> dict[str, Any]:
        """The tensors of ``batch`` besides ``input_ids``, ``attention_mask`` and ``labels`` that
        :meth:`model_inputs` needs (cached tower outputs, mel features, speech codes...): what a training
        collator ships with each batch."""
        ...

    def model_inputs(self, input_ids: torch.Tensor, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``model(...)`` besides the mask and positions. ``{"inputs_embeds": ...}``
        when the input embedding and audio splice (frozen) are computed here from cached tower outputs or
        codes; otherwise the inputs the model's own forward takes (e.g. ``input_ids`` + mel features)."""
        ...

    def generate_batch(self, batch: Batch, limits: Sequence[int]) -> list[list[int]]:
        """Greedy token ids per episode of a left-padded generation batch (``render(with_labels=False,
        padding_side="left")``, with or without tower outputs): row i at most ``limits[i]`` tokens, cut at
        the end of the answer, no padding or end-of-turn ids."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids (special tokens dropped)."""
        ...

    def decoder_layers(self) -> list[torch.nn.Module]:
        """The language model's decoder layers, in order (never a tower's)."""
        ...

    def output_head(self) -> torch.nn.Module:
        """The language model's vocabulary projection (hidden states -> logits)."""
        ...

    def generate(self, episodes: Sequence[Any], max_new_tokens: int | Mapping[str, int] | None = None,
                 tower_outputs: Mapping[str, torch.Tensor] | None = None) -> list[str]: ...

    def generate_ids(self, episodes: Sequence[Any], max_new_tokens: int | Mapping[str, int] | None = None,
                     tower_outputs: Mapping[str, torch.Tensor] | None = None) -> list[list[int]]: ...


#: Default generation budgets per task (tokens). Answers for QA are an option's text.
DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {"asr": 128, "st": 128, "sqa": 32, "aqa": 32}


def task_limit(max_new_tokens: int | Mapping[str, int] | None, task: str) -> int:
    """The generation budget for ``task``: one int for every task, or a table over the defaults."""
    if isinstance(max_new_tokens, int):
        return max_new_tokens
    return {**DEFAULT_MAX_NEW_TOKENS, **(max_new_tokens or {})}.get(task, 128)


def max_positions(model: Any) -> int | None:
    """The most positions the language model was built for: ``max_position_embeddings`` of its text config
    (None when the config does not say). A longer prompt still runs but its output is garbage; evaluation and
    training refuse one (:class:`sicl.eval.backends.HFBackend`, ``sicl.train.sicl_at.EpisodeCollator``)."""
    config = getattr(model, "config", None)
    try:
        text = config.get_text_config() if hasattr(config, "get_text_config") else None
    except Exception:  # noqa: BLE001 - a config with no single text config: fall back to the top level
        text = None
    for c in (text, config):
        n = getattr(c, "max_position_embeddings", None)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n
    return None


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """1-D positions counting real tokens only (what Qwen2.5-Omni computes for audio + text input); padded
    slots get 1. Left and right padding give every real token the same position."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


def sequence_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over each row's unmasked labels: (B,) float32. Rows are independent,
    so a batch gives the same per-episode losses as rendering each episode alone."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    tok = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels,
                                            ignore_index=IGNORE_INDEX, reduction="none")
    counts = (shift_labels != IGNORE_INDEX).sum(1)
    return tok.sum(1) / counts.clamp(min=1)


_REGISTRY_NAMES = ("register_backbone", "families", "family_of", "load_backbone")


def __getattr__(name: str) -> Any:
    # The registry lives in sicl.models.registry; these names stay importable from here for old callers.
    if name in _REGISTRY_NAMES:
        from sicl.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
