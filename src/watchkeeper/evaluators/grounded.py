"""Groundedness: how much of a response is supported by the context it was given.

The response is split into sentences; each sentence gets a support score in [0, 1] from a
pluggable :class:`SentenceScorer` and counts as supported at or above ``threshold``. The
response's score is the share of supported sentences; a hallucination is flagged when it falls
below ``min_supported`` (by default: any unsupported sentence).

The default :class:`LexicalScorer` is the offline fallback: a sentence's score is the share of
its content words (stop words removed, light suffix stemming) that appear in the context, and
a number in the sentence that the context never mentions makes the sentence unsupported. It
cannot see meaning: paraphrases with other words look unsupported, and swapped names or
negations with the same words look supported. An embedding scorer replaces it by implementing
``bind(context) -> score(sentence)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "STOP_WORDS",
    "GroundednessResult",
    "LexicalScorer",
    "SentenceScorer",
    "SentenceSupport",
    "content_tokens",
    "groundedness",
    "split_sentences",
    "stem",
]

_STOP_WORDS = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either else
    etc ever every few for from further get gets got had has have having he her here hers
    herself him himself his how however i if in into is it its itself just let like made make
    many may me might more most much must my myself no nor not now of off often on once one only
    or other our ours ourselves out over own per please quite rather really same see she should
    since so some such than that the their theirs them themselves then there these they this
    those though through thus to too under until up upon us use used very via was we well were
    what when where whether which while who whom whose why will with within without would yes
    yet you your yours yourself yourselves
    sure certainly course thanks thank hello hi hey okay ok glad happy great asking question
"""  # the last line: conversational filler that asserts nothing
STOP_WORDS = frozenset(_STOP_WORDS.split())

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=\s*[-*•\d])")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*%?|[^\W\d_]+(?:'[^\W\d_]+)?")
_ABBREVIATION_TEXT = "dr. mr. mrs. ms. prof. st. jr. sr. inc. ltd. co. corp. vs. e.g. i.e. etc. no."
_ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())
_SUFFIXES = ("ational", "ization", "fulness", "ousness", "iveness", "ements", "ations", "ation",
             "ments", "ement", "ingly", "ness", "ment", "ings", "ies", "ied", "ing", "ers", "est",
             "ed", "er", "ly", "es", "s")  # fmt: skip


def stem(word: str) -> str:
    """A light suffix stripper (keeps at least three letters): running, runs -> run."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                return base + "y"
            if len(base) >= 4 and base[-1] == base[-2] and base[-1] not in "aeiouls":
                base = base[:-1]  # running -> runn -> run
            return base
    return word


def _number(token: str) -> str:
    return (
        token.replace(",", "").rstrip("%").rstrip("0").rstrip(".")
        if "." in token
        else token.replace(",", "").rstrip("%")
    )


def content_tokens(text: str) -> list[str]:
    """Stemmed content words and normalised numbers (``1,200`` -> ``1200``) of ``text``."""
    out: list[str] = []
    for raw in _TOKEN.findall(text.lower().replace("\u2019", "'")):
        if raw[0].isdigit():
            out.append("#" + _number(raw))
            continue
        word = raw.split("'", 1)[0]
        if word in STOP_WORDS or len(word) < 2:
            continue
        out.append(stem(word))
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences (and list items) of ``text``, stripped, empty ones dropped.

    A full stop after a common abbreviation (Dr., e.g., Inc.) does not end a sentence.
    """
    out: list[str] = []
    for part in _SENTENCE_END.split(text):
        piece = part.strip() if part else ""
        if not piece:
            continue
        if out and out[-1].rsplit(None, 1)[-1].lower() in _ABBREVIATIONS:
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


class SentenceScorer(Protocol):
    """Scores sentences against one context: ``bind`` prepares the context once."""

    def bind(self, context: Sequence[str]) -> Callable[[str], float | None]:
        """A function giving a sentence's support in [0, 1], or None if it says nothing."""
        ...


def missing_number(tokens: Sequence[str], vocabulary: set[str]) -> bool:
    """Whether a sentence's tokens hold a number (``#``-prefixed) the context lacks: such a
    sentence is unsupported whatever else it shares with the context."""
    return any(t.startswith("#") and t not in vocabulary for t in tokens)


@dataclass(frozen=True)
class LexicalScorer:
    """Share of a sentence's content tokens found in the context (numbers must all be there)."""

    numbers_must_match: bool = True

    def bind(self, context: Sequence[str]) -> Callable[[str], float | None]:
        vocabulary = {tok for chunk in context for tok in content_tokens(chunk)}

        def score(sentence: str) -> float | None:
            tokens = content_tokens(sentence)
            if not tokens:
                return None
            if self.numbers_must_match and missing_number(tokens, vocabulary):
                return 0.0
            return sum(t in vocabulary for t in tokens) / len(tokens)

        return score


@dataclass(frozen=True)
class SentenceSupport:
    text: str
    score: float
    supported: bool


@dataclass(frozen=True)
class GroundednessResult:
    """Share of supported sentences, each sentence's support, and the hallucination flag."""

    score: float
    sentences: tuple[SentenceSupport, ...]
    hallucination: bool

    @property
    def unsupported(self) -> tuple[str, ...]:
        return tuple(s.text for s in self.sentences if not s.supported)


def groundedness(
    response: str,
    context: str | Sequence[str],
    *,
    threshold: float = 0.75,
    min_supported: float = 1.0,
    scorer: SentenceScorer | None = None,
) -> GroundednessResult:
    """Judge ``response`` against ``context`` (one text or retrieved chunks).

    Sentences without content words ("Sure!") are not judged. A response with nothing to judge
    scores 1.0 and is not a hallucination.
    """
    chunks = [context] if isinstance(context, str) else list(context)
    score_of = (scorer or LexicalScorer()).bind(chunks)
    judged: list[SentenceSupport] = []
    for sentence in split_sentences(response):
        value = score_of(sentence)
        if value is None:
            continue
        judged.append(SentenceSupport(sentence, value, value >= threshold))
    if not judged:
        return GroundednessResult(1.0, (), False)
    share = sum(s.supported for s in judged) / len(judged)
    return GroundednessResult(share, tuple(judged), share < min_supported)
