"""Label-free quality evaluators for LLM calls: pure functions of text, no I/O, no engine.

* :mod:`.pii`: e-mail, phone, card (Luhn), IBAN (mod 97), IPv4/IPv6; find and redact;
* :mod:`.refusal`: declines and hand-offs to a human;
* :mod:`.toxicity`: a transparent word-list baseline;
* :mod:`.reference`: exact match and token F1 against a known answer (SQuAD);
* :mod:`.grounded`: sentence-level support of a response by its retrieved context;
* :mod:`.embeddings`: offline sentence embeddings (optional extra) with a lexical fallback;
* :mod:`.judge`: an LLM-as-judge client for OpenAI-compatible APIs (network I/O).
"""

from __future__ import annotations

from watchkeeper.evaluators.embeddings import Embedder, EmbeddingScorer, semantic_similarity
from watchkeeper.evaluators.grounded import (
    GroundednessResult,
    LexicalScorer,
    SentenceScorer,
    SentenceSupport,
    groundedness,
)
from watchkeeper.evaluators.judge import Judge, JudgeConfig, JudgeError, JudgeResult
from watchkeeper.evaluators.pii import PIIFinding, find_pii, redact
from watchkeeper.evaluators.reference import exact_match, token_f1
from watchkeeper.evaluators.refusal import RefusalResult, detect_refusal
from watchkeeper.evaluators.toxicity import ToxicityResult, score_toxicity

__all__ = [
    "Embedder",
    "EmbeddingScorer",
    "GroundednessResult",
    "Judge",
    "JudgeConfig",
    "JudgeError",
    "JudgeResult",
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
    "semantic_similarity",
    "token_f1",
]
