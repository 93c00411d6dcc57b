"""The serving version of each model on the DuckDB store: the current one, and every change.

``serving`` holds one row per model: the version that should serve, an optional fallback (a
fallback model or rule-based path the serving process understands), and who set it, when,
why, and the alert that caused it (rollbacks). ``serving_history`` keeps every change, so a
rollback can find the previous healthy version and people can see what moved and why. A
change writes both tables in one transaction.

The store does not check that the model exists or that the version was ever logged: the API
does (with ``force`` to override), and actions use what the store already knows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import duckdb

from watchkeeper.store.duckdb_reads import first

DDL = """
CREATE TABLE IF NOT EXISTS serving (model VARCHAR PRIMARY KEY, version VARCHAR,
    fallback VARCHAR, updated_at TIMESTAMP, updated_by VARCHAR, reason VARCHAR,
    alert_id BIGINT);
CREATE SEQUENCE IF NOT EXISTS serving_history_ids START 1;
CREATE TABLE IF NOT EXISTS serving_history (id BIGINT PRIMARY KEY, model VARCHAR,
    version VARCHAR, fallback VARCHAR, changed_at TIMESTAMP, changed_by VARCHAR,
    reason VARCHAR, alert_id BIGINT);
"""

_SERVING = ("model", "version", "fallback", "updated_at", "updated_by", "reason", "alert_id")
_HISTORY = ("id", "model", "version", "fallback", "at", "by", "reason", "alert_id")


def _utc(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts.replace(tzinfo=timezone.utc)


def _serving_row(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(_SERVING, row, strict=True))
    out["updated_at"] = _utc(out["updated_at"])
    return out


class Serving:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore`."""

    _con: duckdb.DuckDBPyConnection | None
    _submit: Callable[..., Any]
    _cursor: Callable[[], duckdb.DuckDBPyConnection]

    def get_serving(self, model: str) -> dict[str, Any] | None:
        """The model's serving version and fallback with who set them, when and why; None
        when nothing was ever set."""
        row = first(
            self._cursor()
            .execute(f"SELECT {', '.join(_SERVING)} FROM serving WHERE model = ?", [model])
            .fetchall()
        )
        return None if row is None else _serving_row(row)

    def set_serving(
        self,
        model: str,
        version: str | None,
        *,
        fallback: str | None = None,
        by: str | None = None,
        reason: str | None = None,
        alert_id: int | None = None,
    ) -> dict[str, Any]:
        """Point the model at ``version`` (None: no preference) and ``fallback``, and record
        the change in the history, in one transaction; returns the new state once committed.

        Every call is recorded, even one that repeats the current state (a rollback that
        finds the model already there still leaves its trace)."""

        def fn() -> dict[str, Any]:
            assert self._con is not None
            con = self._con
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            row = first(
                con.execute(
                    "INSERT OR REPLACE INTO serving VALUES (?, ?, ?, ?, ?, ?, ?)"
                    f" RETURNING {', '.join(_SERVING)}",
                    [model, version, fallback, now, by, reason, alert_id],
                ).fetchall()
            )
            con.execute(
                "INSERT INTO serving_history VALUES (nextval('serving_history_ids'), ?, ?, ?, ?,"
                " ?, ?, ?)",
                [model, version, fallback, now, by, reason, alert_id],
            ).fetchall()
            assert row is not None
            return _serving_row(row)

        result: dict[str, Any] = self._submit(fn, 0)
        return result

    def serving_history(self, model: str, limit: int = 100) -> list[dict[str, Any]]:
        """The model's serving changes, newest first."""
        rows = (
            self._cursor()
            .execute(
                "SELECT id, model, version, fallback, changed_at, changed_by, reason, alert_id"
                " FROM serving_history WHERE model = ? ORDER BY id DESC LIMIT ?",
                [model, int(limit)],
            )
            .fetchall()
        )
        out = []
        for row in rows:
            change = dict(zip(_HISTORY, row, strict=True))
            change["at"] = _utc(change["at"])
            out.append(change)
        return out
