"""A full write queue answers 503 with Retry-After instead of growing memory without bound."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.conftest import free_port
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.keys import KeyStore


def test_full_queue_answers_503_then_recovers(tmp_path: Path) -> None:
    """While the writer is busy with more rows than max_pending_rows, a new batch gets 503 and
    Retry-After; once the writer catches up the same batch is accepted."""
    key = KeyStore(tmp_path).create("ingest")
    config = ServerConfig(tmp_path, port=free_port(), settings={"max_pending_rows": 100})
    with ServerHandle(config) as handle:
        store = handle.app.state.store
        release = threading.Event()
        blocker = threading.Thread(target=store._submit, args=(release.wait, 80))
        blocker.start()
        while store.stats()["queue_rows"] < 80:
            time.sleep(0.01)
        import httpx

        batch = [{"prediction": 1, "score": 0.5} for _ in range(50)]
        headers = {"Authorization": f"Bearer {key}"}
        r = httpx.post(f"{handle.url}/api/v1/models/m/predictions", json=batch, headers=headers)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "busy"
        release.set()
        blocker.join()
        r = httpx.post(f"{handle.url}/api/v1/models/m/predictions", json=batch, headers=headers)
        assert r.status_code == 200 and r.json()["accepted"] == 50
