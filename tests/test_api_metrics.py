"""Metrics served by a real server equal scikit-learn and numpy on the same events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from tests.conftest import RunningServer
from tests.helpers import wait_for

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)


def _events(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    labels = (rng.random(n) < scores).astype(int)
    latency = rng.lognormal(3.0, 0.6, n)
    events = [
        {
            "event_id": f"ev-{seed}-{i}",
            "timestamp": (NOW - timedelta(seconds=int(rng.integers(60, 1800)))).isoformat(),
            "version": "v1",
            "features": {
                "amount": float(rng.random() * 100),
                "country": str(rng.choice(["de", "fr"])),
            },
            "prediction": int(scores[i] > 0.5),
            "score": float(scores[i]),
            "latency_ms": float(latency[i]),
            "status": "error" if i % 50 == 0 else "ok",
            "segments": {"region": "eu" if i % 3 else "us"},
        }
        for i in range(n)
    ]
    return events, scores, labels, latency


def _metrics(server: RunningServer, names: str, **params: str) -> dict[str, Any]:
    with server.client(server.read_key) as c:
        r = c.get(
            "/api/v1/models/fraud/metrics",
            params={
                "names": names,
                "window": "all",
                "start": (NOW - timedelta(hours=1)).isoformat(),
                "end": (NOW + timedelta(minutes=1)).isoformat(),
                **params,
            },
        )
    assert r.status_code == 200, r.text
    return {k: v[0] for k, v in r.json()["metrics"].items()}


def test_classification_and_latency_metrics_match_sklearn(server: RunningServer) -> None:
    """Accuracy, precision, recall, F1, ROC AUC, log loss and latency percentiles agree with
    scikit-learn/numpy after predictions and (late) actuals go through the real server."""
    events, scores, labels, latency = _events(3000, seed=1)
    with server.client(server.ingest_key) as c:
        for i in range(0, len(events), 1000):
            r = c.post("/api/v1/models/fraud/predictions", json={"events": events[i : i + 1000]})
            assert r.status_code == 200, r.text
        labelled = 2400  # 80 % of predictions get ground truth
        actuals = [
            {"event_id": e["event_id"], "label": int(y)}
            for e, y in zip(events, labels, strict=True)
        ]
        r = c.post("/api/v1/models/fraud/actuals", json={"actuals": actuals[:labelled]})
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted": labelled, "unmatched": 0}

    names = "count,error_rate,accuracy,precision,recall,f1,roc_auc,log_loss,label_coverage"
    got = wait_for(
        lambda: (
            (m := _metrics(server, names + ",latency_p50,latency_p95,latency_p99"))
            and m["label_coverage"] == pytest.approx(0.8)
            and m
        )
    )
    y, s = labels[:labelled], scores[:labelled]
    pred = (s > 0.5).astype(int)
    assert got["count"] == 3000
    assert got["error_rate"] == pytest.approx(60 / 3000)
    # Counts are exact, so the ratios agree to float rounding.
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), rel=1e-12)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred), rel=1e-12)
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred), rel=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred), rel=1e-12)
    # Log loss is a sum of per-row terms: float summation order only.
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, s), rel=1e-9)
    # ROC AUC from 1000 score bins: ties inside a bin count 1/2; with 2400 uniform scores the
    # share of tied (pos, neg) pairs is ~1/1000, so the error is below 5e-4.
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=5e-4)
    # Percentiles come from a log-bin sketch with 1 % relative accuracy.
    for q in (50, 95, 99):
        lo = np.percentile(latency, q, method="lower")
        hi = np.percentile(latency, q, method="higher")
        assert lo * 0.99 - 1e-9 <= got[f"latency_p{q}"] <= hi * 1.01 + 1e-9


def test_segment_and_version_filters(server: RunningServer) -> None:
    """A segment filter counts only that segment's events; an unknown version counts none."""
    events, *_ = _events(600, seed=2)
    with server.client(server.ingest_key) as c:
        assert c.post("/api/v1/models/fraud/predictions", json=events).status_code == 200
    eu = sum(1 for e in events if e["segments"]["region"] == "eu")
    assert _metrics(server, "count", segment="region:eu")["count"] == eu
    assert _metrics(server, "count", segment="region:us")["count"] == 600 - eu
    assert _metrics(server, "count", version="v1")["count"] == 600
    assert _metrics(server, "count", version="v9")["count"] == 0


def test_regression_metrics_match_sklearn(server: RunningServer) -> None:
    """MAE, RMSE, MAPE and R² of a regression model equal scikit-learn's."""
    rng = np.random.default_rng(3)
    y = rng.normal(30, 8, 1500)
    yhat = y + rng.normal(0, 3, 1500)
    ts = (NOW - timedelta(minutes=5)).isoformat()
    events = [
        {"event_id": f"r{i}", "timestamp": ts, "prediction": float(p), "latency_ms": 5.0}
        for i, p in enumerate(yhat)
    ]
    actuals = [{"event_id": f"r{i}", "label": float(v)} for i, v in enumerate(y)]
    with server.client() as c:
        r = c.post(
            "/api/v1/models/eta/predictions", json={"events": events}, params={"task": "regression"}
        )
        assert r.status_code == 200, r.text
        assert c.post("/api/v1/models/eta/actuals", json={"actuals": actuals}).status_code == 200

    def fetch() -> dict[str, Any] | None:
        with server.client(server.read_key) as c:
            r = c.get(
                "/api/v1/models/eta/metrics",
                params={
                    "names": "mae,rmse,mape,r2,label_coverage,accuracy",
                    "window": "all",
                    "start": (NOW - timedelta(hours=1)).isoformat(),
                },
            )
        m = {k: v[0] for k, v in r.json()["metrics"].items()}
        return m if m["label_coverage"] == 1.0 else None

    got = wait_for(fetch)
    # Sums of per-row errors: float summation order only. R² uses Σy² − (Σy)²/n, which loses
    # a few digits to cancellation at mean/std ≈ 4: 1e-7 relative is still far below noise.
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, yhat), rel=1e-9)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(y, yhat), rel=1e-9)
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, yhat), rel=1e-9)
    assert got["r2"] == pytest.approx(skm.r2_score(y, yhat), rel=1e-7)
    assert got["accuracy"] is None  # a regression model has no classes


def test_windows_cover_the_range_with_nulls_for_empty_windows(server: RunningServer) -> None:
    """window=5m returns every 5-minute window of the range; empty ones count 0 and have no p95."""
    now5 = NOW.replace(minute=NOW.minute // 5 * 5)
    ts = (now5 - timedelta(minutes=12)).isoformat()
    with server.client() as c:
        r = c.post(
            "/api/v1/models/fraud/predictions",
            json=[{"timestamp": ts, "prediction": 1, "score": 0.9, "latency_ms": 10.0}],
        )
        assert r.status_code == 200
        r = c.get(
            "/api/v1/models/fraud/metrics",
            params={
                "names": "count,latency_p95",
                "window": "5m",
                "start": (now5 - timedelta(minutes=30)).isoformat(),
                "end": now5.isoformat(),
            },
        )
    body = r.json()
    assert len(body["windows"]) == 6
    assert sum(body["metrics"]["count"]) == 1
    assert sum(v is not None for v in body["metrics"]["latency_p95"]) == 1
