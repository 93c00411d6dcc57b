"""The Grafana dashboard and the deploy examples: every panel queries series a live server
really exposes, every variable is defined, every expression is valid PromQL (promtool), and
the provisioning and Prometheus examples are valid."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer
from tests.test_prometheus_metrics import PROMTOOL, WINDOW, fill, require_binary, scrape
from watchkeeper.aggregate.sizes import floor_to
from watchkeeper.api.prometheus import MetricsSettings, exported_metrics

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "watchkeeper-dashboard.json"
BUILTINS = {"__rate_interval", "__interval", "__range", "__all", "__interval_ms"}
SERIES = re.compile(r"\b(watchkeeper_[a-z0-9_]+)")
SELECTOR = re.compile(r"(watchkeeper_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def test_the_dashboard_is_a_grafana_model() -> None:
    """A Grafana dashboard model: schema version, uid, unique panel ids, every panel placed on
    the 24-column grid with a query against the $datasource variable, and rows for each
    concern."""
    doc = dashboard()
    assert doc["schemaVersion"] >= 36 and doc["uid"] == "watchkeeper"
    names = [v["name"] for v in doc["templating"]["list"]]
    assert names == ["datasource", "model", "version"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in doc["panels"] if p["type"] == "row"]
    for concern in ("Alerts", "Operations", "Quality", "Drift", "Server health"):
        assert any(r.startswith(concern) for r in rows), concern
    for p in panels():
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]
    version = doc["templating"]["list"][2]
    assert version["includeAll"] and version["allValue"] == "^$"  # All: the version="" series


def test_every_variable_used_is_defined() -> None:
    """Each $var / ${var} in the dashboard is a templating variable or a Grafana built-in."""
    text = DASHBOARD.read_text()
    used = {a or b for a, b in VARIABLE.findall(text)}
    defined = {v["name"] for v in dashboard()["templating"]["list"]}
    assert used - defined - BUILTINS == set()
    assert {"datasource", "model", "version"} <= used


@pytest.fixture
def exposed(server: RunningServer) -> dict[str, set[str]]:
    """Every sample name a live server exposes (with data, a reference and thus drift), with
    the label names it carries."""
    server.handle.app.state.metrics_settings = MetricsSettings(cache_seconds=0)
    fill(server, "m", floor_to(datetime.now(timezone.utc), WINDOW) - timedelta(seconds=WINDOW))
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(scrape(server.url, server.read_key)):
        # families with no sample yet (counters by code) still declare their series
        out.setdefault(family.name + ("_total" if family.type == "counter" else ""), set())
        for s in family.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def test_every_expression_uses_series_the_server_exposes(exposed: dict[str, set[str]]) -> None:
    """Each series named in a panel's PromQL is on a live server's /metrics, each label it
    matches on is one that series carries, and each metric="..." is a metric the server
    exports."""
    exported = {
        n for task in ("classification", "regression", "llm") for n in exported_metrics(task)
    }
    used_series: set[str] = set()
    for expr in expressions():
        names = set(SERIES.findall(expr))
        assert names, expr
        used_series |= names
        missing = {n for n in names if n not in exposed}
        assert not missing, f"{expr}: not exposed {missing}"
        for name, matchers in SELECTOR.findall(expr):
            for label, _, value in MATCHER.findall(matchers):
                assert label in exposed[name] or not exposed[name], f"{expr}: {name} has no {label}"
                if label == "metric":
                    assert value in exported, f"{expr}: {value} is not exported"
    for needed in (
        "watchkeeper_model_metric",
        "watchkeeper_feature_drift_ratio",
        "watchkeeper_alerts_firing",
        "watchkeeper_commit_duration_seconds_bucket",
        "watchkeeper_evaluator_calls_total",
    ):
        assert needed in used_series


def test_llm_row_charts_what_the_default_llm_monitors_watch() -> None:
    """The LLM row shows the metrics the default LLM monitors watch, so a page can be
    followed to its chart (watchkeeper monitors defaults --task llm)."""
    charted = set(re.findall(r'metric="([a-z0-9_]+)"', " ".join(expressions())))
    for metric in ("hallucination_rate", "pii_rate", "refusal_rate", "cost_p95", "ttft_p95"):
        assert metric in charted, metric


def _substituted(expr: str) -> str:
    values = {"model": "m", "version": "^$", "__rate_interval": "1m", "__interval": "15s"}
    return VARIABLE.sub(lambda g: values[g.group(1) or g.group(2)], expr)


def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each expression (variables substituted) as a recording rule."""
    require_binary(PROMTOOL, "prometheus")
    rules = [
        {"record": f"watchkeeper:panel_{i}", "expr": _substituted(expr)}
        for i, expr in enumerate(expressions())
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(rules)} rules found" in check.stdout


def test_provisioning_and_prometheus_examples_are_valid(tmp_path: Path) -> None:
    """The datasource and dashboard provisioning files have Grafana's shape, and the Prometheus
    example passes `promtool check config` (its key file pointed at a real file)."""
    grafana = DEPLOY / "grafana" / "provisioning"
    ds = yaml.safe_load((grafana / "datasources" / "watchkeeper.yaml").read_text())
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    boards = yaml.safe_load((grafana / "dashboards" / "watchkeeper.yaml").read_text())
    assert boards["apiVersion"] == 1 and boards["providers"][0]["type"] == "file"
    require_binary(PROMTOOL, "prometheus")
    key = tmp_path / "watchkeeper.key"
    key.write_text("wk_read_example\n")
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert "/etc/prometheus/watchkeeper.key" in config
    path = tmp_path / "prometheus.yml"
    path.write_text(config.replace("/etc/prometheus/watchkeeper.key", str(key)))
    check = subprocess.run(
        [PROMTOOL, "check", "config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
