"""Pretraining is a long job: SIGTERM saves a checkpoint and exits 128+15; resume=true goes on from it, and
max_minutes at the minutes already done ends the run there with the final evaluation and final/ model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    # resume, and end at once: the final evaluation runs and final/ is written
    done = subprocess.run(_args(tmp_path, init, resume="true", max_minutes=state["minutes"]), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["step"] == state["step"] and "adult" in metrics["eval"]
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
