import pytest

from sicl.errors import SiclError
from sicl.pretrain.data import held_out_sentences


def test_exclude_world_typo_is_an_error_not_an_empty_exclusion(tmp_path):
    assert held_out_sentences("") == set()
    with pytest.raises(SiclError, match="holds no built world"):
        held_out_sentences(str(tmp_path / "no-such-world"))
