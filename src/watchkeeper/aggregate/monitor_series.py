"""The series a monitor watches: its metric's value and sample size per window.

Engine-neutral: one function for every metric family a monitor can name
(:func:`watchkeeper.monitors.definitions.parse_metric`), built on the same functions the API
answers with, so a monitor sees exactly the numbers a user sees. The scheduler feeds these
points to :mod:`watchkeeper.monitors.evaluate` and :mod:`watchkeeper.monitors.lifecycle`.

Sample sizes (for ``min_samples``): events in the window; labelled events for the quality
metrics that need ground truth; evaluated calls (``evaluated_count``) for the evaluators'
metrics, which a ``sample`` below 1 makes fewer than the calls; the feature's values for
drift; rows for data quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from watchkeeper.aggregate.drift import data_quality, drift_timeline
from watchkeeper.aggregate.windows import metric_series
from watchkeeper.drift.settings import DriftSettings
from watchkeeper.metrics import EVAL_METRICS
from watchkeeper.monitors.definitions import Monitor
from watchkeeper.store.base import NoReferenceError, Store

# Metrics whose sample is the number of events with ground truth, not of events.
LABELLED = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "mape", "r2"}
)


@dataclass(frozen=True)
class Point:
    window_start: datetime
    value: float | None
    samples: int


def monitor_series(
    store: Store,
    monitor: Monitor,
    start: datetime,
    end: datetime,
    *,
    settings: DriftSettings | None = None,
) -> dict[str | None, list[Point]]:
    """Points per window in [start, end) (windows aligned to multiples of the monitor's
    window), keyed by segment value for ``segment: name:*`` monitors, else by None.

    Drift and data-quality metrics of a model without a reference have no points."""
    if monitor.each_segment_value:
        name = monitor.segment_name
        assert name is not None
        return {
            value: _points(store, monitor, start, end, (name, value), settings)
            for value in store.segment_values(monitor.model, name, start, end)
        }
    seg = None
    if monitor.segment is not None:
        key, _, value = monitor.segment.partition(":")
        seg = (key, value)
    return {None: _points(store, monitor, start, end, seg, settings)}


def _points(
    store: Store,
    monitor: Monitor,
    start: datetime,
    end: datetime,
    segment: tuple[str, str] | None,
    settings: DriftSettings | None,
) -> list[Point]:
    ref = monitor.metric_ref
    seconds = monitor.window_seconds
    if ref.family == "model":
        samples_name = "count"
        if ref.name in LABELLED:
            samples_name = "labeled_count"
        elif ref.name in EVAL_METRICS:
            samples_name = "evaluated_count"
        names = list(dict.fromkeys([ref.name, samples_name]))  # a count may be both
        got = metric_series(
            store,
            monitor.model,
            names,
            start,
            end,
            monitor.window,
            monitor.version,
            segment,
        )
        values, counts = got["metrics"][ref.name], got["metrics"][samples_name]
        return [
            Point(w, _num(v), int(n or 0))
            for w, v, n in zip(got["windows"], values, counts, strict=True)
        ]
    try:
        if ref.family == "drift":
            timeline = drift_timeline(
                store,
                monitor.model,
                start,
                end,
                seconds,
                version=monitor.version,
                segment=segment,
                features=[ref.feature] if ref.feature else None,
                settings=settings,
            )
            return _drift_points(timeline, ref.feature)
        quality = data_quality(
            store, monitor.model, start, end, seconds, version=monitor.version, segment=segment
        )
    except NoReferenceError:
        return []
    out = []
    for w in quality["windows"]:
        when = _time(w["start"])
        rows = int(w["rows"])
        if ref.family == "quality":
            assert ref.feature is not None
            value = (w["features"].get(ref.feature) or {}).get(ref.name)
        elif ref.name == "duplicate_rate":
            value = w["duplicate_rate"]
        else:  # rejected_batches: counted per window of arrival, whatever the traffic
            value = float(w["rejected"]["batches"])
            rows = max(rows, 1)
        out.append(Point(when, _num(value), rows))
    return out


def _drift_points(timeline: dict[str, Any], feature: str | None) -> list[Point]:
    rows = timeline["features"]
    out = []
    for i, w in enumerate(timeline["windows"]):
        when = _time(w)
        if feature is not None:
            row = next((r for r in rows if r["feature"] == feature), None)
            if row is None:
                out.append(Point(when, None, 0))
            else:
                out.append(Point(when, _num(row["statistic"][i]), int(row["n"][i])))
            continue
        judged = [r for r in rows if r["statistic"][i] is not None]
        drifted = sum(r["severity"][i] == "drift" for r in judged)
        value = drifted / len(judged) if judged else None
        out.append(Point(when, value, max((int(r["n"][i]) for r in rows), default=0)))
    return out


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(timezone.utc)
