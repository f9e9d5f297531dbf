"""sicl: speech in-context learning adaptation training (SICL-AT) for auditory LLMs."""

__version__ = "0.1.0"
