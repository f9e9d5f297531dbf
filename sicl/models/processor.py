"""A Qwen2.5-Omni processor without the image/video half.

``Qwen2_5OmniProcessor`` insists on an image and a video processor, and those import torchvision, which is
broken on many CPU-only installs. Audio LLM work here only needs the Whisper feature extractor and the
tokenizer, so this subclass declares just those two. Qwen's own ``__call__`` (placeholder expansion),
``apply_chat_template`` and save/load are inherited unchanged, so the class also loads real Qwen2.5-Omni
checkpoints (their image/video processor files are simply ignored).

Also here: :func:`feature_extractor`, the exact Whisper front end Qwen2.5-Omni uses, and
:func:`num_audio_tokens`, the placeholder count for ``L`` valid mel frames.
"""

from __future__ import annotations

from typing import Any

from transformers import Qwen2_5OmniProcessor, WhisperFeatureExtractor

SAMPLE_RATE = 16_000
HOP_LENGTH = 160  # 10 ms mel frames -> 100 frames per second before the audio tower's 4x reduction


def feature_extractor() -> WhisperFeatureExtractor:
    """Qwen2.5-Omni's front end: 128 log-mel bins, 25 ms window, 10 ms hop, 16 kHz."""
    return WhisperFeatureExtractor(feature_size=128, sampling_rate=SAMPLE_RATE, hop_length=HOP_LENGTH,
                                   chunk_length=30, n_fft=400, padding_value=0.0, return_attention_mask=True)


def num_audio_tokens(mel_frames: int) -> int:
    """Audio placeholders for ``mel_frames`` valid mel frames: conv stride 2, then 2x average pooling
    (about 25 per second of audio)."""
    after_conv = (mel_frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


class SiclOmniProcessor(Qwen2_5OmniProcessor):
    """``Qwen2_5OmniProcessor`` with only ``feature_extractor`` + ``tokenizer`` (no torchvision)."""

    # transformers collects sub-processors from the ``__init__`` signature (5.x) or from ``attributes``
    # (older releases); both name only the two parts we have.
    attributes = ["feature_extractor", "tokenizer"]
    tokenizer_class = ("Qwen2Tokenizer", "Qwen2TokenizerFast")

    def __init__(self, feature_extractor: Any = None, tokenizer: Any = None, chat_template: str | None = None,
                 **kwargs: Any) -> None:
        # Real checkpoints pass image/video processors when loaded through the parent: drop them.
        kwargs.pop("image_processor", None)
        kwargs.pop("video_processor", None)
        # Skip Qwen2_5OmniProcessor.__init__ (it passes image/video positionally) and run the generic
        # ProcessorMixin one, which takes the sub-processors named in *our* signature.
        super(Qwen2_5OmniProcessor, self).__init__(feature_extractor, tokenizer, chat_template=chat_template)
        tok = self.tokenizer
        for name in ("image_token", "audio_token", "video_token", "image_token_id", "audio_token_id",
                     "video_token_id", "vision_bos_token", "vision_eos_token", "audio_bos_token",
                     "audio_eos_token"):
            setattr(self, name, getattr(tok, name, None))

    # Some transformers releases (5.16-5.19) read ``image_processor.merge_size`` / ``video_processor.merge_size``
    # in ``__call__`` even for audio-only input; a read-only stand-in with Qwen's merge size keeps them working.
    # Properties, not instance attributes, so save/load and ``to_dict`` never see them.
    @property
    def image_processor(self) -> Any:
        return _NoVision()

    @property
    def video_processor(self) -> Any:
        return _NoVision()

    def __call__(self, text: Any = None, images: Any = None, videos: Any = None, audio: Any = None,
                 **kwargs: Any) -> Any:
        if images is not None or videos is not None:
            raise ValueError("SiclOmniProcessor handles text and audio only (no image/video processor)")
        return super().__call__(text=text, audio=audio, **kwargs)


class _NoVision:
    """What ``Qwen2_5OmniProcessor.__call__`` reads from its vision processors when no image or video is given."""

    merge_size = 2  # Qwen2.5-Omni's spatial merge size (only used to count image/video placeholders)
    temporal_patch_size = 2


def log_mel(wav: Any, extractor: WhisperFeatureExtractor | None = None) -> Any:
    """Log-mel features of one clip at its real length, ``(128, L)`` float32 numpy.

    Equal to the valid frames the processor produces after padding to 30 s (``L = ceil(samples / 160)``,
    the same count its attention mask gives) but about 20x cheaper: only a few zero samples are appended, so
    the last frames see the same zeros the 30 s padding would give them."""
    import numpy as np

    fe = extractor or feature_extractor()
    wav = np.asarray(wav, dtype=np.float32)
    n_frames = -(-len(wav) // HOP_LENGTH)
    padded = np.concatenate([wav, np.zeros(fe.n_fft + HOP_LENGTH, dtype=np.float32)])
    feats = fe(padded, sampling_rate=SAMPLE_RATE, padding="longest", return_attention_mask=False,
               return_tensors="np")["input_features"][0]
    return np.ascontiguousarray(feats[:, :n_frames])
