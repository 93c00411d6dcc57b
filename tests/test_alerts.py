"""The alert engine against a real server: monitors from the settings file, windows closing
minute by minute, alerts and transitions stored and served by the API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from watchkeeper.alerting.engine import SETTLE, AlertEngine
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.keys import KeyStore

MINUTE = timedelta(minutes=1)
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 30 * MINUTE

CONFIG = """
monitors:
  - name: errors
    model: m
    metric: error_rate
    window: 1m
    condition: {type: static, op: above, threshold: 0.1}
    fire_after: 2
    of_last: 3
    resolve_after: 2
    min_samples: 5
    labels: {team: payments}
  - name: slow
    model: m
    metric: latency_p95
    window: 1m
    segment: "region:*"
    condition: {type: static, op: above, threshold: 100}
  - name: traffic
    model: m
    metric: count
    window: 1m
    condition: {type: dynamic, seasonality: none, min_history: 5, sensitivity: 4, lookback: 1d,
                direction: above}
"""


class Server:
    def __init__(self, url: str, data_dir: Path, handle: ServerHandle, key: str) -> None:
        self.url, self.data_dir, self.handle, self.key = url, data_dir, handle, key

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60
        )

    @property
    def engine(self) -> AlertEngine:
        engine: AlertEngine = self.handle.app.state.alert_engine
        return engine


def _start(tmp_path: Path, key: str) -> Server:
    config = tmp_path / "wk.yaml"
    config.write_text(CONFIG)
    handle = ServerHandle(
        ServerConfig(data_dir=tmp_path, port=free_port(), config_file=config, evaluate_interval=0)
    )
    handle.start()
    return Server(handle.url, tmp_path, handle, key)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    key = KeyStore(tmp_path).create("admin")
    s = _start(tmp_path, key)
    try:
        yield s
    finally:
        s.handle.stop()


def _events(minute: int, n: int, errors: int, slow_region: str | None) -> list[dict[str, Any]]:
    start = T0 + minute * MINUTE
    out = []
    for i in range(n):
        region = "eu" if i % 2 else "us"
        out.append(
            {
                "event_id": f"e{minute}-{i}",
                "timestamp": (start + timedelta(seconds=i * 50 / n)).isoformat(),
                "features": {"x": float(i)},
                "prediction": 1,
                "latency_ms": 250.0 if region == slow_region else 20.0,
                "status": "error" if i < errors else "ok",
                "segments": {"region": region},
            }
        )
    return out


def _run_through(server: Server, minutes: range) -> list[Any]:
    """Run the engine as the scheduler would, once each of these windows has closed."""
    changes = []
    for minute in minutes:
        now = T0 + (minute + 1) * MINUTE + SETTLE + timedelta(seconds=1)
        changes += server.engine.run(now).changes
    return changes


def _traffic(server: Server) -> None:
    plan = {3: 10, 4: 10, 5: 10}  # minutes with 50 % errors
    with server.client() as c:
        for minute in range(12):
            n = 120 if minute == 10 else 20  # a traffic spike in minute 10
            slow = "us" if minute == 4 else None
            r = c.post(
                "/api/v1/models/m/predictions",
                json={"events": _events(minute, n, plan.get(minute, 0), slow)},
            )
            assert r.status_code == 200, r.text


def test_static_monitor_fires_after_m_of_n_and_resolves_after_k(server: Server) -> None:
    _traffic(server)
    changes = _run_through(server, range(12))
    errors = [(c.transition.kind, c.transition.at) for c in changes if c.monitor.name == "errors"]
    assert errors == [
        ("pending", T0 + 3 * MINUTE),
        ("firing", T0 + 4 * MINUTE),  # 2 of the last 3 windows breached
        ("resolved", T0 + 7 * MINUTE),  # 2 clean windows: minutes 6 and 7
    ]
    with server.client() as c:
        alerts = c.get("/api/v1/alerts", params={"monitor": "errors"}).json()["alerts"]
    (alert,) = alerts
    assert alert["status"] == "resolved" and alert["severity"] == "critical"
    assert alert["labels"] == {"team": "payments"} and alert["window"] == "1m"
    assert [t["kind"] for t in alert["transitions"]] == ["pending", "firing", "resolved"]
    firing = alert["transitions"][1]
    assert firing["value"] == pytest.approx(0.5) and firing["samples"] == 20
    assert firing["context"] == {"op": "above", "threshold": 0.1}
    assert "2 of the last 3 windows breached" in firing["cause"]


def test_each_segment_value_is_its_own_alert(server: Server) -> None:
    _traffic(server)
    _run_through(server, range(12))
    with server.client() as c:
        alerts = c.get("/api/v1/alerts", params={"monitor": "slow"}).json()["alerts"]
    (alert,) = alerts  # only us was slow, and only in minute 4
    assert alert["segment"] == "region" and alert["segment_value"] == "us"
    assert [(t["kind"], t["at"]) for t in alert["transitions"]] == [
        ("firing", (T0 + 4 * MINUTE).isoformat().replace("+00:00", "Z")),
        ("resolved", (T0 + 5 * MINUTE).isoformat().replace("+00:00", "Z")),
    ]
    with server.client() as c:
        monitors = {m["name"]: m for m in c.get("/api/v1/monitors").json()["monitors"]}
    assert {s["segment_value"] for s in monitors["slow"]["series"]} == {"eu", "us"}
    assert all(s["status"] == "ok" for s in monitors["slow"]["series"])


def test_dynamic_monitor_learns_its_band_and_catches_the_spike(server: Server) -> None:
    _traffic(server)
    changes = [c for c in _run_through(server, range(12)) if c.monitor.name == "traffic"]
    assert [(c.transition.kind, c.transition.at) for c in changes] == [
        ("firing", T0 + 10 * MINUTE),
        ("resolved", T0 + 11 * MINUTE),
    ]
    band = changes[0].context["band"]
    assert changes[0].context["armed"] and band["median"] == 20.0
    assert changes[0].value == 120.0 and band["upper"] < 120.0


def test_the_series_view_shows_each_window_as_the_engine_judged_it(server: Server) -> None:
    """GET /monitors/{name}/series: value, breach and threshold or learned band per window —
    the same verdicts (and the same band) as the engine's transitions."""
    _traffic(server)
    changes = _run_through(server, range(12))
    span = {"start": T0.isoformat(), "end": (T0 + 12 * MINUTE).isoformat()}
    with server.client() as c:
        errors = c.get("/api/v1/monitors/errors/series", params=span).json()
        traffic = c.get("/api/v1/monitors/traffic/series", params=span).json()
        slow = c.get("/api/v1/monitors/slow/series", params={**span, "segment_value": "us"})
        missing = c.get("/api/v1/monitors/nope/series")
        too_long = c.get("/api/v1/monitors/errors/series", params={"start": "2020-01-01T00:00:00Z"})
    (series,) = errors["series"]
    assert series["segment_value"] is None and len(series["windows"]) == 12
    breached = [i for i, w in enumerate(series["windows"]) if w["breach"]]
    assert breached == [3, 4, 5]  # 50 % errors
    assert all(w["threshold"] == 0.1 and w["counts"] for w in series["windows"])
    assert series["windows"][3]["value"] == pytest.approx(0.5)

    (series,) = traffic["series"]
    spike = series["windows"][10]
    assert spike["breach"] == "warning" and spike["value"] == 120.0
    (fired,) = [c for c in changes if c.monitor.name == "traffic" and c.transition.kind == "firing"]
    band = fired.context["band"]
    assert spike["armed"] and spike["band"]["lower"] is None  # one-sided: -inf
    assert (spike["band"]["median"], spike["band"]["upper"]) == (band["median"], band["upper"])
    assert not series["windows"][0]["armed"]  # no history yet

    assert [s["segment_value"] for s in slow.json()["series"]] == ["us"]
    assert [i for i, w in enumerate(slow.json()["series"][0]["windows"]) if w["breach"]] == [4]
    assert missing.status_code == 404
    assert too_long.status_code == 422
    assert too_long.json()["error"]["details"][0]["field"] == "start"


