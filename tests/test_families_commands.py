"""Every registered backbone family through the commands, as a user runs them: `sicl train` (a few LoRA steps
on retrieved episodes) then `sicl eval` zero-shot/ICL without and with `--adapter`, on a tiny checkpoint of
each family. The adapter must change the output, so the trained weights really reach generation."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

from sicl.cli.main import main
from sicl.models.backbone import Backbone
from sicl.models.mimo_tiny import build_tiny_mimo, build_tiny_mimo_tokenizer
from sicl.models.qwen2_audio import build_random_tiny_qwen2_audio
from sicl.models.registry import families, family_of, load_backbone
from tests.train_fixtures import WORDS, assert_fast_path_exact, overrides


def _omni(data: dict[str, Path], folder: Path) -> Path:
    return data["model"]  # the shared random tiny-omni (tests/conftest.py)


def _qwen2_audio(data: dict[str, Path], folder: Path) -> Path:
    build_random_tiny_qwen2_audio(folder, texts=[" ".join(WORDS)] * 4)
    return folder


def _mimo(data: dict[str, Path], folder: Path) -> Path:
    # No code cache: every clip is encoded on the fly by the tokenizer inside the model folder.
    build_tiny_mimo(folder)
    build_tiny_mimo_tokenizer(folder / "audio_tokenizer")
    return folder


BUILDERS = {"qwen2_5_omni": _omni, "qwen2_audio": _qwen2_audio, "mimo_audio": _mimo}


def test_every_registered_family_is_covered():
    assert sorted(BUILDERS) == families()


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_every_family_implements_the_whole_protocol(family, data, tmp_path):
    # isinstance(bb, Backbone) only checks names; here every method must accept the protocol's parameters.
    bb = load_backbone(BUILDERS[family](data, tmp_path / "model"))
    assert bb.family == family and isinstance(bb, Backbone)
    for name, member in vars(Backbone).items():
        if name.startswith("_") or not callable(member):
            continue
        want = [p for p in inspect.signature(member).parameters if p != "self"]
        got = inspect.signature(getattr(bb, name)).parameters
        assert all(p in got for p in want), f"{family}.{name}{tuple(got)} lacks some of {want}"
    for attr in Backbone.__annotations__:
        assert getattr(bb, attr) is not None, f"{family}: {attr} is None"
    assert isinstance(bb.eot_id, int) and isinstance(bb.pad_id, int)
    assert bb.decoder_layers() and all(isinstance(m, torch.nn.Module) for m in bb.decoder_layers())
    assert bb.output_head().weight.shape[0] >= len(bb.tokenizer)  # the vocabulary projection


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_training_fast_path_is_exact_for_every_family(family, data, tmp_path, monkeypatch):
    # merged LoRA + answer-only logits + pruned last layer + causal-only mask: the plain path's loss and grads.
    from sicl.config import load_config
    from sicl.train.sicl_at import build_trainer
    from sicl.train.sicl_at_config import TrainConfig

    for var in ("SICL_MIMO_CODES", "SICL_MIMO_TOKENIZER"):
        monkeypatch.delenv(var, raising=False)
    model = BUILDERS[family](data, tmp_path / "model")
    cfg = load_config(TrainConfig, "configs/demo/sicl-at1.yaml",
                      overrides({**data, "model": model}, tmp_path / "run", max_steps=1, k="[0, 2]",
                                per_device_train_batch_size=3, **{"lora.dropout": 0.0}))
    trainer = build_trainer(cfg)
    assert trainer._last_layer is trainer.backbone.decoder_layers()[-1]  # the LLM's, never a tower's
    for p in trainer.model.parameters():  # B starts at zero: make the LoRA branch matter
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    assert_fast_path_exact(trainer, inputs)


def _predictions(folder: Path) -> list[str]:
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    return [r["prediction"] for r in rows]


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_train_then_eval_with_adapter(family, data, tmp_path, monkeypatch, capsys):
    for var in ("SICL_MIMO_CODES", "SICL_MIMO_TOKENIZER"):
        monkeypatch.delenv(var, raising=False)
    model = BUILDERS[family](data, tmp_path / "model")
    assert family_of(model) == family
    adapter = tmp_path / "adapter"
    train = overrides({**data, "model": model}, adapter, max_steps=3, learning_rate=0.05, k=1,
                      save_steps=1000, threads=1, **{"lora.alpha": 128, "lora.dropout": 0.0})
    assert main(["train", "configs/demo/sicl-at1.yaml", *train]) == 0, capsys.readouterr().err[-2000:]
    assert (adapter / "adapter_model.safetensors").is_file()
    common = ["--model", str(model), "--data", str(data["queries"]), "--pool", str(data["pool"]), "--k", "1",
              "--retriever", "random", "--limit", "4", "--max-new-tokens", "6", "--threads", "1"]
    assert main(["eval", *common, "--out", str(tmp_path / "base")]) == 0, capsys.readouterr().err[-2000:]
    assert main(["eval", *common, "--adapter", str(adapter), "--out", str(tmp_path / "tuned")]) == 0, \
        capsys.readouterr().err[-2000:]
    base, tuned = _predictions(tmp_path / "base"), _predictions(tmp_path / "tuned")
    assert len(base) == len(tuned) == 4
    assert base != tuned, "the adapter did not change any prediction"
    run = json.loads((tmp_path / "tuned" / "run.json").read_text())
    assert run["adapter"] == str(adapter)
    if family == "mimo_audio":  # the on-the-fly codes were stored in the model's code cache
        assert len(list((model / "sicl_codes").glob("*.npy"))) >= 8


def test_mimo_without_codes_needs_a_tokenizer_and_the_flag_gives_one(data, tmp_path, monkeypatch, capsys):
    for var in ("SICL_MIMO_CODES", "SICL_MIMO_TOKENIZER"):
        monkeypatch.delenv(var, raising=False)
    model = build_tiny_mimo(tmp_path / "model")
    args = ["eval", "--model", str(model), "--data", str(data["queries"]), "--k", "0", "--limit", "2",
            "--max-new-tokens", "4"]
    rc = main([*args, "--out", str(tmp_path / "e1")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("sicl eval: error: q-") and "sicl codes" in err[0], err[0]
    tok = build_tiny_mimo_tokenizer(tmp_path / "tok")
    assert main([*args, "--audio-tokenizer", str(tok), "--out", str(tmp_path / "e2")]) == 0, capsys.readouterr().err
    assert len(_predictions(tmp_path / "e2")) == 2
    assert len(list((model / "sicl_codes").glob("*.npy"))) == 2  # stored for the next run


def test_audio_tokenizer_for_a_tower_family_is_one_line(data, tmp_path, capsys):
    rc = main(["eval", "--model", str(data["model"]), "--data", str(data["queries"]), "--k", "0", "--limit", "1",
               "--audio-tokenizer", str(tmp_path), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "own tower" in err[0], err
