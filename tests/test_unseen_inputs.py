"""Inputs the project's own data never has: other sample rates and containers, broken and tiny clips, BOMs,
other scripts and languages, odd pools. Each is either handled correctly or one clear error naming the file."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from retrieval_fakes import BagOfWords, Spectrum, copy_clip, make_corpus

from sicl.cli.main import main
from sicl.data.audio import MIN_SECONDS, audio_duration, load_audio
from sicl.data.manifest import Example, read_manifest, write_manifest
from sicl.errors import AudioError, ManifestError, SiclError
from sicl.eval.metrics import normalize_text, score_rows
from sicl.retrieval.retrievers import RetrievalConfig, retrieve
from sicl.testing import tone, write_tone

BOM = b"\xef\xbb\xbf"


def _mp3(path: Path, seconds: float = 1.0, sample_rate: int = 44_100) -> Path:
    sf.write(str(path), tone(seconds, sample_rate), sample_rate)
    return path


# ------------------------------------------------------------------------------------------------ audio


@pytest.mark.parametrize("name,sr,channels,subtype", [
    ("a8k.wav", 8_000, 1, None), ("a22k.wav", 22_050, 1, None), ("a44k.wav", 44_100, 2, None),
    ("a48k.wav", 48_000, 6, None), ("u8.wav", 16_000, 1, "PCM_U8"), ("s24.wav", 16_000, 1, "PCM_24"),
    ("f32.wav", 16_000, 2, "FLOAT"), ("x.flac", 44_100, 2, None), ("x.ogg", 22_050, 1, None),
    ("X.WAV", 16_000, 1, None), ("a b é 中.flac", 16_000, 1, None),
])
def test_rates_channels_sample_formats_and_names_become_mono_16k(tmp_path, name, sr, channels, subtype):
    sf.write(str(tmp_path / name), tone(0.5, sr, channels=channels), sr, subtype=subtype)
    wav = load_audio(tmp_path / name)
    assert wav.dtype == np.float32 and wav.ndim == 1 and abs(len(wav) - 8_000) <= 2
    assert np.isfinite(wav).all() and np.abs(wav).max() > 0.05
    os.symlink(tmp_path / name, tmp_path / "link.wav")
    assert np.array_equal(load_audio(tmp_path / "link.wav"), wav)


def test_silent_audio_is_valid(tmp_path):
    sf.write(str(tmp_path / "s.wav"), np.zeros(16_000, np.float32), 16_000)
    assert not load_audio(tmp_path / "s.wav").any()


def test_broken_mp3_is_one_line_without_decoder_noise(tmp_path, capfd):
    (tmp_path / "junk.mp3").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    head = _mp3(tmp_path / "ok.mp3").read_bytes()
    (tmp_path / "head.mp3").write_bytes(head[:200])
    for name in ("junk.mp3", "head.mp3"):
        with pytest.raises(AudioError, match=rf"{name}: cannot decode audio \(not a recognised audio format\)$"):
            load_audio(tmp_path / name)
        with pytest.raises(AudioError, match=rf"{name}: cannot read audio header"):
            audio_duration(tmp_path / name)
    err = capfd.readouterr().err
    assert "Note:" not in err and "libmpg123" not in err and "Warning:" not in err, err


def test_truncated_mp3_is_an_error_not_a_shorter_clip(tmp_path, capfd):
    whole = _mp3(tmp_path / "whole.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(whole[: len(whole) // 3])
    assert abs(len(load_audio(tmp_path / "whole.mp3")) - 16_000) < 1_200
    with pytest.raises(AudioError, match=r"cut\.mp3: audio is truncated \(its MP3 header declares 1\.00 s, only"):
        load_audio(tmp_path / "cut.mp3")
    assert "Xing" not in capfd.readouterr().err


def test_decoder_noise_filter_keeps_what_other_threads_write(tmp_path, capfd):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    stop = threading.Event()

    def decode() -> None:
        while not stop.is_set():
            with pytest.raises(AudioError):
                load_audio(junk)

    workers = [threading.Thread(target=decode) for _ in range(3)]
    for w in workers:
        w.start()
    for i in range(30):
        print(f"progress line {i}", file=sys.stderr)
    stop.set()
    for w in workers:
        w.join()
    print("after", file=sys.stderr)
    err = capfd.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("progress")] == [f"progress line {i}"
                                                                                  for i in range(30)]
    assert err.endswith("after\n") and "Note:" not in err


def test_zero_byte_file_says_so(tmp_path):
    (tmp_path / "z.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"z\.wav: file is empty \(0 bytes\), not audio"):
        load_audio(tmp_path / "z.wav")


@pytest.mark.parametrize("samples,sr", [(1, 16_000), (1, 44_100), (160, 16_000), (320, 16_000)])
def test_clips_too_short_for_an_audio_tower_are_errors(tmp_path, samples, sr):
    sf.write(str(tmp_path / "t.wav"), np.full(samples, 0.1, np.float32), sr)
    with pytest.raises(AudioError, match=rf"t\.wav: audio is .* ms, too short \(the minimum is {MIN_SECONDS:g} s"):
        load_audio(tmp_path / "t.wav")
    sf.write(str(tmp_path / "ok.wav"), np.full(int(sr * MIN_SECONDS) + 1, 0.1, np.float32), sr)
    assert len(load_audio(tmp_path / "ok.wav")) >= 400


def test_validate_names_short_zero_byte_and_nan_clips(tmp_path, capsys):
    sf.write(str(tmp_path / "one.wav"), np.full(1, 0.1, np.float32), 44_100)
    (tmp_path / "zero.flac").write_bytes(b"")
    bad = tone(0.5)
    bad[3] = np.nan
    sf.write(str(tmp_path / "nan.wav"), bad, 16_000, subtype="FLOAT")
    write_tone(tmp_path / "fine.mp3", 0.5, 48_000)
    rows = [{"id": n, "audio": n, "task": "asr", "target": "x"} for n in ("one.wav", "zero.flac", "nan.wav", "fine.mp3")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["validate", str(tmp_path / "m.jsonl")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "one.wav: audio is 0.0227 ms, too short" in out[0]
    assert "zero.flac: file is empty (0 bytes)" in out[1] and "NaN" in out[2]
    assert out[3].endswith("3 problem(s) on 3 of 4 rows")


# --------------------------------------------------------------------------------------------- manifests


def test_manifest_with_bom_and_crlf_reads_everywhere(tmp_path, capsys):
    write_tone(tmp_path / "a.wav", 0.3)
    rows = [{"id": "a", "audio": "a.wav", "task": "asr", "target": "héllo wörld"},
            {"id": "b", "audio": "a.wav", "task": "asr", "target": "你好"}]
    path = tmp_path / "m.jsonl"
    path.write_bytes(BOM + b"\r\n".join(json.dumps(r, ensure_ascii=False).encode() for r in rows) + b"\r\n")
    assert [ex.id for ex in read_manifest(path)] == ["a", "b"]
    assert main(["validate", str(path)]) == 0
    preds = tmp_path / "p.jsonl"
    preds.write_bytes(BOM + json.dumps({**rows[0], "prediction": "hello world"}).encode() + b"\r\n")
    capsys.readouterr()
    assert main(["score", str(preds)]) == 0
    assert json.loads(capsys.readouterr().out)["asr"]["wer"] == 0.0  # Whisper's English normaliser drops accents


def test_non_finite_duration_and_blank_target_are_refused(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "audio": "a.wav", "task": "asr", "duration": Infinity}\n')
    with pytest.raises(ManifestError, match="'duration' must be a non-negative, finite number"):
        read_manifest(path)
    path.write_text('{"id": "a", "audio": "a.wav", "task": "asr", "target": " \\u00a0 "}\n')
    assert read_manifest(path)[0].target.strip() == ""
    with pytest.raises(ManifestError, match=r"m\.jsonl:1: id 'a': 'target' is blank"):
        read_manifest(path, require_target=True)


# ------------------------------------------------------------------------------------------------ metrics


def asr(target: str, prediction: str, lang: str | None = "en") -> dict:
    return {"id": "x", "task": "asr", "target": target, "prediction": prediction, "lang": lang}


def test_wer_and_cer_by_hand():
    m = score_rows([asr("The cat sat on the mat.", "the cat sat on a mat")])["asr"]
    assert (m["wer"], m["cer"], m["primary"]) == (round(1 / 6, 6), round(3 / 22, 6), "wer")
    zh = score_rows([asr("我爱北京天安门。", "我爱北京天门", "zh-CN")])["asr"]
    assert (zh["cer"], zh["primary"]) == (round(1 / 7, 6), "cer")
    ja = score_rows([asr("今日はいい天気です", "今日は いい天気でした", "ja")])["asr"]
    assert (ja["cer"], ja["primary"]) == (round(2 / 9, 6), "cer")
    fr = score_rows([asr("Ça va très bien, merci !", "ca va tres bien merci", "fr")])["asr"]
    assert fr["wer"] == 0.4  # the basic normaliser keeps accents
    assert score_rows([asr("hello\u00a0world\u3000again", "hello world again")])["asr"]["wer"] == 0.0


def test_empty_references_are_left_out_and_counted_never_divided_by():
    m = score_rows([asr("", "words"), asr("?!", "more"), asr("two words", "two words")])["asr"]
    assert (m["wer"], m["cer"], m["skipped_empty_reference"], m["n"]) == (0.0, 0.0, 2, 3)
    only = score_rows([asr("  ", "x", "fr")])["asr"]
    assert only["wer"] is None and only["cer"] is None and only["skipped_empty_reference"] == 1


@pytest.mark.parametrize("lang", ["cmn", "zho", "cmn_hans_cn", "Chinese", "ZH_tw"])
def test_other_spellings_of_chinese_get_cer_and_the_zh_bleu_tokenizer(lang):
    m = score_rows([asr("我爱北京天安门", "我爱北京天门", lang)])["asr"]
    assert (m["primary"], m["cer"]) == ("cer", round(1 / 7, 6))
    st = {"id": "s", "task": "st", "target": "我爱北京天安门", "prediction": "我爱北京", "target_lang": lang}
    assert score_rows([st])["st"]["tokenize"] == "zh"


def test_invisible_characters_do_not_split_or_join_words():
    assert normalize_text("hyphen\u00adation is\u200bhere\ufeff", "fr") == "hyphenation is here"
    assert score_rows([asr("co\u00adoperation\u200bmatters", "cooperation matters")])["asr"]["wer"] == 0.0


# ---------------------------------------------------------------------------------------------- retrieval


def test_query_is_never_its_own_demo_across_folders_and_containers(tmp_path):
    pool = make_corpus(tmp_path / "pool", ["red apples fall", "blue whales swim", "green frogs jump",
                                           "red apples fall"])  # a repeated transcript: another recording
    w, sr = sf.read(pool[0].audio)
    sf.write(str(tmp_path / "pool" / "copy.flac"), w, sr)  # the same samples in another container
    pool.append(Example(id="copy", audio=str(tmp_path / "pool" / "copy.flac"), task="asr", target="red apples fall"))
    write_manifest(tmp_path / "pool" / "pool.jsonl", pool)
    qdir = tmp_path / "elsewhere" / "queries"
    qdir.mkdir(parents=True)
    (qdir / "q.jsonl").write_text(json.dumps({"id": "q", "audio": "../../pool/audio/p0.wav", "task": "asr",
                                              "target": "red apples fall"}) + "\n")
    (query,) = read_manifest(qdir / "q.jsonl")
    out = retrieve([query], read_manifest(tmp_path / "pool" / "pool.jsonl"), 3, "ticl",
                   RetrievalConfig(cache_dir=str(tmp_path / "c"), pseudo_labeler="gold"), embedder=BagOfWords())
    ids = [d for d, _ in out[0]]
    assert ids[0] == "p3" and "p0" not in ids and "copy" not in ids


def test_random_retriever_is_reproducible_and_pool_smaller_than_k_is_one_error(tmp_path):
    pool = make_corpus(tmp_path, ["a b", "c d", "e f", "g h", "i j"])
    config = RetrievalConfig(cache_dir=str(tmp_path / "c"), seed=7)
    first = retrieve(pool, pool, 2, "random", config)
    assert first == retrieve(list(reversed(pool)), pool, 2, "random", config)[::-1]
    assert all(q.id not in [d for d, _ in row] for q, row in zip(pool, first, strict=True))
    with pytest.raises(SiclError, match="k=5 is larger than the 4 eligible pool items"):
        retrieve(pool, pool, 5, "random", config)
    with pytest.raises(SiclError, match="k=1 is larger than the 0 eligible"):
        retrieve(pool[:1], pool[:1], 1, "ticl", config, embedder=BagOfWords())


def test_ticl_plus_with_a_rerank_depth_beyond_the_pool(tmp_path):
    pool = make_corpus(tmp_path, ["a b c", "a b d", "a e f", "g h i"])
    out = retrieve(pool, pool, 2, "ticl+", RetrievalConfig(cache_dir=str(tmp_path / "c"), pseudo_labeler="gold"),
                   embedder=BagOfWords(), audio_embedder=Spectrum())
    assert all(len(row) == 2 and q.id not in [d for d, _ in row] for q, row in zip(pool, out, strict=True))


def test_duplicate_pool_ids_are_refused(tmp_path):
    pool = make_corpus(tmp_path, ["a b", "c d", "e f"])
    twin = copy_clip(pool[1], tmp_path, "p0")  # another clip under p0's id
    with pytest.raises(SiclError, match="pool id 'p0' is used by two pool items"):
        retrieve(pool[:1], pool + [twin], 1, "random", RetrievalConfig(cache_dir=str(tmp_path / "c")))


def test_st_target_languages_match_without_case_or_separator_differences(tmp_path):
    pool = make_corpus(tmp_path, ["eins zwei", "drei vier", "fünf sechs"], task="st")
    for ex in pool:
        ex.transcript, ex.target_lang = ex.target, "pt_BR"
    query = Example(id="q", audio=pool[0].audio.replace("p0", "p1"), task="st", target="x", transcript="drei vier",
                    target_lang="PT-br")
    out = retrieve([query], pool, 1, "ticl", RetrievalConfig(cache_dir=str(tmp_path / "c"), pseudo_labeler="gold"),
                   embedder=BagOfWords())
    assert len(out[0]) == 1


class NanTower:
    id = "nan-tower:v1"

    def encode(self, wavs):
        return np.full((len(wavs), 4), np.nan, np.float32)


def test_an_audio_embedding_that_is_not_finite_is_an_error_naming_the_clip(tmp_path):
    pool = make_corpus(tmp_path, ["a b", "c d", "e f"])
    with pytest.raises(SiclError, match=r"p0\.wav: its audio embedding is not finite"):
        retrieve(pool, pool, 1, "audio", RetrievalConfig(cache_dir=str(tmp_path / "c")), audio_embedder=NanTower())


THAI = ["สวัสดีครับ", "วันนี้อากาศดีมาก", "ฉันชอบกินข้าว", "แมวนั่งบนเสื่อ"]


def test_default_embedder_gives_way_to_char_tfidf_for_a_script_it_cannot_read(tmp_path, capsys):
    pool = make_corpus(tmp_path, THAI)
    for ex in pool:
        ex.lang = "th"
    (query,) = make_corpus(tmp_path, ["แมวนั่งบนเสื่อ"], prefix="q", freqs=[990.0])
    info: dict = {}
    out = retrieve([query], pool, 2, "ticl", RetrievalConfig(cache_dir=str(tmp_path / "c"), pseudo_labeler="gold",
                                                            device="cpu"), info=info)
    assert out[0][0][0] == "p3" and out[0][0][1] > out[0][1][1]  # the same sentence first, not a tie
    assert info["text_embedder"].startswith("char-tfidf")
    assert "does not know the script of 4 of 4 pool texts" in capsys.readouterr().err
    from sicl.retrieval.embed import TextEmbedder

    with pytest.raises(SiclError, match="use --embedder char-tfidf"):  # an embedder the user chose: an error
        retrieve([query], pool, 2, "ticl", RetrievalConfig(cache_dir=str(tmp_path / "c"), pseudo_labeler="gold"),
                 embedder=TextEmbedder(device="cpu"))


def test_retrieve_cli_on_a_thai_pool_records_the_embedder_used(tmp_path, capsys):
    pool = make_corpus(tmp_path, THAI)
    write_manifest(tmp_path / "pool.jsonl", pool)
    out = tmp_path / "ep.jsonl"
    assert main(["retrieve", "--data", str(tmp_path / "pool.jsonl"), "--pool", str(tmp_path / "pool.jsonl"),
                 "--k", "1", "--pseudo-labeler", "gold", "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
                 "--out", str(out)]) == 0
    assert json.loads((tmp_path / "ep.jsonl.meta.json").read_text())["text_embedder"].startswith("char-tfidf")


def test_retrieval_files_and_pseudo_labels_with_a_bom(tmp_path):
    from sicl.retrieval.pseudo_label import FileLabeler
    from sicl.retrieval.results import read_retrievals

    (tmp_path / "r.jsonl").write_bytes(BOM + b'{"id": "q", "demos": ["a"], "scores": [0.5]}\r\n')
    assert read_retrievals(tmp_path / "r.jsonl") == {"q": [("a", 0.5)]}
    (tmp_path / "l.jsonl").write_bytes(BOM + b'{"id": "q", "prediction": "hi"}\n')
    assert FileLabeler(tmp_path / "l.jsonl").labels == {"q": "hi"}


# ------------------------------------------------------------------------------------ prompts, augmentation


def test_language_names_and_answers():
    from sicl.episodes.prompts import answer_text, language_name

    assert [language_name(c) for c in ("pt_BR", "ZH", "th", "de-AT", "xx")] == \
        ["Portuguese", "Chinese", "Thai", "German", "xx"]
    assert answer_text("  hello world\n") == "hello world"


def test_slowed_copies_stay_inside_the_audio_window(tmp_path):
    from sicl.data.augment import AugmentSettings, augment_queries

    src = write_tone(tmp_path / "long.wav", seconds=2.9)
    q = Example(id="q", audio=str(src), task="asr", target="x", duration=2.9)
    copies = augment_queries([q], AugmentSettings(copies=3, speed=[0.5, 0.6], noise_prob=0.0), tmp_path / "aug",
                             max_seconds=3.0)
    for c in copies:
        assert len(load_audio(c.audio, max_seconds=3.0)) <= 3.0 * 16_000 and c.meta["speed"] >= 2.9 / 3.0


def test_a_pool_in_another_language_is_used_with_a_warning(tmp_path, capsys):
    pool = make_corpus(tmp_path, ["red apples fall", "blue whales swim"])
    (query,) = make_corpus(tmp_path, ["des pommes rouges"], prefix="q", freqs=[990.0])
    query.lang = "fr-FR"
    out = retrieve([query], pool, 1, "random", RetrievalConfig(cache_dir=str(tmp_path / "c")))
    assert len(out[0]) == 1  # the documented rule: demonstrations of the query's task, whatever their language
    assert "1 asr query (e.g. 'q0', lang 'fr-FR') has no pool item in its language; its demonstrations " \
           "are in en" in capsys.readouterr().err
    pool[0].lang = "fr"
    retrieve([query], pool, 1, "random", RetrievalConfig(cache_dir=str(tmp_path / "c")))
    assert "warning" not in capsys.readouterr().err


def test_a_clip_the_audio_tower_gives_no_token_is_refused_by_the_backbone(data):
    """Clips handed to a chat backbone directly (``wavs=``, ``encode_audio``) must carry at least one audio token:
    320 samples give the tower no frame (the model would see the clip's markers and nothing), 321 give one."""
    import numpy as np

    from sicl.errors import AudioError
    from sicl.models.registry import load_backbone

    bb = load_backbone(data["model"])
    assert bb.num_audio_tokens(320) == 0 and bb.num_audio_tokens(321) == 1
    with pytest.raises(AudioError, match=r"^short: audio is 20 ms, too short for .*\(no audio token for less than 20.1 ms\)"):
        bb.encode_audio([np.zeros(320, np.float32)], names=["short"])
    (out,) = bb.encode_audio([np.zeros(321, np.float32)])
    assert out.shape[0] == 1
