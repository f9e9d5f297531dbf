"""Pretraining is a long job: SIGTERM saves a checkpoint and exits 128+15; resume=true goes on from it, and
max_minutes at the minutes already done ends the run there with the final evaluation and final/ model."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_tiny_omni import build_tiny

ROOT = Path(__file__).resolve().parents[1]


def _args(tmp_path: Path, init: Path, **over: object) -> list[str]:
    cfg = {"out_dir": tmp_path / "run", "source": "tests.pretrain_tone_source", "init": init,
           "mix": "{adult: 1.0}", "eval_n": 2, "probes": "false", "min_buffer": 4, "chunk": 4, "batch_size": 2,
           "warmup_steps": 1, "max_minutes": 5, "ckpt_every_minutes": 100, "eval_every_minutes": 0, "threads": 1,
           "log_every": 1, "workers": 1, "save_dtype": "fp32", **over}
    return [sys.executable, "-m", "sicl.pretrain", *(f"{k}={v}" for k, v in cfg.items())]


def test_sigterm_checkpoints_and_resume_finishes(tmp_path):
    init = tmp_path / "init"
    build_tiny(init)
    log = tmp_path / "run" / "train.log"
    proc = subprocess.Popen(_args(tmp_path, init), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and '"step": 2,' in log.read_text()):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "SIGTERM received" in err.splitlines()[-1] and "resume=true" in err.splitlines()[-1]
    state = json.loads((tmp_path / "run" / "checkpoint" / "train_state.json").read_text())
    assert state["step"] >= 2 and not (tmp_path / "run" / "final").exists()
    # without resume=true the stopped run is refused, not started over (its checkpoint would be overwritten)
    before = _tree(tmp_path / "run")
    again = subprocess.run(_args(tmp_path, init), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and again.stderr.strip().splitlines() == [
        f"sicl pretrain: error: out_dir {tmp_path / 'run'} already holds a pretraining run (config.yaml, checkpoint)"
        ": pass --resume (resume=true) to continue that run, or pretrain into another (or an empty) out_dir "
        "to start over"], again.stderr[-2000:]
    assert _tree(tmp_path / "run") == before
    # resume, and end at once: the final evaluation runs and final/ is written
    done = subprocess.run(_args(tmp_path, init, resume="true", max_minutes=state["minutes"]), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["step"] == state["step"] and "adult" in metrics["eval"]
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("override", "message"), [
    ("threads=-2", "threads must be >= 0 (0: torch's default), got -2"),
    ("batch_size=0", "batch_size must be >= 1, got 0"),
    ("max_steps=-1", "max_steps must be >= 0 (0: no limit), got -1"),
    ("mix={adult: -1}", "mix.adult must be a number >= 0, got -1"),
    ("mix={text: 1}", "mix needs an audio kind (besides text) with a weight > 0"),
    ("groups={single: 0}", "groups needs a group with a weight > 0"),
    ("groups={pairs: 1}", "groups unknown group 'pairs'"),
    ("group_batch={single: 0}", "group_batch.single must be a whole number >= 1, got 0"),
    ("chat_clips=[3, 2]", "chat_clips must be [min, max] with 1 <= min <= max, got [3, 2]"),
    ("device=bogus", "device must be auto, cpu, cuda or cuda:N, got 'bogus'"),
    ("lr=0", "lr must be a number > 0, got 0"),
    ("max_minutes=-5", "max_minutes must be a number > 0, got -5"),
    ("save_dtype=fp16", "save_dtype must be bf16 or fp32, got 'fp16'"),
    ("export_shard=big", "export_shard must be a size such as 12MB"),
    ("size={layers: 2}", "size unknown key 'layers'"),
])
def test_bad_values_are_one_line_errors_when_the_config_loads(override, message):
    from sicl.config import load_config
    from sicl.errors import ConfigError
    from sicl.pretrain.train import PretrainConfig

    with pytest.raises(ConfigError, match=re.escape(f"override {override}: {message}")):
        load_config(PretrainConfig, None, [override])


def test_what_is_on_disk_is_checked_before_anything_is_written(tmp_path, monkeypatch, capsys):
    """init, the source's kinds, exclude_world, the device and the output folder: one line each, nothing written."""
    import torch

    from sicl.cli.main import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    base = [f"out_dir={out}", "source=tests.pretrain_tone_source", "mix={adult: 1.0}", "threads=1"]
    cases = [(["init=nope/model"], f"init: nope/model: no such model folder (relative paths are resolved from the "
                                   f"current directory {tmp_path}); give a model folder or a built-in model"),
             (["mix={adult: 1, klingon: 1}"], "mix: unknown kind(s) 'klingon' for source tests.pretrain_tone_source "
                                              "(known: adult, text)"),
             (["source=no.such.module"], "source: cannot import 'no.such.module'"),
             (["exclude_world=runs/world"], f"exclude_world: runs/world: no such folder (relative paths are resolved "
                                            f"from the current directory {tmp_path})")]
    if not torch.cuda.is_available():
        cases.append((["device=cuda"], "device 'cuda' requested, but torch sees no CUDA device (use device=cpu or auto)"))
    for extra, message in cases:
        assert main(["pretrain", *base, *extra]) == 1, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"sicl pretrain: error: {message}"), (extra, err)
        assert not out.exists(), extra
    with pytest.raises(SystemExit) as e:
        main(["pretrain", *base, "--threads", "-2"])
    assert e.value.code == 2 and "--threads: must be >= 0" in capsys.readouterr().err


