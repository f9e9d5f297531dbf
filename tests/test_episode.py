from sicl.data.manifest import Example
from sicl.episodes.episode import Episode, read_episodes, write_episodes


def test_episode_jsonl_roundtrip(tmp_path):
    exs = {f"e{i}": Example(id=f"e{i}", audio=f"/a/{i}.wav", task="asr", target=str(i)) for i in range(4)}
    eps = [Episode(exs["e3"], [exs["e0"], exs["e1"]], meta={"retriever": "ticl"}), Episode(exs["e2"])]
    path = write_episodes(tmp_path / "episodes.jsonl", eps)
    back = read_episodes(path, exs)
    assert [e.to_dict() for e in back] == [e.to_dict() for e in eps]
    assert back[0].k == 2 and back[1].k == 0 and back[0].id == "e3"
    assert [e.id for e in back[0].examples] == ["e0", "e1", "e3"]
