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
