import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sicl.config import load_config
from sicl.train.sicl_at import build_trainer, train
from sicl.train.sicl_at_config import TrainConfig
from tests.train_fixtures import assert_fast_path_exact, overrides

DEMO = "configs/demo/sicl-at1.yaml"


def cfg_for(data, out, **extra) -> TrainConfig:
    return load_config(TrainConfig, DEMO, overrides(data, out, **extra))


def test_loss_decreases_on_a_fixed_episode_set(data, tmp_path):
    # 4 episodes (2 batches) repeated: the loss must fall well below its start.
    cfg = cfg_for(data, tmp_path / "run", max_steps=12, learning_rate=1e-2, lr_scheduler_type="constant",
                  save_steps=1000, **{"lora.dropout": 0.0, "lora.alpha": 128})
    trainer = build_trainer(cfg)
    trainer.train_dataset.n = 4
    trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert len(losses) == 12
    # A random 2-layer model learns slowly; a clear, repeatable drop is what this guards.
    assert sum(losses[-4:]) / 4 < sum(losses[:2]) / 2 - 0.2, losses


def test_only_lora_parameters_change_and_outputs_are_written(data, tmp_path):
    cfg = cfg_for(data, tmp_path / "run", max_steps=2, learning_rate=1e-2, save_steps=1000)
    trainer = build_trainer(cfg)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert any("lora_B" in n for n in changed)  # B starts at zero: it must have moved
    out = train(cfg_for(data, tmp_path / "full", max_steps=2, learning_rate=1e-2, save_steps=1000))
    assert {"adapter_config.json", "adapter_model.safetensors", "config.yaml", "log_history.jsonl",
            "run.json"} <= {p.name for p in out.iterdir()}
    assert all("lora_" in k for k in load_file(out / "adapter_model.safetensors"))
    assert load_config(TrainConfig, out / "config.yaml").max_steps == 2
    assert json.loads((out / "run.json").read_text())["global_step"] == 2
    plain = out / "plain.txt"
    plain.write_text("x")  # the mode any file gets here: the adapter is shared like it (safetensors writes 0600)
    assert (out / "adapter_model.safetensors").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_episodes_use_retrieved_demos_and_never_the_query(data, tmp_path):
    trainer = build_trainer(cfg_for(data, tmp_path / "run", max_steps=3, k="[0, 2]"))
    eps = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    assert {ep.k for ep in eps} <= {0, 1, 2}
    assert all(ep.query.id not in {d.id for d in ep.demos} for ep in eps)
    assert all(d.id.startswith("p-") for ep in eps for d in ep.demos)


def test_direct_fine_tuning_k0_needs_no_pool(data, tmp_path):
    tasks = f"[{{name: target, queries: '{data['queries']}'}}]"
    cfg = load_config(TrainConfig, "configs/demo/direct-ft.yaml",
                      overrides(data, tmp_path / "ft", max_steps=1, k=0, tasks=tasks))
    out = train(cfg)
    assert (out / "adapter_model.safetensors").is_file()


