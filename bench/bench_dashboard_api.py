"""Dashboard API latency: every page's API calls, 30 days of data for 10 models, over HTTP.

Builds the data in-process with ``DuckDBStore`` (normalized Arrow batches, like
bench_query.py): 10 models — 6 classification (score; labels for 70 % of events), 3
regression (labels for 70 %), 1 LLM (tokens, time to first token, cost) — at
``--per-minute`` events per minute each (default 10, so 30 days ≈ 4.3 M events), five
features each (numbers and categories, one with 2 % missing values), segments
region/channel, three versions over the month (v2 from day 12, v3 as a 20 % canary on days
24-25 then alone), a reference per model (``put_reference``) so drift and data quality work,
drift in two models over the last days and an error burst in two models over the last hours.
A settings file holds ``- defaults: MODEL`` for every model plus two static error-rate
monitors; the real ``AlertEngine`` runs once over the data so alerts exist. Then
``refresh_features()``, ``compact()`` and ``rollup()`` (what the server's writer does on its
own within a minute), and ``ServerHandle`` serves the directory (alert engine off, so the
timings are the reads alone; timing starts 10 s after the server is up). Actuals are ingested
in 10-day batches (each batch joins the whole events table).

Each call of :data:`CALLS` (the pages' API calls as the scripts under
``src/watchkeeper/web/static/`` send them; edit the table to follow the pages) is timed for
the ranges 24h, 7d and 30d ending now — wk.js PRESETS: chart windows 15m / 1h / 1h, heat-map
and sample windows (drift heat-map, quality and data-quality charts) 1h / 1h / 1d — from
one keep-alive httpx client with a read key: 3 warm-ups, then ``--reps`` repetitions (20;
--quick 6) or fewer once the measured calls pass a time budget (3 s per call; --quick 1 s);
``n`` says how many ran. Calls marked ``per model`` (the overview's rows) cycle through all
10 models. Each call also reports ``first_ms``, its first (cold) call: the drift heat-map
remembers cells by the content of their counts, so repeated calls are cheaper than the
first view of a range. Monitor series are those the tabs draw as overlays (the default
monitors of the model watching a charted metric), each at most the latest 600 of the
monitor's windows (wk-monitors.js); the alerts tab's series is its default selected alert's
(clf-1, which has an error burst), at most 600 windows around it (tab-alerts.js).

Baseline in the same run, on the same file: the operations chart (count, error rate,
latency p50/p95/p99 per window) as raw DuckDB SQL over the events table of the same model
(``raw_sql``; what a server without per-minute aggregates would pay); the ratio is the
server's HTTP p95 over the raw SQL's p95 for the same range.

Prints one JSON object (``--markdown``: a table per page instead). Measurements only;
nothing is asserted.

    python bench/bench_dashboard_api.py [--quick] [--markdown] [--per-minute 10] [--reps 20] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, machine, summary_ms
from watchkeeper.alerting.engine import AlertEngine
from watchkeeper.monitors.registry import MonitorRegistry
from watchkeeper.schema import ACTUALS_SCHEMA, CORE_SCHEMA
from watchkeeper.server import ServerConfig, ServerHandle, load_monitor_section
from watchkeeper.store.duckdb_store import DB_FILE, DuckDBStore
from watchkeeper.store.keys import KeyStore

TARGET_P95_MS = 200
SETTLE_S = 30.0  # the server's start-up upkeep on a 2.8 GB file (binner, compaction)

# --------------------------------------------------------------------------- the pages' calls
#
# (page, label, path, params), as the page scripts under src/watchkeeper/web/static/ send
# them (their default views: no version or segment filter). Placeholders, filled per range
# and model:
#   {m} the model (per page: CLF, REG or LLM below, see model_of(); "per model" rows: every
#   model in turn), {start} {end} the range, {W} its chart window (ctx.window), {H} its
#   heat-map window (ctx.heatWindow, also ctx.sampleWindow of the quality and data-quality
#   tabs), {hstart} {hend} the newest heat-map cell, {now_1h} now - 1 h, {spark_start}
#   {spark_end} the last 60 whole minutes, {feature} a feature of the model,
#   {mstart_5m} {mstart_1h} the range's start moved up to at most MAX_SERIES_WINDOWS of a
#   monitor's 5m / 1h windows before the end (wk-monitors.js), {amonitor} {astart} {aend}
#   the alerts tab's selected alert's monitor and its series span (tab-alerts.js).
# Pages marked in RANGE_FREE are timed once (their calls do not depend on the range).

CLF, REG, LLM = "clf-0", "reg-0", "llm-0"
ALERTS_MODEL = "clf-1"  # the alerts tab: a model with an error burst, so it has alerts
MAX_SERIES_WINDOWS = 600  # wk-monitors.js and tab-alerts.js: a chart's monitor series
OVERVIEW_NAMES = "count,throughput,latency_p95,error_rate,accuracy,f1,mae,label_coverage"
SPARK_NAMES = "throughput,latency_p95,error_rate,accuracy,mae"
OPS_NAMES = "count,throughput,error_count,error_rate,latency_p50,latency_p95,latency_p99"
CLF_QUALITY = "accuracy,precision,recall,f1,roc_auc,count,labeled_count,label_coverage"
REG_QUALITY = "mae,rmse,r2,count,labeled_count,label_coverage"
LLM_NAMES = "count,input_tokens,output_tokens,total_tokens,cost_usd,ttft_p50,ttft_p95,ttft_p99"
LLM_TOTALS = LLM_NAMES + ",ttft_mean"
RANGE = {"start": "{start}", "end": "{end}"}
M = "/api/v1/models/{m}"
SERIES = "/api/v1/monitors/{m}.{metric}/series"  # default monitors are named MODEL.METRIC


def series(metric: str, window: str) -> tuple[str, dict[str, str]]:
    """A monitor overlay's series call (wk-monitors.js): at most MAX_SERIES_WINDOWS windows."""
    return SERIES.replace("{metric}", metric), {"start": "{mstart_" + window + "}", "end": "{end}"}


