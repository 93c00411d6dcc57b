"""The trace API over spans sent by the real OpenTelemetry SDK exporter: a RAG-shaped trace
comes back whole as a span tree, every list filter includes and excludes, pages follow the
cursor, a resent export stores nothing twice, and OTLP/JSON (hex ids) lands the same."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from tests.conftest import RunningServer, running_server

MS = 1_000_000
NOW_NS = time.time_ns()
T0 = NOW_NS - 60_000 * MS  # the RAG trace started a minute ago
T1 = NOW_NS - 30_000 * MS  # the quick trace, later
OLD = NOW_NS - 2 * 86_400_000 * MS  # two days ago: outside the default 24 h

INPUT = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]}])
OUTPUT = json.dumps(
    [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Paris."}],
            "finish_reason": "stop",
        }
    ]
)
DOCS = ("Paris is the capital of France.", "France is in Europe.")


def _provider(service: str) -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def rag_trace(service: str = "rag-app") -> Sequence[ReadableSpan]:
    """root server span -> retrieval (OpenInference RETRIEVER) and an LLM chat span (prompt,
    response, conversation id, tokens) -> under the chat span, a failed HTTP call."""
    provider, memory = _provider(service)
    tracer = provider.get_tracer("tests.traces", "2.1")
    root = tracer.start_span("POST /chat", kind=SpanKind.SERVER, start_time=T0)
    ctx = set_span_in_context(root)
    retrieve = tracer.start_span(
        "retrieve",
        context=ctx,
        start_time=T0 + 100 * MS,
        attributes={
            "openinference.span.kind": "RETRIEVER",
            "input.value": "capital of France",
            "retrieval.documents.0.document.content": DOCS[0],
            "retrieval.documents.1.document.content": DOCS[1],
            "retrieval.documents.0.document.score": 0.9,
        },
    )
    retrieve.end(end_time=T0 + 300 * MS)
    chat = tracer.start_span(
        "chat gpt-4o",
        context=ctx,
        kind=SpanKind.CLIENT,
        start_time=T0 + 400 * MS,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 4,
            "gen_ai.usage.cost": 0.01,
            "gen_ai.input.messages": INPUT,
            "gen_ai.output.messages": OUTPUT,
            "gen_ai.conversation.id": "conv-42",
            "gen_ai.response.finish_reasons": ("stop",),
        },
    )
    http = tracer.start_span(
        "POST api.example.com",
        context=set_span_in_context(chat),
        kind=SpanKind.CLIENT,
        start_time=T0 + 500 * MS,
        attributes={"http.response.status_code": 502, "retry": True},
    )
    http.add_event("exception", {"exception.type": "BadGateway"}, timestamp=T0 + 550 * MS)
    http.set_status(Status(StatusCode.ERROR, "bad gateway"))
    http.end(end_time=T0 + 600 * MS)
    chat.end(end_time=T0 + 1_600 * MS)
    root.end(end_time=T0 + 2_000 * MS)
    provider.shutdown()
    return memory.get_finished_spans()


def quick_trace() -> Sequence[ReadableSpan]:
    """Another service: one ok LLM call, dearer, 100 ms, conversation conv-7."""
    provider, memory = _provider("other-app")
    tracer = provider.get_tracer("tests.traces")
    chat = tracer.start_span(
        "chat small",
        start_time=T1,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "small",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.usage.cost": 0.5,
            "gen_ai.conversation.id": "conv-7",
        },
    )
    chat.end(end_time=T1 + 100 * MS)
    provider.shutdown()
    return memory.get_finished_spans()


def old_trace() -> Sequence[ReadableSpan]:
    provider, memory = _provider("rag-app")
    span = provider.get_tracer("tests.traces").start_span("nightly job", start_time=OLD)
    span.end(end_time=OLD + 5 * MS)
    provider.shutdown()
    return memory.get_finished_spans()


def export(server: RunningServer, spans: Sequence[ReadableSpan]) -> None:
    exporter = OTLPSpanExporter(
        endpoint=server.url + "/v1/traces",
        headers={"Authorization": f"Bearer {server.ingest_key}"},
        timeout=5,
    )
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()


def hex_trace(spans: Sequence[ReadableSpan]) -> str:
    return format(spans[0].context.trace_id, "032x")


def hex_span(span: ReadableSpan) -> str:
    return format(span.context.span_id, "016x")


def by_name(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def get(server: RunningServer, path: str, **params: Any) -> httpx.Response:
    with server.client(server.read_key) as c:
        return c.get(path, params=params)


def listed(server: RunningServer, **params: Any) -> list[str]:
    r = get(server, "/api/v1/traces", **params)
    assert r.status_code == 200, r.text
    return [t["trace_id"] for t in r.json()["traces"]]


def test_rag_trace_comes_back_as_a_tree(server: RunningServer) -> None:
    """The exporter's four spans come back depth first with depths, parents, durations
    (end - start), attributes and events as sent, prompt/response of the LLM span; the
    summary adds them up; the LLM event carries trace, conversation and retrieved context."""
    spans = rag_trace()
    export(server, spans)
    trace_id = hex_trace(spans)
    r = get(server, f"/api/v1/traces/{trace_id.upper()}")
    assert r.status_code == 200, r.text
    trace = r.json()
    named = by_name(spans)
    assert [(s["name"], s["depth"]) for s in trace["spans"]] == [
        ("POST /chat", 0),
        ("retrieve", 1),
        ("chat gpt-4o", 1),
        ("POST api.example.com", 2),
    ]
    for got in trace["spans"]:
        sent = named[got["name"]]
        assert got["trace_id"] == trace_id
        assert got["span_id"] == hex_span(sent)
        parent = sent.parent
        assert got["parent_span_id"] == (format(parent.span_id, "016x") if parent else None)
        assert sent.end_time is not None and sent.start_time is not None
        assert got["duration_ms"] == pytest.approx((sent.end_time - sent.start_time) / 1e6)
        assert got["attributes"] == {
            k: list(v) if isinstance(v, tuple) else v for k, v in (sent.attributes or {}).items()
        }
        assert got["resource"]["service.name"] == "rag-app"
        assert got["model"] == got["service"] == "rag-app"
        assert got["scope"] == "tests.traces/2.1"
    root, retrieve, chat, http = trace["spans"]
    assert root["kind"] == "server" and http["kind"] == "client"
    assert http["status"] == "error" and http["status_message"] == "bad gateway"
    assert http["events"] == [
        {
            "name": "exception",
            "time": T0 + 550 * MS,
            "attributes": {"exception.type": "BadGateway"},
        }
    ]
    assert chat["is_llm"] and not retrieve["is_llm"]
    assert chat["prompt"] == "Capital of France?" and chat["response"] == "Paris."
    assert (chat["input_tokens"], chat["output_tokens"], chat["cost_usd"]) == (120, 4, 0.01)
    assert chat["conversation_id"] == "conv-42"
    assert "prompt" not in root and trace["feedback"] == []
    assert all(e["event_id"] == chat["span_id"] for e in chat["evaluations"])
    assert trace["trace_id"] == trace_id
    assert trace["root_name"] == "POST /chat"
    assert trace["duration_ms"] == pytest.approx(2000)
    assert len(trace["spans"]) == 4
    assert (trace["llm_calls"], trace["input_tokens"], trace["output_tokens"]) == (1, 120, 4)
    assert trace["cost_usd"] == pytest.approx(0.01)
    assert trace["status"] == "error" and trace["models"] == ["rag-app"]
    assert trace["conversation_id"] == "conv-42"

    r = get(server, f"/api/v1/traces/{'0' * 31}1")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = get(server, "/api/v1/traces/not-hex")
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "trace_id"
    with httpx.Client(base_url=server.url) as c:
        assert c.get(f"/api/v1/traces/{trace_id}").status_code == 401

    server.handle.stop()  # the event row, read from the database file
    con = duckdb.connect(str(server.data_dir / "watchkeeper.duckdb"), read_only=True)
    try:
        (mid,) = con.execute("SELECT id FROM models WHERE name = 'rag-app'").fetchone() or ()
        rows = con.execute(
            f"SELECT event_id, trace_id, conversation_id, context FROM ev_{mid}"
        ).fetchall()
    finally:
        con.close()
    assert rows == [(chat["span_id"], trace_id, "conv-42", "\n\n".join(DOCS))]


def _seed(server: RunningServer) -> tuple[str, str, str]:
    rag, quick, old = rag_trace(), quick_trace(), old_trace()
    for spans in (rag, quick, old):
        export(server, spans)
    return hex_trace(rag), hex_trace(quick), hex_trace(old)


def test_list_filters_include_and_exclude(server: RunningServer) -> None:
    """Each filter keeps the traces it names and drops the others; the default range is the
    last 24 h; the summary of a listed trace adds up its spans."""
    rag, quick, old = _seed(server)
    store = server.handle.app.state.store
    chat = next(s["span_id"] for s in store.trace_spans(rag) if s["is_llm"])
    quick_chat = store.trace_spans(quick)[0]["span_id"]
    store.record_evaluations(
        "rag-app",
        [{"event_id": chat, "trace_id": rag, "evaluator": "judge_relevance", "flagged": True}],
    )
    store.record_evaluations(
        "other-app",
        [
            {
                "event_id": quick_chat,
                "trace_id": quick,
                "evaluator": "judge_relevance",
                "flagged": False,
            }
        ],
    )

    assert listed(server) == [quick, rag]  # newest first; the old one is outside 24 h
    start = "2000-01-01T00:00:00Z"
    assert listed(server, start=start) == [quick, rag, old]
    assert listed(server, start=start, end=_iso(T0 - 1000 * MS)) == [old]
    assert listed(server, model="rag-app") == [rag]
    assert listed(server, model="other-app") == [quick]
    assert listed(server, model="nobody") == []
    assert listed(server, status="error") == [rag]
    assert listed(server, status="ok") == [quick]
    assert listed(server, min_latency_ms=1999) == [rag]
    assert listed(server, min_latency_ms=2001) == []
    assert listed(server, min_cost_usd=0.4) == [quick]
    assert listed(server, min_cost_usd=0.005) == [quick, rag]
    assert listed(server, conversation_id="conv-7") == [quick]
    assert listed(server, conversation_id="conv-42") == [rag]
    assert listed(server, evaluator="judge_relevance", flagged="true") == [rag]
    assert listed(server, evaluator="judge_relevance", flagged="false") == [quick]
    assert listed(server, evaluator="judge_relevance") == [quick, rag]
    assert listed(server, evaluator="judge_correctness") == []

    items = {t["trace_id"]: t for t in get(server, "/api/v1/traces").json()["traces"]}
    got = items[rag]
    assert got["flags"]["judge_relevance"] == 1 and items[quick]["flags"]["judge_relevance"] == 0
    assert (got["spans"], got["llm_calls"], got["status"]) == (4, 1, "error")
    assert got["root_name"] == "POST /chat" and got["models"] == ["rag-app"]
    assert got["duration_ms"] == pytest.approx(2000)
    assert got["conversation_id"] == "conv-42" and got["cost_usd"] == pytest.approx(0.01)

    detail = get(server, f"/api/v1/traces/{rag}").json()
    chat_span = next(s for s in detail["spans"] if s["is_llm"])
    assert [e["evaluator"] for e in chat_span["evaluations"]].count("judge_relevance") == 1


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9)) + "Z"


def test_bad_filters_are_422s_naming_the_field(server: RunningServer) -> None:
    """Every malformed filter answers 422 invalid_parameter (like every other endpoint's bad
    query parameter) with row/field/reason."""
    cases = {
        "status": "broken",
        "min_latency_ms": "slow",
        "min_cost_usd": "-1",
        "evaluator": "vibes",
        "flagged": "maybe",
        "start": "yesterday",
        "limit": "501",
        "cursor": "nope",
    }
    for field, value in cases.items():
        r = get(server, "/api/v1/traces", **{field: value})
        assert r.status_code == 422, (field, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_parameter"
        assert error["details"] == [
            {"row": None, "field": field, "reason": error["details"][0]["reason"]}
        ]
    r = get(server, "/api/v1/traces", start="2030-01-02T00:00:00Z", end="2030-01-01T00:00:00Z")
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "start"


def test_paging_and_resend(server: RunningServer) -> None:
    """A resent export stores nothing twice; pages of 2 walk every trace once, newest first,
    and the last page has no cursor."""
    spans = rag_trace()
    export(server, spans)
    export(server, spans)
    store = server.handle.app.state.store
    assert len(store.trace_spans(hex_trace(spans))) == 4
    ids = [hex_trace(spans)]
    for _ in range(4):
        more = quick_trace()
        export(server, more)
        ids.append(hex_trace(more))
    everything = listed(server, limit=500)
    assert sorted(everything) == sorted(ids) and len(everything) == 5
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = get(server, "/api/v1/traces", **params).json()
        seen += [t["trace_id"] for t in page["traces"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything


def test_json_payload_with_hex_ids(server: RunningServer) -> None:
    """An OTLP/JSON export (upper-case hex ids, int64 as strings) lands as the same spans."""
    trace_id = "5B8EFFF798038103D269B633813FC60C"
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "js-app"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "js"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "EEE19B7EC3C1B173",
                                "name": "handle",
                                "kind": "SPAN_KIND_SERVER",
                                "startTimeUnixNano": str(T1),
                                "endTimeUnixNano": str(T1 + 900 * MS),
                            },
                            {
                                "traceId": trace_id,
                                "spanId": "EEE19B7EC3C1B174",
                                "parentSpanId": "EEE19B7EC3C1B173",
                                "name": "chat claude",
                                "kind": 3,
                                "startTimeUnixNano": str(T1 + 100 * MS),
                                "endTimeUnixNano": T1 + 800 * MS,
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "chat"},
                                    },
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "42"},
                                    },
                                    {"key": "session.id", "value": {"stringValue": "s-1"}},
                                ],
                                "status": {"code": 2, "message": "overloaded"},
                            },
                        ],
                    }
                ],
            }
        ]
    }
    headers = {"Authorization": f"Bearer {server.ingest_key}", "Content-Type": "application/json"}
    r = httpx.post(server.url + "/v1/traces", content=json.dumps(doc), headers=headers)
    assert r.status_code == 200 and r.json() == {}, r.text
    trace = get(server, f"/api/v1/traces/{trace_id.lower()}").json()
    assert [(s["span_id"], s["depth"], s["kind"]) for s in trace["spans"]] == [
        ("eee19b7ec3c1b173", 0, "server"),
        ("eee19b7ec3c1b174", 1, "client"),
    ]
    chat = trace["spans"][1]
    assert chat["parent_span_id"] == "eee19b7ec3c1b173"
    assert chat["duration_ms"] == pytest.approx(700)
    assert chat["attributes"]["gen_ai.usage.input_tokens"] == 42
    assert chat["conversation_id"] == "s-1" and chat["input_tokens"] == 42
    assert chat["status"] == "error" and chat["status_message"] == "overloaded"
    assert listed(server, conversation_id="s-1") == [trace_id.lower()]


def test_spans_survive_a_restart(tmp_path: Path) -> None:
    """Spans are in the database file: a new server on the same directory lists them."""
    with running_server(tmp_path) as server:
        spans = rag_trace()
        export(server, spans)
    with running_server(tmp_path) as server:
        assert listed(server) == [hex_trace(spans)]
