"""An adversarial pass over `sicl train`: unusual but legitimate setups and malformed ones. Each test failed before
the fix it guards (but the loss-mask check on the shipped model, which pins a contract the trainer relies on)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from sicl.config import load_config
from sicl.data.manifest import Example, read_manifest, write_manifest
from sicl.errors import ConfigError, SiclError
from sicl.testing import write_tone
from sicl.train.sicl_at import build_trainer, load_tasks, train
from sicl.train.sicl_at_config import TrainConfig
from tests.train_fixtures import overrides

DEMO = "configs/demo/sicl-at1.yaml"


def cfg_for(data, out, **extra) -> TrainConfig:
    return load_config(TrainConfig, DEMO, overrides(data, out, **extra))


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(data, out, *extra, capsys, **keys) -> tuple[int, str]:
    from sicl.cli.main import main

    code = main(["train", DEMO, *overrides(data, out, **{"max_steps": 1, "save_steps": 1, **keys}), *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("override", "message"), [
    ("tasks=[{name: a, pool: P}]", "tasks[0].queries is missing"),
    ("tasks=[{queries: Q, pool: P}]", "tasks[0].name is missing"),
    ("tasks=[{name: a, queries: '', pool: P}]", "tasks[0].queries is missing"),
    ("tasks=[{name: asr, queries: Q, pool: P}, {name: asr, queries: Q, pool: P}]",
     "tasks[1].name 'asr' is also the name of tasks[0]"),
    ("tasks=[{name: ../up, queries: Q, pool: P}]", "tasks[0].name '../up' cannot name a folder"),
    ("output_dir=''", "output_dir is empty"),
    ("model=''", "model is empty"),
    ("preset=chatty", "preset must be one of plain, ticl, got 'chatty'"),
    ("dtype=float64x", "dtype must be one of float32, bfloat16, float16"),
    ("report_to=[tensorbord]", "report_to unknown logger(s) 'tensorbord'"),
    ("lora.targets=(", "lora.targets '(' is not a valid regex"),
    ("lora.targets=''", "lora.targets is empty"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(data, tmp_path, override, message):
    """Each used to pass the config and fail later: a constructor message blaming the file, a traceback after the
    model loaded, a manifest error on '.', or (preset) mid-step with config.yaml already written."""
    override = override.replace("Q", str(data["queries"])).replace("P", str(data["pool"]))
    base = [o for o in overrides(data, tmp_path / "run") if not o.startswith(override.split("=")[0] + "=")]
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, DEMO, [*base, override])
    assert str(e.value).startswith(f"override {override}: ") and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value) and not (tmp_path / "run").exists()


@pytest.mark.parametrize(("targets", "message"), [
    ("q_proj", "matches no module of the model: it is a regex over whole module names, e.g. "
               "'model.language_model.layers.0.self_attn.q_proj'"),
    (r".*q_proj", "matches 'model.audio_tower.layers.0.self_attn.q_proj', which stays frozen"),
    (r"model\.language_model\.layers\.0\.mlp", "MLP, which LoRA does not adapt; match the linear "
                                               "layers inside it (e.g. 'model.language_model.layers.0.mlp.gate_proj')"),
])
def test_lora_targets_that_select_nothing_a_tower_or_a_block_are_one_line_errors(data, tmp_path, targets, message):
    """peft's NoMatchingPeftModuleError, a RuntimeError and a ValueError quoting a module's repr, as tracebacks."""
    with pytest.raises(SiclError) as e:
        build_trainer(cfg_for(data, tmp_path / "run", max_steps=1, **{"lora.targets": f"'{targets}'"}))
    assert str(e.value).startswith(f"lora.targets {targets!r} ") and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value)
    trainer = build_trainer(cfg_for(data, tmp_path / "ok", max_steps=1, **{"lora.targets": "attention"}))
    adapted = {n.split(".lora_")[0] for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert adapted and all(".self_attn." in n and "language_model" in n for n in adapted)


def _clash_manifest(src: Path, like: Path, dest: Path) -> Path:
    """``src``'s clips under ``like``'s ids (other audio under the same ids)."""
    ids = [ex.id for ex in read_manifest(like)]
    rows = [dataclasses.replace(ex, id=ids[i]) for i, ex in enumerate(read_manifest(src)[:len(ids)])]
    return write_manifest(dest, rows)


def test_one_id_naming_two_clips_across_manifests_is_refused(data, tmp_path):
    """The tower cache and the length estimates know a clip by its id: a second clip under the same id used to be
    trained on with the first clip's audio, silently (two corpora numbered alike, in two tasks or queries + pool)."""
    other = _clash_manifest(data["pool"], data["queries"], tmp_path / "other.jsonl")
    two_tasks = (f"[{{name: a, queries: '{data['queries']}'}}, {{name: b, queries: '{other}'}}]")
    with pytest.raises(SiclError) as e:
        load_tasks(cfg_for(data, tmp_path / "run", k=0, tasks=two_tasks), k_max=0)
    first = read_manifest(data["queries"])[0]
    assert str(e.value).startswith(f"{other}:1: id 'q-0' names ") and f"{data['queries']}:1 names {first.audio}" \
        in str(e.value) and "ids must be unique across a run's manifests" in str(e.value)
    as_pool = f"[{{name: a, queries: '{data['queries']}', pool: '{other}'}}]"
    with pytest.raises(SiclError, match=f"^{other}:1: id 'q-0' names "):
        load_tasks(cfg_for(data, tmp_path / "run", k=1, tasks=as_pool), k_max=1)
    # one clip under one id in queries and pool (leave-one-out) is fine
    loo = f"[{{name: a, queries: '{data['pool']}', pool: '{data['pool']}'}}]"
    (task,) = load_tasks(cfg_for(data, tmp_path / "run", k=2, tasks=loo), k_max=2)
    assert all(q.id not in task.ranked[q.id] and len(task.ranked[q.id]) == 2 for q in task.queries)


