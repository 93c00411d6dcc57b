"""``GET /metrics``: the server's health and the models' metrics in Prometheus text format.

Built with ``prometheus_client`` on a private :class:`CollectorRegistry` (never the global
one) holding one custom collector. Server health is read at scrape time from what the parts
already keep (the store's counters and queue, the notifier's attempts, the scheduler's last
run, the outbox and the open alerts). The models' part (metrics of the last complete window,
per-feature drift) is computed through the same functions the JSON API uses and cached for
``cache_seconds``, so frequent scrapes cost one computation per model per cache period, never
a pass over events. Series names and labels: docs/prometheus.md.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from watchkeeper._version import __version__
from watchkeeper.aggregate.drift import drift_report
from watchkeeper.aggregate.sizes import WINDOWS, floor_to
from watchkeeper.aggregate.windows import metric_series
from watchkeeper.api.auth import require
from watchkeeper.drift.settings import DriftSettings
from watchkeeper.metrics import METRICS
from watchkeeper.store.base import ModelInfo, NoReferenceError, Store
from watchkeeper.store.keys import KeyStore
from watchkeeper.telemetry import Counter, Histogram, StoreTelemetry

log = logging.getLogger("watchkeeper.prometheus")

# Prometheus 2.x reads the classic text format; generate_latest writes it (names escaped
# with underscores), so announce that version rather than prometheus_client's 1.0.0.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SEVERITIES = ("warning", "critical")
_LABELLED = ("label_coverage", "labeled_count")
# The metrics exported per task: the operational ones for every model, plus its task's.
_GROUPS = {
    "classification": ("classification",),
    "regression": ("regression",),
    "llm": ("llm",),
}


@dataclass(frozen=True)
class MetricsSettings:
    """The ``metrics:`` section of the settings file (docs/prometheus.md)."""

    public: bool = False  # serve /metrics without an API key
    window: str = "5m"  # the models' metrics describe the last complete window of this size
    drift_window: str = "1h"  # per-feature drift over this long, ending where `window` ends
    max_versions: int = 5  # the most recently seen versions per model (plus version="")
    max_features: int = 20  # the most drifted features per model
    cache_seconds: float = 15.0  # the models' part is recomputed at most this often

    @classmethod
    def from_config(cls, doc: Mapping[str, Any] | None) -> MetricsSettings:
        """Validate a ``metrics:`` mapping; ValueError names the bad key."""
        if doc is None:
            return cls()
        if not isinstance(doc, Mapping):
            raise ValueError("'metrics' must be a mapping")
        known = {f.name: f for f in fields(cls)}
        unknown = set(doc) - set(known)
        if unknown:
            raise ValueError(
                f"unknown metrics setting(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        out = cls(**doc)
        if not isinstance(out.public, bool):
            raise ValueError("metrics.public must be true or false")
        for name in ("window", "drift_window"):
            if getattr(out, name) not in WINDOWS or getattr(out, name) == "all":
                allowed = [w for w in WINDOWS if w != "all"]
                raise ValueError(f"metrics.{name} must be one of {allowed}")
        for name in ("max_versions", "max_features"):
            value = getattr(out, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
                raise ValueError(f"metrics.{name} must be a whole number from 0 to 1000")
        if not isinstance(out.cache_seconds, int | float) or not 0 <= out.cache_seconds <= 3600:
            raise ValueError("metrics.cache_seconds must be a number of seconds from 0 to 3600")
        return out


def exported_metrics(task: str | None) -> list[str]:
    """The metric names exported for a model of ``task`` (operational ones for any task)."""
    groups = ("operational", *_GROUPS.get(task or "", ()))
    names = [name for name, info in METRICS.items() if info.group in groups]
    if task == "regression":
        names += [n for n in _LABELLED if n not in names]
    return names


def last_complete(now: datetime, window: str) -> tuple[datetime, datetime]:
    """[start, end) of the newest window of size ``window`` that has closed by ``now``."""
    seconds = WINDOWS[window]
    assert seconds is not None
    end = floor_to(now, seconds)
    return end - timedelta(seconds=seconds), end


class WatchkeeperCollector(Collector):
    """Yields every family on each scrape; the models' families come from a short cache."""

    def __init__(self, store: Store, state: Any, drift: DriftSettings) -> None:
        self.store = store
        self.state = state  # the app's state: scheduler, notifier, metrics_settings (if any)
        self.drift = drift
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at = -math.inf
        self._collect_seconds = 0.0
        self._errors = Counter()  # (part,)
        self._model_names: list[str] = []  # as of the models' part (cached)

    def settings(self) -> MetricsSettings:
        got = getattr(self.state, "metrics_settings", None)
        return got if isinstance(got, MetricsSettings) else MetricsSettings()

    def collect(self) -> Iterator[Metric]:
        yield from self._health()
        models = self._models()  # first: it refreshes the model names the alerts use
        yield from self._alerts()
        yield from models
        errors = CounterMetricFamily(
            "watchkeeper_metrics_errors",
            "Parts of /metrics that failed to compute (logged), by part",
            labels=["part"],
        )
        for (part,), n in sorted(self._errors.snapshot().items()):
            errors.add_metric([part], n)
        yield errors

    # ------------------------------------------------------------------ server health
    def _health(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "watchkeeper_build_info", "The running Watchkeeper version", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily(
            "watchkeeper_store_ready",
            "1 when the store accepts writes (as /readyz)",
            value=1 if self.store.ready() else 0,
        )
        stats = self.store.stats()
        yield GaugeMetricFamily(
            "watchkeeper_write_queue_rows",
            "Rows waiting for the store's writer",
            value=stats.get("queue_rows", 0),
        )
        yield GaugeMetricFamily(
            "watchkeeper_write_queue_requests",
            "Write requests waiting for the store's writer",
            value=stats.get("queue_requests", 0),
        )
        yield CounterMetricFamily(
            "watchkeeper_commits",
            "Group commits of the store's writer",
            value=stats.get("commits", 0),
        )
        telemetry = getattr(self.store, "telemetry", None)
        if isinstance(telemetry, StoreTelemetry):
            yield from _store_telemetry(telemetry)
        yield from self._outbox()
        yield from self._scheduler()
        yield from self._evaluator_runner()

    def _outbox(self) -> Iterator[Metric]:
        counts = self.store.outbox_counts()
        outbox = GaugeMetricFamily(
            "watchkeeper_outbox_notifications",
            "Notifications in the outbox by status (queued, delivered, failed: given up)",
            labels=["status"],
        )
        for status in sorted({"queued", "delivered", "failed", *counts}):
            outbox.add_metric([status], counts.get(status, 0))
        yield outbox
        notifier = getattr(self.state, "notifier", None)
        attempts = getattr(notifier, "attempts", None)
        family = CounterMetricFamily(
            "watchkeeper_notification_attempts",
            "Delivery attempts by channel and outcome (delivered, failed)",
            labels=["channel", "outcome"],
        )
        if isinstance(attempts, Counter):
            for (channel, outcome), n in sorted(attempts.snapshot().items()):
                family.add_metric([channel, outcome], n)
        yield family

    def _scheduler(self) -> Iterator[Metric]:
        scheduler = getattr(self.state, "scheduler", None)
        if scheduler is None:
            return
        interval = float(getattr(scheduler, "interval", 0.0))
        runs = CounterMetricFamily(
            "watchkeeper_alert_engine_runs", "Runs of the alert engine's scheduler"
        )
        runs.add_metric([], float(getattr(scheduler, "runs", 0)))
        yield runs
        yield GaugeMetricFamily(
            "watchkeeper_alert_engine_interval_seconds",
            "Seconds between alert-engine runs (0: it runs only when asked)",
            value=interval,
        )
        yield GaugeMetricFamily(
            "watchkeeper_alert_engine_last_run_duration_seconds",
            "How long the last alert-engine run took",
            value=float(getattr(scheduler, "last_run_seconds", 0.0)),
        )
        last = getattr(scheduler, "last_run_at", None)
        if interval > 0 and isinstance(last, float):
            yield GaugeMetricFamily(
                "watchkeeper_alert_engine_last_run_timestamp_seconds",
                "Unix time the last alert-engine run ended (the server's start before the first)",
                value=last,
            )
            yield GaugeMetricFamily(
                "watchkeeper_alert_engine_lag_seconds",
                "How late the alert engine is: seconds since its last run beyond its interval",
                value=max(0.0, time.time() - last - interval),
            )

    def _evaluator_runner(self) -> Iterator[Metric]:
        runner = getattr(self.state, "evaluator_runner", None)
        stats = getattr(runner, "stats", None)
        if not callable(stats):
            return
        got = stats()
        calls = CounterMetricFamily(
            "watchkeeper_evaluator_calls",
            "LLM calls the background evaluators read, by outcome (evaluated, not_sampled,"
            " skipped_budget: over max_per_minute)",
            labels=["outcome"],
        )
        for outcome in ("evaluated", "not_sampled", "skipped_budget"):
            calls.add_metric([outcome], float(got.get(f"calls_{outcome}", 0)))
        yield calls
        judge = CounterMetricFamily(
            "watchkeeper_judge_requests",
            "LLM-as-judge requests by outcome (sent, error, skipped_budget)",
            labels=["outcome"],
        )
        for outcome, key in (
            ("sent", "judge_calls"),
            ("error", "judge_errors"),
            ("skipped_budget", "judge_skipped_budget"),
        ):
            judge.add_metric([outcome], float(got.get(key, 0)))
        yield judge
        yield CounterMetricFamily(
            "watchkeeper_evaluations_written",
            "Evaluation results stored by the background evaluators",
            value=float(got.get("evaluations_written", 0)),
        )
        yield CounterMetricFamily(
            "watchkeeper_evaluator_errors",
            "Evaluator passes that failed (logged)",
            value=float(got.get("errors", 0)),
        )

    # ------------------------------------------------------------------ alerts
    def _alerts(self) -> Iterator[Metric]:
        firing = GaugeMetricFamily(
            "watchkeeper_alerts_firing",
            "Firing alerts by model and severity",
            labels=["model", "severity"],
        )
        pending = GaugeMetricFamily(
            "watchkeeper_alerts_pending",
            "Pending alerts (breaching, not yet firing) by model and severity",
            labels=["model", "severity"],
        )
        counts: dict[tuple[str, str, str], int] = {}
        try:
            models = self._model_names
            for alert in self.store.list_alerts(status="open", limit=100_000):
                key = (alert["status"], alert["model"], alert["severity"] or "warning")
                counts[key] = counts.get(key, 0) + 1
        except Exception:
            log.exception("reading open alerts for /metrics failed")
            self._errors.inc(("alerts",))
            return
        for name in sorted({*models, *(k[1] for k in counts)}):
            for severity in sorted({*SEVERITIES, *(k[2] for k in counts if k[1] == name)}):
                firing.add_metric([name, severity], counts.get(("firing", name, severity), 0))
                pending.add_metric([name, severity], counts.get(("pending", name, severity), 0))
        yield firing
        yield pending

    # ------------------------------------------------------------------ models (cached)
    def _models(self) -> list[Metric]:
        settings = self.settings()
        with self._lock:  # one scrape computes, concurrent ones wait and share the result
            now = time.monotonic()
            if now - self._cached_at >= settings.cache_seconds:
                t0 = time.perf_counter()
                self._cached = list(self._compute_models(settings))
                self._collect_seconds = time.perf_counter() - t0
                self._cached_at = time.monotonic()
            age = time.monotonic() - self._cached_at
            return [
                *self._cached,
                GaugeMetricFamily(
                    "watchkeeper_metrics_models_duration_seconds",
                    "How long computing the models' part of /metrics took (it is cached)",
                    value=self._collect_seconds,
                ),
                GaugeMetricFamily(
                    "watchkeeper_metrics_models_age_seconds",
                    "Age of the cached models' part of /metrics",
                    value=age,
                ),
            ]

    def _compute_models(self, settings: MetricsSettings) -> Iterable[Metric]:
        now = datetime.now(timezone.utc)
        start, end = last_complete(now, settings.window)
        d_seconds = WINDOWS[settings.drift_window] or 0
        d_start, d_end = end - timedelta(seconds=d_seconds), end  # ends with the model window
        window_start = GaugeMetricFamily(
            "watchkeeper_model_window_start_timestamp_seconds",
            "Start (Unix time) of the range the model (window=window) and drift"
            " (window=drift_window) gauges describe; both end where the model window ends",
            labels=["window"],
        )
        window_start.add_metric([settings.window], start.timestamp())
        if settings.drift_window != settings.window:
            window_start.add_metric([settings.drift_window], d_start.timestamp())
        values = GaugeMetricFamily(
            "watchkeeper_model_metric",
            "A model's metric over the last complete window (as GET /api/v1/models/{model}"
            '/metrics answers); version="" is every version together',
            labels=["model", "version", "metric", "window"],
        )
        events = GaugeMetricFamily(
            "watchkeeper_model_events", "Events stored for the model", labels=["model"]
        )
        actuals = GaugeMetricFamily(
            "watchkeeper_model_actuals", "Ground-truth rows stored for the model", labels=["model"]
        )
        dropped = GaugeMetricFamily(
            "watchkeeper_model_versions_dropped",
            "Versions seen in the window but left out by the max_versions limit",
            labels=["model"],
        )
        drift = GaugeMetricFamily(
            "watchkeeper_feature_drift",
            "A feature's drift statistic against the reference over the drift window"
            " (the most drifted max_features per model)",
            labels=["model", "feature", "method", "window"],
        )
        ratio = GaugeMetricFamily(
            "watchkeeper_feature_drift_ratio",
            "A feature's drift statistic divided by its threshold (>= 1: drifted)",
            labels=["model", "feature", "window"],
        )
        drifted = GaugeMetricFamily(
            "watchkeeper_model_drifted_features",
            "Features judged drifted over the drift window (all features, no limit)",
            labels=["model", "window"],
        )
        features_dropped = GaugeMetricFamily(
            "watchkeeper_feature_drift_dropped",
            "Features left out of watchkeeper_feature_drift by the max_features limit",
            labels=["model"],
        )
        infos = self.store.list_models()
        self._model_names = [m.name for m in infos]
        for model in infos:
            events.add_metric([model.name], model.event_count)
            actuals.add_metric([model.name], model.actual_count)
            try:
                versions, extra = _recent_versions(model, start, end, settings.max_versions)
                dropped.add_metric([model.name], extra)
                names = exported_metrics(model.task)
                for version in ["", *versions]:
                    series = metric_series(
                        self.store, model.name, names, start, end, settings.window,
                        version or None, None,
                    )  # fmt: skip
                    for name in names:
                        value = series["metrics"][name][0]
                        if value is not None:
                            values.add_metric([model.name, version, name, settings.window], value)
            except Exception:
                log.exception("model metrics of %s for /metrics failed", model.name)
                self._errors.inc(("model_metrics",))
            try:
                self._drift(
                    model, d_start, d_end, settings, drift, ratio, drifted, features_dropped
                )
            except NoReferenceError:
                pass  # no reference profile: no drift to report
            except Exception:
                log.exception("drift of %s for /metrics failed", model.name)
                self._errors.inc(("drift",))
        return [window_start, values, events, actuals, dropped, drift, ratio, drifted,
                features_dropped]  # fmt: skip

    def _drift(
        self,
        model: ModelInfo,
        start: datetime,
        end: datetime,
        settings: MetricsSettings,
        drift: GaugeMetricFamily,
        ratio: GaugeMetricFamily,
        drifted: GaugeMetricFamily,
        dropped: GaugeMetricFamily,
    ) -> None:
        report = drift_report(
            self.store, model.name, start, end, multivariate=False, settings=self.drift
        )
        rows = [r for r in report["features"] if r.get("statistic") is not None]
        rows.sort(key=_drift_rank, reverse=True)
        window = settings.drift_window
        drifted.add_metric([model.name, window], sum(r.get("severity") == "drift" for r in rows))
        dropped.add_metric([model.name], max(0, len(rows) - settings.max_features))
        for row in rows[: settings.max_features]:
            feature = str(row["feature"])
            drift.add_metric([model.name, feature, str(row["method"]), window], row["statistic"])
            rank = _drift_rank(row)
            if not math.isinf(rank):
                ratio.add_metric([model.name, feature, window], rank)


def _drift_rank(row: Mapping[str, Any]) -> float:
    """statistic / threshold (comparable across methods); -inf when there is no threshold."""
    threshold = row.get("threshold")
    if not threshold:
        return -math.inf
    return float(row["statistic"]) / float(threshold)


def _recent_versions(
    model: ModelInfo, start: datetime, end: datetime, limit: int
) -> tuple[list[str], int]:
    """The versions with events in [start, end) (by their first and last minute), most
    recently seen first, at most ``limit``; and how many more there were."""
    seen = [
        v
        for v in model.versions
        if v.version
        and v.last_seen is not None  # the end of its last minute
        and v.first_seen is not None
        and _aware(v.last_seen) > start
        and _aware(v.first_seen) < end
    ]
    seen.sort(key=lambda v: (_aware(v.last_seen), v.version), reverse=True)
    return [v.version for v in seen[:limit]], max(0, len(seen) - limit)


def _aware(ts: datetime | None) -> datetime:
    assert ts is not None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


def _store_telemetry(t: StoreTelemetry) -> Iterator[Metric]:
    specs: list[tuple[str, str, str, Counter]] = [
        ("watchkeeper_ingest_batches", "Batches committed, by kind", "kind", t.batches),
        ("watchkeeper_ingest_rows", "Rows accepted (committed), by kind", "kind", t.rows),
        (
            "watchkeeper_ingest_duplicate_rows",
            "Rows refused as already stored (retries), by kind",
            "kind",
            t.duplicates,
        ),
        (
            "watchkeeper_ingest_rejected_batches",
            "Batches refused, by error code (invalid batches of known models, busy)",
            "code",
            t.rejected_batches,
        ),
        (
            "watchkeeper_ingest_rejected_rows",
            "Rows of refused batches (rows with errors for invalid batches), by error code",
            "code",
            t.rejected_rows,
        ),
    ]
    for name, doc, label, counter in specs:
        family = CounterMetricFamily(name, doc, labels=[label])
        snapshot = counter.snapshot()
        if label == "kind":  # always present, so rate() has a series from the start
            snapshot = {("events",): 0.0, ("actuals",): 0.0, **snapshot}
        for (value,), n in sorted(snapshot.items()):
            family.add_metric([value], n)
        yield family
    yield _histogram(
        "watchkeeper_commit_duration_seconds",
        "Time of each group commit of the store's writer",
        t.commit_seconds,
    )


def _histogram(name: str, doc: str, hist: Histogram) -> HistogramMetricFamily:
    snap = hist.snapshot()
    family = HistogramMetricFamily(name, doc)
    buckets = [(_bound(b), n) for b, n in snap.buckets] + [("+Inf", snap.count)]
    family.add_metric([], buckets, snap.total)
    return family


def _bound(value: float) -> str:
    return repr(float(value))


def metrics_router(
    store: Store, keys: KeyStore, state: Any, drift: DriftSettings | None = None
) -> APIRouter:
    """``GET /metrics``; ``state`` is the app's state, where the server puts its scheduler,
    notifier and ``metrics_settings`` (read at scrape time)."""
    router = APIRouter(tags=["metrics"])
    collector = WatchkeeperCollector(store, state, drift or DriftSettings())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    can_read = require(keys, "read")

    @router.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus text format; needs a key with scope read unless metrics.public."""
        if not collector.settings().public:
            can_read(request)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)

    return router