CALLS: list[tuple[str, str, str, dict[str, str]]] = [
    # overview.js: every 10 s; 5. and 6. at most once a minute per model
    ("overview", "models", "/api/v1/models", {}),
    ("overview", "open alerts", "/api/v1/alerts", {"status": "open", "limit": "1000"}),
    ("overview", "headline 1h (per model)", M + "/metrics",
     {"names": OVERVIEW_NAMES, "window": "all", "start": "{now_1h}", "end": "{end}"}),
    ("overview", "sparklines 60m 1m (per model)", M + "/metrics",
     {"names": SPARK_NAMES, "window": "1m", "start": "{spark_start}", "end": "{spark_end}"}),
    ("overview", "model (per model)", M, {}),
    ("overview", "drift 1h (per model)", M + "/drift",
     {"start": "{now_1h}", "end": "{end}", "multivariate": "false"}),
    # wk.js: every model tab
    ("model header", "model", M, {}),
    ("model header", "open alerts of model", "/api/v1/alerts",
     {"model": "{m}", "status": "open", "limit": "200"}),
    # wk.js buildFilters: once per page load, one call per segment name of the model
    ("segment filter", "values of region", M + "/segments",
     {"by": "region", "names": "count", "limit": "50", **RANGE}),
    ("segment filter", "values of channel", M + "/segments",
     {"by": "channel", "names": "count", "limit": "50", **RANGE}),
    # tab-operations.js (+ wk-monitors.js: the monitors watching its charts)
    ("operations", "ops chart", M + "/metrics", {"names": OPS_NAMES, "window": "{W}", **RANGE}),
    ("operations", "totals", M + "/metrics", {"names": OPS_NAMES, "window": "all", **RANGE}),
    ("operations", "monitors of model", "/api/v1/monitors", {"model": "{m}"}),
    ("operations", "series latency_p95 (5m, dynamic)", *series("latency_p95", "5m")),
    ("operations", "series error_rate (5m, static)", *series("error_rate", "5m")),
    # tab-quality.js: sample windows, window=all, the quality monitor's series
    ("quality", "classification chart", M + "/metrics",
     {"names": CLF_QUALITY, "window": "{H}", **RANGE}),
    ("quality", "classification totals", M + "/metrics",
     {"names": CLF_QUALITY, "window": "all", **RANGE}),
    ("quality", "classification series accuracy (1h)", *series("accuracy", "1h")),
    ("quality", "regression chart", M + "/metrics", {"names": REG_QUALITY, "window": "{H}", **RANGE}),
    ("quality", "regression totals", M + "/metrics", {"names": REG_QUALITY, "window": "all", **RANGE}),
    ("quality", "regression series mae (1h)", *series("mae", "1h")),
    # tab-drift.js
    ("drift", "heat-map", M + "/drift/timeline", {"window": "{H}", **RANGE}),
    ("drift", "cell click", M + "/drift",
     {"start": "{hstart}", "end": "{hend}", "features": "{feature}", "multivariate": "false"}),
    # tab-data-quality.js (its charts' rates have no default monitors: no series)
    ("data-quality", "sample windows", M + "/data-quality", {"window": "{H}", **RANGE}),
    ("data-quality", "totals", M + "/data-quality", {"window": "all", **RANGE}),
    # tab-segments.js: the first segment name, default metric error_rate
    ("segments", "by region", M + "/segments",
     {"by": "region", "names": "count,error_rate", "limit": "50", **RANGE}),
    # tab-llm.js
    ("llm", "totals", M + "/metrics", {"names": LLM_TOTALS, "window": "all", **RANGE}),
    ("llm", "llm chart", M + "/metrics", {"names": LLM_NAMES, "window": "{W}", **RANGE}),
    ("llm", "series ttft_p95 (1h)", *series("ttft_p95", "1h")),
    # tab-alerts.js
    ("alerts tab", "open alerts of model", "/api/v1/alerts",
     {"model": "{m}", "limit": "1000", "status": "open"}),
    ("alerts tab", "alerts since range start", "/api/v1/alerts",
     {"model": "{m}", "limit": "1000", "since": "{start}"}),
    ("alerts tab", "active silences", "/api/v1/silences", {"active": "true"}),
    ("alerts tab", "runs awaiting approval", "/api/v1/actions/runs",
     {"model": "{m}", "status": "awaiting_approval", "limit": "100"}),
    ("alerts tab", "selected alert's series", "/api/v1/monitors/{amonitor}/series",
     {"start": "{astart}", "end": "{aend}"}),
    # page-alerts.js (no filter chosen)
    ("alerts page", "models", "/api/v1/models", {}),
    ("alerts page", "open alerts", "/api/v1/alerts", {"limit": "500", "status": "open"}),
    ("alerts page", "recent alerts", "/api/v1/alerts", {"limit": "200"}),
    ("alerts page", "silences", "/api/v1/silences", {}),
    # page-monitors.js
    ("monitors page", "monitors", "/api/v1/monitors", {}),
    ("monitors page", "open alerts", "/api/v1/alerts", {"status": "open", "limit": "1000"}),
]  # fmt: skip
PER_MODEL = ("(per model)",)
RANGE_FREE = ("overview", "model header", "alerts page", "monitors page")


