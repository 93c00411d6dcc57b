"""Human feedback on LLM calls, on the DuckDB store.

``feedback`` keeps every piece of feedback as sent: thumbs, a score, a comment, a corrected
answer, who gave it and when, tied to an event and/or a trace of one model. A client may name
each piece (``feedback_id``); a resend with the same name stores nothing again.

Feedback also feeds the other quality signals, after its own commit:

- a verdict (thumbs or score) on a stored call becomes that call's ``human`` evaluation
  (score: the score, else 1 for up and 0 for down; flagged: thumbs down or score < 0.5),
  through :meth:`record_evaluations`: the newest verdict on the call wins;
- a corrected answer becomes the call's actual (its label), so the reference evaluators
  (exact match, token F1) run on it; the newest correction wins;
- feedback naming only a trace attaches to the model's **last** call in that trace (the
  latest event with that ``trace_id``: in a RAG or agent trace the final answer is what a
  person sees and rates); the stored row then carries that call's ``event_id``.

Both follow-ups are replacements, so they are redone for every call a request touches, a
resent duplicate included: a resend after a failure between the two commits heals the gap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from watchkeeper.store import duckdb_sql as sql
from watchkeeper.store.base import IngestResult

log = logging.getLogger("watchkeeper.store")

DDL = """
CREATE SEQUENCE IF NOT EXISTS feedback_ids START 1;
CREATE TABLE IF NOT EXISTS feedback (id BIGINT PRIMARY KEY, model_id INTEGER,
    event_id VARCHAR, trace_id VARCHAR, thumbs VARCHAR, score DOUBLE, comment VARCHAR,
    corrected_answer VARCHAR, "by" VARCHAR, created_at TIMESTAMP, feedback_id VARCHAR);
