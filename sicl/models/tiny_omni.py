"""tiny-omni: a real ``Qwen2_5OmniThinkerForConditionalGeneration`` at toy size, built locally.

Everything the 7B thinker has is here (Whisper-style audio tower with 2-second windows, projector, Qwen2
decoder with multimodal RoPE, a 1-layer vision tower the config cannot switch off), only small, with a
byte-level BPE vocabulary trained on our own text and the real Qwen2.5-Omni special tokens and chat format.
So code written against tiny-omni runs unchanged on Qwen2.5-Omni-7B.

:func:`build_random_tiny_omni` writes a randomly initialised model + tokenizer + processor (tests use it;
about a second); ``sicl.pretrain`` (``sicl pretrain``) trains one from scratch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2Tokenizer,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from sicl.models.processor import SiclOmniProcessor, feature_extractor

#: Qwen2.5-Omni's special tokens, in the order they follow the BPE vocabulary in the real model.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>",
                  "<|audio_eos|>", "<|vision_bos|>", "<|vision_eos|>", "<|vision_pad|>", "<|IMAGE|>", "<|VIDEO|>")
#: Named special tokens the Qwen2.5-Omni processor reads from its tokenizer.
NAMED_TOKENS = {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>",
                "audio_eos_token": "<|audio_eos|>", "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
                "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>"}
DEFAULT_SYSTEM = "You are a helpful assistant."

# Our own ChatML template, rendering exactly like Qwen2.5-Omni's for text + audio messages: a default
# system turn when none is given; audio items become <|audio_bos|><|AUDIO|><|audio_eos|> with no separator.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'audio' or 'audio' in item or 'audio_url' in item %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif item['type'] == 'image' or 'image' in item %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif item['type'] == 'video' or 'video' in item %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Default sizes (about 9 M parameters with a 2k vocabulary). Keys are build_config's keyword arguments.
DEFAULT_SIZE: dict[str, int] = dict(audio_layers=4, audio_dim=256, audio_heads=4, audio_ffn=1024,
                                    text_layers=4, text_dim=256, text_heads=4, text_kv_heads=2, text_ffn=768,
                                    vocab_size=2048)

# A few lines so a tokenizer can be trained when the caller has no corpus (tests); real builds pass the
# synthetic world's text.
_FALLBACK_TEXT = [
    "Transcribe the audio.", "Translate the audio into Zexi.", "Answer with the text of the option.",
    "the quick brown fox jumps over the lazy dog", "She sells sea shells by the sea shore.",
    "A. yes B. no C. maybe D. never", "What is the speaker talking about?", "The transcription is:",
    "one two three four five six seven eight nine ten", "Please call Stella and ask her to bring these things.",
]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> Qwen2Tokenizer:
    """Byte-level BPE trained with Qwen2's own pre-tokenizer rules, wrapped as ``Qwen2Tokenizer`` with the
    Qwen2.5-Omni special tokens appended after the learnt vocabulary."""
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    # Same splitting as Qwen2Tokenizer, so the learnt merges apply identically after wrapping.
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    n_learn = max(vocab_size - len(SPECIAL_TOKENS), 257)
    trainer = trainers.BpeTrainer(vocab_size=n_learn, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(list(texts) + _FALLBACK_TEXT, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = dict(state["vocab"])
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    for tok in SPECIAL_TOKENS:
        vocab[tok] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>", errors="replace",
                         model_max_length=32768, extra_special_tokens=list(SPECIAL_TOKENS), **NAMED_TOKENS)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_config(tokenizer: Qwen2Tokenizer, audio_layers: int = 4, audio_dim: int = 256, audio_heads: int = 4,
                 audio_ffn: int = 1024, text_layers: int = 4, text_dim: int = 256, text_heads: int = 4,
                 text_kv_heads: int = 2, text_ffn: int = 768, vocab_size: int | None = None,
                 **_: Any) -> Qwen2_5OmniThinkerConfig:
    """Thinker config for ``tokenizer`` (token ids come from it; ``vocab_size`` is only the BPE target)."""
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = text_dim // text_heads
    # mrope_section splits head_dim/2 rotary frequencies over (time, height, width) like Qwen's 16/24/24.
    quarter = head_dim // 8
    mrope = [quarter, (head_dim // 2 - quarter) // 2, head_dim // 2 - quarter - (head_dim // 2 - quarter) // 2]
    n_vocab = len(tokenizer)
    audio = dict(num_mel_bins=128, encoder_layers=audio_layers, encoder_attention_heads=audio_heads,
                 encoder_ffn_dim=audio_ffn, d_model=audio_dim, output_dim=text_dim, n_window=100,
                 max_source_positions=1500)
    text = dict(vocab_size=n_vocab, hidden_size=text_dim, intermediate_size=text_ffn,
                num_hidden_layers=text_layers, num_attention_heads=text_heads, num_key_value_heads=text_kv_heads,
                max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope},
                pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
    # The thinker always builds a vision tower; keep it to one very small layer.
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=text_dim,
                  fullatt_block_indexes=[0], window_size=112, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2)
    return Qwen2_5OmniThinkerConfig(
        audio_config=audio, vision_config=vision, text_config=text,
        audio_token_index=ids["<|AUDIO|>"], image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"], audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"], vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"], user_token_id=ids["<|im_start|>"],
        pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
    )


def build_processor(tokenizer: Qwen2Tokenizer) -> SiclOmniProcessor:
    return SiclOmniProcessor(feature_extractor=feature_extractor(), tokenizer=tokenizer,
                             chat_template=CHAT_TEMPLATE)


def build_model(config: Qwen2_5OmniThinkerConfig, seed: int = 0) -> Qwen2_5OmniThinkerForConditionalGeneration:
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    return model.eval()


def save_tiny_omni(out_dir: str | Path, model: torch.nn.Module, processor: SiclOmniProcessor,
                   dtype: torch.dtype | None = None, max_shard_size: str | int = "50MB") -> Path:
    """Write model (safetensors), tokenizer, feature extractor and chat template in Hugging Face layout."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if dtype is not None and dtype != next(model.parameters()).dtype:
        model = _copy_as(model, dtype)
    model.save_pretrained(out, safe_serialization=True, max_shard_size=max_shard_size)
    processor.save_pretrained(out)
    from sicl.atomic import plain_mode

    for weights in Path(out).glob("*.safetensors"):  # safetensors writes 0600: a model folder is shared like any
        plain_mode(weights)
    return out


