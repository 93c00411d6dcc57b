"""The alert engine: evaluates every monitor on each closed window and records what changes.

Each run (the server's scheduler calls :meth:`AlertEngine.run` every few seconds):

1. per enabled monitor, the windows closed since its series were last evaluated — a window
   counts as closed ``settle`` seconds after its end, so late events and the binning of
   features are in — at most ``MAX_CATCH_UP`` of them (after a restart the engine resumes
   where it stopped, not from the beginning of time);
2. their points (value and sample size per window, per segment value for ``name:*``) from
   :func:`watchkeeper.aggregate.monitor_series.monitor_series` — the numbers the API shows;
3. the condition's verdict per window (static, multi-level, or the dynamic band learned from
   the series' own history, kept in memory and loaded once), then the series' alert state
   machine (:func:`watchkeeper.monitors.lifecycle.step`);
4. the new states and every transition stored in one transaction (``store.record_alerts``):
   an alert is opened (pending or firing), escalated, de-escalated and resolved in place, and
   each transition is kept with its time, cause, value and threshold or band.

The engine holds no clock of its own: ``run(now)`` is deterministic for tests.
"""

from __future__ import annotations

import logging
from bisect import insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from watchkeeper.aggregate.drift import drift_movers
from watchkeeper.aggregate.monitor_series import Point, monitor_series
from watchkeeper.aggregate.sizes import floor_to
from watchkeeper.alerting.actions import ActionsConfig
from watchkeeper.alerting.notify import NotifyConfig, encode, payload
from watchkeeper.drift.settings import DriftSettings
from watchkeeper.monitors import evaluate as ev
from watchkeeper.monitors.definitions import (
    DynamicCondition,
    Monitor,
    MultiLevelCondition,
    StaticCondition,
)
from watchkeeper.monitors.lifecycle import Observation, Policy, State, Transition, step
from watchkeeper.monitors.registry import MonitorRegistry
from watchkeeper.store.base import ActionRequest, Store, UnknownModelError

log = logging.getLogger("watchkeeper.alerts")

SETTLE = timedelta(seconds=15)
MAX_CATCH_UP = 60  # windows evaluated per series and run, at most
MOVER_KINDS = ("pending", "firing", "escalated", "renotify")  # drift alerts say what moved


def series_id(monitor: str, segment_value: str | None) -> str:
    """The stable name of one alert series (one monitor, one segment value)."""
    return monitor if segment_value is None else f"{monitor}|{segment_value}"


@dataclass(frozen=True)
class AlertChange:
    """One transition of one series, with what the monitor saw."""

    series: str
    monitor: Monitor
    segment_value: str | None
    transition: Transition
    value: float | None
    samples: int
    context: dict[str, Any]  # threshold(s) or the dynamic band
    since: datetime | None = None  # first breaching window of the episode
    alert_severity: str | None = None  # the alert's severity (a resolution has none itself)


