"""The auxiliary CTC head across warm starts: it is saved beside a final model and loaded by a run that starts
from it; ``ctc_warmup_steps`` keeps a new head's gradients away from the audio tower."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from sicl.models import tiny_omni
from sicl.pretrain import data as D
from sicl.pretrain.train import CTC_HEAD_FILE, CtcHead, attach_frames_hook, losses
from sicl.testing import tone
from tests.test_pretrain_faults import _args
from tests.test_tiny_omni import Item, build_tiny

ROOT = Path(__file__).resolve().parents[1]


def test_head_only_ctc_loss_does_not_reach_the_audio_tower():
    model, processor = build_tiny()
    tok = processor.tokenizer
    samples = [D.featurize(Item("asr", t, tone(s, freq=f)), tok)
               for t, s, f in (("one two three", 1.0, 200), ("four five", 0.8, 300))]
    batch = D.collate(samples, tok.pad_token_id)
    head = CtcHead(model.config.text_config.hidden_size)
    frames = attach_frames_hook(model)
    tower = [p for p in tiny_omni.audio_tower(model).parameters() if p.requires_grad]
    for head_only in (True, False):
        model.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        _, ctc = losses(model, head, batch, frames, True, head_only=head_only)
        assert ctc.item() > 0
        ctc.backward()
        assert head.proj.weight.grad is not None and head.proj.weight.grad.abs().sum() > 0
        reached = any(p.grad is not None and p.grad.abs().sum() > 0 for p in tower)
        assert reached is not head_only


def test_final_model_keeps_its_ctc_head_and_a_warm_start_loads_it(tmp_path):
    init = tmp_path / "init"
    build_tiny(init)
    first = subprocess.run(_args(tmp_path, init, max_steps=2, ctc_warmup_steps=1), cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    saved = tmp_path / "run" / "final" / CTC_HEAD_FILE
    assert saved.exists()
    from safetensors.torch import load_file

    weights = load_file(saved)
    assert set(weights) == {"proj.weight", "proj.bias"} and torch.isfinite(weights["proj.weight"]).all()
    from sicl.pretrain.checkpoint import export_model, unpack_export  # the GPU script's way back

    export_model(tmp_path / "run" / "final", tmp_path / "exp")
    assert (unpack_export(tmp_path / "exp", tmp_path / "unpacked") / CTC_HEAD_FILE).exists()
    again = tmp_path / "again"
    second = subprocess.run(_args(again, tmp_path / "run" / "final", max_steps=1), cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"CTC head from {saved}" in (again / "run" / "train.log").read_text()
    # a model saved without a head (the random init here) starts a new one, silently
    assert "CTC head from" not in (tmp_path / "run" / "train.log").read_text()
