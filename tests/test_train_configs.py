"""Every shipped config loads into its dataclass (or, for accelerate, parses with the keys it needs)."""

from pathlib import Path

import pytest
import yaml

from sicl.config import load_config
from sicl.pretrain.train import PretrainConfig
from sicl.train.sicl_at_config import TrainConfig

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ALL = sorted(CONFIGS.rglob("*.yaml"))


def test_every_folder_is_covered():
    assert {p.parent.name for p in ALL} <= {"demo", "paper", "pretrain", "accelerate"}
    assert {"sicl-at1.yaml", "sicl-at2.yaml", "sicl-at3.yaml", "direct-ft.yaml"} <= {
        p.name for p in (CONFIGS / "demo").iterdir()}


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_loads(path):
    head = path.read_text().splitlines()[:6]
    assert any("accelerate launch" in line or " train " in line or "python -m" in line or "sicl demo" in line
               for line in head), "a shipped config names the command that runs it in its header"
    kind = path.parent.name
    if path.name == "study.yaml":
        from sicl.study import load_study

        study = load_study(path)
        for a in study.adapters:  # every adapter of the study is a shipped training config
            assert (CONFIGS.parent / a.config).is_file()
        return
    if kind == "accelerate":
        data = yaml.safe_load(path.read_text())
        assert {"distributed_type", "num_processes", "mixed_precision"} <= set(data)
        return
    if kind == "pretrain":
        load_config(PretrainConfig, path)
        return
    cfg = load_config(TrainConfig, path)
    assert cfg.lora.r == 8 and cfg.lora.alpha == 32  # the published LoRA setting
    assert cfg.tasks and all(t.pool for t in cfg.tasks) == (max(cfg.k) > 0)
    if path.stem == "direct-ft":
        assert cfg.k == [0]


def test_presets_grow_the_mixture():
    names = [[t.name for t in load_config(TrainConfig, CONFIGS / "demo" / f"sicl-at{i}.yaml").tasks]
             for i in (1, 2, 3)]
    assert names == [["asr"], ["asr", "st"], ["asr", "st", "sqa"]]


def test_train_device_key(monkeypatch):
    import torch

    from sicl.errors import SiclError
    from sicl.train.sicl_at import build_trainer, train_device, training_arguments

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train_device("auto") == "cpu" and train_device("cpu") == "cpu"
    assert training_arguments(TrainConfig(device="cpu", output_dir="x")).use_cpu
    with pytest.raises(SiclError, match="no CUDA device"):
        train_device("cuda")
    with pytest.raises(SiclError, match="CUDA_VISIBLE_DEVICES=1"):
        train_device("cuda:1")
    # refused before the (missing) manifests or any model are read
    with pytest.raises(SiclError, match="no CUDA device"):
        build_trainer(TrainConfig(device="cuda", tasks=[]))
