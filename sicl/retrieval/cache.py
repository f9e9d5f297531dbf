"""On-disk caches for retrieval: per-clip strings (pseudo-labels, audio hashes) and per-key vectors
(text and audio embeddings).

Layout under the cache root (``--cache-dir``, else ``$SICL_CACHE``, else ``~/.cache/sicl``)::

    retrieval/<kind>/<namespace-digest>/strings.jsonl   append-only {"key": ..., "value": ...}
    retrieval/<kind>/<namespace-digest>/vectors-*.npz   one shard per run that computed something new
    retrieval/<kind>/<namespace-digest>/namespace.txt   the readable namespace (model id, settings)

A namespace names everything the cached value depends on besides the key (the labeler or embedder and
its weights' fingerprint), so changing the model never serves stale values. Shards are written to a
temporary file and renamed, and an interrupted append loses at most its last line, so a killed run never
corrupts the cache; readers skip lines they cannot parse.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

ENV_CACHE = "SICL_CACHE"


def default_cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sicl"


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def model_fingerprint(path: str | Path) -> str:
    """Cheap identity of a local model folder: names, sizes and modification times of its files.

    Hashing multi-GB weights on every run would cost more than the retrieval; re-saving a model changes
    the modification time, which is what matters for cache invalidation."""
    path = Path(path)
    if not path.is_dir():
        return str(path)
    h = hashlib.sha1(str(path.resolve()).encode())
    for f in sorted(path.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            st = f.stat()
            h.update(f"{f.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _folder(root: str | Path | None, kind: str, namespace: str) -> Path:
    base = Path(root) if root is not None else default_cache_dir()
    folder = base / "retrieval" / kind / text_hash(namespace)[:16]
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "namespace.txt"
    if not marker.exists():
        marker.write_text(namespace + "\n", encoding="utf-8")
    return folder


class StringCache:
    """key -> string, appended to one JSON Lines file. ``root=None`` uses :func:`default_cache_dir`."""

    def __init__(self, root: str | Path | None, kind: str, namespace: str) -> None:
        self.path = _folder(root, kind, namespace) / "strings.jsonl"
        self._data: dict[str, str] = {}
        if self.path.exists():
            with open(self.path, "rb") as fh:  # bytes: one damaged line must not make the whole file unreadable
                for line in fh:
                    try:
                        row = json.loads(line.decode("utf-8"))
                        key, value = row["key"], row["value"]
                    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                        continue  # a torn last line from an interrupted run, or damage: computed again
                    if isinstance(key, str) and isinstance(value, str):
                        self._data[key] = value

    def get(self, key: str) -> str | None:
        return self._data.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def update(self, items: Mapping[str, str]) -> None:
        new = {k: v for k, v in items.items() if self._data.get(k) != v}
        if not new:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            for k, v in new.items():
                fh.write(json.dumps({"key": k, "value": v}, ensure_ascii=False) + "\n")
        self._data.update(new)


class VectorCache:
    """key -> float32 vector, stored as ``.npz`` shards (keys + matrix)."""

    def __init__(self, root: str | Path | None, kind: str, namespace: str) -> None:
        self.folder = _folder(root, kind, namespace)
        self._data: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("vectors-*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as z:
                    keys, vecs = z["keys"], z["vectors"]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
                continue  # a torn or truncated shard: its vectors are computed again
            if len(keys) != len(vecs):
                continue
            self._data.update(zip(keys.tolist(), vecs, strict=True))

    def get(self, key: str) -> np.ndarray | None:
        return self._data.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def missing(self, keys: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(k for k in keys if k not in self._data))

    def update(self, keys: list[str], vectors: np.ndarray) -> None:
        if not keys:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        fd, tmp = tempfile.mkstemp(prefix=".vectors-", suffix=".npz", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=np.asarray(keys, dtype=str), vectors=vectors)
            os.replace(tmp, self.folder / f"vectors-{uuid.uuid4().hex[:12]}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._data.update(zip(keys, vectors, strict=True))

    def stack(self, keys: list[str]) -> np.ndarray:
        return np.stack([self._data[k] for k in keys]).astype(np.float32, copy=False)
