"""The import rule of docs/architecture.md: each layer imports only the layers below it (lazy imports inside
functions count too), evaluation never imports training, and pretraining (its own project) never imports the
SICL-AT recipe."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = {"errors", "atomic", "config", "device", "guard", "progress", "versions"}
#: layer -> the layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "base": {"base"},
    "data": {"base"},
    "episodes": {"base", "data"},
    "models": {"base", "data", "episodes"},
    "retrieval": {"base", "data", "episodes", "models"},
    "train": {"base", "data", "episodes", "models", "retrieval"},
    "eval": {"base", "data", "episodes", "models", "retrieval"},
    "pretrain": {"base", "data", "episodes", "models", "retrieval", "eval"},
    "report": {"base", "data"},
}
#: the one sanctioned upward edge: the callable ``sicl.train`` package forwards to the notebook API
EXCEPTIONS = {("sicl.train", "sicl.api")}


def _layer(module: str) -> str:
    if module == "sicl":
        return "base"  # the package root: __version__ and lazy names only
    if module.endswith(".__main__"):
        return "top"  # `python -m sicl.X` entry points hand over to the command line
    part = module.split(".")[1]
    if part in BASE:
        return "base"
    if part == "testing":
        return "data"  # test helpers that write audio and manifests
    return part if part in ALLOWED else "top"  # study, api, cli, __main__: may import anything


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return [m for m in out if m == "sicl" or m.startswith("sicl.")]


def test_every_layer_imports_only_the_layers_below_it():
    bad = []
    for path in sorted((ROOT / "sicl").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        layer = _layer(module)
        if layer == "top":
            continue
        for target in _imports(path):
            t = _layer(target)
            if t != layer and t not in ALLOWED[layer] and (module, target) not in EXCEPTIONS:
                bad.append(f"{module} ({layer}) imports {target} ({t})")
    assert not bad, "\n".join(bad)


def test_no_private_name_is_imported_from_another_module():
    bad = []
    for path in sorted((ROOT / "sicl").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sicl"):
                bad += [f"{path.relative_to(ROOT)}: from {node.module} import {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


def test_evaluation_loads_no_training_module():
    code = ("import importlib, pkgutil, sys, sicl.eval\n"
            "for m in pkgutil.iter_modules(sicl.eval.__path__): importlib.import_module('sicl.eval.' + m.name)\n"
            "from sicl.eval.backends import HFBackend, shared_tower_cache\n"
            "print(sorted(m for m in sys.modules if m.startswith('sicl.train')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert res.stdout.strip() == "[]", res.stdout


def test_pretraining_is_its_own_layer_that_nothing_below_the_top_imports():
    assert "train" not in ALLOWED["pretrain"] and "eval" in ALLOWED["pretrain"]
    assert all("pretrain" not in allowed for layer, allowed in ALLOWED.items() if layer != "pretrain")
    assert _layer("sicl.pretrain.train") == "pretrain" and _layer("sicl.pretrain.__main__") == "top"
    assert not (ROOT / "sicl" / "train" / "pretrain.py").exists()  # moved, not copied: one trainer loop
    code = ("import importlib, pkgutil, sys, sicl.pretrain\n"
            "for m in pkgutil.iter_modules(sicl.pretrain.__path__):\n"
            "    if m.name != '__main__': importlib.import_module('sicl.pretrain.' + m.name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('sicl.train')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert res.stdout.strip() == "[]", res.stdout
