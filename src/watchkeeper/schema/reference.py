"""parse_reference: a reference data set (Parquet or CSV) -> normalized features and schema."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from watchkeeper.schema import batch, columns, features
from watchkeeper.schema.contract import FEATURE_PREFIX, Limits
from watchkeeper.schema.errors import BatchError, RowErrors, malformed

FeatureKind = Literal["number", "string", "bool"]
RESERVED = ("prediction", "label", "score", "event_id", "timestamp", "version")
SEGMENT_PREFIX = "segments."
_PARQUET_TYPES = {"application/vnd.apache.parquet", "application/x-parquet", "application/parquet"}
_CSV_TYPES = {"text/csv", "application/csv", "text/plain"}
_SNIFF_TYPES = {"", "application/octet-stream", "multipart/form-data"}
_REFERENCE_LIMITS = Limits(max_features=10_000, max_string_len=64 * 1024)


@dataclass(frozen=True)
class ReferenceData:
    """A reference data set.

    `table` holds one ``feature:<name>`` column per feature (float64, string or bool), the
    reserved columns present in the file (prediction/label as canonical text with
    prediction_value/label_value, score, event_id, ts, version) and the segment columns as
    ``segments.<name>`` strings. `schema` maps feature name -> "number" | "string" | "bool";
    `segment_columns` names the segments.
    """

    table: pa.Table
    schema: dict[str, FeatureKind]
    segment_columns: tuple[str, ...] = ()


def _format(body: bytes, content_type: str | None, filename: str | None) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _PARQUET_TYPES:
        return "parquet"
    if media in _CSV_TYPES:
        return "csv"
    if media not in _SNIFF_TYPES:
        raise BatchError(
            415,
            "unsupported_media_type",
            f"unsupported reference type {media[:100]!r}; "
            "send Parquet (application/vnd.apache.parquet) or CSV (text/csv)",
        )
    name = (filename or "").lower()
    if name.endswith((".parquet", ".pq")) or body[:4] == b"PAR1":
        return "parquet"
    if name.endswith((".csv", ".txt")) or not name:
        return "csv"
    raise BatchError(
        415, "unsupported_media_type", f"cannot read {filename!r}: send .parquet or .csv"
    )


def read_reference_table(body: bytes, content_type: str | None, filename: str | None) -> pa.Table:
    """The raw table of a Parquet or CSV file."""
    kind = _format(body, content_type, filename)
    try:
        if kind == "parquet":
            return pq.read_table(pa.BufferReader(body))
        return pa_csv.read_csv(io.BytesIO(body))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise malformed(f"cannot read the reference file as {kind}: {exc}") from None


def parse_reference(
    body: bytes, content_type: str | None, filename: str | None = None
) -> ReferenceData:
    """The normalized reference data of an uploaded Parquet or CSV file."""
    raw = read_reference_table(body, content_type, filename)
    n = raw.num_rows
    if n == 0 or raw.num_columns == 0:
        raise BatchError(422, "empty_batch", "the reference file holds no rows")
    errs = RowErrors(n, "rows")
    limits = _REFERENCE_LIMITS
    out: dict[str, Any] = {}
    feats: dict[str, Any] = {}
    segments: list[str] = []
    for name in raw.column_names:
        arr = columns.decode_dictionary(raw.column(name).combine_chunks())
        if name in ("prediction", "label"):
            text, value = columns.label(_nan_to_null(arr), name, errs, limits.max_string_len)
            out[name], out[name + "_value"] = text, value
        elif name == "score":
            out["score"] = columns.number(_nan_to_null(arr), name, errs)
        elif name in ("event_id", "version"):
            out[name] = columns.text(_as_text(arr), name, errs, batch.MAX_ID_LEN)
        elif name == "timestamp":
            now = datetime.now(timezone.utc)
            out["ts"] = columns.timestamps(arr, name, errs, now, limits)
        elif name.startswith(SEGMENT_PREFIX):
            segments.append(name[len(SEGMENT_PREFIX) :])
            out[name] = columns.text(_as_text(arr), name, errs, limits.max_string_len)
        else:
            short = name.removeprefix(FEATURE_PREFIX).removeprefix("features.")
            feats[short] = _feature_input(arr)
    features.check_names(sorted(feats), {}, errs, limits)
    schema: dict[str, FeatureKind] = {}
    for name, arr in sorted(feats.items()):
        if not features.supported(arr.type):
            columns.column_type_error(errs, name, "a number, string or bool", arr.type)
            continue
        normalized = features.normalize(arr, name, errs, limits)
        if normalized is None:  # only nulls: nothing to compare against
            continue
        schema[name] = _kind(normalized.type)
        out[FEATURE_PREFIX + name] = normalized
    errs.raise_if_any()
    return ReferenceData(pa.table(out), schema, tuple(segments))


def _nan_to_null(arr: Any) -> Any:
    """pandas writes missing numbers as NaN; in a reference file they mean null."""
    if pa.types.is_floating(arr.type):
        return pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr)
    return arr


def _as_text(arr: Any) -> Any:
    return arr if columns.is_text(arr.type) or pa.types.is_null(arr.type) else arr.cast(pa.string())


def _feature_input(arr: Any) -> Any:
    t = arr.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return arr.cast(pa.string())  # CSV readers guess dates; a feature compares them as text
    return _nan_to_null(arr)


def _kind(t: Any) -> FeatureKind:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_floating(t):
        return "number"
    return "string"
