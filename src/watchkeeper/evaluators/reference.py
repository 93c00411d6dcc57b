"""Correctness against a known answer: SQuAD's exact match and token F1.

Normalisation as in the SQuAD v2 evaluation script: lower case, punctuation removed, the
articles a/an/the removed, whitespace collapsed. When either side normalises to nothing,
F1 is 1.0 only if both do.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

__all__ = ["best_exact_match", "best_token_f1", "exact_match", "normalize_answer", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD)."""
    lowered = text.lower()
    no_punct = "".join(ch for ch in lowered if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", no_punct).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when both normalise to the same string, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall after normalisation (SQuAD)."""
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(reference).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred)
    recall = common / len(gold)
    return 2 * precision * recall / (precision + recall)


def best_exact_match(prediction: str, references: Iterable[str]) -> float:
    """Exact match against the closest of several acceptable answers."""
    return max((exact_match(prediction, r) for r in references), default=0.0)


def best_token_f1(prediction: str, references: Iterable[str]) -> float:
    """Token F1 against the closest of several acceptable answers."""
    return max((token_f1(prediction, r) for r in references), default=0.0)
