"""sicl: speech in-context learning adaptation training (SICL-AT) for auditory LLMs.

Notebook API (imported on first use, so ``import sicl`` stays light): ``sicl.retrieve``, ``sicl.train``,
``sicl.evaluate``, ``sicl.score`` (see :mod:`sicl.api`).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "retrieve", "score", "train"]


def __getattr__(name: str) -> Any:
    if name in ("retrieve", "evaluate", "score"):
        from sicl import api

        return getattr(api, name)
    if name == "train":  # the sicl.train package, callable as the API function (see sicl/train/__init__.py)
        import importlib

        return importlib.import_module("sicl.train")
    raise AttributeError(f"module 'sicl' has no attribute {name!r}")
