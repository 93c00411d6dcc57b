"""Sustained ingest over HTTP: events/s per wire format, against a raw DuckDB Arrow insert.

The real server runs as a subprocess (``watchkeeper.server.serve``) on a temporary data
directory and a free loopback port. Batches of 10,000 events (20 features: 10 numeric,
8 categorical strings, 2 bools; prediction, score, latency_ms, segments region/channel) are
encoded *before* timing, as an Arrow IPC stream (struct columns for features and segments)
and as gzip'd JSON (level 5, as the SDK sends). Two client threads (httpx, keep-alive) post
them for a fixed duration per format; every event id is unique, so the server stores every
row (no duplicate path). The server's RSS (VmRSS) is sampled every 0.5 s.

Baselines in the same run, on the same rows after normalization:

* ``raw_duckdb``: ``INSERT INTO t SELECT * FROM arrow_table`` into a DuckDB file table with
  the same flattened columns, one commit per batch — the floor any DuckDB server pays;
* ``stages`` (single thread, in-process, no HTTP): ``parse_events`` per format and
  ``DuckDBStore.ingest_events`` (insert + duplicate check + per-minute aggregates), to show
  where the server's time goes.

Prints one JSON object. Measurements only; nothing is asserted.

    python bench/bench_ingest.py [--quick] [--duration 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import orjson
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ServerProcess, machine, rss_mb, slope_per_minute
from watchkeeper.schema import parse_events
from watchkeeper.store.duckdb_store import DuckDBStore
from watchkeeper.store.keys import KeyStore

BATCH = 10_000
MODEL = "bench"
ARROW = "application/vnd.apache.arrow.stream"
CATEGORIES = [np.array([f"c{j}_{k}" for k in range(25)]) for j in range(8)]
# Pools are sized for at most this many events/s; past it the clients stop early (reported).
POOL_RATE = {"arrow": 120_000, "json_gzip": 50_000}


def base_table(seed: int) -> pa.Table:
    """One batch of wire-format events (Arrow) without ``event_id`` and ``timestamp``;
    those two are set per request body (see :func:`make_pool`)."""
    rng = np.random.default_rng(seed)
    n = BATCH
    feats: dict[str, pa.Array] = {}
    for j in range(10):
        feats[f"num_{j}"] = pa.array(rng.normal(100 * j, 10 + j, n))
    for j in range(8):
        feats[f"cat_{j}"] = pa.array(CATEGORIES[j][rng.integers(0, 25, n)])
    for j in range(2):
        feats[f"flag_{j}"] = pa.array(rng.random(n) < 0.3)
    score = rng.random(n)
    segments = pa.StructArray.from_arrays(
        [
            pa.array(np.array(["eu", "us", "apac"])[rng.integers(0, 3, n)]),
            pa.array(np.array(["web", "app"])[rng.integers(0, 2, n)]),
        ],
        ["region", "channel"],
    )
    return pa.table(
        {
            "version": pa.array(["v1"] * n),
            "features": pa.StructArray.from_arrays(list(feats.values()), list(feats)),
            "prediction": pa.array((score > 0.5).astype(np.int64)),
            "score": pa.array(score),
            "latency_ms": pa.array(rng.lognormal(3.0, 0.5, n)),
            "segments": segments,
        }
    )


class Pool:
    """Distinct request bodies, each with fresh event ids and its own slice of time.

    Event ids are ``<8 random hex><batch>-<row>`` (random leading characters, like the many
    per-process prefixes of SDK clients, so DuckDB's min/max pruning on event_id does not make
    the duplicate check look cheaper than it is). Body ``i`` holds timestamps spread over one
    second starting at ``t0 + i * step``: traffic arriving in time order, as the SDK sends it
    (batches flushed every second). Everything lies in the past.
    """

    def __init__(self, run: str, count: int, now_us: int, span_s: float) -> None:
        self.run, self.count = run, count
        self.step_us = int(span_s * 1e6 / max(count, 1))
        self.t0_us = now_us - int(span_s * 1e6) - 120_000_000
        self.rng = np.random.default_rng(zlib.crc32(run.encode()))
        self.bases = [base_table(seed) for seed in range(4)]
        self.offsets = [self.rng.integers(0, 1_000_000, BATCH) for _ in range(4)]
        self.rows = np.arange(BATCH)

    def ids_and_ts(self, i: int) -> tuple[list[str], np.ndarray]:
        prefix = f"{int(self.rng.integers(0, 2**32)):08x}{self.run}{i:05d}-"
        ids = [f"{prefix}{r}" for r in range(BATCH)]
        ts = self.t0_us + i * self.step_us + self.offsets[i % 4]
        return ids, ts

    def arrow(self, i: int) -> bytes:
        ids, ts = self.ids_and_ts(i)
        table = self.bases[i % 4]
        table = table.add_column(0, "timestamp", pa.array(ts, pa.timestamp("us", tz="UTC")))
        table = table.add_column(0, "event_id", pa.array(ids, pa.string()))
        return arrow_body(table)

    def json_fragments(self) -> list[list[bytes]]:
        """Per base: each row's JSON object text after its event_id and timestamp."""
        if not hasattr(self, "_frags"):
            self._frags = [
                [orjson.dumps(row)[1:] for row in base.to_pylist()] for base in self.bases
            ]
        return self._frags

    def json_gzip(self, i: int) -> bytes:
        ids, ts = self.ids_and_ts(i)
        frags = self.json_fragments()[i % 4]
        rows = [
            b'{"event_id":"%s","timestamp":%.6f,%s' % (eid.encode(), t / 1e6, frag)
            for eid, t, frag in zip(ids, ts.tolist(), frags, strict=True)
        ]
        text = b'{"events":[' + b",".join(rows) + b"]}"
        return gzip.compress(text, compresslevel=5, mtime=0)


def arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def make_pool(fmt: str, count: int, now_us: int, run: str, span_s: float = 60.0) -> list[bytes]:
    """``count`` distinct request bodies (every event id unique across the run)."""
    pool = Pool(run, count, now_us, span_s)
    encode = pool.arrow if fmt == "arrow" else pool.json_gzip
    return [encode(i) for i in range(count)]


def headers_for(fmt: str) -> dict[str, str]:
    if fmt == "arrow":
        return {"Content-Type": ARROW}
    return {"Content-Type": "application/json", "Content-Encoding": "gzip"}


def sustained(url: str, key: str, fmt: str, bodies: list[bytes], duration: float,
              threads: int, pid: int) -> dict[str, Any]:  # fmt: skip
    """Post ``bodies`` from ``threads`` clients for ``duration`` seconds; sample RSS."""
    lock = threading.Lock()
    nxt = [0]
    accepted = [0]
    duplicates = [0]
    errors: list[str] = []
    latencies: list[float] = []
    done: list[tuple[float, int]] = []  # (seconds since start, events) per answered request
    stop = threading.Event()
    pool_exhausted = threading.Event()
    hdrs = {**headers_for(fmt), "Authorization": f"Bearer {key}"}
    path = f"/api/v1/models/{MODEL}/predictions"

    def client() -> None:
        with httpx.Client(base_url=url, headers=hdrs, timeout=120) as c:
            while not stop.is_set():
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(bodies):
                    pool_exhausted.set()
                    return
                t0 = time.perf_counter()
                r = c.post(path, content=bodies[i])
                dt = time.perf_counter() - t0
                with lock:
                    if r.status_code == 200:
                        body = r.json()
                        accepted[0] += body["accepted"]
                        duplicates[0] += body["duplicates"]
                        latencies.append(dt)
                        done.append((time.perf_counter() - start, body["accepted"]))
                    else:
                        errors.append(f"{r.status_code} {r.text[:200]}")

    rss: list[tuple[float, float]] = []
    start = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    while True:
        now = time.perf_counter() - start
        mb = rss_mb(pid)
        if mb is not None:
            rss.append((now, mb))
        if now >= duration or pool_exhausted.is_set():
            break
        time.sleep(0.5)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start  # in-flight requests finish and are counted
    half = [(t, v) for t, v in rss if t >= rss[-1][0] / 2]
    mid = elapsed / 2
    first_half = sum(n for t, n in done if t < mid) / mid
    second_half = sum(n for t, n in done if t >= mid) / (elapsed - mid)
    latencies.sort()
    return {
        "events_per_s": round(accepted[0] / elapsed),
        "events_per_s_first_half": round(first_half),
        "events_per_s_second_half": round(second_half),
        "accepted": accepted[0],
        "duplicates": duplicates[0],
        "requests": len(latencies),
        "errors": errors[:5],
        "error_count": len(errors),
        "elapsed_s": round(elapsed, 2),
        "pool_exhausted": pool_exhausted.is_set(),
        "request_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
        "body_mb": round(sum(len(b) for b in bodies) / len(bodies) / 1e6, 2),
        "rss_series_mb": [round(v) for _, v in rss[::4]],
        "rss_mb": {
            "start": round(rss[0][1], 1),
            "peak": round(max(v for _, v in rss), 1),
            "end": round(rss[-1][1], 1),
            "second_half_slope_mb_per_min": round(slope_per_minute(half) or 0.0, 1),
            "samples": len(rss),
        },
    }


