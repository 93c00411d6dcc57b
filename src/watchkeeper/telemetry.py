"""The server's own counters: tiny, thread-safe, and owned by the part that counts.

No registry and nothing global: each component (the store's writer, the notifier) holds its
own :class:`Counter` or :class:`Histogram` and the Prometheus endpoint
(:mod:`watchkeeper.api.prometheus`) reads them at scrape time. This module imports nothing
but the standard library, so the store does not depend on ``prometheus_client``.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass

Labels = tuple[str, ...]

# Commit latency of the store's writer (seconds): group commits take ~1 ms to ~1 s.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Counter:
    """A monotonically increasing count per label tuple (labels chosen by the owner, always
    from a small closed set: a kind, an error code, a channel name)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Labels, float] = {}

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def snapshot(self) -> dict[Labels, float]:
        with self._lock:
            return dict(self._values)


@dataclass(frozen=True)
class HistogramSnapshot:
    buckets: list[tuple[float, float]]  # (upper bound, cumulative count); +Inf not included
    count: float
    total: float


class Histogram:
    """Observations in fixed buckets, with their count and sum (Prometheus histogram)."""

    def __init__(self, buckets: Sequence[float] = COMMIT_BUCKETS) -> None:
        self.bounds = sorted(buckets)
        self._lock = threading.Lock()
        self._counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self._sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.bounds, value)
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, n in zip(self.bounds, counts, strict=False):
            running += n
            cumulative.append((bound, float(running)))
        return HistogramSnapshot(cumulative, float(sum(counts)), total)


class StoreTelemetry:
    """What the store's writer counts: committed batches and rows by kind (events, actuals),
    duplicate rows, refused batches and rows by error code, and commit latency."""

    def __init__(self) -> None:
        self.batches = Counter()  # (kind,)
        self.rows = Counter()  # (kind,)
        self.duplicates = Counter()  # (kind,)
        self.rejected_batches = Counter()  # (code,)
        self.rejected_rows = Counter()  # (code,)
        self.commit_seconds = Histogram(COMMIT_BUCKETS)

    def ingested(self, kind: str, accepted: int, duplicates: int) -> None:
        self.batches.inc((kind,))
        self.rows.inc((kind,), accepted)
        if duplicates:
            self.duplicates.inc((kind,), duplicates)

    def rejected(self, code: str, rows: int) -> None:
        self.rejected_batches.inc((code,))
        self.rejected_rows.inc((code,), rows)
