"""Automated responses against a real server: webhooks to a local receiver, real commands,
rollbacks and fallbacks of the serving version, approval, rate limits, and a crash."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers import ready, send_error_burst, wait_for
from tests.test_alerts import CONFIG, MINUTE, T0, Server, _run_through, _traffic
from tests.test_notify import Receiver
from tests.test_notify import _serve as serve_with
from watchkeeper.alerting.action_runner import ActionRunner, roll_back, rollback_target
from watchkeeper.alerting.actions import ActionConfigError, RollbackAction, loads_actions
from watchkeeper.server import ConfigError, ServerConfig, create_app, reload_config
from watchkeeper.store.keys import KeyStore

SECRET = "act-s3cret"
PY = sys.executable


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WK_ACTION_SECRET", SECRET)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _serve(tmp_path: Path, settings: str, **config: Any) -> Server:
    """A server whose engine and action runner run only when a test calls them."""
    return serve_with(tmp_path, settings, **{"action_interval": 0, **config})


def _runner(server: Server) -> ActionRunner:
    runner: ActionRunner = server.handle.app.state.action_runner
    return runner


def _runs(server: Server, **params: Any) -> list[dict[str, Any]]:
    with server.client() as c:
        r = c.get("/api/v1/actions/runs", params=params)
    assert r.status_code == 200, r.text
    runs: list[dict[str, Any]] = r.json()["runs"]
    return runs


def _q(text: str) -> str:
    """A string as a YAML double-quoted scalar."""
    return json.dumps(text)


# --------------------------------------------------------------------------- webhook, command


def test_webhook_and_command_run_once_on_firing_with_the_alert(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Both actions run once, for the firing transition only: the webhook gets the alert JSON
    signed with the secret from the environment, the command gets it on standard input, and
    the command's exit code and output are kept with the run."""
    seen = tmp_path / "seen.json"
    script = (
        "import json, os, sys; a = json.load(sys.stdin);"
        " open(os.environ['SEEN'], 'w').write(json.dumps([a, os.environ['WATCHKEEPER_RUN_ID']]));"
        " print('got', a['kind'], a['monitor']); print('to stderr', file=sys.stderr)"
    )
    settings = (
        CONFIG
        + f"""
actions:
  - name: hook
    type: webhook
    when: {{monitors: [errors]}}
    url: {_q(receiver.url)}
    headers: {{X-Team: payments}}
    secret_env: WK_ACTION_SECRET
  - name: cmd
    type: command
    when: {{monitors: [errors], severities: [critical], labels: {{team: payments}}}}
    argv: [{_q(PY)}, -c, {_q(script)}]
    env: {{SEEN: {_q(str(seen))}}}
"""
    )
    server = _serve(tmp_path, settings)
    try:
        _traffic(server)
        _run_through(server, range(12))  # errors: pending, firing, resolved
        queued = _runs(server)
        assert sorted((r["action"], r["kind"], r["status"]) for r in queued) == [
            ("cmd", "firing", "queued"),
            ("hook", "firing", "queued"),
        ]
        assert _runner(server).run_once() == 2
        assert _runner(server).run_once() == 0  # done runs are not run again
        runs = {r["action"]: r for r in _runs(server)}
        with server.client() as c:
            configured = c.get("/api/v1/actions").json()["actions"]
            one = c.get(f"/api/v1/actions/runs/{runs['cmd']['id']}")
            missing = c.get("/api/v1/actions/runs/9999")
            filtered = c.get("/api/v1/actions/runs", params={"action": "hook"}).json()["runs"]
            bad = c.get("/api/v1/actions/runs", params={"status": "sleeping"})
            (alert,) = c.get("/api/v1/alerts", params={"monitor": "errors"}).json()["alerts"]
    finally:
        server.handle.stop()
    assert [a["name"] for a in configured] == ["hook", "cmd"]
    assert configured[0]["secret_env"] == "WK_ACTION_SECRET"  # the name, never the secret
    assert configured[0]["rate_limit"] == {"max": 1, "per": "1h"}  # the default
    assert one.status_code == 200 and one.json()["id"] == runs["cmd"]["id"]
    assert missing.status_code == 404 and bad.status_code == 422
    assert [r["action"] for r in filtered] == ["hook"]

    hook = runs["hook"]
    assert hook["status"] == "succeeded" and hook["exit_code"] == 204
    assert hook["alert_id"] == alert["id"] and hook["monitor"] == "errors" and hook["model"] == "m"
    ((headers, body),) = receiver.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Watchkeeper-Signature"] == expected
    assert headers["X-Watchkeeper-Action"] == "hook"
    assert headers["X-Watchkeeper-Run"] == str(hook["id"])
    assert headers["X-Team"] == "payments"
    sent = json.loads(body)
    assert sent == hook["payload"]
    assert sent["kind"] == "firing" and sent["alert_id"] == alert["id"]
    assert sent["metric"] == "error_rate" and sent["value"] == pytest.approx(0.5)

    cmd = runs["cmd"]
    assert cmd["status"] == "succeeded" and cmd["exit_code"] == 0 and cmd["error"] is None
    assert cmd["output"]["stdout"] == "got firing errors\n"
    assert cmd["output"]["stderr"] == "to stderr\n"
    assert cmd["output"]["stdout_truncated"] is False
    assert cmd["started_at"] <= cmd["finished_at"]
    stdin, run_id = json.loads(seen.read_text())
    assert stdin == cmd["payload"] and stdin["alert_id"] == alert["id"]
    assert run_id == str(cmd["id"])