def test_resume_equals_a_straight_run(data, tmp_path):
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2:
                control.should_training_stop = True

    straight = train(cfg_for(data, tmp_path / "a", max_steps=4, save_steps=2))
    cfg_b = cfg_for(data, tmp_path / "b", max_steps=4, save_steps=2)
    train(cfg_b, callbacks=[StopAt()])
    assert not (tmp_path / "b" / "adapter_model.safetensors").exists()
    assert (tmp_path / "b" / "checkpoint-2").is_dir()
    resumed = train(cfg_b, resume=True)
    a = load_file(straight / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize("padding_k", ["2", "[0, 2]"])
def test_fast_loss_equals_full_logits_loss_and_gradients(data, tmp_path, padding_k):
    # Answer-only logits + merged-weight LoRA must give the loss and LoRA gradients of the plain path.
    cfg = cfg_for(data, tmp_path / "run", max_steps=1, k=padding_k, per_device_train_batch_size=3,
                  **{"lora.dropout": 0.0})
    trainer = build_trainer(cfg)
    for p in trainer.model.parameters():  # B starts at zero: make the LoRA branch matter
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    assert trainer._last_layer is not None  # the pruned last decoder layer is part of the fast path
    assert (inputs["attention_mask"] == 0).any() or padding_k == "2"
    assert_fast_path_exact(trainer, inputs)


def test_merged_lora_is_skipped_where_it_would_not_be_exact(data, tmp_path):
    from sicl.models.lora import merged_lora_forward

    trainer = build_trainer(cfg_for(data, tmp_path / "run", max_steps=1, **{"lora.dropout": 0.05}))
    with merged_lora_forward(trainer.model) as m:
        assert m.patched == []  # dropout > 0: peft's own forward everywhere
    trainer = build_trainer(cfg_for(data, tmp_path / "run2", max_steps=1, **{"lora.dropout": 0.0}))
    with merged_lora_forward(trainer.model) as m:
        assert len(m.patched) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
    assert all("forward" not in vars(mod) for mod in m.model.modules())


def test_query_augment_adds_perturbed_copies_that_keep_their_source_demos(data, tmp_path):
    """`query_augment`: each training query gets speed-perturbed (and some noisy) copies, written once under
    OUTPUT_DIR/augmented; a copy has its source's transcript and demonstrations, never the source itself."""
    import numpy as np

    from sicl.data.audio import load_audio
    from sicl.data.manifest import read_manifest
    from sicl.train.sicl_at import load_tasks

    extra = {"query_augment.copies": 2, "query_augment.speed": "[0.8, 1.2]", "query_augment.noise_prob": 1.0,
             "retrieval.retriever": "ticl", "retrieval.pseudo_labeler": "gold"}
    # queries = pool: retrieving for a copy could return its own source; the copy must inherit instead
    shared = {"tasks": f"[{{name: asr, queries: '{data['pool']}', pool: '{data['pool']}'}}]"}
    cfg = cfg_for(data, tmp_path / "run", max_steps=2, **extra, **shared)
    (task,) = load_tasks(cfg, k_max=2)
    src = {q.id: q for q in read_manifest(data["pool"])}
    copies = [q for q in task.queries if "augmented_from" in q.meta]
    assert len(task.queries) == 3 * len(src) and len(copies) == 2 * len(src)
    for c in copies:
        s = src[c.meta["augmented_from"]]
        assert c.id.startswith(s.id + "~aug") and c.target == s.target and c.audio != s.audio
        assert task.ranked[c.id] == task.ranked[s.id] and s.id not in task.ranked[c.id]
        a, b = load_audio(s.audio, max_seconds=None), load_audio(c.audio, max_seconds=None)
        assert 0.8 <= c.meta["speed"] <= 1.2 and abs(len(b) - len(a) / c.meta["speed"]) <= 2
        assert abs(c.duration - s.duration / c.meta["speed"]) < 1e-3 and 10 <= c.meta["snr_db"] <= 30
    # deterministic: a second load (a resumed run) reuses the same files and gets the same copies
    mtimes = {c.audio: Path(c.audio).stat().st_mtime_ns for c in copies}
    assert all(Path(c.audio).parent == tmp_path / "run" / "augmented" / "asr" for c in copies)
    (again,) = load_tasks(cfg, k_max=2)
    assert [q.id for q in again.queries] == [q.id for q in task.queries]
    assert {c.audio: Path(c.audio).stat().st_mtime_ns for c in again.queries if "augmented_from" in c.meta} == mtimes
    # the training run itself uses them
    trainer = build_trainer(cfg)
    ids = {trainer.train_dataset[i].query.id for i in range(len(trainer.train_dataset))}
    assert any("~aug" in i for i in ids)
    assert np.isfinite(trainer.train().training_loss)


def test_speed_perturbation_and_noise_are_what_they_say():
    import numpy as np

    from sicl.data.augment import AugmentSettings, add_noise, augment_queries, speed_perturb
    from sicl.errors import SiclError

    t = np.arange(16000) / 16000
    wav = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    fast = speed_perturb(wav, 1.25)
    assert len(fast) == 12800  # a quarter faster: 0.8 s
    spec = np.abs(np.fft.rfft(fast))
    assert abs(np.argmax(spec) / 0.8 - 250) < 3  # and 200 Hz becomes 250 Hz
    noisy = add_noise(wav, 10.0, np.random.default_rng(0))
    snr = 10 * np.log10(np.mean(wav.astype(np.float64) ** 2) / np.mean((noisy - wav).astype(np.float64) ** 2))
    assert abs(snr - 10.0) < 0.3
    assert not add_noise(np.zeros(100, np.float32), 10.0, np.random.default_rng(0)).any()
    with pytest.raises(SiclError, match="query_augment.speed"):
        augment_queries([], AugmentSettings(copies=1, speed=[1.2, 0.9]), "unused")


def test_respell_shared_words_respells_only_shared_rare_words_the_same_way_everywhere():
    import numpy as np

    from sicl.data.manifest import Example
    from sicl.data.synth.tts import phonemes
    from sicl.train.episodes import respell_shared_words

    q = Example(id="q", audio="q.wav", task="asr", target="The crystal sank near the Periscope, said Fenwick.")
    demos = [Example(id="d1", audio="d1.wav", task="asr", target="a periscope and a crystal"),
             Example(id="d2", audio="d2.wav", task="asr", target="the crystal is near"),
             Example(id="d3", audio="d3.wav", task="asr", target="nothing here")]
    q2, d2, mapping = respell_shared_words(q, demos, np.random.default_rng(3), common=frozenset({"near"}))
    # shared with a demo and not common: crystal, periscope. Not shared: sank, said, fenwick. Common: near.
    assert set(mapping) == {"crystal", "periscope"}
    for old, new in mapping.items():
        assert new != old and phonemes(new) == phonemes(old)
    words_q = q2.target.replace(",", "").replace(".", "").split()
    assert words_q[0] == "The" and "sank" in words_q and "near" in words_q and "Fenwick" in words_q
    assert mapping["periscope"].capitalize() in words_q  # the capital survives
    # one spelling for the query and every demo that says it
    assert mapping["crystal"] in words_q
    assert d2[0].target.split()[-1] == d2[1].target.split()[1] == mapping["crystal"]
    assert d2[0].target.split()[1] == mapping["periscope"]
    assert d2[2] is demos[2] and q.target.startswith("The crystal")  # untouched; inputs not mutated
    assert [d.id for d in d2] == ["d1", "d2", "d3"] and q2.audio == "q.wav"


def test_respell_shared_changes_transcripts_not_episodes(data, tmp_path):
    plain = build_trainer(cfg_for(data, tmp_path / "a", max_steps=4)).train_dataset
    resp = build_trainer(cfg_for(data, tmp_path / "b", max_steps=4, respell_shared=1.0)).train_dataset
    n_respelt = 0
    for i in range(len(plain)):
        a, b = plain[i], resp[i]
        assert (a.id, [d.id for d in a.demos]) == (b.id, [d.id for d in b.demos])  # same queries and demos
        mapping = b.meta.get("respelt", {})
        n_respelt += bool(mapping)
        for x, y in zip(a.examples, b.examples, strict=True):
            expect = " ".join(mapping.get(w, w) for w in x.target.split())
            assert y.target == expect and y.audio == x.audio
    assert n_respelt > 0  # the fixture's two-word targets share words with the pool
    assert "respelt" not in plain[0].meta
    with pytest.raises(Exception, match="respell_shared"):
        cfg_for(data, tmp_path / "c", respell_shared=1.5)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _train_cli(data, out, *extra, capsys) -> tuple[int, str]:
    from sicl.cli.main import main

    code = main(["train", DEMO, *overrides(data, out, max_steps=1, save_steps=1), *extra])
    return code, capsys.readouterr().err


def test_a_folder_holding_a_run_is_refused_without_resume_and_left_untouched(data, tmp_path, capsys):
    """Training again into a run's output_dir without --resume would start over next to the old run's adapter,
    run.json and checkpoints (and a stop midway would leave them labelled by the new config.yaml)."""
    out = tmp_path / "run"
    code, err = _train_cli(data, out, capsys=capsys)
    assert code == 0, err
    before = _tree(out)
    code, err = _train_cli(data, out, "learning_rate=1e-2", capsys=capsys)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"sicl train: error: output_dir {out} already holds a training run (checkpoint-1, "
                          "config.yaml, adapter_model.safetensors, ...): pass --resume to continue that run, or "
                          "train into another (or an empty) output_dir")
    assert _tree(out) == before  # nothing written: no config.yaml, logs or augmented copies
    # a run stopped before its first checkpoint (only config.yaml): refused too; --resume starts it over
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "config.yaml").write_bytes((out / "config.yaml").read_bytes())
    code, err = _train_cli(data, stopped, capsys=capsys)
    assert code == 1 and "already holds a training run (config.yaml)" in err
    assert sorted(p.name for p in stopped.iterdir()) == ["config.yaml"]
    code, err = _train_cli(data, stopped, "--resume", capsys=capsys)
    assert code == 0 and f"no checkpoint in {stopped}; starting from step 0" in err
    assert (stopped / "adapter_model.safetensors").is_file()
    # a folder with only the cache of augmented copies holds no run
    cache = tmp_path / "cache"
    (cache / "augmented" / "asr").mkdir(parents=True)
    assert train(cfg_for(data, cache, max_steps=1)) == cache


