"""Faults through the real commands (subprocesses, real signals): one writer per output folder, SIGTERM = save
and stop, corrupt checkpoints, non-finite losses, full disks (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sicl.errors import SiclError
from sicl.guard import LOCK_NAME, output_lock
from tests.train_fixtures import overrides

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def _eval(data, out, *extra):
    return [sys.executable, "-m", "sicl", "eval", "--data", str(data["queries"]), "--pool", str(data["pool"]),
            "--model", str(data["model"]), "--k", "2", "--retriever", "random", "--max-new-tokens", "40",
            "--batch-size", "1", "--cache-dir", str(out) + "-cache", "--out", str(out), *extra]


def _train(data, out, *extra):
    return [sys.executable, "-m", "sicl", "train", "configs/demo/sicl-at1.yaml",
            *overrides(data, out, max_steps=16, save_steps=4, save_total_limit=3), *extra]


def _run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, **kw)


def _wait_for(proc, ready, what: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} never happened (exit {proc.poll()})")


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("sicl")]
    assert lines and "Traceback" not in stderr, stderr[-3000:]
    return lines[-1]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_second_writer_is_refused_and_sigterm_saves_then_resume_completes(data, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_eval(data, out), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    pred = out / "predictions.jsonl"
    _wait_for(proc, lambda: pred.exists() and pred.read_text().count("\n") >= 1, "a first prediction")
    proc.send_signal(signal.SIGSTOP)  # hold it mid-run (a tiny model finishes in a second)
    second = _run(_eval(data, out))
    assert second.returncode == 1
    line = _one_line(second.stderr)
    assert "in use by another sicl run" in line and f"pid {proc.pid}" in line and "sicl eval" in line
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    line = _one_line(err)
    assert line.startswith("sicl eval: stopped: SIGTERM received") and "--resume" in line
    assert not (out / "metrics.json").exists() and not (out / LOCK_NAME).exists()
    saved = _rows(pred)  # every line whole
    assert 1 <= len(saved) < 6
    done = _run(_eval(data, out, "--resume"))
    assert done.returncode == 0, done.stderr[-2000:]
    final = {r["id"]: r for r in _rows(pred)}
    assert len(_rows(pred)) == 6 and sorted(final) == sorted(f"q-{i}" for i in range(6))  # each once
    assert all(final[r["id"]]["raw"] == r["raw"] for r in saved)  # what was saved is what was kept
    assert (out / "metrics.json").is_file()


def test_a_stale_lock_is_taken_over_with_a_warning(data, tmp_path):
    out = tmp_path / "stale"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": time.time(),
                                             "command": "sicl eval"}))
    res = _run(_eval(data, out, "--k", "0", "--max-new-tokens", "3"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"taking over the lock of {out}" in res.stderr and f"pid {dead.pid}" in res.stderr
    assert (out / "metrics.json").is_file() and not (out / LOCK_NAME).exists()


def test_lock_refuses_a_second_holder_in_process_and_cleans_up(tmp_path):
    folder = tmp_path / "new"
    with output_lock(folder, "sicl demo"):
        with pytest.raises(SiclError, match=r"in use by another sicl run: pid \d+ .*\(sicl demo\)"):
            # flock is per open file description: a second open in the same process conflicts like another run
            with output_lock(folder, "sicl demo"):
                pass
    assert not folder.exists()  # created by the lock and left empty: removed


def test_train_sigterm_saves_a_checkpoint_and_resume_after_a_corrupt_one_equals_a_straight_run(data, tmp_path):
    straight = _run(_train(data, tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-2000:]
    out = tmp_path / "run"
    proc = subprocess.Popen(_train(data, out), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(proc, lambda: (out / "checkpoint-4" / "trainer_state.json").exists(), "the first checkpoint")
    proc.send_signal(signal.SIGSTOP)  # a tiny model trains 40 steps in seconds: make sure the signal lands mid-run
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    line = _one_line(err)
    assert "SIGTERM received: saved" in line and "--resume" in line
    steps = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert steps and steps[-1] < 16 and not (out / "adapter_model.safetensors").exists()
    # a crash while writing the newest checkpoint: --resume reports it and continues from the one before
    newest = out / f"checkpoint-{steps[-1]}" / "adapter_model.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    resumed = _run(_train(data, out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    if len(steps) > 1:
        assert f"checkpoint-{steps[-1]} is unusable (adapter_model.safetensors" in resumed.stderr
    a = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    b = load_file(out / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_resume_with_only_broken_checkpoints_is_one_line(data, tmp_path):
    out = tmp_path / "broken"
    (out / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoint-4" / "trainer_state.json").write_text('{"global_st')
    res = _run(_train(data, out, "--resume"))
    assert res.returncode == 1
    line = _one_line(res.stderr)
    assert "no usable checkpoint" in line and "checkpoint-4 is unusable (trainer_state.json" in res.stderr


def test_non_finite_loss_stops_with_step_and_episodes_and_keeps_the_checkpoint(data, tmp_path):
    out = tmp_path / "nan"
    res = _run(_train(data, out, "learning_rate=1e12", "save_steps=1", "warmup_steps=0"))
    assert res.returncode == 1, res.stderr[-2000:]
    line = _one_line(res.stderr)
    assert "loss is nan at step" in line or "loss is inf at step" in line, line
    assert "(episodes " in line and ":q-" in line and "last good checkpoint is checkpoint-" in line
    step = int(line.split(" at step ")[1].split()[0])
    assert (out / f"checkpoint-{step - 1}" / "adapter_model.safetensors").is_file()
    assert not (out / "adapter_model.safetensors").exists()


@pytest.fixture()
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_is_one_line_keeps_what_was_written_and_resume_finishes(data, small_disk):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (64 - 8) * 1024)  # leave two pages
    out = small_disk / "run"
    res = _run(_eval(data, out))
    assert res.returncode == 1
    line = _one_line(res.stderr)
    assert "no space left on the device" in line and "--resume" in line
    for f in out.rglob("*.json"):  # whole files or none: atomic writes
        json.loads(f.read_text())
    pred = out / "predictions.jsonl"
    before = pred.read_text() if pred.exists() else ""
    filler.unlink()
    done = _run(_eval(data, out, "--resume"))
    assert done.returncode == 0, done.stderr[-2000:]
    ids = [r["id"] for r in _rows(pred)]
    assert sorted(ids) == sorted(f"q-{i}" for i in range(6))
    assert pred.read_text().startswith(before[: before.rfind("\n") + 1])


def test_a_signal_delivered_twice_at_once_is_one_request_and_a_later_one_aborts(monkeypatch):
    """GNU timeout sends SIGTERM to the command and then to its process group: the two arrive together and must not
    count as "send it again to abort at once" (a pretraining run under timeout would stop without saving)."""
    from sicl import guard

    clock = [100.0]
    monkeypatch.setattr(guard.time, "monotonic", lambda: clock[0])
    with guard.stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # the group copy
        assert guard.stop_requested() == signal.SIGTERM
        clock[0] += guard.REPEAT_GRACE_S + 0.1
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # asked again, later: abort
    with guard.stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # another signal at once: the user means it
