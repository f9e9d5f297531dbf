"""SICL-AT recipe (and the direct fine-tuning baseline, k=0): LoRA on retrieved in-context episodes.

One optimizer step: per episode, a task (mixture weight), a query, its k retrieved demonstrations;
cross-entropy on the query answer only (the backbone's label mask). Hugging Face ``Trainer`` does
accumulation, schedules, mixed precision, checkpoints, TensorBoard logs, progress bars and DDP /
DeepSpeed / FSDP through accelerate; this module only supplies the episodes, the batches and the loss.

Speed (the audio tower is frozen): each clip's tower output is computed once and reused across episodes
and epochs (:class:`TowerCache`); features are padded to the longest clip of a batch, not to 30 s
(the backbone's rendering); batches group episodes of similar length (:class:`EpisodeDataset`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from sicl.atomic import plain_mode
from sicl.config import dump_config
from sicl.data.audio import SAMPLE_RATE, load_audio
from sicl.data.augment import augment_queries
from sicl.data.manifest import Example, read_manifest, row_location
from sicl.episodes.episode import estimated_tokens
from sicl.errors import SiclError
from sicl.guard import Interrupted, check_stop, stop_requested
from sicl.models.answer_only import answer_positions_only, prunable_last_layer, right_padded
from sicl.models.backbone import Backbone, max_positions, positions, sequence_losses
from sicl.models.lora import apply_lora, merged_lora_forward, trainable_parameters_by_group
from sicl.models.registry import load_backbone
from sicl.models.tower_cache import TowerCache
from sicl.retrieval import retrieve
from sicl.retrieval.retrievers import retrieval_text
from sicl.train.episodes import EpisodeDataset, EpisodeSampler, TaskData
from sicl.train.sicl_at_config import TrainConfig
from sicl.versions import versions

#: prompt tokens per example besides its audio (role headers, instruction): a length-grouping estimate
_TURN_OVERHEAD = 16


class EpisodeCollator:
    """Episodes -> the dict :meth:`EpisodeTrainer.compute_loss` reads (right padding, query-answer labels,
    plus the backbone's :meth:`~sicl.models.backbone.Backbone.batch_tensors`)."""

    def __init__(self, backbone: Backbone, cache: TowerCache | None, max_prompt_tokens: int | None = None) -> None:
        self.backbone = backbone
        self.cache = cache
        self.max_prompt_tokens = max_prompt_tokens  # for the advice of the error below
        self.max_positions = max_positions(backbone.model)

    def __call__(self, episodes: list[Any]) -> dict[str, Any]:
        if self.cache is not None:
            self.cache.fill([ex for ep in episodes for ex in ep.examples])
        b = self.backbone.render(episodes, with_labels=True, padding_side="right", tower_outputs=self.cache)
        if self.max_positions:
            self._check_lengths(episodes, b.attention_mask.sum(1).tolist())
        out: dict[str, Any] = {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "labels": b.labels,
                               "episode_ids": [ep.id for ep in episodes]}
        out.update(self.backbone.batch_tensors(b))
        return out

    def _check_lengths(self, episodes: list[Any], lengths: list[int]) -> None:
        """An episode longer than the model's positions would train on garbage: one line naming it instead."""
        limit = self.max_positions
        for ep, n in zip(episodes, lengths, strict=True):
            if n <= limit:
                continue
            fix = (f"lower max_prompt_tokens (now {self.max_prompt_tokens}; it counts estimated tokens)"
                   if self.max_prompt_tokens is not None else
                   f"set max_prompt_tokens (e.g. {limit * 7 // 8}) to drop the farthest demonstrations")
            demos = f"{len(ep.demos)} demonstration{'' if len(ep.demos) == 1 else 's'}"
            task = (ep.meta or {}).get("task")
            raise SiclError(f"task {task!r}, query {ep.query.id!r} (episode {ep.id}): the prompt is {n} tokens "
                            f"({demos}), more than the model's {limit} positions (max_position_embeddings); "
                            f"{fix}, or lower k")


class EpisodeTrainer(Trainer):
    """``Trainer`` whose loss is the mean over episodes of each query answer's mean token cross-entropy
    (every episode counts the same, however long its answer), and which reads the episode dataset in
    order (the dataset already shuffles and length-groups; see :class:`EpisodeDataset`)."""

    def __init__(self, *args: Any, backbone: Backbone, merged_lora: bool = True, answer_logits_only: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backbone = backbone
        self.merged_lora = merged_lora
        self.answer_logits_only = answer_logits_only
        self.causal_only = answer_logits_only
        self._last_layer = prunable_last_layer(backbone.decoder_layers())
        # The loss below is a per-batch mean, so Trainer must divide it by the accumulation steps.
        self.model_accepts_loss_kwargs = False

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler:
        return torch.utils.data.SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        ids, am, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
        bb = self.backbone
        pos = positions(am)
        head = bb.output_head() if self.answer_logits_only else None
        right = right_padded(am)
        tensors = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "labels", "episode_ids")}
        with merged_lora_forward(bb.model, enabled=self.merged_lora):
            # Embedding lookup and audio splice (frozen) happen outside the (DDP-)wrapped call.
            kw = bb.model_inputs(ids, tensors)
            embedded = "inputs_embeds" in kw
            # The pruned last layer assumes a causal-only mask, so right padding (what the collator makes).
            last = self._last_layer if self.answer_logits_only and right and embedded else None
            # Right padding: under the causal mask a real token never sees a pad, so the mask adds nothing
            # for the labelled positions; without it attention takes the (faster) causal path.
            mask = None if self.causal_only and right and embedded else am
            with answer_positions_only(head, labels, last) as picked:
                out = model(**kw, attention_mask=mask, position_ids=pos, use_cache=False)
        if picked.rows is not None:
            loss = picked.losses(out.logits, labels.shape[0]).mean()
        else:
            loss = sequence_losses(out.logits, labels).mean()
        if not bool(torch.isfinite(loss.detach())):
            raise NonFiniteLoss(self.state.global_step + 1, float(loss.detach()), inputs.get("episode_ids") or [],
                                last_checkpoint(self.args.output_dir))
        return (loss, out) if return_outputs else loss


