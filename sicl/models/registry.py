"""Backbone families by name, and loading a model folder as a :class:`~sicl.models.backbone.Backbone`.

The built-in families are a table (family -> module, loader, the ``config.json`` ``model_type`` values it
accepts), imported only when used; a family module imports the protocol (:mod:`sicl.models.backbone`) and
never this registry, so there is no import cycle. Another family registers its loader at run time with
:func:`register_backbone`.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from sicl.errors import SiclError
from sicl.models.backbone import Backbone

Loader = Callable[..., Backbone]

#: family -> (module, loader function, config ``model_type`` values it accepts)
BUILTIN: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "qwen2_5_omni": ("sicl.models.qwen_omni", "load_qwen_omni", ("qwen2_5_omni_thinker", "qwen2_5_omni")),
    "qwen2_audio": ("sicl.models.qwen2_audio", "load_qwen2_audio", ("qwen2_audio",)),
    "mimo_audio": ("sicl.models.mimo_audio", "load_mimo_audio", ("mimo_audio", "qwen2")),
}
#: families registered at run time: family -> (loader, model types)
_EXTRA: dict[str, tuple[Loader, tuple[str, ...]]] = {}


def register_backbone(family: str, model_types: Sequence[str]) -> Callable[[Loader], Loader]:
    """Register ``loader(path, dtype=, device=, attn_implementation=, preset=, **options) -> Backbone``."""

    def deco(fn: Loader) -> Loader:
        _EXTRA[family] = (fn, tuple(model_types))
        return fn

    return deco


def families() -> list[str]:
    return sorted({*BUILTIN, *_EXTRA})


def _model_types(family: str) -> tuple[str, ...]:
    return _EXTRA[family][1] if family in _EXTRA else BUILTIN[family][2]


def _loader(family: str) -> Loader:
    if family in _EXTRA:
        return _EXTRA[family][0]
    module, fn, _ = BUILTIN[family]
    return getattr(importlib.import_module(module), fn)


def family_of(path: str | Path) -> str:
    """The family whose ``model_types`` include the folder's ``config.json`` model_type."""
    cfg = Path(path) / "config.json"
    try:
        model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (OSError, json.JSONDecodeError) as e:
        raise SiclError(f"{path}: cannot read config.json ({e})") from None
    for fam in [*_EXTRA, *BUILTIN]:  # run-time registrations first: they may claim a built-in model_type
        if model_type in _model_types(fam):
            return fam
    raise SiclError(f"{path}: model_type {model_type!r} has no backbone (known families: {', '.join(families())})")


def load_backbone(model: str | Path, family: str | None = None, adapter: str | Path | None = None,
                  dtype: torch.dtype | str = torch.float32, device: str | torch.device = "cpu",
                  attn_implementation: str | None = "sdpa", preset: str = "plain",
                  allow_download: bool = False, audio_tokenizer: str | Path | None = None) -> Backbone:
    """Load a backbone from a built-in name, a local folder or (with ``allow_download``) a hub id, plus an
    optional PEFT adapter folder. The family comes from ``config.json`` unless given. ``audio_tokenizer``:
    a codec folder for families whose audio enters as codes (MiMo-Audio), used for clips without cached codes."""
    from sicl.models.zoo import resolve_model

    path = Path(resolve_model(str(model), allow_download=allow_download))
    fam = family or family_of(path)
    if fam not in families():
        raise SiclError(f"unknown backbone family {fam!r} (known: {', '.join(families())})")
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    loader = _loader(fam)
    options = {"audio_tokenizer": audio_tokenizer} if audio_tokenizer is not None else {}
    if options and "audio_tokenizer" not in inspect.signature(loader).parameters:
        raise SiclError(f"{path}: family {fam} encodes audio with its own tower; an audio tokenizer applies to "
                        f"code-based families (mimo_audio) only")
    bb = loader(path, dtype=dtype, device=device, attn_implementation=attn_implementation, preset=preset,
                      **options)
    if adapter is not None:
        from sicl.models.lora import load_adapter

        bb.model = load_adapter(bb.model, adapter)
    return bb
