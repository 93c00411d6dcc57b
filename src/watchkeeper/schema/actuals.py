"""parse_actuals: a batch of ground-truth labels -> the normalized actuals table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.schema import batch, columns, values
from watchkeeper.schema.contract import ACTUAL_FIELDS, ACTUALS_SCHEMA, DEFAULT_LIMITS, Limits
from watchkeeper.schema.decode import decode_batch
from watchkeeper.schema.errors import RowErrors

REQUIRED_REASON = "required"


def parse_actuals(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> pa.Table:
    """The normalized actuals table (event_id, label, label_value, ts) of a request body.

    Every actual needs an event_id and a non-null label; a repeated event_id keeps its
    first row.
    """
    received = batch.receipt_time(now)
    return decode_batch(
        body,
        content_type,
        content_encoding,
        limits,
        "actuals",
        lambda table: actuals_from_arrow(table, received, limits),
        lambda rows: actuals_from_rows(rows, received, limits),
    )


def actuals_from_rows(rows: list[Any], now: datetime, limits: Limits = DEFAULT_LIMITS) -> pa.Table:
    """The normalized table of decoded JSON actual objects."""
    n = len(rows)
    batch.check_size(n, limits, "actuals")
    errs = RowErrors(n, "actuals")
    objs, present = values.objects(rows, ACTUAL_FIELDS, errs)
    src: dict[str, Any] = {}
    if "event_id" in present:
        src["event_id"] = values.strings(values.column(objs, "event_id"), "event_id", errs)
    if "timestamp" in present:
        src["timestamp"] = values.timestamps(values.column(objs, "timestamp"), "timestamp", errs)
    label = (
        values.labels(values.column(objs, "label"), "label", errs)
        if "label" in present
        else (pa.nulls(n), None)
    )
    return _finish(src, label, n, errs, now, limits)


def actuals_from_arrow(table: pa.Table, now: datetime, limits: Limits = DEFAULT_LIMITS) -> pa.Table:
    """The normalized table of an Arrow table with event_id, label and timestamp columns."""
    n = table.num_rows
    batch.check_size(n, limits, "actuals")
    errs = RowErrors(n, "actuals")
    for name in table.column_names:
        if name not in ACTUAL_FIELDS:
            errs.add(None, name, "unknown column")
    src = {
        name: columns.decode_dictionary(table.column(name).combine_chunks())
        for name in ACTUAL_FIELDS & set(table.column_names)
    }
    return _finish(src, (src.pop("label", pa.nulls(n)), None), n, errs, now, limits)


def _finish(
    src: dict[str, Any],
    label: tuple[Any, Any],
    n: int,
    errs: RowErrors,
    now: datetime,
    limits: Limits,
) -> pa.Table:
    ids = columns.text(
        src.get("event_id", pa.nulls(n)), "event_id", errs, batch.MAX_ID_LEN, min_len=1
    )
    text, value = batch.label_pair(label, "label", errs, limits.max_string_len)
    for field, arr in (("event_id", ids), ("label", text)):
        if arr.null_count:
            known = errs.flagged(field)
            missing = columns.rows_where(pc.is_null(arr))
            errs.add_rows([row for row in missing if row not in known], field, REQUIRED_REASON)
    ts = columns.timestamps(src.get("timestamp", pa.nulls(n)), "timestamp", errs, now, limits)
    errs.raise_if_any()
    table = pa.Table.from_arrays([ids, text, value, ts], schema=ACTUALS_SCHEMA)
    return batch.keep_first(table)
