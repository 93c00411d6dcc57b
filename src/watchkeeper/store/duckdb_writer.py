"""The single writer of the DuckDB store, with group commit (see
:mod:`watchkeeper.store.duckdb_store`).

Callers hand a write to :meth:`Writer._submit`, which queues it (refusing with
StoreBusyError when too many rows wait) and blocks until the commit that holds it. The
writer thread takes every request waiting (up to a row budget) and commits them in one
transaction: DDL first, each on its own; then event batches of one model merged into one
insert, other mergeable writes of one kind (spans) merged into one call, the rest one by
one. If the group fails, its requests are retried one by one, so one bad request fails
alone. Between groups the writer keeps the aggregates up to date.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from watchkeeper.store.base import IngestResult, StoreBusyError, StoreClosedError, StoreError
from watchkeeper.store.duckdb_upkeep import MINUTE, ModelState
from watchkeeper.telemetry import StoreTelemetry

log = logging.getLogger("watchkeeper.store")


@dataclass
class Op:
    """One write waiting for the writer: its function, rows (for back-pressure), its
    answer, and what lets the writer merge it with others."""

    fn: Callable[[], Any]
    rows: int
    future: Future[Any] = field(default_factory=Future)
    ddl: Callable[[], None] | None = None
    # Event batches: (model holder filled by ddl, batch); merged per model within a group.
    events: tuple[dict[str, ModelState], pa.Table] | None = None
    # Other mergeable writes: (a function of the group's payloads that returns one result
    # per payload, payload); the ops of a group with the same function run as one call.
    merge: tuple[Callable[[list[Any]], list[Any]], Any] | None = None


class Writer:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore`: the write queue and
    the writer thread's loop."""

    _con: duckdb.DuckDBPyConnection | None
    _closed: bool
    _queue: queue.Queue[Op | None]
    _pending_rows: int
    _pending_lock: threading.Lock
    _max_pending_rows: int
    _group_max_rows: int
    _aggregate_interval: float
    _compact_interval: float
    _counters: dict[str, float]
    _models: dict[str, ModelState]
    _models_lock: threading.Lock
    telemetry: StoreTelemetry
    _aggregate_dirty: Callable[[], None]
    _compact: Callable[[datetime], None]
    _rollup: Callable[[datetime], None]
    _insert_event_group: Callable[[ModelState, list[pa.Table]], list[IngestResult]]

    def _submit(
        self,
        fn: Callable[[], Any],
        rows: int,
        ddl: Callable[[], None] | None = None,
        events: tuple[dict[str, ModelState], pa.Table] | None = None,
        merge: tuple[Callable[[list[Any]], list[Any]], Any] | None = None,
    ) -> Any:
        """Queue one write and wait for the commit that holds it; its answer."""
        op = Op(fn, rows, ddl=ddl, events=events, merge=merge)
        self._enqueue([op])
        return op.future.result()

    def _enqueue(self, ops: list[Op]) -> None:
        """Queue writes together: all of them, or (StoreBusyError, StoreClosedError) none."""
        if self._closed:
            raise StoreClosedError("the server is shutting down; retry shortly")
        rows = sum(op.rows for op in ops)
        with self._pending_lock:
            if self._pending_rows + rows > self._max_pending_rows and self._pending_rows > 0:
                self.telemetry.rejected("busy", rows)
                raise StoreBusyError(
                    f"the write queue is full ({self._pending_rows} rows waiting); retry shortly"
                )
            self._pending_rows += rows
        for op in ops:
            self._queue.put(op)

    def _write_loop(self) -> None:
        assert self._con is not None
        last_agg = 0.0
        last_compact = time.monotonic()
        while True:
            try:
                first = self._queue.get(timeout=self._aggregate_interval)
            except queue.Empty:
                first = False  # type: ignore[assignment]
            if first is None:
                break
            group: list[Op] = []
            if first:
                group.append(first)
                rows = first.rows
                while rows < self._group_max_rows:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)
                        break
                    group.append(nxt)
                    rows += nxt.rows
                self._commit_group(group)
            now = time.monotonic()
            if now - last_agg >= self._aggregate_interval or not group:
                last_agg = now
                self._aggregate_dirty()
            if now - last_compact >= self._compact_interval:
                last_compact = now
                wall = datetime.now(timezone.utc).replace(tzinfo=None)
                self._compact(wall - 2 * MINUTE)
                self._rollup(wall - 62 * MINUTE)  # closed hours only
        self._aggregate_dirty()
        # Fail whatever arrived after the stop marker.
        while True:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                break
            if op is not None:
                op.future.set_exception(StoreClosedError("the server is shutting down"))

    def _commit_group(self, group: list[Op]) -> None:
        assert self._con is not None
        con = self._con
        t0 = time.perf_counter()
        ready: list[Op] = []
        for op in group:  # DDL (new models, new feature columns) commits on its own first
            try:
                if op.ddl is not None:
                    op.ddl()
                ready.append(op)
            except Exception as exc:
                self._rollback()
                self._finish(op, exc=exc)
        results: list[Any] = []
        try:
            con.begin()
            results = self._apply(ready)
            con.commit()
        except Exception:
            log.debug("group commit failed; retrying its requests one by one", exc_info=True)
            self._rollback()
            for op in ready:
                try:
                    con.begin()
                    result = op.fn()
                    con.commit()
                    self._finish(op, result=result)
                except Exception as exc:
                    self._rollback()
                    log.exception("write failed") if not isinstance(exc, StoreError) else None
                    self._finish(op, exc=exc)
            return
        elapsed = time.perf_counter() - t0
        self._counters["commits"] += 1
        self._counters["commit_seconds_total"] += elapsed
        self._counters["last_commit_seconds"] = elapsed
        self.telemetry.commit_seconds.observe(elapsed)
        for op, result in zip(ready, results, strict=True):
            self._finish(op, result=result)

    def _apply(self, ops: list[Op]) -> list[Any]:
        """Run a group's requests; event batches of one model are merged into one insert,
        and so are other mergeable writes of the same kind (spans)."""
        out: dict[int, Any] = {}
        by_model: dict[str, list[int]] = {}
        by_merge: dict[Callable[[list[Any]], list[Any]], list[int]] = {}
        for i, op in enumerate(ops):
            if op.events is not None:
                by_model.setdefault(op.events[0]["m"].name, []).append(i)
            elif op.merge is not None:
                by_merge.setdefault(op.merge[0], []).append(i)
        for merged, idxs in by_merge.items():
            payloads = [ops[i].merge[1] for i in idxs]  # type: ignore[index]
            for i, result in zip(idxs, merged(payloads), strict=True):
                out[i] = result
        for idxs in by_model.values():
            m = ops[idxs[0]].events[0]["m"]  # type: ignore[index]
            batches = [ops[i].events[1] for i in idxs]  # type: ignore[index]
            for i, result in zip(idxs, self._insert_event_group(m, batches), strict=True):
                out[i] = result
        for i, op in enumerate(ops):
            if i not in out:
                out[i] = op.fn()
        return [out[i] for i in range(len(ops))]

    def _finish(self, op: Op, *, result: Any = None, exc: BaseException | None = None) -> None:
        with self._pending_lock:
            self._pending_rows -= op.rows
        if exc is not None:
            op.future.set_exception(exc)
            return
        self._counters["committed_requests"] += 1
        if isinstance(result, IngestResult):
            self._counters["committed_rows"] += result.accepted
            self._counters["duplicate_rows"] += result.duplicates
            kind = "events" if op.events is not None else "actuals"
            self.telemetry.ingested(kind, result.accepted, result.duplicates)
        op.future.set_result(result)

    def _rollback(self) -> None:
        assert self._con is not None
        with contextlib.suppress(duckdb.Error):
            self._con.rollback()
        with self._models_lock:  # hours marked in the rolled-back transaction are not
            for model in self._models.values():
                model.marked_hours.clear()
