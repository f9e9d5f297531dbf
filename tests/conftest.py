"""Fixtures shared by the test modules. The builders themselves live in tests/train_fixtures.py (tiny
random tiny-omni + tone manifests) and tests/backbone_suite.py (per-family backbone checks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train_fixtures import make_train_data


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random tiny-omni folder and two small ASR manifests (queries ``q-*``, pool ``p-*``), built once per
    session: tests read them and write only under their own tmp_path."""
    return make_train_data(tmp_path_factory.mktemp("train_data"))
