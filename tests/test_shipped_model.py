"""End-to-end checks of the shipped tiny-omni (the model the demo uses), through the public loaders."""

import json

import numpy as np

from sicl.data.audio import write_audio
from sicl.data.manifest import Example
from sicl.data.synth.items import generate_items
from sicl.data.synth.text import adult_sentence
from sicl.episodes.episode import Episode
from sicl.episodes.prompts import extract_answer
from sicl.models.registry import load_backbone
from sicl.models.zoo import describe, resolve_model


def test_shipped_tiny_omni_is_complete_and_small():
    info = describe("tiny-omni")
    assert info.has_weights, "sicl/zoo/tiny-omni has no weights"
    assert 5e6 <= info.parameters <= 30e6 and info.bytes_on_disk < 60e6
    folder = resolve_model("tiny-omni")
    for name in ("config.json", "tokenizer_config.json", "processor_config.json", "README.md"):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {"adult", "child-science", "child-reading"} <= set(metrics["eval"])


def test_shipped_tiny_omni_transcribes_adult_speech(tmp_path):
    items = generate_items("adult", 3, seed=987_654)
    episodes = []
    for it in items:
        path = tmp_path / f"{it.id}.wav"
        write_audio(path, it.wav)
        episodes.append(Episode(Example(id=it.id, audio=str(path), task="asr", target=it.target)))
    backbone = load_backbone("tiny-omni")
    outputs = [extract_answer(text, "plain") for text in backbone.generate(episodes)]
    assert len(outputs) == 3 and all(o.strip() for o in outputs)
    # a pretrained model writes words of the world's adult English, not arbitrary sub-word pieces
    rng = np.random.default_rng(0)
    vocab = {w for _ in range(3000) for w in adult_sentence(rng).text.split()}
    words = [w for o in outputs for w in o.split()]
    assert sum(w in vocab for w in words) >= 0.5 * len(words)
