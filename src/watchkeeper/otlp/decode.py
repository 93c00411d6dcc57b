"""OTLP trace requests (protobuf or OTLP/JSON, optionally gzip) -> plain span records.

OTLP/JSON differs from protobuf's canonical JSON mapping: trace and span ids are hex strings
(protobuf's parser would read them as base64 and silently decode garbage), so JSON bodies are
walked here by hand. Enums may be integers or names; 64-bit integers may be strings.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from watchkeeper.schema import DEFAULT_LIMITS, BatchError, Limits
from watchkeeper.schema.decode import decompress

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
_STATUS = ("unset", "ok", "error")


class Format(Enum):
    """The wire format of a request (and of its reply)."""

    PROTOBUF = "protobuf"
    JSON = "json"


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_unix_nano: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    """One span with its resource and scope; ids are lowercase hex, times are Unix ns.

    Not frozen (a frozen dataclass's ``__init__`` costs several times more, and an export
    builds thousands); treat it as read-only: redaction makes new spans
    (``dataclasses.replace``)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str  # unspecified, internal, server, client, producer, consumer
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: str  # unset, ok, error
    status_message: str
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""

    @property
    def service_name(self) -> str | None:
        value = self.resource.get("service.name")
        return value if isinstance(value, str) and value else None


def malformed(message: str) -> BatchError:
    return BatchError(400, "malformed_body", message)


def request_format(content_type: str | None) -> Format:
    """The format named by a Content-Type header, or a 415."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in (PROTOBUF, "application/protobuf"):
        return Format.PROTOBUF
    if media == JSON:
        return Format.JSON
    raise BatchError(
        415,
        "unsupported_media_type",
        f"unsupported Content-Type {media[:100]!r}; send {PROTOBUF} or {JSON}",
    )


def decode_request(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Span]:
    """The spans of an ExportTraceServiceRequest body, or a BatchError (400/413/415)."""
    fmt = request_format(content_type)
    raw = decompress(body, content_encoding, limits)
    return decode_protobuf(raw) if fmt is Format.PROTOBUF else decode_json(raw)


# ---- protobuf ------------------------------------------------------------------------------


def decode_protobuf(body: bytes) -> list[Span]:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise malformed(f"the body is not a protobuf ExportTraceServiceRequest: {exc}") from None
    spans: list[Span] = []
    append = spans.append
    kinds, statuses = _KINDS, _STATUS
    n_kinds, n_statuses = len(kinds), len(statuses)
    for r, rs in enumerate(request.resource_spans):
        resource = _pb_attributes(rs.resource.attributes)
        for s, ss in enumerate(rs.scope_spans):
            scope = ss.scope
            scope_name, scope_version = scope.name, scope.version
            for i, sp in enumerate(ss.spans):
                # each protobuf field is read once (upb builds a wrapper per access); the
                # error's location is only formatted for a bad id
                trace_id, span_id, parent = sp.trace_id, sp.span_id, sp.parent_span_id
                if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
                    _pb_id(trace_id, 16, f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}].traceId")
                if len(span_id) != 8 or span_id == _ZERO_SPAN:
                    _pb_id(span_id, 8, f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}].spanId")
                if parent and (len(parent) != 8 or parent == _ZERO_SPAN):
                    _pb_id(parent, 8, f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}].parentSpanId")
                kind = sp.kind
                status = sp.status
                code = status.code
                events = sp.events
                append(
                    Span(
                        trace_id.hex(),
                        span_id.hex(),
                        parent.hex() if parent else None,
                        sp.name,
                        kinds[kind] if 0 <= kind < n_kinds else kinds[0],
                        sp.start_time_unix_nano,
                        sp.end_time_unix_nano,
                        statuses[code] if 0 <= code < n_statuses else statuses[0],
                        status.message,
                        _pb_attributes(sp.attributes),
                        [
                            SpanEvent(e.name, e.time_unix_nano, _pb_attributes(e.attributes))
                            for e in events
                        ]
                        if events
                        else [],
                        resource,
                        scope_name,
                        scope_version,
                    )
                )
    return spans


_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_SCALARS = frozenset({"bool_value", "int_value", "double_value", "bytes_value"})


def _pb_id(raw: bytes, size: int, where: str) -> str:
    if len(raw) != size or not any(raw):
        raise malformed(f"{where}: expected {size} bytes, not all zero")
    return raw.hex()


def _enum_name(value: int, names: tuple[str, ...]) -> str:
    return names[value] if 0 <= value < len(names) else names[0]


def _pb_attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "string_value":  # most attributes: inline, no call per value
            out[kv.key] = value.string_value
        elif kind in _SCALARS:
            out[kv.key] = getattr(value, kind)
        else:
            out[kv.key] = _pb_value(value)
    return out


def _pb_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    return getattr(value, kind)


# ---- OTLP/JSON -----------------------------------------------------------------------------


def decode_json(body: bytes) -> list[Span]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise malformed(f"the body is not valid JSON: {exc}") from None
    request = _obj(doc, "the body")
    spans: list[Span] = []
    for r, rs in enumerate(_list(request, "resourceSpans", "the body")):
        rwhere = f"resourceSpans[{r}]"
        rs = _obj(rs, rwhere)
        res = _obj(_get(rs, "resource") or {}, f"{rwhere}.resource")
        resource = _json_attributes(res, f"{rwhere}.resource")
        for s, ss in enumerate(_list(rs, "scopeSpans", rwhere)):
            swhere = f"{rwhere}.scopeSpans[{s}]"
            ss = _obj(ss, swhere)
            scope = _obj(_get(ss, "scope") or {}, f"{swhere}.scope")
            for i, sp in enumerate(_list(ss, "spans", swhere)):
                where = f"{swhere}.spans[{i}]"
                spans.append(_json_span(_obj(sp, where), where, resource, scope))
    return spans


def _json_span(
    sp: Mapping[str, Any], where: str, resource: dict[str, Any], scope: Mapping[str, Any]
) -> Span:
    parent = _get(sp, "parentSpanId")
    status = _obj(_get(sp, "status") or {}, f"{where}.status")
    events = []
    for j, ev in enumerate(_list(sp, "events", where)):
        ewhere = f"{where}.events[{j}]"
        ev = _obj(ev, ewhere)
        events.append(
            SpanEvent(
                _str(_get(ev, "name"), f"{ewhere}.name"),
                _int(_get(ev, "timeUnixNano"), f"{ewhere}.timeUnixNano"),
                _json_attributes(ev, ewhere),
            )
        )
    return Span(
        trace_id=_hex_id(_get(sp, "traceId"), 16, f"{where}.traceId"),
        span_id=_hex_id(_get(sp, "spanId"), 8, f"{where}.spanId"),
        parent_span_id=_hex_id(parent, 8, f"{where}.parentSpanId") if parent else None,
        name=_str(_get(sp, "name"), f"{where}.name"),
        kind=_json_enum(_get(sp, "kind"), _KINDS, "SPAN_KIND_", f"{where}.kind"),
        start_time_unix_nano=_int(_get(sp, "startTimeUnixNano"), f"{where}.startTimeUnixNano"),
        end_time_unix_nano=_int(_get(sp, "endTimeUnixNano"), f"{where}.endTimeUnixNano"),
        status_code=_json_enum(_get(status, "code"), _STATUS, "STATUS_CODE_", f"{where}.status"),
        status_message=_str(_get(status, "message"), f"{where}.status.message"),
        attributes=_json_attributes(sp, where),
        events=events,
        resource=resource,
        scope_name=_str(_get(scope, "name"), f"{where} scope.name"),
        scope_version=_str(_get(scope, "version"), f"{where} scope.version"),
    )


def _get(obj: Mapping[str, Any], camel: str) -> Any:
    """A field by its lowerCamelCase name (OTLP/JSON) or its snake_case proto name."""
    value = obj.get(camel)
    if value is not None:
        return value
    snake = _SNAKE.get(camel)
    if snake is None:  # a fixed set of field names: computed once each
        snake = _SNAKE[camel] = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake)


_SNAKE: dict[str, str] = {}


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise malformed(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(obj: Mapping[str, Any], name: str, where: str) -> list[Any]:
    value = _get(obj, name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise malformed(f"{where}.{name}: expected an array, got {type(value).__name__}")
    return value


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise malformed(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _int(value: Any, where: str) -> int:
    """A (u)int64: a JSON number or a decimal string, as the JSON mapping allows."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise malformed(f"{where}: expected an integer or a decimal string, got {value!r:.60}")


