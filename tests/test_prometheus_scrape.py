"""A real Prometheus (Debian's package) scrapes a real server with a bearer token and answers
a PromQL query with the value the Watchkeeper API reports for the same window."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, free_port
from tests.helpers import wait_for
from tests.test_prometheus_metrics import WINDOW, api_metrics, fill, require_binary
from watchkeeper.aggregate.sizes import floor_to
from watchkeeper.api.prometheus import MetricsSettings

PROMETHEUS = "/usr/bin/prometheus"

CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: watchkeeper
    authorization:
      type: Bearer
      credentials: {key}
    static_configs:
      - targets: ["{target}"]
"""


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    def query(self, promql: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


def start_prometheus(tmp_path: Path, target: str, key: str) -> Prometheus:
    """Prometheus on a free loopback port, its data in ``tmp_path``, scraping ``target``
    every second with ``key`` as bearer token; returns once it is ready."""
    require_binary(PROMETHEUS, "prometheus")
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "prometheus.yml"
    config.write_text(CONFIG.format(key=key, target=target))
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", process)
    try:
        wait_for(prom.ready, timeout=15, interval=0.1)
    except BaseException:
        stop_prometheus(prom)
        raise
    return prom


def stop_prometheus(prom: Prometheus) -> None:
    prom.process.terminate()
    try:
        prom.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        prom.process.kill()
        prom.process.wait()


@pytest.fixture
def prometheus(server: RunningServer, tmp_path: Path) -> Iterator[Prometheus]:
    target = server.url.removeprefix("http://")
    prom = start_prometheus(tmp_path / "prom", target, server.read_key)
    try:
        yield prom
    finally:
        stop_prometheus(prom)


def test_prometheus_scrapes_the_api_value(server: RunningServer, prometheus: Prometheus) -> None:
    """`watchkeeper_model_metric{model="m",metric="latency_p95",version=""}` in Prometheus
    equals latency_p95 from GET /api/v1/models/m/metrics for the same 5-minute window, and
    the scrape target is up with the bearer token."""
    server.handle.app.state.metrics_settings = MetricsSettings(cache_seconds=0)
    for _ in range(2):  # a 5-minute boundary may pass while waiting: fill the new window
        start = floor_to(datetime.now(timezone.utc), WINDOW) - timedelta(seconds=WINDOW)
        fill(server, "m", start)
        promql = (
            'watchkeeper_model_metric{model="m",metric="latency_p95",version=""}'
            ' and on() (watchkeeper_model_window_start_timestamp_seconds{window="5m"}'
            f" == {int(start.timestamp())})"
        )
        try:
            result = wait_for(partial(prometheus.query, promql), timeout=12, interval=0.2)
        except AssertionError:
            if floor_to(datetime.now(timezone.utc), WINDOW) != start + timedelta(seconds=WINDOW):
                continue
            raise
        want = api_metrics(server, "m", start, "", ["latency_p95"])["latency_p95"]
        assert want is not None
        assert float(result[0]["value"][1]) == pytest.approx(want, rel=1e-9)
        up = prometheus.query('up{job="watchkeeper"}')
        assert [float(r["value"][1]) for r in up] == [1.0]
        return
    raise AssertionError("the 5-minute window kept moving")
