"""OTLP ingestion of GenAI spans over HTTP: spans/s, against the foundation's event ingestion.

The real server runs as a subprocess (``watchkeeper.server.serve``) on a temporary data
directory and a free loopback port, a fresh one per phase. Request bodies are built *before*
timing from the demo's RAG chat app (``watchkeeper.llm_sim``, no tool calls): each OTLP
request holds ``--traces`` traces of root ``POST /chat`` -> retrieval (OpenInference, three
documents) -> LLM chat span (GenAI attributes, input/output messages, system instructions),
i.e. 498 spans and 166 LLM calls per request with the default 166 traces; protobuf,
uncompressed (the OpenTelemetry Python exporter's default).

Phases, same number of requests and client threads (httpx, keep-alive):

* ``otlp``: ``POST /v1/traces``, one protobuf export per request;
* ``otlp_evaluators_off``: the same with ``evaluators.sample: 0`` (the evaluator runner,
  which runs behind ingestion in the same process, then evaluates nothing) — how much the
  evaluators slow ingestion (the first phase starts once the runner has made its first pass,
  which loads any optional model; ``--runner``: its own speed, in-process, with
  ``embeddings: off`` and ``on``);
* ``otlp_no_workers``: the first phase with ``otlp_workers=0`` (``--otlp-workers 0``): every
  export decoded in its request's thread, not in the server's OTLP worker processes;
* ``events`` (the baseline): ``POST /api/v1/models/{m}/predictions`` with the *same* LLM
  calls as JSON events (what the server's own OTLP mapping makes of the spans: prompt,
  response, context, tokens, cost, segments), one request per OTLP request.

Reported: spans/s and LLM calls/s as acknowledged by the server (first send to last reply),
the ratio of OTLP LLM calls/s to the events route's events/s, request latency, and the time
until the calls are visible (``GET /api/v1/models/{m}``); after the server stops, the stored
events and spans are counted in its DuckDB file. ``--profile`` adds an in-process,
single-threaded breakdown of the handler path (decode, mapping, span table, stores) and a
cProfile of it (top functions on stderr).

Prints one JSON object. Measurements only; nothing is asserted.

    python bench/bench_otlp_ingest.py [--quick] [--requests 300] [--threads 4] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import threading
import time
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ServerProcess, machine, summary_ms
from watchkeeper.llm.prices import PriceTable
from watchkeeper.llm_sim import DEFAULT_MIX, ChatTraffic, export_request
from watchkeeper.otlp.decode import PROTOBUF, decode_request
from watchkeeper.otlp.genai import llm_events, price_events
from watchkeeper.store.keys import KeyStore

OTLP_MODEL = "bench-otlp"
EVENTS_MODEL = "bench-events"
MIX = replace(DEFAULT_MIX, tool=0.0)  # exactly three spans per trace


def build(
    n_requests: int, traces: int, seed: int, service: str = OTLP_MODEL
) -> tuple[list[bytes], list[bytes], int, int]:
    """(OTLP bodies, events bodies, spans, LLM calls); every id unique, all in the past hour."""
    total = n_requests * traces
    traffic = ChatTraffic(seed, MIX, service=service)
    calls = traffic.calls(time.time() - 3600, total, total / 3000)  # ends ~10 min ago
    prices = PriceTable.load()
    otlp: list[bytes] = []
    events: list[bytes] = []
    spans = 0
    for i in range(n_requests):
        body = export_request(calls[i * traces : (i + 1) * traces], service).SerializeToString()
        otlp.append(body)
        decoded = decode_request(body, PROTOBUF)
        spans += len(decoded)
        grouped, _ = llm_events(decoded)
        rows = grouped[service]
        price_events(rows, prices)
        events.append(orjson.dumps({"events": rows}))
    return otlp, events, spans, total


def post_all(url: str, path: str, key: str, content_type: str, bodies: list[bytes],
             threads: int) -> dict[str, Any]:  # fmt: skip
    lock = threading.Lock()
    nxt = [0]
    latencies: list[float] = []
    errors: list[str] = []
    hdrs = {"Content-Type": content_type, "Authorization": f"Bearer {key}"}

    def client() -> None:
        with httpx.Client(base_url=url, headers=hdrs, timeout=300) as c:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(bodies):
                    return
                for _attempt in range(20):
                    t0 = time.perf_counter()
                    r = c.post(path, content=bodies[i])
                    dt = time.perf_counter() - t0
                    if r.status_code != 503:
                        break
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                with lock:
                    if r.status_code == 200:
                        latencies.append(dt)
                    else:
                        errors.append(f"{r.status_code} {r.text[:200]}")

    start = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    return {"seconds": round(elapsed, 3), "latency": summary_ms(latencies) if latencies else None,
            "errors": len(errors), "first_errors": errors[:3]}  # fmt: skip


def event_count(url: str, key: str, model: str) -> int:
    r = httpx.get(f"{url}/api/v1/models/{model}", headers={"Authorization": f"Bearer {key}"})
    return int(r.json().get("event_count", 0)) if r.status_code == 200 else 0


def stored_rows(data_dir: Path) -> dict[str, int | None]:
    """Rows of the spans table (None: no such table), read from the stopped server's file."""
    con = duckdb.connect(str(data_dir / "watchkeeper.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        spans = (
            int(con.execute("SELECT count(*) FROM spans").fetchall()[0][0])
            if "spans" in tables
            else None
        )
        return {"spans_table_rows": spans}
    finally:
        con.close()


NO_EVALUATORS = "evaluators:\n  sample: 0.0\n"


def evaluated(url: str, key: str, model: str) -> int:
    """The model's ``evaluated_count`` over the last two hours (0 without the metric)."""
    now = time.time()
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    params = {"names": "evaluated_count", "window": "all",
              "start": time.strftime(stamp, time.gmtime(now - 7200)),
              "end": time.strftime(stamp, time.gmtime(now + 60))}  # fmt: skip
    r = httpx.get(f"{url}/api/v1/models/{model}/metrics", params=params, timeout=60,
                  headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    if r.status_code != 200:
        return 0
    values = r.json()["metrics"].get("evaluated_count") or [0]
    return int(values[0] or 0)


def run_phase(kind: str, bodies: list[bytes], threads: int, expected_calls: int,
              warm: bytes, settings: str | None = None,
              wait: float = 0.0, otlp_workers: int | None = None) -> dict[str, Any]:  # fmt: skip
    model = OTLP_MODEL if kind == "otlp" else EVENTS_MODEL
    path = "/v1/traces" if kind == "otlp" else f"/api/v1/models/{model}/predictions"
    ctype = PROTOBUF if kind == "otlp" else "application/json"
    with tempfile.TemporaryDirectory(prefix="wk-bench-otlp-") as d:
        keys = KeyStore(Path(d))
        ingest, read = keys.create("ingest"), keys.create("read")
        server = ServerProcess(Path(d), settings=settings, otlp_workers=otlp_workers).start()
        try:
            # warm-up on another model (first request creates tables), not timed
            warm_path = "/v1/traces" if kind == "otlp" else "/api/v1/models/warm/predictions"
            httpx.post(server.url + warm_path, content=warm, timeout=120,
                       headers={"Content-Type": ctype, "Authorization": f"Bearer {ingest}"},
                       ).raise_for_status()  # fmt: skip
            ready = None
            if kind == "otlp" and settings is None and wait:
                # the runner's first pass loads its optional models (embeddings): one-off,
                # not part of steady ingestion; wait until it has evaluated the warm-up
                t0 = time.perf_counter()
                while evaluated(server.url, read, "warm") == 0 and time.perf_counter() - t0 < wait:
                    time.sleep(0.5)
                ready = round(time.perf_counter() - t0, 1)
            result = post_all(server.url, path, ingest, ctype, bodies, threads)
            if ready is not None:
                result["evaluator_runner_ready_after_s"] = ready
            t_end = time.perf_counter()
            while event_count(server.url, read, model) < expected_calls:
                if time.perf_counter() - t_end > 300:
                    break
                time.sleep(0.1)
            result["visible_after_s"] = round(time.perf_counter() - t_end, 2)
            result["stored_calls"] = event_count(server.url, read, model)
            if ready is not None:  # the runner, paced behind ingestion, evaluated meanwhile
                result["evaluated_during_ingestion"] = evaluated(server.url, read, model)
        finally:
            server.stop()
        result.update(stored_rows(Path(d)))
    return result


def profile_handler(bodies: list[bytes]) -> dict[str, Any]:
    """In-process, single thread: where one export's time goes on the server's path."""
    from watchkeeper.api import otlp as api_otlp
    from watchkeeper.store.duckdb_store import DuckDBStore

    prices = PriceTable.load()
    out: dict[str, Any] = {"requests": len(bodies)}
    stages = {"decode": 0.0, "llm_events+price": 0.0, "spans_table": 0.0,
              "store.ingest_spans": 0.0, "store_events (events_from_rows+ingest)": 0.0}  # fmt: skip
    from watchkeeper.otlp.prepare import Chunk
    from watchkeeper.otlp.spans import spans_table
    from watchkeeper.schema.batch import receipt_time
    from watchkeeper.schema.events import events_from_rows

    def store_events(store: DuckDBStore, grouped: dict[str, list[dict[str, Any]]]) -> None:
        now = receipt_time(None)
        chunks = [Chunk(model, events_from_rows(events, now)) for model, events in grouped.items()]
        api_otlp.store_chunks(store, chunks, now)

    with tempfile.TemporaryDirectory(prefix="wk-bench-otlp-") as d:
        store = DuckDBStore(Path(d))
        store.start()
        try:
            warm = decode_request(bodies[0], PROTOBUF)
            store_events(store, llm_events(warm)[0])
            for body in bodies[1:]:
                t0 = time.perf_counter()
                spans = decode_request(body, PROTOBUF)
                t1 = time.perf_counter()
                grouped, _ = llm_events(spans)
                for evs in grouped.values():
                    price_events(evs, prices)
                t2 = time.perf_counter()
                stages["decode"] += t1 - t0
                stages["llm_events+price"] += t2 - t1
                by_span = {e["event_id"]: e for evs in grouped.values() for e in evs}
                table = spans_table(spans, by_span, receipt_time(None))
                t3 = time.perf_counter()
                store.ingest_spans(table)
                t4 = time.perf_counter()
                stages["spans_table"] += t3 - t2
                stages["store.ingest_spans"] += t4 - t3
                store_events(store, grouped)
                stages["store_events (events_from_rows+ingest)"] += time.perf_counter() - t4
            n = len(bodies) - 1
            n_spans = n * len(warm)
            total = sum(stages.values())
            out["ms_per_request"] = {k: round(v / n * 1000, 2) for k, v in stages.items()}
            out["share"] = {k: round(v / total, 3) for k, v in stages.items()}
            out["single_thread_spans_per_s"] = round(n_spans / total)
            out["store_ingest_events_per_s_by_batch"] = store_batches(bodies)
            prof = cProfile.Profile()
            prof.enable()
            for body in bodies[1 : min(len(bodies), 11)]:
                api_otlp.ingest_export(store, body, PROTOBUF, None, prices)
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
            print(buf.getvalue(), file=sys.stderr)
        finally:
            store.close()
    return out


def store_batches(bodies: list[bytes]) -> dict[str, int]:
    """``DuckDBStore.ingest_events`` alone (no HTTP, no decode), the same LLM events written
    one request's worth per write and ten requests' worth per write: the store's fixed cost
    per write."""
    from watchkeeper.schema.batch import receipt_time
    from watchkeeper.schema.events import events_from_rows
    from watchkeeper.store.duckdb_store import DuckDBStore

    rows = [r for b in bodies for r in llm_events(decode_request(b, PROTOBUF))[0].values()]
    out: dict[str, int] = {}
    usable = (len(rows) - 1) // 10 * 10
    for per in (1, 10):
        with tempfile.TemporaryDirectory(prefix="wk-bench-otlp-") as d:
            store = DuckDBStore(Path(d))
            store.start()
            try:
                store.ingest_events("m", events_from_rows(rows[0], receipt_time(None)), task="llm")
                tables = [
                    events_from_rows(
                        [e for r in rows[1 + i : 1 + i + per] for e in r], receipt_time(None)
                    )
                    for i in range(0, usable, per)
                ]
                t0 = time.perf_counter()
                for table in tables:
                    store.ingest_events("m", table, task="llm")
                seconds = time.perf_counter() - t0
            finally:
                store.close()
        out[f"{per * len(rows[0])}_events_per_write"] = round(
            sum(map(len, rows[1 : 1 + usable])) / seconds
        )
    return out


def runner_throughput(bodies: list[bytes], embeddings: str) -> dict[str, Any]:
    """In-process: the evaluator runner's own speed (one unpaced pass, budget not limiting)
    over the LLM calls of ``bodies[1:]`` stored with their spans, embeddings ``off``/``on``
    (a first pass over ``bodies[0]`` loads the optional models, timed apart)."""
    from datetime import datetime, timedelta, timezone

    from watchkeeper.api import otlp as api_otlp
    from watchkeeper.evaluators.runner import EvaluatorRunner
    from watchkeeper.evaluators.settings import EvaluatorSettings
    from watchkeeper.store.duckdb_store import DuckDBStore

    settings = replace(EvaluatorSettings(), embeddings=embeddings, max_per_minute=10**9)
    with tempfile.TemporaryDirectory(prefix="wk-bench-otlp-") as d:
        store = DuckDBStore(Path(d))
        store.start()
        try:

            def put(body: bytes) -> None:
                api_otlp.ingest_export(store, body, PROTOBUF, None, None)

            runner = EvaluatorRunner(store, settings)
            later = datetime.now(timezone.utc) + timedelta(minutes=10)
            put(bodies[0])  # the first pass loads the optional models (embeddings): not timed
            t0 = time.perf_counter()
            runner.run_once(later)
            loaded = time.perf_counter() - t0
            first = runner.stats()["calls_evaluated"]
            for body in bodies[1:]:
                put(body)
            t0 = time.perf_counter()
            written = runner.run_once(later)
            seconds = time.perf_counter() - t0
            stats = runner.stats()
        finally:
            store.close()
    calls = int(stats["calls_evaluated"] - first)
    return {"embeddings": embeddings, "calls_evaluated": calls, "evaluations": written,
            "seconds": round(seconds, 2), "calls_per_s": round(calls / seconds, 1),
            "first_pass_s": round(loaded, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 requests")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--traces", type=int, default=166, help="traces per OTLP request")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="in-process stage breakdown")
    parser.add_argument(
        "--runner-wait",
        type=float,
        default=120.0,
        help="seconds at most to wait for the evaluator runner's first pass before timing",
    )
    parser.add_argument(
        "--runner",
        type=int,
        default=6,
        metavar="N",
        help="evaluator runner throughput in-process over N requests' calls (0: skip)",
    )
    parser.add_argument(
        "--old-build",
        action="store_true",
        help="for a build without the evaluator runner: one OTLP phase, no settings file",
    )
    parser.add_argument(
        "--no-evaluators",
        action="store_true",
        help="serve with evaluators.sample: 0 (the evaluator runner then evaluates nothing)",
    )
    args = parser.parse_args()
    n = 60 if args.quick else args.requests

    t0 = time.perf_counter()
    otlp, events, spans, calls = build(n, args.traces, args.seed)
    warm = build(1, args.traces, args.seed + 1, service="warm")
    build_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "machine": {**machine(), "opentelemetry-proto": version("opentelemetry-proto"),
                    "protobuf": version("protobuf")},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": {"requests": n, "traces_per_request": args.traces,
                   "spans_per_request": spans // n, "threads": args.threads,
                   "otlp_body_kib_mean": round(sum(map(len, otlp)) / n / 1024, 1),
                   "events_body_kib_mean": round(sum(map(len, events)) / n / 1024, 1),
                   "build_s": round(build_s, 1), "evaluators": not args.no_evaluators},
    }  # fmt: skip
    settings = NO_EVALUATORS if args.no_evaluators else None
    if args.old_build:  # no evaluator runner, no evaluators: section to give it
        args.no_evaluators, args.runner, args.runner_wait, settings = True, 0, 0.0, None
    o = run_phase("otlp", otlp, args.threads, calls, warm[0][0], settings, args.runner_wait)
    o["spans_per_s"] = round(spans / o["seconds"])
    o["llm_calls_per_s"] = round(calls / o["seconds"])
    result["otlp"] = o
    if not args.no_evaluators:  # the same, the evaluator runner idle (evaluators.sample: 0)
        q = run_phase("otlp", otlp, args.threads, calls, warm[0][0], NO_EVALUATORS)
        q["spans_per_s"] = round(spans / q["seconds"])
        q["llm_calls_per_s"] = round(calls / q["seconds"])
        result["otlp_evaluators_off"] = q
    if not args.old_build:  # the same, decoded in the request threads (--otlp-workers 0)
        w = run_phase("otlp", otlp, args.threads, calls, warm[0][0], settings,
                      args.runner_wait, otlp_workers=0)  # fmt: skip
        w["spans_per_s"] = round(spans / w["seconds"])
        w["llm_calls_per_s"] = round(calls / w["seconds"])
        result["otlp_no_workers"] = w
    e = run_phase("events", events, args.threads, calls, warm[1][0], settings)
    e["events_per_s"] = round(calls / e["seconds"])
    result["events_route"] = e
    result["ratio_otlp_calls_to_events"] = round(o["llm_calls_per_s"] / e["events_per_s"], 3)
    result["ratio_otlp_spans_to_events"] = round(o["spans_per_s"] / e["events_per_s"], 3)
    result["target_spans_per_s"] = 20_000
    result["target_met"] = o["spans_per_s"] >= 20_000
    if args.runner:
        result["evaluator_runner"] = [runner_throughput(otlp[: args.runner], "off")]
        try:  # the embedding groundedness scorer, where the extra is installed
            result["evaluator_runner"].append(runner_throughput(otlp[: args.runner], "on"))
        except Exception as exc:
            result["evaluator_runner"].append({"embeddings": "on", "error": str(exc)[:200]})
    if args.profile:
        result["profile"] = profile_handler(otlp[: min(len(otlp), 31)])
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
