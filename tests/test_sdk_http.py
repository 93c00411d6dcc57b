"""The SDK against a real HTTP server on 127.0.0.1 (stdlib http.server in a thread)."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from watchkeeper import Monitor, __version__


class Recorder:
    """What the fake server saw, and the answers it should give next."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str]]] = []

    def next_answer(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            return self.script.pop(0) if self.script else (200, {})

    def events(self, suffix: str = "/predictions") -> list[dict[str, Any]]:
        with self.lock:
            return [
                event
                for r in self.requests
                if r["status"] == 200 and r["path"].endswith(suffix)
                for event in r["json"].get("events", r["json"].get("actuals", []))
            ]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        recorder: Recorder = self.server.recorder  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status, headers = recorder.next_answer()
        with recorder.lock:
            recorder.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "json": json.loads(gzip.decompress(body)),
                    "status": status,
                    "client": self.client_address,
                    "at": time.monotonic(),
                }
            )
        reply = json.dumps({"detail": f"answer {status}"}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server:
    def __init__(self, port: int = 0) -> None:
        self.recorder = Recorder()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.recorder = self.recorder  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_gzip_json_payload_and_headers(server: Server) -> None:
    """Batches are gzip'd {"events": [...]} with auth, content and user-agent headers."""
    with Monitor(
        "fraud scorer", "2.3.0", server.url, "secret", spool_dir=False, batch_size=2
    ) as monitor:
        ids = [monitor.log(features={"amount": 1.5}, prediction=1, score=0.9) for _ in range(5)]
        monitor.log_actual(ids[0], label=0)
        assert monitor.flush(timeout=5)
    requests = server.recorder.requests
    assert [r["path"] for r in requests] == ["/api/v1/models/fraud%20scorer/predictions"] * 3 + [
        "/api/v1/models/fraud%20scorer/actuals"
    ]
    headers = requests[0]["headers"]
    assert headers["Authorization"] == "Bearer secret"
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["User-Agent"] == f"watchkeeper-python/{__version__}"
    assert [e["event_id"] for e in server.recorder.events()] == ids
    assert requests[0]["json"]["events"][0]["features"] == {"amount": 1.5}
    assert requests[-1]["json"] == {"actuals": [{"event_id": ids[0], "label": 0}]}
    assert len({r["client"] for r in requests}) == 1, "one persistent connection"


def test_api_key_and_url_from_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """WATCHKEEPER_URL and WATCHKEEPER_API_KEY are used when not passed."""
    monkeypatch.setenv("WATCHKEEPER_URL", server.url)
    monkeypatch.setenv("WATCHKEEPER_API_KEY", "from-env")
    with Monitor("m", spool_dir=False) as monitor:
        monitor.log(prediction=1)
        assert monitor.flush(timeout=5)
    assert server.recorder.requests[0]["headers"]["Authorization"] == "Bearer from-env"


def test_retries_503_then_honours_retry_after(server: Server) -> None:
    """503s are retried with back-off, a 429's Retry-After is waited out, nothing duplicates."""
    server.recorder.script = [(503, {}), (503, {}), (429, {"Retry-After": "1"})]
    with Monitor("m", url=server.url, spool_dir=False, backoff=0.01) as monitor:
        event_id = monitor.log(prediction=1)
        assert monitor.flush(timeout=8)
        assert monitor.stats()["retried"] == 3 and monitor.stats()["sent"] == 1
    requests = server.recorder.requests
    assert [r["status"] for r in requests] == [503, 503, 429, 200]
    assert requests[3]["at"] - requests[2]["at"] >= 0.9
    assert [e["event_id"] for e in server.recorder.events()] == [event_id]


def test_server_down_then_up_spools_and_replays(tmp_path: Path) -> None:
    """With the server down batches go to the spool; when it is back all are replayed, none lost."""
    port = free_port()
    monitor = Monitor(
        "m", url=f"http://127.0.0.1:{port}", spool_dir=tmp_path, max_retries=1, backoff=0.01,
        batch_size=10, timeout=2,
    )  # fmt: skip
    ids = [monitor.log(prediction=i) for i in range(50)]
    assert monitor.flush(timeout=5) is False
    assert monitor.stats()["spooled"] == 50
    assert len(list(tmp_path.glob("*.predictions.gz*"))) == 5
    server = Server(port)
    try:
        ids.append(monitor.log(prediction=50))
        assert monitor.flush(timeout=5)
        wait_for(lambda: len(server.recorder.events()) == 51)
        assert sorted(e["event_id"] for e in server.recorder.events()) == sorted(ids)
        wait_for(lambda: monitor.stats()["replayed"] == 50)
        assert list(tmp_path.iterdir()) == []
        monitor.close()
    finally:
        server.stop()


def test_fork_child_sends_own_records_parent_records_once(server: Server) -> None:
    """After fork the child logs and flushes its own records; the parent's are sent once."""
    monitor = Monitor("m", url=server.url, spool_dir=False, flush_interval=60)
    parent_ids = [monitor.log(prediction=i) for i in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # multi-threaded fork on 3.12+
        pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            child_ids = [monitor.log(prediction=100 + i) for i in range(3)]
            prefixes_differ = child_ids[0].rsplit("-", 1)[0] != parent_ids[0].rsplit("-", 1)[0]
            ok = monitor.flush(timeout=5) and monitor.stats()["sent"] == 3
            code = 0 if ok and prefixes_differ else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert monitor.flush(timeout=5)
    monitor.close()
    predictions = sorted(e["prediction"] for e in server.recorder.events())
    assert predictions == [0, 1, 2, 3, 4, 100, 101, 102]
    assert len({e["event_id"] for e in server.recorder.events()}) == 8
