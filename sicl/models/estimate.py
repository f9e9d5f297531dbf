"""Size a GPU for a Qwen2.5-Omni thinker without its weights (``sicl models --estimate CONFIG``).

- **Parameters** are counted exactly: the thinker is built from its config on the ``meta`` device (no memory),
  split into language model, embeddings, lm_head, audio tower and vision tower.
- **LoRA parameters**: ``r * (in + out)`` for every linear that sicl's target regex selects (``all-linear``: the
  LLM's q/k/v/o/gate/up/down; ``attention``: q/k/v/o).
- **Activation memory of one training episode** (LoRA with the paper config's dropout 0.05 unless told, bf16, no gradient checkpointing, tower outputs cached
  so the frozen tower keeps nothing for backward): the bytes autograd saves per token in one decoder layer are
  *measured* (``saved_tensors_hooks`` on a decoder layer with sicl's LoRA in bf16; linear in the layer's widths,
  so narrow layers give the coefficients, :func:`activation_bytes_per_token_layer`) and multiplied by the layers
  and the episode's tokens: the figure for a fused attention kernel (SDPA / flash, which keep nothing quadratic
  in the length). Eager attention would add its probabilities, ``6 * heads * L^2`` bytes per layer (fp32
  softmax output + bf16 copy; computed, not measured). The loss over the vocabulary is counted apart, 10 bytes
  per logit (model-dtype logits, their float32 upcast, the saved log-softmax): sicl's trainer projects only the
  query answer's positions (``answer_logits_only``, the default); over every position it would be the
  ``train_logits_full_bytes`` figure.
- **Generation** (per episode): the KV cache and the prompt's logits (transformers' Qwen2.5-Omni thinker computes
  logits for every prompt position in the prefill).

Episode length: k demonstrations + the query, each a clip of ``clip_seconds`` (25 audio placeholders per second,
plus ``<|audio_bos|>``/``<|audio_eos|>``), Qwen2.5-Omni's chat overhead (system turn 11 tokens, user turn 12 with
the ASR instruction, assistant turn 5, counted with the real tokenizer) and ``answer_tokens`` per answer (90: about
75 words of a 30 s utterance).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sicl.errors import SiclError

SYSTEM_TOKENS, USER_TOKENS, ASSISTANT_TOKENS = 11, 12, 5
GIB = 1024**3


@dataclass
class Estimate:
    name: str
    parameters: dict[str, int]
    weights_bf16_bytes: int
    lora: dict[str, int]
    episode_tokens: int
    audio_tokens_per_clip: int
    activation_bytes_per_token_layer: float  # fused attention
    attention_probs_bytes_per_token2_layer: float  # eager attention's probabilities (fp32 softmax + bf16), per L^2
    layers: int
    vocab: int
    train_activations_bytes: int
    train_logits_bytes: int  # answer positions only (the trainer's default)
    train_logits_full_bytes: int  # every position (answer_logits_only=false)
    train_eager_extra_bytes: int
    kv_cache_bytes: int
    prefill_logits_bytes: int
    settings: dict[str, Any] = field(default_factory=dict)


def thinker_config(config: str | Path) -> Any:
    """A ``Qwen2_5OmniThinkerConfig`` from a released name (``qwen2.5-omni-7b``/``-3b``), a model folder or a
    ``config.json`` (full Omni or thinker-only)."""
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniThinkerConfig

    from sicl.models.qwen_omni_real import REAL_THINKER_CONFIGS, thinker_config_dict

    key = str(config)
    if key.lower() in REAL_THINKER_CONFIGS:
        return Qwen2_5OmniThinkerConfig(**thinker_config_dict(key.lower()))
    path = Path(key).expanduser()
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise SiclError(f"{key}: not a config.json, a model folder or a known name "
                        f"({', '.join(REAL_THINKER_CONFIGS)})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SiclError(f"{path}: cannot read ({e})") from None
    kind = raw.get("model_type")
    if kind == "qwen2_5_omni":
        return Qwen2_5OmniConfig.from_dict(raw).thinker_config
    if kind == "qwen2_5_omni_thinker":
        return Qwen2_5OmniThinkerConfig.from_dict(raw)
    raise SiclError(f"{path}: model_type {kind!r}; --estimate knows Qwen2.5-Omni (qwen2_5_omni, "
                    "qwen2_5_omni_thinker)")


def count_parameters(cfg: Any) -> dict[str, int]:
    """Exact parameter counts per group, from a ``meta``-device model (allocates nothing)."""
    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2_5OmniThinkerForConditionalGeneration(cfg)
    groups = {"language_model": 0, "embeddings": 0, "lm_head": 0, "audio_tower": 0, "vision_tower": 0}
    for name, p in model.named_parameters():
        if "audio_tower" in name:
            g = "audio_tower"
        elif "visual" in name:
            g = "vision_tower"
        elif "embed_tokens" in name:
            g = "embeddings"
        elif "lm_head" in name:
            g = "lm_head"
        else:
            g = "language_model"
        groups[g] += p.numel()
    groups["total"] = sum(groups.values())
    return groups


def lora_parameters(cfg: Any, r: int = 8) -> dict[str, int]:
    """LoRA parameters for sicl's ``all-linear`` and ``attention`` targets at rank ``r``."""
    import re

    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    from sicl.models.lora import TARGETS

    with torch.device("meta"):
        model = Qwen2_5OmniThinkerForConditionalGeneration(cfg)
    out = {}
    for key, regex in TARGETS.items():
        pat = re.compile(regex)
        out[key] = sum(r * (m.in_features + m.out_features) for n, m in model.named_modules()
                       if isinstance(m, torch.nn.Linear) and pat.fullmatch(n))
    return out


