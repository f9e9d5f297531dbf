"""Cross-check sicl's scorers against the benchmarks' own scripts, run unmodified from their checkouts.

Three steps, the middle one in a separate environment that has the references' pins (jiwer 3.1.0,
zhon 2.1.1, tqdm) and no sicl:

    python scripts/crosscheck_scorers.py make OUT (--mmau-json MMAU/mmau-test-mini.json | --synthetic N) [--seed 0]
    /tmp/ref/bin/python scripts/crosscheck_scorers.py reference OUT --mmau MMAU --mmsu MMSU_Bench \\
        --mimo MiMo-Audio-Eval [--mmar MMAR]
    python scripts/crosscheck_scorers.py compare OUT

``make`` writes outputs of mixed forms for the 1,000 MMAU test-mini items, or for N made-up items
(``--synthetic``: sicl's own choice sets, used for tests/fixtures/scorer_crosscheck/) (the answer, letters, "The
answer is X.", markers, bold, thinking blocks, wrong choices, empty, ...), MMSU-style letter outputs for the
four-choice items, and English / Chinese ASR hypotheses with punctuation, case, "(laughs)" and edits; each
both as sicl predictions files and as the references' own input files. ``reference`` runs MMAU's
``evaluation.py`` (and MMAR's ``code/evaluation.py``) as a subprocess (its printed total) and calls MMSU's ``mmsu_evaluation.py`` and
MiMo-Audio-Eval's MMAU / MMSU / ASR evaluator code (modules the evaluators import but these functions do not
use, such as torch, are stubbed). ``compare`` scores the sicl files with ``official`` and ``mimo-eval`` and
prints both numbers side by side; it exits 1 when any differs. Empty MMSU outputs are not generated: both
MMSU scripts reuse the previous item's letter for them (docs/metrics.md).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import json
import random
import re
import subprocess
import sys
import types
from pathlib import Path

LETTERS = "ABCDEFGH"
# Made-up choice sets (sicl's own) for --synthetic: shared tokens, multi-word choices, case, 2-5 options.
CHOICE_SETS = [["piano", "violin", "drums", "flute"], ["acoustic guitar", "electric guitar", "bass guitar", "harp"],
               ["a dog barking", "a cat meowing", "a bird singing", "rain falling"], ["Man", "Woman", "Child", "Robot"],
               ["yes", "no"], ["one", "two", "three", "four"], ["happy", "sad", "angry", "neutral"],
               ["the first speaker", "the second speaker"], ["car horn", "car engine", "train horn", "siren"],
               ["fast tempo", "slow tempo", "no tempo change"], ["Jazz", "Rock", "Classical", "Hip-hop", "Folk"]]
EN = ["The quick brown fox jumps over the lazy dog.", "Don't forget: the meeting starts at 9 a.m.!",
      "Well, I've never seen anything like it.", "She said, \"Let's go home,\" and left.",
      "It costs $25 -- twenty-five dollars.", "Is this the right way to the station?",
      "My mother's sister lives in New York.", "We'll need three eggs, some flour; and milk.",
      "(Laughs) That was really funny.", "Please turn left at the second light."]
MMAR_MODALITIES = ["sound", "music", "speech", "mix-sound-music", "mix-sound-speech", "mix-music-speech",
                   "mix-sound-music-speech"]
MMAR_CATEGORIES = ["Signal Layer", "Perception Layer", "Semantic Layer", "Cultural Layer"]
ZH = ["今天天气很好，我们去公园散步。", "我喜欢听音乐，尤其是古典音乐。", "请把窗户关上，外面太吵了！",
      "他昨天买了一本新书《三体》。", "这个问题很难回答……", "我们明天早上八点在学校门口见面。",
      "你吃饭了吗？", "小猫在沙发上睡觉。", "请用ABC三个字母造句。", "会议改到下周三下午。"]


# ------------------------------------------------------------------------------------------------ make

def _choice_output(rng: random.Random, item: dict) -> str:
    choices, answer = item["choices"], item["answer"]
    others = [c for c in choices if c != answer] or [answer]
    c = answer if rng.random() < 0.6 else rng.choice(others)
    w = rng.choice(others)
    letter = LETTERS[choices.index(c)]
    forms = [c, f"({letter})", f"The answer is {c}.", f"{letter}. {c}", "", c.lower(),
             f"The correct answer is: **{c}**", f"Answer: {c}", f"<think>Maybe {w} or {c}.</think>\n{c}",
             f"**{c}**", f"I think it is {c}, not {w}.", f"Let me listen.\nAnswer: {c}\nBecause of the sound.",
             letter, f"The correct answer is\n\n**{c}**", f'"{c}"', f"Answer: {w}\nThe correct answer is {c}",
             f"The answer is ({letter}) {c}.", f"  \n{c}\n", f"{c} or {w}", f"Answer: .\n{c}, I believe"]
    return rng.choice(forms)


def _letter_output(rng: random.Random, item: dict) -> str:
    choices = item["choices"]
    k = choices.index(item["answer"]) if rng.random() < 0.6 else rng.randrange(4)
    letter, c = LETTERS[k], choices[k]
    forms = [letter, f"{letter}.", f"{letter}. {c}", f"The answer is {letter}.", f"Answer: {letter}",
             f"({letter})", letter.lower(), c, f"I choose {letter}", f"<think>hmm</think>{letter}",
             f"{letter}\n", f"The correct option is {letter}, {c}"]
    return rng.choice(forms)


def _asr_hyp(rng: random.Random, ref: str, zh: bool) -> str:
    units = list(ref) if zh else ref.split()
    form = rng.randrange(9)
    if form == 0:
        return ref
    if form == 1:
        return re.sub(r"[^\w\s']", "", ref).lower()
    if form == 2 and len(units) > 1:
        del units[rng.randrange(len(units))]
    elif form == 3:
        units[rng.randrange(len(units))] = "猫" if zh else "banana"
    elif form == 4:
        units.insert(rng.randrange(len(units) + 1), "嗯" if zh else "um")
    elif form == 5:
        return ref + " (laughs) more"
    elif form == 6:
        return "(noise) " + ref
    elif form == 7:
        return ref.upper() if not zh else ref.replace("，", ",")
    elif form == 8:
        return ref.replace(" ", ",", 1).replace("'", "’")
    return ("" if zh else " ").join(units)


def _synthetic_items(rng: random.Random, n: int) -> list[dict]:
    items = []
    for i in range(n):
        choices = list(rng.choice(CHOICE_SETS))
        rng.shuffle(choices)
        items.append({"id": f"s{i}", "audio_id": "x.wav", "question": "q", "choices": choices,
                      "answer": rng.choice(choices), "task": rng.choice(["sound", "music", "speech"]),
                      "difficulty": rng.choice(["easy", "medium", "hard"]), "category": "c", "sub-category": "d"})
    return items


def make(args: argparse.Namespace) -> None:
    from sicl.episodes.prompts import extract_answer

    rng = random.Random(args.seed)
    if bool(args.mmau_json) == bool(args.synthetic):
        raise SystemExit("make: give one of --mmau-json FILE or --synthetic N")
    items = json.loads(Path(args.mmau_json).read_text()) if args.mmau_json else _synthetic_items(rng, args.synthetic)
    sentences = [it["question"] for it in items] if args.mmau_json else [rng.choice(EN) for _ in items]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    aqa, aqa_noraw, ref_in = [], [], []
    for it in items:
        raw = _choice_output(rng, it)
        row = {"id": it["id"], "audio": it["audio_id"], "task": "aqa", "question": it["question"],
               "choices": it["choices"], "target": it["answer"],
               "meta": {"task": it["task"], "difficulty": it["difficulty"], "benchmark": "mmau"}}
        aqa.append({**row, "prediction": extract_answer(raw, "plain", it["choices"]), "raw": raw})
        aqa_noraw.append({**row, "prediction": raw})
        ref_in.append({**it, "model_output": raw, "response": raw, "answer_prediction": raw,
                       "modality": MMAR_MODALITIES[len(ref_in) % len(MMAR_MODALITIES)],
                       "mmar_category": MMAR_CATEGORIES[len(ref_in) % len(MMAR_CATEGORIES)]})
    four = [it for it in items if len(it["choices"]) == 4]
    sqa, mmsu_in = [], []
    for it in four:
        resp = _letter_output(rng, it)
        sqa.append({"id": it["id"], "audio": it["audio_id"], "task": "sqa", "question": it["question"],
                    "choices": it["choices"], "target": it["answer"], "prediction": resp, "raw": resp,
                    "meta": {"category": it["task"], "benchmark": "mmsu"}})
        mmsu_in.append({"id": it["id"], "response": resp, "answer_gt": it["answer"],
                        **{f"choice_{x}": c for x, c in zip("abcd", it["choices"], strict=True)},
                        "category": it["task"], "sub-category": str(it["category"]), "task_name": str(it["category"]),
                        "sub-sub-category": str(it.get("sub-category")), "linguistics_sub_discipline": ""})
    asr = {"en": [], "zh": []}
    for i, ref in enumerate(sentences):
        asr["en"].append({"id": f"en{i}", "audio": "x.wav", "task": "asr", "lang": "en", "target": ref,
                          "prediction": _asr_hyp(rng, ref, False)})
    for i in range(max(1, len(items) // 5)):
        ref = ZH[i % len(ZH)]
        asr["zh"].append({"id": f"zh{i}", "audio": "x.wav", "task": "asr", "lang": "zh", "target": ref,
                          "prediction": _asr_hyp(rng, ref, True)})

    def jsonl(name: str, rows: list) -> None:
        (out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    jsonl("aqa.jsonl", aqa)
    jsonl("aqa_noraw.jsonl", aqa_noraw)
    jsonl("sqa_mmsu.jsonl", sqa)
    jsonl("mmsu_input.jsonl", mmsu_in)
    jsonl("asr_en.jsonl", asr["en"])
    jsonl("asr_zh.jsonl", asr["zh"])
    (out / "mmau_input.json").write_text(json.dumps(ref_in, ensure_ascii=False), encoding="utf-8")
    print(f"{out}: {len(aqa)} aqa, {len(sqa)} mmsu, {len(asr['en'])} + {len(asr['zh'])} asr rows")


# ------------------------------------------------------------------------------------------- reference

class _Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty modules for the evaluators' imports that the scoring functions never touch (torch, numpy, ...)."""

    def __init__(self, roots: set[str]):
        self.roots = roots

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = types.ModuleType(spec.name)
        m.__path__ = []
        m.__getattr__ = lambda name: type(name, (), {})
        return m

    def exec_module(self, module):
        pass


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference(args: argparse.Namespace) -> None:
    out = Path(args.out)
    sys.meta_path.insert(0, _Stubs({"torch", "numpy", "requests", "datasets", "slm_eval"}))
    ref: dict[str, float] = {}
    run = subprocess.run([sys.executable, str(Path(args.mmau) / "evaluation.py"), "--input",
                          str(out / "mmau_input.json")], capture_output=True, text=True, check=True)
    ref["mmau_official_printed_percent"] = float(re.search(r"Total Accuracy: ([\d.]+)%", run.stdout).group(1))
    if args.mmar:  # MMAR's script reads `answer_prediction`, `modality` and its own `category` values
        mmar_in = [{**it, "category": it["mmar_category"]} for it in json.loads((out / "mmau_input.json").read_text())]
        (out / "mmar_input.json").write_text(json.dumps(mmar_in, ensure_ascii=False), encoding="utf-8")
        run = subprocess.run([sys.executable, str(Path(args.mmar) / "code" / "evaluation.py"), "--input",
                              str(out / "mmar_input.json")], capture_output=True, text=True, check=True)
        ref["mmar_official_printed_percent"] = float(re.search(r"Total Accuracy: ([\d.]+)%", run.stdout).group(1))
        mimo_mmar = _load(Path(args.mimo) / "slm_eval" / "evaluator" / "mmar_evaluator.py", "mimo_mmar")
        judge = mimo_mmar.MMAREvaluator(None, None, thinking=True)
        ref["mimo_mmar_percent"] = judge.calculate_acc([dict(it) for it in mmar_in])[4]
    mmau = _load(Path(args.mmau) / "evaluation.py", "mmau_evaluation")
    items = json.loads((out / "mmau_input.json").read_text())
    per_item: dict[str, list] = {}
    per_item["mmau_official"] = [bool(mmau.string_match(it["answer"], it["model_output"], it["choices"]))
                                 for it in items]
    ref["mmau_official"] = sum(per_item["mmau_official"]) / len(items)
    mmsu = _load(Path(args.mmsu) / "mmsu_evaluation.py", "mmsu_evaluation")
    records = [json.loads(line) for line in (out / "mmsu_input.jsonl").read_text().splitlines()]
    ref["mmsu_official"] = mmsu.calculate_accuracy_per_task_and_category(records)[2]
    ev = Path(args.mimo) / "slm_eval" / "evaluator"
    mimo_mmau = _load(ev / "mmau_evaluator.py", "mimo_mmau")
    judge = mimo_mmau.MMAUEvaluator(None, None, thinking=True)  # thinking: split at </think> when present
    judged, _, ref["mimo_mmau"] = judge.calculate_acc([dict(it) for it in items])
    per_item["mimo_mmau"] = [bool(it["score"]) for it in judged]
    mimo_mmsu = _load(ev / "mmsu_evaluator.py", "mimo_mmsu")
    judge = mimo_mmsu.MMSUEvaluator(None, None, model_type="instruct", thinking=True)
    ref["mimo_mmsu"] = judge.calculate_accuracy_per_task_and_category([dict(r) for r in records])[2]
    mimo_asr = _load(ev / "asr_evaluator.py", "mimo_asr")
    for lang in ("en", "zh"):
        rows = [json.loads(line) for line in (out / f"asr_{lang}.jsonl").read_text().splitlines()]
        judge = mimo_asr.ASREvaluator(None, types.SimpleNamespace(lang=lang), model_type="instruct")
        # the evaluator's own driver: hypothesis = model output cut at "(", then wer(hyp, ref), plain mean
        wers = [judge.wer(r["prediction"].split("(")[0], r["target"])[0] for r in rows]
        ref[f"mimo_asr_{lang}"] = sum(wers) / len(wers)
        per_item[f"mimo_asr_{lang}"] = wers
    (out / "reference.json").write_text(json.dumps(ref, indent=2))
    (out / "reference_items.json").write_text(json.dumps(per_item))
    print(json.dumps(ref, indent=2))


