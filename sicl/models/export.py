"""Share a trained adapter: a clean PEFT folder with a model card, or a merged full model (``sicl export``).

What leaves the machine: the adapter weights and config with ``base_model_name_or_path`` set to the base model *as the
user named it* (a built-in name or hub id; for a local folder only its name, plus the SHA-256 of its weights so the
exact base can be checked), the training config with machine paths reduced to file names, and the evaluation numbers
found next to the adapter (``metrics.json`` files of ``sicl eval`` runs whose ``--adapter`` was this folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sicl.atomic import atomic_write_text, plain_mode
from sicl.errors import SiclError

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
#: files of a base model folder that a merged export replaces or must not carry over
_NOT_COPIED = {"README.md", "metrics.json", "config.json", "model.safetensors", "model.safetensors.index.json",
               "pytorch_model.bin", "pytorch_model.bin.index.json"}


def check_adapter(adapter: str | Path) -> Path:
    adapter = Path(adapter)
    missing = [f for f in ADAPTER_FILES if not (adapter / f).is_file()]
    if missing:
        what = "does not exist" if not adapter.exists() else f"is not a PEFT adapter (no {', '.join(missing)})"
        raise SiclError(f"--adapter {adapter}: {what}")
    from sicl.models.lora import check_adapter_files

    check_adapter_files(adapter)
    return adapter


def weights_sha256(folder: Path) -> str:
    """SHA-256 over the folder's weight files (sorted by name; each file's name and bytes)."""
    h = hashlib.sha256()
    files = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")])
    if not files:
        raise SiclError(f"{folder}: no weight files to fingerprint")
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _public_name(model: str) -> str:
    """The base model as a reader elsewhere can find it: a built-in name or hub id as given, a local
    folder by its name only."""
    from sicl.models.zoo import BUILTINS

    if model in BUILTINS or (not Path(model).exists() and "/" in model and not model.startswith(("/", "."))):
        return model
    return Path(model).resolve().name


def _scrub(value: Any) -> Any:
    """Config values with absolute or relative file paths reduced to file names."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and ("/" in value or "\\" in value) and Path(value).suffix in (
            ".jsonl", ".json", ".yaml", ".yml", ".csv", ".tsv", ""):
        from sicl.models.zoo import BUILTINS

        if value in BUILTINS or (Path(value).suffix == "" and not Path(value).exists() and value.count("/") == 1):
            return value  # a hub id
        return Path(value).name
    return value


def find_evaluations(adapter: Path, depth: int = 4) -> list[dict[str, Any]]:
    """Metrics of ``sicl eval`` runs near the adapter (up to two folders above it, at most ``depth`` folders
    down) that used this adapter. The walk stops at ``depth`` (an adapter in a home folder must not make it
    read the whole home) and skips any file that is not what ``sicl eval`` writes."""
    me = adapter.resolve()
    found: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for root in (me.parent, me.parent.parent):
        for folder, dirs, files in os.walk(root):
            level = len(Path(folder).relative_to(root).parts)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if level < depth else []
            metrics = Path(folder) / "metrics.json"
            if "metrics.json" not in files or metrics in seen:
                continue
            seen.add(metrics)
            info = _json_object(metrics.parent / "run.json")
            used = info.get("adapter") or _json_object(metrics.parent / "settings.json").get("adapter")
            if not isinstance(used, str) or not used or Path(used).resolve() != me:
                continue
            m = _json_object(metrics)
            if not m:  # torn or edited: nothing to report
                continue
            found.append({"eval_set": info.get("eval_set") or metrics.parent.name, "k": info.get("k", m.get("k")),
                          "metrics": {k: v for k, v in m.items() if isinstance(v, (int, float, dict))}})
    return found


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON object file, or {} when it is missing, unreadable, not JSON or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _card(base: str, sha: str, cfg: dict[str, Any] | None, evals: list[dict[str, Any]], merged: bool) -> str:
    lines = [f"# {'Merged model' if merged else 'LoRA adapter'} trained with sicl", "",
             f"- Base model: `{base}` (weights SHA-256 `{sha}`)",
             "- Method: SICL-AT episodic training (or direct fine-tuning when k = 0) with LoRA on the language model "
             "only; see https://arxiv.org/abs/2601.18904 and sicl's docs/training.md."]
    if merged:
        lines.append("- The LoRA weights are merged into the base weights: load with plain transformers.")
    else:
        lines.append("- Load: `peft.PeftModel.from_pretrained(base_model, THIS_FOLDER)`, or `sicl eval --model "
                     f"{base} --adapter THIS_FOLDER`.")
    if cfg:
        lines += ["", "## Training config", "", "```yaml", yaml.safe_dump(cfg, sort_keys=False).strip(), "```"]
    if evals:
        lines += ["", "## Evaluations found beside the adapter", "", "| eval set | k | metrics |", "|---|---:|---|"]
        for e in evals:
            flat = {}
            for k, v in e["metrics"].items():
                if isinstance(v, dict):
                    flat.update({f"{k}.{kk}": vv for kk, vv in v.items() if isinstance(vv, (int, float))})
                else:
                    flat[k] = v
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in list(flat.items())[:8])
            lines.append(f"| {e['eval_set']} | {e['k']} | {shown} |")
    return "\n".join(lines) + "\n"


