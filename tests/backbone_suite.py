"""The checks every backbone family must pass (issue 4's "Done when"), written once and run by
``test_backbone_omni.py`` and ``test_backbone_qwen2_audio.py`` on tiny random models saved to disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sicl.data.audio import load_audio
from sicl.data.manifest import Example
from sicl.episodes import prompts
from sicl.episodes.episode import Episode
from sicl.errors import AudioError
from sicl.models.backbone import sequence_losses
from sicl.models.lora import LoraSettings, apply_lora, save_adapter
from sicl.models.registry import load_backbone
from sicl.testing import tone, write_tone

WORDS = ["the quick brown fox", "she sells sea shells", "one two three", "lazy dog", "call stella",
         "bring these things"]


def make_examples(folder: Path) -> list[Example]:
    """Six clips of different lengths: four ASR, one ST, one SQA with choices."""
    exs = []
    for i, text in enumerate(WORDS):
        path = write_tone(folder / f"clip{i}.wav", seconds=0.4 + 0.35 * i, freq=150.0 + 30 * i, seed=i)
        exs.append(Example(id=f"c{i}", audio=str(path), task="asr", target=text, duration=0.4 + 0.35 * i))
    exs[4].task, exs[4].target_lang, exs[4].target = "st", "de", "ruf stella an"
    exs[5].task, exs[5].question = "sqa", "What does the speaker want?"
    exs[5].choices, exs[5].target = ["things", "a dog", "nothing"], "things"
    return exs


def mixed_episodes(exs: list[Example]) -> list[Episode]:
    """Batches mixing k = 0..3 and tasks."""
    return [Episode(exs[3], exs[:3]), Episode(exs[0], []), Episode(exs[4], [exs[1]]),
            Episode(exs[5], [exs[2], exs[0]])]


class BackboneSuite:
    """Subclass with a ``model_dir`` fixture (a saved tiny model) and an ``examples`` fixture."""

    @pytest.fixture(scope="class")
    def bb(self, model_dir):
        return load_backbone(model_dir)

    @pytest.mark.parametrize("side", ["left", "right"])
    def test_labels_are_exactly_query_answer_plus_end(self, bb, examples, side):
        eps = mixed_episodes(examples)
        batch = bb.render(eps, padding_side=side)
        for row, ep in enumerate(eps):
            lab = batch.labels[row]
            kept = lab[lab != -100].tolist()
            want = prompts.answer_text(ep.query.target, ep.query.task, bb.preset) + "<|im_end|>"
            assert bb.tokenizer.decode(kept) == want
            # the kept positions are one contiguous span of real tokens
            pos = (lab != -100).nonzero().flatten()
            assert pos.max() - pos.min() + 1 == len(kept)
            assert batch.attention_mask[row, pos].all()
            assert torch.equal(batch.input_ids[row, pos], lab[pos])

    def test_mixed_k_batch_equals_each_alone(self, bb, examples):
        assert_batch_equals_each_alone(bb, mixed_episodes(examples))

    def test_placeholder_counts_follow_clip_length(self, bb, examples):
        eps = [Episode(examples[5], examples[:5])]
        batch = bb.render(eps, with_labels=False)
        ids = batch.input_ids[0].tolist()
        bos = bb.tokenizer.convert_tokens_to_ids("<|audio_bos|>")
        eos = bb.tokenizer.convert_tokens_to_ids("<|audio_eos|>")
        spans = [ids.index(eos, s) - s - 1 for s in (i for i, t in enumerate(ids) if t == bos)]
        assert spans == batch.audio_tokens
        for n, ex in zip(spans, eps[0].examples, strict=True):
            assert n == bb.num_audio_tokens(round(ex.duration * 16000))
            assert abs(n - 25 * ex.duration) <= 1.5
        assert bb.audio_tokens_per_second == 25

    def test_clip_over_30s_is_an_error(self, bb, examples, tmp_path):
        long_ex = Example(id="long", audio=str(write_tone(tmp_path / "long.wav", seconds=30.5)), task="asr",
                          target="x")
        with pytest.raises(AudioError, match="30"):
            bb.render([Episode(long_ex, [])])
        with pytest.raises(AudioError, match="30"):
            bb.render([Episode(examples[0], [])], wavs={"c0": tone(30.2)})
        with pytest.raises(AudioError):
            bb.encode_audio([tone(31.0)])

    def test_matches_the_official_processor(self, bb, examples):
        """Our rendering (features padded to the longest clip, our placeholder expansion) gives the same
        tokens and logits as the model's own processor (30 s padding)."""
        ep = mixed_episodes(examples)[0]
        batch = bb.render([ep])
        text = bb.tokenizer.apply_chat_template(bb.messages(ep, True), tokenize=False,
                                                chat_template=bb.chat_template)
        wavs = [load_audio(ex.audio) for ex in ep.examples]
        ref = bb.processor(text=[text], audio=wavs, return_tensors="pt", padding=True)
        assert torch.equal(ref["input_ids"], batch.input_ids)
        with torch.no_grad():
            plain = bb.model(**ref).logits
            ours = bb.forward(batch)
        assert torch.allclose(plain, ours, atol=1e-5, rtol=0)

    def test_cached_tower_outputs_equal_plain_forward(self, bb, examples):
        eps = mixed_episodes(examples)
        outputs = bb.encode_audio([load_audio(e.audio) for e in examples])
        cache = dict(zip([e.id for e in examples], outputs, strict=True))
        assert all(t.shape[0] == bb.num_audio_tokens(len(load_audio(e.audio))) for e, t in
                   zip(examples, cache.values(), strict=True))
        with torch.no_grad():
            for side in ("left", "right"):
                plain = bb.render(eps, padding_side=side)
                cached = bb.render(eps, padding_side=side, tower_outputs=cache)
                assert cached.input_features is None and len(cached.audio_embeds) == len(plain.audio_tokens)
                assert torch.equal(plain.input_ids, cached.input_ids)
                lp, lc = bb.forward(plain), bb.forward(cached)
                real = plain.attention_mask.bool()
                assert torch.allclose(lp[real], lc[real], atol=1e-5, rtol=0)
                assert torch.allclose(sequence_losses(lp, plain.labels), sequence_losses(lc, cached.labels),
                                      atol=1e-6)
        assert bb.generate(eps, max_new_tokens=4) == bb.generate(eps, max_new_tokens=4, tower_outputs=cache)

    def test_generate_returns_text_within_budget(self, bb, examples):
        eps = mixed_episodes(examples)
        budgets = {"asr": 3, "st": 5, "sqa": 2}
        out = bb.generate(eps, max_new_tokens=budgets)
        assert len(out) == len(eps) and all(isinstance(t, str) for t in out)
        rows = bb.generate_ids(eps, max_new_tokens=budgets)
        im_end = bb.tokenizer.convert_tokens_to_ids("<|im_end|>")
        for row, ep in zip(rows, eps, strict=True):
            assert len(row) <= budgets[ep.query.task] and im_end not in row
        # greedy and batch-independent: the same episode alone gives the same tokens
        assert bb.generate_ids([eps[2]], max_new_tokens=budgets) == [rows[2]]

    def test_adapter_roundtrip_gives_identical_greedy_output(self, model_dir, examples, tmp_path):
        eps = mixed_episodes(examples)
        bb = load_backbone(model_dir)
        bb.model = apply_lora(bb.model, LoraSettings())
        torch.manual_seed(1)
        with torch.no_grad():  # a fresh adapter is a no-op (B = 0); make it matter
            for name, p in bb.model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.5)
        bb.model.eval()
        before = bb.generate(eps, max_new_tokens=6)
        save_adapter(bb.model, tmp_path / "adapter")
        reloaded = load_backbone(model_dir, adapter=tmp_path / "adapter")
        assert reloaded.generate(eps, max_new_tokens=6) == before
        base = load_backbone(model_dir)
        with torch.no_grad():
            b = base.render(eps)
            assert not torch.allclose(base.forward(b), reloaded.forward(b))


def assert_batch_equals_each_alone(bb, eps) -> None:
    """Per-episode losses of a padded batch (left and right) equal each episode's loss alone."""
    with torch.no_grad():
        alone = torch.stack([bb.loss(bb.render([ep]))[0] for ep in eps])
        for side in ("left", "right"):
            batched = bb.loss(bb.render(eps, padding_side=side))
            assert torch.allclose(batched, alone, atol=1e-5, rtol=0), (side, batched, alone)
