"""The CPU half of an OTLP export: bytes in, Arrow tables out, ready for the store.

:func:`prepare_export` decodes the request, maps its LLM spans to events (priced, redacted
when asked), builds the ``spans`` rows and each model's event table. It touches no store
and no shared state, so it runs in the request's thread or in a worker process of
:class:`ExportPool`: the server hands large exports to the pool so that this Python work
(about two thirds of an export's time) runs beside the store's writer and the HTTP server
instead of queueing for the one interpreter lock.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from watchkeeper.llm.prices import PriceTable
from watchkeeper.otlp.decode import decode_request
from watchkeeper.otlp.genai import llm_events, price_events
from watchkeeper.otlp.spans import redact_events, redact_spans, spans_table
from watchkeeper.schema import DEFAULT_LIMITS, BatchError
from watchkeeper.schema.events import events_from_rows

log = logging.getLogger("watchkeeper.otlp")


@dataclass
class Chunk:
    """Up to ``max_events`` LLM events of one model: their table, or, when the rows do not
    make a valid batch, the rows and the error (the caller keeps the valid ones)."""

    model: str
    table: pa.Table | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: BatchError | None = None


@dataclass
class PreparedExport:
    spans: pa.Table
    chunks: list[Chunk]


def prepare_export(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    prices: PriceTable | None,
    redact: bool,
    received_at: datetime,
) -> PreparedExport:
    """Decode one export into its ``spans`` rows and its LLM events as tables per model
    (chunks of at most ``DEFAULT_LIMITS.max_events``). BatchError for a malformed body."""
    spans = decode_request(body, content_type, content_encoding)
    if redact:
        spans = redact_spans(spans)
    grouped, _others = llm_events(spans)
    if prices is not None:  # cost from the price table when the span carries none
        for events in grouped.values():
            price_events(events, prices)
    if redact:
        redact_events(grouped)
    by_span = {e["event_id"]: e for events in grouped.values() for e in events}
    table = spans_table(spans, by_span, received_at)
    chunks: list[Chunk] = []
    step = DEFAULT_LIMITS.max_events
    for model, events in grouped.items():
        for i in range(0, len(events), step):
            rows = events[i : i + step]
            try:
                chunks.append(Chunk(model, events_from_rows(rows, received_at)))
            except BatchError as exc:
                chunks.append(Chunk(model, None, rows, exc))
    return PreparedExport(table, chunks)


# ---------------------------------------------------------------------- worker processes
_WORKER_PRICES: PriceTable | None = None


def _init_worker(prices: PriceTable | None) -> None:
    global _WORKER_PRICES
    _WORKER_PRICES = prices


def _prepare_in_worker(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    redact: bool,
    received_at: datetime,
) -> PreparedExport:
    return prepare_export(body, content_type, content_encoding, _WORKER_PRICES, redact, received_at)


class ExportPool:
    """Worker processes (``spawn``ed, started on first use) that run :func:`prepare_export`
    for exports of at least ``min_bytes``; smaller ones, and every export while the pool is
    off (``workers`` 0) or broken, are prepared in the caller's thread. A worker that dies
    is replaced by a fresh pool; its export is prepared in the caller's thread."""

    def __init__(self, workers: int, prices: PriceTable | None, min_bytes: int = 64 * 1024):
        self.workers = max(0, workers)
        self.prices = prices
        self.min_bytes = min_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.offloaded = 0  # exports prepared by a worker (for tests and /metrics)

    def prepare(
        self,
        body: bytes,
        content_type: str | None,
        content_encoding: str | None,
        redact: bool,
        received_at: datetime,
    ) -> PreparedExport:
        pool = self._get() if len(body) >= self.min_bytes else None
        if pool is not None:
            try:
                future = pool.submit(
                    _prepare_in_worker, body, content_type, content_encoding, redact, received_at
                )
                prepared = future.result()
                self.offloaded += 1
                return prepared
            except BrokenProcessPool:
                log.warning("an OTLP worker process died; starting fresh ones")
                self._discard(pool)
            except RuntimeError:  # submitted while shutting down
                pass
        return prepare_export(
            body, content_type, content_encoding, self.prices, redact, received_at
        )

    def _get(self) -> ProcessPoolExecutor | None:
        if self.workers == 0 or self._closed:
            return None
        with self._lock:
            if self._pool is None and not self._closed:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(self.prices,),
                )
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