def stored_count(url: str, key: str) -> int:
    r = httpx.get(f"{url}/api/v1/models/{MODEL}", headers={"Authorization": f"Bearer {key}"})
    r.raise_for_status()
    return int(r.json()["event_count"])


def put_reference(url: str, key: str, now_us: int) -> None:
    """A reference profile for the model (drift): the writer's binner then counts every
    feature of the traffic too, behind ingestion."""
    import io

    import pyarrow.parquet as pq

    table = parse_events(make_pool("arrow", 1, now_us, "r")[0], ARROW)
    feats = [c for c in table.column_names if c.startswith("feature:")]
    ref = table.select(feats).rename_columns([c[len("feature:") :] for c in feats])
    buf = io.BytesIO()
    pq.write_table(ref, buf)
    httpx.put(
        f"{url}/api/v1/models/{MODEL}/reference", content=buf.getvalue(), timeout=120,
        headers={"Content-Type": "application/vnd.apache.parquet", "Authorization": f"Bearer {key}"},
    ).raise_for_status()  # fmt: skip


def binned_count(url: str, key: str) -> int:
    r = httpx.get(
        f"{url}/api/v1/models/{MODEL}/drift",
        params={"multivariate": "false", "start": "2000-01-01T00:00:00Z"},
        headers={"Authorization": f"Bearer {key}"}, timeout=120,
    )  # fmt: skip
    r.raise_for_status()
    return max((f["n_current"] for f in r.json()["features"]), default=0)


def run_http(
    fmt: str, duration: float, threads: int, now_us: int, with_reference: bool = False
) -> dict[str, Any]:
    count = max(4, int(duration * POOL_RATE[fmt] / BATCH) + 1)
    pool = make_pool(fmt, count, now_us, "h", span_s=duration)
    with tempfile.TemporaryDirectory(prefix="wk-bench-") as d:
        keys = KeyStore(Path(d))
        ingest, read = keys.create("ingest"), keys.create("read")
        server = ServerProcess(Path(d)).start()
        try:
            # warm-up (creates the model and its feature columns), not timed, ids not reused
            warm = make_pool(fmt, 2, now_us, "w")
            for body in warm:
                httpx.post(
                    f"{server.url}/api/v1/models/{MODEL}/predictions", content=body,
                    headers={**headers_for(fmt), "Authorization": f"Bearer {ingest}"}, timeout=120,
                ).raise_for_status()  # fmt: skip
            if with_reference:
                put_reference(server.url, ingest, now_us)
            result = sustained(server.url, ingest, fmt, pool, duration, threads, server.pid)
            t_end = time.perf_counter()
            time.sleep(1.5)  # let the writer finish its aggregate pass before counting
            result["stored_events"] = stored_count(server.url, read) - 2 * BATCH
            if with_reference:  # how long the binner needs to catch up after the load stops
                total = result["stored_events"] + 2 * BATCH
                while binned_count(server.url, read) < total and time.perf_counter() - t_end < 300:
                    time.sleep(0.5)
                result["binning_caught_up_after_s"] = round(time.perf_counter() - t_end, 1)
        finally:
            server.stop()
    return result


