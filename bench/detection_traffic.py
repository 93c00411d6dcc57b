"""Seasonal traffic for the detection benchmark, generated hour by hour with the simulator.

Two models, as in the demo: ``fraud-scorer`` (classification) and ``delivery-eta``
(regression). Each model's event rate follows a day (trough at 03:00 UTC at 0.4 of the mean,
peak at 15:00 at 1.6 of it; delivery-eta adds lunch and dinner rushes) and a week (Saturday
and Sunday at 0.8), and its latency rises a little with the load (±9 %), so the hour-of-week
baselines of the default monitors have a real season to learn.

Every hour of every model is generated from its own seed (the run's seed, the model and the
hour's place after the origin, a Monday 00:00 UTC), so a scenario that replays an hour with
an incident sees the same calls with the incident applied, an hour generated twice is the
same hour, and a run is repeatable whatever the date. Arrivals are a Poisson process at the
hour's rate.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from watchkeeper.schema.actuals import actuals_from_rows
from watchkeeper.schema.events import events_from_rows
from watchkeeper.simulator import (
    ETA_MODEL,
    FRAUD_MODEL,
    NO_INCIDENT,
    GeneratedEvent,
    Incident,
    generate_eta_event,
    generate_fraud_event,
)

HOUR = 3600.0
TASKS = {FRAUD_MODEL: "classification", ETA_MODEL: "regression"}
# Events per minute at the mean of the day (weekdays); see load().
RATES = {FRAUD_MODEL: 40.0, ETA_MODEL: 25.0}
PREFIX = {FRAUD_MODEL: "f", ETA_MODEL: "d"}

IncidentAt = Callable[[float], Incident]  # Unix time -> what is wrong at that moment


def load(model: str, ts: float) -> float:
    """The traffic at ``ts`` as a multiple of the model's mean weekday rate."""
    hour = ts % 86_400 / 3600
    level = 1.0 + 0.6 * math.sin(2 * math.pi * (hour - 9.0) / 24)
    if model == ETA_MODEL and (12 <= hour < 14 or 18 <= hour < 21):
        level *= 1.3  # lunch and dinner
    weekday = (int(ts // 86_400) + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    return level * (0.8 if weekday >= 5 else 1.0)


def generate(rng: random.Random, model: str, ts: float, incident: Incident) -> GeneratedEvent:
    """One call of ``model`` at ``ts``; latency follows the load, then the incident."""
    factor = (1.0 + 0.15 * (load(model, ts) - 1.0)) * incident.latency_factor
    seasonal = replace(incident, latency_factor=factor)
    if model == FRAUD_MODEL:
        return generate_fraud_event(rng, ts, incident=seasonal)
    return generate_eta_event(rng, ts, incident=seasonal)


@dataclass
class Traffic:
    """The events of one model, hour by hour, and the labels waiting to arrive.

    ``origin`` (a Unix time) and ``seed`` pick the random numbers of each hour. ``pending``
    holds ``(arrival, seq, event_id, label)`` of labels not delivered yet; it carries across
    :meth:`hour` calls, so labels cross hour boundaries as they would.
    """

    model: str
    origin: float
    seed: int = 0
    pending: list[tuple[float, int, str, Any]] = field(default_factory=list)
    seq: int = 0

    def hour(
        self, start: float, incident_at: IncidentAt | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The calls of the hour from ``start`` (a whole hour, Unix time) and the labels
        that arrive within it (wire-format rows: what the SDK would send)."""
        index = int(start // HOUR)
        rng = random.Random(f"{self.seed}:{self.model}:{int((start - self.origin) // HOUR)}")
        rate = RATES[self.model] / 60.0  # per second
        events: list[dict[str, Any]] = []
        ts = start
        k = 0
        while True:
            ts += rng.expovariate(rate * load(self.model, ts))
            if ts >= start + HOUR:
                break
            incident = incident_at(ts) if incident_at is not None else NO_INCIDENT
            event = generate(rng, self.model, ts, incident)
            event_id = f"{PREFIX[self.model]}{index}-{k}"
            k += 1
            events.append({"event_id": event_id, "version": event.version, **event.log_kwargs})
            if event.label is not None:
                self.seq += 1
                item = (ts + event.label_delay_s, self.seq, event_id, event.label)
                heapq.heappush(self.pending, item)
        return events, self.due(start + HOUR)

    def due(self, until: float) -> list[dict[str, Any]]:
        """Labels that have arrived before ``until``, in arrival order."""
        out = []
        while self.pending and self.pending[0][0] < until:
            arrival, _, event_id, label = heapq.heappop(self.pending)
            out.append({"event_id": event_id, "label": label, "timestamp": arrival})
        return out

    def copy(self) -> Traffic:
        return Traffic(self.model, self.origin, self.seed, list(self.pending), self.seq)


def event_table(rows: Iterable[dict[str, Any]], now: float) -> pa.Table:
    """Wire rows -> the normalized events table, as the server's ingest route builds it."""
    return events_from_rows(list(rows), datetime.fromtimestamp(now, tz=timezone.utc))


def actual_table(rows: list[dict[str, Any]], now: float) -> pa.Table:
    return actuals_from_rows(rows, datetime.fromtimestamp(now, tz=timezone.utc))
