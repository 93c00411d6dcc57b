"""Alerts on the DuckDB store: each series' state, the alerts, and their transitions.

``alert_states`` holds one row per series (a monitor, or a monitor and segment value) with its
state machine as JSON. ``alerts`` holds one row per episode — opened by ``pending`` or
``firing``, updated in place by escalation and resolution — keyed by a fingerprint of the
series; ``alert_transitions`` keeps every transition with its window, cause, value and the
threshold or band (``context``). All of a run's changes commit in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import duckdb

from watchkeeper.store.base import ActionRequest
from watchkeeper.store.duckdb_actions import enqueue_action_runs
from watchkeeper.store.duckdb_reads import _naive, first

DDL = """
CREATE SEQUENCE IF NOT EXISTS alert_ids START 1;
CREATE TABLE IF NOT EXISTS alert_states (series VARCHAR PRIMARY KEY, monitor VARCHAR,
    segment_value VARCHAR, state VARCHAR, updated_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS alerts (id BIGINT PRIMARY KEY, fingerprint VARCHAR, series VARCHAR,
    monitor VARCHAR, model VARCHAR, metric VARCHAR, version VARCHAR, segment VARCHAR,
    segment_value VARCHAR, window_size VARCHAR, status VARCHAR, severity VARCHAR,
    started_at TIMESTAMP, resolved_at TIMESTAMP, last_value DOUBLE, labels VARCHAR,
    updated_at TIMESTAMP);
CREATE SEQUENCE IF NOT EXISTS outbox_ids START 1;
CREATE TABLE IF NOT EXISTS outbox (id BIGINT PRIMARY KEY, channel VARCHAR, alert_id BIGINT,
    kind VARCHAR, payload BLOB, created_at TIMESTAMP, attempts INTEGER,
    next_attempt_at TIMESTAMP, delivered_at TIMESTAMP, last_error VARCHAR, status VARCHAR);
CREATE SEQUENCE IF NOT EXISTS silence_ids START 1;
CREATE TABLE IF NOT EXISTS silences (id BIGINT PRIMARY KEY, model VARCHAR, monitor VARCHAR,
    severity VARCHAR, labels VARCHAR, starts_at TIMESTAMP, ends_at TIMESTAMP,
    created_by VARCHAR, comment VARCHAR, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS alert_acks (alert_id BIGINT PRIMARY KEY, acknowledged_at TIMESTAMP,
    acknowledged_by VARCHAR, comment VARCHAR);
CREATE TABLE IF NOT EXISTS alert_transitions (alert_id BIGINT, kind VARCHAR, window_start TIMESTAMP,
    recorded_at TIMESTAMP, severity VARCHAR, cause VARCHAR, value DOUBLE, samples BIGINT,
    context VARCHAR);
"""

OPENING = ("pending", "firing", "no_data")
OPEN_STATUSES = ("pending", "firing")


def fingerprint(series: str) -> str:
    """De-duplicates: one open alert per series at a time carries this."""
    return hashlib.sha256(series.encode()).hexdigest()[:16]


class Alerts:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore`."""

    _con: duckdb.DuckDBPyConnection | None
    _submit: Callable[..., Any]
    _cursor: Callable[[], duckdb.DuckDBPyConnection]

    def alert_states(self) -> dict[str, dict[str, Any]]:
        """Every series' stored state machine, by series."""
        return {
            series: json.loads(state)
            for series, state in self._cursor()
            .execute("SELECT series, state FROM alert_states")
            .fetchall()
        }

    def record_alerts(
        self,
        states: Mapping[str, tuple[str, str | None, dict[str, Any]]],
        changes: Sequence[Mapping[str, Any]],
        outbox: Callable[[Mapping[str, Any], int], list[tuple[str, bytes]]] | None = None,
        actions: Callable[[Mapping[str, Any], int], list[ActionRequest]] | None = None,
    ) -> None:
        """Store a run's states and transitions in one transaction (waits for the commit),
        with the notifications ``outbox(change, alert_id)`` asks for: (channel, body) pairs,
        and the action runs ``actions(change, alert_id)`` asks for."""

        def fn() -> None:
            assert self._con is not None
            con = self._con
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            for series, (monitor, seg, state) in states.items():
                con.execute(
                    "INSERT OR REPLACE INTO alert_states VALUES (?, ?, ?, ?, ?)",
                    [series, monitor, seg, json.dumps(state), now],
                ).fetchall()
            for c in changes:
                alert_id = _apply_change(con, c, now)
                if alert_id is None or (outbox is None and actions is None):
                    continue
                muted = _muted(con, c, alert_id, now)
                if actions is not None:
                    enqueue_action_runs(con, c, alert_id, actions(c, alert_id), now, muted)
                if outbox is None or muted:
                    continue  # recorded, not sent: silenced, or acknowledged (re-notify)
                for channel, body in outbox(c, alert_id):
                    con.execute(
                        "INSERT INTO outbox VALUES (nextval('outbox_ids'), ?, ?, ?, ?, ?, 0, ?,"
                        " NULL, NULL, 'queued')",
                        [channel, alert_id, c["kind"], body, now, now],
                    ).fetchall()

        self._submit(fn, 0)

    def add_silence(
        self,
        *,
        model: str | None,
        monitor: str | None,
        severity: str | None,
        labels: Mapping[str, str] | None,
        starts_at: datetime,
        ends_at: datetime,
        created_by: str | None,
        comment: str | None,
    ) -> int:
        """A silence: notifications of matching alerts are not sent until it ends."""

        def fn() -> int:
            assert self._con is not None
            row = first(
                self._con.execute(
                    "INSERT INTO silences VALUES (nextval('silence_ids'), ?, ?, ?, ?, ?, ?, ?, ?,"
                    " ?) RETURNING id",
                    [model, monitor, severity, json.dumps(dict(labels or {})),
                     _naive(starts_at), _naive(ends_at), created_by, comment,
                     datetime.now(timezone.utc).replace(tzinfo=None)],
                ).fetchall()
            )  # fmt: skip
            return int(row[0])

        return int(self._submit(fn, 0))

    def expire_silence(self, silence_id: int) -> bool:
        """End a silence now; False when there is no such silence."""

        def fn() -> bool:
            assert self._con is not None
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            rows = self._con.execute(
                "UPDATE silences SET ends_at = least(ends_at, ?) WHERE id = ? RETURNING id",
                [now, silence_id],
            ).fetchall()
            return bool(rows)

        return bool(self._submit(fn, 0))

    def list_silences(self, *, active_at: datetime | None = None) -> list[dict[str, Any]]:
        where, params = "", []
        if active_at is not None:
            where = " WHERE starts_at <= ? AND ends_at > ?"
            params = [_naive(active_at), _naive(active_at)]
        cols = "id, model, monitor, severity, labels, starts_at, ends_at, created_by, comment"
        out = []
        for row in (
            self._cursor()
            .execute(f"SELECT {cols} FROM silences{where} ORDER BY id DESC", params)
            .fetchall()
        ):
            d = dict(zip([c.strip() for c in cols.split(",")], row, strict=True))
            d["labels"] = json.loads(d["labels"] or "{}")
            for k in ("starts_at", "ends_at"):
                d[k] = d[k].replace(tzinfo=timezone.utc)
            out.append(d)
        return out

    def acknowledge(self, alert_id: int, by: str | None, comment: str | None) -> bool:
        """Acknowledge an alert: its re-notifications stop. False when there is no alert."""

        def fn() -> bool:
            assert self._con is not None
            con = self._con
            if not con.execute("SELECT 1 FROM alerts WHERE id = ?", [alert_id]).fetchall():
                return False
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            con.execute(
                "INSERT OR REPLACE INTO alert_acks VALUES (?, ?, ?, ?)",
                [alert_id, now, by, comment],
            ).fetchall()
            con.execute(
                "INSERT INTO alert_transitions VALUES (?, 'acknowledged', ?, ?, NULL, ?, NULL,"
                " NULL, '{}')",
                [alert_id, now, now, f"acknowledged by {by or 'someone'}"
                 + (f": {comment}" if comment else "")],
            ).fetchall()  # fmt: skip
            return True

        return bool(self._submit(fn, 0))

    def due_notifications(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Queued notifications whose next attempt is due (a first attempt always is), oldest
        first."""
        rows = (
            self._cursor()
            .execute(
                "SELECT id, channel, alert_id, kind, payload, attempts FROM outbox"
                " WHERE status = 'queued' AND (attempts = 0 OR next_attempt_at <= ?)"
                " ORDER BY id LIMIT ?",
                [_naive(now), int(limit)],
            )
            .fetchall()
        )
        names = ("id", "channel", "alert_id", "kind", "payload", "attempts")
        return [dict(zip(names, r, strict=True)) for r in rows]

    def notification_result(
        self, outbox_id: int, ok: bool, error: str | None, retry_at: datetime | None
    ) -> None:
        """Record a delivery attempt: delivered, or failed with a retry time (None: give up)."""

        def fn() -> None:
            assert self._con is not None
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            if ok:
                self._con.execute(
                    "UPDATE outbox SET status = 'delivered', delivered_at = ?,"
                    " attempts = attempts + 1 WHERE id = ?",
                    [now, outbox_id],
                ).fetchall()
            else:
                self._con.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?,"
                    " next_attempt_at = coalesce(?, next_attempt_at),"
                    " status = CASE WHEN ? IS NULL THEN 'failed' ELSE 'queued' END WHERE id = ?",
                    [error, None if retry_at is None else _naive(retry_at),
                     None if retry_at is None else 1, outbox_id],
                ).fetchall()  # fmt: skip

        self._submit(fn, 0)

    def outbox_counts(self) -> dict[str, int]:
        """Notifications by status (queued, delivered, failed)."""
        return {
            str(status): int(n)
            for status, n in self._cursor()
            .execute("SELECT status, count(*) FROM outbox GROUP BY 1")
            .fetchall()
        }

    def list_alerts(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        monitor: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Alerts, newest first, each with its transitions (oldest first)."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if status == "open":
            where.append("status IN ('pending', 'firing')")
        elif status is not None:
            where.append("status = ?")
            params.append(status)
        for column, value in (("model", model), ("monitor", monitor)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("coalesce(resolved_at, updated_at) >= ?")
            params.append(_naive(since))
        cur = self._cursor()
        cols = (
            "id, fingerprint, series, monitor, model, metric, version, segment, segment_value,"
            " window_size, status, severity, started_at, resolved_at, last_value, labels,"
            " updated_at"
        )
        rows = cur.execute(
            f"SELECT {cols} FROM alerts WHERE {' AND '.join(where)}"
            f" ORDER BY started_at DESC, id DESC LIMIT {int(limit)}",
            params,
        ).fetchall()
        names = [c.strip() for c in cols.split(",")]
        out = []
        for row in rows:
            alert = dict(zip(names, row, strict=True))
            alert["window"] = alert.pop("window_size")
            ack = first(
                cur.execute(
                    "SELECT acknowledged_at, acknowledged_by, comment FROM alert_acks"
                    " WHERE alert_id = ?",
                    [alert["id"]],
                ).fetchall()
            )
            alert["acknowledged"] = (
                None
                if ack is None
                else {"at": ack[0].replace(tzinfo=timezone.utc), "by": ack[1], "comment": ack[2]}
            )
            alert["labels"] = json.loads(alert["labels"] or "{}")
            for key in ("started_at", "resolved_at", "updated_at"):
                if alert[key] is not None:
                    alert[key] = alert[key].replace(tzinfo=timezone.utc)
            alert["transitions"] = [
                {
                    "kind": kind,
                    "at": at.replace(tzinfo=timezone.utc),
                    "recorded_at": rec.replace(tzinfo=timezone.utc),
                    "severity": sev,
                    "cause": cause,
                    "value": value,
                    "samples": samples,
                    "context": json.loads(context or "{}"),
                }
                for kind, at, rec, sev, cause, value, samples, context in cur.execute(
                    "SELECT kind, window_start, recorded_at, severity, cause, value, samples,"
                    " context FROM alert_transitions WHERE alert_id = ?"
                    " ORDER BY recorded_at, window_start",
                    [alert["id"]],
                ).fetchall()
            ]
            out.append(alert)
        return out


def _muted(
    con: duckdb.DuckDBPyConnection, c: Mapping[str, Any], alert_id: int, now: datetime
) -> bool:
    """Whether a transition's notifications are held back: an active silence matches it, or
    it re-notifies an alert someone acknowledged."""
    if (
        c["kind"] == "renotify"
        and con.execute("SELECT 1 FROM alert_acks WHERE alert_id = ?", [alert_id]).fetchall()
    ):
        return True
    severity = c.get("severity") or c.get("alert_severity")
    labels = c.get("labels") or {}
    for model, monitor, sev, silenced_labels in con.execute(
        "SELECT model, monitor, severity, labels FROM silences WHERE starts_at <= ?"
        " AND ends_at > ?",
        [now, now],
    ).fetchall():
        wanted = json.loads(silenced_labels or "{}")
        if (
            (model is None or model == c["model"])
            and (monitor is None or monitor == c["monitor"])
            and (sev is None or sev == severity)
            and all(labels.get(k) == v for k, v in wanted.items())
        ):
            return True
    return False


def _apply_change(
    con: duckdb.DuckDBPyConnection, c: Mapping[str, Any], now: datetime
) -> int | None:
    """Open, update or close the series' alert for one transition; returns the alert's id
    (None when the transition has no alert to belong to)."""
    at = _naive(c["at"])
    open_row = first(
        con.execute(
            "SELECT id FROM alerts WHERE series = ? AND status IN ('pending', 'firing')"
            " ORDER BY id DESC LIMIT 1",
            [c["series"]],
        ).fetchall()
    )
    kind = c["kind"]
    if open_row is None:
        if kind not in OPENING:
            return None  # nothing open to attach it to (e.g. a renotify after a close)
        alert_id = first(con.execute("SELECT nextval('alert_ids')").fetchall())[0]
        con.execute(
            "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            [
                alert_id,
                fingerprint(c["series"]),
                c["series"],
                c["monitor"],
                c["model"],
                c["metric"],
                c["version"],
                c["segment"],
                c["segment_value"],
                c["window"],
                "firing" if kind == "firing" else "pending",
                c["severity"],
                at,
                c["value"],
                json.dumps(c["labels"]),
                now,
            ],
        ).fetchall()
    else:
        alert_id = open_row[0]
        if kind == "firing":
            con.execute(
                "UPDATE alerts SET status = 'firing', severity = ?, last_value = ?,"
                " updated_at = ? WHERE id = ?",
                [c["severity"], c["value"], now, alert_id],
            ).fetchall()
        elif kind in ("escalated", "deescalated"):
            con.execute(
                "UPDATE alerts SET severity = ?, last_value = ?, updated_at = ? WHERE id = ?",
                [c["severity"], c["value"], now, alert_id],
            ).fetchall()
        elif kind in ("resolved", "cleared"):
            con.execute(
                "UPDATE alerts SET status = ?, resolved_at = ?, last_value = ?, updated_at = ?"
                " WHERE id = ?",
                ["resolved" if kind == "resolved" else "cleared", at, c["value"], now, alert_id],
            ).fetchall()
        else:
            con.execute(
                "UPDATE alerts SET last_value = ?, updated_at = ? WHERE id = ?",
                [c["value"], now, alert_id],
            ).fetchall()
    con.execute(
        "INSERT INTO alert_transitions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            alert_id,
            kind,
            at,
            now,
            c["severity"],
            c["cause"],
            c["value"],
            c["samples"],
            json.dumps(c["context"], default=str),
        ],
    ).fetchall()
    return int(alert_id)
