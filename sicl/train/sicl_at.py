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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from sicl.config import dump_config
from sicl.data.audio import SAMPLE_RATE, load_audio
from sicl.data.manifest import Example, read_manifest
from sicl.errors import SiclError
from sicl.guard import check_stop, stop_requested
from sicl.models.backbone import IGNORE_INDEX, Backbone, load_backbone, sequence_losses
from sicl.models.chat_audio import positions
from sicl.models.lora import apply_lora, merged_lora_forward, trainable_parameters_by_group
from sicl.retrieval import retrieve
from sicl.train.episodes import EpisodeDataset, EpisodeSampler, TaskData
from sicl.train.sicl_at_config import TrainConfig

#: prompt tokens per example besides its audio (role headers, instruction): a length-grouping estimate
_TURN_OVERHEAD = 16


class TowerCache(dict):
    """example id -> frozen tower output (n_i, hidden) on CPU; :meth:`fill` encodes the missing clips."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.encoded = 0  # clips that went through the tower (for the benchmark and logs)
        self.seconds = 0.0  # time spent loading and encoding them

    def fill(self, examples: Sequence[Example]) -> None:
        todo = {ex.id: ex for ex in examples if ex.id not in self}
        if not todo:
            return
        t0 = time.perf_counter()
        wavs = [load_audio(ex.audio, max_seconds=self.backbone.max_audio_seconds) for ex in todo.values()]
        model = self.backbone.model
        was_training = model.training
        model.eval()  # the tower's output must not depend on train-mode dropout
        try:
            outs = self.backbone.encode_audio(wavs)
        finally:
            model.train(was_training)
        for key, out in zip(todo, outs, strict=True):
            self[key] = out.cpu()
        self.encoded += len(todo)
        self.seconds += time.perf_counter() - t0


class EpisodeCollator:
    """Episodes -> the dict :meth:`EpisodeTrainer.compute_loss` reads (right padding, query-answer labels)."""

    def __init__(self, backbone: Backbone, cache: TowerCache | None) -> None:
        self.backbone = backbone
        self.cache = cache

    def __call__(self, episodes: list[Any]) -> dict[str, Any]:
        if self.cache is not None:
            self.cache.fill([ex for ep in episodes for ex in ep.examples])
        b = self.backbone.render(episodes, with_labels=True, padding_side="right", tower_outputs=self.cache)
        out: dict[str, Any] = {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "labels": b.labels,
                               "episode_ids": [ep.id for ep in episodes]}
        if b.audio_embeds is not None:
            out["audio_embeds"] = b.audio_embeds
        else:
            out["input_features"], out["feature_attention_mask"] = b.input_features, b.feature_attention_mask
        return out


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
        self._last_layer = prunable_last_layer(backbone.model)
        # The loss below is a per-batch mean, so Trainer must divide it by the accumulation steps.
        self.model_accepts_loss_kwargs = False

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler:
        return torch.utils.data.SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        ids, am, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
        pos = positions(am)
        head = self.backbone.model.get_output_embeddings() if self.answer_logits_only else None
        right = _right_padded(am)
        # The pruned last layer assumes a causal-only mask, so right padding (what the collator makes).
        last = self._last_layer if self.answer_logits_only and right and "audio_embeds" in inputs else None
        with merged_lora_forward(self.backbone.model, enabled=self.merged_lora), \
                answer_positions_only(head, labels, last) as picked:
            if "audio_embeds" in inputs:
                # Embedding lookup and audio splice happen outside the (DDP-)wrapped call: both are frozen.
                embeds = self.backbone._embed_with_audio(ids, inputs["audio_embeds"])
                # Right padding: under the causal mask a real token never sees a pad, so the mask adds
                # nothing for the labelled positions; without it attention takes the (faster) causal path.
                mask = None if self.causal_only and right else am
                out = model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=False)
            else:
                out = model(input_ids=ids, attention_mask=am, position_ids=pos, use_cache=False,
                            input_features=inputs["input_features"],
                            feature_attention_mask=inputs["feature_attention_mask"])
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


def _right_padded(am: torch.Tensor) -> bool:
    """Every row is real tokens then padding (so a causal mask alone hides the padding)."""
    lengths = am.sum(1, keepdim=True)
    return bool((am == (torch.arange(am.shape[1], device=am.device) < lengths)).all())


class answer_positions_only:  # noqa: N801 - a context manager
    """While active, the LM head sees only the hidden states that predict a labelled token (the query
    answer: ~5% of an episode), so the vocabulary projection and log-softmax skip every other position
    (the big memory saving for a 152k vocabulary). :meth:`losses` then equals
    :func:`~sicl.models.backbone.sequence_losses` on full logits. ``head=None`` disables it.

    With ``last_layer`` (the LM's last decoder layer, see :func:`prunable_last_layer`), that layer too runs
    its query projection, attention output, output projection and MLP only at the union over the batch of
    those positions (keys and values still at every position): nothing after it looks at other positions."""

    def __init__(self, head: Any, labels: torch.Tensor, last_layer: Any = None) -> None:
        self.head, self.labels, self.layer = head, labels, last_layer
        self.rows = self.cols = None
        self.handles: list[Any] = []

    def __enter__(self) -> answer_positions_only:
        if self.head is None:
            return self
        self.rows, self.cols = (self.labels[:, 1:] != IGNORE_INDEX).nonzero(as_tuple=True)
        keep = pick = None
        if self.layer is not None and self.rows.numel():
            keep = torch.unique(self.cols)  # sorted union of positions over the batch
            pick = torch.searchsorted(keep, self.cols)
            layer, keep_ = self.layer, keep

            def pruned(*args: Any, **kwargs: Any) -> Any:
                return _pruned_layer_forward(layer, keep_.to(args[0].device), *args, **kwargs)

            layer.forward = pruned
        cols = pick if pick is not None else self.cols

        def hook(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            return (args[0][self.rows.to(args[0].device), cols.to(args[0].device)], *args[1:])

        self.handles.append(self.head.register_forward_pre_hook(hook))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        if self.layer is not None and "forward" in vars(self.layer):
            del self.layer.forward

    def losses(self, logits: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Per-episode mean cross-entropy (B,) from the picked logits (N, V)."""
        rows = self.rows.to(logits.device)
        targets = self.labels.to(logits.device)[rows, self.cols.to(logits.device) + 1]
        tok = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
        sums = torch.zeros(batch_size, dtype=tok.dtype, device=tok.device).index_add(0, rows, tok)
        counts = torch.bincount(rows, minlength=batch_size)
        return sums / counts.clamp(min=1)


_PRUNABLE_LAYERS = ("Qwen2_5OmniDecoderLayer", "Qwen2DecoderLayer")


def prunable_last_layer(model: Any) -> Any:
    """The language model's last decoder layer if :func:`_pruned_layer_forward` knows its structure
    (Qwen2 / Qwen2.5-Omni text layers, full attention, SDPA or eager), else ``None``."""
    last = None
    for name, m in model.named_modules():
        if type(m).__name__ in _PRUNABLE_LAYERS and "audio_tower" not in name and ".layers." in name:
            last = m
    if last is None:
        return None
    attn = getattr(last, "self_attn", None)
    cfg = getattr(attn, "config", None)
    ok = (attn is not None and getattr(attn, "sliding_window", None) is None
          and getattr(cfg, "_attn_implementation", None) in ("sdpa", "eager")
          and all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling"))
          and all(hasattr(last, n) for n in ("input_layernorm", "post_attention_layernorm", "mlp")))
    return last if ok else None


def _pruned_layer_forward(layer: Any, keep: torch.Tensor, hidden_states: torch.Tensor, *args: Any,
                          position_embeddings: Any = None, cache: Any = None, **kwargs: Any) -> torch.Tensor:
    """The decoder layer's forward for the query positions ``keep`` only: (B, len(keep), D). Keys/values
    at every position; causal attention (right-padded batches: a kept real position sees only real keys)."""
    if cache is not None or position_embeddings is None:
        raise SiclError("pruned last layer: needs rotary embeddings and no KV cache")
    rope = sys.modules[type(layer).__module__].apply_rotary_pos_emb
    attn = layer.self_attn
    b, n, _ = hidden_states.shape
    hd = attn.head_dim
    normed = layer.input_layernorm(hidden_states)
    q = attn.q_proj(normed[:, keep]).view(b, keep.numel(), -1, hd).transpose(1, 2)
    k = attn.k_proj(normed).view(b, n, -1, hd).transpose(1, 2)
    v = attn.v_proj(normed).view(b, n, -1, hd).transpose(1, 2)
    cos, sin = position_embeddings
    q = rope(q, q, cos[:, keep], sin[:, keep])[0]
    k = rope(k, k, cos, sin)[0]
    mask = torch.arange(n, device=keep.device)[None, :] <= keep[:, None]  # (Q, N): causal
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, scale=attn.scaling, enable_gqa=q.shape[1] != k.shape[1])
    out = attn.o_proj(out.transpose(1, 2).reshape(b, keep.numel(), -1))
    h = hidden_states[:, keep] + out
    return h + layer.mlp(layer.post_attention_layernorm(h))


