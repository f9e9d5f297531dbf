"""Nearest neighbours by cosine: FAISS inner product on L2-normalised float32 rows.

``exact`` (``IndexFlatIP``, the TICL reference) is the default and what results should be reported with.
``hnsw`` and ``ivf`` are approximate options for very large pools; ``bench/retrieval.py`` measures their
speed and recall against ``exact``. :func:`brute_force` is the numpy reference the tests compare with.

Search results are ``(scores, rows)`` of shape (n_queries, k), best first; a row of ``-1`` means "no
neighbour found" (only approximate indexes return fewer than asked for).
"""

from __future__ import annotations

import math

import numpy as np

INDEX_KINDS = ("exact", "hnsw", "ivf")


def normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation into a new C-contiguous float32 array (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def build_index(vectors: np.ndarray, kind: str = "exact", *, hnsw_m: int = 32, ef_construction: int = 80,
                ef_search: int = 128, nlist: int | None = None, nprobe: int = 16, seed: int = 0):
    """A FAISS index over ``vectors`` (normalised here). Approximate kinds trade recall for speed:
    HNSW via ``ef_search`` (candidates kept while searching), IVF via ``nprobe`` (clusters visited)."""
    import faiss

    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r} (expected one of {', '.join(INDEX_KINDS)})")
    x = normalize(vectors)
    n, dim = x.shape
    if kind == "exact" or n == 0:
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    else:
        # ~4 sqrt(n) lists is FAISS's usual starting point; k-means needs ~39 points per centroid.
        lists = nlist or int(4 * math.sqrt(n))
        lists = max(1, min(lists, n // 39 or 1))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        sample = x if n <= 256 * lists else x[np.random.default_rng(seed).choice(n, 256 * lists, replace=False)]
        index.train(sample)
        index.nprobe = min(nprobe, lists)
    if n:
        index.add(x)
    return index


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (capped at the index size) by inner product with normalised ``queries``."""
    q = normalize(queries)
    k = min(k, index.ntotal)
    if k <= 0 or len(q) == 0:
        return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
    scores, rows = index.search(q, k)
    return scores, rows


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The numpy reference for :func:`search` on an exact index (ties: lower row first)."""
    sims = normalize(queries) @ normalize(vectors).T
    k = min(k, sims.shape[1])
    rows = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, rows, axis=1), rows
