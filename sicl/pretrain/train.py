"""Pretrain tiny-omni from scratch on synthetic single-example instructions (ASR, ST, SQA, AQA).

    sicl pretrain configs/pretrain/tiny-omni.yaml [key=value ...]
    python -m sicl.pretrain configs/pretrain/tiny-omni.yaml [key=value ...]      (the same)

Full-parameter training of a random tiny Qwen2.5-Omni thinker on freshly synthesised adult speech (child
domains stay unseen; no multi-audio episodes, so the model has little built-in in-context ability). Loss:
cross-entropy on answer tokens + ``ctc_weight`` x a character CTC loss on the audio tower's outputs (a small
head that is never saved with the model) so the model learns to listen early. The learning-rate schedule
follows wall-clock progress (``max_minutes``), so a run always ends on time with a decayed rate.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from sicl.config import dump_config
from sicl.episodes import prompts
from sicl.errors import SiclError
from sicl.guard import check_stop, stop_on_signals, stop_requested
from sicl.models import tiny_omni
from sicl.pretrain import data
from sicl.pretrain.checkpoint import (
    CTC_HEAD_FILE,
    export_model,
    load_train_state,
    parse_size,
    save_train_state,
)
from sicl.pretrain.evaluate import evaluate, make_eval_items

log = logging.getLogger("sicl.pretrain")


@dataclass
class PretrainConfig:
    out_dir: str = field(default="runs/pretrain-tiny-omni", metadata={"help": "run folder (checkpoint/, final/, logs)"})
    source: str = field(default="sicl.data.synth.items", metadata={"help": "module with generate_items(kind, n, seed, exclude=...)"})
    init: str = field(default="", metadata={"help": "start from this model folder instead of a random model"})
    seed: int = field(default=0, metadata={"help": "model init and data seed (data seeds are offset far from world seeds)"})
    vocab_size: int = field(default=2048, metadata={"help": "BPE vocabulary size incl. 11 special tokens"})
    tokenizer_texts: int = field(default=20000, metadata={"help": "sentences drawn from tokenizer_corpus to train the BPE"})
    size: dict[str, int] = field(default_factory=dict, metadata={"help": "model size overrides (tiny_omni.DEFAULT_SIZE keys)"})
    mix: dict[str, float] = field(default_factory=lambda: {"adult": 0.55, "translate": 0.2, "sqa": 0.15, "aqa": 0.1},
                                  metadata={"help": "generate_items kind -> sampling weight (adult voices only)"})
    groups: dict[str, float] = field(default_factory=lambda: {"single": 1.0},
                                     metadata={"help": "batch group -> share of steps: single (one clip per example), "
                                               "chat (several unrelated clips per example), text (no audio)"})
    group_batch: dict[str, int] = field(default_factory=dict,
                                        metadata={"help": "examples per step for a group (default: batch_size)"})
    chat_clips: list[int] = field(default_factory=lambda: [2, 5], metadata={"help": "clips per chat: [min, max]"})
    exclude_world: str = field(default="", metadata={"help": "world folder whose */test.jsonl sentences are never trained on"})
    batch_size: int = field(default=32, metadata={"help": "examples per optimiser step"})
    lr: float = field(default=1.5e-3, metadata={"help": "peak AdamW learning rate"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "final learning rate as a fraction of lr (cosine)"})
    warmup_steps: int = field(default=200, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm"})
    ctc_weight: float = field(default=0.5, metadata={"help": "weight of the auxiliary CTC loss (0 disables the head)"})
    ctc_warmup_steps: int = field(default=0, metadata={
        "help": "first steps whose CTC loss trains only the head (audio frames detached): a warm start from a model "
                "saved without its head (CTC_HEAD_FILE) gets a random head, whose gradients would otherwise reach the "
                "audio tower"})
    max_minutes: float = field(default=40.0, metadata={"help": "wall-clock training budget in minutes (summed over resumes)"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many steps (0: no limit)"})
    workers: int = field(default=1, metadata={"help": "synthesis worker processes"})
    chunk: int = field(default=48, metadata={"help": "clips per generate_items call in a worker"})
    buffer_size: int = field(default=20000, metadata={"help": "replay buffer capacity (featurised examples)"})
    min_buffer: int = field(default=256, metadata={"help": "examples to wait for before the first step"})
    max_replay: float = field(default=0.0, metadata={"help": "wait for synthesis whenever clips drawn into batches "
                                                    "exceed this many times the fresh clips received (0: never)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast (weights and optimiser stay fp32)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads for training (0: leave default)"})
    log_every: int = field(default=20, metadata={"help": "steps between log lines"})
    ckpt_every_minutes: float = field(default=10.0, metadata={"help": "minutes between resumable checkpoints"})
    export_every_minutes: float = field(default=0.0, metadata={"help": "minutes between exports to export_dir (0: only at the end)"})
    resume: bool = field(default=False, metadata={"help": "continue from out_dir/checkpoint"})
    eval_every_minutes: float = field(default=0.0, metadata={"help": "minutes between quick adult-WER checks (0: off)"})
    eval_periodic_n: int = field(default=48, metadata={"help": "adult clips in each periodic WER check"})
    probes: bool = field(default=True, metadata={"help": "also measure in-context probes: text copying and "
                                                      "adult ASR with 3 random demonstrations (several clips)"})
    eval_n: int = field(default=100, metadata={"help": "items per held-out set in the final evaluation"})
    eval_batch: int = field(default=32, metadata={"help": "generation batch size"})
    export_dir: str = field(default="", metadata={"help": "also write the final model as <=16 MB shards + meta.tar.gz here"})
    export_shard: str = field(default="12MB", metadata={"help": "max shard size for export_dir"})
    save_dtype: str = field(default="bf16", metadata={"help": "dtype of final/shipped weights: bf16 | fp32"})
    name: str = field(default="", metadata={"help": "the model's name on its card (e.g. tiny-omni v3)"})
    description: str = field(default="", metadata={"help": "what the model was trained on, for its card"})
    ship_to: str = field(default="", metadata={"help": "copy the final model + card into this folder (e.g. sicl/zoo/tiny-omni)"})

    def config_problems(self) -> Iterator[tuple[str, str]]:
        """``(key, problem)`` for values out of range (:func:`sicl.config.load_config` raises the first one): checked
        while the config loads, before any model, synthesis or output. Folders (``init``, ``exclude_world``), the
        ``source`` module and its kinds, the device and the output folder are checked by :func:`train` before it
        writes anything."""
        for name, low in (("seed", 0), ("vocab_size", 1), ("tokenizer_texts", 0), ("batch_size", 1),
                          ("warmup_steps", 0), ("ctc_warmup_steps", 0), ("max_steps", 0), ("workers", 1),
                          ("chunk", 1), ("buffer_size", 1), ("min_buffer", 1), ("threads", 0), ("log_every", 1),
                          ("eval_periodic_n", 1), ("eval_n", 1), ("eval_batch", 1)):
            if getattr(self, name) < low:
                note = {"max_steps": " (0: no limit)", "threads": " (0: torch's default)"}.get(name, "")
                yield name, f"must be >= {low}{note}, got {getattr(self, name)}"
        for name, low, strict in (("lr", 0, True), ("min_lr_ratio", 0, False), ("weight_decay", 0, False),
                                  ("grad_clip", 0, True), ("ctc_weight", 0, False), ("max_minutes", 0, True),
                                  ("max_replay", 0, False), ("ckpt_every_minutes", 0, True),
                                  ("export_every_minutes", 0, False), ("eval_every_minutes", 0, False)):
            value = getattr(self, name)
            if not (math.isfinite(value) and (value > low if strict else value >= low)):
                yield name, f"must be a number {'>' if strict else '>='} {low}, got {value}"
        if self.min_lr_ratio > 1:
            yield "min_lr_ratio", f"must be at most 1 (a fraction of lr), got {self.min_lr_ratio}"
        if not self.source:
            yield "source", "is empty: name a module with generate_items(kind, n, seed, exclude=...)"
        yield from _weights("mix", self.mix, "text")
        yield from _weights("groups", self.groups, None, GROUPS)
        for group, n in self.group_batch.items():
            if group not in GROUPS:
                yield "group_batch", f"unknown group {group!r} (expected {', '.join(GROUPS)})"
            elif not isinstance(n, int) or isinstance(n, bool) or n < 1:
                yield f"group_batch.{group}", f"must be a whole number >= 1, got {n!r}"
        clips = self.chat_clips
        if len(clips) != 2 or not 1 <= clips[0] <= clips[1]:
            yield "chat_clips", f"must be [min, max] with 1 <= min <= max, got {list(clips)}"
        if self.device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", self.device):
            yield "device", f"must be auto, cpu, cuda or cuda:N, got {self.device!r}"
        if self.save_dtype not in ("bf16", "fp32"):
            yield "save_dtype", f"must be bf16 or fp32, got {self.save_dtype!r}"
        try:
            if parse_size(self.export_shard) < 1:
                raise ValueError
        except ValueError:
            yield "export_shard", f"must be a size such as 12MB, 500KB or 1GB, got {self.export_shard!r}"
        if self.size:
            known = tiny_omni.DEFAULT_SIZE
            for key, value in self.size.items():
                if key not in known:
                    yield "size", f"unknown key {key!r} (expected {', '.join(known)})"
                elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    yield f"size.{key}", f"must be a whole number >= 1, got {value!r}"


#: batch groups (``groups``, ``group_batch``): see :func:`_group` and :meth:`data.ClipStream.batch`
GROUPS = ("single", "chat", "text", "shared")


def _weights(key: str, weights: dict[str, Any], no_audio: str | None,
             known: tuple[str, ...] | None = None) -> Iterator[tuple[str, str]]:
    """A mapping of names to sampling weights: numbers >= 0, and some > 0 (besides ``no_audio``: text-only
    examples need no synthesis worker, and a worker needs a kind to make)."""
    for name, w in weights.items():
        if known is not None and name not in known:
            yield key, f"unknown group {name!r} (expected {', '.join(known)})"
        elif isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            yield f"{key}.{name}", f"must be a number >= 0, got {w!r}"
            return
    if not any(w > 0 for name, w in weights.items() if name != no_audio):
        what = "an audio kind (besides text)" if no_audio else "a group"
        yield key, f"needs {what} with a weight > 0, got {dict(weights)}"


def tokenizer_texts(source: Any, cfg: PretrainConfig) -> list[str]:
    extra = [prompts.ASR_INSTRUCTION, prompts.CHOICE_INSTRUCTION, prompts.TICL_ASR_INSTRUCTION,
             prompts.TICL_ANSWER.format(answer=""), tiny_omni.DEFAULT_SYSTEM]
    extra += [prompts.ST_INSTRUCTION.format(language=n) for n in prompts.LANGUAGES.values()]
    return list(_corpus_module(cfg).tokenizer_corpus(cfg.seed + data.SEED_OFFSET, cfg.tokenizer_texts)) + extra * 50


def _corpus_module(cfg: PretrainConfig) -> Any:
    """``tokenizer_corpus`` lives in ``sicl.data.synth.text``; other sources may define it themselves."""
    import importlib

    mod = importlib.import_module(cfg.source)
    return mod if hasattr(mod, "tokenizer_corpus") else importlib.import_module("sicl.data.synth.text")


class CtcHead(torch.nn.Module):
    """Characters from audio-tower frames; not part of the model (saved beside it as :data:`CTC_HEAD_FILE`)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(dim, len(data.CTC_ALPHABET) + 1)

    def loss(self, frames: torch.Tensor, out_lens: torch.Tensor, targets: torch.Tensor,
             target_lens: torch.Tensor) -> torch.Tensor:
        keep = target_lens > 0
        if not bool(keep.any()):
            return frames.sum() * 0.0
        seqs = list(torch.split(frames, out_lens.tolist()))
        padded = torch.nn.utils.rnn.pad_sequence(seqs)  # (T, B, D)
        logp = self.proj(padded).float().log_softmax(-1)[:, keep]
        return F.ctc_loss(logp, targets, out_lens[keep], target_lens[keep], blank=0, zero_infinity=True)