class NonFiniteLoss(SiclError):
    """Training stopped because a loss was NaN or infinite; the checkpoints already written are untouched."""

    def __init__(self, step: int, value: float, episode_ids: Sequence[str], last_good: Path | None) -> None:
        ids = ", ".join(episode_ids[:8]) + (" ..." if len(episode_ids) > 8 else "")
        keep = f"the last good checkpoint is {last_good.name} (--resume continues from it)" if last_good \
            else "no checkpoint was written yet"
        super().__init__(f"loss is {value} at step {step} (episodes {ids}); stopped, {keep}; lower learning_rate "
                         f"or check those episodes' audio and targets")


class StopOnSignal(TrainerCallback):
    """SIGTERM/SIGINT (see :mod:`sicl.guard`): finish the current step, save a checkpoint, stop."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if stop_requested() is not None:
            control.should_save = True
            control.should_training_stop = True
        return control


class LogLines(TrainerCallback):
    """Training progress as occasional whole lines where stderr is not a terminal (Trainer's own bar is off
    there): step, loss, rate and time left (:mod:`sicl.progress`)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        from sicl.progress import LogProgress

        if not sys.stderr.isatty() and state.is_world_process_zero:
            self.bar = LogProgress(total=state.max_steps, initial=state.global_step, desc="train", unit="step")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> Any:
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def load_tasks(cfg: TrainConfig, k_max: int) -> list[TaskData]:
    """Read each task's manifests and retrieve ``k_max`` demos per query, once, before training."""
    if not cfg.tasks:
        raise SiclError("config has no tasks (tasks: [{name, queries, pool, weight}])")
    out = []
    clips = _ClipIds()
    for i, spec in enumerate(cfg.tasks):
        queries = read_manifest(spec.queries, require_target=True)  # the loss is on the query's target
        clips.add(spec.queries, queries)
        if k_max == 0:
            out.append(TaskData(spec.name, spec.weight, queries + _augmented(cfg, spec.name, queries)))
            continue
        if not spec.pool:
            raise SiclError(f"task {spec.name!r}: k={cfg.k} needs a demo pool (pool: MANIFEST)")
        pool = read_manifest(spec.pool, require_target=True)  # a demonstration shows its answer
        clips.add(spec.pool, pool)
        if cfg.retrieval.retriever in ("ticl", "ticl+"):  # text retrieval: name the row that lacks its text
            gold = cfg.retrieval.pseudo_labeler == "gold"
            _check_retrieval_text(spec.queries, [q for q in queries if gold or q.task not in ("asr", "st")], "query")
            _check_retrieval_text(spec.pool, pool, "pool item")
        try:
            lists = retrieve(queries, pool, k=k_max, config=cfg.retrieval)
        except SiclError as e:  # "k=4 is larger than the 3 eligible pool items ...": say which task and files
            k = f"k={list(cfg.k)}" if len(cfg.k) > 1 else f"k={k_max}"
            raise SiclError(f"task {spec.name!r} (tasks[{i}]: queries {spec.queries}, pool {spec.pool}, {k}): "
                            f"{e}") from None
        ranked = {q.id: [pid for pid, _ in row] for q, row in zip(queries, lists, strict=True)}
        # A perturbed copy keeps its source's demonstrations: retrieving for the copy could return the
        # source itself when queries and pool share clips (the leakage guard matches ids and exact audio).
        copies = _augmented(cfg, spec.name, queries)
        ranked.update({c.id: ranked[c.meta["augmented_from"]] for c in copies})
        out.append(TaskData(spec.name, spec.weight, queries + copies, pool, ranked))
    return out


