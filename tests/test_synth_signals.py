"""`sicl synth` stopped by a signal, in a real process with its synthesis workers: SIGTERM (`timeout`, a cluster,
systemd) is one line and exit 143 like SIGINT's 130, whether it reaches the command alone, its process group or
each of its processes; no worker prints a traceback or outlives the command, and running it again finishes the
world split by split, byte-identical to an uninterrupted build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sicl.data.synth import world as W
from tests.test_synth import TINY, _hashes

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the command's processes in /proc")

ROOT = Path(__file__).resolve().parents[1]
# `sicl synth --size small` with the tiny sizes of test_synth (seconds, not a minute)
CODE = ("import json, sys\n"
        "from sicl.data.synth import world as W\n"
        "W.SIZES['small'] = {k: tuple(v) for k, v in json.loads(sys.argv[1]).items()}\n"
        "from sicl.cli.main import main\n"
        "raise SystemExit(main(sys.argv[2:]))\n")


def _synth(out: Path) -> list[str]:
    return [sys.executable, "-c", CODE, json.dumps(TINY), "synth", "--out", str(out), "--size", "small",
            "--workers", "2"]


def _start_and_wait_for_a_split(out: Path) -> subprocess.Popen:
    """The command in a session of its own (so that its processes can be found), once a split is done."""
    proc = subprocess.Popen(_synth(out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads((out / W.PARTIAL).read_text())["done"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    return proc


def _session(sid: int) -> dict[int, str]:
    """pid -> "state command" of the running processes of session ``sid`` (zombies, dead and waiting to be reaped,
    do not count)."""
    found = {}
    for p in Path("/proc").iterdir():
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if p.name.isdigit() and int(fields[3]) == sid and fields[0] != "Z":
            found[int(p.name)] = f"{fields[0]} {cmd[:120]}"
    return found


def _nothing_left(sid: int) -> None:
    deadline = time.time() + 10
    while _session(sid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _session(sid)


def _stopped(proc: subprocess.Popen, out: Path, sig: signal.Signals) -> None:
    """One line, exit 128 + signal, the finished splits recorded, nothing left running."""
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-3000:]
    assert err.strip().splitlines() == [
        f"sicl synth: stopped: {sig.name} received: the finished splits are kept in {out}; run `sicl synth --out "
        f"{out} --seed 0 --size small` (without --force) to finish the world"], err[-3000:]
    assert json.loads((out / W.PARTIAL).read_text())["done"] and not (out / "world.json").exists()
    _nothing_left(proc.pid)


def test_sigterm_as_timeout_sends_it_is_one_line_143_and_the_build_resumes_byte_identical(tmp_path, monkeypatch):
    out = tmp_path / "w"
    proc = _start_and_wait_for_a_split(out)
    # GNU timeout: SIGTERM to the command, then to its whole process group (the fork server and the synthesis
    # workers too); the command's second one must not break its clean-up
    proc.send_signal(signal.SIGTERM)
    os.killpg(proc.pid, signal.SIGTERM)
    _stopped(proc, out, signal.SIGTERM)
    done = subprocess.run(_synth(out), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert (out / "world.json").is_file() and not (out / W.PARTIAL).exists()
    monkeypatch.setitem(W.SIZES, "small", TINY)
    W.build_world(tmp_path / "ref", seed=0, size="small", workers=2)
    assert _hashes(out) == _hashes(tmp_path / "ref")


@pytest.mark.parametrize(("sig", "to"), [(signal.SIGTERM, "command"), (signal.SIGTERM, "each"),
                                         (signal.SIGINT, "group")],
                         ids=["sigterm-to-the-command-alone", "sigterm-to-each-process-as-a-cluster-or-systemd",
                              "sigint-to-the-group-as-ctrl-c"])
def test_a_signal_to_the_command_or_all_its_processes_stops_it_in_one_line(tmp_path, sig, to):
    out = tmp_path / "w"
    proc = _start_and_wait_for_a_split(out)
    if to == "group":
        os.killpg(proc.pid, sig)
    elif to == "each":  # the synthesis workers and the fork server too, whatever their process group
        for pid in _session(proc.pid):
            os.kill(pid, sig)
    else:
        proc.send_signal(sig)
    _stopped(proc, out, sig)


def test_workers_exit_quietly_when_the_command_is_killed(tmp_path):
    """SIGKILL cannot be handled: the workers notice that the command is gone and exit without a traceback (a worker
    writing to the dead command's pipe printed a BrokenPipeError), and the fork server goes with them."""
    out = tmp_path / "w"
    proc = _start_and_wait_for_a_split(out)
    time.sleep(0.3)  # (into the next split: its worker busy)
    proc.kill()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and json.loads((out / W.PARTIAL).read_text())["done"]
    _nothing_left(proc.pid)
    assert "Traceback" not in err, err[-3000:]  # (multiprocessing's resource tracker may warn of leaked semaphores)


def test_sicl_demo_stops_in_its_world_build_on_sigterm_keeping_the_finished_splits(tmp_path):
    """`sicl demo` builds its world with the same stop: SIGTERM (as timeout sends it) ends it within the build, exit
    143, saying that the finished splits are kept, instead of synthesising the rest of the world first."""
    out = tmp_path / "demo"
    cmd = [sys.executable, "-c", CODE, json.dumps(TINY), "demo", "--out", str(out), "--size", "small"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads((out / "data" / W.PARTIAL).read_text())["done"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGTERM)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"sicl demo: stopped: SIGTERM received: the world's finished splits are kept in {out / 'data'}; run the same "
        "sicl demo command again to finish it"), err[-3000:]
    assert json.loads((out / "data" / W.PARTIAL).read_text())["done"] and not (out / "data" / "world.json").exists()
    _nothing_left(proc.pid)