def load_tasks(cfg: TrainConfig, k_max: int) -> list[TaskData]:
    """Read each task's manifests and retrieve ``k_max`` demos per query, once, before training."""
    if not cfg.tasks:
        raise SiclError("config has no tasks (tasks: [{name, queries, pool, weight}])")
    out = []
    for spec in cfg.tasks:
        queries = read_manifest(spec.queries)
        if k_max == 0:
            out.append(TaskData(spec.name, spec.weight, queries))
            continue
        if not spec.pool:
            raise SiclError(f"task {spec.name!r}: k={cfg.k} needs a demo pool (pool: MANIFEST)")
        pool = read_manifest(spec.pool)
        lists = retrieve(queries, pool, k=k_max, config=cfg.retrieval)
        ranked = {q.id: [pid for pid, _ in row] for q, row in zip(queries, lists, strict=True)}
        out.append(TaskData(spec.name, spec.weight, queries, pool, ranked))
    return out


def example_lengths(backbone: Backbone, tasks: Sequence[TaskData]) -> dict[str, int]:
    """Estimated prompt tokens per example: audio placeholders + answer/question text + turn overhead."""
    tok = backbone.processor.tokenizer
    lengths: dict[str, int] = {}
    for t in tasks:
        for ex in [*t.queries, *t.pool]:
            if ex.id in lengths:
                continue
            seconds = ex.duration if ex.duration else len(load_audio(ex.audio, max_seconds=None)) / SAMPLE_RATE
            text = " ".join(s for s in (ex.target, ex.question, *(ex.choices or [])) if s)
            lengths[ex.id] = (backbone.num_audio_tokens(int(seconds * SAMPLE_RATE))
                              + len(tok(text, add_special_tokens=False)["input_ids"]) + _TURN_OVERHEAD)
    return lengths