def model_of(page: str, label: str) -> str:
    """The model a page's call is timed for."""
    if page == "llm":
        return LLM
    if page == "alerts tab":
        return ALERTS_MODEL
    if page == "quality" and label.startswith("regression"):
        return REG
    return CLF


RANGES = {  # range -> (length, chart window, heat-map window)
    "24h": (timedelta(hours=24), "15m", "1h"),
    "7d": (timedelta(days=7), "1h", "1h"),
    "30d": (timedelta(days=30), "1h", "1d"),
}
WINDOW_S = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}

# --------------------------------------------------------------------------- the data

MODELS = [
    *[(f"clf-{i}", "classification") for i in range(6)],
    *[(f"reg-{i}", "regression") for i in range(3)],
    (LLM, "llm"),
]
DRIFTING = {"clf-0": "amount", "reg-0": "country"}  # drift over the last 5 days
ERROR_BURST = ("clf-1", "reg-1")  # 12 % errors over the last 3 hours
REGIONS = np.array(["eu", "us", "apac", "latam"])
CHANNELS = np.array(["web", "app", "partner"])
COUNTRIES = np.array(["de", "fr", "us", "br", "in", "jp", "gb", "es"])
SETTINGS = """monitors:
{defaults}
  - name: clf-1-errors
    model: clf-1
    metric: error_rate
    window: 5m
    condition: {{type: static, op: above, threshold: 0.05}}
  - name: reg-1-errors
    model: reg-1
    metric: error_rate
    window: 5m
    condition: {{type: static, op: above, threshold: 0.05}}
"""


