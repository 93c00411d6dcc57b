"""The spans table of the DuckDB store: one write per export, nothing stored twice, traces
read back as trees, and trace listing (range, margins, filters, evaluation flags, paging)
checked against the spans as written."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.otlp.decode import Span, SpanEvent
from watchkeeper.otlp.spans import spans_table
from watchkeeper.store.duckdb_store import DuckDBStore
from watchkeeper.store.duckdb_traces import span_tree

NOW = datetime.now(timezone.utc).replace(microsecond=0)
BASE_NS = int((NOW - timedelta(hours=2)).timestamp()) * 10**9
MS = 1_000_000
RECEIVED = NOW


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.close()


def span(
    trace: int,
    sid: int,
    parent: int | None = None,
    start_ms: int = 0,
    dur_ms: int = 10,
    **kw: Any,
) -> Span:
    fields: dict[str, Any] = {
        "trace_id": f"{trace:032x}",
        "span_id": f"{sid:016x}",
        "parent_span_id": None if parent is None else f"{parent:016x}",
        "name": f"s{sid}",
        "kind": "internal",
        "start_time_unix_nano": BASE_NS + start_ms * MS,
        "end_time_unix_nano": BASE_NS + (start_ms + dur_ms) * MS,
        "status_code": "unset",
        "status_message": "",
        "resource": {"service.name": kw.pop("service", "app")},
    }
    fields.update(kw)
    return Span(**fields)


def put(store: DuckDBStore, spans: list[Span], events: dict[str, Any] | None = None) -> int:
    return store.ingest_spans(spans_table(spans, events or {}, RECEIVED))


def test_resent_and_overlapping_exports_store_each_span_once(store: DuckDBStore) -> None:
    """A span repeated in one export, a resent export, and an export that overlaps an
    earlier one: each (trace, span) is stored once and the counts say what was new."""
    a = [span(1, 1), span(1, 2, parent=1, start_ms=1), span(1, 2, parent=1, start_ms=1)]
    assert put(store, a) == 2
    assert put(store, a) == 0
    assert put(store, [span(1, 2, parent=1, start_ms=1), span(1, 3, parent=1, start_ms=5)]) == 1
    same_span_other_trace = span(2, 1)
    assert put(store, [same_span_other_trace]) == 1
    assert [s["span_id"] for s in store.trace_spans(f"{1:032x}")] == [
        f"{i:016x}" for i in (1, 2, 3)
    ]
    assert store.trace_spans("f" * 32) == [] and store.get_trace("f" * 32) is None


def test_exports_queued_together_are_inserted_together_each_span_once(
    store: DuckDBStore,
) -> None:
    """Exports that wait for the writer together share one insert (one commit): a span
    already stored, or in an earlier export of the same group, is skipped, and each export
    is told how many of its spans were new."""
    put(store, [span(3, 1)])
    exports = [
        [span(3, 1), span(3, 2, parent=1, start_ms=2)],  # 3/1 stored before
        [span(3, 2, parent=1, start_ms=2), span(3, 3, parent=1, start_ms=4)],  # 3/2 above
        [span(4, 1, start_ms=7)],
    ]
    merged: list[int] = []
    insert_group = store._insert_span_group

    def spy(batches: list[Any]) -> list[int]:
        merged.append(len(batches))
        return insert_group(batches)

    store._insert_span_group = spy  # type: ignore[method-assign]
    gate, running = threading.Event(), threading.Event()

    def hold() -> None:
        running.set()
        gate.wait(10)

    busy = threading.Thread(target=store._submit, args=(hold, 0))
    busy.start()
    assert running.wait(10)  # the writer is inside this op: what comes next queues up
    results: list[int] = [0, 0, 0]

    def send(i: int) -> None:
        results[i] = put(store, exports[i])

    senders = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for i, t in enumerate(senders):  # one at a time, so the queue's order is the list's
        t.start()
        deadline = time.monotonic() + 10
        while store.stats()["queue_requests"] < i + 1 and time.monotonic() < deadline:
            time.sleep(0.005)
    gate.set()
    for t in [busy, *senders]:
        t.join()
    assert merged == [3]  # one insert for the three exports
    assert results == [1, 1, 1]
    assert [s["span_id"] for s in store.trace_spans(f"{3:032x}")] == [
        f"{i:016x}" for i in (1, 2, 3)
    ]
    assert [s["span_id"] for s in store.trace_spans(f"{4:032x}")] == [f"{1:016x}"]


def test_trace_spans_near_a_time_keeps_the_spans_of_that_period(store: DuckDBStore) -> None:
    """``near`` keeps the trace's spans that start within TRACE_MARGIN of it."""
    hour_ms = 3_600_000
    put(store, [span(5, 1), span(5, 2, parent=1, start_ms=10), span(5, 3, start_ms=3 * hour_ms)])
    base = datetime.fromtimestamp(BASE_NS / 1e9, timezone.utc)
    everything = [s["span_id"] for s in store.trace_spans(f"{5:032x}")]
    assert everything == [f"{i:016x}" for i in (1, 2, 3)]
    near = store.trace_spans(f"{5:032x}", near=base + timedelta(minutes=30))
    assert [s["span_id"] for s in near] == [f"{i:016x}" for i in (1, 2)]
    later = store.trace_spans(f"{5:032x}", near=base + timedelta(hours=3, minutes=59))
    assert [s["span_id"] for s in later] == [f"{3:016x}"]
    assert store.trace_spans(f"{5:032x}", near=base + timedelta(hours=6)) == []


