"""Spans and traces on the DuckDB store: every span of every OTLP export, for the trace views.

``spans`` holds one row per (trace_id, span_id). The exports that reach the store's writer
together are appended in one insert from their Arrow batches; spans already stored (an
exporter's retry) are skipped after a semi-join that only looks at stored spans whose start
falls in the batches' own start range, so a resent export stores nothing twice and the
check does not scan the whole table. Attributes, span
events and the resource are JSON text.

A trace is the group of its spans: it starts with its first span and lasts until its last
span ends. Listing traces aggregates the spans that start within ``TRACE_MARGIN`` of the
asked range and keeps the traces whose first span starts in it (a trace longer than the
margin is listed from the spans inside it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.store.duckdb_reads import first
from watchkeeper.store.duckdb_writer import Op

DDL = """
CREATE TABLE IF NOT EXISTS spans (trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR,
    service VARCHAR, model VARCHAR, name VARCHAR, kind VARCHAR, start_ts TIMESTAMP,
    end_ts TIMESTAMP, duration_ms DOUBLE, status VARCHAR, status_message VARCHAR,
    is_llm BOOLEAN, conversation_id VARCHAR, input_tokens BIGINT, output_tokens BIGINT,
    cost_usd DOUBLE, attributes VARCHAR, events VARCHAR, resource VARCHAR, scope VARCHAR,
    received_at TIMESTAMP);
"""

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "model",
    "name",
    "kind",
    "start_ts",
    "end_ts",
    "duration_ms",
    "status",
    "status_message",
    "is_llm",
    "conversation_id",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "attributes",
    "events",
    "resource",
    "scope",
    "received_at",
)
_JSON_COLUMNS = ("attributes", "events", "resource")
_TIME_COLUMNS = ("start_ts", "end_ts", "received_at")
TRACE_MARGIN = timedelta(hours=1)
# Trace listing reads the asked range from its end, first its last 15 minutes, then more
# until a page is full (see list_traces).
FIRST_STEP = timedelta(minutes=15)
TRACE_STATUSES = ("ok", "error")

# One trace's summary from its spans (the shape of GET /api/v1/traces items).
_SUMMARY = """
    min(start_ts) AS start,
    max(coalesce(end_ts, start_ts)) AS end_,
    count(*) AS spans,
    count(*) FILTER (WHERE is_llm) AS llm_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd,
    CASE WHEN bool_or(status = 'error') THEN 'error' ELSE 'ok' END AS status,
    coalesce(arg_min(name, start_ts) FILTER (WHERE parent_span_id IS NULL),
             arg_min(name, start_ts)) AS root_name,
    list_sort(list(DISTINCT model)) AS models,
    min(conversation_id) AS conversation_id
