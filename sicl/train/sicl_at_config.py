"""The SICL-AT / direct fine-tuning config (``sicl train CONFIG.yaml [key=value ...]``).

Published settings (facts §1): LoRA r=8, alpha=32 on the language model only. Not published, so chosen
here and documented in docs/training.md: learning rate, steps, batch size, k during training, LoRA
targets, demo order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from sicl.data.augment import AugmentSettings
from sicl.models.lora import LoraSettings
from sicl.retrieval import RetrievalConfig


@dataclass
class TaskSpec:
    name: str = field(metadata={"help": "task name in logs (asr, st, sqa, ...)"})
    queries: str = field(metadata={"help": "manifest of training queries (with targets)"})
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
