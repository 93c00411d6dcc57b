"""Monitors created through the API, on the DuckDB store.

``monitor_defs`` holds one row per monitor: its definition as JSON (the monitor as YAML/JSON
data, :func:`watchkeeper.monitors.files.monitor_to_dict`), when it was created and last
replaced, and by whom. The settings file's monitors are not stored: the file is their record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import duckdb

from watchkeeper.store.duckdb_reads import first

DDL = """
CREATE TABLE IF NOT EXISTS monitor_defs (name VARCHAR PRIMARY KEY, definition VARCHAR,
    created_at TIMESTAMP, updated_at TIMESTAMP, updated_by VARCHAR);
"""

_COLUMNS = ("name", "definition", "created_at", "updated_at", "updated_by")


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    d = dict(zip(_COLUMNS, row, strict=True))
    d["definition"] = json.loads(d["definition"])
    for k in ("created_at", "updated_at"):
        d[k] = d[k].replace(tzinfo=timezone.utc)
    return d


class MonitorDefs:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore`."""

    _con: duckdb.DuckDBPyConnection | None
    _submit: Callable[..., Any]
    _cursor: Callable[[], duckdb.DuckDBPyConnection]

    def monitor_defs(self) -> list[dict[str, Any]]:
        """Every stored monitor, by name: ``name``, ``definition`` (a dict), ``created_at``,
        ``updated_at`` (aware UTC) and ``updated_by``."""
        rows = (
            self._cursor()
            .execute(f"SELECT {', '.join(_COLUMNS)} FROM monitor_defs ORDER BY name")
            .fetchall()
        )
        return [_row(r) for r in rows]

    def put_monitor_def(
        self, name: str, definition: Mapping[str, Any], by: str | None
    ) -> dict[str, Any]:
        """Insert or replace a monitor (its ``created_at`` stays on a replace); returns the
        stored row after the commit."""
        text = json.dumps(dict(definition), sort_keys=True)

        def fn() -> dict[str, Any]:
            assert self._con is not None
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            row = first(
                self._con.execute(
                    "INSERT INTO monitor_defs VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
                    " SET definition = excluded.definition, updated_at = excluded.updated_at,"
                    f" updated_by = excluded.updated_by RETURNING {', '.join(_COLUMNS)}",
                    [name, text, now, now, by],
                ).fetchall()
            )
            return _row(tuple(row))

        result: dict[str, Any] = self._submit(fn, 0)
        return result

    def delete_monitor_def(self, name: str) -> bool:
        """Delete a stored monitor; False when there is none of that name."""

        def fn() -> bool:
            assert self._con is not None
            rows = self._con.execute(
                "DELETE FROM monitor_defs WHERE name = ? RETURNING name", [name]
            ).fetchall()
            return bool(rows)

        return bool(self._submit(fn, 0))