def test_a_pool_too_small_for_k_names_the_task_and_its_manifests(data, tmp_path):
    small = write_manifest(tmp_path / "small.jsonl", read_manifest(data["pool"])[:3])
    tasks = f"[{{name: a, queries: '{data['queries']}', pool: '{data['pool']}'}}, " \
            f"{{name: kids, queries: '{data['queries']}', pool: '{small}'}}]"
    with pytest.raises(SiclError) as e:
        load_tasks(cfg_for(data, tmp_path / "run", k="[1, 4]", tasks=tasks), k_max=4)
    assert str(e.value).startswith(f"task 'kids' (tasks[1]: queries {data['queries']}, pool {small}, k=[1, 4]): "
                                   "k=4 is larger than the 3 eligible pool items"), str(e.value)


def test_a_failed_start_leaves_no_run_behind(data, tmp_path, capsys):
    """A NaN loss (or a prompt too long, audio that will not decode) at the first steps used to leave config.yaml,
    so the rerun with a fixed setting was refused as 'already holds a training run'."""
    out = tmp_path / "run"
    code, err = _cli(data, out, capsys=capsys, max_steps=3, save_steps=100, learning_rate=1e30,
                     lr_scheduler_type="constant", report_to="[tensorboard]")
    assert code == 1 and "loss is " in err and "no checkpoint was written yet" in err, err
    assert not out.exists()
    code, err = _cli(data, out, capsys=capsys)
    assert code == 0 and (out / "adapter_model.safetensors").is_file(), err
    # --resume of a run stopped before its first checkpoint restarts it; a failure keeps that run's config.yaml
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "config.yaml").write_bytes((out / "config.yaml").read_bytes())
    (stopped / "augmented").mkdir()
    before = _tree(stopped)
    code, err = _cli(data, stopped, "--resume", capsys=capsys, max_steps=3, save_steps=100, learning_rate=1e30,
                     lr_scheduler_type="constant")
    assert code == 1 and "loss is " in err and _tree(stopped) == before
    assert sorted(p.name for p in stopped.iterdir()) == ["augmented", "config.yaml"]


def test_resume_of_a_finished_run_leaves_it_untouched(data, tmp_path, capsys):
    """It used to load the model, train no step and rewrite log_history.jsonl (train_loss 0.0) and run.json
    (tower_clips_encoded 0); a checkpoint's adapter was 0600 while the final one and every other file are not."""
    out = tmp_path / "run"
    code, err = _cli(data, out, capsys=capsys)
    assert code == 0, err
    plain = out / "plain.txt"
    plain.write_text("x")
    mode = plain.stat().st_mode & 0o777
    assert (out / "checkpoint-1" / "adapter_model.safetensors").stat().st_mode & 0o777 == mode
    before = _tree(out)
    code, err = _cli(data, out, "--resume", "threads=1", capsys=capsys)  # a safe key may differ
    assert code == 0 and f"{out} holds a finished run (step 1 of 1); nothing to resume" in err, err
    assert _tree(out) == before
    code, err = _cli(data, out, "--resume", "lora.r=4", "learning_rate=0.01", capsys=capsys)
    assert code == 1 and "(learning_rate: 0.0005 -> 0.01, lora.r: 8 -> 4)" in err, err  # dotted keys, not dicts
    assert _tree(out) == before


