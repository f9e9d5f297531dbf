"""LoRA on the language model only (SICL-AT: r=8, alpha=32; towers, projector and embeddings frozen).

The audio tower (and Qwen2.5-Omni's vision tower) use the same ``q_proj``/``gate_proj``... names as the
LLM, so a suffix list would silently adapt them too. Targets are a regex anchored on the decoder layers
of the language model (``model.language_model.layers.N`` in transformers 5, ``model.layers.N`` in older
thinker layouts), which matches nothing inside a tower.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from sicl.errors import SiclError
from sicl.models.weights import check_safetensors

#: Every linear layer of the LLM's decoder blocks (attention and MLP).
LLM_LINEAR_REGEX = (r"^(?:.*\.)?(?:language_model|model)\.layers\.\d+\."
                    r"(?:self_attn\.(?:q|k|v|o)_proj|mlp\.(?:gate|up|down)_proj)$")
#: Attention projections only (fewer parameters; a common cheaper choice).
LLM_ATTENTION_REGEX = r"^(?:.*\.)?(?:language_model|model)\.layers\.\d+\.self_attn\.(?:q|k|v|o)_proj$"
TARGETS = {"all-linear": LLM_LINEAR_REGEX, "attention": LLM_ATTENTION_REGEX}
#: Name fragments of modules that must never train.
FROZEN_GROUPS = ("audio_tower", "visual", "multi_modal_projector", "embed_tokens")


@dataclass
class LoraSettings:
    r: int = 8  # rank (SICL-AT: 8)
    alpha: int = 32  # scaling numerator (SICL-AT: 32)
    dropout: float = 0.05  # dropout on the LoRA input (not published; a common default)
    targets: str = "all-linear"  # "all-linear", "attention", or a regex over module names

    def target_regex(self) -> str:
        return TARGETS.get(self.targets, self.targets)

    def targets_problem(self) -> str | None:
        """Why ``targets`` cannot select modules of any model (None when it can): empty, or not a regex."""
        import re

        if not self.targets.strip():
            return f"is empty; use {', '.join(TARGETS)} or a regex over module names"
        try:
            re.compile(self.target_regex())
        except re.error as e:
            return f"{self.targets!r} is not a valid regex ({e}); use {', '.join(TARGETS)} or a regex over module names"
        return None


def lora_targets(model: Any, settings: LoraSettings) -> list[str]:
    """The module names ``settings.targets`` selects in ``model`` (peft matches a string target as a regex over
    the whole name). A regex that selects nothing, or a module inside a tower, the projector or the embeddings,
    is a one-line :class:`SiclError` naming ``lora.targets``."""
    import re

    problem = settings.targets_problem()
    if problem:
        raise SiclError(f"lora.targets {problem}")
    rx = re.compile(settings.target_regex())
    names = [n for n, _ in model.named_modules() if n and rx.fullmatch(n)]
    shown = repr(settings.targets) + (f" ({settings.target_regex()})" if settings.targets in TARGETS else "")
    if not names:
        example = next((n for n, _ in model.named_modules() if re.fullmatch(LLM_LINEAR_REGEX, n)), None)
        hint = f", e.g. {example!r}" if example else ""
        raise SiclError(f"lora.targets {shown} matches no module of the model: it is a regex over whole module "
                        f"names{hint} ({', '.join(TARGETS)} are shortcuts)")
    frozen = next((n for n in names if any(g in n for g in FROZEN_GROUPS)), None)
    if frozen is not None:
        raise SiclError(f"lora.targets {shown} matches {frozen!r}, which stays frozen (towers, projector and "
                        f"embeddings are not trained); anchor the regex on the language model's decoder layers, "
                        f"as all-linear does")
    modules = dict(model.named_modules())
    other = next((n for n in names if not isinstance(modules[n], _LORA_LAYERS)), None)
    if other is not None:
        inner = next((n for n, m in modules.items() if n.startswith(other + ".") and isinstance(m, torch.nn.Linear)),
                     None)
        hint = f"match the linear layers inside it (e.g. {inner!r})" if inner else "match linear layers"
        raise SiclError(f"lora.targets {shown} matches {other!r}, a {type(modules[other]).__name__}, which LoRA "
                        f"does not adapt; {hint}")
    return names


#: module types peft's LoRA adapts (transformers' GPT-2 style Conv1D is a linear layer too)
_LORA_LAYERS: tuple[type, ...] = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d,
                                  torch.nn.Conv3d, torch.nn.MultiheadAttention)
try:
    from transformers.pytorch_utils import Conv1D as _HFConv1D

    _LORA_LAYERS = (*_LORA_LAYERS, _HFConv1D)
except ImportError:  # pragma: no cover - transformers without it
    pass


def apply_lora(model: Any, settings: LoraSettings | None = None) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters; everything but the adapters is frozen. Targets that select no
    module, a frozen one or one LoRA cannot adapt are a one-line :class:`SiclError` naming ``lora.targets``."""
    s = settings or LoraSettings()
    lora_targets(model, s)
    config = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=s.target_regex(),
                        bias="none", task_type="CAUSAL_LM")
    with _quiet_peft():
        try:
            peft_model = get_peft_model(model, config)
        except ValueError as e:  # e.g. a module type LoRA does not support (a norm layer)
            raise SiclError(f"lora.targets {s.targets!r}: {str(e).splitlines()[0][:200]}") from None
    _freeze_all_but_lora(peft_model)
    check_towers_untouched(peft_model)
    return peft_model


