import json

import pytest
from retrieval_fakes import make_corpus, save

from sicl.cli.main import main
from sicl.retrieval.results import read_retrievals

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the cat ate the fish", "birds fly over the sea",
         "a dog chased the cat"]


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("SICL_CACHE", str(tmp_path / "cache"))
    pool = make_corpus(tmp_path, TEXTS)
    return tmp_path, save(tmp_path, "pool.jsonl", pool)


def _outputs(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("ep"))


def test_writes_one_line_per_query_and_a_sidecar(files, capsys):
    tmp, pool = files
    out = tmp / "ep.jsonl"
    assert main(["retrieve", "--queries", str(pool), "--pool", str(pool), "--k", "2", "--retriever", "ticl",
                 "--pseudo-labeler", "gold", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(5)]
    for r in rows:
        assert set(r) == {"id", "demos", "scores"} and len(r["demos"]) == len(r["scores"]) == 2
        assert r["id"] not in r["demos"] and r["scores"] == sorted(r["scores"], reverse=True)
    assert rows[0]["demos"][0] == "p2"  # "the cat ... the" shares most with "the cat ate the fish"
    meta = json.loads((tmp / "ep.jsonl.meta.json").read_text())
    assert meta["settings"]["retriever"] == "ticl" and meta["settings"]["k"] == 2
    assert meta["pool"]["rows"] == 5 and len(meta["pool"]["sha1"]) == 40
    assert meta["versions"]["faiss-cpu"] and meta["versions"]["sentence-transformers"]
    assert read_retrievals(out)["p0"][0][0] == "p2"
    assert _outputs(tmp) == ["ep.jsonl", "ep.jsonl.meta.json"]  # no temporary files left behind


def test_random_retriever_via_cli(files):
    tmp, pool = files
    out = tmp / "ep.jsonl"
    args = ["retrieve", "--queries", str(pool), "--pool", str(pool), "--k", "3", "--retriever", "random",
            "--seed", "7", "--out", str(out)]
    assert main(args) == 0
    first = out.read_text()
    assert main(args) == 0 and out.read_text() == first


@pytest.mark.parametrize("case", ["missing_pool", "k_too_large", "pool_without_target", "bad_labeler"])
def test_bad_inputs_fail_with_one_line_and_no_output(files, capsys, case):
    tmp, pool = files
    queries, k, labeler = pool, "2", "gold"
    if case == "missing_pool":
        pool = tmp / "nope.jsonl"
    elif case == "k_too_large":
        k = "5"  # 5 pool items, minus the query itself
    elif case == "pool_without_target":
        rows = [json.loads(line) for line in pool.read_text().splitlines()]
        del rows[3]["target"]
        pool = tmp / "pool2.jsonl"
        pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        labeler = "whisper"
    code = main(["retrieve", "--queries", str(queries), "--pool", str(pool), "--k", k, "--pseudo-labeler",
                 labeler, "--out", str(tmp / "ep.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("sicl retrieve: error:")
    expected = {"missing_pool": "cannot open manifest", "k_too_large": "k=5 is larger than the 4 eligible",
                "pool_without_target": "'target' is required", "bad_labeler": "unknown pseudo-labeler"}[case]
    assert expected in err[0]
    assert _outputs(tmp) == []


def test_ticl_plus_with_a_backbone_labeler_end_to_end(files, tmp_path):
    from sicl.models.tiny_omni import build_random_tiny_omni

    tmp, pool = files
    model = tmp / "tiny"
    build_random_tiny_omni(model, audio_layers=1, text_layers=1, audio_dim=64, text_dim=64, audio_ffn=128,
                           text_ffn=128, vocab_size=400)
    out = tmp / "ep.jsonl"
    args = ["retrieve", "--queries", str(pool), "--pool", str(pool), "--k", "2", "--retriever", "ticl+",
            "--model", str(model), "--max-new-tokens", "3", "--out", str(out)]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all(len(r["demos"]) == 2 and r["id"] not in r["demos"] for r in rows)
    meta = json.loads((tmp / "ep.jsonl.meta.json").read_text())
    assert meta["settings"]["pseudo_labeler"] == "backbone" and meta["settings"]["model"] == str(model)
    labels = list((tmp / "cache" / "retrieval" / "pseudo-label").glob("*/strings.jsonl"))
    assert len(labels) == 1 and len(labels[0].read_text().splitlines()) == 5


@pytest.mark.parametrize(("embedder", "expected"), [
    ("./no-such-folder", "no such folder"),
    ("pool.jsonl", "not a folder"),  # a file, not a model folder
    ("no-such-model-anywhere", "not in the Hugging Face cache (downloads are off"),
])
def test_an_embedder_that_cannot_load_is_one_line_before_any_work(files, capsys, monkeypatch, embedder, expected):
    tmp, pool = files
    monkeypatch.chdir(tmp)
    code = main(["retrieve", "--queries", str(pool), "--pool", str(pool), "--k", "2", "--pseudo-labeler", "gold",
                 "--embedder", embedder, "--out", str(tmp / "ep.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and f"text embedder {embedder!r}: " in err[0] and expected in err[0]
    assert _outputs(tmp) == []
