"""Online drift latency: one model, a day of 1-minute windows, 25 features, over HTTP.

Builds the data in-process with ``DuckDBStore``: a 100,000-row reference (20 numeric and 5
categorical features) and one day of traffic (``--per-minute`` events per minute, default 300,
so 432,000 events; three numeric features drift in the last six hours), then runs
``refresh_features()``, ``compact()`` and ``rollup()`` (what the server's writer does on its
own within a minute), serves the data directory with ``ServerHandle`` and times

    GET /api/v1/models/{m}/drift?start=-1d&end=now&multivariate=false     (25 features)
    GET /api/v1/models/{m}/drift/timeline?window=1h                       (24 x 25 cells)
    GET /api/v1/models/{m}/drift?...&multivariate=true                    (samples + models)

Baseline in the same run, on the same file: ``raw_sql``, a bare DuckDB query over the events
table computing the 25 histograms of the day in the reference's decile bins (what a server
without per-minute feature counts would scan), plus PSI in numpy.

Prints one JSON object. Measurements only; nothing is asserted.

    python bench/bench_drift_online.py [--per-minute 300] [--reps 30]
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
from watchkeeper.aggregate.drift import drift_report
from watchkeeper.schema import CORE_SCHEMA
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.duckdb_store import DB_FILE, DuckDBStore
from watchkeeper.store.keys import KeyStore

MODEL = "bench"
NUMERIC = 20
CATEGORICAL = 5
CATS = np.array([f"c{i}" for i in range(12)])


def features(rng: np.random.Generator, n: int, drift: np.ndarray | None = None) -> dict[str, Any]:
    shift = np.zeros(n) if drift is None else drift.astype(float)
    out: dict[str, Any] = {}
    for i in range(NUMERIC):
        if i % 4 == 0:
            v = rng.normal(50 + (10 * shift if i < 3 else 0), 10, n)
        elif i % 4 == 1:
            v = rng.lognormal(3 + (0.5 * shift if i < 3 else 0), 0.6, n)
        elif i % 4 == 2:
            v = rng.uniform(0, 1 + (shift if i < 3 else 0), n)
        else:
            v = rng.poisson(4, n).astype(float)
        out[f"f{i:02d}"] = v
    for j in range(CATEGORICAL):
        out[f"cat{j}"] = CATS[rng.integers(0, 4 + 2 * j, n)]
    return out


def reference(rng: np.random.Generator, n: int) -> tuple[pa.Table, dict[str, str]]:
    cols = {f"feature:{k}": pa.array(v) for k, v in features(rng, n).items()}
    cols["score"] = pa.array(rng.random(n))
    schema = {k: ("number" if k.startswith("f") else "string") for k in features(rng, 1)}
    return pa.table(cols), schema


def day_events(rng: np.random.Generator, start: datetime, per_minute: int) -> pa.Table:
    minutes = 1440
    n = minutes * per_minute
    t0_us = int(start.timestamp() * 1e6)
    ts = t0_us + np.repeat(np.arange(minutes, dtype=np.int64) * 60_000_000, per_minute)
    ts += rng.integers(0, 60_000_000, n)
    drift = np.repeat(np.arange(minutes) >= minutes - 360, per_minute)
    score = rng.random(n)
    null_s = pa.nulls(n, pa.string())
    null_f = pa.nulls(n, pa.float64())
    null_i = pa.nulls(n, pa.int64())
    seg_type = CORE_SCHEMA.field("segments").type
    events = pa.Table.from_arrays(
        [
            pa.array([f"e{i:07d}" for i in range(n)]),
            pa.array(ts, pa.timestamp("us", tz="UTC")),
            pa.array(["v1"] * n),
            pa.array((score > 0.5).astype(int).astype(str)),
            pa.array((score > 0.5).astype(np.float64)),
            pa.array(score),
            null_s,
            pa.array(rng.lognormal(3.0, 0.6, n)),
            pa.array(np.zeros(n, dtype=bool)),
            null_s,
            pa.nulls(n, seg_type),
            null_s,
            null_s,
            null_i,
            null_i,
            null_f,
            null_f,
        ],
        schema=CORE_SCHEMA,
    )
    for k, v in features(rng, n, drift).items():
        events = events.append_column(f"feature:{k}", pa.array(v))
    return events


def build(data_dir: Path, per_minute: int, end: datetime) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    store = DuckDBStore(data_dir)
    store.start()
    try:
        ref, schema = reference(rng, 100_000)
        events = day_events(rng, end - timedelta(days=1), per_minute)
        t0 = time.perf_counter()
        step = 100_000
        for i in range(0, events.num_rows, step):
            store.ingest_events(MODEL, events.slice(i, step), task="classification")
        t1 = time.perf_counter()
        store.put_reference(MODEL, None, ref, schema)
        store.refresh_features()
        t2 = time.perf_counter()
        store.compact()
        t_c = time.perf_counter()
        # The day from the minute tier alone (before the roll-up): what a query pays for the
        # hour or so that is not rolled up yet, here for the whole day.
        start = end - timedelta(days=1)
        minute_tier = time_calls(
            lambda: drift_report(store, MODEL, start, end, multivariate=False), 10
        )
        t_r = time.perf_counter()
        store.rollup()
        t3 = time.perf_counter()
    finally:
        store.close()
    return {
        "events": events.num_rows,
        "reference_rows": ref.num_rows,
        "ingest_s": round(t1 - t0, 1),
        "feature_binning_s": round(t2 - t1, 1),
        "feature_binning_events_per_s": round(events.num_rows / (t2 - t1)),
        "compact_rollup_s": round((t_c - t2) + (t3 - t_r), 1),
        "in_process_minute_tier_drift": summary_ms(minute_tier),
        "file_mb": round((data_dir / DB_FILE).stat().st_size / 1e6, 1),
    }


def raw_sql_drift(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> int:
    """The bare anchor: deciles of the reference, then one scan of the day's events counting
    every numeric feature below each decile (conditional counts), one GROUP BY per
    categorical feature, and PSI in numpy."""
    ref_table = con.execute(
        "SELECT table_name FROM reference_sets ORDER BY uploaded_at DESC LIMIT 1"
    ).fetchall()[0][0]
    num = [f"f{i:02d}" for i in range(NUMERIC)]
    deciles = "[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9]"
    qs = ", ".join(f'quantile_disc("feature:{c}", {deciles})' for c in num)
    edges = con.execute(f"SELECT {qs} FROM {ref_table}").fetchall()[0]
    below = ", ".join(
        f'count(*) FILTER (WHERE "feature:{c}" < {float(e)!r})'
        for c, es in zip(num, edges, strict=True)
        for e in es
    )
    where = "WHERE ts >= $s AND ts < $e"
    params = {"s": start.replace(tzinfo=None), "e": end.replace(tzinfo=None)}

    def numeric_hists(table: str, w: str, p: dict[str, Any]) -> np.ndarray:
        row = con.execute(f"SELECT count(*), {below} FROM {table} {w}", p or None).fetchall()[0]
        total, cum = row[0], np.array(row[1:], float).reshape(NUMERIC, 9)
        return np.diff(np.c_[np.zeros(NUMERIC), cum, np.full(NUMERIC, total)], axis=1)

    ref_num, cur_num = numeric_hists(ref_table, "", {}), numeric_hists("ev_1", where, params)
    pairs = [(ref_num[i], cur_num[i]) for i in range(NUMERIC)]
    for j in range(CATEGORICAL):
        c = f'"feature:cat{j}"'
        r = dict(con.execute(f"SELECT {c}, count(*) FROM {ref_table} GROUP BY 1").fetchall())
        q = dict(
            con.execute(f"SELECT {c}, count(*) FROM ev_1 {where} GROUP BY 1", params).fetchall()
        )
        keys = sorted(set(r) | set(q), key=str)
        pairs.append(
            (
                np.array([r.get(k, 0) for k in keys], float),
                np.array([q.get(k, 0) for k in keys], float),
            )
        )
    drifted = 0
    for p1, p2 in pairs:
        p1 = np.maximum(p1 / p1.sum(), 1e-4)
        p2 = np.maximum(p2 / p2.sum(), 1e-4)
        drifted += int(np.sum((p2 - p1) * np.log(p2 / p1)) >= 0.25)
    return drifted


def time_calls(fn: Any, reps: int, warmups: int = 2) -> list[float]:
    for _ in range(warmups):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-minute", type=int, default=300)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    start = end - timedelta(days=1)
    result: dict[str, Any] = {
        "benchmark": "drift_online",
        "features": NUMERIC + CATEGORICAL,
        "per_minute": args.per_minute,
        "target_p95_ms": 200,
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(prefix="wk-bench-drift-") as tmp:
        d = Path(tmp)
        result["data"] = build(d, args.per_minute, end)

        con = duckdb.connect(str(d / DB_FILE), read_only=True)
        raw = time_calls(lambda: raw_sql_drift(con, start, end), max(5, args.reps // 3), 1)
        result["raw_sql"] = summary_ms(raw)
        result["raw_sql"]["drifted"] = raw_sql_drift(con, start, end)
        con.close()

        key = KeyStore(d).create("read")
        handle = ServerHandle(ServerConfig(data_dir=d, port=free_port()))
        handle.start()
        try:
            with httpx.Client(
                base_url=handle.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ) as c:
                params = {"start": start.isoformat(), "end": end.isoformat()}

                def drift(mv: bool) -> dict[str, Any]:
                    r = c.get(
                        f"/api/v1/models/{MODEL}/drift",
                        params={**params, "multivariate": str(mv).lower()},
                    )
                    r.raise_for_status()
                    return r.json()  # type: ignore[no-any-return]

                def timeline() -> dict[str, Any]:
                    r = c.get(
                        f"/api/v1/models/{MODEL}/drift/timeline", params={**params, "window": "1h"}
                    )
                    r.raise_for_status()
                    return r.json()  # type: ignore[no-any-return]

                result["drift"] = summary_ms(time_calls(lambda: drift(False), args.reps))
                result["drift"]["summary"] = drift(False)["summary"]
                result["timeline_1h"] = summary_ms(time_calls(timeline, args.reps))
                result["drift_multivariate"] = summary_ms(
                    time_calls(lambda: drift(True), max(5, args.reps // 3))
                )
        finally:
            handle.stop()
    result["ratio_drift_p95_to_raw_sql_p95"] = round(
        result["drift"]["p95_ms"] / result["raw_sql"]["p95_ms"], 3
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
