"""Progress that reads well in a terminal and in a log file.

On a terminal: a tqdm bar. Anywhere else (a batch job's log, ``nohup``, ``make demo > demo.log``): one plain line at
most every ``SICL_PROGRESS_SECONDS`` seconds (default 30) and one at the end, e.g.
``eval k=3: 120/300 queries (40%), 2.1 queries/s, about 1 min 26 s left``. tqdm alone either floods a log with
carriage-return frames or, with ``disable=None``, prints nothing at all; this wrapper keeps its interface (``update``,
``close``, ``set_postfix``, iteration, context manager) so call sites do not care which they got.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("SICL_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class LogProgress:
    """tqdm's interface, printed as occasional whole lines."""

    def __init__(self, iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, file: IO[str] | None = None, interval: float | None = None,
                 **_: Any) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.file = file or sys.stderr
        self.interval = _interval() if interval is None else interval
        self.start = self.last = time.monotonic()
        self.start_n = initial
        self.postfix = ""
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        items = dict(*args, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._print(now)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        done = self.n - self.start_n
        rate = done / max(now - self.start, 1e-9)
        parts = [f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        if done:
            parts.append(f"{rate:.3g} {self.unit}/s")
            if self.total and self.n < self.total:
                parts.append(f"about {_duration((self.total - self.n) / rate)} left")
        if self.postfix:
            parts.append(self.postfix)
        return f"{self.desc}: " + ", ".join(parts) if self.desc else ", ".join(parts)

    def _print(self, now: float) -> None:
        print(self.line(now), file=self.file, flush=True)

    def close(self) -> None:
        """A last line, unless the loop was short and printed nothing (keeps logs of quick inner loops quiet)."""
        if not self.closed:
            self.closed = True
            now = time.monotonic()
            if self.last > self.start or now - self.start >= min(5.0, self.interval):
                print(self.line(now) + f", done in {_duration(now - self.start)}", file=self.file, flush=True)


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
    """A tqdm bar on a terminal, :class:`LogProgress` otherwise (``kwargs`` as for tqdm)."""
    stream = kwargs.get("file") or sys.stderr
    if stream.isatty() if hasattr(stream, "isatty") else False:
        from tqdm import tqdm

        kwargs.pop("interval", None)
        return tqdm(iterable, **kwargs)
    for key in ("leave", "disable", "dynamic_ncols", "position"):
        kwargs.pop(key, None)
    return LogProgress(iterable, **kwargs)
