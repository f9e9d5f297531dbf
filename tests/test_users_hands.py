"""Small things users hit first (issue 17): errors name their source and come before any work, outputs are
readable by colleagues, a missing optional logger is a warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sicl.atomic import atomic_write_text
from sicl.config import load_config
from sicl.errors import ConfigError
from sicl.train.sicl_at_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def test_config_errors_name_the_command_line_or_the_file(tmp_path):
    cfg = "configs/demo/sicl-at1.yaml"
    with pytest.raises(ConfigError, match=r"^command line: unknown key\(s\) foo for TrainConfig"):
        load_config(TrainConfig, cfg, ["foo=1"])
    with pytest.raises(ConfigError, match=r"^command line: unknown key\(s\) lora.rank for LoraSettings"):
        load_config(TrainConfig, cfg, ["lora.rank=4"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny-omni\nfoo: 1\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: unknown key\(s\) foo"):
        load_config(TrainConfig, bad, ["max_steps=3"])
    with pytest.raises(ConfigError, match=r"^command line: retrieval.k is not used here \(demonstrations per "):
        load_config(TrainConfig, cfg, ["retrieval.k=5"])
    bad.write_text("retrieval: {k: 4}\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: retrieval.k is not used here"):
        load_config(TrainConfig, bad)
    assert load_config(TrainConfig, cfg).max_steps > 0  # overrides are optional


def test_atomic_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.json", "{}")
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o002)
        assert atomic_write_text(tmp_path / "b.json", "{}").stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)


def _sicl(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "sicl", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_eval_with_a_missing_adapter_is_one_line_and_writes_nothing(data, tmp_path):
    out = tmp_path / "nested" / "out"
    res = _sicl("eval", "--model", data["model"], "--data", data["queries"], "--adapter", tmp_path / "nope",
                "--out", out)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == f"sicl eval: error: --adapter {tmp_path / 'nope'}: does not exist"
    assert not (tmp_path / "nested").exists()
    res = _sicl("eval", "--model", tmp_path / "no-model", "--data", data["queries"], "--out", out)
    assert res.returncode == 1 and "Traceback" not in res.stderr and "no-model" in res.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "nested").exists()


def test_train_with_a_missing_manifest_fails_before_the_model_and_leaves_no_folder(data, tmp_path):
    out = tmp_path / "runs" / "train" / "x"
    res = _sicl("train", "configs/demo/sicl-at1.yaml", f"model={tmp_path / 'no-model-needed-yet'}",
                f"output_dir={out}", f"tasks=[{{name: asr, queries: {tmp_path / 'missing.jsonl'}, pool: x.jsonl}}]")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "missing.jsonl: cannot open manifest" in res.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists()


def test_missing_tensorboard_is_a_warning_not_a_traceback(monkeypatch, capsys):
    import importlib.util

    from sicl.train.sicl_at import _loggers

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tensorboard") else real(name, *a))
    assert _loggers(["tensorboard"]) == ["none"] and _loggers(["tensorboard", "wandb"]) == ["wandb"]
    assert "tensorboard is not installed" in capsys.readouterr().err


def test_devices_resolve_and_a_missing_gpu_is_one_line(data, tmp_path):
    import torch

    from sicl.device import helper_dtype, resolve_device
    from sicl.errors import SiclError
    from sicl.retrieval.embed import TextEmbedder

    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu" and TextEmbedder().device == "cpu"
        with pytest.raises(SiclError, match="no CUDA device"):
            resolve_device("cuda:0")
        res = _sicl("retrieve", "--queries", data["queries"], "--pool", data["pool"], "--k", "2", "--device", "cuda",
                    "--pseudo-labeler", "gold", "--out", tmp_path / "r.jsonl")
        assert res.returncode == 1 and "Traceback" not in res.stderr and "no CUDA device" in res.stderr
        assert not (tmp_path / "r.jsonl").exists()
    assert helper_dtype("cuda:1") == "bfloat16" and helper_dtype("cpu") == "float32"


def test_python_values_are_taken_as_given_and_errors_name_the_argument(tmp_path):
    cfg = "configs/demo/sicl-at1.yaml"
    for text in ("runs/x #2", "a: b", "yes", "null", "~", "3"):
        assert load_config(TrainConfig, cfg, values={"output_dir": text}, caller="sicl.train").output_dir == text
    assert load_config(TrainConfig, cfg, ["lora.r=4"], values={"lora.r": 16}).lora.r == 16  # after overrides
    with pytest.raises(ConfigError, match=r"^argument foo of sicl.train: unknown key\(s\) foo for TrainConfig"):
        load_config(TrainConfig, cfg, values={"foo": 1}, caller="sicl.train")
    with pytest.raises(ConfigError, match=r"^argument retrieval of sicl.train: retrieval.k is not used here"):
        load_config(TrainConfig, cfg, values={"retrieval": {"k": 5}}, caller="sicl.train")
    with pytest.raises(ConfigError, match=r"^argument max_steps of sicl.train: max_steps must be int, got '5'"):
        load_config(TrainConfig, cfg, values={"max_steps": "5"}, caller="sicl.train")
    with pytest.raises(ConfigError, match=r"^override max_steps=ten: max_steps must be int"):  # the CLI's wording
        load_config(TrainConfig, cfg, ["max_steps=ten"])


def test_plain_mode_gives_what_open_gives(tmp_path):
    from sicl.atomic import plain_mode

    (tmp_path / "open").write_text("")
    (tmp_path / "private").write_text("")
    os.chmod(tmp_path / "private", 0o600)
    plain_mode(tmp_path / "private")
    assert (tmp_path / "private").stat().st_mode == (tmp_path / "open").stat().st_mode
