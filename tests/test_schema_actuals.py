"""parse_actuals: labels normalized like predictions, ids required."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import orjson
import pyarrow as pa
import pytest

from watchkeeper.schema import ACTUALS_SCHEMA, BatchError, parse_actuals

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def parse(actuals: list[Any]) -> pa.Table:
    return parse_actuals(orjson.dumps({"actuals": actuals}), "application/json", now=NOW)


def test_labels_are_canonical() -> None:
    """Labels get the canonical text and numeric value; ts defaults to receipt time."""
    table = parse(
        [
            {"event_id": "a", "label": True},
            {"event_id": "b", "label": 2.0, "timestamp": "2025-06-01T00:00:00Z"},
            {"event_id": "c", "label": "spam"},
        ]
    )
    assert table.schema == ACTUALS_SCHEMA
    assert table.column("label").to_pylist() == ["1", "2", "spam"]
    assert table.column("label_value").to_pylist() == [1.0, 2.0, None]
    assert table.column("ts").to_pylist()[0] == NOW


def test_missing_id_or_label_is_an_error() -> None:
    """event_id and label are required; a wrong type is reported once, not also as missing."""
    with pytest.raises(BatchError) as info:
        parse(
            [
                {"label": 1},
                {"event_id": "b"},
                {"event_id": 3, "label": None},
                {"event_id": "d", "label": 1, "x": 0},
            ]
        )
    got = [(d["row"], d["field"], d["reason"]) for d in info.value.details]
    assert got == [
        (0, "event_id", "required"),
        (1, "label", "required"),
        (2, "event_id", "expected a string, got number"),
        (2, "label", "required"),
        (3, "x", "unknown field"),
    ]
    assert info.value.message == "4 of 4 actuals are invalid; nothing was stored"


def test_json_and_arrow_actuals_are_equal() -> None:
    """Actuals as a bare JSON array and as Arrow IPC normalize alike; repeats keep the first."""
    rows = [
        {"event_id": "a", "label": 1},
        {"event_id": "b", "label": 0},
        {"event_id": "a", "label": 0},
    ]
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    arrow = parse_actuals(sink.getvalue(), "application/vnd.apache.arrow.stream", now=NOW)
    assert arrow.equals(parse_actuals(orjson.dumps(rows), None, now=NOW))
    assert arrow.column("event_id").to_pylist() == ["a", "b"]


def test_empty_actuals() -> None:
    """An empty actuals batch is a 422 empty_batch."""
    with pytest.raises(BatchError) as info:
        parse([])
    assert (info.value.status, info.value.code) == (422, "empty_batch")
