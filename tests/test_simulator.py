"""The traffic simulator: realistic, deterministic generation and sending through the SDK."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from watchkeeper import Monitor
from watchkeeper.simulator import (
    DEMO_DRIFT,
    ETA_MODEL,
    FRAUD_MODEL,
    GeneratedEvent,
    Incident,
    Simulator,
    generate_eta_event,
    generate_event,
    generate_fraud_event,
    reference_csv,
)
from watchkeeper.testing import InMemoryTransport

T0 = 1_700_000_000.0


def _fraud_sample(n: int = 20_000, seed: int = 7) -> list[GeneratedEvent]:
    rng = random.Random(seed)
    return [generate_fraud_event(rng, T0 + i) for i in range(n)]


def test_generation_is_deterministic_per_seed() -> None:
    """The same seed gives the same events; another seed gives different ones."""
    first = [generate_event(random.Random(3), T0 + i) for i in range(50)]
    again = [generate_event(random.Random(3), T0 + i) for i in range(50)]
    other = [generate_event(random.Random(4), T0 + i) for i in range(50)]
    assert first == again
    assert first != other


def test_fraud_events_look_like_card_transactions() -> None:
    """Fraud events have ~20 mixed features, two segments and a score matching the prediction."""
    events = _fraud_sample(2_000)
    numeric = {"amount", "account_age_days", "txn_count_24h", "distance_from_home_km"}
    categorical = {"merchant_category", "channel", "card_type", "country", "device_os"}
    for event in events:
        kw = event.log_kwargs
        assert event.model == FRAUD_MODEL
        assert 18 <= len(kw["features"]) <= 24
        assert numeric | categorical <= set(kw["features"])
        assert kw["segments"]["region"] in {"eu", "us", "apac"}
        assert kw["segments"]["channel"] == kw["features"]["channel"]
        assert kw["timestamp"] >= T0
        if kw["status"] == "ok":
            assert 0.0 <= kw["score"] <= 1.0
            assert kw["prediction"] == int(kw["score"] >= 0.5)
        else:
            assert kw["prediction"] is None and kw["error"]


def test_fraud_rates_errors_and_latency_are_plausible() -> None:
    """About 2% fraud, 0.5% errors, 70% labelled, and latency mostly 8-40 ms with a tail."""
    events = _fraud_sample()
    labelled = [e for e in events if e.label is not None]
    fraud_rate = sum(e.label == 1 for e in labelled) / len(labelled)
    error_rate = sum(e.log_kwargs["status"] == "error" for e in events) / len(events)
    latencies = sorted(e.log_kwargs["latency_ms"] for e in events)
    assert 0.012 < fraud_rate < 0.03
    assert 0.002 < error_rate < 0.01
    assert 0.65 < len(labelled) / len(events) < 0.75
    assert 8 < latencies[len(latencies) // 2] < 40
    assert latencies[int(len(latencies) * 0.999)] > 50  # the occasional slow call
    flagged = [e for e in labelled if e.log_kwargs["prediction"] == 1]
    precision = sum(e.label == 1 for e in flagged) / len(flagged)
    assert 0.3 < precision < 0.95  # a useful model, not a perfect one


def test_labels_arrive_one_to_five_minutes_later() -> None:
    """Ground truth is delayed 60-300 s, and errored predictions never get one."""
    for event in _fraud_sample(5_000):
        if event.label is not None:
            assert 60.0 <= event.label_delay_s <= 300.0
        if event.log_kwargs["status"] == "error":
            assert event.label is None


def test_delivery_eta_is_a_regression_model_with_two_versions() -> None:
    """delivery-eta predicts minutes, segments by city, and v2 is more accurate than v1."""
    rng = random.Random(11)
    events = [generate_eta_event(rng, T0 + i) for i in range(20_000)]
    errors: dict[str, list[float]] = {"v1": [], "v2": []}
    for event in events:
        assert event.model == ETA_MODEL
        assert len(event.log_kwargs["features"]) == 10
        assert event.log_kwargs["segments"]["city"] in {"berlin", "london", "paris", "madrid"}
        if event.label is not None:
            assert 5.0 <= event.log_kwargs["prediction"] < 200.0
            errors[event.version].append(abs(event.log_kwargs["prediction"] - event.label))
    mae = {v: sum(e) / len(e) for v, e in errors.items()}
    assert 0.2 < len(errors["v2"]) / (len(errors["v1"]) + len(errors["v2"])) < 0.4
    assert 2.0 < mae["v2"] < mae["v1"] < 10.0


def _recording_simulator(rate: float) -> tuple[Simulator, InMemoryTransport]:
    transport = InMemoryTransport()

    def factory(model: str, version: str) -> Monitor:
        return Monitor(model, version, transport=transport, spool_dir=False, flush_interval=0.05)

    sim = Simulator("http://unused", "unused", rate=rate, seed=5, monitor_factory=factory)
    return sim, transport


def test_backfill_sends_history_and_due_labels_through_the_sdk() -> None:
    """Backfill sends ~rate x duration events in the past, and only labels already due."""
    sim, transport = _recording_simulator(rate=10.0)
    seen: list[tuple[int, int]] = []
    before = time.time()
    sent = sim.backfill(10, progress=lambda done, total: seen.append((done, total)))
    sim.stop()
    events, actuals = transport.events, transport.actuals
    assert len(events) == sent == sim.events_sent
    assert 5_400 < sent < 6_600
    assert seen[-1] == (10, 10) and [d for d, _ in seen] == list(range(1, 11))
    models = {path.split("/")[4] for path, _ in transport.batches}
    assert models == {FRAUD_MODEL, ETA_MODEL}
    assert {e["version"] for e in events} == {"v3", "v1", "v2"}
    stamps = [float(e["timestamp"]) for e in events if isinstance(e["timestamp"], (int, float))]
    assert all(before - 600.5 <= ts <= before + 1 for ts in stamps)
    assert 0 < len(actuals) == sim.labels_sent < 0.8 * sent
    ids = {e["event_id"] for e in events}
    assert all(a["event_id"] in ids for a in actuals)


def test_live_traffic_streams_until_stopped() -> None:
    """start() sends events in the background at about the rate; stop() ends it."""
    sim, transport = _recording_simulator(rate=200.0)
    sim.start()
    time.sleep(0.5)
    sim.stop()
    count = len(transport.events)
    assert 30 < count < 300
    time.sleep(0.1)
    assert len(transport.events) == count


def test_rate_must_be_positive() -> None:
    """A zero rate is refused at construction."""
    with pytest.raises(ValueError, match="rate"):
        Simulator("http://127.0.0.1:1", "k", rate=0)


def test_the_demo_incident_moves_amount_in_apac_only() -> None:
    """Same seed, drifted or not: apac amounts are three times larger, nothing else changes."""
    for seed in range(200):
        plain = generate_fraud_event(random.Random(seed), 1_700_000_000.0)
        drifted = generate_fraud_event(random.Random(seed), 1_700_000_000.0, drifted=True)
        fp, fd = plain.log_kwargs["features"], drifted.log_kwargs["features"]
        region = plain.log_kwargs["segments"]["region"]
        assert fd["amount"] == pytest.approx(
            fp["amount"] * (3.0 if region == "apac" else 1.0), abs=0.02
        )
        assert {k: v for k, v in fd.items() if k != "amount"} == {
            k: v for k, v in fp.items() if k != "amount"
        }


def test_reference_csv_has_features_outputs_labels_and_segments() -> None:
    import io

    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(io.BytesIO(reference_csv(FRAUD_MODEL, rows=500).encode()))
    cols = set(table.column_names)
    assert {"amount", "merchant_category", "prediction", "score", "label"} <= cols
    assert {"segments.region", "segments.channel"} <= cols
    assert 450 <= table.num_rows <= 500  # errored calls are left out
    eta = pa_csv.read_csv(io.BytesIO(reference_csv(ETA_MODEL, rows=300).encode()))
    assert "segments.city" in eta.column_names and "score" not in eta.column_names


def test_incident_knobs_change_only_what_they_name() -> None:
    """Slower calls, more failures, later labels: the same seed gives the same call with only
    the named part changed (the features the model saw stay the same)."""
    for seed in range(100):
        plain = generate_fraud_event(random.Random(seed), T0)
        slow = generate_fraud_event(random.Random(seed), T0, incident=Incident(latency_factor=4))
        late = generate_fraud_event(
            random.Random(seed), T0, incident=Incident(label_delay_s=(7200.0, 10800.0))
        )
        assert slow.log_kwargs["latency_ms"] == pytest.approx(
            4 * plain.log_kwargs["latency_ms"], rel=0.01
        )
        assert slow.log_kwargs["features"] == plain.log_kwargs["features"]
        assert late.label == plain.label
        if late.label is not None:
            assert 7200.0 <= late.label_delay_s <= 10800.0
    failing = [
        generate_eta_event(random.Random(seed), T0, incident=Incident(error_rate=1.0))
        for seed in range(50)
    ]
    assert all(e.log_kwargs["status"] == "error" and e.label is None for e in failing)


def test_a_wrong_model_answers_at_random_and_accuracy_drops() -> None:
    """wrong_share: that share of answers is random, so accuracy falls; inputs do not move."""

    def accuracy(incident: Incident) -> float:
        rng = random.Random(9)
        events = [generate_fraud_event(rng, T0 + i, incident=incident) for i in range(5_000)]
        judged = [e for e in events if e.label is not None]
        return sum(e.log_kwargs["prediction"] == e.label for e in judged) / len(judged)

    assert accuracy(Incident()) > 0.95
    assert 0.8 < accuracy(Incident(wrong_share=0.25)) < 0.92


def test_drift_of_one_feature_in_one_segment() -> None:
    """drift_feature moves in drift_segment only; every other feature stays; a feature that is
    not a number is refused."""
    incident = Incident(drift_feature="distance_km", drift_scale=0.5, drift_segment="city:paris")
    for seed in range(200):
        plain = generate_eta_event(random.Random(seed), T0)
        moved = generate_eta_event(random.Random(seed), T0, incident=incident)
        fp, fm = plain.log_kwargs["features"], moved.log_kwargs["features"]
        paris = plain.log_kwargs["segments"]["city"] == "paris"
        assert fm["distance_km"] == pytest.approx(fp["distance_km"] * (0.5 if paris else 1.0))
        assert {k: v for k, v in fm.items() if k != "distance_km"} == {
            k: v for k, v in fp.items() if k != "distance_km"
        }
    with pytest.raises(ValueError, match="not a number feature"):
        generate_eta_event(random.Random(1), T0, incident=Incident(drift_feature="vehicle"))
    assert DEMO_DRIFT.drifts({"region": "apac"}) and not DEMO_DRIFT.drifts({"region": "eu"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"latency_factor": 0}, "latency_factor"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"label_delay_s": (10.0, 5.0)}, "label_delay_s"),
        ({"wrong_share": -0.1}, "wrong_share"),
        ({"drift_segment": "apac"}, "name:value"),
    ],
)
def test_incident_knobs_are_checked(kwargs: dict[str, Any], match: str) -> None:
    """A knob out of range is refused when the incident is made, naming the knob."""
    with pytest.raises(ValueError, match=match):
        Incident(**kwargs)


def test_reference_csv_can_be_pinned_in_time() -> None:
    """start and days make the reference independent of the clock (same text twice)."""
    first = reference_csv(ETA_MODEL, rows=200, start=T0, days=7)
    assert first == reference_csv(ETA_MODEL, rows=200, start=T0, days=7)
    assert first != reference_csv(ETA_MODEL, rows=200, start=T0, days=1)
    with pytest.raises(ValueError, match="days"):
        reference_csv(ETA_MODEL, rows=10, days=0)
