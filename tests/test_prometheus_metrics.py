"""GET /metrics on a real server: valid exposition (prometheus_client's parser and promtool),
the same numbers as the JSON API for the same window, bounded cardinality, and auth."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import RunningServer, free_port
from tests.helpers import wait_for
from watchkeeper.aggregate.sizes import floor_to
from watchkeeper.alerting.engine import SETTLE
from watchkeeper.api.prometheus import MetricsSettings, exported_metrics
from watchkeeper.server import ConfigError, ServerConfig, ServerHandle, load_metrics_settings
from watchkeeper.store.keys import KeyStore

PROMTOOL = "/usr/bin/promtool"
WINDOW = 300  # the default metrics window (5m)


def require_binary(path: str, package: str) -> None:
    """Skip when ``path`` is missing on a developer's machine; fail in CI (CI=true), where
    scripts/install-test-deps.sh installs it (as the chromium fixture does)."""
    if not shutil.which(path):
        message = f"{path} is missing: apt-get install -y --no-install-recommends {package}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# ---------------------------------------------------------------------- shared helpers
def scrape(url: str, key: str | None) -> str:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def samples(text: str) -> dict[str, list[Sample]]:
    """Every sample of the exposition by sample name (counters carry their _total)."""
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def one(found: dict[str, list[Sample]], name: str, **labels: str) -> float:
    hits = [
        s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(hits) == 1, f"{name}{labels}: {hits}"
    return float(hits[0])


def events(
    window_start: datetime,
    n: int,
    *,
    prefix: str,
    versions: tuple[str, ...] = ("v1", "v2"),
    features: int = 2,
) -> list[dict[str, Any]]:
    """``n`` classification events spread over the 5-minute window, later versions later."""
    out = []
    for i in range(n):
        feats: dict[str, Any] = {f"f{j}": float((i * (j + 3)) % 17) for j in range(features)}
        feats["country"] = "de" if i % 3 else "fr"
        out.append(
            {
                "event_id": f"{prefix}-{i}",
                "timestamp": (window_start + timedelta(seconds=1 + i * 290 / n)).isoformat(),
                "version": versions[i * len(versions) // n],
                "features": feats,
                "prediction": i % 2,
                "score": (i % 10) / 10,
                "latency_ms": 5.0 + (i * 37) % 200,
                "status": "error" if i % 9 == 0 else "ok",
            }
        )
    return out


def reference_csv(rows: int, features: int) -> bytes:
    """A reference whose numbers sit lower than the events' (so the drift is visible)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*(f"f{j}" for j in range(features)), "country", "prediction", "label"])
    for i in range(rows):
        w.writerow([*((i * (j + 1)) % 7 for j in range(features)), "de", i % 2, (i // 2) % 2])
    return buf.getvalue().encode()


def fill(
    server: RunningServer,
    model: str,
    window_start: datetime,
    n: int = 120,
    *,
    versions: tuple[str, ...] = ("v1", "v2"),
    features: int = 2,
) -> None:
    """A reference, ``n`` events in the window and labels for two thirds of them; returns once
    the API sees all of it."""
    prefix = f"{model}-{int(window_start.timestamp())}"
    with server.client(server.ingest_key) as c:
        if not c.get(f"/api/v1/models/{model}", headers=_admin(server)).is_success:
            r = c.put(
                f"/api/v1/models/{model}/reference",
                content=reference_csv(200, features),
                headers={"Content-Type": "text/csv"},
            )
            assert r.status_code == 200, r.text
        batch = events(window_start, n, prefix=prefix, versions=versions, features=features)
        r = c.post(f"/api/v1/models/{model}/predictions", json={"events": batch})
        assert r.status_code == 200, r.text
        labels = [{"event_id": e["event_id"], "label": (i // 2) % 2} for i, e in enumerate(batch)]
        r = c.post(f"/api/v1/models/{model}/actuals", json={"actuals": labels[: 2 * n // 3]})
        assert r.status_code == 200, r.text

    def settled() -> bool:
        got = api_metrics(server, model, window_start, "", ["count", "labeled_count"])
        return bool(got["count"] == n and got["labeled_count"] == 2 * n // 3)

    def binned() -> bool:  # the store bins features every few seconds, apart from ingest
        params = {
            "start": window_start.isoformat(),
            "end": (window_start + timedelta(seconds=WINDOW)).isoformat(),
            "multivariate": "false",
        }
        with server.client(server.read_key) as c:
            got = c.get(f"/api/v1/models/{model}/drift", params=params).json()["features"]
        return all(f["n_current"] == n for f in got if f["feature"].startswith("f"))

    wait_for(settled, timeout=15)
    wait_for(binned, timeout=15)


def _admin(server: RunningServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_key}"}


def api_metrics(
    server: RunningServer, model: str, start: datetime, version: str, names: list[str]
) -> dict[str, Any]:
    """The JSON API's values for one 5-minute window."""
    params = {
        "names": ",".join(names),
        "start": start.isoformat(),
        "end": (start + timedelta(seconds=WINDOW)).isoformat(),
        "window": "5m",
    }
    if version:
        params["version"] = version
    with server.client(server.read_key) as c:
        r = c.get(f"/api/v1/models/{model}/metrics", params=params)
    assert r.status_code == 200, r.text
    return {name: values[0] for name, values in r.json()["metrics"].items()}


def filled_scrape(
    server: RunningServer, model: str = "m", **kw: Any
) -> tuple[datetime, dict[str, list[Sample]], str]:
    """Fill the last complete 5-minute window and scrape; when a window boundary passes in
    between, fill the new window and scrape again. Returns (window start, samples, text)."""
    server.handle.app.state.metrics_settings = kw.pop("settings", MetricsSettings(cache_seconds=0))
    for _ in range(3):
        start = floor_to(datetime.now(timezone.utc), WINDOW) - timedelta(seconds=WINDOW)
        fill(server, model, start, **kw)
        text = scrape(server.url, server.read_key)
        found = samples(text)
        if one(found, "watchkeeper_model_window_start_timestamp_seconds", window="5m") == (
            start.timestamp()
        ):
            return start, found, text
    raise AssertionError("the 5-minute window kept moving")


# ---------------------------------------------------------------------- tests
def test_exposition_parses_and_passes_promtool(server: RunningServer) -> None:
    """The output parses with prometheus_client's parser and `promtool check metrics` finds no
    problem in it (names, types, HELP, units, histogram buckets)."""
    _, found, text = filled_scrape(server)
    for name in (
        "watchkeeper_ingest_rows_total",
        "watchkeeper_commit_duration_seconds_bucket",
        "watchkeeper_write_queue_rows",
        "watchkeeper_alert_engine_lag_seconds",
        "watchkeeper_model_metric",
        "watchkeeper_feature_drift",
        "watchkeeper_alerts_firing",
    ):
        assert found.get(name), f"{name} missing from /metrics"
    require_binary(PROMTOOL, "prometheus")
    check = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_model_metrics_equal_what_the_api_answers(server: RunningServer) -> None:
    """Every watchkeeper_model_metric sample (all versions and each version) equals the value
    of GET /api/v1/models/m/metrics for the same 5-minute window."""
    start, found, _ = filled_scrape(server)
    by_version: dict[str, dict[str, float]] = {}
    for s in found["watchkeeper_model_metric"]:
        assert s.labels["model"] == "m" and s.labels["window"] == "5m"
        by_version.setdefault(s.labels["version"], {})[s.labels["metric"]] = s.value
    assert set(by_version) == {"", "v1", "v2"}
    assert by_version[""]["count"] == 120 and by_version["v1"]["count"] == 60
    for version, got in by_version.items():
        want = api_metrics(server, "m", start, version, sorted(got))
        assert got == pytest.approx(want, rel=1e-12), version
    names = set(by_version[""])
    assert {"latency_p95", "error_rate", "accuracy", "f1", "label_coverage"} <= names
    assert names <= set(exported_metrics("classification"))


def test_feature_drift_equals_the_drift_api(server: RunningServer) -> None:
    """watchkeeper_feature_drift holds the statistic GET /api/v1/models/m/drift reports for
    the drift window (1 h ending where the 5-minute window ends); the ratio is statistic over
    threshold and the drifted count matches the API's verdicts."""
    start, found, _ = filled_scrape(server)
    end = start + timedelta(seconds=WINDOW)
    d_start = one(found, "watchkeeper_model_window_start_timestamp_seconds", window="1h")
    assert d_start == (end - timedelta(hours=1)).timestamp()
    with server.client(server.read_key) as c:
        r = c.get(
            "/api/v1/models/m/drift",
            params={
                "start": (end - timedelta(hours=1)).isoformat(),
                "end": end.isoformat(),
                "multivariate": "false",
            },
        )
    assert r.status_code == 200, r.text
    api = {f["feature"]: f for f in r.json()["features"] if f["statistic"] is not None}
    got = {s.labels["feature"]: s for s in found["watchkeeper_feature_drift"]}
    assert set(got) == set(api) and {"f0", "f1", "country"} <= set(got)
    for feature, s in got.items():
        assert s.labels["method"] == api[feature]["method"]
        assert s.value == pytest.approx(api[feature]["statistic"], rel=1e-12)
        ratio = one(found, "watchkeeper_feature_drift_ratio", model="m", feature=feature)
        assert ratio == pytest.approx(api[feature]["statistic"] / api[feature]["threshold"])
    drifted = sum(f["severity"] == "drift" for f in api.values())
    assert drifted > 0  # the reference sits lower than the events
    assert one(found, "watchkeeper_model_drifted_features", model="m") == drifted


def test_many_versions_and_features_stay_within_the_limits(server: RunningServer) -> None:
    """12 versions and 30 features with max_versions=3 and max_features=5: only the three
    most recently seen versions (plus version="") and the five most drifted features are
    exported, and the gauges say how many were left out."""
    versions = tuple(f"v{i:02d}" for i in range(12))
    settings = MetricsSettings(cache_seconds=0, max_versions=3, max_features=5)
    _, found, _ = filled_scrape(
        server, "big", settings=settings, n=240, versions=versions, features=30
    )
    exported = {s.labels["version"] for s in found["watchkeeper_model_metric"]}
    assert exported == {"", "v11", "v10", "v09"}
    assert one(found, "watchkeeper_model_versions_dropped", model="big") == 9
    per_version = len(exported_metrics("classification"))
    assert len(found["watchkeeper_model_metric"]) <= 4 * per_version
    drift = found["watchkeeper_feature_drift"]
    assert len(drift) == 5
    dropped = one(found, "watchkeeper_feature_drift_dropped", model="big")
    assert dropped >= 25  # 30 features and country (and the label), each with a statistic
    ranked = sorted(
        (s for s in found["watchkeeper_feature_drift_ratio"]), key=lambda s: s.value, reverse=True
    )
    assert {s.labels["feature"] for s in ranked} == {s.labels["feature"] for s in drift}
    for s in found["watchkeeper_model_metric"] + drift:  # never per-event labels
        assert set(s.labels) <= {"model", "version", "metric", "window", "feature", "method"}


def test_metrics_needs_a_read_key_unless_public(server: RunningServer) -> None:
    """Without a key or with an unknown one: 401 with WWW-Authenticate; an ingest-only key:
    403; a read key: 200. With metrics.public the endpoint answers without a key."""
    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    assert r.headers["www-authenticate"] == "Bearer"
    bad = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    ingest = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.ingest_key}"}
    )
    assert ingest.status_code == 403
    assert "watchkeeper_build_info" in scrape(server.url, server.read_key)
    server.handle.app.state.metrics_settings = MetricsSettings(public=True)
    assert "watchkeeper_build_info" in scrape(server.url, None)


def test_metrics_settings_are_validated(tmp_path: Path) -> None:
    """The settings file's metrics: section: known keys with sane values, or a ConfigError
    naming the problem."""
    path = tmp_path / "wk.yaml"
    path.write_text("metrics:\n  public: true\n  window: 1m\n  max_features: 3\n")
    got = load_metrics_settings(path)
    assert (got.public, got.window, got.max_features) == (True, "1m", 3)
    for body, words in (
        ("metrics:\n  topn: 3\n", "unknown metrics setting"),
        ("metrics:\n  window: all\n", "metrics.window"),
        ("metrics:\n  max_versions: -1\n", "metrics.max_versions"),
        ("metrics:\n  public: 'yes'\n", "metrics.public"),
    ):
        path.write_text(body)
        with pytest.raises(ConfigError, match=words):
            load_metrics_settings(path)


def test_cache_serves_the_models_part_until_it_expires(server: RunningServer) -> None:
    """With a long cache a second scrape shows the earlier model values even after more
    events arrive (scrapes cost nothing per event); with cache_seconds=0 it shows them."""
    start, found, _ = filled_scrape(server, settings=MetricsSettings(cache_seconds=3600))
    before = one(found, "watchkeeper_model_metric", model="m", version="", metric="count")
    with server.client(server.ingest_key) as c:
        extra = events(start, 10, prefix="extra")
        assert c.post("/api/v1/models/m/predictions", json={"events": extra}).is_success
    wait_for(lambda: api_metrics(server, "m", start, "", ["count"])["count"] == before + 10)
    cached = samples(scrape(server.url, server.read_key))
    assert one(cached, "watchkeeper_model_metric", model="m", version="", metric="count") == before
    server.handle.app.state.metrics_settings = MetricsSettings(cache_seconds=0)
    fresh = samples(scrape(server.url, server.read_key))
    if one(fresh, "watchkeeper_model_window_start_timestamp_seconds", window="5m") == (
        start.timestamp()
    ):
        got = one(fresh, "watchkeeper_model_metric", model="m", version="", metric="count")
        assert got == before + 10


# ---------------------------------------------------------------------- server health
class _Refusing:
    """A webhook receiver on loopback that answers every delivery with 500."""

    def __init__(self) -> None:
        hits: list[bytes] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                hits.append(self.rfile.read(int(self.headers.get("content-length", 0))))
                self.send_response(500)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.hits = hits
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> _Refusing:
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


SETTINGS = """
monitors:
  - name: errors
    model: m
    metric: error_rate
    window: 1m
    condition: {{type: static, op: above, threshold: 0.1, severity: critical}}
    fire_after: 1
    of_last: 1
    min_samples: 5
notifications:
  channels:
    - {{name: ops, type: webhook, url: "{url}"}}
  routes:
    - {{channels: [ops]}}
"""


@pytest.fixture
def alerting(tmp_path: Path) -> Iterator[tuple[ServerHandle, str, _Refusing]]:
    key = KeyStore(tmp_path).create("admin")
    with _Refusing() as hook:
        config = tmp_path / "wk.yaml"
        config.write_text(SETTINGS.format(url=hook.url))
        handle = ServerHandle(
            ServerConfig(
                data_dir=tmp_path,
                port=free_port(),
                config_file=config,
                evaluate_interval=0,
                notify_interval=0,
                metrics=MetricsSettings(cache_seconds=0),
            )
        )
        handle.start()
        try:
            yield handle, key, hook
        finally:
            handle.stop()


def test_server_health_counts_ingest_rejections_alerts_and_deliveries(
    alerting: tuple[ServerHandle, str, _Refusing],
) -> None:
    """Accepted rows and batches, duplicates, refused batches by code, commit latency, firing
    alerts by severity (as GET /api/v1/alerts lists them) and failed deliveries by channel."""
    handle, key, hook = alerting
    headers = {"Authorization": f"Bearer {key}"}
    minute = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=2)
    batch = [
        {
            "event_id": f"e{i}",
            "timestamp": (minute + timedelta(seconds=i)).isoformat(),
            "prediction": 1,
            "status": "error" if i % 2 else "ok",
        }
        for i in range(40)
    ]
    with httpx.Client(base_url=handle.url, headers=headers, timeout=30) as c:
        assert c.post("/api/v1/models/m/predictions", json=batch).json()["accepted"] == 40
        assert c.post("/api/v1/models/m/predictions", json=batch[:10]).json()["duplicates"] == 10
        bad = c.post("/api/v1/models/m/predictions", json=[{"event_id": "x", "nope": 1}])
        assert bad.status_code == 422
        code = bad.json()["error"]["code"]
        # a new model's refused first batch, and an unreadable body: counted too
        assert c.post("/api/v1/models/new-m/predictions", json=[{"nope": 1}]).status_code == 422
        garbled = c.post(
            "/api/v1/models/m/predictions",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert garbled.status_code == 400
        assert garbled.json()["error"]["code"] == "malformed_body"
        params = {"names": "count", "window": "all", "start": minute.isoformat()}
        wait_for(
            lambda: (
                c.get("/api/v1/models/m/metrics", params=params).json()["metrics"]["count"] == [40]
            )
        )
        closed = minute + timedelta(minutes=1) + SETTLE + timedelta(seconds=1)
        assert handle.app.state.alert_engine.run(closed).changes
        handle.app.state.notifier.run_once(datetime.now(timezone.utc))
        firing = c.get("/api/v1/alerts", params={"status": "firing"}).json()["alerts"]
        found = samples(c.get("/metrics").text)
    assert [a["severity"] for a in firing] == ["critical"]
    assert one(found, "watchkeeper_alerts_firing", model="m", severity="critical") == 1
    assert one(found, "watchkeeper_alerts_firing", model="m", severity="warning") == 0
    assert one(found, "watchkeeper_ingest_rows_total", kind="events") == 40
    assert one(found, "watchkeeper_ingest_batches_total", kind="events") == 2
    assert one(found, "watchkeeper_ingest_duplicate_rows_total", kind="events") == 10
    assert one(found, "watchkeeper_ingest_rejected_batches_total", code=code) == 2
    assert one(found, "watchkeeper_ingest_rejected_batches_total", code="malformed_body") == 1
    assert one(found, "watchkeeper_commit_duration_seconds_count") >= 2
    assert hook.hits, "the webhook was never called"
    assert one(found, "watchkeeper_notification_attempts_total", channel="ops", outcome="failed")
    assert one(found, "watchkeeper_outbox_notifications", status="queued") >= 1
    assert one(found, "watchkeeper_write_queue_rows") == 0


def test_llm_quality_metrics_equal_what_the_api_answers(server: RunningServer) -> None:
    """An LLM model's evaluator metrics (after the background evaluators ran) are on
    /metrics with the JSON API's values for the same 5-minute window."""
    server.handle.app.state.metrics_settings = MetricsSettings(cache_seconds=0)
    context = "The shop opens at 9 am and closes at 6 pm from Monday to Saturday."
    answers = [
        "The shop opens at 9 am.",  # grounded
        "The shop opens at 7 am on Sundays.",  # not in the context: a hallucination
        "Write to jane.doe@example.com for details.",  # personal data
        "I'm sorry, but I can't help with that.",  # a refusal
    ]
    names = ["evaluated_count", "hallucination_rate", "pii_rate", "refusal_rate", "cost_p95"]
    for attempt in range(3):
        start = floor_to(datetime.now(timezone.utc), WINDOW) - timedelta(seconds=WINDOW)
        batch = [
            {
                "event_id": f"llm-{attempt}-{i}",
                "timestamp": (start + timedelta(seconds=2 * i + 1)).isoformat(),
                "prompt": "When are you open?",
                "response": answers[i % 4],
                "context": context,
                "input_tokens": 40 + i,
                "output_tokens": 12,
                "cost_usd": 0.0001 * (1 + i % 5),
            }
            for i in range(40)
        ]
        with server.client(server.ingest_key) as c:
            r = c.post("/api/v1/models/chat/predictions?task=llm", json={"events": batch})
            assert r.status_code == 200, r.text
        app = server.handle.app
        app.state.evaluator_runner.run_once(datetime.now(timezone.utc) + timedelta(minutes=1))
        app.state.store.refresh()
        found = samples(scrape(server.url, server.read_key))
        if one(found, "watchkeeper_model_window_start_timestamp_seconds", window="5m") == (
            start.timestamp()
        ):
            break
    else:
        raise AssertionError("the 5-minute window kept moving")
    got = {
        s.labels["metric"]: s.value
        for s in found["watchkeeper_model_metric"]
        if s.labels["model"] == "chat" and s.labels["version"] == ""
    }
    want = api_metrics(server, "chat", start, "", names)
    assert {n: got[n] for n in names} == pytest.approx(want, rel=1e-12)
    assert want["evaluated_count"] >= 40 and 0.2 <= want["pii_rate"] <= 0.3  # 1 call in 4
    assert want["refusal_rate"] > 0 and want["hallucination_rate"] > 0
