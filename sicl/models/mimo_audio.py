"""MiMo-Audio (XiaomiMiMo/MiMo-Audio-7B-Base / -Instruct) through the backbone protocol, text out only.

Written from the published architecture, not from the reference code:

- every LLM position carries one text-channel token and a *patch* of ``group_size`` (4) audio frames x
  ``audio_channels`` (8) RVQ codebooks. Text positions have every codebook set to that codebook's "empty"
  id; audio positions have the text token ``<|empty|>``. An audio clip is ``<|sosp|>``, one position per 4
  code frames (the last frame repeated to fill the final patch), ``<|eosp|>``.
- input embedding = text embedding (zero for ``<|empty|>``) + patch embedding, where the patch embedding
  is: sum over codebooks of ``speech_embeddings[c]`` (empty ids contribute zero) per frame, a small
  transformer over the 4 frames of the patch (``input_local_transformer``, bidirectional when
  ``input_full_attention``), the 4 frame vectors concatenated and projected by ``speech_group_downcast``.
  Text positions get no patch embedding.
- a Qwen2 LLM (``model``, transformers' own modules) and ``lm_head`` over every position (training), with
  the loss on the query's answer span of the text channel only; greedy decoding of text tokens.
- the audio-generating patch decoder (``local_transformer``, ``local_transformer_lm_heads``,
  ``hidden_states_downcast``, ``speech_embeddings_to_local``) is recognised in the checkpoint and skipped.

Audio enters as RVQ codes: a folder of ``<audio_hash>.npy`` or ``<audio_hash>.safetensors`` (tensor
``codes``), shape (frames, >= 8) integers, keyed by :func:`sicl.data.audio.audio_hash` of the clip's 16 kHz
decode (``sicl codes`` fills it). :meth:`MimoAudioBackbone.encode_audio` reads them; a clip without codes is
encoded on the fly (and its codes stored in the folder) when an audio tokenizer is configured
(:mod:`sicl.models.mimo_tokenizer`: ``audio_tokenizer=``, ``$SICL_MIMO_TOKENIZER``, or an
``audio_tokenizer/`` folder inside the model folder), else it is a one-line error naming the clip and
``sicl codes``. ``render(tower_outputs={example_id: codes})`` takes codes directly.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, GenerationMixin, Qwen2Config
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.qwen2.modeling_qwen2 import (
    Qwen2DecoderLayer,
    Qwen2Model,
    Qwen2PreTrainedModel,
    Qwen2RMSNorm,
    Qwen2RotaryEmbedding,
)

from sicl.atomic import atomic_open
from sicl.data.audio import SAMPLE_RATE, audio_hash, load_audio
from sicl.episodes import prompts
from sicl.errors import AudioError, SiclError
from sicl.models.backbone import IGNORE_INDEX, Batch, positions, sequence_losses, task_limit
from sicl.models.weights import safetensors_files

FAMILY = "mimo_audio"
CODE_FRAMES_PER_SECOND = 25.0
#: MiMo-Audio-Tokenizer front end: waveform rate, mel hop, and mel frames per code frame (stride-2 conv, then
#: an average pool of 2), as in its released config and encoder code.
TOKENIZER_RATE, TOKENIZER_HOP, MEL_FRAMES_PER_CODE = 24_000, 240, 4
#: Checkpoint prefixes of the audio-generating patch decoder: present in MiMo-Audio checkpoints, unused here.
DECODER_PREFIXES = ("local_transformer.", "local_transformer_lm_heads.", "hidden_states_downcast.",
                    "speech_embeddings_to_local.")
SPECIAL = ("<|sosp|>", "<|eosp|>", "<|empty|>", "<|sostm|>", "<|eostm|>", "<|eot|>", "<|im_start|>", "<|im_end|>")
FORMATS = ("base", "chat")
THINK_OFF = "<think>\n\n</think>\n"


def parse_list(value: Any, n: int) -> list[int]:
    """A MiMo-Audio config value per codebook: ``"a-b-c..."`` or one value for all ``n``."""
    if isinstance(value, str) and "-" in value:
        out = [int(v) for v in value.split("-")]
    else:
        out = [int(value)] * n
    if len(out) != n:
        raise SiclError(f"expected {n} values, got {value!r}")
    return out


def patch_encoder_config(config: Qwen2Config) -> Qwen2Config:
    """The input local transformer's config: MiMo-Audio derives it from the main config."""
    d = config.to_dict()
    dim = int(getattr(config, "input_local_dim", None) or config.local_dim)
    heads = int(config.local_attn_heads)
    d.update(hidden_size=dim, num_hidden_layers=int(config.input_local_layers), num_attention_heads=heads,
             num_key_value_heads=heads, head_dim=dim // heads, intermediate_size=dim * 4,
             attention_dropout=float(getattr(config, "local_attn_dropout", 0.0)), layer_types=None,
             use_sliding_window=False)
    d.pop("model_type", None)
    cfg = Qwen2Config(**d)
    cfg._attn_implementation = config._attn_implementation
    return cfg