def _loggers(report_to: Sequence[str]) -> list[str]:
    """``report_to`` without TensorBoard when it is not installed (a warning, not a traceback at the end)."""
    import importlib.util

    out = list(report_to)
    if "tensorboard" in out and not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        print("sicl train: warning: tensorboard is not installed (pip install 'sicl[train]'); training logs go to "
              "log_history.jsonl only", file=sys.stderr)
        out.remove("tensorboard")
    return out or ["none"]


def training_arguments(cfg: TrainConfig) -> TrainingArguments:
    return TrainingArguments(
        output_dir=cfg.output_dir, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, data_seed=cfg.seed, save_strategy="steps",
        save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit, logging_steps=cfg.logging_steps,
        bf16=cfg.bf16, report_to=_loggers(cfg.report_to), use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,  # the collator holds the tower cache: it must live in the main process
        remove_unused_columns=False, ddp_find_unused_parameters=False,
        disable_tqdm=not sys.stderr.isatty(),
    )


def build_trainer(cfg: TrainConfig, callbacks: Sequence[TrainerCallback] = ()) -> EpisodeTrainer:
    k = list(cfg.k)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)  # LoRA initialisation
    tasks = load_tasks(cfg, max(k))  # bad manifests fail here, before a model is loaded
    backbone = load_backbone(cfg.model, dtype=cfg.dtype, preset=cfg.preset,
                             allow_download=cfg.allow_download)
    backbone.model = apply_lora(backbone.model, cfg.lora)
    lengths = example_lengths(backbone, tasks)
    sampler = EpisodeSampler(tasks, k, cfg.seed, cfg.shuffle_demos, cfg.max_prompt_tokens,
                             length_of=lambda ex: lengths[ex.id])
    args = training_arguments(cfg)
    world = args.world_size
    n = cfg.max_steps * cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world
    dataset = EpisodeDataset(sampler, n, cfg.per_device_train_batch_size, cfg.group_batches)
    cache = TowerCache(backbone) if cfg.cache_tower_outputs else None
    trainer = EpisodeTrainer(model=backbone.model, args=args, train_dataset=dataset,
                             data_collator=EpisodeCollator(backbone, cache),
                             callbacks=[*callbacks, StopOnSignal(), LogLines()],
                             backbone=backbone, merged_lora=cfg.merged_lora,
                             answer_logits_only=cfg.answer_logits_only)
    return trainer


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
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(out / "logs"))
    threads = torch.get_num_threads()
    try:
        return _train(cfg, out, resume, callbacks)
    finally:
        torch.set_num_threads(threads)  # `threads` applies to training only, not to what runs after it


def _train(cfg: TrainConfig, out: Path, resume: bool, callbacks: Sequence[TrainerCallback]) -> Path:
    ckpt = resumable_checkpoint(out) if resume else None
    trainer = build_trainer(cfg, callbacks)
    if resume and ckpt is None:
        print(f"sicl train: no checkpoint in {out}; starting from step 0", file=sys.stderr)
    check_stop(f"nothing trained yet in {out}")
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    if trainer.state.global_step < cfg.max_steps:
        saved = last_checkpoint(out)
        check_stop(f"saved {saved} at step {trainer.state.global_step}; continue with --resume")
        return out  # stopped early by a callback: the checkpoint is what --resume continues from
    trainer.save_model(str(out))  # PEFT model: adapter_config.json + adapter_model.safetensors
    if trainer.is_world_process_zero():
        dump_config(cfg, out / "config.yaml")
        with open(out / "log_history.jsonl", "w", encoding="utf-8") as fh:
            for row in trainer.state.log_history:
                fh.write(json.dumps(row) + "\n")
        info = {"global_step": trainer.state.global_step, "world_size": trainer.args.world_size,
                "parameters": trainable_parameters_by_group(trainer.model),
                "tower_clips_encoded": getattr(trainer.data_collator.cache, "encoded", None),
                "versions": _versions()}
        (out / "run.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out


def _versions() -> dict[str, str]:
    import peft
    import transformers

    import sicl

    return {"sicl": sicl.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__}
