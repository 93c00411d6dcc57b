"""The embedded engine: one DuckDB file, one writer thread with group commit, many readers.

Writes (event batches, actuals, references, aggregate upkeep) go through a bounded queue to a
single writer thread. The writer takes every request waiting in the queue (up to a row budget)
and commits them in **one transaction**, then answers each: a request is acknowledged only
after the commit that holds it (DuckDB syncs its write-ahead log on commit), and many small
requests share one commit. Readers use their own cursor per thread and never wait on the writer
(DuckDB's MVCC gives them a consistent snapshot).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.metrics import WindowAggregate
from watchkeeper.store import duckdb_sql as sql
from watchkeeper.store.base import (
    IngestResult,
    ModelInfo,
    SchemaConflictError,
    StoreError,
    UnknownModelError,
    WindowQuery,
)
from watchkeeper.store.duckdb_actions import DDL as ACTIONS_DDL
from watchkeeper.store.duckdb_actions import Actions
from watchkeeper.store.duckdb_alerts import DDL as ALERTS_DDL
from watchkeeper.store.duckdb_alerts import Alerts
from watchkeeper.store.duckdb_drift import Drift
from watchkeeper.store.duckdb_drift_reads import DriftReads
from watchkeeper.store.duckdb_evals import DDL as EVALS_DDL
from watchkeeper.store.duckdb_evals import Evals
from watchkeeper.store.duckdb_feedback import DDL as FEEDBACK_DDL
from watchkeeper.store.duckdb_feedback import Feedback
from watchkeeper.store.duckdb_monitors import DDL as MONITORS_DDL
from watchkeeper.store.duckdb_monitors import MonitorDefs
from watchkeeper.store.duckdb_reads import Reads, first
from watchkeeper.store.duckdb_serving import DDL as SERVING_DDL
from watchkeeper.store.duckdb_serving import Serving
from watchkeeper.store.duckdb_traces import DDL as TRACES_DDL
from watchkeeper.store.duckdb_traces import Traces
from watchkeeper.store.duckdb_upkeep import ModelState, Upkeep
from watchkeeper.store.duckdb_writer import Op, Writer
from watchkeeper.telemetry import StoreTelemetry

log = logging.getLogger("watchkeeper.store")

FEATURE_PREFIX = "feature:"
DB_FILE = "watchkeeper.duckdb"
_ARROW_KINDS = {"number": pa.float64(), "string": pa.string(), "bool": pa.bool_()}


def feature_kind(typ: pa.DataType) -> str | None:
    if pa.types.is_floating(typ) or pa.types.is_integer(typ):
        return "number"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "string"
    if pa.types.is_boolean(typ):
        return "bool"
    return None


def _naive_utc(table: pa.Table, column: str) -> pa.Table:
    idx = table.schema.get_field_index(column)
    col = table.column(idx)
    if getattr(col.type, "tz", None) is not None:
        col = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
    return table.set_column(idx, column, col)


class DuckDBStore(
    Writer,
    Reads,
    Upkeep,
    Drift,
    DriftReads,
    Alerts,
    MonitorDefs,
    Serving,
    Actions,
    Evals,
    Feedback,
    Traces,
):
    """The default store: a DuckDB file under the data directory."""

    def __init__(
        self,
        data_dir: Path,
        *,
        memory_limit: str = "1GB",
        checkpoint_threshold: str = "256MB",
        max_pending_rows: int = 2_000_000,
        group_max_rows: int = 500_000,
        aggregate_interval: float = 1.0,
        compact_interval: float = 30.0,
        feature_interval: float = 5.0,
    ) -> None:
        self.path = Path(data_dir) / DB_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._memory_limit = memory_limit
        self._checkpoint_threshold = checkpoint_threshold
        self._max_pending_rows = max_pending_rows
        self._group_max_rows = group_max_rows
        self._aggregate_interval = aggregate_interval
        self._compact_interval = compact_interval
        self._feature_interval = feature_interval
        self._layouts = {}
        self._layout_gen: dict[int, int] = {}
        self._queue: queue.Queue[Op | None] = queue.Queue()
        self._pending_rows = 0
        self._pending_lock = threading.Lock()
        self._models: dict[str, ModelState] = {}
        self._models_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._closed = False
        self._con: duckdb.DuckDBPyConnection | None = None
        self._local = threading.local()
        self._counters: dict[str, float] = {
            "commits": 0,
            "committed_requests": 0,
            "committed_rows": 0,
            "duplicate_rows": 0,
            "commit_seconds_total": 0.0,
            "last_commit_seconds": 0.0,
            "aggregations": 0,
            "compactions": 0,
            "rollups": 0,
            "feature_rows": 0,
        }
        self.telemetry = StoreTelemetry()  # read by GET /metrics

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        con = duckdb.connect(
            str(self.path),
            config={
                "memory_limit": self._memory_limit,
                # DuckDB checkpoints the WAL into the file at this size; its default (16 MB)
                # made every few commits pay a 100-300 ms checkpoint under sustained ingest.
                "checkpoint_threshold": self._checkpoint_threshold,
            },
        )
        con.execute("SET TimeZone = 'UTC'").fetchall()
        con.execute(sql.DDL).fetchall()
        con.execute(ALERTS_DDL).fetchall()
        con.execute(ACTIONS_DDL).fetchall()
        con.execute(MONITORS_DDL).fetchall()
        con.execute(SERVING_DDL).fetchall()
        con.execute(EVALS_DDL).fetchall()
        con.execute(FEEDBACK_DDL).fetchall()
        con.execute(TRACES_DDL).fetchall()
        self._con = con
        self._load_layouts()
        for mid, name, task in con.execute("SELECT id, name, task FROM models").fetchall():
            for column in sql.ADDED_EVENT_COLUMNS:  # tables made by an older release
                con.execute(
                    f"ALTER TABLE {sql.events_table(mid)} ADD COLUMN IF NOT EXISTS {column} VARCHAR"
                ).fetchall()
            model = ModelState(mid, name, task)
            for fname, ftype in con.execute(
                "SELECT name, type FROM model_features WHERE model_id = ?", [mid]
            ).fetchall():
                model.features[fname] = ftype
            orphans = first(
                con.execute(
                    "SELECT count(*) FROM actuals WHERE model_id = ? AND event_ts IS NULL", [mid]
                ).fetchall()
            )
            model.has_orphans = bool(orphans and orphans[0])
            model.features_behind = mid in self._layouts
            self._models[name] = model
        self._writer = threading.Thread(target=self._write_loop, name="wk-writer", daemon=True)
        self._writer.start()
        self._start_binner()

    def close(self) -> None:
        if self._closed:
            return
        if getattr(self, "_binner", None) is not None:
            self._stop_binner()  # first: it hands its chunks to the writer
        self._closed = True
        self._queue.put(None)
        if self._writer is not None:
            self._writer.join(timeout=30)
        if self._con is not None:
            self._con.close()

    def ready(self) -> bool:
        """Accepting writes: started, not closing, writer alive, queue not full."""
        alive = self._writer is not None and self._writer.is_alive()
        return alive and not self._closed and self._pending_rows < self._max_pending_rows

    def has_model(self, name: str) -> bool:
        return self._model_or_none(name) is not None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cur", None)
        if cur is None:
            assert self._con is not None, "store not started"
            cur = self._con.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            self._local.cur = cur
        return cur

    # ------------------------------------------------------------------ models
    def _model_or_none(self, name: str) -> ModelState | None:
        with self._models_lock:
            return self._models.get(name)

    def _require(self, name: str) -> ModelState:
        model = self._model_or_none(name)
        if model is None:
            raise UnknownModelError(f"no model named {name!r}; send predictions to create it")
        return model

    def _ensure_model(self, name: str, task: str | None) -> ModelState:
        """Create the model (on the writer thread, inside DDL) if it does not exist."""
        assert self._con is not None
        model = self._model_or_none(name)
        if model is not None:
            return model
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        row = first(
            self._con.execute(
                "INSERT INTO models VALUES (nextval('model_ids'), ?, ?, ?) RETURNING id",
                [name, task, now],
            ).fetchall()
        )
        assert row is not None
        self._con.execute(sql.create_events_table(row[0])).fetchall()
        model = ModelState(row[0], name, task)
        with self._models_lock:
            self._models[name] = model
        return model

    def _ensure_features(self, model: ModelState, wanted: Mapping[str, str], source: str) -> None:
        assert self._con is not None
        new = {k: v for k, v in wanted.items() if k not in model.features}
        if not new:
            return
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for name, kind in sorted(new.items()):
            self._con.execute(
                f"ALTER TABLE {sql.events_table(model.id)} ADD COLUMN IF NOT EXISTS"
                f" {sql.ident(FEATURE_PREFIX + name)} {sql.FEATURE_SQL_TYPES[kind]}"
            ).fetchall()
            self._con.execute(
                "INSERT INTO model_features VALUES (?, ?, ?, ?, ?)",
                [model.id, name, kind, source, now],
            ).fetchall()
            model.features[name] = kind

    @staticmethod
    def _batch_features(batch: pa.Table) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in batch.schema:
            if f.name.startswith(FEATURE_PREFIX):
                kind = feature_kind(f.type)
                if kind is not None:
                    out[f.name[len(FEATURE_PREFIX) :]] = kind
        return out

    def _check_conflicts(self, model: ModelState | None, batch: pa.Table) -> None:
        if model is None:
            return
        details: list[dict[str, object]] = []
        for name, kind in self._batch_features(batch).items():
            known = model.features.get(name)
            if known is not None and known != kind:
                col = batch.column(FEATURE_PREFIX + name)
                valid = pc.indices_nonzero(pc.is_valid(col))
                row = valid[0].as_py() if len(valid) else 0
                details.append(
                    {
                        "row": row,
                        "field": f"features.{name}",
                        "reason": f"model {model.name!r} has this feature as {known}; got {kind}",
                    }
                )
        if details:
            raise SchemaConflictError(
                f"{len(details)} feature(s) disagree with the model's schema; nothing was stored",
                details,
            )

    # ------------------------------------------------------------------ reads shared
    def window_aggregates(
        self, query: WindowQuery, names: Sequence[str] | None = None
    ) -> list[tuple[datetime, WindowAggregate]]:
        return self._window_aggregates(self._cursor(), self._require(query.model).id, query, names)

    def segment_values(self, model: str, name: str, start: datetime, end: datetime) -> list[str]:
        return self._segment_values(self._cursor(), self._require(model).id, name, start, end)

    def segment_aggregates(
        self, query: WindowQuery, by: str, values: Sequence[str], names: Sequence[str] | None = None
    ) -> dict[str, WindowAggregate]:
        mid = self._require(query.model).id
        return self._segment_aggregates(self._cursor(), mid, query, by, values, names)

    def list_models(self) -> list[ModelInfo]:
        with self._models_lock:
            models = sorted(self._models.values(), key=lambda m: m.name)
        return [self._model_info(self._cursor(), m.id, m.name, m.task, m.features) for m in models]

    def get_model(self, name: str) -> ModelInfo:
        m = self._require(name)
        return self._model_info(self._cursor(), m.id, m.name, m.task, m.features)

    def stats(self) -> dict[str, float]:
        with self._pending_lock:
            pending = float(self._pending_rows)
        return {**self._counters, "queue_rows": pending, "queue_requests": self._queue.qsize()}

    # ------------------------------------------------------------------ writes
    def ingest_events(
        self, model: str, batch: pa.Table, *, task: str | None = None
    ) -> IngestResult:
        """Store a normalized event batch; returns after the commit that holds it."""
        op = self._events_op(model, batch, task)
        self._enqueue([op])
        return op.future.result()  # type: ignore[no-any-return]

    def ingest_export(
        self, spans: pa.Table, events: Sequence[tuple[str, pa.Table]], *, task: str = "llm"
    ) -> list[IngestResult | StoreError]:
        """An OTLP export's spans and its LLM events (a batch per model) queued together (one
        back-pressure check: all or nothing) and answered after the commit(s) that hold them.
        Per events batch its IngestResult, or the StoreError that refused it; the spans'
        failure, StoreBusyError and StoreClosedError raise."""
        out: list[IngestResult | StoreError | None] = []
        ops: list[Op] = []
        for model, batch in events:
            try:
                ops.append(self._events_op(model, batch, task))
                out.append(None)
            except StoreError as exc:  # a schema conflict found before queueing
                out.append(exc)
        span_op = self._spans_op(spans) if spans.num_rows else None
        self._enqueue(([span_op] if span_op else []) + ops)
        if span_op is not None:
            span_op.future.result()
        answers = iter(ops)
        results: list[IngestResult | StoreError] = []
        for known in out:
            if known is not None:
                results.append(known)
                continue
            try:
                results.append(next(answers).future.result())
            except StoreError as exc:
                results.append(exc)
        return results

    def _events_op(self, model: str, batch: pa.Table, task: str | None) -> Op:
        """The write of one event batch (with the DDL a new model or feature needs)."""
        batch = _naive_utc(batch, "ts")
        wanted = self._batch_features(batch)
        self._check_conflicts(self._model_or_none(model), batch)
        holder: dict[str, ModelState] = {}

        def ddl() -> None:
            assert self._con is not None
            m = self._model_or_none(model)
            if (
                m is not None
                and m.task is not None
                and task in (None, m.task)
                and all(name in m.features for name in wanted)
            ):  # the common case: nothing to create, no transaction of its own
                self._check_conflicts(m, batch)
                holder["m"] = m
                return
            inferred = task or infer_task(batch)
            self._con.begin()
            m = self._ensure_model(model, inferred)
            self._check_conflicts(m, batch)
            self._ensure_features(m, wanted, "events")
            if inferred is not None and m.task != inferred and (m.task is None or task):
                m.task = inferred
                self._con.execute(
                    "UPDATE models SET task = ? WHERE id = ?", [m.task, m.id]
                ).fetchall()
            self._con.commit()
            holder["m"] = m

        return Op(
            lambda: self._insert_events(holder["m"], batch),
            batch.num_rows,
            ddl=ddl,
            events=(holder, batch),
        )

    def _insert_events(self, m: ModelState, batch: pa.Table) -> IngestResult:
        new = self._new_rows(m, batch)
        self._append(m, new)
        self._count_duplicates(m, [batch], [new])
        return IngestResult(accepted=new.num_rows, duplicates=batch.num_rows - new.num_rows)

    def _insert_event_group(self, m: ModelState, batches: list[pa.Table]) -> list[IngestResult]:
        """Several requests' batches for one model in one insert and one aggregation pass;
        an event id repeated across the requests is stored once (the first)."""
        fresh: list[pa.Table] = []
        seen: list[pa.Array] = []
        for batch in batches:
            new = self._new_rows(m, batch)
            if seen and new.num_rows:
                ids = pa.concat_arrays(seen)
                new = new.filter(pc.invert(pc.is_in(new.column("event_id"), value_set=ids)))
            seen.append(new.column("event_id").combine_chunks())
            fresh.append(new)
        self._append(m, pa.concat_tables(fresh, promote_options="default"))
        self._count_duplicates(m, batches, fresh)
        return [
            IngestResult(accepted=new.num_rows, duplicates=batch.num_rows - new.num_rows)
            for new, batch in zip(fresh, batches, strict=True)
        ]

    def _count_duplicates(
        self, m: ModelState, batches: list[pa.Table], fresh: list[pa.Table]
    ) -> None:
        """Record retried/duplicate events per minute (a data-quality metric)."""
        assert self._con is not None
        dups = [
            batch.filter(
                pc.invert(
                    pc.is_in(
                        batch.column("event_id"), value_set=new.column("event_id").combine_chunks()
                    )
                )
            ).select(["version", "ts"])
            for batch, new in zip(batches, fresh, strict=True)
            if batch.num_rows != new.num_rows
        ]
        if not dups:
            return
        table = _naive_utc(pa.concat_tables(dups), "ts")
        self._con.register("_dups", table)
        try:
            self._con.execute(
                f"INSERT INTO agg_dupes SELECT {m.id}, version,"
                " CAST(date_trunc('minute', ts) AS TIMESTAMP), count(*) FROM _dups GROUP BY ALL"
            ).fetchall()
        finally:
            self._con.unregister("_dups")

    def _new_rows(self, m: ModelState, batch: pa.Table) -> pa.Table:
        """The rows of ``batch`` not stored yet (a retried batch has the same ids and times)."""
        assert self._con is not None
        con = self._con
        batch = self._conform(m, batch)
        lo, hi = pc.min_max(batch.column("ts")).values()
        con.register("_batch", batch)
        try:
            dup = con.execute(
                f"SELECT event_id FROM {sql.events_table(m.id)} WHERE ts >= ? AND ts <= ?"
                " AND event_id IN (SELECT event_id FROM _batch)",
                [lo.as_py(), hi.as_py()],
            ).fetchall()
        finally:
            con.unregister("_batch")
        if not dup:
            return batch
        seen = pa.array([d[0] for d in dup], pa.string())
        return batch.filter(pc.invert(pc.is_in(batch.column("event_id"), value_set=seen)))

    def _append(self, m: ModelState, batch: pa.Table) -> None:
        """Insert new events and append their operational aggregates (same transaction)."""
        assert self._con is not None
        if not batch.num_rows:
            return
        con = self._con
        lo, hi = pc.min_max(batch.column("ts")).values()
        con.register("_batch", batch)
        try:
            cols = ", ".join(sql.ident(c) for c in batch.column_names)
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            con.execute(
                f"INSERT INTO {sql.events_table(m.id)} ({cols}, received_at)"
                f" SELECT {cols}, ? FROM _batch",
                [now],
            ).fetchall()
            with_ttft = batch.column("ttft_ms").null_count < batch.num_rows
            with_cost = batch.column("cost_usd").null_count < batch.num_rows
            for stmt in sql.ops_aggregate_sql(
                m.id, "_batch", m.task == "classification", with_ttft, with_cost
            ):
                con.execute(stmt).fetchall()
            self._mark_hours(m, batch)
            lo_m = lo.as_py().replace(second=0, microsecond=0, tzinfo=None)
            hi_m = hi.as_py().replace(second=0, microsecond=0, tzinfo=None)
            m.partial_lo = lo_m if m.partial_lo is None else min(m.partial_lo, lo_m)
            m.partial_hi = hi_m if m.partial_hi is None else max(m.partial_hi, hi_m)
            if m.has_orphans:
                self._adopt_orphans(m)
        finally:
            con.unregister("_batch")

    def _mark_hours(self, m: ModelState, batch: pa.Table) -> None:
        """Mark the batch's hours dirty for the hourly tier, unless known to be marked
        (most batches fall in the current hour: one statement saved per write)."""
        assert self._con is not None
        hours = pc.unique(pc.floor_temporal(batch.column("ts"), unit="hour")).to_pylist()
        new = {h.replace(tzinfo=None) for h in hours} - m.marked_hours
        if new:
            self._con.execute(
                "INSERT INTO dirty_hours SELECT ?, unnest(?::TIMESTAMP[])", [m.id, sorted(new)]
            ).fetchall()
            m.marked_hours |= new

    def _conform(self, m: ModelState, batch: pa.Table) -> pa.Table:
        """Cast all-null feature columns to the model's type, or drop unknown ones."""
        for name in batch.column_names:
            if name.startswith(FEATURE_PREFIX) and pa.types.is_null(batch.schema.field(name).type):
                kind = m.features.get(name[len(FEATURE_PREFIX) :])
                idx = batch.schema.get_field_index(name)
                if kind is None:
                    batch = batch.remove_column(idx)
                else:
                    batch = batch.set_column(idx, name, batch.column(idx).cast(_ARROW_KINDS[kind]))
        return batch

    def _adopt_orphans(self, m: ModelState) -> None:
        """Actuals that arrived before their events: link them now and mark their minutes."""
        assert self._con is not None
        con = self._con
        # Materialized first: an UPDATE ... FROM straight over the registered Arrow batch
        # silently matched nothing in DuckDB 2.0 (seen in test_store_duckdb).
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _adopt AS SELECT a.event_id, b.ts"
            " FROM _batch b JOIN actuals a ON a.event_id = b.event_id"
            " WHERE a.model_id = ? AND a.event_ts IS NULL",
            [m.id],
        ).fetchall()
        con.execute(
            "INSERT INTO dirty SELECT DISTINCT ?, CAST(date_trunc('minute', ts) AS TIMESTAMP)"
            " FROM _adopt",
            [m.id],
        ).fetchall()
        con.execute(
            "UPDATE actuals SET event_ts = _adopt.ts FROM _adopt WHERE actuals.model_id = ?"
            " AND actuals.event_ts IS NULL AND actuals.event_id = _adopt.event_id",
            [m.id],
        ).fetchall()
        con.execute("DROP TABLE _adopt").fetchall()

    def ingest_actuals(self, model: str, batch: pa.Table) -> IngestResult:
        """Store ground truth; a later label for the same event replaces the earlier one."""
        m = self._require(model)
        batch = _naive_utc(batch, "ts")
        return self._submit(lambda: self._insert_actuals(m, batch), batch.num_rows)  # type: ignore[no-any-return]

    def _insert_actuals(self, m: ModelState, batch: pa.Table) -> IngestResult:
        assert self._con is not None
        con = self._con
        ev = sql.events_table(m.id)
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        con.register("_act", batch)
        try:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _act2 AS
                SELECT a.event_id, a.label, a.label_value, a.ts, e.ts AS event_ts
                FROM (SELECT event_id, arg_max(label, rn) AS label,
                             arg_max(label_value, rn) AS label_value, arg_max(ts, rn) AS ts
                      FROM (SELECT *, row_number() OVER () AS rn FROM _act) GROUP BY event_id) a
                LEFT JOIN (SELECT event_id, min(ts) AS ts FROM {ev}
                           WHERE event_id IN (SELECT event_id FROM _act) GROUP BY event_id) e
                ON e.event_id = a.event_id"""
            ).fetchall()
        finally:
            con.unregister("_act")
        con.execute(
            "INSERT INTO dirty SELECT DISTINCT ?, CAST(date_trunc('minute', event_ts) AS TIMESTAMP)"
            " FROM _act2 WHERE event_ts IS NOT NULL",
            [m.id],
        ).fetchall()
        con.execute(
            "DELETE FROM actuals WHERE model_id = ? AND event_id IN (SELECT event_id FROM _act2)",
            [m.id],
        ).fetchall()
        con.execute(
            "INSERT INTO actuals SELECT ?, event_id, label, label_value, ts, ?, event_ts FROM _act2",
            [m.id, now],
        ).fetchall()
        row = first(
            con.execute(
                "SELECT count(*), count(*) FILTER (WHERE event_ts IS NULL) FROM _act2"
            ).fetchall()
        )
        con.execute("DROP TABLE _act2").fetchall()
        assert row is not None
        if row[1]:
            m.has_orphans = True
        return IngestResult(accepted=row[0], duplicates=batch.num_rows - row[0], unmatched=row[1])

    def put_reference(
        self, model: str, version: str | None, batch: pa.Table, schema: Mapping[str, str]
    ) -> int:
        """Replace the reference set of a model (version None: for every version)."""
        holder: dict[str, ModelState] = {}
        key = version or ""

        def ddl() -> None:
            assert self._con is not None
            self._con.begin()
            m = self._ensure_model(model, None)
            conflicts = [
                {
                    "row": None,
                    "field": name,
                    "reason": f"is {m.features[name]} in the model; the reference has {kind}",
                }
                for name, kind in schema.items()
                if name in m.features and m.features[name] != kind
            ]
            if conflicts:
                raise SchemaConflictError(
                    "the reference disagrees with the model's schema", conflicts
                )
            self._ensure_features(m, schema, "reference")
            self._con.commit()
            holder["m"] = m

        def fn() -> int:
            assert self._con is not None
            m = holder["m"]
            con = self._con
            old = con.execute(
                "SELECT table_name FROM reference_sets WHERE model_id = ? AND version = ?",
                [m.id, key],
            ).fetchall()
            count = first(
                con.execute(
                    "SELECT count(*) FROM reference_sets WHERE model_id = ?", [m.id]
                ).fetchall()
            )
            table = f"ref_{m.id}_{(count[0] if count else 0) + 1}_{int(time.time() * 1000)}"
            con.register("_ref", batch)
            try:
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM _ref").fetchall()
            finally:
                con.unregister("_ref")
            for (name,) in old:
                con.execute(f"DROP TABLE IF EXISTS {sql.ident(name)}").fetchall()
            con.execute(
                "DELETE FROM reference_sets WHERE model_id = ? AND version = ?", [m.id, key]
            ).fetchall()
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            con.execute(
                "INSERT INTO reference_sets VALUES (?, ?, ?, ?, ?)",
                [m.id, key, table, batch.num_rows, now],
            ).fetchall()
            self._profile_reference(m, key, batch)
            return int(batch.num_rows)

        return self._submit(fn, batch.num_rows, ddl)  # type: ignore[no-any-return]


def infer_task(batch: pa.Table) -> str | None:
    """Guess the task from a batch: scores mean classification, tokens mean LLM, and so on."""

    def any_valid(name: str) -> bool:
        return name in batch.column_names and batch.column(name).null_count < batch.num_rows

    if any_valid("score") or any_valid("probabilities"):
        return "classification"
    if any(any_valid(c) for c in ("prompt", "response", "input_tokens", "output_tokens")):
        return "llm"
    if not any_valid("prediction"):
        return None
    values = batch.column("prediction_value")
    if values.null_count == batch.num_rows:
        return "classification"  # text labels
    valid = pc.drop_null(values)
    integral = pc.all(pc.equal(pc.floor(valid), valid)).as_py()
    if integral and pc.all(pc.is_in(valid, value_set=pa.array([0.0, 1.0]))).as_py():
        return "classification"
    return "regression"