def run_stages(now_us: int, n_batches: int) -> dict[str, Any]:
    """Single-threaded, in-process: parse per format, store insert, raw DuckDB insert."""
    arrow = make_pool("arrow", n_batches, now_us, "s")
    js = make_pool("json_gzip", n_batches, now_us, "s")
    out: dict[str, Any] = {"batches": n_batches, "batch_events": BATCH}

    def rate(seconds: float) -> int:
        return round(n_batches * BATCH / seconds)

    t0 = time.perf_counter()
    tables = [parse_events(b, ARROW) for b in arrow]
    out["parse_arrow_events_per_s"] = rate(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for b in js:
        parse_events(b, "application/json", "gzip")
    out["parse_json_gzip_events_per_s"] = rate(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory(prefix="wk-bench-") as d:
        store = DuckDBStore(Path(d))
        store.start()
        try:
            store.ingest_events(MODEL, parse_events(make_pool("arrow", 1, now_us, "z")[0], ARROW))
            t0 = time.perf_counter()
            for t in tables:
                store.ingest_events(MODEL, t)
            out["store_ingest_events_per_s"] = rate(time.perf_counter() - t0)
            # Drift: with a reference profile, the writer also bins every feature of these
            # events into per-minute counts (behind ingestion, on the same thread).
            feats = [c for c in tables[0].column_names if c.startswith("feature:")]
            ref = pa.concat_tables(tables[:3]).select(feats)
            schema = {
                c[len("feature:") :]: "number"
                if pa.types.is_floating(ref.schema.field(c).type)
                else "bool"
                if pa.types.is_boolean(ref.schema.field(c).type)
                else "string"
                for c in feats
            }
            store.put_reference(MODEL, None, ref, schema)
            t0 = time.perf_counter()
            store.refresh_features()
            out["feature_binning_events_per_s"] = round(
                (n_batches * BATCH + BATCH) / (time.perf_counter() - t0)
            )
            out["feature_binning_features"] = len(feats)
        finally:
            store.close()

    with tempfile.TemporaryDirectory(prefix="wk-bench-") as d:
        con = duckdb.connect(str(Path(d) / "raw.duckdb"))
        con.execute("SET TimeZone = 'UTC'")
        first = tables[0]
        con.execute("CREATE TABLE t AS SELECT * FROM first LIMIT 0")
        t0 = time.perf_counter()
        for arrow_table in tables:  # noqa: B007 - DuckDB reads the local variable by name
            con.execute("INSERT INTO t SELECT * FROM arrow_table")
        out["raw_duckdb_events_per_s"] = rate(time.perf_counter() - t0)
        out["raw_duckdb_rows"] = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
        out["flattened_columns"] = len(first.column_names)
        con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s per format instead of 20 s")
    parser.add_argument("--duration", type=float, help="seconds per format")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--formats", default="arrow,json_gzip")
    parser.add_argument(
        "--with-reference",
        action="store_true",
        help="upload a reference first, so drift binning runs behind ingestion",
    )
    args = parser.parse_args()
    duration = args.duration or (5.0 if args.quick else 20.0)
    now_us = int(time.time() * 1e6)

    result: dict[str, Any] = {
        "benchmark": "ingest",
        "duration_s_per_format": duration,
        "client_threads": args.threads,
        "batch_events": BATCH,
        "features": "10 numeric, 8 categorical, 2 bool; segments region/channel",
        "target_events_per_s": 100_000,
        "with_reference": args.with_reference,
        "machine": machine(),
    }
    stages = run_stages(now_us, 10 if args.quick else 30)
    result["stages_single_thread"] = stages
    raw = stages["raw_duckdb_events_per_s"]
    result["http"] = {}
    for fmt in args.formats.split(","):
        r = run_http(fmt, duration, args.threads, now_us, args.with_reference)
        r["ratio_to_raw_duckdb"] = round(r["events_per_s"] / raw, 3)
        result["http"][fmt] = r
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
