"""parse_events: a prediction batch in any accepted format -> the normalized events table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from watchkeeper.schema import batch, columns, features, nested, values
from watchkeeper.schema.contract import DEFAULT_LIMITS, EVENT_FIELDS, SEGMENTS_TYPE, Limits
from watchkeeper.schema.decode import decode_batch
from watchkeeper.schema.errors import RowErrors

_STRING_FIELDS = (
    "event_id",
    "version",
    "status",
    "error",
    "prompt",
    "response",
    "trace_id",
    "conversation_id",
    "context",
)
_NUMBER_FIELDS = ("score", "latency_ms", "time_to_first_token_ms", "cost_usd")
_INTEGER_FIELDS = ("input_tokens", "output_tokens")


def parse_events(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> pa.Table:
    """The normalized events table of a request body, or a BatchError saying what is wrong.

    The table holds the columns of CORE_SCHEMA then ``feature:<name>`` columns sorted by name;
    a repeated event_id keeps its first row.
    """
    received = batch.receipt_time(now)
    return decode_batch(
        body,
        content_type,
        content_encoding,
        limits,
        "events",
        lambda table: events_from_arrow(table, received, limits),
        lambda rows: events_from_rows(rows, received, limits),
    )


def events_from_rows(rows: list[Any], now: datetime, limits: Limits = DEFAULT_LIMITS) -> pa.Table:
    """The normalized table of decoded JSON event objects."""
    n = len(rows)
    batch.check_size(n, limits, "events")
    errs = RowErrors(n)
    objs, present = values.objects(rows, EVENT_FIELDS, errs)

    def column(field: str) -> list[Any]:
        return values.column(objs, field)

    src: dict[str, Any] = {}
    for field in _STRING_FIELDS:
        if field in present:
            src[field] = values.strings(column(field), field, errs)
    for field in _NUMBER_FIELDS:
        if field in present:
            src[field] = values.numbers(column(field), field, errs)
    for field in _INTEGER_FIELDS:
        if field in present:
            src[field] = values.integers(column(field), field, errs)
    if "timestamp" in present:
        src["timestamp"] = values.timestamps(column("timestamp"), "timestamp", errs)
    if "probabilities" in present:
        src["probabilities"] = nested.probabilities_from_json(column("probabilities"), errs)
    src["segments"] = (
        nested.segments_from_json(column("segments"), errs, limits)
        if "segments" in present
        else pa.nulls(n, SEGMENTS_TYPE)
    )
    prediction = (
        values.labels(column("prediction"), "prediction", errs)
        if "prediction" in present
        else (pa.nulls(n), None)
    )
    feats = features.from_json(column("features"), errs, limits) if "features" in present else {}
    core = batch.normalize_core(src, prediction, n, errs, now, limits)
    return batch.finish(core, feats, errs)


def events_from_arrow(table: pa.Table, now: datetime, limits: Limits = DEFAULT_LIMITS) -> pa.Table:
    """The normalized table of an Arrow table whose columns are the event fields."""
    n = table.num_rows
    batch.check_size(n, limits, "events")
    errs = RowErrors(n)
    names = table.column_names
    if len(set(names)) != len(names):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                errs.add(None, name, "column given twice")
            seen.add(name)
    for name in names:
        if name not in EVENT_FIELDS and not name.startswith(("features.", "segments.")):
            errs.add(None, name, "unknown column")
    src: dict[str, Any] = {
        name: columns.decode_dictionary(table.column(name).combine_chunks())
        for name in set(names) & EVENT_FIELDS
        if name not in ("features", "segments", "probabilities")
    }
    if "probabilities" in names:
        col = table.column("probabilities").combine_chunks()
        src["probabilities"] = nested.probabilities_from_arrow(col, errs)
    src["segments"] = nested.segments_from_arrow(table, errs, limits)
    prediction = (src.pop("prediction", pa.nulls(n)), None)
    feats = features.from_arrow(table, errs, limits)
    core = batch.normalize_core(src, prediction, n, errs, now, limits)
    return batch.finish(core, feats, errs)
