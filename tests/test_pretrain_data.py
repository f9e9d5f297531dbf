from pathlib import Path

import pytest

from sicl.errors import SiclError
from sicl.pretrain.data import held_out_sentences, world_folders


def test_exclude_world_typo_is_an_error_not_an_empty_exclusion(tmp_path, monkeypatch):
    assert held_out_sentences("") == set()
    with pytest.raises(SiclError, match="no-such-world: no such folder$"):
        held_out_sentences(str(tmp_path / "no-such-world"))
    (tmp_path / "not-a-world").mkdir()
    with pytest.raises(SiclError, match="holds no built world"):
        held_out_sentences(str(tmp_path / "not-a-world"))
    # relative paths: from the current directory, and the message says so (a shipped config run from elsewhere)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SiclError, match=r"exclude_world: runs/world: no such folder \(relative paths are resolved "
                                        rf"from the current directory {tmp_path}\)"):
        world_folders("runs/world,runs/world-small")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "world.partial.json").write_text("{}")
    with pytest.raises(SiclError, match="w holds an unfinished world build"):
        world_folders("w")
    (tmp_path / "w" / "world.json").write_text("{}")
    assert world_folders(" w ") == [Path("w")]
    with pytest.raises(SiclError, match="empty entry"):
        world_folders("w,")
