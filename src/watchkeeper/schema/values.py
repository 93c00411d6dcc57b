"""JSON values to Arrow arrays: pyarrow's C++ inference for the common case, then a precise
Python pass over the rows only when inference fails or yields the wrong type.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from itertools import repeat
from typing import Any, Final

import pyarrow as pa

from watchkeeper.schema.contract import canonical_label, label_value
from watchkeeper.schema.errors import RowErrors

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US: Final = timedelta(microseconds=1)
_INFER_ERRORS: Final = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError)
_NUMERIC: Final = (pa.int64(), pa.float64(), pa.null())
_MAX_SECONDS: Final = 1e11  # year ~5138; beyond this an epoch number is surely wrong


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def infer(values: list[Any]) -> Any:
    """pyarrow's inferred array for JSON values, or None when they do not fit one type."""
    try:
        arr = pa.array(values)
    except _INFER_ERRORS:
        return None
    # pyarrow reads a bool after a float as 1.0 / 0.0; a bool is not a number here.
    if arr.type == pa.float64() and bool in set(map(type, values)):
        return None
    return arr


def is_number(value: object) -> bool:
    """An int or float, not a bool."""
    t = type(value)
    return t is float or t is int


def _checked(
    values: list[Any],
    field: str,
    errs: RowErrors,
    ok: Callable[[object], bool],
    expected: str,
    arrow_type: Any,
) -> Any:
    clean: list[Any] = []
    append = clean.append
    for row, value in enumerate(values):
        if value is None or ok(value):
            append(value)
        else:
            errs.add(row, field, f"expected {expected}, got {json_type(value)}")
            append(None)
    if arrow_type == pa.float64():
        clean = [None if v is None else float(v) for v in clean]
    return pa.array(clean, arrow_type)


def numbers(values: list[Any], field: str, errs: RowErrors) -> Any:
    """An int64/float64 array of JSON numbers; other values are errors."""
    arr = infer(values)
    if arr is not None and arr.type in _NUMERIC:
        return arr
    return _checked(values, field, errs, is_number, "a number", pa.float64())


def integers(values: list[Any], field: str, errs: RowErrors) -> Any:
    """An int64 (or float64, checked later for integral values) array of JSON numbers."""
    arr = infer(values)
    if arr is not None and arr.type in _NUMERIC:
        return arr

    def ok(value: object) -> bool:
        return type(value) is float or (type(value) is int and -(2**63) <= value < 2**63)

    return _checked(values, field, errs, ok, "an integer", pa.float64())


def strings(values: list[Any], field: str, errs: RowErrors) -> Any:
    """A string array of JSON strings; other values are errors."""
    try:
        return pa.array(values, pa.string())
    except _INFER_ERRORS:
        return _checked(values, field, errs, lambda v: type(v) is str, "a string", pa.string())


def labels(values: list[Any], field: str, errs: RowErrors) -> tuple[Any, Any]:
    """An array of JSON labels (number, string, bool); mixed types come back as strings
    already canonical, so the caller must then only check lengths."""
    arr = infer(values)
    if arr is not None and (arr.type in _NUMERIC or arr.type in (pa.string(), pa.bool_())):
        return arr, None
    text: list[str | None] = []
    nums: list[float | None] = []
    for row, value in enumerate(values):
        if value is None or isinstance(value, (str, bool, int, float)):
            text.append(canonical_label(value))
            nums.append(label_value(value))
        else:
            errs.add(row, field, f"expected a number, string, bool or null, got {json_type(value)}")
            text.append(None)
            nums.append(None)
    return pa.array(text, pa.string()), pa.array(nums, pa.float64())


def parse_rfc3339(value: str) -> int | None:
    """Epoch microseconds of an RFC 3339 / ISO 8601 string (naive means UTC), or None."""
    if len(value) > 64:
        return None
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return (parsed - _EPOCH) // _ONE_US


def timestamps(values: list[Any], field: str, errs: RowErrors) -> Any:
    """An array of string, number or (when mixed) timestamp values for columns.timestamps."""
    arr = infer(values)
    if arr is not None and (arr.type in _NUMERIC or arr.type == pa.string()):
        return arr
    out: list[int | None] = []
    for row, value in enumerate(values):
        micros: int | None = None
        if type(value) is str:
            micros = parse_rfc3339(value)
            if micros is None:
                errs.add(row, field, "expected an RFC 3339 timestamp or epoch seconds")
        elif is_number(value):
            if abs(value) < _MAX_SECONDS:
                micros = round(value * 1_000_000)
            else:
                errs.add(
                    row,
                    field,
                    "timestamp is in the future"
                    if value > 0
                    else "timestamp is before the year 2000",
                )
        elif value is not None:
            errs.add(
                row, field, f"expected an RFC 3339 string or epoch seconds, got {json_type(value)}"
            )
        out.append(micros)
    return pa.array(out, pa.timestamp("us", tz="UTC"))


def objects(
    rows: list[Any], allowed: frozenset[str], errs: RowErrors
) -> tuple[list[dict[str, Any]], set[str]]:
    """The rows as dicts (non-objects are errors, replaced by {}) and the union of their
    keys; unknown fields are errors."""
    if set(map(type, rows)) == {dict}:
        present: set[str] = set().union(*rows)
        if present <= allowed:
            return rows, present
    out: list[dict[str, Any]] = []
    for row, value in enumerate(rows):
        if type(value) is not dict:
            errs.add(row, None, f"expected an object, got {json_type(value)}")
            out.append({})
            continue
        for key in value:
            if key not in allowed:
                errs.add(row, str(key)[:200], "unknown field")
        out.append(value)
    return out, set().union(*out) & allowed


def column(objs: list[dict[str, Any]], key: str) -> list[Any]:
    """The values of one key across rows (None where absent)."""
    return list(map(dict.get, objs, repeat(key)))
