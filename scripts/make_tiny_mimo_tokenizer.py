"""Write a tiny random MiMo-Audio-Tokenizer checkpoint in the reference's layout:
python scripts/make_tiny_mimo_tokenizer.py OUT_DIR [--variant base|window|causal] [--seed N]."""

from __future__ import annotations

import argparse

from sicl.models.mimo_tiny import TOKENIZER_VARIANTS, build_tiny_mimo_tokenizer, count_parameters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--variant", choices=sorted(TOKENIZER_VARIANTS), default="base")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = build_tiny_mimo_tokenizer(args.out_dir, variant=args.variant, seed=args.seed)
    print(f"wrote {out} ({count_parameters(out):,} parameters)")


if __name__ == "__main__":
    main()
