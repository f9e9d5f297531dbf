"""The real CLI under `accelerate launch` with 2 processes (DDP, gloo on CPU)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.train_fixtures import make_train_data, overrides

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_accelerate_launch(tmp_path):
    data = make_train_data(tmp_path)
    out = tmp_path / "run"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--config_file", "configs/accelerate/cpu2.yaml",
           "--main_process_port", str(_free_port()), "-m", "sicl", "train", "configs/demo/sicl-at1.yaml",
           "max_steps=2", *overrides(data, out)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["world_size"] == 2 and info["global_step"] == 2
    assert (out / "adapter_model.safetensors").is_file() and (out / "config.yaml").is_file()
