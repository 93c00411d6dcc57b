"""Webhook notifications through the durable outbox, to a real HTTP receiver on loopback."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers import wait_for
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


def _serve(tmp_path: Path, settings: str, key: str | None = None, **config: Any) -> Server:
    """A server on ``tmp_path`` with these settings; the engine and the sender run only when
    a test calls them (with its own clock), unless ``config`` sets their intervals."""
    key = key or KeyStore(tmp_path).create("admin")
    path = tmp_path / "wk.yaml"
    path.write_text(settings)
    intervals: dict[str, Any] = {"evaluate_interval": 0, "notify_interval": 0}
    handle = ServerHandle(
        ServerConfig(
            data_dir=tmp_path,
            port=free_port(),
            config_file=path,
            **{**intervals, **config},
        )
    )
    handle.start()
    return Server(handle.url, tmp_path, handle, key)


def _start(tmp_path: Path, url: str) -> Server:
    return _serve(tmp_path, _config(url))


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
    with pytest.raises(NotifyConfigError, match=r"notifications\.channels\.0\.webhook\.url"):
        NotifyConfig.parse({"channels": [{"name": "x", "type": "webhook", "url": "ftp://x"}]})


def _routed(channel: str) -> str:
    return (
        CONFIG
        + f"""
notifications:
  channels:
    - {channel}
  routes:
    - {{channels: [out], monitors: [errors]}}
"""
    )


def _run_with(tmp_path: Path, channel: str) -> None:
    server = _serve(tmp_path, _routed(channel))
    handle = server.handle
    try:
        _traffic(server)
        _run_through(server, range(12))
        assert _deliver(server) == 2
    finally:
        handle.stop()


def test_slack_gets_a_block_kit_message(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack's incoming webhooks take `text` (the notification's fallback) and `blocks`
    (https://api.slack.com/messaging/webhooks, https://api.slack.com/reference/block-kit)."""
    monkeypatch.setenv("WK_SLACK_URL", receiver.url)
    _run_with(tmp_path, "{name: out, type: slack, webhook_url_env: WK_SLACK_URL}")
    firing, resolved = (json.loads(b) for _, b in receiver.requests)
    assert set(firing) == {"text", "blocks"}
    assert firing["text"].startswith("🔴 [CRITICAL] errors: error_rate of m")
    header, fields, cause, actions = firing["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": firing["text"]}}
    assert len(header["text"]["text"]) <= 150  # Block Kit's limit for a header
    assert fields["type"] == "section" and 1 <= len(fields["fields"]) <= 10
    assert all(f["type"] == "mrkdwn" for f in fields["fields"])
    assert "*Value*\n0.5" in [f["text"] for f in fields["fields"]]
    assert "*Condition*\nabove 0.1" in [f["text"] for f in fields["fields"]]
    assert cause["type"] == "section" and "2 of the last 3" in cause["text"]["text"]
    (button,) = actions["elements"]
    assert button["type"] == "button" and button["url"].endswith("/models/m?metric=error_rate")
    assert resolved["text"].startswith("✅ [RESOLVED] errors")


def test_pagerduty_triggers_and_resolves_with_one_dedup_key(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/):
    routing_key, event_action, dedup_key, payload{summary, source, severity, ...}, links."""
    monkeypatch.setenv("WK_PD_KEY", "R" * 32)
    _run_with(
        tmp_path,
        f'{{name: out, type: pagerduty, routing_key_env: WK_PD_KEY, url: "{receiver.url}"}}',
    )
    trigger, resolve = (json.loads(b) for _, b in receiver.requests)
    assert trigger["routing_key"] == "R" * 32 and trigger["event_action"] == "trigger"
    assert set(trigger["payload"]) >= {"summary", "source", "severity"}
    assert trigger["payload"]["severity"] in ("critical", "error", "warning", "info")
    assert trigger["payload"]["severity"] == "critical"
    assert len(trigger["payload"]["summary"]) <= 1024
    assert trigger["payload"]["summary"] == "errors: error_rate of m is 0.5 (above 0.1)"
    assert trigger["payload"]["timestamp"].startswith((T0 + 4 * MINUTE).isoformat()[:16])
    assert trigger["links"][0]["href"].endswith("/models/m?metric=error_rate")
    assert resolve == {
        "routing_key": "R" * 32,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }


def test_a_missing_secret_is_an_error_the_outbox_keeps(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WK_SLACK_URL", raising=False)
    server = _serve(tmp_path, _routed("{name: out, type: slack, webhook_url_env: WK_SLACK_URL}"))
    handle = server.handle
    try:
        _traffic(server)
        _run_through(server, range(5))
        assert _deliver(server, 5) == 0
        store = handle.app.state.store
        assert store.outbox_counts() == {"queued": 1}
        (row,) = store.due_notifications(T0 + timedelta(days=1))
        assert row["attempts"] == 1
    finally:
        handle.stop()


@pytest.fixture
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus Alertmanager (Debian's package) on a loopback port."""
    binary = shutil.which("prometheus-alertmanager")
    if binary is None:
        message = "prometheus-alertmanager is not installed (scripts/install-test-deps.sh does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    d = tmp_path_factory.mktemp("am")
    (d / "am.yml").write_text(
        "route: {receiver: none, group_wait: 0s, group_interval: 1s}\nreceivers: [{name: none}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={d / 'am.yml'}",
            f"--storage.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url), timeout=30)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _active(url: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v2/alerts", params={"filter": 'alertname="errors"'}, timeout=5)
    r.raise_for_status()
    return [a for a in r.json() if a["status"]["state"] == "active"]