def test_columns_round_trip(store: DuckDBStore) -> None:
    """Every column as written: times, duration, status, LLM fields from the event,
    attributes (bytes as base64), events and resource decoded."""
    llm = span(
        7,
        1,
        start_ms=100,
        dur_ms=250,
        name="chat",
        kind="client",
        status_code="error",
        status_message="boom",
        attributes={"gen_ai.operation.name": "chat", "session.id": "s1", "raw": b"\x00\x01"},
        events=[SpanEvent("exception", BASE_NS + 200 * MS, {"exception.type": "E"})],
        scope_name="lib",
        scope_version="1.2",
        service="My App!",
    )
    event = {"event_id": llm.span_id, "input_tokens": 3, "output_tokens": 4, "cost_usd": 0.5}
    assert put(store, [llm], {llm.span_id: event}) == 1
    (got,) = store.trace_spans(llm.trace_id)
    start = datetime.fromtimestamp((BASE_NS + 100 * MS) / 1e9, timezone.utc)
    assert got == {
        "trace_id": llm.trace_id,
        "span_id": llm.span_id,
        "parent_span_id": None,
        "service": "My App!",
        "model": "My-App-",
        "name": "chat",
        "kind": "client",
        "start_ts": start,
        "end_ts": start + timedelta(milliseconds=250),
        "duration_ms": 250.0,
        "status": "error",
        "status_message": "boom",
        "is_llm": True,
        "conversation_id": "s1",
        "input_tokens": 3,
        "output_tokens": 4,
        "cost_usd": 0.5,
        "attributes": {"gen_ai.operation.name": "chat", "session.id": "s1", "raw": "AAE="},
        "events": [
            {"name": "exception", "time": BASE_NS + 200 * MS, "attributes": {"exception.type": "E"}}
        ],
        "resource": {"service.name": "My App!"},
        "scope": "lib/1.2",
        "received_at": RECEIVED,
    }


def test_span_tree_depth_first_with_orphans_and_cycles() -> None:
    """Children follow their parent by start time (then id); a span whose parent is missing
    is a root; spans caught in a parent cycle are still listed once."""

    def row(sid: str, parent: str | None, start: int) -> dict[str, Any]:
        ts = NOW + timedelta(seconds=start)
        return {"span_id": sid, "parent_span_id": parent, "start_ts": ts}

    rows = [
        row("c2", "r", 5),
        row("r", None, 0),
        row("c1", "r", 1),
        row("g1", "c1", 2),
        row("orphan", "gone", 3),
        row("x", "y", 9),
        row("y", "x", 8),
    ]
    tree = span_tree(rows)
    assert [(s["span_id"], s["depth"]) for s in tree] == [
        ("r", 0),
        ("c1", 1),
        ("g1", 2),
        ("c2", 1),
        ("orphan", 0),
        ("y", 0),
        ("x", 1),
    ]


