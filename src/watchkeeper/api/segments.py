"""A metric broken down by one segment: one value per segment value over a range.

Each value is what ``/metrics?segment=by:value&window=all`` answers for the same range and
version (the same merge of per-minute aggregates), so the dashboard's segments table and the
metrics charts never disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from watchkeeper.aggregate.windows import metric_series, segment_totals
from watchkeeper.api.models import bad_param, parse_range
from watchkeeper.api.schemas import ERRORS
from watchkeeper.metrics import METRICS
from watchkeeper.store.base import Store
from watchkeeper.store.keys import KeyStore

from .auth import require

DEFAULT_NAMES = ("count", "error_rate", "latency_p95")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def _names(names: str) -> list[str]:
    wanted = list(dict.fromkeys(n.strip() for n in names.split(",") if n.strip()))
    unknown = [n for n in wanted if n not in METRICS]
    if not wanted or unknown:
        raise bad_param("names", f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    if "count" not in wanted:
        wanted.insert(0, "count")  # values are ranked by it, so it is always there
    return wanted


def _values_at(metrics: dict[str, list[Any]]) -> dict[str, Any]:
    return {name: series[0] for name, series in metrics.items()}


def _segment_values(store: Store, model: str, by: str, start: datetime, end: datetime) -> list[str]:
    """The values ``by`` took in the range; 404 for an unknown model, 422 for a segment name
    the model never had."""
    values = store.segment_values(model, by, start, end)
    if not values:
        known = store.get_model(model).segments
        if by not in known:
            raise bad_param("by", f"model {model!r} has no segment {by!r}; known: {known}")
    return values


def segment_breakdown(
    store: Store,
    model: str,
    by: str,
    names: list[str],
    start: datetime,
    end: datetime,
    version: str | None,
    limit: int,
    positive_label: str | None = None,
) -> dict[str, Any]:
    """One ``window=all`` value per metric for each value of segment ``by``, most traffic
    first, at most ``limit`` values; ``overall`` holds the same metrics without a segment.

    All values come from one grouped store query (``segment_totals``), equal by construction
    to ``/metrics?segment=by:value&window=all``; with more values than shown, every value is
    ranked by count first and only the shown ones get the other metrics."""
    start = start.replace(microsecond=0)  # as metric_series does
    values = _segment_values(store, model, by, start, end)
    first_pass = ["count"] if len(values) > limit else names
    found = segment_totals(
        store, model, first_pass, start, end, version, by, values, positive_label
    )
    counts = {v: m["count"] or 0 for v, m in found.items()}
    ranked = sorted((v for v in values if counts.get(v)), key=lambda v: (-counts[v], v))
    shown = ranked[:limit]
    if first_pass != names:
        found = segment_totals(store, model, names, start, end, version, by, shown, positive_label)
    overall = metric_series(store, model, names, start, end, "all", version, None, positive_label)[
        "metrics"
    ]
    return {
        "model": model,
        "by": by,
        "start": start,
        "end": end,
        "version": version,
        "names": names,
        "values": [{"value": v, "metrics": found[v]} for v in shown],
        "overall": _values_at(overall),
        "truncated": len(ranked) > limit,
    }


def segments_router(store: Store, keys: KeyStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1/models", tags=["segments"])
    can_read = Depends(require(keys, "read"))

    @router.get("/{model}/segments", dependencies=[can_read], responses=ERRORS)
    async def get_segments(
        model: str,
        by: str = Query(..., description="a segment name, e.g. region", max_length=128),
        names: str = Query(",".join(DEFAULT_NAMES), description="comma-separated metric names"),
        start: datetime | None = Query(None, description="inclusive; default end - 1h"),
        end: datetime | None = Query(None, description="exclusive; default now"),
        version: str | None = Query(None, max_length=128),
        limit: int = Query(DEFAULT_LIMIT, description=f"at most this many values (1-{MAX_LIMIT})"),
        positive_label: str | None = Query(None, max_length=128),
    ) -> dict[str, Any]:
        """Metrics per value of one segment over the range, values with most traffic first."""
        if not by.strip():
            raise bad_param("by", "name a segment, e.g. region")
        wanted = _names(names)
        if not 1 <= limit <= MAX_LIMIT:
            raise bad_param("limit", f"must be between 1 and {MAX_LIMIT}")
        start_, end_ = parse_range(start, end)
        return await run_in_threadpool(
            segment_breakdown,
            store,
            model,
            by,
            wanted,
            start_,
            end_,
            version,
            limit,
            positive_label,
        )

    return router
