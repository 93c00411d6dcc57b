"""The normalized shapes that leave this package, and the limits put on what comes in.

See docs/internals.md ("Normalized batch"): the columns, their order and their Arrow types are
pinned here, and the store relies on them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final

import pyarrow as pa

from watchkeeper.schema.errors import BatchError
from watchkeeper.sdk.wire import EVENT_FIELDS as _WIRE_EVENT_FIELDS

FEATURE_PREFIX: Final = "feature:"
DEFAULT_VERSION: Final = "unversioned"
TS_TYPE: Final = pa.timestamp("us", tz="UTC")
SEGMENTS_TYPE: Final = pa.map_(pa.string(), pa.string())
EARLIEST_TS: Final = datetime(2000, 1, 1, tzinfo=timezone.utc)

MODEL_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FEATURE_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")

CORE_SCHEMA: Final = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("prediction", pa.string()),
        pa.field("prediction_value", pa.float64()),
        pa.field("score", pa.float64()),
        pa.field("probabilities", pa.string()),
        pa.field("latency_ms", pa.float64()),
        pa.field("is_error", pa.bool_(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("segments", SEGMENTS_TYPE),
        pa.field("prompt", pa.string()),
        pa.field("response", pa.string()),
        pa.field("input_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("ttft_ms", pa.float64()),
        pa.field("cost_usd", pa.float64()),
        pa.field("trace_id", pa.string()),
        pa.field("conversation_id", pa.string()),
        pa.field("context", pa.string()),
    ]
)

ACTUALS_SCHEMA: Final = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("label_value", pa.float64()),
        pa.field("ts", TS_TYPE, nullable=False),
    ]
)


# The wire's field names have one home, the SDK (which imports nothing from the server).
EVENT_FIELDS: Final = frozenset(_WIRE_EVENT_FIELDS)
ACTUAL_FIELDS: Final = frozenset({"event_id", "label", "timestamp"})
LONG_TEXT_FIELDS: Final = frozenset({"prompt", "response", "error", "context"})


@dataclass(frozen=True)
class Limits:
    """What one request may carry; the API layer may pass its own from settings."""

    max_body_bytes: int = 64 * 1024 * 1024  # after decompression
    max_events: int = 100_000
    max_future: timedelta = timedelta(minutes=5)
    max_string_len: int = 1024  # identifiers, labels, feature and segment values
    max_text_len: int = 64 * 1024  # prompt, response, error, context
    max_features: int = 2000

    def string_limit(self, field: str) -> int:
        """The longest string (in characters) accepted for a wire field."""
        return self.max_text_len if field in LONG_TEXT_FIELDS else self.max_string_len


DEFAULT_LIMITS: Final = Limits()


def canonical_label(value: object) -> str | None:
    """The stored text of a prediction or label: bool -> "1"/"0", 3.0 -> "3", 0.5 -> "0.5"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"not a label: {type(value).__name__}")


def label_value(value: object) -> float | None:
    """The numeric reading of a label: numbers and bools as float, anything else None."""
    if isinstance(value, (bool, int, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def validate_model_name(name: str) -> None:
    """Raise a 422 BatchError unless `name` is a usable model name (used in URLs and paths)."""
    if not MODEL_NAME_RE.match(name):
        raise BatchError(
            422,
            "invalid_model_name",
            f"invalid model name {name[:200]!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
        )


def feature_column(name: str) -> str:
    """The normalized column name of a feature."""
    return FEATURE_PREFIX + name
