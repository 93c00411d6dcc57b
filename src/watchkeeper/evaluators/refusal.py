"""Did the model decline, or hand the conversation to a human?

Transparent phrase lists, matched case-insensitively on word boundaries after typographic
apostrophes are made plain. A hand-off wins over a refusal when both appear ("I can't do that,
let me connect you with an agent" is a hand-off: the user is not left alone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["HANDOFF_PHRASES", "REFUSAL_PHRASES", "RefusalResult", "detect_refusal"]

RefusalKind = Literal["refusal", "handoff", "none"]

# Each entry is a regular expression over lower-case text; keep them short and literal.
REFUSAL_PHRASES: tuple[str, ...] = (
    r"i (?:can't|cannot|can not|won't|will not) (?:help|assist) (?:you )?with",
    r"i (?:can't|cannot|can not|won't|will not) (?:provide|share|do|comply|answer|fulfil|fulfill|discuss|give|create|generate|write)",
    r"i'm (?:sorry|afraid),? but i (?:can't|cannot|won't|am unable|'m unable|'m not able)",
    r"(?:i'm|i am) (?:unable|not able) to",
    r"(?:i'm|i am) not (?:allowed|permitted|authorized|authorised) to",
    r"as an ai(?: language model| assistant| model)?",
    r"as a (?:large )?language model",
    r"i (?:must|have to) (?:decline|refuse)",
    r"i (?:don't|do not) (?:feel comfortable|think i (?:can|should))",
    r"(?:against|violates?) (?:my|our) (?:guidelines|policies|policy|content policy)",
    r"i'm not (?:going|in a position) to",
    r"(?:that's|this is) not something i can (?:help|assist|do)",
)

HANDOFF_PHRASES: tuple[str, ...] = (
    r"(?:connect|transfer|put|route|forward) you (?:through )?(?:to|with) (?:a|an|one of our|our)(?: \w+)? (?:agent|human|representative|person|specialist|advisor|adviser|colleague|team member|operator|staff)s?",
    r"(?:a|an|one of our|our) (?:human|live|customer service|support)(?: \w+)? (?:agent|representative|person|specialist|advisor|adviser|colleague|team member|operator) (?:will|can|should)",
    r"(?:a|an) (?:member|representative) of (?:our|the) (?:support |service |customer )?team will",
    r"(?:speak|talk|chat) (?:to|with) (?:a|an) (?:human|real person|live agent|agent|representative)",
    r"escalat(?:e|ed|ing) (?:this|your (?:request|case|issue|ticket)) to",
    r"(?:a|an) (?:agent|human) will (?:be with you|get back to you|contact you|follow up|take over)",
    r"hand(?:ing)? (?:you|this|the conversation) (?:over )?to (?:a|an|our)(?: \w+)? (?:agent|human|representative|colleague)",
)

_REFUSAL = re.compile(r"\b(?:" + "|".join(REFUSAL_PHRASES) + r")\b")
_HANDOFF = re.compile(r"\b(?:" + "|".join(HANDOFF_PHRASES) + r")\b")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class RefusalResult:
    """``kind`` is refusal, handoff or none; ``phrase`` is the matched text (lower case)."""

    kind: RefusalKind
    phrase: str | None = None


def _normalise(text: str) -> str:
    return _SPACES.sub(" ", text.translate(_APOSTROPHES).lower())


def detect_refusal(text: str) -> RefusalResult:
    """Whether ``text`` hands off to a human, declines, or neither, and the phrase that says so."""
    plain = _normalise(text)
    m = _HANDOFF.search(plain)
    if m:
        return RefusalResult("handoff", m.group())
    m = _REFUSAL.search(plain)
    if m:
        return RefusalResult("refusal", m.group())
    return RefusalResult("none")