def test_resume_checks_the_folder_and_takes_a_checkpoint_left_in_checkpoint_tmp(tmp_path, capsys):
    from sicl.errors import SiclError
    from sicl.pretrain.train import PretrainConfig, check_run

    out = tmp_path / "run"
    cfg = PretrainConfig(out_dir=str(out), source="tests.pretrain_tone_source", mix={"adult": 1.0}, device="cpu",
                         resume=True)
    # --resume on an empty (or missing) folder: starts from step 0 and says so, as sicl train does
    assert check_run(cfg)[2] is None
    assert capsys.readouterr().err.strip() == f"sicl pretrain: no checkpoint in {out}; starting from step 0"
    # a finished run's results without a checkpoint to continue from: refused
    (out / "final").mkdir(parents=True)
    with pytest.raises(SiclError, match="holds a run's results \\(final\\) but no checkpoint to continue from"):
        check_run(cfg)
    # killed while replacing its checkpoint: the complete new one (checkpoint.tmp) takes the old one's place
    (out / "final").rmdir()
    for folder, step in (("checkpoint", 1), ("checkpoint.tmp", 2)):
        (out / folder / "model").mkdir(parents=True)
        (out / folder / "model" / "config.json").write_text("{}")
        (out / folder / "train_state.json").write_text(json.dumps({"step": step}))
    (out / "checkpoint" / "model" / "config.json").unlink()  # half removed
    assert check_run(cfg)[2] == out / "checkpoint" and not (out / "checkpoint.tmp").exists()
    assert json.loads((out / "checkpoint" / "train_state.json").read_text())["step"] == 2
    with pytest.raises(SiclError, match="already holds a pretraining run \\(checkpoint\\): pass --resume"):
        check_run(PretrainConfig(out_dir=str(out), source="tests.pretrain_tone_source", mix={"adult": 1.0}))


def test_probes_with_fewer_held_out_items_than_the_icl_probe_needs_finish_without_it(tmp_path):
    """eval_n=2 with probes on: the 3-demonstration probe needs 4 adult items, so it is left out, instead of the run
    crashing after training with a traceback and no final/ model."""
    from sicl.pretrain.evaluate import probe_icl

    with pytest.raises(ValueError, match=r"^probe_icl needs at least k \+ 1 = 4 items, got 2$"):
        probe_icl(None, None, [object(), object()], k=3)
    init = tmp_path / "init"
    build_tiny(init)
    done = subprocess.run(_args(tmp_path, init, probes="true", max_steps=1), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (tmp_path / "run" / "final").is_dir() and "adult-icl3" not in json.dumps(metrics)