def test_alertmanager_receives_the_alert_and_its_resolution(
    tmp_path: Path, alertmanager: str
) -> None:
    server = _serve(tmp_path, _routed(f'{{name: out, type: alertmanager, url: "{alertmanager}"}}'))
    handle = server.handle
    try:
        _traffic(server)
        _run_through(server, range(5))
        assert _deliver(server, 5) == 1
        (alert,) = _active(alertmanager)
        assert alert["labels"] == {
            "alertname": "errors",
            "model": "m",
            "metric": "error_rate",
            "severity": "critical",
            "source": "watchkeeper",
            "team": "payments",
        }
        assert "2 of the last 3" in alert["annotations"]["description"]
        assert alert["generatorURL"].endswith("/models/m?metric=error_rate")
        _run_through(server, range(5, 12))
        assert _deliver(server) == 1
        assert _active(alertmanager) == []  # resolved: endsAt is in the past
    finally:
        handle.stop()


class _Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


class _Auth:
    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login,
            auth_data.password,
        ) == (b"wk", b"pw")
        # a failure must say handled=False, or the client waits forever
        return AuthResult(success=ok, handled=ok)


@pytest.fixture
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str, _Inbox]]:
    """A real SMTP server (aiosmtpd) on loopback that requires STARTTLS and a login."""
    from aiosmtpd.controller import Controller

    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    inbox = _Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        authenticator=_Auth(),
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield port, str(cert), inbox
    finally:
        controller.stop()


def _email_channel(port: int, ca: str) -> str:
    return (
        f"{{name: out, type: email, host: 127.0.0.1, port: {port}, ca_file: '{ca}',"
        " username_env: WK_SMTP_USER, password_env: WK_SMTP_PASSWORD,"
        " sender: alerts@example.com, to: [oncall@example.com]}"
    )


