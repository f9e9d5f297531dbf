"""Where models run: ``auto`` is the first CUDA device when there is one, else the CPU (the tested path here).
On a GPU the helper models (pseudo-labelers, audio embedders) run in bf16; on the CPU in fp32."""

from __future__ import annotations

from sicl.errors import SiclError


def resolve_device(device: str | None = "auto") -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise SiclError(f"device {device!r} requested, but torch sees no CUDA device (use --device cpu or auto)")
    if str(device) not in ("cpu", "mps") and not str(device).startswith("cuda"):
        raise SiclError(f"unknown device {device!r} (expected auto, cpu, cuda or cuda:N)")
    return str(device)


def helper_dtype(device: str) -> str:
    """dtype name for models that only run inference for retrieval: bf16 on CUDA, fp32 elsewhere."""
    return "bfloat16" if device.startswith("cuda") else "float32"
