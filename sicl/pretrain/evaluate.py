"""Quick held-out evaluation for pretraining: greedy decoding, WER / BLEU / accuracy.

Scored with the project's metrics (:mod:`sicl.eval.metrics`, docs/metrics.md), the same code as ``sicl score``:
WER is corpus WER after Whisper's English normaliser (jiwer); ST BLEU is sacreBLEU corpus BLEU on the
detokenised, case-sensitive text with the target language's tokenizer (``13a`` for the synthetic world's
``zx``). Accuracy (SQA/AQA) is pretraining's strict rule: exact match of the extracted answer with the target
option's text (no benchmark's rule: a tiny model is checked for saying the option, nothing else).

Generation stays here rather than going through :class:`sicl.models.backbone.Backbone`: pretraining renders
in-memory clips with its own instructions (a contextual-ASR item's text hint before the task instruction),
text-only turns (the copying probes) and per-clip log-mel features, none of which an ``Episode`` carries.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import torch

from sicl.episodes import prompts
from sicl.eval.metrics import score_rows
from sicl.models.processor import log_mel, num_audio_tokens
from sicl.pretrain.data import item_instruction

#: eval set name -> (generate_items kind, metric)
EVAL_SETS = {"adult": ("adult", "wer"), "child-science": ("child-science", "wer"),
             "child-reading": ("child-reading", "wer"), "st": ("translate", "bleu"),
             "sqa": ("sqa", "acc"), "aqa": ("aqa", "acc"),
             # tiny-omni v2 (source sicl.data.synth.pretrain_items): open-vocabulary sentences of heard words,
             # and sentences made only of words no pretraining clip speaks
             "open": ("open", "wer"), "unheard": ("unheard", "wer"),
             # tiny-omni v4: contextual ASR, made-up words whose spelling only the text hint gives
             "context": ("context", "wer")}
EVAL_SEED = 90_000_000  # far from training and world seeds


def make_eval_items(source: Any, n: int, sets: list[str] | None = None, seed: int = EVAL_SEED,
                    workers: int = 1) -> dict[str, list]:
    """``n`` held-out items per set (a set's seed depends only on its place in ``EVAL_SETS``); by default
    every set whose kind the source can make."""
    kinds = set(getattr(source, "KINDS", ()) or ())
    names = sets or [s for s in EVAL_SETS if not kinds or EVAL_SETS[s][0] in kinds]
    order = list(EVAL_SETS)
    options = getattr(source, "EVAL_OPTIONS", {})
    return {name: source.generate_items(EVAL_SETS[name][0], n, seed=seed + order.index(name), workers=workers,
                                        **options) for name in names}


def generate(model: Any, tokenizer: Any, items: list[Any], batch_size: int = 32, max_new_tokens: int = 48,
             device: str = "cpu", preset: str = "plain", bf16: bool = False) -> list[str]:
    """Greedy answers for single-clip items (each as a one-turn chat, see :func:`generate_chats`)."""
    chats = [chat_prompt_ids(tokenizer, [(it, None)], preset) for it in items]
    return generate_chats(model, tokenizer, chats, batch_size=batch_size, max_new_tokens=max_new_tokens,
                          device=device, preset=preset, bf16=bf16)


def score(metric: str, items: list[Any], hyps: list[str]) -> float:
    """A held-out set's ``metric`` (``wer``, ``bleu`` or ``acc``) of ``hyps`` against ``items``' targets: WER and
    BLEU by :func:`sicl.eval.metrics.score_rows` (see the module docstring), ``acc`` exact match. WER is
    computed from the error counts (not the rounded ``wer``), so it is exact before this module rounds it."""
    if len(items) != len(hyps):
        raise ValueError(f"{len(items)} items but {len(hyps)} hypotheses")
    if metric == "acc":
        return float(np.mean([h.strip() == it.target.strip() for it, h in zip(items, hyps, strict=True)]))
    task = {"wer": "asr", "bleu": "st"}.get(metric)
    if task is None:
        raise ValueError(f"unknown pretraining metric {metric!r} (expected wer, bleu or acc)")
    rows = [{"id": str(i), "task": task, "target": it.target, "prediction": h, "lang": getattr(it, "lang", None),
             "target_lang": getattr(it, "target_lang", None)} for i, (it, h) in enumerate(zip(items, hyps, strict=True))]
    m = score_rows(rows)[task]
    if task == "st":
        return float(m["bleu"])
    if not m["ref_words"]:
        raise ValueError("WER of a set whose references are all empty after normalisation")
    return (m["substitutions"] + m["deletions"] + m["insertions"]) / m["ref_words"]


def evaluate(model: Any, tokenizer: Any, eval_items: dict[str, list], device: str = "cpu",
             batch_size: int = 32, examples: int = 3, bf16: bool = False) -> dict[str, Any]:
    """``{set: {metric: value, n, samples: [[ref, hyp], ...]}}`` plus ``chance`` for choice sets."""
    out: dict[str, Any] = {}
    for name, items in eval_items.items():
        t0 = time.time()
        metric = EVAL_SETS[name][1]
        hyps = generate(model, tokenizer, items, batch_size=batch_size, device=device, bf16=bf16)
        refs = [it.target for it in items]
        res: dict[str, Any] = {metric: round(score(metric, items, hyps), 4), "n": len(items),
                               "seconds": round(time.time() - t0, 1),
                               "samples": [[r, h] for r, h in list(zip(refs, hyps, strict=True))[:examples]]}
        res["all"] = [[r, h] for r, h in zip(refs, hyps, strict=True)]  # for rescoring elsewhere
        if name == "context":
            res["new_word_hit"] = new_word_hit(items, hyps)
        if metric == "acc":
            res["chance"] = round(float(np.mean([1.0 / len(it.choices) for it in items if it.choices])), 4)
        out[name] = res
    return out


def new_word_hit(items: list[Any], hyps: list[str]) -> float:
    """Contextual ASR: the share of spoken made-up words (in the reference and the hint, in no lexicon) that
    the hypothesis spells exactly; -1 when the items speak none."""
    from sicl.data.synth.open_text import words

    lexicon = set(words())
    hits = total = 0
    for it, hyp in zip(items, hyps, strict=True):
        hint = set(re.findall(r"[a-z']+", ((it.meta or {}).get("hint") or "").lower()))
        said = set(re.findall(r"[a-z']+", hyp.lower()))
        for w in it.target.split():
            if w in hint and w not in lexicon:
                total += 1
                hits += w in said
    return round(hits / total, 4) if total else -1.0


def chat_prompt_ids(tokenizer: Any, turns: list[tuple[Any, str | None]], preset: str = "plain") -> tuple[list[int], list[np.ndarray]]:
    """Token ids (generation prompt included) and log-mel clips for a chat of ``(item_or_text, answer)``
    turns: an item (anything with ``wav``) is an audio turn with its task instruction, a string a text-only
    user turn; ``answer`` None only on the last turn."""
    msgs: list[dict[str, Any]] = []
    feats: list[np.ndarray] = []
    for what, answer in turns:
        if isinstance(what, str):
            msgs.append({"role": "user", "content": what})
        else:
            feats.append(log_mel(what.wav))
            msgs.append({"role": "user", "content": prompts.user_content(item_instruction(what, preset))})
        if answer is not None:
            msgs.append({"role": "assistant", "content": prompts.answer_text(answer, getattr(what, "task", "asr"),
                                                                              preset)})
    text = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    parts = text.split(tokenizer.audio_token)
    text = parts[0] + "".join(tokenizer.audio_token * num_audio_tokens(f.shape[1]) + p
                              for f, p in zip(feats, parts[1:], strict=True))
    return tokenizer(text, add_special_tokens=False)["input_ids"], feats


@torch.no_grad()
def generate_chats(model: Any, tokenizer: Any, chats: list[tuple[list[int], list[np.ndarray]]],
                   batch_size: int = 16, max_new_tokens: int = 48, device: str = "cpu", preset: str = "plain",
                   bf16: bool = False) -> list[str]:
    """Greedy answers for prompts from :func:`chat_prompt_ids` (any number of clips each, or none), in
    left-padded batches (as batched generation requires)."""
    model.eval()
    pad = tokenizer.pad_token_id
    outs: list[str] = []
    for i in range(0, len(chats), batch_size):
        chunk = chats[i:i + batch_size]
        t = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), t), pad, dtype=torch.long)
        att = torch.zeros_like(input_ids)
        for j, (ids, _) in enumerate(chunk):
            input_ids[j, t - len(ids):] = torch.tensor(ids)
            att[j, t - len(ids):] = 1
        clips = [f for _, fs in chunk for f in fs]
        extra: dict[str, Any] = {}
        if clips:
            fl = max(f.shape[1] for f in clips)
            x = torch.zeros((len(clips), 128, fl))
            fm = torch.zeros((len(clips), fl), dtype=torch.long)
            for j, f in enumerate(clips):
                x[j, :, :f.shape[1]] = torch.from_numpy(f)
                fm[j, :f.shape[1]] = 1
            extra = dict(input_features=x.to(device), feature_attention_mask=fm.to(device))
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            gen = model.generate(input_ids=input_ids.to(device), attention_mask=att.to(device), **extra,
                                 max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=pad)
        for row in gen[:, t:]:
            outs.append(prompts.extract_answer(tokenizer.decode(row, skip_special_tokens=False), preset))
    return outs


def probe_icl(model: Any, tokenizer: Any, items: list[Any], k: int = 3, seed: int = 0, device: str = "cpu",
              batch_size: int = 16) -> dict[str, Any]:
    """Several clips in one prompt: each item as the query after ``k`` other items of the same set with
    their gold answers (random, unrelated demonstrations). Returns the set's WER (or accuracy) like
    :func:`evaluate`."""
    if len(items) < k + 1:
        raise ValueError(f"probe_icl needs at least k + 1 = {k + 1} items, got {len(items)}")
    rng = np.random.default_rng(seed)
    chats = []
    for i, it in enumerate(items):
        others = [j for j in rng.choice(len(items), size=k + 1, replace=False) if j != i][:k]
        chats.append(chat_prompt_ids(tokenizer, [(items[j], items[j].target) for j in others] + [(it, None)]))
    hyps = generate_chats(model, tokenizer, chats, batch_size=batch_size, device=device)
    refs = [it.target for it in items]
    metric = "wer" if items[0].task == "asr" else ("bleu" if items[0].task == "st" else "acc")
    return {metric: round(score(metric, items, hyps), 4), "n": len(items), "k": k,
            "samples": [[r, h] for r, h in list(zip(refs, hyps, strict=True))[:3]]}


def probe_shared(model: Any, tokenizer: Any, source: Any, n: int = 300, seed: int = EVAL_SEED + 50,
                 device: str = "cpu", batch_size: int = 16, workers: int = 1, kind: str = "shared") -> dict[str, Any]:
    """Held-out chats whose clips share made-up words (``source``'s ``shared`` kind, tiny-omni v8): in each
    chat the last turn that speaks a made-up word an earlier turn spoke is the query, after the earlier turns
    with their gold transcripts; the same query is also asked alone. Returns WER and the share of those
    made-up words spelled exactly (``hit``), with the context (``*_ctx``) and without (``*_alone``): the audio
    analogue of the copying probe (the spelling is only in the context). ``kind="respelt"`` (tiny-omni v9): the
    made-up words are respelt so that the spelling the sound suggests is wrong (``hit_alone`` near 0 again).
    ``kind="voice"``: same-voice chats; the query is each chat's last turn and only WER is reported: with the same
    speaker's earlier turns against alone (in-context speaker adaptation)."""
    from sicl.data.synth.open_text import words

    lexicon = set(words())
    items = source.generate_items(kind, n, seed=seed, workers=workers, **getattr(source, "EVAL_OPTIONS", {}))
    chats: dict[int, list] = {}
    for it in items:
        chats.setdefault(it.meta["chat"], []).append(it)
    cases = []
    for turns in chats.values():
        if kind == "voice":  # the last turn, after the same speaker's earlier turns (no shared words asked for)
            if len(turns) > 1:
                cases.append((turns[:-1], turns[-1], []))
            continue
        for i in range(len(turns) - 1, 0, -1):
            earlier = {w for t in turns[:i] for w in t.target.split()}
            shared = [w for w in dict.fromkeys(turns[i].target.split()) if w in earlier and w not in lexicon]
            if shared and turns[i].meta.get("labelled"):
                cases.append((turns[:i], turns[i], shared))
                break
    if not cases:
        return {"n": 0}
    ctx = [chat_prompt_ids(tokenizer, [(t, t.target) for t in before] + [(q, None)]) for before, q, _ in cases]
    alone = [chat_prompt_ids(tokenizer, [(q, None)]) for _, q, _ in cases]
    out: dict[str, Any] = {"n": len(cases)}
    queries = [q for _, q, _ in cases]
    for name, prompts_ in (("ctx", ctx), ("alone", alone)):
        hyps = generate_chats(model, tokenizer, prompts_, batch_size=batch_size, device=device)
        hits = [w in set(re.findall(r"[a-z']+", h.lower())) for (_, _, ws), h in zip(cases, hyps, strict=True)
                for w in ws]
        out[f"wer_{name}"] = round(score("wer", queries, hyps), 4)
        if hits:
            out[f"hit_{name}"] = round(float(np.mean(hits)), 4)
        if name == "ctx":
            out["samples"] = [[q.target, h] for q, h in list(zip(queries, hyps, strict=True))[:3]]
    return out


def probe_copy(model: Any, tokenizer: Any, n: int = 100, seed: int = 4242, device: str = "cpu",
               batch_size: int = 32, kind: str = "after") -> dict[str, Any]:
    """Text-only copying: a prompt lists five made-up words and asks for one of them back, the one after a cue
    word (``kind="after"``: the classic induction test) or the one that starts with two given letters
    (``"prefix"``: partial evidence, full spelling from the context); the share answered exactly."""
    from sicl.data.synth.open_text import copy_probe, prefix_probe

    rng = np.random.default_rng(seed)
    make = {"after": copy_probe, "prefix": prefix_probe}[kind]
    probes = [make(rng) for _ in range(n)]
    chats = [chat_prompt_ids(tokenizer, [(p, None)]) for p, _ in probes]
    hyps = generate_chats(model, tokenizer, chats, batch_size=batch_size, max_new_tokens=16, device=device)
    hits = [h.strip() == a for (_, a), h in zip(probes, hyps, strict=True)]
    return {"acc": round(float(np.mean(hits)), 4), "n": n,
            "samples": [[p.replace("\n", " "), a, h] for (p, a), h in list(zip(probes, hyps, strict=True))[:3]]}


def main(argv: list[str] | None = None) -> int:
    """``python -m sicl.pretrain.evaluate MODEL [--n 100] [--out metrics.json]``: the pretraining evaluation of
    a saved model (every held-out set its source can make, the copying probe, adult ASR after 3 random
    demonstrations), with the same items as a pretraining run's final evaluation."""
    import argparse
    import importlib
    import json

    from sicl.models import tiny_omni

    ap = argparse.ArgumentParser(prog="python -m sicl.pretrain.evaluate", description=main.__doc__)
    ap.add_argument("model", help="model folder (or tiny-omni)")
    ap.add_argument("--source", default="sicl.data.synth.pretrain_items", help="item source (default: %(default)s)")
    ap.add_argument("--sets", default=None, help="comma list of held-out sets (default: all the source can make)")
    ap.add_argument("--n", type=int, default=100, help="items per set (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the metrics here as JSON")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from sicl.models.zoo import resolve_model

    model, processor = tiny_omni.load_tiny_omni(resolve_model(args.model))
    source = importlib.import_module(args.source)
    items = make_eval_items(source, args.n, args.sets.split(",") if args.sets else None)
    res = evaluate(model, processor.tokenizer, items)
    res["copy"] = probe_copy(model, processor.tokenizer, n=args.n)
    res["copy-prefix"] = probe_copy(model, processor.tokenizer, n=args.n, kind="prefix")
    if len(items.get("adult", ())) >= 4:  # three demonstrations + the query
        res["adult-icl3"] = probe_icl(model, processor.tokenizer, items["adult"], k=3)
    for kind in getattr(source, "CHAT_KINDS", ()):
        res[kind] = probe_shared(model, processor.tokenizer, source, n=3 * args.n, kind=kind)
    for r in res.values():
        r.pop("all", None)
    print(json.dumps({k: {m: v for m, v in r.items() if m != "samples"} for k, r in res.items()}, indent=1))
    if args.out:
        from sicl.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