def test_a_command_past_its_timeout_is_ended_and_its_output_kept(tmp_path: Path) -> None:
    """A command still running at its timeout is terminated with its process group (the
    sleeping child too) and recorded timed_out with what it printed; a command that prints
    more than the limit keeps its head and tail, and says how much was cut; a failing one
    is failed with its exit code."""
    pidfile = tmp_path / "pid"
    settings = (
        CONFIG
        + f"""
actions:
  - name: slow
    type: command
    when: {{monitors: [errors]}}
    argv: [sh, -c, {_q(f"echo started; echo $$ > {pidfile}; sleep 60")}]
    timeout_s: 1
  - name: loud
    type: command
    when: {{monitors: [errors]}}
    argv: [{_q(PY)}, -c, "print('a' + 'x' * 100000 + 'z')"]
  - name: broken
    type: command
    when: {{monitors: [errors]}}
    argv: [sh, -c, "echo oops >&2; exit 3"]
  - name: absent
    type: command
    when: {{monitors: [errors]}}
    argv: [/nonexistent/program]
"""
    )
    server = _serve(tmp_path, settings)
    try:
        _traffic(server)
        _run_through(server, range(5))
        assert _runner(server).run_once() == 4
        runs = {r["action"]: r for r in _runs(server)}
    finally:
        server.handle.stop()
    slow = runs["slow"]
    assert slow["status"] == "timed_out" and "after 1 s" in slow["error"]
    assert slow["output"]["stdout"] == "started\n"
    wait_for(lambda: _group_gone(int(pidfile.read_text())), timeout=10)  # sleep included

    loud = runs["loud"]["output"]
    assert runs["loud"]["status"] == "succeeded"
    assert loud["stdout_bytes"] == 100003 and loud["stdout_truncated"] is True
    assert loud["stdout"].startswith("axxx") and loud["stdout"].endswith("xxz\n")
    assert "bytes cut" in loud["stdout"] and len(loud["stdout"]) < 20_000

    assert runs["broken"]["status"] == "failed" and runs["broken"]["exit_code"] == 3
    assert runs["broken"]["error"] == "exit code 3"
    assert runs["broken"]["output"]["stderr"] == "oops\n"
    assert runs["absent"]["status"] == "failed"
    assert "cannot start /nonexistent/program" in runs["absent"]["error"]


