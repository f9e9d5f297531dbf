"""The SICL-AT / direct fine-tuning config (``sicl train CONFIG.yaml [key=value ...]``).

Published settings (facts §1): LoRA r=8, alpha=32 on the language model only. Not published, so chosen
here and documented in docs/training.md: learning rate, steps, batch size, k during training, LoRA
targets, demo order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from sicl.data.augment import AugmentSettings
from sicl.models.lora import LoraSettings
from sicl.retrieval import RetrievalConfig


@dataclass
class TaskSpec:
    # name and queries are required; their defaults only let a missing one be reported by key
    # (TrainConfig.config_problems: `tasks[0].queries is missing`) instead of a constructor error.
    name: str = field(default="", metadata={"help": "task name in logs (asr, st, sqa, ...); unique, no '/'"})
    queries: str = field(default="", metadata={"help": "manifest of training queries (with targets)"})
    pool: str | None = field(default=None, metadata={"help": "manifest of the demo pool (not needed for k=0)"})
    weight: float = field(default=1.0, metadata={"help": "mixture weight (normalised over tasks)"})


def _training_retrieval() -> RetrievalConfig:
    # Training queries have gold transcripts: the gold "pseudo-label" is free and exactly what the
    # demo pool is matched by, so retrieval needs no ASR pass over the training set.
    return RetrievalConfig(retriever="ticl", pseudo_labeler="gold")


@dataclass
class TrainConfig:
    #: keys a user may reasonably write that training does not read (an error, never silently dropped)
    IGNORED_KEYS: ClassVar[dict[str, str]] = {
        "retrieval.k": "demonstrations per training episode are the top-level `k`",
        "retrieval.model": "training queries are labelled by `retrieval.pseudo_labeler`; the backbone is `model`",
    }

    model: str = field(default="tiny-omni", metadata={"help": "built-in model name, local folder or hub id"})
    allow_download: bool = field(default=False, metadata={"help": "allow a hub download of `model`"})
    audio_tokenizer: str | None = field(default=None, metadata={
        "help": "MiMo-Audio: tokenizer folder for clips without cached codes (default: $SICL_MIMO_TOKENIZER, "
                "else MODEL/audio_tokenizer/)"})
    output_dir: str = field(default="runs/train/sicl-at1", metadata={"help": "adapter, config, logs, checkpoints"})
    tasks: list[TaskSpec] = field(default_factory=list, metadata={"help": "the mixture: [{name, queries, pool, weight}]"})
    k: list[int] = field(default_factory=lambda: [3], metadata={
        "help": "demos per episode: one value, or [min, max] drawn per episode (0 = direct fine-tuning)"})
    shuffle_demos: bool = field(default=False, metadata={"help": "shuffle demo order (default: farthest first)"})
    max_prompt_tokens: int | None = field(default=None, metadata={
        "help": "prompt budget (estimated tokens); the farthest demos are dropped to fit"})
    retrieval: RetrievalConfig = field(default_factory=_training_retrieval, metadata={
        "help": "demo retrieval for training queries (same code as evaluation)"})
    query_augment: AugmentSettings = field(default_factory=AugmentSettings, metadata={
        "help": "perturbed copies of the training queries (speed, noise; sicl.data.augment); "
                "a copy keeps its source's demonstrations"})
    respell_shared: float = field(default=0.0, metadata={
        "help": "probability that an ASR episode's rare words shared by the query and its demos are respelt (a "
                "spelling that sounds the same) in all their transcripts: only the demos give it (not in the paper; "
                "sicl.train.episodes)"})
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": "r, alpha, dropout, targets"})
    max_steps: int = field(default=200, metadata={"help": "optimizer steps"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "episodes per device per micro-batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW)"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    seed: int = field(default=0, metadata={"help": "episodes, LoRA init and dropout"})
    save_steps: int = field(default=100, metadata={"help": "checkpoint every N steps (for --resume)"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept"})
    logging_steps: int = field(default=10, metadata={"help": "log loss / lr every N steps"})
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision (GPU; slow on these CPUs)"})
    dtype: str = field(default="float32", metadata={"help": "model weight dtype (float32 | bfloat16)"})
    cache_tower_outputs: bool = field(default=True, metadata={
        "help": "compute each clip's frozen audio-tower output once and reuse it"})
    merged_lora: bool = field(default=True, metadata={
        "help": "run each LoRA linear as one matmul with W + scaling*B@A (exact; only where lora.dropout is 0)"})
    answer_logits_only: bool = field(default=True, metadata={
        "help": "apply the LM head only where a label is predicted (same loss, far less vocab work/memory)"})
    group_batches: int = field(default=16, metadata={
        "help": "length grouping: sort this many batches' worth of episodes by length (1 = off)"})
    threads: int | None = field(default=None, metadata={
        "help": "torch CPU threads (default: torch's choice); on a loaded shared CPU, 1 is often faster"})
    device: str = field(default="auto", metadata={
        "help": "auto (cuda when torch sees one, else cpu) | cpu | cuda; pick a GPU with CUDA_VISIBLE_DEVICES, "
                "several with accelerate launch"})
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"], metadata={
        "help": "trainer loggers (tensorboard, none, ...)"})
    preset: str = field(default="plain", metadata={"help": "prompt preset (sicl.episodes.prompts)"})

    def config_problems(self) -> Iterator[tuple[str, str]]:
        """``(key, problem)`` for values out of range (:func:`sicl.config.load_config` raises the first one):
        checked while the config loads, before any manifest, model or output."""
        if not self.tasks:
            yield "tasks", "is empty: training needs at least one task ([{name, queries, pool, weight}])"
        if len(self.k) not in (1, 2) or min(self.k) < 0 or self.k[0] > self.k[-1]:
            yield "k", f"must be one value or a range [min, max] with 0 <= min <= max, got {list(self.k)}"
            return
        weights = [t.weight for t in self.tasks]
        yield from _task_problems(self.tasks)
        for i, t in enumerate(self.tasks):
            if not math.isfinite(t.weight) or t.weight < 0:
                yield f"tasks[{i}].weight", f"must be >= 0, got {t.weight} (task {t.name!r})"
            if max(self.k) > 0 and not t.pool:
                yield f"tasks[{i}].pool", f"is missing: k={list(self.k)} needs a demo pool (task {t.name!r})"
        if self.tasks and sum(weights) <= 0:
            yield "tasks", f"weights must not all be 0, got {weights}"
        yield from _at_least(self, 1, "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
                             "save_steps", "logging_steps", "group_batches")
        yield from _at_least(self, 0, "warmup_steps", "seed")
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            yield "max_prompt_tokens", f"must be >= 1 (or null: no budget), got {self.max_prompt_tokens}"
        if self.save_total_limit is not None and self.save_total_limit < 1:
            yield "save_total_limit", f"must be >= 1 (or null: keep every checkpoint), got {self.save_total_limit}"
        if self.threads is not None and self.threads < 0:
            yield "threads", f"must be >= 0 (0: torch's default), got {self.threads}"
        if not (math.isfinite(self.respell_shared) and 0 <= self.respell_shared <= 1):
            yield "respell_shared", f"must be a probability in [0, 1], got {self.respell_shared}"
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            yield "learning_rate", f"must be a number > 0, got {self.learning_rate}"
        for name in ("weight_decay", "max_grad_norm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                yield name, f"must be a number >= 0, got {value}"
        problem = scheduler_problem(self.lr_scheduler_type)
        if problem:
            yield "lr_scheduler_type", problem
        if self.lora.r < 1:
            yield "lora.r", f"must be >= 1, got {self.lora.r}"
        if not (math.isfinite(self.lora.alpha) and self.lora.alpha > 0):
            yield "lora.alpha", f"must be > 0, got {self.lora.alpha}"
        if not (0 <= self.lora.dropout < 1):
            yield "lora.dropout", f"must be >= 0 and < 1, got {self.lora.dropout}"
        problem = self.lora.targets_problem()
        if problem:
            yield "lora.targets", problem
        for name in ("model", "output_dir"):
            if not str(getattr(self, name)).strip():
                yield name, "is empty"
        from sicl.episodes.prompts import PRESETS

        if self.preset not in PRESETS:
            yield "preset", f"must be one of {', '.join(PRESETS)}, got {self.preset!r}"
        if self.dtype not in DTYPES:
            yield "dtype", f"must be one of {', '.join(DTYPES)}, got {self.dtype!r}"
        problem = report_to_problem(self.report_to)
        if problem:
            yield "report_to", problem


#: model weight dtypes training accepts (``float16`` trains, but only bf16 mixed precision is set up for it)
DTYPES = ("float32", "bfloat16", "float16")


def _task_problems(tasks: list[TaskSpec]) -> Iterator[tuple[str, str]]:
    """Task names name a task in errors, logs and ``OUTPUT_DIR/augmented/NAME``: required, unique, one path part;
    every task needs its queries."""
    seen: dict[str, int] = {}
    for i, t in enumerate(tasks):
        name = t.name
        if not name.strip():
            yield f"tasks[{i}].name", "is missing: each task needs a name (asr, st, sqa, ...)"
        elif name in (".", "..") or any(c in name for c in "/\\\0"):
            yield f"tasks[{i}].name", (f"{name!r} cannot name a folder (OUTPUT_DIR/augmented/NAME): no '/', '\\', "
                                       "'.' or '..'")
        elif name in seen:
            yield f"tasks[{i}].name", (f"{name!r} is also the name of tasks[{seen[name]}]; give each task its own "
                                       "name")
        else:
            seen[name] = i
        if not t.queries.strip():
            yield f"tasks[{i}].queries", f"is missing: the task's training queries, a manifest (task {name!r})"


def report_to_problem(report_to: list[str]) -> str | None:
    """Why ``report_to`` would fail when the trainer starts (None when it would not): each entry one of
    transformers' loggers, ``all`` or ``none``."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    known = ["none", "all", *INTEGRATION_TO_CALLBACK]
    bad = [r for r in report_to if r not in known]
    if bad:
        return f"unknown logger(s) {', '.join(map(repr, bad))}; use any of {', '.join(known)}"
    return None


