"""OTLP/HTTP trace ingestion: the real OpenTelemetry SDK exporter and spec-shaped JSON payloads
against a real server; GenAI (current and older names) and OpenInference spans become LLM-call
events of their service; other spans are ignored."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from tests.conftest import RunningServer, free_port, running_server
from watchkeeper.llm.prices import PriceTable
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.keys import KeyStore

NOW_NS = time.time_ns()
T0 = NOW_NS - 30 * 1_000_000_000  # spans started 30 s ago

INPUT_MESSAGES = json.dumps(
    [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]},
    ]
)
OUTPUT_MESSAGES = json.dumps(
    [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Paris."}],
            "finish_reason": "stop",
        }
    ]
)


def _record_spans(service: str) -> Sequence[ReadableSpan]:
    """An agent trace made with the real SDK: a root span, a current-GenAI chat span, an
    older-names span (error), an OpenInference LLM span, and two non-LLM children."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.otlp", "1.0")
    root = tracer.start_span("invoke_agent helper", start_time=T0)
    ctx = set_span_in_context(root)
    chat = tracer.start_span(
        "chat gpt-4o",
        context=ctx,
        kind=SpanKind.CLIENT,
        start_time=T0,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.response.time_to_first_chunk": 0.25,
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.input.messages": INPUT_MESSAGES,
            "gen_ai.output.messages": OUTPUT_MESSAGES,
            "gen_ai.conversation.id": "conv-1",
        },
    )
    chat.end(end_time=T0 + 1_500_000_000)
    old = tracer.start_span(
        "anthropic.completion",
        context=ctx,
        kind=SpanKind.CLIENT,
        start_time=T0,
        attributes={
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-3-haiku",
            "gen_ai.usage.prompt_tokens": 50,
            "gen_ai.usage.completion_tokens": 5,
        },
    )
    old.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "Hi"}, timestamp=T0 + 1)
    old.add_event("gen_ai.content.completion", {"gen_ai.completion": "Hel"}, timestamp=T0 + 2)
    old.set_status(Status(StatusCode.ERROR, "rate limited"))
    old.end(end_time=T0 + 500_000_000)
    oi = tracer.start_span(
        "ChatCompletion",
        context=ctx,
        start_time=T0,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.provider": "openai",
            "llm.token_count.prompt": 7,
            "llm.token_count.completion": 3,
            "llm.cost.total": 0.002,
            "input.value": "What is 2+2?",
            "output.value": "4",
        },
    )
    oi.end(end_time=T0 + 200_000_000)
    retrieval = tracer.start_span(
        "retrieval docs",
        context=ctx,
        start_time=T0,
        attributes={"gen_ai.operation.name": "retrieval"},
    )
    retrieval.end(end_time=T0 + 100_000_000)
    http = tracer.start_span("GET /search", context=ctx, start_time=T0)
    http.end(end_time=T0 + 50_000_000)
    root.end(end_time=T0 + 2_000_000_000)
    provider.shutdown()
    return memory.get_finished_spans()


def _table_cost() -> float:
    """What the shipped price table charges today for the two spans without a cost."""
    now = datetime.now(timezone.utc)
    table = PriceTable.load()
    gpt = table.cost("openai", "gpt-4o-2024-08-06", now, 100, 20)
    claude = table.cost("anthropic", "claude-3-haiku", now, 50, 5)
    assert gpt is not None and claude is not None
    return gpt + claude


def _exporter(server: RunningServer, key: str | None = None, **kw: Any) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=server.url + "/v1/traces",
        headers={"Authorization": f"Bearer {key or server.ingest_key}"},
        timeout=2,
        **kw,
    )


def _metrics(server: RunningServer, model: str, names: str) -> dict[str, Any]:
    with server.client(server.read_key) as c:
        r = c.get(f"/api/v1/models/{model}/metrics", params={"names": names, "window": "all"})
    assert r.status_code == 200, r.text
    return {k: v[0] if v else None for k, v in r.json()["metrics"].items()}


def _stored(data_dir: Path, model: str) -> dict[str, tuple[Any, ...]]:
    """event_id -> (version, is_error, prompt, response, segments) read from the database."""
    con = duckdb.connect(str(data_dir / "watchkeeper.duckdb"), read_only=True)
    try:
        row = con.execute("SELECT id FROM models WHERE name = ?", [model]).fetchone()
        assert row is not None
        rows = con.execute(
            f"SELECT event_id, version, is_error, error, prompt, response, segments "
            f"FROM ev_{row[0]}"
        ).fetchall()
    finally:
        con.close()
    return {r[0]: r[1:] for r in rows}


