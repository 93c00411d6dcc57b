"""Decoded spans -> the Arrow batch of the ``spans`` table, and PII redaction of spans.

Every span of an export is kept for the trace view: ids, parent, names, times, status, the
LLM call's tokens and cost (taken from its event, so the price table's cost is there too),
and attributes, events and resource as JSON text. The per-span work is one pass that fills
plain column lists; the resource, shared by the spans of one ``ResourceSpans``, is encoded
once. JSON columns stay orjson's UTF-8 bytes up to Arrow (no ``str`` round trip).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import orjson
import pyarrow as pa

from watchkeeper.evaluators.pii import redact
from watchkeeper.otlp.decode import Span, SpanEvent
from watchkeeper.otlp.genai import conversation_id, is_llm_call, model_name

SPANS_SCHEMA: Final = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_span_id", pa.string()),
        ("service", pa.string()),
        ("model", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("start_ts", pa.timestamp("us")),
        ("end_ts", pa.timestamp("us")),
        ("duration_ms", pa.float64()),
        ("status", pa.string()),
        ("status_message", pa.string()),
        ("is_llm", pa.bool_()),
        ("conversation_id", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("attributes", pa.string()),
        ("events", pa.string()),
        ("resource", pa.string()),
        ("scope", pa.string()),
        ("received_at", pa.timestamp("us")),
    ]
)
_MAX_NS = 2**63 - 1
_EMPTY = b"{}"
_NO_EVENTS = b"[]"
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """orjson's fallback: bytes attributes become base64 text, anything else its repr."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return repr(value)


def to_json(value: Any) -> str:
    """Attributes, events or a resource as compact JSON text."""
    return _json_bytes(value).decode()


def _json_bytes(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_JSON_OPTIONS)


def _events_json(events: Sequence[SpanEvent]) -> bytes:
    if not events:
        return _NO_EVENTS
    return _json_bytes(
        [{"name": e.name, "time": e.time_unix_nano, "attributes": e.attributes} for e in events]
    )


def _utf8_column(values: list[bytes]) -> pa.Array:
    """A string column from UTF-8 JSON texts (orjson's bytes, never decoded to ``str``)."""
    return pa.array(values, pa.binary()).cast(pa.string())


