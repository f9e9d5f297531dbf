"""Built-in models and model resolution.

``resolve_model`` accepts a built-in name (``tiny-omni``, shipped inside the package under
``sicl/zoo/<name>/``), a local folder, or a Hugging Face hub id. Hub downloads happen only when allowed
(``allow_download=True``, ``--allow-download`` on the CLI, or ``SICL_ALLOW_DOWNLOAD=1``), so nothing is
fetched behind the user's back on offline machines.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sicl.errors import SiclError

ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
BUILTINS: dict[str, str] = {
    "tiny-omni": "a ~8 M-parameter Qwen2.5-Omni thinker pretrained on the synthetic world (v8: open vocabulary, "
                 "several clips per prompt, in-context copying, contextual ASR, and chats whose clips share words)",
}
ENV_ALLOW = "SICL_ALLOW_DOWNLOAD"


@dataclass
class ModelInfo:
    name: str
    path: Path
    description: str
    has_weights: bool
    parameters: int | None
    bytes_on_disk: int


def builtin_path(name: str) -> Path:
    return ZOO_DIR / name


def download_allowed(allow_download: bool = False) -> bool:
    return allow_download or os.environ.get(ENV_ALLOW, "").strip().lower() in ("1", "true", "yes")


def resolve_model(name_or_path: str | os.PathLike, allow_download: bool = False) -> Path:
    """Local folder holding a Hugging Face model for a built-in name, a path, or (if allowed) a hub id."""
    key = str(name_or_path)
    if key in BUILTINS:
        path = builtin_path(key)
        if not _has_weights(path):
            raise SiclError(f"built-in model {key!r} has no weights at {path}; build it with "
                            "`sicl pretrain configs/pretrain/tiny-omni.yaml ship_to=" + str(path) + "`")
        return path
    path = Path(key).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise SiclError(f"{path}: not a model folder (no config.json)")
        return path
    if key.startswith((".", "/", "~")) or key.count("/") != 1:
        raise SiclError(f"{key}: no such built-in model ({', '.join(BUILTINS)}) or folder")
    if not download_allowed(allow_download):
        raise SiclError(f"{key!r} looks like a Hugging Face hub id, and downloads are off: pass --allow-download "
                        f"or set {ENV_ALLOW}=1 (or give a local folder)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(key))
    except Exception as e:  # network, auth, missing repo: all user-fixable
        raise SiclError(f"{key}: download failed ({str(e).splitlines()[0][:200]})") from None


def list_builtins() -> list[ModelInfo]:
    return [describe(name) for name in BUILTINS]


def describe(name: str) -> ModelInfo:
    path = builtin_path(name)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0
    return ModelInfo(name, path, BUILTINS[name], _has_weights(path), _param_count(path), size)


def install_model(src: Path, dest: Path, metrics: dict[str, Any] | None = None) -> Path:
    """Copy a saved model folder (weights, tokenizer, processor) to ``dest`` and write its card."""
    import tempfile

    from sicl.atomic import plain_mode
    from sicl.models.registry import load_backbone

    src, dest = Path(src), Path(dest)
    if src.resolve() == dest.resolve():
        raise SiclError(f"{src}: source and destination are the same folder")
    # The folder replaces a working built-in: load it once (a known family, complete safetensors weights that fit
    # its config, a tokenizer and processor; built-ins are small) before anything of the old one is touched.
    load_backbone(src.resolve())  # an absolute path: a folder named like a built-in is still this folder
    if metrics is None and (src / "metrics.json").exists():
        try:
            metrics = json.loads((src / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            metrics = None  # a torn metrics file only loses the card's numbers
        metrics = metrics if isinstance(metrics, dict) else None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.installing-", dir=dest.parent))
    old = dest.with_name(f".{dest.name}.replaced-{os.getpid()}")
    try:
        for f in src.iterdir():
            if f.is_file() and f.name not in ("metrics.json",):
                shutil.copy2(f, tmp / f.name)
        if metrics:
            slim = {k: v for k, v in metrics.items() if k not in ("history",)}
            (tmp / "metrics.json").write_text(json.dumps(slim, indent=1))
        (tmp / "README.md").write_text(_card(tmp, metrics or {}))
        plain_mode(tmp)  # mkdtemp makes it 0700
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not dest.exists():
            old.rename(dest)  # put the previous built-in back
        raise
    shutil.rmtree(old, ignore_errors=True)
    return dest


def _card(dest: Path, metrics: dict[str, Any]) -> str:
    cfg = metrics.get("config") or {}
    v2 = cfg.get("source") == "sicl.data.synth.pretrain_items"
    what = ("continued from tiny-omni v1 on open-vocabulary synthetic speech (8,000 everyday words, about 12 % "
            "of them never spoken, to measure open-vocabulary transcription), multi-turn chats with several "
            "unrelated clips, and text-only copying data, with a wide voice population; child speech and the "
            "child domains' words never spoken" if v2 else
            "pretrained from scratch on synthetic adult speech (ASR, ST into the constructed language Zexi, "
            "SQA, AQA); child domains never seen")
    what = cfg.get("description") or what
    lines = [f"# {cfg.get('name') or 'tiny-omni' + (' v2' if v2 else '')}", "",
             f"A tiny `Qwen2_5OmniThinkerForConditionalGeneration` trained by `sicl pretrain`: {what}. "
             "See docs/tiny-omni.md.", "",
             f"Parameters: {_param_count(dest) or 'unknown'}", ""]
    train = metrics.get("train")
    if train:
        lines += [f"Training: {train.get('step')} steps, {train.get('examples')} examples, "
                  f"{train.get('minutes', 0):.1f} min on {metrics.get('device', '?')}", ""]
    if metrics.get("eval"):
        lines += ["| held-out set | metric | value | n |", "|---|---|---|---|"]
        for name, res in metrics["eval"].items():
            for m in ("wer", "bleu", "acc", "new_word_hit", "wer_ctx", "hit_ctx", "wer_alone", "hit_alone"):
                if m in res:
                    extra = f" (chance {res['chance']})" if "chance" in res else ""
                    extra += f" (k={res['k']} random demonstrations)" if "k" in res else ""
                    lines.append(f"| {name} | {m} | {res[m]}{extra} | {res['n']} |")
    return "\n".join(lines) + "\n"


def _has_weights(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and any(path.glob("model*.safetensors"))


def _param_count(path: Path) -> int | None:
    """Parameter count from safetensors headers (no tensors are loaded)."""
    files = sorted(path.glob("model*.safetensors")) if path.is_dir() else []
    if not files:
        return None
    total = 0
    for f in files:
        try:
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                if n > 100_000_000:  # not a safetensors header
                    return None
                header = json.loads(fh.read(n))
            for key, meta in header.items():
                if key != "__metadata__":
                    count = 1
                    for d in meta["shape"]:
                        count *= d
                    total += count
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            return None  # truncated or corrupt: the listing shows "-", loading it says what is wrong
    return total
