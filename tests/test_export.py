"""sicl export: a clean PEFT folder with a model card (no machine paths), and --merge that plain transformers loads
and whose greedy outputs equal base + adapter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sicl.episodes.episode import Episode
from sicl.models.registry import load_backbone
from tests.train_fixtures import make_train_data, overrides

ROOT = Path(__file__).resolve().parent.parent


def _sicl(*args):
    return subprocess.run([sys.executable, "-m", "sicl", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = make_train_data(root)
    adapter = root / "runs" / "models" / "a"
    res = _sicl("train", "configs/demo/sicl-at1.yaml", *overrides(data, adapter, max_steps=3, learning_rate=0.05))
    assert res.returncode == 0, res.stderr[-2000:]
    ev = root / "runs" / "eval" / "a" / "q"
    res = _sicl("eval", "--model", data["model"], "--adapter", adapter, "--data", data["queries"], "--k", "0",
                "--max-new-tokens", "4", "--out", ev)
    assert res.returncode == 0, res.stderr[-2000:]
    return data, adapter, root


def test_export_writes_a_card_and_no_machine_paths(trained, tmp_path):
    data, adapter, root = trained
    out = tmp_path / "share"
    res = _sicl("export", "--adapter", adapter, "--out", out)
    assert res.returncode == 0, res.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "README.md",
                                               "training_config.yaml", "sicl_export.json"}
    for f in out.iterdir():
        if f.suffix != ".safetensors":
            assert str(root) not in f.read_text(), f"{f.name} holds a machine path"
    acfg = json.loads((out / "adapter_config.json").read_text())
    assert acfg["base_model_name_or_path"] == "model"  # a local base folder is named, not located
    info = json.loads((out / "sicl_export.json").read_text())
    assert len(info["base_weights_sha256"]) == 64 and [e["eval_set"] for e in info["evaluations"]] == [root.name]
    card = (out / "README.md").read_text()
    assert info["base_weights_sha256"] in card and "## Evaluations found beside the adapter" in card
    assert "q.jsonl" in (out / "training_config.yaml").read_text()
    # the exported adapter loads on the base model
    bb = load_backbone(str(data["model"]), adapter=str(out))
    assert any("lora_" in n for n, _ in bb.model.named_parameters())


def test_merge_gives_a_plain_transformers_model_with_the_same_greedy_outputs(trained, tmp_path):
    data, adapter, _ = trained
    out = tmp_path / "merged"
    res = _sicl("export", "--adapter", adapter, "--out", out, "--merge")
    assert res.returncode == 0, res.stderr[-2000:]
    mode = _plain_mode(tmp_path)  # model.safetensors too (safetensors writes 0600)
    assert {f.name: f.stat().st_mode & 0o777 for f in out.iterdir()} == {f.name: mode for f in out.iterdir()}
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    plain = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(out)
    assert not any("lora" in n for n, _ in plain.named_parameters())
    from sicl.data.manifest import read_manifest

    eps = [Episode(q) for q in read_manifest(data["queries"])[:4]]
    with_adapter = load_backbone(str(data["model"]), adapter=str(adapter)).generate_ids(eps, max_new_tokens=8)
    merged = load_backbone(str(out)).generate_ids(eps, max_new_tokens=8)
    base = load_backbone(str(data["model"])).generate_ids(eps, max_new_tokens=8)
    assert merged == with_adapter and merged != base  # the adapter matters, and merging keeps it exactly
    torch.testing.assert_close(plain.lm_head.weight, load_backbone(str(out)).model.lm_head.weight)


def test_export_errors_are_one_line(trained, tmp_path):
    _, adapter, _ = trained
    res = _sicl("export", "--adapter", tmp_path / "nope", "--out", tmp_path / "o")
    assert res.returncode == 1 and res.stderr.strip().endswith("does not exist") and "Traceback" not in res.stderr
    res = _sicl("export", "--adapter", adapter, "--out", tmp_path / "o", "--push-to-hub", "me/x")
    assert res.returncode == 1 and "--allow-upload" in res.stderr and not (tmp_path / "o").exists()


def test_find_evaluations_skips_malformed_files_and_stops_at_its_depth(tmp_path):
    from sicl.models.export import find_evaluations

    adapter = tmp_path / "runs" / "adapter"
    adapter.mkdir(parents=True)

    def run(folder, run_json, adapter_path=adapter):
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"asr": {"wer": 0.25}}))
        (folder / "run.json").write_text(run_json)
        (folder / "settings.json").write_text(json.dumps({"adapter": str(adapter_path)}))

    run(tmp_path / "runs" / "eval" / "child", json.dumps({"eval_set": "child", "k": 3, "adapter": str(adapter)}))
    run(tmp_path / "runs" / "junk", "[1, 2]")  # not an object: read as {}, its settings.json still names the adapter
    run(tmp_path / "runs" / "other", "{}", adapter_path=tmp_path / "elsewhere")  # another adapter's run
    run(tmp_path / "runs" / "a" / "b" / "c" / "d" / "e", "{}")  # deeper than depth 4 below both roots
    (tmp_path / "runs" / "bad").mkdir()
    (tmp_path / "runs" / "bad" / "metrics.json").write_text("{torn")
    (tmp_path / "runs" / "bad" / "settings.json").write_text(json.dumps({"adapter": str(adapter)}))
    found = sorted((e["eval_set"], e["k"]) for e in find_evaluations(adapter))
    assert found == [("child", 3), ("junk", None)]  # the torn metrics.json is left out


def _plain_mode(folder: Path) -> int:
    """The mode a file made with open() gets in ``folder`` (0666 & ~umask)."""
    probe = folder / ".probe"
    probe.write_text("")
    mode = probe.stat().st_mode & 0o777
    probe.unlink()
    return mode


def _export(capsys, *args):
    from sicl.cli.main import main

    code = main(["export", *map(str, args)])
    return code, capsys.readouterr().err.strip().splitlines()


def test_export_into_the_current_empty_folder_keeps_it_and_refuses_a_full_one(trained, tmp_path, monkeypatch,
                                                                               capsys):
    _, adapter, _ = trained
    here = tmp_path / "here"
    here.mkdir()
    inode = here.stat().st_ino
    monkeypatch.chdir(here)
    code, err = _export(capsys, "--adapter", adapter, "--out", ".")
    assert code == 0, err
    assert here.stat().st_ino == inode and (here / "adapter_model.safetensors").is_file()  # the user's folder kept
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]
    before = sorted(p.name for p in here.iterdir())
    code, err = _export(capsys, "--adapter", adapter, "--out", ".")
    assert code == 1 and len(err) == 1 and "(the current folder): folder exists and is not empty" in err[0]
    assert sorted(p.name for p in here.iterdir()) == before
    (tmp_path / "file").write_text("x")
    code, err = _export(capsys, "--adapter", adapter, "--out", tmp_path / "file" / "sub")
    assert code == 1 and err == [f"sicl export: error: --out {tmp_path / 'file' / 'sub'}: {tmp_path / 'file'} is a "
                                 "file, not a folder"]


def test_export_leaves_a_folder_named_like_its_temporary_alone_and_cleans_up_a_failure(trained, tmp_path,
                                                                                        monkeypatch, capsys):
    import sicl.models.export as export

    _, adapter, _ = trained
    (tmp_path / "share.partial").mkdir()
    (tmp_path / "share.partial" / "notes.txt").write_text("precious")
    code, err = _export(capsys, "--adapter", adapter, "--out", tmp_path / "share")
    assert code == 0, err
    assert (tmp_path / "share.partial" / "notes.txt").read_text() == "precious"

    def boom(path):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(export, "plain_mode", boom)  # fails after every file is written
    with pytest.raises(RuntimeError, match="disk on fire"):
        export.export_adapter(adapter, tmp_path / "new" / "deeper" / "share")
    assert not (tmp_path / "new").exists()  # nor the temporary folder, nor the folders made for it
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="disk on fire"):
        export.export_adapter(adapter, empty)
    assert list(empty.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "empty", "share", "share.partial"]


def test_export_takes_allow_download_to_the_model_lookup(trained, tmp_path, monkeypatch, capsys):
    import sicl.models.zoo as zoo
    from sicl.errors import SiclError

    _, adapter, _ = trained
    monkeypatch.delenv("SICL_ALLOW_DOWNLOAD", raising=False)
    code, err = _export(capsys, "--adapter", adapter, "--out", tmp_path / "o", "--model", "Qwen/Qwen2.5-Omni-7B")
    assert code == 1 and len(err) == 1 and "pass --allow-download" in err[0]
    seen = []

    def resolve(name, allow_download=False):
        seen.append((name, allow_download))
        raise SiclError(f"{name}: download failed (offline test)")

    monkeypatch.setattr(zoo, "resolve_model", resolve)
    code, err = _export(capsys, "--adapter", adapter, "--out", tmp_path / "o", "--model", "Qwen/Qwen2.5-Omni-7B",
                        "--allow-download")
    assert code == 1 and seen == [("Qwen/Qwen2.5-Omni-7B", True)] and "download failed" in err[0]
    assert not (tmp_path / "o").exists() and list(tmp_path.iterdir()) == []


def test_exported_and_saved_weights_have_the_mode_of_any_other_file(trained, data, tmp_path):
    from sicl.models.export import export_adapter
    from sicl.models.lora import apply_lora, save_adapter
    from sicl.models.tiny_omni import load_tiny_omni

    _, adapter, _ = trained
    mode = _plain_mode(tmp_path)
    out = export_adapter(adapter, tmp_path / "share")
    assert {f.name: f.stat().st_mode & 0o777 for f in out.iterdir()} == {f.name: mode for f in out.iterdir()}
    (tmp_path / "made").mkdir()
    assert out.stat().st_mode & 0o777 == (tmp_path / "made").stat().st_mode & 0o777  # not mkdtemp's 0700
    model, _ = load_tiny_omni(data["model"])
    saved = save_adapter(apply_lora(model), tmp_path / "adapter")
    assert (saved / "adapter_model.safetensors").stat().st_mode & 0o777 == mode