def test_real_exporter_protobuf(tmp_path: Path) -> None:
    """The SDK's exporter (protobuf, via a BatchSpanProcessor) delivers an agent trace: the
    three LLM spans become events of the service (task llm), the three others are ignored."""
    with running_server(tmp_path) as server:
        exporter = _exporter(server)
        provider = TracerProvider(resource=Resource.create({"service.name": "chatbot"}))
        processor = BatchSpanProcessor(exporter)
        provider.add_span_processor(processor)
        spans = _record_spans("chatbot")
        for span in spans:  # replay the recorded spans through the real exporting pipeline
            processor.on_end(span)
        assert provider.force_flush(timeout_millis=10_000)
        provider.shutdown()

        names = "count,error_count,input_tokens,output_tokens,cost_usd,ttft_p50,latency_max"
        got = _metrics(server, "chatbot", names)
        assert got == {
            "count": 3,
            "error_count": 1,
            "input_tokens": 157,
            "output_tokens": 28,
            # the OpenInference span's own cost, and the table's price for the two others
            "cost_usd": pytest.approx(0.002 + _table_cost(), rel=1e-9),
            "ttft_p50": pytest.approx(250, rel=0.011),
            "latency_max": pytest.approx(1500, rel=0.011),
        }
        with server.client(server.read_key) as c:
            model = c.get("/api/v1/models/chatbot").json()
            by_provider = c.get("/api/v1/models/chatbot/segments", params={"by": "provider"}).json()
        assert model["task"] == "llm"
        assert {v["version"] for v in model["versions"]} == {
            "gpt-4o-2024-08-06",
            "claude-3-haiku",
            "gpt-4o-mini",
        }
        assert {v["value"]: v["metrics"]["count"] for v in by_provider["values"]} == {
            "openai": 2,
            "anthropic": 1,
        }
    ids = {s.name: format(s.context.span_id, "016x") for s in spans}
    stored = _stored(tmp_path, "chatbot")
    assert stored == {
        ids["chat gpt-4o"]: (
            "gpt-4o-2024-08-06",
            False,
            None,
            "system: Be brief.\nuser: Capital of France?",
            "Paris.",
            {
                "provider": "openai",
                "operation": "chat",
                "request_model": "gpt-4o",
                "finish_reason": "stop",
            },
        ),
        ids["anthropic.completion"]: (
            "claude-3-haiku",
            True,
            "rate limited",
            "Hi",
            "Hel",
            {"provider": "anthropic", "request_model": "claude-3-haiku"},
        ),
        ids["ChatCompletion"]: (
            "gpt-4o-mini",
            False,
            None,
            "What is 2+2?",
            "4",
            {"provider": "openai"},
        ),
    }


def test_real_exporter_gzip_and_resend(server: RunningServer) -> None:
    """Gzip-compressed protobuf from the exporter is accepted; sending the same spans again
    stores nothing twice (event ids are span ids)."""
    spans = _record_spans("rag-app")
    exporter = _exporter(server, compression=Compression.Gzip)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert _metrics(server, "rag-app", "count,input_tokens") == {"count": 3, "input_tokens": 157}


def test_real_exporter_x_api_key_and_refused_keys(server: RunningServer) -> None:
    """The key may come in X-API-Key (OTEL_EXPORTER_OTLP_HEADERS style); a read key or none
    makes the exporter fail, and nothing is stored."""
    spans = _record_spans("keyed")
    url = server.url + "/v1/traces"
    for headers in ({"X-API-Key": server.read_key}, {}):
        exporter = OTLPSpanExporter(endpoint=url, headers=headers, timeout=2)
        assert exporter.export(spans) is SpanExportResult.FAILURE
        exporter.shutdown()
    with server.client(server.read_key) as c:
        assert c.get("/api/v1/models/keyed").status_code == 404
    exporter = OTLPSpanExporter(endpoint=url, headers={"X-API-Key": server.ingest_key}, timeout=2)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert _metrics(server, "keyed", "count")["count"] == 3


# ---- OTLP/JSON as the specification writes it ----------------------------------------------


