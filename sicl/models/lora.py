"""LoRA on the language model only (SICL-AT: r=8, alpha=32; towers, projector and embeddings frozen).

The audio tower (and Qwen2.5-Omni's vision tower) use the same ``q_proj``/``gate_proj``... names as the
LLM, so a suffix list would silently adapt them too. Targets are a regex anchored on the decoder layers
of the language model (``model.language_model.layers.N`` in transformers 5, ``model.layers.N`` in older
thinker layouts), which matches nothing inside a tower.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model

#: Every linear layer of the LLM's decoder blocks (attention and MLP).
LLM_LINEAR_REGEX = (r"^(?:.*\.)?(?:language_model|model)\.layers\.\d+\."
                    r"(?:self_attn\.(?:q|k|v|o)_proj|mlp\.(?:gate|up|down)_proj)$")
#: Attention projections only (fewer parameters; a common cheaper choice).
LLM_ATTENTION_REGEX = r"^(?:.*\.)?(?:language_model|model)\.layers\.\d+\.self_attn\.(?:q|k|v|o)_proj$"
TARGETS = {"all-linear": LLM_LINEAR_REGEX, "attention": LLM_ATTENTION_REGEX}
#: Name fragments of modules that must never train.
FROZEN_GROUPS = ("audio_tower", "visual", "multi_modal_projector", "embed_tokens")


@dataclass
class LoraSettings:
    r: int = 8  # rank (SICL-AT: 8)
    alpha: int = 32  # scaling numerator (SICL-AT: 32)
    dropout: float = 0.05  # dropout on the LoRA input (not published; a common default)
    targets: str = "all-linear"  # "all-linear", "attention", or a regex over module names

    def target_regex(self) -> str:
        return TARGETS.get(self.targets, self.targets)


def apply_lora(model: Any, settings: LoraSettings | None = None) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters; everything but the adapters is frozen."""
    s = settings or LoraSettings()
    config = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=s.target_regex(),
                        bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    _freeze_all_but_lora(peft_model)
    check_towers_untouched(peft_model)
    return peft_model


def load_adapter(model: Any, path: str | Path, trainable: bool = False) -> PeftModel:
    """Attach a saved adapter folder (``adapter_config.json`` + safetensors)."""
    peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=trainable)
    if trainable:
        _freeze_all_but_lora(peft_model)
    check_towers_untouched(peft_model)
    return peft_model.eval() if not trainable else peft_model


def save_adapter(model: PeftModel, path: str | Path) -> Path:
    """Write only the adapter weights (safetensors) and config."""
    model.save_pretrained(str(path), safe_serialization=True)
    return Path(path)


def check_towers_untouched(model: Any) -> None:
    """Raise if a LoRA module sits inside a tower, the projector or the embeddings, or if any of their
    parameters is trainable."""
    for name, p in model.named_parameters():
        if any(g in name for g in FROZEN_GROUPS) and ("lora_" in name or p.requires_grad):
            raise RuntimeError(f"LoRA reached a frozen module: {name}")


def parameter_group(name: str) -> str:
    """Report group for a parameter name."""
    if "lora_" in name:
        return "lora"
    for frag, group in (("audio_tower", "audio_tower"), ("visual", "vision_tower"),
                        ("multi_modal_projector", "projector"), ("embed_tokens", "embeddings"),
                        ("lm_head", "lm_head")):
        if frag in name:
            return group
    return "language_model" if ".layers." in name or name.endswith("norm.weight") else "other"


def trainable_parameters_by_group(model: Any) -> dict[str, dict[str, int]]:
    """``{group: {"trainable": n, "total": n}}`` over :func:`parameter_group` groups."""
    out: dict[str, dict[str, int]] = {}
    for name, p in model.named_parameters():
        g = out.setdefault(parameter_group(name), {"trainable": 0, "total": 0})
        g["total"] += p.numel()
        if p.requires_grad:
            g["trainable"] += p.numel()
    return out


def _freeze_all_but_lora(model: Any) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