def test_tensorboard_logs_of_two_runs_in_one_process_go_to_their_own_folders(data, tmp_path, monkeypatch):
    import os

    pytest.importorskip("tensorboard")
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    for name in ("a", "b"):
        train(cfg_for(data, tmp_path / name, max_steps=1, save_steps=100, report_to="[tensorboard]"))
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ  # the first run's folder used to stay there for the next
    assert len(list((tmp_path / "a" / "logs").glob("events*"))) == 1
    assert len(list((tmp_path / "b" / "logs").glob("events*"))) == 1


def test_settings_that_train_otherwise_than_they_say_are_warned_about(data, tmp_path, capsys):
    build_trainer(cfg_for(data, tmp_path / "run", max_steps=2, warmup_steps=5, max_prompt_tokens=10, k="[1, 2]"))
    err = capsys.readouterr().err
    assert "sicl train: warning: warmup_steps=5 >= max_steps=2: the learning rate never reaches" in err
    assert "sicl train: warning: max_prompt_tokens=10 leaves no room for a demonstration next to 6 of 6 queries " \
           "(e.g. task 'asr', 'q-0': " in err and "their episodes train with k=0 instead of k=[1, 2]" in err
    build_trainer(cfg_for(data, tmp_path / "run2", max_steps=2, warmup_steps=1))
    assert "warning" not in capsys.readouterr().err


def test_one_clip_in_two_kinds_of_task_gets_a_length_estimate_per_kind(data):
    from sicl.models.registry import load_backbone
    from sicl.train.episodes import TaskData
    from sicl.train.sicl_at import example_lengths, length_key

    asr = read_manifest(data["queries"])[0]
    sqa = dataclasses.replace(asr, task="sqa", question=" ".join(["which word was said first"] * 8),
                              choices=[asr.target, "none"])
    lengths = example_lengths(load_backbone(data["model"]), [TaskData("asr", 1, [asr]), TaskData("sqa", 1, [sqa])])
    assert lengths[length_key(sqa)] > lengths[length_key(asr)] + 40


def test_only_the_query_answer_and_its_end_token_carry_labels_on_the_shipped_model(tmp_path):
    """asr, st and sqa episodes at k=0 and k=3, through the trainer's collator (tower cache on) on tiny-omni."""
    from sicl.episodes import prompts
    from sicl.episodes.episode import Episode
    from sicl.models.registry import load_backbone
    from sicl.models.tower_cache import TowerCache
    from sicl.train.sicl_at import EpisodeCollator

    def ex(i: int, task: str, **kw) -> Example:
        audio = write_tone(tmp_path / f"{task}{i}.wav", seconds=0.4 + 0.1 * i, freq=180.0 + 40 * i, seed=i)
        return Example(id=f"{task}{i}", audio=str(audio), task=task, duration=0.4 + 0.1 * i, **kw)

    sets = {"asr": [ex(i, "asr", target=f"the {w} sat on the mat") for i, w in enumerate(["cat", "dog", "hen", "ox"])],
            "st": [ex(i, "st", target=f"rai lukpu {w}", target_lang="zx", transcript=f"the {w}")
                   for i, w in enumerate(["sun", "moon", "star", "sky"])],
            "sqa": [ex(i, "sqa", target=c[i % 3], question="which animal was it", choices=c)
                    for i, c in enumerate([["fox", "owl", "bee"]] * 4)]}
    bb = load_backbone("tiny-omni")
    eps = [Episode(s[3], s[:k]) for s in sets.values() for k in (0, 3)]
    batch = EpisodeCollator(bb, TowerCache(bb))(eps)
    im_end = bb.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for row, ep in enumerate(eps):
        lab = batch["labels"][row]
        pos = (lab != -100).nonzero().flatten()
        want = prompts.answer_text(ep.query.target, ep.query.task, bb.preset) + "<|im_end|>"
        assert bb.tokenizer.decode(lab[pos].tolist()) == want, (ep.query.task, ep.k)
        assert pos.max() - pos.min() + 1 == len(pos)  # one span ...
        ids = batch["input_ids"][row]
        assert torch.equal(ids[pos], lab[pos]) and batch["attention_mask"][row, pos].all()
        # ... the last turn's: nothing but the trailing newline after it, the assistant header before it
        assert int(batch["attention_mask"][row].sum()) - 1 - int(pos.max()) <= 1 and int(lab[pos.max()]) == im_end
        header = bb.tokenizer.decode(ids[:pos.min()].tolist())
        assert header.endswith("<|im_start|>assistant\n") and header.count("<|im_start|>assistant") == ep.k + 1
