"""Training throughput: sicl's SICL-AT trainer vs a naive loop, same episodes, same batch size, same run.

    python bench/train_throughput.py [--quick] [--world runs/world-small] [--model tiny-omni] [--k 3]

Naive loop (what a first implementation does): per batch, read every clip from disk, call the model's
processor on the chat texts + audio (features padded to 30 s, placeholders expanded by the processor),
forward through the whole thinker (audio tower included), backward, AdamW step; episodes in sampling
order. sicl: ``sicl.train.sicl_at.build_trainer`` + ``Trainer.train`` (tower output cached per clip,
features at real length, length-grouped batches, the exact fast loss path of ``EpisodeTrainer``); its
time includes filling the cache. Both sides train the same PEFT model with the demo configs' LoRA
settings and torch thread count (``--lora-dropout``, ``--threads`` override them for both).

Prints episodes/s for both (median over ``--repeats`` timed passes) and a last line
``speedup_vs_naive X``. Without a world on disk, tone clips are generated; without tiny-omni weights, a
random model of the same size is used (throughput does not depend on the weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _model(name: str, tmp: Path) -> str:
    from sicl.models.zoo import resolve_model

    try:
        path = resolve_model(name)
        if any(path.glob("*.safetensors")):
            return str(path)
    except Exception:  # noqa: BLE001 - any failure: fall back to a random model of the same size
        pass
    from sicl.models.tiny_omni import build_random_tiny_omni

    print(f"[bench] {name}: no weights here, using a random tiny-omni of the default size", file=sys.stderr)
    build_random_tiny_omni(tmp / "model")
    return str(tmp / "model")


def _tasks(world: Path, tmp: Path) -> str:
    if (world / "adult" / "train.jsonl").is_file():
        q, p = world / "adult" / "train.jsonl", world / "adult" / "pool.jsonl"
    else:
        from tests.train_fixtures import write_split

        print(f"[bench] {world} not found: using generated tone clips", file=sys.stderr)
        q, p = write_split(tmp, "q", 40), write_split(tmp, "p", 60, freq0=400.0)
    return f"[{{name: asr, queries: '{q}', pool: '{p}'}}]"


def naive_steps(trainer, episodes, batch_size: int) -> float:
    """Seconds for a naive pass over ``episodes``; returns wall time."""
    from sicl.data.audio import load_audio
    from sicl.models.backbone import sequence_losses

    bb = trainer.backbone
    model = trainer.model
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    t0 = time.perf_counter()
    for i in range(0, len(episodes), batch_size):
        eps = episodes[i:i + batch_size]
        texts = [bb.prompt_text(ep, with_labels=True) for ep in eps]
        wavs = [load_audio(ex.audio) for ep in eps for ex in ep.examples]
        enc = bb.processor(text=texts, audio=wavs, return_tensors="pt", padding=True)
        ids, am = enc["input_ids"], enc["attention_mask"]
        labels = torch.stack([torch.tensor(bb._labels(row.tolist(), ep)) for row, ep in zip(ids, eps, strict=True)])
        labels = labels.masked_fill(am == 0, -100)
        out = model(input_ids=ids, attention_mask=am, input_features=enc["input_features"],
                    feature_attention_mask=enc["feature_attention_mask"], use_cache=False)
        loss = sequence_losses(out.logits, labels).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 steps, 1 repeat (about a minute)")
    ap.add_argument("--world", type=Path, default=ROOT / "runs" / "world-small", help="world folder (adult/ ASR)")
    ap.add_argument("--model", default="tiny-omni", help="model name or folder")
    ap.add_argument("--k", type=int, default=3, help="demonstrations per episode")
    ap.add_argument("--batch-size", type=int, default=4, help="episodes per step")
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps per timed pass")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes per method (median reported)")
    ap.add_argument("--lora-dropout", type=float, default=None,
                    help="LoRA dropout for both sides (default: the demo configs' value)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for both sides (default: the demo configs' `threads`, else torch's)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 8, 1
    torch.manual_seed(0)
    from sicl.config import load_config
    from sicl.train.sicl_at import build_trainer
    from sicl.train.sicl_at_config import TrainConfig

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        model, tasks = _model(args.model, tmp), _tasks(args.world, tmp)
        rates: dict[str, list[float]] = {"naive": [], "sicl": []}
        cpu: dict[str, list[float]] = {"naive": [], "sicl": []}
        dropout = args.lora_dropout
        if dropout is None:  # the demo's LoRA settings, for both sides (the naive loop trains the same model)
            dropout = load_config(TrainConfig, ROOT / "configs" / "demo" / "sicl-at1.yaml").lora.dropout
        threads = args.threads or load_config(TrainConfig, ROOT / "configs" / "demo" / "sicl-at1.yaml").threads
        if threads:
            torch.set_num_threads(threads)
        n = args.steps * args.batch_size
        for rep in range(args.repeats):
            cfg = load_config(TrainConfig, None, [
                f"model={model}", f"output_dir={tmp / f'run{rep}'}", f"tasks={tasks}", f"k={args.k}",
                f"max_steps={args.steps}", f"per_device_train_batch_size={args.batch_size}", "report_to=none",
                "save_steps=100000", "logging_steps=100000", f"seed={rep}", "retrieval.retriever=random",
                f"lora.dropout={dropout}"])
            trainer = build_trainer(cfg)  # a fresh cache each repeat: its fill is part of sicl's time
            episodes = [trainer.train_dataset.sampler.episode(i) for i in range(n)]
            c0 = time.process_time()
            t_naive = naive_steps(trainer, episodes, args.batch_size)
            c_naive = time.process_time() - c0
            t0, c0 = time.perf_counter(), time.process_time()
            trainer.train()
            t_sicl, c_sicl = time.perf_counter() - t0, time.process_time() - c0
            cpu["naive"].append(c_naive / args.steps)
            cpu["sicl"].append(c_sicl / args.steps)
            rates["naive"].append(n / t_naive)
            rates["sicl"].append(n / t_sicl)
            cache = trainer.data_collator.cache
            print(f"[bench] repeat {rep}: naive {n / t_naive:.2f} ep/s ({t_naive / args.steps:.2f} s/step), "
                  f"sicl {n / t_sicl:.2f} ep/s ({t_sicl / args.steps:.2f} s/step, of which tower-cache fill "
                  f"{cache.seconds / args.steps:.2f}: {cache.encoded} clips encoded for {n * (args.k + 1)} uses); "
                  f"CPU s/step naive {c_naive / args.steps:.2f}, sicl {c_sicl / args.steps:.2f}")
        naive, sicl = statistics.median(rates["naive"]), statistics.median(rates["sicl"])
        print(f"k={args.k} batch={args.batch_size} steps={args.steps} repeats={args.repeats} "
              f"threads={torch.get_num_threads()} lora_dropout={dropout}")
        print(f"cpu_s_per_step naive {statistics.median(cpu['naive']):.2f} sicl {statistics.median(cpu['sicl']):.2f} "
              f"(ratio {statistics.median(cpu['naive']) / statistics.median(cpu['sicl']):.2f}; process CPU time, "
              "less sensitive to other load than wall time)")
        print(f"naive_episodes_per_s {naive:.2f}")
        print(f"sicl_episodes_per_s {sicl:.2f}")
        print(f"speedup_vs_naive {sicl / naive:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