class PatchEncoder(nn.Module):
    """Transformer over the ``group_size`` frames of one patch (parameter names as MiMo-Audio's
    ``input_local_transformer``: ``layers.N.*`` and ``norm``)."""

    def __init__(self, config: Qwen2Config, causal: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Qwen2DecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = Qwen2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = Qwen2RotaryEmbedding(config)
        self.causal = causal
        for layer in self.layers:
            layer.self_attn.is_causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, G, D)
        pos = torch.arange(x.shape[1], device=x.device).unsqueeze(0).expand(x.shape[0], -1)
        pe = self.rotary_emb(x, pos)
        mask = None
        if self.causal:
            g = x.shape[1]
            tri = torch.ones(g, g, dtype=torch.bool, device=x.device).tril()
            mask = torch.zeros(g, g, dtype=x.dtype, device=x.device).masked_fill(~tri, torch.finfo(x.dtype).min)
            mask = mask[None, None].expand(x.shape[0], 1, g, g)
        for layer in self.layers:
            out = layer(x, attention_mask=mask, position_ids=pos, position_embeddings=pe)
            x = out[0] if isinstance(out, tuple) else out
        return self.norm(x)


class MimoAudioTextModel(Qwen2PreTrainedModel, GenerationMixin):
    """MiMo-Audio's input side + LLM + text head (parameter names as the released checkpoints)."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__(config)
        self.group_size = int(config.group_size)
        self.audio_channels = int(config.audio_channels)
        self.speech_vocab_sizes = parse_list(config.speech_vocab_size, self.audio_channels)
        self.speech_empty_ids = parse_list(config.speech_zeroemb_idx, self.audio_channels)
        self.model = Qwen2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        pcfg = patch_encoder_config(config)
        self.input_local_transformer = PatchEncoder(pcfg, causal=not bool(getattr(config, "input_full_attention",
                                                                                   False)))
        self.speech_embeddings = nn.ModuleList([
            nn.Embedding(n, pcfg.hidden_size, padding_idx=e)
            for n, e in zip(self.speech_vocab_sizes, self.speech_empty_ids, strict=True)])
        self.speech_group_downcast = nn.Linear(pcfg.hidden_size * self.group_size, config.hidden_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def embed(self, text_ids: torch.Tensor, speech_ids: torch.Tensor | None, empty_id: int) -> torch.Tensor:
        """``text_ids`` (B, L); ``speech_ids`` (B, L, G, C) codes (empty ids on text positions) or None."""
        is_empty = text_ids == empty_id
        emb = self.model.embed_tokens(text_ids.masked_fill(is_empty, 0))
        emb = emb.masked_fill(is_empty.unsqueeze(-1), 0.0)
        if speech_ids is None or not bool(is_empty.any()):
            return emb
        codes = speech_ids[is_empty]  # (N, G, C): audio positions only (text positions add zero)
        frames = 0
        for c, table in enumerate(self.speech_embeddings):
            ids = codes[..., c]
            e = table(ids).masked_fill((ids == self.speech_empty_ids[c]).unsqueeze(-1), 0.0)
            frames = frames + e
        patches = self.input_local_transformer(frames)  # (N, G, D)
        patch = self.speech_group_downcast(patches.reshape(patches.shape[0], -1))
        return emb.masked_scatter(is_empty.unsqueeze(-1), patch.to(emb.dtype))

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                speech_ids: torch.Tensor | None = None, **kwargs: Any) -> CausalLMOutputWithPast:
        """Text logits at every position (``.logits``, B x L x V); no cache, no loss."""
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, speech_ids, int(self.config.empty_idx))
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=False)
        return CausalLMOutputWithPast(logits=self.lm_head(out.last_hidden_state))


@dataclass
class MimoBatch(Batch):
    """:class:`Batch` plus ``speech_ids`` (B, L, group_size, audio_channels) long: each position's patch of
    codes (codebook empty ids on text positions). ``input_ids`` is the text channel."""

    speech_ids: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> MimoBatch:
        moved = {f.name: (getattr(self, f.name).to(device) if isinstance(getattr(self, f.name), torch.Tensor)
                          else getattr(self, f.name)) for f in fields(self)}
        return MimoBatch(**moved)


def codes_file(codes_dir: str | Path, key: str) -> Path | None:
    """The file holding ``key``'s codes in ``codes_dir`` (``.npy`` before ``.safetensors``), or None."""
    d = Path(codes_dir)
    for suffix in (".npy", ".safetensors"):
        if (d / f"{key}{suffix}").is_file():
            return d / f"{key}{suffix}"
    return None