"""

FIELDS = ("thumbs", "score", "comment", "corrected_answer", "by")
_COLUMNS = ("id", "event_id", "trace_id", *FIELDS, "created_at", "feedback_id")
_SELECT = ", ".join(sql.ident(c) for c in _COLUMNS)
_ACTUALS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("label_value", pa.float64()),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def _naive(ts: datetime | None) -> datetime | None:
    if ts is None or ts.tzinfo is None:
        return ts
    return ts.astimezone(timezone.utc).replace(tzinfo=None)


def human_verdict(thumbs: str | None, score: float | None) -> tuple[float, bool] | None:
    """(score, flagged) of a person's verdict; None without thumbs or score. The score wins
    over thumbs for the score; either one flags (thumbs down, or score below 0.5)."""
    if thumbs is None and score is None:
        return None
    value = score if score is not None else (1.0 if thumbs == "up" else 0.0)
    return float(value), thumbs == "down" or (score is not None and score < 0.5)


_NEWEST = (
    "SELECT event_id, {cols} FROM feedback WHERE model_id = ? AND list_contains(?,"
    " event_id) AND {where} QUALIFY row_number() OVER (PARTITION BY event_id"
    " ORDER BY id DESC) = 1"
)


def _verdict_rows(
    cur: duckdb.DuckDBPyConnection, mid: int, event_ids: list[str]
) -> list[dict[str, Any]]:
    """The ``human`` evaluation of the newest verdict (thumbs or score) on each call."""
    verdicts = cur.execute(
        _NEWEST.format(
            cols='id, trace_id, thumbs, score, comment, "by", feedback_id',
            where="(thumbs IS NOT NULL OR score IS NOT NULL)",
        ),
        [mid, event_ids],
    ).fetchall()
    rows = []
    for event_id, fid, trace_id, thumbs, score, comment, by, name in verdicts:
        verdict = human_verdict(thumbs, score)
        if verdict is None:
            continue
        detail = {"feedback": fid, "feedback_id": name, "by": by, "comment": comment}
        rows.append(
            {
                "event_id": event_id,
                "trace_id": trace_id,
                "evaluator": "human",
                "score": verdict[0],
                "flagged": verdict[1],
                "label": thumbs,
                "detail": {k: v for k, v in detail.items() if v is not None},
                "source": "human",
            }
        )
    return rows


def _row(model: str, values: Sequence[Any]) -> dict[str, Any]:
    out = {"model": model, **dict(zip(_COLUMNS, values, strict=True))}
    out["created_at"] = out["created_at"].replace(tzinfo=timezone.utc)
    return out


class Feedback:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore`."""

    _con: duckdb.DuckDBPyConnection | None
    _submit: Callable[..., Any]
    _cursor: Callable[[], duckdb.DuckDBPyConnection]
    _require: Callable[[str], Any]
    _models: dict[str, Any]
    _models_lock: Any
    record_evaluations: Callable[..., int]
    ingest_actuals: Callable[[str, pa.Table], IngestResult]

    def human_verdicts(self, model: int, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The ``human`` evaluation rows (for :meth:`record_evaluations`) of the newest
        verdict on each of these calls: the evaluator runner adds them when it meets calls
        whose feedback arrived before them."""
        if not event_ids:
            return []
        return _verdict_rows(self._cursor(), model, list(event_ids))

    # ------------------------------------------------------------------ writes
    def record_feedback(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Store feedback items (keys: ``model``, ``event_id``, ``trace_id``, ``thumbs``,
        ``score``, ``comment``, ``corrected_answer``, ``by``, ``created_at`` (aware or naive
        UTC; None: now), ``feedback_id``) in one transaction, then record the human
        evaluations and corrected answers they imply. One answer per item: ``{id,
        feedback_id, duplicate, event_id, trace_id, evaluation, actual}`` (``event_id``: the
        call it attached to, or None; ``evaluation``/``actual``: whether it set them).

        UnknownModelError (nothing stored) when a model does not exist."""
        models = {str(i["model"]): self._require(str(i["model"])) for i in items}
        now = datetime.now(timezone.utc).replace(tzinfo=None)

        def fn() -> list[dict[str, Any]]:
            assert self._con is not None
            con = self._con
            calls, named = {}, {}
            for name, m in models.items():
                mine = [i for i in items if i["model"] == name]
                calls[name] = self._find_calls(
                    con,
                    m.id,
                    [i["event_id"] for i in mine if i.get("event_id") is not None],
                    [i["trace_id"] for i in mine if i.get("trace_id") is not None],
                )
                named[name] = self._named(
                    con, m.id, [i["feedback_id"] for i in mine if i.get("feedback_id") is not None]
                )
            return [
                self._insert_feedback(
                    con, models[i["model"]], i, now, calls[i["model"]], named[i["model"]]
                )
                for i in items
            ]

        results: list[dict[str, Any]] = self._submit(fn, max(len(items), 1))
        by_model: dict[str, set[str]] = {}
        for item, result in zip(items, results, strict=True):
            if result["event_id"] is not None:
                by_model.setdefault(str(item["model"]), set()).add(result["event_id"])
        touched: dict[tuple[str, str], tuple[bool, bool]] = {}
        for model, event_ids in by_model.items():
            touched.update(self._follow_up(model, models[model].id, sorted(event_ids)))
        for item, result in zip(items, results, strict=True):
            done = touched.get((str(item["model"]), result["event_id"]), (False, False))
            result["evaluation"] = done[0] and result["verdict_here"]
            result["actual"] = done[1] and result["correction_here"]
            del result["verdict_here"], result["correction_here"]
        return results

    def _insert_feedback(
        self,
        con: duckdb.DuckDBPyConnection,
        m: Any,
        item: Mapping[str, Any],
        now: datetime,
        calls: tuple[dict[str, str | None], dict[str, str]],
        named: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        """One item inside the writer's transaction; ``named`` holds the model's stored
        items by ``feedback_id`` and gains this one (a name repeated within a request is a
        duplicate too)."""
        fid = item.get("feedback_id")
        if fid is not None and fid in named:
            return {**named[fid], "duplicate": True}
        event_id: str | None = item.get("event_id")
        trace_id: str | None = item.get("trace_id")
        by_event, last_of_trace = calls
        if event_id is not None:
            trace_id = trace_id if trace_id is not None else by_event.get(event_id)
        elif trace_id is not None:
            event_id = last_of_trace.get(trace_id)
        created = _naive(item.get("created_at")) or now
        values = [item.get(f) for f in FIELDS]
        row = con.execute(
            "INSERT INTO feedback VALUES (nextval('feedback_ids'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING id",
            [m.id, event_id, trace_id, *values, created, fid],
        ).fetchall()
        result = {
            "id": row[0][0],
            "feedback_id": fid,
            "duplicate": False,
            "event_id": event_id,
            "trace_id": trace_id,
            "verdict_here": item.get("thumbs") is not None or item.get("score") is not None,
            "correction_here": item.get("corrected_answer") is not None,
        }
        if fid is not None:
            named[fid] = result
        return dict(result)

    @staticmethod
    def _named(con: duckdb.DuckDBPyConnection, mid: int, names: list[str]) -> dict[str, Any]:
        """The model's stored feedback among ``names``, by name, as a duplicate answers it."""
        if not names:
            return {}
        rows = con.execute(
            "SELECT feedback_id, min(id), arg_min(event_id, id), arg_min(trace_id, id),"
            " bool_or(thumbs IS NOT NULL OR score IS NOT NULL),"
            " bool_or(corrected_answer IS NOT NULL) FROM feedback"
            " WHERE model_id = ? AND list_contains(?, feedback_id) GROUP BY feedback_id",
            [mid, sorted(set(names))],
        ).fetchall()
        return {
            r[0]: {
                "id": r[1],
                "feedback_id": r[0],
                "event_id": r[2],
                "trace_id": r[3],
                "verdict_here": bool(r[4]),
                "correction_here": bool(r[5]),
            }
            for r in rows
        }

    @staticmethod
    def _find_calls(
        con: duckdb.DuckDBPyConnection, mid: int, event_ids: list[str], trace_ids: list[str]
    ) -> tuple[dict[str, str | None], dict[str, str]]:
        """The stored calls feedback may be about: {event_id: its trace_id} of the events
        named, and {trace_id: event_id of its last call} of the traces named."""
        ev = sql.events_table(mid)
        by_event: dict[str, str | None] = {}
        if event_ids:
            rows = con.execute(
                f"SELECT event_id, arg_min(trace_id, ts) FROM {ev}"
                " WHERE list_contains(?, event_id) GROUP BY event_id",
                [sorted(set(event_ids))],
            ).fetchall()
            by_event = {r[0]: r[1] for r in rows}
        last: dict[str, str] = {}
        if trace_ids:
            rows = con.execute(
                f"SELECT trace_id, arg_max(event_id, (ts, event_id)) FROM {ev}"
                " WHERE list_contains(?, trace_id) GROUP BY trace_id",
                [sorted(set(trace_ids))],
            ).fetchall()
            last = {r[0]: r[1] for r in rows}
        return by_event, last

    def _follow_up(
        self, model: str, mid: int, event_ids: list[str]
    ) -> dict[tuple[str, str], tuple[bool, bool]]:
        """Record the newest verdict of each call as its ``human`` evaluation and the newest
        correction as its actual; (evaluation set, actual set) per (model, event_id).

        A verdict on a call not stored yet records nothing now (an evaluation needs its
        call's time): the evaluator runner records it when the call arrives
        (:meth:`human_verdicts`); a correction is stored as an actual either way (actuals
        wait for their call)."""
        cur = self._cursor()
        ev = sql.events_table(mid)
        stored = {
            r[0]
            for r in cur.execute(
                f"SELECT DISTINCT event_id FROM {ev} WHERE list_contains(?, event_id)",
                [event_ids],
            ).fetchall()
        }
        corrections = cur.execute(
            _NEWEST.format(
                cols="corrected_answer, created_at", where="corrected_answer IS NOT NULL"
            ),
            [mid, event_ids],
        ).fetchall()
        out: dict[tuple[str, str], tuple[bool, bool]] = {}
        rows = [r for r in _verdict_rows(cur, mid, event_ids) if r["event_id"] in stored]
        for row in rows:
            out[(model, row["event_id"])] = (True, False)
        if rows:
            self.record_evaluations(model, rows)
        if corrections:
            table = pa.Table.from_pylist(
                [
                    {
                        "event_id": event_id,
                        "label": answer,
                        "label_value": None,
                        "ts": created.replace(tzinfo=timezone.utc),
                    }
                    for event_id, answer, created in corrections
                ],
                schema=_ACTUALS,
            )
            self.ingest_actuals(model, table)
            for event_id, _, _ in corrections:
                out[(model, event_id)] = (out.get((model, event_id), (False, False))[0], True)
        return out

    # ------------------------------------------------------------------ reads
    def list_feedback(
        self,
        model: str | None = None,
        event_id: str | None = None,
        trace_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Feedback, newest first, optionally of one model (UnknownModelError if unknown),
        call, trace, and [start, end) of its time."""
        where, params = ["TRUE"], []
        names: dict[int, str]
        if model is not None:
            m = self._require(model)
            where.append("model_id = ?")
            params.append(m.id)
            names = {m.id: m.name}
        else:
            with self._models_lock:
                names = {s.id: s.name for s in self._models.values()}
        for column, value in (("event_id", event_id), ("trace_id", trace_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if start is not None:
            where.append("created_at >= ?")
            params.append(_naive(start))
        if end is not None:
            where.append("created_at < ?")
            params.append(_naive(end))
        rows = (
            self._cursor()
            .execute(
                f"SELECT model_id, {_SELECT} FROM feedback WHERE {' AND '.join(where)}"
                " ORDER BY created_at DESC, id DESC LIMIT ?",
                [*params, int(limit)],
            )
            .fetchall()
        )
        return [_row(names.get(r[0], str(r[0])), r[1:]) for r in rows]

    def verdict_pairs(
        self,
        model: str,
        evaluator: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[tuple[bool, bool]]:
        """(human flagged, ``evaluator`` flagged) for each call of the model both judged,
        with the call's time in [start, end) when given."""
        mid = self._require(model).id
        where = [
            "h.model_id = ?",
            "h.evaluator = 'human'",
            "h.flagged IS NOT NULL",
            "o.flagged IS NOT NULL",
        ]
        params: list[Any] = [evaluator, mid]
        if start is not None:
            where.append("h.event_ts >= ?")
            params.append(_naive(start))
        if end is not None:
            where.append("h.event_ts < ?")
            params.append(_naive(end))
        rows = (
            self._cursor()
            .execute(
                "SELECT h.flagged, o.flagged FROM evaluations h JOIN evaluations o"
                " ON o.model_id = h.model_id AND o.event_id = h.event_id AND o.evaluator = ?"
                f" WHERE {' AND '.join(where)} ORDER BY h.event_id",
                params,
            )
            .fetchall()
        )
        return [(bool(h), bool(o)) for h, o in rows]
