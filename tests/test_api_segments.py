"""The segments breakdown through a real server: each value equals what /metrics answers for
that segment, ranked by traffic; bad parameters are refused with a 422 naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.helpers import wait_for

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
START = (NOW - timedelta(hours=1)).isoformat()
END = (NOW + timedelta(minutes=1)).isoformat()
# region -> (events, error every k-th, latency base): distinct counts so the order is fixed
REGIONS = {"eu": (300, 10, 20.0), "us": (200, 4, 45.0), "apac": (100, 2, 80.0)}
NAMES = "count,error_rate,latency_p95,accuracy,throughput"


def _events() -> list[dict[str, Any]]:
    out = []
    for region, (n, every, base) in REGIONS.items():
        for i in range(n):
            out.append(
                {
                    "event_id": f"{region}-{i}",
                    "timestamp": (NOW - timedelta(seconds=30 + 7 * i)).isoformat(),
                    "version": "v1" if i % 3 else "v2",
                    "features": {"amount": float(i)},
                    "prediction": i % 2,
                    "latency_ms": base + (i % 17),
                    "status": "error" if i % every == 0 else "ok",
                    "segments": {"region": region, "channel": "web" if i % 2 else "app"},
                }
            )
    return out


@pytest.fixture
def filled(server: RunningServer) -> RunningServer:
    events = _events()
    with server.client(server.ingest_key) as c:
        r = c.post("/api/v1/models/fraud/predictions", json={"events": events})
        assert r.status_code == 200, r.text
        actuals = [{"event_id": e["event_id"], "label": (i % 5 != 0)} for i, e in enumerate(events)]
        r = c.post("/api/v1/models/fraud/actuals", json={"actuals": actuals})
        assert r.status_code == 200, r.text
    server.handle.app.state.store.refresh()
    wait_for(lambda: _get(server, by="region", names="count").json()["overall"]["count"] == 600)
    return server


def _get(server: RunningServer, **params: Any) -> httpx.Response:
    with server.client(server.read_key) as c:
        return c.get("/api/v1/models/fraud/segments", params={"start": START, "end": END, **params})


def _metrics(server: RunningServer, **params: str) -> dict[str, Any]:
    with server.client(server.read_key) as c:
        r = c.get(
            "/api/v1/models/fraud/metrics",
            params={"names": NAMES, "window": "all", "start": START, "end": END, **params},
        )
    assert r.status_code == 200, r.text
    return {k: v[0] for k, v in r.json()["metrics"].items()}


def test_values_equal_the_metrics_endpoint_per_segment(filled: RunningServer) -> None:
    """Each value's metrics are exactly /metrics?segment=region:value&window=all, values come
    most traffic first, and overall is /metrics without a segment."""
    r = _get(filled, by="region", names=NAMES)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["by"] == "region" and body["names"] == NAMES.split(",")
    assert [v["value"] for v in body["values"]] == ["eu", "us", "apac"]
    assert [v["metrics"]["count"] for v in body["values"]] == [300, 200, 100]
    for row in body["values"]:
        assert row["metrics"] == _metrics(filled, segment=f"region:{row['value']}")
    assert body["overall"] == _metrics(filled)
    assert body["truncated"] is False
    # the error rates differ per region, so a mix-up between values would show
    rates = [v["metrics"]["error_rate"] for v in body["values"]]
    assert rates == pytest.approx([0.1, 0.25, 0.5])


def test_version_filter_and_count_always_included(filled: RunningServer) -> None:
    """With a version only that version's events count; count is added when not asked for."""
    r = _get(filled, by="region", names="error_rate", version="v2")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["names"] == ["count", "error_rate"]
    for row in body["values"]:
        want = _metrics(filled, segment=f"region:{row['value']}", version="v2")
        assert row["metrics"] == {"count": want["count"], "error_rate": want["error_rate"]}
    assert [v["metrics"]["count"] for v in body["values"]] == [100, 67, 34]


def test_limit_keeps_the_busiest_values_and_says_truncated(filled: RunningServer) -> None:
    """limit=2 keeps eu and us (the most traffic), with the same numbers, truncated: true."""
    full = _get(filled, by="region", names=NAMES).json()
    r = _get(filled, by="region", names=NAMES, limit=2)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["truncated"] is True
    assert body["values"] == full["values"][:2]
    assert _get(filled, by="region", limit=3).json()["truncated"] is False


def test_empty_range_answers_no_values(filled: RunningServer) -> None:
    """A known segment without traffic in the range answers an empty list, not an error."""
    early = (NOW - timedelta(days=3)).isoformat()
    r = _get(filled, by="channel", start=early, end=(NOW - timedelta(days=2)).isoformat())
    assert r.status_code == 200, r.text
    assert r.json()["values"] == [] and r.json()["overall"]["count"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"by": "planet"}, "by"),
        ({"by": "region", "names": "count,nonsense"}, "names"),
        ({"by": "region", "names": ""}, "names"),
        ({"by": "region", "limit": 0}, "limit"),
        ({"by": "region", "limit": 501}, "limit"),
        ({"by": "region", "start": END, "end": START}, "start"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    filled: RunningServer, params: dict[str, Any], field: str
) -> None:
    """Unknown segment or metric names, limits out of range and reversed ranges are 422."""
    with filled.client(filled.read_key) as c:
        r = c.get("/api/v1/models/fraud/segments", params={"start": START, "end": END, **params})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert error["details"][0]["field"] == field


def test_missing_by_is_422_and_unknown_model_is_404(filled: RunningServer) -> None:
    """by is required; a model never seen is 404; the endpoint needs a key."""
    with filled.client(filled.read_key) as c:
        assert c.get("/api/v1/models/fraud/segments").status_code == 422
        r = c.get("/api/v1/models/nope/segments", params={"by": "region"})
        assert r.status_code == 404, r.text
    with httpx.Client(base_url=filled.url) as anonymous:
        assert anonymous.get("/api/v1/models/fraud/segments?by=region").status_code == 401
