"""Acknowledged means durable: SIGKILL in the middle of sustained ingestion loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.conftest import free_port
from tests.helpers import ready, send_error_burst, wait_for
from watchkeeper.store.keys import KeyStore

SERVE = (
    "import sys; from pathlib import Path;"
    "from watchkeeper.server import ServerConfig, serve;"
    "serve(ServerConfig(Path(sys.argv[1]), port=int(sys.argv[2])))"
)


def _start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(data_dir), str(port)])

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=30)
    return proc


@pytest.mark.slow
def test_sigkill_during_ingestion_keeps_every_acknowledged_event(tmp_path: Path) -> None:
    """Four writers send batches while the server is SIGKILLed; after a restart every event of
    every acknowledged batch is in the DuckDB file, exactly once."""
    key = KeyStore(tmp_path).create("ingest")
    port = free_port()
    proc = _start(tmp_path, port)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=10,
            headers={"Authorization": f"Bearer {key}"},
        ) as c:
            for b in range(10_000):
                if stop.is_set():
                    return
                ids = [f"w{w}-b{b}-{i}" for i in range(200)]
                batch = [
                    {
                        "event_id": e,
                        "prediction": 1,
                        "score": 0.5,
                        "latency_ms": 1.0,
                        "features": {"x": float(i)},
                    }
                    for i, e in enumerate(ids)
                ]
                try:
                    r = c.post("/api/v1/models/crash/predictions", json=batch)
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    with lock:
                        acked.extend(ids)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 20_000, timeout=60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    with lock:
        expected = set(acked)

    proc = _start(tmp_path, port)  # recovery replays the write-ahead log
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    con = duckdb.connect(str(tmp_path / "watchkeeper.duckdb"), read_only=True)
    stored = [r[0] for r in con.execute("SELECT event_id FROM ev_1").fetchall()]
    counted = con.execute("SELECT sum(n) FROM agg_ops WHERE seg_key = ''").fetchone()
    con.close()
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert expected <= set(stored), f"{len(expected - set(stored))} acknowledged events lost"
    # The per-minute aggregates were committed with the events: they count the same rows.
    assert counted is not None and counted[0] == len(stored)


ALERT_SERVE = (
    "import sys; from pathlib import Path;"
    "from watchkeeper.server import ServerConfig, serve;"
    "serve(ServerConfig(Path(sys.argv[1]), port=int(sys.argv[2]), config_file=Path(sys.argv[3]),"
    " evaluate_interval=0.2, notify_interval=0.2))"
)
ALERT_CONFIG = """
monitors:
  - {{name: errors, model: m, metric: error_rate, window: 1m,
      condition: {{type: static, op: above, threshold: 0.1}}}}
notifications:
  channels: [{{name: ops, type: webhook, url: "{url}"}}]
  routes: [{{channels: [ops]}}]
"""


def test_sigkill_keeps_a_queued_notification_and_sends_it_once(tmp_path: Path) -> None:
    """An alert fires while its webhook is down; the server is SIGKILLed with the notification
    still in the outbox; after a restart (webhook back) it is delivered exactly once."""
    from tests.test_notify import Receiver

    key = KeyStore(tmp_path).create("admin")
    config = tmp_path / "wk.yaml"
    config.write_text(ALERT_CONFIG.format(url=f"http://127.0.0.1:{free_port()}/down"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", ALERT_SERVE, str(tmp_path), str(port), str(config)]
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        wait_for(lambda: ready(url), timeout=30)
        send_error_burst(url, key)

        def firing() -> bool:
            got = httpx.get(f"{url}/api/v1/alerts", params={"status": "firing"}, headers=headers)
            return bool(got.json()["alerts"])

        wait_for(firing, timeout=60)  # the alert and its outbox row commit together
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    receiver = Receiver()
    config.write_text(ALERT_CONFIG.format(url=receiver.url))
    proc = subprocess.Popen(
        [sys.executable, "-c", ALERT_SERVE, str(tmp_path), str(port), str(config)]
    )
    try:
        wait_for(lambda: ready(url), timeout=30)
        wait_for(lambda: len(receiver.requests) >= 1, timeout=30)
        threading.Event().wait(1.5)  # several more sender runs: nothing is sent twice
        kinds = [_kind(body) for _, body in receiver.requests]
        assert kinds == ["firing"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        receiver.close()


def _kind(body: bytes) -> str:
    import json

    return str(json.loads(body)["kind"])
