"""The folders the vllm backend hands vLLM (sicl.eval.vllm_layout), checked without vLLM: the released Qwen2.5-Omni
layout of a thinker-only model loads back to the same logits, adapters are renamed without changing a weight,
and `--backend vllm` outside the vLLM environment is one line that says how to get it."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from sicl.cli.main import main
from sicl.data.manifest import read_manifest
from sicl.episodes.episode import Episode
from sicl.errors import SiclError
from sicl.eval.vllm_layout import vllm_adapter_dir, vllm_model_dir


def test_thinker_folder_is_rewritten_in_the_released_layout_and_loads_to_the_same_logits(data, tmp_path):
    from transformers import Qwen2_5OmniConfig

    from sicl.models.registry import load_backbone

    src = data["model"]
    out = vllm_model_dir(src, cache_dir=tmp_path)
    assert out.parent == tmp_path / "vllm" and (out / ".complete").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "qwen2_5_omni" and cfg["architectures"] == ["Qwen2_5OmniForConditionalGeneration"]
    thinker = json.loads((src / "config.json").read_text())
    assert cfg["thinker_config"]["text_config"] == thinker["text_config"]
    assert cfg["thinker_config"]["audio_token_index"] == thinker["audio_token_index"]
    assert Qwen2_5OmniConfig.from_pretrained(str(out)).thinker_config.text_config.hidden_size == \
        thinker["text_config"]["hidden_size"]
    pre = json.loads((out / "preprocessor_config.json").read_text())
    assert pre["processor_class"] == "Qwen2_5OmniProcessor" and pre["feature_size"] == 128
    before = load_file(str(src / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    assert set(after) == {"thinker." + k for k in before}
    assert all(torch.equal(after["thinker." + k], v) for k, v in before.items())
    # sicl's own loader reads the released layout through its full-Omni path: same model, same logits
    ep = Episode(query=read_manifest(data["queries"])[0])
    a, b = load_backbone(str(src)), load_backbone(str(out))
    ba, bb = a.render([ep]), b.render([ep])
    assert torch.equal(ba.input_ids, bb.input_ids)
    assert torch.allclose(a.forward(ba), b.forward(bb), atol=1e-6, rtol=0)
    # cached by the weights' content: a second call reuses the folder
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert vllm_model_dir(src, cache_dir=tmp_path) == out and (out / "model.safetensors").stat().st_mtime_ns == stamp
    assert vllm_model_dir(out, cache_dir=tmp_path) == out  # already native: returned as is


def test_other_model_types_are_one_line_errors(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "qwen2_audio"}))
    with pytest.raises(SiclError, match="vllm backend runs Qwen2.5-Omni models"):
        vllm_model_dir(tmp_path / "m", cache_dir=tmp_path)


def random_adapter(model_dir, out, seed=0, scale=0.05):
    """A saved LoRA adapter on ``model_dir`` whose B matrices are random (PEFT starts them at zero), so it
    changes the model's output. The same ``seed`` gives the same adapter in any process: PEFT draws the A
    matrices from torch's global generator, which is seeded here (unseeded, the adapter depended on what the
    process had drawn before, and changed a given set of transcripts in one run and none in another)."""
    from sicl.models.lora import apply_lora, save_adapter
    from sicl.models.registry import load_backbone

    base = load_backbone(str(model_dir)).model
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = apply_lora(base)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return save_adapter(model, out)


def test_adapter_is_renamed_for_vllm_with_its_weights_unchanged(data, tmp_path):
    ad = random_adapter(data["model"], tmp_path / "ad")
    out, rank = vllm_adapter_dir(ad, cache_dir=tmp_path / "c")
    assert rank == 8
    before = load_file(str(ad / "adapter_model.safetensors"))
    after = load_file(str(out / "adapter_model.safetensors"))
    assert len(after) == len(before) > 0
    renamed = {k.replace("base_model.model.model.language_model.", "base_model.model.thinker.model."): v
               for k, v in before.items()}
    assert set(after) == set(renamed) and all(torch.equal(after[k], v) for k, v in renamed.items())
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["target_modules"] == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj"])
    assert cfg["r"] == 8 and cfg["lora_alpha"] == json.loads((ad / "adapter_config.json").read_text())["lora_alpha"]


def test_an_adapter_outside_the_decoder_layers_is_refused(data, tmp_path):
    ad = random_adapter(data["model"], tmp_path / "ad")
    weights = load_file(str(ad / "adapter_model.safetensors"))
    weights["base_model.model.audio_tower.layers.0.self_attn.q_proj.lora_A.weight"] = torch.zeros(8, 4)
    save_file(weights, str(ad / "adapter_model.safetensors"))
    with pytest.raises(SiclError, match="outside the language model's decoder layers"):
        vllm_adapter_dir(ad, cache_dir=tmp_path / "c")


def test_backend_vllm_without_vllm_is_one_line_naming_make_vllm_env(data, tmp_path, capsys):
    from sicl.eval.vllm_backend import vllm_missing_reason

    if vllm_missing_reason() is None:
        pytest.skip("vLLM imports in this Python: the missing-vLLM message cannot be shown here")
    rc = main(["eval", "--backend", "vllm", "--data", str(data["queries"]), "--model", str(data["model"]),
               "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "make vllm-env" in err[0] and err[0].startswith("sicl eval: error:")
    assert not (tmp_path / "run" / "predictions.jsonl").exists()



def test_engine_arguments_from_the_environment(monkeypatch):
    from sicl.eval.vllm_backend import ENV_ARGS, engine_args_from_env, load_vllm_backend

    monkeypatch.setenv(ENV_ARGS, '{"enforce_eager": true, "max_model_len": 2048}')
    assert engine_args_from_env() == {"enforce_eager": True, "max_model_len": 2048}
    monkeypatch.setenv(ENV_ARGS, "{enforce_eager: true}")
    with pytest.raises(SiclError, match=r"\$SICL_VLLM_ARGS is not valid JSON"):
        engine_args_from_env()
    monkeypatch.setenv(ENV_ARGS, "[1, 2]")
    with pytest.raises(SiclError, match="must be a JSON object"):
        engine_args_from_env()
    monkeypatch.delenv(ENV_ARGS)
    assert engine_args_from_env() == {}
    with pytest.raises(SiclError, match="--audio-tokenizer is for MiMo-Audio"):
        load_vllm_backend(model="tiny-omni", audio_tokenizer="/x")


def test_real_vocabulary_fixture_has_a_variant_in_shapes_vllm_loads():
    """vLLM 0.32's Qwen2 attention takes its head size as hidden // heads and checks M-RoPE's sections against it;
    the default fixture (hidden 64, 7 heads of 128) fails there, the for_vllm variant keeps head size 128 and rope."""
    from sicl.errors import SiclError
    from sicl.models.qwen_omni_real import fixture_thinker_config

    default = fixture_thinker_config()["text_config"]
    assert default["hidden_size"] // default["num_attention_heads"] != default["head_dim"]  # why it cannot load
    text = fixture_thinker_config(for_vllm=True)["text_config"]
    head = text["hidden_size"] // text["num_attention_heads"]
    assert head == text["head_dim"] == 128 and sum(text["rope_parameters"]["mrope_section"]) == head // 2
    assert text["vocab_size"] == default["vocab_size"] and text["rope_parameters"] == default["rope_parameters"]
    with pytest.raises(SiclError, match="text_hidden must be text_heads x head_dim"):
        fixture_thinker_config(for_vllm=True, text_hidden=64)
