"""The real SDK against a real server: end to end, and through an outage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import watchkeeper
from tests.conftest import RunningServer, free_port
from tests.helpers import wait_for
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.keys import KeyStore


def _count(url: str, key: str, model: str) -> int:
    import httpx

    r = httpx.get(
        f"{url}/api/v1/models/{model}/metrics",
        headers={"Authorization": f"Bearer {key}"},
        params={
            "names": "count,label_coverage",
            "window": "all",
            "start": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(),
            "end": (datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat(),
        },
    )
    return int(r.json()["metrics"]["count"][0]) if r.status_code == 200 else -1


def test_sdk_logs_predictions_and_actuals(server: RunningServer, tmp_path: Path) -> None:
    """log(), track() and log_actual() through the real HTTP transport land in the metrics."""
    mon = watchkeeper.Monitor(
        "sdk-model",
        version="1.0",
        url=server.url,
        api_key=server.ingest_key,
        spool_dir=tmp_path / "spool",
    )
    ids = [
        mon.log(
            features={"a": i, "c": "x"},
            prediction=i % 2,
            score=0.6,
            latency_ms=5.0,
            segments={"region": "eu"},
        )
        for i in range(500)
    ]
    with mon.track({"a": 1.0}) as call:
        call.prediction = 1
        call.score = 0.9
    assert mon.flush(timeout=20)
    for i, event_id in enumerate(ids):
        mon.log_actual(event_id, label=i % 2)
    assert mon.flush(timeout=20)
    mon.close()
    assert wait_for(lambda: _count(server.url, server.read_key, "sdk-model") == 501)
    import httpx

    def coverage() -> float:
        r = httpx.get(
            f"{server.url}/api/v1/models/sdk-model/metrics",
            headers={"Authorization": f"Bearer {server.read_key}"},
            params={"names": "label_coverage,accuracy", "window": "all"},
        )
        m = r.json()["metrics"]
        return float(m["accuracy"][0]) if m["label_coverage"][0] == 500 / 501 else 0.0

    assert wait_for(coverage) == 1.0
    stats = mon.stats()
    assert stats["dropped"] == 0 and stats["rejected"] == 0


def test_server_down_then_up_loses_nothing(tmp_path: Path) -> None:
    """Events logged while the server is unreachable are spooled, then replayed once it starts:
    zero lost, none duplicated."""
    key = KeyStore(tmp_path / "data").create("admin")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mon = watchkeeper.Monitor(
        "outage",
        url=url,
        api_key=key,
        spool_dir=tmp_path / "spool",
        flush_interval=0.1,
        max_retries=1,
        backoff=0.05,
        timeout=1.0,
    )
    for i in range(3000):
        mon.log(prediction=1, score=0.5, latency_ms=float(i % 50), features={"i": i})
    wait_for(lambda: mon.stats()["spooled"] >= 1, timeout=20)
    handle = ServerHandle(ServerConfig(data_dir=tmp_path / "data", port=port)).start()
    try:
        for _ in range(1000):  # traffic continues after the outage
            mon.log(prediction=0, score=0.2, latency_ms=1.0)
        wait_for(lambda: _count(url, key, "outage") == 4000, timeout=60)
        mon.flush(timeout=10)
        assert _count(url, key, "outage") == 4000
        assert mon.stats()["replayed"] >= 1
    finally:
        mon.close(timeout=5)
        handle.stop()


def test_sdk_feedback_is_stored_once_and_becomes_the_human_evaluation(
    server: RunningServer, tmp_path: Path
) -> None:
    """log_feedback() over HTTP: the verdict is stored (once, even when the same feedback id
    is sent again), a corrected answer becomes the call's actual."""
    import httpx

    mon = watchkeeper.Monitor(
        "sdk-chat", url=server.url, api_key=server.ingest_key, spool_dir=tmp_path / "spool"
    )
    calls = [mon.log(prompt=f"q{i}", response=f"a{i}", latency_ms=900.0) for i in range(3)]
    mon.log_feedback(calls[0], thumbs="down", comment="made up", feedback_id="fb-0")
    mon.log_feedback(calls[0], thumbs="down", comment="made up", feedback_id="fb-0")  # again
    mon.log_feedback(calls[1], thumbs=True)
    mon.log_feedback(calls[2], corrected_answer="the right answer", by="ana")
    assert mon.flush(timeout=20)
    mon.close()
    assert mon.stats()["rejected"] == 0
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.read_key}"}
    ) as c:
        listed = c.get("/api/v1/feedback", params={"model": "sdk-chat"}).json()["feedback"]
        assert sorted((f["event_id"], f["thumbs"]) for f in listed) == sorted(
            [(calls[0], "down"), (calls[1], "up"), (calls[2], None)]
        )
        assert [f["by"] for f in listed if f["event_id"] == calls[2]] == ["ana"]
        evaluations = c.get(
            "/api/v1/models/sdk-chat/evaluations", params={"evaluator": "human", "limit": 10}
        ).json()
    human = {e["event_id"]: e["flagged"] for e in evaluations["evaluations"]}
    assert human[calls[0]] is True and human[calls[1]] is False
