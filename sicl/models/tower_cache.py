"""Each clip's frozen audio representation, computed once: the cache training and evaluation share.

A backbone's audio front end (a tower, or a codec's codes) never trains, so a clip's output never changes;
:class:`TowerCache` keeps it by example id and :meth:`TowerCache.fill` encodes only what is missing, through
the protocol's :meth:`~sicl.models.backbone.Backbone.encode_audio`. The dict is what
:meth:`~sicl.models.backbone.Backbone.render` takes as ``tower_outputs``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sicl.data.audio import load_audio
from sicl.data.manifest import Example
from sicl.models.backbone import Backbone


class TowerCache(dict):
    """example id -> frozen tower output (n_i, hidden) or codes, on CPU. ``backbone`` may be set later
    (a cache shared by several evaluations of one base model is re-pointed at each live backbone)."""

    def __init__(self, backbone: Backbone | None) -> None:
        super().__init__()
        self.backbone = backbone
        self.encoded = 0  # clips that went through the front end (for the benchmark and logs)
        self.seconds = 0.0  # time spent loading and encoding them
        #: example id -> audio path seen, so one id never names two clips in a shared cache
        self.audio_paths: dict[str, str] = {}

    def fill(self, examples: Sequence[Example]) -> None:
        """Encode the examples not yet cached, as one group (in the given order)."""
        todo = {ex.id: ex for ex in examples if ex.id not in self}
        if not todo:
            return
        if self.backbone is None:
            raise RuntimeError("TowerCache.fill: no backbone set")
        t0 = time.perf_counter()
        bb = self.backbone
        wavs = [load_audio(ex.audio, max_seconds=bb.max_audio_seconds) for ex in todo.values()]
        model: Any = bb.model
        was_training = model.training
        model.eval()  # the tower's output must not depend on train-mode dropout
        try:
            outs = bb.encode_audio(wavs, names=[f"{ex.id} ({ex.audio})" for ex in todo.values()])
        finally:
            model.train(was_training)
        for key, out in zip(todo, outs, strict=True):
            self[key] = out.cpu()
        self.encoded += len(todo)
        self.seconds += time.perf_counter() - t0
