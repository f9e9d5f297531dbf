"""`sicl codes --manifest M.jsonl --out CACHE (--from-dir DIR | --tokenizer PATH)`: fill MiMo-Audio's
per-clip code cache (``<audio_hash>.npy``, see :mod:`sicl.models.mimo_audio`).

``--from-dir DIR`` imports codes computed elsewhere (e.g. on a GPU machine with MiMo-Audio's tokenizer): one
``<id>.npy`` per manifest row, an integer array (frames, >= 8 codebooks) with every value inside its codebook
(the sizes come from ``--model``'s config.json, else MiMo-Audio's released 1024, 1024, 128 x 6). Pickles are
never loaded. ``--tokenizer PATH`` runs MiMo-Audio's own audio tokenizer when its Python code is importable.

Every clip is written atomically (a complete temporary file, then a rename), so the cache never holds a
partial file. Clips already in the cache are skipped (``--resume`` is the default behaviour, accepted for
clarity), so an interrupted run can simply be repeated. A missing or malformed code file, or unreadable
audio, is one warning line naming the file and what is wrong; that clip is skipped and counted, and the rest
are written. ``--strict`` makes the first such problem an error instead (clips written before it stay: each
is complete). No usable clip at all is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

#: MiMo-Audio's codebook sizes for the 8 codebooks the LLM reads (the "empty" id of each is this size).
MIMO_CODEBOOK_SIZES = (1024, 1024, 128, 128, 128, 128, 128, 128)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="JSON Lines manifest of the clips to encode")
    parser.add_argument("--out", default=None,
                        help="code cache folder (default: $SICL_MIMO_CODES; the backbone's default is "
                             "<model folder>/sicl_codes)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-dir", metavar="DIR", help="import precomputed codes: DIR/<id>.npy per manifest row")
    src.add_argument("--tokenizer", metavar="PATH",
                     help="run MiMo-Audio's audio tokenizer (XiaomiMiMo/MiMo-Audio-Tokenizer folder); needs "
                          "MiMo-Audio's code importable (flash-attn, a CUDA GPU)")
    parser.add_argument("--model", metavar="DIR",
                        help="MiMo-Audio model folder whose config.json gives the codebook count and sizes")
    parser.add_argument("--resume", action="store_true",
                        help="skip clips already in the cache (always done; accepted for clarity)")
    parser.add_argument("--strict", action="store_true", help="the first bad clip is an error instead of a skip")
    parser.add_argument("--device", default="cuda", help="device for --tokenizer (default: %(default)s)")


def codebook_sizes(model_dir: str | Path | None) -> tuple[int, ...]:
    """Codebook sizes from a MiMo-Audio config.json (``speech_zeroemb_idx``: the empty id = the size)."""
    if model_dir is None:
        return MIMO_CODEBOOK_SIZES
    from sicl.errors import SiclError
    from sicl.models.mimo_audio import _is_mimo_config, _parse_list

    cfg_path = Path(model_dir) / "config.json"
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SiclError(f"{cfg_path}: cannot read ({e})") from None
    if not isinstance(raw, dict) or not _is_mimo_config(raw):
        raise SiclError(f"{cfg_path}: not a MiMo-Audio config (no audio_channels/speech_zeroemb_idx)")
    return tuple(_parse_list(raw["speech_zeroemb_idx"], int(raw["audio_channels"])))


def check_codes(arr: Any, sizes: tuple[int, ...]) -> str | None:
    """What is wrong with ``arr`` as one clip's codes, or None. ``sizes``: the first codebooks' sizes;
    further columns (more RVQ levels than the LLM reads) are only checked to be non-negative."""
    import numpy as np

    if not isinstance(arr, np.ndarray):
        return "not a single array"
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer):
        return f"dtype {arr.dtype} is not an integer type"
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] < len(sizes):
        return f"shape {tuple(arr.shape)} is not (frames >= 1, codebooks >= {len(sizes)})"
    if int(arr.min()) < 0:
        return f"negative code {int(arr.min())}"
    for c, n in enumerate(sizes):
        top = int(arr[:, c].max())
        if top >= n:
            return f"code {top} in codebook {c} is outside its size {n}"
    return None


def read_code_file(path: Path, sizes: tuple[int, ...]) -> tuple[Any, str | None]:
    """``(codes, None)`` or ``(None, problem)`` for an ``.npy`` file; never unpickles."""
    import numpy as np

    if not path.is_file():
        return None, "no such file"
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:  # object arrays (pickles) and bad headers
        return None, f"not a plain .npy array ({e})"
    except (OSError, EOFError) as e:
        return None, f"cannot read ({e})"
    problem = check_codes(arr, sizes)
    return (None, problem) if problem else (arr, None)


def import_tokenizer() -> Any:
    """MiMo-Audio's ``MiMoAudioTokenizer`` class, or a one-line SiclError saying what to do."""
    from sicl.errors import SiclError

    errors = []
    for module in ("mimo_audio_tokenizer", "src.mimo_audio_tokenizer"):
        try:
            mod = __import__(module, fromlist=["MiMoAudioTokenizer"])
            return mod.MiMoAudioTokenizer
        except Exception as e:  # ImportError, or its own import-time failures (flash-attn, CUDA)
            errors.append(f"{module}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise SiclError("MiMo-Audio's audio tokenizer is not importable (" + "; ".join(errors) + "). Install "
                    "github.com/XiaomiMiMo/MiMo-Audio's requirements (flash-attn, a CUDA GPU) and put its root on "
                    "PYTHONPATH, or run its tokenizer elsewhere and import the codes with --from-dir")


