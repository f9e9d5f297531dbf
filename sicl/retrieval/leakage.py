"""The leakage rule: a query is never its own demonstration.

A pool item is banned for a query when it has the query's id, or the same decoded audio (content hash,
:func:`sicl.data.audio.audio_hash`) under any id or path, or, with ``exclude_same_speaker``, the query's
speaker. Matching on audio content rather than paths (the reference code compares paths) also catches a
clip copied under a new name or converted losslessly to another container, which happens when pool and
query manifests come from different imports of one corpus.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from sicl.data.audio import audio_hash, load_audio
from sicl.data.manifest import Example
from sicl.retrieval.cache import StringCache

HASH_NAMESPACE = "audio-hash:v1 (int16-rounded 16 kHz mono samples, sha1)"


def audio_hashes(examples: Sequence[Example], cache_dir: str | Path | None = None,
                 progress: bool = False) -> list[str]:
    """Content hash per example. Decoding is the cost, so hashes are cached by (path, size, mtime, ctime,
    inode): a rewritten file gets a new key and is hashed again, also when its old mtime was put back."""
    cache = StringCache(cache_dir, "audio-hash", HASH_NAMESPACE)
    keys = [_file_key(ex.audio) for ex in examples]
    todo = list(dict.fromkeys(k for k in keys if k not in cache))
    fresh: dict[str, str] = {}
    paths = {k: ex.audio for k, ex in zip(keys, examples, strict=True)}
    for n, key in enumerate(_progress(todo, progress, "hashing audio")):
        fresh[key] = audio_hash(load_audio(paths[key], max_seconds=None))
        if len(fresh) >= 1000 or n == len(todo) - 1:  # flush in blocks so an interrupted run keeps its work
            cache.update(fresh)
            fresh = {}
    return [cache.get(k) or "" for k in keys]


class LeakageGuard:
    """Answers "which pool rows may never be demonstrations for this query?" in O(matches)."""

    def __init__(self, pool: Sequence[Example], pool_hashes: Sequence[str],
                 exclude_same_speaker: bool = False) -> None:
        self.exclude_same_speaker = exclude_same_speaker
        self._by_id = {ex.id: i for i, ex in enumerate(pool)}
        self._by_hash: dict[str, list[int]] = defaultdict(list)
        self._by_speaker: dict[str, list[int]] = defaultdict(list)
        for i, (ex, h) in enumerate(zip(pool, pool_hashes, strict=True)):
            self._by_hash[h].append(i)
            if ex.speaker:
                self._by_speaker[ex.speaker].append(i)

    def banned(self, query: Example, query_hash: str) -> set[int]:
        out = set(self._by_hash.get(query_hash, ()))
        if query.id in self._by_id:
            out.add(self._by_id[query.id])
        if self.exclude_same_speaker and query.speaker:
            out.update(self._by_speaker.get(query.speaker, ()))
        return out


def _file_key(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}|missing"  # load_audio raises the proper error when it is hashed
    # The status-change time too: new content written with its old modification time kept (`cp -p`, `rsync -t`,
    # `touch -r`, tar extraction) must not reuse the old file's hash, or the leakage rule would miss it. Nothing
    # can set ctime back, and the inode tells a file replaced by rename from the one it replaced.
    return f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"


def _progress(items: list, enabled: bool, desc: str):
    if not enabled or not items:
        return items
    from sicl.progress import progress as tqdm

    return tqdm(items, desc=desc, unit="clip", leave=False, disable=None)
