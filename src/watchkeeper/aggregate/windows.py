"""Time windows over the per-minute aggregates: merge each window, finish it into metrics.

Engine-neutral: it asks a :class:`~watchkeeper.store.base.Store` for merged aggregates per
window and turns them into metric values with :mod:`watchkeeper.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from watchkeeper.aggregate.sizes import WINDOWS, floor_to
from watchkeeper.metrics import WindowAggregate, compute
from watchkeeper.store.base import Store, WindowQuery


def metric_series(
    store: Store,
    model: str,
    names: list[str],
    start: datetime,
    end: datetime,
    window: str,
    version: str | None,
    segment: tuple[str, str] | None,
    positive_label: str | None = None,
) -> dict[str, Any]:
    """Merge the aggregates of each window and finish them into metric values."""
    seconds = WINDOWS[window]
    start = start.replace(microsecond=0)  # windows start on whole seconds
    if seconds is not None:
        start = floor_to(start, seconds)
    query = WindowQuery(model, start, end, seconds, version, segment)
    found = dict(store.window_aggregates(query, names))
    if seconds is None:
        starts = [start]
        empty = WindowAggregate(seconds=(end - start).total_seconds())
    else:
        count = -(-int((end - start).total_seconds()) // seconds)
        starts = [start + timedelta(seconds=seconds * i) for i in range(count)]
        empty = WindowAggregate(seconds=float(seconds))
    values: dict[str, list[float | None]] = {name: [] for name in names}
    for when in starts:
        got = compute(names, found.get(when, empty), positive_label)
        for name in names:
            values[name].append(got[name])
    return {
        "model": model,
        "window": window,
        "start": start,
        "end": end,
        "version": version,
        "segment": f"{segment[0]}:{segment[1]}" if segment else None,
        "windows": starts,
        "metrics": values,
    }


def segment_totals(
    store: Store,
    model: str,
    names: list[str],
    start: datetime,
    end: datetime,
    version: str | None,
    by: str,
    values: Sequence[str],
    positive_label: str | None = None,
) -> dict[str, dict[str, float | None]]:
    """Each metric over the whole range for each value of segment ``by``: per value, exactly
    ``metric_series(..., window="all", segment=(by, value))``'s numbers, from one grouped
    store query. Values without data are left out."""
    start = start.replace(microsecond=0)
    query = WindowQuery(model, start, end, None, version, None)
    found = store.segment_aggregates(query, by, list(values), names)
    return {value: compute(names, agg, positive_label) for value, agg in found.items()}
