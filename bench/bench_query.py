"""Dashboard query latency: 30 days of one model, ten metrics per hour, over HTTP.

Builds the data in-process with ``DuckDBStore`` (normalized Arrow batches, 30 events per
minute for 30 days ≈ 1.3 M events, 2 % errors, segments region/channel, score, latency;
actuals for 70 % of them), runs ``store.refresh()``, ``store.compact()`` and ``store.rollup()`` (what the
server's writer does on its own within a minute), then serves that data directory with
``ServerHandle`` and times

    GET /api/v1/models/{m}/metrics?names=count,throughput,error_rate,latency_p50,latency_p95,
        latency_p99,accuracy,f1,roc_auc,label_coverage&window=1h   (720 windows)

3 warm-ups, then N repetitions (50; --quick 20) from one keep-alive httpx client, or fewer
when the measured calls pass a time budget (45 s over HTTP, 30 s raw SQL, 15 s in-process;
``n`` in the output says how many ran), so a run stays near two minutes.

Baselines in the same run, on the same data file:

* ``raw_sql``: the equivalent query over the raw events table in DuckDB (GROUP BY hour:
  count, avg error, quantile_cont(latency, [.5, .95, .99]), accuracy from the join with
  actuals), same repetitions — what a server without per-minute aggregates would pay;
* ``in_process``: ``metric_series`` called directly on the store (no HTTP, no JSON), to
  separate the store's time from the web layer's.

Prints one JSON object. Measurements only; nothing is asserted.

    python bench/bench_query.py [--quick] [--days 30] [--reps 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, machine, summary_ms
from watchkeeper.aggregate.windows import metric_series
from watchkeeper.schema import ACTUALS_SCHEMA, CORE_SCHEMA
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.duckdb_store import DB_FILE, DuckDBStore
from watchkeeper.store.keys import KeyStore

MODEL = "bench"
PER_MINUTE = 30
NAMES = (
    "count,throughput,error_rate,latency_p50,latency_p95,latency_p99,"
    "accuracy,f1,roc_auc,label_coverage"
)
RAW_SQL = """
WITH e AS (SELECT event_id, ts, prediction, latency_ms, is_error FROM {ev}
           WHERE ts >= $start AND ts < $end)
SELECT time_bucket(INTERVAL 1 HOUR, e.ts) AS hour,
       count(*) AS n,
       avg(CAST(e.is_error AS INTEGER)) AS error_rate,
       quantile_cont(e.latency_ms, [0.5, 0.95, 0.99]) AS latency_q,
       avg(CAST(a.label = e.prediction AS INTEGER)) AS accuracy,
       count(a.label) AS labeled
FROM e LEFT JOIN (SELECT event_id, label FROM actuals WHERE model_id = $mid) a
  ON a.event_id = e.event_id
