"""An ASR task in the shape of a read-speech corpus: several speakers read the same sentences.

In a read-aloud corpus (RSR-style) the children read from one set of prompts, so a test child's sentence has been
read by other children of the pool; in conversational child speech (MyST-style) sentences do not repeat. The
world's ``child-reading`` keeps sentences distinct across its splits, like MyST. This script builds the other
shape, with the world's reading grammar and the ``reading`` classroom's 12 children (the voices of the world's
``child-reading`` pool and test), to measure what retrieved demonstrations do when one of them is the query's
own sentence in another child's voice. Common Voice, the paper's SICL-AT training corpus, has the same shape:
a sentence is recorded by several speakers, and the paper's demonstration pool (``validated``) holds the other
recordings of a query's sentence. ``--kind adult`` builds that with the world's adult grammar and voices;
``--kind open`` with the world's adult voices reading open-vocabulary everyday sentences
(``open_text.open_sentence``: the kind of text pretraining speaks, and Common Voice's open-domain prompts) instead of
the world's adult grammar:

    python scripts/make_shared_reading_task.py OUT [--kind reading|adult|open] [--sentences 125] [--readers 3]
        [--n-dev 60] [--seed 63000000] [--world runs/world]

Each of ``--sentences`` sentences is read by ``--readers`` distinct speakers in the pool; the first ``--n-dev``
sentences are also read by one more speaker (never one of that sentence's pool readers) as queries.
Writes OUT/<set>/pool.jsonl and OUT/<set>/train.jsonl (the queries), OUT/audio/*.wav; <set> is ``child-reading``
for ``--kind reading`` (``diag_demo_dev.py --world OUT --sets child-reading`` reads ``train.jsonl`` and scores the
reading domain words) and ``adult`` for ``--kind adult`` and ``--kind open`` (SICL-AT: ``queries: OUT/adult/train.jsonl, pool:
OUT/adult/pool.jsonl``). Rows carry ``meta.topic`` and ``meta.sentence`` (the sentence's index: equal for every
reading of it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--kind", choices=("reading", "adult", "open"), default="reading",
                    help="reading: the world's reading grammar and classroom; adult: its adult grammar and voices; "
                         "open: its adult voices reading open-vocabulary everyday sentences")
    ap.add_argument("--sentences", type=int, default=125)
    ap.add_argument("--readers", type=int, default=3, help="speakers (children or adults) reading each sentence in the pool")
    ap.add_argument("--n-dev", type=int, default=60)
    ap.add_argument("--seed", type=int, default=63_000_000, help="far from pretraining's held-out seeds (90,000,000+)")
    ap.add_argument("--world", type=Path, default=None,
                    help="a built world whose sentences (every split) are never drawn here")
    args = ap.parse_args(argv)
    if args.n_dev > args.sentences:
        ap.error("--n-dev cannot exceed --sentences")
    from sicl.data.audio import write_audio
    from sicl.data.manifest import Example, write_manifest
    from sicl.data.synth import items as I
    from sicl.data.synth import text as T
    from sicl.data.synth import voices as V
    from sicl.data.synth.open_text import open_sentence, world_adult_sentence
    from sicl.data.synth.world import WORLD_VERSION, world_sentences

    kids = V.classroom("reading") if args.kind == "reading" else V.adult_population()
    set_name = "child-reading" if args.kind == "reading" else "adult"
    draw = {"reading": lambda n: T.reading_sentence(rng, T.READING_TOPICS[n % len(T.READING_TOPICS)], WORLD_VERSION),
            "adult": lambda n: world_adult_sentence(rng),
            "open": lambda n: T.Sentence(open_sentence(rng))}[args.kind]
    if args.readers + 1 > len(kids):
        ap.error(f"--readers must be below the {len(kids)} voices")
    rng = np.random.default_rng(args.seed)
    seen = world_sentences(args.world, ("train", "pool", "test")) if args.world else set()
    sentences = []
    while len(sentences) < args.sentences:
        s = draw(len(sentences))
        if s.text not in seen:
            seen.add(s.text)
            sentences.append(s)
    plan = []  # (split, sentence index, child)
    for i in range(len(sentences)):
        order = rng.permutation(len(kids))
        plan += [("pool", i, kids[j]) for j in order[:args.readers]]
        if i < args.n_dev:
            plan.append(("train", i, kids[order[args.readers]]))
    seeds = np.random.SeedSequence([args.seed, 1]).generate_state(len(plan))
    jobs = [(sentences[i].text, kid, int(s), None, f"{args.kind}-{split}-{n:05d}")
            for n, ((split, i, kid), s) in enumerate(zip(plan, seeds, strict=True))]
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    (args.out / set_name).mkdir(exist_ok=True)
    with I._pool(2) as pool:
        done = [r for chunk in pool.imap(I._synth_chunk, [(jobs[i:i + I.CHUNK], None)
                                                          for i in range(0, len(jobs), I.CHUNK)]) for r in chunk]
    rows: dict[str, list] = {"pool": [], "train": []}
    for (split, i, kid), (wav, _), job in zip(plan, done, jobs, strict=True):
        path = args.out / "audio" / f"{job[-1]}.wav"
        write_audio(path, wav)
        rows[split].append(Example(id=job[-1], audio=str(path.resolve()), task="asr", target=sentences[i].text,
                                   speaker=kid.speaker, meta={"sentence": i, **({"topic": sentences[i].topic} if sentences[i].topic else {})}))
    for split, r in rows.items():
        write_manifest(args.out / set_name / f"{split}.jsonl", r)
    print(f"{len(plan)} clips in {args.out}: pool {len(rows['pool'])} ({args.sentences} sentences x "
          f"{args.readers} speakers), queries {len(rows['train'])}")
    return 0


if __name__ == "__main__":  # the synthesis pool re-imports __main__ in its workers: keep work out of module level
    raise SystemExit(main())
