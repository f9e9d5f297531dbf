"""The development diagnostics in scripts/ (their arithmetic: the numbers docs/demo.md quotes come from them)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_demo_word_hits_counts_the_query_words_its_demonstrations_spell(tmp_path):
    diag = _script("diag_demo_dev")
    pool = {"p1": {"target": "the zorblat sat"}, "p2": {"target": "a red fox"}, "p3": {"target": "Quimble ran"},
            "p4": {"target": "nothing shared here"}}
    ret = tmp_path / "retrievals.jsonl"
    ret.write_text("".join(json.dumps(r) + "\n" for r in [{"id": "q1", "demos": ["p1", "p2", "p3", "p4"]},
                                                             {"id": "q2", "demos": ["p4"]}]))
    preds = [{"id": "q1", "target": "Zorblat and quimble ran home", "prediction": "zorblat and kwimbel ran home"},
             {"id": "q2", "target": "a cat", "prediction": "a cat"},
             {"id": "q3", "target": "not retrieved", "prediction": ""}]  # no retrieval: not counted
    # q1: zorblat, quimble, ran are in the first 3 demos (home and and are not); zorblat and ran come back
    # q2: no word in its demo; 7 reference words in all
    assert diag.demo_word_hits(preds, ret, pool) == {"in_demos": round(3 / 7, 3), "demo_word_hit": round(2 / 3, 3)}
    assert diag.demo_word_hits(preds[1:2], ret, pool) == {"in_demos": 0.0, "demo_word_hit": None}


def test_names_task_sentences_speak_their_topics_made_up_names_and_the_diag_scores_them_as_domain_words():
    import numpy as np

    from sicl.data.synth import open_text as O

    names = _script("make_names_task")
    rng = np.random.default_rng(3)
    tops = names.topics(rng, 20)
    every = [n for (a, b), _ in tops for n in (a, b)]
    assert len(set(every)) == 40 and not set(every) & set(O.words())  # made-up: in no lexicon, never reused
    for topic in tops:
        for _ in range(5):
            text, spoken = names.sentence(rng, topic)
            assert spoken and set(spoken) <= set(topic[0]) and all(w in text.split() for w in spoken)
    diag = _script("diag_demo_dev")
    row = {"target": "one day ninfi found a jacket", "meta": {"topic": "names-017", "names": ["ninfi"]}}
    assert diag.domain_vocab("names", row) == {"ninfi"}
    errs = diag.error_split("names", [{**row, "prediction": "one day ninety found a jacket"}])
    assert errs["domain_wer"] == 1.0 and errs["other_wer"] == 0.0


def test_shared_reading_task_has_other_speakers_read_each_query_sentence(tmp_path):
    from sicl.data.manifest import read_manifest

    task = _script("make_shared_reading_task")
    for kind, set_name in (("reading", "child-reading"), ("adult", "adult"), ("open", "adult")):
        out = tmp_path / kind
        assert task.main([str(out), "--kind", kind, "--sentences", "4", "--readers", "2", "--n-dev", "3"]) == 0
        pool = read_manifest(out / set_name / "pool.jsonl")
        queries = read_manifest(out / set_name / "train.jsonl")
        assert len(pool) == 8 and len(queries) == 3 and len({p.target for p in pool}) == 4
        for q in queries:
            readers = [p.speaker for p in pool if p.meta["sentence"] == q.meta["sentence"]]
            assert len(set(readers)) == 2 and q.speaker not in readers
            assert all(p.target == q.target for p in pool if p.meta["sentence"] == q.meta["sentence"])
        assert all(Path(r.audio).is_file() for r in pool + queries)
        assert all(("kid" in r.speaker) == (kind == "reading") for r in pool + queries)
        assert kind != "open" or not any("topic" in r.meta for r in pool + queries)  # open text has no topic
