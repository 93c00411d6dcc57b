"""A seeded traffic simulator for two realistic models, sending through the real SDK.

``fraud-scorer`` scores card transactions (binary classification, ~2% fraud); ``delivery-eta``
predicts delivery time in minutes (regression, two versions live side by side). Ground truth
arrives 1-5 simulated minutes after a prediction for most events, through ``log_actual``.

The ``generate_*`` functions are pure (an ``random.Random`` and a timestamp in, an event out)
so they can be tested without a server; :class:`Simulator` only schedules and sends. An
:class:`Incident` passed to them turns normal traffic into a scenario (slower calls, more
errors, late labels, a worse model, one feature drifting in one segment): the detection
benchmark (``bench/bench_detection.py``) is built on it.
"""

from __future__ import annotations

import csv
import heapq
import io
import itertools
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.sdk import Monitor

FRAUD_MODEL = "fraud-scorer"
ETA_MODEL = "delivery-eta"
FRAUD_THRESHOLD = 0.5
FRAUD_SHARE = 0.65  # share of the traffic that goes to the fraud scorer
ETA_V2_SHARE = 0.3  # share of delivery-eta traffic served by the canary version
_BACKFILL_FLUSH_EVERY = 10_000

_COUNTRIES = {"eu": ("DE", "FR", "ES", "NL", "IT"), "us": ("US", "CA"), "apac": ("JP", "SG", "AU")}
# (merchant category, typical merchant risk); weights are how common each is for real customers
_MERCHANTS = (
    ("grocery", 0.1), ("restaurants", 0.15), ("fuel", 0.2), ("apparel", 0.3),
    ("travel", 0.45), ("electronics", 0.6), ("gambling", 0.8), ("gift_cards", 0.85),
)  # fmt: skip
_MERCHANT_WEIGHTS = (5, 4, 3, 2, 1, 1, 0.2, 0.3)
_CITIES = {"berlin": 1.0, "london": 1.25, "paris": 1.15, "madrid": 0.95}
_ERRORS = (
    "TimeoutError: feature store lookup exceeded 200 ms",
    "ValueError: merchant_category missing from encoder vocabulary",
    "ConnectionError: risk-graph service unavailable",
)

Features = dict[str, float | int | str | bool | None]


@dataclass(frozen=True)
class GeneratedEvent:
    """One prediction as the model would log it, plus the ground truth that comes later."""

    model: str
    version: str
    log_kwargs: dict[str, Any]
    label: float | int | None  # None: the truth never arrives for this event
    label_delay_s: float


MonitorFactory = Callable[[str, str], Monitor]  # (model, version) -> Monitor


@dataclass(frozen=True)
class Incident:
    """What goes wrong in the traffic of one event; the defaults change nothing.

    ``latency_factor`` multiplies the call's latency; ``error_rate`` replaces the model's
    usual share of failed calls; ``label_delay_s`` (low, high) replaces the 60-300 s after
    which the truth arrives; ``wrong_share`` is the share of calls the model answers at
    random (a broken input, a bad deploy: quality drops, nothing else moves);
    ``drift_feature`` is multiplied by ``drift_scale`` (a number feature), for events of
    ``drift_segment`` only (``region:apac``; None for every event).
    """

    latency_factor: float = 1.0
    error_rate: float | None = None
    label_delay_s: tuple[float, float] | None = None
    wrong_share: float = 0.0
    drift_feature: str | None = None
    drift_scale: float = 1.0
    drift_segment: str | None = None

    def __post_init__(self) -> None:
        if not self.latency_factor > 0:
            raise ValueError(f"latency_factor must be positive, not {self.latency_factor}")
        if self.error_rate is not None and not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be between 0 and 1, not {self.error_rate}")
        delay = self.label_delay_s
        if delay is not None and not 0 <= delay[0] <= delay[1]:
            raise ValueError(f"label_delay_s must be (low, high), 0 <= low <= high, not {delay}")
        if not 0.0 <= self.wrong_share <= 1.0:
            raise ValueError(f"wrong_share must be between 0 and 1, not {self.wrong_share}")
        if self.drift_segment is not None and ":" not in self.drift_segment:
            raise ValueError(f"drift_segment must be name:value, not {self.drift_segment!r}")

    def drifts(self, segments: dict[str, str]) -> bool:
        """Whether ``drift_feature`` moves for an event with these segments."""
        if self.drift_feature is None:
            return False
        if self.drift_segment is None:
            return True
        name, _, value = self.drift_segment.partition(":")
        return segments.get(name) == value


NO_INCIDENT = Incident()
DEMO_DRIFT = Incident(drift_feature="amount", drift_scale=3.0, drift_segment="region:apac")