def model_features(
    rng: np.random.Generator, task: str, n: int, drift: np.ndarray, drifting: str | None
) -> dict[str, pa.Array]:
    """Five features: three numbers (one with 2 % missing) and two categories."""
    shift = drift.astype(float)
    if task == "llm":
        lang = np.array(["en", "de", "fr", "es", "ja"])[rng.integers(0, 5, n)]
        return {
            "prompt_chars": pa.array(rng.lognormal(6, 0.8, n)),
            "history_turns": pa.array(rng.poisson(3, n).astype(float)),
            "temperature": pa.array(rng.choice([0.0, 0.2, 0.7, 1.0], n)),
            "language": pa.array(lang),
            "tool": pa.array(np.array(["none", "search", "code"])[rng.integers(0, 3, n)]),
        }
    amount = rng.gamma(2.0, 50.0, n) * (1 + 0.6 * shift * (drifting == "amount"))
    age = rng.normal(40, 12, n)
    p = np.full(len(COUNTRIES), 1 / len(COUNTRIES))
    country = COUNTRIES[rng.choice(len(COUNTRIES), n, p=p)]
    if drifting == "country":
        moved = drift & (rng.random(n) < 0.5)
        country = np.where(moved, "in", country)
    return {
        "amount": pa.array(amount),
        "age": pa.array(age, mask=rng.random(n) < 0.02),
        "tenure_days": pa.array(rng.poisson(200, n).astype(float)),
        "country": pa.array(country),
        "device": pa.array(np.array(["ios", "android", "desktop"])[rng.integers(0, 3, n)]),
    }


def reference(rng: np.random.Generator, task: str, n: int = 20_000) -> pa.Table:
    cols = model_features(rng, task, n, np.zeros(n, dtype=bool), None)
    table = pa.table({f"feature:{k}": v for k, v in cols.items()})
    if task == "classification":
        table = table.append_column("score", pa.array(rng.random(n)))
    return table


