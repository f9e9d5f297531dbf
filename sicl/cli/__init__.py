"""The ``sicl`` command line: one module per command (``add_arguments`` + ``run``), dispatched by ``main``."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _int_at_least(low: int, note: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low`` (else argparse's one-line usage error)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}{note}, got {n}")
        return n
    return parse


#: ``--threads``: torch CPU threads, 0 for torch's default
threads_arg = _int_at_least(0, " (0: torch's default)")
#: counts that must be at least 1 (batch sizes, token budgets, workers)
positive_int = _int_at_least(1)
#: whole numbers that must not be negative (seeds)
non_negative_int = _int_at_least(0)
