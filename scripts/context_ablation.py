"""Does a model use the text hint of contextual ASR? The held-out ``context`` items (the same as pretraining's
final evaluation) with their hints and without them: WER and the share of made-up words spelled exactly.

    python scripts/context_ablation.py MODEL [MODEL ...] [--n 100]

Without the hint a made-up word cannot be spelled except by chance, so the gap between the two columns is what
the model takes from its context (docs/tiny-omni.md, "v4").
"""

from __future__ import annotations

import argparse
import copy
import importlib

import torch


def main(argv: list[str] | None = None) -> int:
    from sicl.models import tiny_omni
    from sicl.models.zoo import resolve_model
    from sicl.pretrain.evaluate import generate, make_eval_items, new_word_hit, score

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    items = make_eval_items(importlib.import_module("sicl.data.synth.pretrain_items"), args.n, ["context"])["context"]
    bare = [copy.copy(it) for it in items]
    for it in bare:
        it.meta = {k: v for k, v in it.meta.items() if k != "hint"}
    print("| model | WER with hint | WER without | new words spelled, with hint | without |")
    print("|---|---:|---:|---:|---:|")
    for name in args.models:
        model, processor = tiny_omni.load_tiny_omni(resolve_model(name))
        tok = processor.tokenizer
        row = []
        for its in (items, bare):
            hyps = generate(model, tok, its)
            row.append((score("wer", its, hyps), new_word_hit(items, hyps)))  # hits counted against the hint words
        print(f"| {name} | {row[0][0]:.3f} | {row[1][0]:.3f} | {row[0][1]:.3f} | {row[1][1]:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
