"""parse_events: the normalized table and every kind of row error."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pyarrow as pa
import pytest

from watchkeeper.schema import CORE_SCHEMA, BatchError, Limits, parse_events

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
JSON = "application/json"
NDJSON = "application/x-ndjson"
ARROW = "application/vnd.apache.arrow.stream"


def parse(events: list[Any], **kwargs: Any) -> pa.Table:
    return parse_events(orjson.dumps({"events": events}), JSON, now=NOW, **kwargs)


def failure(events: list[Any], **kwargs: Any) -> BatchError:
    with pytest.raises(BatchError) as info:
        parse(events, **kwargs)
    return info.value


def details(events: list[Any]) -> list[tuple[int | None, str | None, str]]:
    err = failure(events)
    assert err.status == 422 and err.code == "invalid_rows"
    return [(d["row"], d["field"], d["reason"]) for d in err.details]


def arrow_body(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


FULL = {
    "event_id": "e1",
    "timestamp": "2025-06-01T11:00:00.5Z",
    "version": "v2",
    "features": {"amount": 12, "country": "FR", "new": True},
    "prediction": 1,
    "score": 0.75,
    "probabilities": {"0": 0.25, "1": 0.75},
    "latency_ms": 3.5,
    "status": "error",
    "error": "boom",
    "segments": {"region": "eu"},
    "prompt": "hi",
    "response": "hello",
    "input_tokens": 3,
    "output_tokens": 4,
    "time_to_first_token_ms": 1.5,
    "cost_usd": 0.001,
}


def test_full_event_normalizes_every_column() -> None:
    """Every wire field lands in its normalized column with the pinned type and order."""
    table = parse([FULL])
    assert table.schema.names[: len(CORE_SCHEMA)] == CORE_SCHEMA.names
    assert table.schema.names[len(CORE_SCHEMA) :] == [
        "feature:amount",
        "feature:country",
        "feature:new",
    ]
    for field in CORE_SCHEMA:
        assert table.schema.field(field.name).type == field.type
    row = table.to_pylist()[0]
    assert row["ts"] == datetime(2025, 6, 1, 11, 0, 0, 500000, tzinfo=timezone.utc)
    assert row["prediction"] == "1" and row["prediction_value"] == 1.0
    assert orjson.loads(row["probabilities"]) == {"0": 0.25, "1": 0.75}
    assert row["is_error"] is True and row["error"] == "boom"
    assert row["segments"] == [("region", "eu")]
    assert row["ttft_ms"] == 1.5 and row["input_tokens"] == 3
    assert row["feature:amount"] == 12.0 and row["feature:new"] is True


def test_defaults_fill_absent_fields() -> None:
    """An empty event gets a uuid4 hex id, the receipt time, "unversioned" and is_error false."""
    row = parse([{}]).to_pylist()[0]
    assert len(row["event_id"]) == 32 and row["event_id"][12] == "4"
    assert row["ts"] == NOW and row["version"] == "unversioned" and row["is_error"] is False
    assert row["segments"] is None and row["prediction"] is None


def test_generated_ids_are_unique_and_mixed_with_given_ones() -> None:
    """Missing ids are generated per row; given ids are kept in place."""
    ids = parse([{}, {"event_id": "x"}, {}]).column("event_id").to_pylist()
    assert ids[1] == "x" and len(set(ids)) == 3


def test_duplicate_event_ids_keep_first() -> None:
    """A repeated event_id inside a batch keeps the first occurrence, in order."""
    table = parse([{"event_id": "a", "score": 0.1}, {"event_id": "b"}, {"event_id": "a"}])
    assert table.column("event_id").to_pylist() == ["a", "b"]
    assert table.column("score").to_pylist() == [0.1, None]


@pytest.mark.parametrize(
    ("value", "text", "number"),
    [(True, "1", 1.0), (False, "0", 0.0), (3, "3", 3.0), (3.0, "3", 3.0), (0.5, "0.5", 0.5)],
)
def test_prediction_canonical_label(value: Any, text: str, number: float) -> None:
    """Predictions become canonical text plus a numeric value."""
    row = parse([{"prediction": value}]).to_pylist()[0]
    assert (row["prediction"], row["prediction_value"]) == (text, number)


def test_mixed_prediction_types_are_valid() -> None:
    """Predictions may differ in type from row to row (slow path, same canonical forms)."""
    table = parse([{"prediction": "cat"}, {"prediction": 2}, {"prediction": True}, {}])
    assert table.column("prediction").to_pylist() == ["cat", "2", "1", None]
    assert table.column("prediction_value").to_pylist() == [None, 2.0, 1.0, None]


def test_int_and_float_feature_values_make_float64() -> None:
    """Ints and floats in one feature are both numbers, stored as float64."""
    col = parse([{"features": {"x": 1}}, {"features": {"x": 2.5}}]).column("feature:x")
    assert col.type == pa.float64() and col.to_pylist() == [1.0, 2.5]


def test_timestamp_forms() -> None:
    """Naive strings are UTC, offsets are applied and epoch seconds are accepted."""
    table = parse(
        [
            {"timestamp": "2025-06-01T10:00:00"},
            {"timestamp": "2025-06-01T12:00:00+02:00"},
            {"timestamp": 1748779200.25},
        ]
    )
    expected = datetime(2025, 6, 1, 10, tzinfo=timezone.utc)
    assert table.column("ts").to_pylist() == [
        expected,
        expected,
        datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=timezone.utc),
    ]


def test_unknown_field_and_non_object_rows() -> None:
    """Unknown fields are named; a row that is not an object is reported with field None."""
    assert details([{"scor": 1}, [1]]) == [
        (0, "scor", "unknown field"),
        (1, None, "expected an object, got array"),
    ]


@pytest.mark.parametrize(
    ("event", "field", "reason"),
    [
        (
            {"features": {"amount": {"a": 1}}},
            "features.amount",
            "expected a number, string, bool or null, got object",
        ),
        ({"score": "high"}, "score", "expected a number, got string"),
        ({"latency_ms": -1}, "latency_ms", "must not be negative"),
        ({"cost_usd": -0.5}, "cost_usd", "must not be negative"),
        ({"time_to_first_token_ms": -2}, "time_to_first_token_ms", "must not be negative"),
        ({"input_tokens": -1}, "input_tokens", "must not be negative"),
        ({"output_tokens": 1.5}, "output_tokens", "expected an integer"),
        ({"output_tokens": True}, "output_tokens", "expected an integer, got bool"),
        ({"event_id": ""}, "event_id", "must not be empty"),
        ({"event_id": "x" * 129}, "event_id", "longer than 128 characters"),
        ({"event_id": 7}, "event_id", "expected a string, got number"),
        ({"status": "fine"}, "status", 'expected "ok" or "error"'),
        ({"segments": {"region": 1}}, "segments.region", "expected a string, got number"),
        ({"segments": ["eu"]}, "segments", "expected an object, got array"),
        ({"segments": {"region": None}}, "segments.region", "expected a string, got null"),
        (
            {"features": {"1bad": 1}},
            "features.1bad",
            "feature names must match ^[A-Za-z_][A-Za-z0-9_.-]{0,127}$",
        ),
        ({"features": [1]}, "features", "expected an object, got array"),
        ({"probabilities": {"a": "x"}}, "probabilities.a", "expected a number, got string"),
        ({"prediction": [1]}, "prediction", "expected a number, string, bool or null, got array"),
        (
            {"timestamp": "yesterday"},
            "timestamp",
            "expected an RFC 3339 timestamp or epoch seconds",
        ),
        ({"timestamp": "1999-12-31T23:59:59Z"}, "timestamp", "timestamp is before the year 2000"),
        ({"timestamp": "2025-06-01T12:05:01Z"}, "timestamp", "timestamp is in the future"),
        ({"timestamp": 1748779200 * 1000}, "timestamp", "timestamp is in the future"),
        (
            {"timestamp": True},
            "timestamp",
            "expected an RFC 3339 string or epoch seconds, got bool",
        ),
    ],
)
def test_row_error_names_row_and_field(event: dict[str, Any], field: str, reason: str) -> None:
    """Each invalid value is reported at its exact row and field (row 1, after a valid row)."""
    assert details([{"event_id": "ok"}, event]) == [(1, field, reason)]


def test_future_limit_is_configurable_and_inclusive() -> None:
    """A timestamp exactly max_future ahead is accepted; one microsecond more is not."""
    edge = NOW + timedelta(minutes=5)
    assert parse([{"timestamp": edge.isoformat()}]).num_rows == 1
    late = (edge + timedelta(microseconds=1)).isoformat()
    assert details([{"timestamp": late}]) == [(0, "timestamp", "timestamp is in the future")]
    assert parse([{"timestamp": late}], limits=Limits(max_future=timedelta(hours=1))).num_rows == 1


def test_feature_type_change_names_the_row() -> None:
    """A feature switching from number to string is reported once, at the row it changed."""
    rows = [{"features": {"f": 1}}, {"features": {"f": None}}, {"features": {"f": "a"}}]
    rows.append({"features": {"f": "b"}})
    assert details(rows) == [
        (2, "features.f", "got a string where earlier rows (from row 0) hold a number")
    ]


def test_bool_in_numeric_feature_is_a_type_change() -> None:
    """A bool is not a number: mixing them in one feature is an error."""
    assert details([{"features": {"f": 1.5}}, {"features": {"f": False}}]) == [
        (1, "features.f", "got a bool where earlier rows (from row 0) hold a number")
    ]


def test_all_errors_counted_but_100_listed() -> None:
    """error_count counts every problem; details lists the first 100 by row."""
    err = failure([{"score": "x"}] * 150 + [{}] * 50)
    assert err.error_count == 150 and len(err.details) == 100
    assert err.details[99]["row"] == 99
    assert err.message == "150 of 200 events are invalid; nothing was stored"


def test_long_strings_and_feature_limits() -> None:
    """String lengths and the feature count follow Limits."""
    limits = Limits(max_string_len=4, max_text_len=6, max_features=2)
    assert parse([{"prompt": "abcdef", "version": "v1"}], limits=limits).num_rows == 1
    err = failure(
        [{"prompt": "abcdefg", "features": {"a": "abcde", "b": 1, "c": 2}}], limits=limits
    )
    got = {(d["row"], d["field"], d["reason"]) for d in err.details}
    assert got == {
        (None, "features", "3 features in one batch; at most 2"),
        (0, "features.a", "longer than 4 characters"),
        (0, "prompt", "longer than 6 characters"),
    }


def test_too_many_events_is_413_and_empty_is_422() -> None:
    """The event count is capped (413) and an empty batch is refused (422 empty_batch)."""
    err = failure([{}, {}, {}], limits=Limits(max_events=2))
    assert (err.status, err.code) == (413, "too_large")
    for body in (b'{"events": []}', b"[]", b""):
        with pytest.raises(BatchError) as info:
            parse_events(body, JSON, now=NOW)
        assert (info.value.status, info.value.code) == (422, "empty_batch")


EVENTS = [
    FULL,
    {"event_id": "e2", "features": {"amount": 3.5, "country": None}, "prediction": 0},
    {
        "event_id": "e3",
        "timestamp": "2025-06-01T10:00:00+00:00",
        "features": {"new": False},
        "segments": {"tier": "a"},
    },
]


def test_json_ndjson_and_arrow_give_equal_tables() -> None:
    """The same events in JSON, NDJSON and Arrow IPC normalize to equal tables."""
    from_json = parse_events(orjson.dumps(EVENTS), JSON, now=NOW)
    ndjson = b"\n".join(orjson.dumps(e) for e in EVENTS) + b"\n"
    from_ndjson = parse_events(ndjson, "application/jsonl; charset=utf-8", now=NOW)
    arrow = parse_events(arrow_body(pa.Table.from_pylist(EVENTS)), ARROW, now=NOW)
    assert from_json.equals(from_ndjson)
    assert from_json.equals(arrow), (from_json.schema, arrow.schema)


def test_arrow_flattened_map_and_dictionary_columns() -> None:
    """Arrow input may flatten features/segments, use a map of features and categoricals."""
    flat = pa.table(
        {
            "event_id": ["a", "b"],
            "features.x": [1, 2],
            "features.c": pa.array(["u", None]).dictionary_encode(),
            "segments.region": ["eu", None],
        }
    )
    table = parse_events(arrow_body(flat), ARROW, now=NOW)
    assert table.column("feature:x").to_pylist() == [1.0, 2.0]
    assert table.column("feature:c").to_pylist() == ["u", None]
    assert table.column("segments").to_pylist() == [[("region", "eu")], []]
    mapped = pa.table(
        {
            "features": pa.array(
                [[("x", 1.0)], [("y", 2.0), ("x", 3.0)]], pa.map_(pa.string(), pa.float64())
            )
        }
    )
    table = parse_events(arrow_body(mapped), ARROW, now=NOW)
    assert table.column("feature:x").to_pylist() == [1.0, 3.0]
    assert table.column("feature:y").to_pylist() == [None, 2.0]


def test_arrow_nan_inf_negative_and_bad_columns() -> None:
    """Arrow input is checked column-wise: NaN/inf rows, negatives, wrong column types."""
    table = pa.table(
        {
            "features": pa.array([{"x": 1.0}, {"x": float("nan")}, {"x": float("inf")}]),
            "latency_ms": [1.0, -1.0, None],
            "score": ["a", "b", "c"],
            "extra": [1, 2, 3],
        }
    )
    with pytest.raises(BatchError) as info:
        parse_events(arrow_body(table), ARROW, now=NOW)
    got = [(d["row"], d["field"], d["reason"]) for d in info.value.details]
    assert got == [
        (None, "extra", "unknown column"),
        (None, "score", "expected a numeric column, got Arrow type string"),
        (1, "features.x", "NaN and infinity are not accepted"),
        (1, "latency_ms", "must not be negative"),
        (2, "features.x", "NaN and infinity are not accepted"),
    ]


def test_arrow_timestamp_column() -> None:
    """An Arrow timestamp column (any unit, naive = UTC) becomes ts in microseconds."""
    when = datetime(2025, 6, 1, 11, 30)
    table = pa.table({"timestamp": pa.array([when], pa.timestamp("ms"))})
    out = parse_events(arrow_body(table), ARROW, now=NOW)
    assert out.column("ts").to_pylist() == [when.replace(tzinfo=timezone.utc)]
