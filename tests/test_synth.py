"""The embedded synthetic world: espeak-ng TTS, text grammars, deterministic items and the world writer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from sicl.data.manifest import read_manifest
from sicl.data.synth import items as I
from sicl.data.synth import text as T
from sicl.data.synth import tts
from sicl.data.synth import voices as V
from sicl.data.synth import world as W
from sicl.errors import SiclError

TINY = {"adult": (4, 6, 5), "translate": (3, 4, 4), "sqa": (3, 4, 4), "child-science": (3, 6, 5),
        "child-reading": (3, 12, 5), "aqa": (7, 7, 7), "names": (2, 12, 4)}


def _f0(wav: np.ndarray, sr: int = 16_000) -> float:
    """Median autocorrelation pitch over voiced 40 ms frames."""
    frame, est = int(0.04 * sr), []
    for i in range(0, len(wav) - frame, frame):
        x = wav[i:i + frame] - wav[i:i + frame].mean()
        if np.sqrt((x ** 2).mean()) < 0.02:
            continue
        ac = np.correlate(x, x, "full")[frame - 1:]
        lo, hi = sr // 600, sr // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            est.append(sr / lag)
    return float(np.median(est))


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_tts_audio_is_plausible_and_child_is_higher():
    sentence = "the little dog walked to the park with her friend"
    wav = tts.synthesize(sentence, "en-us+m3", 160, 45)
    assert wav.dtype == np.float32 and wav.ndim == 1 and np.isfinite(wav).all()
    assert 1.5 < len(wav) / tts.SAMPLE_RATE < 6.0 and 0.05 < np.abs(wav).max() <= 1.0
    adult = V.adult_population()[3].synthesize(sentence, np.random.default_rng(0))
    kid = V.classroom("science")[2].synthesize(sentence, np.random.default_rng(0))
    assert 1.0 < len(kid) / tts.SAMPLE_RATE < 6.0
    assert _f0(kid) > 1.5 * _f0(adult)
    with pytest.raises(ValueError):
        tts.synthesize("hello", "no-such-voice")


def test_domain_words_are_unseen_by_adult_text_and_tokenizer():
    assert len(T.ADULT_VOCAB) >= 500 and len(T.SCIENCE_WORDS) >= 120 and len(T.READING_WORDS) >= 80
    assert not (T.SCIENCE_WORDS | T.READING_WORDS) & T.ADULT_VOCAB
    assert not T.SCIENCE_WORDS & T.READING_WORDS
    corpus = T.tokenizer_corpus(0, 3000)
    assert len(corpus) == 3000 and corpus == T.tokenizer_corpus(0, 3000)
    seen = {w for line in corpus for w in line.split()}
    assert not seen & (T.SCIENCE_WORDS | T.READING_WORDS)
    rng = np.random.default_rng(1)
    for _ in range(200):
        s = T.adult_sentence(rng).text
        assert 3 <= len(s.split()) <= 14 and s == s.lower()
        z = T.translate(s)
        assert len(z.split()) == len(s.split()) and not set(z.split()) & T.ADULT_VOCAB
    assert len(set(T.ZX_LEXICON.values())) == len(T.ZX_LEXICON)  # collision-free


def test_child_pool_covers_test_domain_words():
    def words(kind: str, n: int, seed: int, exclude: set[str]) -> list[str]:
        topics = T.SCIENCE_TOPICS if kind == "child-science" else T.READING_TOPICS
        return [f["target"] for f, _, _ in I._plan(kind, n, seed, exclude, None, topics)]

    for kind in ("child-science", "child-reading"):
        test = words(kind, 200, 1, set())
        pool = words(kind, 500, 2, set(test))
        assert not set(test) & set(pool)
        dom = T.DOMAIN_WORDS[kind.removeprefix("child-")]
        test_dom = {w for s in test for w in s.split() if w in dom}
        pool_words = {w for s in pool for w in s.split()}
        assert len(test_dom) > 60 and len(test_dom & pool_words) / len(test_dom) > 0.9


def test_items_are_identical_for_any_worker_count():
    n = I.CHUNK + 5  # two chunks, so workers=2 really runs them in parallel
    a = I.generate_items("child-reading", n, seed=7, workers=1)
    b = I.generate_items("child-reading", n, seed=7, workers=2)
    assert [x.target for x in a] == [x.target for x in b]
    assert all(np.array_equal(x.wav, y.wav) for x, y in zip(a, b, strict=True))
    assert len({x.speaker for x in a}) > 3 and all(x.voice.child for x in a)
    c = I.generate_items("child-reading", 5, seed=8)
    assert [x.target for x in c] != [x.target for x in a[:5]]


def test_world_is_deterministic_and_honours_the_contract(tmp_path, monkeypatch):
    monkeypatch.setitem(W.SIZES, "tiny", TINY)
    s1 = W.build_world(tmp_path / "a", seed=0, size="tiny", workers=1)
    W.build_world(tmp_path / "b", seed=0, size="tiny", workers=2)
    ha, hb = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert ha == hb and len(ha) == s1["clips"] + 3 * len(TINY) + 1  # clips, manifests, world.json
    # another seed: other sentences (the audio follows the text; items test checks seeds too)
    other = I._plan("adult", 5, W.split_seed(1, "adult", "test"), set(), None, None)
    assert [f["target"] for f, _, _ in other] != [W._spoken(r) for r in
                                                  read_manifest(tmp_path / "a" / "adult" / "test.jsonl")]
    # re-run: skipped; other settings without force: refused
    assert W.build_world(tmp_path / "a", seed=0, size="tiny")["skipped"]
    with pytest.raises(SiclError):
        W.build_world(tmp_path / "a", seed=5, size="tiny")

    root = tmp_path / "a"
    spoken: dict[str, set[str]] = {}
    for domain, sizes in TINY.items():
        for split, n in zip(W.SPLITS, sizes, strict=True):
            rows = read_manifest(root / domain / f"{split}.jsonl", require_target=True)
            assert len(rows) == n and all(Path(r.audio).is_file() for r in rows)
            if domain in ("sqa", "aqa"):
                assert all(r.choices and r.target in r.choices and r.question for r in rows)
            if domain == "translate":
                assert all(r.transcript and r.target_lang == T.TARGET_LANG and r.task == "st" for r in rows)
            if domain == "aqa":
                assert all({"category", "difficulty"} <= set(r.meta) for r in rows)
            spoken[f"{domain}/{split}"] = {W._spoken(r) for r in rows}
    for domain in ("adult", "child-science"):
        assert not spoken[f"{domain}/test"] & spoken[f"{domain}/pool"]
    # world v4, read speech: other children of the pool read every child-reading test sentence (two each), and
    # adult training queries re-read pool sentences in other voices; the fine-tuning set keeps its own sentences
    reading = {s: read_manifest(root / "child-reading" / f"{s}.jsonl") for s in W.SPLITS}
    for t in reading["test"]:
        readers = [p.speaker for p in reading["pool"] if p.target == t.target]
        assert len(readers) == W.READ_ALOUD_READERS == len(set(readers)) and t.speaker not in readers
        assert all(p.meta["topic"] == t.meta["topic"] for p in reading["pool"] if p.target == t.target)
    assert len(spoken["child-reading/pool"] - spoken["child-reading/test"]) == 2  # 12 clips: 5 x 2 + 2 fresh
    assert not spoken["child-reading/train"] & (spoken["child-reading/pool"] | spoken["child-reading/test"])
    adult = {s: read_manifest(root / "adult" / f"{s}.jsonl") for s in W.SPLITS}
    n_reread = round(len(adult["train"]) * W.ADULT_REREAD_SHARE)
    assert n_reread >= 1
    for i, q in enumerate(adult["train"]):
        same = [p for p in adult["pool"] if p.target == q.target]
        if i < n_reread:  # the first queries re-read the first pool sentences, in another voice
            assert [p.id for p in same] == [adult["pool"][i].id] and same[0].speaker != q.speaker
        else:
            assert not same
    info = json.loads((root / "world.json").read_text())
    assert info["version"] == W.WORLD_VERSION == 4
    assert info["child"]["child-reading"]["test_sentences_read_in_pool"] == 1.0
    assert info["child"]["child-science"]["test_sentences_read_in_pool"] == 0.0
    assert info["adult"]["train_sentences_read_in_pool"] == n_reread / len(adult["train"])
    assert info["adult"]["test_sentences_read_in_pool"] == 0.0
    for domain in ("child-science", "child-reading"):
        assert info["child"][domain]["test_domain_absent_from_adult"] == 1.0
    # names (world v3): two topics (12 pool clips / 6), every split speaks their names, the pool spells them all
    names = {s: read_manifest(root / "names" / f"{s}.jsonl") for s in W.SPLITS}
    assert {r.meta["topic"] for r in names["pool"]} == {"names-000", "names-001"}
    assert all(r.meta["topic"] in {"names-000", "names-001"} and r.meta["names"]
               and set(r.meta["names"]) <= set(r.target.split()) for rows in names.values() for r in rows)
    assert info["names"]["test_names_covered_by_pool"] == 1.0 and info["names"]["test_name_tokens"] >= 4
    assert W.world_sentences(root) >= spoken["adult/test"] | spoken["sqa/test"]


def test_cli_small_world(tmp_path, monkeypatch, capsys):
    from sicl.cli.main import main

    monkeypatch.setitem(W.SIZES, "small", {d: (2, 3, 3) for d in TINY})
    assert main(["synth", "--out", str(tmp_path / "w"), "--size", "small", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "child-science" in printed and "of test sentences read in the pool" in printed
    assert "adult: 0% of training queries re-read a pool sentence in another voice, 0% of test sentences" in printed
    # (2 training queries x 0.25 rounds to none; the contract test checks a world with re-read queries)
    assert (tmp_path / "w" / "world.json").is_file()


def test_world_v2_text_rare_topics_and_child_sentences():
    from sicl.data.synth import open_text as O

    heard = set(O.heard_words()) | T.ADULT_VOCAB
    rng = np.random.default_rng(5)
    rare = {w for _, r in O.rare_topics() for w in r}
    adult = [O.world_adult_sentence(rng) for _ in range(400)]
    with_rare = [s for s in adult if s.topic]
    assert 0.35 < len(with_rare) / len(adult) < 0.65
    for s in with_rare:  # one topic's anchor and rare word, every word heard in pretraining, no domain word
        anchors, words = O.rare_topics()[int(s.topic.split("-")[1])]
        toks = set(s.text.split())
        assert toks & set(anchors) and toks & set(words) and toks <= heard and not toks & O.domain_words()
    assert rare <= set(O.heard_words())
    for kind, make, dom in (("science", T.science_sentence, T.SCIENCE_WORDS),
                            ("reading", T.reading_sentence, T.READING_WORDS)):
        sents = [make(rng, version=2).text.split() for _ in range(300)]
        share = sum(w in dom for s in sents for w in s) / sum(len(s) for s in sents)
        assert 0.12 < share < 0.45, (kind, share)
        assert all(w in heard or w in dom for s in sents for w in s), kind
        v1 = [make(np.random.default_rng(9)).text for _ in range(5)]
        assert v1 == [make(np.random.default_rng(9), version=1).text for _ in range(5)]  # v1 unchanged


def test_world_v3_names_topics_are_made_up_fixed_and_spoken_by_their_sentences():
    from sicl.data.synth import open_text as O

    topics = O.name_topics()
    made_up = [w for (a, b), _ in topics for w in (a, b)]
    assert len(topics) == O.N_NAME_TOPICS and len(set(made_up)) == len(made_up)
    assert not set(made_up) & (set(O.words()) | O.domain_words())  # in no lexicon: no model heard them as words
    assert all(anchor in O.heard_words() for _, anchor in topics)
    rng = np.random.default_rng(11)
    for t in (0, 7, 149):
        for _ in range(10):
            s = O.name_sentence(rng, t)
            (a, b), anchor = topics[t]
            spoken = s.slots["names"].split()
            assert s.topic == f"names-{t:03d}" and spoken and set(spoken) <= {a, b} <= set(made_up)
            assert all(w in s.text.split() for w in spoken) and not {a, b} - set(spoken) & set(s.text.split())


def test_children_are_a_moderate_step_beyond_the_pretraining_voices():
    kids = V.classroom("science")
    wide = V.pretrain_population()
    assert np.median([k.shift for k in kids]) > np.median([v.shift for v in wide]) + 0.03  # a step beyond ...
    assert max(k.shift for k in kids) <= 1.13 <= max(v.shift for v in wide) + 0.01  # ... but not outside
    assert np.median([k.pitch for k in kids]) > np.median([v.pitch for v in wide]) and all(k.child for k in kids)


def test_an_older_world_is_upgraded_by_building_only_the_domains_it_lacks(tmp_path, monkeypatch):
    """The mechanism (``ADDED_IN``) as it brought version-2 worlds to version 3, replayed as if names had been
    added by this version: a world made since the last change to the other domains (``CHANGED_IN``) gains the
    new domain alone; an older one is refused (version 4 changed adult and child-reading: v2/v3 worlds are
    rebuilt)."""
    monkeypatch.setitem(W.SIZES, "tiny", TINY)
    monkeypatch.setattr(W, "ADDED_IN", {"names": W.WORLD_VERSION})
    monkeypatch.setattr(W, "CHANGED_IN", W.WORLD_VERSION - 1)
    out = tmp_path / "w"
    full = W.build_world(out, seed=0, size="tiny", workers=1)
    before = _hashes(out)
    # make it the world of the version before: no names domain
    import shutil

    shutil.rmtree(out / "names")
    info = json.loads((out / "world.json").read_text())
    info["version"] = W.WORLD_VERSION - 1
    (out / "world.json").write_text(json.dumps(info))
    stamp = (out / "adult" / "test.jsonl").stat().st_mtime_ns
    done = []
    summary = W.build_world(out, seed=0, size="tiny", workers=1, progress=done.append)
    assert summary["version"] == W.WORLD_VERSION and summary["counts"] == full["counts"]
    assert summary["names"] == full["names"] and sum(done) == full["clips"]
    assert (out / "adult" / "test.jsonl").stat().st_mtime_ns == stamp  # the old domains were not rebuilt
    after = _hashes(out)
    assert after.pop("world.json") and after == {k: v for k, v in before.items() if k != "world.json"}
    assert abs(summary["audio_hours"] - full["audio_hours"]) < 1e-3  # the same world as one built from nothing
    # a world from before the last change to the existing domains is refused
    info["version"] = W.WORLD_VERSION - 2
    (out / "world.json").write_text(json.dumps(info))
    with pytest.raises(SiclError, match=f"version={W.WORLD_VERSION - 2}"):
        W.build_world(out, seed=0, size="tiny", workers=1)
    monkeypatch.undo()
    info["version"] = 3  # the real case: a version-3 world (world v4 changed adult and child-reading)
    (out / "world.json").write_text(json.dumps(info))
    monkeypatch.setitem(W.SIZES, "tiny", TINY)
    with pytest.raises(SiclError, match="version=3; rebuild it"):
        W.build_world(out, seed=0, size="tiny", workers=1)


def test_rereads_draw_distinct_other_speakers_and_say_when_none_is_left():
    kids = V.classroom("reading")[:3]
    r = I.Reread({"target": "the cat sat", "meta": {"topic": "x"}}, {kids[0].speaker})
    plan = I._plan("child-reading", 4, 5, set(), kids, ["castle"], 2, rereads=[r, r])
    assert [f["target"] for f, _, _ in plan[:2]] == ["the cat sat"] * 2
    assert {v.speaker for _, v, _ in plan[:2]} == {kids[1].speaker, kids[2].speaker}  # never the first reader
    assert all(f["target"] != "the cat sat" for f, _, _ in plan[2:])  # the rest: fresh sentences
    with pytest.raises(ValueError, match="every one of the 3 speakers read 'the cat sat' already"):
        I._plan("child-reading", 1, 5, set(), kids, None, 2, rereads=[r])
    with pytest.raises(ValueError, match="rereads are for ASR kinds"):
        I._plan("translate", 1, 5, set(), None, None, 2, rereads=[I.Reread({"target": "x"}, set())])


def test_a_killed_build_goes_on_from_its_finished_splits_and_writes_the_same_world(tmp_path, monkeypatch):
    """A build stopped mid-way (here: Ctrl-C while the second domain's first split is being made) keeps its finished
    splits; run again with the same settings it makes only the rest, and the folder ends byte-identical to an
    uninterrupted build (clips, manifests and world.json)."""
    monkeypatch.setitem(W.SIZES, "tiny", TINY)
    W.build_world(tmp_path / "a", seed=0, size="tiny", workers=1)
    out = tmp_path / "b"
    clips = 0

    def stop_in_translate(n: int) -> None:
        nonlocal clips
        clips += n
        if clips > sum(TINY["adult"]) + 2:  # the adult domain is done; translate's test clips are on disk
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        W.build_world(out, seed=0, size="tiny", workers=1, progress=stop_in_translate)
    partial = json.loads((out / W.PARTIAL).read_text())
    assert partial["done"] == ["adult/pool", "adult/test", "adult/train"] and not (out / "world.json").exists()
    assert list((out / "translate" / "audio").glob("translate-test-*.flac")) and \
        not (out / "translate" / "test.jsonl").exists()
    made: list[tuple[str, int]] = []
    real = W.iter_items

    def spy(kind, n, *a, **kw):
        made.append((kind, n))
        return real(kind, n, *a, **kw)

    monkeypatch.setattr(W, "iter_items", spy)
    done: list[int] = []
    summary = W.build_world(out, seed=0, size="tiny", workers=1, progress=done.append)
    assert "adult" not in {k for k, _ in made} and ("translate", TINY["translate"][2]) in made
    assert sum(done) == summary["clips"] and not (out / W.PARTIAL).exists()
    assert _hashes(out) == _hashes(tmp_path / "a")


def test_a_folder_holding_other_files_is_refused_unless_forced(tmp_path, monkeypatch, capsys):
    from sicl.cli.main import main

    monkeypatch.setitem(W.SIZES, "small", {d: (2, 3, 3) for d in TINY})
    out = tmp_path / "mine"
    (out / "adult" / "audio").mkdir(parents=True)
    (out / "adult" / "audio" / "my_recording.wav").write_text("precious")
    (out / "adult" / "train.jsonl").write_text("mine\n")
    before = _hashes(out)
    assert main(["synth", "--out", str(out), "--size", "small"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not empty and holds no world (adult)" in err and "--force" in err
    assert _hashes(out) == before and not (out / W.PARTIAL).exists()
    # --force builds there: world files replace those of the same name, other files stay
    assert main(["synth", "--out", str(out), "--size", "small", "--force"]) == 0
    assert (out / "adult" / "audio" / "my_recording.wav").read_text() == "precious"
    assert (out / "world.json").is_file() and len(read_manifest(out / "adult" / "train.jsonl")) == 2
    # an unfinished build of other settings is refused too (not silently restarted)
    W._write_partial(out, 3, "small", set())
    (out / "world.json").unlink()
    with pytest.raises(SiclError, match="unfinished world build with seed=3 size=small"):
        W.build_world(out, seed=0, size="small", workers=1)


def test_negative_seeds_are_refused_before_anything_is_written(tmp_path, capsys):
    from sicl.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["synth", "--out", str(tmp_path / "w"), "--seed", "-1"])
    assert e.value.code == 2 and "--seed: must be >= 0, got -1" in capsys.readouterr().err
    with pytest.raises(SiclError, match="world seed must be a whole number >= 0, got -1"):
        W.build_world(tmp_path / "w", seed=-1, size="small")
    assert not (tmp_path / "w").exists()