def test_email_over_starttls_with_login_has_text_and_html(
    tmp_path: Path, smtp: tuple[int, str, _Inbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, ca, inbox = smtp
    monkeypatch.setenv("WK_SMTP_USER", "wk")
    monkeypatch.setenv("WK_SMTP_PASSWORD", "pw")
    _run_with(
        tmp_path,
        _email_channel(port, ca),
    )
    assert len(inbox.envelopes) == 2
    first = inbox.envelopes[0]
    assert first.mail_from == "alerts@example.com" and first.rcpt_tos == ["oncall@example.com"]
    msg = email.message_from_bytes(first.content, policy=email.policy.default)
    assert msg["Subject"] == "[CRITICAL] errors: error_rate of m"
    assert msg["Message-ID"].startswith("<watchkeeper-")
    text = msg.get_body(preferencelist=("plain",)).get_content()
    page = msg.get_body(preferencelist=("html",)).get_content()
    assert "Value: 0.5" in text and "Condition: above 0.1" in text
    assert "2 of the last 3 windows breached" in text
    assert "<table>" in page and "Open in Watchkeeper" in page
    resolved = email.message_from_bytes(inbox.envelopes[1].content, policy=email.policy.default)
    assert resolved["Subject"] == "[RESOLVED] errors: error_rate of m"


def test_email_with_a_wrong_password_stays_queued(
    tmp_path: Path, smtp: tuple[int, str, _Inbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, ca, inbox = smtp
    monkeypatch.setenv("WK_SMTP_USER", "wk")
    monkeypatch.setenv("WK_SMTP_PASSWORD", "wrong")
    server = _serve(tmp_path, _routed(_email_channel(port, ca)))
    handle = server.handle
    try:
        _traffic(server)
        _run_through(server, range(5))
        assert _deliver(server, 5) == 0
        assert handle.app.state.store.outbox_counts() == {"queued": 1}
        assert inbox.envelopes == []
    finally:
        handle.stop()


def test_a_silence_holds_notifications_back_and_acknowledging_is_recorded(
    tmp_path: Path, receiver: Receiver
) -> None:
    server = _start(tmp_path, receiver.url)
    try:
        with server.client() as c:
            r = c.post(
                "/api/v1/silences",
                json={
                    "monitor": "errors",
                    "duration": "1h",
                    "comment": "deploying",
                    "created_by": "ana",
                },
            )
            assert r.status_code == 201, r.text
            silence = r.json()["id"]
            active = c.get("/api/v1/silences", params={"active": "true"}).json()["silences"]
            assert [s["id"] for s in active] == [silence] and active[0]["comment"] == "deploying"
            bad = c.post("/api/v1/silences", json={"duration": "1h"})
            assert bad.status_code == 422  # matches nothing: refused
            bad = c.post("/api/v1/silences", json={"monitor": "errors", "duration": "soon"})
            assert bad.status_code == 422 and "duration" in bad.text
        _traffic(server)
        _run_through(server, range(5))  # firing while silenced
        assert _deliver(server, 5) == 0 and receiver.requests == []
        with server.client() as c:
            (alert,) = c.get("/api/v1/alerts", params={"monitor": "errors"}).json()["alerts"]
            assert alert["status"] == "firing"  # recorded all the same
            r = c.post(f"/api/v1/alerts/{alert['id']}/ack", json={"by": "ana", "comment": "on it"})
            assert r.status_code == 200, r.text
            assert c.post("/api/v1/alerts/999/ack", json={}).status_code == 404
            assert c.delete(f"/api/v1/silences/{silence}").status_code == 200
            assert c.get("/api/v1/silences", params={"active": "true"}).json()["silences"] == []
            (alert,) = c.get("/api/v1/alerts", params={"monitor": "errors"}).json()["alerts"]
        assert alert["acknowledged"]["by"] == "ana" and alert["acknowledged"]["comment"] == "on it"
        assert [t["kind"] for t in alert["transitions"]][-1] == "acknowledged"
        _run_through(server, range(5, 12))  # the silence is over: the resolution is sent
        assert _deliver(server) == 1
    finally:
        server.handle.stop()
    assert [json.loads(b)["kind"] for _, b in receiver.requests] == ["resolved"]


def test_silences_and_acks_need_the_admin_scope(tmp_path: Path, receiver: Receiver) -> None:
    server = _start(tmp_path, receiver.url)
    try:
        read = KeyStore(tmp_path).create("read")
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {read}"}) as c:
            r = c.post("/api/v1/silences", json={"monitor": "errors", "duration": "1h"})
            assert r.status_code == 403
            assert c.get("/api/v1/silences").status_code == 200
    finally:
        server.handle.stop()


def test_silence_commands_talk_to_the_server(tmp_path: Path, receiver: Receiver) -> None:
    from click.testing import CliRunner

    from watchkeeper.cli.main import main

    server = _start(tmp_path, receiver.url)
    runner = CliRunner()
    common = ["--url", server.url, "--key", server.key]
    try:
        r = runner.invoke(
            main,
            ["silence", "add", *common, "--monitor", "errors", "--label", "team=payments",
             "--duration", "2h", "--comment", "maintenance"],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        silence_id = int(r.output.split()[1])
        r = runner.invoke(main, ["silence", "list", *common])
        assert r.exit_code == 0 and "monitor=errors, team=payments" in r.output
        assert "maintenance" in r.output
        r = runner.invoke(main, ["silence", "expire", *common, str(silence_id)])
        assert r.exit_code == 0 and "expired" in r.output
        r = runner.invoke(main, ["silence", "list", *common])
        assert str(silence_id) not in r.output
        r = runner.invoke(main, ["silence", "expire", *common, "9999"])
        assert r.exit_code == 1 and "404" in r.output
        r = runner.invoke(main, ["silence", "add", *common, "--label", "nonsense"])
        assert r.exit_code == 2 and "KEY=VALUE" in r.output
        r = runner.invoke(main, ["silence", "list", "--url", "http://127.0.0.1:9", "--key", "k"])
        assert r.exit_code == 1 and "cannot reach" in r.output
    finally:
        server.handle.stop()
