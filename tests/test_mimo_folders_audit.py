"""MiMo-Audio model folders, audio-tokenizer folders and code caches, and Qwen2-Audio folders in their released layout,
in broken states, as `sicl eval`, `sicl codes` and load_backbone read them: every problem is one SiclError line naming
the file and what is wrong (never a traceback, never a silently wrong model or stale weights), pickles are never
unpickled."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sicl.cli.main import main
from sicl.data.audio import load_audio
from sicl.data.manifest import read_manifest
from sicl.errors import SiclError
from sicl.models.mimo_audio import code_frames, write_codes
from sicl.models.mimo_tiny import build_tiny_mimo, build_tiny_mimo_tokenizer
from sicl.models.registry import load_backbone
from sicl.testing import tiny_asr_manifest
from tests.test_model_folders_audit import shard_weights


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict[str, Path]:
    """A tiny MiMo-Audio folder, a tiny tokenizer folder, three clips and a good code cache for them."""
    root = tmp_path_factory.mktemp("mimo_folders")
    manifest = tiny_asr_manifest(root / "data", n=3)
    build_tiny_mimo(root / "model")
    build_tiny_mimo_tokenizer(root / "tok")
    rng = np.random.default_rng(0)
    for ex in read_manifest(manifest):
        wav = load_audio(ex.audio)
        n = code_frames(len(wav))
        write_codes(root / "codes", wav, np.stack([rng.integers(0, 1024 if c < 2 else 128, n) for c in range(8)], 1))
    return {"root": root, "manifest": manifest, "model": root / "model", "tok": root / "tok", "codes": root / "codes"}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for var in ("SICL_MIMO_CODES", "SICL_MIMO_TOKENIZER"):
        monkeypatch.delenv(var, raising=False)


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def _edit_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def _eval(fx, model: Path, out: Path, codes: Path | None, capsys) -> tuple[int, list[str]]:
    """`sicl eval` of one query, zero-shot, with ``codes`` as the code cache; (exit code, stderr lines)."""
    import os

    capsys.readouterr()
    if codes is not None:
        os.environ["SICL_MIMO_CODES"] = str(codes)
    try:
        rc = main(["eval", "--model", str(model), "--data", str(fx["manifest"]), "--k", "0", "--limit", "1",
                   "--max-new-tokens", "2", "--out", str(out)])
    finally:
        os.environ.pop("SICL_MIMO_CODES", None)
    return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _one_error(rc: int, err: list[str], pattern: str) -> str:
    errors = [line for line in err if line.startswith("sicl ")]
    assert rc == 1 and len(errors) == 1 and "Traceback" not in "\n".join(err), err
    assert re.search(pattern, errors[0]), errors[0]
    return errors[0]


# ------------------------------------------------------------------------------------------- MiMo model folders
@pytest.mark.parametrize("change", [{"intermediate_size": 96}, {"speech_vocab_size": "2049-2049-129-129-129-129-129-129"}])
def test_mimo_shape_mismatch_is_one_line(fx, tmp_path, change, capsys):
    # was: torch's multi-line RuntimeError from load_state_dict(strict=True, assign=True)
    folder = _copy(fx["model"], tmp_path / "m")
    _edit_config(folder, **change)
    with pytest.raises(SiclError, match=r"weights do not fit config\.json \(\d+ tensor\(s\) of another shape, first "):
        load_backbone(folder)
    rc, err = _eval(fx, folder, tmp_path / "out", fx["codes"], capsys)
    _one_error(rc, err, r"checkpoint \[\d+, \d+\], config\.json \[\d+, \d+\]")
    assert not (tmp_path / "out" / "predictions.jsonl").exists()


def test_mimo_stale_single_file_next_to_an_index_is_refused(fx, tmp_path):
    # was: every *.safetensors was read and the stale model.safetensors (sorted last) silently won
    folder = _copy(fx["model"], tmp_path / "m")
    sd = shard_weights(folder)
    save_file({k: torch.zeros_like(v) for k, v in sd.items()}, str(folder / "model.safetensors"))
    with pytest.raises(SiclError, match=r"both model\.safetensors and model\.safetensors\.index\.json"):
        load_backbone(folder)


def test_mimo_reads_the_shards_its_index_names_only(fx, tmp_path):
    # was: a stray shard of an older download (not in the index) was read too, and its stale tensors won
    folder = _copy(fx["model"], tmp_path / "m")
    sd = shard_weights(folder)
    save_file({k: torch.zeros_like(v) for k, v in sd.items()}, str(folder / "model-00001-of-00003.safetensors"))
    got = load_backbone(folder).model.state_dict()
    assert all(torch.equal(got[k], sd[k]) for k in got)


def test_mimo_tensor_in_two_files_without_an_index_is_refused(fx, tmp_path):
    # was: the later file silently replaced the earlier one's tensor
    folder = _copy(fx["model"], tmp_path / "m")
    sd = load_file(str(folder / "model.safetensors"))
    save_file({"model.norm.weight": torch.zeros_like(sd["model.norm.weight"])}, str(folder / "z-extra.safetensors"))
    with pytest.raises(SiclError, match=r"z-extra\.safetensors: tensor model\.norm\.weight is also in model\.safetensors"):
        load_backbone(folder)


@pytest.mark.parametrize("change", [{"group_size": "four"}, {"hidden_size": "64x"}, {"local_attn_heads": 0},
                                    {"speech_zeroemb_idx": "1024-1024"}, {"speech_zeroemb_idx": 5000}])
def test_mimo_malformed_config_names_config_json(fx, tmp_path, change, capsys):
    # was: ValueError / ZeroDivisionError / huggingface_hub's validation error tracebacks, or no file named
    folder = _copy(fx["model"], tmp_path / "m")
    _edit_config(folder, **change)
    rc, err = _eval(fx, folder, tmp_path / "out", fx["codes"], capsys)
    _one_error(rc, err, r"/m/config\.json: not a usable MiMo-Audio config \(")


def test_mimo_audio_tokenizer_folder_without_config_is_named(fx, tmp_path, capsys):
    # was: the folder was silently ignored and the error said no audio tokenizer was configured
    folder = _copy(fx["model"], tmp_path / "m")
    _copy(fx["tok"], folder / "audio_tokenizer")
    (folder / "audio_tokenizer" / "config.json").unlink()
    rc, err = _eval(fx, folder, tmp_path / "out", tmp_path / "empty_cache", capsys)
    _one_error(rc, err, r"audio_tokenizer/config\.json: cannot read")


# ----------------------------------------------------------------------------------------------- MiMo code caches
def _damage(path: Path, how: str, marker: Path) -> None:
    arr = np.load(path)
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "pickled":
        path.write_bytes(pickle.dumps(_Marker(marker)))
    elif how == "float":
        np.save(path, arr.astype(np.float32) + 0.7)
    elif how == "out_of_range":
        np.save(path, arr + 2000)
    elif how == "negative":
        np.save(path, arr - 5000)
    elif how in ("st_no_codes", "st_corrupt"):
        path.unlink()
        st = path.with_suffix(".safetensors")
        if how == "st_no_codes":
            save_file({"x": torch.as_tensor(arr)}, str(st))
        else:
            st.write_bytes(b"garbage" * 5)


class _Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("how, why", [
    ("truncated", "cannot read MiMo-Audio codes"), ("empty", "cannot read MiMo-Audio codes"),
    ("pickled", "cannot read MiMo-Audio codes"), ("float", "must be integers, not float32"),
    ("out_of_range", r"code \d+ in codebook 0 is outside this model's 0\.\.1023"),
    ("negative", r"code -\d+ in codebook 0 is outside"),
    ("st_no_codes", "no tensor named 'codes'"), ("st_corrupt", "cannot read MiMo-Audio codes")])
def test_mimo_broken_code_cache_is_one_line_naming_the_file(fx, tmp_path, how, why, capsys):
    # was: raw ValueError/EOFError/KeyError/SafetensorError/IndexError tracebacks, or float codes silently truncated
    cache = _copy(fx["codes"], tmp_path / "cache")
    marker = tmp_path / "unpickled"
    for f in sorted(cache.iterdir()):
        _damage(f, how, marker)
    rc, err = _eval(fx, fx["model"], tmp_path / "out", cache, capsys)
    line = _one_error(rc, err, why)
    assert str(cache) in line and (".npy" in line or ".safetensors" in line)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------------ sicl codes
def test_codes_remakes_an_unreadable_cache_file(fx, tmp_path, capsys):
    # was: a truncated file counted as "already present", so every later eval failed on it and reruns never fixed it
    cache = _copy(fx["codes"], tmp_path / "cache")
    for f in cache.iterdir():
        f.write_bytes(f.read_bytes()[:60])
    capsys.readouterr()
    assert main(["codes", "--data", str(fx["manifest"]), "--out", str(cache), "--tokenizer", str(fx["tok"])]) == 0
    out, err = capsys.readouterr()
    assert "3 written, 0 already present" in out and err.count("making it again") == 3, (out, err)
    rc, err = _eval(fx, fx["model"], tmp_path / "out", cache, capsys)
    assert rc == 0, err


def test_codes_from_dir_refuses_codes_of_another_length(fx, tmp_path, capsys):
    # was: codes of 2 frames for a 13-frame clip were imported silently
    src = tmp_path / "src"
    src.mkdir()
    for ex in read_manifest(fx["manifest"]):
        np.save(src / f"{ex.id}.npy", np.zeros((2, 8), dtype=np.int64))
    cache = tmp_path / "cache"
    rc = main(["codes", "--data", str(fx["manifest"]), "--out", str(cache), "--from-dir", str(src), "--strict"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "utt0.npy: 2 code frames, but this 0.50 s clip gives 13" in err[0], err
    assert not cache.exists() or not list(cache.iterdir())


@pytest.mark.parametrize("cfg", [{"audio_channels": "x"}, {"speech_zeroemb_idx": "1-2"}])
def test_codes_malformed_model_config_is_one_line(fx, tmp_path, cfg, capsys):
    # was: ValueError traceback (audio_channels "x"), or an error that named no file
    model = tmp_path / "m"
    model.mkdir()
    raw = {"group_size": 4, "audio_channels": 8, "speech_vocab_size": "1025", "speech_zeroemb_idx": "1024", **cfg}
    (model / "config.json").write_text(json.dumps(raw))
    rc = main(["codes", "--data", str(fx["manifest"]), "--out", str(tmp_path / "c"), "--from-dir", str(tmp_path),
               "--model", str(model)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "m/config.json: malformed" in err[0], err


def test_codes_tokenizer_with_zero_heads_is_one_line(fx, tmp_path, capsys):
    # was: ZeroDivisionError traceback
    tok = _copy(fx["tok"], tmp_path / "tok")
    _edit_config(tok, encoder_attention_heads=0)
    rc = main(["codes", "--data", str(fx["manifest"]), "--out", str(tmp_path / "c"), "--tokenizer", str(tok)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "tok/config.json: unsupported MiMo-Audio tokenizer config" in err[0], err


# -------------------------------------------------------------------------------- Qwen2-Audio in released layout
@pytest.fixture(scope="module")
def released_qwen2_audio(tmp_path_factory) -> Path:
    """A tiny Qwen2-Audio in Qwen/Qwen2-Audio-7B-Instruct's layout: legacy tensor names in index-named shards,
    the feature extractor in preprocessor_config.json and the chat template inside tokenizer_config.json."""
    from sicl.models.qwen2_audio import build_random_tiny_qwen2_audio

    folder = tmp_path_factory.mktemp("q2a") / "Qwen2-Audio-7B-Instruct"
    build_random_tiny_qwen2_audio(folder, texts=["alpha beta gamma delta echo"] * 4)
    sd = shard_weights(folder)
    assert any(k.startswith("language_model.model.") for k in sd)  # the released checkpoints' names
    proc = json.loads((folder / "processor_config.json").read_text())
    (folder / "processor_config.json").unlink()
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {**proc["feature_extractor"], "processor_class": "Qwen2AudioProcessor"}))
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").unlink()
    tc = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tc, "chat_template": template}))
    _edit_config(folder, torch_dtype="bfloat16")
    return folder


def test_qwen2_audio_released_layout_loads_every_tensor(released_qwen2_audio):
    bb = load_backbone(released_qwen2_audio)
    assert bb.family == "qwen2_audio" and bb.chat_template
    saved = {k: v for f in sorted(released_qwen2_audio.glob("model-*.safetensors")) for k, v in load_file(str(f)).items()}
    got = bb.model.state_dict()
    for legacy, name in (("language_model.lm_head.weight", "lm_head.weight"),
                         ("language_model.model.norm.weight", "model.language_model.norm.weight"),
                         ("audio_tower.conv1.weight", "model.audio_tower.conv1.weight"),
                         ("multi_modal_projector.linear.weight", "model.multi_modal_projector.linear.weight")):
        assert torch.equal(got[name], saved[legacy]), name


@pytest.mark.parametrize("change, why", [({"feature_size": 80}, "makes 80 mel bins, but the audio tower"),
                                         ({"sampling_rate": 24000}, "sampling_rate is 24000")])
def test_qwen2_audio_feature_extractor_that_does_not_fit_the_tower(fx, released_qwen2_audio, tmp_path, change, why,
                                                                    capsys):
    # was: a conv1d channel RuntimeError traceback at the first forward pass (feature_size); a ValueError (rate)
    folder = _copy(released_qwen2_audio, tmp_path / "q")
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**pre, **change}))
    with pytest.raises(SiclError, match=r"preprocessor_config\.json: the feature extractor"):
        load_backbone(folder)
    rc, err = _eval(fx, folder, tmp_path / "out", None, capsys)
    _one_error(rc, err, why)
    assert not (tmp_path / "out" / "predictions.jsonl").exists()