def test_resume_refuses_a_run_whose_config_yaml_cannot_be_checked(data, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _train_cli(data, out, capsys=capsys)
    assert code == 0, err
    good = (out / "config.yaml").read_bytes()
    for content, problem in [(b"{bad", f"{out / 'config.yaml'}:1: invalid YAML"),
                             (b"lr: \xff\n", f"{out / 'config.yaml'}: not valid UTF-8 (bad byte 0xff at line 1"),
                             (b"- 1\n", "a config must be a mapping"), (b"", "tasks is empty"), (None, "is missing")]:
        if content is None:
            (out / "config.yaml").unlink()
        else:
            (out / "config.yaml").write_bytes(content)
        before = _tree(out)
        code, err = _train_cli(data, out, "learning_rate=0.05", "--resume", capsys=capsys)
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("sicl train: error: --resume: ") and problem in err and "config.yaml" in err
        assert "cannot be checked" in err and "another output_dir to start over" in err
        assert _tree(out) == before  # config.yaml is not rewritten
    (out / "config.yaml").write_bytes(good)
    code, err = _train_cli(data, out, "--resume", capsys=capsys)  # intact and the same settings: continues
    assert code == 0, err
    # a finished run whose checkpoints were deleted: --resume cannot continue it, and must not start over in it
    for ckpt in out.glob("checkpoint-*"):
        shutil.rmtree(ckpt)
    before = _tree(out)
    code, err = _train_cli(data, out, "--resume", capsys=capsys)
    assert code == 1 and "holds a run's results (adapter_model.safetensors" in err and "no checkpoint-N" in err
    assert _tree(out) == before
