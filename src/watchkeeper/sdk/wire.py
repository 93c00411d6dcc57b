"""Turning queued records into wire events and request bodies (see docs/internals.md).

The caller's thread only stores a tuple of the arguments of ``log()``; everything here runs in
the worker thread. Records are cleaned so that one bad value cannot make the server reject a
whole batch (batches are all-or-nothing there): NaN and ±inf become null (or the field is
left out), numpy-like scalars are unwrapped with ``.item()``, datetimes become epoch seconds
(a naive datetime is taken as UTC, as the server does for naive strings), invalid feature
names are left out. A record that cannot be made valid at all is dropped (``None``).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

PREDICTIONS = "predictions"
ACTUALS = "actuals"
FEEDBACK = "feedback"
#: The JSON key that holds a batch's objects, per kind.
BATCH_KEYS = {PREDICTIONS: "events", ACTUALS: "actuals", FEEDBACK: "feedback"}

#: Order of the values in a queued prediction tuple (the arguments of ``Monitor.log``).
EVENT_FIELDS: tuple[str, ...] = (
    "event_id",
    "timestamp",
    "version",
    "features",
    "prediction",
    "score",
    "probabilities",
    "latency_ms",
    "status",
    "error",
    "segments",
    "prompt",
    "response",
    "input_tokens",
    "output_tokens",
    "time_to_first_token_ms",
    "cost_usd",
    "trace_id",
    "conversation_id",
    "context",
)
#: Order of the values in a queued actual tuple (the arguments of ``Monitor.log_actual``).
ACTUAL_FIELDS: tuple[str, ...] = ("event_id", "label", "timestamp")
#: Order of the values in a queued feedback tuple (``Monitor.log_feedback``, model first).
FEEDBACK_FIELDS: tuple[str, ...] = (
    "model",
    "feedback_id",
    "event_id",
    "trace_id",
    "thumbs",
    "score",
    "comment",
    "corrected_answer",
    "by",
    "timestamp",
)
# The server's limits on feedback text (watchkeeper.api.feedback), checked here so that one
# bad item cannot make it refuse a whole batch.
_FEEDBACK_TEXT = {
    "model": 128,
    "feedback_id": 1024,
    "event_id": 1024,
    "trace_id": 1024,
    "comment": 4096,
    "corrected_answer": 64 * 1024,  # DEFAULT_LIMITS.max_text_len
    "by": 256,
}

_FEATURE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


class InvalidRecord(ValueError):
    """A record that cannot be turned into a valid wire object."""


def _unwrap(value: Any) -> Any:
    """Return plain Python for numpy-like scalars (anything with ``.item()``)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def _number(value: Any) -> float | int | None:
    """A finite int/float, or None for NaN, ±inf and anything non-numeric."""
    kind = type(value)
    if kind is float:
        return value if value - value == 0.0 else None
    if kind is int:
        return value  # type: ignore[no-any-return]
    value = _unwrap(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    result: float | int = value
    return result


def _scalar(value: Any) -> str | bool | int | float | None:
    """A JSON scalar usable as a feature value, prediction or label (else None)."""
    value = _unwrap(value)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        return _number(value)
    return _number(value) if hasattr(value, "__float__") else None


def _timestamp(value: Any) -> float:
    if type(value) is float and value - value == 0.0:
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return float(value.timestamp())
    number = _number(value)
    if number is None:
        raise InvalidRecord("timestamp must be epoch seconds or a datetime")
    return float(number)


def _mapping(value: Any) -> Mapping[Any, Any]:
    if isinstance(value, Mapping):
        return value
    return dict(value)


_OMIT: Any = object()
_GOOD_NAMES: set[str] = set()  # feature names already checked (bounded cache)


def _features(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in (value if type(value) is dict else _mapping(value)).items():
        if key not in _GOOD_NAMES:
            key = str(key)
            if not _FEATURE_NAME.fullmatch(key):
                continue
            if len(_GOOD_NAMES) < 10_000:
                _GOOD_NAMES.add(key)
        kind = type(v)
        if kind is float:
            out[key] = v if v - v == 0.0 else None  # NaN and ±inf become null
        elif kind is int or kind is str or kind is bool or v is None:
            out[key] = v
        else:
            out[key] = _scalar(v)
    return out


def _segments(value: Any) -> dict[str, str]:
    return {str(k): str(_unwrap(v)) for k, v in _mapping(value).items()}


def _probabilities(value: Any) -> dict[str, float | int]:
    probs = {str(k): _number(v) for k, v in _mapping(value).items()}
    return {k: v for k, v in probs.items() if v is not None}


def _non_negative(value: Any) -> Any:
    number = _number(value)
    return number if number is not None and number >= 0 else _OMIT


def _optional_number(value: Any) -> Any:
    number = _number(value)
    return _OMIT if number is None else number


def _count(value: Any) -> Any:
    number = _number(value)
    if number is None or number < 0 or not float(number).is_integer():
        return _OMIT
    return int(number)


def _text(value: Any) -> str:
    return value if type(value) is str else str(_unwrap(value))


_CLEANERS: dict[str, Any] = {
    "event_id": _text,
    "timestamp": _timestamp,
    "version": _text,
    "features": _features,
    "prediction": _scalar,
    "score": _optional_number,
    "probabilities": _probabilities,
    "latency_ms": _non_negative,
    "status": lambda v: "error" if v == "error" else "ok",
    "error": _text,
    "segments": _segments,
    "prompt": _text,
    "response": _text,
    "input_tokens": _count,
    "output_tokens": _count,
    "time_to_first_token_ms": _non_negative,
    "cost_usd": _non_negative,
    "trace_id": _text,
    "conversation_id": _text,
    "context": _text,
}
_PIPELINE = tuple((name, _CLEANERS[name]) for name in EVENT_FIELDS)


def clean_event(values: tuple[Any, ...]) -> dict[str, Any]:
    """Build the wire object of one prediction from a queued tuple (None fields omitted)."""
    event: dict[str, Any] = {}
    for (name, clean), value in zip(_PIPELINE, values, strict=True):
        if value is not None:
            value = clean(value)
            if value is not _OMIT:
                event[name] = value
    event_id = event.get("event_id", "")
    if not 1 <= len(event_id) <= 128:
        raise InvalidRecord("event_id must be 1-128 characters")
    return event


def clean_actual(values: tuple[Any, ...]) -> dict[str, Any]:
    """Build the wire object of one actual (ground-truth label) from a queued tuple."""
    event_id, label, timestamp = values
    actual: dict[str, Any] = {"event_id": str(_unwrap(event_id))}
    if not 1 <= len(actual["event_id"]) <= 128:
        raise InvalidRecord("event_id must be 1-128 characters")
    label = _scalar(label)
    if label is None:
        raise InvalidRecord("label must be a finite number, a string or a bool")
    actual["label"] = label
    if timestamp is not None:
        actual["timestamp"] = _timestamp(timestamp)
    return actual


def clean_feedback(values: tuple[Any, ...]) -> dict[str, Any]:
    """Build the wire object of one feedback item from a queued tuple: texts trimmed to
    none when blank, ``thumbs`` ``"up"``/``"down"`` (or a bool), ``score`` in [0, 1]; at
    least one verdict and an event or trace id, else InvalidRecord."""
    item: dict[str, Any] = {}
    for name, value in zip(FEEDBACK_FIELDS, values, strict=True):
        if value is None:
            continue
        if name in _FEEDBACK_TEXT:
            text = _text(value)
            if len(text) > _FEEDBACK_TEXT[name]:
                raise InvalidRecord(f"{name} is longer than {_FEEDBACK_TEXT[name]} characters")
            if text.strip():
                item[name] = text
        elif name == "thumbs":
            value = _unwrap(value)
            if type(value) is bool:
                value = "up" if value else "down"
            if value not in ("up", "down"):
                raise InvalidRecord("thumbs must be 'up', 'down' or a bool")
            item["thumbs"] = value
        elif name == "score":
            score = _number(value)
            if score is None or not 0 <= score <= 1:
                raise InvalidRecord("score must be a number from 0 to 1")
            item["score"] = float(score)
        else:  # timestamp: RFC 3339, as the feedback API reads it
            seconds = _timestamp(value)
            if seconds > time.time() + 300:  # the server's limit (max_future, 5 minutes)
                raise InvalidRecord("timestamp is in the future")
            try:
                stamp = datetime.fromtimestamp(seconds, timezone.utc)
            except (OverflowError, OSError, ValueError):
                raise InvalidRecord("timestamp is out of range") from None
            item["timestamp"] = stamp.isoformat().replace("+00:00", "Z")
    if "event_id" not in item and "trace_id" not in item:
        raise InvalidRecord("feedback needs the event_id or the trace_id it is about")
    if not any(k in item for k in ("thumbs", "score", "comment", "corrected_answer")):
        raise InvalidRecord("feedback needs thumbs, a score, a comment or a corrected answer")
    return item


def encode_batch(kind: str, objects: list[dict[str, Any]]) -> bytes:
    """The gzip'd JSON request body for a batch: ``{"events": [...]}``, ``{"actuals": [...]}``
    or ``{"feedback": [...]}``."""
    key = BATCH_KEYS[kind]
    text = json.dumps({key: objects}, separators=(",", ":"), allow_nan=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=5, mtime=0)


def decode_batch(body: bytes) -> list[dict[str, Any]]:
    """Inverse of :func:`encode_batch` (used by the in-memory transport and tests)."""
    document = json.loads(gzip.decompress(body))
    if isinstance(document, list):
        return document
    for key in BATCH_KEYS.values():
        if key in document:
            objects: list[dict[str, Any]] = document[key]
            return objects
    raise ValueError("not a Watchkeeper batch")
