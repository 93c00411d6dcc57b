"""Feature columns: from JSON objects or Arrow struct / map / flattened columns to one
normalized array per feature (float64 for numbers, string, or bool)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.schema import columns
from watchkeeper.schema.contract import FEATURE_NAME_RE, Limits
from watchkeeper.schema.errors import RowErrors
from watchkeeper.schema.values import column, infer, json_type

_EMPTY: dict[str, Any] = {}
_KINDS = {bool: "bool", int: "number", float: "number", str: "string"}
_ARROW_TYPES = {"bool": pa.bool_(), "number": pa.float64(), "string": pa.string()}
NAME_REASON = "feature names must match ^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"


def supported(t: Any) -> bool:
    """Whether an Arrow type can hold a feature."""
    return bool(
        columns.is_numeric(t)
        or columns.is_text(t)
        or pa.types.is_boolean(t)
        or pa.types.is_null(t)
        or (pa.types.is_dictionary(t) and columns.is_text(t.value_type))
    )


def normalize(arr: Any, name: str, errs: RowErrors, limits: Limits) -> Any:
    """One feature column in its normalized type, or None when it holds only nulls."""
    field = "features." + name
    t = arr.type
    if pa.types.is_null(t):
        return None
    if columns.is_numeric(t):
        return columns.number(arr, field, errs)
    if pa.types.is_boolean(t):
        return arr
    return columns.text(arr, field, errs, limits.max_string_len)


def check_names(
    names: list[str], first_row: dict[str, int], errs: RowErrors, limits: Limits
) -> None:
    """Feature names must match FEATURE_NAME_RE, and a batch may hold at most max_features."""
    for name in names:
        if not FEATURE_NAME_RE.match(name):
            errs.add(first_row.get(name), "features." + name[:200], NAME_REASON)
    if len(names) > limits.max_features:
        errs.add(
            None, "features", f"{len(names)} features in one batch; at most {limits.max_features}"
        )


def from_json(values: list[Any], errs: RowErrors, limits: Limits) -> dict[str, Any]:
    """Feature arrays of the rows' "features" objects."""
    if set(map(type, values)) <= {dict, type(None)}:
        objs = [v or _EMPTY for v in values]
    else:
        objs = []
        for row, v in enumerate(values):
            if v is not None and type(v) is not dict:
                errs.add(row, "features", f"expected an object, got {json_type(v)}")
            objs.append(v if type(v) is dict else _EMPTY)
    names: set[str] = set().union(*objs)
    if any(not FEATURE_NAME_RE.match(n) for n in names) or len(names) > limits.max_features:
        first: dict[str, int] = {}
        for row, v in enumerate(objs):
            for n in v:
                first.setdefault(n, row)
        check_names(sorted(names), first, errs, limits)
    out: dict[str, Any] = {}
    for name in names:
        values_ = column(objs, name)
        arr = infer(values_)
        if arr is not None and supported(arr.type):
            normalized = normalize(arr, name, errs, limits)
        else:
            normalized = _python_feature(values_, name, errs, limits)
        if normalized is not None:
            out[name] = normalized
    return out


def _python_feature(values: list[Any], name: str, errs: RowErrors, limits: Limits) -> Any:
    """The precise pass over one feature: bad types and the row where the type changed."""
    field = "features." + name
    kind: str | None = None
    first = -1
    reported = False
    clean: list[Any] = []
    for row, value in enumerate(values):
        if value is None:
            clean.append(None)
            continue
        this = _KINDS.get(type(value))
        if this is None:
            reason = f"expected a number, string, bool or null, got {json_type(value)}"
            errs.add(row, field, reason)
            clean.append(None)
        elif kind is None or this == kind:
            kind, first = this, (row if kind is None else first)
            try:
                clean.append(float(value) if this == "number" else value)
            except OverflowError:
                errs.add(row, field, "number out of range")
                clean.append(None)
        else:
            if not reported:
                errs.add(
                    row, field, f"got a {this} where earlier rows (from row {first}) hold a {kind}"
                )
                reported = True
            clean.append(None)
    if kind is None:
        return None
    return normalize(pa.array(clean, _ARROW_TYPES[kind]), name, errs, limits)


def from_arrow(table: Any, errs: RowErrors, limits: Limits) -> dict[str, Any]:
    """Feature arrays of an Arrow table's "features" struct or map column and its
    flattened "features.<name>" columns."""
    found: dict[str, Any] = {}
    if "features" in table.column_names:
        col = columns.decode_dictionary(table.column("features").combine_chunks())
        t = col.type
        if pa.types.is_struct(t):
            found.update(zip([f.name for f in t], col.flatten(), strict=True))
        elif pa.types.is_map(t):
            found.update(map_columns(col))
        elif not pa.types.is_null(t):
            columns.column_type_error(errs, "features", "a struct or map", t)
    for name in table.column_names:
        if name.startswith("features."):
            short = name[len("features.") :]
            if short in found:
                errs.add(None, name, "feature given twice (struct or map column and flattened)")
            found[short] = table.column(name).combine_chunks()
    check_names(sorted(found), {}, errs, limits)
    out: dict[str, Any] = {}
    for name, arr in found.items():
        if not supported(arr.type):
            columns.column_type_error(
                errs, "features." + name, "a number, string or bool", arr.type
            )
            continue
        normalized = normalize(columns.decode_dictionary(arr), name, errs, limits)
        if normalized is not None:
            out[name] = normalized
    return out


def map_columns(col: Any) -> dict[str, Any]:
    """One full-length array per key of a map column (null where a row lacks the key)."""
    keys, items, parents = columns.map_parts(col)
    row_ids = pa.array(range(len(col)), pa.int64())
    out: dict[str, Any] = {}
    for key in pc.unique(keys).to_pylist():
        if key is None:
            continue
        mask = pc.equal(keys, key)
        positions = pc.index_in(row_ids, value_set=pc.filter(parents, mask))
        out[str(key)] = pc.filter(items, mask).take(positions)
    return out
