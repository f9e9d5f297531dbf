"""The notebook API runs the commands' code: retrieve, train, evaluate, score."""

from __future__ import annotations

import pytest

import sicl


def test_api_end_to_end(data, tmp_path):
    demos = sicl.retrieve(data["queries"], data["pool"], k=2, retriever="random")
    assert set(demos) == {f"q-{i}" for i in range(6)} and all(len(v) == 2 for v in demos.values())
    assert all(d.startswith("p-") for v in demos.values() for d, _ in v)
    adapter = sicl.train("configs/demo/sicl-at1.yaml", model=str(data["model"]), output_dir=str(tmp_path / "a"),
                         tasks=[{"name": "asr", "queries": str(data["queries"]), "pool": str(data["pool"])}],
                         retrieval={"retriever": "random"}, max_steps=2, report_to=["none"], k=2)
    assert (adapter / "adapter_model.safetensors").is_file()
    import importlib

    importlib.import_module("sicl.train.sicl_at")  # the package stays a package
    assert callable(sicl.train) and hasattr(sicl.train.sicl_at, "EpisodeTrainer")
    metrics = sicl.evaluate(data["queries"], tmp_path / "e", model=str(data["model"]), adapter=adapter,
                            pool=data["pool"], k=[0, 2], retriever="random", max_new_tokens=4)
    assert set(metrics) == {0, 2} and "asr" in metrics[2]
    assert sicl.score(tmp_path / "e" / "k=2" / "predictions.jsonl")["asr"] == metrics[2]["asr"]
    with pytest.raises(AttributeError):
        sicl.nope  # noqa: B018


def test_api_mistakes_are_sicl_errors_naming_the_argument(data, tmp_path):
    from sicl.errors import SiclError

    q, p = data["queries"], data["pool"]
    with pytest.raises(SiclError, match=r"^sicl.evaluate: unknown keyword argument\(s\) bogus \(accepted: data, out, "
                                        r"model, pool, k, adapter, resume, retriever, .*batch_size"):
        sicl.evaluate(q, tmp_path / "e", bogus=1)
    with pytest.raises(SiclError, match=r"^sicl.retrieve: unknown keyword argument\(s\) threads \(accepted: data, "):
        sicl.retrieve(q, p, threads=1)
    with pytest.raises(SiclError, match=r"^sicl.retrieve: k must be an int >= 0, got '3'"):
        sicl.retrieve(q, p, k="3", pseudo_labeler="gold")
    for bad in ("3", [1, "2"], [], True, -1):
        with pytest.raises(SiclError, match=r"^sicl.evaluate: k must be an int >= 0 or a non-empty list of them"):
            sicl.evaluate(q, tmp_path / "e", k=bad)
    with pytest.raises(SiclError, match=r"^argument batch_size of sicl.evaluate: batch_size must be int, got '4'"):
        sicl.evaluate(q, tmp_path / "e", batch_size="4")
    with pytest.raises(SiclError, match=r"^sicl.score: unknown keyword argument\(s\) scorr \(accepted: predictions, "
                                        r"scorer\)$"):
        sicl.score([{"id": "x"}], scorr="lenient")
    with pytest.raises(SiclError, match=r"^sicl.score: no prediction rows given"):
        sicl.score([])
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(SiclError, match=r"^sicl.score: no prediction rows in .*empty.jsonl"):
        sicl.score(tmp_path / "empty.jsonl")
    assert not (tmp_path / "e").exists()


def test_train_keywords_are_python_values_not_yaml(monkeypatch):
    import sicl.train.sicl_at as sicl_at
    from sicl.errors import SiclError

    got = []
    monkeypatch.setattr(sicl_at, "train", lambda cfg, resume=False: got.append(cfg) or cfg.output_dir)
    for value in ("runs/x #2", "a: b", "yes", "null", "[1]"):
        assert sicl.train("configs/demo/sicl-at1.yaml", output_dir=value) == value
    assert sicl.train("configs/demo/sicl-at1.yaml", ["lora.r=4"], lora={"r": 16, "alpha": 8}) is not None
    assert (got[-1].lora.r, got[-1].lora.alpha) == (16, 8)
    with pytest.raises(SiclError, match=r"^argument max_steps of sicl.train: max_steps must be int, got 'ten'"):
        sicl.train("configs/demo/sicl-at1.yaml", max_steps="ten")
    with pytest.raises(SiclError, match=r"^argument lora of sicl.train: lora.r must be >= 1, got 0"):
        sicl.train("configs/demo/sicl-at1.yaml", lora={"r": 0})
    with pytest.raises(SiclError, match=r"^argument bogus of sicl.train: unknown key\(s\) bogus for TrainConfig"):
        sicl.train("configs/demo/sicl-at1.yaml", bogus=1)
    with pytest.raises(SiclError, match=r"^sicl.train: overrides must be a list of 'key=value' strings"):
        sicl.train("configs/demo/sicl-at1.yaml", "max_steps=3")


def test_api_train_and_evaluate_take_the_output_lock(data, tmp_path):
    """A notebook writing into a folder another run holds is refused, as the commands are; nothing is written."""
    from sicl.errors import SiclError
    from sicl.guard import output_lock

    for name in ("a", "e"):
        with output_lock(tmp_path / name, "sicl test"):
            with pytest.raises(SiclError, match=r"is in use by another sicl run: .*\(sicl test\)"):
                if name == "a":
                    sicl.train("configs/demo/sicl-at1.yaml", model=str(data["model"]), output_dir=str(tmp_path / "a"),
                               tasks=[{"name": "asr", "queries": str(data["queries"]), "pool": str(data["pool"])}],
                               retrieval={"retriever": "random"}, max_steps=1, report_to=["none"], k=1)
                else:
                    sicl.evaluate(data["queries"], tmp_path / "e", model=str(data["model"]), max_new_tokens=2)
            assert sorted(p.name for p in (tmp_path / name).iterdir()) == [".sicl.lock"]