def _json_request(end_ns: int = T0 + 800_000_000, service: str = "support-bot") -> dict[str, Any]:
    """An OTLP/JSON request in the spec's style: hex ids, int64 as strings, enums as numbers."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": service}},
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "my.library", "version": "1.0.0"},
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "parentSpanId": "EEE19B7EC3C1B173",
                                "name": "chat claude",
                                "startTimeUnixNano": str(T0),
                                "endTimeUnixNano": str(end_ns),
                                "kind": 3,
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "chat"},
                                    },
                                    {
                                        "key": "gen_ai.provider.name",
                                        "value": {"stringValue": "anthropic"},
                                    },
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "claude-x"},
                                    },
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "42"},
                                    },
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 8}},
                                    {
                                        "key": "gen_ai.response.time_to_first_chunk",
                                        "value": {"doubleValue": 0.125},
                                    },
                                    {
                                        "key": "gen_ai.response.finish_reasons",
                                        "value": {
                                            "arrayValue": {"values": [{"stringValue": "end_turn"}]}
                                        },
                                    },
                                ],
                                "status": {"code": "STATUS_CODE_OK"},
                            },
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B173",
                                "name": "handle request",
                                "startTimeUnixNano": str(T0),
                                "endTimeUnixNano": str(T0 + 900_000_000),
                                "kind": "SPAN_KIND_SERVER",
                            },
                        ],
                    }
                ],
            }
        ]
    }


def _post(server: RunningServer, body: bytes, **headers: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.ingest_key}", **headers}
    return httpx.post(server.url + "/v1/traces", content=body, headers=headers, timeout=10)


def test_json_payload_as_in_the_spec(server: RunningServer) -> None:
    """Hex ids, stringified int64 and intValue, enums as numbers or names; the reply is JSON
    `{}`; gzip works the same; the non-LLM span is ignored."""
    r = _post(server, json.dumps(_json_request()).encode(), **{"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {}
    got = _metrics(server, "support-bot", "count,input_tokens,output_tokens,ttft_p50,latency_max")
    assert got == {
        "count": 1,
        "input_tokens": 42,
        "output_tokens": 8,
        "ttft_p50": pytest.approx(125, rel=0.011),
        "latency_max": pytest.approx(800, rel=0.011),
    }
    body = gzip.compress(json.dumps(_json_request(service="other-bot")).encode())
    r = _post(server, body, **{"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json() == {}, r.text
    assert _metrics(server, "other-bot", "count")["count"] == 1


def test_partial_success_in_both_formats(server: RunningServer) -> None:
    """An LLM span that cannot be stored (it ends an hour in the future) is counted in
    partialSuccess; the other LLM spans of the request are stored."""
    doc = _json_request()
    future = _json_request(end_ns=NOW_NS + 3600 * 10**9)["resourceSpans"][0]["scopeSpans"][0]
    future["spans"][0]["spanId"] = "00000000000000AA"
    doc["resourceSpans"][0]["scopeSpans"].append(future)
    r = _post(server, json.dumps(doc).encode(), **{"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "support-bot: timestamp" in partial["errorMessage"]
    assert _metrics(server, "support-bot", "count")["count"] == 1

    request = ExportTraceServiceRequest()
    spans = _record_spans("pb-partial")
    exporter_body = _protobuf_of(spans)
    request.ParseFromString(exporter_body)
    (chat,) = (s for s in request.resource_spans[0].scope_spans[0].spans if s.name == "chat gpt-4o")
    chat.end_time_unix_nano = NOW_NS + 3600 * 10**9
    r = _post(server, request.SerializeToString(), **{"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-protobuf"
    reply = ExportTraceServiceResponse.FromString(r.content)
    assert reply.partial_success.rejected_spans == 1
    assert reply.partial_success.error_message.startswith("pb-partial: timestamp")
    assert _metrics(server, "pb-partial", "count,input_tokens") == {"count": 2, "input_tokens": 57}


def _protobuf_of(spans: Sequence[ReadableSpan]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return bytes(encode_spans(spans).SerializeToString())


# ---- errors --------------------------------------------------------------------------------


def test_errors(server: RunningServer) -> None:
    """Bad bodies are 400 with a message saying what is wrong (a google.rpc.Status for
    protobuf requests), other content types 415, no key 401, a read key 403."""
    base64_ids = _json_request()
    base64_ids["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = (
        "W47/95gDgQPSabYzgT/GDA=="
    )
    r = _post(server, json.dumps(base64_ids).encode(), **{"Content-Type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "malformed_body"
    assert "traceId: expected 32 hex digits" in error["message"]
    assert "resourceSpans[0].scopeSpans[0].spans[0]" in error["message"]

    r = _post(server, b"{not json", **{"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]

    r = _post(server, b"\xff\xff\xff", **{"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/x-protobuf"
    status = RpcStatus.FromString(r.content)
    assert status.code == 3  # INVALID_ARGUMENT
    assert "not a protobuf ExportTraceServiceRequest" in status.message

    r = _post(server, b"x", **{"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["error"]["message"]

    r = _post(server, b"{}", **{"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"

    body = json.dumps(_json_request()).encode()
    r = httpx.post(
        server.url + "/v1/traces", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = httpx.post(
        server.url + "/v1/traces",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {server.read_key}"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    with server.client(server.read_key) as c:
        assert c.get("/api/v1/models/support-bot").status_code == 404


def test_busy_store_answers_503_with_retry_after(tmp_path: Path) -> None:
    """A full write queue answers 503 + Retry-After in the request's format, then recovers."""
    key = KeyStore(tmp_path).create("ingest")
    config = ServerConfig(tmp_path, port=free_port(), settings={"max_pending_rows": 1})
    with ServerHandle(config) as handle:
        store = handle.app.state.store
        release = threading.Event()
        blocker = threading.Thread(target=store._submit, args=(release.wait, 5))
        blocker.start()
        while store.stats()["queue_rows"] < 5:
            time.sleep(0.01)
        headers = {"Authorization": f"Bearer {key}"}
        url = f"{handle.url}/v1/traces"
        body = json.dumps(_json_request()).encode()
        r = httpx.post(url, content=body, headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "busy"
        pb = _protobuf_of(_record_spans("busy-pb"))
        r = httpx.post(
            url, content=pb, headers={**headers, "Content-Type": "application/x-protobuf"}
        )
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert RpcStatus.FromString(r.content).code == 14  # UNAVAILABLE
        release.set()
        blocker.join()
        r = httpx.post(url, content=body, headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 200 and r.json() == {}, r.text
