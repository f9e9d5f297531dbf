"""The answer-only forward of the training loss: model surgery that is exact for the loss and its gradients.

SICL-AT's loss reads the logits of the query answer only (~5% of an episode's positions).
:class:`answer_positions_only` makes the vocabulary projection (and optionally the last decoder layer's
queries, attention output and MLP) run at those positions only; :func:`prunable_last_layer` says which
layer that can be. The sibling for LoRA's cost is :func:`sicl.models.lora.merged_lora_forward`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch

from sicl.errors import SiclError
from sicl.models.backbone import IGNORE_INDEX


def right_padded(am: torch.Tensor) -> bool:
    """Every row is real tokens then padding (so a causal mask alone hides the padding)."""
    lengths = am.sum(1, keepdim=True)
    return bool((am == (torch.arange(am.shape[1], device=am.device) < lengths)).all())


class answer_positions_only:  # noqa: N801 - a context manager
    """While active, the LM head sees only the hidden states that predict a labelled token (the query
    answer: ~5% of an episode), so the vocabulary projection and log-softmax skip every other position
    (the big memory saving for a 152k vocabulary). :meth:`losses` then equals
    :func:`~sicl.models.backbone.sequence_losses` on full logits. ``head=None`` disables it.

    With ``last_layer`` (the LM's last decoder layer, see :func:`prunable_last_layer`), that layer too runs
    its query projection, attention output, output projection and MLP only at the union over the batch of
    those positions (keys and values still at every position): nothing after it looks at other positions."""

    def __init__(self, head: Any, labels: torch.Tensor, last_layer: Any = None) -> None:
        self.head, self.labels, self.layer = head, labels, last_layer
        self.rows = self.cols = None
        self.handles: list[Any] = []

    def __enter__(self) -> answer_positions_only:
        if self.head is None:
            return self
        self.rows, self.cols = (self.labels[:, 1:] != IGNORE_INDEX).nonzero(as_tuple=True)
        keep = pick = None
        if self.layer is not None and self.rows.numel():
            keep = torch.unique(self.cols)  # sorted union of positions over the batch
            pick = torch.searchsorted(keep, self.cols)
            layer, keep_ = self.layer, keep

            def pruned(*args: Any, **kwargs: Any) -> Any:
                return _pruned_layer_forward(layer, keep_.to(args[0].device), *args, **kwargs)

            layer.forward = pruned
        cols = pick if pick is not None else self.cols

        def hook(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            return (args[0][self.rows.to(args[0].device), cols.to(args[0].device)], *args[1:])

        self.handles.append(self.head.register_forward_pre_hook(hook))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        if self.layer is not None and "forward" in vars(self.layer):
            del self.layer.forward

    def losses(self, logits: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Per-episode mean cross-entropy (B,) from the picked logits (N, V)."""
        rows = self.rows.to(logits.device)
        targets = self.labels.to(logits.device)[rows, self.cols.to(logits.device) + 1]
        tok = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
        sums = torch.zeros(batch_size, dtype=tok.dtype, device=tok.device).index_add(0, rows, tok)
        counts = torch.bincount(rows, minlength=batch_size)
        return sums / counts.clamp(min=1)


_PRUNABLE_LAYERS = ("Qwen2_5OmniDecoderLayer", "Qwen2DecoderLayer")


def prunable_last_layer(layers: Sequence[Any]) -> Any:
    """The last of ``layers`` (a language model's decoder layers, e.g.
    :meth:`~sicl.models.backbone.Backbone.decoder_layers`) if :func:`_pruned_layer_forward` knows its
    structure (Qwen2 / Qwen2.5-Omni text layers, full attention, SDPA or eager), else ``None``."""
    if not layers or type(layers[-1]).__name__ not in _PRUNABLE_LAYERS:
        return None
    last = layers[-1]
    attn = getattr(last, "self_attn", None)
    cfg = getattr(attn, "config", None)
    ok = (attn is not None and getattr(attn, "sliding_window", None) is None
          and getattr(cfg, "_attn_implementation", None) in ("sdpa", "eager")
          and all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling"))
          and all(hasattr(last, n) for n in ("input_layernorm", "post_attention_layernorm", "mlp")))
    return last if ok else None


def _pruned_layer_forward(layer: Any, keep: torch.Tensor, hidden_states: torch.Tensor, *args: Any,
                          position_embeddings: Any = None, cache: Any = None, **kwargs: Any) -> torch.Tensor:
    """The decoder layer's forward for the query positions ``keep`` only: (B, len(keep), D). Keys/values
    at every position; causal attention (right-padded batches: a kept real position sees only real keys)."""
    if cache is not None or position_embeddings is None:
        raise SiclError("pruned last layer: needs rotary embeddings and no KV cache")
    rope = sys.modules[type(layer).__module__].apply_rotary_pos_emb
    attn = layer.self_attn
    b, n, _ = hidden_states.shape
    hd = attn.head_dim
    normed = layer.input_layernorm(hidden_states)
    q = attn.q_proj(normed[:, keep]).view(b, keep.numel(), -1, hd).transpose(1, 2)
    k = attn.k_proj(normed).view(b, n, -1, hd).transpose(1, 2)
    v = attn.v_proj(normed).view(b, n, -1, hd).transpose(1, 2)
    cos, sin = position_embeddings
    q = rope(q, q, cos[:, keep], sin[:, keep])[0]
    k = rope(k, k, cos, sin)[0]
    mask = torch.arange(n, device=keep.device)[None, :] <= keep[:, None]  # (Q, N): causal
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, scale=attn.scaling, enable_gqa=q.shape[1] != k.shape[1])
    out = attn.o_proj(out.transpose(1, 2).reshape(b, keep.numel(), -1))
    h = hidden_states[:, keep] + out
    return h + layer.mlp(layer.post_attention_layernorm(h))
