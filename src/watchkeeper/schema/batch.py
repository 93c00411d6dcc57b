"""Assembly of the normalized events table, shared by the JSON and Arrow paths."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.schema import columns
from watchkeeper.schema.contract import (
    CORE_SCHEMA,
    DEFAULT_VERSION,
    FEATURE_PREFIX,
    Limits,
)
from watchkeeper.schema.errors import BatchError, RowErrors, empty_batch

MAX_ID_LEN = 128


def receipt_time(now: datetime | None) -> datetime:
    """The time of receipt: `now` (naive means UTC) or the current time."""
    if now is None:
        return datetime.now(timezone.utc)
    return now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)


def check_size(n: int, limits: Limits, noun: str) -> None:
    """An empty batch is a 422, one with too many rows a 413."""
    if n == 0:
        raise empty_batch(noun)
    if n > limits.max_events:
        raise BatchError(
            413, "too_large", f"{n} {noun} in one batch; send at most {limits.max_events}"
        )


def new_ids(k: int) -> list[str]:
    """k random uuid4 hex strings (faster than uuid.uuid4().hex in a loop)."""
    raw = bytearray(os.urandom(16 * k))
    raw[6::16] = bytes((b & 0x0F) | 0x40 for b in raw[6::16])
    raw[8::16] = bytes((b & 0x3F) | 0x80 for b in raw[8::16])
    hexed = raw.hex()
    return [hexed[i : i + 32] for i in range(0, 32 * k, 32)]


def fill_ids(ids: Any) -> Any:
    """Event ids with a fresh uuid4 hex wherever the client sent none."""
    missing = ids.null_count
    if missing == 0:
        return ids
    if missing == len(ids):
        return pa.array(new_ids(missing), pa.string())
    return pc.replace_with_mask(ids, pc.is_null(ids), pa.array(new_ids(missing), pa.string()))


def label_pair(pair: tuple[Any, Any], field: str, errs: RowErrors, max_len: int) -> tuple[Any, Any]:
    """(canonical text, value) from an Arrow label array, or from text already canonical."""
    arr, values = pair
    if values is None:
        return columns.label(arr, field, errs, max_len)
    return columns.text(arr, field, errs, max_len), values


def normalize_core(
    src: dict[str, Any],
    prediction: tuple[Any, Any],
    n: int,
    errs: RowErrors,
    now: datetime,
    limits: Limits,
) -> list[Any]:
    """The core columns, in CORE_SCHEMA order, from wire-named Arrow arrays (absent = null)."""
    nulls = pa.nulls(n)

    def get(field: str) -> Any:
        arr = src.get(field)
        return nulls if arr is None else arr

    def text(field: str) -> Any:
        return columns.text(get(field), field, errs, limits.string_limit(field))

    def number(field: str) -> Any:
        return columns.number(get(field), field, errs, nonneg=True)

    ids = columns.text(get("event_id"), "event_id", errs, MAX_ID_LEN, min_len=1)
    version = columns.text(get("version"), "version", errs, MAX_ID_LEN, min_len=1)
    probabilities = src.get("probabilities")
    segments = src["segments"]
    return [
        fill_ids(ids),
        columns.timestamps(get("timestamp"), "timestamp", errs, now, limits),
        pc.fill_null(version, DEFAULT_VERSION),
        *label_pair(prediction, "prediction", errs, limits.max_string_len),
        columns.number(get("score"), "score", errs),
        pa.nulls(n, pa.string()) if probabilities is None else probabilities,
        number("latency_ms"),
        columns.status(get("status"), errs),
        text("error"),
        segments,
        text("prompt"),
        text("response"),
        columns.count(get("input_tokens"), "input_tokens", errs),
        columns.count(get("output_tokens"), "output_tokens", errs),
        number("time_to_first_token_ms"),
        number("cost_usd"),
        text("trace_id"),
        text("conversation_id"),
        text("context"),
    ]


def finish(core: list[Any], features: dict[str, Any], errs: RowErrors) -> pa.Table:
    """The normalized table, or the 422 listing every problem found on the way."""
    errs.raise_if_any()
    names = sorted(features)
    fields = list(CORE_SCHEMA) + [
        pa.field(FEATURE_PREFIX + name, features[name].type) for name in names
    ]
    table = pa.Table.from_arrays(core + [features[n] for n in names], schema=pa.schema(fields))
    return keep_first(table)


def keep_first(table: pa.Table) -> pa.Table:
    """The table without later rows whose event_id repeats an earlier row's."""
    ids = table.column("event_id")
    if pc.count_distinct(ids).as_py() == table.num_rows:
        return table
    index = pa.table({"id": ids, "i": pa.array(range(table.num_rows), pa.int64())})
    firsts = index.group_by("id", use_threads=False).aggregate([("i", "min")]).column("i_min")
    return table.take(pc.take(firsts, pc.sort_indices(firsts)))
