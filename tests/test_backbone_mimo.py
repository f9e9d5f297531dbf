"""MiMo-Audio backbone on a tiny random checkpoint in MiMo-Audio's layout, built into tmp_path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from backbone_suite import assert_batch_equals_each_alone, make_examples, mixed_episodes
from safetensors.torch import load_file, save_file

from sicl.data.audio import load_audio
from sicl.episodes import prompts
from sicl.episodes.episode import Episode
from sicl.errors import AudioError, SiclError
from sicl.models.backbone import Backbone
from sicl.models.lora import LoraSettings, apply_lora
from sicl.models.mimo_audio import MimoAudioBackbone, MimoBatch, code_frames, write_codes
from sicl.models.mimo_tiny import build_tiny_mimo, count_parameters
from sicl.models.registry import family_of, load_backbone


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_mimo(tmp_path_factory.mktemp("tiny_mimo"))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return make_examples(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def codes_dir(tmp_path_factory, examples):
    d = tmp_path_factory.mktemp("codes")
    rng = np.random.default_rng(0)
    for ex in examples:
        wav = load_audio(ex.audio)
        frames = code_frames(len(wav))
        codes = np.stack([rng.integers(0, 1024 if c < 2 else 128, frames) for c in range(8)], 1)
        write_codes(d, wav, codes)
    return d


@pytest.fixture(scope="module", params=["base", "chat"])
def bb(request, model_dir, codes_dir):
    return _load(model_dir, codes_dir, request.param)


def _load(model_dir, codes_dir, fmt):
    from sicl.models.mimo_audio import load_mimo_audio

    return load_mimo_audio(model_dir, prompt_format=fmt, codes_dir=codes_dir)


def test_family_and_tiny_size(model_dir, codes_dir):
    assert family_of(model_dir) == "mimo_audio"
    bb = load_backbone(model_dir)
    assert isinstance(bb, MimoAudioBackbone) and isinstance(bb, Backbone) and bb.prompt_format == "base"
    assert 100_000 < count_parameters(model_dir) < 1_000_000
    # the patch decoder's weights are in the checkpoint and were skipped without complaint
    assert any(k.startswith("local_transformer.") for k in load_file(model_dir / "model.safetensors"))


def test_unknown_weight_is_an_error(model_dir, tmp_path):
    for f in model_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    sd = load_file(model_dir / "model.safetensors")
    sd["mystery.weight"] = torch.zeros(2)
    save_file(sd, tmp_path / "model.safetensors")
    with pytest.raises(SiclError, match="mystery"):
        load_backbone(tmp_path)


@pytest.mark.parametrize("side", ["left", "right"])
def test_labels_are_exactly_the_answer_span(bb, examples, side):
    eps = mixed_episodes(examples)
    batch = bb.render(eps, padding_side=side)
    end = "<|im_end|>" if bb.prompt_format == "chat" else "\n\n"
    lead = "" if bb.prompt_format == "chat" else " "
    for row, ep in enumerate(eps):
        lab = batch.labels[row]
        kept = lab[lab != -100].tolist()
        assert bb.tokenizer.decode(kept) == lead + prompts.answer_text(ep.query.target, ep.query.task) + end
        pos = (lab != -100).nonzero().flatten()
        assert pos.max() - pos.min() + 1 == len(kept)
        assert batch.attention_mask[row, pos].all()
        assert torch.equal(batch.input_ids[row, pos], lab[pos])
        # the answer is the last thing in the row
        assert int(batch.attention_mask[row].nonzero().max()) == int(pos.max())


def test_layout_text_and_audio_channels(bb, examples):
    ep = mixed_episodes(examples)[0]
    batch = bb.render([ep])
    ids, sp = batch.input_ids[0], batch.speech_ids[0]
    audio = ids == bb.empty_id
    empty = torch.tensor(bb.speech_empty_ids)
    assert (sp[~audio] == empty).all() and not (sp[audio] == empty).all(-1).any()
    assert int((ids == bb.sosp_id).sum()) == int((ids == bb.eosp_id).sum()) == 4
    assert batch.audio_tokens == [bb.num_audio_tokens(round(e.duration * 16000)) for e in ep.examples]
    assert int(audio.sum()) + 8 == sum(batch.audio_tokens)
    text = bb.prompt_text(ep)
    if bb.prompt_format == "base":
        assert text.startswith("[Int]:\n<|sosp|><audio:c0><|eosp|>\nQuestion: Transcribe the audio.\nAnswer: ")
        assert text.endswith("\nAnswer: lazy dog\n\n")
    else:
        assert "<|im_start|>user\n<|sosp|><audio:c0><|eosp|>Transcribe the audio.<|im_end|>\n" in text
        assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\nlazy dog<|im_end|>")


def test_audio_codes_reach_the_llm(bb, examples):
    ep = Episode(examples[1], [examples[0]])
    batch = bb.render([ep])
    codes = {e.id: bb.encode_audio([load_audio(e.audio)])[0] for e in ep.examples}
    other = {k: (v + 1) % 128 for k, v in codes.items()}
    with torch.no_grad():
        a = bb.forward(batch)
        b = bb.forward(bb.render([ep], tower_outputs=codes))
        c = bb.forward(bb.render([ep], tower_outputs=other))
    assert torch.equal(a, b)
    first_audio = int((batch.input_ids[0] == bb.empty_id).nonzero().min())
    assert torch.allclose(a[0, :first_audio], c[0, :first_audio])  # causal: before the audio, unchanged
    assert not torch.allclose(a[0, first_audio:], c[0, first_audio:])


def test_batched_equals_single(bb, examples):
    assert_batch_equals_each_alone(bb, mixed_episodes(examples))


def test_missing_codes_name_the_clip(model_dir, examples, tmp_path):
    bb = _load(model_dir, tmp_path / "empty_cache", "base")
    with pytest.raises(AudioError, match=r"c3 .*clip3\.wav.*no MiMo-Audio codes"):
        bb.render([Episode(examples[3], [])])


def test_generate_returns_text_within_budget(bb, examples):
    eps = mixed_episodes(examples)
    budgets = {"asr": 3, "st": 5, "sqa": 2}
    out = bb.generate(eps, max_new_tokens=budgets)
    assert len(out) == len(eps) and all(isinstance(t, str) for t in out)
    rows = bb.generate_ids(eps, max_new_tokens=budgets)
    for row, ep in zip(rows, eps, strict=True):
        assert len(row) <= budgets[ep.query.task]
    assert bb.generate_ids([eps[2]], max_new_tokens=budgets) == [rows[2]]


def test_greedy_generation_matches_full_forward(bb, examples):
    """The cached decoding loop picks the argmax of a full forward over prompt + generated tokens."""
    ep = mixed_episodes(examples)[2]
    row = bb.generate_ids([ep], max_new_tokens=3)[0]
    batch = bb.render([ep], with_labels=False)
    with torch.no_grad():
        first = int(bb.forward(batch)[0, -1].argmax())
    assert row[:1] == [first] or first in (bb.im_end_id, bb.pad_id)


def test_lora_trains_only_adapters_and_loss_decreases(model_dir, codes_dir, examples):
    bb = _load(model_dir, codes_dir, "chat")
    bb.model = apply_lora(bb.model, LoraSettings(r=4, alpha=16, dropout=0.0))
    trainable = [n for n, p in bb.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(".model.layers." in n and "input_local_transformer" not in n for n in trainable)
    batch = bb.render(mixed_episodes(examples))
    opt = torch.optim.Adam([p for p in bb.model.parameters() if p.requires_grad], lr=1e-2)
    before = {n: p.detach().clone() for n, p in bb.model.named_parameters() if not p.requires_grad}
    bb.model.train()
    losses = []
    for _ in range(6):
        loss = bb.loss(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.05, losses
    assert all(torch.equal(p, before[n]) for n, p in bb.model.named_parameters() if n in before)


FIXTURES = Path(__file__).parent / "fixtures" / "mimo"


@pytest.mark.parametrize("fmt", ["base", "chat"])
def test_matches_reference_logits(model_dir, codes_dir, fmt):
    """Logits of the public MiMo-Audio modeling code on the same tiny checkpoint and input (computed by
    tests/fixtures/mimo/make_reference.py, fp32 patch accumulator; see docs/backbones.md)."""
    meta = json.loads((FIXTURES / "reference.json").read_text())
    sd = load_file(model_dir / "model.safetensors")
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].float().numpy().tobytes())
    if h.hexdigest() != meta["weights_sha256"]:
        pytest.skip("this torch build generates different tiny weights than the fixture's")
    fx = load_file(FIXTURES / f"reference_{fmt}.safetensors")
    bb = _load(model_dir, codes_dir, fmt)
    batch = MimoBatch(input_ids=fx["input_ids"], attention_mask=fx["attention_mask"], speech_ids=fx["speech_ids"])
    with torch.no_grad():
        ours = bb.forward(batch)[0]
    assert (ours - fx["reference_logits"]).abs().max() <= 1e-4


def test_patch_encoder_is_bidirectional_within_a_patch(model_dir):
    from sicl.models.mimo_audio import load_model

    m = load_model(model_dir)
    x = torch.randn(1, 4, m.config.input_local_dim)
    y = x.clone()
    y[0, 3] += 1.0
    with torch.no_grad():
        a, b = m.input_local_transformer(x), m.input_local_transformer(y)
    assert not torch.allclose(a[0, 0], b[0, 0])  # frame 0 sees frame 3 (input_full_attention)


def test_code_frames_follow_the_tokenizer(bb):
    """Frame counts measured through MiMo-Audio's own tokenizer length path (torchaudio resample, centred
    mel, its encoder's encode) by tests/fixtures/mimo/check_pinned.py; e.g. exactly 1 s gives 26 frames."""
    rows = json.loads((FIXTURES / "reference_pinned.json").read_text())["code_frames"]["rows"]
    measured = [r for r in rows if "code_frames" in r]
    assert len(measured) >= 20
    for r in measured:
        if "samples_16k" in r:
            assert code_frames(r["samples_16k"]) == r["code_frames"], r
        assert code_frames(r["samples_24k"], 24_000) == r["code_frames"], r
    assert [code_frames(n) for n in (639, 640, 16_000, 48_000)] == [1, 2, 26, 76]
    # 0.64 s: 17 frames, so 5 patches (+ sosp/eosp), not the 4 that ceil(seconds x 25) = 16 would give
    assert bb.num_audio_tokens(10_240) == 7
