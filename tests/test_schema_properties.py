"""Properties: random valid events round-trip; random junk only ever raises BatchError."""

from __future__ import annotations

import contextlib
import io
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchkeeper.schema import BatchError, canonical_label, parse_actuals, parse_events

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
TYPES = [
    "application/json",
    "application/x-ndjson",
    "application/vnd.apache.arrow.stream",
    None,
]

names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,12}\Z")
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
nonneg = st.floats(min_value=0, max_value=1e12, allow_nan=False)
text = st.text(max_size=20)
times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=NOW.replace(tzinfo=None),
    timezones=st.just(timezone.utc),
)
KIND_VALUES = {
    "number": st.one_of(floats, st.integers(-(2**53), 2**53)),
    "string": text,
    "bool": st.booleans(),
}


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    kinds = draw(st.dictionaries(names, st.sampled_from(sorted(KIND_VALUES)), max_size=5))
    count = draw(st.integers(1, 8))
    events = []
    for i in range(count):
        when = draw(times)
        event: dict[str, Any] = {
            "event_id": f"{i}-{draw(st.text(min_size=0, max_size=10))}",
            "timestamp": draw(st.sampled_from([when.isoformat(), round(when.timestamp(), 6)])),
            "features": {
                name: draw(st.none() | KIND_VALUES[kind])
                for name, kind in kinds.items()
                if draw(st.booleans())
            },
        }
        optional = {
            "version": st.text(min_size=1, max_size=10),
            "prediction": st.one_of(floats, st.integers(-(2**60), 2**60), text, st.booleans()),
            "score": floats,
            "latency_ms": nonneg,
            "status": st.sampled_from(["ok", "error"]),
            "segments": st.dictionaries(names, text, max_size=3),
            "prompt": text,
            "input_tokens": st.integers(0, 2**62),
            "cost_usd": nonneg,
        }
        for field, strategy in optional.items():
            if draw(st.booleans()):
                event[field] = draw(strategy)
        events.append(event)
    return events


@SETTINGS
@given(batches(), st.booleans())
def test_valid_events_round_trip(events: list[dict[str, Any]], ndjson: bool) -> None:
    """Any batch of valid events parses, one row per event, with every value preserved."""
    if ndjson:
        body = b"\n".join(orjson.dumps(e) for e in events)
        table = parse_events(body, "application/x-ndjson", now=NOW)
    else:
        table = parse_events(orjson.dumps({"events": events}), "application/json", now=NOW)
    rows = table.to_pylist()
    assert len(rows) == len(events)
    for event, row in zip(events, rows, strict=True):
        assert row["event_id"] == event["event_id"]
        stamp = event["timestamp"]
        expected = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
        got = row["ts"] if isinstance(stamp, str) else row["ts"].timestamp()
        assert abs(got - expected) <= (
            timedelta(microseconds=1) if isinstance(stamp, str) else 1e-6
        )
        assert row["version"] == event.get("version", "unversioned")
        assert row["prediction"] == canonical_label(event.get("prediction"))
        assert row["score"] == event.get("score")
        assert row["latency_ms"] == event.get("latency_ms")
        assert row["is_error"] == (event.get("status") == "error")
        assert row["input_tokens"] == event.get("input_tokens")
        segments = event.get("segments")
        assert row["segments"] == (None if segments is None else list(segments.items()))
        for column, value in row.items():
            if column.startswith("feature:"):
                sent = event["features"].get(column[len("feature:") :])
                assert (value == sent and type(value) is type(sent)) or (
                    isinstance(sent, int) and not isinstance(sent, bool) and value == float(sent)
                )


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from(TYPES), st.sampled_from([None, "gzip"]))
def test_junk_bytes_only_raise_batch_error(
    body: bytes, content_type: str | None, encoding: str | None
) -> None:
    """Arbitrary bytes in any format either parse or raise BatchError, never anything else."""
    for parse in (parse_events, parse_actuals):
        with contextlib.suppress(BatchError):
            parse(body, content_type, encoding, now=NOW)


json_values = st.recursive(
    st.none() | st.booleans() | floats | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
event_like = st.dictionaries(
    st.sampled_from(
        [
            "event_id",
            "timestamp",
            "features",
            "prediction",
            "score",
            "segments",
            "input_tokens",
            "probabilities",
            "status",
            "latency_ms",
            "label",
            "x",
        ]
    ),
    json_values,
    max_size=5,
)


@SETTINGS
@given(st.lists(event_like | json_values, max_size=6))
def test_junk_json_only_raises_batch_error(rows: list[Any]) -> None:
    """Well-formed JSON of any shape either parses or raises a 422/413 BatchError."""
    for parse in (parse_events, parse_actuals):
        try:
            parse(orjson.dumps(rows), "application/json", now=NOW)
        except BatchError as err:
            assert err.status in (413, 422)
            assert err.details or err.code == "empty_batch"


@SETTINGS
@given(st.lists(event_like, min_size=1, max_size=5))
def test_junk_arrow_only_raises_batch_error(rows: list[Any]) -> None:
    """Arrow tables of any column types either parse or raise a BatchError."""
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowException, OverflowError):
        return
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    for parse in (parse_events, parse_actuals):
        with contextlib.suppress(BatchError):
            parse(sink.getvalue(), "application/vnd.apache.arrow.stream", now=NOW)
