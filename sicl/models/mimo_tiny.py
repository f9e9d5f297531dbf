"""A tiny random checkpoint in MiMo-Audio's own layout (config keys, parameter names, tokenizer special
tokens), including the unused patch decoder, for tests: ``build_tiny_mimo(out_dir)``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2Model

from sicl.models.mimo_audio import SPECIAL, MimoAudioTextModel
from sicl.models.tiny_omni import train_tokenizer

#: Real MiMo-Audio codebook sizes (8 of the tokenizer's 20 RVQ levels; the last id of each is "empty").
SPEECH_VOCAB = "1025-1025-129-129-129-129-129-129"
SPEECH_EMPTY = "1024-1024-128-128-128-128-128-128"


def tiny_config(vocab_size: int, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = dict(
        architectures=["MiMoAudioForCausalLM"], model_type="qwen2", hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, hidden_act="silu",
        max_position_embeddings=2048, rope_theta=640000.0, rms_norm_eps=1e-6, attention_dropout=0.0,
        tie_word_embeddings=False, use_cache=True, vocab_size=vocab_size, initializer_range=0.02,
        group_size=4, audio_channels=8, delay_pattern="0-1-2-3-4-5-6-7", speech_vocab_size=SPEECH_VOCAB,
        speech_zeroemb_idx=SPEECH_EMPTY, local_dim=32, local_layers=1, local_attn_heads=2, local_ffn_dim=64,
        local_attn_dropout=0.0, input_local_layers=1, input_local_dim=32, input_full_attention=True,
        torch_dtype="float32")
    cfg.update(over)
    return cfg


def build_tiny_mimo(out_dir: str | Path, seed: int = 0, **over: Any) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer([], vocab_size=400)
    tok.add_tokens([t for t in SPECIAL if t not in tok.get_vocab()], special_tokens=True)
    raw = tiny_config(len(tok), **over)
    torch.manual_seed(seed)
    model = MimoAudioTextModel(Qwen2Config(**{k: v for k, v in raw.items() if k != "model_type"}))
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    # The patch decoder (audio generation): unused by sicl, but present in every MiMo-Audio checkpoint.
    local = Qwen2Config(hidden_size=raw["local_dim"], num_hidden_layers=raw["local_layers"],
                        num_attention_heads=raw["local_attn_heads"], num_key_value_heads=raw["local_attn_heads"],
                        head_dim=raw["local_dim"] // raw["local_attn_heads"], intermediate_size=raw["local_ffn_dim"],
                        vocab_size=8)
    dec = Qwen2Model(local)
    sd.update({f"local_transformer.{k}": v for k, v in dec.state_dict().items() if not k.startswith("embed_tokens")})
    for i, n in enumerate(int(v) for v in SPEECH_VOCAB.split("-")):
        sd[f"local_transformer_lm_heads.{i}.weight"] = torch.randn(n, raw["local_dim"]) * 0.02
    sd["hidden_states_downcast.weight"] = torch.randn(raw["local_dim"], raw["hidden_size"]) * 0.02
    if raw["input_local_dim"] != raw["local_dim"]:
        sd["speech_embeddings_to_local.weight"] = torch.randn(raw["local_dim"], raw["input_local_dim"]) * 0.02
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    tok.save_pretrained(str(out))
    return out


def count_parameters(out_dir: str | Path) -> int:
    from safetensors.torch import load_file

    return sum(t.numel() for t in load_file(str(Path(out_dir) / "model.safetensors")).values())
