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
from datetime import date, datetime, timezone
from typing import Any, Final

import orjson

from watchkeeper.evaluators.context import CONTEXT_ATTRIBUTE, retrieval_documents
from watchkeeper.evaluators.context import is_retrieval as is_retrieval_attributes
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
CONVERSATION = ("gen_ai.conversation.id", "session.id")

_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def model_name(span: Span) -> str:
    """The Watchkeeper model of a span: its service.name, made a valid model name."""
    service = span.service_name or ""
    name = _MODEL_NAMES.get(service)
    if name is None:
        if len(_MODEL_NAMES) >= 1024:
            _MODEL_NAMES.clear()
        name = _INVALID_NAME_CHARS.sub("-", service).lstrip("_.-")[:128] or UNKNOWN_SERVICE
        _MODEL_NAMES[service] = name
    return name


_MODEL_NAMES: dict[str, str] = {}  # service.name -> model name (few distinct per server)


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
    """The LLM-call events grouped by model, and the number of other spans.

    An LLM call's ``context`` is its own ``watchkeeper.context`` attribute, else the text of
    the retrieval spans of its trace in the same request that started before it ended."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    calls: list[Span] = []
    retrieved: dict[str, list[tuple[int, str]]] = {}
    ignored = 0
    for span in spans:
        if is_llm_call(span):
            calls.append(span)
            continue
        ignored += 1
        if is_retrieval(span):
            text = retrieved_text(span)
            if text:
                retrieved.setdefault(span.trace_id, []).append((span.start_time_unix_nano, text))
    for span in calls:
        event = span_event(span)
        if retrieved and "context" not in event and span.trace_id in retrieved:
            end = span.end_time_unix_nano or span.start_time_unix_nano
            docs = [text for start, text in sorted(retrieved[span.trace_id]) if start <= end]
            if docs:
                event["context"] = "\n\n".join(docs)[: DEFAULT_LIMITS.max_text_len]
        grouped.setdefault(model_name(span), []).append(event)
    return grouped, ignored


def is_retrieval(span: Span) -> bool:
    """A GenAI retrieval span (``gen_ai.operation.name`` retrieval) or an OpenInference
    RETRIEVER span."""
    return is_retrieval_attributes(span.attributes)


def retrieved_text(span: Span) -> str | None:
    """The documents a retrieval span returned, one per paragraph
    (:func:`~watchkeeper.evaluators.context.retrieval_documents`), else the GenAI output
    messages or ``output.value``."""
    attrs = span.attributes
    return (
        "\n\n".join(retrieval_documents(attrs))
        or messages_text(attrs.get("gen_ai.output.messages"))
        or _text(attrs.get("output.value"))
    )


def conversation_id(span: Span) -> str | None:
    """``gen_ai.conversation.id``, else OpenInference ``session.id``."""
    return _first_str(span.attributes, CONVERSATION)


def span_event(span: Span) -> dict[str, Any]:
    """The event of one LLM-call span (fields that the span does not carry are left out)."""
    attrs = span.attributes
    limits = DEFAULT_LIMITS
    event: dict[str, Any] = {"event_id": span.span_id, "trace_id": span.trace_id}
    conversation = _first_str(attrs, CONVERSATION)
    if conversation is not None:
        event["conversation_id"] = conversation[: limits.max_string_len]
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    stamp = end or start
    if stamp > 0:
        event["timestamp"] = _rfc3339(stamp)
    version = _first_str(attrs, VERSION)
    if version is not None:
        event["version"] = version[: limits.max_string_len]
    if start and end >= start:
        event["latency_ms"] = (end - start) / 1e6
    if span.status_code == "error":
        event["status"] = "error"
        message = span.status_message or _text(attrs.get("error.type")) or _exception(span)
        if message:
            event["error"] = message[: limits.max_text_len]
    else:
        event["status"] = "ok"
    tokens = _first_count(attrs, INPUT_TOKENS)
    if tokens is not None:
        event["input_tokens"] = tokens
    tokens = _first_count(attrs, OUTPUT_TOKENS)
    if tokens is not None:
        event["output_tokens"] = tokens
    ttft = _number(attrs.get(TTFT_SECONDS))
    if ttft is not None:
        event["time_to_first_token_ms"] = ttft * 1000.0
    for key in COST:
        cost = _number(attrs.get(key))
        if cost is not None:
            event["cost_usd"] = cost
            break
    prompt = _captured(span, _INPUT_KEYS)
    if prompt:
        event["prompt"] = prompt[: limits.max_text_len]
    response = _captured(span, _OUTPUT_KEYS)
    if response:
        event["response"] = response[: limits.max_text_len]
    context = _text(attrs.get(CONTEXT_ATTRIBUTE))
    if context:
        event["context"] = context[: limits.max_text_len]
    segments = {}
    for name, value in (
        ("provider", _first_str(attrs, PROVIDER)),
        ("operation", _text(attrs.get(OPERATION))),
        ("request_model", _text(attrs.get(REQUEST_MODEL))),
        ("finish_reason", finish_reason(span)),
    ):
        if value:
            segments[name] = value[:SEGMENT_LEN]
    if segments:
        event["segments"] = segments
    return event


def prompt_text(span: Span) -> str | None:
    """The captured prompt: GenAI input messages, the older gen_ai.prompt attribute or
    event, indexed gen_ai.prompt.N attributes, or OpenInference input.value / messages."""
    return _captured(span, _INPUT_KEYS)


def response_text(span: Span) -> str | None:
    """The captured response, from the same families of names as ``prompt_text``."""
    return _captured(span, _OUTPUT_KEYS)


def _side_keys(side: str, old: str) -> tuple[str, ...]:
    """The attribute and event names of one side of the call (side: input/output; old: the
    older GenAI word for it), in the order :func:`_captured` tries them."""
    return (
        f"gen_ai.{side}.messages",
        f"gen_ai.{old}",
        f"gen_ai.content.{old}",
        f"gen_ai.{old}.{{}}.content",
        f"gen_ai.{old}.{{}}.role",
        f"{side}.value",
        f"llm.{side}_messages.{{}}.message.content",
        f"llm.{side}_messages.{{}}.message.role",
    )


_INPUT_KEYS: Final = _side_keys("input", "prompt")
_OUTPUT_KEYS: Final = _side_keys("output", "completion")


def _captured(span: Span, keys: tuple[str, ...]) -> str | None:
    """One side of the call, from the first of its names that holds text."""
    attrs = span.attributes
    messages, old, event, content, role, value, oi_content, oi_role = keys
    return (
        messages_text(attrs.get(messages))
        or messages_text(attrs.get(old))
        or (messages_text(_event_attr(span, event, old)) if span.events else None)
        or _indexed_messages(attrs, content, role)
        or _text(attrs.get(value))
        or _indexed_messages(attrs, oi_content, oi_role)
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
    if value is None:
        return None
    messages = _messages(value)
    if not messages:
        return _text(value) if isinstance(value, str) and not _is_json_list(value) else None
    rendered = []
    for m in messages:
        text = _message_text(m)
        if text:
            rendered.append((str(m.get("role") or ""), text))
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
    if content_key.format(0) not in attrs and role_key.format(0) not in attrs:
        return None
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
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _number(value: Any) -> float | None:
    if value is None:
        return None
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
    stamp = _SECONDS.get(seconds)
    if stamp is None:  # the calls of one export mostly share their seconds
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        stamp = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _SECONDS[seconds] = stamp
    return f"{stamp}.{nanos // 1000:06d}Z"


_SECONDS: dict[int, str] = {}


def price_events(events: list[dict[str, Any]], prices: PriceTable) -> int:
    """Fill ``cost_usd`` of the events that have token counts but no cost of their own, from
    the price table in force on the call's date (provider segment; the answering or else the
    requested model, i.e. the event's version). Returns how many were priced; an unknown
    model stays without cost."""
    priced = 0
    days: dict[str, date] = {}
    today: date | None = None
    for event in events:
        if "cost_usd" in event or ("input_tokens" not in event and "output_tokens" not in event):
            continue
        segments = event.get("segments", {})
        model = event.get("version") or segments.get("request_model")
        if not model:
            continue
        stamp = event.get("timestamp")  # _rfc3339's "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC)
        if stamp:
            day = days.get(stamp[:10])
            if day is None:
                day = days[stamp[:10]] = date.fromisoformat(stamp[:10])
        else:
            day = today = today or datetime.now(timezone.utc).date()
        price = prices.price_on(segments.get("provider"), model, day)
        if price is not None:
            event["cost_usd"] = price.cost(
                int(event.get("input_tokens", 0)), int(event.get("output_tokens", 0))
            )
            priced += 1
    return priced
