from dataclasses import dataclass, field

import pytest

from sicl.config import load_config
from sicl.errors import ConfigError


@dataclass
class Lora:
    r: int = field(default=8, metadata={"help": "rank"})
    alpha: float = 32.0


@dataclass
class Cfg:
    output_dir: str = "out"
    max_steps: int = 10
    learning_rate: float = 1e-4
    k: list[int] = field(default_factory=lambda: [3])
    resume: bool = False
    note: str | None = None
    lora: Lora = field(default_factory=Lora)


def test_yaml_then_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("# run: sicl train c.yaml\nmax_steps: 5\nlora:\n  r: 4\n")
    cfg = load_config(Cfg, tmp_path / "c.yaml", ["learning_rate=3e-4", "lora.alpha=16", "k=2", "resume=true"])
    assert cfg == Cfg(max_steps=5, learning_rate=3e-4, k=[2], resume=True, lora=Lora(r=4, alpha=16.0))


@pytest.mark.parametrize("override, message", [
    ("max_step=3", "unknown key(s) max_step"),
    ("max_steps=three", "max_steps must be int"),
    ("resume=maybe", "resume must be true or false"),
    ("lora.rank=2", "unknown key(s) lora.rank"),
    ("novalue", "expected key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(Cfg, None, [override])


def test_yaml_is_data_not_code(tmp_path):
    (tmp_path / "evil.yaml").write_text("note: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(Cfg, tmp_path / "evil.yaml")


@dataclass
class Entry:
    name: str = ""
    weight: float = 1.0


@dataclass
class Typed:
    learning_rate: float = 1e-4
    note: str | None = None
    value: float | None = None
    extra: dict = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)


def test_a_quoted_number_in_a_file_is_a_string_and_an_error_for_a_number_setting(tmp_path):
    """A quoted value is a string by the writer's choice: for a float key, one line naming the file, the key and the
    type. Unquoted, 5e-4 (a string to YAML 1.1: no dot) is still the number, in a file and on the command line."""
    path = tmp_path / "c.yaml"
    for text, key, value in (('learning_rate: "0.5"', "learning_rate", "0.5"),
                             ("learning_rate: '5e-4'", "learning_rate", "5e-4"), ("value: '1.5'", "value", "1.5")):
        path.write_text(text + "\n")
        with pytest.raises(ConfigError) as e:
            load_config(Typed, path)
        assert str(e.value) == (f"{path}: {key} must be a number (float), got the string '{value}'; a quoted value "
                                "is text: write it without quotes")
    path.write_text("entries:\n  - {name: a}\n  - {name: b, weight: '2'}\n")
    with pytest.raises(ConfigError, match=r": entries\[1\].weight must be a number \(float\), got the string '2'"):
        load_config(Typed, path)
    # unquoted: numbers, 5e-4 and 1e3 included (YAML 1.1 reads those as strings)
    path.write_text("learning_rate: 5e-4\nvalue: 1e3\nentries: [{name: a, weight: 2}]\n")
    assert load_config(Typed, path) == Typed(learning_rate=5e-4, value=1000.0, entries=[Entry("a", 2.0)])
    # overrides are YAML values: unquoted 5e-4 is the number (`sicl train cfg.yaml learning_rate=5e-4`)
    assert load_config(Typed, path, ["learning_rate=3e-4", "value=2"]).learning_rate == 3e-4
    with pytest.raises(ConfigError, match=r"^override learning_rate='5e-4': learning_rate must be a number \(float\), "
                                          r"got the string '5e-4'"):
        load_config(Typed, path, ["learning_rate='5e-4'"])
    with pytest.raises(ConfigError, match=r"^override learning_rate=fast: learning_rate must be a number \(float\), "
                                          r"got the string 'fast'$"):
        load_config(Typed, path, ["learning_rate=fast"])
    # from Python a str is taken as given: never read as a number either
    with pytest.raises(ConfigError, match=r"^argument learning_rate of Python: learning_rate must be a number"):
        load_config(Typed, path, values={"learning_rate": "5e-4"})


def test_unquoted_number_like_text_keeps_its_spelling_where_a_string_is_wanted(tmp_path):
    import yaml

    from sicl.config import dump_config, read_config_file

    path = tmp_path / "c.yaml"
    path.write_text("note: 1e5\nextra: {a: 5e-4, b: [1e3, x]}\nentries: [{name: 2e2}]\n")
    cfg = load_config(Typed, path)
    assert cfg.note == "1e5" and type(cfg.note) is str and cfg.entries[0].name == "2e2"
    assert cfg.extra == {"a": "5e-4", "b": ["1e3", "x"]}  # as YAML reads them (as before)
    assert all(type(v) is str for v in (cfg.extra["a"], *cfg.extra["b"], cfg.entries[0].name))
    assert read_config_file(path)["extra"] == {"a": "5e-4", "b": ["1e3", "x"]}
    assert type(read_config_file(path)["note"]) is str
    dump_config(cfg, tmp_path / "saved.yaml")  # plain data: the safe dumper takes it
    assert yaml.safe_load((tmp_path / "saved.yaml").read_text())["note"] == "1e5"


def test_every_shipped_config_reads_the_same_numbers_unquoted(tmp_path):
    """The shipped configs (all loaded by tests/test_train_configs.py) hold no quoted number for a number key;
    their learning rates, written 5.0e-4 style, are numbers."""
    from pathlib import Path

    from sicl.study import load_study
    from sicl.train.sicl_at_config import TrainConfig

    root = Path(__file__).resolve().parent.parent / "sicl" / "configs"
    rates = {p.name: load_config(TrainConfig, p).learning_rate for p in sorted((root / "demo").glob("*.yaml"))
             if p.name != "study.yaml"}
    assert rates == {"direct-ft.yaml": 1e-3, "sicl-at1.yaml": 5e-4, "sicl-at2.yaml": 5e-4, "sicl-at3.yaml": 5e-4}
    assert [t.factor for t in load_study().targets] == [0.6, 0.8, 1.0, 0.6, 0.8, 1.0, 1.0, 1.0]


def test_a_missing_required_key_is_named_with_its_source_not_a_constructor_error(tmp_path):
    """A section without a required key is one line naming the key (``eval_sets[0].data is missing``) and where it
    came from: the override that set the section, or the file."""
    from sicl.errors import ConfigError
    from sicl.study import load_study

    with pytest.raises(ConfigError, match=r"^override eval_sets=\[\{name: x\}\]: eval_sets\[0\].data is missing$"):
        load_study(overrides=["eval_sets=[{name: x}]"])
    study = tmp_path / "study.yaml"
    study.write_text("eval_sets:\n  - {name: a, data: a.jsonl}\nadapters:\n  - {config: c.yaml}\n")
    with pytest.raises(ConfigError, match=rf"^{study}: adapters\[0\].method is missing$"):
        load_study(study)
