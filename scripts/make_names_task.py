"""An ASR task whose demonstrations carry what the query needs: made-up names that recur within a topic.

Issue 15 asks for high-resource training sets "where demonstrations carry what the query needs, as CommonVoice's
rare names and words do". World v2's rare-topic words are heard in pretraining, so tiny-omni spells them from the
sound and an adult episode never rewards reading a demonstration. Here every topic has two made-up names
(:func:`open_text.spoken_nonce_word`: pronounceable, in no lexicon, spelled the way they sound) and an anchor
word; each sentence is an adult template whose ``{name}`` slots are the topic's names. A name's spelling cannot
be known from the sound alone (v8 spells 5 % of such names with no context), but the topic's other sentences,
which text retrieval finds through the shared names and anchor, spell it. This is the situation tiny-omni v8's
shared-chat pretraining taught (70 % of names copied from an earlier turn), now as retrieved demonstrations.

    python scripts/make_names_task.py OUT [--topics 150] [--n-pool 900] [--n-train 900] [--n-dev 60] [--seed 62000000]

Writes OUT/names/pool.jsonl, OUT/names/train.jsonl (development queries: ``diag_demo_dev.py --world OUT --sets
names`` reads ``train.jsonl``), OUT/sicl-train.jsonl (SICL-AT queries), OUT/audio/*.wav. Voices: the world's adult
speakers, or with ``--voices reading`` (or ``science``) the children of that world classroom. Rows carry ``meta.topic`` and ``meta.names``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def topics(rng: np.random.Generator, n: int) -> tuple:
    """The task's own topics (its seed, not the world's ``names`` topics, so nothing here is a world test name)."""
    from sicl.data.synth import open_text as O

    return O.make_name_topics(rng, n)


def sentence(rng: np.random.Generator, topic: tuple) -> tuple[str, list[str]]:
    from sicl.data.synth import open_text as O

    s = O.name_sentence(rng, 0, table=(topic,))
    return s.text, s.slots["names"].split()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--topics", type=int, default=150)
    ap.add_argument("--n-pool", type=int, default=900)
    ap.add_argument("--n-train", type=int, default=900)
    ap.add_argument("--n-dev", type=int, default=60)
    ap.add_argument("--seed", type=int, default=62_000_000, help="far from pretraining's held-out seeds (90,000,000+)")
    ap.add_argument("--voices", default="adult", help="adult (the world's adult speakers) or a world classroom: "
                    "science, reading (its 12 children, as the child sets' pool and test)")
    args = ap.parse_args(argv)
    from sicl.data.audio import write_audio
    from sicl.data.manifest import Example, write_manifest
    from sicl.data.synth import items as I
    from sicl.data.synth import voices as V

    rng = np.random.default_rng(args.seed)
    tops = topics(rng, args.topics)
    pop = V.adult_population() if args.voices == "adult" else V.classroom(args.voices)
    n = args.n_pool + args.n_dev + args.n_train
    plan, seen = [], set()
    while len(plan) < n:
        t = len(plan) % args.topics if len(plan) < args.n_pool else int(rng.integers(args.topics))
        text, names = sentence(rng, tops[t])
        if text in seen:
            continue
        seen.add(text)
        plan.append((text, pop[int(rng.integers(len(pop)))], t, names))
    seeds = np.random.SeedSequence([args.seed, 1]).generate_state(n)
    jobs = [(text, voice, int(s), None, f"names-{i:05d}") for i, ((text, voice, _, _), s) in enumerate(zip(plan, seeds, strict=True))]
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    (args.out / "names").mkdir(exist_ok=True)
    rows = []
    with I._pool(2) as pool:
        done = [r for chunk in pool.imap(I._synth_chunk, [(jobs[i:i + I.CHUNK], None) for i in range(0, n, I.CHUNK)])
                for r in chunk]
    for (text, voice, t, names), (wav, _), (_, _, _, _, name) in zip(plan, done, jobs, strict=True):
        path = args.out / "audio" / f"{name}.wav"
        write_audio(path, wav)
        rows.append(Example(id=name, audio=str(path.resolve()), task="asr", target=text, speaker=voice.speaker,
                            meta={"topic": f"names-{t:03d}", "names": names}))
    a, b = args.n_pool, args.n_pool + args.n_dev
    write_manifest(args.out / "names" / "pool.jsonl", rows[:a])
    write_manifest(args.out / "names" / "train.jsonl", rows[a:b])
    write_manifest(args.out / "sicl-train.jsonl", rows[b:])
    print(f"{len(rows)} clips in {args.out}: pool {a}, development {b - a}, SICL-AT queries {len(rows) - b}")
    return 0


if __name__ == "__main__":  # the synthesis pool re-imports __main__ in its workers: keep work out of module level
    raise SystemExit(main())
