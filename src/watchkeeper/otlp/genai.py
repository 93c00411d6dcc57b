"""GenAI and OpenInference spans -> Watchkeeper LLM-call events (the SDK's event fields).

The application (resource ``service.name``) is the Watchkeeper model; the answering model is
the event's version. Only spans that are LLM calls become events (see ``is_llm_call``); the
attribute names are those of the OpenTelemetry GenAI semantic conventions, current and older,
and of OpenInference.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Final

import orjson

from watchkeeper.llm.prices import PriceTable
from watchkeeper.otlp.decode import Span
from watchkeeper.schema import DEFAULT_LIMITS

LLM_OPERATIONS: Final = frozenset({"chat", "generate_content", "text_completion"})
UNKNOWN_SERVICE: Final = "unknown_service"
SEGMENT_LEN: Final = 128  # segments are for grouping: long values are cut

OPERATION = "gen_ai.operation.name"
PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
REQUEST_MODEL = "gen_ai.request.model"
VERSION = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
COST = ("gen_ai.usage.cost", "llm.cost.total")
TTFT_SECONDS = "gen_ai.response.time_to_first_chunk"
FINISH_REASONS = "gen_ai.response.finish_reasons"
OPENINFERENCE_KIND = "openinference.span.kind"

_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def model_name(span: Span) -> str:
    """The Watchkeeper model of a span: its service.name, made a valid model name."""
    name = _INVALID_NAME_CHARS.sub("-", span.service_name or "").lstrip("_.-")[:128]
    return name or UNKNOWN_SERVICE


def is_llm_call(span: Span) -> bool:
    """A GenAI chat/generate_content/text_completion span, an OpenInference LLM span, or (the
    oldest GenAI conventions, without an operation name) a span naming a provider and model."""
    attrs = span.attributes
    operation = attrs.get(OPERATION)
    if isinstance(operation, str):
        return operation in LLM_OPERATIONS
    kind = attrs.get(OPENINFERENCE_KIND)
    if isinstance(kind, str):
        return kind.upper() == "LLM"
    return (
        _first_str(attrs, PROVIDER[:2]) is not None and _text(attrs.get(REQUEST_MODEL)) is not None
    )


def llm_events(spans: Iterable[Span]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """The LLM-call events grouped by model, and the number of other spans (ignored)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    ignored = 0
    for span in spans:
        if is_llm_call(span):
            grouped.setdefault(model_name(span), []).append(span_event(span))
        else:
            ignored += 1
    return grouped, ignored


