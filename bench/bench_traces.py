"""Trace list and trace view reads on a large ``spans`` table, against one pass over the range.

A DuckDB store is filled with ``--spans`` spans (traces of three spans: root, retrieval,
LLM call; 400-byte attributes) spread evenly over the last six days, then each read is
timed (median of ``--repeat`` runs, after one warm-up):

* ``DuckDBStore.list_traces`` as the API runs it: the range read from its end in growing
  steps (15 min, 1 h, 4 h, ...) until a page is full;
* the baseline: the same query in one pass over the whole range (``FIRST_STEP`` set to a
  year), i.e. what the store did before the steps;
* ``get_trace`` (the trace view) of a trace in the middle of the six days.

Prints one JSON object; measurements only, nothing is asserted.

    python bench/bench_traces.py [--spans 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from watchkeeper.otlp.decode import Span
from watchkeeper.otlp.spans import spans_table
from watchkeeper.store import duckdb_traces
from watchkeeper.store.duckdb_store import DuckDBStore

DAYS = 6


def fill(store: DuckDBStore, n: int, now: datetime) -> None:
    base_ns = int((now - timedelta(days=DAYS)).timestamp()) * 10**9
    gap_ns = int(DAYS * 86400e9 / n)
    per = 6000
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
             "note": "x" * 400}  # fmt: skip
    for b in range(0, n, per):
        spans = []
        for k in range(b, min(n, b + per)):
            trace, role = divmod(k, 3)
            t0 = base_ns + trace * 3 * gap_ns
            start = t0 + role * 50_000_000
            spans.append(
                Span(
                    trace_id=f"{trace:032x}",
                    span_id=f"{k:016x}",
                    parent_span_id=None if role == 0 else f"{trace * 3:016x}",
                    name=("POST /chat", "retrieve", "chat gpt-4o-mini")[role],
                    kind="server" if role == 0 else "client",
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + (900 if role == 0 else 300 + trace % 700) * 10**6,
                    status_code="error" if trace % 997 == 0 else "ok",
                    status_message="",
                    resource={"service.name": "support-bot" if trace % 4 else "search-bot"},
                    attributes=attrs,
                )
            )
        store.ingest_spans(spans_table(spans, {}, now))


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    week = {"start": now - timedelta(days=7), "end": now}
    day = {"start": now - timedelta(days=1), "end": now}
    reads: dict[str, dict[str, Any]] = {
        "last 24 h, first page": {**day, "limit": 50},
        "last 7 d, first page": {**week, "limit": 50},
        "last 7 d, search-bot, latency >= 1000 ms": {
            **week,
            "limit": 50,
            "model": "search-bot",
            "min_latency_ms": 1000,
        },
        "last 7 d, status error (rare)": {**week, "limit": 50, "status": "error"},
        "last 7 d, conversation c-none (no match)": {**week, "limit": 50, "conversation_id": "x"},
    }
    result: dict[str, Any] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "spans": args.spans,
        "repeat": args.repeat,
        "reads": {},
    }
    with tempfile.TemporaryDirectory(prefix="wk-bench-traces-") as d:
        store = DuckDBStore(Path(d))
        store.start()
        try:
            t0 = time.perf_counter()
            fill(store, args.spans, now)
            result["fill_s"] = round(time.perf_counter() - t0, 1)
            for name, kw in reads.items():
                stepped_ms, got = timed(lambda kw=kw: store.list_traces(**kw), args.repeat)
                step = duckdb_traces.FIRST_STEP
                duckdb_traces.FIRST_STEP = timedelta(days=365)
                try:
                    one_ms, base = timed(lambda kw=kw: store.list_traces(**kw), args.repeat)
                finally:
                    duckdb_traces.FIRST_STEP = step
                same = [t["trace_id"] for t in got] == [t["trace_id"] for t in base]
                result["reads"][name] = {
                    "traces": len(got),
                    "stepped_ms": round(stepped_ms, 1),
                    "one_pass_ms": round(one_ms, 1),
                    "ratio": round(stepped_ms / one_ms, 3),
                    "same_answer": same,
                }
            middle = f"{args.spans // 3 // 2:032x}"
            view_ms, trace = timed(lambda: store.get_trace(middle), args.repeat)
            result["get_trace_ms"] = round(view_ms, 1)
            result["get_trace_spans"] = len(trace["spans"]) if trace else 0
        finally:
            store.close()
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
