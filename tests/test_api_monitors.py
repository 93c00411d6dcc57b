"""Monitors through the API against a real server: created, replaced and deleted over HTTP,
persisted across restarts, evaluated by the alert engine; the settings file's monitors are
read-only; a model's default set is switched on by one call or one line of YAML."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from watchkeeper.alerting.engine import SETTLE, AlertEngine
from watchkeeper.monitors.registry import MonitorRegistry
from watchkeeper.server import ServerConfig, ServerHandle, reload_config
from watchkeeper.store.keys import KeyStore

MINUTE = timedelta(minutes=1)
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 30 * MINUTE

ERRORS = {
    "name": "errs",
    "model": "m",
    "metric": "error_rate",
    "window": "1m",
    "condition": {"type": "static", "op": "above", "threshold": 0.1},
    "min_samples": 5,
}
FILE_MONITOR = """
  - name: from-file
    model: m
    metric: count
    window: 1m
    condition: {type: static, op: above, threshold: 1000}
"""


class Server:
    """A server on a loopback port whose alert engine the test drives (no scheduler)."""

    def __init__(self, data_dir: Path, config: str | None = None) -> None:
        self.data_dir = data_dir
        keys = KeyStore(data_dir)
        self.admin, self.read = keys.create("admin", "ops"), keys.create("read")
        self.config_file: Path | None = None
        if config is not None:
            self.config_file = data_dir / "wk.yaml"
            self.config_file.write_text(config)
        self.config = ServerConfig(
            data_dir=data_dir,
            port=free_port(),
            config_file=self.config_file,
            evaluate_interval=0,
            notify_interval=0,
        )
        self.handle = ServerHandle(self.config).start()

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin}"}
        return httpx.Client(base_url=self.handle.url, headers=headers, timeout=60)

    @property
    def engine(self) -> AlertEngine:
        engine: AlertEngine = self.handle.app.state.alert_engine
        return engine

    def run_through(self, minutes: range) -> list[Any]:
        """Run the engine as the scheduler would, once each of these windows has closed."""
        changes = []
        for minute in minutes:
            result = self.engine.run(T0 + (minute + 1) * MINUTE + SETTLE + timedelta(seconds=1))
            assert result.errors == []
            changes += result.changes
        return changes

    def stop(self) -> None:
        self.handle.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.stop()


def _send(s: Server, model: str, minutes: range, failing: set[int], task: str = "") -> None:
    """20 events a minute with two features; half of them fail in the ``failing`` minutes."""
    with s.client() as c:
        for minute in minutes:
            start = T0 + minute * MINUTE
            events = [
                {
                    "event_id": f"{model}-{minute}-{i}",
                    "timestamp": (start + timedelta(seconds=2 * i)).isoformat(),
                    "features": {"amount": float(i), "country": "fr" if i % 2 else "de"},
                    "prediction": i % 2,
                    "latency_ms": 20.0,
                    "status": "error" if minute in failing and i % 2 else "ok",
                }
                for i in range(20)
            ]
            params = {"task": task} if task else {}
            r = c.post(
                f"/api/v1/models/{model}/predictions", json={"events": events}, params=params
            )
            assert r.status_code == 200, r.text


def _kinds(changes: list[Any], monitor: str) -> list[tuple[str, datetime]]:
    return [(c.transition.kind, c.transition.at) for c in changes if c.monitor.name == monitor]


def test_create_evaluate_update_delete(server: Server) -> None:
    """A monitor created over HTTP is listed and evaluated; replacing it changes what the
    engine sees from the next window on; deleting it stops it and keeps its alerts."""
    _send(server, "m", range(10), failing={2, 6, 8})
    with server.client() as c:
        r = c.post("/api/v1/monitors", json=ERRORS)
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["source"] == "api" and created["updated_by"] == "ops"
        assert created["condition"] == {"type": "static", "op": "above", "threshold": 0.1}
        (listed,) = c.get("/api/v1/monitors").json()["monitors"]
        assert listed["name"] == "errs" and listed["source"] == "api" and listed["series"] == []

    changes = server.run_through(range(4))
    assert _kinds(changes, "errs") == [("firing", T0 + 2 * MINUTE), ("resolved", T0 + 3 * MINUTE)]
    with server.client() as c:
        one = c.get("/api/v1/monitors/errs").json()
        assert [(s["series"], s["status"]) for s in one["series"]] == [("errs", "ok")]
        r = c.put("/api/v1/monitors/errs", json={**ERRORS, "condition": {
            "type": "static", "op": "above", "threshold": 0.9}})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["condition"]["threshold"] == 0.9
        assert r.json()["created_at"] == created["created_at"]

    # minute 6 fails half its calls: under 0.9, so no alert now
    assert _kinds(server.run_through(range(4, 8)), "errs") == []
    with server.client() as c:
        assert c.delete("/api/v1/monitors/errs").status_code == 204
        assert c.get("/api/v1/monitors/errs").status_code == 404
        assert c.get("/api/v1/monitors").json()["monitors"] == []
        (alert,) = c.get("/api/v1/alerts", params={"monitor": "errs"}).json()["alerts"]
        assert [t["kind"] for t in alert["transitions"]] == ["firing", "resolved"]
        assert c.delete("/api/v1/monitors/errs").status_code == 404
    assert server.run_through(range(8, 10)) == []  # minute 8 fails: nobody watches
    assert server.engine.monitors == []
    assert "errs" in server.handle.app.state.store.alert_states()  # its state stays


def test_api_monitors_survive_a_restart(tmp_path: Path) -> None:
    """The store keeps API monitors: a new server on the same data dir evaluates them."""
    first = Server(tmp_path)
    try:
        with first.client() as c:
            created = c.post("/api/v1/monitors", json=ERRORS).json()
    finally:
        first.stop()
    again = Server(tmp_path)
    try:
        _send(again, "m", range(3), failing={1})
        with again.client() as c:
            (listed,) = c.get("/api/v1/monitors").json()["monitors"]
        assert listed["name"] == "errs" and listed["source"] == "api"
        assert listed["created_at"] == created["created_at"]
        changes = again.run_through(range(3))
        assert _kinds(changes, "errs") == [("firing", T0 + MINUTE), ("resolved", T0 + 2 * MINUTE)]
    finally:
        again.stop()


def test_invalid_definitions_name_the_field(server: Server) -> None:
    """422 lists each problem with its field path and why; nothing is stored."""
    bad = {**ERRORS, "condition": {"type": "static", "op": "above", "threshold": "lots"}}
    with server.client() as c:
        r = c.post("/api/v1/monitors", json=bad)
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["code"] == "invalid_monitor"
        assert error["details"] == [
            {
                "row": None,
                "field": "condition.threshold",
                "reason": "Input should be a valid number, unable to parse string as a number",
            }
        ]
        r = c.post("/api/v1/monitors", json={**ERRORS, "windo": "1m", "window": "2m"})
        fields = {d["field"]: d["reason"] for d in r.json()["error"]["details"]}
        assert r.status_code == 422 and set(fields) == {"window", "windo"}
        assert "did you mean 'window'" in fields["windo"]
        assert fields["window"].startswith("invalid window '2m'")
        r = c.post("/api/v1/monitors", json=[ERRORS])
        assert r.status_code == 422 and "expected an object" in r.text
        r = c.post("/api/v1/monitors", json={"defaults": "m"})
        assert r.status_code == 422 and "/monitors/defaults" in r.text
        assert c.post("/api/v1/monitors", json=ERRORS).status_code == 201
        r = c.post("/api/v1/monitors", json=ERRORS)
        assert r.status_code == 409 and "created through the API" in r.text
        r = c.put("/api/v1/monitors/errs", json={**ERRORS, "name": "other"})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "name"
        without_name = {k: v for k, v in ERRORS.items() if k != "name"}
        assert c.put("/api/v1/monitors/errs", json=without_name).status_code == 200
        r = c.put("/api/v1/monitors/nope", json=without_name)
        assert r.status_code == 404 and "no monitor named 'nope'" in r.text
        r = c.put("/api/v1/monitors/errs", json={**without_name, "min_samples": -1})
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["field"] == "min_samples"
        assert c.get("/api/v1/monitors/errs").json()["min_samples"] == 5


def test_settings_file_monitors_are_read_only(tmp_path: Path) -> None:
    """A file monitor's name cannot be taken, nor the monitor changed, through the API: 409
    says to edit the file and send SIGHUP; a reload keeps the API's monitors."""
    s = Server(tmp_path, "monitors:" + FILE_MONITOR)
    try:
        with s.client() as c:
            r = c.post("/api/v1/monitors", json={**ERRORS, "name": "from-file"})
            assert r.status_code == 409 and "settings file" in r.json()["error"]["message"]
            r = c.put("/api/v1/monitors/from-file", json={**ERRORS, "name": "from-file"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "read_only_monitor"
            assert "SIGHUP" in r.json()["error"]["message"]
            assert c.delete("/api/v1/monitors/from-file").status_code == 409
            assert c.post("/api/v1/monitors", json=ERRORS).status_code == 201
            listed = c.get("/api/v1/monitors").json()["monitors"]
            assert [(m["name"], m["source"]) for m in listed] == [
                ("from-file", "file"),
                ("errs", "api"),
            ]
            only = c.get("/api/v1/monitors", params={"source": "file"}).json()["monitors"]
            assert [m["name"] for m in only] == ["from-file"]
            assert c.get("/api/v1/monitors", params={"source": "x"}).status_code == 422
        assert s.config_file is not None
        s.config_file.write_text("monitors: []\n")
        assert "reloaded 0 monitor(s)" in reload_config(s.handle.app, s.config)
        with s.client() as c:
            assert [m["name"] for m in c.get("/api/v1/monitors").json()["monitors"]] == ["errs"]
    finally:
        s.stop()


def test_default_set_by_one_call(server: Server) -> None:
    """GET previews a model's default set; POST stores it as API monitors (each editable);
    posting again creates nothing twice."""
    _send(server, "fraud", range(1), failing=set(), task="classification")
    with server.client() as c:
        preview = c.get("/api/v1/models/fraud/monitors/defaults").json()
        assert preview["task"] == "classification"
        assert preview["features"] == ["amount", "country"]
        names = [m["name"] for m in preview["monitors"]]
        assert names == [
            "fraud.latency_p95",
            "fraud.error_rate",
            "fraud.accuracy",
            "fraud.drift_score",
            "fraud.drift.amount",
            "fraud.drift.country",
            "fraud.missing.amount",
            "fraud.missing.country",
        ]
        assert all(m["exists"] is None for m in preview["monitors"])
        assert c.get("/api/v1/monitors").json()["monitors"] == []  # a preview stores nothing

        r = c.post("/api/v1/models/fraud/monitors/defaults")
        assert r.status_code == 201, r.text
        assert [m["name"] for m in r.json()["created"]] == names
        assert all(m["source"] == "api" for m in r.json()["created"])
        again = c.post("/api/v1/models/fraud/monitors/defaults")
        assert again.status_code == 200 and again.json()["created"] == []
        assert [e["name"] for e in again.json()["existing"]] == names
        listed = c.get("/api/v1/monitors", params={"model": "fraud"}).json()["monitors"]
        assert [m["name"] for m in listed] == names

        assert c.delete("/api/v1/monitors/fraud.missing.country").status_code == 204
        r = c.post("/api/v1/models/fraud/monitors/defaults")
        assert [m["name"] for m in r.json()["created"]] == ["fraud.missing.country"]
        preview = c.get("/api/v1/models/fraud/monitors/defaults").json()
        assert {m["exists"] for m in preview["monitors"]} == {"api"}

        r = c.get("/api/v1/models/nobody/monitors/defaults")
        assert r.status_code == 404 and "give its task" in r.text
        r = c.post("/api/v1/models/nobody/monitors/defaults", json={"task": "regression"})
        assert r.status_code == 201
        assert [m["metric"] for m in r.json()["created"]] == [
            "latency_p95",
            "error_rate",
            "mae",
            "drift_score",
        ]
        r = c.post("/api/v1/models/x/monitors/defaults", json={"task": "nope"})
        assert r.status_code == 422
    assert server.engine.run(T0 + 5 * MINUTE).errors == []  # nobody's have no events: skipped
    assert {m.name for m in server.engine.monitors} >= {*names, "nobody.mae"}


DEFAULTS_YAML = (
    "monitors:\n  - defaults: fraud\n  - defaults: chat\n    task: llm\n    features: []\n"
    + FILE_MONITOR.replace("from-file", "fraud.error_rate").replace("model: m", "model: fraud")
)


def test_default_set_by_one_line_of_yaml_for_a_model_seen_before(tmp_path: Path) -> None:
    """``- defaults: fraud`` resolves from the store's task and features; a file monitor of
    the same name replaces that default; the set is read-only through the API."""
    first = Server(tmp_path)
    try:
        _send(first, "fraud", range(1), failing=set(), task="classification")
    finally:
        first.stop()
    s = Server(tmp_path, DEFAULTS_YAML)
    try:
        with s.client() as c:
            body = c.get("/api/v1/monitors").json()
        got = [(m["name"], m["source"], m["default_set"]) for m in body["monitors"]]
        assert got == [
            ("fraud.error_rate", "file", None),  # the file's own, not the default's
            ("fraud.latency_p95", "defaults", "fraud"),
            ("fraud.accuracy", "defaults", "fraud"),
            ("fraud.drift_score", "defaults", "fraud"),
            ("fraud.drift.amount", "defaults", "fraud"),
            ("fraud.drift.country", "defaults", "fraud"),
            ("fraud.missing.amount", "defaults", "fraud"),
            ("fraud.missing.country", "defaults", "fraud"),
        ]
        assert body["pending_defaults"] == [
            {"defaults": "chat", "reason": "the model has no events yet"}
        ]
        with s.client() as c:
            r = c.delete("/api/v1/monitors/fraud.accuracy")
            assert r.status_code == 409 and "- defaults: fraud" in r.text and "SIGHUP" in r.text
            r = c.post("/api/v1/monitors", json={**ERRORS, "name": "fraud.accuracy"})
            assert r.status_code == 409 and "default set" in r.text
            r = c.post("/api/v1/models/fraud/monitors/defaults")
            assert r.status_code == 200 and r.json()["created"] == []
            sources = {e["source"] for e in r.json()["existing"]}
            assert sources == {"file", "defaults"}
        s.run_through(range(1))
        assert {m.name for m in s.engine.monitors} == {n for n, _, _ in got}
    finally:
        s.stop()


def test_default_set_of_a_model_not_seen_yet_arrives_with_its_events(tmp_path: Path) -> None:
    """Until the model has events its set is pending and the engine runs without it; the
    first events resolve it, and the engine evaluates it from its next run."""
    s = Server(tmp_path, DEFAULTS_YAML)
    try:
        assert s.run_through(range(2)) == []
        assert [m.name for m in s.engine.monitors] == ["fraud.error_rate"]
        with s.client(s.read) as c:
            body = c.get("/api/v1/monitors", params={"source": "defaults"}).json()
        assert body["monitors"] == []
        assert [p["defaults"] for p in body["pending_defaults"]] == ["fraud", "chat"]

        _send(s, "chat", range(3, 6), failing={4}, task="llm")
        with s.client(s.read) as c:
            listed = c.get("/api/v1/monitors", params={"model": "chat"}).json()["monitors"]
        assert [m["name"] for m in listed] == [
            "chat.latency_p95",
            "chat.error_rate",
            "chat.ttft_p95",
            "chat.hallucination_rate",
            "chat.pii_rate",
            "chat.refusal_rate",
            "chat.daily_cost",
            "chat.cost_p95",
        ]
        registry: MonitorRegistry = s.handle.app.state.monitors
        generation = registry.generation
        with s.client(s.read) as c:
            c.get("/api/v1/monitors")
        assert registry.generation == generation  # resolved once; reading changes nothing
        result = s.engine.run(T0 + 15 * MINUTE + SETTLE)
        assert result.errors == []
        assert "chat.error_rate" in {m.name for m in s.engine.monitors}
        assert "chat.error_rate" in result.states  # its 5m windows were evaluated
    finally:
        s.stop()


def test_read_keys_cannot_write(server: Server) -> None:
    """Reading monitors needs read scope; every write needs admin."""
    with server.client(server.read) as c:
        assert c.get("/api/v1/monitors").status_code == 200
        assert c.get("/api/v1/monitors/nope").status_code == 404
        for method, path, body in [
            ("POST", "/api/v1/monitors", ERRORS),
            ("PUT", "/api/v1/monitors/errs", ERRORS),
            ("DELETE", "/api/v1/monitors/errs", None),
            ("POST", "/api/v1/models/m/monitors/defaults", None),
        ]:
            r = c.request(method, path, json=body)
            assert r.status_code == 403, (method, path)
            assert r.json()["error"]["code"] == "insufficient_scope"
    r = httpx.post(f"{server.handle.url}/api/v1/monitors", json=ERRORS)
    assert r.status_code == 401
    with server.client() as c:
        assert c.get("/api/v1/monitors").json()["monitors"] == []


def test_a_changed_definition_relearns_only_its_own_history(server: Server) -> None:
    """After a replace, the engine drops the learned history of the monitor that changed
    and keeps the others'."""
    _send(server, "m", range(8), failing=set())
    dynamic = {
        "model": "m",
        "metric": "count",
        "window": "1m",
        "condition": {"type": "dynamic", "seasonality": "none", "min_history": 3,
                      "lookback": "1h"},
    }  # fmt: skip
    with server.client() as c:
        for name in ("a", "b"):
            assert c.post("/api/v1/monitors", json={"name": name, **dynamic}).status_code == 201
    server.run_through(range(6))
    a, b = server.engine._history["a"], server.engine._history["b"]
    assert len(a) == len(b) == 6
    with server.client() as c:
        r = c.put("/api/v1/monitors/b", json={**dynamic, "min_samples": 1})
        assert r.status_code == 200
    server.run_through(range(6, 7))
    assert server.engine._history["a"] is a and len(a) == 7  # kept, one window more
    assert server.engine._history["b"] is not b  # dropped and re-read from the store
    assert len(server.engine._history["b"]) == 7


def test_default_set_lines_are_validated_with_their_lines(tmp_path: Path) -> None:
    """``- defaults:`` items pass `monitors check`; bad ones get their line and field, next
    to the monitors' own problems, and stop the server from starting."""
    from click.testing import CliRunner

    from watchkeeper.cli.main import main
    from watchkeeper.monitors.files import DefaultSet, loads_monitor_settings
    from watchkeeper.server import ConfigError, create_app

    good = DEFAULTS_YAML
    monitors, sets = loads_monitor_settings(good)
    assert [m.name for m in monitors] == ["fraud.error_rate"]
    assert sets == [
        DefaultSet(defaults="fraud"),
        DefaultSet(defaults="chat", task="llm", features=[]),
    ]
    path = tmp_path / "ok.yaml"
    path.write_text(good)
    result = CliRunner().invoke(main, ["monitors", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-3:] == [
        "+ default set of fraud: the model's task, its features",
        "+ default set of chat: task llm, no features",
        "1 monitor, 2 default sets OK",
    ]

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "monitors:\n"
        "  - defaults: [fraud]\n"  # line 2
        "  - defaults: chat\n"
        "    task: chatbot\n"  # line 4
        "    feature: [a]\n"  # line 5
        "  - defaults: chat\n"  # line 6
        + FILE_MONITOR.replace("threshold: 1000", "threshold: lots")  # line 11
    )
    result = CliRunner().invoke(main, ["monitors", "check", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{bad}:2: monitors[0].defaults: Input should be a valid string",
        f"{bad}:4: monitors[1].task: Input should be 'classification', 'regression' or 'llm'",
        f"{bad}:5: monitors[1].feature: unknown field 'feature'; did you mean 'features'?"
        " (known: defaults, task, features)",
        f"{bad}:6: monitors[2].defaults: the default set of 'chat' is given twice (line 3)",
        f"{bad}:12: monitors[3].condition.threshold: Input should be a valid number, unable to"
        " parse string as a number",
        f"{bad}: 5 problems in the monitor definitions",
    ]
    with pytest.raises(ConfigError, match=r"bad.yaml:4: monitors\[1\].task"):
        create_app(ServerConfig(data_dir=tmp_path, config_file=bad))