def _group_gone(pgid: int) -> bool:
    """No process of the group is left (an orphan is reaped by init a moment later)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


# --------------------------------------------------------------------------- rate limit, approval


def test_rate_limit_is_decided_when_the_run_is_recorded(tmp_path: Path) -> None:
    """Three transitions of model m fire (errors, slow for region us, traffic): an action
    limited to one run per hour and model runs once and records the other two as
    rate-limited; the same action without a limit runs three times."""
    settings = (
        CONFIG
        + """
actions:
  - name: limited
    type: command
    when: {models: [m]}
    argv: ["true"]
    rate_limit: {max: 1, per: 1h}
  - name: unlimited
    type: command
    when: {models: [m]}
    argv: ["true"]
    rate_limit: null
"""
    )
    server = _serve(tmp_path, settings)
    try:
        _traffic(server)
        _run_through(server, range(12))
        assert _runner(server).run_once() == 4
        limited = _runs(server, action="limited")
        unlimited = _runs(server, action="unlimited")
        rate_limited = _runs(server, status="rate_limited")
    finally:
        server.handle.stop()
    assert sorted(r["monitor"] for r in limited) == ["errors", "slow", "traffic"]
    assert [r["status"] for r in reversed(limited)] == [
        "succeeded",
        "rate_limited",
        "rate_limited",
    ]
    assert {r["id"] for r in rate_limited} == {r["id"] for r in limited[:2]}
    assert all("at most 1" in r["error"] and "1h" in r["error"] for r in rate_limited)
    assert all(r["started_at"] is None for r in rate_limited)  # never executed
    assert [r["status"] for r in unlimited] == ["succeeded"] * 3


def test_approval_runs_an_approved_run_and_never_a_rejected_one(tmp_path: Path) -> None:
    """Runs of an action that needs approval wait; the approved one runs, the rejected one
    never does; deciding twice is a conflict; deciding needs the admin scope; the CLI lists,
    approves and rejects through the API."""
    from click.testing import CliRunner

    from watchkeeper.cli.main import main

    log = tmp_path / "ran.log"
    settings = (
        CONFIG
        + f"""
actions:
  - name: guarded
    type: command
    when: {{monitors: [errors, slow]}}
    argv: [sh, -c, {_q(f'echo "$WATCHKEEPER_RUN_ID" >> {log}')}]
    approval: true
    rate_limit: null
"""
    )
    server = _serve(tmp_path, settings)
    cli = CliRunner()
    common = ["--url", server.url, "--key", server.key]
    try:
        _traffic(server)
        _run_through(server, range(5))  # errors and slow (us) fire at minute 4
        waiting = _runs(server, status="awaiting_approval")
        assert len(waiting) == 2
        assert _runner(server).run_once() == 0  # nothing runs unapproved
        first, second = sorted(r["id"] for r in waiting)

        r = cli.invoke(main, ["actions", "list", *common, "--status", "awaiting_approval"])
        assert r.exit_code == 0, r.output
        assert f"{first}\tawaiting_approval\tguarded (command)\tm" in r.output
        r = cli.invoke(main, ["actions", "list", *common, "--configured"])
        assert r.exit_code == 0 and "guarded\tcommand (approval)" in r.output

        read = KeyStore(tmp_path).create("read")
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {read}"}) as c:
            assert c.post(f"/api/v1/actions/runs/{first}/approve").status_code == 403
            assert c.get(f"/api/v1/actions/runs/{first}").status_code == 200
        with server.client() as c:
            r = c.post(f"/api/v1/actions/runs/{first}/approve", json={"by": "ana"})
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "queued" and r.json()["decided_by"] == "ana"
            again = c.post(f"/api/v1/actions/runs/{first}/reject", json={})
            assert again.status_code == 409 and "queued" in again.text
            assert c.post("/api/v1/actions/runs/9999/approve").status_code == 404

        r = cli.invoke(
            main, ["actions", "reject", *common, str(second), "--by", "bo", "--reason", "no"]
        )
        assert r.exit_code == 0 and "rejected" in r.output, r.output
        r = cli.invoke(main, ["actions", "approve", *common, str(second)])
        assert r.exit_code == 1 and "409" in r.output

        assert _runner(server).run_once() == 1
        runs = {r["id"]: r for r in _runs(server)}
    finally:
        server.handle.stop()
    assert log.read_text().split() == [str(first)]  # the rejected run never ran
    assert runs[first]["status"] == "succeeded" and runs[first]["decided_at"] is not None
    assert runs[second]["status"] == "rejected" and runs[second]["decided_by"] == "bo"
    assert runs[second]["error"] == "rejected by bo: no"


# --------------------------------------------------------------------------- rollback, fallback

ROLLBACK_CONFIG = """
monitors:
  - name: v2-errors
    model: r
    metric: error_rate
    version: "2"
    window: 1m
    condition: {{type: static, op: above, threshold: 0.1}}
