#!/usr/bin/env bash
# One-shot tiny-omni pretraining on a lent GPU machine (16 CPU cores synthesise, the GPU trains).
# Run from the repo root with the wheels carried in .wheels/:   bash scripts/device_pretrain.sh
# Writes at most 8 files (< 16 MB each) to $OUT: model shards + index, meta.tar.gz (config, tokenizer,
# processor), metrics.json, train.log. A snapshot goes to $OUT every 2 min, so a timeout still returns weights.
# Knobs (env): BUDGET_S total seconds (default 510), TRAIN_MIN training minutes (default: what the budget leaves
# after RESERVE_S seconds for start-up, final eval and export, at most MAX_TRAIN_MIN, default 6.0), EXCLUDE_WORLDS
# (comma-separated world folders, e.g. carried copies holding world.json and */test.jsonl: skips building the
# demo's worlds here), extra key=value overrides as arguments (e.g. init=<carried model folder>). Rebuild the folder here with:
#   python -c "from sicl.pretrain.checkpoint import unpack_export as u; from pathlib import Path as P; u(P('OUT'), P('m'))"
set -euo pipefail
START=$(date +%s)
BUDGET_S=${BUDGET_S:-510}
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -d .wheels ]; then
  $PY -m pip install -q --no-index --find-links .wheels espeakng-loader soxr soundfile 2>&1 | tail -2 || true
  for p in jiwer whisper_normalizer sacrebleu; do
    $PY -c "import $p" 2>/dev/null || $PY -m pip install -q --no-index --find-links .wheels $p >/dev/null 2>&1 || true
  done
fi
# The held-out checks score with sicl.eval.metrics (jiwer, whisper_normalizer, sacrebleu): required, not optional.
for p in jiwer whisper_normalizer sacrebleu; do
  $PY -c "import $p" 2>/dev/null || { echo "device_pretrain.sh: error: $p is not installed (put its wheel in .wheels/)"; exit 1; }
done
$PY -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import sicl" 2>/dev/null || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU visible"
WORKERS=${WORKERS:-$($PY -c "import os; print(max(1, len(os.sched_getaffinity(0)) - 2))")}
# The demo's worlds (seed 0): their test sentences are excluded from pretraining.
if [ -z "${EXCLUDE_WORLDS:-}" ]; then
  for size in default small; do
    $PY -m sicl synth --out /tmp/world-$size --size $size --workers "$WORKERS" 2>/dev/null | tail -1
  done
  EXCLUDE_WORLDS=/tmp/world-default,/tmp/world-small
fi
ELAPSED=$(( $(date +%s) - START ))
LEFT=$(( BUDGET_S - ELAPSED ))
# Training budget: whatever is left minus RESERVE_S for start-up (held-out items, priming), final eval and export.
RESERVE_S=${RESERVE_S:-100}
TRAIN_MIN=${TRAIN_MIN:-$($PY -c "print(round(max(0.3, min(${MAX_TRAIN_MIN:-6.0}, ($LEFT - $RESERVE_S) / 60)), 2))")}
echo "budget left ${LEFT}s, training ${TRAIN_MIN} min, ${WORKERS} synthesis workers"
export TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=4
timeout --signal=TERM --kill-after=10 $(( LEFT - 5 )) \
  $PY -m sicl.pretrain configs/pretrain/tiny-omni-gpu.yaml out_dir=/tmp/sicl_pretrain \
    export_dir="$OUT" max_minutes="$TRAIN_MIN" workers="$WORKERS" exclude_world="$EXCLUDE_WORLDS" "$@" 2>&1 | grep -v "Writing model shards" | tail -60
ls -la "$OUT"
