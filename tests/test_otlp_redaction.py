"""PII redaction before storage (``evaluators.redact_pii``): with it on, no e-mail address,
card number or IBAN that ``find_pii`` can find is left in any text column of the database
file (spans: name, status, attributes, events, resource; events: prompt, response, context,
error, conversation id); with it off (the default) they are all kept as sent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from tests.conftest import free_port
from watchkeeper.evaluators.pii import find_pii
from watchkeeper.otlp.decode import Span, SpanEvent
from watchkeeper.otlp.spans import redact_span, redact_value
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.keys import KeyStore

MS = 1_000_000
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
OTHER_EMAIL = "ops@corp.example.org"
KINDS = ("email", "card", "iban")
SENT = (EMAIL, CARD, IBAN, OTHER_EMAIL)


def _trace() -> Sequence[ReadableSpan]:
    """A RAG trace with personal data in every text place a span has."""
    t0 = time.time_ns() - 10_000 * MS
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "pii-app", "owner.email": OTHER_EMAIL})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.pii")
    root = tracer.start_span(f"chat for {EMAIL}", start_time=t0)
    ctx = set_span_in_context(root)
    retrieve = tracer.start_span(
        "retrieve",
        context=ctx,
        start_time=t0 + 10 * MS,
        attributes={
            "openinference.span.kind": "RETRIEVER",
            "input.value": f"account of {EMAIL}",
            "retrieval.documents.0.document.content": f"Customer IBAN: {IBAN}.",
        },
    )
    retrieve.end(end_time=t0 + 20 * MS)
    messages_in = [
        {"role": "user", "parts": [{"type": "text", "content": f"I am {EMAIL}, card {CARD}"}]}
    ]
    messages_out = [
        {"role": "assistant", "parts": [{"type": "text", "content": f"Your IBAN is {IBAN}."}]}
    ]
    chat = tracer.start_span(
        "chat",
        context=ctx,
        start_time=t0 + 30 * MS,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.input.messages": json.dumps(messages_in),
            "gen_ai.output.messages": json.dumps(messages_out),
            "gen_ai.conversation.id": f"conv {EMAIL}",
            "user.tags": (EMAIL, "vip"),
        },
    )
    chat.add_event("gen_ai.client.note", {"note": f"card {CARD} seen"}, timestamp=t0 + 35 * MS)
    chat.set_status(Status(StatusCode.ERROR, f"refused for {OTHER_EMAIL}"))
    chat.end(end_time=t0 + 60 * MS)
    root.end(end_time=t0 + 70 * MS)
    provider.shutdown()
    return memory.get_finished_spans()


def _run(tmp_path: Path, redact: bool | None) -> list[str]:
    """Export the trace to a server (redact_pii as given; None: no evaluators section), stop
    it, and return every text value stored in the database file."""
    keys = KeyStore(tmp_path)
    ingest = keys.create("ingest")
    config_file = None
    if redact is not None:
        config_file = tmp_path / "watchkeeper.yaml"
        config_file.write_text(f"evaluators:\n  redact_pii: {str(redact).lower()}\n")
    handle = ServerHandle(ServerConfig(tmp_path, port=free_port(), config_file=config_file))
    handle.start()
    try:
        exporter = OTLPSpanExporter(
            endpoint=handle.url + "/v1/traces",
            headers={"Authorization": f"Bearer {ingest}"},
            timeout=5,
        )
        assert exporter.export(_trace()) is SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        handle.stop()
    return list(_stored_text(tmp_path / "watchkeeper.duckdb"))


def _stored_text(path: Path) -> Iterator[str]:
    """Every non-null text value of every table (maps and lists as their text)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns()"
            " WHERE schema_name = 'main' AND (data_type = 'VARCHAR' OR data_type LIKE 'MAP%')"
        ).fetchall()
        assert ("spans", "attributes", "VARCHAR") in columns
        for table, column, _type in columns:
            rows = con.execute(
                f'SELECT CAST("{column}" AS VARCHAR) FROM "{table}" WHERE "{column}" IS NOT NULL'
            ).fetchall()
            yield from (r[0] for r in rows)
    finally:
        con.close()


def test_redaction_on_leaves_no_pii_anywhere(tmp_path: Path) -> None:
    """With redact_pii on, find_pii finds no e-mail, card or IBAN in anything stored, and the
    placeholders are where the data was (prompt, response, context, attributes)."""
    texts = _run(tmp_path, True)
    leaks = [(t[:80], f.kind) for t in texts for f in find_pii(t, KINDS)]
    assert leaks == []
    joined = "\n".join(texts)
    assert not any(value in joined for value in SENT)
    for placeholder in ("[EMAIL]", "[CARD]", "[IBAN]"):
        assert placeholder in joined
    assert "I am [EMAIL], card [CARD]" in texts  # the event's prompt
    assert "Customer IBAN: [IBAN]." in texts  # the event's context
    spans_json = [t for t in texts if t.startswith("{") and "gen_ai.input.messages" in t]
    assert spans_json, "the chat span's attributes are stored"
    attributes = json.loads(spans_json[0])
    assert json.loads(attributes["gen_ai.input.messages"])[0]["parts"][0]["content"] == (
        "I am [EMAIL], card [CARD]"
    )
    assert attributes["user.tags"] == ["[EMAIL]", "vip"]


@pytest.mark.parametrize("redact", [None, False])
def test_redaction_off_keeps_the_text(tmp_path: Path, redact: bool | None) -> None:
    """Off by default (and when set false): every piece of personal data sent is stored."""
    texts = _run(tmp_path, redact)
    joined = "\n".join(texts)
    for value in SENT:
        assert value in joined, value
    assert f"I am {EMAIL}, card {CARD}" in texts
    assert f"Customer IBAN: {IBAN}." in texts
    assert {f.kind for t in texts for f in find_pii(t, KINDS)} == set(KINDS)


def test_redact_value_keeps_json_text_valid() -> None:
    """A JSON string is redacted inside its values (escapes stay valid); plain text, nested
    lists and maps are redacted; other values are left alone."""
    raw = json.dumps([{"content": f'line\n{EMAIL} said "hi"', "n": 3}])
    out = redact_value(raw)
    assert json.loads(out) == [{"content": 'line\n[EMAIL] said "hi"', "n": 3}]
    assert redact_value("[not json " + EMAIL) == "[not json [EMAIL]"
    assert redact_value({"a": [EMAIL, 1, None, True], "b": {"c": CARD}}) == {
        "a": ["[EMAIL]", 1, None, True],
        "b": {"c": "[CARD]"},
    }


def test_redact_span_keeps_service_name_and_ids() -> None:
    """The model's name (service.name), ids and times are kept; the rest is redacted."""
    span = Span(
        trace_id="5b8efff798038103d269b633813fc60c",
        span_id="eee19b7ec3c1b174",
        parent_span_id=None,
        name=f"mail {EMAIL}",
        kind="client",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        status_code="error",
        status_message=CARD,
        attributes={"x": IBAN},
        events=[SpanEvent("e", 1, {"y": EMAIL})],
        resource={"service.name": "svc", "host.owner": EMAIL},
    )
    out = redact_span(span)
    assert (out.trace_id, out.span_id, out.start_time_unix_nano) == (span.trace_id, span.span_id, 1)
    assert out.name == "mail [EMAIL]" and out.status_message == "[CARD]"
    assert out.attributes == {"x": "[IBAN]"}
    assert out.events == [SpanEvent("e", 1, {"y": "[EMAIL]"})]
    assert out.resource == {"service.name": "svc", "host.owner": "[EMAIL]"}
    assert span.attributes == {"x": IBAN}  # the original is not changed
