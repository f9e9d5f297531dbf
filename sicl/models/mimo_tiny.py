"""A tiny random checkpoint in MiMo-Audio's own layout (config keys, parameter names, tokenizer special
tokens), including the unused patch decoder, for tests: ``build_tiny_mimo(out_dir)``."""

from __future__ import annotations

import json
import math
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
    # architectures/model_type as in the released MiMo-Audio-7B configs (a Qwen2 config with MiMo keys).
    cfg: dict[str, Any] = dict(
        architectures=["MiMoAudioModel"], model_type="qwen2", hidden_size=64, intermediate_size=128,
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


#: Tiny MiMo-Audio-Tokenizer variants (config overrides of TINY_TOKENIZER): "base" is shaped like the
#: released tokenizer (LayerNorm, full bidirectional attention, a skip connection); "window" and "causal"
#: exercise the attention masks and RMSNorm.
TOKENIZER_VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "window": {"encoder_attn_window_size": [5, 2], "ln_type": "RMSNorm", "encoder_skip_layer_id": None},
    "causal": {"encoder_causal": True, "encoder_attn_window_size": [7, -1]},
}


def tiny_tokenizer_config(**over: Any) -> dict[str, Any]:
    """A tiny MiMo-Audio-Tokenizer config.json: the released front end (24 kHz, hop 240, n_fft = window 960,
    128 mels), geometry (kernel 3, stride 2, avg_pooler 2) and codebook sizes (1024, 1024, 128, ...), with
    tiny widths and 10 of the 20 quantizers."""
    cfg: dict[str, Any] = dict(
        architectures=["MiMoAudioTokenizer"], model_type="mimo_audio_tokenizer", max_audio_seconds=1800,
        stride_size=2, avg_pooler=2, d_model=16, scale_embedding=False, kernel_size=3,
        activation_function="gelu", encoder_layers=2, encoder_skip_layer_id=1, encoder_attention_heads=2,
        encoder_ffn_dim=32, encoder_causal=False, encoder_attn_window_size=[-1, -1], decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=32, decoder_kernel_size=3, decoder_stride_size=2,
        decoder_causal=True, decoder_attn_window_size=[-1, -1], nfft=960, vocoder_dim=8,
        vocoder_intermediate_dim=16, vocoder_num_layers=1, n_mels=128, sampling_rate=24000, hop_length=240,
        window_size=960, vocoder_padding="same", fmin=0, fmax=None, num_quantizers=10,
        codebook_size=[1024, 1024] + [128] * 8, threshold_ema_dead_code=2, position_embedding_type="rope",
        rope_theta=10000, rope_type="default", ln_type="LayerNorm", vocoder_attention_heads=2,
        vocoder_attn_window_size=[40, 10], torch_dtype="float32")
    cfg.update(over)
    return cfg


def _tiny_layer(prefix: str, d: int, ffn: int, rms: bool, g: torch.Generator) -> dict[str, torch.Tensor]:
    """One transformer layer's tensors under the reference's names (random, for the unused decoder)."""
    sd = {}
    for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
        sd[f"{prefix}.self_attn.{p}.weight"] = torch.randn(d, d, generator=g) * 0.1
        if p != "k_proj":
            sd[f"{prefix}.self_attn.{p}.bias"] = torch.zeros(d)
    for n in ("self_attn_layer_norm", "final_layer_norm"):
        sd[f"{prefix}.{n}.weight"] = torch.ones(d)
        if not rms:
            sd[f"{prefix}.{n}.bias"] = torch.zeros(d)
    sd[f"{prefix}.fc1.weight"] = torch.randn(ffn, d, generator=g) * 0.1
    sd[f"{prefix}.fc1.bias"] = torch.zeros(ffn)
    sd[f"{prefix}.fc2.weight"] = torch.randn(d, ffn, generator=g) * 0.1
    sd[f"{prefix}.fc2.bias"] = torch.zeros(d)
    return sd


def build_tiny_mimo_tokenizer(out_dir: str | Path, variant: str = "base", seed: int = 0) -> Path:
    """A tiny random MiMo-Audio-Tokenizer checkpoint (config.json + model.safetensors, < 0.5 MB) in the
    reference's layout: the encoder (sicl's clean-room module's parameters, randomised: norms and biases too),
    each codebook's training buffers (inited, cluster_size, embed_avg) and the decoder + vocoder, which sicl
    never reads."""
    from sicl.models.mimo_tokenizer import MimoAudioTokenizerEncoder, MimoTokenizerConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = tiny_tokenizer_config(**TOKENIZER_VARIANTS[variant])
    cfg = MimoTokenizerConfig.from_dict(raw)
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in MimoAudioTokenizerEncoder(cfg).state_dict().items():
        if k.endswith("_codebook.embed"):
            t = torch.randn(v.shape, generator=g)
        elif "norm" in k:
            t = 1.0 + 0.2 * torch.randn(v.shape, generator=g) if k.endswith("weight") else \
                0.1 * torch.randn(v.shape, generator=g)
        else:
            fan_in = v[0].numel() if v.dim() > 1 else v.shape[0]
            t = torch.randn(v.shape, generator=g) / math.sqrt(fan_in)
        sd[k] = t.contiguous()
    for i, n in enumerate(cfg.codebook_size):
        p = f"encoder.quantizer.vq.layers.{i}._codebook"
        sd[f"{p}.inited"] = torch.ones(1)
        sd[f"{p}.cluster_size"] = torch.rand(n, generator=g)
        sd[f"{p}.embed_avg"] = sd[f"{p}.embed"].clone()
    d, rms = cfg.d_model, cfg.ln_type == "RMSNorm"
    p = raw["avg_pooler"]
    sd["decoder.dconv1.conv.weight"] = torch.randn(d, d, p, generator=g) * 0.1
    sd["decoder.dconv1.conv.bias"] = torch.zeros(d)
    sd["decoder.dconv1.norm.weight"], sd["decoder.dconv1.norm.bias"] = torch.ones(d), torch.zeros(d)
    for i in range(raw["decoder_layers"]):
        sd.update(_tiny_layer(f"decoder.layers.{i}", d, raw["decoder_ffn_dim"], rms, g))
    sd["decoder.layer_norm.weight"] = torch.ones(d)
    m, vd = raw["n_mels"], raw["vocoder_dim"]
    sd["decoder.dconv2.conv.weight"] = torch.randn(d, m, raw["decoder_kernel_size"], generator=g) * 0.1
    sd["decoder.dconv2.conv.bias"] = torch.zeros(m)
    sd["decoder.dconv2.norm.weight"], sd["decoder.dconv2.norm.bias"] = torch.ones(m), torch.zeros(m)
    sd["decoder.vocoder.embeddings.weight"] = torch.randn(vd, m, generator=g) * 0.1
    for i in range(raw["vocoder_num_layers"]):
        sd.update(_tiny_layer(f"decoder.vocoder.layers.{i}", vd, raw["vocoder_intermediate_dim"], rms, g))
    sd["decoder.vocoder.layer_norm.weight"] = torch.ones(vd)
    if not rms:
        sd["decoder.layer_norm.bias"] = torch.zeros(d)
        sd["decoder.vocoder.layer_norm.bias"] = torch.zeros(vd)
    sd["decoder.vocoder.head.out.weight"] = torch.randn(raw["nfft"] + 2, vd, generator=g) * 0.1
    sd["decoder.vocoder.head.out.bias"] = torch.zeros(raw["nfft"] + 2)
    sd["decoder.vocoder.head.istft.window"] = torch.hann_window(raw["nfft"])
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    return out