def span_event(span: Span) -> dict[str, Any]:
    """The event of one LLM-call span (fields that the span does not carry are left out)."""
    attrs = span.attributes
    event: dict[str, Any] = {"event_id": span.span_id}
    end = span.end_time_unix_nano or span.start_time_unix_nano
    if end > 0:
        event["timestamp"] = _rfc3339(end)
    version = _first_str(attrs, VERSION)
    if version is not None:
        event["version"] = version[: DEFAULT_LIMITS.max_string_len]
    if span.start_time_unix_nano and span.end_time_unix_nano >= span.start_time_unix_nano:
        event["latency_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    if span.status_code == "error":
        event["status"] = "error"
        message = span.status_message or _text(attrs.get("error.type")) or _exception(span)
        if message:
            event["error"] = message[: DEFAULT_LIMITS.max_text_len]
    else:
        event["status"] = "ok"
    for name, keys in (("input_tokens", INPUT_TOKENS), ("output_tokens", OUTPUT_TOKENS)):
        tokens = _first_count(attrs, keys)
        if tokens is not None:
            event[name] = tokens
    ttft = _number(attrs.get(TTFT_SECONDS))
    if ttft is not None:
        event["time_to_first_token_ms"] = ttft * 1000.0
    cost = next((c for c in (_number(attrs.get(k)) for k in COST) if c is not None), None)
    if cost is not None:
        event["cost_usd"] = cost
    prompt = prompt_text(span)
    if prompt:
        event["prompt"] = prompt[: DEFAULT_LIMITS.max_text_len]
    response = response_text(span)
    if response:
        event["response"] = response[: DEFAULT_LIMITS.max_text_len]
    segments = {
        "provider": _first_str(attrs, PROVIDER),
        "operation": _text(attrs.get(OPERATION)),
        "request_model": _text(attrs.get(REQUEST_MODEL)),
        "finish_reason": finish_reason(span),
    }
    kept = {k: v[:SEGMENT_LEN] for k, v in segments.items() if v}
    if kept:
        event["segments"] = kept
    return event


def prompt_text(span: Span) -> str | None:
    """The captured prompt: GenAI input messages, the older gen_ai.prompt attribute or
    event, indexed gen_ai.prompt.N attributes, or OpenInference input.value / messages."""
    return _captured(span, "input", "prompt")


def response_text(span: Span) -> str | None:
    """The captured response, from the same families of names as ``prompt_text``."""
    return _captured(span, "output", "completion")


def _captured(span: Span, side: str, old: str) -> str | None:
    """One side of the call (side: input/output; old: the older GenAI word for it)."""
    attrs = span.attributes
    return (
        messages_text(attrs.get(f"gen_ai.{side}.messages"))
        or messages_text(attrs.get(f"gen_ai.{old}"))
        or messages_text(_event_attr(span, f"gen_ai.content.{old}", f"gen_ai.{old}"))
        or _indexed_messages(attrs, f"gen_ai.{old}.{{}}.content", f"gen_ai.{old}.{{}}.role")
        or _text(attrs.get(f"{side}.value"))
        or _indexed_messages(
            attrs,
            f"llm.{side}_messages.{{}}.message.content",
            f"llm.{side}_messages.{{}}.message.role",
        )
    )


def finish_reason(span: Span) -> str | None:
    """The first finish reason: gen_ai.response.finish_reasons, else the output messages'."""
    attrs = span.attributes
    reasons = attrs.get(FINISH_REASONS)
    if isinstance(reasons, list):
        found = next((r for r in reasons if isinstance(r, str) and r), None)
        if found:
            return found
    elif _text(reasons):
        return str(reasons)
    for message in _messages(attrs.get("gen_ai.output.messages")):
        reason = message.get("finish_reason")
        if _text(reason):
            return str(reason)
    return _text(attrs.get("gen_ai.completion.0.finish_reason"))


def messages_text(value: Any) -> str | None:
    """Chat messages as text: one message's text alone, several as ``role: text`` lines.

    ``value`` is a JSON string or an already structured list, in the GenAI shape
    (``{"role", "parts": [{"type": "text", "content"}]}``) or the older chat shape
    (``{"role", "content"}``); a string that is not a JSON list of messages is the text.
    """
    messages = _messages(value)
    if not messages:
        return _text(value) if isinstance(value, str) and not _is_json_list(value) else None
    rendered = [(str(m.get("role") or ""), _message_text(m)) for m in messages]
    rendered = [(role, text) for role, text in rendered if text]
    if len(rendered) == 1:
        return rendered[0][1]
    return "\n".join(f"{role}: {text}" if role else text for role, text in rendered) or None


def _messages(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, str):
        if not _is_json_list(value):
            return []
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return []
    if not isinstance(value, list):
        return []
    return [m for m in value if isinstance(m, dict)]


def _is_json_list(text: str) -> bool:
    return text.lstrip().startswith("[")


def _message_text(message: Mapping[str, Any]) -> str:
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = [
            p["content"]
            for p in parts
            if isinstance(p, dict)
            and p.get("type", "text") == "text"
            and isinstance(p.get("content"), str)
        ]
        return "\n".join(texts)
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: [{"type": "text", "text": ...}]
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _indexed_messages(attrs: Mapping[str, Any], content_key: str, role_key: str) -> str | None:
    messages = []
    i = 0
    while content_key.format(i) in attrs or role_key.format(i) in attrs:
        messages.append(
            {"role": attrs.get(role_key.format(i)), "content": attrs.get(content_key.format(i))}
        )
        i += 1
    return messages_text(messages) if messages else None


def _event_attr(span: Span, event: str, key: str) -> Any:
    return next((e.attributes.get(key) for e in span.events if e.name == event), None)


def _exception(span: Span) -> str | None:
    for e in span.events:
        if e.name == "exception":
            kind = _text(e.attributes.get("exception.type"))
            message = _text(e.attributes.get("exception.message"))
            if kind or message:
                return ": ".join(t for t in (kind, message) if t)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _first_str(attrs: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    return next((v for v in (_text(attrs.get(k)) for k in keys) if v is not None), None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def _first_count(attrs: Mapping[str, Any], keys: Iterable[str]) -> int | None:
    for key in keys:
        number = _number(attrs.get(key))
        if number is not None and number.is_integer():
            return int(number)
    return None


def _rfc3339(unix_nano: int) -> str:
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos // 1000:06d}Z"


def price_events(events: list[dict[str, Any]], prices: PriceTable) -> int:
    """Fill ``cost_usd`` of the events that have token counts but no cost of their own, from
    the price table in force on the call's date (provider segment; the answering or else the
    requested model, i.e. the event's version). Returns how many were priced; an unknown
    model stays without cost."""
    priced = 0
    for event in events:
        if "cost_usd" in event or ("input_tokens" not in event and "output_tokens" not in event):
            continue
        segments = event.get("segments", {})
        model = event.get("version") or segments.get("request_model")
        if not model:
            continue
        stamp = event.get("timestamp")  # _rfc3339's "…Z" (3.10's fromisoformat lacks "Z")
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
        cost = prices.cost(
            segments.get("provider"),
            model,
            when or datetime.now(timezone.utc),
            int(event.get("input_tokens", 0)),
            int(event.get("output_tokens", 0)),
        )
        if cost is not None:
            event["cost_usd"] = cost
            priced += 1
    return priced
