"""The settings file's ``evaluators:`` section: which evaluators run on ingested LLM calls,
on what share of them, within what budget, and the optional LLM judge.

```yaml
evaluators:
  enabled: [groundedness, pii, refusal, toxicity]   # label-free evaluators (default: all four)
  reference: [exact_match, token_f1, semantic_similarity]  # when an actual answer arrives
  sample: 1.0            # share of calls evaluated (deterministic by event id)
  max_per_minute: 6000   # calls evaluated per minute at most; the rest is skipped and counted
  delay_seconds: 5       # a call is evaluated this long after it arrived
  interval_seconds: 2    # how often the runner looks for new calls (0: never on its own)
  redact_pii: false
  embeddings: auto       # auto|on|off
  judge: {url: ..., model: ..., rubrics: [...], sample: 0.1, max_per_minute: 30}
```

Every problem is reported with its key (``evaluators.sample: must be a number in [0, 1],
got 2``), like the other sections.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AUTO_EVALUATORS",
    "EVALUATORS",
    "REFERENCE_EVALUATORS",
    "RUBRICS",
    "EvaluatorConfigError",
    "EvaluatorSettings",
    "JudgeSettings",
]

AUTO_EVALUATORS = ("groundedness", "pii", "refusal", "toxicity")
REFERENCE_EVALUATORS = ("exact_match", "token_f1", "semantic_similarity")
RUBRICS = ("groundedness", "relevance", "correctness")
# Every evaluator name an evaluation may carry (the judge's are judge_<rubric>).
EVALUATORS = (
    *AUTO_EVALUATORS,
    *REFERENCE_EVALUATORS,
    *(f"judge_{r}" for r in RUBRICS),
    "human",
)
EMBEDDINGS = ("auto", "on", "off")


class EvaluatorConfigError(ValueError):
    """The ``evaluators:`` section is invalid; ``problems`` lists each, with its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))

    def lines(self) -> list[str]:
        return list(self.problems)


@dataclass(frozen=True)
class JudgeSettings:
    """An OpenAI-compatible LLM judge (``watchkeeper.evaluators.judge``), run on a share of
    the evaluated calls within its own budget."""

    url: str
    model: str
    api_key_env: str | None = None
    api_key: str | None = None
    rubrics: tuple[str, ...] = RUBRICS
    sample: float = 0.1
    max_per_minute: int = 30
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class EvaluatorSettings:
    """What the background runner does (defaults: the four label-free evaluators on every
    call, reference correctness when actual answers arrive, no judge)."""

    enabled: tuple[str, ...] = AUTO_EVALUATORS
    reference: tuple[str, ...] = REFERENCE_EVALUATORS
    sample: float = 1.0
    max_per_minute: int = 6000
    delay_seconds: float = 5.0
    interval_seconds: float = 2.0
    redact_pii: bool = False
    embeddings: str = "auto"
    judge: JudgeSettings | None = None
    batch_size: int = 200  # calls read and written per chunk

    @classmethod
    def from_config(cls, doc: Any) -> EvaluatorSettings:
        """Parse the section (None: the defaults); raises EvaluatorConfigError."""
        if doc is None:
            return cls()
        problems: list[str] = []
        if not isinstance(doc, Mapping):
            raise EvaluatorConfigError(["evaluators: must be a mapping"])
        known = {
            "enabled",
            "reference",
            "sample",
            "max_per_minute",
            "delay_seconds",
            "interval_seconds",
            "redact_pii",
            "embeddings",
            "judge",
            "batch_size",
        }
        unknown = sorted(set(doc) - known)
        if unknown:
            problems.append(f"evaluators: unknown key(s) {unknown}; known: {sorted(known)}")
        enabled = _names(doc, "enabled", AUTO_EVALUATORS, AUTO_EVALUATORS, problems)
        reference = _names(doc, "reference", REFERENCE_EVALUATORS, REFERENCE_EVALUATORS, problems)
        sample = _share(doc, "sample", 1.0, "evaluators", problems)
        per_minute = _count(doc, "max_per_minute", 6000, "evaluators", problems)
        delay = _seconds(doc, "delay_seconds", 5.0, "evaluators", problems)
        interval = _seconds(doc, "interval_seconds", 2.0, "evaluators", problems)
        batch = _count(doc, "batch_size", 200, "evaluators", problems, minimum=1)
        redact = doc.get("redact_pii", False)
        if not isinstance(redact, bool):
            problems.append(f"evaluators.redact_pii: must be true or false, got {redact!r}")
            redact = False
        embeddings = doc.get("embeddings", "auto")
        if embeddings is True or embeddings is False:  # YAML's on/off are booleans
            embeddings = "on" if embeddings else "off"
        if embeddings not in EMBEDDINGS:
            problems.append(
                f"evaluators.embeddings: must be one of {list(EMBEDDINGS)}, got {embeddings!r}"
            )
            embeddings = "auto"
        judge = _judge(doc.get("judge"), problems)
        if problems:
            raise EvaluatorConfigError(problems)
        return cls(
            enabled=enabled,
            reference=reference,
            sample=sample,
            max_per_minute=per_minute,
            delay_seconds=delay,
            interval_seconds=interval,
            redact_pii=redact,
            embeddings=str(embeddings),
            judge=judge,
            batch_size=batch,
        )


