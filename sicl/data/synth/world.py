"""Write the synthetic world: ``DIR/<domain>/audio/<id>.flac`` + ``DIR/<domain>/<split>.jsonl`` + ``DIR/world.json``.

Domains and splits: adult, translate, sqa, aqa (train = episode queries, pool = demonstrations, test) and
child-science, child-reading (a small train for the direct fine-tuning baseline, pool, test), and names (adult
voices; train = development queries, pool, test; since world version 3). Sentences are distinct across the
splits of a domain (and across adult/translate/sqa), except read speech since version 4: other children of the
pool read every child-reading test sentence, and adult training queries re-read pool sentences in other voices.
A child domain's pool and test share topics and speakers (a classroom); its train set comes from other children
and other sentences. Every names split speaks the
pool's topics, whose made-up names only the pool's transcripts spell.

Same seed and size -> byte-identical files. ``world.json`` is written last and marks a complete build; a
re-run with the same settings is skipped unless ``force``. While a build runs, ``world.partial.json``
(:data:`PARTIAL`) names its settings and the splits finished so far (rewritten atomically after each split's
clips and manifest are complete): a build that was killed goes on from there when run again with the same
seed and size, rebuilding only the unfinished splits, and writes the same files as one uninterrupted build.
A folder that holds neither file but something else is not written into unless ``force``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from sicl.atomic import atomic_write_text
from sicl.data.manifest import Example, read_manifest, write_manifest
from sicl.data.synth import text as T
from sicl.data.synth import voices as V
from sicl.data.synth.items import Reread, SynthItem, iter_items, split_seed
from sicl.data.synth.open_text import N_NAME_TOPICS
from sicl.errors import SiclError

SPLITS = ("train", "pool", "test")
#: 2 (2026-11-30): children a moderate step beyond tiny-omni v2's voices, longer child sentences carrying the domain
#: words among everyday ones, and adult speech with a long tail of rare-word topics (docs/synthetic-world.md)
#: 3 (2026-12-01): a ``names`` domain (adult voices, made-up names that recur within a topic: the demonstrations
#: carry what the query needs); every other domain's files are those of version 2
#: 4 (2026-12-01): read speech is read by several speakers, as in the corpora it stands for: every child-reading
#: test sentence is read by READ_ALOUD_READERS other children of the pool (RSR-style read-aloud prompts), and
#: ADULT_REREAD_SHARE of the adult training queries re-read a pool sentence in another voice (Common Voice: a
#: sentence is recorded by several speakers, and the paper's pool, ``validated``, holds them all)
WORLD_VERSION = 4
#: names topics per pool clips: a names pool holds NAMES_PER_TOPIC sentences of each of its topics
NAMES_PER_TOPIC = 6
#: children of the pool who read each child-reading test sentence (world v4)
READ_ALOUD_READERS = 2
#: share of adult training queries whose sentence a pool clip speaks in another voice (world v4)
ADULT_REREAD_SHARE = 0.25
#: domains a version added: a complete world of a version at least CHANGED_IN (the last change to any other
#: domain) and below ADDED_IN[d] (same seed and size) is brought up to date by building only the domains it lacks
ADDED_IN = {"names": 3}
CHANGED_IN = 4
SIZES: dict[str, dict[str, tuple[int, int, int]]] = {
    "default": {"adult": (1500, 1500, 300), "translate": (1000, 1000, 200), "sqa": (800, 800, 200),
                "child-science": (150, 500, 200), "child-reading": (150, 500, 200), "aqa": (300, 300, 300),
                "names": (150, 600, 200)},
}
SIZES["small"] = {d: tuple(max(20, c // 10) for c in counts) for d, counts in SIZES["default"].items()}
# Adult-speech domains share one set of used sentences, so no sentence is in two of them.
_SHARED_TEXT = ("adult", "translate", "sqa")
_GEN_ORDER = ("test", "pool", "train")  # test first: its sentences are never reused elsewhere
#: a build in progress: {"version", "seed", "size", "done": ["<domain>/<split>", ...]}; world.json replaces it
PARTIAL = "world.partial.json"


def _to_example(item: SynthItem, audio: Path) -> Example:
    return Example(id=item.id, audio=str(audio), task=item.task, target=item.target, question=item.question,
                   choices=item.choices, lang=item.lang, target_lang=item.target_lang,
                   transcript=item.transcript, speaker=item.speaker, duration=item.duration, meta=item.meta)


def _spoken(ex: Example) -> str:
    return (ex.transcript or ex.target or "") if ex.task != "asr" else (ex.target or "")


def world_sentences(out: str | Path, splits: tuple[str, ...] = ("test",)) -> set[str]:
    """Spoken sentences of a built world's ``splits`` (default: the test splits): pretraining passes them
    as ``exclude`` to ``generate_items`` so no test sentence is ever seen in training."""
    out = Path(out)
    found: set[str] = set()
    for path in sorted(out.glob("*/*.jsonl")):
        if path.stem in splits:
            found |= {_spoken(ex) for ex in read_manifest(path)}
    return found


def upgradable_domains(out: Path, seed: int, size: str) -> list[str]:
    """The domains to build to bring a complete older world in ``out`` up to ``WORLD_VERSION`` (empty: none can
    be: no world, another seed or size, or a version before the last change to an existing domain)."""
    info = out / "world.json"
    if not info.is_file():
        return []
    meta = json.loads(info.read_text())
    old = meta.get("version", 1)
    new = [d for d in SIZES[size] if ADDED_IN.get(d, 0) > old]
    if (meta.get("seed"), meta.get("size")) != (seed, size) or old >= WORLD_VERSION or not new \
            or old < CHANGED_IN:
        return []
    kept = [d for d in SIZES[size] if d not in new]
    return new if all((out / d / f"{s}.jsonl").is_file() for d in kept for s in SPLITS) else []


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SiclError(f"{path}: not a readable {what} ({e}); give another folder, or --force to build the "
                        f"world there") from None
    if not isinstance(meta, dict):
        raise SiclError(f"{path}: not a {what} (expected a JSON object); give another folder, or --force to "
                        f"build the world there")
    return meta


def _is_complete(out: Path, seed: int, size: str) -> bool:
    info = out / "world.json"
    if not info.is_file():
        return False
    meta = _read_json(info, "world description")
    if upgradable_domains(out, seed, size):
        return False
    if (meta.get("seed"), meta.get("size"), meta.get("version", 1)) != (seed, size, WORLD_VERSION):
        raise SiclError(f"{out} holds a world with seed={meta.get('seed')} size={meta.get('size')} version="
                        f"{meta.get('version', 1)}; rebuild it with seed={seed} size={size} version={WORLD_VERSION} "
                        f"(sicl synth --force, or sicl demo --fresh)")
    return all((out / d / f"{s}.jsonl").is_file() for d in SIZES[size] for s in SPLITS)


def check_world_args(out: str | Path, seed: int, size: str) -> None:
    """The checks :func:`build_world` makes before touching anything (callers may run them earlier)."""
    if size not in SIZES:
        raise SiclError(f"unknown size {size!r} (expected one of {', '.join(SIZES)})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SiclError(f"world seed must be a whole number >= 0, got {seed!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SiclError(f"{out}: is a file; give a folder for the world")


def _finished_units(out: Path, seed: int, size: str, force: bool) -> set[str]:
    """The ``domain/split`` units a killed build of the same settings finished (their manifest and every clip it
    names are there); refuses a folder that holds something else than a world unless ``force``."""
    partial = out / PARTIAL
    if partial.is_file():
        meta = {} if force else _read_json(partial, "partial world build record")
        if force or meta.get("version") != WORLD_VERSION:  # (another version's splits: never finished by this one)
            return set()
        if (meta.get("seed"), meta.get("size")) != (seed, size):
            raise SiclError(f"{out} holds an unfinished world build with seed={meta.get('seed')} "
                            f"size={meta.get('size')}: finish it with those settings, or build seed={seed} "
                            f"size={size} there from scratch (sicl synth --force, or sicl demo --fresh)")
        done = {u for u in meta.get("done", []) if isinstance(u, str)}
        return {u for u in done if _unit_intact(out, u)}
    if not force and not (out / "world.json").is_file() and out.is_dir():
        found = sorted(p.name for p in out.iterdir())
        if found:
            raise SiclError(f"{out} is not empty and holds no world ({', '.join(found[:3])}"
                            f"{', ...' if len(found) > 3 else ''}): give an empty or new folder, or --force to "
                            f"build the world there (its files replace any of the same name)")
    return set()


def _unit_intact(out: Path, unit: str) -> bool:
    domain, _, split = unit.partition("/")
    path = out / domain / f"{split}.jsonl"
    if not path.is_file():
        return False
    try:
        return all(Path(ex.audio).is_file() for ex in read_manifest(path))
    except (OSError, ValueError, SiclError):
        return False


def _write_partial(out: Path, seed: int, size: str, done: set[str]) -> None:
    _write_json(out / PARTIAL, {"version": WORLD_VERSION, "seed": seed, "size": size, "done": sorted(done)})


def _clear_split(ddir: Path, domain: str, split: str) -> None:
    """Remove a split's clips and stray manifest temp files before it is made (from scratch): no stale clip of an
    older build or a killed one stays. Other files in the folder are left alone."""
    for pattern in (f"audio/{domain}-{split}-*.flac", f".{split}.jsonl.*.tmp"):
        for p in ddir.glob(pattern):
            p.unlink()


def build_world(out: Path, seed: int = 0, size: str = "default", workers: int = 2, force: bool = False,
                progress: Callable[[int], None] | None = None,
                stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Build (or reuse, or finish) the world in ``out``; returns the summary also written to ``world.json``.
    ``progress`` is called with the number of clips finished since the last call (a finished split at once).
    ``stop`` is asked before each split and while its clips are synthesised (:func:`iter_items`): true stops the
    build with KeyboardInterrupt, its synthesis processes terminated and its finished splits recorded (as Ctrl-C)."""
    check_world_args(out, seed, size)
    out = Path(out)
    if not force and _is_complete(out, seed, size):
        (out / PARTIAL).unlink(missing_ok=True)  # (killed between writing world.json and removing it)
        summary = json.loads((out / "world.json").read_text())
        summary["skipped"] = True
        return summary
    done = _finished_units(out, seed, size, force)
    upgrade = [] if force else upgradable_domains(out, seed, size)
    if upgrade:  # an older world: its domains count as finished (read back for the summary)
        done |= {f"{d}/{s}" for d in SIZES[size] if d not in upgrade for s in SPLITS}
    out.mkdir(parents=True, exist_ok=True)
    _write_partial(out, seed, size, done)  # first: a kill from here on leaves a build to go on from
    (out / "world.json").unlink(missing_ok=True)  # incomplete until written again
    hours = 0.0
    shared: set[str] = set()
    texts: dict[str, dict[str, list[str]]] = {}
    counts: dict[str, dict[str, int]] = {}
    for domain, sizes in SIZES[size].items():
        ddir = out / domain
        used = shared if domain in _SHARED_TEXT else set()
        texts[domain], counts[domain] = {}, {}
        n_of = dict(zip(SPLITS, sizes, strict=True))
        made: dict[str, list[Example]] = {}
        for split in _GEN_ORDER:
            if f"{domain}/{split}" in done:  # finished before: read back (the later splits depend on it)
                examples = read_manifest(ddir / f"{split}.jsonl")
                for ex in examples:
                    hours += (ex.duration or 0.0) / 3600
                if progress:
                    progress(len(examples))
            else:
                if stop is not None and stop():
                    raise KeyboardInterrupt
                examples = _make_split(ddir, domain, split, n_of, seed, workers, used, made, progress, stop)
                for ex in examples:
                    hours += (ex.duration or 0.0) / 3600
                done.add(f"{domain}/{split}")
                _write_partial(out, seed, size, done)
            used |= {_spoken(ex) for ex in examples if not (ex.meta or {}).get("category") == "count"}
            made[split] = examples
            texts[domain][split] = [_spoken(ex) for ex in examples]
            counts[domain][split] = len(examples)
    summary = _summary(seed, size, counts, texts, hours, out)
    _write_json(out / "world.json", summary)
    (out / PARTIAL).unlink(missing_ok=True)
    return summary


