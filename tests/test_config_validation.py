"""Bad training / study config values are one-line errors naming the file or the command-line override (and
the key), raised while the config loads: before any manifest, model or output (no model is loaded here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sicl.cli.main import main
from sicl.config import load_config
from sicl.errors import ConfigError, SiclError
from sicl.study import load_study
from sicl.train.sicl_at_config import TrainConfig
from tests.train_fixtures import write_split

DEMO = Path(__file__).resolve().parent.parent / "sicl" / "configs" / "demo" / "sicl-at1.yaml"


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    """A valid training config (the shipped demo one) in a file of its own, output under tmp_path."""
    path = tmp_path / "cfg.yaml"
    path.write_text(DEMO.read_text(encoding="utf-8"), encoding="utf-8")
    _set_lines(path, f"output_dir: {tmp_path / 'out'}")
    return path


def _set_lines(path: Path, yaml_text: str) -> None:
    """Replace the top-level keys of ``yaml_text`` in the config ``path`` (a key may appear once in a file)."""
    keys = {line.split(":")[0] for line in yaml_text.splitlines()}
    kept = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.split(":")[0] not in keys]
    path.write_text("\n".join([*kept, yaml_text]) + "\n", encoding="utf-8")


@pytest.mark.parametrize(("override", "problem"), [
    ("learning_rate=-1", "must be a number > 0, got -1.0"),
    ("learning_rate=0", "must be a number > 0"),
    ("max_steps=0", "must be >= 1, got 0"),
    ("per_device_train_batch_size=0", "must be >= 1, got 0"),
    ("gradient_accumulation_steps=0", "must be >= 1"),
    ("warmup_steps=-5", "must be >= 0, got -5"),
    ("save_steps=0", "must be >= 1"),
    ("logging_steps=0", "must be >= 1"),
    ("lr_scheduler_type=bogus", "'bogus' is not a transformers scheduler; use one of linear, cosine"),
    ("lr_scheduler_type=cosine_with_min_lr", "'cosine_with_min_lr' needs lr_scheduler_kwargs"),
    ("threads=-2", "must be >= 0 (0: torch's default), got -2"),
    ("lora.r=0", "must be >= 1, got 0"),
    ("lora.alpha=0", "must be > 0, got 0"),
    ("lora.dropout=1", "must be >= 0 and < 1, got 1.0"),
    ("lora.dropout=-0.1", "must be >= 0 and < 1"),
    ("k=[]", "must be one value or a range [min, max]"),
    ("k=[3,1]", "must be one value or a range [min, max]"),
    ("k=-1", "must be one value or a range [min, max]"),
])
def test_out_of_range_overrides_name_the_override(cfg_file, override, problem):
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, cfg_file, [override])
    key = override.split("=")[0]
    assert str(e.value).startswith(f"override {override}: {key} {problem}")


@pytest.mark.parametrize(("yaml_text", "key", "problem"), [
    ("learning_rate: -1", "learning_rate", "must be a number > 0"),
    ("max_steps: 0", "max_steps", "must be >= 1"),
    ("lr_scheduler_type: bogus", "lr_scheduler_type", "'bogus' is not a transformers scheduler"),
    ("lora: {r: 0, alpha: 32, dropout: 0.0, targets: all-linear}", "lora.r", "must be >= 1"),
    ("threads: -1", "threads", "must be >= 0"),
])
def test_out_of_range_values_in_the_file_name_the_file_and_key(cfg_file, yaml_text, key, problem):
    _set_lines(cfg_file, yaml_text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(cfg_file))}: {re.escape(key)} {re.escape(problem)}"):
        load_config(TrainConfig, cfg_file)


def test_a_nested_override_names_the_sub_key(cfg_file):
    with pytest.raises(ConfigError, match=r"^override lora=\{r: 0\}: lora.r must be >= 1, got 0$"):
        load_config(TrainConfig, cfg_file, ["lora={r: 0}"])


def test_sicl_train_refuses_bad_values_in_one_line_before_any_output(cfg_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", str(cfg_file), "learning_rate=-1"]) == 1
    err = capsys.readouterr().err
    assert err == "sicl train: error: override learning_rate=-1: learning_rate must be a number > 0, got -1.0\n"
    assert not out.exists()


def test_negative_threads_are_refused(cfg_file, tmp_path, capsys):
    assert main(["train", str(cfg_file), "threads=-2"]) == 1
    assert "override threads=-2: threads must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", str(cfg_file), "--threads", "-2"])
    assert e.value.code == 2 and "--threads: must be >= 0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"^override threads=-1: threads must be >= 0 \(0: torch's default\), got -1$"):
        load_study(None, ["threads=-1"])
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--threads", "-1"]) == 1
    err = capsys.readouterr().err
    assert err == "sicl demo: error: override threads=-1: threads must be >= 0 (0: torch's default), got -1\n"
    assert not out.exists()


def test_threads_zero_means_torch_default(cfg_file):
    assert load_config(TrainConfig, cfg_file, ["threads=0"]).threads == 0
    assert load_study(None, ["threads=0"]).threads == 0


@pytest.mark.parametrize("yaml_text", ["max_steps: true", "warmup_steps: false", "k: [true, 3]",
                                       "learning_rate: true"])
def test_a_bool_is_never_a_number(cfg_file, yaml_text):
    key = yaml_text.split(":")[0]
    _set_lines(cfg_file, yaml_text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(cfg_file))}: {key} must be (int|float), got (True|False)"):
        load_config(TrainConfig, cfg_file)
    with pytest.raises(ConfigError, match=r"^override max_steps=true: max_steps must be int, got True$"):
        load_config(TrainConfig, DEMO, ["max_steps=true"])


def test_type_errors_name_the_override_not_the_file(cfg_file, capsys):
    with pytest.raises(ConfigError, match=r"^override max_steps=ten: max_steps must be int, got 'ten'$"):
        load_config(TrainConfig, cfg_file, ["max_steps=ten"])
    with pytest.raises(ConfigError, match=r"^override eval_limit=abc: eval_limit must be int, got 'abc'$"):
        load_study(None, ["eval_limit=abc"])
    # the same mistake in the file still names the file and key; unknown override keys stay "command line"
    _set_lines(cfg_file, "max_steps: ten")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(cfg_file))}: max_steps must be int, got 'ten'$"):
        load_config(TrainConfig, cfg_file, ["warmup_steps=1"])
    with pytest.raises(ConfigError, match=r"^command line: unknown key\(s\) foo for TrainConfig"):
        load_config(TrainConfig, cfg_file, ["foo=1"])


def test_an_empty_training_config_names_its_file(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(empty))}: tasks is empty: training needs at least one"):
        load_config(TrainConfig, empty)
    assert main(["train", str(empty), f"output_dir={tmp_path / 'out'}"]) == 1
    assert capsys.readouterr().err.startswith(f"sicl train: error: {empty}: tasks is empty")
    assert not (tmp_path / "out").exists()


def test_a_task_without_pool_for_k_above_0_names_the_task(cfg_file):
    tasks = "tasks=[{name: asr, queries: q.jsonl}]"
    with pytest.raises(ConfigError, match=r"^override tasks=.*: tasks\[0\].pool is missing: k=\[1, 4\] needs a demo"):
        load_config(TrainConfig, cfg_file, [tasks])
    assert load_config(TrainConfig, cfg_file, [tasks, "k=0"]).k == [0]


def _rewrite(manifest: Path, line: int, **changes: object) -> None:
    rows = [json.loads(r) for r in manifest.read_text(encoding="utf-8").splitlines()]
    for key, value in changes.items():
        if value is None:
            rows[line - 1].pop(key, None)
        else:
            rows[line - 1][key] = value
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_a_training_row_without_target_names_the_manifest_and_line(tmp_path):
    from sicl.train.sicl_at import load_tasks

    queries, pool = write_split(tmp_path, "q", 3), write_split(tmp_path, "p", 4)
    _rewrite(queries, 2, target=None)
    cfg = load_config(TrainConfig, DEMO, [f"tasks=[{{name: asr, queries: '{queries}', pool: '{pool}'}}]",
                                          f"output_dir={tmp_path / 'out'}"])
    with pytest.raises(SiclError, match=rf"^{re.escape(str(queries))}:2: id 'q-1': 'target' is required"):
        load_tasks(cfg, 1)
    cfg.k = [0]  # direct fine-tuning reads no pool, but the loss still needs the target
    with pytest.raises(SiclError, match=rf"^{re.escape(str(queries))}:2: id 'q-1'"):
        load_tasks(cfg, 0)


def test_a_gold_query_without_its_text_names_the_manifest_and_line(tmp_path):
    from sicl.train.sicl_at import load_tasks

    queries, pool = write_split(tmp_path, "q", 3, task="st"), write_split(tmp_path, "p", 4, task="st")
    for manifest, n in ((queries, 3), (pool, 4)):
        for line in range(1, n + 1):
            _rewrite(manifest, line, transcript="source words", target_lang="de")
    _rewrite(queries, 3, transcript=None)
    cfg = load_config(TrainConfig, DEMO, [f"tasks=[{{name: st, queries: '{queries}', pool: '{pool}'}}]",
                                          f"output_dir={tmp_path / 'out'}"])
    with pytest.raises(SiclError, match=rf"^{re.escape(str(queries))}:3: id 'q-2': query has no transcript to "
                                        r"retrieve demonstrations by \(retrieval.pseudo_labeler gold"):
        load_tasks(cfg, 1)


def test_overrides_may_follow_options(cfg_file, tmp_path, capsys):
    # reaching the config (an override error, exit 1) proves argparse took both overrides after --resume
    out = tmp_path / "elsewhere"
    assert main(["train", str(cfg_file), "--resume", f"output_dir={out}", "max_steps=ten"]) == 1
    assert capsys.readouterr().err == "sicl train: error: override max_steps=ten: max_steps must be int, got 'ten'\n"
    assert main(["train", str(cfg_file), "warmup_steps=1", "--resume", "max_steps=0"]) == 1
    assert "override max_steps=0: max_steps must be >= 1" in capsys.readouterr().err
    demo = tmp_path / "demo"
    assert main(["demo", "--out", str(demo), "--fresh", "eval_limit=abc"]) == 1
    assert capsys.readouterr().err == "sicl demo: error: override eval_limit=abc: eval_limit must be int, got 'abc'\n"
    assert not demo.exists() and not out.exists()
    with pytest.raises(SystemExit) as e:  # an unknown option is still argparse's error
        main(["train", str(cfg_file), "--resume", "--bogus"])
    assert e.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_a_config_that_is_not_utf8_is_one_line_naming_the_byte(cfg_file, tmp_path, capsys):
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes(cfg_file.read_text(encoding="utf-8").encode("utf-16"))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(utf16))}: not valid UTF-8 \(bad byte 0xff at line 1, "
                                          r"byte 0\)$"):
        load_config(TrainConfig, utf16)
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(cfg_file.read_bytes() + "# café\n".encode("latin-1"))
    n = cfg_file.read_text(encoding="utf-8").count("\n") + 1
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(latin))}: not valid UTF-8 \(bad byte 0xe9 at line {n},"):
        load_config(TrainConfig, latin)
    out = tmp_path / "out"
    assert main(["train", str(utf16), f"output_dir={out}"]) == 1
    err = capsys.readouterr().err
    assert err == f"sicl train: error: {utf16}: not valid UTF-8 (bad byte 0xff at line 1, byte 0)\n"
    assert not out.exists()
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(utf16))}: not valid UTF-8"):  # the study shares it
        load_study(utf16)


def test_a_key_given_twice_names_the_file_and_both_lines(cfg_file, capsys):
    cfg_file.write_text("model: tiny-omni\nmax_steps: 2\nseed: 1\nmax_steps: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(cfg_file))}:4: key 'max_steps' is given twice "
                                          r"\(first on line 2\); keep one$"):
        load_config(TrainConfig, cfg_file)
    assert main(["train", str(cfg_file)]) == 1
    assert capsys.readouterr().err == (f"sicl train: error: {cfg_file}:4: key 'max_steps' is given twice (first on "
                                       "line 2); keep one\n")
    with pytest.raises(ConfigError, match=r"^override lora=\{r: 1, r: 2\}: key 'r' is given twice; keep one$"):
        load_config(TrainConfig, DEMO, ["lora={r: 1, r: 2}"])
    # nested mappings too; a YAML merge key (`<<: *base`) may still be overridden
    cfg_file.write_text("model: tiny-omni\nlora:\n  r: 4\n  alpha: 8\n  r: 8\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cfg.yaml:5: key 'r' is given twice \(first on line 3\)"):
        load_config(TrainConfig, cfg_file)
    from sicl.config import read_config_file

    merged = cfg_file.parent / "merged.yaml"
    merged.write_text("base: &b {r: 4, alpha: 8}\nlora:\n  <<: *b\n  r: 16\n", encoding="utf-8")
    assert read_config_file(merged)["lora"] == {"r": 16, "alpha": 8}
    merged.write_text("x: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML .*could not determine a constructor"):  # no Python tags
        read_config_file(merged)


def test_tasks_overrides_name_the_list_and_the_command_line(cfg_file):
    with pytest.raises(ConfigError, match=r"^override tasks=5: tasks must be a list of mappings \(\[\{name, queries, "
                                          r"pool, weight\}, \.\.\.\]\), got 5$"):
        load_config(TrainConfig, cfg_file, ["tasks=5"])
    with pytest.raises(ConfigError, match=r"^override tasks=\[q.jsonl\]: tasks must be a list of mappings"):
        load_config(TrainConfig, cfg_file, ["tasks=[q.jsonl]"])
    with pytest.raises(ConfigError, match=r"^command line: unknown key\(s\) tasks\[0\].bogus for TaskSpec"):
        load_config(TrainConfig, cfg_file, ["tasks=[{name: asr, queries: q.jsonl, pool: p.jsonl, bogus: 1}]"])
    with pytest.raises(ConfigError, match=r"^command line: unknown key\(s\) lora.bogus for LoraSettings"):
        load_config(TrainConfig, cfg_file, ["lora={r: 4, bogus: 1}"])
    cfg_file.write_text("tasks: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(cfg_file))}: tasks must be a list of mappings"):
        load_config(TrainConfig, cfg_file)