class _ClipIds:
    """Example id -> (audio, manifest) over every manifest of a run: the tower cache, the prompt-length estimates
    and the leakage guard know a clip by its id, so one id naming two audio files (``utt-1`` in two corpora)
    would train on the wrong clip. Refused with a one-line error naming both manifest lines."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, str]] = {}

    def add(self, path: str, examples: Sequence[Example]) -> None:
        for ex in examples:
            first = self.seen.setdefault(ex.id, (ex.audio, path))
            if _same_clip(first[0], ex.audio):
                continue
            raise SiclError(f"{row_location(path, ex.id)}: id {ex.id!r} names {ex.audio}, but {row_location(first[1], ex.id)} "
                            f"names {first[0]} under the same id; ids must be unique across a run's manifests "
                            f"(one id, one clip)")


def _same_clip(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_retrieval_text(path: str, examples: Sequence[Example], what: str) -> None:
    """A one-line ``MANIFEST:LINE: id ...`` error for the first example without the text TICL matches by."""
    for ex in examples:
        if retrieval_text(ex):
            continue
        field = "question" if ex.task not in ("asr", "st") else "target" if ex.task == "asr" else "transcript"
        gold = " (retrieval.pseudo_labeler gold uses it as the query's text)" if field != "question" and \
            what == "query" else ""
        raise SiclError(f"{row_location(path, ex.id)}: id {ex.id!r}: {what} has no {field} to retrieve "
                        f"demonstrations by{gold}")


def _augmented(cfg: TrainConfig, task: str, queries: list) -> list:
    """``cfg.query_augment``'s copies of a task's queries, written under ``OUTPUT_DIR/augmented/TASK``."""
    return augment_queries(queries, cfg.query_augment, Path(cfg.output_dir) / "augmented" / task)


def example_lengths(backbone: Backbone, tasks: Sequence[TaskData]) -> dict[str, int]:
    """Estimated prompt tokens per example (:func:`sicl.episodes.episode.estimated_tokens`, with its answer):
    the backbone's audio placeholders and tokenizer."""
    tok = backbone.tokenizer

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    lengths: dict[Any, int] = {}
    for t in tasks:
        for ex in [*t.queries, *t.pool]:
            key = length_key(ex)
            if key in lengths:
                continue
            seconds = ex.duration if ex.duration else len(load_audio(ex.audio, max_seconds=None)) / SAMPLE_RATE
            lengths[key] = estimated_tokens(ex, backbone.num_audio_tokens(int(seconds * SAMPLE_RATE)), True, count)
    return lengths