def _at_least(cfg: TrainConfig, low: int, *names: str) -> Iterator[tuple[str, str]]:
    for name in names:
        if getattr(cfg, name) < low:
            yield name, f"must be >= {low}, got {getattr(cfg, name)}"


#: transformers schedules that need settings this config does not pass (an error at the first step)
_SCHEDULERS_NOT_HERE = {
    "reduce_lr_on_plateau": "needs an evaluation during training, which sicl train does not run",
    "cosine_with_min_lr": "needs lr_scheduler_kwargs (min_lr), which this config does not set",
    "cosine_warmup_with_min_lr": "needs lr_scheduler_kwargs (min_lr), which this config does not set",
    "warmup_stable_decay": "needs lr_scheduler_kwargs (num_decay_steps), which this config does not set",
}


def scheduler_problem(name: str) -> str | None:
    """Why ``name`` is not a usable ``lr_scheduler_type`` (None when it is): one of transformers'
    ``SchedulerType`` values that works with the settings this config passes."""
    from transformers.trainer_utils import SchedulerType

    usable = [s.value for s in SchedulerType if s.value not in _SCHEDULERS_NOT_HERE]
    if name in usable:
        return None
    why = f"{name!r} {_SCHEDULERS_NOT_HERE[name]}" if name in _SCHEDULERS_NOT_HERE \
        else f"{name!r} is not a transformers scheduler"
    return f"{why}; use one of {', '.join(usable)}"
