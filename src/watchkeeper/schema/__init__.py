"""Request bodies -> normalized Arrow tables, or precise errors (see docs/internals.md)."""

from watchkeeper.schema.actuals import parse_actuals
from watchkeeper.schema.contract import (
    ACTUALS_SCHEMA,
    CORE_SCHEMA,
    DEFAULT_LIMITS,
    FEATURE_NAME_RE,
    FEATURE_PREFIX,
    MODEL_NAME_RE,
    Limits,
    canonical_label,
    validate_model_name,
)
from watchkeeper.schema.errors import BatchError
from watchkeeper.schema.events import parse_events
from watchkeeper.schema.reference import ReferenceData, parse_reference

__all__ = [
    "ACTUALS_SCHEMA",
    "CORE_SCHEMA",
    "DEFAULT_LIMITS",
    "FEATURE_NAME_RE",
    "FEATURE_PREFIX",
    "MODEL_NAME_RE",
    "BatchError",
    "Limits",
    "ReferenceData",
    "canonical_label",
    "parse_actuals",
    "parse_events",
    "parse_reference",
    "validate_model_name",
]
