"""`sicl codes --data M.jsonl [M2.jsonl ...] --out CACHE (--from-dir DIR | --tokenizer PATH)`: fill MiMo-Audio's
per-clip code cache (``<audio_hash>.npy``, see :mod:`sicl.models.mimo_audio`).

``--from-dir DIR`` imports codes computed elsewhere (e.g. on a GPU machine with MiMo-Audio's tokenizer): one
``<id>.npy`` per manifest row, an integer array (frames, >= 8 codebooks) with every value inside its codebook
(the sizes come from ``--model``'s config.json, else MiMo-Audio's released 1024, 1024, 128 x 6). Pickles are
never loaded. ``--tokenizer PATH`` encodes the clips with sicl's clean-room encoder of MiMo-Audio's audio
tokenizer (:mod:`sicl.models.mimo_tokenizer`: plain torch, CPU or GPU, no flash-attn) from a
``XiaomiMiMo/MiMo-Audio-Tokenizer`` folder (config.json + safetensors); it writes every RVQ level the
tokenizer has (the LLM reads the first 8).

Every clip is written atomically (a complete temporary file, then a rename), so the cache never holds a
partial file. Clips already in the cache are skipped, so an interrupted run can simply be repeated. A missing
or malformed code file, or unreadable audio, is one warning line naming the file and what is wrong; that clip
is skipped and counted, and the rest are written. ``--strict`` makes the first such problem an error instead (clips written before it stay: each
is complete). No usable clip at all is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sicl.cli import threads_arg

#: MiMo-Audio's codebook sizes for the 8 codebooks the LLM reads (the "empty" id of each is this size).
MIMO_CODEBOOK_SIZES = (1024, 1024, 128, 128, 128, 128, 128, 128)


#: shown at the end of --help
EXAMPLES = [
    'sicl codes --data runs/world/adult/test.jsonl --out MODEL/sicl_codes --tokenizer TOKENIZER_DIR',
    'sicl codes --data W/adult/train.jsonl W/adult/pool.jsonl --out MODEL/sicl_codes --tokenizer TOKENIZER_DIR',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", "--manifest", dest="manifest", required=True, nargs="+", metavar="M.jsonl",
                        help="JSON Lines manifest(s) of the clips to encode (--manifest is the old name)")
    parser.add_argument("--threads", type=threads_arg, default=0, help="torch CPU threads for --tokenizer (0: default)")
    parser.add_argument("--out", default=None,
                        help="code cache folder (default: $SICL_MIMO_CODES; the backbone's default is "
                             "<model folder>/sicl_codes)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-dir", metavar="DIR", help="import precomputed codes: DIR/<id>.npy per manifest row")
    src.add_argument("--tokenizer", metavar="PATH",
                     help="encode with sicl's clean-room MiMo-Audio tokenizer encoder from a "
                          "XiaomiMiMo/MiMo-Audio-Tokenizer folder (config.json + safetensors)")
    parser.add_argument("--model", metavar="DIR",
                        help="MiMo-Audio model folder whose config.json gives the codebook count and sizes")
    parser.add_argument("--strict", action="store_true", help="the first bad clip is an error instead of a skip")
    parser.add_argument("--device", default="cpu", help="torch device for --tokenizer (default: %(default)s)")


def codebook_sizes(model_dir: str | Path | None) -> tuple[int, ...]:
    """Codebook sizes from a MiMo-Audio config.json (``speech_zeroemb_idx``: the empty id = the size)."""
    if model_dir is None:
        return MIMO_CODEBOOK_SIZES
    from sicl.errors import SiclError
    from sicl.models.mimo_audio import is_mimo_config, parse_list

    cfg_path = Path(model_dir) / "config.json"
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SiclError(f"{cfg_path}: cannot read ({e})") from None
    if not isinstance(raw, dict) or not is_mimo_config(raw):
        raise SiclError(f"{cfg_path}: not a MiMo-Audio config (no audio_channels/speech_zeroemb_idx)")
    try:
        return tuple(parse_list(raw["speech_zeroemb_idx"], int(raw["audio_channels"])))
    except (SiclError, ValueError, TypeError) as e:
        raise SiclError(f"{cfg_path}: malformed speech_zeroemb_idx/audio_channels ({e})") from None


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


def cache_problem(path: Path, sizes: tuple[int, ...], read: Any) -> str | None:
    """What is wrong with a code file already in the cache (unreadable, or codes that do not fit), or None."""
    from sicl.errors import SiclError

    try:
        arr = read(path.parent, path.stem)
    except SiclError as e:
        return str(e).removeprefix(f"{path}: ").split("; delete it")[0]
    return check_codes(arr, sizes)


class _Tokenizer:
    """sicl's clean-room MiMo-Audio tokenizer encoder on 16 kHz clips: (frames, RVQ levels) int64 codes."""

    def __init__(self, path: str, device: str) -> None:
        from sicl.models.mimo_tokenizer import load_mimo_tokenizer

        self.model = load_mimo_tokenizer(path, device=device)

    def __call__(self, wav: Any) -> Any:
        from sicl.data.audio import SAMPLE_RATE

        return self.model.encode(wav, SAMPLE_RATE)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from sicl.data.audio import SAMPLE_RATE, audio_hash, load_audio
    from sicl.data.manifest import read_manifest
    from sicl.errors import SiclError
    from sicl.models.mimo_audio import code_frames, codes_file, read_codes, write_codes

    out = args.out or os.environ.get("SICL_MIMO_CODES")
    if not out:
        raise SiclError("no code cache: give --out DIR (or set $SICL_MIMO_CODES)")
    out = Path(out)
    sizes = codebook_sizes(args.model)
    examples = [ex for m in args.manifest for ex in read_manifest(m)]
    if args.from_dir is not None and not Path(args.from_dir).is_dir():
        raise SiclError(f"{args.from_dir}: --from-dir is not a folder")
    encode = _Tokenizer(args.tokenizer, args.device) if args.tokenizer is not None else None

    from sicl.progress import progress as tqdm

    written = present = 0
    bad: list[str] = []
    for ex in tqdm(examples, desc="codes", unit="clip", leave=False, disable=None):
        try:
            wav = load_audio(ex.audio, max_seconds=None)
        except SiclError as e:
            problem = f"{ex.id}: {e}"
        else:
            cached = codes_file(out, audio_hash(wav))
            if cached is not None:
                stale = cache_problem(cached, sizes, read_codes)
                if stale is None:
                    present += 1
                    continue
                # a truncated or foreign file would fail every later run: make it again
                print(f"sicl codes: warning: {cached}: {stale}; making it again", file=sys.stderr)
            if encode is not None:
                try:
                    codes = encode(wav)
                except SiclError as e:
                    codes, err = None, str(e)
                    problem = f"{ex.id} ({ex.audio}): {err}"
                else:
                    err = check_codes(codes, sizes)
                    problem = f"{ex.id} ({ex.audio}): tokenizer output {err}" if err else None
            else:
                path = Path(args.from_dir) / f"{ex.id}.npy"
                codes, err = read_code_file(path, sizes)
                want = code_frames(len(wav))
                if err is None and abs(codes.shape[0] - want) > 1:
                    codes, err = None, (f"{codes.shape[0]} code frames, but this {len(wav) / SAMPLE_RATE:.2f} s clip "
                                        f"gives {want} (codes of another clip, or of another tokenizer?)")
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
