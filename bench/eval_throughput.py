"""Evaluation throughput: `sicl eval`'s runner vs a naive per-query loop, same queries, same demos, same run.

Queries: the synthetic world's child-science test set, demos (k=3) from its pool, retrieved once with TICL
(gold query text, so both sides see identical episodes), model tiny-omni. Timed: generation only (model
loading and retrieval are shared and excluded).

- naive: per query, read every clip, run the processor on the chat text + audio (features padded to 30 s,
  placeholders expanded by the processor), ``model.generate`` at batch 1 (demos re-encoded every query);
- sicl: :func:`sicl.eval.runner.evaluate` with ``--batch-size`` queries per batch sorted by length, demo
  tower outputs cached, features padded to the longest clip; its rate is ``run.json`` timing
  ``queries_per_second`` (the generation loop, writing included).

- vllm (``--vllm``; needs the vLLM environment, ``make vllm-env``, run as a child process of this one with
  ``.venv-vllm/bin/python`` or ``$SICL_VLLM_PYTHON``, given this run's retrieval so the episodes are the same):
  the ``vllm`` backend (:mod:`sicl.eval.vllm_backend`) on the same episodes, cut into the runner's batches
  (``batches_for``), timed over ``generate`` only (engine start-up is printed apart); then once more with one fixed
  set of k demonstrations for every query (the layout where vLLM's prefix cache can reuse the demonstrations'
  KV), with vLLM's prefix-cache hit rate for both.

Prints queries/s for each, how many predictions agree, and a last line ``speedup_vs_naive X`` (sicl's hf
runner); with ``--vllm`` also ``vllm_vs_naive`` and ``vllm_vs_hf``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
    ap.add_argument("--vllm", action="store_true", help="also time the vllm backend (needs the vLLM environment)")
    ap.add_argument("--vllm-only", metavar="RANKED_JSON", help=argparse.SUPPRESS)  # the child process of --vllm
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
    if args.vllm_only:  # child: the parent's episodes, on vLLM; one JSON line back
        ranked = json.loads(Path(args.vllm_only).read_text())
        res = run_vllm(build_episodes(queries, args.k, ranked, {ex.id: ex for ex in pool}), pool, args)
        print("VLLM_RESULT " + json.dumps(res), flush=True)
        return 0
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
        vl = None
        if args.vllm:
            (Path(tmp) / "ranked.json").write_text(json.dumps(ranked))
            py = os.environ.get("SICL_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
            cmd = [py, __file__, "--vllm-only", f"{tmp}/ranked.json", "--world", str(world), "--model", args.model,
                   "--k", str(args.k), "--batch-size", str(args.batch_size), "--limit", str(limit)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                sys.exit(f"[bench] the vLLM child failed ({py}; build it with `make vllm-env`):\n{r.stderr[-3000:]}")
            vl = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("VLLM_RESULT ")][-1].split(" ", 1)[1])
    same = sum(p["prediction"] == o for p, o in zip(preds, naive_out, strict=True))
    naive_qps, sicl_qps = len(episodes) / t_naive, run["timing"]["queries_per_second"]
    print(f"[bench] {len(episodes)} queries, k={args.k}, batch {args.batch_size}, model {args.model}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"[bench] prompt tokens/query {run['tokens']['prompt_tokens']}, generated {run['tokens']['generated_tokens']}")
    print(f"naive_queries_per_s {naive_qps:.3f}")
    print(f"sicl_queries_per_s {sicl_qps:.3f}")
    print(f"predictions_equal {same}/{len(episodes)}")
    if vl is not None:
        hf_preds = [p["prediction"] for p in preds]
        print(f"[bench] vllm engine start-up {vl['startup_s']:.1f} s (not timed below)")
        print(f"vllm_queries_per_s {vl['qps']:.3f}")
        print(f"vllm_prefix_cache_hit_rate {vl['stats'].get('prefix_cache_hit_rate', float('nan')):.3f}")
        print(f"vllm_fixed_demos_queries_per_s {vl['fixed_qps']:.3f}")
        print(f"vllm_fixed_demos_prefix_cache_hit_rate "
              f"{vl['fixed_stats'].get('prefix_cache_hit_rate', float('nan')):.3f}")
        print(f"vllm_predictions_equal_hf {sum(a == b for a, b in zip(vl['preds'], hf_preds, strict=True))}"
              f"/{len(episodes)}")
        print(f"vllm_vs_naive {vl['qps'] / naive_qps:.2f}")
        print(f"vllm_vs_hf {vl['qps'] / sicl_qps:.2f}")
    print(f"speedup_vs_naive {sicl_qps / naive_qps:.2f}")
    return 0


def run_vllm(episodes, pool, args) -> dict:
    """The vllm backend on ``episodes`` in the runner's batches, then with one fixed demo set for every query."""
    import dataclasses

    from sicl.episodes.prompts import extract_answer
    from sicl.eval.backends import load_backend
    from sicl.eval.runner import _Lengths, batches_for  # the runner's own batching

    t0 = time.perf_counter()
    be = load_backend("vllm", model=args.model)
    startup = time.perf_counter() - t0

    def timed(eps):
        be.stats()  # reset the counters' baseline
        order = batches_for(eps, args.batch_size, _Lengths(25.0))
        outs = [None] * len(eps)
        t = time.perf_counter()
        for b in order:
            for i, g in zip(b, be.generate([eps[i] for i in b]), strict=True):
                outs[i] = extract_answer(g.text, be.preset, eps[i].query.choices)
        return len(eps) / (time.perf_counter() - t), outs, be.stats()

    qps, preds, stats = timed(episodes)
    fixed = [dataclasses.replace(ep, demos=list(episodes[0].demos)) for ep in episodes]
    fixed = [ep for ep in fixed if ep.query.id not in {d.id for d in ep.demos}]
    fixed_qps, _, fixed_stats = timed(fixed)
    return {"startup_s": startup, "qps": qps, "preds": preds, "stats": stats, "fixed_qps": fixed_qps,
            "fixed_stats": fixed_stats}


if __name__ == "__main__":
    raise SystemExit(main())
