"""LLM-as-judge: a rubric, an OpenAI-compatible chat-completions endpoint, a 0..1 score.

:meth:`Judge.evaluate` sends one ``POST {url}/chat/completions`` (``Authorization: Bearer``,
``temperature: 0``, ``response_format: {"type": "json_object"}``) whose system message is the
rubric and whose user message holds the inputs; the rubric asks for ``{"score": 1-5,
"reason": "..."}``. The reply is read leniently (a JSON object, one in a code fence or in
prose, or a bare number 1-5) and anything else raises :class:`JudgeError`. A raw score ``s``
becomes ``(s - 1) / 4``; it passes at 4 or more (0.75).

Around the call:

* **cache**: identical (model, rubric, inputs) are answered from an in-memory LRU without a
  request (``JudgeResult.cached``); a second tier (``cache=``, any :class:`JudgeCache`) lets
  the caller persist answers;
* **rate limit**: a token bucket of ``max_per_minute`` shared by all threads (a caller waits
  for its slot), and at most ``max_concurrency`` requests in flight;
* **retries**: 429 and 5xx (and connection errors, timeouts) are retried up to ``max_retries``
  times, after the ``Retry-After`` the server sent (capped at ``max_retry_wait_seconds``) or
  an exponential back-off; other errors, and the last failure, raise :class:`JudgeError`.

The API key (``api_key``, or the environment variable named by ``api_key_env``) is sent in
the header only: it is not in the config's repr, in log records or in error messages.
Only the standard library is used (``urllib``); proxies come from the environment as usual.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import math
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

__all__ = [
    "RUBRICS",
    "Judge",
    "JudgeCache",
    "JudgeConfig",
    "JudgeError",
    "JudgeResult",
    "MemoryJudgeCache",
    "Rubric",
    "TokenBucket",
    "parse_verdict",
]

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class JudgeError(Exception):
    """The judge gave no usable verdict (HTTP error, timeout, unreadable reply)."""


@dataclass(frozen=True)
class Rubric:
    """What the judge is asked: ``instructions`` is the system message."""

    name: str
    instructions: str
    pass_label: str
    fail_label: str
    needs_context: bool = False
    needs_reference: bool = False
    pass_at: int = 4  # raw score (1-5) from which the call passes


_ANSWER = (
    'Answer with a JSON object only: {"score": <integer 1-5>, "reason": "<one short sentence>"}.'
)

RUBRICS: dict[str, Rubric] = {
    "groundedness": Rubric(
        name="groundedness",
        instructions=(
            "You are a strict evaluator of retrieval-augmented answers. Judge whether every "
            "claim in the RESPONSE is supported by the CONTEXT. Use only the CONTEXT, not your "
            "own knowledge: a claim that is true in the world but absent from the CONTEXT is "
            "unsupported. Changed numbers, names, places or negations are unsupported.\n"
            "5 = every claim is supported; 4 = supported apart from a trivial detail; "
            "3 = some claims are unsupported; 2 = most claims are unsupported; "
            "1 = the response contradicts the CONTEXT or is entirely unsupported. "
            "A response that makes no claims (a greeting, a refusal) scores 5.\n" + _ANSWER
        ),
        pass_label="grounded",
        fail_label="ungrounded",
        needs_context=True,
    ),
    "relevance": Rubric(
        name="relevance",
        instructions=(
            "You are a strict evaluator of assistant answers. Judge whether the RESPONSE "
            "addresses the QUESTION the user asked, whether or not it is correct.\n"
            "5 = answers the question directly and completely; 4 = answers it with minor "
            "digressions or gaps; 3 = partly answers it; 2 = mostly off topic; "
            "1 = ignores the question or answers another one.\n" + _ANSWER
        ),
        pass_label="relevant",
        fail_label="irrelevant",
    ),
    "correctness": Rubric(
        name="correctness",
        instructions=(
            "You are a strict evaluator of assistant answers. Compare the RESPONSE with the "
            "REFERENCE ANSWER, which is correct. Judge whether the RESPONSE states the same "
            "facts; wording and extra harmless detail do not matter.\n"
            "5 = same meaning as the reference; 4 = correct with a minor omission; "
            "3 = partly correct; 2 = mostly wrong; 1 = wrong or contradicts the reference.\n"
            + _ANSWER
        ),
        pass_label="correct",
        fail_label="incorrect",
        needs_reference=True,
    ),
}


@dataclass(frozen=True)
class JudgeResult:
    """``score`` in [0, 1] (higher = better); ``raw`` is the judge's 1-5."""

    score: float
    passed: bool
    label: str
    reason: str
    cached: bool = False
    raw: float = 0.0


