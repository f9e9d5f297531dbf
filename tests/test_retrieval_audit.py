"""Retrieval under unusual inputs: similarity ties, replaced clips, damaged caches, odd pseudo-label files."""

import json
import os
import shutil

import pytest
from retrieval_fakes import BagOfWords, Spectrum, make_corpus

from sicl.errors import SiclError
from sicl.retrieval.cache import StringCache
from sicl.retrieval.pseudo_label import FileLabeler
from sicl.retrieval.retrievers import RetrievalConfig, retrieve

SAME = "the cat sat on the mat"


def _run(queries, pool, tmp_path, retriever="ticl", k=2):
    cfg = RetrievalConfig(cache_dir=str(tmp_path / "cache"), pseudo_labeler="gold")
    return retrieve(queries, pool, k=k, retriever=retriever, config=cfg, embedder=BagOfWords(),
                    audio_embedder=Spectrum())


def test_tied_neighbours_come_in_pool_order_whatever_k(tmp_path):
    # Six pool texts equal to the query's: every one scores 1.0. The choice among them must not depend on k (eval
    # takes the top-k prefix of one retrieval at the largest k; `sicl retrieve --k 1` must agree), nor on FAISS's
    # heap: ties go to the smaller pool id, wherever the pool lists it.
    pool = make_corpus(tmp_path, ["a dog ran in the park", SAME, "birds fly over the sea", SAME, SAME, SAME, SAME,
                                  SAME, "the cat ate the fish"])
    query = make_corpus(tmp_path, [SAME], prefix="q", freqs=[999.0])
    tied = ["p1", "p3", "p4", "p5", "p6", "p7"]
    for k in range(1, 7):
        demos = _run(query, pool, tmp_path, k=k)[0]
        assert [d for d, _ in demos] == tied[:k], k
        assert all(abs(s - 1.0) < 1e-5 for _, s in demos)
    assert [d for d, _ in _run(query, pool[::-1], tmp_path, k=3)[0]] == tied[:3]  # pool order does not matter


def test_tied_audio_neighbours_come_in_pool_order(tmp_path):
    # the same tone under several ids: identical audio vectors
    pool = make_corpus(tmp_path, [f"text {i}" for i in range(8)], freqs=[300.0] * 8)
    for p in pool[1:]:
        shutil.copyfile(pool[0].audio, p.audio)
    query = make_corpus(tmp_path, ["q"], prefix="q", freqs=[310.0])
    ids = [p.id for p in pool]
    for k in range(1, 8):
        assert [d for d, _ in _run(query, pool, tmp_path, "audio", k=k)[0]] == ids[:k], k


def test_a_clip_replaced_in_place_with_its_old_mtime_is_hashed_again(tmp_path):
    # `cp -p`, `rsync -t`, `touch -r`, tar extraction: new content, same path, size and modification time. The
    # cached content hash must not be reused, or the leakage rule misses the query's own audio.
    pool = make_corpus(tmp_path, ["one", "two", "three", "four"])
    query = make_corpus(tmp_path, ["one"], prefix="q", freqs=[999.0])[0]
    assert _run([query], pool, tmp_path, "random", k=4)  # caches the hashes of all four clips
    st = os.stat(pool[2].audio)
    assert os.path.getsize(query.audio) == st.st_size
    with open(pool[2].audio, "wb") as fh:  # the query's recording, in place
        fh.write(open(query.audio, "rb").read())
    os.utime(pool[2].audio, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(SiclError, match="larger than the 3 eligible"):
        _run([query], pool, tmp_path, "random", k=4)
    assert "p2" not in [d for d, _ in _run([query], pool, tmp_path, "random", k=3)[0]]


def test_string_cache_skips_undecodable_and_malformed_lines(tmp_path):
    cache = StringCache(tmp_path, "pseudo-label", "ns")
    cache.update({"a": "alpha"})
    with open(cache.path, "ab") as fh:
        fh.write(b'\xff\xfe{"key": "b", "value": "x"}\n')  # disk damage: not UTF-8
        fh.write(b'{"key": "c", "value": 5}\n{"key": ["d"], "value": "x"}\n[1, 2]\n"text"\n')
        fh.write('{"key": "e", "value": "\u00e9t\u00e9"}\n'.encode())
    again = StringCache(tmp_path, "pseudo-label", "ns")
    assert again.get("a") == "alpha" and again.get("e") == "\u00e9t\u00e9"
    assert "b" not in again and "c" not in again  # a number is no pseudo-label: computed again instead


def test_label_file_with_one_id_twice_and_different_labels_is_an_error(tmp_path):
    f = tmp_path / "labels.jsonl"
    rows = [{"id": "q0", "prediction": "a dog ran"}, {"id": "q1", "prediction": "x"},
            {"id": "q0", "prediction": "the cat sat"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SiclError, match=r"labels\.jsonl:3: .*'q0'.*line 1"):
        FileLabeler(f)
    # the same row twice (a file concatenated with itself) says nothing contradictory
    f.write_text("".join(json.dumps(r) + "\n" for r in rows[:2] * 2))
    assert FileLabeler(f).labels == {"q0": "a dog ran", "q1": "x"}


def test_label_file_that_is_not_utf8_names_the_line(tmp_path):
    f = tmp_path / "labels.jsonl"
    f.write_bytes(b'{"id": "q0", "prediction": "ok"}\n{"id": "q1", "prediction": "caf\xe9"}\n')
    with pytest.raises(SiclError, match=r"labels\.jsonl:2: not UTF-8") as e:
        FileLabeler(f)
    assert "\n" not in str(e.value)


def test_label_with_a_unicode_line_separator_is_one_label(tmp_path):
    # json.dumps(ensure_ascii=False) writes U+2028 as is; only "\n" ends a JSON Lines row
    f = tmp_path / "labels.jsonl"
    f.write_text(json.dumps({"id": "q0", "prediction": "one\u2028two"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert FileLabeler(f).labels == {"q0": "one\u2028two"}


def test_knn_equals_a_brute_force_ranking_with_ties_and_banned_rows():
    """Against a plain reference (every eligible row scored, sorted by (-score, pool id)), on pools full of exact
    duplicates with banned rows, for several k: the same rows in the same order."""
    import numpy as np

    from sicl.retrieval.retrievers import _knn

    rng = np.random.default_rng(3)
    for trial in range(6):
        uniq = rng.normal(size=(15, 16)).astype(np.float32)
        uniq /= np.linalg.norm(uniq, axis=1, keepdims=True)
        pool = uniq[rng.integers(0, 15, 120)]
        queries = np.concatenate([uniq[:5], rng.normal(size=(5, 16)).astype(np.float32)])
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        ids = [f"p{int(i):03d}" for i in rng.permutation(120)]  # pool ids not in row order
        banned = [set(rng.choice(120, size=int(rng.integers(0, 30)), replace=False).tolist()) for _ in queries]
        k = 1 + trial
        got = _knn(queries, pool, [None] * len(queries), {None: np.arange(120)}, banned, k, "exact", ids)
        for qi, q in enumerate(queries):
            scores = pool.astype(np.float64) @ q.astype(np.float64)
            ref = sorted((j for j in range(120) if j not in banned[qi]), key=lambda j: (-round(scores[j], 9), ids[j]))
            assert [j for j, _ in got[qi]] == ref[:k], (trial, qi)
