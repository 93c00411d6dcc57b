"""Drift and data-quality routes, and pinning a window of traffic as the reference."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from watchkeeper.aggregate.drift import data_quality, drift_report, drift_timeline
from watchkeeper.aggregate.sizes import WINDOWS
from watchkeeper.api.models import MAX_WINDOWS, bad_param, parse_range, parse_segment
from watchkeeper.api.schemas import ERRORS
from watchkeeper.drift.settings import DriftSettings
from watchkeeper.drift.stats import DriftConfigError
from watchkeeper.store.base import Store
from watchkeeper.store.keys import KeyStore

from .auth import require


def _features(features: str | None) -> list[str] | None:
    if features is None:
        return None
    names = [f.strip() for f in features.split(",") if f.strip()]
    if not names:
        raise bad_param("features", "name at least one feature, or leave it out for all")
    return names


def _window(window: str, start: datetime, end: datetime, allow_all: bool) -> int | None:
    if window not in WINDOWS or (window == "all" and not allow_all):
        allowed = [w for w in WINDOWS if allow_all or w != "all"]
        raise bad_param("window", f"must be one of {allowed}")
    seconds = WINDOWS[window]
    if seconds and (end - start).total_seconds() / seconds > MAX_WINDOWS:
        raise bad_param("window", f"more than {MAX_WINDOWS} windows; use a larger window")
    return seconds


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except DriftConfigError as exc:
        raise bad_param("method", str(exc)) from None


def drift_router(store: Store, keys: KeyStore, settings: DriftSettings) -> APIRouter:
    router = APIRouter(prefix="/api/v1/models", tags=["drift"])
    can_read = Depends(require(keys, "read"))
    can_ingest = Depends(require(keys, "ingest"))

    @router.get("/{model}/drift", dependencies=[can_read], responses=ERRORS)
    async def get_drift(
        model: str,
        start: datetime | None = Query(None, description="inclusive; default end - 1d"),
        end: datetime | None = Query(None, description="exclusive; default now"),
        against: str = Query("reference", description="reference or previous"),
        version: str | None = Query(None, max_length=128),
        segment: str | None = Query(None, description="name:value", max_length=300),
        by: str | None = Query(None, description="a segment name: one result per value"),
        method: str | None = Query(None, description="override the method where it applies"),
        features: str | None = Query(None, description="comma-separated; default all"),
        multivariate: bool = Query(True, description="run the sample-based detectors"),
    ) -> dict[str, Any]:
        """Per-feature drift (statistic, p-value, thresholds, verdict) plus multivariate."""
        start_, end_ = parse_range(start, end, timedelta(days=1))
        if against not in ("reference", "previous"):
            raise bad_param("against", "must be reference or previous")
        if by is not None and segment is not None:
            raise bad_param("by", "use either segment or by, not both")
        return await _run(  # type: ignore[no-any-return]
            drift_report,
            store,
            model,
            start_,
            end_,
            against=against,
            version=version,
            segment=parse_segment(segment),
            by=by,
            method=method,  # checked by the drift functions (DriftConfigError: 422)
            features=_features(features),
            multivariate=multivariate,
            settings=settings,
        )

    @router.get("/{model}/drift/timeline", dependencies=[can_read], responses=ERRORS)
    async def get_drift_timeline(
        model: str,
        window: str = Query("1h", description="1m, 5m, 15m, 1h or 1d"),
        start: datetime | None = Query(None, description="inclusive; default end - 1d"),
        end: datetime | None = Query(None, description="exclusive; default now"),
        version: str | None = Query(None, max_length=128),
        segment: str | None = Query(None, description="name:value", max_length=300),
        method: str | None = Query(None, description="override the method where it applies"),
        features: str | None = Query(None, description="comma-separated; default all"),
    ) -> dict[str, Any]:
        """Drift statistic and verdict per feature per window (the dashboard's heat-map)."""
        start_, end_ = parse_range(start, end, timedelta(days=1))
        seconds = _window(window, start_, end_, allow_all=False)
        assert seconds is not None
        return await _run(  # type: ignore[no-any-return]
            drift_timeline,
            store,
            model,
            start_,
            end_,
            seconds,
            version=version,
            segment=parse_segment(segment),
            method=method,  # checked by the drift functions (DriftConfigError: 422)
            features=_features(features),
            settings=settings,
        )

    @router.get("/{model}/data-quality", dependencies=[can_read], responses=ERRORS)
    async def get_data_quality(
        model: str,
        window: str = Query("all", description="1m, 5m, 15m, 1h, 1d, or all (one window)"),
        start: datetime | None = Query(None, description="inclusive; default end - 1h"),
        end: datetime | None = Query(None, description="exclusive; default now"),
        version: str | None = Query(None, max_length=128),
        segment: str | None = Query(None, description="name:value", max_length=300),
    ) -> dict[str, Any]:
        """Missing, invalid, out-of-range and unseen values per feature; duplicates; schema."""
        start_, end_ = parse_range(start, end)
        seconds = _window(window, start_, end_, allow_all=True)
        return await run_in_threadpool(
            data_quality,
            store,
            model,
            start_,
            end_,
            seconds,
            version=version,
            segment=parse_segment(segment),
        )

    @router.post("/{model}/reference/pin", dependencies=[can_ingest], responses=ERRORS)
    async def pin_reference(
        model: str,
        start: datetime = Query(..., description="inclusive"),
        end: datetime = Query(..., description="exclusive"),
        version: str | None = Query(None, max_length=128, description="reference for"),
        source_version: str | None = Query(
            None, max_length=128, description="take only this version's traffic"
        ),
    ) -> dict[str, Any]:
        """Make a window of the model's own traffic its reference (for one version or all)."""
        start_, end_ = parse_range(start, end)
        rows = await run_in_threadpool(
            store.pin_reference,
            model,
            start_,
            end_,
            version=version,
            source_version=source_version,
        )
        return {"model": model, "version": version, "rows": rows, "start": start_, "end": end_}

    return router