actions:
  - name: rb
    type: rollback
    when: {{models: [r], severities: [critical]}}
{mlflow}"""


def _versioned_traffic(server: Server) -> None:
    """Version 1 serves minutes 0-1, version 2 from minute 2; half of version 2's calls fail
    in minute 3."""
    events = []
    for minute in range(5):
        version = "1" if minute < 2 else "2"
        for i in range(20):
            events.append(
                {
                    "event_id": f"r{minute}-{i}",
                    "timestamp": (T0 + minute * MINUTE + timedelta(seconds=2 * i)).isoformat(),
                    "version": version,
                    "prediction": 1,
                    "status": "error" if minute == 3 and i % 2 else "ok",
                }
            )
    with server.client() as c:
        r = c.post("/api/v1/models/r/predictions", json={"events": events})
        assert r.status_code == 200, r.text


def test_rollback_without_history_picks_the_last_other_version_seen(tmp_path: Path) -> None:
    """Nothing was ever set as serving: the monitor of version 2 fires, and the rollback
    points the model at version 1, the other version seen most recently."""
    server = _serve(tmp_path, ROLLBACK_CONFIG.format(mlflow=""))
    store = server.handle.app.state.store
    try:
        _versioned_traffic(server)
        _run_through(server, range(5))
        assert _runner(server).run_once() == 1
        (run,) = _runs(server, action="rb")
        serving = store.get_serving("r")
        (alert,) = store.list_alerts(monitor="v2-errors")
    finally:
        server.handle.stop()
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == {"model": "r", "from": "2", "to": "1", "chosen_from": "versions seen"}
    assert serving["version"] == "1" and serving["updated_by"] == "action:rb"
    assert serving["alert_id"] == alert["id"] and "rollback from 2" in serving["reason"]


def test_rollback_follows_the_serving_history_and_moves_the_mlflow_alias(tmp_path: Path) -> None:
    """Serving history 1 → 3 → 2: the rollback when version 2 fails goes to 3 (the newest
    other entry), and moves the MLflow alias there too when mlflow is installed; a later
    rollback would skip 2 (rolled back from) and go to 1."""
    mlflow_block = ""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = None
    try:
        import mlflow
    except ImportError:
        mlflow = None
    if mlflow is not None:
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.create_registered_model("r")
        for _ in range(3):
            client.create_model_version("r", source=str(tmp_path), run_id=None)
        client.set_registered_model_alias("r", "champion", "2")
        mlflow_block = f"    mlflow: {{tracking_uri: {_q(uri)}, alias: champion}}\n"
    server = _serve(tmp_path, ROLLBACK_CONFIG.format(mlflow=mlflow_block))
    store = server.handle.app.state.store
    try:
        for version in ("1", "3", "2"):
            store.set_serving("r", version, by="deploy")
        _versioned_traffic(server)
        _run_through(server, range(5))
        assert _runner(server).run_once() == 1
        (run,) = _runs(server, action="rb")
        serving = store.get_serving("r")
        later = rollback_target(store, "r", None)
        history = [h["version"] for h in store.serving_history("r")]
    finally:
        server.handle.stop()
    assert run["status"] == "succeeded", run["error"]
    assert (run["output"]["from"], run["output"]["to"]) == ("2", "3")
    assert run["output"]["chosen_from"] == "serving history"
    assert serving["version"] == "3" and history == ["3", "2", "3", "1"]
    assert later == ("3", "1", "serving history")
    if client is not None:
        assert str(client.get_model_version_by_alias("r", "champion").version) == "3"
        assert run["output"]["mlflow"] == {
            "registered_model": "r",
            "alias": "champion",
            "from": "2",
            "to": "3",
        }


def test_rollback_without_a_previous_version_fails_clearly(tmp_path: Path) -> None:
    """A model that only ever had one version has nothing to roll back to: the run fails and
    says so, and the serving version is left alone."""
    server = _serve(tmp_path, "monitors: []\n")
    store = server.handle.app.state.store
    try:
        with server.client() as c:
            event = {"event_id": "s1", "version": "1", "prediction": 1}
            assert c.post("/api/v1/models/solo/predictions", json=[event]).status_code == 200
        action = RollbackAction(name="rb", type="rollback")
        run = {"id": 1, "model": "solo", "alert_id": 7, "payload": {"model_version": "1"}}
        outcome = roll_back(action, run, store)
        serving = store.get_serving("solo")
    finally:
        server.handle.stop()
    assert outcome.status == "failed"
    assert outcome.error is not None and "no previous healthy version of solo" in outcome.error
    assert serving is None


def test_fallback_is_set_on_firing_and_cleared_on_resolution(tmp_path: Path) -> None:
    """A fallback action for firing and resolved: firing names the fallback; the resolution
    clears it even under a silence and the default rate limit (undoing is never held back)."""
    settings = (
        CONFIG
        + """
