"""Write a tiny random checkpoint in MiMo-Audio's layout: python scripts/make_tiny_mimo.py OUT_DIR [--seed N]."""

from __future__ import annotations

import argparse

from sicl.models.mimo_tiny import build_tiny_mimo, count_parameters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = build_tiny_mimo(args.out_dir, seed=args.seed)
    print(f"wrote {out} ({count_parameters(out):,} parameters)")


if __name__ == "__main__":
    main()
