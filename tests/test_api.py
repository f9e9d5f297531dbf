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
