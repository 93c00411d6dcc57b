"""Detection quality of the default monitors: does each incident alert, how fast, and what else
alerts when nothing is wrong.

Traffic of two simulated models (``fraud-scorer``, classification; ``delivery-eta``,
regression; see ``detection_traffic.py``: daily and weekly seasons, about 65 events per
minute together) is written into a real ``DuckDBStore`` through its ingest API, with both
models' reference (training) sets uploaded, and the real ``AlertEngine`` runs the **default
monitors** (``default_monitors(model, task, features)`` as the server resolves ``- defaults:
MODEL``: the model's task, its features sorted by name) over simulated time as the server's
scheduler does: ``engine.run(now)`` once per 5-minute window, at the window's end plus the
engine's settle time (15 s) and a second.

The first week is history only: it is written before the engine starts, so the baselines are
armed when it does, as for a server started on a store that already holds a week. Then each
scenario runs on its own copy of that store, its engine starting at 08:00 (the quiet week: at
00:00) on Monday of the second week:

* ``quiet_week``: a second week of seasonal traffic, no incident: every alert is false;
* ``latency_spike``: fraud-scorer calls 4 times slower for 30 minutes;
* ``error_burst``: 15 % of fraud-scorer calls fail for 20 minutes;
* ``latency_creep``: delivery-eta slows down steadily, +50 % an hour for four hours (then a
  rollback);
* ``late_label_accuracy_drop``: from 08:00 fraud-scorer's ground truth arrives 2-3 hours
  after the prediction; at 10:00 a quarter of its answers become random for two hours, so
  the drop can only be seen once those labels arrive (12:00 on);
* ``feature_drift``: delivery-eta's ``distance_km`` arrives in miles (x0.621) for 3 hours;
* ``segment_drift``: fraud-scorer's ``amount`` triples in region apac only (the demo's
  incident) for 3 hours.

Every incident starts on Monday 10:00 UTC. Per scenario: detected or not (by the monitors
meant to catch it), time to detect (from the incident's start; for the late labels from their
arrival; for the creep from the moment it reaches +50 %), in windows of the monitor that fired
and in minutes, and the false alerts: any monitor firing outside the incident, or on a metric
the incident does not move.

Data is written per simulated hour: the hour's events and the labels that arrive within it.
That is exact for every default monitor: a 5-minute window's latency and error rate depend
only on its own events, and the hourly monitors (accuracy, MAE, drift, missing values) are
judged after their hour has closed, with the labels that arrived by then.

``--segment-monitors`` adds what the defaults cannot propose today (they are not told the
model's segments): the same drift monitors per value of each segment (``region:*``,
``channel:*``, ``city:*``).

Prints one JSON object on stdout (progress and, with ``--markdown``, the table for
BENCHMARKS.md on stderr). Measurements only; nothing is asserted.

    python bench/bench_detection.py [--scenarios a,b] [--segment-monitors] [--json FILE]
                                    [--markdown]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from detection_traffic import HOUR, RATES, TASKS, IncidentAt, Traffic, actual_table, event_table
from watchkeeper.alerting.engine import SETTLE, AlertChange, AlertEngine
from watchkeeper.drift.settings import DriftSettings
from watchkeeper.monitors.definitions import Monitor
from watchkeeper.monitors.files import default_monitors, monitor_to_dict
from watchkeeper.schema.reference import parse_reference
from watchkeeper.simulator import ETA_MODEL, FRAUD_MODEL, Incident, reference_csv
from watchkeeper.store.duckdb_store import DuckDBStore

MINUTE = 60.0
DAY = 86_400.0
STEP = 300.0  # the engine runs once per 5-minute window, as each one closes ...
RUN_LAG = SETTLE.total_seconds() + 1  # ... this long after the window's end
FEATURES = {
    FRAUD_MODEL: [
        "amount", "avg_amount_30d", "amount_to_avg_ratio", "account_age_days", "txn_count_24h",
        "distance_from_home_km", "hour_of_day", "merchant_risk", "failed_logins_24h",
        "ip_risk_score", "days_since_last_txn", "card_present", "is_international", "cvv_match",
        "merchant_category", "channel", "card_type", "country", "device_os", "customer_tier",
    ],
    ETA_MODEL: [
        "distance_km", "items", "prep_time_est_min", "couriers_available", "hour_of_day",
        "day_of_week", "is_raining", "traffic_index", "restaurant_rating", "vehicle",
    ],
}  # fmt: skip
SEGMENTS = {FRAUD_MODEL: ("region", "channel"), ETA_MODEL: ("city",)}
# Time-of-day inputs differ between an hour and the week-long reference by design: switched
# off, as the demo does and as a user would in the drift: section of the settings file.
DRIFT = DriftSettings(
    features={"hour_of_day": {"enabled": False}, "day_of_week": {"enabled": False}}
)


def week_start(now: float) -> float:
    """Monday 00:00 UTC, three weeks before the current week (everything lies in the past)."""
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    monday = moment.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=moment.weekday()
    )
    return (monday - timedelta(days=21)).timestamp()


@dataclass(frozen=True)
class Scenario:
    """One incident (or none) after the week of history.

    Offsets are seconds after ``start`` (the end of the history, a Monday 00:00 UTC).
    ``monitor`` names the metrics of the monitors meant to catch it (the first to fire
    counts); ``also`` lists metrics the incident legitimately moves too (their alerts during
    the incident are not false). ``detect_from`` is where time to detect counts from (the
    incident's start unless said; ``detect_note`` says what happens then); ``size(ts)``
    says how big the incident was at ``ts``.
    """

    name: str
    model: str | None
    monitor: tuple[str, ...]
    incident_from: float
    incident_to: float
    until: float
    incident: IncidentAt | None = None
    detect_from: float | None = None
    detect_note: str = ""
    also: tuple[str, ...] = ()
    from_history: float = 8 * HOUR  # the engine starts this long after the history ends
    size: Callable[[float], str] | None = None
    description: str = ""


def _between(a: float, b: float, inc: Incident) -> IncidentAt:
    return lambda ts: inc if a <= ts < b else Incident()


def scenarios(start: float) -> list[Scenario]:
    """The suite; ``start`` is the end of the week of history (a Monday 00:00 UTC)."""
    ten = 10 * HOUR

    def at(offset: float) -> float:
        return start + offset

    def creep_factor(ts: float) -> float:
        return 1.0 + 0.5 * max(0.0, min(ts - at(ten), 4 * HOUR)) / HOUR

    def creep(ts: float) -> Incident:  # fixed at 14:00 (a rollback)
        if at(ten) <= ts < at(ten + 4 * HOUR):
            return Incident(latency_factor=creep_factor(ts))
        return Incident()

    def late_labels(ts: float) -> Incident:
        if ts < at(8 * HOUR):
            return Incident()
        wrong = 0.25 if at(ten) <= ts < at(ten + 2 * HOUR) else 0.0
        return Incident(label_delay_s=(2 * HOUR, 3 * HOUR), wrong_share=wrong)

    return [
        Scenario(
            "quiet_week", None, (), 0, 0, 7 * DAY, from_history=0,
            description="a second week of seasonal traffic, no incident",
        ),
        Scenario(
            "latency_spike", FRAUD_MODEL, ("latency_p95",), ten, ten + 30 * MINUTE,
            ten + 3 * HOUR,
            _between(at(ten), at(ten + 30 * MINUTE), Incident(latency_factor=4.0)),
            description="fraud-scorer 4x slower for 30 min",
        ),
        Scenario(
            "error_burst", FRAUD_MODEL, ("error_rate",), ten, ten + 20 * MINUTE, ten + 3 * HOUR,
            _between(at(ten), at(ten + 20 * MINUTE), Incident(error_rate=0.15)),
            # failed calls take ~60 ms against ~16 ms: with 15 % of them, p95 is a failure's
            also=("latency_p95",),
            description="15 % of fraud-scorer calls fail for 20 min",
        ),
        Scenario(
            "latency_creep", ETA_MODEL, ("latency_p95",), ten, ten + 4 * HOUR, ten + 6 * HOUR,
            creep, detect_from=ten + HOUR,
            detect_note="it reached +50 % (11:00)",
            size=lambda ts: f"+{(creep_factor(ts) - 1) * 100:.0f} %",
            description="delivery-eta latency +50 % an hour for 4 h (x3 at the end)",
        ),
        Scenario(
            "late_label_accuracy_drop", FRAUD_MODEL, ("accuracy",), ten, ten + 2 * HOUR,
            ten + 6 * HOUR, late_labels, detect_from=ten + 2 * HOUR,
            detect_note="the first labels of the incident arrived (12:00)",
            also=("drift_score",),  # random scores: the score's distribution moves too
            description="labels 2-3 h late from 08:00; 25 % random answers 10:00-12:00",
        ),
        Scenario(
            "feature_drift", ETA_MODEL, ("drift:distance_km", "drift_score"), ten,
            ten + 3 * HOUR, ten + 5 * HOUR,
            _between(at(ten), at(ten + 3 * HOUR),
                     Incident(drift_feature="distance_km", drift_scale=0.621)),
            description="delivery-eta distance_km sent in miles for 3 h",
        ),
        Scenario(
            "segment_drift", FRAUD_MODEL, ("drift:amount", "drift_score"), ten,
            ten + 3 * HOUR, ten + 5 * HOUR,
            _between(at(ten), at(ten + 3 * HOUR),
                     Incident(drift_feature="amount", drift_scale=3.0,
                              drift_segment="region:apac")),
            description="fraud-scorer amount x3 in region apac only, for 3 h",
        ),
    ]  # fmt: skip


# --------------------------------------------------------------------------- monitors


def monitors(segment_monitors: bool = False) -> list[Monitor]:
    """The default monitors of both models as the server resolves ``- defaults: MODEL``: the
    model's task and its features sorted by name (the first five are watched one by one)."""
    out = [
        m
        for model, task in TASKS.items()
        for m in default_monitors(model, task, sorted(FEATURES[model]))
    ]
    if segment_monitors:  # the proposal: each drift monitor per segment value, 2 of 3 hours
        # (a segment's share of features drifted is noisier than the model's: fewer calls)
        per_segment = {"fire_after": 2, "of_last": 3}
        out += [
            Monitor.model_validate(
                {
                    **monitor_to_dict(m),
                    **per_segment,
                    "name": f"{m.name}.by_{seg}",
                    "segment": f"{seg}:*",
                }
            )
            for m in list(out)
            if m.metric_ref.family == "drift"
            for seg in SEGMENTS[m.model]
        ]
    return out


# --------------------------------------------------------------------------- the store


def new_store(data_dir: Path) -> DuckDBStore:
    store = DuckDBStore(data_dir)
    store.start()
    return store


def upload_references(store: DuckDBStore, start: float) -> None:
    """Each model's training set: 20,000 calls spread over the week before the history."""
    for i, model in enumerate(TASKS):
        text = reference_csv(model, rows=20_000, seed=100 + i, start=start - 7 * DAY, days=7)
        ref = parse_reference(text.encode(), "text/csv")
        store.put_reference(model, None, ref.table, ref.schema)


def ingest_hour(
    store: DuckDBStore, traffic: dict[str, Traffic], hour: float, sc: Scenario | None = None
) -> int:
    """The hour's events and the labels arriving in it, per model; returns events written."""
    n = 0
    end = hour + HOUR
    for model, t in traffic.items():
        incident = sc.incident if sc is not None and sc.model == model else None
        events, labels = t.hour(hour, incident)
        if events:
            store.ingest_events(model, event_table(events, end), task=TASKS[model])
            n += len(events)
        if labels:
            store.ingest_actuals(model, actual_table(labels, end))
    store.refresh()  # label aggregates of dirty minutes (the server's writer: every second)
    store.refresh_features()  # feature binning (the server's binner: every 5 s)
    return n


def build_history(
    data_dir: Path, start: float, until: float, seed: int = 0
) -> tuple[dict[str, Traffic], int]:
    """References and the traffic of [start, until), a day per batch (no engine runs yet,
    so a day's labels may be written with it)."""
    store = new_store(data_dir)
    traffic = {m: Traffic(m, start, seed) for m in TASKS}
    n = 0
    try:
        upload_references(store, start)
        day = start
        while day < until:
            end = min(day + DAY, until)
            for model, t in traffic.items():
                events: list[dict[str, Any]] = []
                labels: list[dict[str, Any]] = []
                hour = day
                while hour < end:
                    e, lab = t.hour(hour)
                    events += e
                    labels += lab
                    hour += HOUR
                store.ingest_events(model, event_table(events, end), task=TASKS[model])
                store.ingest_actuals(model, actual_table(labels, end))
                n += len(events)
            store.refresh()
            store.refresh_features()
            day = end
        store.compact()
        store.rollup()
    finally:
        store.close()
    return traffic, n


# --------------------------------------------------------------------------- a scenario


@dataclass
class Outcome:
    scenario: Scenario
    changes: list[tuple[datetime, AlertChange]] = field(default_factory=list)
    events: int = 0
    runs: int = 0
    seconds: float = 0.0


def run_scenario(
    sc: Scenario,
    history_dir: Path,
    work: Path,
    start: float,
    traffic: dict[str, Traffic],
    watch: list[Monitor],
) -> Outcome:
    """Copy the history, write the hours before the engine starts, then start the engine and
    feed the scenario hour by hour, running the engine as each 5-minute window closes."""
    data_dir = work / sc.name
    shutil.copytree(history_dir, data_dir)
    t0 = time.perf_counter()
    store = new_store(data_dir)
    out = Outcome(sc)
    traffic = {m: t.copy() for m, t in traffic.items()}
    try:
        hour = start
        while hour < start + sc.from_history:
            out.events += ingest_hour(store, traffic, hour, sc)
            hour += HOUR
        engine = AlertEngine(store, watch, drift=DRIFT)
        while hour < start + sc.until:
            out.events += ingest_hour(store, traffic, hour, sc)
            for k in range(1, int(HOUR // STEP) + 1):
                now = datetime.fromtimestamp(hour + k * STEP + RUN_LAG, tz=timezone.utc)
                result = engine.run(now)
                out.runs += 1
                if result.errors:
                    raise RuntimeError(f"{sc.name}: {result.errors}")
                out.changes += [(now, c) for c in result.changes]
            hour += HOUR
    finally:
        store.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    out.seconds = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------- judging


def judge(out: Outcome, start: float) -> dict[str, Any]:
    """Detected or not, time to detect, and the false alerts of one scenario."""
    sc = out.scenario
    lo = start + sc.incident_from
    hi = start + sc.incident_to
    detection = None
    false_alerts = []
    for now, c in out.changes:
        if c.transition.kind != "firing":
            continue
        m = c.monitor
        since = (c.since or c.transition.at).timestamp()
        # an episode that began within the incident (or a window before: the window holding
        # its start) belongs to it, however long it lasts
        ours = sc.model == m.model and lo - m.window_seconds < since < hi
        if ours and m.metric in (*sc.monitor, *sc.also):
            if m.metric in sc.monitor and detection is None:
                detection = (now, c)
            continue
        false_alerts.append(
            {
                "monitor": m.name,
                "series": c.series,
                "since": (c.since or c.transition.at).isoformat(),
                "fired_at": now.isoformat(),
                "value": c.value,
                "context": c.context,
            }
        )
    row: dict[str, Any] = {
        "scenario": sc.name,
        "description": sc.description,
        "model": sc.model,
        "monitors": list(sc.monitor),
        "events": out.events,
        "engine_runs": out.runs,
        "seconds": round(out.seconds, 1),
        "false_alerts": len(false_alerts),
        "false_alert_details": false_alerts,
        "transitions": [
            {
                "series": c.series,
                "kind": c.transition.kind,
                "window_start": c.transition.at.isoformat(),
                "at": now.isoformat(),
                "value": c.value,
            }
            for now, c in out.changes
        ],
    }
    if not sc.monitor:
        row["goal_met"] = not false_alerts
        return row
    ref = start + (sc.detect_from if sc.detect_from is not None else sc.incident_from)
    row["incident"] = {
        "from": _iso(lo),
        "to": _iso(hi),
        "detect_from": _iso(ref),
        "detect_note": sc.detect_note or "the incident's start",
    }
    if detection is None:
        row.update(detected=False, goal_met=False)
        return row
    now, c = detection
    window = c.monitor.window_seconds
    closed = now.timestamp() - RUN_LAG  # the end of the newest window the engine had seen
    windows = max(1, -(-(closed - ref) // window))  # windows closed since ref, rounded up
    row.update(
        detected=True,
        detected_by=c.monitor.name,
        fired_at=now.isoformat(),
        breaching_window=c.transition.at.isoformat(),
        value=c.value,
        context=c.context,
        minutes_to_detect=round((now.timestamp() - ref) / 60, 1),
        minutes_from_incident_start=round((now.timestamp() - lo) / 60, 1),
        windows_to_detect=int(windows),
        window=c.monitor.window,
    )
    if sc.size is not None:
        row["size_when_detected"] = sc.size(c.transition.at.timestamp() + window)
    row["goal_met"] = windows <= 2 and not false_alerts
    return row


def run_and_judge(
    name: str,
    history_dir: Path,
    work: Path,
    start: float,
    traffic: dict[str, Traffic],
    watch: list[Monitor],
) -> dict[str, Any]:
    """One scenario by name, run and judged (also in a worker process: scenarios hold
    closures, so the worker rebuilds the suite)."""
    sc = next(s for s in scenarios(start) if s.name == name)
    return judge(run_scenario(sc, history_dir, work, start, traffic, watch), start)


def _progress(row: dict[str, Any]) -> dict[str, Any]:
    print(
        f"{row['scenario']}: detected={row.get('detected', '-')} by={row.get('detected_by')}"
        f" windows={row.get('windows_to_detect')} false={row['false_alerts']}"
        f" ({row['seconds']:.0f} s)",
        file=sys.stderr,
    )
    return row


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


def markdown(rows: list[dict[str, Any]]) -> str:
    """The per-scenario table of BENCHMARKS.md."""
    lines = [
        "| scenario | meant to catch it | detected by | time to detect | false alerts | goal met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["monitors"]:
            detected = ttd = "—"
        elif r.get("detected"):
            detected = f"`{r['detected_by']}`"
            minutes = r["minutes_to_detect"]
            when = "after" if minutes >= 0 else "before"
            ttd = (
                f"{r['windows_to_detect']} × {r['window']}: {abs(minutes)} min {when}"
                f" {r['incident']['detect_note']}"
            )
            if "size_when_detected" in r:
                ttd += (
                    f"; fired at {r['size_when_detected']},"
                    f" {r['minutes_from_incident_start']} min after the start"
                )
        else:
            detected, ttd = "**not detected**", "—"
        watched = ", ".join(f"`{m}`" for m in r["monitors"]) or "(none: any alert is false)"
        lines.append(
            f"| {r['scenario']}: {r['description']} | {watched} | {detected} | {ttd} "
            f"| {r['false_alerts']} | {'yes' if r['goal_met'] else '**no**'} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scenarios", default="", help="comma-separated names (default: all)")
    parser.add_argument(
        "--segment-monitors",
        action="store_true",
        help="add the drift monitors per segment value (not in the defaults)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="processes: with 2, the quiet week runs beside the other scenarios (default 2)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="another week of the same traffic (default 0)"
    )
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table on stderr")
    args = parser.parse_args(argv)
    start = week_start(time.time()) + 7 * DAY
    suite = scenarios(start)
    wanted = [s for s in args.scenarios.split(",") if s]
    unknown = set(wanted) - {s.name for s in suite}
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; known: {[s.name for s in suite]}")
    suite = [s for s in suite if not wanted or s.name in wanted]
    watch = monitors(args.segment_monitors)
    rows: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wk-detect-") as tmp:
        work = Path(tmp)
        traffic, n = build_history(work / "history", start - 7 * DAY, start, args.seed)
        history_s = time.perf_counter() - t0
        print(f"history: {n} events in {history_s:.0f} s", file=sys.stderr)
        # The quiet week is most of the work: with --jobs 2 it runs in a second process
        # (its own copy of the store, its own engine) while this one runs the incidents.
        beside = [s.name for s in suite if s.name == "quiet_week"] if args.jobs > 1 else []
        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn")) if beside else None
        try:
            pending = {
                name: pool.submit(
                    run_and_judge, name, work / "history", work, start, traffic, watch
                )
                for name in beside
                if pool is not None
            }
            for sc in suite:
                if sc.name not in pending:
                    rows[sc.name] = _progress(
                        run_and_judge(sc.name, work / "history", work, start, traffic, watch)
                    )
            for name, future in pending.items():
                rows[name] = _progress(future.result())
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    result = {
        "benchmark": "detection",
        "date": datetime.now(timezone.utc).date().isoformat(),
        "machine": machine(),
        "history": {
            "from": _iso(start - 7 * DAY),
            "to": _iso(start),
            "events": n,
            "seconds": round(history_s, 1),
            "events_per_minute_at_the_daily_mean": RATES,
        },
        "segment_monitors": args.segment_monitors,
        "monitors": [monitor_to_dict(m) for m in watch],
        "drift_settings": {"disabled": ["hour_of_day", "day_of_week"]},
        "jobs": args.jobs,
        "seed": args.seed,
        "scenarios": [rows[s.name] for s in suite],
        "goals_met": all(r["goal_met"] for r in rows.values()),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if args.markdown:
        print(markdown(result["scenarios"]), file=sys.stderr)
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
