"""The backbone protocol: what sicl needs from an auditory LLM, and a small registry by model family.

A backbone turns :class:`~sicl.episodes.episode.Episode` objects into model inputs (``render``), runs
them (``forward`` -> logits, ``generate`` -> text) and exposes its frozen audio tower (``encode_audio``)
so callers can compute each clip's tower output once and pass it back to ``render``: the tower never
trains, so a clip's output never changes, and skipping the tower is the main speed-up for repeated
demonstrations.

Adding a backbone family is one new file: implement :class:`Backbone` (usually by composing
:class:`sicl.models.chat_audio.ChatAudioBackbone` with a :class:`~sicl.models.chat_audio.FamilySpec`) and
decorate its loader with :func:`register_backbone`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from sicl.errors import SiclError

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
    """What training and evaluation call. ``model`` may be wrapped by PEFT after loading."""

    family: str
    model: Any
    processor: Any
    preset: str
    max_audio_seconds: float
    audio_tokens_per_second: float

    def num_audio_tokens(self, n_samples: int) -> int: ...

    def render(self, episodes: Sequence[Any], with_labels: bool = True, padding_side: str = "right",
               tower_outputs: Mapping[str, torch.Tensor] | None = None,
               wavs: Mapping[str, np.ndarray] | None = None) -> Batch: ...

    def forward(self, batch: Batch) -> torch.Tensor: ...

    def loss(self, batch: Batch) -> torch.Tensor: ...

    def encode_audio(self, wavs: Sequence[np.ndarray]) -> list[torch.Tensor]: ...

    def generate(self, episodes: Sequence[Any], max_new_tokens: int | Mapping[str, int] | None = None,
                 tower_outputs: Mapping[str, torch.Tensor] | None = None) -> list[str]: ...

    def generate_ids(self, episodes: Sequence[Any], max_new_tokens: int | Mapping[str, int] | None = None,
                     tower_outputs: Mapping[str, torch.Tensor] | None = None) -> list[list[int]]: ...


Loader = Callable[..., Backbone]
#: family name -> (loader, config ``model_type`` values it accepts)
_REGISTRY: dict[str, tuple[Loader, tuple[str, ...]]] = {}


def register_backbone(family: str, model_types: Sequence[str]) -> Callable[[Loader], Loader]:
    """Register ``loader(path, dtype=, device=, attn_implementation=, preset=) -> Backbone``."""

    def deco(fn: Loader) -> Loader:
        _REGISTRY[family] = (fn, tuple(model_types))
        return fn

    return deco


def families() -> list[str]:
    _import_builtin()
    return sorted(_REGISTRY)


def family_of(path: str | Path) -> str:
    """The registered family whose ``model_types`` include the folder's ``config.json`` model_type."""
    _import_builtin()
    cfg = Path(path) / "config.json"
    try:
        model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (OSError, json.JSONDecodeError) as e:
        raise SiclError(f"{path}: cannot read config.json ({e})") from None
    for fam, (_, types) in _REGISTRY.items():
        if model_type in types:
            return fam
    raise SiclError(f"{path}: model_type {model_type!r} has no backbone (known families: {', '.join(families())})")


def load_backbone(model: str | Path, family: str | None = None, adapter: str | Path | None = None,
                  dtype: torch.dtype | str = torch.float32, device: str | torch.device = "cpu",
                  attn_implementation: str | None = "sdpa", preset: str = "plain",
                  allow_download: bool = False) -> Backbone:
    """Load a backbone from a built-in name, a local folder or (with ``allow_download``) a hub id, plus an
    optional PEFT adapter folder. The family comes from ``config.json`` unless given."""
    _import_builtin()
    path = _resolve(model, allow_download)
    fam = family or family_of(path)
    if fam not in _REGISTRY:
        raise SiclError(f"unknown backbone family {fam!r} (known: {', '.join(families())})")
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    bb = _REGISTRY[fam][0](path, dtype=dtype, device=device, attn_implementation=attn_implementation,
                           preset=preset)
    if adapter is not None:
        from sicl.models.lora import load_adapter

        bb.model = load_adapter(bb.model, adapter)
    return bb


def sequence_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over each row's unmasked labels: (B,) float32. Rows are independent,
    so a batch gives the same per-episode losses as rendering each episode alone."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    tok = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels,
                                            ignore_index=IGNORE_INDEX, reduction="none")
    counts = (shift_labels != IGNORE_INDEX).sum(1)
    return tok.sum(1) / counts.clamp(min=1)


def _resolve(model: str | Path, allow_download: bool) -> Path:
    try:
        from sicl.models.zoo import resolve_model
    except ImportError:  # zoo not available: local folders only
        p = Path(model)
        if not p.is_dir():
            raise SiclError(f"model {str(model)!r} is not a local folder") from None
        return p
    return Path(resolve_model(str(model), allow_download=allow_download))


def _import_builtin() -> None:
    # Importing the family modules runs their @register_backbone decorators.
    import sicl.models.mimo_audio  # noqa: F401
    import sicl.models.qwen2_audio  # noqa: F401
    import sicl.models.qwen_omni  # noqa: F401