def length_key(ex: Example) -> tuple:
    """What a prompt-length estimate depends on besides the clip: one clip (one id) may be an ASR query in one
    task and an ST or SQA one in another, with other text around it."""
    return ex.id, ex.task, ex.target_lang, ex.question


def _loggers(report_to: Sequence[str]) -> list[str]:
    """``report_to`` without TensorBoard when it is not installed (a warning, not a traceback at the end)."""
    import importlib.util

    out = list(report_to)
    if "tensorboard" in out and not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        print("sicl train: warning: tensorboard is not installed (pip install 'sicl[train]'); training logs go to "
              "log_history.jsonl only", file=sys.stderr)
        out.remove("tensorboard")
    return out or ["none"]


def train_device(device: str) -> str:
    """``cpu`` or ``cuda`` for TrainingArguments (which places the model itself: one GPU per process, chosen by
    CUDA_VISIBLE_DEVICES or accelerate's LOCAL_RANK, so an index in the config would be ignored: refused here)."""
    from sicl.device import resolve_device

    if str(device).startswith("cuda:"):
        raise SiclError(f"device {device!r}: training picks GPUs by CUDA_VISIBLE_DEVICES={device.split(':', 1)[1]} "
                        "(one process) or accelerate launch (several); use device: cuda")
    try:
        dev = resolve_device(device)
    except SiclError as e:  # the shared message names the --device flag; training's is a config key
        raise SiclError(str(e).replace("--device cpu or auto", "device=cpu or auto")) from None
    if dev not in ("cpu", "cuda"):
        raise SiclError(f"device {device!r}: training runs on cpu or cuda")
    return dev


def training_arguments(cfg: TrainConfig) -> TrainingArguments:
    return TrainingArguments(
        output_dir=cfg.output_dir, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, data_seed=cfg.seed, save_strategy="steps",
        save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit, logging_steps=cfg.logging_steps,
        bf16=cfg.bf16, report_to=_loggers(cfg.report_to), use_cpu=train_device(cfg.device) == "cpu",
        dataloader_num_workers=0,  # the collator holds the tower cache: it must live in the main process
        remove_unused_columns=False, ddp_find_unused_parameters=False,
        disable_tqdm=not sys.stderr.isatty(),
    )


