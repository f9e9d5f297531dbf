#!/usr/bin/env bash
# In-context checks of a base model on a world's DEVELOPMENT splits (never test): zero-shot vs k=3 with gold-label
# TICL (the oracle retriever: demonstrations chosen by the query's true transcript) on
#   adult/train       (world v2: half the sentences carry a rare-word topic whose TICL neighbours share it)
#   child-science/train, child-reading/train   (other children than the pool's; the pool shares topics)
# Usage: bash scripts/measure_icl_dev.sh MODEL WORLD OUT [N=60]
# Prints one line per set: zero-shot WER, k=3 WER, difference. Results stay in OUT/<set>/k=N/.
set -euo pipefail
model=$1; world=$2; out=$3; n=${4:-60}
sicl=${SICL:-.venv/bin/sicl}
for set in adult child-science child-reading; do
  $sicl eval --model "$model" --data "$world/$set/train.jsonl" --pool "$world/$set/pool.jsonl" --k 0,3 \
    --pseudo-labeler gold --limit "$n" --batch-size 16 --out "$out/$set" --resume >/dev/null 2>"$out.$set.log" \
    || { tail -3 "$out.$set.log"; exit 1; }
  python3 - "$out/$set" "$set" <<'PY'
import json, sys
d, name = sys.argv[1], sys.argv[2]
w = {k: json.load(open(f"{d}/k={k}/metrics.json"))["asr"]["wer"] for k in (0, 3)}
print(f"{name:15s} zero-shot {w[0]:.3f}   k=3 gold TICL {w[3]:.3f}   difference {w[3] - w[0]:+.3f}")
PY
done
