"""Automated responses on the DuckDB store: every run of an action, from request to outcome.

``action_runs`` holds one row per run. A run is written by :func:`enqueue_action_runs` in the
transaction that records the alert transition asking for it (as the notification outbox is),
so a transition never happens without its runs, nor a run without its transition. Statuses::

    awaiting_approval --approve--> queued --claim--> running --> succeeded | failed | timed_out
    awaiting_approval --reject---> rejected
    rate_limited, silenced                      recorded at enqueue time, never executed
    running (found at start-up)  --> interrupted     never re-run

The rate limit is decided when the run is enqueued: runs of the same action and model requested
in the last ``per`` count, except those never meant to run (rate-limited, rejected, silenced)
and undo runs (a fallback cleared on resolution). A run found ``running`` when the server
starts was cut off by a crash: it is marked ``interrupted`` and not run again, because half of
a command or a rollback may have happened already.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import duckdb

from watchkeeper.store.base import RUN_STATUSES, ActionRequest
from watchkeeper.store.duckdb_reads import first

DDL = """
CREATE SEQUENCE IF NOT EXISTS action_run_ids START 1;
CREATE TABLE IF NOT EXISTS action_runs (id BIGINT PRIMARY KEY, action VARCHAR, type VARCHAR,
    alert_id BIGINT, model VARCHAR, monitor VARCHAR, kind VARCHAR, status VARCHAR,
    payload VARCHAR, requested_at TIMESTAMP, decided_at TIMESTAMP, decided_by VARCHAR,
    started_at TIMESTAMP, finished_at TIMESTAMP, exit_code INTEGER, output VARCHAR,
    error VARCHAR, undo BOOLEAN);
