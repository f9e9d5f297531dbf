"""What long commands promise when something goes wrong (docs/reliability.md).

* :func:`output_lock`: one writer per output folder. A second run on the same folder exits at once naming the
  holder; a lock whose holder died is taken over with a warning. The lock is ``fcntl.flock`` on
  ``FOLDER/.sicl.lock`` (released by the kernel when the holder dies, so a crash never leaves a folder
  locked); the file's JSON says who holds it (pid, host, start time, command). ``flock`` is per host: two hosts
  writing one folder on a network file system are not detected.
* :func:`stop_on_signals` + :func:`stop_requested`: SIGTERM (what a cluster sends before preemption) and SIGINT
  set a flag that training and evaluation check between steps/batches: they save (a checkpoint, the predictions
  so far) and raise :class:`Interrupted`, which the CLI turns into one line and exit code 128 + signal number
  (143 for SIGTERM, 130 for SIGINT). A second signal aborts at once.
* :func:`disk_error`: ENOSPC/EDQUOT, and a refused path (permission, read-only, a file in the way), become a
  one-line :class:`SiclError`; the files sicl writes are either atomic
  (temp file + rename) or append-only with torn-line repair, so what was written before stays intact.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sicl.errors import SiclError

LOCK_NAME = ".sicl.lock"
_state: dict[str, Any] = {"signal": None, "at": 0.0}
#: A repeat of the first signal sooner than this is the same request delivered twice, not "abort now": GNU
#: ``timeout`` signals the command and then its whole process group, so the command gets SIGTERM twice at once.
REPEAT_GRACE_S = 2.0


class Interrupted(SiclError):
    """Stopped by SIGTERM/SIGINT after saving; ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


# ------------------------------------------------------------------------------------------- signals
def stop_requested() -> int | None:
    """The signal number received since :func:`stop_on_signals` started, or None."""
    return _state["signal"]


def check_stop(saved: str) -> None:
    """Raise :class:`Interrupted` if a stop was requested; ``saved`` says what was kept and how to go on."""
    sig = stop_requested()
    if sig is not None:
        raise Interrupted(f"{signal.Signals(sig).name} received: {saved}", sig)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While active, the first SIGTERM/SIGINT only sets the stop flag; a second one aborts
    (``KeyboardInterrupt``), unless it is the same signal within :data:`REPEAT_GRACE_S` of the first (one request
    delivered twice, as ``timeout`` does). Outside the main thread (signals cannot be caught there) it does nothing."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if _state["signal"] is not None:
            if signum == _state["signal"] and time.monotonic() - _state["at"] < REPEAT_GRACE_S:
                return
            raise KeyboardInterrupt
        _state["signal"], _state["at"] = signum, time.monotonic()
        print(f"sicl: {signal.Signals(signum).name} received: finishing the current step, saving and stopping "
              f"(send it again to abort at once)", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    _state["signal"] = None
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _state["signal"] = None


# ------------------------------------------------------------------------------------------- locking
def _describe(holder: dict[str, Any]) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {when} ({holder.get('command', '?')})"


@contextmanager
def output_lock(folder: str | Path, command: str, name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold ``folder``'s writer lock for the duration (creating the folder; removing it again on exit when
    it was created here and is left empty, so a run refused for bad input leaves nothing behind). ``name``:
    the lock file, for commands whose output is one file in a shared folder (``sicl retrieve``)."""
    import fcntl

    folder = Path(folder)
    if int(os.environ.get("RANK", "0") or 0) != 0:  # a distributed job (torchrun / accelerate): rank 0 holds it
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # removed again if left empty
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise SiclError(f"{folder}: cannot be an output folder ({blocker} is a file)")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            what = folder if name == LOCK_NAME else folder / name.removeprefix(".").removesuffix(".lock")
            raise SiclError(f"{what} is in use by another sicl run: {_describe(holder)}; "
                            f"wait for it to finish or choose another output folder") from None
        try:  # the holder before us may have unlinked the file after we opened it: lock the current one
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        old = _read_holder(fd)
        if old.get("pid"):  # a holder that exits cleanly empties the file: this one was killed
            print(f"sicl: warning: taking over the lock of {folder}: its holder ({_describe(old)}) is no longer "
                  f"running", file=sys.stderr)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        yield folder
    finally:
        try:  # unlink while still holding the lock: a waiter that opened this file sees it gone and retries
            path.unlink()
        except OSError:
            pass
        os.close(fd)  # releases the flock
        for p in created:  # deepest first; rmdir only removes empty folders
            try:
                p.rmdir()
            except OSError:
                break


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode() or "{}")
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


# ------------------------------------------------------------------------------------------- disks
# Filesystem refusals that name a path the user chose (an output folder that is read-only, a file where a folder
# must go, ...): the command line reports them in one line instead of a traceback.
_PATH_ERRNOS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                errno.EROFS: "read-only file system", errno.ENOTDIR: "a part of the path is a file, not a folder",
                errno.EISDIR: "is a folder", errno.EEXIST: "exists and is not a folder",
                errno.ENOENT: "no such file or folder"}


def disk_error(e: OSError) -> SiclError | None:
    """A one-line error for a full disk or quota, or for a path the filesystem refuses (permission, read-only,
    a file in the way; only when the error names the path); None for any other OSError."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {e.filename}" if getattr(e, "filename", None) else ""
        return SiclError(f"no space left on the device{where} ({os.strerror(e.errno)}); what was written before "
                         f"is intact: free some space and run the command again (train/eval: with --resume)")
    if e.errno in _PATH_ERRNOS and getattr(e, "filename", None):
        fix = " or fix its permissions" if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else ""
        return SiclError(f"cannot use {e.filename}: {_PATH_ERRNOS[e.errno]}; choose another path{fix}")
    return None
