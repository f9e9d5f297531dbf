"""Qwen2.5-Omni thinker backbone on a tiny random thinker saved to disk (see backbone_suite.py)."""

from __future__ import annotations

import json

import pytest
import torch
from backbone_suite import BackboneSuite, make_examples, mixed_episodes
from safetensors.torch import load_file, save_file

from sicl.models.backbone import Backbone
from sicl.models.registry import family_of, load_backbone
from sicl.models.tiny_omni import build_random_tiny_omni

TINY = dict(audio_layers=1, audio_dim=64, audio_heads=2, audio_ffn=128, text_layers=2, text_dim=64,
            text_heads=2, text_kv_heads=1, text_ffn=128, vocab_size=600)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_omni")
    build_random_tiny_omni(out, **TINY)
    return out


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return make_examples(tmp_path_factory.mktemp("clips"))


class TestOmni(BackboneSuite):
    def test_family_and_layout(self, bb, model_dir, examples):
        assert family_of(model_dir) == "qwen2_5_omni" and bb.family == "qwen2_5_omni"
        assert isinstance(bb, Backbone)
        text = bb.prompt_text(mixed_episodes(examples)[0])
        assert text.count("<|audio_bos|><|AUDIO|><|audio_eos|>Transcribe the audio.<|im_end|>") == 4
        assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")

    def test_ticl_preset_labels(self, model_dir, examples):
        bb = load_backbone(model_dir, preset="ticl")
        ep = mixed_episodes(examples)[0]
        batch = bb.render([ep])
        lab = batch.labels[0]
        assert bb.tokenizer.decode(lab[lab != -100]) == 'The transcription is: "lazy dog"<|im_end|>'
        assert "Transcribe the audio:" in bb.prompt_text(ep)


def test_loads_full_omni_checkpoint_layout(model_dir, examples, tmp_path):
    """A full Omni folder (model_type qwen2_5_omni, weights under ``thinker.``, plus talker weights) loads
    into the same thinker."""
    from transformers import Qwen2_5OmniConfig

    thinker_cfg = json.loads((model_dir / "config.json").read_text())
    full = Qwen2_5OmniConfig(thinker_config=thinker_cfg, enable_audio_output=False)
    full.save_pretrained(tmp_path)
    weights = {}
    for f in model_dir.glob("model*.safetensors"):
        weights.update({"thinker." + k: v for k, v in load_file(f).items()})
    weights["talker.codec_head.weight"] = torch.zeros(2, 2)
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    for f in model_dir.iterdir():
        if f.suffix != ".safetensors" and f.name not in ("config.json", "model.safetensors.index.json"):
            (tmp_path / f.name).write_bytes(f.read_bytes())
    a, b = load_backbone(model_dir), load_backbone(tmp_path)
    batch = a.render(mixed_episodes(examples)[:2])
    with torch.no_grad():
        assert torch.equal(a.forward(batch), b.forward(batch))
