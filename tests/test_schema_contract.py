"""The pinned contract: core columns, canonical labels, names."""

from __future__ import annotations

import pyarrow as pa
import pytest

import watchkeeper.schema as schema
from watchkeeper.schema import (
    CORE_SCHEMA,
    FEATURE_NAME_RE,
    BatchError,
    canonical_label,
    validate_model_name,
)


def test_core_schema_is_internals_table() -> None:
    """CORE_SCHEMA lists the columns of docs/internals.md in order, with their types."""
    assert [(f.name, f.type, f.nullable) for f in CORE_SCHEMA] == [
        ("event_id", pa.string(), False),
        ("ts", pa.timestamp("us", tz="UTC"), False),
        ("version", pa.string(), False),
        ("prediction", pa.string(), True),
        ("prediction_value", pa.float64(), True),
        ("score", pa.float64(), True),
        ("probabilities", pa.string(), True),
        ("latency_ms", pa.float64(), True),
        ("is_error", pa.bool_(), False),
        ("error", pa.string(), True),
        ("segments", pa.map_(pa.string(), pa.string()), True),
        ("prompt", pa.string(), True),
        ("response", pa.string(), True),
        ("input_tokens", pa.int64(), True),
        ("output_tokens", pa.int64(), True),
        ("ttft_ms", pa.float64(), True),
        ("cost_usd", pa.float64(), True),
        ("trace_id", pa.string(), True),
        ("conversation_id", pa.string(), True),
        ("context", pa.string(), True),
    ]


def test_exported_names() -> None:
    """The package's public surface is pinned."""
    assert set(schema.__all__) == {
        "ACTUALS_SCHEMA", "CORE_SCHEMA", "DEFAULT_LIMITS", "FEATURE_NAME_RE", "FEATURE_PREFIX",
        "MODEL_NAME_RE", "BatchError", "Limits", "ReferenceData", "canonical_label",
        "parse_actuals", "parse_events", "parse_reference", "validate_model_name",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "1"),
        (False, "0"),
        (3, "3"),
        (-2.0, "-2"),
        (0.1, "0.1"),
        (1e-05, "1e-05"),
        ("x", "x"),
        (None, None),
    ],
)
def test_canonical_label(value: object, text: str | None) -> None:
    """bool -> 1/0, integral numbers without a decimal point, other floats as repr."""
    assert canonical_label(value) == text


def test_names() -> None:
    """Feature names follow FEATURE_NAME_RE; invalid model names raise a 422."""
    assert FEATURE_NAME_RE.match("_a.b-c9") and not FEATURE_NAME_RE.match("9a")
    validate_model_name("fraud-v2.1")
    for bad in ("", "a/b", "x" * 129, "../etc"):
        with pytest.raises(BatchError) as info:
            validate_model_name(bad)
        assert (info.value.status, info.value.code) == (422, "invalid_model_name")
