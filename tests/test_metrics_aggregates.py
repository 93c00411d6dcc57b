"""Property tests: merging window aggregates equals aggregating the union of their events."""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.metrics import METRICS, compute
from watchkeeper.metrics.aggregates import (
    WindowAggregate,
    add_counts,
    merge_aggregates,
    merge_all,
)
from watchkeeper.metrics.classification import LOG_LOSS_EPS
from watchkeeper.metrics.regression import APE_EPS
from watchkeeper.metrics.scores import score_bin
from watchkeeper.metrics.sketch import bin_index

SETTINGS = settings(max_examples=100, deadline=None)


@dataclass(frozen=True)
class Event:
    """One raw event, with only the fields the aggregates read."""

    is_error: bool
    latency: float | None
    prediction: str
    label: str | None
    score: float | None
    y: float | None
    yhat: float | None
    tokens: tuple[int, int, float, float] | None  # input, output, cost, ttft


def _add(d: dict, key: object, by: int = 1) -> None:  # type: ignore[type-arg]
    d[key] = d.get(key, 0) + by


def aggregate(events: list[Event], seconds: float) -> WindowAggregate:
    """Aggregate raw events row by row, as the SQL rollup does (positive label "1")."""
    f: dict = dict.fromkeys(  # type: ignore[type-arg]
        [x.name for x in dataclasses.fields(WindowAggregate)], 0
    )
    f.update(seconds=seconds, latency_max=None, latency_sum=0.0, cost_usd=0.0)
    for name in ("latency_bins", "confusion", "pred_counts", "score_pos_bins"):
        f[name] = {}
    f["score_neg_bins"], f["ttft_bins"], f["finalized"] = {}, {}, {}
    for name in ("cost_bins", "eval_n", "eval_flagged", "eval_score_n", "eval_score_sum"):
        f[name] = {}  # no cost sketch or evaluations here (tests/test_metrics_llm_quality.py)
    for e in events:
        f["n"] += 1
        f["n_error"] += e.is_error
        _add(f["pred_counts"], e.prediction)
        if e.latency is not None:
            f["latency_n"] += 1
            f["latency_sum"] += e.latency
            previous = f["latency_max"]
            f["latency_max"] = e.latency if previous is None else max(previous, e.latency)
            _add(f["latency_bins"], bin_index(e.latency))
        if e.label is not None:
            f["n_labeled"] += 1
            _add(f["confusion"], (e.label, e.prediction))
            if e.score is not None:
                side = "score_pos_bins" if e.label == "1" else "score_neg_bins"
                _add(f[side], score_bin(e.score))
                p = min(max(e.score, LOG_LOSS_EPS), 1 - LOG_LOSS_EPS)
                f["logloss_n"] += 1
                f["logloss_sum"] -= math.log(p) if e.label == "1" else math.log(1 - p)
        if e.y is not None and e.yhat is not None:
            err = e.y - e.yhat
            f["reg_n"] += 1
            f["abs_err_sum"] += abs(err)
            f["sq_err_sum"] += err * err
            f["ape_sum"] += abs(err) / max(abs(e.y), APE_EPS)
            f["y_sum"] += e.y
            f["y_sq_sum"] += e.y * e.y
        if e.tokens is not None:
            f["llm_n"] += 1
            f["input_tokens"] += e.tokens[0]
            f["output_tokens"] += e.tokens[1]
            f["cost_usd"] += e.tokens[2]
            f["ttft_n"] += 1
            f["ttft_sum"] += e.tokens[3]
            _add(f["ttft_bins"], bin_index(e.tokens[3]))
    return WindowAggregate(**f)


small = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_subnormal=False)
events = st.builds(
    Event,
    is_error=st.booleans(),
    latency=st.none() | small,
    prediction=st.sampled_from(["0", "1"]),
    label=st.none() | st.sampled_from(["0", "1"]),
    score=st.none() | st.floats(min_value=0.0, max_value=1.0),
    y=st.none() | st.floats(min_value=-1e3, max_value=1e3),
    yhat=st.floats(min_value=-1e3, max_value=1e3),
    tokens=st.none() | st.tuples(st.integers(0, 10**5), st.integers(0, 10**5), small, small),
)
event_lists = st.lists(events, max_size=15)


def assert_close(a: WindowAggregate, b: WindowAggregate) -> None:
    """Counts, maxima and bins equal exactly; float sums equal up to summation order."""
    for f in dataclasses.fields(WindowAggregate):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, float) and isinstance(y, float):
            # Sums of <= 60 terms up to ~1e6 in another order: error < 80 * eps * Σ|terms|.
            assert x == pytest.approx(y, rel=1e-12, abs=1e-6), f.name
        else:
            assert x == y, f.name


def test_defaults_are_empty() -> None:
    """A default aggregate is "no data", and merging with it changes nothing."""
    empty = WindowAggregate()
    assert empty.n == 0 and empty.latency_max is None and empty.latency_bins == {}
    some = WindowAggregate(n=3, latency_max=2.0, confusion={("1", "1"): 3}, seconds=60.0)
    assert merge_aggregates(some, empty) == some
    assert merge_aggregates(empty, some) == some
    assert merge_all([]) == empty


def test_merge_fields() -> None:
    """Sums and seconds add, latency_max takes the larger, dicts add key by key."""
    a = WindowAggregate(seconds=60.0, n=2, latency_max=5.0, pred_counts={"1": 2}, cost_usd=0.5)
    b = WindowAggregate(seconds=60.0, n=3, latency_max=9.0, pred_counts={"1": 1, "0": 2})
    m = merge_aggregates(a, b)
    assert (m.seconds, m.n, m.latency_max, m.cost_usd) == (120.0, 5, 9.0, 0.5)
    assert m.pred_counts == {"1": 3, "0": 2}
    assert add_counts({"a": 1}, {"a": 2, "b": 1}) == {"a": 3, "b": 1}


def test_frozen() -> None:
    """A WindowAggregate cannot be reassigned."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        WindowAggregate().n = 1  # type: ignore[misc]


@SETTINGS
@given(event_lists, event_lists)
def test_merge_equals_aggregate_of_union(a: list[Event], b: list[Event]) -> None:
    """merge(agg(a), agg(b)) == agg(a ∪ b), field by field and metric by metric."""
    merged = merge_aggregates(aggregate(a, 60.0), aggregate(b, 60.0))
    union = aggregate(a + b, 120.0)
    assert_close(merged, union)
    names = list(METRICS)
    expected_values = compute(names, union)
    for name, value in compute(names, merged).items():
        expected = expected_values[name]
        if value is None or expected is None:
            assert value is expected, name
        else:
            # Sums that cancel (r2's SST) can lose more digits; abs=1e-6 covers it.
            assert value == pytest.approx(expected, rel=1e-9, abs=1e-6), name


@SETTINGS
@given(event_lists, event_lists)
def test_merge_is_commutative(a: list[Event], b: list[Event]) -> None:
    """merge(a, b) == merge(b, a) exactly (float addition is commutative)."""
    x, y = aggregate(a, 60.0), aggregate(b, 60.0)
    assert merge_aggregates(x, y) == merge_aggregates(y, x)


@SETTINGS
@given(st.lists(event_lists, max_size=4), st.randoms(use_true_random=False))
def test_order_invariance(windows: list[list[Event]], rnd: random.Random) -> None:
    """Merging windows in any order gives the same aggregate (floats up to rounding)."""
    aggs = [aggregate(w, 60.0) for w in windows]
    shuffled = list(aggs)
    rnd.shuffle(shuffled)
    assert_close(merge_all(aggs), merge_all(shuffled))
