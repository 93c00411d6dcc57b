"""parse_reference: Parquet and CSV reference files -> features, schema and segments."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from watchkeeper.schema import BatchError, parse_reference

CSV = (
    b"amount,country,is_new,prediction,label,segments.region\n1.5,FR,true,1,0,eu\n2,,false,0,0,us\n"
)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_csv_reference() -> None:
    """CSV columns become typed features; reserved and segment columns are set apart."""
    ref = parse_reference(CSV, "text/csv")
    assert ref.schema == {"amount": "number", "country": "string", "is_new": "bool"}
    assert ref.segment_columns == ("region",)
    assert ref.table.column("feature:amount").to_pylist() == [1.5, 2.0]
    assert ref.table.column("prediction").to_pylist() == ["1", "0"]
    assert ref.table.column("label_value").to_pylist() == [0.0, 0.0]


def test_parquet_reference_sniffed_and_nan_as_null() -> None:
    """Parquet is recognized by its magic bytes; NaN (pandas' missing value) reads as null."""
    body = parquet_bytes(
        pa.table({"x": [1.0, float("nan")], "c": pa.array(["a", "b"]).dictionary_encode()})
    )
    ref = parse_reference(body, "application/octet-stream", "train.bin")
    assert ref.schema == {"c": "string", "x": "number"}
    assert ref.table.column("feature:x").to_pylist() == [1.0, None]


def test_reference_errors() -> None:
    """Unreadable files are 400, empty ones 422, unknown types 415, bad columns 422."""
    cases = [
        (b"PAR1 broken", "application/vnd.apache.parquet", None, 400),
        (parquet_bytes(pa.table({"x": pa.array([], pa.float64())})), None, "a.parquet", 422),
        (CSV, "image/png", None, 415),
        (CSV, None, "ref.xlsx", 415),
        (parquet_bytes(pa.table({"x": [[1], [2]]})), None, None, 422),
        (parquet_bytes(pa.table({"x": [1.0, float("inf")]})), None, None, 422),
    ]
    for body, content_type, filename, status in cases:
        with pytest.raises(BatchError) as info:
            parse_reference(body, content_type, filename)
        assert info.value.status == status, (filename, info.value)