def measure_layer_activations(cfg: Any, r: int = 8, lengths: tuple[int, int] = (48, 96),
                              dropout: float = 0.0) -> float:
    """Bytes autograd keeps for backward per token in one decoder layer of ``cfg`` (its text width), with sicl's
    LoRA (``all-linear``, ``dropout``) in bf16, in training mode, with transformers' default (SDPA) attention. Parameters (frozen
    weights autograd references) are not counted; each storage is counted once; the layer's input is counted
    (the previous layer's output, kept for this layer's backward). Measured at two lengths; the per-token slope
    is returned (a fused attention keeps nothing quadratic in the length)."""
    import copy

    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    from sicl.models.lora import LoraSettings, apply_lora

    small = copy.deepcopy(cfg)
    text = small.text_config
    text.num_hidden_layers = 1
    text.layer_types = text.layer_types[:1] if getattr(text, "layer_types", None) else None
    text.vocab_size = 256
    audio, vision = small.audio_config, small.vision_config
    audio.encoder_layers, audio.d_model, audio.encoder_attention_heads, audio.encoder_ffn_dim = 1, 64, 1, 64
    vision.depth, vision.hidden_size, vision.intermediate_size, vision.num_heads = 1, 32, 32, 1
    vision.fullatt_block_indexes = [0]
    torch.manual_seed(0)
    model = Qwen2_5OmniThinkerForConditionalGeneration(small).to(torch.bfloat16)
    model = apply_lora(model, LoraSettings(r=r, dropout=dropout)).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    lm = model.get_base_model().model.language_model
    layer, rotary = lm.layers[0], lm.rotary_emb
    sizes = []
    for n in lengths:
        x = torch.randn(1, n, text.hidden_size, dtype=torch.bfloat16, requires_grad=True)
        pos = torch.arange(n).view(1, 1, n).expand(3, 1, n)
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor, seen: dict[int, int] = seen) -> torch.Tensor:
            ptr = t.untyped_storage().data_ptr()
            if ptr not in params and ptr not in seen:
                seen[ptr] = t.untyped_storage().nbytes()
            return t

        with torch.no_grad():
            pe = rotary(x, pos)
        mask = torch.full((n, n), float("-inf"), dtype=torch.bfloat16).triu(1)[None, None]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = layer(x, attention_mask=mask, position_embeddings=pe, position_ids=pos[0])
            out = out[0] if isinstance(out, tuple) else out
        out.float().square().mean().backward()
        sizes.append(sum(seen.values()) + x.numel() * x.element_size())
    return (sizes[1] - sizes[0]) / (lengths[1] - lengths[0])


def _text_dims(cfg: Any) -> tuple[int, int, int, int]:
    t = cfg.text_config
    hd = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    return t.hidden_size, t.intermediate_size, t.num_attention_heads * hd, t.num_key_value_heads * hd


def activation_bytes_per_token_layer(cfg: Any, r: int = 8, dropout: float = 0.0) -> float:
    """:func:`measure_layer_activations` for ``cfg`` without building a layer of its width: what autograd keeps
    is linear in (hidden, intermediate, query width) plus a LoRA constant, so four measurements on narrow layers
    with the same head size fit the coefficients (seconds, not the 7 minutes a 7B-wide layer takes on 2 CPU
    cores; tests/test_estimate.py checks predictions against direct measurements)."""
    import copy

    import numpy as np

    t0 = cfg.text_config
    hd = _text_dims(cfg)[2] // t0.num_attention_heads
    # Measured: autograd keeps k and v expanded to the query heads (transformers' repeat_kv copies them) unless
    # there is a single key/value head (then the expansion is a view), so with >= 2 key/value heads the bytes do
    # not depend on their number. Probe in the target's regime: 1 or 2 key/value heads.
    kv = 1 if t0.num_key_value_heads == 1 else 2
    probes = [(256, 512, 2, kv), (512, 512, 2, kv), (256, 1024, 2, kv), (256, 512, 4, kv)]
    rows, ys = [], []
    for h, inter, heads, n_kv in probes:
        c = copy.deepcopy(cfg)
        t = c.text_config
        t.hidden_size, t.intermediate_size, t.num_attention_heads, t.num_key_value_heads = h, inter, heads, n_kv
        t.head_dim = hd
        rows.append([h, inter, heads * hd, 1.0])
        ys.append(measure_layer_activations(c, r, dropout=dropout))
    coef = np.linalg.solve(np.array(rows, dtype=float), np.array(ys, dtype=float))
    h, inter, q, _ = _text_dims(cfg)
    return float(coef @ np.array([h, inter, q, 1.0]))


