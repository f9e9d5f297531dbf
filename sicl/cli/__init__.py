"""The ``sicl`` command line: one module per command (``add_arguments`` + ``run``), dispatched by ``main``."""

from __future__ import annotations

import argparse


def threads_arg(text: str) -> int:
    """argparse type of ``--threads``: torch CPU threads, 0 for torch's default."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: torch's default), got {n}")
    return n


def positive_int(text: str) -> int:
    """argparse type of counts that must be at least 1 (batch sizes, token budgets, workers)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n