def test_state_survives_a_restart_and_windows_are_not_counted_twice(
    server: Server, tmp_path: Path
) -> None:
    _traffic(server)
    _run_through(server, range(5))  # the errors alert is firing now
    assert server.engine.run(T0 + 5 * MINUTE + SETTLE + timedelta(seconds=1)).changes == []
    server.handle.stop()
    again = _start(tmp_path, server.key)
    try:
        changes = _run_through(again, range(5, 12))
        kinds = [c.transition.kind for c in changes if c.monitor.name == "errors"]
        assert kinds == ["resolved"]
        with again.client() as c:
            (alert,) = c.get("/api/v1/alerts", params={"monitor": "errors"}).json()["alerts"]
        assert [t["kind"] for t in alert["transitions"]] == ["pending", "firing", "resolved"]
        with again.client() as c:
            r = c.get("/api/v1/alerts", params={"status": "bogus"})
        assert r.status_code == 422
    finally:
        again.handle.stop()
        server.handle = again.handle  # the fixture stops it again: harmless


def test_the_scheduler_runs_the_engine_on_its_own(tmp_path: Path) -> None:
    config = tmp_path / "wk.yaml"
    config.write_text(CONFIG)
    handle = ServerHandle(
        ServerConfig(
            data_dir=tmp_path, port=free_port(), config_file=config, evaluate_interval=0.05
        )
    )
    handle.start()
    try:
        scheduler = handle.app.state.scheduler
        deadline = datetime.now(timezone.utc) + timedelta(seconds=20)
        while scheduler.runs < 3 and datetime.now(timezone.utc) < deadline:
            threading.Event().wait(0.05)
        assert scheduler.runs >= 3
    finally:
        handle.stop()


def test_sighup_reloads_the_monitors_and_keeps_them_on_a_bad_file(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.helpers import wait_for

    key = KeyStore(tmp_path).create("admin")
    config = tmp_path / "wk.yaml"
    one = "monitors:\n  - {name: a, model: m, metric: count, window: 1m, condition: {type: static, op: above, threshold: 1}}\n"
    two = (
        one
        + "  - {name: b, model: m, metric: error_rate, window: 5m, condition: {type: static, op: above, threshold: 0.1}}\n"
    )
    config.write_text(one)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchkeeper.cli.main", "serve", "--data-dir", str(tmp_path),
         "--port", str(port), "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def names() -> list[str] | None:
        try:
            r = httpx.get(f"{url}/api/v1/monitors", headers={"Authorization": f"Bearer {key}"})
            return [m["name"] for m in r.json()["monitors"]]
        except httpx.HTTPError:
            return None

    try:
        assert wait_for(names, timeout=30) == ["a"]
        config.write_text(two)
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(lambda: names() == ["a", "b"], timeout=15)
        config.write_text(two.replace("threshold: 0.1", "threshold: lots"))
        os.kill(proc.pid, signal.SIGHUP)
        threading.Event().wait(1.0)
        assert proc.poll() is None and names() == ["a", "b"]  # refused: the old ones stay
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
