"""Evaluations of LLM calls on the DuckDB store: one row per (model, event, evaluator).

An evaluation is written by the background runner (:mod:`watchkeeper.evaluators.runner`),
by the judge, or by people (feedback). It copies the version, time and segments of its event
so that its aggregates (``agg_eval``) are keyed like every other aggregate. Evaluations arrive
late and a re-evaluation replaces the earlier row, so like labels they mark the minutes of
their events ``dirty`` and the writer's aggregation job recomputes those minutes
(:func:`watchkeeper.store.duckdb_sql.eval_aggregate_sql`, run with the label statements).

``eval_watermarks`` remembers how far the runner has read, per model and per source
(``events``, ``actuals``), as ``(received_at, event_id)``: rows of one batch share their
``received_at``, so the event id breaks the tie and a chunk may end inside a batch.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from watchkeeper.store import duckdb_sql as sql
from watchkeeper.store.duckdb_reads import first

DDL = """
CREATE TABLE IF NOT EXISTS evaluations (model_id INTEGER, event_id VARCHAR, trace_id VARCHAR,
    version VARCHAR, event_ts TIMESTAMP, segments MAP(VARCHAR, VARCHAR), evaluator VARCHAR,
    score DOUBLE, flagged BOOLEAN, label VARCHAR, detail VARCHAR, source VARCHAR,
    evaluated_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS eval_watermarks (model_id INTEGER, kind VARCHAR,
    received_at TIMESTAMP, event_id VARCHAR, PRIMARY KEY (model_id, kind));
"""

SOURCES = ("auto", "judge", "human", "reference")
# Evaluators whose score measures something bad (more = worse): worst first sorts them down.
_HIGH_IS_BAD = ("pii", "toxicity", "refusal")
_COLUMNS = (
    "event_id",
    "trace_id",
    "version",
    "event_ts",
    "segments",
    "evaluator",
    "score",
    "flagged",
    "label",
    "detail",
    "source",
    "evaluated_at",
)
_EVENT_COLUMNS = ("prompt", "response", "latency_ms", "cost_usd")
_ARROW = pa.schema(
    [
        ("event_id", pa.string()),
        ("trace_id", pa.string()),
        ("version", pa.string()),
        ("event_ts", pa.timestamp("us")),
        ("evaluator", pa.string()),
        ("score", pa.float64()),
        ("flagged", pa.bool_()),
        ("label", pa.string()),
        ("detail", pa.string()),
        ("source", pa.string()),
        ("rn", pa.int64()),
    ]
)
Watermark = tuple[str, datetime, str]  # (kind, received_at, event_id)


def _naive(ts: datetime | None) -> datetime | None:
    if ts is None or ts.tzinfo is None:
        return ts
    return ts.astimezone(timezone.utc).replace(tzinfo=None)


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts.replace(tzinfo=timezone.utc)


def _detail(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _row(keys: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(keys, values, strict=True))
    for key in ("event_ts", "evaluated_at"):
        out[key] = _aware(out[key])
    if out.get("detail"):
        with contextlib.suppress(ValueError):
            out["detail"] = json.loads(out["detail"])
    if "segments" in out and out["segments"] is not None:
        out["segments"] = dict(out["segments"])
    return out


class Evals:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore`."""

    _con: duckdb.DuckDBPyConnection | None
    _submit: Callable[..., Any]
    _cursor: Callable[[], duckdb.DuckDBPyConnection]
    _require: Callable[[str], Any]
    _models: dict[str, Any]
    _models_lock: Any

    def _model_id(self, model: str | int) -> int:
        return model if isinstance(model, int) else int(self._require(model).id)

    # ------------------------------------------------------------------ writes
    def record_evaluations(
        self,
        model: str | int,
        rows: Sequence[Mapping[str, Any]],
        *,
        watermarks: Sequence[Watermark] = (),
    ) -> int:
        """Store evaluations (one per event and evaluator; a later one replaces an earlier
        one) in one transaction, with the runner's ``watermarks`` when given; returns the
        number of rows stored.

        Each row needs ``event_id`` and ``evaluator``; ``score`` (0..1), ``flagged``,
        ``label``, ``detail`` (JSON text or a JSON-able value), ``source`` (default
        ``auto``) and ``trace_id`` are optional. Version, time and segments come from the
        stored event (``version``/``event_ts`` of the row are used when it is not stored);
        an evaluation whose event is not known has no time and counts in no aggregate."""
        mid = self._model_id(model)
        table = pa.Table.from_pylist(
            [
                {
                    "event_id": str(r["event_id"]),
                    "trace_id": r.get("trace_id"),
                    "version": r.get("version"),
                    "event_ts": _naive(r.get("event_ts")),
                    "evaluator": str(r["evaluator"]),
                    "score": None if r.get("score") is None else float(r["score"]),
                    "flagged": None if r.get("flagged") is None else bool(r["flagged"]),
                    "label": r.get("label"),
                    "detail": _detail(r.get("detail")),
                    "source": r.get("source") or "auto",
                    "rn": i,
                }
                for i, r in enumerate(rows)
            ],
            schema=_ARROW,
        )
        times = [_naive(r.get("event_ts")) for r in rows]
        known = [t for t in times if t is not None]
        bounds = (min(known), max(known)) if known and len(known) == len(times) else None

        def fn() -> int:
            assert self._con is not None
            return self._insert_evaluations(self._con, mid, table, bounds, watermarks)

        return int(self._submit(fn, max(len(rows), 1)))

    def _insert_evaluations(
        self,
        con: duckdb.DuckDBPyConnection,
        mid: int,
        table: pa.Table,
        bounds: tuple[datetime, datetime] | None,
        watermarks: Sequence[Watermark],
    ) -> int:
        ev = sql.events_table(mid)
        ts_range = "AND ts >= $lo AND ts <= $hi" if bounds else ""
        params: dict[str, Any] = {"lo": bounds[0], "hi": bounds[1]} if bounds else {}
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        stored = 0
        if table.num_rows:
            has_events = first(
                con.execute(
                    "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [ev]
                ).fetchall()
            )[0]
            events = (
                f"(SELECT event_id, min(ts) AS ts, any_value(version) AS version,"
                f" any_value(segments) AS segments FROM {ev}"
                f" WHERE event_id IN (SELECT event_id FROM _evrows) {ts_range} GROUP BY event_id)"
                if has_events
                else "(SELECT NULL::VARCHAR AS event_id, NULL::TIMESTAMP AS ts,"
                " NULL::VARCHAR AS version, NULL::MAP(VARCHAR, VARCHAR) AS segments LIMIT 0)"
            )
            con.register("_evrows", table)
            try:
                con.execute(
                    f"""CREATE OR REPLACE TEMP TABLE _evnew AS
                    SELECT {mid} AS model_id, r.event_id, r.trace_id,
                        coalesce(e.version, r.version) AS version,
                        coalesce(e.ts, r.event_ts) AS event_ts,
                        coalesce(e.segments, MAP {{}}::MAP(VARCHAR, VARCHAR)) AS segments,
                        r.evaluator, r.score, r.flagged, r.label, r.detail, r.source,
                        $now AS evaluated_at
                    FROM (SELECT event_id, evaluator, arg_max(trace_id, rn) AS trace_id,
                            arg_max(version, rn) AS version, arg_max(event_ts, rn) AS event_ts,
                            arg_max(score, rn) AS score, arg_max(flagged, rn) AS flagged,
                            arg_max(label, rn) AS label, arg_max(detail, rn) AS detail,
                            arg_max(source, rn) AS source
                          FROM (SELECT * FROM _evrows) GROUP BY event_id, evaluator) r
                    LEFT JOIN {events} e ON e.event_id = r.event_id""",
                    {**params, "now": now},
                ).fetchall()
            finally:
                con.unregister("_evrows")
            lo_hi = first(con.execute("SELECT min(event_ts), max(event_ts) FROM _evnew").fetchall())
            delete = (
                "DELETE FROM evaluations USING _evnew WHERE evaluations.model_id = $mid"
                " AND evaluations.event_id = _evnew.event_id"
                " AND evaluations.evaluator = _evnew.evaluator"
            )
            del_params: dict[str, Any] = {"mid": mid}
            if lo_hi is not None and lo_hi[0] is not None and _all_timed(con):
                # Every row has a time: only that range of the table can hold the old rows.
                delete += " AND evaluations.event_ts >= $lo AND evaluations.event_ts <= $hi"
                del_params.update(lo=lo_hi[0], hi=lo_hi[1])
            con.execute(delete, del_params).fetchall()
            con.execute("INSERT INTO evaluations SELECT * FROM _evnew").fetchall()
            con.execute(
                "INSERT INTO dirty SELECT DISTINCT model_id,"
                " CAST(date_trunc('minute', event_ts) AS TIMESTAMP)"
                " FROM _evnew WHERE event_ts IS NOT NULL"
            ).fetchall()
            stored = int(first(con.execute("SELECT count(*) FROM _evnew").fetchall())[0])
            con.execute("DROP TABLE _evnew").fetchall()
        for kind, received_at, event_id in watermarks:
            con.execute(
                "INSERT OR REPLACE INTO eval_watermarks VALUES (?, ?, ?, ?)",
                [mid, kind, _naive(received_at), event_id],
            ).fetchall()
        return stored

    # ------------------------------------------------------------------ reads
    def eval_watermark(self, model: str | int, kind: str) -> tuple[datetime, str] | None:
        """How far the runner has read ``kind`` (events|actuals) of the model, or None."""
        row = first(
            self._cursor()
            .execute(
                "SELECT received_at, event_id FROM eval_watermarks WHERE model_id = ? AND kind = ?",
                [self._model_id(model), kind],
            )
            .fetchall()
        )
        return None if row is None else (row[0], row[1])

    def evaluations_for(self, model: str | int, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Every evaluation of these events (by event, then evaluator)."""
        if not event_ids:
            return []
        mid = self._model_id(model)
        rows = (
            self._cursor()
            .execute(
                f"SELECT {', '.join(_COLUMNS)} FROM evaluations WHERE model_id = ?"
                " AND list_contains(?, event_id) ORDER BY event_id, evaluator",
                [mid, list(event_ids)],
            )
            .fetchall()
        )
        return [_row(_COLUMNS, r) for r in rows]

    def list_evaluations(
        self,
        model: str | int,
        evaluator: str | None = None,
        flagged: bool | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        worst_first: bool = True,
        version: str | None = None,
        segment: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Evaluations of the model's calls in [start, end) (by the call's time), of one
        ``version`` and one ``segment`` (name, value) when given, each with its call's
        prompt, response, latency and cost; worst first (flagged first, then the lowest
        score, or the highest for pii/toxicity/refusal, then newest), else newest first."""
        mid = self._model_id(model)
        where = ["v.model_id = $mid"]
        params: dict[str, Any] = {"mid": mid, "limit": int(limit), "bad": list(_HIGH_IS_BAD)}
        if evaluator is not None:
            where.append("v.evaluator = $evaluator")
            params["evaluator"] = evaluator
        if flagged is not None:
            where.append("coalesce(v.flagged, false) = $flagged")
            params["flagged"] = flagged
        if start is not None:
            where.append("v.event_ts >= $start")
            params["start"] = _naive(start)
        if end is not None:
            where.append("v.event_ts < $end")
            params["end"] = _naive(end)
        if version is not None:
            where.append("v.version = $version")
            params["version"] = version
        if segment is not None:
            where.append("list_contains(map_extract(v.segments, $seg_key), $seg_value)")
            params["seg_key"], params["seg_value"] = segment
        order = (
            "coalesce(v.flagged, false) DESC,"
            " CASE WHEN list_contains($bad, v.evaluator) THEN -v.score ELSE v.score END"
            " ASC NULLS LAST, v.event_ts DESC, v.event_id"
            if worst_first
            else "v.event_ts DESC, v.event_id, v.evaluator"
        )
        cols = ", ".join(f"v.{c}" for c in _COLUMNS)
        ev = sql.events_table(mid)
        cur = self._cursor()
        has_events = first(
            cur.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [ev]
            ).fetchall()
        )[0]
        if not has_events:
            return []
        rows = cur.execute(
            f"""WITH v AS (SELECT * FROM evaluations v WHERE {" AND ".join(where)}
                           ORDER BY {order} LIMIT $limit)
            SELECT {cols}, e.prompt, e.response, e.latency_ms, e.cost_usd
            FROM v LEFT JOIN {ev} e ON e.event_id = v.event_id AND e.ts = v.event_ts
            ORDER BY {order}""",
            params,
        ).fetchall()
        return [_row((*_COLUMNS, *_EVENT_COLUMNS), r) for r in rows]

    def llm_events_after(
        self,
        model: str | int,
        after: tuple[datetime, str] | None,
        until: datetime,
        limit: int,
        *,
        texts: bool = True,
    ) -> list[dict[str, Any]]:
        """The model's calls (events with a prompt or a response) received after ``after``
        (``(received_at, event_id)``, exclusive) and at or before ``until``, in that order,
        with their actual label when there is one. ``texts=False`` leaves out the prompt and
        context, and the response of calls without a label (for calls that will be skipped)."""
        return self._rows_after(model, "events", after, until, limit, texts)

    def llm_actuals_after(
        self,
        model: str | int,
        after: tuple[datetime, str] | None,
        until: datetime,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Actuals received after ``after`` whose call is stored, joined with the call (the
        ``received_at`` of each row is the actual's)."""
        return self._rows_after(model, "actuals", after, until, limit)

    def _rows_after(
        self,
        model: str | int,
        kind: str,
        after: tuple[datetime, str] | None,
        until: datetime,
        limit: int,
        texts: bool = True,
    ) -> list[dict[str, Any]]:
        mid = self._model_id(model)
        ev = sql.events_table(mid)
        cur = self._cursor()
        present = {
            r[0]
            for r in cur.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [ev]
            ).fetchall()
        }
        if not present:
            return []
        optional = [
            f"e.{c}" if c in present and (texts or c != "context") else f"NULL AS {c}"
            for c in ("trace_id", "conversation_id", "context")
        ]
        prompt = "e.prompt" if texts else "NULL AS prompt"
        response = "e.response" if texts else "CASE WHEN a.label IS NOT NULL THEN e.response END"
        watermark = "a.received_at" if kind == "actuals" else "e.received_at"
        params: dict[str, Any] = {"mid": mid, "until": _naive(until), "limit": int(limit)}
        past = ""
        if after is not None:
            past = f" AND ({watermark} > $wts OR ({watermark} = $wts AND e.event_id > $wid))"
            params.update(wts=_naive(after[0]), wid=after[1])
        join = (
            "JOIN actuals a ON a.event_id = e.event_id AND a.model_id = $mid AND a.event_ts = e.ts"
            if kind == "actuals"
            else "LEFT JOIN actuals a ON a.event_id = e.event_id AND a.model_id = $mid"
            " AND a.event_ts = e.ts"
        )
        keys = (
            "event_id",
            "ts",
            "version",
            "segments",
            "prompt",
            "response",
            "trace_id",
            "conversation_id",
            "context",
            "label",
            "received_at",
        )
        rows = cur.execute(
            f"""SELECT e.event_id, e.ts, e.version, e.segments, {prompt}, {response},
                       {", ".join(optional)}, a.label, {watermark}
            FROM {ev} e {join}
            WHERE (e.prompt IS NOT NULL OR e.response IS NOT NULL)
              AND {watermark} <= $until {past}
            ORDER BY {watermark}, e.event_id LIMIT $limit""",
            params,
        ).fetchall()
        out = []
        for r in rows:
            row = dict(zip(keys, r, strict=True))
            row["segments"] = dict(row["segments"] or {})
            out.append(row)
        return out

    def llm_model_ids(self) -> list[tuple[int, str]]:
        """(id, name) of every model, LLM models first (the runner checks each for calls)."""
        with self._models_lock:
            models = list(self._models.values())
        models.sort(key=lambda m: (m.task != "llm", m.name))
        return [(int(m.id), str(m.name)) for m in models]


def _all_timed(con: duckdb.DuckDBPyConnection) -> bool:
    row = first(con.execute("SELECT count(*) FROM _evnew WHERE event_ts IS NULL").fetchall())
    return bool(row is not None and row[0] == 0)