@dataclass(frozen=True)
class JudgeConfig:
    """Where and how to ask. ``url`` is the OpenAI-compatible base URL (``.../v1``)."""

    url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    timeout_seconds: float = 30.0
    max_per_minute: float = 30.0
    burst: int = 1
    max_concurrency: int = 4
    cache_size: int = 1024
    max_retries: int = 3
    max_retry_wait_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"judge url must be http(s)://..., not {self.url!r}")
        if not self.model:
            raise ValueError("judge model must not be empty")
        if not self.max_per_minute > 0 or self.burst < 1 or self.max_concurrency < 1:
            raise ValueError("max_per_minute must be > 0, burst and max_concurrency >= 1")
        if self.timeout_seconds <= 0 or self.max_retries < 0 or self.cache_size < 0:
            raise ValueError("timeout_seconds must be > 0, max_retries and cache_size >= 0")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> JudgeConfig:
        """From the settings' ``evaluators.judge`` section; keys it does not know (``rubrics``,
        ``sample``: the runner's) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in known})

    def key(self) -> str | None:
        """The API key: ``api_key``, else the environment variable ``api_key_env``."""
        if self.api_key:
            return self.api_key
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        return None


class JudgeCache(Protocol):
    """A second cache tier (e.g. persisted by the runner), keyed by :meth:`Judge.cache_key`."""

    def get(self, key: str) -> JudgeResult | None: ...

    def put(self, key: str, result: JudgeResult) -> None: ...


class MemoryJudgeCache:
    """A thread-safe LRU of the last ``size`` verdicts."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._items: OrderedDict[str, JudgeResult] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> JudgeResult | None:
        with self._lock:
            result = self._items.get(key)
            if result is not None:
                self._items.move_to_end(key)
            return result

    def put(self, key: str, result: JudgeResult) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = result
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class TokenBucket:
    """``rate_per_minute`` tokens a minute, at most ``burst`` saved up; shared by threads.

    :meth:`acquire` reserves the next token under a lock and returns how long the caller has
    to wait for it (tokens may go negative: later callers queue behind earlier ones).
    """

    def __init__(
        self,
        rate_per_minute: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take a token; the seconds to wait before using it (0 when one was there)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            return max(0.0, -self._tokens / self.rate)


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_BARE = re.compile(r"^\s*(?:score\s*[:=]\s*)?([0-9](?:\.[0-9]+)?)\s*(?:/\s*5)?\s*\.?\s*$", re.I)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def parse_verdict(content: str) -> tuple[float, str]:
    """``(raw score 1-5, reason)`` from the judge's reply; :class:`JudgeError` if unreadable.

    Accepted: ``{"score": 4, "reason": "..."}`` (bare, in a code fence or inside prose; the
    score may be a numeric string), or a bare number such as ``4``, ``4/5``, ``score: 4``.
    """
    candidates = [content.strip()]
    candidates += [m.strip() for m in _FENCE.findall(content)]
    found = _OBJECT.search(content)
    if found:
        candidates.append(found.group(0))
    for text in candidates:
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict) and "score" in data:
            score = _number(data["score"])
            reason = data.get("reason", "")
            if score is None:
                break
            return _checked(score), reason if isinstance(reason, str) else json.dumps(reason)
        score = _number(data)
        if score is not None:
            return _checked(score), ""
    bare = _BARE.match(content)
    if bare:
        return _checked(float(bare.group(1))), ""
    raise JudgeError(f"the judge's reply has no score 1-5: {content[:200]!r}")


