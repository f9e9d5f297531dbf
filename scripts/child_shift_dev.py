"""A development proxy for issue 15's hidden check: the demo's SICL-AT1 adapter on child-like speech the demo world
never had (other children, other sentences, shifts milder and stronger than the world's).

It builds, for each shift fraction, a set of children drawn by the world's child sampler under a tag no world uses
(``classroom("shift-dev-...")``), their vocal-tract shift, pitch offset, rate jitter and pauses scaled by FRACTION
(0.5: milder than the world's children, 1.5: stronger), speaking SENTENCES (``science``: the world's science
grammar; ``everyday``: open-vocabulary everyday sentences). Pool (200) and test (60) share the children, as the
world's classrooms do. Then it runs, on the 60 queries: zero-shot, vanilla ICL (k=3, TICL on the zero-shot
transcripts) and each ``--adapter`` at k=0 and k=3, and writes OUT/shift_dev.md and .json.

    python scripts/child_shift_dev.py --out OUT --fractions 0.5,1.0,1.5 --sentences science,everyday \\
        --adapter sicl-at1=runs/demo/models/sicl-at1 [--model tiny-omni]

Development data only: none of these clips is a test split of anything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from sicl.data.audio import write_audio
from sicl.data.manifest import Example, write_manifest
from sicl.data.synth import open_text as O
from sicl.data.synth import text as T
from sicl.data.synth import voices as V

SENTENCES = {"science": lambda rng: T.science_sentence(rng).text, "everyday": O.open_sentence}


def build(out: Path, fraction: float, sentences: str, n_pool: int = 200, n_test: int = 60) -> Path:
    """OUT/pool.jsonl + OUT/test.jsonl (kept when both exist)."""
    if (out / "pool.jsonl").exists() and (out / "test.jsonl").exists():
        return out
    rng = np.random.default_rng([7, int(fraction * 100), len(sentences)])
    kids = [replace(k, shift=1.0 + (k.shift - 1.0) * fraction, pitch=int(50 + (k.pitch - 50) * fraction),
                    rate_jitter=k.rate_jitter * fraction, word_gap=int(round(k.word_gap * fraction)))
            for k in V.classroom(f"shift-dev-{sentences}", n=10)]
    rows: list[Example] = []
    seen: set[str] = set()
    while len(rows) < n_pool + n_test:
        s = SENTENCES[sentences](rng)
        if s in seen:
            continue
        seen.add(s)
        i = len(rows)
        kid = kids[i % len(kids)]
        path = out / "audio" / f"{i}.flac"
        write_audio(path, kid.synthesize(s, np.random.default_rng([i, 1])))
        rows.append(Example(id=f"sd{i}", audio=str(path.resolve()), task="asr", target=s, speaker=kid.speaker))
    write_manifest(out / "pool.jsonl", rows[:n_pool])
    write_manifest(out / "test.jsonl", rows[n_pool:])
    return out


def evaluate(model: str, adapter: str | None, data: Path, ks: str, out: Path, pseudo: Path | None) -> None:
    cmd = [str(Path(sys.executable).parent / "sicl"), "eval", "--model", model, "--data", str(data / "test.jsonl"),
           "--k", ks, "--out", str(out), "--threads", "1", "--resume"]
    if ks != "0":
        cmd += ["--pool", str(data / "pool.jsonl")]
    if pseudo is not None:
        cmd += ["--pseudo-labeler", f"file:{pseudo}"]
    if adapter:
        cmd += ["--adapter", adapter]
    subprocess.run(cmd, check=True)


def wer(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["asr"]["wer"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="tiny-omni")
    ap.add_argument("--adapter", action="append", default=[], help="NAME=DIR (repeatable)")
    ap.add_argument("--fractions", default="0.5,1.0,1.5")
    ap.add_argument("--sentences", default="science,everyday")
    args = ap.parse_args(argv)
    out = Path(args.out)
    results = []
    for sentences in args.sentences.split(","):
        for frac in (float(f) for f in args.fractions.split(",")):
            data = build(out / "data" / f"{sentences}-{frac:g}", frac, sentences)
            base = out / "eval" / f"{sentences}-{frac:g}"
            evaluate(args.model, None, data, "0", base / "zero-shot", None)
            zs = base / "zero-shot" / "predictions.jsonl"
            evaluate(args.model, None, data, "3", base / "vanilla-icl", zs)
            row = {"sentences": sentences, "fraction": frac, "zero-shot": wer(base / "zero-shot"),
                   "vanilla-icl k=3": wer(base / "vanilla-icl")}
            for name, adapter in (a.split("=", 1) for a in args.adapter):
                evaluate(args.model, adapter, data, "0,3", base / name, zs)
                row[f"{name} k=0"] = wer(base / name / "k=0")
                row[f"{name} k=3"] = wer(base / name / "k=3")
            results.append(row)
            print(json.dumps(row), flush=True)
    (out / "shift_dev.json").write_text(json.dumps(results, indent=1) + "\n")
    cols = list(results[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) and c != "fraction" else str(r[c])
                                for c in cols) + " |" for r in results]
    (out / "shift_dev.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
