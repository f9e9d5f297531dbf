"""The pip route: a built wheel carries the model, the configs and the word list, and runs from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_configs_model_and_data_and_finds_them_from_any_folder(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                          "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("sicl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in ("sicl/configs/demo/study.yaml", "sicl/configs/demo/sicl-at1.yaml", "sicl/configs/pretrain/tiny-omni-v2.yaml",
                 "sicl/zoo/tiny-omni/model.safetensors", "sicl/data/synth/words_en.txt"):
        assert need in names, need
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import sicl, sicl.study as s; cfg = s.load_study(); "
            "st = s.Study(cfg, 'out'); print(sicl.__file__); "
            "print(all((st.root / a.config).is_file() for a in cfg.adapters))")
    res = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(target)})
    assert res.returncode == 0, res.stderr[-2000:]
    where, ok = res.stdout.split()
    assert where.startswith(str(target)) and ok == "True"
