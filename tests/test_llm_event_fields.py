"""LLM calls carry trace_id, conversation_id and context: over the API, from the SDK, stored,
and added to events tables made before these fields existed."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.conftest import running_server
from watchkeeper.sdk import Monitor
from watchkeeper.store import duckdb_sql as sql
from watchkeeper.store.duckdb_store import DB_FILE

TRACE = "5b8efff798038103d269b633813fc60c"
CONTEXT = "Refunds are paid within 14 days. " * 200  # long text, like a prompt


def _rows(data_dir: Path, model: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(data_dir / DB_FILE), read_only=True) as con:
        (mid,) = con.execute("SELECT id FROM models WHERE name = ?", [model]).fetchall()[0]
        return con.execute(
            f"SELECT event_id, trace_id, conversation_id, context FROM {sql.events_table(mid)}"
            " ORDER BY event_id"
        ).fetchall()


def test_api_and_sdk_store_the_llm_fields(tmp_path: Path) -> None:
    with running_server(tmp_path) as srv:
        with srv.client(srv.ingest_key) as client:
            reply = client.post(
                "/api/v1/models/bot/predictions",
                json=[
                    {
                        "event_id": "a",
                        "prompt": "When are refunds paid?",
                        "response": "Within 14 days.",
                        "trace_id": TRACE,
                        "conversation_id": "conv-1",
                        "context": CONTEXT,
                    },
                    {"event_id": "b", "prompt": "hi", "response": "hello"},
                ],
            )
            assert reply.status_code == 200, reply.text
            bad = client.post(
                "/api/v1/models/bot/predictions",
                json=[{"event_id": "c", "prompt": "x", "conversation_id": 7}],
            )
            assert bad.status_code == 422
            detail = bad.json()["error"]["details"][0]
            assert (detail["row"], detail["field"]) == (0, "conversation_id")
        monitor = Monitor("bot", "v1", srv.url, srv.ingest_key, spool_dir=False)
        try:
            monitor.log(
                event_id="s",
                prompt="q",
                response="r",
                trace_id=TRACE,
                conversation_id="conv-2",
                context="ctx",
            )
            assert monitor.flush()  # True: the server acknowledged (stored) the batch
        finally:
            monitor.close()
    assert _rows(tmp_path, "bot") == [
        ("a", TRACE, "conv-1", CONTEXT),
        ("b", None, None, None),
        ("s", TRACE, "conv-2", "ctx"),
    ]


def test_tables_from_before_the_fields_gain_them(tmp_path: Path) -> None:
    with running_server(tmp_path) as srv, srv.client(srv.ingest_key) as client:
        reply = client.post(
            "/api/v1/models/old/predictions", json=[{"event_id": "1", "prompt": "p"}]
        )
        assert reply.status_code == 200
    with duckdb.connect(str(tmp_path / DB_FILE)) as con:  # as an older release made it
        (mid,) = con.execute("SELECT id FROM models WHERE name = 'old'").fetchall()[0]
        for column in sql.ADDED_EVENT_COLUMNS:
            con.execute(f"ALTER TABLE {sql.events_table(mid)} DROP COLUMN {column}").fetchall()
    with running_server(tmp_path) as srv, srv.client(srv.ingest_key) as client:
        reply = client.post(
            "/api/v1/models/old/predictions",
            json=[{"event_id": "2", "prompt": "p", "trace_id": TRACE, "context": "c"}],
        )
        assert reply.status_code == 200, reply.text
    assert _rows(tmp_path, "old") == [("1", None, None, None), ("2", TRACE, None, "c")]


@pytest.mark.parametrize("field", ["trace_id", "conversation_id"])
def test_identifiers_are_limited_like_other_strings(tmp_path: Path, field: str) -> None:
    with running_server(tmp_path) as srv, srv.client(srv.ingest_key) as client:
        reply = client.post(
            "/api/v1/models/bot/predictions", json=[{"event_id": "x", field: "z" * 1025}]
        )
        assert reply.status_code == 422
        assert reply.json()["error"]["details"][0]["field"] == field
