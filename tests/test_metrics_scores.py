"""Oracle and property tests for ROC AUC from score histograms."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from watchkeeper.metrics.scores import (
    SCORE_BINS,
    roc_auc_from_bins,
    roc_auc_tie_bound,
    score_bin,
    score_bin_sql,
)

SETTINGS = settings(max_examples=100, deadline=None)
# Float slack added to derived bounds: both sides divide exact integer pair counts, but
# scikit-learn integrates the ROC curve with the trapezoid rule in float64 (a sum of up to
# 1000 terms), so it can differ from the exact fraction by ~1e-13; 1e-12 covers it.
FLOAT_SLACK = 1e-12


def histograms(y: np.ndarray, s: np.ndarray) -> tuple[dict[int, int], dict[int, int]]:
    """Count scores per bin for positives and negatives, as the SQL aggregate does."""
    pos: dict[int, int] = {}
    neg: dict[int, int] = {}
    for label, score in zip(y.tolist(), s.tolist(), strict=True):
        target = pos if label == 1 else neg
        b = score_bin(score)
        target[b] = target.get(b, 0) + 1
    return pos, neg


def exact_binned_auc(pos: dict[int, int], neg: dict[int, int]) -> Fraction:
    """Mann–Whitney on bins by brute force over pairs of bins, in exact fractions."""
    total = Fraction(0)
    for bp, cp in pos.items():
        for bn, cn in neg.items():
            total += cp * cn * (1 if bp > bn else Fraction(1, 2) if bp == bn else 0)
    return total / (sum(pos.values()) * sum(neg.values()))


def test_score_bin_edges() -> None:
    """Bins are floor(p*1000), clamped into [0, 999]."""
    assert SCORE_BINS == 1000
    assert [score_bin(p) for p in (0.0, 0.0005, 0.001, 0.4995, 0.999, 1.0)] == [
        0,
        0,
        1,
        499,
        999,
        999,
    ]
    assert score_bin(-3.0) == 0
    assert score_bin(7.5) == 999


def test_score_bin_sql_text() -> None:
    """The SQL expression is the documented CASE."""
    assert score_bin_sql("score") == (
        "CASE WHEN score * 1000 >= 999 THEN 999 WHEN score * 1000 < 1 THEN 0 "
        "ELSE CAST(floor(score * 1000) AS INTEGER) END"
    )


@SETTINGS
@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_score_bin_sql_logic_matches(p: float) -> None:
    """The CASE branches of score_bin_sql compute exactly min(max(floor(p*1000), 0), 999)."""
    scaled = p * 1000
    case = 999 if scaled >= 999 else 0 if scaled < 1 else math.floor(scaled)
    assert case == score_bin(p)


def test_auc_undefined() -> None:
    """AUC is None without positives or without negatives."""
    assert roc_auc_from_bins({}, {3: 2}) is None
    assert roc_auc_from_bins({3: 2}, {}) is None
    assert roc_auc_from_bins({3: 0}, {4: 1}) is None
    assert roc_auc_tie_bound({}, {}) is None


def test_auc_known_values() -> None:
    """Perfect separation is 1, reversed is 0, everything in one bin is 1/2."""
    assert roc_auc_from_bins({900: 5}, {100: 5}) == 1.0
    assert roc_auc_from_bins({100: 5}, {900: 5}) == 0.0
    assert roc_auc_from_bins({500: 3}, {500: 7}) == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_auc_continuous_within_derived_bound(seed: int) -> None:
    """On continuous scores, |binned AUC - sklearn| <= tied pairs / (2PN), computed from data."""
    rng = np.random.default_rng(seed)
    n = 3000
    y = rng.integers(0, 2, size=n)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y)))  # informative, continuous scores
    pos, neg = histograms(y, s)
    bound = roc_auc_tie_bound(pos, neg)
    assert bound is not None
    tied = sum(c * neg.get(b, 0) for b, c in pos.items())
    assert bound == tied / (2 * int(y.sum()) * int((1 - y).sum()))
    auc = roc_auc_from_bins(pos, neg)
    assert auc is not None
    assert abs(auc - roc_auc_score(y, s)) <= bound + FLOAT_SLACK


@pytest.mark.parametrize("seed", range(5))
def test_auc_exact_on_bin_grid(seed: int) -> None:
    """Scores at bin centres (one value per bin) give sklearn's AUC, ties included."""
    rng = np.random.default_rng(seed)
    n = 2000
    y = rng.integers(0, 2, size=n)
    k = np.clip(rng.normal(500 + 80 * y, 150).round(), 0, 999).astype(int)
    s = (k + 0.5) / 1000  # mid-bin, so float rounding cannot move a score across an edge
    pos, neg = histograms(y, s)
    auc = roc_auc_from_bins(pos, neg)
    assert auc == float(exact_binned_auc(pos, neg))  # one rounding of an exact fraction
    assert auc == pytest.approx(roc_auc_score(y, s), abs=FLOAT_SLACK)


labels_and_scores = st.lists(
    st.tuples(st.integers(0, 1), st.floats(min_value=0.0, max_value=1.0)),
    min_size=2,
    max_size=200,
)


@SETTINGS
@given(labels_and_scores)
def test_auc_properties(rows: list[tuple[int, float]]) -> None:
    """AUC is in [0, 1], within the tie bound of sklearn, and AUC(s) + AUC(1-s) ≈ 1."""
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    assume(0 < y.sum() < len(y))
    pos, neg = histograms(y, s)
    auc = roc_auc_from_bins(pos, neg)
    bound = roc_auc_tie_bound(pos, neg)
    assert auc is not None and bound is not None
    assert 0.0 <= auc <= 1.0
    assert abs(auc - roc_auc_score(y, s)) <= bound + FLOAT_SLACK
    rpos, rneg = histograms(y, 1 - s)
    reverse = roc_auc_from_bins(rpos, rneg)
    rbound = roc_auc_tie_bound(rpos, rneg)
    assert reverse is not None and rbound is not None
    # A pair separated by both binnings contributes exactly 1 to the sum (1 + 0); only a
    # pair tied in at least one binning can be off, by at most 1/2 per pair.
    assert abs(auc + reverse - 1) <= bound + rbound + FLOAT_SLACK


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 999)), min_size=2, max_size=200))
def test_auc_reversal_exact_on_grid(rows: list[tuple[int, int]]) -> None:
    """On bin-centre scores, reversing the scores gives exactly 1 - AUC (up to rounding)."""
    y = np.array([r[0] for r in rows])
    s = (np.array([r[1] for r in rows]) + 0.5) / 1000
    assume(0 < y.sum() < len(y))
    auc = roc_auc_from_bins(*histograms(y, s))
    reverse = roc_auc_from_bins(*histograms(y, 1 - s))
    assert auc is not None and reverse is not None
    assert auc + reverse == pytest.approx(1.0, abs=FLOAT_SLACK)
