"""sicl eval sharded over 2 processes (torchrun, gloo on CPU) equals a 1-process run."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train_fixtures import make_train_data

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_eval_equals_one_process(tmp_path):
    data = make_train_data(tmp_path)

    def args(out):
        return ["-m", "sicl", "eval", "--data", str(data["queries"]), "--pool", str(data["pool"]),
                "--model", str(data["model"]), "--k", "0,2", "--retriever", "random", "--batch-size", "2",
                "--max-new-tokens", "6", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, *args(one)], cwd=ROOT, env=env, check=True, capture_output=True, timeout=240)
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(_free_port()), *args(two)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for k in (0, 2):
        a = [json.loads(x) for x in (one / f"k={k}" / "predictions.jsonl").read_text().splitlines()]
        b = [json.loads(x) for x in (two / f"k={k}" / "predictions.jsonl").read_text().splitlines()]
        assert [(r["id"], r["raw"], r["demos"]) for r in a] == [(r["id"], r["raw"], r["demos"]) for r in b]
        assert (one / f"k={k}" / "metrics.json").read_text() == (two / f"k={k}" / "metrics.json").read_text()
        assert not list((two / f"k={k}").glob("predictions.rank*"))
        run = json.loads((two / f"k={k}" / "run.json").read_text())
        assert run["world_size"] == 2 and len(run["ranks"]) == 2
    assert (two / "sweep.csv").is_file()