actions:
  - name: rules
    type: fallback
    when: {monitors: [errors], kinds: [firing, resolved]}
    target: rules-v1
    approval: true
"""
    )
    server = _serve(tmp_path, settings)
    store = server.handle.app.state.store
    try:
        store.set_serving("m", "7", by="deploy")
        _traffic(server)
        _run_through(server, range(5))  # firing
        (run,) = _runs(server)
        with server.client() as c:
            assert c.post(f"/api/v1/actions/runs/{run['id']}/approve").status_code == 200
            r = c.post("/api/v1/silences", json={"monitor": "errors", "duration": "1h"})
            assert r.status_code == 201
        assert _runner(server).run_once() == 1
        during = store.get_serving("m")
        _run_through(server, range(5, 12))  # resolved (silenced: not notified, still undone)
        undo = _runs(server)[0]
        assert _runner(server).run_once() == 1
        after = store.get_serving("m")
        runs = _runs(server)
    finally:
        server.handle.stop()
    assert (during["version"], during["fallback"]) == ("7", "rules-v1")
    assert during["updated_by"] == "action:rules"
    assert undo["kind"] == "resolved" and undo["undo"] is True and undo["status"] == "queued"
    assert (after["version"], after["fallback"]) == ("7", None)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert runs[0]["output"] == {
        "model": "m",
        "version": "7",
        "from": "rules-v1",
        "to": None,
        "changed": True,
    }


def test_silenced_alerts_record_their_runs_as_silenced(tmp_path: Path) -> None:
    """A silence holds actions back like notifications: the run is recorded, never run."""
    settings = CONFIG + '\nactions:\n  - {name: a, type: command, argv: ["true"]}\n'
    server = _serve(tmp_path, settings)
    try:
        with server.client() as c:
            r = c.post("/api/v1/silences", json={"model": "m", "duration": "1h"})
            assert r.status_code == 201
        _traffic(server)
        _run_through(server, range(12))
        assert _runner(server).run_once() == 0
        runs = _runs(server)
    finally:
        server.handle.stop()
    assert len(runs) == 3 and {r["status"] for r in runs} == {"silenced"}


# --------------------------------------------------------------------------- settings


def test_invalid_actions_are_reported_with_their_lines(tmp_path: Path) -> None:
    """Each problem names its line and field; the server refuses to start on them."""
    text = """\
