"""Qwen2-Audio backbone on a tiny random Qwen2-Audio saved to disk: the same suite as Qwen2.5-Omni."""

from __future__ import annotations

import pytest
from backbone_suite import BackboneSuite, make_examples, mixed_episodes

from sicl.models.qwen2_audio import build_random_tiny_qwen2_audio
from sicl.models.registry import family_of


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_qwen2_audio")
    build_random_tiny_qwen2_audio(out)
    return out


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return make_examples(tmp_path_factory.mktemp("clips"))


class TestQwen2Audio(BackboneSuite):
    def test_family_and_audio_lines(self, bb, model_dir, examples):
        assert family_of(model_dir) == "qwen2_audio"
        text = bb.prompt_text(mixed_episodes(examples)[0])
        for n in range(1, 5):
            assert f"Audio {n}: <|audio_bos|><|AUDIO|><|audio_eos|>\n" in text
        assert "Audio 5:" not in text
