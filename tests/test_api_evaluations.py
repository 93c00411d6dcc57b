"""The evaluations API and evaluation metrics in monitors, against a real server: the list
needs a read key; a monitor on hallucination_rate created over HTTP fires in the minute
whose calls the runner found ungrounded, and resolves after."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_evaluator_runner import Server as RunnerServer
from watchkeeper.alerting.engine import SETTLE, AlertEngine
from watchkeeper.evaluators.settings import EvaluatorSettings
from watchkeeper.store.keys import KeyStore

MINUTE = timedelta(minutes=1)
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 30 * MINUTE
CONTEXT = "Our shop opens at 9 am and closes at 6 pm from Monday to Saturday."
GROUNDED = "The shop opens at 9 am and closes at 6 pm."
UNGROUNDED = "The shop opens at 7 am on Sundays and sells bicycles."


class Server(RunnerServer):
    """The evaluator tests' server with an ingest key; ``client()`` without a key sends none."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(
            data_dir, EvaluatorSettings(interval_seconds=0, delay_seconds=0, embeddings="off")
        )
        self.ingest = KeyStore(data_dir).create("ingest")

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.handle.url, headers=headers, timeout=60)

    @property
    def engine(self) -> AlertEngine:
        engine: AlertEngine = self.handle.app.state.alert_engine
        return engine


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.handle.stop()


def _send(s: Server, minutes: range, bad: set[int]) -> None:
    """10 calls a minute with a context; in the ``bad`` minutes 6 of them are ungrounded."""
    events: list[dict[str, Any]] = [
        {
            "event_id": f"c-{m}-{i}",
            "timestamp": (T0 + m * MINUTE + timedelta(seconds=5 * i)).isoformat(),
            "prompt": "When are you open?",
            "response": UNGROUNDED if m in bad and i < 6 else GROUNDED,
            "context": CONTEXT,
        }
        for m in minutes
        for i in range(10)
    ]
    with s.client(s.ingest) as c:
        r = c.post("/api/v1/models/shop/predictions", json={"events": events})
        assert r.status_code == 200, r.text


def test_read_key_needed(server: Server) -> None:
    """No key: 401; a read key: 200 with the evaluations."""
    _send(server, range(1), set())
    server.runner.run_once(datetime.now(timezone.utc) + timedelta(seconds=1))
    with server.client() as c:
        assert c.get("/api/v1/models/shop/evaluations").status_code == 401
    with server.client(server.read) as c:
        r = c.get("/api/v1/models/shop/evaluations", params={"limit": 3})
        assert r.status_code == 200, r.text
        assert len(r.json()["evaluations"]) == 3
        r = c.get("/api/v1/models/shop/evaluations", params={"limit": 0})
        assert r.status_code == 422


def test_monitor_on_hallucination_rate_fires(server: Server) -> None:
    """A static monitor on hallucination_rate, created through the API, fires for the
    minute with 60 % ungrounded answers and resolves the minute after."""
    _send(server, range(5), bad={2})
    server.runner.run_once(datetime.now(timezone.utc) + timedelta(seconds=1))
    server.handle.app.state.store.refresh()
    monitor = {
        "name": "hallucinations",
        "model": "shop",
        "metric": "hallucination_rate",
        "window": "1m",
        "condition": {"type": "static", "op": "above", "threshold": 0.3},
    }
    with server.client(server.admin) as c:
        r = c.post("/api/v1/monitors", json=monitor)
        assert r.status_code == 201, r.text
    changes = []
    for minute in range(5):
        result = server.engine.run(T0 + (minute + 1) * MINUTE + SETTLE + timedelta(seconds=1))
        assert result.errors == []
        changes += result.changes
    kinds = [(c.transition.kind, c.transition.at) for c in changes]
    assert kinds == [("firing", T0 + 2 * MINUTE), ("resolved", T0 + 3 * MINUTE)]
    with server.client(server.read) as c:
        (alert,) = c.get("/api/v1/alerts", params={"monitor": "hallucinations"}).json()["alerts"]
        assert alert["transitions"][0]["value"] == pytest.approx(0.6)


def test_version_and_segment_filters(server: Server) -> None:
    """``version`` and ``segment`` keep the evaluations of those calls only (the LLM tab's
    filters); a segment without ``name:value`` is a 422 naming the parameter."""
    events = [
        {
            "event_id": f"v-{i}",
            "timestamp": (T0 + timedelta(seconds=5 * i)).isoformat(),
            "version": "gpt-a" if i % 2 else "gpt-b",
            "segments": {"region": "eu" if i < 4 else "us"},
            "prompt": "When are you open?",
            "response": UNGROUNDED,
            "context": CONTEXT,
        }
        for i in range(8)
    ]
    with server.client(server.ingest) as c:
        assert c.post("/api/v1/models/shop/predictions", json={"events": events}).is_success
    server.runner.run_once(datetime.now(timezone.utc) + timedelta(seconds=1))

    def ids(**params: str) -> set[str]:
        with server.client(server.read) as c:
            r = c.get(
                "/api/v1/models/shop/evaluations",
                params={"evaluator": "groundedness", "limit": "100", **params},
            )
            assert r.status_code == 200, r.text
            return {e["event_id"] for e in r.json()["evaluations"]}

    assert ids() == {f"v-{i}" for i in range(8)}
    assert ids(version="gpt-a") == {"v-1", "v-3", "v-5", "v-7"}
    assert ids(segment="region:eu") == {"v-0", "v-1", "v-2", "v-3"}
    assert ids(version="gpt-a", segment="region:us") == {"v-5", "v-7"}
    assert ids(segment="region:apac") == set() and ids(version="nope") == set()
    with server.client(server.read) as c:
        r = c.get("/api/v1/models/shop/evaluations", params={"segment": "region"})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "segment"