def _latency(rng: random.Random, median_ms: float) -> float:
    """Log-normal latency with an occasional slow tail (GC pause, cold cache)."""
    value = rng.lognormvariate(math.log(median_ms), 0.35)
    if rng.random() < 0.01:
        value *= rng.uniform(4.0, 10.0)
    return round(value, 3)


def _label_delay(
    rng: random.Random, share: float, delay: tuple[float, float] | None = None
) -> float | None:
    """Seconds until the truth arrives, or None when it never does."""
    low, high = delay or (60.0, 300.0)
    return rng.uniform(low, high) if rng.random() < share else None


def _drift(f: Features, segments: dict[str, str], incident: Incident) -> None:
    """Move ``incident.drift_feature`` in place, for the events it applies to."""
    if not incident.drifts(segments):
        return
    assert incident.drift_feature is not None
    value = f.get(incident.drift_feature)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"drift_feature {incident.drift_feature!r} is not a number feature of this model"
        )
    moved = value * incident.drift_scale
    f[incident.drift_feature] = round(moved) if isinstance(value, int) else round(moved, 3)


def generate_fraud_event(
    rng: random.Random,
    ts: float,
    drifted: bool = False,
    *,
    incident: Incident = NO_INCIDENT,
) -> GeneratedEvent:
    """A card transaction scored by ``fraud-scorer``, with its true label.

    ``drifted``: the demo's incident — an upstream change in the apac region sends amounts in
    local currency (about 3 times larger), so ``amount`` drifts there and nowhere else (the
    same as ``incident=DEMO_DRIFT``). ``incident``: any change of the traffic (see
    :class:`Incident`); it wins over ``drifted``.
    """
    fraud = rng.random() < 0.02
    region = rng.choices(("eu", "us", "apac"), weights=(0.45, 0.4, 0.15))[0]
    channel = rng.choices(("web", "app", "pos"), weights=(0.35, 0.3, 0.35))[0]
    merchant, merchant_risk = rng.choices(_MERCHANTS, weights=_MERCHANT_WEIGHTS)[0]
    if fraud and rng.random() < 0.5:
        merchant, merchant_risk = rng.choice(_MERCHANTS[4:])
    avg_amount = rng.lognormvariate(math.log(45.0), 0.5)
    ratio = rng.lognormvariate(0.7 if fraud else 0.0, 0.7)
    risk = min(1.0, max(0.0, rng.gauss(merchant_risk, 0.08)))
    age_days = int(rng.expovariate(1 / (90 if fraud else 900)))
    txn_24h = int(rng.expovariate(1 / (6 if fraud else 3)))
    distance = rng.expovariate(1 / (150 if fraud else 30))
    failed_logins = int(rng.expovariate(1 / (0.8 if fraud else 0.15)))
    ip_risk = rng.betavariate(3, 4) if fraud else rng.betavariate(1.5, 6)
    international = rng.random() < (0.3 if fraud else 0.07)
    cvv_match = None if channel == "pos" else rng.random() > (0.15 if fraud else 0.02)
    card_type = rng.choices(("debit", "credit", "prepaid"), weights=(5, 4, 3 if fraud else 1))[0]
    device = "none" if channel == "pos" else rng.choice(("ios", "android", "windows", "macos"))
    if drifted:
        incident = DEMO_DRIFT if incident == NO_INCIDENT else incident
    f: Features = {
        "amount": round(avg_amount * ratio, 2),
        "avg_amount_30d": round(avg_amount, 2),
        "amount_to_avg_ratio": round(ratio, 3),
        "account_age_days": age_days,
        "txn_count_24h": txn_24h,
        "distance_from_home_km": round(distance, 1),
        "hour_of_day": (int(ts // 3600) + rng.choice((0, 0, 0, 1, 2, 3))) % 24,
        "merchant_risk": round(risk, 3),
        "failed_logins_24h": failed_logins,
        "ip_risk_score": round(ip_risk, 3),
        "days_since_last_txn": round(rng.expovariate(1 / (12 if fraud else 2)), 2),
        "card_present": channel == "pos",
        "is_international": international,
        "cvv_match": cvv_match,
        "merchant_category": merchant,
        "channel": channel,
        "card_type": card_type,
        "country": rng.choice(_COUNTRIES[region]),
        "device_os": device,
        "customer_tier": rng.choices(("standard", "gold", "business"), weights=(7, 2, 1))[0],
    }
    logit = (
        -5.2
        + 1.1 * math.log(ratio + 0.1)
        + 2.2 * risk
        + 0.35 * math.log1p(distance)
        + 0.12 * txn_24h
        + 3.0 * ip_risk
        + 0.6 * failed_logins
        + (1.3 if international else 0.0)
        + (1.5 if cvv_match is False else 0.0)
        - 0.25 * math.log1p(age_days)
        + rng.gauss(0.0, 1.0)
    )
    score = 1.0 / (1.0 + math.exp(-logit))
    if incident.wrong_share and rng.random() < incident.wrong_share:
        score = rng.random()  # the model answers at random
    errored = rng.random() < (0.005 if incident.error_rate is None else incident.error_rate)
    segments = {"region": region, "channel": channel}
    _drift(f, segments, incident)
    kwargs: dict[str, Any] = {
        "features": f,
        "prediction": None if errored else int(score >= FRAUD_THRESHOLD),
        "score": None if errored else round(score, 6),
        "latency_ms": _latency(rng, (60.0 if errored else 16.0) * incident.latency_factor),
        "segments": segments,
        "status": "error" if errored else "ok",
        "error": rng.choice(_ERRORS) if errored else None,
        "timestamp": ts,
    }
    delay = None if errored else _label_delay(rng, 0.7, incident.label_delay_s)
    label = None if delay is None else int(fraud)
    return GeneratedEvent(FRAUD_MODEL, "v3", kwargs, label, delay or 0.0)


def generate_eta_event(
    rng: random.Random, ts: float, *, incident: Incident = NO_INCIDENT
) -> GeneratedEvent:
    """A food delivery whose duration ``delivery-eta`` predicts (v1, or the v2 canary);
    ``incident``: a change of the traffic (see :class:`Incident`)."""
    version = "v2" if rng.random() < ETA_V2_SHARE else "v1"
    city = rng.choices(tuple(_CITIES), weights=(3, 4, 2, 2))[0]
    hour = int(ts // 3600) % 24
    rush = hour in (12, 13, 18, 19, 20)
    distance = rng.lognormvariate(math.log(3.0), 0.5)
    items = 1 + int(rng.expovariate(1 / 2.0))
    prep = rng.uniform(5.0, 25.0)
    couriers = max(0, int(rng.gauss(6 if not rush else 3, 2)))
    raining = rng.random() < 0.2
    traffic = min(1.0, max(0.0, rng.gauss(0.7 if rush else 0.4, 0.15)))
    vehicle = rng.choices(("bike", "scooter", "car"), weights=(4, 3, 1))[0]
    f: Features = {
        "distance_km": round(distance, 2),
        "items": items,
        "prep_time_est_min": round(prep, 1),
        "couriers_available": couriers,
        "hour_of_day": hour,
        "day_of_week": int(ts // 86400 + 3) % 7,
        "is_raining": raining,
        "traffic_index": round(traffic, 3),
        "restaurant_rating": round(min(5.0, rng.gauss(4.3, 0.35)), 1),
        "vehicle": vehicle,
    }
    minutes_per_km = {"bike": 3.5, "scooter": 2.6, "car": 2.2}[vehicle]
    base = _CITIES[city] * (
        prep
        + minutes_per_km * distance * (1 + traffic)
        + (4.0 if raining else 0.0)
        + 0.8 * items
        + 6.0 / (1 + couriers)
    )
    actual = max(5.0, base + rng.gauss(0.0, 4.0))
    noise, bias = (5.0, 2.5) if version == "v1" else (3.0, 0.3)
    predicted = max(5.0, base + bias + rng.gauss(0.0, noise))
    if incident.wrong_share and rng.random() < incident.wrong_share:
        predicted = rng.uniform(5.0, 90.0)  # the model answers at random
    errored = rng.random() < (0.003 if incident.error_rate is None else incident.error_rate)
    segments = {"city": city}
    _drift(f, segments, incident)
    kwargs: dict[str, Any] = {
        "features": f,
        "prediction": None if errored else round(predicted, 2),
        "latency_ms": _latency(rng, (9.0 if version == "v2" else 12.0) * incident.latency_factor),
        "segments": segments,
        "status": "error" if errored else "ok",
        "error": "RuntimeError: routing engine returned no path" if errored else None,
        "timestamp": ts,
    }
    delay = None if errored else _label_delay(rng, 0.9, incident.label_delay_s)
    label = None if delay is None else round(actual, 2)
    return GeneratedEvent(ETA_MODEL, version, kwargs, label, delay or 0.0)


def generate_event(
    rng: random.Random, ts: float, drifted: bool = False, *, incident: Incident = NO_INCIDENT
) -> GeneratedEvent:
    """One event from the mix of models the simulator serves."""
    if rng.random() < FRAUD_SHARE:
        return generate_fraud_event(rng, ts, drifted, incident=incident)
    return generate_eta_event(rng, ts, incident=incident)


def reference_csv(
    model: str,
    rows: int = 20_000,
    seed: int = 1,
    *,
    start: float | None = None,
    days: float = 1.0,
) -> str:
    """A reference (training) set for ``model`` as CSV text: features, prediction, score and
    label of ``rows`` events spread over ``days`` from ``start`` (a Unix time; default
    ``days`` ago), so hour-of-day features cover every hour."""
    if days <= 0:
        raise ValueError(f"days must be positive, not {days}")
    rng = random.Random(seed)
    gen = generate_fraud_event if model == FRAUD_MODEL else generate_eta_event
    out: list[dict[str, Any]] = []
    span = 86_400 * days
    base = time.time() - span if start is None else start
    for i in range(rows):
        event = gen(rng, base + span * i / rows)
        if event.log_kwargs["status"] == "error" or event.version == "v2":
            continue
        row: dict[str, Any] = dict(event.log_kwargs["features"])
        for key, value in event.log_kwargs["segments"].items():
            row[f"segments.{key}"] = value
        row["prediction"] = event.log_kwargs["prediction"]
        if event.log_kwargs.get("score") is not None:
            row["score"] = event.log_kwargs["score"]
        if event.label is not None:
            row["label"] = event.label
        out.append(row)
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in out for k in row))
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in out:
        writer.writerow({k: "" if v is None else _csv_value(v) for k, v in row.items()})
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    return str(v).lower() if isinstance(v, bool) else v


@dataclass(order=True)
class _PendingLabel:
    due: float
    seq: int
    key: tuple[str, str] = field(compare=False)
    event_id: str = field(compare=False)
    label: float | int = field(compare=False)


class Simulator:
    """Sends simulated traffic to a Watchkeeper server: a history backfill, then live events."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        rate: float = 20.0,
        seed: int = 0,
        monitor_factory: MonitorFactory | None = None,
        drift_from: float | None = None,
    ) -> None:
        """``drift_from``: a Unix time from which fraud-scorer's apac traffic drifts (the demo's
        incident, see :func:`generate_fraud_event`); None for no incident."""
        if rate <= 0:
            raise ValueError("rate must be positive (events per second)")
        self.rate = rate
        self._rng = random.Random(seed)
        self._factory = monitor_factory or self._default_factory(url, api_key)
        self._monitors: dict[tuple[str, str], Monitor] = {}
        self._pending: list[_PendingLabel] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.events_sent = 0
        self.labels_sent = 0
        self.drift_from = drift_from

    @staticmethod
    def _default_factory(url: str, api_key: str) -> MonitorFactory:
        def make(model: str, version: str) -> Monitor:
            # Demo traffic is not worth a disk spool that a later demo would replay.
            return Monitor(model, version, url=url, api_key=api_key, spool_dir=False)

        return make

    def _monitor(self, model: str, version: str) -> Monitor:
        key = (model, version)
        if key not in self._monitors:
            self._monitors[key] = self._factory(model, version)
        return self._monitors[key]

    def _send(self, event: GeneratedEvent) -> None:
        event_id = self._monitor(event.model, event.version).log(**event.log_kwargs)
        self.events_sent += 1
        if event.label is not None:
            due = float(event.log_kwargs["timestamp"]) + event.label_delay_s
            item = _PendingLabel(
                due, next(self._seq), (event.model, event.version), event_id, event.label
            )
            heapq.heappush(self._pending, item)

    def _send_due_labels(self, now: float) -> None:
        while self._pending and self._pending[0].due <= now:
            item = heapq.heappop(self._pending)
            self._monitor(*item.key).log_actual(item.event_id, item.label, timestamp=item.due)
            self.labels_sent += 1

    def backfill(self, minutes: float, progress: Callable[[int, int], None] | None = None) -> int:
        """Send ``minutes`` of history ending now; returns the number of events sent.

        ``progress(done, total)`` is called once per simulated minute.
        """
        end = time.time()
        total = math.ceil(minutes)
        ts = start = end - minutes * 60.0
        done = sent = 0
        with self._lock:
            while True:
                ts += self._rng.expovariate(self.rate)
                if ts >= end:
                    break
                self._send(generate_event(self._rng, ts, self._drifted(ts)))
                self._send_due_labels(ts)
                sent += 1
                if sent % _BACKFILL_FLUSH_EVERY == 0:
                    self.flush()  # keep the SDK queues short: never drop history
                while progress is not None and done < total and ts >= start + 60 * (done + 1):
                    done += 1
                    progress(done, total)
            self._send_due_labels(end)
        if progress is not None and done < total:
            progress(total, total)
        return sent

    def _drifted(self, ts: float) -> bool:
        return self.drift_from is not None and ts >= self.drift_from

    def start(self) -> None:
        """Stream live traffic at about ``rate`` events per second in a background thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="watchkeeper-simulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._rng.expovariate(self.rate)):
            with self._lock:
                now = time.time()
                self._send(generate_event(self._rng, now, self._drifted(now)))
                self._send_due_labels(now)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything logged so far has been handed to the server."""
        for monitor in list(self._monitors.values()):
            monitor.flush(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop live traffic, send what is queued and close the SDK clients."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for monitor in list(self._monitors.values()):
            monitor.flush(timeout)
            monitor.close()
        self._monitors.clear()