def day_batches(
    rng: np.random.Generator, name: str, task: str, day: int, days: int, start: datetime, pm: int
) -> tuple[pa.Table, pa.Table | None]:
    """One day of one model's normalized events, and the actuals of 70 % of them."""
    minutes = 1440
    n = minutes * pm
    t0_us = int((start + timedelta(days=day)).timestamp() * 1e6)
    minute = np.repeat(np.arange(minutes, dtype=np.int64), pm)
    ts = t0_us + minute * 60_000_000 + rng.integers(0, 60_000_000, n)
    ids = pc.binary_join_element_wise(
        f"{name}-{day:02d}-", pa.array(np.arange(n)).cast(pa.string()), ""
    )
    v3_share = 0.0 if day < days - 6 else 0.2 if day < days - 4 else 1.0
    version = np.where(rng.random(n) < v3_share, "v3", "v1" if day < days * 0.4 else "v2")
    drift = np.full(n, day >= days - 5)
    is_error = rng.random(n) < 0.01
    if name in ERROR_BURST and day == days - 1:
        is_error |= (minute >= minutes - 180) & (rng.random(n) < 0.12)
    latency = rng.lognormal(3.0, 0.5, n) * (1 + 0.3 * np.sin(minute / minutes * 2 * np.pi))
    segments = pa.MapArray.from_arrays(
        pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
        pa.array(np.tile(np.array(["region", "channel"]), n)),
        pa.array(
            np.column_stack(
                [REGIONS[rng.integers(0, 4, n)], CHANNELS[rng.integers(0, 3, n)]]
            ).ravel()
        ),
        type=CORE_SCHEMA.field("segments").type,
    )
    null_s, null_f, null_i = (
        pa.nulls(n, pa.string()),
        pa.nulls(n, pa.float64()),
        pa.nulls(n, pa.int64()),
    )
    pred_text, pred_value, score = null_s, null_f, null_f
    tokens_in = tokens_out = null_i
    ttft = cost = null_f
    labels: pa.Array | None = None
    label_values: pa.Array | None = None
    if task == "classification":
        s = rng.random(n)
        pred = (s > 0.5).astype(np.int64)
        pred_text, pred_value, score = (
            pa.array(pred.astype(str)),
            pa.array(pred.astype(float)),
            pa.array(s),
        )
        y = (rng.random(n) < s).astype(np.int64)
        labels, label_values = pa.array(y.astype(str)), pa.array(y.astype(float))
    elif task == "regression":
        target = rng.gamma(3.0, 10.0, n)
        yhat = np.round(target + rng.normal(0, 3, n), 1)
        pred_text, pred_value = pc.cast(pa.array(yhat), pa.string()), pa.array(yhat)
        labels = pc.cast(pa.array(np.round(target, 2)), pa.string())
        label_values = pa.array(np.round(target, 2))
    else:
        tin = rng.poisson(400, n)
        tout = rng.poisson(250, n)
        tokens_in, tokens_out = pa.array(tin), pa.array(tout)
        ttft = pa.array(rng.lognormal(5.5, 0.4, n))
        cost = pa.array(tin * 3e-6 + tout * 1.5e-5)
        latency = latency * 40
    events = pa.Table.from_arrays(
        [
            ids,
            pa.array(ts, pa.timestamp("us", tz="UTC")),
            pa.array(version),
            pred_text,
            pred_value,
            score,
            null_s,
            pa.array(latency),
            pa.array(is_error),
            null_s,
            segments,
            null_s,
            null_s,
            tokens_in,
            tokens_out,
            ttft,
            cost,
        ],
        schema=CORE_SCHEMA,
    )
    for k, v in sorted(model_features(rng, task, n, drift, DRIFTING.get(name)).items()):
        events = events.append_column(f"feature:{k}", v)
    if labels is None:
        return events, None
    labeled = pa.array(rng.random(n) < 0.7)
    actuals = pa.Table.from_arrays(
        [
            ids.filter(labeled),
            labels.filter(labeled),
            label_values.filter(labeled) if label_values is not None else None,
            pa.array(ts + 600_000_000, pa.timestamp("us", tz="UTC")).filter(labeled),
        ],
        schema=ACTUALS_SCHEMA,
    )
    return events, actuals


def build(data_dir: Path, days: int, per_minute: int, end: datetime) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    start = end - timedelta(days=days)
    config = data_dir / "watchkeeper.yaml"
    config.write_text(
        SETTINGS.format(defaults="\n".join(f"  - defaults: {name}" for name, _ in MODELS))
    )
    store = DuckDBStore(data_dir)
    store.start()
    t0 = time.perf_counter()
    n_events = n_actuals = 0
    alerts = 0
    try:
        for name, task in MODELS:
            ref = reference(rng, task)
            kinds = {
                c.removeprefix("feature:"): "number" if pa.types.is_floating(t) else "string"
                for c, t in zip(ref.column_names, ref.schema.types, strict=True)
                if c.startswith("feature:")
            }
            store.put_reference(name, None, ref, kinds)
        pending: dict[str, list[pa.Table]] = {name: [] for name, _ in MODELS}
        for day in range(days):
            for name, task in MODELS:
                events, actuals = day_batches(rng, name, task, day, days, start, per_minute)
                store.ingest_events(name, events, task=task)
                n_events += events.num_rows
                if actuals is not None:
                    pending[name].append(actuals)
                # Actuals in 10-day batches: each batch joins the whole events table, so
                # a batch a day would make the build quadratic.
                if pending[name] and (day % 10 == 9 or day == days - 1):
                    batch = pa.concat_tables(pending[name])
                    store.ingest_actuals(name, batch)
                    n_actuals += batch.num_rows
                    pending[name] = []
        t1 = time.perf_counter()
        stages: dict[str, float] = {}
        for stage in ("refresh", "refresh_features", "compact", "rollup"):
            ts = time.perf_counter()
            getattr(store, stage)()  # the server's writer does these on its own within a minute
            stages[f"{stage}_s"] = round(time.perf_counter() - ts, 1)
        t2 = time.perf_counter()
        section = load_monitor_section(config)
        registry = MonitorRegistry(store, section.monitors, section.default_sets)
        registry.load()
        registry.refresh()
        engine = AlertEngine(store, registry)
        result = engine.run(end + timedelta(minutes=1))
        if result.errors:
            raise RuntimeError(f"alert engine: {result.errors}")
        alerts = len(result.changes)
        monitors = len(registry.entries())
        t3 = time.perf_counter()
    finally:
        store.close()
    return {
        "models": len(MODELS),
        "events": n_events,
        "actuals": n_actuals,
        "monitors": monitors,
        "alert_transitions": alerts,
        "ingest_s": round(t1 - t0, 1),
        "refresh_bin_compact_rollup_s": round(t2 - t1, 1),
        **stages,
        "alert_engine_s": round(t3 - t2, 1),
        "file_mb": round((data_dir / DB_FILE).stat().st_size / 1e6, 1),
    }


