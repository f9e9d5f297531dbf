"""The embedded synthetic speech world (espeak-ng voices, template text, a constructed target language).

Entry points: :func:`sicl.data.synth.items.generate_items` (in-memory items for pretraining),
:func:`sicl.data.synth.text.tokenizer_corpus` (tokenizer text), and ``sicl synth`` (writes the world).
"""