def _checked(score: float) -> float:
    if not math.isfinite(score) or not 1.0 <= score <= 5.0:
        raise JudgeError(f"the judge's score {score!r} is outside 1-5")
    return score


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Judge:
    """Asks an OpenAI-compatible model to grade calls by a rubric; share one per process."""

    def __init__(
        self,
        config: JudgeConfig,
        *,
        cache: JudgeCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.memory = MemoryJudgeCache(config.cache_size)
        self.store = cache
        self.bucket = TokenBucket(config.max_per_minute, config.burst, clock)
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._opener = urllib.request.build_opener()
        self._endpoint = config.url.rstrip("/") + "/chat/completions"
        self.requests = 0  # HTTP requests sent, retries included
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------ the question
    @staticmethod
    def rubric_of(rubric: str | Rubric) -> Rubric:
        if isinstance(rubric, Rubric):
            return rubric
        try:
            return RUBRICS[rubric]
        except KeyError:
            raise ValueError(f"unknown rubric {rubric!r}; known: {sorted(RUBRICS)}") from None

    @staticmethod
    def user_message(
        rubric: Rubric, prompt: str, response: str, context: str | None, reference: str | None
    ) -> str:
        parts = [f"QUESTION:\n{prompt}"]
        if rubric.needs_context:
            parts.append(f"CONTEXT:\n{context}")
        if rubric.needs_reference:
            parts.append(f"REFERENCE ANSWER:\n{reference}")
        parts.append(f"RESPONSE:\n{response}")
        parts.append('Reply in JSON: {"score": <1-5>, "reason": "..."}')
        return "\n\n".join(parts)

    def cache_key(self, rubric: Rubric, user: str) -> str:
        material = json.dumps([self.config.model, rubric.name, rubric.instructions, user])
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def evaluate(
        self,
        rubric: str | Rubric,
        *,
        prompt: str,
        response: str,
        context: str | None = None,
        reference: str | None = None,
    ) -> JudgeResult:
        """Grade one call. ``ValueError`` when the rubric lacks an input it needs
        (groundedness: ``context``; correctness: ``reference``); :class:`JudgeError` when the
        judge gives no usable verdict."""
        chosen = self.rubric_of(rubric)
        if chosen.needs_context and not (context and context.strip()):
            raise ValueError(f"the {chosen.name} rubric needs a context")
        if chosen.needs_reference and not (reference and reference.strip()):
            raise ValueError(f"the {chosen.name} rubric needs a reference answer")
        user = self.user_message(chosen, prompt, response, context, reference)
        key = self.cache_key(chosen, user)
        hit = self.memory.get(key)
        if hit is None and self.store is not None:
            hit = self.store.get(key)
            if hit is not None:
                self.memory.put(key, hit)
        if hit is not None:
            return JudgeResult(hit.score, hit.passed, hit.label, hit.reason, True, hit.raw)
        content = self._ask(chosen, user)
        raw, reason = parse_verdict(content)
        passed = raw >= chosen.pass_at
        result = JudgeResult(
            score=(raw - 1.0) / 4.0,
            passed=passed,
            label=chosen.pass_label if passed else chosen.fail_label,
            reason=reason,
            cached=False,
            raw=raw,
        )
        self.memory.put(key, result)
        if self.store is not None:
            self.store.put(key, result)
        return result

    # ------------------------------------------------------------------ the request
    def _payload(self, rubric: Rubric, user: str) -> bytes:
        body = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": rubric.instructions},
                {"role": "user", "content": user},
            ],
            "temperature": 0,
            "response_format": {"type": "json_object"},
        }
        return json.dumps(body).encode("utf-8")

    def _ask(self, rubric: Rubric, user: str) -> str:
        data = self._payload(rubric, user)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        api_key = self.config.key()
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        last = "no attempt"
        for attempt in range(self.config.max_retries + 1):
            wait = self.bucket.acquire()
            if wait > 0:
                self._sleep(wait)
            retry_after: float | None = None
            with self._slots:
                with self._count_lock:
                    self.requests += 1
                request = urllib.request.Request(
                    self._endpoint, data=data, headers=headers, method="POST"
                )
                try:
                    with self._opener.open(request, timeout=self.config.timeout_seconds) as reply:
                        body = reply.read()
                    return self._content(body)
                except urllib.error.HTTPError as exc:
                    status = exc.code
                    last = f"HTTP {status}: {_error_message(exc)}"
                    retry_after = _retry_after(exc.headers.get("Retry-After"))
                    if status not in _RETRY_STATUS:
                        raise JudgeError(f"judge {self._endpoint} answered {last}") from None
                except (OSError, http.client.HTTPException) as exc:
                    reason = getattr(exc, "reason", exc)
                    last = f"{type(exc).__name__}: {reason}"
            if attempt == self.config.max_retries:
                break
            delay = retry_after if retry_after is not None else 0.5 * 2**attempt
            delay = min(delay, self.config.max_retry_wait_seconds)
            log.warning(
                "judge %s (model %s): %s; retry %d/%d in %.1f s",
                self._endpoint,
                self.config.model,
                last,
                attempt + 1,
                self.config.max_retries,
                delay,
            )
            self._sleep(delay)
        raise JudgeError(
            f"judge {self._endpoint} failed after {self.config.max_retries + 1} attempts: {last}"
        )

    @staticmethod
    def _content(body: bytes) -> str:
        try:
            reply = json.loads(body)
            content = reply["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeError(
                f"not a chat-completions reply: {body[:200].decode('utf-8', 'replace')!r}"
            ) from None
        if not isinstance(content, str):
            raise JudgeError("the judge's reply has no text content")
        return content


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The API's ``error.message`` if it sent one (never the request, so never the key)."""
    try:
        body = json.loads(exc.read() or b"{}")
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except (ValueError, AttributeError, OSError):
        message = None
    return str(message or exc.reason)[:200]
