"""Which files of a checkpoint folder hold its weights: safetensors only, never a pickle (one rule for every
family's loader: :func:`sicl.models.registry.check_model_files`, MiMo-Audio's and its tokenizer's)."""

from __future__ import annotations

import json
from pathlib import Path

from sicl.errors import SiclError

#: weight files that are Python pickles: never loaded (unpickling runs code)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def safetensors_files(path: str | Path) -> list[Path]:
    """The folder's weight files: the shards ``model.safetensors.index.json`` names when it exists (each must
    exist; a ``model.safetensors`` beside an index that does not name it is refused, since loaders would read
    either), else every ``*.safetensors`` in the folder. A folder with pickled weights only, or none at all, is
    refused. Each problem is a one-line :class:`SiclError` naming the file."""
    path = Path(path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
            raise SiclError(f"{index}: not a safetensors index ({e})") from None
        if not isinstance(weight_map, dict) or not weight_map:
            raise SiclError(f"{index}: no weight_map naming the shards")
        names = sorted({str(v) for v in weight_map.values()})
        if (path / "model.safetensors").is_file() and "model.safetensors" not in names:
            # transformers reads the single file when both exist: stale weights would win over the shards
            raise SiclError(f"{path}: both model.safetensors and model.safetensors.index.json (naming other "
                            f"shards); one of them is stale: remove it")
        missing = [n for n in names if not (path / n).is_file()]
        if missing:
            raise SiclError(f"{index}: names shard {missing[0]}, which is not in the folder"
                            + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return [path / n for n in names]
    files = sorted(path.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(f.name for f in path.iterdir() if f.is_file() and f.suffix in PICKLE_SUFFIXES) \
        if path.is_dir() else []
    if pickles:
        raise SiclError(f"{path}: weights are pickled only ({', '.join(pickles[:3])}); sicl reads safetensors "
                        f"only and never unpickles: convert them to model.safetensors with a tool you trust")
    raise SiclError(f"{path}: no weights (no model.safetensors or model.safetensors.index.json)")


def check_safetensors(file: str | Path) -> None:
    """``file``'s safetensors header reads and names at least one tensor (no tensor is loaded); truncated, empty,
    not safetensors or tensorless is a one-line :class:`SiclError` naming the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as fh:
            if not list(fh.keys()):
                raise SiclError(f"{file}: holds no tensors")
    except SiclError:
        raise
    except Exception as e:  # safetensors' own error type: truncated, empty or not a safetensors file
        raise SiclError(f"{file}: cannot read ({str(e).splitlines()[0][:160]})") from None