GROUP BY ALL ORDER BY hour
"""


def day_batches(rng: np.random.Generator, day: int, start: datetime) -> tuple[pa.Table, pa.Table]:
    """One day of normalized events and the actuals of 70 % of them."""
    minutes = 1440
    n = minutes * PER_MINUTE
    t0_us = int((start + timedelta(days=day)).timestamp() * 1e6)
    ts = t0_us + np.repeat(np.arange(minutes, dtype=np.int64) * 60_000_000, PER_MINUTE)
    ts += rng.integers(0, 60_000_000, n)
    ids = pa.array([f"d{day:02d}-{i:06d}" for i in range(n)])
    score = rng.random(n)
    labels = (rng.random(n) < score).astype(np.int64)  # calibrated scores
    pred = (score > 0.5).astype(np.int64)
    region = np.array(["eu", "us", "apac"])[rng.integers(0, 3, n)]
    channel = np.array(["web", "app"])[rng.integers(0, 2, n)]
    offsets = pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32))
    keys = pa.array(np.tile(np.array(["region", "channel"]), n))
    values = pa.array(np.column_stack([region, channel]).ravel())
    segments = pa.MapArray.from_arrays(
        offsets, keys, values, type=CORE_SCHEMA.field("segments").type
    )
    null_s = pa.nulls(n, pa.string())
    null_f = pa.nulls(n, pa.float64())
    null_i = pa.nulls(n, pa.int64())
    events = pa.Table.from_arrays(
        [
            ids,
            pa.array(ts, pa.timestamp("us", tz="UTC")),
            pa.array(["v1"] * n),
            pa.array(pred.astype(str)),
            pa.array(pred.astype(np.float64)),
            pa.array(score),
            null_s,
            pa.array(rng.lognormal(3.0, 0.6, n)),
            pa.array(rng.random(n) < 0.02),
            null_s,
            segments,
            null_s,
            null_s,
            null_i,
            null_i,
            null_f,
            null_f,
        ],
        schema=CORE_SCHEMA,
    ).append_column("feature:amount", pa.array(rng.gamma(2.0, 50.0, n)))
    labeled = rng.random(n) < 0.7
    actuals = pa.Table.from_arrays(
        [
            ids.filter(pa.array(labeled)),
            pa.array(labels[labeled].astype(str)),
            pa.array(labels[labeled].astype(np.float64)),
            pa.array(ts[labeled] + 3_600_000_000, pa.timestamp("us", tz="UTC")),
        ],
        schema=ACTUALS_SCHEMA,
    )
    return events, actuals


def build(data_dir: Path, days: int, end: datetime) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    start = end - timedelta(days=days)
    store = DuckDBStore(data_dir)
    store.start()
    t0 = time.perf_counter()
    n_events = n_actuals = 0
    try:
        for day in range(days):
            events, actuals = day_batches(rng, day, start)
            store.ingest_events(MODEL, events, task="classification")
            store.ingest_actuals(MODEL, actuals)
            n_events += events.num_rows
            n_actuals += actuals.num_rows
        t1 = time.perf_counter()
        store.refresh()
        store.compact()
        store.rollup()  # the server rolls closed hours up every 30 s; do it now
        t2 = time.perf_counter()
    finally:
        store.close()
    return {
        "events": n_events,
        "actuals": n_actuals,
        "ingest_s": round(t1 - t0, 1),
        "refresh_compact_s": round(t2 - t1, 1),
        "file_mb": round((data_dir / DB_FILE).stat().st_size / 1e6, 1),
    }


def time_calls(fn: Any, reps: int, budget_s: float, warmups: int = 3) -> list[float]:
    """Seconds per call for ``reps`` calls after ``warmups``; stops early once the measured
    calls have taken ``budget_s`` (keeps a run near two minutes on a slow path; the number
    of calls made is reported as ``n``)."""
    for _ in range(warmups):
        fn()
    out: list[float] = []
    while len(out) < reps and sum(out) < budget_s:
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="7 days, 20 repetitions")
    parser.add_argument("--days", type=int)
    parser.add_argument("--reps", type=int)
    args = parser.parse_args()
    days = args.days or (7 if args.quick else 30)
    reps = args.reps or (20 if args.quick else 50)
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    result: dict[str, Any] = {
        "benchmark": "query",
        "days": days,
        "events_per_minute": PER_MINUTE,
        "windows": days * 24,
        "metrics": NAMES.split(","),
        "repetitions": reps,
        "target_p95_ms": 100,
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp:
        d = Path(tmp)
        result["data"] = build(d, days, end)

        # Baseline: raw SQL over the events table and actuals (the server is not running).
        con = duckdb.connect(str(d / DB_FILE), read_only=True)
        con.execute("SET TimeZone = 'UTC'")
        mid = con.execute("SELECT id FROM models WHERE name = ?", [MODEL]).fetchall()[0][0]
        params = {"start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None), "mid": mid}
        raw_query = RAW_SQL.format(ev=f"ev_{mid}")
        raw_rows: list[Any] = []

        def raw() -> None:
            raw_rows[:] = con.execute(raw_query, params).fetchall()

        result["raw_sql"] = summary_ms(time_calls(raw, reps, budget_s=30))
        con.close()

        # The store in-process (no HTTP): the aggregate query plus finishing ten metrics.
        store = DuckDBStore(d)
        store.start()
        try:
            names = NAMES.split(",")
            result["in_process"] = summary_ms(
                time_calls(
                    lambda: metric_series(store, MODEL, names, start, end, "1h", None, None),
                    reps,
                    budget_s=15,
                )
            )
        finally:
            store.close()

        # The real server over HTTP.
        read_key = KeyStore(d).create("read")
        handle = ServerHandle(ServerConfig(data_dir=d, port=free_port())).start()
        try:
            with httpx.Client(
                base_url=handle.url, headers={"Authorization": f"Bearer {read_key}"}, timeout=60
            ) as client:
                query = {
                    "names": NAMES,
                    "window": "1h",
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                }
                body: dict[str, Any] = {}

                def http() -> None:
                    r = client.get(f"/api/v1/models/{MODEL}/metrics", params=query)
                    r.raise_for_status()
                    body.update(r.json())

                result["http"] = summary_ms(time_calls(http, reps, budget_s=45))
                # The same without roc_auc (whose 1,000 score bins per window are most of the
                # work): what the overview page and most monitors ask for.
                query_no_auc = {**query, "names": NAMES.replace(",roc_auc", "")}
                result["http_without_roc_auc"] = summary_ms(
                    time_calls(
                        lambda: client.get(
                            f"/api/v1/models/{MODEL}/metrics", params=query_no_auc
                        ).raise_for_status(),
                        reps,
                        budget_s=30,
                    )
                )
                result["response_kb"] = round(len(client.get(
                    f"/api/v1/models/{MODEL}/metrics", params=query).content) / 1024, 1)  # fmt: skip
        finally:
            handle.stop()

    # Agreement between the server's figures and the raw SQL (sanity, not a test).
    m = body["metrics"]
    raw_by_hour = {r[0].replace(tzinfo=timezone.utc): r for r in raw_rows}
    acc_diff, p50_rel = 0.0, 0.0
    for i, w in enumerate(body["windows"]):
        r = raw_by_hour.get(datetime.fromisoformat(w.replace("Z", "+00:00")))
        if r is None or m["count"][i] is None:
            continue
        acc_diff = max(acc_diff, abs((m["accuracy"][i] or 0) - (r[4] or 0)))
        p50_rel = max(p50_rel, abs(m["latency_p50"][i] / r[3][0] - 1))
    result["agreement"] = {
        "count_server": sum(c or 0 for c in m["count"]),
        "count_raw_sql": sum(r[1] for r in raw_rows),
        "accuracy_max_abs_diff": round(acc_diff, 6),
        "latency_p50_max_rel_diff": round(p50_rel, 4),
    }
    p95_http, p95_raw = result["http"]["p95_ms"], result["raw_sql"]["p95_ms"]
    result["ratio_http_to_raw_sql"] = {
        "p50": round(result["http"]["p50_ms"] / result["raw_sql"]["p50_ms"], 3),
        "p95": round(p95_http / p95_raw, 3),
    }
    result["ratio_in_process_to_raw_sql_p50"] = round(
        result["in_process"]["p50_ms"] / result["raw_sql"]["p50_ms"], 3
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
