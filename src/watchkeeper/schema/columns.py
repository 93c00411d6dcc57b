"""Vectorized checks and conversions of one Arrow column into its normalized type.

Both body formats end here: JSON rows become Arrow arrays first (see values.py), Arrow IPC
columns arrive as they are. Each function records precise per-row problems in a RowErrors and
returns the normalized array with the bad cells set to null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.schema.contract import EARLIEST_TS, TS_TYPE, Limits, canonical_label
from watchkeeper.schema.errors import RowErrors
from watchkeeper.schema.values import parse_rfc3339

_EPOCH_MIN_US = int(EARLIEST_TS.timestamp()) * 1_000_000
FINITE_REASON = "NaN and infinity are not accepted"
NEGATIVE_REASON = "must not be negative"
FUTURE_REASON = "timestamp is in the future"
PAST_REASON = "timestamp is before the year 2000"


def rows_where(mask: Any) -> list[int]:
    """Row indices where a boolean array is true (nulls count as false)."""
    return list(pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist())


def any_true(mask: Any) -> bool:
    """Whether a boolean array holds a true value."""
    return bool(pc.any(mask).as_py())


def _blank(arr: Any, mask: Any) -> Any:
    """`arr` with the cells under a (null-free) mask set to null."""
    return pc.if_else(mask, pa.scalar(None, arr.type), arr)


def decode_dictionary(arr: Any) -> Any:
    """Dictionary-encoded columns (pandas categoricals) as plain arrays."""
    if pa.types.is_dictionary(arr.type):
        return arr.cast(arr.type.value_type)
    return arr


def is_numeric(t: Any) -> bool:
    """Integer or floating point Arrow type."""
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def is_text(t: Any) -> bool:
    """A string Arrow type."""
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def column_type_error(errs: RowErrors, field: str, expected: str, t: Any) -> None:
    """Record that a whole Arrow column has the wrong type."""
    errs.add(None, field, f"expected {expected} column, got Arrow type {t}")


def number(arr: Any, field: str, errs: RowErrors, *, nonneg: bool = False) -> Any:
    """A float64 column; NaN, infinity and (with nonneg) negatives are errors."""
    arr = decode_dictionary(arr)
    if pa.types.is_null(arr.type):
        return arr.cast(pa.float64())
    if not is_numeric(arr.type):
        column_type_error(errs, field, "a numeric", arr.type)
        return pa.nulls(len(arr), pa.float64())
    arr = arr.cast(pa.float64(), safe=False)
    bad = pc.invert(pc.fill_null(pc.is_finite(arr), True))
    if any_true(bad):
        errs.add_rows(rows_where(bad), field, FINITE_REASON)
        arr = _blank(arr, bad)
    if nonneg:
        neg = pc.fill_null(pc.less(arr, 0.0), False)
        if any_true(neg):
            errs.add_rows(rows_where(neg), field, NEGATIVE_REASON)
            arr = _blank(arr, neg)
    return arr


def count(arr: Any, field: str, errs: RowErrors) -> Any:
    """An int64 column of non-negative integers (integral floats are accepted)."""
    arr = decode_dictionary(arr)
    if pa.types.is_floating(arr.type):
        floats = number(arr, field, errs, nonneg=True)
        frac = pc.fill_null(pc.not_equal(pc.floor(floats), floats), False)
        huge = pc.fill_null(pc.greater(floats, 2.0**62), False)
        bad = pc.or_(frac, huge)
        if any_true(bad):
            errs.add_rows(rows_where(bad), field, "expected an integer")
            floats = _blank(floats, bad)
        return floats.cast(pa.int64())
    if pa.types.is_null(arr.type):
        return arr.cast(pa.int64())
    if not pa.types.is_integer(arr.type):
        column_type_error(errs, field, "an integer", arr.type)
        return pa.nulls(len(arr), pa.int64())
    if pa.types.is_unsigned_integer(arr.type):
        big = pc.fill_null(pc.greater(arr, 2**63 - 1), False)
        if any_true(big):
            errs.add_rows(rows_where(big), field, "integer too large")
            arr = _blank(arr, big)
    arr = arr.cast(pa.int64())
    neg = pc.fill_null(pc.less(arr, 0), False)
    if any_true(neg):
        errs.add_rows(rows_where(neg), field, NEGATIVE_REASON)
        arr = _blank(arr, neg)
    return arr


def text(arr: Any, field: str, errs: RowErrors, max_len: int, *, min_len: int = 0) -> Any:
    """A string column whose values hold min_len..max_len characters."""
    arr = decode_dictionary(arr)
    if pa.types.is_null(arr.type):
        return arr.cast(pa.string())
    if not is_text(arr.type):
        column_type_error(errs, field, "a string", arr.type)
        return pa.nulls(len(arr), pa.string())
    arr = arr.cast(pa.string())
    lengths = pc.utf8_length(arr)
    too_long = pc.fill_null(pc.greater(lengths, max_len), False)
    if any_true(too_long):
        errs.add_rows(rows_where(too_long), field, f"longer than {max_len} characters")
        arr = _blank(arr, too_long)
    if min_len > 0:
        too_short = pc.fill_null(pc.less(lengths, min_len), False)
        if any_true(too_short):
            errs.add_rows(rows_where(too_short), field, "must not be empty")
            arr = _blank(arr, too_short)
    return arr


def status(arr: Any, errs: RowErrors) -> Any:
    """The non-null is_error column from a status column of "ok" / "error" / null."""
    arr = text(arr, "status", errs, 16)
    bad = pc.and_(pc.is_valid(arr), pc.invert(pc.is_in(arr, pa.array(["ok", "error"]))))
    if any_true(bad):
        errs.add_rows(rows_where(bad), "status", 'expected "ok" or "error"')
    return pc.fill_null(pc.equal(arr, "error"), False)


def label(arr: Any, field: str, errs: RowErrors, max_len: int) -> tuple[Any, Any]:
    """(canonical label text, numeric value) of a prediction or label column."""
    arr = decode_dictionary(arr)
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return pa.nulls(n, pa.string()), pa.nulls(n, pa.float64())
    if is_text(t):
        return text(arr, field, errs, max_len), pa.nulls(n, pa.float64())
    if pa.types.is_boolean(t):
        return pc.if_else(arr, "1", "0"), arr.cast(pa.float64())
    if pa.types.is_integer(t):
        return arr.cast(pa.string()), arr.cast(pa.float64(), safe=False)
    if pa.types.is_floating(t):
        values = number(arr, field, errs)
        return float_labels(values), values
    column_type_error(errs, field, "a string, number or bool", t)
    return pa.nulls(n, pa.string()), pa.nulls(n, pa.float64())


def float_labels(values: Any) -> Any:
    """Canonical text of float64 labels: integral values as integers, others as Python repr."""
    integral = pc.fill_null(
        pc.and_(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), 2.0**53)), False
    )
    if bool(pc.all(pc.or_(integral, pc.is_null(values))).as_py()):
        return values.cast(pa.int64()).cast(pa.string())
    # Arrow's float formatting differs from repr(); the rest go through Python.
    return pa.array([canonical_label(v) for v in values.to_pylist()], pa.string())


def timestamps(arr: Any, field: str, errs: RowErrors, now: datetime, limits: Limits) -> Any:
    """The ts column: RFC 3339 strings, epoch seconds or Arrow timestamps; null -> now."""
    arr = decode_dictionary(arr)
    t = arr.type
    if pa.types.is_timestamp(t):
        micros = arr.cast(pa.timestamp("us", tz=t.tz), safe=False).cast(pa.int64())
    elif is_numeric(t):
        seconds = number(arr, field, errs)
        micros = pc.round(pc.multiply(seconds, 1e6))
    elif is_text(t):
        micros = parse_timestamp_strings(arr.cast(pa.string()), field, errs)
    elif pa.types.is_null(t):
        micros = arr.cast(pa.int64())
    else:
        column_type_error(errs, field, "a timestamp, string or number", t)
        micros = pa.nulls(len(arr), pa.int64())
    high = int((now + limits.max_future).timestamp() * 1_000_000)
    future = pc.fill_null(pc.greater(micros, high), False)
    if any_true(future):
        errs.add_rows(rows_where(future), field, FUTURE_REASON)
        micros = _blank(micros, future)
    past = pc.fill_null(pc.less(micros, _EPOCH_MIN_US), False)
    if any_true(past):
        errs.add_rows(rows_where(past), field, PAST_REASON)
        micros = _blank(micros, past)
    now_us = int(now.timestamp() * 1_000_000)
    return pc.fill_null(micros.cast(pa.int64()), now_us).cast(TS_TYPE)


def parse_timestamp_strings(arr: Any, field: str, errs: RowErrors) -> Any:
    """Epoch microseconds of RFC 3339 strings (naive means UTC); unparseable ones are errors."""
    for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        try:  # nanoseconds first: Go's RFC3339Nano has 9 digits; we keep microseconds
            parsed = arr.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        return parsed.cast(pa.timestamp("us", tz=target.tz), safe=False).cast(pa.int64())
    out: list[int | None] = []
    for row, value in enumerate(arr.to_pylist()):
        if value is None:
            out.append(None)
            continue
        micros = parse_rfc3339(value)
        if micros is None:
            errs.add(row, field, "expected an RFC 3339 timestamp or epoch seconds")
        out.append(micros)
    return pa.array(out, pa.int64())


def map_parts(arr: Any) -> tuple[Any, Any, Any]:
    """(keys, items, row of each entry) of a map array.

    pyarrow's list kernels abort the process on map arrays, and MapArray.keys ignores
    slicing, so the entries are cut out by the offsets and walked as a plain list.
    """
    offsets = arr.offsets
    start = offsets[0].as_py()
    size = offsets[-1].as_py() - start
    keys = arr.keys.slice(start, size)
    items = arr.items.slice(start, size)
    as_list = pa.ListArray.from_arrays(pc.subtract(offsets, start), keys)
    return keys, items, pc.list_parent_indices(as_list)