def check_adapter_files(path: str | Path) -> dict[str, Any]:
    """Read a saved adapter folder's ``adapter_config.json`` and its safetensors header without loading any
    weights; a broken or truncated file is a one-line error naming it. Returns the adapter config."""
    import json

    path = Path(path)
    cfg_file = path / "adapter_config.json"
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiclError(f"{path}: not a PEFT adapter (no adapter_config.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SiclError(f"{cfg_file}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise SiclError(f"{cfg_file}: expected a JSON object")
    if str(cfg.get("peft_type", "")).upper() != "LORA":
        found = f"peft_type {cfg['peft_type']!r}" if "peft_type" in cfg else "no peft_type"
        raise SiclError(f"{cfg_file}: {found}; sicl loads LoRA adapters (peft_type \"LORA\") only")
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise SiclError(f"{path}: no adapter_model.safetensors (sicl saves and loads adapters as safetensors only)")
    check_safetensors(weights)
    return cfg


@contextmanager
def _quiet_peft() -> Iterator[None]:
    """PEFT reads ``model.is_gradient_checkpointing``, which transformers 5 deprecates with a FutureWarning on
    every adapter a command attaches; the warning is about the two libraries, not the user's run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


#: how peft words the warning for adapter weights the model expects but the file lacks
_PEFT_MISSING_KEYS = "Found missing adapter keys"


def load_adapter(model: Any, path: str | Path, trainable: bool = False) -> PeftModel:
    """Attach a saved adapter folder (``adapter_config.json`` + safetensors). An adapter that does not fit the
    model (target modules it lacks, tensors of another shape, LoRA weights under names the model does not have,
    or LoRA on a tower) is a one-line :class:`SiclError` naming the adapter folder and the mismatch."""
    import re

    check_adapter_files(path)
    where = f"adapter {path}"
    with _quiet_peft(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=trainable)
        except RuntimeError as e:  # torch's load_state_dict: "size mismatch for NAME: copying a param with shape"
            m = re.search(r"size mismatch for (\S+): copying a param with shape torch\.Size\((\[[^]]*\])\) from "
                          r"checkpoint, the shape in current model is torch\.Size\((\[[^]]*\])\)", str(e))
            if m is None:
                raise SiclError(f"{where}: does not fit the model ({str(e).splitlines()[0][:200]})") from None
            raise SiclError(f"{where}: does not fit the model: {m.group(1)} is {m.group(2)} in the adapter, "
                            f"{m.group(3)} in the model (trained on another base model, or adapter_config.json's "
                            f"r does not match the weights)") from None
        except (ValueError, KeyError, TypeError) as e:  # e.g. target modules the model does not have
            raise SiclError(f"{where}: does not fit the model ({str(e).splitlines()[0][:200]})") from None
    for w in caught:
        text = str(w.message)
        if text.startswith(_PEFT_MISSING_KEYS):
            first = re.search(r"\['([^']+)'", text)
            count = text.count("', '") + 1
            raise SiclError(f"{where}: does not fit the model: {count} LoRA tensor(s) the model expects are not in "
                            f"adapter_model.safetensors (first {first.group(1) if first else '?'}); its tensor names "
                            f"are for another model layout")
        if "is_gradient_checkpointing" not in text:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if trainable:
        _freeze_all_but_lora(peft_model)
    try:
        check_towers_untouched(peft_model)
    except RuntimeError as e:
        raise SiclError(f"{where}: puts LoRA where sicl keeps the model frozen ({e}); its target_modules must "
                        f"match the language model's decoder layers only") from None
    return peft_model.eval() if not trainable else peft_model


def save_adapter(model: PeftModel, path: str | Path) -> Path:
    """Write only the adapter weights (safetensors) and config, readable like any other file sicl writes
    (safetensors itself leaves its files 0600)."""
    from sicl.atomic import plain_mode

    path = Path(path)
    model.save_pretrained(str(path), safe_serialization=True)
    for weights in [path / "adapter_model.safetensors", *path.glob("*/adapter_model.safetensors")]:
        if weights.is_file():
            plain_mode(weights)
    return path


def check_towers_untouched(model: Any) -> None:
    """Raise if a LoRA module sits inside a tower, the projector or the embeddings, or if any of their
    parameters is trainable."""
    for name, p in model.named_parameters():
        if any(g in name for g in FROZEN_GROUPS) and ("lora_" in name or p.requires_grad):
            raise RuntimeError(f"LoRA reached a frozen module: {name}")


def parameter_group(name: str) -> str:
    """Report group for a parameter name."""
    if "lora_" in name:
        return "lora"
    for frag, group in (("audio_tower", "audio_tower"), ("visual", "vision_tower"),
                        ("multi_modal_projector", "projector"), ("embed_tokens", "embeddings"),
                        ("lm_head", "lm_head")):
        if frag in name:
            return group
    return "language_model" if ".layers." in name or name.endswith("norm.weight") else "other"


def trainable_parameters_by_group(model: Any) -> dict[str, dict[str, int]]:
    """``{group: {"trainable": n, "total": n}}`` over :func:`parameter_group` groups."""
    out: dict[str, dict[str, int]] = {}
    for name, p in model.named_parameters():
        g = out.setdefault(parameter_group(name), {"trainable": 0, "total": 0})
        g["total"] += p.numel()
        if p.requires_grad:
            g["trainable"] += p.numel()
    return out


def _freeze_all_but_lora(model: Any) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)


class _LoraLinear(torch.autograd.Function):
    """``y = x @ (W + s B A)^T + bias`` with LoRA's low-rank gradients: forward is one matmul; backward is
    one matmul for ``dx`` plus four rank-r products for ``dA``, ``dB`` (never the full ``dW``)."""

    @staticmethod
    def forward(ctx: Any, x: Any, weight: Any, bias: Any, a: Any, b: Any, scaling: float) -> Any:
        w = torch.addmm(weight, b, a, alpha=scaling)
        ctx.save_for_backward(x, w, a, b)
        ctx.scaling = scaling
        return torch.nn.functional.linear(x, w, bias)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        x, w, a, b = ctx.saved_tensors
        s = ctx.scaling
        g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
        dx = (g2 @ w).view(x.shape) if ctx.needs_input_grad[0] else None
        # Rank-r products in the (r, N) orientation: several times faster on CPU than (N, r).
        da = ((b.t() @ g2.t()) @ x2).mul_(s) if ctx.needs_input_grad[3] else None
        db = ((a @ x2.t()) @ g2).t().mul(s) if ctx.needs_input_grad[4] else None
        return dx, None, None, da, db, None


def _merged_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    """``base(x) + B(A(dropout(x))) * s`` with identity dropout, as :class:`_LoraLinear`: the same function
    and gradients as peft's forward, one matmul instead of three plus element-wise passes over the
    output. Installed by :func:`merged_lora_forward` only where it is exact."""
    name = self.active_adapters[0]
    base = self.base_layer
    return _LoraLinear.apply(x, base.weight, base.bias, self.lora_A[name].weight, self.lora_B[name].weight,
                             float(self.scaling[name]))


def _mergeable(m: Any) -> bool:
    import torch.nn as nn
    from peft.tuners.lora.layer import Linear as LoraLinear

    if type(m) is not LoraLinear or m.disable_adapters or m.merged or len(m.active_adapters) != 1:
        return False
    name = m.active_adapters[0]
    if name not in m.lora_A or getattr(m, "lora_variant", {}).get(name) is not None:
        return False
    a, b, base = m.lora_A[name].weight, m.lora_B[name].weight, m.base_layer
    return (isinstance(m.lora_dropout[name], nn.Identity) and type(base) is nn.Linear
            and tuple(base.weight.shape) == (b.shape[0], a.shape[1]) and base.weight.dtype == a.dtype
            and not base.weight.requires_grad
            and (base.bias is None or not base.bias.requires_grad))



class merged_lora_forward:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Within the block, LoRA linears without dropout run as one matmul with the merged weight
    ``W + scaling * B @ A`` and low-rank gradients (:class:`_LoraLinear`). Exact up to float rounding;
    modules where it would not be (dropout > 0, DoRA or other variants, several active adapters, sharded,
    quantised or trainable base weights, autocast) keep peft's forward. Backward needs no module forward, so leaving the block before
    ``loss.backward()`` is fine (gradient checkpointing, which re-runs forwards, is not: do not combine)."""

    def __init__(self, model: Any, enabled: bool = True) -> None:
        self.model = model
        self.enabled = enabled
        self.patched: list[Any] = []

    def __enter__(self) -> merged_lora_forward:
        autocast = any(torch.is_autocast_enabled(d) for d in ("cpu", "cuda"))
        if self.enabled and not autocast:  # under autocast, peft's forward (mixed precision casts)
            import types

            for m in self.model.modules():
                if _mergeable(m):
                    m.forward = types.MethodType(_merged_forward, m)
                    self.patched.append(m)
        return self

    def __exit__(self, *exc: Any) -> None:
        for m in self.patched:
            del m.forward
        self.patched.clear()
