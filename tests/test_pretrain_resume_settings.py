"""`sicl pretrain --resume` continues only the run it was started as: the settings are compared with the run's
config.yaml, and a change (but for the budget and operational keys, RESUME_SAFE_KEYS) is one line, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sicl.config import dump_config, load_config
from sicl.errors import SiclError
from sicl.pretrain.train import RESUME_SAFE_KEYS, PretrainConfig, check_run

BASE = ["source=tests.pretrain_tone_source", "mix={adult: 1.0}", "device=cpu", "threads=1"]


def _stopped_run(out: Path, *over: str) -> PretrainConfig:
    """A run folder as a stopped pretraining run leaves it: config.yaml and a complete checkpoint (model config +
    train state; nothing here loads the weights)."""
    cfg = load_config(PretrainConfig, None, [f"out_dir={out}", *BASE, *over])
    (out / "checkpoint" / "model").mkdir(parents=True)
    (out / "checkpoint" / "model" / "config.json").write_text("{}")
    (out / "checkpoint" / "train_state.json").write_text(json.dumps({"step": 3, "minutes": 1.5}))
    dump_config(cfg, out / "config.yaml")
    return cfg


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _resume(out: Path, *over: str) -> PretrainConfig:
    return load_config(PretrainConfig, None, [f"out_dir={out}", *BASE, "resume=true", *over])


def test_resume_with_other_settings_is_one_line_naming_each_change_and_writes_nothing(tmp_path, capsys):
    from sicl.cli.main import main

    out = tmp_path / "run"
    _stopped_run(out, "lr=0.001", "max_minutes=30")
    # a complete new checkpoint left in checkpoint.tmp (killed while replacing it): a refused resume leaves it there
    (out / "checkpoint.tmp" / "model").mkdir(parents=True)
    (out / "checkpoint.tmp" / "train_state.json").write_text(json.dumps({"step": 4}))
    before = _tree(out)
    args = ["pretrain", *BASE, f"out_dir={out}", "lr=0.002", "seed=5", "mix={adult: 1.0, text: 0.5}",
            "size={text_dim: 96}", "max_minutes=60", "--resume"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"sicl pretrain: error: --resume with other settings than the run in {out} (lr: 0.001 -> 0.002; mix.text: "
        f"None -> 0.5; seed: 0 -> 5; size.text_dim: None -> 96): resume with "
        f"the settings in {out / 'config.yaml'} (max_minutes, max_steps and operational keys such as threads, device, "
        f"workers may change), or pretrain into a new out_dir to start another run "
        f"(init={out / 'checkpoint' / 'model'} starts it from this run's weights)"], err
    assert _tree(out) == before  # nothing written, nothing moved (the lock file is gone again)
    # one changed key of each kind that shapes the run is refused, however it is given
    for change in ("batch_size=8", "warmup_steps=3", "ctc_weight=0", "groups={single: 0.5, text: 0.5}",
                   "exclude_world=runs/world", "init=elsewhere", "bf16=false", "eval_n=7", "buffer_size=99", "chunk=5",
                   "source=sicl.data.synth.items"):
        key = change.split("=")[0]
        with pytest.raises(SiclError, match=f"--resume with other settings than the run in .* \\({key}[.:]"):
            check_run(_resume(out, "max_minutes=30", "lr=0.001", change))
    assert _tree(out) == before


def test_budget_and_operational_keys_may_change(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _stopped_run(out, "max_minutes=30", "workers=1", "threads=1")
    safe = ["max_minutes=90", "max_steps=500", "threads=2", "workers=3", "log_every=5", "ckpt_every_minutes=1",
            "export_every_minutes=2", "eval_every_minutes=4", "eval_periodic_n=8", "eval_batch=4", "probes=false",
            f"export_dir={tmp_path / 'export'}", "export_shard=5MB", "save_dtype=fp32", "name=x", "description=y",
            f"ship_to={tmp_path / 'zoo'}", "device=auto"]
    assert {s.split("=")[0] for s in safe} | {"resume", "out_dir"} == set(RESUME_SAFE_KEYS)
    assert check_run(_resume(out, *safe))[2] == out / "checkpoint"
    # the same folder named another way (a relative path from its parent) is the same run
    monkeypatch.chdir(tmp_path)
    cfg = load_config(PretrainConfig, None, ["out_dir=run", *BASE, "resume=true", "max_minutes=30"])
    assert check_run(cfg)[2] == Path("run") / "checkpoint"


def test_the_saved_config_resumes_itself_and_a_broken_one_is_refused(tmp_path):
    out = tmp_path / "run"
    _stopped_run(out, "lr=0.001", "groups={single: 0.7, text: 0.3}", "mix={adult: 1.0, text: 0.1}")
    # the documented form: `sicl pretrain OUT/config.yaml --resume max_minutes=...`
    cfg = load_config(PretrainConfig, out / "config.yaml", ["resume=true", "max_minutes=99"])
    assert check_run(cfg)[2] == out / "checkpoint"
    (out / "config.yaml").write_text("lr: [\n")
    with pytest.raises(SiclError, match="--resume: the settings of the run in .* cannot be checked .*invalid YAML.*"
                                        "restore config.yaml, or pretrain into a new out_dir"):
        check_run(cfg)
    # a run without a checkpoint is not resumed (it starts from step 0), so its settings are not compared
    other = tmp_path / "fresh"
    other.mkdir()
    dump_config(load_config(PretrainConfig, None, [f"out_dir={other}", *BASE]), other / "config.yaml")
    assert check_run(_resume(other, "lr=0.5"))[2] is None


def test_a_run_without_config_yaml_resumes_unchecked_and_says_so(tmp_path, monkeypatch):
    """Every run writes config.yaml when it starts; one whose file was removed (or not copied with its checkpoint)
    still resumes, with a warning in train.log (and on the console), and gets the resumed settings saved."""
    from sicl.models import tiny_omni
    from sicl.pretrain.train import train

    out = tmp_path / "run"
    _stopped_run(out)
    (out / "config.yaml").unlink()

    class Loaded(Exception):
        pass

    def load(_path):
        raise Loaded

    monkeypatch.setattr(tiny_omni, "load_tiny_omni", load)  # stop where the checkpoint's model would load
    with pytest.raises(Loaded):
        train(_resume(out, "lr=0.123", "threads=0"))  # (threads=0: this process's torch threads stay as they are)
    log = (out / "train.log").read_text()
    assert f"resuming {out} without checking its settings: it has no config.yaml" in log
    assert load_config(PretrainConfig, out / "config.yaml").lr == 0.123
