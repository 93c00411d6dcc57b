"""The serving version of each model: the store's table and history, and the API over it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.helpers import wait_for
from watchkeeper.store.duckdb_store import DuckDBStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path)
    s.start()
    yield s
    s.close()


def test_store_set_get_and_history(store: DuckDBStore) -> None:
    """set_serving returns what get_serving then reads (aware UTC times); every change is in
    the history, newest first, with who, why and the alert; a model never set reads None."""
    assert store.get_serving("m") is None
    assert store.serving_history("m") == []
    before = datetime.now(timezone.utc)
    first = store.set_serving("m", "1.0", by="deploy", reason="release")
    second = store.set_serving("m", "0.9", fallback="rules", by="rollback", reason="p95 high",
                               alert_id=7)  # fmt: skip
    assert store.get_serving("m") == second
    assert second == {
        "model": "m",
        "version": "0.9",
        "fallback": "rules",
        "updated_at": second["updated_at"],
        "updated_by": "rollback",
        "reason": "p95 high",
        "alert_id": 7,
    }
    assert second["updated_at"].tzinfo is timezone.utc
    assert before - timedelta(seconds=1) < first["updated_at"] <= second["updated_at"]
    history = store.serving_history("m")
    assert [
        (h["version"], h["fallback"], h["by"], h["reason"], h["alert_id"]) for h in history
    ] == [
        ("0.9", "rules", "rollback", "p95 high", 7),
        ("1.0", None, "deploy", "release", None),
    ]
    assert history[0]["id"] > history[1]["id"] and history[0]["at"] == second["updated_at"]
    assert [h["version"] for h in store.serving_history("m", limit=1)] == ["0.9"]
    assert store.get_serving("other") is None and store.serving_history("other") == []


def test_store_clearing_keeps_a_trace_and_survives_restart(tmp_path: Path) -> None:
    """Setting version None clears the preference but keeps the row and a history entry; the
    state and history are durable across a restart of the store."""
    s = DuckDBStore(tmp_path)
    s.start()
    s.set_serving("m", "2", fallback="small-model")
    cleared = s.set_serving("m", None, by="ops")
    assert cleared["version"] is None and cleared["fallback"] is None
    s.close()
    s = DuckDBStore(tmp_path)
    s.start()
    try:
        assert s.get_serving("m") == cleared
        assert [h["version"] for h in s.serving_history("m")] == [None, "2"]
    finally:
        s.close()


def test_store_concurrent_changes_all_recorded(store: DuckDBStore) -> None:
    """Changes from many threads are each one committed transaction: the history has them all
    with distinct ids, and the current state is the newest of them."""
    threads = [
        threading.Thread(target=store.set_serving, args=("m", f"v{i}"), kwargs={"by": str(i)})
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = store.serving_history("m")
    assert len(history) == 20 and len({h["id"] for h in history}) == 20
    assert sorted(h["version"] for h in history) == sorted(f"v{i}" for i in range(20))
    assert store.get_serving("m")["version"] == history[0]["version"]  # type: ignore[index]


# ---------------------------------------------------------------------------------- the API


def _log(server: RunningServer, model: str, versions: list[str]) -> None:
    """Create ``model`` with events of each version, and wait until they are aggregated."""
    events = [
        {"event_id": f"{model}-{v}-{i}", "version": v, "prediction": 1, "latency_ms": 5.0}
        for v in versions
        for i in range(3)
    ]
    with server.client(server.ingest_key) as c:
        assert c.post(f"/api/v1/models/{model}/predictions", json={"events": events}).is_success

    def known() -> bool:
        with server.client(server.read_key) as c:
            r = c.get(f"/api/v1/models/{model}")
        return r.status_code == 200 and {v["version"] for v in r.json()["versions"]} >= set(
            versions
        )

    wait_for(known)


def _put(server: RunningServer, model: str, key: str | None = None, **body: Any) -> Any:
    with server.client(key or server.admin_key) as c:
        return c.put(f"/api/v1/models/{model}/serving", json=body)


def test_get_never_set_then_put_then_etag(server: RunningServer) -> None:
    """GET answers version null until a PUT; the ETag makes an unchanged answer a 304 without a
    body, and a change makes the old ETag miss."""
    _log(server, "fraud", ["1.0", "1.1"])
    with server.client(server.read_key) as c:
        r = c.get("/api/v1/models/fraud/serving")
        assert r.status_code == 200
        assert r.json() == {
            "model": "fraud",
            "version": None,
            "fallback": None,
            "updated_at": None,
            "updated_by": None,
            "reason": None,
            "alert_id": None,
        }
        tag = r.headers["etag"]
        assert tag.startswith('"') and r.headers["cache-control"] == "no-cache"
        r304 = c.get("/api/v1/models/fraud/serving", headers={"If-None-Match": tag})
        assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == tag
        weak = c.get("/api/v1/models/fraud/serving", headers={"If-None-Match": f'"x", W/{tag}'})
        assert weak.status_code == 304

    put = _put(server, "fraud", version="1.1", fallback="rules", reason="canary ok", by="ci")
    assert put.status_code == 200, put.text
    state = put.json()
    assert (state["model"], state["version"], state["fallback"]) == ("fraud", "1.1", "rules")
    assert (state["updated_by"], state["reason"], state["alert_id"]) == ("ci", "canary ok", None)
    assert datetime.fromisoformat(state["updated_at"]).tzinfo is not None

    with server.client(server.read_key) as c:
        r = c.get("/api/v1/models/fraud/serving", headers={"If-None-Match": tag})
        assert r.status_code == 200 and r.json() == state
        assert r.headers["etag"] != tag and r.headers["etag"] == put.headers["etag"]
        again = c.get("/api/v1/models/fraud/serving", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304


def test_scopes(server: RunningServer) -> None:
    """An ingest key (what serving processes hold) and a read key can read the serving version;
    only admin can set it; the ingest key still cannot read other routes or the history."""
    _log(server, "m", ["1"])
    for key in (server.ingest_key, server.read_key, server.admin_key):
        with server.client(key) as c:
            assert c.get("/api/v1/models/m/serving").status_code == 200
    with server.client(server.ingest_key) as c:
        assert c.get("/api/v1/models/m").status_code == 403
        denied = c.get("/api/v1/models/m/serving/history")
        assert denied.status_code == 403
        assert "'read'" in denied.json()["error"]["message"]
    for key in (server.ingest_key, server.read_key):
        r = _put(server, "m", key, version="1")
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    import httpx

    assert httpx.get(f"{server.url}/api/v1/models/m/serving").status_code == 401


def test_unknown_model_is_404(server: RunningServer) -> None:
    """Every serving route answers 404 unknown_model for a model never seen, like the other
    model routes."""
    with server.client() as c:
        for r in (
            c.get("/api/v1/models/nope/serving"),
            c.put("/api/v1/models/nope/serving", json={"version": "1", "force": True}),
            c.get("/api/v1/models/nope/serving/history"),
        ):
            assert r.status_code == 404
            assert r.json()["error"]["code"] == "unknown_model"


def test_unknown_version_needs_force(server: RunningServer) -> None:
    """A version never logged is refused with 422 naming the field and the known versions;
    force: true sets it anyway; null clears the preference without any check."""
    _log(server, "m", ["a", "b"])
    r = _put(server, "m", version="c")
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "unknown_version"
    assert error["details"][0]["field"] == "version"
    assert "known: a, b" in error["message"] and "force" in error["message"]
    assert _put(server, "m", version="c", force=True).json()["version"] == "c"
    assert _put(server, "m", version=None).json()["version"] is None
    bad = _put(server, "m", version="a", colour="red")
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "colour"
    missing = _put(server, "m", fallback="x")
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["field"] == "version"


def test_history_over_api(server: RunningServer) -> None:
    """The history lists every change newest first; without ``by`` the key's name or prefix is
    recorded as who made the change."""
    _log(server, "m", ["1", "2"])
    _put(server, "m", version="1", by="deploy-bot", reason="release 1")
    _put(server, "m", version="2")
    with server.client(server.read_key) as c:
        r = c.get("/api/v1/models/m/serving/history")
        limited = c.get("/api/v1/models/m/serving/history", params={"limit": 1})
        bad = c.get("/api/v1/models/m/serving/history", params={"limit": 0})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "m"
    assert [(h["version"], h["reason"]) for h in body["history"]] == [
        ("2", None),
        ("1", "release 1"),
    ]
    assert body["history"][1]["by"] == "deploy-bot"
    assert body["history"][0]["by"] == server.admin_key[: len("admin") + 8]
    assert [h["version"] for h in limited.json()["history"]] == ["2"]
    assert bad.status_code == 422