class _Tokenizer:
    """Thin driver of MiMo-Audio's tokenizer: resample to its rate, log-mel with its config, encode in
    6000-frame segments, keep the codebooks (frames, channels). Only runs where that code is installed."""

    def __init__(self, path: str, device: str) -> None:
        import torch

        from sicl.errors import SiclError

        cls = import_tokenizer()
        try:
            from torchaudio.transforms import MelSpectrogram
        except ImportError:
            raise SiclError("--tokenizer needs torchaudio (MiMo-Audio's mel features): pip install "
                            "torchaudio, or import precomputed codes with --from-dir") from None
        self.torch = torch
        self.device = device
        self.model = cls.from_pretrained(path).eval().bfloat16().to(device)
        c = self.model.config
        self.rate = int(c.sampling_rate)
        self.mel = MelSpectrogram(sample_rate=c.sampling_rate, n_fft=c.nfft, hop_length=c.hop_length,
                                  win_length=c.window_size, f_min=c.fmin, f_max=c.fmax, n_mels=c.n_mels,
                                  power=1.0, center=True).to(device)

    def __call__(self, wav: Any) -> Any:
        import torchaudio

        torch = self.torch
        x = torch.as_tensor(wav, dtype=torch.float32)
        if self.rate != 16_000:
            x = torchaudio.functional.resample(x, 16_000, self.rate)
        mel = torch.log(torch.clip(self.mel(x.to(self.device)[None]), min=1e-7)).squeeze(0).transpose(0, 1)
        seg = 6000
        lens = [seg] * (mel.shape[0] // seg) + ([mel.shape[0] % seg] if mel.shape[0] % seg else [])
        with torch.no_grad():
            codes, _ = self.model.encoder.encode(input_features=mel, input_lens=torch.tensor(lens, device=self.device),
                                                 return_codes_only=True)
        return codes.transpose(0, 1).cpu().numpy()


def run(args: argparse.Namespace) -> int:
    from sicl.data.audio import audio_hash, load_audio
    from sicl.data.manifest import read_manifest
    from sicl.errors import SiclError
    from sicl.models.mimo_audio import has_codes, write_codes

    out = args.out or os.environ.get("SICL_MIMO_CODES")
    if not out:
        raise SiclError("no code cache: give --out DIR (or set $SICL_MIMO_CODES)")
    out = Path(out)
    sizes = codebook_sizes(args.model)
    examples = read_manifest(args.manifest)
    if args.from_dir is not None and not Path(args.from_dir).is_dir():
        raise SiclError(f"{args.from_dir}: --from-dir is not a folder")
    encode = _Tokenizer(args.tokenizer, args.device) if args.tokenizer is not None else None

    from tqdm import tqdm

    written = present = 0
    bad: list[str] = []
    for ex in tqdm(examples, desc="codes", unit="clip", leave=False, disable=None):
        try:
            wav = load_audio(ex.audio, max_seconds=None)
        except SiclError as e:
            problem = f"{ex.id}: {e}"
        else:
            if has_codes(out, audio_hash(wav)):
                present += 1
                continue
            if encode is not None:
                codes = encode(wav)
                err = check_codes(codes, sizes)
                problem = f"{ex.id} ({ex.audio}): tokenizer output {err}" if err else None
            else:
                path = Path(args.from_dir) / f"{ex.id}.npy"
                codes, err = read_code_file(path, sizes)
                problem = f"{path}: {err}" if err else None
            if problem is None:
                write_codes(out, wav, codes)
                written += 1
                continue
        if args.strict:
            raise SiclError(problem)
        print(f"sicl codes: warning: {problem}; skipped", file=sys.stderr)
        bad.append(problem)
    summary = f"{out}: {written} written, {present} already present, {len(bad)} skipped of {len(examples)} clips"
    if not written and not present:
        raise SiclError(f"no usable clips ({summary})")
    print(summary)
    return 0
