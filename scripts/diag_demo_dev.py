"""Issue 15's diagnostics on a world's DEVELOPMENT splits (never test): why SICL-AT helps or does not.

    python scripts/diag_demo_dev.py --world runs/demo/data --out runs/diag [--model tiny-omni]
        [--adapter sicl-at1=runs/demo/models/sicl-at1 ...] [--n 60] [--sets child-science,child-reading,adult]

For each set (queries: ``<set>/train.jsonl``, demonstrations: ``<set>/pool.jsonl``) and each model (the base
model, then every ``--adapter``), it runs ``sicl eval`` at k=0 and at k=3 with TICL twice: pseudo-labels (the base
model's own zero-shot transcripts, as the demo does) and gold labels (the oracle retriever). It prints and writes
(``OUT/diag.json``, ``OUT/diag.md``):

* WER of each (model, k, labels);
* TICL precision: the share of the 3 demonstrations from the query's own topic (``meta.topic``), pseudo vs gold;
* the error split: word error rate on the domain words (child sets: the domain's vocabulary; adult: the query
  topic's rare words) and on all other reference words (substitutions and deletions count against the reference
  word; insertions count as other-word errors);
* the words a query shares with its 3 demonstrations' transcripts (their share of its reference words, and the
  share of them the hypothesis contains; k=0 rows count the words of the gold-label demonstrations, asked
  without them): does the model take a word from a demonstration?

Results are reused when OUT already has them (``sicl eval --resume``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import jiwer

from sicl.data.synth import open_text as O
from sicl.data.synth import text as T
from sicl.eval.metrics import normalize_text

SICL = [str(Path(sys.executable).with_name("sicl"))]


def run_eval(model: str, adapter: str | None, data: Path, pool: Path, ks: str, labels: str, out: Path, n: int,
             threads: int) -> None:
    cmd = SICL + ["eval", "--model", model, "--data", str(data), "--pool", str(pool), "--k", ks,
                  "--pseudo-labeler", labels, "--limit", str(n), "--batch-size", "16", "--out", str(out),
                  "--threads", str(threads), "--scorer", "official"]
    if adapter:
        cmd += ["--adapter", adapter]
    if (out / "run.json").exists() or any(out.glob("k=*/run.json")):
        cmd.append("--resume")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def domain_vocab(set_name: str, row: dict) -> set[str]:
    if set_name == "child-science":
        return set(T.SCIENCE_WORDS)
    if set_name == "child-reading":
        return set(T.READING_WORDS)
    meta = row.get("meta") or {}
    if meta.get("names"):  # scripts/make_names_task.py: the query's made-up names
        return set(meta["names"])
    topic = meta.get("topic") or ""
    if topic.startswith("rare-"):
        return set(O.rare_topics()[int(topic.split("-")[1])][1])
    return set()


def error_split(set_name: str, preds: list[dict]) -> dict[str, float]:
    """Word error rate on domain words and on the other reference words."""
    err = {"domain": 0, "other": 0}
    count = {"domain": 0, "other": 0}
    for r in preds:
        ref, hyp = normalize_text(r["target"], "en"), normalize_text(r.get("prediction") or "", "en")
        ref_words = ref.split()
        if not ref_words:
            continue
        vocab = domain_vocab(set_name, r)
        for w in ref_words:
            count["domain" if w in vocab else "other"] += 1
        out = jiwer.process_words(ref, hyp if hyp.strip() else "<empty>")
        for chunk in out.alignments[0]:
            if chunk.type in ("substitute", "delete"):
                for w in ref_words[chunk.ref_start_idx:chunk.ref_end_idx]:
                    err["domain" if w in vocab else "other"] += 1
            elif chunk.type == "insert":
                err["other"] += chunk.hyp_end_idx - chunk.hyp_start_idx
    return {f"{c}_wer": round(err[c] / count[c], 3) if count[c] else None for c in err} | \
        {f"{c}_words": count[c] for c in count}


def precision(retrievals: Path, queries: dict[str, dict], pool: dict[str, dict], k: int = 3) -> float:
    shares = []
    for r in rows(retrievals):
        q = queries.get(r["id"])
        if q is None:
            continue
        topic = (q.get("meta") or {}).get("topic")
        demos = r["demos"][:k]
        shares.append(sum((pool[d].get("meta") or {}).get("topic") == topic for d in demos) / max(1, len(demos)))
    return round(sum(shares) / max(1, len(shares)), 3)


def demo_word_hits(preds: list[dict], retrievals: Path, pool: dict[str, dict], k: int = 3) -> dict[str, float]:
    """The query's reference words that its ``k`` demonstrations' transcripts also contain: their share of all
    reference words (``in_demos``) and the share of them the hypothesis contains (``demo_word_hit``). For a k=0
    run, pass the gold-label retrievals: the same words, asked without the demonstrations."""
    demos = {r["id"]: r["demos"][:k] for r in rows(retrievals)}
    total = inside = hit = 0
    for r in preds:
        if r["id"] not in demos:
            continue
        said = set(normalize_text(" ".join(pool[d]["target"] for d in demos[r["id"]]), "en").split())
        hyp = set(normalize_text(r.get("prediction") or "", "en").split())
        for w in normalize_text(r["target"], "en").split():
            total += 1
            if w in said:
                inside += 1
                hit += w in hyp
    return {"in_demos": round(inside / total, 3) if total else None,
            "demo_word_hit": round(hit / inside, 3) if inside else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="tiny-omni")
    ap.add_argument("--adapter", action="append", default=[], help="NAME=DIR (repeatable)")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--sets", default="child-science,child-reading,adult")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    world, out = Path(args.world), Path(args.out)
    models = [("base", None)] + [tuple(a.split("=", 1)) for a in args.adapter]
    results: list[dict] = []

    def record(set_name: str, name: str, k: int, labels: str, pdir: Path, queries: dict, pool: dict) -> None:
        preds = rows(pdir / "predictions.jsonl")
        m = json.loads((pdir / "metrics.json").read_text())
        rec = {"set": set_name, "model": name, "k": k, "labels": labels, "wer": m["asr"]["wer"],
               **error_split(set_name, preds)}
        ret = pdir / "retrievals.jsonl"
        ret = ret if ret.exists() else pdir.parent / "retrievals.jsonl"
        if k:
            rec["ticl_precision"] = precision(ret, queries, pool)
        rec |= demo_word_hits(preds, ret if k else out / set_name / "base" / "gold" / "retrievals.jsonl", pool)
        results.append(rec)
        print(json.dumps(rec), flush=True)

    for set_name in args.sets.split(","):
        data, pool_path = world / set_name / "train.jsonl", world / set_name / "pool.jsonl"
        queries = {r["id"]: r for r in rows(data)}
        pool = {r["id"]: r for r in rows(pool_path)}
        base_zs = out / set_name / "base" / "zero-shot"
        run_eval(args.model, None, data, pool_path, "0,3", "gold", out / set_name / "base" / "gold", args.n,
                 args.threads)
        # the base model's own zero-shot transcripts are every model's TICL pseudo-labels (as in the demo)
        base_zs = out / set_name / "base" / "gold" / "k=0" / "predictions.jsonl"
        for name, adapter in models:
            if name != "base":
                run_eval(args.model, adapter, data, pool_path, "0,3", "gold", out / set_name / name / "gold",
                         args.n, args.threads)
            run_eval(args.model, adapter, data, pool_path, "3", f"file:{base_zs}",
                     out / set_name / name / "pseudo", args.n, args.threads)
            record(set_name, name, 0, "-", out / set_name / name / "gold" / "k=0", queries, pool)
            record(set_name, name, 3, "pseudo", out / set_name / name / "pseudo", queries, pool)
            record(set_name, name, 3, "gold", out / set_name / name / "gold" / "k=3", queries, pool)
    (out / "diag.json").write_text(json.dumps(results, indent=1) + "\n")
    seen: set = set()
    lines = ["| set | model | k | TICL labels | WER | domain-word WER | other-word WER | TICL precision | "
             "words in demos | of them spelled |", "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        key = (r["set"], r["model"], r["k"], r["labels"])
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"| {r['set']} | {r['model']} | {r['k']} | {r['labels']} | {r['wer']:.3f} | "
                     f"{r['domain_wer'] if r['domain_wer'] is not None else '-'} | {r['other_wer']} | "
                     f"{r.get('ticl_precision', '-')} | {r['in_demos']} | {r['demo_word_hit']} |")
    (out / "diag.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
