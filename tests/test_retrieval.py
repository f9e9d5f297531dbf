import numpy as np
import pytest
from retrieval_fakes import BagOfWords, DropWords, Spectrum, copy_clip, make_corpus

from sicl.data.manifest import Example
from sicl.data.synth import text as synth_text
from sicl.errors import SiclError
from sicl.retrieval.retrievers import RetrievalConfig, retrieve

WORDS = ["apple banana cherry", "apple banana grape", "apple kiwi lemon", "mango kiwi lemon",
         "mango papaya melon", "melon papaya plum", "plum grape cherry", "lemon lime orange"]


def cfg(tmp_path, **kw) -> RetrievalConfig:
    return RetrievalConfig(cache_dir=str(tmp_path / "cache"), pseudo_labeler="gold", **kw)


def run(queries, pool, tmp_path, retriever="ticl", k=2, **kw):
    return retrieve(queries, pool, k=k, retriever=retriever, config=cfg(tmp_path, **kw), embedder=BagOfWords(),
                    audio_embedder=Spectrum())


@pytest.mark.parametrize("retriever", ["ticl", "ticl+", "random", "audio"])
def test_pool_equal_to_queries_never_returns_the_query(tmp_path, retriever):
    pool = make_corpus(tmp_path, WORDS)
    out = run(pool, pool, tmp_path, retriever, k=len(pool) - 1)
    for q, demos in zip(pool, out, strict=True):
        ids = [d for d, _ in demos]
        assert q.id not in ids and len(ids) == len(set(ids)) == len(pool) - 1


@pytest.mark.parametrize("retriever", ["ticl", "ticl+", "random", "audio"])
def test_identical_audio_under_another_id_is_never_a_demo(tmp_path, retriever):
    pool = make_corpus(tmp_path, WORDS)
    queries = [pool[0], pool[3]]  # overlapping sets
    # Same recording as the first query, another id and path, same text: the best match by every measure.
    pool = pool + [copy_clip(pool[0], tmp_path, "copy-of-p0")]
    out = run(queries, pool, tmp_path, retriever, k=len(pool) - 2)
    assert all(d != "copy-of-p0" and d != "p0" for d, _ in out[0])
    assert "copy-of-p0" in [d for d, _ in out[1]] and "p3" not in [d for d, _ in out[1]]


def test_exclude_same_speaker(tmp_path):
    pool = make_corpus(tmp_path, WORDS, speakers=["a", "a", "b", "b", "c", "c", "d", "d"])
    out = run(pool, pool, tmp_path, "ticl", k=6, exclude_same_speaker=True)
    for q, demos in zip(pool, out, strict=True):
        assert all(pool[int(d[1:])].speaker != q.speaker for d, _ in demos)
    with pytest.raises(SiclError, match="k=7 is larger than the 6 eligible"):
        run(pool, pool, tmp_path, "ticl", k=7, exclude_same_speaker=True)


def test_ticl_ranks_by_text_similarity(tmp_path):
    pool = make_corpus(tmp_path, WORDS)
    queries = make_corpus(tmp_path, ["apple banana cherry grape"], prefix="q", freqs=[900.0])
    (demos,) = run(queries, pool, tmp_path, "ticl", k=3)
    assert [d for d, _ in demos][:2] == ["p0", "p1"] or [d for d, _ in demos][:2] == ["p1", "p0"]
    scores = [s for _, s in demos]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.5


def test_ticl_plus_reorders_text_candidates_by_audio(tmp_path):
    texts = ["red green blue", "red green black", "red green white", "cat dog cow"]
    pool = make_corpus(tmp_path, texts, freqs=[200.0, 400.0, 800.0, 801.0])
    queries = make_corpus(tmp_path, ["red green"], prefix="q", freqs=[799.0])
    (ticl,) = run(queries, pool, tmp_path, "ticl", k=3)
    (plus,) = run(queries, pool, tmp_path, "ticl+", k=3, rerank_factor=1)
    assert {d for d, _ in ticl} == {d for d, _ in plus} == {"p0", "p1", "p2"}  # same text candidates
    assert plus[0][0] == "p2"  # the 800 Hz clip is closest to the 799 Hz query; p3 was never a candidate
    spec = Spectrum()
    from sicl.data.audio import load_audio
    from sicl.retrieval.index import normalize

    vecs = normalize(spec.encode([load_audio(ex.audio) for ex in [queries[0], *pool[:3]]]))
    expected = sorted(range(3), key=lambda i: -float(vecs[0] @ vecs[i + 1]))
    assert [d for d, _ in plus] == [f"p{i}" for i in expected]
    assert [s for _, s in plus] == pytest.approx([float(vecs[0] @ vecs[i + 1]) for i in expected], abs=1e-5)


