"""Qwen2-Audio (``Qwen/Qwen2-Audio-7B-Instruct``) through the backbone protocol.

Same ChatML mechanics as Qwen2.5-Omni; its chat template writes ``Audio N: <|audio_bos|><|AUDIO|>
<|audio_eos|>`` lines, and its Whisper-style tower only accepts features padded to the full 30 s window
(it masks the padding itself). :func:`build_random_tiny_qwen2_audio` writes a tiny random model for tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import (
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    WhisperFeatureExtractor,
)
from transformers.masking_utils import create_bidirectional_mask

from sicl.errors import SiclError
from sicl.models.chat_audio import ChatAudioBackbone, FamilySpec, load_checked

FAMILY = "qwen2_audio"


def _encode(model: Any, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    # Mirrors Qwen2AudioModel.forward: the tower attends to the valid conv frames only, then projects.
    inner = model.model
    tower = inner.audio_tower
    conv_lengths, out_lengths = tower._get_feat_extract_output_lengths(mask.sum(-1))
    n_conv = (features.shape[-1] - 2) // 2 + 1
    valid = (torch.arange(n_conv, device=features.device)[None, :] < conv_lengths[:, None]).long()
    dummy = torch.zeros((features.shape[0], n_conv, 1), dtype=features.dtype, device=features.device)
    attn = create_bidirectional_mask(config=tower.config, inputs_embeds=dummy, attention_mask=valid)
    hidden = inner.multi_modal_projector(tower(features, attention_mask=attn).last_hidden_state)
    return [h[:n] for h, n in zip(hidden, out_lengths.tolist(), strict=True)]


SPEC = FamilySpec(family=FAMILY, encode=_encode, pad_features_to_window=True)


def load_qwen2_audio(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                     attn_implementation: str | None = "sdpa", preset: str = "plain",
                     **backbone_kwargs: Any) -> ChatAudioBackbone:
    kwargs: dict[str, Any] = dict(dtype=dtype, use_safetensors=True)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = load_checked(Qwen2AudioForConditionalGeneration, path, **kwargs).to(device).eval()
    try:
        processor = Qwen2AudioProcessor.from_pretrained(str(path))
    except (OSError, ValueError) as e:  # no preprocessor config, or a tokenizer transformers cannot build
        raise SiclError(f"{path}: cannot load the processor ({str(e).splitlines()[0][:200]})") from None
    check_features(path, processor.feature_extractor, model.config.audio_config)
    return ChatAudioBackbone(model, processor, SPEC, preset=preset, **backbone_kwargs)


def check_features(path: str | Path, fe: Any, audio_config: Any) -> None:
    """The feature extractor must make what the tower reads (``num_mel_bins`` mel bins of 16 kHz audio): a
    mismatch would otherwise be a shape error deep in the first forward pass."""
    from sicl.data.audio import SAMPLE_RATE

    cfg = next((Path(path) / n for n in ("preprocessor_config.json", "processor_config.json")
                if (Path(path) / n).is_file()), Path(path) / "preprocessor_config.json")
    mels = int(audio_config.num_mel_bins)
    if int(getattr(fe, "feature_size", mels)) != mels:
        raise SiclError(f"{cfg}: the feature extractor makes {fe.feature_size} mel bins, but the audio tower "
                        f"(config.json audio_config.num_mel_bins) takes {mels}")
    if int(getattr(fe, "sampling_rate", SAMPLE_RATE)) != SAMPLE_RATE:
        raise SiclError(f"{cfg}: the feature extractor's sampling_rate is {fe.sampling_rate}; Qwen2-Audio "
                        f"reads {SAMPLE_RATE} Hz audio")


def build_random_tiny_qwen2_audio(out_dir: str | Path | None = None, texts: Iterable[str] | None = None,
                                  seed: int = 0, audio_layers: int = 1, audio_dim: int = 64,
                                  text_layers: int = 2, text_dim: int = 64,
                                  vocab_size: int = 600) -> tuple[Qwen2AudioForConditionalGeneration,
                                                                  Qwen2AudioProcessor]:
    """A randomly initialised Qwen2-Audio at toy size with tiny-omni's tokenizer and Qwen2-Audio's own chat
    template; written to ``out_dir`` (safetensors + processor files) when given."""
    from sicl.models.tiny_omni import train_tokenizer

    tok = train_tokenizer(texts or [], vocab_size=vocab_size)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|AUDIO|>", "<|im_end|>", "<|endoftext|>")}
    audio = dict(num_mel_bins=128, encoder_layers=audio_layers, encoder_attention_heads=2,
                 encoder_ffn_dim=audio_dim * 2, d_model=audio_dim, max_source_positions=1500)
    text = dict(model_type="qwen2", vocab_size=len(tok), hidden_size=text_dim, intermediate_size=text_dim * 2,
                num_hidden_layers=text_layers, num_attention_heads=2, num_key_value_heads=1,
                max_position_embeddings=4096, tie_word_embeddings=False,
                pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
    config = Qwen2AudioConfig(audio_config=audio, text_config=text, audio_token_index=ids["<|AUDIO|>"])
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16_000, hop_length=160, chunk_length=30,
                                 n_fft=400, return_attention_mask=True)
    processor = Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok)  # default template: "Audio N:" lines
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out_dir), safe_serialization=True)
        processor.save_pretrained(str(out_dir))
    return model, processor
