"""The FLEURS importer on a tiny copy of the published layout: data/<config>/<split>.tsv (no header, 7 fields) and
audio/<split>.tar.gz, or that archive extracted."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from sicl.data.importers.fleurs import fleurs_lang
from sicl.data.manifest import read_manifest
from sicl.testing import write_tone
from tests.test_importers import by_id, run

SEC = 0.3


def fleurs_lang_folder(root: Path, config: str = "en_us", archived: bool = True) -> Path:
    """Two sentences; the first read by two speakers (one sentence id, two files), as in FLEURS."""
    lang = root / "data" / config
    lines = {
        "test": ["1001\t111.wav\tThe Cat sat, quietly.\tthe cat sat quietly\tt h e | c a t\t4800\tFEMALE",
                 "1001\t112.wav\tThe Cat sat, quietly.\tthe cat sat quietly\tt h e | c a t\t4800\tMALE",
                 "1002\t113.wav\tDogs run!\tdogs run\td o g s\t4800\tOTHER"],
        "dev": ["2001\t211.wav\tA dev line.\ta dev line\ta\t4800\tMALE"],
    }
    for split, rows in lines.items():
        (lang).mkdir(parents=True, exist_ok=True)
        (lang / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        clips = lang / "audio" / split
        for i, row in enumerate(rows):
            write_tone(clips / row.split("\t")[1], SEC, 16_000, seed=i)
        if archived:
            with tarfile.open(lang / "audio" / f"{split}.tar.gz", "w:gz") as tar:
                tar.add(clips, arcname=split)
            for f in clips.iterdir():
                f.unlink()
            clips.rmdir()
    return lang


@pytest.mark.parametrize("archived", [True, False])
def test_fleurs_test_split_from_archive_or_folder(tmp_path, capsys, archived):
    lang = fleurs_lang_folder(tmp_path, archived=archived)
    out = tmp_path / "out" / "fleurs.jsonl"
    rc, _, err = run(capsys, "fleurs", lang, "--split", "test", "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    assert sorted(rows) == ["111", "112", "113"]  # one row per recording, not per sentence
    a = rows["111"]
    assert (a.target, a.lang, a.speaker) == ("The Cat sat, quietly.", "en", None)
    assert a.meta == {"split": "test", "sentence_id": "1001", "fleurs_config": "en_us", "gender": "female"}
    assert rows["112"].meta["sentence_id"] == "1001"
    audio = Path(a.audio) if Path(a.audio).is_absolute() else out.parent / a.audio
    assert audio.is_file()
    if archived:  # taken out of test.tar.gz into audio/ beside the manifest
        assert audio.parent == (out.parent / "audio").resolve()
    else:
        assert audio.parent == (lang / "audio" / "test").resolve()
    assert a.duration == pytest.approx(SEC, abs=0.01)


def test_fleurs_all_splits_normalized_text_and_validation_alias(tmp_path, capsys):
    lang = fleurs_lang_folder(tmp_path)
    out = tmp_path / "all.jsonl"
    rc, _, err = run(capsys, "fleurs", lang, "--text", "normalized", "--out", out)
    assert rc == 0, err
    rows = by_id(out)
    assert sorted(rows) == ["111", "112", "113", "211"]
    assert rows["113"].target == "dogs run"
    assert rows["211"].meta["split"] == "dev"
    out2 = tmp_path / "dev.jsonl"
    rc, _, err = run(capsys, "fleurs", lang, "--split", "validation", "--out", out2)
    assert rc == 0, err
    assert [r.id for r in read_manifest(out2)] == ["211"]


def test_fleurs_language_codes(tmp_path, capsys):
    assert [fleurs_lang(c) for c in ("en_us", "cmn_hans_cn", "yue_hant_hk", "ast_es", "fil_ph")] == \
        ["en", "zh", "yue", "ast", "fil"]
    lang = fleurs_lang_folder(tmp_path, "cmn_hans_cn")
    out = tmp_path / "zh.jsonl"
    rc, _, err = run(capsys, "fleurs", lang, "--split", "dev", "--out", out)
    assert rc == 0, err
    assert read_manifest(out)[0].lang == "zh"  # scored with CER (sicl.eval.metrics.NO_SPACE_LANGS)


def test_fleurs_clip_missing_from_archive_is_skipped_or_strict_error(tmp_path, capsys):
    lang = fleurs_lang_folder(tmp_path)
    with open(lang / "test.tsv", "a", encoding="utf-8") as fh:
        fh.write("1003\t999.wav\tNot recorded.\tnot recorded\tn\t4800\tMALE\n")
    out = tmp_path / "o.jsonl"
    rc, _, err = run(capsys, "fleurs", lang, "--split", "test", "--out", out)
    assert rc == 0, err
    assert "skipped 1 of 4 rows with bad audio: 999.wav" in err
    assert sorted(by_id(out)) == ["111", "112", "113"]
    strict = tmp_path / "s" / "strict.jsonl"
    rc, _, err = run(capsys, "fleurs", lang, "--split", "test", "--strict", "--out", strict)
    assert rc != 0 and "999.wav" in err
    assert not strict.exists()
    assert not (strict.parent / "audio").exists()  # nothing extracted stays behind a failed import


def test_fleurs_malformed_index_names_the_line(tmp_path, capsys):
    lang = fleurs_lang_folder(tmp_path)
    (lang / "test.tsv").write_text("1001\t111.wav\tok\tok\tx\t4800\tMALE\n1002 113.wav Dogs run\n", encoding="utf-8")
    out = tmp_path / "bad.jsonl"
    rc, _, err = run(capsys, "fleurs", lang, "--split", "test", "--out", out)
    assert rc != 0
    assert f"{lang / 'test.tsv'}:2: 1 tab-separated field(s); a FLEURS line has 7" in err
    assert not out.exists()


def test_fleurs_repository_root_points_to_a_language_folder(tmp_path, capsys):
    fleurs_lang_folder(tmp_path)
    rc, _, err = run(capsys, "fleurs", tmp_path, "--out", tmp_path / "x.jsonl")
    assert rc != 0
    assert f"give one language folder, e.g. {tmp_path / 'data' / 'en_us'}" in err


def test_fleurs_member_paths_cannot_escape_the_audio_folder(tmp_path, capsys):
    lang = tmp_path / "data" / "en_us"
    lang.mkdir(parents=True)
    (lang / "test.tsv").write_text("1\t../../evil.wav\tHello there.\thello there\th\t4800\tMALE\n", encoding="utf-8")
    wav = write_tone(tmp_path / "src" / "evil.wav", SEC, 16_000)
    (lang / "audio").mkdir()
    with tarfile.open(lang / "audio" / "test.tar.gz", "w:gz") as tar:
        tar.add(wav, arcname="../../evil.wav")
    out = tmp_path / "o" / "m.jsonl"
    rc, _, err = run(capsys, "fleurs", lang, "--split", "test", "--out", out)
    assert rc == 0, err
    (row,) = read_manifest(out)
    assert Path(row.audio).resolve() == (out.parent / "audio" / "evil.wav").resolve()
    assert not (tmp_path / "evil.wav").exists() and not (tmp_path / "o" / "evil.wav").exists()


# ------------------------------------------------------------------------------ a damaged audio/<split>.tar.gz

def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("damage,message", [
    ("truncated", "cannot read the archive (truncated or damaged: "),
    ("damaged", "cannot read the archive (truncated or damaged: "),  # the first header is unreadable
    ("zeroed", "cannot read the archive (truncated or damaged: "),  # reads as an early end; the CRC tells
    ("text", "not a tar.gz archive (no gzip or tar header)"),
    ("empty", "not a tar.gz archive (the file is empty)"),
])
@pytest.mark.parametrize("existing", [False, True])
def test_fleurs_damaged_archive_is_one_line_and_leaves_nothing(tmp_path, capsys, damage, message, existing):
    lang = fleurs_lang_folder(tmp_path)
    archive = lang / "audio" / "test.tar.gz"
    data = archive.read_bytes()
    archive.write_bytes({"truncated": data[:len(data) // 2], "text": b"not an archive\n", "empty": b"",
                         "damaged": data[:200] + bytes(100) + data[300:],
                         "zeroed": data[:-1000] + bytes(100) + data[-900:]}[damage])
    out_dir = tmp_path / "out"
    if existing:  # an output folder with earlier work in it stays exactly as it was
        (out_dir / "audio").mkdir(parents=True)
        (out_dir / "audio" / "old.wav").write_bytes(b"old")
    before = _leftovers(tmp_path)
    out = out_dir / "m.jsonl" if existing else out_dir / "x" / "m.jsonl"  # audio/ beside it exists / is new
    rc, out, err = run(capsys, "fleurs", lang, "--split", "test", "--out", out)
    assert rc == 1 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sicl prepare: error: {archive}: ") and message in lines[0]
    assert _leftovers(tmp_path) == before  # no staging folder, no folder this run created


def test_fleurs_failed_strict_run_removes_the_folders_it_created(tmp_path, capsys):
    lang = fleurs_lang_folder(tmp_path)
    with open(lang / "test.tsv", "a", encoding="utf-8") as fh:
        fh.write("1003\t999.wav\tNot recorded.\tnot recorded\tn\t4800\tMALE\n")
    out = tmp_path / "new" / "deeper" / "m.jsonl"
    rc, _, err = run(capsys, "fleurs", lang, "--split", "test", "--strict", "--out", out)
    assert rc == 1 and "999.wav" in err
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()  # a folder that existed before is never removed, even when left empty
    rc, _, err = run(capsys, "fleurs", lang, "--split", "test", "--strict", "--out", tmp_path / "kept" / "m.jsonl")
    assert rc == 1 and (tmp_path / "kept").is_dir() and list((tmp_path / "kept").iterdir()) == []


def test_fleurs_out_may_not_be_its_own_index_or_archive(tmp_path, capsys):
    lang = fleurs_lang_folder(tmp_path)
    for target in (lang / "test.tsv", lang / "audio" / "test.tar.gz"):
        before = target.read_bytes()
        rc, _, err = run(capsys, "fleurs", lang, "--split", "test", "--out", target)
        assert rc == 1 and err.strip() == (f"sicl prepare: error: --out {target} is an input of this import "
                                           f"(the index {target}); choose another path")
        assert target.read_bytes() == before and not (lang / "audio" / "111.wav").exists()