def _hex_id(value: Any, size: int, where: str) -> str:
    text = _str(value, where)
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != size or not any(raw):
        raise malformed(
            f"{where}: expected {2 * size} hex digits, not all zero (OTLP/JSON ids are hex, "
            f"not base64), got {text[:64]!r}"
        )
    return raw.hex()


def _json_enum(value: Any, names: tuple[str, ...], prefix: str, where: str) -> str:
    if value is None:
        return names[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return _enum_name(value, names)
    if isinstance(value, str):
        name = value.upper().removeprefix(prefix).lower()
        if name in names:
            return name
    raise malformed(
        f"{where}: expected one of {', '.join(names)} (or its number), got {value!r:.60}"
    )


def _json_attributes(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, kv in enumerate(_list(obj, "attributes", where)):
        if not isinstance(kv, dict):
            _obj(kv, f"{where}.attributes[{k}]")
        key = kv.get("key")
        if not isinstance(key, str):
            key = _str(key, f"{where}.attributes[{k}].key")
        value = kv.get("value")
        if type(value) is dict and len(value) == 1:  # the common case, without formatting
            text = value.get("stringValue")  # the error location of the general case
            if type(text) is str:
                out[key] = text
                continue
        out[key] = _json_value(value, f"{where}.attributes[{key!r}]")
    return out


def _json_value(value: Any, where: str) -> Any:
    if value is None:
        return None
    value = _obj(value, where)
    if not value:
        return None
    if len(value) != 1:
        raise malformed(f"{where}: an AnyValue holds exactly one kind, got {sorted(value)}")
    ((kind, inner),) = value.items()
    if kind in ("stringValue", "string_value"):
        return _str(inner, where)
    if kind in ("boolValue", "bool_value"):
        if not isinstance(inner, bool):
            raise malformed(f"{where}: expected true or false, got {inner!r:.60}")
        return inner
    if kind in ("intValue", "int_value"):
        return _int(inner, where)
    if kind in ("doubleValue", "double_value"):
        return _double(inner, where)
    if kind in ("bytesValue", "bytes_value"):
        try:
            return base64.b64decode(_str(inner, where), validate=True)
        except (binascii.Error, ValueError):
            raise malformed(f"{where}: bytesValue is not base64") from None
    if kind in ("arrayValue", "array_value"):
        items = _list(_obj(inner, where), "values", where)
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(items)]
    if kind in ("kvlistValue", "kvlist_value"):
        items = _list(_obj(inner, where), "values", where)
        return _json_attributes({"attributes": items}, where)
    raise malformed(f"{where}: unknown AnyValue kind {kind!r:.60}")


def _double(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.lower().replace("infinity", "inf"))
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise malformed(f"{where}: expected a number, got {value!r:.60}")
