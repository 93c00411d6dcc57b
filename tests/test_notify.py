"""Webhook notifications through the durable outbox, to a real HTTP receiver on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.test_alerts import CONFIG, MINUTE, SETTLE, T0, Server, _run_through, _traffic
from watchkeeper.alerting.notify import NotifyConfig, NotifyConfigError, backoff
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.keys import KeyStore

SECRET = "s3cret"


class Receiver:
    """Records every POST; answers 500 to the first ``fail`` of them."""

    def __init__(self, fail: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail = fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                code = 500 if len(outer.requests) <= outer.fail else 204
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _config(url: str) -> str:
    return (
        CONFIG
        + f"""
notifications:
  channels:
    - {{name: ops, type: webhook, url: "{url}", secret_env: WK_TEST_SECRET}}
  routes:
    - {{channels: [ops], monitors: [errors], severities: [critical]}}
"""
    )


def _start(tmp_path: Path, url: str) -> Server:
    key = KeyStore(tmp_path).create("admin")
    config = tmp_path / "wk.yaml"
    config.write_text(_config(url))
    handle = ServerHandle(
        ServerConfig(
            data_dir=tmp_path,
            port=free_port(),
            config_file=config,
            evaluate_interval=0,
            notify_interval=0,
        )
    )
    handle.start()
    return Server(handle.url, tmp_path, handle, key)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WK_TEST_SECRET", SECRET)


def _deliver(server: Server, minutes: int = 12) -> int:
    now = T0 + minutes * MINUTE + SETTLE + timedelta(seconds=1)
    return int(server.handle.app.state.notifier.run_once(now))


def test_firing_and_resolved_reach_the_webhook_signed_once_each(
    tmp_path: Path, receiver: Receiver
) -> None:
    server = _start(tmp_path, receiver.url)
    try:
        _traffic(server)
        _run_through(server, range(12))
        assert _deliver(server) == 2
        assert _deliver(server) == 0  # delivered rows are not sent again
    finally:
        server.handle.stop()
    kinds = [json.loads(body)["kind"] for _, body in receiver.requests]
    assert kinds == ["firing", "resolved"]  # pending is not worth a page
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Watchkeeper-Signature"] == expected
    deliveries = {h["X-Watchkeeper-Delivery"] for h, _ in receiver.requests}
    assert len(deliveries) == 2
    msg = json.loads(body)
    assert msg["monitor"] == "errors" and msg["model"] == "m" and msg["metric"] == "error_rate"
    assert msg["severity"] == "critical" and msg["value"] == pytest.approx(0.5)
    assert msg["condition"] == {"op": "above", "threshold": 0.1}
    assert msg["window"] == "1m" and msg["window_start"].startswith(
        (T0 + 4 * MINUTE).isoformat()[:16]
    )
    assert msg["breaching_since"].startswith((T0 + 3 * MINUTE).isoformat()[:16])
    assert msg["dashboard_url"].endswith("/models/m?metric=error_rate")
    assert "2 of the last 3 windows breached" in msg["cause"]


def test_a_failed_delivery_is_retried_with_the_same_delivery_id(tmp_path: Path) -> None:
    receiver = Receiver(fail=1)
    server = _start(tmp_path, receiver.url)
    try:
        _traffic(server)
        _run_through(server, range(5))  # firing at minute 4
        assert _deliver(server, 5) == 0  # 500: kept for a retry in backoff(1) = 1 s
        assert _deliver(server, 5) == 0  # not due yet
        now = T0 + 5 * MINUTE + SETTLE + timedelta(seconds=1) + backoff(1)
        assert server.handle.app.state.notifier.run_once(now) == 1
        counts = server.handle.app.state.store.outbox_counts()
    finally:
        server.handle.stop()
        receiver.close()
    assert counts == {"delivered": 1}
    ids = [h["X-Watchkeeper-Delivery"] for h, _ in receiver.requests]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_queued_notifications_survive_a_restart(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: connection refused
    server = _start(tmp_path, down)
    try:
        _traffic(server)
        _run_through(server, range(12))
        assert _deliver(server) == 0
    finally:
        server.handle.stop()
    receiver = Receiver()
    try:
        config = tmp_path / "wk.yaml"
        config.write_text(_config(receiver.url))  # the receiver is back (at a new address)
        handle = ServerHandle(
            ServerConfig(
                data_dir=tmp_path,
                port=free_port(),
                config_file=config,
                evaluate_interval=0,
                notify_interval=0,
            )
        )
        handle.start()
        try:
            later = T0 + 12 * MINUTE + timedelta(minutes=10)
            assert handle.app.state.notifier.run_once(later) == 2
            assert handle.app.state.notifier.run_once(later) == 0
        finally:
            handle.stop()
    finally:
        receiver.close()
    assert [json.loads(b)["kind"] for _, b in receiver.requests] == ["firing", "resolved"]


def test_routes_must_name_known_channels() -> None:
    with pytest.raises(NotifyConfigError, match="unknown channel"):
        NotifyConfig.parse({"channels": [], "routes": [{"channels": ["ops"]}]})
    with pytest.raises(NotifyConfigError, match=r"notifications\.channels\.0\.url"):
        NotifyConfig.parse({"channels": [{"name": "x", "type": "webhook", "url": "ftp://x"}]})