def check_out(out: str | Path, adapter: str | Path) -> Path:
    """The absolute ``--out`` folder, after checking that it can be written: a new folder, or an existing empty
    one (the current folder included) that is kept and filled. Never the adapter folder, never a non-empty
    folder or a file. Checked before any model is loaded or anything written."""
    given = str(out)
    path = Path(os.path.abspath(Path(out).expanduser()))
    if path.resolve() == Path(adapter).resolve():
        raise SiclError(f"--out {given}: must differ from the adapter folder")
    if path.is_symlink() and not path.exists():
        raise SiclError(f"--out {given}: is a broken symbolic link")
    if path.exists():
        if not path.is_dir():
            raise SiclError(f"--out {given}: is a file, not a folder")
        if any(path.iterdir()):
            here = " (the current folder)" if path == Path.cwd() else ""
            raise SiclError(f"--out {given}{here}: folder exists and is not empty; give a new or empty folder")
        return path
    for above in path.parents:
        if above.exists():
            if not above.is_dir():
                raise SiclError(f"--out {given}: {above} is a file, not a folder")
            break
    return path


def export_adapter(adapter: str | Path, out: str | Path, merge: bool = False, model: str | None = None,
                   dtype: str = "float32", allow_download: bool = False) -> Path:
    """Write ``out``: the adapter (or with ``merge`` the base model with the adapter merged) and a model card.
    ``model`` overrides the base model recorded in the adapter's training config; ``allow_download`` lets a hub
    id be downloaded. ``out`` is a new folder or an existing empty one; everything is written into a temporary
    folder beside it first (``.NAME.partial-XXXX``, removed on failure), so a failed export leaves nothing."""
    adapter = check_adapter(adapter)
    out = check_out(out, adapter)
    cfg_path = adapter / "config.yaml"
    try:
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise SiclError(f"{cfg_path}{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if cfg is not None and not isinstance(cfg, dict):
        raise SiclError(f"{cfg_path}: expected a mapping of training settings")
    base = model or (cfg or {}).get("model") or json.loads(
        (adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise SiclError(f"{adapter}: no base model recorded (no config.yaml); pass --model")
    from sicl.models.zoo import resolve_model

    base_dir = resolve_model(base, allow_download=allow_download)
    sha = weights_sha256(base_dir)
    public = _public_name(str(base))
    evals = find_evaluations(adapter)
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]  # folders this run creates
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))  # never a user's folder
    moved: list[Path] = []
    try:
        if merge:
            _write_merged(base_dir, adapter, tmp, dtype)
        else:
            shutil.copyfile(adapter / "adapter_model.safetensors", tmp / "adapter_model.safetensors")
            acfg = json.loads((adapter / "adapter_config.json").read_text())
            acfg["base_model_name_or_path"] = public
            atomic_write_text(tmp / "adapter_config.json", json.dumps(acfg, indent=2, sort_keys=True) + "\n")
        if cfg:
            atomic_write_text(tmp / "training_config.yaml", yaml.safe_dump(_scrub(cfg), sort_keys=False))
        atomic_write_text(tmp / "sicl_export.json", json.dumps(
            {"base_model": public, "base_weights_sha256": sha, "merged": merge, "evaluations": evals},
            indent=2) + "\n")
        atomic_write_text(tmp / "README.md", _card(public, sha, _scrub(cfg) if cfg else None, evals, merge))
        for f in tmp.rglob("*"):  # safetensors writes 0600, copies keep the source's mode, mkdtemp is 0700
            plain_mode(f)
        if out.exists():  # an empty folder the user made (maybe the current one): keep it, move the files in
            if any(out.iterdir()):
                raise SiclError(f"--out {out}: something was written into it during the export; nothing changed")
            for f in sorted(tmp.iterdir()):
                f.rename(out / f.name)
                moved.append(out / f.name)
            tmp.rmdir()
        else:
            plain_mode(tmp)
            tmp.rename(out)
    except BaseException:
        for f in moved:
            if f.is_dir() and not f.is_symlink():
                shutil.rmtree(f)
            else:
                f.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:  # deepest first; only while empty (never another writer's files)
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return out


def _write_merged(base_dir: Path, adapter: Path, out: Path, dtype: str) -> None:
    import torch

    from sicl.models.registry import load_backbone

    bb = load_backbone(str(base_dir), adapter=str(adapter), dtype=getattr(torch, dtype))
    model = bb.model
    if not hasattr(model, "merge_and_unload"):
        raise SiclError(f"{adapter}: not a PEFT adapter on this model")
    merged = model.merge_and_unload()
    if not hasattr(merged, "save_pretrained"):
        raise SiclError(f"{base_dir}: this model family cannot be saved as a merged transformers folder")
    for f in base_dir.iterdir():  # tokenizer, processor, chat template, generation config ... (never remote code)
        if f.is_file() and f.name not in _NOT_COPIED and not f.name.endswith((".safetensors", ".bin", ".py")):
            shutil.copy2(f, out / f.name)
    merged.save_pretrained(str(out), safe_serialization=True)
