"""Oracle and property tests for the log-spaced quantile sketch."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.metrics.sketch import (
    GAMMA,
    LN_GAMMA,
    MIN_POSITIVE,
    RELATIVE_ACCURACY,
    ZERO_BIN,
    bin_index,
    bin_index_sql,
    bin_value,
    bins_from_values,
    merge,
    quantiles,
)

A = RELATIVE_ACCURACY
# Slack on top of the proven bound [(1-a)*lower, (1+a)*higher]:
# * relative 1e-9: ln(x)/LN_GAMMA is rounded, so a value within an ulp of a bin edge
#   GAMMA**i may land in the neighbouring bin; its estimate is then off by (1 ± a) times a
#   factor 1 ± O(1e-15), far inside 1e-9;
# * absolute MIN_POSITIVE: values in (0, 1e-9] are estimated as 0, below (1-a)*x by < 1e-9.
REL_SLACK = 1e-9
ABS_SLACK = MIN_POSITIVE

positive = st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_subnormal=False)
samples = st.lists(positive, min_size=1, max_size=300)
qs = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=5)
SETTINGS = settings(max_examples=100, deadline=None)


def assert_within_bound(estimate: float | None, x: list[float], q: float) -> None:
    """Assert the sketch estimate is inside the proven quantile bound for sample x."""
    lower = float(np.quantile(x, q, method="lower"))
    higher = float(np.quantile(x, q, method="higher"))
    assert estimate is not None
    assert (1 - A) * lower * (1 - REL_SLACK) - ABS_SLACK <= estimate
    assert estimate <= (1 + A) * higher * (1 + REL_SLACK)


def test_constants() -> None:
    """The constants are the DDSketch ones for 1 % relative accuracy."""
    assert pytest.approx(GAMMA, rel=1e-15) == 1.01 / 0.99
    assert math.log(GAMMA) == LN_GAMMA
    assert ZERO_BIN == -(2**31)


def test_bin_index_small_values_go_to_zero_bin() -> None:
    """0, negatives and values up to 1e-9 share ZERO_BIN, estimated as 0.0."""
    for x in (0.0, -5.0, 1e-12, MIN_POSITIVE):
        assert bin_index(x) == ZERO_BIN
    assert bin_index(1.0000001e-9) != ZERO_BIN
    assert bin_value(ZERO_BIN) == 0.0


def test_bin_index_known_values() -> None:
    """1.0 is the top of bin 0, just above 1 is bin 1, and bins are ceil(ln x / ln γ)."""
    assert bin_index(1.0) == 0
    assert bin_index(1.0000001) == 1
    assert bin_index(0.9999999) == 0
    assert bin_index(100.0) == math.ceil(math.log(100.0) / LN_GAMMA) == 231


def test_bin_index_rejects_non_finite() -> None:
    """An infinite or NaN value cannot be binned (the ingest layer rejects them)."""
    with pytest.raises(ValueError):
        bin_index(math.inf)
    with pytest.raises(ValueError):
        bin_index(math.nan)


def test_bin_index_sql_text() -> None:
    """The SQL expression is the documented CASE, with constants that parse to the same floats."""
    sql = bin_index_sql('"latency_ms"')
    assert sql == (
        'CASE WHEN "latency_ms" <= 1e-9 THEN -2147483648 '
        'ELSE CAST(ceil(ln("latency_ms") / 2.0000666706669435e-2) AS INTEGER) END'
    )
    assert float("2.0000666706669435e-2") == LN_GAMMA
    assert float("1e-9") == MIN_POSITIVE


@SETTINGS
@given(st.floats(min_value=1.0000001e-9, max_value=1e15, allow_nan=False))
def test_bin_value_within_relative_accuracy(x: float) -> None:
    """Every value above MIN_POSITIVE is within 1 % (plus rounding) of its bin's value."""
    assert abs(bin_value(bin_index(x)) - x) <= A * x * (1 + REL_SLACK)


def test_bin_edges_exactly() -> None:
    """Values on and next to every bin edge in the useful range keep the bound."""
    for i in range(-1000, 1500, 7):
        edge = GAMMA**i
        for x in (np.nextafter(edge, 0.0), edge, np.nextafter(edge, np.inf)):
            x = float(x)
            assert abs(bin_value(bin_index(x)) - x) <= A * x * (1 + REL_SLACK)


def test_quantiles_empty_and_invalid() -> None:
    """No values gives None per q; zero counts are ignored; q outside [0, 1] is an error."""
    assert quantiles({}, [0.5, 0.9]) == [None, None]
    assert quantiles({3: 0}, [0.5]) == [None]
    with pytest.raises(ValueError):
        quantiles({0: 1}, [1.5])


def test_quantiles_known_sample() -> None:
    """On 1..100, q=0 and q=1 are the min and max bins and p50 is the bin of 50 (lower rank)."""
    x = [float(v) for v in range(1, 101)]
    bins = bins_from_values(x)
    p0, p50, p100 = quantiles(bins, [0.0, 0.5, 1.0])
    assert p0 == bin_value(bin_index(1.0))
    assert p50 == bin_value(bin_index(50.0))  # rank floor(0.5 * 99) = 49 -> value 50
    assert p100 == bin_value(bin_index(100.0))


def test_quantiles_with_zeros() -> None:
    """Zeros are estimated as exactly 0.0 and sort below every positive value."""
    bins = bins_from_values([0.0, 0.0, 0.0, 5.0])
    assert quantiles(bins, [0.0, 0.5, 1.0]) == [0.0, 0.0, bin_value(bin_index(5.0))]


@SETTINGS
@given(samples, qs)
def test_quantile_error_bound(x: list[float], q_list: list[float]) -> None:
    """Each estimate lies in [(1-a)*np.quantile(lower), (1+a)*np.quantile(higher)]."""
    estimates = quantiles(bins_from_values(x), q_list)
    for q, estimate in zip(q_list, estimates, strict=True):
        assert_within_bound(estimate, x, q)


def test_quantile_error_bound_heavy_tail() -> None:
    """The bound holds on a large log-normal sample spanning many decades."""
    rng = np.random.default_rng(7)
    x = rng.lognormal(mean=3.0, sigma=3.0, size=20_000).tolist()
    q_list = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]
    for q, estimate in zip(q_list, quantiles(bins_from_values(x), q_list), strict=True):
        assert_within_bound(estimate, x, q)


@SETTINGS
@given(samples, samples)
def test_merge_equals_union(a: list[float], b: list[float]) -> None:
    """merge(bins(a), bins(b)) == bins(a + b), so merged quantiles are the union's."""
    merged = merge(bins_from_values(a), bins_from_values(b))
    assert merged == bins_from_values(a + b)
    assert merged == merge(bins_from_values(b), bins_from_values(a))
    assert quantiles(merged, [0.5, 0.99]) == quantiles(bins_from_values(b + a), [0.5, 0.99])


@SETTINGS
@given(samples, st.randoms(use_true_random=False))
def test_order_invariance(x: list[float], rnd: random.Random) -> None:
    """The bins and quantiles do not depend on the order of the values."""
    shuffled = list(x)
    rnd.shuffle(shuffled)
    assert bins_from_values(shuffled) == bins_from_values(x)
    assert quantiles(bins_from_values(shuffled), [0.5]) == quantiles(bins_from_values(x), [0.5])
