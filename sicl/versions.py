"""Installed versions of the packages behind a result: written into every run.json and retrieval sidecar."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata

PACKAGES = ("sicl", "torch", "transformers", "peft", "accelerate", "sentence-transformers", "faiss-cpu", "numpy")


def versions(packages: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """``{"python": ..., package: version or None when not installed}``."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