def test_random_is_seeded_and_order_independent(tmp_path):
    pool = make_corpus(tmp_path, WORDS)
    a = run(pool, pool, tmp_path, "random", k=3, seed=1)
    b = run(pool[::-1], pool, tmp_path, "random", k=3, seed=1)
    c = run(pool, pool, tmp_path, "random", k=3, seed=2)
    assert a == b[::-1] and a != c
    assert all(s == 0.0 for row in a for _, s in row)


def test_none_and_k0_return_no_demos(tmp_path):
    pool = make_corpus(tmp_path, WORDS[:3])
    assert run(pool, pool, tmp_path, "none", k=2) == [[], [], []]
    assert run(pool, pool, tmp_path, "ticl", k=0) == [[], [], []]


def test_second_run_does_no_embedding_or_labelling_work(tmp_path):
    pool = make_corpus(tmp_path, WORDS)
    queries = make_corpus(tmp_path, ["apple lemon lime", "grape plum"], prefix="q", freqs=[900.0, 950.0])
    config = RetrievalConfig(cache_dir=str(tmp_path / "cache"))
    first = (BagOfWords(), DropWords(), Spectrum())
    out1 = retrieve(queries, pool, 2, "ticl+", config, embedder=first[0], labeler=first[1], audio_embedder=first[2])
    assert first[0].calls > 0 and first[1].calls > 0 and first[2].calls > 0
    again = (BagOfWords(), DropWords(), Spectrum())
    out2 = retrieve(queries, pool, 2, "ticl+", config, embedder=again[0], labeler=again[1], audio_embedder=again[2])
    assert out1 == out2
    assert (again[0].calls, again[1].calls, again[2].calls) == (0, 0, 0)
    # A new query only costs its own text and label.
    more = make_corpus(tmp_path, ["mango melon"], prefix="r", freqs=[990.0])
    retrieve(queries + more, pool, 2, "ticl", config, embedder=again[0], labeler=again[1])
    assert again[0].texts == 1 and again[1].calls == 1


def test_tasks_and_texts_used_for_st_and_qa(tmp_path):
    pool = make_corpus(tmp_path, ["a", "b"], task="st")
    for ex, src in zip(pool, ["apple banana", "mango melon"], strict=True):
        ex.transcript, ex.target_lang = src, "zx"
    qa = make_corpus(tmp_path, ["yes", "no"], prefix="s", task="sqa")
    qa[0].question, qa[1].question = "what fruit is named", "who is speaking"
    query_st = Example(id="qs", audio=make_corpus(tmp_path, ["x"], prefix="x", freqs=[999.0])[0].audio,
                       task="st", target="?", transcript="banana apple", target_lang="zx")
    query_qa = Example(id="qq", audio=query_st.audio, task="sqa", question="who is speaking now")
    out = run([query_st, query_qa], pool + qa, tmp_path, "ticl", k=1)
    assert out[0][0][0] == "p0"  # st: by transcript, within st items only
    assert out[1][0][0] == "s1"  # sqa: by question
    with pytest.raises(SiclError, match="no aqa items"):
        run([Example(id="qa", audio=query_st.audio, task="aqa", question="q")], pool, tmp_path, "ticl", k=1)


def test_bad_pool_is_an_error(tmp_path):
    pool = make_corpus(tmp_path, WORDS[:3])
    with pytest.raises(SiclError, match="k=3 is larger than the 2 eligible"):
        run(pool, pool, tmp_path, "random", k=3)
    pool[1].target = None
    with pytest.raises(SiclError, match="has no target"):
        run(pool, pool, tmp_path, "random", k=1)


@pytest.fixture(scope="module")
def minilm():
    from sicl.retrieval.embed import TextEmbedder

    return TextEmbedder()  # the packaged all-MiniLM-L6-v2, offline


def _overlap(a: str, b: str) -> int:
    return len(set(a.split()) & set(b.split()))


