"""tiny-omni: build/save/reload, processor placeholder counts, chat template, pretraining steps, zoo."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from sicl.errors import SiclError
from sicl.models import tiny_omni
from sicl.models.processor import SiclOmniProcessor, log_mel, num_audio_tokens
from sicl.testing import tone

SMALL = dict(audio_layers=1, audio_dim=64, audio_heads=2, audio_ffn=128, text_layers=1, text_dim=64,
             text_heads=2, text_kv_heads=1, text_ffn=128, vocab_size=400)


def build_tiny(out_dir=None, **size):
    """The smallest useful random tiny-omni (about a second)."""
    return tiny_omni.build_random_tiny_omni(out_dir, **{**SMALL, **size})


@dataclass
class Item:
    task: str
    target: str
    wav: np.ndarray
    question: str | None = None
    choices: list[str] | None = None
    target_lang: str | None = None
    transcript: str | None = None
    meta: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    model, processor = build_tiny(out)
    return out, model, processor


def _chat(processor, text="Transcribe the audio."):
    msgs = [{"role": "user", "content": [{"type": "audio", "audio": "a.wav"}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


def test_saved_in_hf_format_and_reloads_identically(tiny):
    out, model, processor = tiny
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not list(out.glob("*.bin"))
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    reloaded = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(out).eval()
    proc2 = SiclOmniProcessor.from_pretrained(out)
    inputs = proc2(text=[_chat(proc2)], audio=[tone(1.3)], return_tensors="pt")
    with torch.no_grad():
        a = model(**inputs).logits
        b = reloaded(**inputs).logits
    assert torch.equal(a, b)


def test_special_tokens_and_chat_template(tiny):
    _, _, processor = tiny
    tok = processor.tokenizer
    for t in tiny_omni.SPECIAL_TOKENS:
        assert tok.convert_tokens_to_ids(t) is not None and tok.convert_tokens_to_ids(t) >= len(tok) - 11
    assert tok.audio_token == "<|AUDIO|>" and tok.eos_token == "<|im_end|>"
    assert _chat(processor) == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                                "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>Transcribe the audio."
                                "<|im_end|>\n<|im_start|>assistant\n")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"}]
    assert processor.apply_chat_template(msgs, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\nhello<|im_end|>\n")
    # Special tokens stay single tokens and round-trip.
    ids = tok("<|audio_bos|><|AUDIO|><|audio_eos|>", add_special_tokens=False)["input_ids"]
    assert ids == [tok.convert_tokens_to_ids(t) for t in ("<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>")]


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.37, 4.0])
def test_processor_expands_audio_placeholders(tiny, seconds):
    _, _, processor = tiny
    wav = tone(seconds)
    inputs = processor(text=[_chat(processor)], audio=[wav], return_tensors="pt")
    frames = int(inputs["feature_attention_mask"].sum())
    expected = ((frames - 1) // 2 + 1 - 2) // 2 + 1
    assert expected == num_audio_tokens(frames)
    assert int((inputs["input_ids"] == processor.tokenizer.audio_token_id).sum()) == expected
    assert abs(expected - 25 * seconds) <= 2
    # Real-length features equal the processor's valid (30 s padded) frames.
    ours = log_mel(wav)
    assert ours.shape[1] == frames
    np.testing.assert_allclose(ours, inputs["input_features"][0, :, :frames].numpy(), atol=1e-6)


def test_pretraining_steps_reduce_loss_and_ctc_head_is_not_saved(tiny, tmp_path):
    from sicl.pretrain import data
    from sicl.pretrain.train import CtcHead, attach_frames_hook, losses

    model, processor = build_tiny()
    tok = processor.tokenizer
    items = [Item("asr", "one two three", tone(1.0, freq=200)), Item("asr", "four five", tone(0.8, freq=300)),
             Item("sqa", "two", tone(1.2), question="How many?", choices=["one", "two"], transcript="two dogs"),
             Item("st", "zi zo", tone(0.9), target_lang="zx", transcript="the dog")]
    batch = data.collate([data.featurize(it, tok) for it in items], tok.pad_token_id)
    assert (batch["labels"] != -100).sum() < (batch["attention_mask"] == 1).sum()  # answer tokens only
    assert batch["ctc_lengths"].tolist()[:2] == [len("one two three"), len("four five")]
    model.train()
    head = CtcHead(model.config.text_config.hidden_size)
    frames = attach_frames_hook(model)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=3e-3)
    history = []
    for _ in range(8):
        lm, ctc = losses(model, head, batch, frames)
        loss = lm + 0.5 * ctc
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert ctc.item() > 0 and history[-1] < history[0] * 0.8
    out = tiny_omni.save_tiny_omni(tmp_path / "m", model.eval(), processor, dtype=torch.bfloat16)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert f.get_tensor(next(iter(keys))).dtype == torch.bfloat16
    # Checkpoint names follow the hub layout, so compare counts; the CTC head adds "proj.*" keys.
    assert len(keys) == len(model.state_dict()) and not any("ctc" in k or k.startswith("proj") for k in keys)


def test_resolve_model_offline_and_local(tiny, monkeypatch):
    from sicl.models import zoo

    out, _, _ = tiny
    monkeypatch.delenv(zoo.ENV_ALLOW, raising=False)
    assert zoo.resolve_model(str(out)) == out
    with pytest.raises(SiclError, match="allow-download"):
        zoo.resolve_model("Qwen/Qwen2.5-Omni-7B")
    with pytest.raises(SiclError):
        zoo.resolve_model("./no/such/folder")


def test_export_round_trip(tiny, tmp_path):
    from sicl.pretrain.checkpoint import export_model, unpack_export

    out, model, _ = tiny
    files = export_model(out, tmp_path / "exp", max_shard="200KB")
    assert len([f for f in files if f.suffix == ".safetensors"]) > 1
    rebuilt, _ = tiny_omni.load_tiny_omni(unpack_export(tmp_path / "exp", tmp_path / "m"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values(), strict=True))


def test_sicl_models_lists_tiny_omni():
    res = subprocess.run([sys.executable, "-m", "sicl", "models"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "tiny-omni" in res.stdout and str(Path("sicl") / "zoo" / "tiny-omni") in res.stdout


def test_processor_call_under_the_vllm_envs_transformers(tmp_path):
    """transformers 5.16-5.19 (the vLLM env's pin) read image/video ``merge_size`` in ``__call__`` even for audio
    only; the processor must expand audio placeholders there too (skipped without ``make vllm-env``)."""
    import subprocess
    from pathlib import Path

    py = Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"
    if not py.exists():
        pytest.skip("no .venv-vllm (make vllm-env)")
    code = ("import numpy as np; from sicl.models.tiny_omni import load_tiny_omni; "
            "m, p = load_tiny_omni('sicl/zoo/tiny-omni'); "
            "t = p.tokenizer.apply_chat_template([{'role': 'user', 'content': [{'type': 'audio'}, "
            "{'type': 'text', 'text': 'hi'}]}], tokenize=False, add_generation_prompt=True); "
            "out = p(text=[t], audio=[np.zeros(16000, dtype=np.float32)], return_tensors='pt'); "
            "print(int((out['input_ids'] == p.tokenizer.convert_tokens_to_ids(p.audio_token)).sum()))")
    res = subprocess.run([str(py), "-c", code], cwd=py.parents[2], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert int(res.stdout.split()[-1]) == num_audio_tokens(100)  # 1 s = 100 mel frames