# --------------------------------------------------------------------------------------------- compare

def compare(args: argparse.Namespace) -> int:
    from sicl.eval.metrics import score_file

    out = Path(args.out)
    ref = json.loads((out / "reference.json").read_text())
    checks = [
        ("MMAU evaluation.py (printed %)", ref["mmau_official_printed_percent"],
         round(100 * score_file(out / "aqa.jsonl")["aqa"]["accuracy"], 2)),
        ("MMAU evaluation.py", ref["mmau_official"], score_file(out / "aqa.jsonl")["aqa"]["accuracy"]),
        ("MMAU evaluation.py, file without raw", ref["mmau_official"],
         score_file(out / "aqa_noraw.jsonl")["aqa"]["accuracy"]),
        ("MMSU mmsu_evaluation.py", ref["mmsu_official"], score_file(out / "sqa_mmsu.jsonl")["sqa"]["accuracy"]),
        ("MiMo-Audio-Eval MMAU", ref["mimo_mmau"], score_file(out / "aqa.jsonl", "mimo-eval")["aqa"]["accuracy"]),
        ("MiMo-Audio-Eval MMAU, file without raw", ref["mimo_mmau"],
         score_file(out / "aqa_noraw.jsonl", "mimo-eval")["aqa"]["accuracy"]),
        ("MiMo-Audio-Eval MMSU", ref["mimo_mmsu"], score_file(out / "sqa_mmsu.jsonl", "mimo-eval")["sqa"]["accuracy"]),
        ("MiMo-Audio-Eval ASR en avg_wer", ref["mimo_asr_en"], score_file(out / "asr_en.jsonl", "mimo-eval")["asr"]["wer"]),
        ("MiMo-Audio-Eval ASR zh avg_wer", ref["mimo_asr_zh"], score_file(out / "asr_zh.jsonl", "mimo-eval")["asr"]["wer"]),
    ]
    from sicl.eval.scorers import mimo_asr_text, mimo_mmau, mmau_official

    items = json.loads((out / "reference_items.json").read_text())
    rows = [json.loads(line) for line in (out / "aqa.jsonl").read_text().splitlines()]
    for name, rule in (("mmau_official", mmau_official), ("mimo_mmau", mimo_mmau)):
        same = sum(rule(r).correct == want for r, want in zip(rows, items[name], strict=True))
        checks.append((f"per item, {name}: items that agree", len(rows), same))
    import jiwer

    for lang in ("en", "zh"):
        rows = [json.loads(line) for line in (out / f"asr_{lang}.jsonl").read_text().splitlines()]
        mine = [jiwer.process_words(mimo_asr_text(r["target"], lang, hypothesis=False),
                                    mimo_asr_text(r["prediction"], lang, hypothesis=True)).wer for r in rows]
        same = sum(abs(a - b) < 1e-12 for a, b in zip(mine, items[f"mimo_asr_{lang}"], strict=True))
        checks.append((f"per utterance, mimo_asr_{lang}: utterances that agree", len(rows), same))
    if "mmar_official_printed_percent" in ref:  # the same outputs as MMAR items (meta.benchmark mmar)
        mmar = out / "aqa_as_mmar.jsonl"
        mmar.write_text("".join(json.dumps({**r, "meta": {"benchmark": "mmar"}}) + "\n" for r in
                                [json.loads(line) for line in (out / "aqa.jsonl").read_text().splitlines()]))
        checks.append(("MMAR code/evaluation.py (printed %)", ref["mmar_official_printed_percent"],
                       round(100 * score_file(mmar)["aqa"]["accuracy"], 2)))
        checks.append(("MiMo-Audio-Eval MMAR (%)", ref["mimo_mmar_percent"],
                       100 * score_file(mmar, "mimo-eval")["aqa"]["accuracy"]))
    lenient = score_file(out / "aqa.jsonl", "lenient")["aqa"]["accuracy"]
    bad = 0
    for what, want, got in checks:
        ok = abs(want - got) <= 1e-6 + 1e-9 * abs(want) or (what.endswith("%)") and abs(want - got) < 0.005)
        ok = ok or (what.endswith("(%)") and abs(want - got) <= 1e-4)
        bad += not ok
        show = (lambda x: f"{x:.6f}") if isinstance(want, float) else str
        print(f"{'ok  ' if ok else 'DIFF'} {what}: reference {show(want)}, sicl {show(got)}")
    print(f"(lenient on the same MMAU file: {lenient:.6f})")
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="step", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("--mmau-json", default=None, help="MMAU's mmau-test-mini.json (real questions and choices)")
    m.add_argument("--synthetic", type=int, default=0, metavar="N", help="N made-up items instead")
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("reference")
    r.add_argument("out")
    r.add_argument("--mmau", required=True, help="a checkout of github.com/Sakshi113/MMAU")
    r.add_argument("--mmsu", required=True, help="a checkout of github.com/dingdongwang/MMSU_Bench")
    r.add_argument("--mimo", required=True, help="a checkout of github.com/XiaomiMiMo/MiMo-Audio-Eval")
    r.add_argument("--mmar", default=None, help="a checkout of github.com/ddlBoJack/MMAR (optional)")
    c = sub.add_parser("compare")
    c.add_argument("out")
    args = p.parse_args()
    if args.step == "make":
        make(args)
    elif args.step == "reference":
        reference(args)
    else:
        return compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