# --------------------------------------------------------------------------- timing

RAW_OPS_SQL = """
SELECT time_bucket(INTERVAL '{w} seconds', ts) AS w, count(*) AS n,
       avg(CAST(is_error AS INTEGER)) AS error_rate,
       quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS latency_q
FROM {ev} WHERE ts >= $start AND ts < $end
GROUP BY ALL ORDER BY w
"""


def time_calls(
    fn: Callable[[int], object],
    reps: int,
    budget_s: float,
    warmups: int = 3,
    first: list[float] | None = None,
) -> list[float]:
    """Seconds per call for ``reps`` calls after ``warmups`` (``fn(i)``, i the repetition);
    stops early once the measured calls have taken ``budget_s``. The first warm-up's time
    is appended to ``first`` (a cold call: nothing of it in DuckDB's or the server's
    caches yet)."""
    for i in range(warmups):
        t0 = time.perf_counter()
        fn(i)
        if i == 0 and first is not None:
            first.append(time.perf_counter() - t0)
    out: list[float] = []
    while len(out) < reps and sum(out) < budget_s:
        t0 = time.perf_counter()
        fn(len(out))
        out.append(time.perf_counter() - t0)
    return out


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def fill(template: str, ctx: dict[str, str]) -> str:
    return template.format(**ctx) if "{" in template else template


def raw_baseline(d: Path, reps: int, budget_s: float) -> dict[str, Any]:
    """The operations chart of CLF as raw SQL over its events table, per range."""
    con = duckdb.connect(str(d / DB_FILE), read_only=True)
    out: dict[str, Any] = {}
    try:
        con.execute("SET TimeZone = 'UTC'")
        mid = con.execute("SELECT id FROM models WHERE name = ?", [CLF]).fetchall()[0][0]
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for rng_name, (length, window, _) in RANGES.items():
            query = RAW_OPS_SQL.format(w=WINDOW_S[window], ev=f"ev_{mid}")
            params = {"start": now - length, "end": now}
            out[rng_name] = summary_ms(
                time_calls(lambda _i: con.execute(query, params).fetchall(), reps, budget_s)  # noqa: B023
            )
    finally:
        con.close()
    return out


def selected_alert(
    client: httpx.Client, model: str, start: datetime, end: datetime
) -> dict[str, Any] | None:
    """The alert tab-alerts.js charts by default: this model's open alerts and those changed
    since the range's start, merged, kept when they overlap the range, open ones first
    (firing, then pending; critical before warning), then the most recent."""
    by_id: dict[int, dict[str, Any]] = {}
    for extra in ({"status": "open"}, {"since": iso(start)}):
        r = client.get("/api/v1/alerts", params={"model": model, "limit": "1000", **extra})
        r.raise_for_status()
        for a in r.json()["alerts"]:
            by_id[a["id"]] = a

    def ts(v: str) -> datetime:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))

    alerts = [
        a
        for a in by_id.values()
        if ts(a["started_at"]) < end and (not a.get("resolved_at") or ts(a["resolved_at"]) >= start)
    ]

    def rank(a: dict[str, Any]) -> tuple[int, float, int]:
        status = a["status"]
        r = 0 if status == "firing" else 2 if status == "pending" else 4
        r += 1 if status in ("firing", "pending") and a.get("severity") != "critical" else 0
        return (r, -ts(a["started_at"]).timestamp(), -a["id"])

    return min(alerts, key=rank) if alerts else None


