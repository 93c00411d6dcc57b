"""OTLP decoding (protobuf and OTLP/JSON agree) and the span -> LLM-call event mapping."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

from watchkeeper.otlp import Span, SpanEvent, decode_request, is_llm_call, llm_events, span_event
from watchkeeper.otlp.genai import (
    conversation_id,
    is_retrieval,
    messages_text,
    model_name,
    retrieved_text,
)
from watchkeeper.schema import BatchError

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
PARENT = "eee19b7ec3c1b173"
START = 1_764_547_200_000_000_000  # 2025-12-01T00:00:00Z
END = START + 1_234_567_891

EXPECTED_SPAN = Span(
    trace_id=TRACE,
    span_id=SPAN,
    parent_span_id=PARENT,
    name="chat m",
    kind="client",
    start_time_unix_nano=START,
    end_time_unix_nano=END,
    status_code="error",
    status_message="boom",
    attributes={
        "s": "text",
        "i": 9007199254740993,  # beyond float precision: kept exact
        "d": 0.5,
        "b": True,
        "arr": ["x", 2],
        "kv": {"inner": "v", "n": -1},
        "raw": b"\x00\x01",
        "empty": None,
    },
    events=[SpanEvent("ev", START + 5, {"k": "v"})],
    resource={"service.name": "svc"},
    scope_name="lib",
    scope_version="2.0",
)


def _json_body() -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "lib", "version": "2.0"},
                        "spans": [
                            {
                                "traceId": TRACE.upper(),
                                "spanId": SPAN,
                                "parentSpanId": PARENT,
                                "name": "chat m",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": str(START),
                                "endTimeUnixNano": END,
                                "attributes": [
                                    {"key": "s", "value": {"stringValue": "text"}},
                                    {"key": "i", "value": {"intValue": "9007199254740993"}},
                                    {"key": "d", "value": {"doubleValue": 0.5}},
                                    {"key": "b", "value": {"boolValue": True}},
                                    {
                                        "key": "arr",
                                        "value": {
                                            "arrayValue": {
                                                "values": [{"stringValue": "x"}, {"intValue": 2}]
                                            }
                                        },
                                    },
                                    {
                                        "key": "kv",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "inner", "value": {"stringValue": "v"}},
                                                    {"key": "n", "value": {"intValue": "-1"}},
                                                ]
                                            }
                                        },
                                    },
                                    {
                                        "key": "raw",
                                        "value": {
                                            "bytesValue": base64.b64encode(b"\x00\x01").decode()
                                        },
                                    },
                                    {"key": "empty", "value": {}},
                                ],
                                "events": [
                                    {
                                        "timeUnixNano": str(START + 5),
                                        "name": "ev",
                                        "attributes": [{"key": "k", "value": {"stringValue": "v"}}],
                                    }
                                ],
                                "status": {"code": 2, "message": "boom"},
                            }
                        ],
                    }
                ],
            }
        ]
    }


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _pb_body() -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", AnyValue(string_value="svc")))
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "lib", "2.0"
    span = ss.spans.add(
        trace_id=bytes.fromhex(TRACE),
        span_id=bytes.fromhex(SPAN),
        parent_span_id=bytes.fromhex(PARENT),
        name="chat m",
        kind=PbSpan.SPAN_KIND_CLIENT,
        start_time_unix_nano=START,
        end_time_unix_nano=END,
        status=PbStatus(code=PbStatus.STATUS_CODE_ERROR, message="boom"),
    )
    arr = AnyValue()
    arr.array_value.values.extend([AnyValue(string_value="x"), AnyValue(int_value=2)])
    kv = AnyValue()
    kv.kvlist_value.values.extend(
        [_kv("inner", AnyValue(string_value="v")), _kv("n", AnyValue(int_value=-1))]
    )
    span.attributes.extend(
        [
            _kv("s", AnyValue(string_value="text")),
            _kv("i", AnyValue(int_value=9007199254740993)),
            _kv("d", AnyValue(double_value=0.5)),
            _kv("b", AnyValue(bool_value=True)),
            _kv("arr", arr),
            _kv("kv", kv),
            _kv("raw", AnyValue(bytes_value=b"\x00\x01")),
            _kv("empty", AnyValue()),
        ]
    )
    event = span.events.add(time_unix_nano=START + 5, name="ev")
    event.attributes.append(_kv("k", AnyValue(string_value="v")))
    return request.SerializeToString()


def test_json_and_protobuf_decode_to_the_same_span() -> None:
    """Every AnyValue kind, hex ids (upper case too), int64 as string or number, enums as
    names or numbers; the protobuf of the same request gives the same record; gzip too."""
    body = json.dumps(_json_body()).encode()
    assert decode_request(body, "application/json; charset=utf-8") == [EXPECTED_SPAN]
    assert decode_request(_pb_body(), "application/x-protobuf") == [EXPECTED_SPAN]
    assert decode_request(gzip.compress(_pb_body()), "application/x-protobuf", "gzip") == [
        EXPECTED_SPAN
    ]
    assert EXPECTED_SPAN.service_name == "svc"


def test_empty_requests_hold_no_spans() -> None:
    assert decode_request(b"{}", "application/json") == []
    assert decode_request(b"", "application/x-protobuf") == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.update(spanId="7u4bfsPBsXQ="), "spans[0].spanId: expected 16 hex digits"),
        (lambda s: s.update(traceId="0" * 32), "traceId: expected 32 hex digits, not all zero"),
        (lambda s: s.update(startTimeUnixNano="soon"), "startTimeUnixNano: expected an integer"),
        (lambda s: s.update(kind="SPAN_KIND_WEIRD"), "kind: expected one of unspecified"),
        (
            lambda s: s.update(
                attributes=[{"key": "a", "value": {"intValue": "1", "boolValue": True}}]
            ),
            "exactly one kind",
        ),
        (
            lambda s: s.update(attributes=[{"key": "a", "value": {"fooValue": 1}}]),
            "unknown AnyValue kind",
        ),
        (
            lambda s: s.update(attributes=[{"key": "a", "value": {"bytesValue": "!!"}}]),
            "not base64",
        ),
        (lambda s: s.update(events="x"), "events: expected an array"),
    ],
)
def test_json_errors_say_where(mutate: Any, message: str) -> None:
    doc = _json_body()
    mutate(doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0])
    with pytest.raises(BatchError) as info:
        decode_request(json.dumps(doc).encode(), "application/json")
    assert info.value.status == 400 and info.value.code == "malformed_body"
    assert message in info.value.message


def test_unsupported_content_type_is_415() -> None:
    with pytest.raises(BatchError) as info:
        decode_request(b"{}", "application/xml")
    assert info.value.status == 415


def _span(attrs: dict[str, Any], **kw: Any) -> Span:
    fields: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": SPAN,
        "parent_span_id": None,
        "name": "x",
        "kind": "client",
        "start_time_unix_nano": START,
        "end_time_unix_nano": END,
        "status_code": "unset",
        "status_message": "",
        "attributes": attrs,
        "resource": {"service.name": "Support Bot/v2"},
    }
    fields.update(kw)
    return Span(**fields)


def test_current_genai_span() -> None:
    span = _span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.response.time_to_first_chunk": 0.25,
            "gen_ai.response.finish_reasons": ["length", "stop"],
            "gen_ai.usage.cost": 0.0031,
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Hi?"}]}]
            ),
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [
                            {"type": "text", "content": "Hello"},
                            {"type": "tool_call", "name": "f"},
                            {"type": "text", "content": "there"},
                        ],
                    }
                ]
            ),
        }
    )
    assert span_event(span) == {
        "event_id": SPAN,
        "trace_id": TRACE,
        "timestamp": "2025-12-01T00:00:01.234567Z",
        "version": "gpt-4o-2024-08-06",
        "latency_ms": 1234.567891,
        "status": "ok",
        "input_tokens": 100,
        "output_tokens": 20,
        "time_to_first_token_ms": 250.0,
        "cost_usd": 0.0031,
        "prompt": "Hi?",
        "response": "Hello\nthere",
        "segments": {
            "provider": "openai",
            "operation": "chat",
            "request_model": "gpt-4o",
            "finish_reason": "length",
        },
    }
    assert model_name(span) == "Support-Bot-v2"


def test_older_genai_span_with_error() -> None:
    span = _span(
        {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-3",
            "gen_ai.usage.prompt_tokens": 50,
            "gen_ai.usage.completion_tokens": 5,
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "Be nice.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "Hi",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "Hello",
            "gen_ai.completion.0.finish_reason": "max_tokens",
        },
        status_code="error",
        events=[
            SpanEvent(
                "exception", END, {"exception.type": "RateLimit", "exception.message": "slow down"}
            )
        ],
    )
    assert span_event(span) == {
        "event_id": SPAN,
        "trace_id": TRACE,
        "timestamp": "2025-12-01T00:00:01.234567Z",
        "version": "claude-3",
        "latency_ms": 1234.567891,
        "status": "error",
        "error": "RateLimit: slow down",
        "input_tokens": 50,
        "output_tokens": 5,
        "prompt": "system: Be nice.\nuser: Hi",
        "response": "Hello",
        "segments": {
            "provider": "anthropic",
            "request_model": "claude-3",
            "finish_reason": "max_tokens",
        },
    }


def test_older_genai_content_events_and_attributes() -> None:
    by_events = _span(
        {"gen_ai.operation.name": "text_completion", "gen_ai.system": "cohere"},
        events=[
            SpanEvent(
                "gen_ai.content.prompt",
                START,
                {"gen_ai.prompt": '[{"role": "user", "content": "A"}]'},
            ),
            SpanEvent("gen_ai.content.completion", END, {"gen_ai.completion": "B"}),
        ],
    )
    event = span_event(by_events)
    assert (event["prompt"], event["response"]) == ("A", "B")
    by_attrs = _span(
        {"gen_ai.operation.name": "chat", "gen_ai.prompt": "P", "gen_ai.completion": "C"}
    )
    event = span_event(by_attrs)
    assert (event["prompt"], event["response"]) == ("P", "C")


def test_openinference_span() -> None:
    span = _span(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.provider": "openai",
            "llm.token_count.prompt": 7,
            "llm.token_count.completion": 3,
            "llm.cost.total": 0.002,
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "What is 2+2?",
            "output.value": "4",
        },
        status_code="ok",
        resource={},
    )
    assert span_event(span) == {
        "event_id": SPAN,
        "trace_id": TRACE,
        "timestamp": "2025-12-01T00:00:01.234567Z",
        "version": "gpt-4o-mini",
        "latency_ms": 1234.567891,
        "status": "ok",
        "input_tokens": 7,
        "output_tokens": 3,
        "cost_usd": 0.002,
        "prompt": "What is 2+2?",
        "response": "4",
        "segments": {"provider": "openai"},
    }
    assert model_name(span) == "unknown_service"


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"gen_ai.operation.name": "chat"}, True),
        ({"gen_ai.operation.name": "generate_content"}, True),
        ({"gen_ai.operation.name": "text_completion"}, True),
        ({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e"}, False),
        ({"gen_ai.operation.name": "execute_tool"}, False),
        ({"openinference.span.kind": "LLM"}, True),
        ({"openinference.span.kind": "llm"}, True),
        ({"openinference.span.kind": "RETRIEVER"}, False),
        ({"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4"}, True),
        ({"gen_ai.system": "openai"}, False),
        ({"http.method": "GET"}, False),
    ],
)
def test_which_spans_are_llm_calls(attrs: dict[str, Any], expected: bool) -> None:
    assert is_llm_call(_span(attrs)) is expected


def test_llm_events_group_by_service_and_count_the_rest() -> None:
    a = _span({"gen_ai.operation.name": "chat"}, resource={"service.name": "a"})
    b = _span(
        {"gen_ai.operation.name": "chat"},
        span_id="00000000000000bb",
        resource={"service.name": "b"},
    )
    other = _span({"db.system": "postgresql"})
    grouped, ignored = llm_events([a, other, b, other])
    assert {k: [e["event_id"] for e in v] for k, v in grouped.items()} == {
        "a": [SPAN],
        "b": ["00000000000000bb"],
    }
    assert ignored == 2


def test_bounded_and_minimal_events() -> None:
    """A bare LLM span gives only id, time, latency and status; long values are cut."""
    bare = _span({"gen_ai.operation.name": "chat"})
    assert span_event(bare) == {
        "event_id": SPAN,
        "trace_id": TRACE,
        "timestamp": "2025-12-01T00:00:01.234567Z",
        "latency_ms": 1234.567891,
        "status": "ok",
        "segments": {"operation": "chat"},
    }
    long = _span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m" * 500,
            "gen_ai.usage.input_tokens": -3,
            "gen_ai.usage.output_tokens": "12",
            "gen_ai.response.time_to_first_chunk": float("nan"),
        }
    )
    event = span_event(long)
    assert event["segments"]["request_model"] == "m" * 128
    assert event["version"] == "m" * 500
    assert "input_tokens" not in event and "time_to_first_token_ms" not in event
    assert event["output_tokens"] == 12


def test_messages_text() -> None:
    assert messages_text("plain text") == "plain text"
    assert messages_text("[not json") is None
    assert messages_text([{"role": "user", "content": [{"type": "text", "text": "a"}]}]) == "a"
    assert messages_text("[]") is None
    assert messages_text(None) is None


# ---- trace, conversation and retrieved context ---------------------------------------------

OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_conversation_id_from_genai_or_openinference() -> None:
    """gen_ai.conversation.id wins over OpenInference session.id; none gives no field."""
    both = _span(
        {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "c1", "session.id": "s"}
    )
    assert conversation_id(both) == "c1" and span_event(both)["conversation_id"] == "c1"
    oi = _span({"openinference.span.kind": "LLM", "session.id": "s9"})
    assert span_event(oi)["conversation_id"] == "s9"
    assert "conversation_id" not in span_event(_span({"gen_ai.operation.name": "chat"}))


def _retrieval(span_id: str, attrs: dict[str, Any], **kw: Any) -> Span:
    return _span(attrs, span_id=span_id, start_time_unix_nano=START - 10, **kw)


def test_retrieval_spans_of_each_convention() -> None:
    """OpenInference RETRIEVER documents, GenAI gen_ai.retrieval.documents (structured or
    JSON text, content or text), else output.value."""
    oi = _retrieval(
        "00000000000000a1",
        {
            "openinference.span.kind": "RETRIEVER",
            "retrieval.documents.0.document.content": "one",
            "retrieval.documents.1.document.content": "two",
            "retrieval.documents.1.document.score": 0.5,
        },
    )
    assert is_retrieval(oi) and retrieved_text(oi) == "one\n\ntwo"
    docs = [{"id": "d1", "score": 0.9, "content": "alpha"}, {"id": "d2", "text": "beta"}]
    for value in (docs, json.dumps(docs)):
        genai = _retrieval(
            "00000000000000a2",
            {"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.documents": value},
        )
        assert is_retrieval(genai) and retrieved_text(genai) == "alpha\n\nbeta"
    ids_only = _retrieval(
        "00000000000000a3",
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.retrieval.documents": json.dumps([{"id": "d1", "score": 0.9}]),
            "output.value": "fallback text",
        },
    )
    assert retrieved_text(ids_only) == "fallback text"
    assert not is_retrieval(_span({"gen_ai.operation.name": "chat"}))
    assert not is_retrieval(_span({"openinference.span.kind": "LLM"}))


def test_llm_event_context_from_its_trace_in_the_same_export() -> None:
    """An LLM call's context is the text of the retrieval spans of its own trace that started
    before it ended, in start order; its own watchkeeper.context attribute wins; every event
    carries its trace id."""
    early = _retrieval(
        "00000000000000a1",
        {"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.content": "B"},
    )
    earlier = _span(
        {"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.content": "A"},
        span_id="00000000000000a0",
        start_time_unix_nano=START - 20,
    )
    after = _span(
        {"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.content": "late"},
        span_id="00000000000000a2",
        start_time_unix_nano=END + 1,
    )
    elsewhere = _retrieval(
        "00000000000000a3",
        {"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.content": "X"},
        trace_id=OTHER_TRACE,
    )
    call = _span({"gen_ai.operation.name": "chat"})
    own = _span(
        {"gen_ai.operation.name": "chat", "watchkeeper.context": "given"},
        span_id="00000000000000cc",
    )
    lonely = _span(
        {"gen_ai.operation.name": "chat"}, span_id="00000000000000dd", trace_id=OTHER_TRACE[::-1]
    )
    grouped, others = llm_events([call, after, early, elsewhere, own, earlier, lonely])
    events = {e["event_id"]: e for e in grouped["Support-Bot-v2"]}
    assert others == 4
    assert events[SPAN]["context"] == "A\n\nB"
    assert events[SPAN]["trace_id"] == TRACE
    assert events["00000000000000cc"]["context"] == "given"
    assert "context" not in events["00000000000000dd"]
