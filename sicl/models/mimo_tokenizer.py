"""Clean-room encoder of MiMo-Audio's audio tokenizer (``XiaomiMiMo/MiMo-Audio-Tokenizer``): waveform ->
residual-vector-quantised codes at 25 Hz, in plain torch (attention through ``scaled_dot_product_attention``
with explicit masks; no flash-attn, runs on CPU).

Written from the architecture of the public reference (``github:XiaomiMiMo/MiMo-Audio``, ``src/
mimo_audio_tokenizer``), none of its code; checked against it by ``tests/fixtures/mimo/check_tokenizer.py``.
The pipeline, as MiMo-Audio's own ``MimoAudio.preprocess_input`` runs it:

1. resample to the tokenizer's rate (24 kHz) with :func:`resample`, a re-implementation of torchaudio's
   default resampler (what the reference uses), keeping ``ceil(n x rate_out / rate_in)`` samples, so the
   frame count is exactly :func:`sicl.models.mimo_audio.code_frames`;
2. log-mel: magnitude STFT (centred, reflect padding, periodic Hann window of ``window_size``), an HTK mel
   filterbank without area normalisation (``fmin``..``fmax``, default Nyquist), ``log(max(x, 1e-7))``;
3. the mel frames are cut into 6000-frame segments, and the segments into groups of at most 256000 frames;
   each group is one padded batch (segments are encoded independently, but the padding of a shorter segment
   in a batch leaks into its last frames exactly as in the reference, so the batching is reproduced);
4. encoder: conv1 (kernel k, padding 1) + GELU, conv2 (kernel k, stride s, padding 1) + GELU, pre-norm
   transformer layers (RoPE per segment, key projection without bias, block-diagonal attention, optional
   causal mask and (left, right) window), optional skip connection (the output of layer
   ``encoder_skip_layer_id`` added to the last layer's), final norm; then, if ``avg_pooler`` > 1, a strided
   conv (kernel = stride = avg_pooler, no bias) + GELU over each segment (its padding positions hold copies
   of its last frame, the batch end is zero-padded) and a norm;
5. residual VQ in float32: nearest codebook vector by squared Euclidean distance, subtract, next level.

Checkpoint: a folder with ``config.json`` and ``model.safetensors`` (or a ``model.safetensors.index.json``
with shards), the reference's own parameter names (``encoder.*``). The decoder and vocoder
(``decoder.*``, audio generation) are recognised by name and never read; any other unknown tensor, a missing
or mis-shaped one, or an unknown config key is an error. Pickles are never read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sicl.errors import SiclError
from sicl.models.weights import safetensors_files

#: MiMo-Audio's caller encodes the log-mel in segments of this many frames (60 s at hop 240 / 24 kHz) ...
SEGMENT_FRAMES = 6000
#: ... and batches segments up to this many frames in all.
GROUP_FRAMES = 256_000

#: Config keys the encoder needs; no default is assumed for them.
REQUIRED = ("sampling_rate", "hop_length", "nfft", "window_size", "n_mels", "d_model", "encoder_layers",
            "encoder_attention_heads", "encoder_ffn_dim", "kernel_size", "stride_size", "avg_pooler",
            "num_quantizers", "codebook_size")
#: Optional keys the encoder uses, with the reference config class's defaults.
OPTIONAL: dict[str, Any] = {"fmin": 0, "fmax": None, "encoder_skip_layer_id": None, "encoder_causal": False,
                            "encoder_attn_window_size": [-1, -1], "activation_function": "gelu",
                            "ln_type": "LayerNorm", "rope_theta": 10000, "rope_type": "default",
                            "position_embedding_type": "rope"}
#: Keys of the reference config that do not affect encoding (decoder, vocoder, training, limits).
IGNORED = {"max_audio_seconds", "scale_embedding", "threshold_ema_dead_code", "decoder_layers",
           "decoder_attention_heads", "decoder_ffn_dim", "decoder_kernel_size", "decoder_stride_size",
           "decoder_causal", "decoder_attn_window_size", "vocoder_dim", "vocoder_intermediate_dim",
           "vocoder_num_layers", "vocoder_padding", "vocoder_attention_heads", "vocoder_attn_window_size"}
#: Generic transformers ``PretrainedConfig`` keys that a saved config may carry.
GENERIC = {"architectures", "model_type", "torch_dtype", "transformers_version", "auto_map", "return_dict",
           "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss",
           "pruned_heads", "tie_word_embeddings", "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder",
           "cross_attention_hidden_size", "add_cross_attention", "tie_encoder_decoder", "finetuning_task",
           "id2label", "label2id", "tokenizer_class", "prefix", "bos_token_id", "pad_token_id", "eos_token_id",
           "sep_token_id", "decoder_start_token_id", "task_specific_params", "problem_type"}


@dataclass(frozen=True)
class MimoTokenizerConfig:
    sampling_rate: int
    hop_length: int
    nfft: int
    window_size: int
    n_mels: int
    d_model: int
    encoder_layers: int
    encoder_attention_heads: int
    encoder_ffn_dim: int
    kernel_size: int
    stride_size: int
    avg_pooler: int
    num_quantizers: int
    codebook_size: tuple[int, ...]  # one per quantizer (a shorter list repeats its last size, as the reference)
    fmin: float = 0.0
    fmax: float | None = None
    encoder_skip_layer_id: int | None = None
    encoder_causal: bool = False
    encoder_attn_window_size: tuple[int, int] = (-1, -1)
    activation_function: str = "gelu"
    ln_type: str = "LayerNorm"
    rope_theta: float = 10000.0
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> MimoTokenizerConfig:
        if not isinstance(raw, dict):
            raise SiclError(f"{where}: not a JSON object")
        unknown = sorted(k for k in raw if k not in REQUIRED and k not in OPTIONAL and k not in IGNORED
                         and k not in GENERIC and not k.startswith("_"))
        if unknown:
            raise SiclError(f"{where}: unknown MiMo-Audio tokenizer config keys {unknown}")
        missing = [k for k in REQUIRED if k not in raw]
        if missing:
            raise SiclError(f"{where}: not a MiMo-Audio tokenizer config (missing {missing})")
        v = {**OPTIONAL, **{k: raw[k] for k in (*REQUIRED, *OPTIONAL) if k in raw}}
        try:
            n_q = int(v["num_quantizers"])
            sizes = v["codebook_size"]
            sizes = [int(sizes)] * n_q if isinstance(sizes, int) else [int(s) for s in sizes]
            if not sizes:
                raise ValueError("codebook_size is empty")
            sizes = (sizes + [sizes[-1]] * n_q)[:n_q]
            window = tuple(int(w) for w in v["encoder_attn_window_size"])
            cfg = cls(**{k: int(v[k]) for k in REQUIRED if k not in ("codebook_size",)},
                      codebook_size=tuple(sizes), fmin=float(v["fmin"]),
                      fmax=None if v["fmax"] is None else float(v["fmax"]),
                      encoder_skip_layer_id=None if v["encoder_skip_layer_id"] is None
                      else int(v["encoder_skip_layer_id"]),
                      encoder_causal=bool(v["encoder_causal"]), encoder_attn_window_size=window,  # type: ignore[arg-type]
                      activation_function=str(v["activation_function"]), ln_type=str(v["ln_type"]),
                      rope_theta=float(v["rope_theta"]), raw=dict(raw))
        except (TypeError, ValueError) as e:
            raise SiclError(f"{where}: malformed MiMo-Audio tokenizer config ({e})") from None
        problems = []
        if cfg.num_quantizers < 1:
            problems.append("num_quantizers must be >= 1 (codes need the quantizer)")
        if (cfg.encoder_attention_heads < 1 or cfg.d_model % cfg.encoder_attention_heads
                or (cfg.d_model // cfg.encoder_attention_heads) % 2):
            problems.append("d_model / encoder_attention_heads must be an even integer")
        if len(cfg.encoder_attn_window_size) != 2:
            problems.append("encoder_attn_window_size must be [left, right]")
        if cfg.activation_function != "gelu":
            problems.append(f"activation_function {cfg.activation_function!r} (only 'gelu' is implemented)")
        if cfg.ln_type not in ("LayerNorm", "RMSNorm"):
            problems.append(f"ln_type {cfg.ln_type!r}")
        if v["rope_type"] != "default" or v["position_embedding_type"] != "rope":
            problems.append(f"rope_type {v['rope_type']!r} / position_embedding_type "
                            f"{v['position_embedding_type']!r} (only default RoPE is implemented)")
        if cfg.window_size > cfg.nfft:
            problems.append("window_size > nfft")
        if min(cfg.kernel_size, cfg.stride_size, cfg.avg_pooler, cfg.hop_length, cfg.n_mels) < 1:
            problems.append("kernel_size, stride_size, avg_pooler, hop_length and n_mels must be >= 1")
        skip = cfg.encoder_skip_layer_id
        if skip is not None and not 1 <= skip <= cfg.encoder_layers:
            problems.append(f"encoder_skip_layer_id {skip} is outside 1..{cfg.encoder_layers}")
        if problems:
            raise SiclError(f"{where}: unsupported MiMo-Audio tokenizer config: " + "; ".join(problems))
        return cfg


# --- mel front end ----------------------------------------------------------------------------------------

def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """(n_freqs, n_mels) triangular HTK-mel filters without area normalisation (torchaudio's default)."""
    freqs = torch.linspace(0, sample_rate // 2, n_freqs)

    def to_mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    width = edges[1:] - edges[:-1]
    dist = edges[None, :] - freqs[:, None]  # (n_freqs, n_mels + 2)
    rising = -dist[:, :-2] / width[:-1]
    falling = dist[:, 2:] / width[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class LogMel(nn.Module):
    def __init__(self, cfg: MimoTokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.window_size), persistent=False)
        f_max = float(cfg.sampling_rate // 2) if cfg.fmax is None else cfg.fmax
        self.register_buffer("fb", mel_filterbank(cfg.nfft // 2 + 1, cfg.fmin, f_max, cfg.n_mels,
                                                  cfg.sampling_rate), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(samples,) float32 at the tokenizer's rate -> (frames, n_mels) log-mel, frames = 1 + n // hop."""
        c = self.cfg
        spec = torch.stft(wav, c.nfft, hop_length=c.hop_length, win_length=c.window_size, window=self.window,
                          center=True, pad_mode="reflect", normalized=False, onesided=True,
                          return_complex=True).abs()
        mel = torch.matmul(spec.transpose(-1, -2), self.fb)
        return torch.log(torch.clamp(mel, min=1e-7))


def resample(wav: torch.Tensor, rate_in: int, rate_out: int, width: int = 6,
             rolloff: float = 0.99) -> torch.Tensor:
    """Band-limited resampling of a 1-D float32 signal as torchaudio's default
    (``torchaudio.functional.resample``: Hann-windowed sinc, 6 zero crossings, cutoff 0.99 x the lower
    Nyquist, computed in the signal's dtype): output length ``ceil(n x rate_out / rate_in)``. MiMo-Audio
    resamples with torchaudio; matching it (checked to the code by tests/fixtures/mimo/check_tokenizer.py)
    matters: a different resampler leaves a different noise floor above the input's Nyquist, which the
    log-mel (floor 1e-7) turns into large feature differences."""
    g = math.gcd(int(rate_in), int(rate_out))
    a, b = int(rate_in) // g, int(rate_out) // g
    if a == b:
        return wav
    dtype = wav.dtype
    cutoff = min(a, b) * rolloff
    half = math.ceil(width * a / cutoff)
    taps = torch.arange(-half, half + a, dtype=dtype) / a
    t = (torch.arange(0, -b, -1, dtype=dtype)[:, None] / b + taps[None, :]) * cutoff
    t = t.clamp(-width, width)
    win = torch.cos(t * math.pi / width / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0, dtype=dtype), t.sin() / t) * (win * (cutoff / a))
    n = wav.shape[-1]
    x = F.pad(wav.reshape(1, 1, n), (half, half + a))
    y = F.conv1d(x, kernel[:, None, :], stride=a)  # (1, b, frames)
    return y.transpose(1, 2).reshape(-1)[: -(-n * b // a)]


# --- encoder ----------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.float().pow(2).mean(-1, keepdim=True)
        y = x * torch.rsqrt(var + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            y = y.to(self.weight.dtype)
        return self.weight * y


def _norm(cfg: MimoTokenizerConfig) -> nn.Module:
    return nn.LayerNorm(cfg.d_model) if cfg.ln_type == "LayerNorm" else RMSNorm(cfg.d_model)


def _rotate(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, cfg: MimoTokenizerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.heads = cfg.encoder_attention_heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        n, d = x.shape
        q, k, v = (p(x).view(n, self.heads, d // self.heads) for p in (self.q_proj, self.k_proj, self.v_proj))
        q = q * cos[:, None] + _rotate(q) * sin[:, None]
        k = k * cos[:, None] + _rotate(k) * sin[:, None]
        out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                                             attn_mask=mask)
        return self.out_proj(out.transpose(0, 1).reshape(n, d))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: MimoTokenizerConfig) -> None:
        super().__init__()
        self.self_attn = SelfAttention(cfg)
        self.self_attn_layer_norm = _norm(cfg)
        self.fc1 = nn.Linear(cfg.d_model, cfg.encoder_ffn_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_dim, cfg.d_model)
        self.final_layer_norm = _norm(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), cos, sin, mask)
        x = x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        if x.dtype in (torch.float16, torch.bfloat16) and not torch.isfinite(x).all():
            big = torch.finfo(x.dtype).max - 1000
            x = x.clamp(-big, big)
        return x


class Codebook(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("embed", torch.zeros(size, dim))


class _VQLayer(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self._codebook = Codebook(size, dim)


class _RVQ(nn.Module):
    def __init__(self, cfg: MimoTokenizerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_VQLayer(n, cfg.d_model) for n in cfg.codebook_size)


class Quantizer(nn.Module):
    def __init__(self, cfg: MimoTokenizerConfig) -> None:
        super().__init__()
        self.vq = _RVQ(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(frames, d) -> (frames, n_q) codes; float32 throughout, as the reference."""
        residual = x.float()
        out = []
        for layer in self.vq.layers:
            book = layer._codebook.embed.float()
            dist = (residual.pow(2).sum(1, keepdim=True) - 2 * residual @ book.t()
                    + book.t().pow(2).sum(0, keepdim=True))
            idx = (-dist).max(dim=-1).indices
            residual = residual - F.embedding(idx, book)
            out.append(idx)
        return torch.stack(out, dim=1)


class AudioEncoder(nn.Module):
    def __init__(self, cfg: MimoTokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.conv1 = nn.Conv1d(cfg.n_mels, d, cfg.kernel_size, padding=1)
        self.conv2 = nn.Conv1d(d, d, cfg.kernel_size, stride=cfg.stride_size, padding=1)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.layer_norm = _norm(cfg)
        if cfg.avg_pooler != 1:
            self.down_sample_layer = nn.Sequential(nn.Conv1d(d, d, cfg.avg_pooler, cfg.avg_pooler, bias=False),
                                                   nn.GELU())
            self.down_sample_norm = _norm(cfg)
        self.quantizer = Quantizer(cfg)
        hd = d // cfg.encoder_attention_heads
        inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        self.register_buffer("inv_freq", inv, persistent=False)

    def _mask(self, n: int, device: torch.device) -> torch.Tensor | None:
        left, right = self.cfg.encoder_attn_window_size
        if self.cfg.encoder_causal:
            right = 0
        if left < 0 and right < 0:
            return None
        i = torch.arange(n, device=device)
        rel = i[None, :] - i[:, None]  # key - query
        ok = torch.ones(n, n, dtype=torch.bool, device=device)
        if left >= 0:
            ok &= rel >= -left
        if right >= 0:
            ok &= rel <= right
        return ok

    def features(self, segments: list[torch.Tensor]) -> torch.Tensor:
        """Continuous pre-quantiser features of one batch of mel segments [(L_i, n_mels)], concatenated
        over the segments: (sum of code frames, d_model)."""
        cfg = self.cfg
        dtype = self.conv1.weight.dtype
        lens = [int(s.shape[0]) for s in segments]
        x = torch.zeros(len(segments), max(lens), cfg.n_mels, dtype=dtype, device=self.conv1.weight.device)
        for b, s in enumerate(segments):
            x[b, :lens[b]] = s.to(x)
        h = F.gelu(self.conv2(F.gelu(self.conv1(x.transpose(1, 2))))).transpose(1, 2)  # (B, T, d)
        t = h.shape[1]
        out_lens = [(n + 3 - cfg.kernel_size + 2 - cfg.kernel_size) // cfg.stride_size + 1 for n in lens]
        rows = []
        for b, n in enumerate(out_lens):
            pos = torch.arange(n, device=h.device).float()
            freqs = pos[:, None] * self.inv_freq[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)
            mask = self._mask(n, h.device)
            y = h[b, :n]
            skip: torch.Tensor | float = 0.0
            for i, layer in enumerate(self.layers):
                y = layer(y, cos, sin, mask)
                if cfg.encoder_skip_layer_id is not None and i == cfg.encoder_skip_layer_id - 1:
                    skip = y.clone()
            rows.append(self.layer_norm(y + skip))
        if cfg.avg_pooler == 1:
            return torch.cat(rows)
        # each segment padded with copies of its last frame, the batch end with zeros, then the pooler
        p = cfg.avg_pooler
        padded = torch.stack([torch.cat([r, r[-1:].expand(t - r.shape[0], -1)]) for r in rows])
        if t % p:
            padded = F.pad(padded, (0, 0, 0, p - t % p))
        pooled = self.down_sample_layer(padded.transpose(1, 2)).transpose(1, 2)
        pooled = torch.cat([pooled[b, :-(-n // p)] for b, n in enumerate(out_lens)])
        return self.down_sample_norm(pooled)


class MimoAudioTokenizerEncoder(nn.Module):
    """The tokenizer's encoder path; parameter names are the reference checkpoint's (``encoder.*``)."""

    def __init__(self, cfg: MimoTokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = AudioEncoder(cfg)
        self.mel = LogMel(cfg)

    @property
    def sample_rate(self) -> int:
        return self.cfg.sampling_rate

    def log_mel(self, wav: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """(frames, n_mels) float32 log-mel of a mono clip (resampled to the tokenizer's rate if needed)."""
        x = np.asarray(wav, dtype=np.float32).reshape(-1)
        rate = self.cfg.sampling_rate
        if sample_rate != rate:
            x = resample(torch.from_numpy(np.ascontiguousarray(x)), sample_rate, rate).numpy()
        if len(x) <= self.cfg.nfft // 2:
            raise SiclError(f"clip too short for the MiMo-Audio tokenizer: {len(x)} samples at {rate} Hz "
                            f"(its centred STFT needs more than {self.cfg.nfft // 2})")
        dev = self.mel.window.device
        return self.mel(torch.from_numpy(np.ascontiguousarray(x)).to(dev))

    def groups(self, frames: int, segment_frames: int = SEGMENT_FRAMES,
               group_frames: int = GROUP_FRAMES) -> list[list[int]]:
        """Segment lengths of a clip of ``frames`` mel frames, batched as MiMo-Audio's caller does:
        full segments of ``segment_frames`` then the remainder; a new batch starts when the next segment
        would take the batch past ``group_frames``."""
        lens = [segment_frames] * (frames // segment_frames) + ([frames % segment_frames]
                                                               if frames % segment_frames else [])
        out: list[list[int]] = []
        total = 0
        for n in lens:
            if out and total + n > group_frames:
                out.append([n])
                total = n
            else:
                if not out:
                    out.append([])
                out[-1].append(n)
                total += n
        return out

    @torch.no_grad()
    def features_from_mel(self, mel: torch.Tensor, segment_frames: int = SEGMENT_FRAMES,
                          group_frames: int = GROUP_FRAMES) -> torch.Tensor:
        parts, start = [], 0
        for group in self.groups(int(mel.shape[0]), segment_frames, group_frames):
            segs = []
            for n in group:
                segs.append(mel[start:start + n])
                start += n
            parts.append(self.encoder.features(segs))
        return torch.cat(parts)

    @torch.no_grad()
    def encode(self, wav: np.ndarray | torch.Tensor, sample_rate: int, *, segment_frames: int = SEGMENT_FRAMES,
               group_frames: int = GROUP_FRAMES, return_features: bool = False) -> Any:
        """Codes (frames, num_quantizers) int64 of one mono clip; MiMo-Audio's LLM reads the first 8.
        ``return_features``: also the float32 pre-quantiser features (frames, d_model)."""
        mel = self.log_mel(wav, sample_rate)
        feats = self.features_from_mel(mel, segment_frames, group_frames)
        codes = self.encoder.quantizer(feats).cpu().numpy().astype(np.int64)
        if return_features:
            return codes, feats.float().cpu().numpy()
        return codes


# --- checkpoint -------------------------------------------------------------------------------------------

_LAYER = (r"self_attn\.(q_proj\.(weight|bias)|k_proj\.weight|v_proj\.(weight|bias)|out_proj\.(weight|bias))"
          r"|(self_attn_layer_norm|final_layer_norm)\.(weight|bias)|fc[12]\.(weight|bias)")
#: The decoder / vocoder (audio generation) parameter names: recognised, never loaded.
DECODER_KEY = re.compile(
    r"decoder\.(dconv[12]\.(conv|norm)\.(weight|bias)|layers\.\d+\.(" + _LAYER + r")|layer_norm\.(weight|bias)"
    r"|vocoder\.(embeddings\.weight|layers\.\d+\.(" + _LAYER + r")|layer_norm\.(weight|bias)"
    r"|head\.out\.(weight|bias)|head\.istft\.window))")
#: Training state of each codebook (EMA statistics), saved as buffers by the reference: not needed.
CODEBOOK_STATE = re.compile(r"encoder\.quantizer\.vq\.layers\.\d+\._codebook\.(inited|cluster_size|embed_avg)")


def load_mimo_tokenizer(path: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> MimoAudioTokenizerEncoder:
    """The encoder of a MiMo-Audio-Tokenizer checkpoint folder (config.json + safetensors). ``dtype``:
    the encoder's compute dtype (the quantiser always runs in float32); float32 is what was verified."""
    from safetensors import safe_open

    folder = Path(path)
    if not folder.is_dir():
        raise SiclError(f"{folder}: not a MiMo-Audio tokenizer folder")
    cfg_path = folder / "config.json"
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SiclError(f"{cfg_path}: cannot read ({e})") from None
    cfg = MimoTokenizerConfig.from_dict(raw, str(cfg_path))
    model = MimoAudioTokenizerEncoder(cfg)
    wanted = dict(model.state_dict())
    state: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for f in safetensors_files(folder):
        try:
            with safe_open(str(f), framework="pt") as st:
                for key in st.keys():
                    if key in wanted:
                        state[key] = st.get_tensor(key)
                    elif not (DECODER_KEY.fullmatch(key) or CODEBOOK_STATE.fullmatch(key)):
                        unknown.append(key)
        except Exception as e:  # OSError, ValueError, RuntimeError, or safetensors' own error for a corrupt header
            raise SiclError(f"{f}: cannot read safetensors ({type(e).__name__}: {e})") from None
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise SiclError(f"{folder}: unexpected tensors {unknown[:3]}{more} (not a MiMo-Audio tokenizer of "
                        "this config)")
    missing = [k for k in wanted if k not in state]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise SiclError(f"{folder}: missing tensors {missing[:3]}{more}")
    for k, t in state.items():
        if tuple(t.shape) != tuple(wanted[k].shape):
            raise SiclError(f"{folder}: tensor {k} has shape {tuple(t.shape)}, the config needs "
                            f"{tuple(wanted[k].shape)}")
    model.load_state_dict(state, strict=True)
    model.encoder.to(dtype)
    model.encoder.quantizer.float()
    model.encoder.inv_freq = model.encoder.inv_freq.float()
    return model.eval().to(device)
