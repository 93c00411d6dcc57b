"""Response bodies of the JSON API (pydantic at the edge, for the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Out):
    row: int | None = Field(None, description="0-based index of the offending row, if any")
    field: str | None = Field(None, description="the offending field, e.g. features.amount")
    reason: str


class ErrorBody(_Out):
    code: str
    message: str
    details: list[ErrorDetail] = []
    error_count: int | None = None


class ErrorResponse(_Out):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "Malformed body",
        401: "Missing or unknown API key",
        403: "The key lacks the scope",
        404: "Unknown model",
        413: "Body or batch too large",
        415: "Unsupported content type or encoding",
        422: "Invalid rows or parameters",
        503: "Busy or shutting down; retry after Retry-After seconds",
    }.items()
}


class EventsAccepted(_Out):
    accepted: int = Field(description="events stored by this request")
    duplicates: int = Field(description="events already stored earlier (retries)")


class ActualsAccepted(_Out):
    accepted: int
    unmatched: int = Field(description="actuals whose event is not stored yet (kept, joined later)")


class ReferenceAccepted(_Out):
    rows: int
    features: dict[str, str]
    version: str | None


class Version(_Out):
    version: str
    event_count: int
    first_seen: datetime | None
    last_seen: datetime | None
    has_reference: bool


class ModelSummary(_Out):
    name: str
    task: str | None
    versions: list[str]
    event_count: int
    actual_count: int
    first_seen: datetime | None
    last_seen: datetime | None


class ModelList(_Out):
    models: list[ModelSummary]


class ModelDetail(_Out):
    name: str
    task: str | None
    created_at: datetime
    event_count: int
    actual_count: int
    first_seen: datetime | None
    last_seen: datetime | None
    versions: list[Version]
    features: dict[str, str] = Field(description="feature name -> number | string | bool")
    segments: list[str]


class MetricSeries(_Out):
    model: str
    window: str
    start: datetime
    end: datetime
    version: str | None
    segment: str | None
    windows: list[datetime] = Field(description="start of each window")
    metrics: dict[str, list[int | float | None]] = Field(description="one value per window")


class Health(_Out):
    status: str
    version: str