def _seed(store: DuckDBStore) -> None:
    # trace 1: 0..1000 ms, error, model app; trace 2: 500.., ok, model other, LLM cost 2
    put(
        store,
        [
            span(1, 1, start_ms=0, dur_ms=1000, name="root1"),
            span(1, 2, parent=1, start_ms=10, dur_ms=20, status_code="error"),
        ],
    )
    chat = span(
        2,
        3,
        start_ms=500,
        dur_ms=100,
        service="other",
        attributes={"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "c-2"},
    )
    put(store, [chat], {chat.span_id: {"cost_usd": 2.0, "input_tokens": 9}})


def ids(traces: list[dict[str, Any]]) -> list[int]:
    return [int(t["trace_id"], 16) for t in traces]


def test_list_traces_filters(store: DuckDBStore) -> None:
    """Each filter against two traces, including and excluding; the summary adds up."""
    _seed(store)
    window = {"start": NOW - timedelta(hours=3), "end": NOW}
    assert ids(store.list_traces(**window)) == [2, 1]
    assert ids(store.list_traces(**window, model="app")) == [1]
    assert ids(store.list_traces(**window, model="other")) == [2]
    assert ids(store.list_traces(**window, status="error")) == [1]
    assert ids(store.list_traces(**window, status="ok")) == [2]
    assert ids(store.list_traces(**window, min_latency_ms=1000)) == [1]
    assert ids(store.list_traces(**window, min_latency_ms=1000.001)) == []
    assert ids(store.list_traces(**window, min_cost_usd=2)) == [2]
    assert ids(store.list_traces(**window, min_cost_usd=0)) == [2, 1]
    assert ids(store.list_traces(**window, conversation_id="c-2")) == [2]
    assert ids(store.list_traces(**window, conversation_id="c-1")) == []
    assert ids(store.list_traces(**window, limit=1)) == [2]
    first = store.list_traces(**window)[0]
    assert ids(store.list_traces(**window, before=(first["start"], first["trace_id"]))) == [1]
    one = store.list_traces(**window)[1]
    assert one["spans"] == 2 and one["llm_calls"] == 0 and one["root_name"] == "root1"
    assert one["duration_ms"] == 1000 and one["status"] == "error" and one["flags"] == {}
    assert one["cost_usd"] is None and one["models"] == ["app"]
    two = store.list_traces(**window)[0]
    assert (two["llm_calls"], two["cost_usd"], two["input_tokens"]) == (1, 2.0, 9)


def test_list_traces_range_is_by_first_span(store: DuckDBStore) -> None:
    """A trace is in [start, end) when its first span starts there: one whose first span is
    earlier is left out even though later spans fall in the range."""
    _seed(store)
    base = datetime.fromtimestamp(BASE_NS / 1e9, timezone.utc)
    after_first = base + timedelta(milliseconds=5)
    assert ids(store.list_traces(start=after_first, end=NOW)) == [2]
    assert ids(store.list_traces(start=base, end=base + timedelta(milliseconds=500))) == [1]
    assert ids(store.list_traces(start=base, end=base + timedelta(milliseconds=501))) == [2, 1]


def test_evaluation_filters_and_flags(store: DuckDBStore) -> None:
    """evaluator/flagged select traces by their evaluations (flagged=false: evaluated and
    none flagged); flags count flagged evaluations per evaluator."""
    _seed(store)
    rows = [
        (f"{1:032x}", "e1", "pii", True),
        (f"{1:032x}", "e2", "pii", False),
        (f"{1:032x}", "e2", "toxicity", False),
        (f"{2:032x}", "e3", "pii", False),
    ]

    def insert() -> None:
        assert store._con is not None
        for trace_id, event_id, evaluator, flagged in rows:
            store._con.execute(
                "INSERT INTO evaluations (model_id, event_id, trace_id, evaluator, flagged)"
                " VALUES (1, ?, ?, ?, ?)",
                [event_id, trace_id, evaluator, flagged],
            ).fetchall()

    store._submit(insert, len(rows))
    window = {"start": NOW - timedelta(hours=3), "end": NOW}
    assert ids(store.list_traces(**window, evaluator="pii", flagged=True)) == [1]
    assert ids(store.list_traces(**window, evaluator="pii", flagged=False)) == [2]
    assert ids(store.list_traces(**window, evaluator="toxicity")) == [1]
    assert ids(store.list_traces(**window, evaluator="toxicity", flagged=True)) == []
    assert ids(store.list_traces(**window, flagged=True)) == [1]
    assert ids(store.list_traces(**window, evaluator="refusal")) == []
    flags = {int(t["trace_id"], 16): t["flags"] for t in store.list_traces(**window)}
    assert flags == {1: {"pii": 1, "toxicity": 0}, 2: {"pii": 0}}
    assert store.trace_flags([f"{2:032x}"]) == {f"{2:032x}": {"pii": 0}}


def test_stepped_listing_equals_one_pass_over_the_range(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing reads the range from its end in growing steps; every page (filters, limits,
    cursors) equals what one pass over the whole range gives. 300 traces over two days,
    some long (their spans cross step borders), some failing, of two services."""
    import random

    from watchkeeper.store import duckdb_traces

    rng = random.Random(11)
    spans = []
    two_days_ms = 48 * 3_600_000
    for t in range(300):
        start = rng.randrange(0, two_days_ms)
        n = rng.randint(1, 4)
        spans.append(span(1000 + t, 1, start_ms=start, dur_ms=rng.randint(1, 90 * 60_000),
                          service="a" if t % 3 else "b",
                          status_code="error" if t % 7 == 0 else "ok"))  # fmt: skip
        for k in range(2, n + 1):
            spans.append(span(1000 + t, k, parent=1, start_ms=start + rng.randint(0, 50 * 60_000)))
    put(store, spans)
    base = datetime.fromtimestamp(BASE_NS / 1e9, timezone.utc)
    ranges = [
        (base - timedelta(hours=1), NOW + timedelta(hours=50)),
        (base + timedelta(hours=5), base + timedelta(hours=29)),
        (base + timedelta(hours=47, minutes=50), base + timedelta(hours=48, minutes=10)),
    ]
    cases: list[dict[str, Any]] = [{}, {"status": "error"}, {"min_latency_ms": 30 * 60_000},
                                   {"model": "a"}, {"limit": 7}, {"limit": 500}]  # fmt: skip

    def pages(**kw: Any) -> list[list[str]]:
        out, before = [], None
        for _ in range(60):
            got = store.list_traces(**kw, before=before)
            out.append([t["trace_id"] for t in got])
            if len(got) < kw.get("limit", 100):
                break
            before = (got[-1]["start"], got[-1]["trace_id"])
        return out

    for lo, hi in ranges:
        for case in cases:
            kw = {"start": lo, "end": hi, "limit": 25, **case}
            stepped = pages(**kw)
            monkeypatch.setattr(duckdb_traces, "FIRST_STEP", timedelta(days=365))
            whole = pages(**kw)
            monkeypatch.undo()
            assert stepped == whole, (lo, hi, case)
    assert sum(map(len, pages(start=ranges[0][0], end=ranges[0][1], limit=25))) == 300


def _events(ids: list[str], **fields: Any) -> Any:
    from watchkeeper.schema.events import events_from_rows

    rows = [{"event_id": i, "timestamp": NOW.timestamp() - 60, **fields} for i in ids]
    return events_from_rows(rows, NOW)


def test_an_export_is_queued_whole_and_answered_per_model(tmp_path: Path) -> None:
    """``ingest_export``: the spans and each model's events in one request to the writer;
    a batch the store refuses (a feature of another type) is answered with its error while
    the others are stored; a full queue refuses the whole export and queues nothing."""
    from watchkeeper.store.base import IngestResult, SchemaConflictError, StoreBusyError

    store = DuckDBStore(tmp_path, max_pending_rows=5)
    store.start()
    try:
        store.ingest_events("m1", _events(["a"], features={"x": 1.0}), task="llm")
        table = spans_table([span(9, 1), span(9, 2, parent=1)], {}, RECEIVED)
        answers = store.ingest_export(
            table,
            [("m1", _events(["b"], features={"x": "text"})), ("m2", _events(["c", "d"]))],
        )
        assert isinstance(answers[0], SchemaConflictError)
        assert answers[1] == IngestResult(accepted=2, duplicates=0)
        assert len(store.trace_spans(f"{9:032x}")) == 2

        gate, running = threading.Event(), threading.Event()

        def hold() -> None:
            running.set()
            gate.wait(10)

        busy = threading.Thread(target=store._submit, args=(hold, 5))
        busy.start()
        assert running.wait(10)
        with pytest.raises(StoreBusyError):
            store.ingest_export(spans_table([span(10, 1)], {}, RECEIVED), [("m2", _events(["e"]))])
        assert store.stats()["queue_requests"] == 0  # nothing of it was queued
        gate.set()
        busy.join()
        assert store.trace_spans(f"{10:032x}") == []
    finally:
        store.close()
