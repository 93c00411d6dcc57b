"""Drift, drift timeline, data quality and reference pinning, end to end through a real server.

Every scenario uploads a reference (Parquet or CSV), sends traffic where exactly the intended
features move, bins it with ``refresh_features()`` (instead of waiting for the 5-second job),
and asserts which features the server flags.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from tests.conftest import RunningServer, free_port
from watchkeeper.server import ServerConfig, ServerHandle

NOW = datetime.now(timezone.utc)
# Traffic lives in closed hours of a day well in the past (the hourly tier serves them).
DAY = (NOW - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
T = DAY + timedelta(hours=9)
HOUR = timedelta(hours=1)
BATCH = 5000
COUNTRIES = ["de", "fr", "it", "es"]
DEVICES = ["ios", "android", "web"]
PLAIN = ("age", "amount", "tenure", "country", "device")

Columns = dict[str, Any]


# ---------------------------------------------------------------------------- data
def tabular(n: int, seed: int) -> Columns:
    """Numbers from different families and two categoricals, all independent."""
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(40.0, 10.0, n),
        "amount": rng.lognormal(3.0, 0.5, n),
        "tenure": rng.uniform(0.0, 10.0, n),
        "country": rng.choice(COUNTRIES, n, p=[0.4, 0.3, 0.2, 0.1]).astype(object),
        "device": rng.choice(DEVICES, n, p=[0.45, 0.35, 0.2]).astype(object),
    }


def _py(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return str(value)


def make_events(
    prefix: str,
    start: datetime,
    span: timedelta,
    features: Columns,
    *,
    version: str = "v1",
    segments: Mapping[str, Sequence[str]] | None = None,
    score: Sequence[float] | None = None,
    prediction: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """One event per row, evenly spaced over [start, start + span)."""
    n = len(next(iter(features.values())))
    step = span / n
    out = []
    for i in range(n):
        ev: dict[str, Any] = {
            "event_id": f"{prefix}-{i}",
            "timestamp": (start + step * i).isoformat(),
            "version": version,
            "features": {k: _py(v[i]) for k, v in features.items()},
        }
        if segments:
            ev["segments"] = {k: str(v[i]) for k, v in segments.items()}
        if score is not None:
            ev["score"] = float(score[i])
        if prediction is not None:
            ev["prediction"] = int(prediction[i])
        out.append(ev)
    return out


# ---------------------------------------------------------------------------- API helpers
def iso(ts: datetime) -> str:
    return ts.isoformat()


def put_reference(
    server: RunningServer,
    model: str,
    columns: Columns,
    *,
    version: str | None = None,
    csv: bool = False,
) -> dict[str, Any]:
    table = pa.table({k: list(map(_py, v)) for k, v in columns.items()})
    buf = io.BytesIO()
    if csv:
        pa_csv.write_csv(table, buf)
        media = "text/csv"
    else:
        pq.write_table(table, buf)
        media = "application/vnd.apache.parquet"
    with server.client(server.ingest_key) as c:
        r = c.put(
            f"/api/v1/models/{model}/reference",
            params={"version": version} if version else None,
            content=buf.getvalue(),
            headers={"content-type": media},
        )
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == table.num_rows
    return dict(r.json())


def send(server: RunningServer, model: str, events: list[dict[str, Any]]) -> int:
    duplicates = 0
    with server.client(server.ingest_key) as c:
        for i in range(0, len(events), BATCH):
            r = c.post(
                f"/api/v1/models/{model}/predictions", json={"events": events[i : i + BATCH]}
            )
            assert r.status_code == 200, r.text
            duplicates += r.json()["duplicates"]
    return duplicates


def send_actuals(server: RunningServer, model: str, actuals: list[dict[str, Any]]) -> None:
    with server.client(server.ingest_key) as c:
        for i in range(0, len(actuals), BATCH):
            r = c.post(f"/api/v1/models/{model}/actuals", json={"actuals": actuals[i : i + BATCH]})
            assert r.status_code == 200, r.text
            assert r.json()["unmatched"] == 0


def refresh(server: RunningServer) -> None:
    """Bin every committed event now (the job otherwise runs every ~5 s)."""
    server.handle.app.state.store.refresh_features()


def get(
    server: RunningServer, path: str, status: int = 200, key: str | None = None, **params: Any
) -> dict[str, Any]:
    params = {k: (iso(v) if isinstance(v, datetime) else v) for k, v in params.items()}
    with server.client(key or server.read_key) as c:
        # the multivariate detectors train models: seconds, more on a busy machine
        r = c.get(path, params=params, timeout=180)
    assert r.status_code == status, r.text
    return dict(r.json())


def drift(
    server: RunningServer, model: str, start: datetime, end: datetime, **params: Any
) -> dict[str, Any]:
    params.setdefault("multivariate", "false")
    return get(server, f"/api/v1/models/{model}/drift", start=start, end=end, **params)


def severities(report: Mapping[str, Any]) -> dict[str, str]:
    """feature (or feature@segment with ``by``) -> severity."""
    return {
        f["feature"] + (f"@{f['segment']}" if f["segment"] else ""): f["severity"]
        for f in report["features"]
    }


def result(report: Mapping[str, Any], feature: str) -> dict[str, Any]:
    return dict(next(f for f in report["features"] if f["feature"] == feature))


def assert_flags(report: Mapping[str, Any], drifted: Iterable[str]) -> None:
    """Exactly ``drifted`` drift; every other result is ok (none insufficient or warned)."""
    sev = severities(report)
    want = set(drifted)
    assert want <= set(sev), sev
    assert {k for k, v in sev.items() if v == "drift"} == want, sev
    assert all(v == "ok" for k, v in sev.items() if k not in want), sev
    for f in report["features"]:
        assert f["drifted"] is (f["severity"] == "drift")
    assert report["summary"]["drifted"] == len(want)


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json()["error"])


# ---------------------------------------------------------------------------- 1. detection
def _scenario(server: RunningServer, model: str, current: Columns, **event_kw: Any) -> None:
    put_reference(server, model, tabular(4000, seed=1))
    send(server, model, make_events(model, T, HOUR, current, **event_kw))
    refresh(server)


def test_mean_shift_flags_only_that_feature(server: RunningServer) -> None:
    cur = tabular(3000, seed=2)
    cur["age"] = cur["age"] + 10.0  # one standard deviation
    _scenario(server, "m", cur)
    report = drift(server, "m", T, T + HOUR)
    assert_flags(report, ["age"])
    age = result(report, "age")
    assert (age["method"], age["n_reference"], age["n_current"]) == ("psi", 4000, 3000)
    assert age["statistic"] >= age["threshold"] == 0.25
    assert age["p_adjusted"] < 0.05
    assert age["extra"]["mean_current"] - age["extra"]["mean_reference"] == pytest.approx(
        10.0, abs=1.0
    )
    assert report["features"][0]["feature"] == "age"  # worst first
    assert report["reference"] == {"against": "reference", "version": None}
    assert report["unknown_features"] == [] and report["multivariate"] == []
    # features= restricts the report and names what the model does not have
    only = drift(server, "m", T, T + HOUR, features="age,tenure,nope")
    assert [f["feature"] for f in only["features"]] == ["age", "tenure"]
    assert only["unknown_features"] == ["nope"]


def test_variance_change_flags_only_that_feature(server: RunningServer) -> None:
    cur = tabular(3000, seed=3)
    cur["age"] = 40.0 + 2.0 * (cur["age"] - 40.0)  # x2 standard deviation, same mean
    _scenario(server, "m", cur)
    report = drift(server, "m", T, T + HOUR)
    assert_flags(report, ["age"])
    age = result(report, "age")
    assert age["extra"]["mean_current"] == pytest.approx(40.0, abs=1.0)
    # values beyond the reference's range are counted in the open-ended outer bins
    assert age["extra"]["out_of_range_share"] > 0.05


def test_new_category_flags_only_that_feature(server: RunningServer) -> None:
    cur = tabular(3000, seed=4)
    cur["device"][::3] = "tablet"  # a third of the traffic: a category never seen
    _scenario(server, "m", cur)
    report = drift(server, "m", T, T + HOUR)
    assert_flags(report, ["device"])
    device = result(report, "device")
    assert device["kind"] == "string"
    assert device["extra"]["unseen_share"] == pytest.approx(1000 / 3000)
    assert "__unseen__" in device["histogram"]["labels"]


def test_feature_going_null_flags_drift_and_data_quality(server: RunningServer) -> None:
    cur = tabular(3000, seed=5)
    tenure = cur["tenure"].astype(object)
    tenure[:1200] = None  # 40 % missing; the reference has none
    cur["tenure"] = tenure
    _scenario(server, "m", cur)
    report = drift(server, "m", T, T + HOUR)
    assert_flags(report, ["tenure"])
    tr = result(report, "tenure")
    assert tr["missing_reference"] == 0.0
    assert tr["missing_current"] == pytest.approx(0.4)
    assert tr["n_current"] == 1800  # non-missing values
    assert tr["histogram"]["labels"][-1] == "missing"
    assert tr["histogram"]["current"][-1] == pytest.approx(0.4)

    dq = get(server, "/api/v1/models/m/data-quality", start=T, end=T + HOUR)
    (window,) = dq["windows"]
    q = window["features"]["tenure"]
    assert q["rows"] == 3000
    assert q["missing_rate"] == pytest.approx(0.4)
    assert q["missing_change"] == pytest.approx(0.4)
    assert q["all_null"] == 0
    for name in ("age", "amount", "country", "device"):
        assert window["features"][name]["missing_rate"] == 0.0
        assert window["features"][name]["missing_change"] == 0.0


def test_drift_in_one_segment_only(server: RunningServer) -> None:
    cur = tabular(3000, seed=6)
    region = np.where(np.arange(3000) % 5 == 0, "us", "eu")  # us: 20 % of the traffic
    cur["age"] = np.where(region == "us", cur["age"] + 20.0, cur["age"])
    _scenario(server, "m", cur, segments={"region": region})

    by = drift(server, "m", T, T + HOUR, by="region")
    assert by["by"] == "region" and by["multivariate"] == []
    sev = severities(by)
    assert set(sev) == {f"{f}@region:{r}" for f in PLAIN for r in ("us", "eu")}
    assert_flags(by, ["age@region:us"])
    us_age = next(
        f for f in by["features"] if f["segment"] == "region:us" and f["feature"] == "age"
    )
    assert us_age["n_current"] == 600

    us = drift(server, "m", T, T + HOUR, segment="region:us")
    assert us["segment"] == "region:us"
    assert_flags(us, ["age"])
    assert result(us, "age")["n_current"] == 600
    eu = drift(server, "m", T, T + HOUR, segment="region:eu")
    assert_flags(eu, [])
    assert result(eu, "age")["n_current"] == 2400
    # a segment value no traffic carries: nothing to judge
    none = drift(server, "m", T, T + HOUR, segment="region:apac")
    assert set(severities(none).values()) == {"insufficient"}


def _seasonal(hours: np.ndarray, seed: int) -> Columns:
    rng = np.random.default_rng(seed)
    n = len(hours)
    return {
        "load": 50.0 + 20.0 * np.sin(2 * np.pi * hours / 24) + rng.normal(0.0, 5.0, n),
        "temp": 15.0 + 8.0 * np.sin(2 * np.pi * (hours - 6) / 24) + rng.normal(0.0, 2.0, n),
        "channel": rng.choice(["app", "web"], n, p=[0.6, 0.4]).astype(object),
    }


def test_daily_seasonality_over_a_full_day_is_not_drift(server: RunningServer) -> None:
    rng = np.random.default_rng(7)
    put_reference(server, "m", _seasonal(rng.uniform(0, 24, 4000), seed=8), csv=True)
    n = 4800
    day = DAY + timedelta(days=1)
    cur = _seasonal(np.arange(n) * 24 / n, seed=9)  # event i at hour i * 24 / n
    send(server, "m", make_events("s", day, timedelta(days=1), cur))
    refresh(server)
    report = drift(server, "m", day, day + timedelta(days=1))
    assert_flags(report, [])
    assert result(report, "load")["n_current"] == n
    # the seasonality is real: the morning peak alone is far from the daily mix
    peak = drift(server, "m", day + timedelta(hours=5), day + timedelta(hours=7))
    assert severities(peak)["load"] == "drift"


# ---------------------------------------------------------------------------- 2. outputs
def test_score_and_label_drift(server: RunningServer) -> None:
    rng = np.random.default_rng(10)
    ref = tabular(4000, seed=11)
    ref_score = rng.beta(2, 5, 4000)
    ref["score"] = ref_score
    ref["prediction"] = (ref_score > 0.5).astype(int)
    ref["label"] = (rng.random(4000) < 0.3).astype(int)
    put_reference(server, "m", ref)

    cur = tabular(3000, seed=12)
    score = rng.beta(5, 2, 3000)  # scores move up
    pred = (score > 0.5).astype(int)
    region = np.where(np.arange(3000) % 3 == 0, "us", "eu")
    events = make_events(
        "o", T, HOUR, cur, score=score, prediction=pred, segments={"region": region}
    )
    send(server, "m", events)
    refresh(server)
    before = drift(server, "m", T, T + HOUR)
    assert "__label__" not in severities(before)  # no ground truth in the range yet
    assert_flags(before, ["__score__", "__prediction__"])
    assert result(before, "__score__")["kind"] == "number"

    labels = (rng.random(3000) < 0.7).astype(int)  # the positive share goes 0.3 -> 0.7
    send_actuals(
        server,
        "m",
        [{"event_id": e["event_id"], "label": int(y)} for e, y in zip(events, labels, strict=True)],
    )
    after = drift(server, "m", T, T + HOUR)
    assert_flags(after, ["__score__", "__prediction__", "__label__"])
    label = result(after, "__label__")
    assert (label["n_reference"], label["n_current"]) == (4000, 3000)
    shares = dict(zip(label["histogram"]["labels"], label["histogram"]["current"], strict=True))
    assert shares["1"] == pytest.approx(labels.mean(), abs=1e-6)
    # the label's filters join the events: segment and version
    us = drift(server, "m", T, T + HOUR, segment="region:us")
    assert result(us, "__label__")["n_current"] == 1000
    assert result(drift(server, "m", T, T + HOUR, version="v1"), "__label__")["n_current"] == 3000
    assert "__label__" not in severities(drift(server, "m", T, T + HOUR, version="v9"))


def test_regression_outputs_profiled_as_numbers(server: RunningServer) -> None:
    """A regression model's reference arrives before its first events: the prediction and
    label are still profiled (and binned) as numbers."""
    rng = np.random.default_rng(37)
    ref = tabular(3000, seed=38)
    ref["prediction"] = rng.normal(30.0, 8.0, 3000)
    ref["label"] = rng.normal(30.0, 8.0, 3000)
    put_reference(server, "m", ref)
    events = make_events("g", T, HOUR, tabular(2000, seed=39))
    for e, p in zip(events, rng.normal(30.0, 8.0, 2000), strict=True):
        e["prediction"] = float(p)
    labels = rng.normal(45.0, 8.0, 2000)  # ground truth moves, predictions do not
    with server.client(server.ingest_key) as c:
        r = c.post("/api/v1/models/m/predictions", params={"task": "regression"}, json=events)
        assert r.status_code == 200, r.text
    send_actuals(
        server,
        "m",
        [
            {"event_id": e["event_id"], "label": float(y)}
            for e, y in zip(events, labels, strict=True)
        ],
    )
    refresh(server)
    report = drift(server, "m", T, T + HOUR)
    assert_flags(report, ["__label__"])
    for name in ("__prediction__", "__label__"):
        got = result(report, name)
        assert got["kind"] == "number" and got["n_current"] == 2000, got
    label = result(report, "__label__")
    assert label["extra"]["mean_current"] == pytest.approx(labels.mean())


# ---------------------------------------------------------------------------- 3. previous
def test_against_previous_window(server: RunningServer) -> None:
    # a quarter of the rows (the us segment in traffic) have amounts three times the others'
    us_amount = (np.arange(4000) % 4 == 0) * 2.0 + 1.0
    ref = tabular(4000, seed=13)
    ref["amount"] = ref["amount"] * us_amount
    put_reference(server, "m", ref)
    a, b, c = (tabular(2000, seed=s) for s in (14, 15, 16))
    b["age"] = b["age"] + 10.0
    c["age"] = c["age"] + 10.0
    region = np.where(np.arange(2000) % 4 == 0, "us", "eu")
    for i, (cols, start) in enumerate([(a, T), (b, T + HOUR), (c, T + 2 * HOUR)]):
        cols["amount"] = cols["amount"] * us_amount[:2000]
        events = make_events(f"w{i}", start, HOUR, cols, segments={"region": region})
        send(server, "m", events)
    refresh(server)

    changed = drift(server, "m", T + HOUR, T + 2 * HOUR, against="previous")
    assert changed["reference"]["against"] == "previous"
    assert changed["reference"]["start"].startswith(T.strftime("%Y-%m-%dT%H:%M:%S"))
    assert changed["reference"]["end"].startswith((T + HOUR).strftime("%Y-%m-%dT%H:%M:%S"))
    assert_flags(changed, ["age"])
    assert result(changed, "age")["n_reference"] == 2000
    # the shift persists: against the previous hour nothing moved, against the reference it did
    assert_flags(drift(server, "m", T + 2 * HOUR, T + 3 * HOUR, against="previous"), [])
    assert_flags(drift(server, "m", T + 2 * HOUR, T + 3 * HOUR), ["age"])
    # with by, each segment compares with its own previous window
    by = drift(server, "m", T + HOUR, T + 2 * HOUR, against="previous", by="region")
    assert_flags(by, ["age@region:us", "age@region:eu"])
    us_age = next(f for f in by["features"] if f["feature"] == "age" and "us" in f["segment"])
    assert us_age["n_reference"] == 500
    by = drift(server, "m", T + 2 * HOUR, T + 3 * HOUR, against="previous", by="region")
    assert_flags(by, [])
    # two-hour windows compare with the two hours before
    wide = drift(server, "m", T + 2 * HOUR, T + 4 * HOUR, against="previous")
    assert result(wide, "age")["n_reference"] == 4000


# ---------------------------------------------------------------------------- 4. timeline
def _zulu(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_timeline_flags_the_windows_after_the_change(server: RunningServer) -> None:
    put_reference(server, "m", tabular(4000, seed=17))
    for h in range(6):
        cols = tabular(500, seed=100 + h)
        if h >= 3:
            cols["amount"] = cols["amount"] * 2.0  # the change, halfway
        send(server, "m", make_events(f"h{h}", T + h * HOUR, HOUR, cols))
    refresh(server)

    tl = get(server, "/api/v1/models/m/drift/timeline", window="1h", start=T, end=T + 6 * HOUR)
    assert tl["window_seconds"] == 3600
    assert tl["windows"] == [_zulu(T + h * HOUR) for h in range(6)]
    rows = {r["feature"]: r for r in tl["features"]}
    assert set(rows) == set(PLAIN)
    assert tl["features"][0]["feature"] == "amount"  # worst first
    amount = rows["amount"]
    assert amount["n"] == [500] * 6
    assert all(s < amount["warn_threshold"] for s in amount["statistic"][:3]), amount
    assert all(s > amount["threshold"] for s in amount["statistic"][3:]), amount
    assert amount["severity"] == ["ok"] * 3 + ["drift"] * 3
    for name in set(PLAIN) - {"amount"}:
        assert rows[name]["severity"] == ["ok"] * 6, rows[name]

    # an unaligned range: windows still start on multiples of the window size
    tl = get(
        server,
        "/api/v1/models/m/drift/timeline",
        window="1h",
        start=T + timedelta(minutes=10),
        end=T + 2 * HOUR,
    )
    assert tl["windows"] == [_zulu(T), _zulu(T + HOUR)]
    # a window of 15 minutes: 4 per hour, each holding a quarter of the hour's events
    tl = get(server, "/api/v1/models/m/drift/timeline", window="15m", start=T, end=T + HOUR)
    assert len(tl["windows"]) == 4
    assert {r["feature"]: r["n"] for r in tl["features"]}["age"] == [125] * 4


# ---------------------------------------------------------------------------- 5. data quality
def test_data_quality_metrics(server: RunningServer) -> None:
    ref = tabular(4000, seed=18)
    put_reference(server, "m", ref)
    n = 2000
    cur = tabular(n, seed=19)
    cur["age"][:200] = 1000.0  # 10 % far above the reference's maximum
    cur["country"][200:500] = "xx"  # 15 % a category the reference never held
    cur["tenure"] = np.full(n, 5.0)  # constant
    device = cur["device"].astype(object)
    device[500:1000] = None  # 25 % missing
    cur["device"] = device
    events = make_events("q", T, HOUR, cur)
    send(server, "m", events)
    # a retried batch (same ids, same times) is refused and counted as duplicates
    assert send(server, "m", events[:100]) == 100
    # NaN cannot be sent: JSON has none, and an Arrow batch carrying one is refused
    nan_batch = pa.table(
        {
            "event_id": ["nan-0"],
            "timestamp": pa.array([T], pa.timestamp("us", tz="UTC")),
            "features.age": [float("nan")],
        }
    )
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, nan_batch.schema) as writer:
        writer.write_table(nan_batch)
    with server.client(server.ingest_key) as c:
        r = c.post(
            "/api/v1/models/m/predictions",
            content=sink.getvalue(),
            headers={"content-type": "application/vnd.apache.arrow.stream"},
        )
    assert error(r, 422)["details"][0]["field"] == "features.age"
    # a feature the reference never had, sent now (schema changes are dated on arrival)
    promo = make_events("p", NOW - timedelta(minutes=2), timedelta(minutes=1), tabular(50, 20))
    for e in promo:
        e["features"]["promo"] = 1.0
    send(server, "m", promo)
    # the next hour's traffic no longer carries "amount"
    later = tabular(100, seed=40)
    del later["amount"]
    send(server, "m", make_events("l", T + HOUR, HOUR, later))
    refresh(server)

    dq = get(server, "/api/v1/models/m/data-quality", start=T, end=T + HOUR)
    assert dq["window_seconds"] is None
    assert dq["features_not_in_reference"] == ["promo"]
    (w,) = dq["windows"]
    assert w["rows"] == n
    assert w["duplicates"] == 100
    assert w["duplicate_rate"] == pytest.approx(100 / (n + 100))
    assert w["schema"] == {"appeared": [], "disappeared": []}
    f = w["features"]
    assert set(f) == set(PLAIN)  # the pseudo-features and unprofiled "promo" are not listed
    outside = int(np.sum((cur["age"] > ref["age"].max()) | (cur["age"] < ref["age"].min())))
    assert outside >= 200
    assert f["age"]["out_of_range_rate"] == pytest.approx(outside / n)
    assert f["amount"]["out_of_range_rate"] < 0.01
    assert f["country"]["unseen_rate"] == pytest.approx(0.15)
    assert f["device"]["unseen_rate"] == 0.0
    assert f["device"]["missing_rate"] == pytest.approx(0.25)
    assert f["device"]["missing_change"] == pytest.approx(0.25)
    assert f["tenure"]["constant"] == 1
    assert f["tenure"]["min"] == f["tenure"]["max"] == 5.0
    assert all(f[name]["constant"] == 0 for name in ("age", "amount", "country", "device"))
    for name in ("age", "amount", "tenure"):
        assert f[name]["invalid_rate"] == 0.0
        assert f[name]["unseen_rate"] is None
    assert f["country"]["out_of_range_rate"] is None

    # per window: two hours of 1h windows, the second empty
    dq = get(server, "/api/v1/models/m/data-quality", window="1h", start=T, end=T + 2 * HOUR)
    assert [w["start"] for w in dq["windows"]] == [_zulu(T), _zulu(T + HOUR)]
    assert [w["rows"] for w in dq["windows"]] == [n, 100]
    assert [w["duplicates"] for w in dq["windows"]] == [100, 0]
    assert dq["windows"][0]["schema"]["disappeared"] == []
    assert dq["windows"][1]["schema"]["disappeared"] == ["amount"]
    assert dq["windows"][1]["features"]["amount"]["all_null"] == 1
    assert dq["windows"][1]["features"]["amount"]["missing_rate"] == 1.0
    # a window with no traffic at all: no rows, no rates
    empty = get(server, "/api/v1/models/m/data-quality", start=T - HOUR, end=T)
    assert empty["windows"][0]["rows"] == 0
    assert empty["windows"][0]["features"]["age"]["missing_rate"] is None
    # segment filter: duplicates are not kept per segment
    seg = get(server, "/api/v1/models/m/data-quality", start=T, end=T + HOUR, segment="r:x")
    assert seg["windows"][0]["duplicates"] is None

    # the window where the new feature arrived names it
    recent = get(
        server,
        "/api/v1/models/m/data-quality",
        start=NOW - timedelta(minutes=10),
        end=datetime.now(timezone.utc) + timedelta(minutes=1),
    )
    assert recent["windows"][0]["schema"]["appeared"] == ["promo"]
    assert recent["windows"][0]["rows"] == 50


# ---------------------------------------------------------------------------- 6. pin
def test_pin_a_window_as_a_versions_reference(server: RunningServer) -> None:
    put_reference(server, "m", tabular(4000, seed=21))
    v1 = tabular(3000, seed=22)
    v1["age"] = v1["age"] + 15.0
    send(server, "m", make_events("v1", T, HOUR, v1, version="v1"))
    refresh(server)
    assert_flags(drift(server, "m", T, T + HOUR, version="v1"), ["age"])

    with server.client(server.ingest_key) as c:
        r = c.post(
            "/api/v1/models/m/reference/pin",
            params={"start": iso(T), "end": iso(T + HOUR), "version": "v2", "source_version": "v1"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == 3000 and r.json()["version"] == "v2"
        # nothing in the range: 422; an unknown model: 404
        empty = {"start": iso(T - 5 * HOUR), "end": iso(T - 4 * HOUR)}
        assert error(c.post("/api/v1/models/m/reference/pin", params=empty), 422)["code"] == (
            "empty_range"
        )
        other = {"start": iso(T), "end": iso(T + HOUR), "source_version": "v9"}
        error(c.post("/api/v1/models/m/reference/pin", params=other), 422)
        error(c.post("/api/v1/models/nope/reference/pin", params=empty), 404)
        bad = {"start": iso(T + HOUR), "end": iso(T)}
        error(c.post("/api/v1/models/m/reference/pin", params=bad), 422)
    with server.client(server.read_key) as c:
        error(c.post("/api/v1/models/m/reference/pin", params=empty), 403)

    v2 = tabular(3000, seed=23)
    v2["age"] = v2["age"] + 15.0  # v2 behaves like the pinned v1 window
    send(server, "m", make_events("v2", T + HOUR, HOUR, v2, version="v2"))
    refresh(server)
    pinned = drift(server, "m", T + HOUR, T + 2 * HOUR, version="v2")
    assert pinned["reference"] == {"against": "reference", "version": "v2"}
    assert_flags(pinned, [])
    assert result(pinned, "age")["n_reference"] == 3000
    # the default reference is untouched: v1 still drifts against it
    assert_flags(drift(server, "m", T, T + HOUR, version="v1"), ["age"])


# ---------------------------------------------------------------------------- 7. errors
def test_errors(server: RunningServer) -> None:
    send(server, "m", make_events("e", T, HOUR, tabular(100, seed=24)))
    paths = ["drift", "drift/timeline", "data-quality"]
    with server.client(server.read_key) as c:
        for path in paths:
            err = error(c.get(f"/api/v1/models/m/{path}"), 409)
            assert err["code"] == "no_reference"
            assert "PUT /api/v1/models/m/reference" in err["message"]
            assert "POST /api/v1/models/m/reference/pin" in err["message"]
            assert error(c.get(f"/api/v1/models/nope/{path}"), 404)["code"] == "unknown_model"

    put_reference(server, "m", tabular(1000, seed=25))
    refresh(server)
    rng = {"start": iso(T), "end": iso(T + HOUR)}
    bad = [
        ("drift", {"method": "magic"}, "method"),
        ("drift", {"against": "yesterday"}, "against"),
        ("drift", {"segment": "region"}, "segment"),
        ("drift", {"segment": ":eu"}, "segment"),
        ("drift", {"by": "region", "segment": "region:eu"}, "by"),
        ("drift", {"features": ","}, "features"),
        ("drift", {"start": iso(T + HOUR), "end": iso(T)}, "start"),
        ("drift", {"start": iso(T), "end": iso(T)}, "start"),
        ("drift/timeline", {"window": "7m"}, "window"),
        ("drift/timeline", {"window": "all"}, "window"),
        ("drift/timeline", {"method": "magic"}, "method"),
        ("drift/timeline", {"start": iso(T + HOUR), "end": iso(T)}, "start"),
        ("data-quality", {"window": "7m"}, "window"),
        ("data-quality", {"segment": "region"}, "segment"),
        ("data-quality", {"start": iso(T + HOUR), "end": iso(T)}, "start"),
    ]
    with server.client(server.read_key) as c:
        for path, params, field in bad:
            err = error(c.get(f"/api/v1/models/m/{path}", params={**rng, **params}), 422)
            assert err["code"] == "invalid_parameter", (path, params)
            assert err["details"][0]["field"] == field, (path, params, err)
        # more windows than the API serves
        far = {"start": iso(T - timedelta(days=30)), "end": iso(T), "window": "1m"}
        error(c.get("/api/v1/models/m/drift/timeline", params=far), 422)

    # the request's method applies where it fits: ks for numbers, the default for categories
    report = drift(server, "m", T, T + HOUR, method="ks")
    methods = {f["feature"]: f["method"] for f in report["features"]}
    assert methods == {
        "age": "ks",
        "amount": "ks",
        "tenure": "ks",
        "country": "psi",
        "device": "psi",
    }
    assert result(report, "age")["threshold"] == 0.1  # ks's own thresholds
    report = drift(server, "m", T, T + HOUR, method="chi_square")
    methods = {f["feature"]: f["method"] for f in report["features"]}
    assert methods["country"] == "chi_square" and methods["age"] == "psi"
    tl = get(server, "/api/v1/models/m/drift/timeline", method="ks", **rng)
    assert {r["feature"]: r["method"] for r in tl["features"]}["device"] == "psi"

    # keys: none, unknown, and the wrong scope
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        for path in paths:
            assert error(anon.get(f"/api/v1/models/m/{path}", params=rng), 401)["code"] == (
                "missing_api_key"
            )
        r = anon.post("/api/v1/models/m/reference/pin", params=rng)
        assert error(r, 401)["code"] == "missing_api_key"
    with server.client("wk_not_a_key") as c:
        assert error(c.get("/api/v1/models/m/drift", params=rng), 401)["code"] == (
            "invalid_api_key"
        )
    with server.client(server.ingest_key) as c:
        for path in paths:
            err = error(c.get(f"/api/v1/models/m/{path}", params=rng), 403)
            assert err["code"] == "insufficient_scope"
    for key in (server.read_key, server.admin_key):
        assert get(server, "/api/v1/models/m/drift", key=key, multivariate="false", **rng)


# ---------------------------------------------------------------------------- 8. multivariate
def _numbers(n: int, seed: int, correlated: bool) -> Columns:
    rng = np.random.default_rng(seed)
    cols: Columns = {f"x{i}": rng.normal(0.0, 1.0, n) for i in range(5)}
    if correlated:  # x0 and x1 correlated 0.9; each still N(0, 1)
        cols["x1"] = 0.9 * cols["x0"] + math.sqrt(1 - 0.9**2) * cols["x1"]
    cols["colour"] = rng.choice(["red", "green", "blue"], n).astype(object)
    return cols


def test_multivariate_detectors(server: RunningServer) -> None:
    put_reference(server, "m", _numbers(2000, seed=26, correlated=True))
    # hour 1: the correlation is gone, every marginal unchanged
    send(server, "m", make_events("c", T, HOUR, _numbers(2000, seed=27, correlated=False)))
    # hour 2: correlation as in the reference, x3's mean moves one standard deviation
    shifted = _numbers(2000, seed=28, correlated=True)
    shifted["x3"] = shifted["x3"] + 1.0
    send(server, "m", make_events("s", T + HOUR, HOUR, shifted))
    # more stored events than the detectors sample (5000): each window's sample must still
    # be drawn from that window's rows
    send(server, "m", make_events("z", T + 2 * HOUR, HOUR, _numbers(2000, 29, correlated=True)))
    refresh(server)

    corr = drift(server, "m", T, T + HOUR, multivariate="true")
    assert_flags(corr, [])
    mv = {d["method"]: d for d in corr["multivariate"]}
    assert set(mv) == {"domain_classifier", "pca_reconstruction"}
    pca = mv["pca_reconstruction"]
    assert pca["drifted"] is True
    assert pca["statistic"] > pca["upper"]
    assert pca["n_features"] == 5  # numbers only
    assert (pca["n_reference"], pca["n_current"]) == (2000, 2000)  # the window's rows only

    shift = drift(server, "m", T + HOUR, T + 2 * HOUR, multivariate="true")
    assert_flags(shift, ["x3"])
    mv = {d["method"]: d for d in shift["multivariate"]}
    dc = mv["domain_classifier"]
    assert dc["drifted"] is True
    assert dc["statistic"] >= dc["threshold"]
    assert dc["n_features"] == 6  # the category too
    assert dc["top_features"][0]["feature"] == "x3"


# ---------------------------------------------------------------------------- 9. restart
def _close(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats to 1e-9 relative (sums may be added in another order)."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), path
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_drift_survives_a_restart(server: RunningServer) -> None:
    put_reference(server, "m", tabular(3000, seed=29))
    put_reference(server, "m", tabular(2000, seed=30), version="v1")
    cur = tabular(3000, seed=31)
    cur["amount"] = cur["amount"] * 2.0
    send(server, "m", make_events("r", T, 2 * HOUR, cur))
    refresh(server)
    store = server.handle.app.state.store
    store.compact()
    store.rollup()

    def snapshot(s: RunningServer) -> list[dict[str, Any]]:
        window = {"start": T, "end": T + 2 * HOUR}
        return [
            drift(s, "m", **window),
            drift(s, "m", version="v1", **window),
            drift(s, "m", by="country", **window),
            get(s, "/api/v1/models/m/drift/timeline", window="1h", **window),
            get(s, "/api/v1/models/m/data-quality", window="1h", **window),
        ]

    before = snapshot(server)
    assert_flags(before[0], ["amount"])
    server.handle.stop()
    handle = ServerHandle(ServerConfig(data_dir=server.data_dir, port=free_port())).start()
    try:
        again = RunningServer(
            handle.url,
            server.data_dir,
            handle,
            server.admin_key,
            server.ingest_key,
            server.read_key,
        )
        _close(snapshot(again), before)
        # the binning job restarts from its watermark: nothing is counted twice
        refresh(again)
        _close(snapshot(again), before)
    finally:
        handle.stop()


# ---------------------------------------------------------------------------- 10. replaced
def test_replacing_the_default_reference_rebuilds_the_counts(server: RunningServer) -> None:
    put_reference(server, "m", tabular(4000, seed=32))
    put_reference(server, "m", tabular(2000, seed=33), version="v1")
    cur = tabular(3000, seed=34)
    send(server, "m", make_events("x", T, HOUR, cur))
    refresh(server)
    assert_flags(drift(server, "m", T, T + HOUR), [])

    new = tabular(5000, seed=35)
    new["age"] = new["age"] + 20.0
    new["country"] = np.random.default_rng(36).choice(["de", "fr", "nl"], 5000).astype(object)
    put_reference(server, "m", new)
    refresh(server)
    report = drift(server, "m", T, T + HOUR)
    assert_flags(report, ["age", "country"])
    for f in report["features"]:
        assert (f["n_reference"], f["n_current"]) == (5000, 3000), f  # every event, once
    country = result(report, "country")
    assert "it" not in country["histogram"]["labels"]  # the new reference's categories
    assert country["extra"]["unseen_share"] == pytest.approx(
        np.isin(cur["country"], ["it", "es"]).mean()
    )
    # the versioned reference is recounted in the new bins and still matches the traffic
    v1 = drift(server, "m", T, T + HOUR, version="v1")
    assert_flags(v1, [])
    assert result(v1, "age")["n_reference"] == 2000
    dq = get(server, "/api/v1/models/m/data-quality", start=T, end=T + HOUR)
    assert dq["windows"][0]["rows"] == 3000


def test_refused_batches_are_a_data_quality_metric(server: RunningServer) -> None:
    """A batch with a wrongly typed feature (422 schema_conflict) or a bad row (all-or-nothing
    refusal) is counted per window of its arrival, by error code; nothing of it is stored."""
    put_reference(server, "m", tabular(500, 1))
    now = datetime.now(timezone.utc)
    send(
        server,
        "m",
        make_events("ok", now - timedelta(minutes=5), timedelta(minutes=1), tabular(50, 2)),
    )
    typed = make_events("typed", now, timedelta(seconds=10), tabular(5, 3))
    typed[2]["features"]["age"] = "forty"  # a string where the model has a number
    bad_row = make_events("bad", now, timedelta(seconds=10), tabular(5, 4))
    bad_row[1]["timestamp"] = "yesterday"
    bad_row[3]["latency_ms"] = "slow"
    codes, problems = [], 0
    with server.client(server.ingest_key) as c:
        for batch in (typed, bad_row):
            r = c.post("/api/v1/models/m/predictions", json={"events": batch})
            assert r.status_code in (400, 422), r.text
            codes.append(r.json()["error"]["code"])
            problems += len(r.json()["error"]["details"])
    refresh(server)
    dq = get(
        server,
        "/api/v1/models/m/data-quality",
        start=now - timedelta(hours=1),
        end=now + timedelta(minutes=2),
    )
    (window,) = dq["windows"]
    rejected = window["rejected"]
    assert rejected["batches"] == 2
    assert rejected["by_code"] == {code: codes.count(code) for code in codes}
    assert rejected["rows_with_errors"] == problems == 3  # one typed row; two bad rows
    assert window["rows"] == 50  # the refused events were not stored