def test_ticl_shares_more_words_with_the_query_than_random(tmp_path, minilm):
    rng = np.random.default_rng(0)
    topics = synth_text.SCIENCE_TOPICS[:4]
    texts = [synth_text.science_sentence(rng, topics[i % len(topics)]).text for i in range(80)]
    pool = make_corpus(tmp_path, texts[:60])
    queries = make_corpus(tmp_path, texts[60:], prefix="q", freqs=[1000.0 + 3 * i for i in range(20)])
    by_id = {ex.id: ex.target for ex in pool}
    config = RetrievalConfig(cache_dir=str(tmp_path / "cache"))
    mean = {}
    for method in ("ticl", "random"):
        out = retrieve(queries, pool, 3, method, config, embedder=minilm, labeler=DropWords())
        mean[method] = np.mean([_overlap(q.target, by_id[d]) for q, row in zip(queries, out, strict=True)
                                for d, _ in row])
    assert mean["ticl"] > mean["random"] + 1.0, mean


def test_pool_items_of_other_tasks_are_neither_used_nor_checked(tmp_path):
    pool = make_corpus(tmp_path, WORDS[:4])
    sounds = make_corpus(tmp_path, ["a dog barks"], prefix="s", task="aqa")  # no question: unusable for ticl
    emb = BagOfWords()
    out = retrieve(pool, pool + sounds, 2, "ticl", cfg(tmp_path), embedder=emb)
    assert all(d.startswith("p") for row in out for d, _ in row)
    assert emb.texts == len(set(WORDS[:4]))


def test_file_pseudo_labels_drive_ticl_and_name_missing_ids(tmp_path):
    import json

    from sicl.retrieval.pseudo_label import FileLabeler, make_labeler

    pool = make_corpus(tmp_path, ["red apples fall", "blue whales swim", "green frogs jump"])
    (query,) = make_corpus(tmp_path, ["something else entirely"], prefix="q", freqs=[900.0])
    preds = tmp_path / "predictions.jsonl"
    preds.write_text(json.dumps({"id": "q0", "prediction": "the blue whales swim"}) + "\n")
    labeler = make_labeler(f"file:{preds}")
    assert isinstance(labeler, FileLabeler) and labeler.label([query], []) == ["the blue whales swim"]
    config = RetrievalConfig(cache_dir=str(tmp_path / "cache"), pseudo_labeler=f"file:{preds}")
    (demos,) = retrieve([query], pool, k=1, retriever="ticl", config=config, embedder=BagOfWords())
    assert [d for d, _ in demos] == ["p1"]  # nearest to the file's label, not to the gold text
    with pytest.raises(SiclError, match="no pseudo-label for 1 query id"):
        labeler.label([pool[0]], [])
    preds.write_text('{"id": "q0"}\n')
    with pytest.raises(SiclError, match=r"predictions.jsonl:1: .*id and prediction"):
        FileLabeler(preds)


def test_char_tfidf_finds_the_pool_item_a_misspelled_label_means(tmp_path):
    import json

    from sicl.retrieval.embed import CharTfidfEmbedder, make_text_embedder

    texts = ["the caterpillar became a chrysalis", "the magnet pulls the iron filings",
             "photosynthesis happens in the leaves", "the volcano erupted with lava"]
    pool = make_corpus(tmp_path, texts)
    queries = make_corpus(tmp_path, ["q-a", "q-b"], prefix="q", freqs=[900.0, 950.0])
    preds = tmp_path / "predictions.jsonl"  # pseudo-labels that misspell the rare word and share no other word
    preds.write_text(json.dumps({"id": "q0", "prediction": "a fotosinthesis thing"}) + "\n"
                     + json.dumps({"id": "q1", "prediction": "cattapilar"}) + "\n")
    config = RetrievalConfig(cache_dir=str(tmp_path / "cache"), pseudo_labeler=f"file:{preds}",
                             embedder="char-tfidf")
    out = retrieve(queries, pool, k=1, retriever="ticl", config=config)  # built from the config's name
    assert [row[0][0] for row in out] == ["p2", "p0"]

    emb = make_text_embedder("char-tfidf:256")
    assert isinstance(emb, CharTfidfEmbedder) and emb.dim == 256
    with pytest.raises(SiclError, match="before fit"):
        emb.encode(["x"])
    first = emb.fit(texts).id
    vecs = emb.encode(texts)
    assert vecs.shape == (4, 256) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert emb.fit(texts[:2]).id != first  # another pool, another IDF: cached vectors are not shared
    with pytest.raises(SiclError, match="char-tfidf:<dimension>"):
        make_text_embedder("char-tfidf:big")
