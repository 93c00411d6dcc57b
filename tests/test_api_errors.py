"""Bad input gets a 4xx naming the row, the field and the reason, and nothing is stored."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import RunningServer

GOOD = {"event_id": "a1", "prediction": 1, "score": 0.7, "latency_ms": 3.0}


def _post(server: RunningServer, body: Any, key: str | None = None, **kw: Any) -> Any:
    with server.client(key or server.ingest_key) as c:
        return c.post("/api/v1/models/m/predictions", json=body, **kw)


def _count(server: RunningServer, model: str = "m") -> int:
    with server.client(server.read_key) as c:
        r = c.get(
            f"/api/v1/models/{model}/metrics",
            params={
                "names": "count",
                "window": "all",
                "start": (datetime.now(timezone.utc) - timedelta(days=1)).isoformat(),
            },
        )
    return int(r.json()["metrics"]["count"][0]) if r.status_code == 200 else 0


@pytest.mark.parametrize(
    ("event", "field", "reason_part"),
    [
        ({"prediction": 1, "colour": "red"}, "colour", "unknown"),
        ({"prediction": 1, "latency_ms": "fast"}, "latency_ms", "number"),
        ({"prediction": 1, "latency_ms": -1}, "latency_ms", "negative"),
        ({"prediction": 1, "features": {"x": [1, 2]}}, "features.x", ""),
        ({"prediction": 1, "status": "meh"}, "status", ""),
        ({"prediction": 1, "segments": {"region": 3}}, "segments.region", "string"),
        ({"prediction": 1, "input_tokens": 1.5}, "input_tokens", "integer"),
        ({"prediction": 1, "timestamp": "2999-01-01T00:00:00Z"}, "timestamp", "future"),
    ],
)
def test_invalid_row_is_named_and_batch_rejected(
    server: RunningServer, event: dict[str, Any], field: str, reason_part: str
) -> None:
    """A batch with one bad row (second position) is rejected whole with row 1 and the field."""
    r = _post(server, {"events": [GOOD, event]})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_rows"
    assert any(
        d["row"] == 1 and d["field"] == field and reason_part in d["reason"].lower()
        for d in err["details"]
    ), err
    assert _count(server) == 0


def test_nan_is_rejected(server: RunningServer) -> None:
    """NaN (which Python's json writes but JSON forbids) is refused, not stored."""
    body = json.dumps({"events": [{"prediction": 1, "score": float("nan")}]})
    r = _post(server, None, content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert "error" in r.json()


def test_malformed_json_names_the_position(server: RunningServer) -> None:
    """Malformed JSON gets 400 saying where parsing failed."""
    r = _post(
        server,
        None,
        content=b'{"events": [{"prediction": 1,,}]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert (
        "line 1" in r.json()["error"]["message"].lower()
        or "column" in r.json()["error"]["message"].lower()
    )


def test_auth_missing_wrong_and_scope(server: RunningServer) -> None:
    """No key: 401; unknown key: 401; a read key cannot ingest: 403; ingest key cannot read: 403."""
    import httpx

    r = httpx.post(f"{server.url}/api/v1/models/m/predictions", json=[GOOD])
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    assert _post(server, [GOOD], key="wk_admin_nope").status_code == 401
    r = _post(server, [GOOD], key=server.read_key)
    assert r.status_code == 403 and "ingest" in r.json()["error"]["message"]
    with server.client(server.ingest_key) as c:
        assert c.get("/api/v1/models").status_code == 403


def test_unknown_model_is_404(server: RunningServer) -> None:
    """Actuals and metrics for a model never seen get 404 with the model's name."""
    with server.client() as c:
        r = c.post(
            "/api/v1/models/ghost/actuals", json={"actuals": [{"event_id": "x", "label": 1}]}
        )
        assert r.status_code == 404 and "ghost" in r.json()["error"]["message"]
        assert c.get("/api/v1/models/ghost/metrics").status_code == 404
        assert c.get("/api/v1/models/ghost").status_code == 404


def test_oversized_batch_is_413(server: RunningServer) -> None:
    """More events than the batch limit get 413 and nothing is stored."""
    body = gzip.compress(json.dumps([{"prediction": 1}] * 100_001).encode())
    r = _post(
        server,
        None,
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert r.status_code == 413, r.text
    assert _count(server) == 0


def test_bad_request_does_not_change_accepted_data(server: RunningServer) -> None:
    """A rejected batch that reuses stored event ids changes nothing already accepted."""
    assert _post(server, [GOOD, {**GOOD, "event_id": "a2"}]).status_code == 200
    r = _post(server, [{**GOOD, "prediction": 0}, {"event_id": "a2", "latency_ms": "x"}])
    assert r.status_code == 422
    assert _count(server) == 2


def test_retried_batch_is_stored_once(server: RunningServer) -> None:
    """Sending the same batch twice stores it once and reports the duplicates."""
    batch = [{**GOOD, "event_id": f"id{i}", "timestamp": 1_790_000_000 + i} for i in range(10)]
    first = _post(server, batch).json()
    second = _post(server, batch).json()
    assert first == {"accepted": 10, "duplicates": 0}
    assert second == {"accepted": 0, "duplicates": 10}


def test_feature_type_conflict_with_schema(server: RunningServer) -> None:
    """A feature that was a number cannot arrive as a string: 422 naming row and field."""
    assert _post(server, [{**GOOD, "features": {"amount": 3.5}}]).status_code == 200
    r = _post(server, [{**GOOD, "event_id": "b", "features": {"amount": "high"}}])
    assert r.status_code == 422, r.text
    d = r.json()["error"]["details"][0]
    assert d["row"] == 0 and d["field"] == "features.amount"


def test_bad_query_parameters(server: RunningServer) -> None:
    """Unknown metric names, windows and segment syntax get 422 naming the parameter."""
    assert _post(server, [GOOD]).status_code == 200
    with server.client(server.read_key) as c:
        for params, field in [
            ({"names": "accuracy,bogus"}, "names"),
            ({"window": "7m"}, "window"),
            ({"segment": "region"}, "segment"),
        ]:
            r = c.get("/api/v1/models/m/metrics", params=params)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["details"][0]["field"] == field


def test_invalid_model_name(server: RunningServer) -> None:
    """A model name with spaces or slashes is refused with 422."""
    with server.client() as c:
        r = c.post("/api/v1/models/bad%20name/predictions", json=[GOOD])
    assert r.status_code == 422
