"""Unit tests of the SDK's Monitor with the in-memory transport (no network)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import watchkeeper
from watchkeeper import Monitor, SendResult
from watchkeeper.testing import InMemoryTransport


@pytest.fixture
def transport() -> InMemoryTransport:
    return InMemoryTransport()


@pytest.fixture
def monitors() -> Iterator[list[Monitor]]:
    made: list[Monitor] = []
    yield made
    for monitor in made:
        monitor.close(timeout=2.0)


def make(monitors: list[Monitor], transport: Any, **kwargs: Any) -> Monitor:
    kwargs.setdefault("spool_dir", False)
    monitor = Monitor("fraud-scorer", version="2.3.0", transport=transport, **kwargs)
    monitors.append(monitor)
    return monitor


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_public_api_is_pinned() -> None:
    """`watchkeeper.__all__` is exactly the documented public surface, and every name exists."""
    expected = {
        "Call",
        "HTTPTransport",
        "InMemoryTransport",
        "Monitor",
        "SendResult",
        "Transport",
        "__version__",
    }
    assert set(watchkeeper.__all__) == expected
    assert all(hasattr(watchkeeper, name) for name in expected)
    assert watchkeeper.testing.__all__ == ["InMemoryTransport"]


def test_import_loads_no_server_dependencies() -> None:
    """`import watchkeeper` in a fresh interpreter loads only the SDK, no heavy packages."""
    code = (
        "import json, sys, watchkeeper\n"
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'duckdb','pyarrow','fastapi','pydantic','numpy','watchkeeper'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert all(name == "watchkeeper" or name.startswith("watchkeeper.") for name in loaded)
    assert {m for m in loaded if m.count(".") and not m.startswith("watchkeeper.sdk")} == {
        "watchkeeper._version"
    }


def test_log_sends_wire_events_in_batches(monitors: list[Monitor], transport: Any) -> None:
    """Records are batched by batch_size, None fields are omitted, event ids are returned."""
    monitor = make(monitors, transport, batch_size=10, flush_interval=60)
    ids = [monitor.log(features={"amount": i}, prediction=i % 2, score=0.25) for i in range(25)]
    assert monitor.flush(timeout=5)
    assert [len(objs) for _, objs in transport.batches] == [10, 10, 5]
    assert [e["event_id"] for e in transport.events] == ids
    first = transport.events[0]
    assert set(first) == {
        "event_id",
        "timestamp",
        "version",
        "features",
        "prediction",
        "score",
        "status",
    }
    assert first["version"] == "2.3.0" and first["features"] == {"amount": 0}
    assert abs(first["timestamp"] - time.time()) < 5
    assert transport.batches[0][0] == "/api/v1/models/fraud-scorer/predictions"
    assert monitor.stats()["queued"] == 25 and monitor.stats()["sent"] == 25


def test_batch_size_triggers_send_before_interval(monitors: list[Monitor], transport: Any) -> None:
    """A full batch leaves at once, without waiting for flush_interval."""
    monitor = make(monitors, transport, batch_size=5, flush_interval=60)
    for i in range(5):
        monitor.log(prediction=i)
    wait_for(lambda: len(transport.events) == 5)


def test_flush_interval_sends_partial_batch(monitors: list[Monitor], transport: Any) -> None:
    """A partial batch leaves after flush_interval without an explicit flush."""
    monitor = make(monitors, transport, flush_interval=0.05)
    monitor.log(prediction=1)
    wait_for(lambda: len(transport.events) == 1)


def test_log_actual_goes_to_actuals_endpoint(monitors: list[Monitor], transport: Any) -> None:
    """log_actual sends {event_id, label, timestamp} to the actuals path."""
    monitor = make(monitors, transport)
    event_id = monitor.log(prediction=1)
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    monitor.log_actual(event_id, label=0, timestamp=when)
    assert monitor.flush(timeout=5)
    assert transport.actuals == [{"event_id": event_id, "label": 0, "timestamp": when.timestamp()}]
    assert transport.batches[-1][0] == "/api/v1/models/fraud-scorer/actuals"


def test_log_feedback_goes_to_the_feedback_endpoint(
    monitors: list[Monitor], transport: Any
) -> None:
    """log_feedback sends the model, a feedback id (unique, or the caller's), the call or
    trace it is about and the verdict to /api/v1/feedback, after the predictions."""
    monitor = make(monitors, transport)
    event_id = monitor.log(prompt="q", response="a")
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    first = monitor.log_feedback(event_id, thumbs=False, comment="wrong", timestamp=when)
    second = monitor.log_feedback(trace_id="ab" * 16, score=0.8, by="ana", feedback_id="fb-1")
    monitor.log_feedback(event_id)  # no verdict: dropped in the worker, counted
    monitor.log_feedback(event_id, score=7)  # out of range: dropped, counted
    assert monitor.flush(timeout=5) is False  # everything handled, but not all was sent
    assert second == "fb-1" and first != second
    assert transport.feedback == [
        {
            "model": "fraud-scorer",
            "feedback_id": first,
            "event_id": event_id,
            "thumbs": "down",
            "comment": "wrong",
            "timestamp": "2024-05-01T12:00:00Z",
        },
        {
            "model": "fraud-scorer",
            "feedback_id": "fb-1",
            "trace_id": "ab" * 16,
            "score": 0.8,
            "by": "ana",
            "timestamp": transport.feedback[1]["timestamp"],
        },
    ]
    assert [path for path, _ in transport.batches] == [
        "/api/v1/models/fraud-scorer/predictions",
        "/api/v1/feedback",
    ]
    stats = monitor.stats()
    assert stats["queued"] == 5 and stats["sent"] == 3 and stats["rejected"] == 2


def test_datetime_timestamp_and_naive_is_utc(monitors: list[Monitor], transport: Any) -> None:
    """A datetime timestamp is sent as epoch seconds; a naive one is read as UTC."""
    monitor = make(monitors, transport)
    monitor.log(prediction=1, timestamp=datetime(2024, 1, 1, 0, 0))
    monitor.log(prediction=1, timestamp=1_700_000_000)
    assert monitor.flush(timeout=5)
    assert [e["timestamp"] for e in transport.events] == [1704067200.0, 1_700_000_000.0]


def test_full_queue_drops_and_counts(monitors: list[Monitor], transport: Any) -> None:
    """Past max_queue, log() drops the record, counts it and does not block."""
    monitor = make(monitors, transport, max_queue=5, flush_interval=60)
    start = time.perf_counter()
    for i in range(12):
        monitor.log(prediction=i)
    assert time.perf_counter() - start < 0.5
    assert monitor.stats()["dropped"] == 7
    assert monitor.flush(timeout=5)
    assert [e["prediction"] for e in transport.events] == [0, 1, 2, 3, 4]


def test_event_ids_unique(monitors: list[Monitor], transport: Any) -> None:
    """Generated event ids are unique within a monitor and across monitors."""
    first, second = make(monitors, transport), make(monitors, transport)
    ids = [first.log() for _ in range(20_000)] + [second.log() for _ in range(100)]
    assert len(set(ids)) == len(ids)
    assert all(1 <= len(i) <= 128 for i in ids)


def test_bad_arguments_never_raise(
    monitors: list[Monitor], transport: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Wrong types are cleaned or the record is dropped and counted; nothing raises."""
    monitor = make(monitors, transport)
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        monitor.log(features=[1, 2, 3])  # type: ignore[arg-type]
        monitor.log(timestamp="yesterday")  # type: ignore[arg-type]
        monitor.log(event_id="")
        monitor.log(features={"ok": float("nan"), "bad name!": 1, "x": object()}, score="high")  # type: ignore[arg-type]
        monitor.log(latency_ms=-3, input_tokens=2.5, probabilities={"a": float("inf"), "b": 0.5})  # type: ignore[arg-type]
        monitor.log_actual("some-id", label=float("nan"))
        assert not monitor.flush(timeout=5)
    assert monitor.stats()["rejected"] == 4
    assert transport.events[0]["features"] == {"ok": None, "x": None}
    assert "score" not in transport.events[0]
    assert set(transport.events[1]) == {
        "event_id",
        "timestamp",
        "version",
        "probabilities",
        "status",
    }
    assert transport.events[1]["probabilities"] == {"b": 0.5}
    assert sum("record dropped" in r.getMessage() for r in caplog.records) == 1


def test_transport_that_raises_never_reaches_caller(monitors: list[Monitor]) -> None:
    """A transport raising on every send: log/flush/close return normally, records count failed."""

    class Broken:
        def send(self, path: str, body: bytes) -> SendResult:
            raise RuntimeError("boom")

        def close(self) -> None:
            raise RuntimeError("boom")

    monitor = make(monitors, Broken(), max_retries=2, backoff=0.001)
    for i in range(3):
        monitor.log(prediction=i)
    assert monitor.flush(timeout=5) is False
    stats = monitor.stats()
    assert stats["failed"] == 3 and stats["retried"] == 2 and stats["sent"] == 0
    monitor.close()


def test_internal_error_in_log_is_swallowed(monitors: list[Monitor], transport: Any) -> None:
    """Even an internal failure inside log()/log_actual() is counted, not raised."""
    monitor = make(monitors, transport)

    class Exploding:
        def __len__(self) -> int:
            raise RuntimeError("internal")

    monitor._predictions = Exploding()  # type: ignore[assignment]
    monitor._actuals = Exploding()  # type: ignore[assignment]
    assert isinstance(monitor.log(prediction=1), str)
    monitor.log_actual("x", 1)
    assert monitor.stats()["dropped"] == 2


def test_4xx_rejected_once_and_logged(
    monitors: list[Monitor], caplog: pytest.LogCaptureFixture
) -> None:
    """A 4xx answer rejects the batch for good (no retry) and logs the message once."""
    transport = InMemoryTransport(lambda path, n: SendResult(422, "bad row 0"))
    monitor = make(monitors, transport, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        for i in range(6):
            monitor.log(prediction=i)
        assert monitor.flush(timeout=5) is False
    stats = monitor.stats()
    assert stats["rejected"] == 6 and stats["retried"] == 0 and transport.requests == 3
    messages = [r.getMessage() for r in caplog.records if "bad row 0" in r.getMessage()]
    assert len(messages) == 1 and "HTTP 422" in messages[0]


def test_track_records_latency_and_result(monitors: list[Monitor], transport: Any) -> None:
    """track() times the block with perf_counter, uses the start time and sends set fields."""
    monitor = make(monitors, transport)
    before = time.time()
    with monitor.track({"x": 1.5}, segments={"region": "eu"}, prompt="hi") as call:
        time.sleep(0.02)
        call.prediction = "yes"
        call.output_tokens = 7
    assert monitor.flush(timeout=5)
    event = transport.events[0]
    assert event["event_id"] == call.event_id
    assert 20 <= event["latency_ms"] < 2000
    assert before <= event["timestamp"] <= before + 0.01
    assert event["prediction"] == "yes" and event["output_tokens"] == 7
    assert event["prompt"] == "hi" and event["segments"] == {"region": "eu"}
    assert event["status"] == "ok" and "error" not in event


def test_track_records_error_and_propagates(monitors: list[Monitor], transport: Any) -> None:
    """An exception in the block is recorded as status=error and re-raised unchanged."""
    monitor = make(monitors, transport)
    error = KeyError("missing")
    with pytest.raises(KeyError) as raised, monitor.track({"x": 1}):
        raise error
    assert raised.value is error
    assert monitor.flush(timeout=5)
    event = transport.events[0]
    assert event["status"] == "error" and event["error"] == "KeyError: 'missing'"
    assert event["latency_ms"] >= 0


def test_track_unknown_field_does_not_raise(monitors: list[Monitor], transport: Any) -> None:
    """Unknown track() keywords and attributes are ignored with a warning, not raised."""
    monitor = make(monitors, transport)
    with monitor.track(nonsense=1) as call:
        call.predicton = 1  # type: ignore[attr-defined]  # typo on purpose
    assert monitor.flush(timeout=5)
    assert len(transport.events) == 1 and "prediction" not in transport.events[0]


def test_close_stops_and_later_logs_are_dropped(transport: Any) -> None:
    """close() delivers what is queued, closes the transport; later logs are dropped."""
    with Monitor("m", transport=transport, spool_dir=False, flush_interval=60) as monitor:
        monitor.log(prediction=1)
    assert len(transport.events) == 1 and transport.closed
    monitor.log(prediction=2)
    monitor.close()
    assert monitor.stats()["dropped"] == 1 and len(transport.events) == 1


def test_failed_batches_spool_and_replay(monitors: list[Monitor], tmp_path: Path) -> None:
    """Undeliverable batches are spooled, then replayed oldest-first once sends succeed."""
    up = False
    transport = InMemoryTransport(lambda path, n: SendResult(200 if up else 503))
    monitor = make(monitors, transport, spool_dir=tmp_path, max_retries=0, batch_size=3)
    for i in range(7):
        monitor.log(prediction=i)
    assert monitor.flush(timeout=5) is False
    assert monitor.stats()["spooled"] == 7 and len(list(tmp_path.glob("*.gz*"))) == 3
    up = True
    monitor.log(prediction=7)
    assert monitor.flush(timeout=5)
    wait_for(lambda: monitor.stats()["replayed"] == 7)
    assert sorted(e["prediction"] for e in transport.events) == list(range(8))
    replayed = [e["prediction"] for e in transport.events if e["prediction"] != 7]
    assert replayed == list(range(7)), "spool replayed oldest-first"
    assert list(tmp_path.iterdir()) == []


def test_spool_bound_drops_oldest(monitors: list[Monitor], tmp_path: Path) -> None:
    """With max_spool_bytes reached, the oldest spooled batches are dropped and counted."""
    transport = InMemoryTransport(lambda path, n: SendResult(503))
    monitor = make(
        monitors, transport, spool_dir=tmp_path, max_retries=0, batch_size=1, max_spool_bytes=300
    )
    for i in range(10):
        monitor.log(prediction=i, prompt="x" * 20)
    monitor.close(timeout=5)  # stop the worker (and its replay attempts) before looking
    stats = monitor.stats()
    assert stats["spooled"] == 10 and stats["spool_dropped"] > 0
    size = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert size <= 300
    assert len(list(tmp_path.iterdir())) == 10 - stats["spool_dropped"]


def test_unclosed_monitor_worker_exits_when_collected(transport: Any) -> None:
    """A Monitor garbage-collected without close() delivers its records and its thread ends."""
    import gc
    import threading

    monitor = Monitor("gc-model", transport=transport, spool_dir=False, flush_interval=60)
    monitor.log(prediction=1)
    thread = monitor._pipeline._thread
    assert thread is not None
    del monitor
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive() and len(transport.events) == 1
    assert not any(t.name == "watchkeeper-gc-model" for t in threading.enumerate())
