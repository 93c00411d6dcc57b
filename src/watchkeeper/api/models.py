"""Read routes: models, and metric time series merged from per-minute aggregates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from watchkeeper.aggregate.sizes import WINDOWS
from watchkeeper.aggregate.windows import metric_series
from watchkeeper.api.errors import APIError
from watchkeeper.api.schemas import ERRORS, MetricSeries, ModelDetail, ModelList
from watchkeeper.metrics import METRICS
from watchkeeper.store.base import ModelInfo, Store
from watchkeeper.store.keys import KeyStore

from .auth import require

MAX_WINDOWS = 10_000
DEFAULT_NAMES = ("count", "throughput", "error_rate", "latency_p50", "latency_p95", "latency_p99")


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def bad_param(field: str, reason: str) -> APIError:
    return APIError(
        422,
        "invalid_parameter",
        f"{field}: {reason}",
        [{"row": None, "field": field, "reason": reason}],
    )


def parse_range(
    start: datetime | None, end: datetime | None, default: timedelta = timedelta(hours=1)
) -> tuple[datetime, datetime]:
    """[start, end) in UTC: end defaults to now, start to end - ``default``."""
    end_ = _utc(end) if end else datetime.now(timezone.utc)
    start_ = _utc(start) if start else end_ - default
    if start_ >= end_:
        raise bad_param("start", "must be before end")
    return start_, end_


def parse_segment(segment: str | None, field: str = "segment") -> tuple[str, str] | None:
    if segment is None:
        return None
    key, sep, value = segment.partition(":")
    if not sep or not key:
        raise bad_param(field, "use name:value, e.g. region:eu")
    return key, value


def _detail(m: ModelInfo) -> dict[str, Any]:
    return {
        "name": m.name,
        "task": m.task,
        "created_at": m.created_at,
        "event_count": m.event_count,
        "actual_count": m.actual_count,
        "first_seen": m.first_seen,
        "last_seen": m.last_seen,
        "versions": [v.__dict__ for v in m.versions],
        "features": m.features,
        "segments": m.segments,
    }


def models_router(store: Store, keys: KeyStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1/models", tags=["models"])
    can_read = Depends(require(keys, "read"))

    @router.get("", response_model=ModelList, dependencies=[can_read], responses=ERRORS)
    def list_models() -> dict[str, Any]:
        """Every model with its versions and counts."""
        return {
            "models": [
                {
                    "name": m.name,
                    "task": m.task,
                    "versions": [v.version for v in m.versions],
                    "event_count": m.event_count,
                    "actual_count": m.actual_count,
                    "first_seen": m.first_seen,
                    "last_seen": m.last_seen,
                }
                for m in store.list_models()
            ]
        }

    @router.get("/{model}", response_model=ModelDetail, dependencies=[can_read], responses=ERRORS)
    def get_model(model: str) -> dict[str, Any]:
        """One model: versions, schema (features and segments), counts."""
        return _detail(store.get_model(model))

    @router.get(
        "/{model}/metrics", response_model=MetricSeries, dependencies=[can_read], responses=ERRORS
    )
    async def get_metrics(
        model: str,
        names: str = Query(",".join(DEFAULT_NAMES), description="comma-separated metric names"),
        start: datetime | None = Query(None, description="inclusive; default end - 1h"),
        end: datetime | None = Query(None, description="exclusive; default now"),
        window: str = Query("1m", description="1m, 5m, 15m, 1h, 1d, or all (one window)"),
        version: str | None = Query(None, max_length=128),
        segment: str | None = Query(None, description="name:value", max_length=300),
        positive_label: str | None = Query(None, max_length=128),
    ) -> dict[str, Any]:
        """Metric values per window; windows without data hold null (counts hold 0)."""
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in METRICS]
        if not wanted or unknown:
            raise bad_param("names", f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
        if window not in WINDOWS:
            raise bad_param("window", f"must be one of {list(WINDOWS)}")
        start_, end_ = parse_range(start, end)
        seconds = WINDOWS[window]
        if seconds and (end_ - start_).total_seconds() / seconds > MAX_WINDOWS:
            raise bad_param("window", f"more than {MAX_WINDOWS} windows; use a larger window")
        seg = parse_segment(segment)
        return await run_in_threadpool(
            metric_series, store, model, wanted, start_, end_, window, version, seg, positive_label
        )

    return router