"""

FINAL_STATUSES = ("succeeded", "failed", "timed_out", "interrupted")
_NOT_COUNTED = ("rate_limited", "rejected", "silenced")
_COLUMNS = (
    "id",
    "action",
    "type",
    "alert_id",
    "model",
    "monitor",
    "kind",
    "status",
    "payload",
    "requested_at",
    "decided_at",
    "decided_by",
    "started_at",
    "finished_at",
    "exit_code",
    "output",
    "error",
    "undo",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM action_runs"


def enqueue_action_runs(
    con: duckdb.DuckDBPyConnection,
    change: Mapping[str, Any],
    alert_id: int,
    requests: Sequence[ActionRequest],
    now: datetime,
    muted: bool,
) -> None:
    """Record the runs one alert transition asks for, inside the caller's transaction.

    ``muted``: a silence matches the alert (or it re-notifies an acknowledged one); its runs
    are recorded as ``silenced``. Undo runs are never held back."""
    for r in requests:
        status = "awaiting_approval" if r.approval and not r.undo else "queued"
        error = None
        if muted and not r.undo:
            status = "silenced"
            error = "held back: a silence matches the alert, or the alert is acknowledged"
        elif r.rate_max is not None and r.rate_per is not None and not r.undo:
            n = first(
                con.execute(
                    "SELECT count(*) FROM action_runs WHERE action = ? AND model = ?"
                    " AND requested_at > ? AND NOT coalesce(undo, false)"
                    f" AND status NOT IN {_NOT_COUNTED}",
                    [r.action, change["model"], now - r.rate_per],
                ).fetchall()
            )[0]
            if n >= r.rate_max:
                status = "rate_limited"
                error = (
                    f"rate limit: {n} run(s) of {r.action} for model {change['model']} in the"
                    f" last {_seconds(r.rate_per.total_seconds())}; at most {r.rate_max}"
                )
        con.execute(
            "INSERT INTO action_runs VALUES (nextval('action_run_ids'), ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, NULL, NULL, NULL, ?, NULL, NULL, ?, ?)",
            [r.action, r.type, alert_id, change["model"], change["monitor"], change["kind"],
             status, r.payload.decode(), now, now if status in _NOT_COUNTED else None, error,
             r.undo],
        ).fetchall()  # fmt: skip


def _seconds(s: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{s:g}s"


class Actions:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore`."""

    _con: duckdb.DuckDBPyConnection | None
    _submit: Callable[..., Any]
    _cursor: Callable[[], duckdb.DuckDBPyConnection]

    def list_action_runs(
        self,
        *,
        model: str | None = None,
        action: str | None = None,
        status: str | None = None,
        alert_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Action runs, newest first; every filter given must match."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        for column, value in (
            ("model", model),
            ("action", action),
            ("status", status),
            ("alert_id", alert_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = (
            self._cursor()
            .execute(
                f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {int(limit)}",
                params,
            )
            .fetchall()
        )
        return [_run(row) for row in rows]

    def get_action_run(self, run_id: int) -> dict[str, Any] | None:
        """One run, or None."""
        row = first(self._cursor().execute(f"{_SELECT} WHERE id = ?", [run_id]).fetchall())
        return None if row is None else _run(row)

    def decide_action_run(
        self, run_id: int, approve: bool, by: str | None, reason: str | None = None
    ) -> str | None:
        """Approve (queued) or reject a run awaiting approval. Returns the run's status before
        (the decision applies only when it was ``awaiting_approval``); None: no such run."""

        def fn() -> str | None:
            assert self._con is not None
            con = self._con
            row = first(
                con.execute("SELECT status FROM action_runs WHERE id = ?", [run_id]).fetchall()
            )
            if row is None:
                return None
            before = str(row[0])
            if before != "awaiting_approval":
                return before
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            if approve:
                con.execute(
                    "UPDATE action_runs SET status = 'queued', decided_at = ?, decided_by = ?"
                    " WHERE id = ?",
                    [now, by, run_id],
                ).fetchall()
            else:
                why = f"rejected by {by or 'someone'}" + (f": {reason}" if reason else "")
                con.execute(
                    "UPDATE action_runs SET status = 'rejected', decided_at = ?, decided_by = ?,"
                    " finished_at = ?, error = ? WHERE id = ?",
                    [now, by, now, why, run_id],
                ).fetchall()
            return before

        result: str | None = self._submit(fn, 0)
        return result

    def claim_action_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """Mark up to ``limit`` queued runs (oldest first) running and return them."""

        def fn() -> list[dict[str, Any]]:
            assert self._con is not None
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            ids = [
                r[0]
                for r in self._con.execute(
                    "UPDATE action_runs SET status = 'running', started_at = ? WHERE id IN"
                    " (SELECT id FROM action_runs WHERE status = 'queued' ORDER BY id LIMIT ?)"
                    " RETURNING id",
                    [now, int(limit)],
                ).fetchall()
            ]
            if not ids:
                return []
            marks = ", ".join("?" for _ in ids)
            rows = self._con.execute(f"{_SELECT} WHERE id IN ({marks}) ORDER BY id", ids).fetchall()
            return [_run(row) for row in rows]

        claimed: list[dict[str, Any]] = self._submit(fn, 0)
        return claimed

    def finish_action_run(
        self,
        run_id: int,
        status: str,
        *,
        exit_code: int | None = None,
        output: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record a run's outcome (one of succeeded, failed, timed_out, interrupted)."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"a run ends {', '.join(FINAL_STATUSES)}, not {status!r}")

        def fn() -> None:
            assert self._con is not None
            self._con.execute(
                "UPDATE action_runs SET status = ?, finished_at = ?, exit_code = ?, output = ?,"
                " error = ? WHERE id = ?",
                [status, datetime.now(timezone.utc).replace(tzinfo=None), exit_code,
                 None if output is None else json.dumps(output, default=str), error, run_id],
            ).fetchall()  # fmt: skip

        self._submit(fn, 0)

    def interrupt_action_runs(self) -> int:
        """Mark every run still ``running`` (cut off by a crash) ``interrupted``; returns how
        many. Called once when the action runner starts, before it claims anything."""

        def fn() -> int:
            assert self._con is not None
            rows = self._con.execute(
                "UPDATE action_runs SET status = 'interrupted', finished_at = ?, error = ?"
                " WHERE status = 'running' RETURNING id",
                [datetime.now(timezone.utc).replace(tzinfo=None),
                 "the server stopped while it ran; not run again (it may have done part of"
                 " its work)"],
            ).fetchall()  # fmt: skip
            return len(rows)

        return int(self._submit(fn, 0))

    def action_counts(self) -> dict[str, int]:
        """Runs by status."""
        return {
            str(status): int(n)
            for status, n in self._cursor()
            .execute("SELECT status, count(*) FROM action_runs GROUP BY 1")
            .fetchall()
        }


def _run(row: Sequence[Any]) -> dict[str, Any]:
    run = dict(zip(_COLUMNS, row, strict=True))
    for key in ("requested_at", "decided_at", "started_at", "finished_at"):
        if run[key] is not None:
            run[key] = run[key].replace(tzinfo=timezone.utc)
    run["payload"] = json.loads(run["payload"]) if run["payload"] else None
    run["output"] = json.loads(run["output"]) if run["output"] else None
    run["undo"] = bool(run["undo"])
    return run


__all__ = ["DDL", "FINAL_STATUSES", "RUN_STATUSES", "Actions", "enqueue_action_runs"]
