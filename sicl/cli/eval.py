"""`sicl eval --data M --out DIR [--pool M --k N|0,1,2,4] [--adapter DIR] [--resume]`: evaluate a model.

Zero-shot (k=0), vanilla ICL (k>0, no adapter), SICL-AT (adapter, k>0) or fine-tuned (adapter, k=0).
Writes ``predictions.jsonl``, ``metrics.json`` and ``run.json`` (a k list: one ``k=N/`` folder per k plus
``sweep.csv``). Kill-safe with ``--resume``; shards across processes under ``torchrun`` / ``accelerate
launch``. Files and fields: docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import sys

from sicl.cli import non_negative_int, threads_arg
from sicl.eval.scorers import DEFAULT_SCORER, SCORER_NAMES
from sicl.retrieval.index import INDEX_KINDS
from sicl.retrieval.retrievers import RETRIEVERS

#: shown at the end of --help
EXAMPLES = [
    'sicl eval --data runs/world/child-science/test.jsonl --out runs/eval/zs',
    'sicl eval --data runs/world/child-science/test.jsonl --pool runs/world/child-science/pool.jsonl --k 0,1,3 --adapter runs/train/sicl-at1 --out runs/eval/at1',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny-omni", metavar="M",
                        help="built-in name, local folder or hub id (default: %(default)s)")
    parser.add_argument("--adapter", default=None, metavar="DIR", help="PEFT adapter folder (sicl train output)")
    parser.add_argument("--data", required=True, metavar="M.jsonl", help="queries to evaluate (every row needs target)")
    parser.add_argument("--pool", default=None, metavar="M.jsonl",
                        help="demonstration pool (needed when some k > 0; may be the --data file)")
    parser.add_argument("--k", default=None, metavar="N|N,N,...",
                        help="demonstrations per query, or a comma list for a sweep into OUT/k=N/ "
                             "(default: 3 with --pool, else 0)")
    parser.add_argument("--retriever", choices=RETRIEVERS, default="ticl", help="default: %(default)s")
    parser.add_argument("--pseudo-labeler", default="backbone", metavar="P",
                        help="query text for ticl/ticl+: backbone (the evaluated model's own zero-shot "
                             "transcript) | gold | hf-asr:<model> | file:<predictions.jsonl> (an earlier run's "
                             "predictions, e.g. the zero-shot run's) (default: %(default)s)")
    parser.add_argument("--embedder", default=None, metavar="E",
                        help="text embedder: sentence-transformers name or folder, or char-tfidf[:dim] (character "
                             "n-gram TF-IDF fitted on the pool) (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--index", choices=INDEX_KINDS, default="exact", help="retrieval index (default: exact)")
    parser.add_argument("--exclude-same-speaker", action="store_true",
                        help="never use a demonstration by the query's speaker")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random retriever (default: 0)")
    parser.add_argument("--batch-size", type=int, default=8, help="queries per generation batch (default: 8)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate the first N queries only")
    parser.add_argument("--method", default=None, metavar="LABEL",
                        help="method label for reports (default: zero-shot | vanilla-icl | sicl-at | fine-tuned "
                             "from k and --adapter)")
    parser.add_argument("--eval-set", default=None, metavar="LABEL",
                        help="eval-set label (default: the --data file's folder name)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="generation budget for every task (default: asr/st 128, sqa/aqa 32)")
    parser.add_argument("--loop-trim", type=int, default=0, metavar="N",
                        help="ASR/ST: a span of up to 8 words repeated N or more times in a row keeps one copy (a "
                             "degenerate loop; the raw text stays in each row's `raw`), e.g. 3; 0: off, the plain "
                             "greedy output (default: 0)")
    parser.add_argument("--device", default=None,
                        help="auto | cpu | cuda | cuda:N (default: auto: cuda:LOCAL_RANK if available, else cpu)")
    parser.add_argument("--threads", type=threads_arg, default=0,
                        help="torch CPU threads (0: torch's default; 1 is much faster for small models on a "
                             "CPU that other jobs share, see docs/evaluation.md)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="model weights dtype (default: %(default)s)")
    parser.add_argument("--preset", default="plain", choices=("plain", "ticl"), help="prompt wording (default: plain)")
    parser.add_argument("--backend", default="hf",
                        help="generation backend: hf (transformers, this process) or vllm (Qwen2.5-Omni models on "
                             "vLLM; run from the vLLM environment, `make vllm-env`) (default: hf)")
    parser.add_argument("--scorer", choices=SCORER_NAMES, default=DEFAULT_SCORER,
                        help="whose scoring rules metrics.json follows: official (each benchmark's own script), "
                             "mimo-eval (MiMo-Audio-Eval's) or lenient (development only); see docs/metrics.md "
                             "(default: %(default)s)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--resume", action="store_true", help="continue a killed run in DIR (skips queries done)")
    parser.add_argument("--cache-dir", default=None, help="retrieval cache root (default: $SICL_CACHE or ~/.cache/sicl)")
    parser.add_argument("--allow-download", action="store_true", help="allow hub downloads of named models")
    parser.add_argument("--audio-tokenizer", default=None, metavar="DIR",
                        help="MiMo-Audio: a MiMo-Audio-Tokenizer folder that encodes clips without cached codes "
                             "(default: $SICL_MIMO_TOKENIZER, else MODEL/audio_tokenizer/ when present)")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from sicl.eval.runner import EvalConfig, evaluate, parse_ks

    ks = parse_ks(args.k) if args.k is not None else ([3] if args.pool else [0])
    cfg = EvalConfig(data=args.data, out=args.out, model=args.model, adapter=args.adapter, pool=args.pool, ks=ks,
                     retriever=args.retriever, pseudo_labeler=args.pseudo_labeler, embedder=args.embedder,
                     index=args.index, exclude_same_speaker=args.exclude_same_speaker, seed=args.seed,
                     batch_size=args.batch_size, limit=args.limit, method=args.method, eval_set=args.eval_set,
                     max_new_tokens=args.max_new_tokens, device=args.device, dtype=args.dtype, preset=args.preset,
                     backend=args.backend, cache_dir=args.cache_dir, allow_download=args.allow_download,
                     scorer=args.scorer, audio_tokenizer=args.audio_tokenizer, loop_trim=args.loop_trim)
    from sicl.guard import output_lock, stop_on_signals

    with output_lock(args.out, "sicl eval"), stop_on_signals():
        out = evaluate(cfg, resume=args.resume, progress=True)
    import os

    if os.environ.get("RANK", "0") == "0":
        what = "sweep.csv, k=N/" if len(ks) > 1 else "predictions.jsonl, metrics.json, run.json"
        print(f"sicl eval: k={','.join(map(str, ks))} on {args.data} -> {out} ({what})", file=sys.stderr)
    return 0
