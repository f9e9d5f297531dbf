"""Model and adapter folders in real-world layouts and broken states, as `sicl eval`, `sicl export` and `sicl models`
load them: every broken folder is one SiclError line naming the file and what is wrong (never a traceback, never a
silently wrong model), pickles are never unpickled, and a failed `sicl models --install` keeps the old built-in."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from sicl.errors import SiclError
from sicl.models import zoo
from sicl.models.lora import LoraSettings, apply_lora, save_adapter
from sicl.models.registry import load_backbone
from tests.train_fixtures import TINY, WORDS


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """A tiny random tiny-omni, an adapter trained (saved) on it and one saved on a wider model."""
    from sicl.models.tiny_omni import build_random_tiny_omni

    root = tmp_path_factory.mktemp("folders")
    build_random_tiny_omni(root / "model", texts=[" ".join(WORDS)] * 4, **TINY)
    build_random_tiny_omni(root / "wide", texts=[" ".join(WORDS)] * 4, **{**TINY, "text_dim": 96})
    for model, adapter in (("model", "adapter"), ("wide", "adapter_wide")):
        save_adapter(apply_lora(load_backbone(root / model).model, LoraSettings(r=4)), root / adapter)
    return {"model": root / "model", "adapter": root / "adapter", "adapter_wide": root / "adapter_wide"}


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


class _Marker:
    """A pickle that creates a file when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


# ------------------------------------------------------------------------------------------------ model folders
def test_pickled_weights_only_are_refused_without_unpickling(base, tmp_path):
    folder = _copy(base["model"], tmp_path / "m")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Marker(marker)))
    with pytest.raises(SiclError, match=r"pytorch_model\.bin.*never unpickles"):
        load_backbone(folder)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "not_safetensors"])
def test_corrupt_weights_are_one_line_naming_the_file(base, tmp_path, damage):
    folder = _copy(base["model"], tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "not_safetensors": b"hello" * 9}[damage])
    with pytest.raises(SiclError, match=r"model\.safetensors: cannot read"):
        load_backbone(folder)


def shard_weights(folder: Path, drop_second: bool = False) -> dict:
    """Split the folder's model.safetensors into two shards with an index (the second one left out with
    ``drop_second``); the tensors it held."""
    sd = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    keys = sorted(sd)
    parts = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
             "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, ks in parts.items():
        if not (drop_second and name.startswith("model-00002")):
            save_file({k: sd[k].contiguous() for k in ks}, str(folder / name), metadata={"format": "pt"})
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: name for name, ks in parts.items() for k in ks}}))
    return sd


def test_sharded_weights_load_and_an_index_naming_a_missing_shard_is_one_line(base, tmp_path):
    good = _copy(base["model"], tmp_path / "good")
    shard_weights(good)
    assert load_backbone(good).model is not None
    bad = _copy(base["model"], tmp_path / "bad")
    shard_weights(bad, drop_second=True)
    with pytest.raises(SiclError, match=r"model\.safetensors\.index\.json: names shard model-00002-of-00002"):
        load_backbone(bad)
    # a stale single file left beside the shards: transformers would load it instead of them
    stale = _copy(good, tmp_path / "stale")
    shutil.copy(base["model"] / "model.safetensors", stale / "model.safetensors")
    with pytest.raises(SiclError, match=r"both model\.safetensors and model\.safetensors\.index\.json"):
        load_backbone(stale)


def test_weights_missing_a_tensor_are_refused_not_initialised_at_random(base, tmp_path):
    folder = _copy(base["model"], tmp_path / "m")
    sd = load_file(str(folder / "model.safetensors"))
    sd.pop(next(k for k in sorted(sd) if "layers.1.mlp.down_proj" in k))
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(SiclError, match=r"weights are incomplete \(1 tensor.*down_proj"):
        load_backbone(folder)


def test_weights_of_another_shape_are_one_line(base, tmp_path):
    import torch

    folder = _copy(base["model"], tmp_path / "m")
    sd = load_file(str(folder / "model.safetensors"))
    key = next(k for k in sorted(sd) if k.endswith("q_proj.weight"))
    sd[key] = torch.zeros(sd[key].shape[0] + 2, sd[key].shape[1], dtype=sd[key].dtype)
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(SiclError, match=r"weights do not fit config\.json"):
        load_backbone(folder)


def test_full_omni_config_without_thinker_config_is_refused_before_building_a_default_7b(base, tmp_path, monkeypatch):
    from sicl.models import qwen_omni

    def never(*args, **kwargs):  # a default thinker is 7B parameters: building it exhausts a test machine's memory
        raise AssertionError("built a model from a config.json without thinker_config")

    monkeypatch.setattr(qwen_omni.Qwen2_5OmniThinkerForConditionalGeneration, "from_pretrained", never)
    folder = _copy(base["model"], tmp_path / "m")
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_5_omni"}))
    with pytest.raises(SiclError, match=r"config\.json: model_type qwen2_5_omni without a thinker_config"):
        load_backbone(folder)


def test_missing_tokenizer_json_is_refused_not_an_empty_vocabulary(base, tmp_path):
    folder = _copy(base["model"], tmp_path / "m")
    (folder / "tokenizer.json").unlink()  # transformers would build a tokenizer that encodes every text to []
    with pytest.raises(SiclError, match=r"no tokenizer \(tokenizer\.json"):
        load_backbone(folder)


def test_missing_processor_config_is_one_line(base, tmp_path):
    folder = _copy(base["model"], tmp_path / "m")
    (folder / "processor_config.json").unlink()
    with pytest.raises(SiclError, match=r"cannot load the processor"):
        load_backbone(folder)


