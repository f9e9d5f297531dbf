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
