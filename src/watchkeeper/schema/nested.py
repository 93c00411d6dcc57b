"""The object-valued event fields other than features: segments (name -> string, stored as
map<string, string>) and probabilities (class -> number, stored as JSON text)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.schema import columns
from watchkeeper.schema.contract import FEATURE_NAME_RE, SEGMENTS_TYPE, Limits
from watchkeeper.schema.errors import RowErrors
from watchkeeper.schema.values import is_number, json_type

SEGMENT_NAME_REASON = "segment names must match ^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"


def segments_from_json(values: list[Any], errs: RowErrors, limits: Limits) -> Any:
    """The segments column of the rows' "segments" objects (null where absent)."""
    n = len(values)
    if all(v is None for v in values):
        return pa.nulls(n, SEGMENTS_TYPE)
    arr = None
    if all(v is None or type(v) is dict for v in values):
        try:
            arr = pa.array(values, SEGMENTS_TYPE)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = None
    if arr is None:
        clean: list[dict[str, str] | None] = []
        for row, value in enumerate(values):
            if value is None:
                clean.append(None)
            elif type(value) is not dict:
                errs.add(row, "segments", f"expected an object, got {json_type(value)}")
                clean.append(None)
            else:
                good = {}
                for key, item in value.items():
                    if type(item) is str:
                        good[key] = item
                    else:
                        errs.add(
                            row, f"segments.{key}", f"expected a string, got {json_type(item)}"
                        )
                clean.append(good)
        arr = pa.array(clean, SEGMENTS_TYPE)
    return _checked(arr, errs, limits)


def _checked(arr: Any, errs: RowErrors, limits: Limits) -> Any:
    """Segment names must be valid, values short enough and not null."""
    keys, items, parents = columns.map_parts(arr)
    if len(keys) == 0:
        return arr
    for key in pc.unique(keys).to_pylist():
        if not FEATURE_NAME_RE.match(key):
            row = parents[pc.index(keys, key).as_py()].as_py()
            errs.add(row, "segments." + key[:200], SEGMENT_NAME_REASON)
    checks = (
        (pc.is_null(items), "expected a string, got null"),
        (
            pc.fill_null(pc.greater(pc.utf8_length(items), limits.max_string_len), False),
            f"longer than {limits.max_string_len} characters",
        ),
    )
    for bad, reason in checks:
        if columns.any_true(bad):
            where = pc.indices_nonzero(bad)
            rows = pc.take(parents, where).to_pylist()
            names = pc.take(keys, where).to_pylist()
            for row, name in zip(rows, names, strict=True):
                errs.add(row, "segments." + str(name)[:200], reason)
    return arr


def segments_from_arrow(table: Any, errs: RowErrors, limits: Limits) -> Any:
    """The segments column of an Arrow table: a map or struct column "segments", or
    flattened "segments.<name>" columns."""
    n = table.num_rows
    flat = [c for c in table.column_names if c.startswith("segments.")]
    if flat:
        if "segments" in table.column_names:
            errs.add(
                None, "segments", "give segments as one column or as flattened columns, not both"
            )
        struct = pa.StructArray.from_arrays(
            [table.column(c).combine_chunks() for c in flat], [c[len("segments.") :] for c in flat]
        )
    elif "segments" in table.column_names:
        struct = columns.decode_dictionary(table.column("segments").combine_chunks())
    else:
        return pa.nulls(n, SEGMENTS_TYPE)
    t = struct.type
    if pa.types.is_null(t):
        return pa.nulls(n, SEGMENTS_TYPE)
    if pa.types.is_map(t) and columns.is_text(t.key_type) and columns.is_text(t.item_type):
        return _checked(struct.cast(SEGMENTS_TYPE), errs, limits)
    if not pa.types.is_struct(t):
        columns.column_type_error(errs, "segments", "a map<string, string> or struct", t)
        return pa.nulls(n, SEGMENTS_TYPE)
    children = []
    for field, child in zip(t, struct.flatten(), strict=True):
        child = columns.decode_dictionary(child)
        if columns.is_text(child.type) or pa.types.is_null(child.type):
            children.append(child.cast(pa.string()))
        else:
            columns.column_type_error(errs, "segments." + field.name, "a string", child.type)
            children.append(pa.nulls(n, pa.string()))
    return _checked(struct_to_map(struct, [f.name for f in t], children), errs, limits)


def struct_to_map(struct: Any, names: list[str], children: list[Any]) -> Any:
    """A map<string, string> of a struct of string columns, leaving out null values."""
    n, k = len(struct), len(names)
    if k == 0:
        return pa.MapArray.from_arrays(
            pa.array([0] * (n + 1), pa.int32()),
            pa.array([], pa.string()),
            pa.array([], pa.string()),
            mask=pc.is_null(struct),
        )
    flat = pa.array(range(n * k), pa.int64())  # row-major: row r = i // k, child j = i % k
    row = pc.divide(flat, k)
    child = pc.subtract(flat, pc.multiply(row, k))
    values = pa.concat_arrays(children).take(pc.add(pc.multiply(child, n), row))
    keys = pa.array(names, pa.string()).take(child)
    valid = pc.is_valid(values)
    counts = pa.array([0] * n, pa.int64())
    for column in children:
        counts = pc.add(counts, pc.cast(pc.is_valid(column), pa.int64()))
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(counts)]).cast(
        pa.int32()
    )
    return pa.MapArray.from_arrays(
        offsets, keys.filter(valid), values.filter(valid), mask=pc.is_null(struct)
    )


def probabilities_from_json(values: list[Any], errs: RowErrors) -> Any:
    """JSON text of each row's class -> probability object (null where absent)."""
    out: list[str | None] = []
    for row, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        if type(value) is not dict:
            errs.add(row, "probabilities", f"expected an object, got {json_type(value)}")
            out.append(None)
            continue
        ok = True
        for key, prob in value.items():
            if not is_number(prob):
                errs.add(
                    row, f"probabilities.{key}"[:250], f"expected a number, got {json_type(prob)}"
                )
                ok = False
            elif not math.isfinite(prob):
                errs.add(row, f"probabilities.{key}"[:250], columns.FINITE_REASON)
                ok = False
        out.append(orjson.dumps(value).decode() if ok else None)
    return pa.array(out, pa.string())


def probabilities_from_arrow(col: Any, errs: RowErrors) -> Any:
    """JSON text of a struct or map<string, number> column (rows go through Python)."""
    t = col.type
    if pa.types.is_null(t):
        return pa.nulls(len(col), pa.string())
    if pa.types.is_struct(t):
        rows = [
            None if r is None else {k: v for k, v in r.items() if v is not None}
            for r in col.to_pylist()
        ]
    elif pa.types.is_map(t):
        rows = [None if r is None else dict(r) for r in col.to_pylist()]
    else:
        columns.column_type_error(errs, "probabilities", "a struct or map", t)
        return pa.nulls(len(col), pa.string())
    return probabilities_from_json(rows, errs)
