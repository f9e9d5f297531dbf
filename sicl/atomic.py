"""Crash-safe file writes: write a temporary file next to the target, fsync it, then ``os.replace`` it.

A reader never sees a half-written file, and a crash leaves the previous version (or nothing) plus no
stray temporary file. One implementation for every writer of manifests, results, retrievals and reports.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_next_to(path: Path) -> tuple[int, str]:
    """A temp file next to ``path`` with the permissions a plain ``open`` would give (``0666 & ~umask``):
    ``mkstemp`` makes it 0600, which would leave results unreadable to colleagues on shared storage."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """``with atomic_open(p) as fh: fh.write(...)``: ``p`` is replaced only if the block finishes.
    ``mode``: ``"w"`` (UTF-8 text) or ``"wb"`` (bytes)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only ('w' or 'wb'), not {mode!r}")
    path = Path(path)
    fd, tmp = _temp_next_to(path)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_temp(path: str | Path, text: str) -> Path:
    """``text`` in an fsync'd temporary file next to ``path`` (for writers that replace several files
    together: write every temp first, then ``os.replace`` each)."""
    path = Path(path)
    fd, tmp = _temp_next_to(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def plain_mode(path: str | Path) -> None:
    """Give ``path`` the permissions a plain ``open`` (``0666 & ~umask``) or ``mkdir`` (``0777 & ~umask``) would.
    For files written by libraries that do otherwise: safetensors (0.8) writes through a 0600 temporary file,
    ``tempfile.mkdtemp`` makes 0700 folders and ``shutil.copy2`` keeps the source's mode."""
    path = Path(path)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path) as fh:
        fh.write(text)
    return Path(path)