def _names(
    doc: Mapping[str, Any],
    key: str,
    default: tuple[str, ...],
    allowed: tuple[str, ...],
    problems: list[str],
    where: str = "evaluators",
) -> tuple[str, ...]:
    value = doc.get(key, list(default))
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}.{key}: must be a list of names from {list(allowed)}")
        return default
    bad = [v for v in value if v not in allowed]
    if bad:
        problems.append(f"{where}.{key}: unknown {bad}; known: {list(allowed)}")
        return default
    return tuple(dict.fromkeys(value))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _share(
    doc: Mapping[str, Any], key: str, default: float, where: str, problems: list[str]
) -> float:
    value = doc.get(key, default)
    number = _number(value)
    if number is None or not 0.0 <= number <= 1.0:
        problems.append(f"{where}.{key}: must be a number in [0, 1], got {value!r}")
        return default
    return number


def _count(
    doc: Mapping[str, Any],
    key: str,
    default: int,
    where: str,
    problems: list[str],
    minimum: int = 0,
) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(f"{where}.{key}: must be a whole number >= {minimum}, got {value!r}")
        return default
    return value


def _seconds(
    doc: Mapping[str, Any], key: str, default: float, where: str, problems: list[str]
) -> float:
    value = doc.get(key, default)
    number = _number(value)
    if number is None or number < 0:
        problems.append(f"{where}.{key}: must be a number of seconds >= 0, got {value!r}")
        return default
    return number


def _judge(doc: Any, problems: list[str]) -> JudgeSettings | None:
    if doc is None:
        return None
    where = "evaluators.judge"
    if not isinstance(doc, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    known = {
        "url",
        "model",
        "api_key_env",
        "api_key",
        "rubrics",
        "sample",
        "max_per_minute",
        "timeout_seconds",
    }
    unknown = sorted(set(doc) - known)
    if unknown:
        problems.append(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    before = len(problems)
    url, model = doc.get("url"), doc.get("model")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        problems.append(f"{where}.url: must be an http(s) URL, got {url!r}")
    if not isinstance(model, str) or not model:
        problems.append(f"{where}.model: must be a model name, got {model!r}")
    for key in ("api_key_env", "api_key"):
        if doc.get(key) is not None and not isinstance(doc.get(key), str):
            problems.append(f"{where}.{key}: must be a string")
    rubrics = _names(doc, "rubrics", RUBRICS, RUBRICS, problems, where)
    sample = _share(doc, "sample", 0.1, where, problems)
    per_minute = _count(doc, "max_per_minute", 30, where, problems)
    timeout = _seconds(doc, "timeout_seconds", 30.0, where, problems)
    if len(problems) > before:
        return None
    return JudgeSettings(
        url=str(url),
        model=str(model),
        api_key_env=doc.get("api_key_env"),
        api_key=doc.get("api_key"),
        rubrics=rubrics,
        sample=sample,
        max_per_minute=per_minute,
        timeout_seconds=timeout or 30.0,
    )
