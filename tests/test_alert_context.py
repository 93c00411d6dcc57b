"""A drift alert says what moved most — the features and the segment values — and every
channel's message carries it, with how long the metric has been breaching."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from tests.conftest import RunningServer
from tests.test_api_drift import make_events, put_reference, refresh, send, tabular
from watchkeeper.aggregate.drift import drift_movers
from watchkeeper.alerting.engine import SETTLE, AlertEngine, _record
from watchkeeper.alerting.notify import (
    AlertmanagerChannel,
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    moved_most,
    payload,
)
from watchkeeper.monitors.files import loads_monitors

HOUR = timedelta(hours=1)
NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
START = NOW - 2 * HOUR


def _fill(server: RunningServer) -> None:
    """Two hours in regions eu/us/apac (a third each); in the second hour `amount` is three
    times larger in apac only — the demo's incident."""
    put_reference(server, "m", tabular(3000, 1))
    for i in range(2):
        cols = tabular(1500, 2 + i)
        region = np.array(["eu", "us", "apac"] * 500)
        if i:
            cols["amount"] = np.where(region == "apac", cols["amount"] * 3.0, cols["amount"])
        events = make_events(
            f"h{i}", START + i * HOUR, HOUR, cols, segments={"region": region}, prediction=None
        )
        send(server, "m", events)
    refresh(server)


def test_drift_movers_name_the_feature_and_the_segment(server: RunningServer) -> None:
    _fill(server)
    store = server.handle.app.state.store
    movers = drift_movers(store, "m", START + HOUR, NOW)
    assert movers["features"][0]["feature"] == "amount"
    assert movers["features"][0]["severity"] == "drift"
    assert movers["features"][0]["statistic"] > movers["features"][0]["threshold"]
    assert movers["segments"][0] == {
        **movers["segments"][0],
        "segment": "region:apac",
        "feature": "amount",
        "severity": "drift",
    }
    # eu and us did not move: only apac is named
    assert [s["segment"] for s in movers["segments"]] == ["region:apac"]
    # a monitor of one segment value: its features, no breakdown by another segment
    apac = drift_movers(store, "m", START + HOUR, NOW, segment=("region", "apac"))
    assert apac["features"][0]["feature"] == "amount" and apac["segments"] == []
    # the first hour is quiet: nothing drifted, nothing named as drifted
    quiet = drift_movers(store, "m", START, START + HOUR)
    assert all(f["severity"] != "drift" for f in quiet["features"] + quiet["segments"])


def test_a_drift_alert_carries_what_moved_most_to_every_channel(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(server)
    store = server.handle.app.state.store
    (monitor,) = loads_monitors(
        """
monitors:
  - name: amount-drift
    model: m
    metric: drift_score
    window: 1h
    condition: {type: static, op: above, threshold: 0.1, severity: warning}
""",
        "t.yaml",
    )
    engine = AlertEngine(store, [monitor])
    changes = engine.run(NOW + SETTLE + timedelta(seconds=1)).changes
    (firing,) = [c for c in changes if c.transition.kind == "firing"]
    moved = firing.context["moved_most"]
    assert moved["features"][0]["feature"] == "amount"
    assert moved["segments"][0]["segment"] == "region:apac"

    # stored with the transition, as the API shows it
    (alert,) = store.list_alerts(model="m")
    (stored,) = [t for t in alert["transitions"] if t["kind"] == "firing"]
    assert stored["context"]["moved_most"]["segments"][0]["segment"] == "region:apac"

    msg = payload(_record(firing), 7, "http://wk.example/")
    assert msg["moved_most"] == moved
    assert msg["breaching_for"] == "1h"
    line = moved_most(msg)
    assert line is not None and "amount (psi" in line and "region:apac: amount" in line

    monkeypatch.setenv("WK_TEST_SLACK", "http://127.0.0.1:9/slack")
    monkeypatch.setenv("WK_TEST_PD", "routing-key")
    slack = SlackChannel(name="s", type="slack", webhook_url_env="WK_TEST_SLACK")
    blocks = json.loads(slack.render(msg, 1)[2])["blocks"]
    assert any("*Moved most*" in b.get("text", {}).get("text", "") for b in blocks)
    pd = PagerDutyChannel(name="p", type="pagerduty", routing_key_env="WK_TEST_PD")
    details = json.loads(pd.render(msg, 1)[2])["payload"]["custom_details"]
    assert details["moved_most"]["segments"][0]["segment"] == "region:apac"
    assert details["breaching_for"] == "1h"
    _, _, body = AlertmanagerChannel(name="a", type="alertmanager", url="http://am:9093").render(
        msg, 1
    )
    assert "region:apac: amount" in json.loads(body)[0]["annotations"]["moved_most"]
    em = EmailChannel(
        name="e", type="email", host="localhost", sender="wk@example.com", to=["ops@example.com"]
    ).message(msg, 1)
    text = em.get_body(("plain",))
    assert text is not None and "Moved most: features: amount" in text.get_content()
    assert "(for 1h)" in text.get_content()


def test_other_alerts_carry_no_movers(server: RunningServer) -> None:
    _fill(server)
    store = server.handle.app.state.store
    (monitor,) = loads_monitors(
        """
monitors:
  - name: busy
    model: m
    metric: count
    window: 1h
    condition: {type: static, op: above, threshold: 10}
""",
        "t.yaml",
    )
    changes = AlertEngine(store, [monitor]).run(NOW + SETTLE + timedelta(seconds=1)).changes
    assert changes and all("moved_most" not in c.context for c in changes)