def alert_series_span(
    alert: dict[str, Any], start: datetime, end: datetime
) -> tuple[datetime, datetime]:
    """tab-alerts.js drawMonitorChart: at most MAX_SERIES_WINDOWS windows around the alert."""
    step = timedelta(seconds=WINDOW_S.get(alert.get("window") or "", 60))
    resolved = alert.get("resolved_at")
    alert_end = (
        datetime.fromisoformat(resolved.replace("Z", "+00:00")) + 60 * step if resolved else end
    )
    s_end = min(end, max(alert_end, start + MAX_SERIES_WINDOWS * step))
    return max(start, s_end - (MAX_SERIES_WINDOWS - 1) * step), s_end


def time_http(client: httpx.Client, reps: int, budget_s: float) -> tuple[dict[str, Any], list[str]]:
    """Every call of CALLS for every range: {range: {page: {label: summary}}}."""
    notes: list[str] = []
    models = [m for m, _ in MODELS]
    results: dict[str, Any] = {}
    for rng_name, (length, window, heat) in RANGES.items():
        now = datetime.now(timezone.utc)
        start = now - length
        hend = datetime.fromtimestamp(
            now.timestamp() // WINDOW_S[heat] * WINDOW_S[heat], timezone.utc
        )
        minute = now.replace(second=0, microsecond=0)
        base = {
            "start": iso(start),
            "end": iso(now),
            "W": window,
            "H": heat,
            "hstart": iso(hend - timedelta(seconds=WINDOW_S[heat])),
            "hend": iso(hend),
            "now_1h": iso(now - timedelta(hours=1)),
            "spark_start": iso(minute - timedelta(hours=1)),
            "spark_end": iso(minute),
            "feature": DRIFTING[CLF],
        }
        for w in ("5m", "1h"):
            earliest = now - (MAX_SERIES_WINDOWS - 1) * timedelta(seconds=WINDOW_S[w])
            base[f"mstart_{w}"] = iso(max(start, earliest))
        alert = selected_alert(client, ALERTS_MODEL, start, now)
        if alert is not None:
            a_start, a_end = alert_series_span(alert, start, now)
            base |= {"amonitor": alert["monitor"], "astart": iso(a_start), "aend": iso(a_end)}
            notes.append(
                f"{rng_name}: alerts tab charts alert {alert['id']} ({alert['monitor']},"
                f" {alert['status']}), series {base['astart']} – {base['aend']}"
            )
        else:
            notes.append(f"{rng_name}: {ALERTS_MODEL} has no alert in range: no series call")
        per_range: dict[str, dict[str, Any]] = {}
        for page, label, path, params in CALLS:
            if page in RANGE_FREE and rng_name != "24h":
                continue
            if "{amonitor}" in path and alert is None:
                continue
            model = model_of(page, label)
            per_model = any(tag in label for tag in PER_MODEL)

            def call(
                i: int,
                path: str = path,
                params: dict[str, str] = params,
                model: str = model,
                per_model: bool = per_model,
                base: dict[str, str] = base,
            ) -> None:
                m = models[i % len(models)] if per_model else model
                ctx = {**base, "m": m}
                url = fill(path, ctx)
                q = {k: fill(v, ctx) for k, v in params.items()}
                r = client.get(url, params=q)
                if r.status_code != 200:
                    raise RuntimeError(f"{url} {q}: {r.status_code} {r.text[:300]}")

            cold: list[float] = []
            summary = summary_ms(time_calls(call, reps, budget_s, first=cold))
            per_range.setdefault(page, {})[label] = {
                **summary,
                "first_ms": round(cold[0] * 1000, 1),
            }
        results[rng_name] = per_range
    return results, notes