monitors: []
actions:
  - name: a
    type: webhok
  - name: b
    type: webhook
    timeout: 5
  - name: c
    type: rollback
    when: {kinds: [firing, resolved]}
  - name: c
    type: command
    argv: []
    rate_limit: {max: 1, per: soon}
"""
    with pytest.raises(ActionConfigError) as info:
        loads_actions(text, "wk.yaml")
    lines = info.value.lines()
    assert lines[0] == (
        "wk.yaml:4: actions[0].type: unknown action type 'webhok';"
        " expected webhook, command, rollback, fallback"
    )
    assert "wk.yaml:5: actions[1].url: required field 'url' is missing" in lines
    assert any(
        line.startswith("wk.yaml:7: actions[1].timeout: unknown field 'timeout';"
                        " did you mean 'timeout_s'?")
        for line in lines
    )  # fmt: skip
    assert any(line.startswith("wk.yaml:13: actions[3].argv:") for line in lines)
    assert any(
        line.startswith("wk.yaml:14: actions[3].rate_limit.per:") and "invalid duration" in line
        for line in lines
    )
    assert any(line.startswith("wk.yaml:10: actions[2].when.kinds: a rollback on resolved")
               for line in lines)  # fmt: skip
    twice = "actions:\n  - {name: c, type: fallback, target: x}\n  - name: c\n    type: fallback\n"
    with pytest.raises(ActionConfigError) as info:
        loads_actions(twice + "    target: y\n    target: z\n", "f")
    assert info.value.lines() == [
        "f:3: actions[1].name: duplicate action name 'c' (first at actions[0])",
        "f:6: actions[1].target: duplicate key 'target' (first at line 5)",
    ]
    config = tmp_path / "wk.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=r"wk.yaml:4: actions\[0\].type"):
        create_app(ServerConfig(data_dir=tmp_path, config_file=config))


def test_a_reload_replaces_the_actions(tmp_path: Path) -> None:
    """SIGHUP's reload swaps the actions the engine asks for and the runner does; a bad file
    keeps the running ones."""
    settings = CONFIG + '\nactions:\n  - {name: one, type: command, argv: ["true"]}\n'
    server = _serve(tmp_path, settings)
    config = ServerConfig(data_dir=tmp_path, config_file=tmp_path / "wk.yaml")
    try:
        (tmp_path / "wk.yaml").write_text(
            CONFIG + '\nactions:\n  - {name: two, type: command, argv: ["true"]}\n'
        )
        assert "1 action(s)" in reload_config(server.handle.app, config)
        with server.client() as c:
            names = [a["name"] for a in c.get("/api/v1/actions").json()["actions"]]
        (tmp_path / "wk.yaml").write_text(CONFIG + "\nactions:\n  - {name: three}\n")
        assert reload_config(server.handle.app, config).startswith("reload refused")
        _traffic(server)
        _run_through(server, range(5))
        actions = {r["action"] for r in _runs(server)}
    finally:
        server.handle.stop()
    assert names == ["two"] and actions == {"two"}


def test_stopping_the_server_ends_a_running_command_as_interrupted(tmp_path: Path) -> None:
    """The runner thread does runs on its own; a command still running when the server stops
    is terminated and recorded interrupted (the next start does not run it again)."""
    pidfile = tmp_path / "pid"
    settings = (
        CONFIG
        + f"""
actions:
  - name: long
    type: command
    when: {{monitors: [errors]}}
    argv: [sh, -c, {_q(f"echo $$ > {pidfile}; sleep 60")}]
