"""Evaluation throughput: `sicl eval`'s runner vs a naive per-query loop, same queries, same demos, same run.

Queries: the synthetic world's child-science test set, demos (k=3) from its pool, retrieved once with TICL
(gold query text, so both sides see identical episodes), model tiny-omni. Timed: generation only (model
loading and retrieval are shared and excluded).

- naive: per query, read every clip, run the processor on the chat text + audio (features padded to 30 s,
  placeholders expanded by the processor), ``model.generate`` at batch 1 (demos re-encoded every query);
- sicl: :func:`sicl.eval.runner.evaluate` with ``--batch-size`` queries per batch sorted by length, demo
  tower outputs cached, features padded to the longest clip; its rate is ``run.json`` timing
  ``queries_per_second`` (the generation loop, writing included).

Prints queries/s for both, how many predictions agree, and a last line ``speedup_vs_naive X``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def naive(bb, episodes, max_new_tokens: int = 128) -> tuple[float, list[str]]:
    from sicl.data.audio import load_audio
    from sicl.episodes.prompts import extract_answer

    outs = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for ep in episodes:
            text = bb.prompt_text(ep, with_labels=False)
            wavs = [load_audio(ex.audio) for ex in ep.examples]
            enc = bb.processor(text=[text], audio=wavs, return_tensors="pt", padding=True)
            ids = enc["input_ids"]
            out = bb.model.generate(input_ids=ids, attention_mask=enc["attention_mask"],
                                    input_features=enc["input_features"],
                                    feature_attention_mask=enc["feature_attention_mask"],
                                    max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=[bb.im_end_id],
                                    pad_token_id=bb.pad_id)
            outs.append(extract_answer(bb.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True),
                                       bb.preset))
    return time.perf_counter() - t0, outs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 queries instead of 20")
    ap.add_argument("--world", default=str(ROOT / "runs" / "world-small"))
    ap.add_argument("--model", default="tiny-omni")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)

    from sicl.data.manifest import read_manifest
    from sicl.eval.runner import EvalConfig, build_episodes, evaluate
    from sicl.models.registry import load_backbone
    from sicl.retrieval.retrievers import RetrievalConfig, retrieve

    world = Path(args.world)
    test, pool_path = world / "child-science" / "test.jsonl", world / "child-science" / "pool.jsonl"
    if not test.exists():
        from sicl.data.synth.world import build_world

        print(f"[bench] building the small world in {world}", file=sys.stderr)
        build_world(world, size="small")
    limit = args.limit or (8 if args.quick else 20)
    queries = read_manifest(test)[:limit]
    pool = read_manifest(pool_path, require_target=True)
    with tempfile.TemporaryDirectory() as tmp:
        rc = RetrievalConfig(retriever="ticl", k=args.k, pseudo_labeler="gold", cache_dir=f"{tmp}/cache")
        lists = retrieve(queries, pool, config=rc)
        ranked = {q.id: [d for d, _ in row] for q, row in zip(queries, lists, strict=True)}
        episodes = build_episodes(queries, args.k, ranked, {ex.id: ex for ex in pool})

        bb = load_backbone(args.model)
        bb.model.eval()
        naive(bb, episodes[:1])  # warm-up
        t_naive, naive_out = naive(bb, episodes)

        cfg = EvalConfig(data=str(test), pool=str(pool_path), out=f"{tmp}/sicl", model=args.model, ks=[args.k],
                         retriever="ticl", pseudo_labeler="gold", batch_size=args.batch_size, limit=limit,
                         cache_dir=f"{tmp}/cache")
        out = evaluate(cfg)
        run = json.loads((out / "run.json").read_text())
        preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    same = sum(p["prediction"] == o for p, o in zip(preds, naive_out, strict=True))
    naive_qps, sicl_qps = len(episodes) / t_naive, run["timing"]["queries_per_second"]
    print(f"[bench] {len(episodes)} queries, k={args.k}, batch {args.batch_size}, model {args.model}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"[bench] prompt tokens/query {run['tokens']['prompt_tokens']}, generated {run['tokens']['generated_tokens']}")
    print(f"naive_queries_per_s {naive_qps:.3f}")
    print(f"sicl_queries_per_s {sicl_qps:.3f}")
    print(f"predictions_equal {same}/{len(episodes)}")
    print(f"speedup_vs_naive {sicl_qps / naive_qps:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