@pytest.mark.parametrize("text, match", [("[1, 2]", r"config\.json: expected a JSON object"),
                                         ('{"model_type": "custom", "auto_map": {"AutoModel": "m.M"}}',
                                          r"'custom' has no backbone \(its auto_map names remote code")])
def test_config_json_not_an_object_or_remote_code_only_is_one_line(base, tmp_path, text, match):
    folder = _copy(base["model"], tmp_path / "m")
    (folder / "config.json").write_text(text)
    with pytest.raises(SiclError, match=match):
        load_backbone(folder)


# ------------------------------------------------------------------------------------------------------ adapters
def _edit_config(folder: Path, **changes: object) -> None:
    cfg = json.loads((folder / "adapter_config.json").read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (folder / "adapter_config.json").write_text(json.dumps(cfg))


def _rename_tensors(folder: Path) -> None:
    sd = load_file(str(folder / "adapter_model.safetensors"))
    save_file({k.replace(".layers.", ".blocks."): v for k, v in sd.items()}, str(folder / "adapter_model.safetensors"))


ADAPTER_DAMAGE = {
    "targets_absent": (lambda f: _edit_config(f, target_modules=["foo_proj"]), r"does not fit the model \(Target"),
    "no_peft_type": (lambda f: _edit_config(f, peft_type=None), r"adapter_config\.json: no peft_type"),
    "other_r": (lambda f: _edit_config(f, r=8), r"does not fit the model: .*lora_A.* is \[4, 64\] in the adapter, "
                                               r"\[8, 64\] in the model"),
    "renamed_tensors": (_rename_tensors, r"28 LoRA tensor\(s\) the model expects are not in"),
    "tower_targets": (lambda f: _edit_config(f, target_modules=r".*audio_tower.*\.q_proj"), r"does not fit the model"),
}


@pytest.mark.parametrize("damage", sorted(ADAPTER_DAMAGE))
def test_an_adapter_that_does_not_fit_is_one_line_naming_it(base, tmp_path, damage):
    edit, match = ADAPTER_DAMAGE[damage]
    adapter = _copy(base["adapter"], tmp_path / "a")
    edit(adapter)
    with pytest.raises(SiclError, match=match) as err:
        load_backbone(base["model"], adapter=adapter)
    assert str(adapter) in str(err.value) and "\n" not in str(err.value)


def test_an_adapter_of_another_base_is_one_line_with_the_shapes(base):
    with pytest.raises(SiclError, match=r"adapter_wide: does not fit the model: .* is \[4, 96\] in the adapter, "
                                        r"\[4, 64\] in the model"):
        load_backbone(base["model"], adapter=base["adapter_wide"])


# ----------------------------------------------------------------------------------------- the commands themselves
@pytest.mark.parametrize("broken", ["model", "adapter"])
def test_export_merge_of_a_broken_folder_is_one_line_and_writes_nothing(base, tmp_path, capsys, broken):
    from sicl.cli.main import main

    model, adapter = base["model"], base["adapter"]
    if broken == "model":
        model = _copy(model, tmp_path / "m")
        (model / "model.safetensors").write_bytes(b"")
    else:
        adapter = _copy(adapter, tmp_path / "a")
        _edit_config(adapter, r=8)
    out = tmp_path / "out" / "merged"
    rc = main(["export", "--adapter", str(adapter), "--model", str(model), "--merge", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("sicl export: error: ") and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "out").exists()


def test_install_of_a_broken_folder_keeps_the_built_in(base, tmp_path):
    dest = _copy(base["model"], tmp_path / "zoo" / "tiny-omni")
    before = sorted(p.name for p in dest.iterdir())
    for damage in ("no_weights", "corrupt", "missing_tensor", "no_tokenizer", "bad_config"):
        src = _copy(base["model"], tmp_path / damage)
        if damage == "no_weights":
            (src / "model.safetensors").unlink()
        elif damage == "missing_tensor":
            sd = load_file(str(src / "model.safetensors"))
            sd.pop(sorted(sd)[-1])
            save_file(sd, str(src / "model.safetensors"), metadata={"format": "pt"})
        elif damage == "corrupt":
            (src / "model.safetensors").write_bytes(b"")
        elif damage == "no_tokenizer":
            (src / "tokenizer.json").unlink()
        else:
            (src / "config.json").write_text("{oops")
        with pytest.raises(SiclError):
            zoo.install_model(src, dest)
        assert sorted(p.name for p in dest.iterdir()) == before, damage
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tiny-omni"]  # no temporary folder left
    zoo.install_model(base["model"], dest)  # a good folder still installs
    assert (dest / "README.md").is_file() and (dest / "model.safetensors").is_file()


def test_models_lists_a_built_in_with_corrupt_weights_instead_of_crashing(base, tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    folder = _copy(base["model"], tmp_path / "tiny-omni")
    (folder / "model.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"not json")
    info = zoo.describe("tiny-omni")
    assert info.parameters is None and info.has_weights


def test_a_merged_export_does_not_carry_the_base_folders_python_files(base, tmp_path, capsys):
    from sicl.cli.main import main

    model = _copy(base["model"], tmp_path / "m")
    marker = tmp_path / "ran"
    (model / "modeling_custom.py").write_text(f"open({str(marker)!r}, 'w')\n")
    cfg = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModel": "modeling_custom.M"}}))
    out = tmp_path / "merged"
    assert main(["export", "--adapter", str(base["adapter"]), "--model", str(model), "--merge", "--out", str(out)]) == 0
    assert not list(out.glob("*.py")) and not marker.exists()


def test_loading_a_model_prints_no_weights_bar_into_a_log(capsys):
    """transformers' "Loading weights" bar is for terminals: with stderr captured (a log), loading the shipped model
    prints none of it, and the setting is put back afterwards."""
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    load_backbone("tiny-omni")
    assert "Loading weights" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
