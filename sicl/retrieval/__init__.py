"""Demonstration retrieval (TICL, TICL+, random, audio, none): see docs/retrieval.md.

:func:`retrieve` is the one entry point training, evaluation and ``sicl retrieve`` share.
"""

from sicl.retrieval.retrievers import RETRIEVERS, RetrievalConfig, retrieve

__all__ = ["RETRIEVERS", "RetrievalConfig", "retrieve"]
