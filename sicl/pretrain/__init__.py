"""tiny-omni pretraining: the project's own small model, trained from scratch on the synthetic world.

A separate project from the SICL-AT recipe (:mod:`sicl.train`): full-parameter training of a random tiny
Qwen2.5-Omni thinker with its own loop, data stream and held-out checks. It imports the models, the data and
the evaluation's scoring, never :mod:`sicl.train` (docs/architecture.md).

- :mod:`sicl.pretrain.train`: the config (``PretrainConfig``) and the trainer loop; ``sicl pretrain CONFIG
  [key=value ...]`` or ``python -m sicl.pretrain CONFIG [key=value ...]``;
- :mod:`sicl.pretrain.data`: featurised examples, chats and text batches streamed from synthesis workers;
- :mod:`sicl.pretrain.evaluate`: the held-out sets and probes, scored with :mod:`sicl.eval.metrics`;
  ``python -m sicl.pretrain.evaluate MODEL [--n 100]``;
- :mod:`sicl.pretrain.checkpoint`: resumable optimiser state, and export as a few small files.

See docs/tiny-omni.md.
"""
