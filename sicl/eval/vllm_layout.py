"""Model and adapter folders in the layout vLLM's native Qwen2.5-Omni thinker loads.

vLLM registers Qwen2.5-Omni under the released checkpoint's architecture names (``Qwen2_5OmniModel`` /
``Qwen2_5OmniForConditionalGeneration``): a ``config.json`` of ``model_type`` ``qwen2_5_omni`` with the thinker's
config nested under ``thinker_config``, weights named ``thinker.*``, and a ``preprocessor_config.json`` whose
``processor_class`` is ``Qwen2_5OmniProcessor``. A thinker-only folder (tiny-omni, ``model_type``
``qwen2_5_omni_thinker``, processor ``SiclOmniProcessor``) is not recognised natively: vLLM falls back to its
generic Transformers backend and stops on the processor. :func:`vllm_model_dir` writes the released layout next
to the evaluation cache (same weights, renamed; the same tokenizer, chat template and Whisper front end), keyed
by the weights' SHA-256, and returns a released-layout folder unchanged.

LoRA: sicl's adapters (PEFT, trained on transformers 5 modules) name their layers
``base_model.model.model.language_model.layers.N...``; vLLM maps an adapter's names with the checkpoint's rules
(``thinker.model.layers.N...``). :func:`vllm_adapter_dir` rewrites the names (weights unchanged) and lists the
adapted modules by name instead of sicl's regex, which vLLM does not read.

Pure file work (json + safetensors): it runs in the vLLM environment or the main one alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sicl.errors import SiclError

#: Architecture vLLM's registry maps to its native Qwen2.5-Omni thinker.
ARCHITECTURE = "Qwen2_5OmniForConditionalGeneration"
PROCESSOR_CLASS = "Qwen2_5OmniProcessor"
#: Qwen2-VL image-processor keys the released preprocessor_config.json carries (Qwen2_5OmniProcessor builds
#: its image/video halves from them; sicl never sends images).
IMAGE_KEYS: dict[str, Any] = {
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "max_pixels": 12845056, "min_pixels": 3136,
    "merge_size": 2, "patch_size": 14, "temporal_patch_size": 2,
}
#: Layout version: bump when the written folder changes, so old cache entries are not reused.
LAYOUT_VERSION = 1
_COPIED = ("tokenizer.json", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
           "generation_config.json", "special_tokens_map.json", "added_tokens.json")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir or os.environ.get("SICL_CACHE") or Path.home() / ".cache" / "sicl") / "vllm"


def is_native(folder: Path) -> bool:
    """True for a folder vLLM loads as its native Qwen2.5-Omni (released layout + Qwen's processor)."""
    cfg = _json(folder / "config.json")
    pre = folder / "preprocessor_config.json"
    return (cfg.get("model_type") == "qwen2_5_omni" and pre.is_file()
            and _json(pre).get("processor_class") == PROCESSOR_CLASS)


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiclError(f"{path}: missing") from None
    except json.JSONDecodeError as e:
        raise SiclError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def _sha256(files: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for f in sorted(files):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _publish(tmp: Path, dest: Path) -> Path:
    """Move a finished folder into place atomically (a concurrent writer's identical copy wins)."""
    try:
        os.replace(tmp, dest)
    except OSError:
        if not (dest / ".complete").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def vllm_model_dir(folder: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """A folder vLLM loads natively for the model in ``folder`` (returned as is when already native)."""
    src = Path(folder)
    if is_native(src):
        return src
    cfg = _json(src / "config.json")
    if cfg.get("model_type") != "qwen2_5_omni_thinker":
        raise SiclError(f"{src}: the vllm backend runs Qwen2.5-Omni models (model_type qwen2_5_omni or "
                       f"qwen2_5_omni_thinker), not {cfg.get('model_type')!r}")
    weights = sorted(src.glob("model*.safetensors"))
    if not weights:
        raise SiclError(f"{src}: no model*.safetensors weights")
    key = _sha256(weights, f"layout={LAYOUT_VERSION}")[:16]
    dest = cache_root(cache_dir) / f"model-{src.resolve().name}-{key}"
    if (dest / ".complete").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        _write_model(src, cfg, weights, tmp)
        (tmp / ".complete").write_text(json.dumps({"source": str(src.resolve()), "layout": LAYOUT_VERSION}) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, dest)



def _write_model(src: Path, thinker: dict[str, Any], weights: list[Path], out: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    thinker = {k: v for k, v in thinker.items() if k not in ("architectures", "transformers_version")}
    full = {"architectures": [ARCHITECTURE], "model_type": "qwen2_5_omni", "enable_audio_output": False,
            "thinker_config": thinker, "dtype": thinker.get("dtype", "bfloat16")}
    (out / "config.json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    tensors = {}
    for f in weights:
        with safe_open(str(f), "pt") as fh:
            for name in fh.keys():  # noqa: SIM118 (safe_open has keys(), not __iter__)
                tensors["thinker." + name] = fh.get_tensor(name)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    for name in _COPIED:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    tok = _json(src / "tokenizer_config.json")
    tok["processor_class"] = PROCESSOR_CLASS
    (out / "tokenizer_config.json").write_text(json.dumps(tok, indent=2) + "\n", encoding="utf-8")
    proc = src / "processor_config.json"
    fe = _json(proc).get("feature_extractor") if proc.is_file() else None
    if fe is None and (src / "preprocessor_config.json").is_file():
        fe = _json(src / "preprocessor_config.json")
    if not fe:
        raise SiclError(f"{src}: no feature-extractor settings (processor_config.json or preprocessor_config.json)")
    pre = {**fe, **IMAGE_KEYS, "processor_class": PROCESSOR_CLASS}
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------- adapters
#: transformers 5 module names of the thinker (as PEFT saves them) -> the released checkpoint's names.
_ADAPTER_RENAMES = ((re.compile(r"^base_model\.model\.model\.language_model\."), "base_model.model.thinker.model."),
                    (re.compile(r"^base_model\.model\.model\.(?=layers\.)"), "base_model.model.thinker.model."),
                    (re.compile(r"^base_model\.model\.lm_head\."), "base_model.model.thinker.lm_head."))
_MODULE = re.compile(r"\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.lora_[AB]\.")


def vllm_adapter_dir(adapter: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> tuple[Path, int]:
    """The adapter rewritten for vLLM's LoRA (cached by content) and its rank."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = Path(adapter)
    cfg_path, weights = src / "adapter_config.json", src / "adapter_model.safetensors"
    if not weights.is_file():
        raise SiclError(f"--adapter {src}: no adapter_model.safetensors (the vllm backend reads safetensors only)")
    cfg = _json(cfg_path)
    rank = int(cfg.get("r") or 0)
    if rank <= 0:
        raise SiclError(f"{cfg_path}: no LoRA rank r")
    key = _sha256([cfg_path, weights], f"layout={LAYOUT_VERSION}")[:16]
    dest = cache_root(cache_dir) / f"adapter-{src.resolve().name}-{key}"
    if (dest / ".complete").is_file():
        return dest, rank
    tensors, modules = {}, set()
    with safe_open(str(weights), "pt") as fh:
        for name in fh.keys():  # noqa: SIM118
            new = name
            for pattern, repl in _ADAPTER_RENAMES:
                new = pattern.sub(repl, new)
            if not new.startswith("base_model.model.thinker.model.layers."):
                raise SiclError(f"--adapter {src}: tensor {name!r} is outside the language model's decoder layers; "
                                f"the vllm backend serves LoRA on those layers only")
            m = _MODULE.search(new)
            if m is None:
                raise SiclError(f"--adapter {src}: tensor {name!r} is not a LoRA A/B weight of a projection")
            modules.add(m.group(1))
            tensors[new] = fh.get_tensor(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        save_file(tensors, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        out_cfg = {**cfg, "target_modules": sorted(modules)}
        (tmp / "adapter_config.json").write_text(json.dumps(out_cfg, indent=2) + "\n", encoding="utf-8")
        (tmp / ".complete").write_text(json.dumps({"source": str(src.resolve())}) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, dest), rank