"""
_SUMMARY_KEYS = (
    "trace_id",
    "start",
    "end",
    "spans",
    "llm_calls",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "status",
    "root_name",
    "models",
    "conversation_id",
    "duration_ms",
)


def _naive(ts: datetime) -> datetime:
    return ts if ts.tzinfo is None else ts.astimezone(timezone.utc).replace(tzinfo=None)


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts.replace(tzinfo=timezone.utc)


def _span_row(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(SPAN_COLUMNS, row, strict=True))
    for key in _JSON_COLUMNS:
        value = out[key]
        out[key] = orjson.loads(value) if value else ({} if key != "events" else [])
    for key in _TIME_COLUMNS:
        out[key] = _aware(out[key])
    return out


def _summary(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(_SUMMARY_KEYS, row, strict=True))
    out["start"] = _aware(out["start"])
    out["end"] = _aware(out["end"])
    return out


def span_tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spans depth first (children by start time, then id), each with its ``depth``; a
    span whose parent is not in the trace is a root. Each span appears once."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_span_id"]
        children.setdefault(parent if parent in ids else None, []).append(span)

    def order(s: dict[str, Any]) -> tuple[datetime, str]:
        return (s["start_ts"] or datetime.min.replace(tzinfo=timezone.utc), s["span_id"])

    out: list[dict[str, Any]] = []
    done: set[str] = set()

    def walk(roots: list[dict[str, Any]]) -> None:
        stack = [(s, 0) for s in sorted(roots, key=order, reverse=True)]
        while stack:
            span, depth = stack.pop()
            if span["span_id"] in done:
                continue
            done.add(span["span_id"])
            out.append({**span, "depth": depth})
            kids = sorted(children.get(span["span_id"], []), key=order, reverse=True)
            stack.extend((k, depth + 1) for k in kids)

    walk(children.get(None, []))
    walk([s for s in spans if s["span_id"] not in done])  # parent cycles: listed as roots
    return out


class Traces:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore`."""

    _con: duckdb.DuckDBPyConnection | None
    _submit: Callable[..., Any]
    _enqueue: Callable[[list[Op]], None]
    _cursor: Callable[[], duckdb.DuckDBPyConnection]

    # ------------------------------------------------------------------ writes
    def ingest_spans(self, batch: pa.Table) -> int:
        """Append an export's spans (an Arrow batch with the ``spans`` columns) in one write;
        spans already stored are skipped. Returns how many were new. Exports queued together
        are inserted together (:meth:`_insert_span_group`)."""
        if batch.num_rows == 0:
            return 0
        op = self._spans_op(batch)
        self._enqueue([op])
        result: int = op.future.result()
        return result

    def _spans_op(self, batch: pa.Table) -> Op:
        """The write of an export's spans, merged with the other exports' of its group."""
        return Op(
            lambda: self._insert_span_group([batch])[0],
            batch.num_rows,
            merge=(self._insert_span_group, batch),
        )

    def _insert_span_group(self, batches: list[pa.Table]) -> list[int]:
        """Several exports' spans in one insert (on the writer, inside its transaction):
        spans already stored, or already in an earlier export of the group (a retry sent
        while the first try waits), are skipped. How many were new, per export."""
        assert self._con is not None
        con = self._con
        table = (
            batches[0]
            if len(batches) == 1
            else pa.concat_tables(batches, promote_options="default")
        )
        keep = self._unseen_spans(table)
        columns = ", ".join(table.schema.names)
        new = table if keep is None else table.filter(keep)
        con.register("_wk_spans", new)
        try:
            con.execute(f"INSERT INTO spans ({columns}) SELECT * FROM _wk_spans").fetchall()
        finally:
            con.unregister("_wk_spans")
        if keep is None:
            return [b.num_rows for b in batches]
        out, offset = [], 0
        for b in batches:
            out.append(int(pc.sum(keep.slice(offset, b.num_rows)).as_py() or 0))
            offset += b.num_rows
        return out

    def _unseen_spans(self, table: pa.Table) -> pa.ChunkedArray | pa.Array | None:
        """A mask of the rows to insert: not stored yet (compared with the stored spans that
        start in the rows' own start range, or have no start), and the first of their
        (trace_id, span_id) in ``table``; None when that is every row."""
        assert self._con is not None
        con = self._con
        bounds = pc.min_max(table.column("start_ts"))
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if lo is None:  # no start times: compare with the spans without one
            where, params = "s.start_ts IS NULL", []
        else:
            where = "(s.start_ts BETWEEN ? AND ? OR s.start_ts IS NULL)"
            params = [lo, hi]
        con.register("_wk_spans", table.select(["trace_id", "span_id"]))
        try:
            stored = con.execute(
                f"""SELECT s.trace_id || '/' || s.span_id FROM spans s
                SEMI JOIN _wk_spans b ON s.trace_id = b.trace_id AND s.span_id = b.span_id
                WHERE {where}""",
                params,
            ).fetchall()
        finally:
            con.unregister("_wk_spans")
        keys = pc.binary_join_element_wise(table["trace_id"], table["span_id"], "/")
        repeated = pc.count_distinct(keys).as_py() < table.num_rows
        if not stored and not repeated:
            return None
        seen = {k for (k,) in stored}
        mask = []
        for key in keys.to_pylist():
            mask.append(key not in seen)
            seen.add(key)
        return pa.array(mask, pa.bool_())

    # ------------------------------------------------------------------ reads
    def trace_spans(self, trace_id: str, near: datetime | None = None) -> list[dict[str, Any]]:
        """The spans of a trace by start time (columns as keys; attributes, events and
        resource decoded; times as aware datetimes). Empty for an unknown trace.

        ``near`` (e.g. an LLM call's time, when looking for its retrieval spans) keeps the
        spans that start within ``TRACE_MARGIN`` of it: the look-up then reads only the
        stored spans of that period (spans are appended roughly in time order, so DuckDB
        skips the other row groups) instead of every span's trace id."""
        where = "trace_id = ?"
        params: list[Any] = [trace_id]
        if near is not None:
            where += " AND start_ts BETWEEN ? AND ?"
            params += [_naive(near) - TRACE_MARGIN, _naive(near) + TRACE_MARGIN]
        rows = (
            self._cursor()
            .execute(
                f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE {where}"
                " ORDER BY start_ts NULLS FIRST, span_id",
                params,
            )
            .fetchall()
        )
        return [_span_row(r) for r in rows]

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """A trace's summary (as in :meth:`list_traces`) and its spans as a tree (depth
        first, with ``depth``); None for an unknown trace."""
        spans = self.trace_spans(trace_id)
        if not spans:
            return None
        row = first(
            self._cursor()
            .execute(
                f"""SELECT trace_id, {_SUMMARY},
                date_diff('microsecond', min(start_ts), max(coalesce(end_ts, start_ts)))
                    / 1000.0
                FROM spans WHERE trace_id = ? GROUP BY trace_id""",
                [trace_id],
            )
            .fetchall()
        )
        assert row is not None
        trace = _summary(row)
        trace["spans"] = span_tree(spans)
        return trace

    def list_traces(
        self,
        *,
        start: datetime,
        end: datetime,
        model: str | None = None,
        status: str | None = None,
        min_latency_ms: float | None = None,
        min_cost_usd: float | None = None,
        evaluator: str | None = None,
        flagged: bool | None = None,
        conversation_id: str | None = None,
        limit: int = 100,
        before: tuple[datetime, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Traces whose first span starts in [start, end), newest first (then by trace id
        descending), after ``before`` (a previous page's last (start, trace_id)).

        ``status`` error: a span failed. ``evaluator``/``flagged``: the trace's LLM calls
        were evaluated by that evaluator (any, when None); flagged true: at least one
        evaluation flagged, false: none flagged. Each trace has ``flags``: per evaluator,
        how many of its evaluations are flagged."""
        where = ["start_ts >= $lo", "start_ts < $hi"]
        having = ["min(start_ts) >= $start", "min(start_ts) < $end"]
        params: dict[str, Any] = {"end": _naive(end), "limit": int(limit)}
        if model is not None:
            having.append("bool_or(model = $model)")
            params["model"] = model
        if status is not None:
            having.append("bool_or(status = 'error') = $failed")
            params["failed"] = status == "error"
        if min_latency_ms is not None:
            having.append(
                "date_diff('microsecond', min(start_ts), max(coalesce(end_ts, start_ts)))"
                " / 1000.0 >= $min_latency"
            )
            params["min_latency"] = float(min_latency_ms)
        if min_cost_usd is not None:
            having.append("coalesce(sum(cost_usd), 0) >= $min_cost")
            params["min_cost"] = float(min_cost_usd)
        if conversation_id is not None:
            having.append("bool_or(conversation_id = $conversation)")
            params["conversation"] = conversation_id
        if before is not None:
            having.append(
                "(min(start_ts) < $before OR (min(start_ts) = $before AND trace_id < $before_id))"
            )
            params["before"] = _naive(before[0])
            params["before_id"] = before[1]
        cur = self._cursor()
        has_evals = self._has_table(cur, "evaluations")
        if evaluator is not None or flagged is not None:
            if not has_evals:
                return []
            cond = ["trace_id IS NOT NULL"]
            if evaluator is not None:
                cond.append("evaluator = $evaluator")
                params["evaluator"] = evaluator
            flag_having = ""
            if flagged is not None:
                flag_having = " HAVING bool_or(coalesce(flagged, false)) = $flagged"
                params["flagged"] = flagged
            where.append(
                f"trace_id IN (SELECT trace_id FROM evaluations WHERE {' AND '.join(cond)}"
                f" GROUP BY trace_id{flag_having})"
            )
        query = f"""SELECT trace_id, {_SUMMARY},
                date_diff('microsecond', min(start_ts), max(coalesce(end_ts, start_ts)))
                    / 1000.0
            FROM spans WHERE {" AND ".join(where)}
            GROUP BY trace_id HAVING {" AND ".join(having)}
            ORDER BY start DESC, trace_id DESC LIMIT $limit"""
        # Newest first: the traces that start in the last part of the range come first, so
        # the range is read from its end, in steps, until a step fills the page (a step's
        # answer is exactly the head of the whole range's: a trace's spans start at or
        # after its first span, inside the step's margin). A step that found nothing, or a
        # next step over a third of the range, makes the next one the whole range: at
        # worst ~1.4 passes over it, usually a small part of one.
        lo, hi = _naive(start), _naive(end)
        top = hi if before is None else min(hi, _naive(before[0]) + timedelta(microseconds=1))
        whole = top - lo
        step = FIRST_STEP
        while True:
            step_start = max(lo, top - step)
            params.update(lo=step_start - TRACE_MARGIN, hi=hi + TRACE_MARGIN, start=step_start)
            rows = cur.execute(query, params).fetchall()
            if len(rows) >= limit or step_start <= lo:
                break
            # at the density seen so far, a full page (with room), at least 4 times as far
            step = step * max(4.0, 1.5 * limit / len(rows)) if rows else whole
            if 3 * step >= whole:
                step = whole
        traces = [_summary(r) for r in rows]
        flags = self._trace_flags(cur, [t["trace_id"] for t in traces]) if has_evals else {}
        for trace in traces:
            trace["flags"] = flags.get(trace["trace_id"], {})
        return traces

    def trace_flags(self, trace_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per trace, per evaluator: how many of its evaluations are flagged."""
        cur = self._cursor()
        if not trace_ids or not self._has_table(cur, "evaluations"):
            return {}
        return self._trace_flags(cur, trace_ids)

    @staticmethod
    def _trace_flags(
        cur: duckdb.DuckDBPyConnection, trace_ids: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        if not trace_ids:
            return {}
        rows = cur.execute(
            "SELECT trace_id, evaluator, count(*) FILTER (WHERE flagged) FROM evaluations"
            " WHERE list_contains(?, trace_id) GROUP BY trace_id, evaluator"
            " ORDER BY trace_id, evaluator",
            [list(trace_ids)],
        ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for trace_id, evaluator, n in rows:
            out.setdefault(trace_id, {})[evaluator] = int(n)
        return out

    @staticmethod
    def _has_table(cur: duckdb.DuckDBPyConnection, name: str) -> bool:
        row = first(
            cur.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]
            ).fetchall()
        )
        return bool(row and row[0])
