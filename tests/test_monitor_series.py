"""The series a monitor watches equal what the API answers for the same windows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from tests.conftest import RunningServer
from tests.test_api_drift import get, make_events, put_reference, refresh, send, tabular
from watchkeeper.aggregate.monitor_series import monitor_series
from watchkeeper.monitors.files import loads_monitors

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
START = NOW - timedelta(hours=2)


def _monitor(**fields: Any) -> Any:
    body = "\n".join(f"    {k}: {v}" for k, v in fields.items())
    (m,) = loads_monitors(f"monitors:\n  - name: t\n    model: m\n{body}\n", "t.yaml")
    return m


@pytest.fixture
def filled(server: RunningServer) -> RunningServer:
    """Two hours of traffic: regions eu/us, a latency that doubles in the second hour,
    and `amount` shifting in the second hour; a reference drawn like the first hour."""
    put_reference(server, "m", tabular(2000, 1))
    first = tabular(1200, 2)
    second = tabular(1200, 3)
    second["amount"] = second["amount"] * 3.0
    for i, (cols, t0) in enumerate(((first, START), (second, START + timedelta(hours=1)))):
        events = make_events(
            f"h{i}",
            t0,
            timedelta(hours=1),
            cols,
            segments={"region": np.array(["eu", "us", "eu"] * 400)},
        )
        for j, ev in enumerate(events):
            ev["latency_ms"] = float(20 + j % 7) * (2 if i else 1)
        send(server, "m", events)
    refresh(server)
    return server


def test_model_metric_points_equal_the_metrics_api(filled: RunningServer) -> None:
    store = filled.handle.app.state.store
    m = _monitor(
        metric="latency_p95", window="15m", condition="{type: static, op: above, threshold: 100}"
    )
    (points,) = monitor_series(store, m, START, NOW).values()
    api = get(
        filled,
        "/api/v1/models/m/metrics",
        names="latency_p95,count",
        window="15m",
        start=START,
        end=NOW,
    )
    assert [p.value for p in points] == api["metrics"]["latency_p95"]
    assert [p.samples for p in points] == api["metrics"]["count"]
    assert len(points) == 8 and all(p.samples == 300 for p in points)  # 1,200 an hour


def test_each_segment_value_gets_its_own_series(filled: RunningServer) -> None:
    store = filled.handle.app.state.store
    m = _monitor(
        metric="count",
        window="1h",
        segment="region:*",
        condition="{type: static, op: above, threshold: 1}",
    )
    series = monitor_series(store, m, START, NOW)
    assert sorted(series) == ["eu", "us"]
    assert [p.value for p in series["eu"]] == [800.0, 800.0]
    assert [p.value for p in series["us"]] == [400.0, 400.0]


def test_drift_and_quality_points_equal_the_drift_api(filled: RunningServer) -> None:
    store = filled.handle.app.state.store
    m = _monitor(
        metric="drift:amount", window="1h", condition="{type: static, op: above, threshold: 0.25}"
    )
    (points,) = monitor_series(store, m, START, NOW).values()
    tl = get(
        filled,
        "/api/v1/models/m/drift/timeline",
        window="1h",
        start=START,
        end=NOW,
        features="amount",
    )
    (row,) = tl["features"]
    assert [p.value for p in points] == row["statistic"]
    assert points[0].value is not None and points[0].value < 0.1  # the first hour: no drift
    assert points[1].value is not None and points[1].value > 0.25  # amounts tripled
    assert [p.samples for p in points] == [1200, 1200]

    score = _monitor(
        metric="drift_score", window="1h", condition="{type: static, op: above, threshold: 0.1}"
    )
    (points,) = monitor_series(store, score, START, NOW).values()
    # 5 features, of which `amount` drifts in the second hour only
    assert [p.value for p in points] == [0.0, pytest.approx(1 / 5)]

    missing = _monitor(
        metric="missing_rate:age",
        window="1h",
        condition="{type: static, op: above, threshold: 0.1}",
    )
    (points,) = monitor_series(store, missing, START, NOW).values()
    dq = get(filled, "/api/v1/models/m/data-quality", window="1h", start=START, end=NOW)
    assert [p.value for p in points] == [
        w["features"]["age"]["missing_rate"] for w in dq["windows"]
    ]
    assert [p.samples for p in points] == [w["rows"] for w in dq["windows"]]


def test_drift_metrics_without_a_reference_have_no_points(server: RunningServer) -> None:
    send(server, "m", make_events("e", START, timedelta(hours=1), tabular(100, 1)))
    store = server.handle.app.state.store
    m = _monitor(
        metric="drift_score", window="1h", condition="{type: static, op: above, threshold: 0.1}"
    )
    assert monitor_series(store, m, START, NOW) == {None: []}
