"""Qwen2.5-Omni through the backbone protocol: the thinker only (text out; no talker, no speech).

Loads a thinker-only folder (tiny-omni, or a thinker saved on its own) or a full Omni checkpoint
(``Qwen/Qwen2.5-Omni-7B``/``-3B``): for the latter only the ``thinker.*`` weights are read, the talker
and token2wav weights are skipped. Weights come from safetensors; remote code is never run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import Qwen2_5OmniConfig, Qwen2_5OmniThinkerForConditionalGeneration

from sicl.errors import SiclError
from sicl.models.chat_audio import ChatAudioBackbone, FamilySpec, audio_tokens_for_frames, load_checked
from sicl.models.processor import SiclOmniProcessor

FAMILY = "qwen2_5_omni"


def _encode(model: Any, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    # The thinker's own entry point: drops padded frames, runs the tower in 2 s windows, projects.
    out = model.get_audio_features(features, feature_attention_mask=mask, return_dict=True).last_hidden_state
    lengths = [audio_tokens_for_frames(int(n)) for n in mask.sum(-1)]
    return list(torch.split(out, lengths))


SPEC = FamilySpec(family=FAMILY, encode=_encode)


def load_qwen_omni(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                   attn_implementation: str | None = "sdpa", preset: str = "plain",
                   **backbone_kwargs: Any) -> ChatAudioBackbone:
    path = Path(path)
    raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    model_type = raw.get("model_type")
    kwargs: dict[str, Any] = dict(dtype=dtype, use_safetensors=True)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if model_type == "qwen2_5_omni":
        if not isinstance(raw.get("thinker_config"), dict):  # transformers would build a default 7B thinker
            raise SiclError(f"{path / 'config.json'}: model_type qwen2_5_omni without a thinker_config object; a "
                            f"released Qwen2.5-Omni config.json has one (or save the thinker on its own, "
                            f"model_type qwen2_5_omni_thinker)")
        # Full Omni checkpoint: take the thinker's config and strip the "thinker." prefix from its keys.
        kwargs["config"] = Qwen2_5OmniConfig.from_pretrained(str(path)).thinker_config
        kwargs["key_mapping"] = {r"^thinker\.": ""}
    model = load_checked(Qwen2_5OmniThinkerForConditionalGeneration, path, **kwargs)
    model = model.to(device).eval()
    try:
        processor = SiclOmniProcessor.from_pretrained(str(path))
    except (OSError, ValueError) as e:  # no preprocessor config, or a tokenizer transformers cannot build
        raise SiclError(f"{path}: cannot load the processor ({str(e).splitlines()[0][:200]})") from None
    return ChatAudioBackbone(model, processor, SPEC, preset=preset, **backbone_kwargs)