def episode_tokens(k: int, clip_seconds: float, answer_tokens: int) -> tuple[int, int]:
    """(tokens of a k-shot training episode, audio placeholders per clip)."""
    from sicl.models.processor import num_audio_tokens

    per_clip = num_audio_tokens(int(round(clip_seconds * 100)))
    turns = k + 1
    total = SYSTEM_TOKENS + turns * (USER_TOKENS + per_clip + ASSISTANT_TOKENS + answer_tokens)
    return total, per_clip


def estimate(config: str | Path, k: int = 3, clip_seconds: float = 30.0, lora_r: int = 8,
             answer_tokens: int = 90, measure: bool = True, lora_dropout: float = 0.05) -> Estimate:
    cfg = thinker_config(config)
    params = count_parameters(cfg)
    lora = lora_parameters(cfg, lora_r)
    tokens, per_clip = episode_tokens(k, clip_seconds, answer_tokens)
    text = cfg.text_config
    layers, vocab = text.num_hidden_layers, text.vocab_size
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    a = activation_bytes_per_token_layer(cfg, lora_r, lora_dropout) if measure else 0.0
    heads = text.num_attention_heads
    prompt = tokens - answer_tokens - 1  # generation prompt: the query's answer is what is generated
    return Estimate(
        name=str(config), parameters=params, weights_bf16_bytes=2 * params["total"], lora=lora,
        episode_tokens=tokens, audio_tokens_per_clip=per_clip, activation_bytes_per_token_layer=a,
        attention_probs_bytes_per_token2_layer=6.0 * heads, layers=layers, vocab=vocab,
        train_activations_bytes=int(a * tokens * layers),
        train_logits_bytes=(answer_tokens + 1) * vocab * (2 + 4 + 4),
        train_logits_full_bytes=tokens * vocab * (2 + 4 + 4),
        train_eager_extra_bytes=int(6 * heads * tokens * tokens * layers),
        kv_cache_bytes=2 * layers * text.num_key_value_heads * head_dim * 2 * tokens,
        prefill_logits_bytes=prompt * vocab * 2,
        settings=dict(k=k, clip_seconds=clip_seconds, lora_r=lora_r, lora_dropout=lora_dropout,
                      answer_tokens=answer_tokens,
                      dtype="bfloat16", measured=measure))


def format_estimate(e: Estimate) -> str:
    p = e.parameters
    lines = [
        f"{e.name}: Qwen2.5-Omni thinker",
        f"  parameters        {p['total'] / 1e9:.2f} B  (language model {p['language_model'] / 1e9:.2f} B, "
        f"embeddings {p['embeddings'] / 1e9:.2f} B, lm_head {p['lm_head'] / 1e9:.2f} B, "
        f"audio tower {p['audio_tower'] / 1e9:.2f} B, vision tower {p['vision_tower'] / 1e9:.2f} B)",
        f"  weights, bf16     {e.weights_bf16_bytes / GIB:.1f} GiB",
        f"  LoRA r={e.settings['lora_r']}          all-linear {e.lora['all-linear'] / 1e6:.1f} M "
        f"({e.lora['all-linear'] * 2 / 2**20:.0f} MiB bf16), attention only {e.lora['attention'] / 1e6:.1f} M",
        f"  episode           k={e.settings['k']}, {e.settings['clip_seconds']:g} s clips: {e.episode_tokens} tokens "
        f"({e.audio_tokens_per_clip} audio placeholders per clip)",
    ]
    if e.settings["measured"]:
        lines += [
            f"  train, 1 episode  (LoRA dropout {e.settings['lora_dropout']:g}) activations {e.train_activations_bytes / GIB:.2f} GiB "
            f"({e.activation_bytes_per_token_layer / 1024:.0f} KiB per token per layer, measured) "
            f"+ loss over {e.vocab} logits {e.train_logits_bytes / GIB:.2f} GiB at the answer's positions "
            f"({e.train_logits_full_bytes / GIB:.2f} GiB over all); "
            f"eager/math attention adds {e.train_eager_extra_bytes / GIB:.2f} GiB",
        ]
    lines.append(f"  generate, 1 episode  KV cache {e.kv_cache_bytes / GIB:.2f} GiB + prefill logits "
                 f"{e.prefill_logits_bytes / GIB:.2f} GiB")
    return "\n".join(lines)


def to_json(e: Estimate) -> str:
    return json.dumps(asdict(e), indent=1)
