"""Episode rendering, forward and generation for ChatML audio LLMs (Qwen2.5-Omni thinker, Qwen2-Audio).

Both families share the mechanics: the processor's own chat template renders the turns, each audio item
becomes ``<|audio_bos|><|AUDIO|><|audio_eos|>`` (Qwen2-Audio prefixes ``Audio N:``), ``<|AUDIO|>`` is
repeated once per tower output frame (about 25 per second), and the tower's outputs replace those
placeholders' embeddings. What differs (model class, how the tower is called, how features are padded)
is a :class:`FamilySpec`; a family module builds :class:`ChatAudioBackbone` with its spec.

Layout of an episode (k demos, query)::

    [system] user(audio_1, instr_1) assistant(answer_1) ... user(audio_q, instr_q) assistant(answer_q)

Labels are ``-100`` everywhere except ``answer_q`` and its ``<|im_end|>``; the span is found in the
tokenised sequence (last ``<|im_start|>assistant\\n`` header -> next ``<|im_end|>``), before padding, so
padding side and per-episode k cannot shift it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sicl.data.audio import SAMPLE_RATE, load_audio
from sicl.episodes import prompts
from sicl.errors import AudioError, SiclError
from sicl.models.backbone import IGNORE_INDEX, Batch, positions, sequence_losses, task_limit

HOP_LENGTH = 160


def load_checked(model_class: Any, path: Any, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(path, **kwargs)`` that refuses weights which do not fit the config: a tensor
    missing from the checkpoint (transformers would initialise it at random and only print a table) or one whose
    shape differs is a one-line :class:`SiclError` naming the folder and the first such tensor."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report table; the problems it lists are raised below as one line
    try:
        model, info = model_class.from_pretrained(str(path), output_loading_info=True, ignore_mismatched_sizes=True,
                                                  **kwargs)
    finally:
        hf_logging.set_verbosity(level)
    mismatched = list(info.get("mismatched_keys") or [])
    if mismatched:
        first = mismatched[0]
        shapes = (f": checkpoint {list(first[1])}, config.json {list(first[2])}"
                  if isinstance(first, (tuple, list)) and len(first) == 3 else "")
        name = first[0] if isinstance(first, (tuple, list)) else first
        raise SiclError(f"{path}: weights do not fit config.json ({len(mismatched)} tensor(s) of another shape, "
                        f"first {name}{shapes})")
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise SiclError(f"{path}: weights are incomplete ({len(missing)} tensor(s) of the model missing from the "
                        f"checkpoint, first {missing[0]}); a truncated download or a checkpoint of another model?")
    return model


@dataclass(frozen=True)
class FamilySpec:
    """What differs between ChatML audio LLM families."""

    family: str
    #: ``encode(model, input_features, feature_attention_mask) -> [(n_i, hidden)]``: the tower's output per
    #: clip, projected into the LLM's embedding space (at least n_i rows; extra rows are dropped).
    encode: Callable[[Any, torch.Tensor, torch.Tensor], list[torch.Tensor]]
    #: Qwen2-Audio's tower only accepts features padded to the full 30 s window.
    pad_features_to_window: bool = False


def audio_tokens_for_frames(mel_frames: int) -> int:
    """Placeholders for ``mel_frames`` valid mel frames (conv stride 2, then 2x pooling): both families."""
    return ((mel_frames - 1) // 2 + 1 - 2) // 2 + 1


class ChatAudioBackbone:
    """:class:`~sicl.models.backbone.Backbone` for ChatML audio LLMs (see module docstring)."""

    audio_tokens_per_second = SAMPLE_RATE / HOP_LENGTH / 4  # 100 mel frames/s, 4x reduction -> 25

    def __init__(self, model: Any, processor: Any, spec: FamilySpec, preset: str = "plain",
                 system: str | None = None, max_audio_seconds: float = 30.0) -> None:
        self.model = model
        self.processor = processor
        self.spec = spec
        self.family = spec.family
        self.preset = preset
        self.system = system  # None: the chat template's default system turn
        self.max_audio_seconds = max_audio_seconds
        self.tokenizer = processor.tokenizer
        self.chat_template = processor.chat_template
        tok = self.tokenizer
        self.audio_token = getattr(processor, "audio_token", None) or "<|AUDIO|>"
        self.audio_token_id = tok.convert_tokens_to_ids(self.audio_token)
        self.im_start_id = tok.convert_tokens_to_ids("<|im_start|>")
        self.im_end_id = tok.convert_tokens_to_ids("<|im_end|>")
        self.eot_id = self.im_end_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids(
            "<|endoftext|>")
        self.header_ids = tok("assistant\n", add_special_tokens=False)["input_ids"]

    # ----------------------------------------------------------------- audio
    def num_audio_tokens(self, n_samples: int) -> int:
        return audio_tokens_for_frames(math.ceil(n_samples / HOP_LENGTH))

    def features(self, wavs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mel features (N, M, T) and frame mask (N, T). Padded to the longest clip (plus a few frames, so
        every clip's last frame sees zeros exactly as under 30 s padding) unless the family needs 30 s."""
        longest = max(len(w) for w in wavs)
        for w in wavs:
            self._check_length(len(w))
        window = int(self.max_audio_seconds * SAMPLE_RATE)
        if self.spec.pad_features_to_window:
            length = window
        else:
            length = min(window, (math.ceil(longest / HOP_LENGTH) + 3) * HOP_LENGTH)
        out = self.processor.feature_extractor(
            [np.asarray(w, dtype=np.float32) for w in wavs], sampling_rate=SAMPLE_RATE, padding="max_length",
            max_length=max(length, longest), truncation=False, return_attention_mask=True, return_tensors="pt")
        return out["input_features"], out["attention_mask"].long()

    @torch.no_grad()
    def encode_audio(self, wavs: Sequence[np.ndarray], names: Sequence[str] | None = None) -> list[torch.Tensor]:
        """The frozen tower's output per clip, (n_i, hidden), ready to replace that clip's placeholders."""
        if not wavs:
            return []
        for i, w in enumerate(wavs):
            self._check_length(len(w), names[i] if names is not None else "clip")
        feats, mask = self.features(wavs)
        dtype = self._dtype()
        padded = self.spec.encode(self._base(), feats.to(self._device(), dtype), mask.to(self._device()))
        counts = [audio_tokens_for_frames(int(m)) for m in mask.sum(-1)]
        return [p[:n].detach() for p, n in zip(padded, counts, strict=True)]

    # ------------------------------------------------------------- rendering
    def render(self, episodes: Sequence[Any], with_labels: bool = True, padding_side: str = "right",
               tower_outputs: Mapping[str, torch.Tensor] | None = None,
               wavs: Mapping[str, np.ndarray] | None = None) -> Batch:
        """Episodes -> :class:`Batch`. With ``tower_outputs`` (example id -> :meth:`encode_audio` output),
        the batch carries those embeddings instead of features (missing clips are encoded now)."""
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        rows, label_rows, clips, clip_ids = [], [], [], []
        for ep in episodes:
            exs = list(ep.demos) + [ep.query]
            audio = [self._clip(ex, tower_outputs, wavs) for ex in exs]
            counts = [a.shape[0] if isinstance(a, torch.Tensor) else self.num_audio_tokens(len(a)) for a in audio]
            ids = self._tokenize(ep, counts, with_labels)
            rows.append(ids)
            label_rows.append(self._labels(ids, ep) if with_labels else None)
            clips += audio
            clip_ids += [ex.id for ex in exs]
        batch = Batch(input_ids=torch.empty(0), attention_mask=torch.empty(0), padding_side=padding_side,
                      clip_ids=clip_ids, tasks=[ep.query.task for ep in episodes],
                      episode_ids=[ep.id for ep in episodes])
        batch.input_ids, batch.attention_mask = _pad(rows, self.pad_id, padding_side)
        if with_labels:
            batch.labels, _ = _pad(label_rows, IGNORE_INDEX, padding_side)
        if tower_outputs is not None:
            missing = [i for i, c in enumerate(clips) if not isinstance(c, torch.Tensor)]
            fresh = self.encode_audio([clips[i] for i in missing])
            for i, t in zip(missing, fresh, strict=True):
                clips[i] = t
            batch.audio_embeds = clips
            batch.audio_tokens = [c.shape[0] for c in clips]
        else:
            batch.input_features, batch.feature_attention_mask = self.features(clips)
            batch.audio_tokens = [audio_tokens_for_frames(int(m)) for m in batch.feature_attention_mask.sum(-1)]
        n_placeholders = int((batch.input_ids == self.audio_token_id).sum())
        if n_placeholders != sum(batch.audio_tokens):
            raise SiclError(f"rendered {n_placeholders} audio placeholders for {sum(batch.audio_tokens)} frames")
        return batch

    def messages(self, episode: Any, with_labels: bool) -> list[dict[str, Any]]:
        """Chat messages for one episode (audio items carry the example id, for readability only)."""
        msgs: list[dict[str, Any]] = []
        if self.system is not None:
            msgs.append({"role": "system", "content": self.system})
        for ex in episode.demos:
            msgs.append(self._user(ex))
            msgs.append({"role": "assistant", "content": self._answer(ex, "demonstration")})
        msgs.append(self._user(episode.query))
        if with_labels:
            msgs.append({"role": "assistant", "content": self._answer(episode.query, "query")})
        return msgs

    def prompt_text(self, episode: Any, with_labels: bool = True) -> str:
        """The rendered chat text with one ``<|AUDIO|>`` per clip (before expansion): for docs and logs."""
        return self.tokenizer.apply_chat_template(self.messages(episode, with_labels), tokenize=False,
                                                  chat_template=self.chat_template,
                                                  add_generation_prompt=not with_labels)

    # ---------------------------------------------------------------- running
    def batch_tensors(self, batch: Batch) -> dict[str, Any]:
        """``audio_embeds`` (cached tower outputs) or ``input_features`` + ``feature_attention_mask``."""
        if batch.audio_embeds is not None:
            return {"audio_embeds": batch.audio_embeds}
        return {"input_features": batch.input_features, "feature_attention_mask": batch.feature_attention_mask}

    def model_inputs(self, input_ids: torch.Tensor, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """With ``audio_embeds``: ``inputs_embeds`` = token embeddings with the cached tower outputs spliced
        into the ``<|AUDIO|>`` placeholders (frozen, so callers may run it outside a DDP wrapper). Without:
        ``input_ids`` and mel features, for the model's own tower."""
        dev = self._device()
        ids = input_ids.to(dev)
        if tensors.get("audio_embeds") is not None:
            return {"inputs_embeds": self.embed(ids, tensors["audio_embeds"])}
        return {"input_ids": ids, "input_features": tensors["input_features"].to(dev, self._dtype()),
                "feature_attention_mask": tensors["feature_attention_mask"].to(dev)}

    def embed(self, ids: torch.Tensor, audio: Sequence[torch.Tensor]) -> torch.Tensor:
        """Token embeddings (B, L, D) with ``audio`` (tower outputs, in prompt order) replacing the
        ``<|AUDIO|>`` placeholders; a count mismatch is an error."""
        embeds = self.model.get_input_embeddings()(ids)
        if audio:
            flat = torch.cat([a.to(embeds.device, embeds.dtype) for a in audio])
            mask = (ids == self.audio_token_id).unsqueeze(-1)
            if int(mask.sum()) != flat.shape[0]:
                raise SiclError(f"{int(mask.sum())} audio placeholders but {flat.shape[0]} cached frames")
            embeds = embeds.masked_scatter(mask, flat)
        return embeds

    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits (B, L, V). Positions come from the attention mask, so left and right padding agree."""
        am = batch.attention_mask.to(self._device())
        kw = self.model_inputs(batch.input_ids, self.batch_tensors(batch))
        return self.model(**kw, attention_mask=am, position_ids=positions(am), use_cache=False).logits

    def loss(self, batch: Batch) -> torch.Tensor:
        """Per-episode mean cross-entropy over the query answer tokens, (B,)."""
        return sequence_losses(self.forward(batch), batch.labels.to(self._device()))

    def generate(self, episodes: Sequence[Any], max_new_tokens: int | Mapping[str, int] | None = None,
                 tower_outputs: Mapping[str, torch.Tensor] | None = None, **gen_kwargs: Any) -> list[str]:
        """Raw generated text per episode (special tokens dropped); see :func:`extract_answers`."""
        rows = self.generate_ids(episodes, max_new_tokens, tower_outputs, **gen_kwargs)
        return [self.decode(r) for r in rows]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def generate_ids(self, episodes: Sequence[Any], max_new_tokens: int | Mapping[str, int] | None = None,
                     tower_outputs: Mapping[str, torch.Tensor] | None = None, **gen_kwargs: Any) -> list[list[int]]:
        """Greedy (unless ``gen_kwargs`` say otherwise), left-padded, stops at ``<|im_end|>``. The batch runs
        to the largest budget; each episode keeps at most its task's budget (greedy rows do not depend on
        each other, so this equals generating each task group separately)."""
        limits = [task_limit(max_new_tokens, ep.query.task) for ep in episodes]
        batch = self.render(episodes, with_labels=False, padding_side="left", tower_outputs=tower_outputs)
        return self.generate_batch(batch, limits, **gen_kwargs)

    @torch.no_grad()
    def generate_batch(self, batch: Batch, limits: Sequence[int], **gen_kwargs: Any) -> list[list[int]]:
        """``transformers`` ``generate`` on a left-padded batch (see the protocol)."""
        dev = self._device()
        ids, am = batch.input_ids.to(dev), batch.attention_mask.to(dev)
        kwargs: dict[str, Any] = dict(max_new_tokens=max(limits), do_sample=False,
                                      eos_token_id=[self.im_end_id], pad_token_id=self.pad_id)
        kwargs.update(gen_kwargs)
        inputs = self.model_inputs(batch.input_ids, self.batch_tensors(batch))
        inputs["input_ids"] = ids  # with inputs_embeds too: generate then returns prompt + new tokens
        out = self.model.generate(**inputs, attention_mask=am, **kwargs)
        new = out[:, ids.shape[1]:]
        rows = []
        for row, limit in zip(new.tolist(), limits, strict=True):
            row = row[:limit]
            if self.im_end_id in row:
                row = row[: row.index(self.im_end_id)]
            rows.append([t for t in row if t != self.pad_id])
        return rows

    def decoder_layers(self) -> list[torch.nn.Module]:
        return list(_language_model(self._base()).layers)

    def output_head(self) -> torch.nn.Module:
        return self.model.get_output_embeddings()

    # -------------------------------------------------------------- internals
    def _clip(self, ex: Any, tower_outputs: Mapping[str, torch.Tensor] | None,
              wavs: Mapping[str, np.ndarray] | None) -> np.ndarray | torch.Tensor:
        if tower_outputs is not None and ex.id in tower_outputs:
            return tower_outputs[ex.id]
        if wavs is not None and ex.id in wavs:
            wav = np.asarray(wavs[ex.id], dtype=np.float32)
            self._check_length(len(wav), ex.id)
            return wav
        return load_audio(ex.audio, max_seconds=self.max_audio_seconds)

    def _check_length(self, n_samples: int, name: str = "clip") -> None:
        if n_samples > self.max_audio_seconds * SAMPLE_RATE:
            raise AudioError(f"{name}: audio is {n_samples / SAMPLE_RATE:.2f} s, longer than the "
                             f"{self.max_audio_seconds:g} s window of {self.family} (it would be truncated)")
        if n_samples == 0:
            raise AudioError(f"{name}: audio is empty")
        if self.num_audio_tokens(n_samples) < 1:  # the model would get the clip's markers and no audio at all
            raise AudioError(f"{name}: audio is {n_samples / SAMPLE_RATE * 1000:.3g} ms, too short for {self.family}'s "
                             f"audio tower (no audio token for less than {(2 * HOP_LENGTH + 1) / SAMPLE_RATE * 1000:.3g} ms)")

    def _user(self, ex: Any) -> dict[str, Any]:
        text = prompts.example_instruction(ex, self.preset)
        return {"role": "user", "content": [{"type": "audio", "audio": ex.id}, {"type": "text", "text": text}]}

    def _answer(self, ex: Any, role: str) -> str:
        if not ex.target:
            raise SiclError(f"{role} {ex.id!r} has no target, so it cannot be rendered with its answer")
        return prompts.answer_text(ex.target, ex.task, self.preset)

    def _tokenize(self, episode: Any, counts: list[int], with_labels: bool) -> list[int]:
        text = self.prompt_text(episode, with_labels)
        parts = text.split(self.audio_token)
        if len(parts) - 1 != len(counts):
            raise SiclError(f"episode {episode.id!r}: template wrote {len(parts) - 1} audio slots for "
                            f"{len(counts)} clips")
        pieces = zip(counts, parts[1:], strict=True)
        expanded = parts[0] + "".join(self.audio_token * n + p for n, p in pieces)
        return self.tokenizer(expanded, add_special_tokens=False)["input_ids"]

    def _labels(self, ids: list[int], episode: Any) -> list[int]:
        """-100 except the last assistant turn's content and its end-of-turn token."""
        starts = [i for i, t in enumerate(ids) if t == self.im_start_id]
        h = len(self.header_ids)
        if not starts or ids[starts[-1] + 1: starts[-1] + 1 + h] != self.header_ids:
            raise SiclError(f"episode {episode.id!r}: last turn is not '<|im_start|>assistant\\n'")
        first = starts[-1] + 1 + h
        try:
            last = ids.index(self.im_end_id, first)
        except ValueError:
            raise SiclError(f"episode {episode.id!r}: answer has no end-of-turn token") from None
        labels = [IGNORE_INDEX] * len(ids)
        labels[first: last + 1] = ids[first: last + 1]
        return labels

    def _base(self) -> Any:
        # A PEFT wrapper keeps the towers untouched; call them on the underlying model.
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def _language_model(model: Any) -> Any:
    """The decoder stack (``.layers``) of a Qwen2.5-Omni thinker or Qwen2-Audio model."""
    for path in ("model.language_model", "model", "language_model.model", "language_model"):
        m = model
        for part in path.split("."):
            m = getattr(m, part, None)
        if m is not None and isinstance(getattr(m, "layers", None), torch.nn.ModuleList):
            return m
    raise SiclError(f"{type(model).__name__}: no language model decoder layers found")


def extract_answers(texts: Sequence[str], episodes: Sequence[Any], preset: str = "plain") -> list[str]:
    """The shared train/test answer extraction: :func:`sicl.episodes.prompts.extract_answer` per query."""
    pairs = zip(texts, episodes, strict=True)
    return [prompts.extract_answer(t, preset, ep.query.choices) for t, ep in pairs]


def _pad(rows: list[list[int]], value: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, sl] = torch.tensor(r, dtype=torch.long)
        mask[i, sl] = 1
    return ids, mask
