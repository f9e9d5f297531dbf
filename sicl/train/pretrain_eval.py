"""Quick held-out evaluation for pretraining: greedy decoding, WER / BLEU / accuracy.

WER uses Whisper's English normaliser and jiwer (corpus WER over the set); ST BLEU is sacreBLEU 13a,
case-sensitive, on detokenised text; SQA/AQA accuracy is exact match of the extracted option text.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from sicl.episodes import prompts
from sicl.models.processor import log_mel, num_audio_tokens
from sicl.train.pretrain_data import prompt_text

#: eval set name -> (generate_items kind, metric)
EVAL_SETS = {"adult": ("adult", "wer"), "child-science": ("child-science", "wer"),
             "child-reading": ("child-reading", "wer"), "st": ("translate", "bleu"),
             "sqa": ("sqa", "acc"), "aqa": ("aqa", "acc")}
EVAL_SEED = 90_000_000  # far from training and world seeds


def make_eval_items(source: Any, n: int, sets: list[str] | None = None, seed: int = EVAL_SEED,
                    workers: int = 1) -> dict[str, list]:
    return {name: source.generate_items(EVAL_SETS[name][0], n, seed=seed + i, workers=workers)
            for i, name in enumerate(sets or list(EVAL_SETS))}


@torch.no_grad()
def generate(model: Any, tokenizer: Any, items: list[Any], batch_size: int = 32, max_new_tokens: int = 48,
             device: str = "cpu", preset: str = "plain", bf16: bool = False) -> list[str]:
    """Greedy answers for items (left-padded batches, as batched generation requires)."""
    model.eval()
    pad = tokenizer.pad_token_id
    outs: list[str] = []
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        feats = [log_mel(it.wav) for it in chunk]
        ids = [tokenizer(prompt_text(tokenizer, it, num_audio_tokens(f.shape[1]), preset),
                         add_special_tokens=False)["input_ids"] for it, f in zip(chunk, feats, strict=True)]
        t, fl = max(map(len, ids)), max(f.shape[1] for f in feats)
        input_ids = torch.full((len(chunk), t), pad, dtype=torch.long)
        att = torch.zeros_like(input_ids)
        x = torch.zeros((len(chunk), 128, fl))
        fm = torch.zeros((len(chunk), fl), dtype=torch.long)
        for j, (seq, f) in enumerate(zip(ids, feats, strict=True)):
            input_ids[j, t - len(seq):] = torch.tensor(seq)
            att[j, t - len(seq):] = 1
            x[j, :, :f.shape[1]] = torch.from_numpy(f)
            fm[j, :f.shape[1]] = 1
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            gen = model.generate(input_ids=input_ids.to(device), attention_mask=att.to(device),
                                 input_features=x.to(device), feature_attention_mask=fm.to(device),
                                 max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=pad)
        for row in gen[:, t:]:
            outs.append(prompts.extract_answer(tokenizer.decode(row, skip_special_tokens=False), preset))
    return outs


def score(metric: str, refs: list[str], hyps: list[str]) -> float:
    if metric == "wer":
        try:
            import jiwer
            from whisper_normalizer.english import EnglishTextNormalizer
        except ImportError:  # minimal machines (the GPU box may lack them): same corpus WER, simpler normaliser
            return _fallback_wer(refs, hyps)
        norm = EnglishTextNormalizer()
        r = [norm(x) or "<empty>" for x in refs]
        h = [norm(x) for x in hyps]
        return float(jiwer.wer(r, h))
    if metric == "bleu":
        try:
            import sacrebleu
        except ImportError:
            return -1.0  # not computed; rescore the saved samples elsewhere
        return float(sacrebleu.corpus_bleu(hyps, [refs]).score)
    return float(np.mean([h.strip() == r.strip() for r, h in zip(refs, hyps, strict=True)]))


def _fallback_wer(refs: list[str], hyps: list[str]) -> float:
    import re

    def words(s: str) -> list[str]:
        return re.sub(r"[^a-z0-9' ]", " ", s.lower()).split()

    errors = total = 0
    for r, h in zip(refs, hyps, strict=True):
        rw, hw = words(r), words(h)
        row = list(range(len(hw) + 1))
        for i, a in enumerate(rw, 1):
            prev, row[0] = row[0], i
            for j, b in enumerate(hw, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (a != b))
        errors += row[-1]
        total += len(rw)
    return errors / max(1, total)


def evaluate(model: Any, tokenizer: Any, eval_items: dict[str, list], device: str = "cpu",
             batch_size: int = 32, examples: int = 3, bf16: bool = False) -> dict[str, Any]:
    """``{set: {metric: value, n, samples: [[ref, hyp], ...]}}`` plus ``chance`` for choice sets."""
    out: dict[str, Any] = {}
    for name, items in eval_items.items():
        t0 = time.time()
        metric = EVAL_SETS[name][1]
        hyps = generate(model, tokenizer, items, batch_size=batch_size, device=device, bf16=bf16)
        refs = [it.target for it in items]
        res: dict[str, Any] = {metric: round(score(metric, refs, hyps), 4), "n": len(items),
                               "seconds": round(time.time() - t0, 1),
                               "samples": [[r, h] for r, h in list(zip(refs, hyps, strict=True))[:examples]]}
        res["all"] = [[r, h] for r, h in zip(refs, hyps, strict=True)]  # for rescoring elsewhere
        if metric == "acc":
            res["chance"] = round(float(np.mean([1.0 / len(it.choices) for it in items if it.choices])), 4)
        out[name] = res
    return out
