"""Drift on the DuckDB store: reference profiles, per-minute feature counts, and their reads.

* **Layouts.** The model's default reference (the one uploaded without a version, else the
  latest) fixes each feature's bins (:mod:`watchkeeper.drift.profile`), stored in
  ``drift_layouts``. Every reference set is then counted in those bins
  (``reference_profiles``), so a version's reference and its traffic compare bin for bin.
  Replacing the default reference changes the bins: the feature counts are rebuilt from the
  stored events in the background.
* **Feature counts.** A job on the writer thread takes the events committed since its
  watermark (``received_at``), bins every feature in numpy and appends per (minute, version,
  segment, feature, bin) rows to ``agg_feat`` — count, sum, sum of squares, min, max — with
  the watermark moved in the same transaction. Compaction and the hourly tier treat
  ``agg_feat`` like every other aggregate table.
* **Pseudo-features.** ``__score__`` (the score), ``__prediction__`` (the predicted class or
  value) and ``__label__`` (ground truth; reference only, windows read it from actuals) go
  through the same path, which gives output and label drift.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.drift.profile import (
    INVALID_CODE,
    LABEL,
    NULL_CODE,
    PREDICTION,
    PSEUDO,
    SCORE,
    Counts,
    Layout,
    NumericLayout,
    build_layout,
    count,
    layout_from_json,
)
from watchkeeper.store import duckdb_sql as sql
from watchkeeper.store.base import (
    EmptyRangeError,
    StoreClosedError,
    StoreError,
)
from watchkeeper.store.duckdb_reads import _naive, first
from watchkeeper.store.duckdb_upkeep import ModelState
from watchkeeper.telemetry import StoreTelemetry

log = logging.getLogger("watchkeeper.store")

FEATURE_PREFIX = "feature:"
EPOCH = datetime(1970, 1, 1)
CHUNK_ROWS = 200_000  # events binned per chunk: bounds the binner's memory
SEGMENT_PREFIX = "segments."
MAX_SEGMENT_PROFILES = 50  # segment values of the reference profiled on their own
PIN_MAX_ROWS = 1_000_000  # a pinned range with more events is sampled down to this


def pseudo_kind(name: str, task: str | None) -> str:
    if name == SCORE or task == "regression":
        return "number"
    return "string"


def reference_task(table: pa.Table, task: str | None) -> str | None:
    """The model's task, else the one its reference's outputs suggest (a reference is often
    uploaded before the first events tell the task)."""
    if task is not None:
        return task
    from watchkeeper.store.duckdb_store import infer_task  # (imports this module)

    guess = infer_task(table)
    if guess is None and "label_value" in table.column_names:  # no predictions: the labels
        labels = table.select(["label", "label_value"])
        guess = infer_task(labels.rename_columns(["prediction", "prediction_value"]))
    return guess


def numeric_outputs(layouts: Mapping[str, Layout]) -> bool:
    """Whether the prediction and label were profiled as numbers (a regression model)."""
    return any(layouts[n].kind == "number" for n in (PREDICTION, LABEL) if n in layouts)


def reference_columns(table: pa.Table, task: str | None) -> dict[str, pa.ChunkedArray]:
    """The columns of a reference table to profile, by feature name (pseudo-features too)."""
    out: dict[str, pa.ChunkedArray] = {}
    for name in table.column_names:
        if name.startswith(FEATURE_PREFIX):
            out[name[len(FEATURE_PREFIX) :]] = table.column(name)
    numeric = task == "regression"
    if "score" in table.column_names:
        out[SCORE] = table.column("score")
    pred = "prediction_value" if numeric else "prediction"
    if pred in table.column_names:
        out[PREDICTION] = table.column(pred)
    label = "label_value" if numeric else "label"
    if label in table.column_names:
        out[LABEL] = table.column(label)
    return {k: v for k, v in out.items() if v.null_count < len(v)}


def _codes(layout: Layout, col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the code (null -1, invalid -2) and the numeric value (NaN if none)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    n = len(col)
    codes = np.full(n, NULL_CODE, dtype=np.int32)
    valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
    if isinstance(layout, NumericLayout):
        values = np.asarray(
            col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False),
            dtype=np.float64,
        )
        finite = np.isfinite(values)
        codes[valid & ~finite] = INVALID_CODE
        codes[finite] = layout.codes(values[finite])
        return codes, values
    if pa.types.is_boolean(col.type):
        col = pc.if_else(col, "true", "false")
    elif not pa.types.is_string(col.type):
        col = col.cast(pa.string())
    if valid.any():
        codes[valid] = layout.codes(pc.filter(col, pa.array(valid)))
    return codes, np.full(n, np.nan)


@dataclass
class _Chunk:
    """Grouped feature counts of the events in (wm, hi], binned with layout generation gen."""

    model: ModelState
    gen: int
    wm: datetime
    hi: datetime
    grouped: pa.Table | None
    rows: int


class Drift:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore`."""

    _con: duckdb.DuckDBPyConnection | None
    _models: dict[str, ModelState]
    _models_lock: threading.Lock
    _counters: dict[str, float]
    telemetry: StoreTelemetry
    _submit: Callable[..., Any]
    _rollback: Callable[[], None]
    _require: Callable[[str], ModelState]
    _cursor: Callable[[], duckdb.DuckDBPyConnection]
    _layouts: dict[int, dict[str, Layout]]
    _layout_gen: dict[int, int]
    _feature_interval: float
    _local: threading.local

    # ------------------------------------------------------------------ profiles (writer)
    def _load_layouts(self) -> None:
        assert self._con is not None
        self._layouts = {}
        for mid, feature, layout in self._con.execute(
            "SELECT model_id, feature, layout FROM drift_layouts"
        ).fetchall():
            self._layouts.setdefault(mid, {})[feature] = layout_from_json(json.loads(layout))

    def _profile_reference(self, m: ModelState, version: str, table: pa.Table) -> None:
        """Inside the reference's transaction: fix the layout (default reference) and count
        every reference set of the model in it."""
        assert self._con is not None
        con = self._con
        is_default = version == "" or m.id not in self._layouts
        if not is_default:
            has_default = first(
                con.execute(
                    "SELECT count(*) FROM reference_sets WHERE model_id = ? AND version = ''",
                    [m.id],
                ).fetchall()
            )
            is_default = not (has_default and has_default[0])
        if is_default:
            task = reference_task(table, m.task)
            cols = reference_columns(table, task)
            layouts = {
                name: build_layout(col, self._kind(m, name, col, task))
                for name, col in cols.items()
            }
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            con.execute("DELETE FROM drift_layouts WHERE model_id = ?", [m.id]).fetchall()
            for name, lay in layouts.items():
                con.execute(
                    "INSERT INTO drift_layouts VALUES (?, ?, ?, ?, ?)",
                    [m.id, name, lay.kind, json.dumps(lay.to_json()), now],
                ).fetchall()
            # New bins: recount every reference set, and every stored event in the background.
            con.execute("DELETE FROM reference_profiles WHERE model_id = ?", [m.id]).fetchall()
            for tbl in ("agg_feat", "agg_feat_h"):
                con.execute(f"DELETE FROM {tbl} WHERE model_id = ?", [m.id]).fetchall()
            con.execute("DELETE FROM feature_watermarks WHERE model_id = ?", [m.id]).fetchall()
            self._layouts[m.id] = layouts
            self._layout_gen[m.id] = self._layout_gen.get(m.id, 0) + 1
            m.features_behind = True
            others = con.execute(
                "SELECT version, table_name FROM reference_sets WHERE model_id = ?"
                " AND version <> ?",
                [m.id, version],
            ).fetchall()
            for v, tname in others:
                other = _arrow(con, f"SELECT * FROM {sql.ident(tname)}")
                self._store_profile(m, v, other)
        else:
            con.execute(
                "DELETE FROM reference_profiles WHERE model_id = ? AND version = ?",
                [m.id, version],
            ).fetchall()
        self._store_profile(m, version, table)

    def _kind(self, m: ModelState, name: str, col: pa.ChunkedArray, task: str | None) -> Any:
        if name in PSEUDO:
            return pseudo_kind(name, task)
        kind = m.features.get(name)
        if kind is None:
            typ = col.type
            kind = "number" if pa.types.is_floating(typ) or pa.types.is_integer(typ) else "string"
        return kind

    def _store_profile(self, m: ModelState, version: str, table: pa.Table) -> None:
        assert self._con is not None
        layouts = self._layouts.get(m.id, {})
        # the columns the layout was built from (its kinds, not the task known now)
        cols = reference_columns(table, "regression" if numeric_outputs(layouts) else None)
        self._insert_profile(m, version, "", "", layouts, cols, table.num_rows)
        # Per segment value too (reference columns ``segments.<name>``), so a segment's
        # traffic is compared with the same segment of the reference, not with everyone.
        for column in table.column_names:
            if not column.startswith(SEGMENT_PREFIX):
                continue
            seg_key = column[len(SEGMENT_PREFIX) :]
            values = table.column(column)
            vc = pc.value_counts(pc.drop_null(values.cast(pa.string())))
            top = sorted(
                zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True),
                key=lambda x: -x[1],
            )[:MAX_SEGMENT_PROFILES]
            for seg_value, _ in top:
                mask = pc.fill_null(pc.equal(values.cast(pa.string()), seg_value), False)
                part = table.filter(mask)
                part_cols = {k: v.filter(mask) for k, v in cols.items()}
                self._insert_profile(
                    m, version, seg_key, str(seg_value), layouts, part_cols, part.num_rows
                )

    def _insert_profile(
        self,
        m: ModelState,
        version: str,
        seg_key: str,
        seg_value: str,
        layouts: Mapping[str, Layout],
        cols: Mapping[str, pa.ChunkedArray],
        rows: int,
    ) -> None:
        assert self._con is not None
        for name, lay in layouts.items():
            col = cols.get(name)
            counts = count(lay, col) if col is not None else Counts.empty(lay.n_codes)
            if col is None:
                counts.null = rows
            if name == LABEL:  # a row without ground truth is unlabelled, not a missing value
                counts.null = 0
            self._con.execute(
                "INSERT INTO reference_profiles VALUES (?, ?, ?, ?, ?, ?)",
                [m.id, version, name, json.dumps(counts.to_json()), seg_key, seg_value],
            ).fetchall()

    # ------------------------------------------------------------------ feature counts
    # The binner thread reads new events through its own cursor, bins and groups them in a
    # private in-memory DuckDB, and hands the writer only the grouped rows to append (with the
    # watermark, in one transaction): acknowledgements never wait for the binning.
    def _start_binner(self) -> None:
        self._binner_stop = threading.Event()
        self._binner_lock = threading.Lock()
        self._binner = threading.Thread(target=self._binner_loop, name="wk-binner", daemon=True)
        self._binner.start()

    def _stop_binner(self) -> None:
        self._binner_stop.set()
        self._binner.join(timeout=30)

    def _binner_loop(self) -> None:
        while not self._binner_stop.wait(self._feature_interval):
            try:
                self._bin_all()
            except StoreClosedError:
                return
            except Exception:  # keep binning later; never take the server down
                log.exception("binning features failed")

    def _bin_all(self, until_done: bool = False) -> None:
        """Bin what is past each model's watermark (one chunk each, or all with
        ``until_done``)."""
        with self._models_lock:
            models = [m for m in self._models.values() if m.id in self._layouts]
        for m in models:
            while not self._binner_stop.is_set() or until_done:
                with self._binner_lock:
                    chunk = self._bin_chunk(m)
                    if chunk is not None:
                        self._submit(lambda c=chunk: self._apply_chunk(c), 0)
                if chunk is None or not (until_done or m.features_behind):
                    break

    def _bin_chunk(self, m: ModelState) -> _Chunk | None:
        """The grouped feature counts of the next events past the watermark (None: none)."""
        gen = self._layout_gen.get(m.id, 0)
        layouts = self._layouts.get(m.id)
        if not layouts:
            return None
        cur = self._cursor()
        ev = sql.events_table(m.id)
        row = first(
            cur.execute(
                "SELECT received_at FROM feature_watermarks WHERE model_id = ?", [m.id]
            ).fetchall()
        )
        wm = row[0] if row else EPOCH
        cut = first(
            cur.execute(
                f"SELECT received_at FROM {ev} WHERE received_at > ? ORDER BY received_at"
                f" LIMIT 1 OFFSET {CHUNK_ROWS - 1}",
                [wm],
            ).fetchall()
        )
        m.features_behind = cut is not None
        hi_row = cut or first(
            cur.execute(f"SELECT max(received_at) FROM {ev} WHERE received_at > ?", [wm]).fetchall()
        )
        if hi_row is None or hi_row[0] is None:
            return None
        hi = hi_row[0]
        names = [n for n in layouts if n != LABEL and (n in PSEUDO or n in m.features)]
        if not names:
            return _Chunk(m, gen, wm, hi, None, 0)
        pred = "prediction_value" if numeric_outputs(layouts) else "prediction"
        source_cols = {SCORE: "score", PREDICTION: pred}
        select = ["version", "ts", "segments"] + [
            sql.ident(source_cols.get(n, FEATURE_PREFIX + n)) + f" AS c{i}"
            for i, n in enumerate(names)
        ]
        batch = _arrow(
            cur,
            f"SELECT {', '.join(select)} FROM {ev} WHERE received_at > ? AND received_at <= ?",
            [wm, hi],
        )
        if not batch.num_rows:
            return _Chunk(m, gen, wm, hi, None, 0)
        cols: dict[str, Any] = {
            "version": batch.column("version"),
            "ts": batch.column("ts"),
            "segments": batch.column("segments"),
        }
        for i, n in enumerate(names):
            codes, values = _codes(layouts[n], batch.column(f"c{i}"))
            cols[f"k{i}"] = pa.array(codes, pa.int32())
            cols[f"v{i}"] = pa.array(values, pa.float64(), from_pandas=True)
        mem = self._binner_db()
        mem.register("_fbatch", pa.table(cols))
        try:
            prep, query = feature_aggregate_sql(m.id, "_fbatch", names)
            mem.execute(prep).fetchall()
            grouped = _arrow(mem, query)
            mem.execute("DROP TABLE _fx").fetchall()
        finally:
            mem.unregister("_fbatch")
        return _Chunk(m, gen, wm, hi, grouped, batch.num_rows)

    def _binner_db(self) -> duckdb.DuckDBPyConnection:
        mem: duckdb.DuckDBPyConnection | None = getattr(self._local, "mem", None)
        if mem is None:
            mem = duckdb.connect(config={"threads": 1, "memory_limit": "256MB"})
            mem.execute("SET TimeZone = 'UTC'").fetchall()
            self._local.mem = mem
        return mem

    def _apply_chunk(self, c: _Chunk) -> None:
        """On the writer, inside its transaction: append a chunk's counts, move the watermark.
        A chunk binned with bins since replaced, or past a moved watermark, is dropped."""
        assert self._con is not None
        con = self._con
        if self._layout_gen.get(c.model.id, 0) != c.gen:
            return
        row = first(
            con.execute(
                "SELECT received_at FROM feature_watermarks WHERE model_id = ?", [c.model.id]
            ).fetchall()
        )
        if (row[0] if row else EPOCH) != c.wm:
            return
        if c.grouped is not None and c.grouped.num_rows:
            con.register("_fgrouped", c.grouped)
            try:
                con.execute("INSERT INTO agg_feat SELECT * FROM _fgrouped").fetchall()
                con.execute(sql.mark_hours_sql(c.model.id, "_fgrouped", "minute")).fetchall()
                lo_m, hi_m = (
                    v.as_py().replace(tzinfo=None)
                    for v in pc.min_max(c.grouped.column("minute")).values()
                )
            finally:
                con.unregister("_fgrouped")
            m = c.model
            m.partial_lo = lo_m if m.partial_lo is None else min(m.partial_lo, lo_m)
            m.partial_hi = hi_m if m.partial_hi is None else max(m.partial_hi, hi_m)
        con.execute(
            "INSERT OR REPLACE INTO feature_watermarks VALUES (?, ?)", [c.model.id, c.hi]
        ).fetchall()
        self._counters["feature_rows"] = self._counters.get("feature_rows", 0) + c.rows

    def refresh_features(self) -> None:
        """Bin every event committed so far now, and wait until it is stored (tests, CLI)."""
        self._bin_all(until_done=True)

    def record_rejected(self, model: str, code: str, rows_with_errors: int) -> None:
        """Count a refused batch: always for /metrics, and per minute for a known model (a
        data-quality metric; a model's first batch refused creates no model). Never raises."""
        self.telemetry.rejected(code, int(rows_with_errors))
        m = self._models.get(model)
        if m is None:
            return
        minute = datetime.now(timezone.utc).replace(tzinfo=None, second=0, microsecond=0)

        def fn() -> None:
            assert self._con is not None
            self._con.execute(
                "INSERT INTO agg_rejects VALUES (?, ?, ?, 1, ?)",
                [m.id, minute, code, int(rows_with_errors)],
            ).fetchall()

        try:
            self._submit(fn, 0)
        except StoreError:
            log.debug("could not count a refused batch", exc_info=True)

    # ------------------------------------------------------------------ pinning
    def pin_reference(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: str | None,
        source_version: str | None,
    ) -> int:
        """Make the model's traffic in [start, end) (of ``source_version``, or all) its
        reference (for ``version``, or the default); returns the row count."""
        m = self._require(model)
        cur = self._cursor()
        names = sorted(m.features)
        where = "e.ts >= ? AND e.ts < ?"
        params: list[Any] = [_naive(start), _naive(end)]
        if source_version is not None:
            where += " AND e.version = ?"
            params.append(source_version)
        seg_keys = [
            r[0]
            for r in cur.execute(
                "SELECT DISTINCT seg_key FROM agg_ops WHERE model_id = ? AND seg_key <> ''",
                [m.id],
            ).fetchall()
        ]
        cols = ", ".join(
            [f"e.{sql.ident(FEATURE_PREFIX + n)}" for n in names]
            + [
                f"e.segments['{k.replace(chr(39), chr(39) * 2)}'] AS {sql.ident(SEGMENT_PREFIX + k)}"
                for k in seg_keys
            ]
        )
        table = _arrow(
            cur,
            # (sampled after the filter: DuckDB samples a table before its WHERE)
            f"SELECT * FROM (SELECT {cols}{', ' if cols else ''} e.prediction,"
            " e.prediction_value, e.score, a.label, a.label_value"
            f" FROM {sql.events_table(m.id)} e LEFT JOIN actuals a"
            f" ON a.model_id = {m.id} AND a.event_id = e.event_id AND a.event_ts = e.ts"
            f" WHERE {where})"
            f" USING SAMPLE reservoir({PIN_MAX_ROWS} ROWS) REPEATABLE (7)",
            params,
        )
        if not table.num_rows:
            raise EmptyRangeError(f"model {model!r} has no events between {start} and {end} to pin")
        schema = {n: m.features[n] for n in names}
        put = getattr(self, "put_reference")  # noqa: B009 - defined by the store
        return int(put(model, version, table, schema))