def _make_split(ddir: Path, domain: str, split: str, n_of: dict[str, int], seed: int, workers: int,
                used: set[str], made: dict[str, list[Example]],
                progress: Callable[[int], None] | None, stop: Callable[[], bool] | None = None) -> list[Example]:
    """Synthesise one split from scratch: its clips, then its manifest (atomically: never half a split)."""
    _clear_split(ddir, domain, split)
    n = n_of[split]
    opts: dict[str, Any] = {"rereads": _rereads(domain, split, n, made)}
    if domain.startswith("child-"):
        name = domain.removeprefix("child-")
        opts["speakers"] = V.classroom(f"{name}-train", 6) if split == "train" else V.classroom(name)
        opts["topics"] = T.SCIENCE_TOPICS if name == "science" else T.READING_TOPICS
    elif domain == "names":  # every split speaks the pool's topics, each NAMES_PER_TOPIC times in the pool
        opts["topics"] = list(range(min(N_NAME_TOPICS, max(1, n_of["pool"] // NAMES_PER_TOPIC))))
    ids = [f"{domain}-{split}-{i:05d}" for i in range(n)]
    examples = []
    # closing: an exception raised out here (Ctrl-C, a progress callback), not in the generator, still terminates its
    # pool of synthesis processes before it goes on (not whenever the generator is collected)
    with closing(iter_items(domain, n, split_seed(seed, domain, split), workers, exclude=used, ids=ids,
                            audio_dir=ddir / "audio", version=WORLD_VERSION, stop=stop, **opts)) as items:
        for item in items:
            examples.append(_to_example(item, (ddir / "audio" / f"{item.id}.flac").resolve()))
            if progress:
                progress(1)
    write_manifest(ddir / f"{split}.jsonl", examples)  # after the audio: never half a split
    return examples


def _rereads(domain: str, split: str, n: int, made: dict[str, list[Example]]) -> list[Reread] | None:
    """World v4's shared sentences: the child-reading pool reads every test sentence READ_ALOUD_READERS times
    (other children), and the first ADULT_REREAD_SHARE of the adult training queries re-read pool sentences."""
    def reread(ex: Example) -> Reread:
        meta = {k: v for k, v in (ex.meta or {}).items() if k != "voice"}
        return Reread({"target": ex.target, "meta": meta}, {ex.speaker or ""})

    if domain == "child-reading" and split == "pool":
        return [r for ex in made["test"] for r in [reread(ex)] * READ_ALOUD_READERS][:n]
    if domain == "adult" and split == "train":
        return [reread(ex) for ex in made["pool"][:round(n * ADULT_REREAD_SHARE)]]
    return None


def _summary(seed: int, size: str, counts: dict, texts: dict, hours: float, out: Path) -> dict[str, Any]:
    adult_words = {w for d in _SHARED_TEXT for s in texts[d].values() for t in s for w in t.split()}
    child: dict[str, Any] = {}
    for name, domain_words in T.DOMAIN_WORDS.items():
        t = texts[f"child-{name}"]
        test_tokens = [w for s in t["test"] for w in s.split()]
        test_domain = {w for w in test_tokens if w in domain_words}
        pool_words = {w for s in t["pool"] for w in s.split()}
        pool_read = set(t["pool"])
        child[f"child-{name}"] = {
            "domain_vocab": len(domain_words),
            "test_domain_word_types": len(test_domain),
            "test_domain_absent_from_adult": round(len(test_domain - adult_words) / max(1, len(test_domain)), 4),
            "test_domain_covered_by_pool": round(len(test_domain & pool_words) / max(1, len(test_domain)), 4),
            "test_sentences_read_in_pool": round(sum(s in pool_read for s in t["test"]) / max(1, len(t["test"])), 4),
            "test_token_oov_vs_adult": round(sum(w not in adult_words for w in test_tokens)
                                             / max(1, len(test_tokens)), 4),
        }
    from sicl.data.synth.open_text import name_topics, rare_topics

    rare_words = {w for _, rare in rare_topics() for w in rare}
    adult_test = [w for s in texts["adult"]["test"] for w in s.split() if w in rare_words]
    adult_pool = {w for s in texts["adult"]["pool"] for w in s.split()}
    pool_sentences = set(texts["adult"]["pool"])
    adult = {"test_rare_word_tokens": len(adult_test),
             "test_rare_words_covered_by_pool": round(sum(w in adult_pool for w in adult_test)
                                                      / max(1, len(adult_test)), 4),
             "train_sentences_read_in_pool": round(sum(s in pool_sentences for s in texts["adult"]["train"])
                                                   / max(1, len(texts["adult"]["train"])), 4),
             "test_sentences_read_in_pool": round(sum(s in pool_sentences for s in texts["adult"]["test"])
                                                  / max(1, len(texts["adult"]["test"])), 4)}
    names: dict[str, Any] = {}
    if "names" in texts:
        pool = {w for s in texts["names"]["pool"] for w in s.split()}
        made_up = {w for (a, b), _ in name_topics() for w in (a, b)}
        test = [w for s in texts["names"]["test"] for w in s.split() if w in made_up]
        names = {"test_name_tokens": len(test),
                 "test_names_covered_by_pool": round(sum(w in pool for w in test) / max(1, len(test)), 4)}
    disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.name != PARTIAL)
    return {
        "version": WORLD_VERSION, "seed": seed, "size": size, "counts": counts,
        "clips": sum(sum(c.values()) for c in counts.values()), "audio_hours": round(hours, 4),
        "disk_mb": round(disk / 2**20, 1),
        "vocab": {"adult": len(T.ADULT_VOCAB), "science_domain": len(T.SCIENCE_WORDS),
                  "reading_domain": len(T.READING_WORDS), "zx_lexicon": len(T.ZX_LEXICON)},
        "adult_text_words_used": len(adult_words), "adult": adult, "child": child, "names": names, "target_lang": T.TARGET_LANG,
    }


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of the world: clips per domain and split, and the child-domain overlap numbers."""
    lines = [f"{'domain':<15}" + "".join(f"{s:>8}" for s in SPLITS)]
    for domain, c in summary["counts"].items():
        lines.append(f"{domain:<15}" + "".join(f"{c[s]:>8}" for s in SPLITS))
    lines.append(f"clips {summary['clips']}, audio {summary['audio_hours']:.2f} h, disk {summary['disk_mb']} MB; "
                 f"vocab {summary['vocab']}")
    for domain, c in summary["child"].items():
        lines.append(f"{domain}: {c['test_domain_word_types']} domain word types in test, "
                     f"{c['test_domain_absent_from_adult']:.0%} absent from adult text, "
                     f"{c['test_domain_covered_by_pool']:.0%} covered by the pool, "
                     f"{c.get('test_sentences_read_in_pool', 0):.0%} of test sentences read in the pool, "
                     f"test token OOV vs adult {c['test_token_oov_vs_adult']:.1%}")
    adult = summary.get("adult") or {}
    if "train_sentences_read_in_pool" in adult:
        lines.append(f"adult: {adult['train_sentences_read_in_pool']:.0%} of training queries re-read a pool sentence "
                     f"in another voice, {adult['test_sentences_read_in_pool']:.0%} of test sentences")
    if summary.get("names"):
        n = summary["names"]
        lines.append(f"names: {n['test_name_tokens']} made-up name tokens in test, "
                     f"{n['test_names_covered_by_pool']:.0%} spelled by the pool")
    return "\n".join(lines)
