"""Aggregate upkeep on the writer thread: late-label recomputation, compaction of partial
rows, and the hourly roll-up tier. Each runs in its own transaction, between group commits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from watchkeeper.store import duckdb_sql as sql
from watchkeeper.store.duckdb_reads import first

log = logging.getLogger("watchkeeper.store")

MINUTE = timedelta(minutes=1)


@dataclass
class ModelState:
    """What the writer keeps in memory about one model."""

    id: int
    name: str
    task: str | None
    features: dict[str, str] = field(default_factory=dict)
    has_orphans: bool = False
    # Minutes that received appended (partial) operational rows since the last compaction.
    partial_lo: datetime | None = None
    partial_hi: datetime | None = None
    # Events committed that the feature-binning job has not counted yet (a backlog).
    features_behind: bool = False
    # Hours known to be in dirty_hours (a subset of them): an event batch in those hours
    # need not mark them again. Cleared when a roll-up removes marks or a write rolls back.
    marked_hours: set[datetime] = field(default_factory=set)


class Upkeep:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore` (which provides these)."""

    _con: duckdb.DuckDBPyConnection | None
    _models: dict[str, ModelState]
    _models_lock: threading.Lock
    _counters: dict[str, float]
    _submit: Callable[..., Any]
    _rollback: Callable[[], None]

    def rollup(self) -> None:
        """Rebuild the hourly tier for every dirty hour now, open ones included (waits)."""
        self._submit(self._rollup_in_txn, 0)

    def _rollup_in_txn(self) -> None:
        assert self._con is not None
        self._con.commit()
        self._rollup(datetime.max)
        self._con.begin()

    def _rollup(self, cutoff: datetime) -> None:
        """Rebuild hourly rows of the dirty hours before ``cutoff``, one model a transaction."""
        assert self._con is not None
        con = self._con
        try:
            mids = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT model_id FROM dirty_hours WHERE hour < ?", [cutoff]
                ).fetchall()
            ]
        except duckdb.Error:
            log.exception("reading dirty hours failed")
            return
        with self._models_lock:
            for model in self._models.values():
                model.marked_hours.clear()
        for mid in mids:
            try:
                con.begin()
                for stmt in sql.rollup_sql(mid):
                    con.execute(stmt, {"cut": cutoff} if "$cut" in stmt else None).fetchall()
                con.commit()
                self._counters["rollups"] += 1
            except duckdb.Error:
                self._rollback()
                log.exception("rolling up hours failed for model %s", mid)

    def compact(self) -> None:
        """Merge the partial aggregate rows of every closed minute now (waits for the writer)."""
        self._submit(self._compact_in_txn, 0)

    def _compact_in_txn(self) -> None:
        assert self._con is not None
        self._con.commit()
        self._compact(datetime.max)
        self._con.begin()

    def _compact(self, cutoff: datetime) -> None:
        """Merge the partial operational rows of minutes before ``cutoff`` into one per key.

        Every batch appends its own aggregate rows (cheap, exact); merging them keeps the
        aggregate tables at about one row per minute and key, so long-range queries stay fast.
        """
        assert self._con is not None
        con = self._con
        with self._models_lock:
            models = list(self._models.values())
        for m in models:
            if m.partial_lo is None or m.partial_hi is None or m.partial_lo >= cutoff:
                continue
            lo, hi = m.partial_lo, min(m.partial_hi + MINUTE, cutoff)
            try:
                con.begin()
                for stmt in sql.compact_sql(m.id):
                    con.execute(stmt, {"lo": lo, "hi": hi} if "$lo" in stmt else None).fetchall()
                con.commit()
            except duckdb.Error:
                self._rollback()
                log.exception("compacting aggregates failed for model %s", m.name)
                continue
            if m.partial_hi + MINUTE <= cutoff:
                m.partial_lo = m.partial_hi = None
            else:
                m.partial_lo = cutoff.replace(second=0, microsecond=0)
            self._counters["compactions"] += 1

    def refresh(self) -> None:
        """Bring label aggregates up to date now (waits for the writer; for tests and CLI)."""
        self._submit(self._aggregate_dirty_in_txn, 0)

    def _aggregate_dirty_in_txn(self) -> None:
        # Runs inside the group's transaction: commit it, then aggregate in our own.
        assert self._con is not None
        self._con.commit()
        self._aggregate_dirty()
        self._con.begin()

    def _aggregate_dirty(self) -> None:
        """Recompute label aggregates of every dirty minute, one model per transaction."""
        assert self._con is not None
        con = self._con
        with self._models_lock:
            flagged = [m for m in self._models.values() if m.has_orphans]
        for m in flagged:  # cleared here, after commits, never inside a write transaction
            left = first(
                con.execute(
                    "SELECT count(*) FROM actuals WHERE model_id = ? AND event_ts IS NULL", [m.id]
                ).fetchall()
            )
            m.has_orphans = bool(left and left[0])
        try:
            todo = con.execute(
                "SELECT model_id, min(minute), max(minute) FROM dirty GROUP BY model_id"
            ).fetchall()
        except duckdb.Error:
            log.exception("reading dirty windows failed")
            return
        for mid, lo, hi in todo:
            try:
                con.begin()
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE _dirty AS"
                    " SELECT DISTINCT minute FROM dirty WHERE model_id = ?",
                    [mid],
                ).fetchall()
                params = {"lo": lo, "hi": hi + MINUTE}
                task = next((m.task for m in self._models.values() if m.id == mid), None)
                for stmt in sql.label_aggregate_sql(mid, with_confusion=task != "regression"):
                    con.execute(stmt, params if "$lo" in stmt else None).fetchall()
                con.execute(sql.mark_hours_sql(mid, "_dirty", "minute")).fetchall()
                con.execute(
                    "DELETE FROM dirty WHERE model_id = ? AND minute IN (SELECT minute FROM _dirty)",
                    [mid],
                ).fetchall()
                con.execute("DROP TABLE _dirty").fetchall()
                con.commit()
                self._counters["aggregations"] += 1
            except duckdb.Error:
                self._rollback()
                log.exception("recomputing label aggregates failed for model %s", mid)
