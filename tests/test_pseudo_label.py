import json

import pytest
from retrieval_fakes import make_corpus

from sicl.errors import SiclError
from sicl.retrieval.embed import AudioEmbedder, embed_audio
from sicl.retrieval.leakage import audio_hashes
from sicl.retrieval.pseudo_label import BackboneLabeler, GoldLabeler, make_labeler, pseudo_labels


def tiny_whisper(folder):
    """A random WhisperForConditionalGeneration + processor with a 27-character vocabulary, saved locally."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyzĠ")}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    end = "<|endoftext|>"
    tok = WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=end, bos_token=end,
                           eos_token=end, pad_token=end)
    tok.add_special_tokens({"additional_special_tokens": ["<|startoftranscript|>", "<|notimestamps|>"]})
    eos, start = tok.convert_tokens_to_ids(end), tok.convert_tokens_to_ids("<|startoftranscript|>")
    config = WhisperConfig(vocab_size=len(tok), num_mel_bins=16, d_model=16, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                           decoder_ffn_dim=32, max_target_positions=64, pad_token_id=eos, bos_token_id=eos,
                           eos_token_id=eos, decoder_start_token_id=start)
    import torch

    torch.manual_seed(0)  # random weights, but the same ones whatever ran before
    model = WhisperForConditionalGeneration(config)
    model.generation_config.update(decoder_start_token_id=start, eos_token_id=eos, pad_token_id=eos,
                                   forced_decoder_ids=None)
    model.save_pretrained(folder)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=16), tokenizer=tok).save_pretrained(folder)
    return folder


def test_gold_uses_the_source_text_and_needs_it(tmp_path):
    ex = make_corpus(tmp_path, ["hello there"])
    assert GoldLabeler().label(ex, []) == ["hello there"]
    ex[0].target = None
    with pytest.raises(SiclError, match="needs its target"):
        GoldLabeler().label(ex, [])


def test_unknown_labeler_is_an_error():
    with pytest.raises(SiclError, match="unknown pseudo-labeler"):
        make_labeler("whisper")


def test_hf_asr_pipeline_labels_and_caches(tmp_path):
    model = tiny_whisper(tmp_path / "whisper")
    labeler = make_labeler(f"hf-asr:{model}", max_new_tokens=4)
    clips = make_corpus(tmp_path, ["a", "b", "c"])
    hashes = audio_hashes(clips, tmp_path / "cache")
    calls = []
    inner = labeler.label
    labeler.label = lambda exs, wavs: calls.append(len(exs)) or inner(exs, wavs)
    first = pseudo_labels(clips, hashes, labeler, tmp_path / "cache", batch_size=2)
    assert len(first) == 3 and all(isinstance(t, str) and len(t) <= 12 for t in first)  # <= 4 tokens
    assert calls == [2, 1]
    assert pseudo_labels(clips, hashes, labeler, tmp_path / "cache") == first and calls == [2, 1]


def test_backbone_labeler_and_audio_embedder_on_tiny_random_omni(tmp_path):
    from sicl.models.registry import load_backbone
    from sicl.models.tiny_omni import build_random_tiny_omni

    folder = tmp_path / "tiny"
    build_random_tiny_omni(folder, audio_layers=1, text_layers=1, audio_dim=64, text_dim=64, audio_ffn=128,
                           text_ffn=128, vocab_size=400)
    bb = load_backbone(str(folder))
    clips = make_corpus(tmp_path, ["x", "y"])
    hashes = audio_hashes(clips, tmp_path / "cache")
    labeler = BackboneLabeler(str(folder), max_new_tokens=3, backbone=bb)
    labels = pseudo_labels(clips, hashes, labeler, tmp_path / "cache")
    assert len(labels) == 2 and all(isinstance(t, str) for t in labels)
    embedder = AudioEmbedder(str(folder), backbone=bb)
    vecs = embed_audio(clips, hashes, embedder, tmp_path / "cache")
    assert vecs.shape == (2, 64)
    assert abs(float((vecs**2).sum(1)[0]) - 1.0) < 1e-5
