"""Tiny data for the training tests: a random tiny-omni and two small ASR manifests (queries, pool)."""

from __future__ import annotations

from pathlib import Path

from sicl.data.manifest import Example, write_manifest
from sicl.testing import write_tone

TINY = dict(audio_layers=1, audio_dim=64, audio_heads=2, audio_ffn=128, text_layers=2, text_dim=64,
            text_heads=2, text_kv_heads=1, text_ffn=128, vocab_size=600)
WORDS = ["alpha", "beta", "gamma", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def write_split(folder: Path, name: str, n: int, task: str = "asr", freq0: float = 150.0) -> Path:
    """``n`` short tone clips with distinct ids (``{name}-{i}``), audio and two-word targets."""
    examples = []
    for i in range(n):
        seconds = 0.3 + 0.1 * (i % 4)  # varied lengths, so length grouping has something to do
        audio = write_tone(folder / name / f"{i}.wav", seconds=seconds, freq=freq0 + 13 * i, seed=i)
        examples.append(Example(id=f"{name}-{i}", audio=str(audio.resolve()), task=task,
                                target=f"{WORDS[i % 10]} {WORDS[(i + 3) % 10]}", duration=seconds))
    return write_manifest(folder / f"{name}.jsonl", examples)


def make_train_data(folder: Path) -> dict[str, Path]:
    from sicl.models.tiny_omni import build_random_tiny_omni

    build_random_tiny_omni(folder / "model", texts=[" ".join(WORDS)] * 4, **TINY)
    return {"model": folder / "model", "queries": write_split(folder, "q", 6),
            "pool": write_split(folder, "p", 8, freq0=400.0)}


def overrides(data: dict[str, Path], out: Path, **extra: object) -> list[str]:
    """key=value overrides that point a shipped config at the tiny data."""
    tasks = f"[{{name: asr, queries: '{data['queries']}', pool: '{data['pool']}'}}]"
    base = {"model": data["model"], "output_dir": out, "tasks": tasks, "retrieval.retriever": "random",
            "report_to": "none", "logging_steps": 1, "per_device_train_batch_size": 2, "k": 2}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def assert_fast_path_exact(trainer, inputs) -> None:
    """The trainer's fast path (merged LoRA, answer-only logits, pruned last layer, causal-only mask) gives the
    plain path's loss (1e-5) and LoRA gradients (1e-4 relative) on ``inputs``."""
    import torch

    results = []
    for fast in (False, True):
        trainer.merged_lora = trainer.answer_logits_only = trainer.causal_only = fast
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters()
                                        if p.requires_grad}))
    (slow_loss, slow_g), (fast_loss, fast_g) = results
    torch.testing.assert_close(fast_loss, slow_loss, rtol=0, atol=1e-5)
    assert slow_g.keys() == fast_g.keys()
    for n in slow_g:
        torch.testing.assert_close(fast_g[n], slow_g[n], rtol=1e-4, atol=1e-6)