def losses(model: Any, head: CtcHead, batch: dict[str, torch.Tensor], frames: dict[str, Any],
           use_ctc: bool = True, head_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(answer-token cross-entropy, CTC loss) for one collated batch. ``frames`` is filled by the forward
    hook on the audio tower (see :func:`attach_frames_hook`). ``head_only``: the CTC loss reaches the head only."""
    audio = "input_features" in batch
    extra = dict(input_features=batch["input_features"],
                 feature_attention_mask=batch["feature_attention_mask"]) if audio else {}
    res = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False, **extra)
    logits = res.logits[:, :-1].float()
    lm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
                         ignore_index=-100)
    ctc = torch.zeros((), device=lm.device)
    if use_ctc and audio:
        _, out_lens = tiny_omni.audio_tower(model)._get_feat_extract_output_lengths(
            batch["feature_attention_mask"].sum(-1))
        h = frames["h"].detach() if head_only else frames["h"]
        ctc = head.loss(h, out_lens, batch["ctc_targets"], batch["ctc_lengths"])
    return lm, ctc


def attach_frames_hook(model: Any) -> dict[str, Any]:
    """Keep the audio tower's output frames of the latest forward (for the CTC head)."""
    frames: dict[str, Any] = {}
    tiny_omni.audio_tower(model).register_forward_hook(
        lambda m, a, o: frames.__setitem__("h", o.last_hidden_state))
    return frames


def lr_factor(cfg: PretrainConfig, step: int, minutes: float) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    progress = minutes / cfg.max_minutes if cfg.max_minutes > 0 else 0.0
    if cfg.max_steps:
        progress = max(progress, step / cfg.max_steps)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return warm * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cos)