def build_trainer(cfg: TrainConfig, callbacks: Sequence[TrainerCallback] = ()) -> EpisodeTrainer:
    k = list(cfg.k)
    train_device(cfg.device)  # a device this machine lacks fails here, before data or model loading
    if cfg.threads is not None and cfg.threads < 0:  # load_config refuses it; a TrainConfig built in code too
        raise SiclError(f"threads must be >= 0 (0: torch's default), got {cfg.threads}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)  # LoRA initialisation
    tasks = load_tasks(cfg, max(k))  # bad manifests fail here, before a model is loaded
    backbone = load_backbone(cfg.model, dtype=cfg.dtype, preset=cfg.preset,
                             allow_download=cfg.allow_download, audio_tokenizer=cfg.audio_tokenizer)
    backbone.model = apply_lora(backbone.model, cfg.lora)
    lengths = example_lengths(backbone, tasks)
    sampler = EpisodeSampler(tasks, k, cfg.seed, cfg.shuffle_demos, cfg.max_prompt_tokens,
                             length_of=lambda ex: lengths[length_key(ex)], respell_shared=cfg.respell_shared)
    for line in setting_warnings(cfg, tasks, sampler.length_of):
        print(f"sicl train: warning: {line}", file=sys.stderr)
    args = training_arguments(cfg)
    world = args.world_size
    n = cfg.max_steps * cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world
    dataset = EpisodeDataset(sampler, n, cfg.per_device_train_batch_size, cfg.group_batches)
    cache = TowerCache(backbone) if cfg.cache_tower_outputs else None
    trainer = EpisodeTrainer(model=backbone.model, args=args, train_dataset=dataset,
                             data_collator=EpisodeCollator(backbone, cache, cfg.max_prompt_tokens),
                             callbacks=[*callbacks, StopOnSignal(), LogLines(), PlainModeCheckpoints()],
                             backbone=backbone, merged_lora=cfg.merged_lora,
                             answer_logits_only=cfg.answer_logits_only)
    return trainer


def setting_warnings(cfg: TrainConfig, tasks: Sequence[TaskData], length_of: Any) -> list[str]:
    """Settings that train, but not as their values suggest: a warm-up that outlasts the run (the learning rate never
    reaches ``learning_rate``), and a ``max_prompt_tokens`` that leaves no room for even the nearest demonstration
    next to some queries (their episodes silently become k=0)."""
    out = []
    if cfg.warmup_steps >= cfg.max_steps:
        out.append(f"warmup_steps={cfg.warmup_steps} >= max_steps={cfg.max_steps}: the learning rate never reaches "
                   f"learning_rate={cfg.learning_rate}")
    if cfg.max_prompt_tokens is not None and max(cfg.k) > 0:
        pools = {t.name: {ex.id: ex for ex in t.pool} for t in tasks}
        squeezed = [(t.name, q) for t in tasks for q in t.queries
                    if t.ranked.get(q.id) and length_of(q) + length_of(pools[t.name][t.ranked[q.id][0]]) >
                    cfg.max_prompt_tokens]
        if squeezed:
            name, q = squeezed[0]
            total = sum(len(t.queries) for t in tasks)
            out.append(f"max_prompt_tokens={cfg.max_prompt_tokens} leaves no room for a demonstration next to "
                       f"{len(squeezed)} of {total} queries (e.g. task {name!r}, {q.id!r}: ~{length_of(q)} tokens "
                       f"alone); their episodes train with k=0 instead of k={list(cfg.k)}")
    return out


class PlainModeCheckpoints(TrainerCallback):
    """``checkpoint-N/*.safetensors`` readable like every other file of the run (safetensors writes 0600), as the
    final adapter is: a checkpoint is an adapter too (``sicl eval --adapter OUT/checkpoint-N``)."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            for weights in ckpt.glob("*.safetensors"):
                plain_mode(weights)
        return control


def checkpoints(output_dir: str | Path) -> list[Path]:
    """``checkpoint-N`` folders, newest (highest N) first."""
    ckpts = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(ckpts, key=lambda p: int(p.name.split("-")[-1]), reverse=True)


def last_checkpoint(output_dir: str | Path) -> Path | None:
    ckpts = checkpoints(output_dir)
    return ckpts[0] if ckpts else None


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why ``ckpt`` cannot be resumed from (None when it can): a missing or truncated file. Safetensors files
    are opened (their header must match the file size), torch's zip files have every member's CRC checked,
    and ``trainer_state.json`` must parse."""
    import zipfile

    from safetensors import safe_open

    state = ckpt / "trainer_state.json"
    try:
        if int(json.loads(state.read_text(encoding="utf-8"))["global_step"]) < 0:
            return "trainer_state.json: negative global_step"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"trainer_state.json: {type(e).__name__}: {e}" if not isinstance(e, FileNotFoundError) \
            else "trainer_state.json is missing"
    weights = list(ckpt.glob("*.safetensors"))
    if not weights:
        return "no adapter weights (*.safetensors)"
    for f in weights:
        try:
            with safe_open(str(f), "pt") as fh:
                for key in fh.keys():
                    fh.get_slice(key)
        except Exception as e:  # noqa: BLE001 - any failure to read means unusable
            return f"{f.name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    for f in [*ckpt.glob("*.pt"), *ckpt.glob("*.pth"), *ckpt.glob("*.bin")]:
        try:
            with zipfile.ZipFile(f) as z:
                bad = z.testzip()
            if bad is not None:
                return f"{f.name}: member {bad} is corrupt"
        except (OSError, zipfile.BadZipFile) as e:
            return f"{f.name}: {e}"
    return None


def resumable_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest checkpoint that passes :func:`checkpoint_problem`; each newer broken one is reported in one
    line. None when there is no checkpoint; a one-line error when every one is broken."""
    found = checkpoints(output_dir)
    for ckpt in found:
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt
        print(f"sicl train: warning: {ckpt} is unusable ({problem}); trying the one before it", file=sys.stderr)
    if found:
        raise SiclError(f"no usable checkpoint in {output_dir} (all {len(found)} are broken, see above); "
                        f"delete them to start over")
    return None


def train(cfg: TrainConfig, resume: bool = False, callbacks: Sequence[TrainerCallback] = ()) -> Path:
    """Run the recipe; returns the output folder (adapter, ``config.yaml``, ``log_history.jsonl``, logs)."""
    out = Path(cfg.output_dir)
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise SiclError(f"output_dir {out}: cannot be a folder ({blocker} is a file)")
    if not resume:
        _check_fresh_output(out)  # before anything is written there (augmented copies, logs, config.yaml)
    out.mkdir(parents=True, exist_ok=True)
    # TensorBoard logs go to OUT/logs (transformers reads the variable when the trainer is built); set for this run
    # only, so a second run in the same process logs into its own folder. One the user set is kept.
    tb_env = os.environ.get(_TB_ENV)
    if tb_env is None:
        os.environ[_TB_ENV] = str(out / "logs")
    threads = torch.get_num_threads()
    try:
        return _train(cfg, out, resume, callbacks)
    finally:
        torch.set_num_threads(threads)  # `threads` applies to training only, not to what runs after it
        if tb_env is None:
            os.environ.pop(_TB_ENV, None)


_TB_ENV = "TENSORBOARD_LOGGING_DIR"


#: what a training run leaves in its output_dir (besides ``checkpoint-N/``): a folder holding any of them holds a run
RUN_FILES = ("config.yaml", "adapter_model.safetensors", "adapter_config.json", "run.json", "log_history.jsonl")


def run_artefacts(output_dir: str | Path) -> list[Path]:
    """The files and ``checkpoint-N`` folders of a training run in ``output_dir`` (checkpoints first, newest
    first). ``augmented/`` (a cache keyed by its settings) and ``logs/`` are not a run on their own."""
    out = Path(output_dir)
    return [*checkpoints(out), *(out / name for name in RUN_FILES if (out / name).exists())]


def _check_fresh_output(out: Path) -> None:
    """A run without ``--resume`` starts at step 0: refuse a folder holding another run's files, whose adapter,
    run.json and checkpoints would otherwise sit next to this run's config.yaml (the record of another run)."""
    found = run_artefacts(out) if out.is_dir() else []
    if found:
        raise SiclError(f"output_dir {out} already holds a training run ({', '.join(p.name for p in found[:3])}"
                        f"{', ...' if len(found) > 3 else ''}): pass --resume to continue that run, or train into "
                        f"another (or an empty) output_dir to start over")


def finished_step(output_dir: str | Path) -> int | None:
    """The step a finished run in ``output_dir`` ended at (its ``run.json``, next to its adapter), else None."""
    out = Path(output_dir)
    if not all((out / name).is_file() for name in ("adapter_model.safetensors", "adapter_config.json")):
        return None
    try:
        return int(json.loads((out / "run.json").read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _StartUndo:
    """Puts ``output_dir`` back as it was before a run that failed before its first checkpoint: removes what the run
    added (``config.yaml``, ``logs/``, ...; ``augmented/`` stays, a cache) and restores a ``config.yaml`` it
    replaced (``--resume`` of a run stopped before its first checkpoint starts over and rewrites it)."""

    KEEP = ("augmented",)

    def __init__(self, out: Path) -> None:
        self.out = out
        self.before = {p.name for p in out.iterdir()} if out.is_dir() else set()
        saved = out / "config.yaml"
        self.config = saved.read_bytes() if saved.is_file() else None

    def __call__(self) -> None:
        import shutil

        for p in list(self.out.iterdir()) if self.out.is_dir() else []:
            if p.name in self.before or p.name in self.KEEP:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        if self.config is not None:
            (self.out / "config.yaml").write_bytes(self.config)


#: settings a resumed run may change: they alter logging, saving or speed, never what is trained
RESUME_SAFE_KEYS = frozenset({"threads", "logging_steps", "save_steps", "save_total_limit", "report_to", "device"})


def _check_resume_config(cfg: TrainConfig, out: Path) -> None:
    """``--resume`` continues the run that wrote ``OUT/config.yaml`` only with the same settings (but
    :data:`RESUME_SAFE_KEYS`): another learning rate, k, seed, LoRA shape or step count would make the
    adapter the record of a run that never happened (a changed LoRA shape cannot even load)."""
    from sicl.config import changed_settings, load_config

    saved = out / "config.yaml"
    if not saved.is_file():
        raise SiclError(f"--resume: {saved} is missing, so the settings of the run to continue cannot be checked; "
                        f"restore it, or train into another output_dir to start over")
    try:
        before = load_config(TrainConfig, saved)
    except SiclError as e:
        raise SiclError(f"--resume: the settings of the run to continue cannot be checked ({e}); restore "
                        f"{saved.name}, or train into another output_dir to start over") from None
    diff = changed_settings(before, cfg, RESUME_SAFE_KEYS)
    if diff:
        raise SiclError(f"--resume with other settings than the run in {out} (" +
                        ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items()) +
                        "): resume with the same config, or train into another output_dir")


def _train(cfg: TrainConfig, out: Path, resume: bool, callbacks: Sequence[TrainerCallback]) -> Path:
    ckpt = resumable_checkpoint(out) if resume else None
    if ckpt is not None:
        _check_resume_config(cfg, out)
        step = finished_step(out)
        if step is not None and step >= cfg.max_steps:
            # Resuming would train no step and rewrite run.json and log_history.jsonl with an empty run's numbers.
            print(f"sicl train: {out} holds a finished run (step {step} of {cfg.max_steps}); nothing to resume, "
                  f"left as it is", file=sys.stderr)
            return out
    elif resume:
        finished = [p.name for p in run_artefacts(out) if p.name != "config.yaml"]
        if finished:  # starting over would put this run's config.yaml next to another run's adapter
            raise SiclError(f"--resume: {out} holds a run's results ({', '.join(finished[:3])}) but no checkpoint-N "
                            f"to continue from; train into another (or an empty) output_dir to start over")
    trainer = build_trainer(cfg, callbacks)
    undo = _StartUndo(out) if ckpt is None and trainer.is_world_process_zero() else None
    try:
        if undo is not None:
            dump_config(cfg, out / "config.yaml")  # written at the start, so a later --resume can be checked
        if resume and ckpt is None:
            print(f"sicl train: no checkpoint in {out}; starting from step 0", file=sys.stderr)
        check_stop(f"nothing trained yet in {out}")
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    except Exception as e:
        if undo is not None and not isinstance(e, Interrupted) and last_checkpoint(out) is None:
            undo()  # a failed start (bad audio, a prompt too long, a NaN loss) leaves no run behind
        raise
    if trainer.state.global_step < cfg.max_steps:
        saved = last_checkpoint(out)
        check_stop(f"saved {saved} at step {trainer.state.global_step}; continue with --resume")
        return out  # stopped early by a callback: the checkpoint is what --resume continues from
    trainer.save_model(str(out))  # PEFT model: adapter_config.json + adapter_model.safetensors
    if trainer.is_world_process_zero():
        for weights in out.glob("*.safetensors"):  # safetensors writes 0600: the adapter is shared like any file
            plain_mode(weights)
        dump_config(cfg, out / "config.yaml")
        with open(out / "log_history.jsonl", "w", encoding="utf-8") as fh:
            for row in trainer.state.log_history:
                fh.write(json.dumps(row) + "\n")
        info = {"global_step": trainer.state.global_step, "world_size": trainer.args.world_size,
                "parameters": trainable_parameters_by_group(trainer.model),
                "tower_clips_encoded": getattr(trainer.data_collator.cache, "encoded", None),
                "versions": versions()}
        (out / "run.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out
