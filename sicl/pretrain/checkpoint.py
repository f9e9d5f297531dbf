"""Resumable training state in safetensors + JSON (no pickles), and export of a model folder as a few
small files (for machines that only hand back a handful of files under a size limit)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from sicl.atomic import atomic_write_text


def save_train_state(folder: Path, opt: torch.optim.Optimizer, head: torch.nn.Module | None,
                     state: dict[str, Any]) -> None:
    """Optimiser moments and the auxiliary head as tensors; counters and param groups as JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, slots in sd["state"].items():
        for name, value in slots.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"opt.{idx}.{name}"] = t.detach().cpu().contiguous()
    if head is not None:
        for name, value in head.state_dict().items():
            tensors[f"head.{name}"] = value.detach().cpu().contiguous()
    save_file(tensors, str(folder / "train_state.safetensors"))
    # last, and atomically: a checkpoint folder with this file is complete (train._resumable_checkpoint)
    atomic_write_text(folder / "train_state.json", json.dumps({**state, "param_groups": sd["param_groups"]}))


def load_train_state(folder: Path, opt: torch.optim.Optimizer, head: torch.nn.Module | None) -> dict[str, Any]:
    meta = json.loads((folder / "train_state.json").read_text())
    tensors = load_file(str(folder / "train_state.safetensors"))
    slots: dict[int, dict[str, torch.Tensor]] = {}
    head_sd = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            slots.setdefault(int(idx), {})[name] = value
        elif key.startswith("head."):
            head_sd[key[5:]] = value
    opt.load_state_dict({"state": slots, "param_groups": meta.pop("param_groups")})
    if head is not None and head_sd:
        head.load_state_dict(head_sd)
    return meta


#: the pretraining CTC head's weights, saved beside a final model so that a warm start from it (``init``) keeps its
#: head (sicl.pretrain.train.CtcHead); it travels in an export's meta.tar.gz
CTC_HEAD_FILE = "ctc_head.safetensors"


def export_model(model_dir: Path, dest: Path, max_shard: str = "12MB", extra: list[Path] | None = None) -> list[Path]:
    """Copy a saved model to ``dest`` as weight shards (re-sharded to ``max_shard``) + ``meta.tar.gz``
    (config, tokenizer, processor files) + ``extra`` files. Unpack with :func:`unpack_export`."""
    from safetensors.torch import load_file as _load
    from transformers.modeling_utils import PreTrainedModel  # noqa: F401  (ensures transformers is importable)

    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("model*.safetensors*"):
        old.unlink()
    weights: dict[str, torch.Tensor] = {}
    for f in sorted(model_dir.glob("model*.safetensors")):
        weights.update(_load(str(f)))
    written = _write_shards(weights, dest, parse_size(max_shard))
    with tarfile.open(dest / "meta.tar.gz", "w:gz") as tar:
        for f in sorted(model_dir.iterdir()):
            if f.is_file() and not f.name.startswith("model") and (f.suffix != ".safetensors" or f.name == CTC_HEAD_FILE):
                tar.add(f, arcname=f.name)
    written.append(dest / "meta.tar.gz")
    for f in extra or []:
        if f.exists() and f.resolve() != (dest / f.name).resolve():
            shutil.copy2(f, dest / f.name)
            written.append(dest / f.name)
    return written


def unpack_export(src: Path, model_dir: Path) -> Path:
    """Rebuild a Hugging Face model folder from :func:`export_model`'s files."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src / "meta.tar.gz") as tar:
        tar.extractall(model_dir, filter="data")
    for f in [*src.glob("model*.safetensors*"), src / "metrics.json"]:
        if f.exists():
            shutil.copy2(f, model_dir / f.name)  # metrics.json travels on into the model card
    return model_dir


def _write_shards(weights: dict[str, torch.Tensor], dest: Path, max_bytes: int) -> list[Path]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in weights.items():
        n = t.numel() * t.element_size()
        if shards[-1] and size + n > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t.contiguous()
        size += n
    if len(shards) == 1:
        path = dest / "model.safetensors"
        save_file(shards[0], str(path), metadata={"format": "pt"})
        return [path]
    paths, index = [], {}
    for i, shard in enumerate(shards, 1):
        path = dest / f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path), metadata={"format": "pt"})
        paths.append(path)
        index.update({name: path.name for name in shard})
    total = sum(t.numel() * t.element_size() for t in weights.values())
    idx = dest / "model.safetensors.index.json"
    idx.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": index}, indent=1))
    return [*paths, idx]


def parse_size(s: str) -> int:
    """Bytes in ``12MB`` / ``500KB`` / ``1GB`` / ``4096`` (ValueError for anything else)."""
    s = s.strip().upper()
    for unit, mult in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if s.endswith(unit):
            return int(float(s[: -len(unit)]) * mult)
    return int(s)