def page_table(http: dict[str, Any]) -> list[dict[str, Any]]:
    """Per page and range: the slowest call's p95 and which call it is."""
    rows = []
    for rng_name, pages in http.items():
        for page, calls in pages.items():
            label, s = max(calls.items(), key=lambda kv: kv[1]["p95_ms"])
            rows.append(
                {
                    "page": page,
                    "range": "any" if page in RANGE_FREE else rng_name,
                    "calls": len(calls),
                    "max_p95_ms": s["p95_ms"],
                    "slowest_call": label,
                    "met": s["p95_ms"] <= TARGET_P95_MS,
                }
            )
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['data']['models']} models, {result['data']['events']:,} events over"
        f" {result['days']} days; target p95 ≤ {TARGET_P95_MS} ms per call.",
        "",
        "| page | range | calls | max p95 (ms) | slowest call | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["pages"]:
        lines.append(
            f"| {r['page']} | {r['range']} | {r['calls']} | {r['max_p95_ms']:.0f} |"
            f" {r['slowest_call']} | {'yes' if r['met'] else '**no**'} |"
        )
    lines += [
        "",
        "| range | call | p50 (ms) | p95 (ms) | n | first call (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for rng_name, pages in result["http"].items():
        for page, calls in pages.items():
            for label, s in calls.items():
                lines.append(
                    f"| {rng_name} | {page}: {label} | {s['p50_ms']:.0f} | {s['p95_ms']:.0f}"
                    f" | {s['n']} | {s['first_ms']:.0f} |"
                )
    lines += ["", "| range | ops chart p95 (ms) | raw SQL p95 (ms) | ratio |", "|---|---|---|---|"]
    for rng_name, ratio in result["ratio_ops_chart_to_raw_sql_p95"].items():
        lines.append(
            f"| {rng_name} | {result['http'][rng_name]['operations']['ops chart']['p95_ms']:.0f}"
            f" | {result['raw_sql'][rng_name]['p95_ms']:.0f} | {ratio} |"
        )
    if result.get("notes"):
        lines += ["", *(f"- {n}" for n in result["notes"])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="7 days, 6 repetitions")
    parser.add_argument("--markdown", action="store_true", help="tables instead of JSON")
    parser.add_argument("--days", type=int)
    parser.add_argument("--per-minute", type=int, default=10)
    parser.add_argument("--reps", type=int)
    parser.add_argument("--keep", type=Path, help="build here (or reuse a build) and keep it")
    args = parser.parse_args()
    days = args.days or (7 if args.quick else 30)
    reps = args.reps or (6 if args.quick else 20)
    budget = 1.0 if args.quick else 3.0
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    result: dict[str, Any] = {
        "benchmark": "dashboard_api",
        "days": days,
        "events_per_minute_per_model": args.per_minute,
        "repetitions": reps,
        "budget_s_per_call": budget,
        "target_p95_ms": TARGET_P95_MS,
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp:
        d = args.keep or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if args.keep and (d / DB_FILE).exists():
            result["data"] = json.loads((d / "build.json").read_text())
        else:
            result["data"] = build(d, days, args.per_minute, end)
            (d / "build.json").write_text(json.dumps(result["data"]))
        result["raw_sql"] = raw_baseline(d, reps, budget)
        read_key = KeyStore(d).create("read")
        handle = ServerHandle(
            ServerConfig(
                data_dir=d,
                port=free_port(),
                config_file=d / "watchkeeper.yaml",
                evaluate_interval=0,
            )
        ).start()
        time.sleep(SETTLE_S)  # let the server's start-up work (binner, compaction) pass
        try:
            with httpx.Client(
                base_url=handle.url, headers={"Authorization": f"Bearer {read_key}"}, timeout=120
            ) as client:
                result["http"], result["notes"] = time_http(client, reps, budget)
        finally:
            handle.stop()
        result["total_s"] = round(time.perf_counter() - t0, 1)
    result["pages"] = page_table(result["http"])
    result["ratio_ops_chart_to_raw_sql_p95"] = {
        r: round(
            result["http"][r]["operations"]["ops chart"]["p95_ms"] / result["raw_sql"][r]["p95_ms"],
            3,
        )
        for r in RANGES
    }
    result["all_met"] = all(r["met"] for r in result["pages"])
    print(markdown(result) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
