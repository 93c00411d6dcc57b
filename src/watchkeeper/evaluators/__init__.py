"""Label-free quality evaluators for LLM calls: pure functions of text, no I/O, no engine.

* :mod:`.pii`: e-mail, phone, card (Luhn), IBAN (mod 97), IPv4/IPv6; find and redact;
* :mod:`.refusal`: declines and hand-offs to a human;
* :mod:`.toxicity`: a transparent word-list baseline;
* :mod:`.reference`: exact match and token F1 against a known answer (SQuAD);
* :mod:`.grounded`: sentence-level support of a response by its retrieved context.
"""

from __future__ import annotations

from watchkeeper.evaluators.grounded import (
    GroundednessResult,
    LexicalScorer,
    SentenceScorer,
    SentenceSupport,
    groundedness,
)
from watchkeeper.evaluators.pii import PIIFinding, find_pii, redact
from watchkeeper.evaluators.reference import exact_match, token_f1
from watchkeeper.evaluators.refusal import RefusalResult, detect_refusal
from watchkeeper.evaluators.toxicity import ToxicityResult, score_toxicity

__all__ = [
    "GroundednessResult",
    "LexicalScorer",
    "PIIFinding",
    "RefusalResult",
    "SentenceScorer",
    "SentenceSupport",
    "ToxicityResult",
    "detect_refusal",
    "exact_match",
    "find_pii",
    "groundedness",
    "redact",
    "score_toxicity",
    "token_f1",
]
