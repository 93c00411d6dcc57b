"""Micro-benchmark: cost of ``Monitor.log()`` in the caller's thread.

Compared, in the same run, with ``logging.getLogger(...).info()`` going to a NullHandler
(the cheapest "real" logging call an application already makes on its hot path). The
worker thread runs during the measurement (batching, encoding), as in production; its
transport discards batches so the network is not measured. A tight loop logs far faster
than the worker can encode (~10 µs per record), so the worker competes for the GIL and
the tail (p99.9) shows Python's 5 ms GIL switch interval; p50/p99 are the caller's cost.
Each call is timed with ``time.perf_counter_ns`` (timer overhead included in both columns).
``serving_version()`` (a cache read) is compared with a plain ``dict.get`` in the same run.
Prints one JSON object.

    python bench/bench_sdk_log.py [--n 200000]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import time
from collections.abc import Callable

import watchkeeper
from watchkeeper import SendResult


class DiscardTransport:
    """Accepts every batch without sending it anywhere."""

    def send(self, path: str, body: bytes) -> SendResult:
        return SendResult(200)

    def close(self) -> None:
        pass


def measure(call: Callable[[int], object], n: int) -> dict[str, float]:
    """Per-call latency percentiles in microseconds (after a warm-up of n // 10 calls)."""
    for i in range(n // 10):
        call(i)
    timings = []
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        call(i)
        timings.append(clock() - start)
    timings.sort()
    return {
        "p50_us": timings[n // 2] / 1000,
        "p99_us": timings[int(n * 0.99)] / 1000,
        "p999_us": timings[int(n * 0.999)] / 1000,
        "mean_us": statistics.fmean(timings) / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()

    logger = logging.getLogger("bench.null")
    logger.addHandler(logging.NullHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False

    monitor = watchkeeper.Monitor(
        "bench", version="1", transport=DiscardTransport(), spool_dir=False, max_queue=10**7
    )
    features = {f"f{j}": float(j) for j in range(10)}
    segments = {"region": "eu"}

    results: dict[str, object] = {"n": args.n, "python": platform.python_version()}
    results["logging_info_nullhandler"] = measure(lambda i: logger.info("prediction %s", i), args.n)
    results["log_minimal"] = measure(lambda i: monitor.log(prediction=i), args.n)
    monitor.flush(timeout=60)  # each phase starts with an empty queue
    results["log_10_features"] = measure(
        lambda i: monitor.log(features=features, prediction=1, score=0.91,
                              latency_ms=12.4, segments=segments), args.n)  # fmt: skip
    delivered = monitor.flush(timeout=60)
    monitor.close()
    results["delivered"] = delivered
    results["stats"] = monitor.stats()

    # serving_version() on the request path: a cache read while its refresher thread polls
    # (here a port nothing listens on, so it keeps retrying with back-off: the worst case).
    serving = watchkeeper.Monitor(
        "bench", version="1", url="http://127.0.0.1:9", spool_dir=False, serving_interval=0.5
    )
    cache = {"version": "2.3.0"}
    results["dict_get"] = measure(lambda i: cache.get("version"), args.n)
    results["serving_version"] = measure(lambda i: serving.serving_version("2.3.0"), args.n)
    serving.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