def spans_table(
    spans: Sequence[Span], events: Mapping[str, Mapping[str, Any]], received_at: datetime
) -> pa.Table:
    """The ``spans`` rows of one export. ``events`` maps the span ids of LLM calls to their
    events (for tokens and cost); a span repeated in the export is kept once."""
    trace_ids: list[str] = []
    span_ids: list[str] = []
    parents: list[str | None] = []
    services: list[str | None] = []
    models: list[str] = []
    names: list[str] = []
    kinds: list[str] = []
    starts: list[int | None] = []
    ends: list[int | None] = []
    durations: list[float | None] = []
    statuses: list[str] = []
    messages: list[str | None] = []
    is_llm: list[bool] = []
    conversations: list[str | None] = []
    inputs: list[Any] = []
    outputs: list[Any] = []
    costs: list[Any] = []
    attributes: list[bytes] = []
    span_events: list[bytes] = []
    resources: list[bytes] = []
    scopes: list[str] = []
    # per resource (shared by the spans of one ResourceSpans): its JSON, service and model
    by_resource: dict[int, tuple[bytes, str | None, str]] = {}
    seen: set[tuple[str, str]] = set()
    for span in spans:
        key = (span.trace_id, span.span_id)
        if key in seen:
            continue
        seen.add(key)
        trace_ids.append(span.trace_id)
        span_ids.append(span.span_id)
        parents.append(span.parent_span_id)
        resource = by_resource.get(id(span.resource))
        if resource is None:
            resource = by_resource[id(span.resource)] = (
                _json_bytes(span.resource),
                span.service_name,
                model_name(span),
            )
        resources.append(resource[0])
        services.append(resource[1])
        models.append(resource[2])
        names.append(span.name)
        kinds.append(span.kind)
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        start_ns = (start if start <= _MAX_NS else _MAX_NS) if start > 0 else None
        end_ns = (end if end <= _MAX_NS else _MAX_NS) if end > 0 else None
        starts.append(start_ns)
        ends.append(end_ns)
        durations.append(
            (end_ns - start_ns) / 1e6 if start_ns and end_ns and end_ns >= start_ns else None
        )
        statuses.append(span.status_code)
        messages.append(span.status_message or None)
        attrs = span.attributes
        llm = is_llm_call(span)
        is_llm.append(llm)
        conversations.append(conversation_id(span) if attrs else None)
        event = events.get(span.span_id) if llm else None
        if event is not None:
            inputs.append(event.get("input_tokens"))
            outputs.append(event.get("output_tokens"))
            costs.append(event.get("cost_usd"))
        else:
            inputs.append(None)
            outputs.append(None)
            costs.append(None)
        attributes.append(_json_bytes(attrs) if attrs else _EMPTY)
        span_events.append(_events_json(span.events) if span.events else _NO_EVENTS)
        scopes.append(
            f"{span.scope_name}/{span.scope_version}" if span.scope_version else span.scope_name
        )
    n = len(trace_ids)
    ns = pa.timestamp("ns")
    us = pa.timestamp("us")
    string = pa.string()
    arrays = [
        pa.array(trace_ids, string),
        pa.array(span_ids, string),
        pa.array(parents, string),
        pa.array(services, string),
        pa.array(models, string),
        pa.array(names, string),
        pa.array(kinds, string),
        pa.array(starts, ns).cast(us, safe=False),
        pa.array(ends, ns).cast(us, safe=False),
        pa.array(durations, pa.float64()),
        pa.array(statuses, string),
        pa.array(messages, string),
        pa.array(is_llm, pa.bool_()),
        pa.array(conversations, string),
        pa.array(inputs, pa.int64()),
        pa.array(outputs, pa.int64()),
        pa.array(costs, pa.float64()),
        _utf8_column(attributes),
        _utf8_column(span_events),
        _utf8_column(resources),
        pa.array(scopes, string),
        pa.array([received_at] * n, us),
    ]
    return pa.Table.from_arrays(arrays, schema=SPANS_SCHEMA)


# ---- redaction -----------------------------------------------------------------------------


def redact_value(value: Any, text: Callable[[str], str] = redact) -> Any:
    """Every string inside ``value`` redacted. A string holding a JSON list or object (GenAI
    messages recorded as JSON text) is redacted inside its parsed values and re-encoded, so
    it stays valid JSON."""
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped[:1] in ("[", "{"):
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                return text(value)
            return orjson.dumps(redact_value(parsed, text)).decode()
        return text(value)
    if isinstance(value, dict):
        return {k: redact_value(v, text) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, text) for v in value]
    return value


def redact_span(span: Span, resources: dict[int, dict[str, Any]] | None = None) -> Span:
    """The span with PII redacted from its name, status message, attributes, event
    attributes and resource (except ``service.name``, which names the model)."""
    cache = resources if resources is not None else {}
    rid = id(span.resource)
    resource = cache.get(rid)
    if resource is None:
        resource = cache[rid] = {
            k: v if k == "service.name" else redact_value(v) for k, v in span.resource.items()
        }
    return dataclasses.replace(
        span,
        name=redact(span.name),
        status_message=redact(span.status_message),
        attributes=redact_value(span.attributes),
        events=[
            SpanEvent(e.name, e.time_unix_nano, redact_value(e.attributes)) for e in span.events
        ],
        resource=resource,
    )


def redact_spans(spans: Iterable[Span]) -> list[Span]:
    """Every span redacted (see :func:`redact_span`); spans that shared a resource still do."""
    resources: dict[int, dict[str, Any]] = {}
    return [redact_span(span, resources) for span in spans]


EVENT_TEXT_FIELDS: Final = ("prompt", "response", "context", "error", "conversation_id")


def redact_events(grouped: Mapping[str, list[dict[str, Any]]]) -> None:
    """Redact the text fields of LLM events in place (their spans were redacted already;
    this catches PII that only appears once message parts are joined)."""
    for events in grouped.values():
        for event in events:
            for name in EVENT_TEXT_FIELDS:
                value = event.get(name)
                if isinstance(value, str):
                    event[name] = redact(value)