def train(cfg: PretrainConfig) -> dict[str, Any]:
    import importlib

    from tqdm import tqdm

    out = Path(cfg.out_dir)
    dev, init, resume_from = check_run(cfg)  # before anything is written
    unchecked = resume_from is not None and not (out / "config.yaml").is_file()
    out.mkdir(parents=True, exist_ok=True)
    _setup_logging(out / "train.log")
    if unchecked:
        log.warning("resuming %s without checking its settings: it has no config.yaml (removed, or not copied with "
                    "the checkpoint); this resume's settings are saved there for the next one", out)
    dump_config(cfg, out / "config.yaml")  # the settings a later resume is checked against
    if dev.type == "cuda":  # TF32 matmuls: fp32 training at near-bf16 speed, without autocast's risks
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    source = importlib.import_module(cfg.source)
    ckpt = out / "checkpoint"
    state: dict[str, Any] = {"step": 0, "minutes": 0.0, "examples": 0, "history": []}
    init_head: Path | None = None
    if resume_from is not None:
        model, processor = tiny_omni.load_tiny_omni(resume_from / "model")
        log.info("resuming from %s", ckpt)
    elif init is not None:
        model, processor = tiny_omni.load_tiny_omni(init)
        init_head = init / CTC_HEAD_FILE
    else:
        t0 = time.time()
        tok = tiny_omni.train_tokenizer(tokenizer_texts(source, cfg), cfg.vocab_size)
        sizes = {**tiny_omni.DEFAULT_SIZE, **cfg.size}
        model = tiny_omni.build_model(tiny_omni.build_config(tok, **sizes), seed=cfg.seed)
        processor = tiny_omni.build_processor(tok)
        log.info("built random tiny-omni (%.1f M params, vocab %d) in %.1fs",
                 tiny_omni.count_parameters(model) / 1e6, len(tok), time.time() - t0)
    tok = processor.tokenizer
    processor.save_pretrained(out / "tokenizer")  # the workers' tokenizer
    model.to(dev).train()
    head = CtcHead(model.config.text_config.hidden_size)
    if init_head is not None and init_head.exists():  # a checkpoint's own head comes back with its train state
        head.load_state_dict(load_file(init_head))
        log.info("CTC head from %s", init_head)
    head.to(dev)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98),
                            fused=dev.type == "cuda")
    if resume_from is not None:
        state = load_train_state(resume_from, opt, head)
    frames = attach_frames_hook(model)

    t0 = time.time()
    eval_items = make_eval_items(source, cfg.eval_n, workers=min(cfg.workers, 16))
    log.info("held-out items ready (%d sets x %d) in %.1fs", len(eval_items), cfg.eval_n, time.time() - t0)
    # Never train on a held-out sentence: the world's test splits and our own eval items.
    exclude = data.held_out_sentences(cfg.exclude_world)
    exclude |= {it.transcript or it.target for items in eval_items.values() for it in items}
    stream = data.ClipStream(out / "tokenizer", cfg.source, cfg.mix, cfg.workers, cfg.seed + state["step"],
                             cfg.buffer_size, exclude, cfg.chunk)
    try:
        t0 = time.time()
        stream.drain(min(cfg.min_buffer, cfg.buffer_size))
        log.info("replay buffer primed with %d clips in %.1fs; training on %s", stream.received,
                 time.time() - t0, _device_name(dev))
        with stop_on_signals():
            _loop(cfg, model, head, opt, stream, tok, dev, state, frames, eval_items, out, tqdm)
            check_stop(f"checkpoint at step {state['step']} in {out / 'checkpoint'}; continue with resume=true "
                       f"(max_minutes=<minutes so far> ends it there with the final evaluation)")
    finally:
        stream.close()
    model.eval()
    t0 = time.time()
    metrics = {"eval": _evaluate_all(cfg, model, tok, eval_items, dev),
               "train": {k: state[k] for k in ("step", "minutes", "examples")},
               "params": tiny_omni.count_parameters(model), "device": _device_name(dev),
               "history": state["history"], "config": cfg.__dict__}
    metrics["eval_minutes"] = round((time.time() - t0) / 60, 2)
    log.info("final eval: %s", json.dumps({k: {m: v for m, v in r.items() if m not in ("samples", "all")}
                                           for k, r in metrics["eval"].items()}))
    final = out / "final"
    dtype = torch.bfloat16 if cfg.save_dtype == "bf16" else torch.float32
    tiny_omni.save_tiny_omni(final, model.cpu(), processor, dtype=dtype)
    if cfg.ctc_weight > 0:
        save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, final / CTC_HEAD_FILE)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (final / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if cfg.export_dir:
        export_model(final, Path(cfg.export_dir), cfg.export_shard, extra=[out / "metrics.json", out / "train.log"])
    if cfg.ship_to:
        from sicl.models.zoo import install_model

        install_model(final, Path(cfg.ship_to), metrics)
    return metrics


#: what a pretraining run writes into out_dir (besides train.log and tokenizer/): a folder holding any of them holds a
#: run, which a run without resume would overwrite
RUN_FILES = ("config.yaml", "checkpoint", "checkpoint.tmp", "final", "metrics.json", "snapshot")


def run_artefacts(out: Path) -> list[Path]:
    """The files and folders of a pretraining run in ``out`` (empty for a missing or fresh folder)."""
    return [out / name for name in RUN_FILES if (out / name).exists()] if out.is_dir() else []


def check_run(cfg: PretrainConfig) -> tuple[torch.device, Path | None, Path | None]:
    """Everything :func:`train` can check before it writes anything (the values themselves are checked when the
    config loads, :meth:`PretrainConfig.config_problems`): the output folder (a run there and ``resume``; a resume's
    settings against the run's own, :func:`check_resume_settings`), the device, the ``init`` model folder, the
    ``source`` module and the ``mix`` kinds it makes, and the ``exclude_world`` folders. Returns the device, the
    model folder to start from (None: a random model, or the checkpoint) and the checkpoint to resume (None: none).
    One-line :class:`SiclError` for each problem."""
    out = Path(cfg.out_dir)
    if out.exists() and not out.is_dir():
        raise SiclError(f"out_dir {out}: is a file; give a folder for the run")
    if cfg.resume and _checkpoint_found(out):
        check_resume_settings(cfg, out)  # before _resumable_checkpoint, which may move checkpoint.tmp into place
    ckpt = _resumable_checkpoint(out) if cfg.resume else None
    if not cfg.resume:
        found = run_artefacts(out)
        if found:
            raise SiclError(f"out_dir {out} already holds a pretraining run ({', '.join(p.name for p in found[:3])}"
                            f"{', ...' if len(found) > 3 else ''}): pass --resume (resume=true) to continue that run, "
                            f"or pretrain into another (or an empty) out_dir to start over")
    elif ckpt is None:
        finished = [p.name for p in run_artefacts(out) if p.name in ("final", "metrics.json")]
        if finished:  # starting over would put this run's config.yaml next to another run's model
            raise SiclError(f"--resume: {out} holds a run's results ({', '.join(finished)}) but no checkpoint to "
                            f"continue from; pretrain into another (or an empty) out_dir to start over")
    dev = _device(cfg.device)
    init = _init_folder(cfg.init) if cfg.init and ckpt is None else None
    _check_source(cfg)
    data.world_folders(cfg.exclude_world)
    if cfg.resume and ckpt is None:
        print(f"sicl pretrain: no checkpoint in {out}; starting from step 0", file=sys.stderr)
    return dev, init, ckpt


#: settings a resumed run may change (``--resume`` refuses a change to any other, :func:`check_resume_settings`):
#: none of them changes what the model is trained on or how, beyond how long
RESUME_SAFE_KEYS = frozenset({
    # the budget: a run goes on for longer, or ends at what it did with the final evaluation (max_minutes at the
    # minutes so far); the cosine schedule re-stretches to the new budget, which is what such a resume is for
    # (docs/tiny-omni.md: stage 1 resumed to 94 minutes, stage 2 to 146)
    "max_minutes", "max_steps",
    # the resume switch itself, and the run's own folder (its config.yaml is read from there: a moved folder, or a
    # relative path given from another directory, is the same run)
    "resume", "out_dir",
    # speed only: torch threads, the device, the synthesis processes (clips are random draws from the same mix
    # with any number of them; which ones are buffered when depends on timing in every run)
    "threads", "device", "workers",
    # how often the run logs, checkpoints, exports and checks itself (eval_periodic_n: the size of that check)
    "log_every", "ckpt_every_minutes", "export_every_minutes", "eval_every_minutes", "eval_periodic_n",
    # the final evaluation's batch size and its extra probes (not eval_n: its items are also kept out of training)
    "eval_batch", "probes",
    # where and how the final model is written, and its card
    "export_dir", "export_shard", "save_dtype", "ship_to", "name", "description",
})


def check_resume_settings(cfg: PretrainConfig, out: Path) -> None:
    """A resumed run goes on only with the settings it was started with (``out/config.yaml``, written when a run
    starts or resumes), but for :data:`RESUME_SAFE_KEYS`: another learning rate, mix, seed or model size would
    make the checkpoint, the final model and metrics.json the record of a run that never happened. One line
    naming each changed key, its saved value and the new one. A run without config.yaml (every run writes it: it was
    removed, or not copied with the checkpoint) is resumed unchecked, which :func:`train` logs."""
    from sicl.config import changed_settings, load_config

    saved = out / "config.yaml"
    if not saved.is_file():
        return
    try:
        before = load_config(PretrainConfig, saved)
    except SiclError as e:
        raise SiclError(f"--resume: the settings of the run in {out} cannot be checked ({e}); restore "
                        f"{saved.name}, or pretrain into a new out_dir to start another run") from None
    changed = changed_settings(before, cfg, RESUME_SAFE_KEYS)
    if changed:
        raise SiclError(f"--resume with other settings than the run in {out} (" +
                        "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()) +
                        f"): resume with the settings in {saved} (max_minutes, max_steps and operational keys "
                        f"such as threads, device, workers may change), or pretrain into a new out_dir to start "
                        f"another run (init={out / 'checkpoint' / 'model'} starts it from this run's weights)")


def _checkpoint_found(out: Path) -> bool:
    """Whether ``out`` holds a checkpoint that :func:`_resumable_checkpoint` would resume (it changes nothing)."""
    ckpt, tmp = out / "checkpoint", out / "checkpoint.tmp"
    return (tmp / "train_state.json").is_file() or (
        (ckpt / "model" / "config.json").is_file() and (ckpt / "train_state.json").is_file())


def _resumable_checkpoint(out: Path) -> Path | None:
    """``out/checkpoint`` when it holds a model and its train state. A run killed while replacing its checkpoint
    (:func:`_checkpoint`: the new one is complete in ``checkpoint.tmp``, the old one removed or half removed)
    gets the new one in its place."""
    ckpt, tmp = out / "checkpoint", out / "checkpoint.tmp"
    if (tmp / "train_state.json").is_file():  # written last: the new checkpoint is complete
        shutil.rmtree(ckpt, ignore_errors=True)
        tmp.rename(ckpt)
    complete = (ckpt / "model" / "config.json").is_file() and (ckpt / "train_state.json").is_file()
    return ckpt if complete else None


def _device(name: str) -> torch.device:
    from sicl.device import resolve_device

    try:
        return torch.device(resolve_device(name))
    except SiclError as e:  # the shared message names the --device flag; pretraining's is a config key
        raise SiclError(str(e).replace("--device cpu or auto", "device=cpu or auto")) from None


def _init_folder(init: str) -> Path:
    """The model folder ``init`` names: a built-in model (``tiny-omni``) or a folder with a config.json."""
    from sicl.models.zoo import BUILTINS, resolve_model

    if init in BUILTINS:
        return resolve_model(init)
    path = Path(init).expanduser()
    if not path.is_dir():
        where = "" if path.is_absolute() else f" (relative paths are resolved from the current directory {Path.cwd()})"
        raise SiclError(f"init: {init}: no such model folder{where}; give a model folder or a built-in model "
                        f"({', '.join(BUILTINS)})")
    if not (path / "config.json").is_file():
        raise SiclError(f"init: {init}: not a model folder (no config.json)")
    return path


def _check_source(cfg: PretrainConfig) -> None:
    """``source`` imports and has ``generate_items``; every ``mix`` kind is one it makes (its ``KINDS``) or text."""
    import importlib

    try:
        source = importlib.import_module(cfg.source)
    except ImportError as e:
        raise SiclError(f"source: cannot import {cfg.source!r} ({e})") from None
    if not callable(getattr(source, "generate_items", None)):
        raise SiclError(f"source: {cfg.source} has no generate_items(kind, n, seed, exclude=...)")
    known = getattr(source, "KINDS", None)
    if known is not None:
        unknown = [k for k in cfg.mix if k != "text" and k not in known]
        if unknown:
            raise SiclError(f"mix: unknown kind(s) {', '.join(map(repr, unknown))} for source {cfg.source} "
                            f"(known: {', '.join([*known, 'text'])})")


def _loop(cfg: PretrainConfig, model: Any, head: CtcHead, opt: Any, stream: Any, tok: Any, dev: torch.device,
          state: dict[str, Any], frames: dict[str, Any], eval_items: dict[str, list], out: Path, tqdm: Any) -> None:
    start = time.time() - state["minutes"] * 60
    last_ckpt = last_export = last_eval = time.time()
    bar = tqdm(total=int(cfg.max_minutes * 60), unit="s", desc="pretrain", initial=int(state["minutes"] * 60),
               dynamic_ncols=True, file=sys.stderr)
    t_log, ex_log = time.time(), 0
    group_lm: dict[str, list[float]] = {}
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    while True:
        minutes = (time.time() - start) / 60
        if minutes >= cfg.max_minutes or (cfg.max_steps and state["step"] >= cfg.max_steps):
            break
        if stop_requested() is not None:  # SIGTERM/SIGINT: checkpoint below, then Interrupted (exit 128+sig)
            log.info("stop requested at step %d", state["step"])
            break
        stream.drain(stream.owed(cfg.max_replay))
        group = _group(cfg, state["step"], stream)
        samples = stream.batch(cfg.group_batch.get(group, cfg.batch_size), group, tok, tuple(cfg.chat_clips))
        batch = {k: v.to(dev, non_blocking=True) for k, v in data.collate(samples, tok.pad_token_id).items()}
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(cfg, state["step"], minutes)
        with amp:
            lm, ctc = losses(model, head, batch, frames, cfg.ctc_weight > 0,
                             head_only=state["step"] < cfg.ctc_warmup_steps)
        loss = lm + cfg.ctc_weight * ctc
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        state["step"] += 1
        group_lm.setdefault(group, []).append(lm.item())
        state["examples"] += len(samples)
        ex_log += len(samples)
        now = time.time()
        state["minutes"] = (now - start) / 60
        bar.update(max(0, min(int(now - start), bar.total) - bar.n))
        if state["step"] % cfg.log_every == 0:
            rec = {"step": state["step"], "minutes": round(state["minutes"], 2), "loss": round(loss.item(), 4),
                   "lm": round(lm.item(), 4), "ctc": round(ctc.item(), 4), "lr": opt.param_groups[0]["lr"],
                   "ex_per_s": round(ex_log / (now - t_log), 1), "fresh": stream.received,
                   "buffer": len(stream.buffer),
                   **{f"lm_{g}": round(sum(v) / len(v), 4) for g, v in sorted(group_lm.items())}}
            t_log, ex_log = now, 0
            group_lm.clear()
            log.debug(json.dumps(rec))
            bar.set_postfix(step=rec["step"], lm=rec["lm"], ctc=rec["ctc"], eps=rec["ex_per_s"])
            state["history"].append(rec)
        if cfg.eval_every_minutes and now - last_eval >= cfg.eval_every_minutes * 60:
            model.eval()
            quick = {k: v[:cfg.eval_periodic_n] for k, v in eval_items.items() if k in ("adult", "unheard", "context")}
            res = _evaluate_all(cfg, model, tok, quick, dev, n_copy=cfg.eval_periodic_n, final=False)
            model.train()
            rec = {"step": state["step"], "minutes": round(state["minutes"], 2),
                   **{f"{k}_{m}": v[m] for k, v in res.items() for m in ("wer", "acc", "new_word_hit")
                      if m in v}}
            state["history"].append(rec)
            log.info("periodic check: %s", json.dumps(rec))
            last_eval = time.time()
        if now - last_ckpt >= cfg.ckpt_every_minutes * 60:
            _checkpoint(out, model, tok, opt, head, state)
            last_ckpt = time.time()
        if cfg.export_dir and cfg.export_every_minutes and now - last_export >= cfg.export_every_minutes * 60:
            snap = out / "snapshot"
            tiny_omni.save_tiny_omni(snap, model, _processor(out), dtype=torch.bfloat16)
            export_model(snap, Path(cfg.export_dir), cfg.export_shard, extra=[out / "train.log"])
            last_export = time.time()
    bar.close()
    log.info("training stopped: step %d, %.2f min, %d examples (%d fresh clips)", state["step"],
             state["minutes"], state["examples"], stream.received)
    _checkpoint(out, model, tok, opt, head, state)


def _evaluate_all(cfg: PretrainConfig, model: Any, tok: Any, eval_items: dict[str, list], dev: torch.device,
                  n_copy: int = 100, final: bool = True) -> dict[str, Any]:
    """The held-out sets, plus (``cfg.probes``) the copying probe and adult ASR after 3 random demonstrations."""
    import importlib

    from sicl.pretrain.evaluate import probe_copy, probe_icl, probe_shared

    res = evaluate(model, tok, eval_items, device=dev.type, batch_size=cfg.eval_batch, bf16=cfg.bf16)
    if cfg.probes:
        res["copy"] = probe_copy(model, tok, n=n_copy, device=dev.type)
        res["copy-prefix"] = probe_copy(model, tok, n=n_copy, device=dev.type, kind="prefix")
        if len(eval_items.get("adult", ())) >= 4:  # three demonstrations + the query (eval_n < 4: no probe)
            res["adult-icl3"] = probe_icl(model, tok, eval_items["adult"], k=3, device=dev.type)
        source = importlib.import_module(cfg.source)
        for kind in getattr(source, "CHAT_KINDS", ()) if final else ():  # (synthesises chats: final only)
            res[kind] = probe_shared(model, tok, source, n=3 * cfg.eval_n, device=dev.type,
                                     workers=cfg.workers, kind=kind)
    return res


def _group(cfg: PretrainConfig, step: int, stream: Any) -> str:
    """The batch group of a step (drawn from ``cfg.groups``, reproducible per step); single-clip batches
    (or, with none buffered yet, another group's) stand in while a group's buffer is still empty."""
    import random

    names = [g for g, w in cfg.groups.items() if w > 0]
    group = random.Random(cfg.seed * 1_000_003 + step).choices(names, [cfg.groups[g] for g in names])[0]
    if stream.ready(group):
        return group
    # a group whose buffer is still empty: single clips stand in, or else any group that can be drawn
    return next((g for g in ["single", *names] if stream.ready(g)), "single")


def _processor(out: Path) -> Any:
    from sicl.models.processor import SiclOmniProcessor

    return SiclOmniProcessor.from_pretrained(str(out / "tokenizer"))


def _checkpoint(out: Path, model: Any, tok: Any, opt: Any, head: CtcHead, state: dict[str, Any]) -> None:
    tmp = out / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tiny_omni.save_tiny_omni(tmp / "model", model, _processor(out))
    save_train_state(tmp, opt, head, state)
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    tmp.rename(out / "checkpoint")
    log.info("checkpoint at step %d (%.1f min)", state["step"], state["minutes"])


def _device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu x{torch.get_num_threads()}"


def _setup_logging(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO)
    log.handlers[:] = [handler, console]
    log.setLevel(logging.DEBUG)
