"""`sicl codes`: filling MiMo-Audio's per-clip code cache from precomputed files (and the tokenizer's error)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from sicl.cli.main import main
from sicl.data.audio import audio_hash, load_audio
from sicl.data.manifest import read_manifest
from sicl.episodes.episode import Episode
from sicl.models.mimo_audio import code_frames, load_mimo_audio
from sicl.models.mimo_tiny import build_tiny_mimo, build_tiny_mimo_tokenizer
from sicl.models.mimo_tokenizer import load_mimo_tokenizer
from sicl.testing import tiny_asr_manifest


def _codes(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, 1024 if c < 2 else 128, frames) for c in range(8)], 1)


@pytest.fixture()
def clips(tmp_path):
    manifest = tiny_asr_manifest(tmp_path / "data", n=3)
    examples = read_manifest(manifest)
    src = tmp_path / "from"
    src.mkdir()
    for i, ex in enumerate(examples):
        frames = code_frames(len(load_audio(ex.audio)))
        np.save(src / f"{ex.id}.npy", _codes(frames, i))
    return manifest, examples, src


def _cache_files(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_import_then_backbone_reads_the_cache(clips, tmp_path, capsys):
    manifest, examples, src = clips
    cache = tmp_path / "cache"
    assert main(["codes", "--manifest", str(manifest), "--out", str(cache), "--from-dir", str(src)]) == 0
    assert "3 written, 0 already present, 0 skipped of 3 clips" in capsys.readouterr().out
    names = _cache_files(cache)
    assert names == sorted(f"{audio_hash(load_audio(ex.audio))}.npy" for ex in examples)  # no temp files left

    model = build_tiny_mimo(tmp_path / "tiny")
    bb = load_mimo_audio(model, codes_dir=cache)
    for ex in examples:
        got = bb.encode_audio([load_audio(ex.audio)])[0]
        assert torch.equal(got, torch.as_tensor(np.load(src / f"{ex.id}.npy")).long())
    ep = Episode(examples[2], [examples[0], examples[1]])
    with torch.no_grad():
        logits = bb.forward(bb.render([ep]))
    assert torch.isfinite(logits).all()

    # idempotent: a second run writes nothing and leaves the files alone; several manifests are one run
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert main(["codes", "--data", str(manifest), str(manifest), "--out", str(cache), "--from-dir", str(src)]) == 0
    assert "0 written, 6 already present, 0 skipped of 6 clips" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before


@pytest.mark.parametrize("bad, why", [
    (lambda a: a[:, :5], r"shape \(\d+, 5\) is not \(frames >= 1, codebooks >= 8\)"),
    (lambda a: a.astype(np.float32), "dtype float32 is not an integer type"),
    (lambda a: np.array([{"codes": a}], dtype=object), "not a plain .npy array"),
    (lambda a: a + 1024, "code .* in codebook 0 is outside its size 1024"),
    (lambda a: a - 2000, "negative code"),
    (None, "no such file"),
])
def test_bad_file_is_named_and_nothing_is_written_for_it(clips, tmp_path, capsys, bad, why):
    manifest, examples, src = clips
    target = src / f"{examples[1].id}.npy"
    if bad is None:
        target.unlink()
    else:
        np.save(target, bad(np.load(target)), allow_pickle=True)
    cache = tmp_path / "cache"
    bad_hash = audio_hash(load_audio(examples[1].audio))

    # default: one warning line naming the file, that clip skipped and counted, the others written
    assert main(["codes", "--manifest", str(manifest), "--out", str(cache), "--from-dir", str(src)]) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if str(target) in line]
    assert len(warning) == 1 and re.search(why, warning[0]), captured.err
    assert "2 written, 0 already present, 1 skipped of 3 clips" in captured.out
    assert len(_cache_files(cache)) == 2 and not any(n.startswith(bad_hash) for n in _cache_files(cache))

    # --strict: an error naming the file; still nothing (not even a temporary) for that clip
    assert main(["codes", "--manifest", str(manifest), "--out", str(cache), "--from-dir", str(src),
                 "--strict"]) == 1
    err = capsys.readouterr().err
    assert str(target) in err and err.count("\n") == 1
    assert len(_cache_files(cache)) == 2 and not any(bad_hash in n for n in _cache_files(cache))


def test_model_config_gives_codebook_sizes(clips, tmp_path, capsys):
    manifest, examples, src = clips
    model = build_tiny_mimo(tmp_path / "tiny", speech_vocab_size="1025-1025-65-65-65-65-65-65",
                            speech_zeroemb_idx="1024-1024-64-64-64-64-64-64")
    cache = tmp_path / "cache"
    assert main(["codes", "--manifest", str(manifest), "--out", str(cache), "--from-dir", str(src),
                 "--model", str(model), "--strict"]) == 1
    assert "outside its size 64" in capsys.readouterr().err
    assert not cache.exists() or _cache_files(cache) == []


def test_tokenizer_encodes_and_reruns_skip(clips, tmp_path, capsys):
    manifest, examples, _ = clips
    ckpt = build_tiny_mimo_tokenizer(tmp_path / "tok")
    cache = tmp_path / "cache"
    assert main(["codes", "--manifest", str(manifest), "--out", str(cache), "--tokenizer", str(ckpt)]) == 0
    assert "3 written, 0 already present, 0 skipped of 3 clips" in capsys.readouterr().out
    enc = load_mimo_tokenizer(ckpt)
    for ex in examples:
        wav = load_audio(ex.audio)
        got = np.load(cache / f"{audio_hash(wav)}.npy", allow_pickle=False)
        assert got.shape == (code_frames(len(wav)), 10)  # every RVQ level of the tiny tokenizer; the LLM reads 8
        assert np.array_equal(got, enc.encode(wav, 16_000))
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert main(["codes", "--manifest", str(manifest), "--out", str(cache), "--tokenizer", str(ckpt)]) == 0
    assert "0 written, 3 already present, 0 skipped of 3 clips" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before
    # and the backbone reads them
    bb = load_mimo_audio(build_tiny_mimo(tmp_path / "tiny"), codes_dir=cache)
    assert bb.encode_audio([load_audio(examples[0].audio)])[0].shape[0] == code_frames(len(load_audio(examples[0].audio)))


@pytest.mark.parametrize("damage", ["missing", "unknown"])
def test_corrupt_tokenizer_is_a_one_line_error(clips, tmp_path, capsys, damage):
    from safetensors.torch import load_file, save_file

    manifest, _, _ = clips
    ckpt = build_tiny_mimo_tokenizer(tmp_path / "tok")
    sd = load_file(ckpt / "model.safetensors")
    if damage == "missing":
        del sd["encoder.quantizer.vq.layers.3._codebook.embed"]
    else:
        sd["encoder.adapter.weight"] = torch.zeros(2)
    save_file(sd, str(ckpt / "model.safetensors"))
    cache = tmp_path / "cache"
    assert main(["codes", "--manifest", str(manifest), "--out", str(cache), "--tokenizer", str(ckpt)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("missing tensors" if damage == "missing" else "unexpected tensors") in err
    assert not cache.exists()


def test_tokenizer_too_short_clip_is_skipped(tmp_path, capsys):
    from sicl.data.audio import write_audio

    ckpt = build_tiny_mimo_tokenizer(tmp_path / "tok")
    rows = []
    for i, n in enumerate([160, 8000]):
        write_audio(tmp_path / f"c{i}.wav", np.sin(np.arange(n) / 7.0).astype(np.float32) * 0.3)
        rows.append(json.dumps({"id": f"c{i}", "audio": str(tmp_path / f"c{i}.wav"), "task": "asr", "target": "x"}))
    (tmp_path / "m.jsonl").write_text("\n".join(rows) + "\n")
    cache = tmp_path / "cache"
    assert main(["codes", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(cache), "--tokenizer",
                 str(ckpt)]) == 0
    out, err = capsys.readouterr()
    assert "1 written, 0 already present, 1 skipped of 2 clips" in out and "too short" in err


def test_needs_a_cache_folder(clips, capsys, monkeypatch):
    manifest, _, src = clips
    monkeypatch.delenv("SICL_MIMO_CODES", raising=False)
    assert main(["codes", "--manifest", str(manifest), "--from-dir", str(src)]) == 1
    assert "--out" in capsys.readouterr().err
