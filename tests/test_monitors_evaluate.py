"""Monitor conditions: static and multi-level thresholds, and the dynamic baseline against
numpy, its seasonal buckets, robustness to spikes in the history, arming, directions, and a
quiet seasonal week (false breaches) with a spike in it (detection)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.monitors.evaluate import (
    MAD_TO_SIGMA,
    Band,
    breaches,
    bucket,
    dynamic_baseline,
    multi_level,
    static,
)

MONDAY = datetime(2024, 1, 1, tzinfo=timezone.utc)  # a Monday, 00:00 UTC
HOUR = timedelta(hours=1)
PROPS = settings(max_examples=60, deadline=None)


def flat_history(values: list[float], at: datetime) -> list[tuple[datetime, float | None]]:
    """``values`` one per minute, ending a minute before ``at`` (one bucket with ``none``)."""
    return [(at - timedelta(minutes=len(values) - i), v) for i, v in enumerate(values)]


# ------------------------------------------------------------------------ static thresholds
def test_static_above_and_below_are_strict() -> None:
    assert static(11.0, "above", 10.0) is True
    assert static(10.0, "above", 10.0) is False
    assert static(9.0, "below", 10.0) is True
    assert static(10.0, "below", 10.0) is False


def test_static_without_a_value_is_none() -> None:
    assert static(None, "above", 1.0) is None
    assert static(math.nan, "below", 1.0) is None


def test_static_rejects_an_unknown_op() -> None:
    with pytest.raises(ValueError, match="op must be 'above' or 'below'"):
        static(1.0, "over", 0.0)  # type: ignore[arg-type]


def test_multi_level_picks_the_highest_level_reached() -> None:
    assert multi_level(500.0, "above", 200.0, 400.0) == "critical"
    assert multi_level(300.0, "above", 200.0, 400.0) == "warning"
    assert multi_level(200.0, "above", 200.0, 400.0) is None
    assert multi_level(0.70, "below", 0.90, 0.80) == "critical"
    assert multi_level(0.85, "below", 0.90, 0.80) == "warning"
    assert multi_level(0.95, "below", 0.90, 0.80) is None
    assert multi_level(None, "below", 0.90, 0.80) is None
    assert multi_level(5.0, "above", 1.0, 1.0) == "critical"  # equal thresholds are allowed


def test_multi_level_rejects_thresholds_in_the_wrong_order() -> None:
    with pytest.raises(ValueError, match=r"'above'.*warning threshold \(5.0\) must not exceed"):
        multi_level(1.0, "above", 5.0, 4.0)
    with pytest.raises(ValueError, match=r"'below'.*must not be under the critical one \(0.9\)"):
        multi_level(1.0, "below", 0.8, 0.9)


# --------------------------------------------------------------------- centre and spread
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("size", [8, 9, 50, 1001])
def test_median_and_mad_equal_numpy(seed: int, size: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(3.0, 1.0, size)
    if seed % 2:
        x = np.round(x)  # ties
    band = dynamic_baseline(flat_history(x.tolist(), MONDAY), MONDAY, seasonality="none")
    med = np.median(x)
    mad = np.median(np.abs(x - med)) * 1.4826
    assert band.armed and band.n == size and band.reason is None
    assert band.median == pytest.approx(med, rel=1e-12, abs=1e-12)
    assert band.mad == pytest.approx(mad, rel=1e-12, abs=1e-12)
    assert band.lower == pytest.approx(med - 3 * mad, rel=1e-12, abs=1e-12)
    assert band.upper == pytest.approx(med + 3 * mad, rel=1e-12, abs=1e-12)


@PROPS
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=200),
    st.floats(0.5, 6.0),
)
def test_band_matches_the_formula(values: list[float], sensitivity: float) -> None:
    band = dynamic_baseline(
        flat_history(values, MONDAY),
        MONDAY,
        seasonality="none",
        sensitivity=sensitivity,
        min_history=1,
    )
    x = np.asarray(values)
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * MAD_TO_SIGMA
    half = sensitivity * max(mad, 1e-9 * abs(med))
    assert band.median == med
    assert band.mad == mad
    assert band.lower == pytest.approx(med - half, rel=1e-12, abs=1e-12)
    assert band.upper == pytest.approx(med + half, rel=1e-12, abs=1e-12)


def test_a_small_example_by_hand() -> None:
    band = dynamic_baseline(
        flat_history([1.0, 2.0, 3.0, 4.0, 100.0], MONDAY),
        MONDAY,
        seasonality="none",
        min_history=5,
        sensitivity=2.0,
    )
    # median 3; absolute deviations 2, 1, 0, 1, 97 → MAD 1 → σ estimate 1.4826
    assert band == Band(True, 3.0, 1.4826, 3.0 - 2 * 1.4826, 3.0 + 2 * 1.4826, 5, None)


def test_missing_and_non_finite_history_is_skipped() -> None:
    history = flat_history([1.0, math.nan, 2.0, math.inf, 3.0], MONDAY)
    history.append((MONDAY - timedelta(seconds=1), None))
    band = dynamic_baseline(history, MONDAY, seasonality="none", min_history=3)
    assert band.armed and band.n == 3 and band.median == 2.0


# ------------------------------------------------------------------------------ seasonality
def test_buckets_are_utc_hours_of_the_day_and_week() -> None:
    assert bucket(MONDAY, "hour_of_week") == 0
    assert bucket(MONDAY + timedelta(days=6, hours=23, minutes=59), "hour_of_week") == 167
    assert bucket(MONDAY + timedelta(days=2, hours=9), "hour_of_week") == 2 * 24 + 9
    assert bucket(MONDAY + timedelta(days=2, hours=9), "hour_of_day") == 9
    assert bucket(MONDAY + timedelta(days=2, hours=9), "none") == 0
    # 01:00 on Monday at UTC+2 is 23:00 on Sunday in UTC; naive datetimes are taken as UTC
    local = datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    assert bucket(local, "hour_of_week") == 167
    assert bucket(datetime(2024, 1, 1, 5), "hour_of_week") == 5


def wild_except(keep: set[int], at: datetime, seasonality: str) -> list[tuple[datetime, float]]:
    """Four weeks of 10-minute windows: ~100 in the buckets ``keep``, ±1e6 elsewhere."""
    rng = np.random.default_rng(7)
    out = []
    t = at - timedelta(days=28)
    while t < at:
        if bucket(t, seasonality) in keep:  # type: ignore[arg-type]
            out.append((t, 100.0 + float(rng.normal(0.0, 1.0))))
        else:
            out.append((t, float(rng.choice([-1e6, 1e6]))))
        t += timedelta(minutes=10)
    return out


@pytest.mark.parametrize(
    ("seasonality", "per_bucket"), [("hour_of_day", 28 * 6), ("hour_of_week", 4 * 6)]
)
def test_seasonality_uses_only_the_same_bucket(seasonality: str, per_bucket: int) -> None:
    at = MONDAY + timedelta(days=28 + 2, hours=9, minutes=20)  # a Wednesday, 09:20
    history = wild_except({bucket(at, seasonality)}, at, seasonality)  # type: ignore[arg-type]
    band = dynamic_baseline(history, at, seasonality=seasonality)  # type: ignore[arg-type]
    # 28 days back from 09:20 holds 09:20-09:50 of the first day and 09:00-09:10 of today
    assert band.armed and band.n == per_bucket
    assert band.median == pytest.approx(100.0, abs=0.5)
    assert band.mad is not None and 0.5 < band.mad < 2.0
    assert breaches(100.0, band) is False
    assert breaches(120.0, band) is True
    assert breaches(1e6, band) is True


def test_only_the_lookback_before_at_counts() -> None:
    at = MONDAY + timedelta(days=10)
    history = [
        (at - timedelta(days=9), 1e6),  # before the lookback
        (at - timedelta(days=7), 10.0),  # exactly at its start: included
        (at - timedelta(days=3), 20.0),
        (at - timedelta(minutes=1), 30.0),
        (at, -1e6),  # the window itself and later ones are not history
        (at + HOUR, -1e6),
    ]
    band = dynamic_baseline(
        history, at, seasonality="none", lookback=timedelta(days=7), min_history=1
    )
    assert band.n == 3 and band.median == 20.0


# ------------------------------------------------------------------------------ robustness
@pytest.mark.parametrize("seed", range(5))
def test_spikes_in_the_history_barely_move_the_band(seed: int) -> None:
    rng = np.random.default_rng(seed)
    clean = rng.normal(100.0, 5.0, 600)
    spiked = clean.copy()
    hit = rng.choice(clean.size, size=clean.size // 20, replace=False)  # 5 % incidents
    spiked[hit] += rng.uniform(100.0, 1000.0, hit.size)

    before = dynamic_baseline(flat_history(clean.tolist(), MONDAY), MONDAY, seasonality="none")
    after = dynamic_baseline(flat_history(spiked.tolist(), MONDAY), MONDAY, seasonality="none")
    assert before.median is not None and after.median is not None
    assert before.mad is not None and after.mad is not None
    assert abs(after.median - before.median) < 0.5  # a tenth of σ
    assert after.mad / before.mad < 1.15
    assert breaches(130.0, after) is True  # a 6σ value is still caught

    # the naive mean ± 3·std is blinded: std several times σ, the 6σ value inside the band
    assert spiked.std() > 4 * clean.std()
    assert spiked.mean() + 3 * spiked.std() > 130.0


# ----------------------------------------------------------------------------------- arming
def test_not_armed_until_min_history_points() -> None:
    at = MONDAY + timedelta(days=21, hours=9)
    weekly = [(at - timedelta(weeks=w), 50.0 + w) for w in (1, 2, 3)]
    band = dynamic_baseline(weekly, at, seasonality="hour_of_week", min_history=8)
    assert band == Band(
        False, None, None, None, None, 3, "needs 5 more windows of history in this hour of the week"
    )
    assert breaches(1e9, band) is None

    one_short = dynamic_baseline(weekly, at, seasonality="hour_of_day", min_history=4)
    assert not one_short.armed
    assert one_short.reason == "needs 1 more window of history in this hour of the day"
    flat = dynamic_baseline([], at, seasonality="none", min_history=2)
    assert flat.reason == "needs 2 more windows of history" and flat.n == 0

    armed = dynamic_baseline(weekly, at, seasonality="hour_of_week", min_history=3)
    assert armed.armed and armed.n == 3 and armed.median == 52.0 and armed.reason is None


# -------------------------------------------------------------------- directions and floors
def test_direction_makes_the_band_one_sided() -> None:
    history = flat_history([9.0, 10.0, 11.0] * 5, MONDAY)
    both = dynamic_baseline(history, MONDAY, seasonality="none")
    up = dynamic_baseline(history, MONDAY, seasonality="none", direction="above")
    down = dynamic_baseline(history, MONDAY, seasonality="none", direction="below")
    assert both.lower is not None and both.upper is not None
    assert up.lower == -math.inf and up.upper == both.upper
    assert down.upper == math.inf and down.lower == both.lower
    high, low = both.upper + 1.0, both.lower - 1.0
    assert (breaches(high, both), breaches(low, both)) == (True, True)
    assert (breaches(high, up), breaches(low, up)) == (True, False)
    assert (breaches(high, down), breaches(low, down)) == (False, True)
    assert breaches(None, both) is None and breaches(math.nan, both) is None


def test_floors_keep_a_flat_history_from_flagging_everything() -> None:
    history = flat_history([0.02] * 20, MONDAY)
    bare = dynamic_baseline(history, MONDAY, seasonality="none")
    assert bare.mad == 0.0
    assert bare.upper == pytest.approx(0.02 * (1 + 3e-9))  # only the relative floor
    assert breaches(0.0201, bare) is True
    floored = dynamic_baseline(history, MONDAY, seasonality="none", min_band=0.01)
    assert floored.lower == pytest.approx(-0.01) and floored.upper == pytest.approx(0.05)
    assert breaches(0.04, floored) is False and breaches(0.06, floored) is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seasonality": "daily"}, "seasonality must be one of"),
        ({"direction": "up"}, "direction must be one of"),
        ({"sensitivity": 0.0}, "sensitivity must be a positive number"),
        ({"sensitivity": math.nan}, "sensitivity must be a positive number"),
        ({"min_history": 0}, "min_history must be at least 1"),
        ({"lookback": timedelta(0)}, "lookback must be positive"),
        ({"min_band": -1.0}, "min_band must be a non-negative number"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, object], message: str) -> None:
    settings_ = {"seasonality": "none", **kwargs}
    with pytest.raises(ValueError, match=message):
        dynamic_baseline([], MONDAY, **settings_)  # type: ignore[arg-type]


# ------------------------------------------------------------------- a quiet seasonal week
SIGMA = 20.0


def level(t: datetime) -> float:
    """Requests per minute: a daily sinusoid by hour (peak 12:00 UTC), weekends at 60 %."""
    daily = 1000.0 + 400.0 * math.sin(2 * math.pi * (t.hour - 6) / 24)
    return daily * (0.6 if t.weekday() >= 5 else 1.0)


def test_a_quiet_seasonal_week_stays_quiet_and_a_6_sigma_spike_is_caught() -> None:
    rng = np.random.default_rng(2024)
    minutes = 5 * 7 * 24 * 60  # four weeks of history, then the week under test
    times = [MONDAY + timedelta(minutes=i) for i in range(minutes)]
    values = [
        level(t) + noise for t, noise in zip(times, rng.normal(0.0, SIGMA, minutes), strict=True)
    ]
    history = list(zip(times, values, strict=True))
    week = 4 * 7 * 24 * 60

    windows = false = caught = 0
    seasonless_caught = 0
    for hour in range(7 * 24):  # the band is computed as each hour starts, judged for it
        first = week + hour * 60
        start = times[first]
        band = dynamic_baseline(history[first - week : first], start, seasonality="hour_of_week")
        assert band.armed and band.n == 4 * 60
        for i in range(first, first + 60):
            windows += 1
            false += bool(breaches(values[i], band))
        caught += bool(breaches(level(start) + 6 * SIGMA, band))
        if hour % 7 == 0:
            flat = dynamic_baseline(history[first - week : first], start, seasonality="none")
            seasonless_caught += bool(breaches(level(start) + 6 * SIGMA, flat))

    assert windows == 7 * 24 * 60
    assert false / windows <= 0.01, f"{false} false breaches in {windows} windows"
    assert caught == 7 * 24  # every hour of the week
    # without seasonality the band spans the daily swing and misses most such spikes
    assert seasonless_caught <= 24 // 4