def read_codes(codes_dir: str | Path, key: str) -> np.ndarray | None:
    """Codes stored for ``key`` (an audio hash) in ``codes_dir``: (frames, channels) int64, or None. A file that
    cannot be read (truncated, pickled, no ``codes`` tensor, not integers) is an :class:`AudioError` naming it."""
    path = codes_file(codes_dir, key)
    if path is None:
        return None
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            from safetensors.numpy import load_file

            arr = load_file(str(path)).get("codes")
            if arr is None:
                raise ValueError("no tensor named 'codes'")
    except Exception as e:  # ValueError (pickles, short data), EOFError, OSError, safetensors' own error
        raise AudioError(f"{path}: cannot read MiMo-Audio codes ({str(e).splitlines()[0][:160]}); delete it "
                         f"and rerun `sicl codes`") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.integer):
        raise AudioError(f"{path}: MiMo-Audio codes must be integers, not {getattr(arr, 'dtype', type(arr))}; "
                         f"delete it and rerun `sicl codes`")
    return arr.astype(np.int64)


def write_codes(codes_dir: str | Path, wav: np.ndarray, codes: np.ndarray | torch.Tensor) -> Path:
    """Store a clip's RVQ codes (frames, channels) under its audio hash, as .npy, atomically."""
    d = Path(codes_dir)
    d.mkdir(parents=True, exist_ok=True)
    arr = codes.cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    path = d / f"{audio_hash(wav)}.npy"
    with atomic_open(path, "wb") as fh:  # never a half-written .npy
        np.save(fh, arr.astype(np.int64), allow_pickle=False)
    return path


def has_codes(codes_dir: str | Path, key: str) -> bool:
    """Whether ``codes_dir`` holds codes for ``key`` (an audio hash), as .npy or .safetensors."""
    return codes_file(codes_dir, key) is not None


