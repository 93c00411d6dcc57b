"""Toxicity: a transparent word-list baseline, not a classifier.

Words of the text are matched whole (case-insensitive) against a short curated list
(``WORD_LIST`` below: profanity, insults, a few slurs) after a light
normalisation of leetspeak (``1d10t``, ``@ss``, ``$hit``) and of stretched letters
(``stuuupid``). The score is the share of the text's words that are flagged. It sees no context:
quotes, negation and threats in polite words pass; words on the list used innocently do not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["WORD_LIST", "ToxicityResult", "default_words", "score_toxicity"]

WORD_LIST = """
# Toxicity baseline word list.
# A BASELINE, NOT A CLASSIFIER: whole words only, no context, no sarcasm, no threats written
# without these words. One word per line (inflections listed explicitly); '#' starts a comment.
# Sources: common profanity and insults, plus a handful of widely listed slurs, kept short on
# purpose so every hit is explainable.
# --- profanity
fuck
fucking
fucked
fucker
fuckers
motherfucker
shit
shitty
bullshit
crap
crappy
piss
pissed
damn
goddamn
bastard
bastards
bitch
bitches
ass
asshole
assholes
arsehole
dick
dickhead
cunt
cunts
twat
wanker
prick
cock
douche
douchebag
# --- insults
idiot
idiots
idiotic
stupid
moron
morons
moronic
dumb
dumbass
imbecile
cretin
loser
losers
scum
scumbag
jerk
pathetic
worthless
useless
trash
garbage
clown
# --- slurs and sexual insults (a few widely listed ones; far from complete)
retard
retarded
whore
slut
faggot
fag
nigger
tranny
spic
kike
chink
"""

_WORD = re.compile(r"[\w@$]+")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_STRETCH = re.compile(r"(.)\1{2,}")


@dataclass(frozen=True)
class ToxicityResult:
    """Share of flagged words, the flagged words (normalised, in order) and the word count."""

    score: float
    flagged: tuple[str, ...]
    words: int


@lru_cache(maxsize=1)
def default_words() -> frozenset[str]:
    """The shipped word list."""
    return frozenset(
        line.strip().lower()
        for line in WORD_LIST.splitlines()
        if line.strip() and not line.startswith("#")
    )


_LEETISH = frozenset("0134579@$")


def _normalise(token: str) -> str:
    """Leetspeak-lite on a lower-case token that has a letter (plain numbers stay as they are)."""
    if _LEETISH.isdisjoint(token) or not any(ch.isalpha() for ch in token):
        return token
    return token.translate(_LEET)


def score_toxicity(text: str, words: Iterable[str] | None = None) -> ToxicityResult:
    """Score ``text`` against ``words`` (default: the shipped list)."""
    vocabulary = default_words() if words is None else frozenset(w.lower() for w in words)
    tokens = _WORD.findall(text.lower())
    flagged: list[str] = []
    for token in tokens:
        norm = _normalise(token).strip("_")
        if norm in vocabulary:
            flagged.append(norm)
            continue
        if _STRETCH.search(norm):
            squeezed = _STRETCH.sub(r"\1", norm)  # stuuupid -> stupid; shiiit -> shit
            if squeezed in vocabulary:
                flagged.append(squeezed)
    score = len(flagged) / len(tokens) if tokens else 0.0
    return ToxicityResult(score, tuple(flagged), len(tokens))
