"""Third robustness audit: train --resume with other settings, output folders that are files, retrieve and synth
counts below 1, a truncated vector-cache shard, and an adapter's bad config.yaml."""

import numpy as np
import pytest

from sicl.cli.main import main
from sicl.config import load_config
from sicl.errors import SiclError
from sicl.train.sicl_at import train
from sicl.train.sicl_at_config import TrainConfig
from tests.train_fixtures import overrides


def _cfg(data, out, **extra) -> TrainConfig:
    return load_config(TrainConfig, "configs/demo/sicl-at1.yaml", overrides(data, out, **extra))


def test_resume_with_other_settings_is_refused_and_safe_keys_are_not(data, tmp_path):
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2:
                control.should_training_stop = True

    out = tmp_path / "run"
    train(_cfg(data, out, max_steps=4, save_steps=2), callbacks=[StopAt()])
    assert (out / "checkpoint-2").is_dir() and (out / "config.yaml").is_file()  # written at the start
    for change in ({"learning_rate": 1e-3}, {"lora.r": 4}, {"max_steps": 6}):
        with pytest.raises(SiclError, match=f"--resume with other settings .*{next(iter(change)).split('.')[0]}"):
            train(_cfg(data, out, **{"max_steps": 4, "save_steps": 2, **change}), resume=True)
    resumed = train(_cfg(data, out, max_steps=4, save_steps=2, logging_steps=3), resume=True)  # safe: logging
    assert (resumed / "adapter_model.safetensors").is_file()


def test_an_output_folder_that_is_a_file_is_one_line(data, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("hi")
    with pytest.raises(SiclError, match="afile is a file"):
        train(_cfg(data, blocker / "sub", max_steps=1))
    assert main(["synth", "--out", str(blocker), "--size", "small"]) == 1
    assert "is a file" in capsys.readouterr().err
    assert main(["retrieve", "--data", str(data["queries"]), "--pool", str(data["pool"]), "--k", "1",
                 "--retriever", "random", "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["retrieve", "--batch-size", "0"], ["retrieve", "--batch-size", "-1"],
                                  ["retrieve", "--max-new-tokens", "0"], ["retrieve", "--rerank-factor", "0"],
                                  ["retrieve", "--rerank-depth", "-1"], ["synth", "--workers", "0"]])
def test_counts_below_one_are_usage_errors(argv, tmp_path, capsys):
    base = {"retrieve": ["--data", "q.jsonl", "--pool", "p.jsonl", "--k", "1", "--out", str(tmp_path / "r.jsonl")],
            "synth": ["--out", str(tmp_path / "w")]}[argv[0]]
    with pytest.raises(SystemExit) as e:
        main([argv[0], *base, *argv[1:]])
    assert e.value.code == 2 and "must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_a_truncated_vector_shard_is_recomputed(tmp_path):
    from sicl.retrieval.cache import VectorCache

    cache = VectorCache(tmp_path, "text-embedding", "ns")
    cache.update(["a", "b"], np.eye(2, dtype=np.float32))
    (shard,) = cache.folder.glob("vectors-*.npz")
    shard.write_bytes(shard.read_bytes()[:100])
    again = VectorCache(tmp_path, "text-embedding", "ns")
    assert again.missing(["a", "b"]) == ["a", "b"]


def test_export_names_a_bad_adapter_config_yaml(data, tmp_path, capsys):
    from sicl.models.lora import apply_lora, save_adapter
    from sicl.models.tiny_omni import load_tiny_omni

    model, _ = load_tiny_omni(data["model"])
    adapter = save_adapter(apply_lora(model), tmp_path / "adapter")
    (adapter / "config.yaml").write_text("model: [unclosed\n")
    capsys.readouterr()
    assert main(["export", "--adapter", str(adapter), "--out", str(tmp_path / "merged")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config.yaml" in err and "invalid YAML" in err


@pytest.mark.parametrize("command", ["retrieve", "eval"])
def test_a_negative_seed_is_a_usage_error_and_writes_nothing(data, command, tmp_path, capsys):
    out = tmp_path / ("r.jsonl" if command == "retrieve" else "out")
    with pytest.raises(SystemExit) as e:
        main([command, "--data", str(data["queries"]), "--pool", str(data["pool"]), "--k", "1", "--retriever",
              "random", "--seed", "-5", "--out", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --seed: must be >= 0, got -5" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_negative_seed_from_code_is_one_line_too(data, tmp_path):
    from sicl.data.manifest import read_manifest
    from sicl.eval.runner import EvalConfig, evaluate
    from sicl.retrieval.retrievers import RetrievalConfig, retrieve

    queries, pool = read_manifest(data["queries"]), read_manifest(data["pool"])
    with pytest.raises(SiclError, match="seed must be >= 0, got -1"):
        retrieve(queries, pool, config=RetrievalConfig(retriever="random", k=1, seed=-1))
    with pytest.raises(SiclError, match="--seed must be >= 0, got -1"):
        evaluate(EvalConfig(data=str(data["queries"]), out=str(tmp_path / "out"), pool=str(data["pool"]), ks=[1],
                            retriever="random", seed=-1, model=str(data["model"])))
    assert not (tmp_path / "out").exists()


def test_training_refuses_an_episode_longer_than_the_models_positions(data, tmp_path):
    import json
    import shutil

    model = tmp_path / "model"
    shutil.copytree(data["model"], model)
    config = json.loads((model / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 40
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(SiclError) as e:
        train(_cfg({**data, "model": model}, tmp_path / "run", max_steps=1))
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "task 'asr', query 'q-" in msg and "more than the model's 40 positions" in msg
    assert "set max_prompt_tokens (e.g. 35)" in msg
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()