"""
    )
    server = _serve(tmp_path, settings, action_interval=0.05)
    try:
        _traffic(server)
        _run_through(server, range(5))
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=30)
    finally:
        server.handle.stop()
    wait_for(lambda: _group_gone(int(pidfile.read_text())), timeout=10)
    pidfile.unlink()
    again = _serve(tmp_path, settings, key=server.key, action_interval=0.05)
    try:
        (run,) = _runs(again)
        assert again.handle.app.state.action_runner.interrupted == 0  # recorded at the stop
    finally:
        again.handle.stop()
    assert run["status"] == "interrupted" and "server stopped" in run["error"]
    assert not pidfile.exists()


# --------------------------------------------------------------------------- crashes

SERVE = (
    "import sys; from pathlib import Path;"
    "from watchkeeper.server import ServerConfig, serve;"
    "serve(ServerConfig(Path(sys.argv[1]), port=int(sys.argv[2]), config_file=Path(sys.argv[3]),"
    " evaluate_interval=0.2, notify_interval=0, action_interval=float(sys.argv[4])))"
)
CRASH_CONFIG = """
monitors:
  - {{name: errors, model: m, metric: error_rate, window: 1m,
      condition: {{type: static, op: above, threshold: 0.1}}}}
actions:
  - {{name: job, type: command, argv: [sh, -c, {script}]}}
"""


def _server_process(
    tmp_path: Path, port: int, config: Path, action_interval: float
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [PY, "-c", SERVE, str(tmp_path), str(port), str(config), str(action_interval)]
    )
    wait_for(lambda: ready(f"http://127.0.0.1:{port}"), timeout=30)
    return proc


def _api_runs(url: str, key: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v1/actions/runs", headers={"Authorization": f"Bearer {key}"})
    runs: list[dict[str, Any]] = r.json()["runs"]
    return runs


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_queued_run_survives_sigkill_and_runs_once_after_a_restart(tmp_path: Path) -> None:
    """The alert fires and its run is queued, but the runner is off; the server is SIGKILLed.
    After a restart with the runner on, the run executes exactly once."""
    key = KeyStore(tmp_path).create("admin")
    ran = tmp_path / "ran.log"
    config = tmp_path / "wk.yaml"
    config.write_text(CRASH_CONFIG.format(script=_q(f"echo run >> {ran}")))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _server_process(tmp_path, port, config, 0)  # runs are queued, never claimed
    try:
        send_error_burst(url, key)
        queued = wait_for(lambda: _api_runs(url, key), timeout=60)
        assert [r["status"] for r in queued] == ["queued"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        _stop(proc)
    assert not ran.exists()
    proc = _server_process(tmp_path, port, config, 0.1)
    try:
        wait_for(lambda: ran.exists(), timeout=30)
        done = wait_for(
            lambda: [r for r in _api_runs(url, key) if r["status"] == "succeeded"], timeout=30
        )
        threading.Event().wait(1.0)  # several more claims: nothing runs twice
        runs = _api_runs(url, key)
    finally:
        _stop(proc)
    assert ran.read_text() == "run\n"
    assert [r["id"] for r in runs] == [done[0]["id"]] == [queued[0]["id"]]


def test_a_run_cut_off_by_a_crash_is_interrupted_not_rerun(tmp_path: Path) -> None:
    """The server is SIGKILLed while a command runs; after a restart that run is marked
    interrupted and not started again."""
    key = KeyStore(tmp_path).create("admin")
    pidfile = tmp_path / "pid"
    config = tmp_path / "wk.yaml"
    config.write_text(CRASH_CONFIG.format(script=_q(f"echo $$ >> {pidfile}; sleep 60")))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _server_process(tmp_path, port, config, 0.1)
    try:
        send_error_burst(url, key)
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        _stop(proc)
        if pidfile.exists():  # the orphaned command: end it
            for pid in pidfile.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(pid), signal.SIGKILL)
    pidfile.unlink()
    proc = _server_process(tmp_path, port, config, 0.1)
    try:
        (run,) = wait_for(lambda: _api_runs(url, key), timeout=30)
        threading.Event().wait(1.0)  # several claims: it is not started again
    finally:
        _stop(proc)
    assert run["status"] == "interrupted" and "not run again" in run["error"]
    assert not pidfile.exists()