def code_frames(n_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Code frames MiMo-Audio's tokenizer gives a clip of ``n_samples`` at ``sample_rate``: resampled to
    24 kHz (torchaudio keeps ceil(n x 24000 / rate) samples), a centred STFT with hop 240 gives
    1 + n24 // 240 mel frames, and each code frame covers 4 of them, rounded up (its 6000-frame segments are
    multiples of 4, so segmenting changes nothing). Checked against the reference code by
    tests/fixtures/mimo/check_pinned.py."""
    n24 = -(-n_samples * TOKENIZER_RATE // sample_rate)
    return -(-(1 + n24 // TOKENIZER_HOP) // MEL_FRAMES_PER_CODE)


class MimoAudioBackbone:
    """:class:`~sicl.models.backbone.Backbone` for MiMo-Audio. ``prompt_format``: ``base`` (the few-shot
    continuation format of MiMo-Audio-7B-Base) or ``chat`` (MiMo-Audio-7B-Instruct's ChatML turns)."""

    family = FAMILY
    audio_tokens_per_second = CODE_FRAMES_PER_SECOND / 4

    def __init__(self, model: MimoAudioTextModel, tokenizer: Any, preset: str = "plain",
                 prompt_format: str = "base", codes_dir: str | Path | None = None,
                 max_audio_seconds: float = 300.0, audio_tokenizer: str | Path | None = None) -> None:
        if prompt_format not in FORMATS:
            raise SiclError(f"prompt_format must be one of {FORMATS}, not {prompt_format!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.processor = tokenizer
        self.preset = preset
        self.prompt_format = prompt_format
        self.codes_dir = Path(codes_dir) if codes_dir is not None else None
        #: a MiMo-Audio-Tokenizer folder that encodes clips without cached codes (loaded on first use)
        self.audio_tokenizer = Path(audio_tokenizer) if audio_tokenizer is not None else None
        self._codec: Any = None
        self.max_audio_seconds = max_audio_seconds
        cfg = model.config
        self.group_size = int(cfg.group_size)
        self.audio_channels = int(cfg.audio_channels)
        self.speech_empty_ids = parse_list(cfg.speech_zeroemb_idx, self.audio_channels)
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
        missing = [t for t, i in ids.items() if i is None or i == tokenizer.unk_token_id]
        if missing:
            raise SiclError(f"tokenizer lacks MiMo-Audio special tokens {missing}")
        self.sosp_id, self.eosp_id, self.empty_id = ids["<|sosp|>"], ids["<|eosp|>"], ids["<|empty|>"]
        self.im_start_id, self.im_end_id = ids["<|im_start|>"], ids["<|im_end|>"]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.im_end_id
        #: what ends an answer: ``<|im_end|>`` (chat) or a blank line (base); generation stops after it
        self.stop_ids = self._tok("<|im_end|>" if prompt_format == "chat" else "\n\n")
        self.eot_id = self.stop_ids[-1]
        cfg.empty_idx = self.empty_id

    # ----------------------------------------------------------------- audio
    def num_audio_tokens(self, n_samples: int) -> int:
        """LLM positions of a clip: <|sosp|> + one per 4 code frames + <|eosp|>."""
        return math.ceil(code_frames(n_samples) / self.group_size) + 2

    def encode_audio(self, wavs: Sequence[np.ndarray], names: Sequence[str] | None = None) -> list[torch.Tensor]:
        """Each clip's RVQ codes (frames, audio_channels) from the code cache (keyed by audio hash); a clip
        without codes goes through the audio tokenizer when one is configured (its codes are then stored)."""
        out = []
        for i, w in enumerate(wavs):
            name = names[i] if names is not None else f"clip {i}"
            self._check_length(len(w), name)
            key = audio_hash(w)
            codes = read_codes(self.codes_dir, key) if self.codes_dir is not None else None
            if codes is not None:
                name = f"{name}: codes {codes_file(self.codes_dir, key)}"
            if codes is None and self.audio_tokenizer is not None:
                codes = self._encode_now(w, name)
            if codes is None:
                where = self.codes_dir or "(no code cache configured)"
                raise AudioError(f"{name}: no MiMo-Audio codes for audio hash {key} in {where} and no audio "
                                 f"tokenizer configured; run `sicl codes --data MANIFEST --out {where} --tokenizer "
                                 f"TOKENIZER_DIR`, or give an audio tokenizer "
                                 f"(--audio-tokenizer, audio_tokenizer= in a training config, $SICL_MIMO_TOKENIZER "
                                 f"or MODEL/audio_tokenizer/) to encode on the fly")
            out.append(self._check_codes(torch.as_tensor(codes), name))
        return out

    def _encode_now(self, wav: np.ndarray, name: str) -> np.ndarray:
        if self._codec is None:
            from sicl.models.mimo_tokenizer import load_mimo_tokenizer

            self._codec = load_mimo_tokenizer(self.audio_tokenizer, device=self._device())
        try:
            codes = self._codec.encode(np.asarray(wav, dtype=np.float32), SAMPLE_RATE)
        except SiclError as e:
            raise AudioError(f"{name}: audio tokenizer {self.audio_tokenizer}: {e}") from None
        bad = [c for c, n in enumerate(self.speech_empty_ids)
               if c < codes.shape[1] and codes.shape[0] and int(codes[:, c].max()) >= n]
        if codes.ndim != 2 or codes.shape[1] < self.audio_channels or bad:
            raise AudioError(f"{name}: audio tokenizer {self.audio_tokenizer} gave codes {tuple(codes.shape)} "
                             f"that do not fit this model's {self.audio_channels} codebooks")
        if self.codes_dir is not None:
            try:
                write_codes(self.codes_dir, wav, codes)
            except OSError:
                pass  # a read-only cache: the codes still serve this run
        return codes

    def _check_codes(self, codes: torch.Tensor, name: str) -> torch.Tensor:
        if codes.ndim != 2 or codes.shape[1] < self.audio_channels or codes.shape[0] == 0:
            raise AudioError(f"{name}: codes must be (frames, >= {self.audio_channels}), got {tuple(codes.shape)}")
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise AudioError(f"{name}: codes must be integers, not {codes.dtype}")
        codes = codes[:, : self.audio_channels].long()
        # a code the embedding table does not have would crash deep in the forward pass (or, equal to the
        # "empty" id, be silently dropped): codes of another tokenizer or model
        for c, n in enumerate(self.speech_empty_ids):
            lo, hi = int(codes[:, c].min()), int(codes[:, c].max())
            if lo < 0 or hi >= n:
                raise AudioError(f"{name}: code {lo if lo < 0 else hi} in codebook {c} is outside this model's "
                                 f"0..{n - 1} (codes of another tokenizer or model?)")
        return codes

    def _check_length(self, n_samples: int, name: str) -> None:
        if n_samples == 0:
            raise AudioError(f"{name}: audio is empty")
        if n_samples > self.max_audio_seconds * SAMPLE_RATE:
            raise AudioError(f"{name}: audio is {n_samples / SAMPLE_RATE:.2f} s, longer than "
                             f"{self.max_audio_seconds:g} s")

    def _codes_for(self, ex: Any, tower_outputs: Mapping[str, torch.Tensor] | None,
                   wavs: Mapping[str, np.ndarray] | None) -> torch.Tensor:
        if tower_outputs is not None and ex.id in tower_outputs:
            return self._check_codes(torch.as_tensor(tower_outputs[ex.id]), ex.id)
        if wavs is not None and ex.id in wavs:
            wav = np.asarray(wavs[ex.id], dtype=np.float32)
        else:
            wav = load_audio(ex.audio, max_seconds=self.max_audio_seconds)
        return self.encode_audio([wav], names=[f"{ex.id} ({ex.audio})"])[0]

    # ------------------------------------------------------------- rendering
    def segments(self, episode: Any, with_labels: bool) -> list[tuple[str, Any]]:
        """The episode as ("text", str) / ("audio", example) / ("answer", str) / ("end", str) segments.
        Each text segment is tokenised on its own, as MiMo-Audio builds its prompts."""
        segs: list[tuple[str, Any]] = []
        if self.prompt_format == "base":
            # Few-shot continuation: "[Int]:" header, then per example: audio, question, answer, blank line.
            segs.append(("text", "[Int]:\n"))
            for ex in list(episode.demos) + [episode.query]:
                segs += [("audio", ex), ("text", f"\nQuestion: {prompts.example_instruction(ex, self.preset)}"
                                                 f"\nAnswer:")]
                if ex is not episode.query:
                    segs += [("text", " " + self._answer(ex, "demonstration")), ("text", "\n\n")]
            if with_labels:
                segs += [("answer", " " + self._answer(episode.query, "query")), ("end", "\n\n")]
            return segs
        for ex in list(episode.demos) + [episode.query]:
            segs += [("text", "<|im_start|>user\n"), ("audio", ex),
                     ("text", prompts.example_instruction(ex, self.preset)), ("text", "<|im_end|>\n"),
                     ("text", "<|im_start|>assistant\n"), ("text", THINK_OFF)]
            if ex is not episode.query:
                segs += [("text", self._answer(ex, "demonstration")), ("text", "<|im_end|>\n")]
        if with_labels:
            segs += [("answer", self._answer(episode.query, "query")), ("end", "<|im_end|>")]
        return segs

    def prompt_text(self, episode: Any, with_labels: bool = True) -> str:
        """Readable prompt: each clip shown as ``<|sosp|><audio:id><|eosp|>``."""
        return "".join(f"<|sosp|><audio:{v.id}><|eosp|>" if k == "audio" else v
                       for k, v in self.segments(episode, with_labels))

    def _answer(self, ex: Any, role: str) -> str:
        if not ex.target:
            raise SiclError(f"{role} {ex.id!r} has no target, so it cannot be rendered with its answer")
        return prompts.answer_text(ex.target, ex.task, self.preset)

    def _tok(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _episode_rows(self, episode: Any, with_labels: bool, tower_outputs: Any, wavs: Any
                      ) -> tuple[list[int], list[int], torch.Tensor, list[int]]:
        text: list[int] = []
        labels: list[int] = []
        patches: list[torch.Tensor] = []
        counts: list[int] = []
        empty_patch = torch.tensor(self.speech_empty_ids, dtype=torch.long).expand(self.group_size, -1)
        for kind, value in self.segments(episode, with_labels):
            if kind == "audio":
                codes = self._codes_for(value, tower_outputs, wavs)
                pad = (-codes.shape[0]) % self.group_size
                if pad:
                    codes = torch.cat([codes, codes[-1:].expand(pad, -1)])
                groups = codes.reshape(-1, self.group_size, self.audio_channels)
                n = groups.shape[0]
                text += [self.sosp_id] + [self.empty_id] * n + [self.eosp_id]
                labels += [IGNORE_INDEX] * (n + 2)
                patches += [empty_patch.unsqueeze(0), groups, empty_patch.unsqueeze(0)]
                counts.append(n + 2)
            else:
                ids = self._tok(value)
                text += ids
                labels += ids if kind in ("answer", "end") else [IGNORE_INDEX] * len(ids)
                patches.append(empty_patch.unsqueeze(0).expand(len(ids), -1, -1))
        return text, labels, torch.cat(patches), counts

    def render(self, episodes: Sequence[Any], with_labels: bool = True, padding_side: str = "right",
               tower_outputs: Mapping[str, torch.Tensor] | None = None,
               wavs: Mapping[str, np.ndarray] | None = None) -> MimoBatch:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        rows = [self._episode_rows(ep, with_labels, tower_outputs, wavs) for ep in episodes]
        width = max(len(r[0]) for r in rows)
        b = len(rows)
        ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        am = torch.zeros((b, width), dtype=torch.long)
        labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
        speech = torch.tensor(self.speech_empty_ids, dtype=torch.long).expand(b, width, self.group_size, -1).clone()
        counts: list[int] = []
        for i, (t, lab, sp, c) in enumerate(rows):
            sl = slice(width - len(t), width) if padding_side == "left" else slice(0, len(t))
            ids[i, sl] = torch.tensor(t)
            am[i, sl] = 1
            labels[i, sl] = torch.tensor(lab)
            speech[i, sl] = sp
            counts += c
        return MimoBatch(input_ids=ids, attention_mask=am, labels=labels if with_labels else None,
                         speech_ids=speech, audio_tokens=counts, padding_side=padding_side,
                         clip_ids=[ex.id for ep in episodes for ex in list(ep.demos) + [ep.query]],
                         tasks=[ep.query.task for ep in episodes], episode_ids=[ep.id for ep in episodes])

    # ---------------------------------------------------------------- running
    def _base(self) -> MimoAudioTextModel:
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def batch_tensors(self, batch: Batch) -> dict[str, Any]:
        """``speech_ids`` (B, L, group_size, audio_channels)."""
        return {"speech_ids": batch.speech_ids}

    def model_inputs(self, input_ids: torch.Tensor, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """``inputs_embeds``: text embeddings plus the patch embeddings of the codes (all frozen)."""
        dev = self._device()
        return {"inputs_embeds": self._base().embed(input_ids.to(dev), tensors["speech_ids"].to(dev), self.empty_id)}

    def forward(self, batch: MimoBatch) -> torch.Tensor:
        """Text logits at every position, (B, L, V). Positions count real tokens only."""
        am = batch.attention_mask.to(self._device())
        kw = self.model_inputs(batch.input_ids, self.batch_tensors(batch))
        return self._base()(**kw, attention_mask=am, position_ids=positions(am)).logits

    def loss(self, batch: MimoBatch) -> torch.Tensor:
        return sequence_losses(self.forward(batch), batch.labels.to(self._device()))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    def generate(self, episodes: Sequence[Any], max_new_tokens: int | Mapping[str, int] | None = None,
                 tower_outputs: Mapping[str, torch.Tensor] | None = None) -> list[str]:
        rows = self.generate_ids(episodes, max_new_tokens, tower_outputs)
        return [self.decode(r) for r in rows]

    def generate_ids(self, episodes: Sequence[Any], max_new_tokens: int | Mapping[str, int] | None = None,
                     tower_outputs: Mapping[str, torch.Tensor] | None = None) -> list[list[int]]:
        limits = [task_limit(max_new_tokens, ep.query.task) for ep in episodes]
        batch = self.render(episodes, with_labels=False, padding_side="left", tower_outputs=tower_outputs)
        return self.generate_batch(batch, limits)

    @torch.no_grad()
    def generate_batch(self, batch: Batch, limits: Sequence[int]) -> list[list[int]]:
        """Greedy text decoding with a KV cache; generated positions are text positions (no audio). Stops at
        the end-of-answer segment (``<|im_end|>`` for chat, a blank line for base)."""
        dev = self._device()
        base = self._base()
        am = batch.attention_mask.to(dev)
        embeds = self.model_inputs(batch.input_ids, self.batch_tensors(batch))["inputs_embeds"]
        stop = self.stop_ids
        cache = DynamicCache()
        pos = positions(am)
        out_rows: list[list[int]] = [[] for _ in limits]
        done = [False] * len(limits)
        for _step in range(max(limits)):
            out = base.model(inputs_embeds=embeds, attention_mask=am, position_ids=pos, use_cache=True,
                             **{_CACHE_ARG: cache})
            cache = out.past_key_values
            nxt = base.lm_head(out.last_hidden_state[:, -1]).argmax(-1)
            for i, t in enumerate(nxt.tolist()):
                if not done[i]:
                    out_rows[i].append(t)
                    if out_rows[i][-len(stop):] == stop or len(out_rows[i]) >= limits[i]:
                        done[i] = True
            if all(done):
                break
            embeds = base.embed(nxt[:, None], None, self.empty_id)
            am = torch.cat([am, am.new_ones(am.shape[0], 1)], 1)
            pos = pos[:, -1:] + 1
        rows = []
        for r, limit in zip(out_rows, limits, strict=True):
            r = r[:limit]
            if r[-len(stop):] == stop:
                r = r[: -len(stop)]
            rows.append([t for t in r if t not in (self.im_end_id, self.pad_id)])
        return rows

    def decoder_layers(self) -> list[torch.nn.Module]:
        return list(self._base().model.layers)

    def output_head(self) -> torch.nn.Module:
        return self._base().lm_head


#: transformers >= 5.2x renamed Qwen2Model's ``past_key_values`` argument to ``cache``.
_CACHE_ARG = "cache" if "cache" in inspect.signature(Qwen2Model.forward).parameters else "past_key_values"


# ------------------------------------------------------------------ loading
def is_mimo_config(cfg: Mapping[str, Any]) -> bool:
    """Whether a config.json's keys are MiMo-Audio's (a Qwen2 config plus the audio-patch keys)."""
    return all(k in cfg for k in ("group_size", "audio_channels", "speech_vocab_size", "speech_zeroemb_idx"))


def load_config(path: str | Path, attn_implementation: str | None = "sdpa") -> Qwen2Config:
    cfg_path = Path(path) / "config.json"
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SiclError(f"{cfg_path}: cannot read ({e})") from None
    if not isinstance(raw, dict) or not is_mimo_config(raw):
        raise SiclError(f"{path}: config.json is not a MiMo-Audio config (no group_size/audio_channels/"
                        f"speech_vocab_size); a plain Qwen2 LLM has no sicl backbone")
    raw = {k: v for k, v in raw.items() if k not in ("model_type", "architectures", "auto_map")}
    try:
        cfg = Qwen2Config(**raw)
        channels = int(cfg.audio_channels)
        if int(cfg.group_size) < 1 or channels < 1:
            raise ValueError("group_size and audio_channels must be >= 1")
        sizes = parse_list(cfg.speech_vocab_size, channels)
        empties = parse_list(cfg.speech_zeroemb_idx, channels)
        if any(not 0 <= e < n for e, n in zip(empties, sizes, strict=True)):
            raise ValueError(f"speech_zeroemb_idx {cfg.speech_zeroemb_idx!r} is outside speech_vocab_size "
                             f"{cfg.speech_vocab_size!r}")
        patch_encoder_config(cfg)
    except Exception as e:  # ValueError, TypeError, ZeroDivisionError, huggingface_hub's strict-dataclass errors
        raise SiclError(f"{cfg_path}: not a usable MiMo-Audio config ({' '.join(str(e).split())[:200]})") from None
    cfg._attn_implementation = attn_implementation or "eager"
    return cfg


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint (:func:`sicl.models.weights.safetensors_files`: the index's shards, never a pickle); a tensor in two files, or an unreadable file,
    is a one-line error naming the file."""
    from safetensors import safe_open

    sd: dict[str, torch.Tensor] = {}
    where: dict[str, Path] = {}
    for f in safetensors_files(path):
        try:
            with safe_open(str(f), framework="pt") as fh:
                for k in fh.keys():
                    if k in where:
                        raise SiclError(f"{f}: tensor {k} is also in {where[k].name} (a stale or stray shard?)")
                    sd[k] = fh.get_tensor(k)
                    where[k] = f
        except SiclError:
            raise
        except Exception as e:  # safetensors' own error type: truncated, empty or not a safetensors file
            raise SiclError(f"{f}: cannot read ({str(e).splitlines()[0][:160]})") from None
    return sd


def load_model(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               attn_implementation: str | None = "sdpa") -> MimoAudioTextModel:
    cfg = load_config(path, attn_implementation)
    try:
        with torch.device("meta"):
            model = MimoAudioTextModel(cfg)
    except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError) as e:
        raise SiclError(f"{Path(path) / 'config.json'}: not a usable MiMo-Audio config "
                        f"({' '.join(str(e).split())[:200]})") from None
    sd = read_state_dict(path)
    keep = {k: v for k, v in sd.items() if not k.startswith(DECODER_PREFIXES)}
    own = set(model.state_dict())
    unexpected = sorted(set(keep) - own)
    missing = sorted(own - set(keep))
    if unexpected or missing:
        raise SiclError(f"{path}: weights do not match MiMo-Audio's layout (missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]})")
    own_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = [k for k, v in keep.items() if tuple(v.shape) != own_shapes[k]]
    if wrong:
        k = wrong[0]
        raise SiclError(f"{path}: weights do not fit config.json ({len(wrong)} tensor(s) of another shape, first "
                        f"{k}: checkpoint {list(keep[k].shape)}, config.json {list(own_shapes[k])})")
    model.load_state_dict(keep, strict=True, assign=True)
    # Non-persistent buffers (rotary inv_freq) were created on meta: rebuild those modules on the CPU.
    for parent in (model.model, model.input_local_transformer):
        parent.rotary_emb = Qwen2RotaryEmbedding(parent.rotary_emb.config)
    return model.to(device=device, dtype=dtype).eval()


def default_prompt_format(path: str | Path) -> str:
    """``chat`` for an Instruct checkpoint (folder name or ``sicl_prompt_format`` in config.json), else ``base``."""
    raw = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    if raw.get("sicl_prompt_format") in FORMATS:
        return raw["sicl_prompt_format"]
    return "chat" if "instruct" in Path(path).resolve().name.lower() else "base"


def load_mimo_audio(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                    attn_implementation: str | None = "sdpa", preset: str = "plain",
                    prompt_format: str | None = None, codes_dir: str | Path | None = None,
                    audio_tokenizer: str | Path | None = None, **kwargs: Any) -> MimoAudioBackbone:
    """Load a MiMo-Audio folder (config.json with model_type ``qwen2`` as released, or ``mimo_audio``).
    The code cache is ``codes_dir``, else ``$SICL_MIMO_CODES``, else ``<folder>/sicl_codes``; the audio
    tokenizer for clips without codes is ``audio_tokenizer``, else ``$SICL_MIMO_TOKENIZER``, else
    ``<folder>/audio_tokenizer`` when it exists, else none."""
    path = Path(path)
    model = load_model(path, dtype, device, attn_implementation)
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as e:  # a tokenizer transformers cannot build
        raise SiclError(f"{path}: cannot load the tokenizer ({str(e).splitlines()[0][:200]})") from None
    codes = codes_dir or os.environ.get("SICL_MIMO_CODES") or path / "sicl_codes"
    codec = audio_tokenizer or os.environ.get("SICL_MIMO_TOKENIZER") or None
    if codec is None and (path / "audio_tokenizer").is_dir():  # a broken one is an error when first needed
        codec = path / "audio_tokenizer"
    if codec is not None and not Path(codec).is_dir():
        raise SiclError(f"audio tokenizer {codec}: not a folder (a MiMo-Audio-Tokenizer checkpoint)")
    return MimoAudioBackbone(model, tok, preset=preset, prompt_format=prompt_format or default_prompt_format(path),
                             codes_dir=codes, audio_tokenizer=codec, **kwargs)