@dataclass
class RunResult:
    evaluated: int = 0  # windows evaluated, over all series
    changes: list[AlertChange] = field(default_factory=list)
    states: dict[str, tuple[str, str | None, State]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class AlertEngine:
    # Automated responses (set by the server; runs are recorded with the transitions).
    actions: ActionsConfig | None = None

    def __init__(
        self,
        store: Store,
        monitors: Sequence[Monitor] | MonitorRegistry,
        *,
        drift: DriftSettings | None = None,
        settle: timedelta = SETTLE,
        notify: NotifyConfig | None = None,
        dashboard_url: str | None = None,
    ) -> None:
        self.store = store
        # A registry: its enabled monitors, re-read at the start of a run when they changed.
        self.registry: MonitorRegistry | None = None
        self.monitors: list[Monitor] = []
        if isinstance(monitors, MonitorRegistry):
            self.registry = monitors
        else:
            self.monitors = [m for m in monitors if m.enabled]
        self._generation: int | None = None
        self.drift = drift
        self.settle = settle
        self.notify = notify
        self.dashboard_url = dashboard_url
        self.states: dict[str, State] = {}
        self._history: dict[str, list[tuple[datetime, float | None]]] = {}
        self._history_from_store: set[str] = set()  # dynamic monitors whose history is loaded
        self._loaded = False

    def _sync(self) -> None:
        """Take the registry's monitors when they changed: series states stay; the learned
        history of a monitor whose definition changed, or that is gone, is re-read."""
        if self.registry is None:
            return
        generation, monitors = self.registry.snapshot()
        if generation == self._generation:
            return
        old = {m.name: m for m in self.monitors}
        self.monitors = monitors
        new = {m.name: m for m in monitors}
        for name, m in old.items():
            if new.get(name) != m:
                self._history_from_store.discard(name)
                for sid in [s for s in self._history if s.split("|", 1)[0] == name]:
                    del self._history[sid]
        self._generation = generation

    def policy(self, m: Monitor) -> Policy:
        return Policy(
            fire_after=m.fire_after,
            of_last=m.of_last,
            resolve_after=m.resolve_after,
            min_samples=m.min_samples,
            no_data=m.no_data,
            renotify=m.renotify,
        )

    def run(self, now: datetime) -> RunResult:
        """Evaluate every closed window not evaluated yet; store and return the changes."""
        if not self._loaded:
            self.states = {k: State.from_dict(v) for k, v in self.store.alert_states().items()}
            self._loaded = True
        self._sync()
        result = RunResult()
        for m in self.monitors:
            try:
                self._run_monitor(m, now, result)
            except UnknownModelError:
                continue  # its model has no events yet: nothing to evaluate
            except Exception as exc:  # one broken monitor must not stop the others
                log.exception("evaluating monitor %s failed", m.name)
                result.errors.append(f"{m.name}: {exc}")
        if result.states or result.changes:
            self.store.record_alerts(
                {s: (mon, seg, st.to_dict()) for s, (mon, seg, st) in result.states.items()},
                [_record(c) for c in result.changes],
                self._outbox if self.notify is not None and self.notify.routes else None,
                actions=self._actions if self.actions and self.actions.actions else None,
            )
            for s, (_, _, st) in result.states.items():
                self.states[s] = st
        return result

    def _run_monitor(self, m: Monitor, now: datetime, result: RunResult) -> None:
        w = timedelta(seconds=m.window_seconds)
        closed_end = floor_to(now - self.settle, m.window_seconds)
        latest = closed_end - w  # start of the newest closed window
        mine = {k: s for k, s in self.states.items() if k.split("|", 1)[0] == m.name}
        starts = [s.last_window + w for s in mine.values() if s.last_window is not None]
        first = max(min(starts, default=latest), latest - (MAX_CATCH_UP - 1) * w)
        if first > latest:
            return
        dynamic = isinstance(m.condition, DynamicCondition)
        fetch_from = first
        if dynamic and not self._history_loaded(m):
            assert isinstance(m.condition, DynamicCondition)
            fetch_from = first - m.condition.lookback
        series = monitor_series(self.store, m, fetch_from, closed_end, settings=self.drift)
        for segment_value, points in series.items():
            sid = series_id(m.name, segment_value)
            state = self.states.get(sid, State())
            history = self._history.setdefault(sid, [])
            for p in points:
                if p.window_start < first:  # history only (first load of a dynamic monitor)
                    if dynamic and p.samples:  # a window without events is no data, not 0
                        insort(history, (p.window_start, p.value), key=lambda x: x[0])
                    continue
                if state.last_window is not None and p.window_start <= state.last_window:
                    continue
                severity, context = verdict(m, p, history)
                before = state
                state, transitions = step(
                    state, Observation(p.window_start, p.value, severity, p.samples),
                    self.policy(m), now,
                )  # fmt: skip
                result.evaluated += 1
                if before.status == "pending" and state.status == "ok" and not transitions:
                    transitions = [
                        Transition(
                            "cleared",
                            p.window_start,
                            None,
                            f"the breaches left the last {m.of_last} windows before it fired",
                        )
                    ]
                movers = None
                if transitions and any(t.kind in MOVER_KINDS for t in transitions):
                    movers = self._movers(m, segment_value, p.window_start, w)
                for t in transitions:
                    result.changes.append(
                        AlertChange(
                            sid,
                            m,
                            segment_value,
                            t,
                            p.value,
                            p.samples,
                            {**context, "moved_most": movers}
                            if movers and t.kind in MOVER_KINDS
                            else context,
                            state.since or before.since,
                            t.severity or before.severity,
                        )
                    )
                if dynamic and p.samples:
                    history.append((p.window_start, p.value))
                    assert isinstance(m.condition, DynamicCondition)
                    cut = p.window_start - m.condition.lookback
                    while history and history[0][0] < cut:
                        history.pop(0)
            result.states[sid] = (m.name, segment_value, state)
        if dynamic:
            self._mark_history_loaded(m)

    def _movers(
        self, m: Monitor, segment_value: str | None, start: datetime, w: timedelta
    ) -> dict[str, Any] | None:
        """For a drift monitor's alert: the features and segment values that moved most."""
        ref = m.metric_ref
        if ref.family != "drift":
            return None
        name = m.segment_name
        value = segment_value if m.each_segment_value else m.segment_value
        try:
            return drift_movers(
                self.store,
                m.model,
                start,
                start + w,
                version=m.version,
                segment=(name, value) if name is not None and value is not None else None,
                feature=ref.feature,
                settings=self.drift,
            )
        except Exception:  # context is a courtesy: the alert goes out without it
            log.exception("finding what moved most for monitor %s failed", m.name)
            return None

    def _outbox(self, record: Mapping[str, Any], alert_id: int) -> list[tuple[str, bytes]]:
        """The notifications one transition sends: (channel, JSON body) per routed channel."""
        assert self.notify is not None
        channels = self.notify.deliveries(record)
        if not channels:
            return []
        body = encode(payload(record, alert_id, self.dashboard_url))
        return [(c, body) for c in channels]

    def _actions(self, record: Mapping[str, Any], alert_id: int) -> list[ActionRequest]:
        """The action runs one transition asks for (the store decides if each may run)."""
        assert self.actions is not None
        return self.actions.requests(record, alert_id, self.dashboard_url)

    def _history_loaded(self, m: Monitor) -> bool:
        return m.name in self._history_from_store

    def _mark_history_loaded(self, m: Monitor) -> None:
        self._history_from_store.add(m.name)


def verdict(
    m: Monitor, p: Point, history: list[tuple[datetime, float | None]]
) -> tuple[str | None, dict[str, Any]]:
    """The severity a window breaches with (None: no breach) and what it was judged against:
    the threshold(s), or the dynamic band learned from ``history`` (earlier windows)."""
    c = m.condition
    if isinstance(c, StaticCondition):
        breach = ev.static(p.value, c.op, c.threshold)
        return (c.severity if breach else None), {"op": c.op, "threshold": c.threshold}
    if isinstance(c, MultiLevelCondition):
        level = ev.multi_level(p.value, c.op, c.warning, c.critical)
        return level, {"op": c.op, "warning": c.warning, "critical": c.critical}
    band = ev.dynamic_baseline(
        history,
        p.window_start,
        seasonality=c.seasonality,
        sensitivity=c.sensitivity,
        min_history=c.min_history,
        lookback=c.lookback,
        direction=c.direction,
        min_band=c.min_band,
    )
    context = {
        "band": {"lower": band.lower, "upper": band.upper, "median": band.median},
        "armed": band.armed,
        "reason": band.reason,
    }
    return (c.severity if ev.breaches(p.value, band) else None), context


def judged_series(
    store: Store,
    m: Monitor,
    start: datetime,
    end: datetime,
    *,
    drift: DriftSettings | None = None,
) -> dict[str | None, list[dict[str, Any]]]:
    """Each window of [start, end) as the engine judges it — value, sample size, whether it
    counts (``min_samples``), the severity it breaches with, and the threshold(s) or the
    dynamic band learned from the windows before it — per segment value (None: the one
    series). What a chart draws beside the metric."""
    dynamic = isinstance(m.condition, DynamicCondition)
    fetch_from = start
    if isinstance(m.condition, DynamicCondition):
        fetch_from = start - m.condition.lookback
    out: dict[str | None, list[dict[str, Any]]] = {}
    for segment_value, points in monitor_series(store, m, fetch_from, end, settings=drift).items():
        # The band of a window reads only its seasonal bucket within the lookback: keep the
        # history per bucket, trimmed to the lookback (points come in time order), so a long
        # series costs O(windows × bucket), not O(windows²); the bands are the same.
        by_bucket: dict[int, list[tuple[datetime, float | None]]] = {}
        rows = out.setdefault(segment_value, [])
        for p in points:
            history: list[tuple[datetime, float | None]] = []
            if dynamic:
                assert isinstance(m.condition, DynamicCondition)
                history = by_bucket.setdefault(
                    ev.bucket(p.window_start, m.condition.seasonality), []
                )
                cut = ev.utc(p.window_start) - m.condition.lookback
                while history and ev.utc(history[0][0]) < cut:
                    history.pop(0)
            if p.window_start >= start:
                severity, context = verdict(m, p, history)
                counts = p.value is not None and p.samples >= max(m.min_samples, 1)
                rows.append(
                    {
                        "window_start": p.window_start,
                        "value": p.value,
                        "samples": p.samples,
                        "counts": counts,
                        "breach": severity if counts else None,
                        **context,
                    }
                )
            if dynamic and p.samples:
                history.append((p.window_start, p.value))
    return out


def _record(c: AlertChange) -> dict[str, Any]:
    m = c.monitor
    return {
        "series": c.series,
        "monitor": m.name,
        "model": m.model,
        "metric": m.metric,
        "version": m.version,
        "segment": m.segment_name,
        "segment_value": c.segment_value
        if m.each_segment_value
        else (m.segment_value if m.segment else None),
        "window": m.window,
        "kind": c.transition.kind,
        "at": c.transition.at,
        "severity": c.transition.severity,
        "cause": c.transition.cause,
        "value": c.value,
        "samples": c.samples,
        "context": c.context,
        "labels": dict(m.labels),
        "since": c.since,
        "alert_severity": c.alert_severity,
    }
