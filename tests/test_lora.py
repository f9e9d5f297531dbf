"""LoRA wiring: adapters only on the language model's decoder layers, towers/projector/embeddings frozen."""

from __future__ import annotations

import re

import pytest
import torch

from sicl.models.lora import (
    LLM_ATTENTION_REGEX,
    LLM_LINEAR_REGEX,
    LoraSettings,
    apply_lora,
    check_towers_untouched,
    trainable_parameters_by_group,
)
from sicl.models.qwen2_audio import build_random_tiny_qwen2_audio
from sicl.models.tiny_omni import build_random_tiny_omni

TOWERS = ("audio_tower", "visual", "multi_modal_projector", "embed_tokens", "lm_head")


def _omni():
    return build_random_tiny_omni(audio_layers=1, audio_dim=64, audio_heads=2, audio_ffn=128, text_layers=2,
                                  text_dim=64, text_heads=2, text_kv_heads=1, text_ffn=128, vocab_size=600)[0]


def _qwen2_audio():
    return build_random_tiny_qwen2_audio()[0]


def test_regex_is_anchored_on_llm_layers():
    hits = ["model.language_model.layers.0.self_attn.q_proj", "model.layers.11.mlp.down_proj",
            "thinker.model.layers.3.self_attn.o_proj"]
    misses = ["model.audio_tower.layers.0.self_attn.q_proj", "model.visual.blocks.0.mlp.gate_proj",
              "audio_tower.layers.0.self_attn.v_proj", "model.language_model.layers.0.self_attn.q_proj.lora_A",
              "model.audio_tower.proj", "lm_head", "model.language_model.embed_tokens"]
    for name in hits:
        assert re.fullmatch(LLM_LINEAR_REGEX, name), name
    for name in misses:
        assert not re.fullmatch(LLM_LINEAR_REGEX, name), name
    assert not re.fullmatch(LLM_ATTENTION_REGEX, "model.layers.0.mlp.up_proj")


@pytest.mark.parametrize("build", [_omni, _qwen2_audio], ids=["omni", "qwen2_audio"])
def test_lora_never_touches_towers(build):
    model = apply_lora(build(), LoraSettings())
    lora_names = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora_names and all(".language_model.layers." in n for n in lora_names)
    assert not [n for n in lora_names if any(t in n for t in TOWERS)]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == lora_names
    # 7 linear layers per decoder layer, A and B each, 2 layers
    assert len(lora_names) == 2 * 7 * 2
    groups = trainable_parameters_by_group(model)
    assert groups["lora"]["trainable"] == groups["lora"]["total"] > 0
    for g in ("audio_tower", "embeddings", "lm_head", "language_model"):
        assert groups[g]["trainable"] == 0 and groups[g]["total"] > 0, g
    r = model.peft_config["default"]
    assert (r.r, r.lora_alpha) == (8, 32)

    # One optimiser step on a dummy text loss: only LoRA weights move.
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)  # B = 0 at init would give A no gradient
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    ids = torch.randint(0, 256, (2, 12))  # byte tokens exist in every vocabulary
    model.train()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and all("lora_" in n for n in changed)
    check_towers_untouched(model)


def test_a_tower_target_is_refused():
    from sicl.errors import SiclError

    with pytest.raises(SiclError, match="lora.targets .*audio_tower"):
        apply_lora(_omni(), LoraSettings(targets=r".*audio_tower\.layers\.0\.self_attn\.q_proj"))
