from sicl.cli.main import main
from sicl.data.manifest import read_manifest


def test_demo_builds_and_validates_the_small_world_and_says_where_it_stops(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--size", "small"]) == 0
    out = capsys.readouterr().out
    assert "not implemented yet" in out and "tiny-omni" in out
    science = read_manifest(tmp_path / "demo" / "data" / "child-science" / "test.jsonl", require_target=True)
    assert len(science) >= 20 and all(ex.task == "asr" for ex in science)
