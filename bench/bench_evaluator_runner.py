"""Throughput of the background evaluator runner, and event ingestion with and without it.

1. **Runner throughput**: N stored LLM calls (support-chat answers of ~0.5-1 KB with a ~1 KB
   retrieved context, some PII, refusals and insults) evaluated by one ``run_once`` with the
   four label-free evaluators: calls/s and evaluations/s, reads and writes included.
2. **Ingestion with the runner active**: the same store ingests batches of LLM events while
   the runner thread evaluates a backlog of calls (interval 0.05 s, no delay), against the
   same ingestion with the runner stopped, alternated ``--rounds`` times in one run; the
   ratio (with / without) is the figure to watch. The store is used in-process (no HTTP), so
   the comparison isolates the store's writer and the runner's reads and writes.

Prints one JSON object; ``--markdown`` prints the table for BENCHMARKS.md on stderr.

    python bench/bench_evaluator_runner.py [--calls 20000] [--rounds 3] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import random
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
from watchkeeper.evaluators.runner import EvaluatorRunner
from watchkeeper.evaluators.settings import EvaluatorSettings
from watchkeeper.schema import parse_events
from watchkeeper.store.duckdb_store import DuckDBStore

CONTEXT = (
    "Orders ship within 2 business days from our warehouse in Lyon. Standard delivery takes "
    "3 to 5 days in France and 5 to 8 days elsewhere in the European Union. Returns are free "
    "within 30 days of delivery if the item is unused and in its original packaging. Refunds "
    "are paid to the original payment method within 10 days of receiving the return. Express "
    "delivery costs 9 euros and arrives the next business day when ordered before noon. "
    "Customer service answers by chat from 9 am to 6 pm, Monday to Saturday. "
) * 2
ANSWERS = [
    "Orders ship within 2 business days. Standard delivery takes 3 to 5 days in France.",
    "Returns are free within 30 days if the item is unused. Refunds arrive within 10 days.",
    "Express delivery costs 12 euros and always arrives the same day, even on Sundays.",
    "You can reach me at help.desk@example.com or call +33 6 12 34 56 78 for your refund.",
    "I'm sorry, but I can't help with that request.",
    "Stop asking stupid questions, you idiot.",
]


def _events(n: int, start: int, t0: datetime) -> bytes:
    rng = random.Random(start)
    return orjson.dumps(
        [
            {
                "event_id": f"call-{i}",
                "timestamp": (t0 + timedelta(milliseconds=10 * (i % 500_000))).isoformat(),
                "version": "gpt-4o-mini",
                "prompt": "Hello, when will my order arrive and can I return it? " * 3,
                "response": " ".join(rng.choice(ANSWERS) for _ in range(3)),
                "context": CONTEXT,
                "input_tokens": 300,
                "output_tokens": 120,
                "cost_usd": 0.00012,
                "latency_ms": 800.0,
            }
            for i in range(start, start + n)
        ]
    )


def _ingest(store: DuckDBStore, model: str, batches: list[Any]) -> float:
    t0 = time.perf_counter()
    for batch in batches:
        store.ingest_events(model, batch, task="llm")
    return time.perf_counter() - t0


def run(
    calls: int, rounds: int, batch: int, batches: int, busy_share: float, budget: int
) -> dict[str, Any]:
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    out: dict[str, Any] = {"machine": machine(), "date": datetime.now(timezone.utc).isoformat()}
    unlimited = EvaluatorSettings(
        delay_seconds=0, interval_seconds=0.05, embeddings="off", max_per_minute=10**9
    )
    settings = EvaluatorSettings(
        delay_seconds=0, interval_seconds=0.05, embeddings="off", max_per_minute=budget
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp))
        store.start()
        try:
            for start in range(0, calls, 5000):
                body = _events(min(5000, calls - start), start, t0)
                store.ingest_events("backlog", parse_events(body, "application/json"))
            runner = EvaluatorRunner(store, unlimited)
            t = time.perf_counter()
            written = runner.run_once(datetime.now(timezone.utc) + timedelta(seconds=1))
            elapsed = time.perf_counter() - t
            out["runner"] = {
                "calls": calls,
                "evaluations": written,
                "seconds": round(elapsed, 3),
                "calls_per_s": round(calls / elapsed, 1),
                "evaluations_per_s": round(written / elapsed, 1),
            }
            # ingestion with and without the runner busy on a fresh backlog
            rates: dict[str, list[float]] = {"without": [], "with": []}
            during: list[float] = []
            offset = 10**7
            for r in range(rounds):
                for mode in ("without", "with"):
                    offset += 10**6
                    backlog = _events(calls // 2, offset, t0)
                    store.ingest_events("busy", parse_events(backlog, "application/json"))
                    prepared = [
                        parse_events(
                            _events(batch, offset + 500_000 + b * batch, t0), "application/json"
                        )
                        for b in range(batches)
                    ]
                    runner = EvaluatorRunner(store, settings, busy_share=busy_share)
                    if mode == "with":
                        runner.start()
                    seconds = _ingest(store, f"ingest-{r}-{mode}", prepared)
                    busy = runner.stats()["calls_evaluated"]
                    runner.stop()
                    rates[mode].append(batch * batches / seconds)
                    if mode == "with":
                        during.append(busy / seconds)
            without = statistics.median(rates["without"])
            with_runner = statistics.median(rates["with"])
            out["ingest"] = {
                "batch": batch,
                "batches": batches,
                "events_per_s_without_runner": round(without, 1),
                "events_per_s_with_runner": round(with_runner, 1),
                "ratio_with_over_without": round(with_runner / without, 3),
                "busy_share": busy_share,
                "max_per_minute": budget,
                "runner_calls_per_s_during_ingest": round(statistics.median(during), 1),
                "rounds": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
            }
        finally:
            store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--busy-share", type=float, default=0.25, help="the runner's pacing")
    ap.add_argument("--budget", type=int, default=6000, help="max_per_minute while ingesting")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    result = run(args.calls, args.rounds, args.batch, args.batches, args.busy_share, args.budget)
    print(json.dumps(result, indent=2))
    if args.markdown:
        r, i = result["runner"], result["ingest"]
        print(
            "| measure | value |\n|---|---|\n"
            f"| runner: calls evaluated/s (4 evaluators, {r['calls']} calls) |"
            f" {r['calls_per_s']:,.0f} |\n"
            f"| runner: evaluations written/s | {r['evaluations_per_s']:,.0f} |\n"
            f"| ingestion without the runner (events/s, batches of {i['batch']}) |"
            f" {i['events_per_s_without_runner']:,.0f} |\n"
            f"| ingestion with the runner busy (events/s; busy_share {i['busy_share']},"
            f" max_per_minute {i['max_per_minute']}) |"
            f" {i['events_per_s_with_runner']:,.0f} |\n"
            f"| runner calls evaluated/s meanwhile | {i['runner_calls_per_s_during_ingest']:,.0f} |\n"
            f"| ratio with / without | {i['ratio_with_over_without']} |",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
