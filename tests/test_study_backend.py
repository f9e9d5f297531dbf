"""The study's evaluation engine (`backend:` in study.yaml, `sicl demo --backend`): validated with one-line errors;
vllm outside the vLLM environment names `make vllm-env`; the vLLM engine pool (one engine per base model, LoRA on,
replaced when an adapter's rank needs more) checked with a stand-in engine. The vLLM-vs-hf study itself is in
tests/test_eval_vllm.py (runs where .venv-vllm exists)."""

import pytest

from sicl.cli.main import main
from sicl.errors import ConfigError
from sicl.eval import vllm_backend
from sicl.study import load_study


def test_backend_key_defaults_to_hf_and_rejects_unknown_names():
    assert load_study().backend == "hf"
    with pytest.raises(ConfigError, match=r"^override backend=fancy: backend 'fancy' is not one of hf, vllm$"):
        load_study(overrides=["backend=fancy"])


def _demo_error(tmp_path, capsys, *args):
    rc = main(["demo", "--out", str(tmp_path / "demo"), "--size", "small", *args])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return rc, err


def test_demo_backend_flag_bad_value_is_one_line(tmp_path, capsys):
    rc, err = _demo_error(tmp_path, capsys, "--backend", "fancy")
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("sicl demo: error:") and "backend 'fancy' is not one of hf, vllm" in err[0]
    assert not (tmp_path / "demo" / "data").exists()  # refused before building anything


def test_demo_backend_vllm_without_vllm_is_one_line_naming_make_vllm_env(tmp_path, capsys):
    if vllm_backend.vllm_missing_reason() is None:
        pytest.skip("vLLM imports in this Python")
    for args in (["--backend", "vllm"], ["backend=vllm"]):
        rc, err = _demo_error(tmp_path, capsys, *args)
        assert rc == 1 and len(err) == 1, err
        assert err[0].startswith("sicl demo: error:") and "backend vllm" in err[0] and "make vllm-env" in err[0]
    assert not (tmp_path / "demo" / "data").exists()


class _Engine:
    def __init__(self, args):
        self.args = args
        self.closed = False
        core = type("Core", (), {"shutdown": lambda s: setattr(self, "closed", True)})()
        self.llm_engine = type("LLMEngine", (), {"engine_core": core})()


def test_engine_pool_shares_one_lora_engine_per_base_model_setting(monkeypatch):
    started = []
    monkeypatch.setattr(vllm_backend, "_start_engine", lambda args: started.append(_Engine(args)) or started[-1])
    base = {"model": "/m", "dtype": "float32", "limit_mm_per_prompt": {"audio": 16}}
    with vllm_backend.shared_engines() as pool:
        assert vllm_backend._POOL[-1] is pool
        a = pool.engine(dict(base))              # the base model (no adapter)
        assert a.args["enable_lora"] is True and a.args["max_lora_rank"] == 16 and a.args["max_loras"] == 1
        assert pool.engine(dict(base), rank=8) is a  # an r=8 adapter: the same engine
        other = pool.engine({**base, "dtype": "bfloat16"})
        assert other is not a and len(started) == 2  # another setting: another engine
        big = pool.engine(dict(base), rank=64)   # needs a larger max_lora_rank: replaces the first engine
        assert big is not a and a.closed and big.args["max_lora_rank"] == 64
        assert pool.engine(dict(base), rank=8) is big and pool.starts == 3
    assert not vllm_backend._POOL and big.closed and other.closed  # shut down when the block ends