def _arrow(con: duckdb.DuckDBPyConnection, query: str, params: Any = None) -> pa.Table:
    table = con.sql(query, params=params).to_arrow_table()
    assert table is not None
    return table


def feature_aggregate_sql(model_id: int, source: str, names: Sequence[str]) -> tuple[str, str]:
    """A statement expanding ``source`` by segment into ``_fx`` and a query grouping it into
    ``agg_feat`` rows (``source`` has columns version, ts, segments, and ``k{i}`` codes and
    ``v{i}`` values in the order of ``names``)."""
    cols = ", ".join(f"k{i}, v{i}" for i in range(len(names)))
    prep = f"CREATE OR REPLACE TEMP TABLE _fx AS WITH {sql._expanded(source, cols)} SELECT * FROM x"
    selects = [
        f"SELECT {model_id}::INTEGER AS model_id, version, minute, seg_key, seg_value,"
        f" '{name.replace(chr(39), chr(39) * 2)}' AS feature, k{i} AS bin, count(*) AS n,"
        f" coalesce(sum(v{i}) FILTER (WHERE k{i} >= 0), 0) AS vsum,"
        f" coalesce(sum(v{i} * v{i}) FILTER (WHERE k{i} >= 0), 0) AS vsq,"
        f" min(v{i}) FILTER (WHERE k{i} >= 0) AS vmin, max(v{i}) FILTER (WHERE k{i} >= 0) AS vmax"
        f" FROM _fx GROUP BY version, minute, seg_key, seg_value, k{i}"
        for i, name in enumerate(names)
    ]
    return prep, " UNION ALL ".join(selects)