def build_random_tiny_omni(out_dir: str | Path | None = None, texts: Iterable[str] | None = None,
                           seed: int = 0, **size: int) -> tuple[Any, SiclOmniProcessor]:
    """A randomly initialised tiny-omni (model, processor); written to ``out_dir`` when given.

    ``size`` overrides :data:`DEFAULT_SIZE` (e.g. ``audio_layers=1, text_layers=1`` for fast tests)."""
    sizes = {**DEFAULT_SIZE, **size}
    tokenizer = train_tokenizer(texts if texts is not None else [], vocab_size=sizes["vocab_size"])
    model = build_model(build_config(tokenizer, **sizes), seed=seed)
    processor = build_processor(tokenizer)
    if out_dir is not None:
        save_tiny_omni(out_dir, model, processor)
    return model, processor


def load_tiny_omni(path: str | Path, dtype: torch.dtype = torch.float32) -> tuple[Any, SiclOmniProcessor]:
    """Load any Qwen2.5-Omni thinker folder (tiny-omni or the real checkpoint) with its processor."""
    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(str(path), dtype=dtype)
    return model.eval(), SiclOmniProcessor.from_pretrained(str(path))


def audio_tower(model: Any) -> torch.nn.Module:
    """The thinker's audio encoder (its attribute path moved between transformers 5.x releases)."""
    tower = getattr(model, "audio_tower", None)
    return tower if tower is not None else model.model.audio_tower


def count_parameters(model: torch.nn.Module, exclude_vision: bool = False) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not (exclude_vision and "visual." in n))


def _copy_as(model: Any, dtype: torch.dtype) -> Any:
    clone = type(model)(model.config)
    clone.load_state_dict(model.state_dict())
    return clone.to(dtype)
