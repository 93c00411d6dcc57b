"""Data-quality metrics read off counts (``feature_quality``), on hand-made counts."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from watchkeeper.drift.profile import CategoricalLayout, Counts, NumericLayout, count
from watchkeeper.drift.quality import QUALITY_METRICS, feature_quality

NUMERIC = NumericLayout((0.0, 10.0))  # codes: <0, =0, (0,10), =10, >10
CATEGORICAL = CategoricalLayout(("a", "b"), frozenset({"c"}))  # a, b, other, unseen


def numeric_counts(
    n: list[int], mins: list[float], maxs: list[float], null: int = 0, invalid: int = 0
) -> Counts:
    c = Counts.empty(NUMERIC.n_codes)
    c.n[:] = n
    c.mins[:] = mins
    c.maxs[:] = maxs
    c.sums[:] = [k * (lo + hi) / 2 if k else 0.0 for k, lo, hi in zip(n, mins, maxs, strict=True)]
    c.null, c.invalid = null, invalid
    return c


def categorical_counts(n: list[int], null: int = 0) -> Counts:
    c = Counts.empty(CATEGORICAL.n_codes)
    c.n[:] = n
    c.null = null
    return c


INF = math.inf


def test_numeric_rates() -> None:
    # 20 valid values: 2 below the reference's minimum, 1 above its maximum; 6 null, 4 NaN/inf
    cur = numeric_counts(
        [2, 5, 9, 3, 1],
        [-3.0, 0.0, 1.0, 10.0, 12.0],
        [-1.0, 0.0, 9.0, 10.0, 12.0],
        null=6,
        invalid=4,
    )
    ref = numeric_counts(
        [0, 10, 70, 10, 0], [INF, 0.0, 0.5, 10.0, INF], [-INF, 0.0, 9.5, 10.0, -INF], null=10
    )
    q = feature_quality(NUMERIC, ref, cur)
    assert q["rows"] == 30
    assert q["missing_rate"] == pytest.approx(6 / 30)
    assert q["missing_change"] == pytest.approx(6 / 30 - 10 / 100)
    assert q["invalid_rate"] == pytest.approx(4 / 30)
    assert q["out_of_range_rate"] == pytest.approx(3 / 20)  # a share of the valid values
    assert q["unseen_rate"] is None  # categorical only
    assert q["constant"] == 0 and q["all_null"] == 0
    assert (q["min"], q["max"]) == (-3.0, 12.0)
    assert q["mean"] == pytest.approx(cur.sums.sum() / 20)
    assert set(QUALITY_METRICS) <= set(q)


def test_numeric_constant_and_all_null() -> None:
    constant = numeric_counts(
        [0, 0, 0, 7, 0], [INF, INF, INF, 10.0, INF], [-INF, -INF, -INF, 10.0, -INF], null=1
    )
    q = feature_quality(NUMERIC, None, constant)
    assert q["constant"] == 1 and q["all_null"] == 0
    assert q["missing_change"] is None  # no reference
    assert q["out_of_range_rate"] == 0.0
    # two values in one open bin, different: not constant
    spread = numeric_counts(
        [0, 0, 2, 0, 0], [INF, INF, 1.0, INF, INF], [-INF, -INF, 2.0, -INF, -INF]
    )
    assert feature_quality(NUMERIC, None, spread)["constant"] == 0
    one = numeric_counts([0, 0, 1, 0, 0], [INF, INF, 1.0, INF, INF], [-INF, -INF, 1.0, -INF, -INF])
    assert feature_quality(NUMERIC, None, one)["constant"] is None  # needs ≥ 2 values

    nothing = numeric_counts([0] * 5, [INF] * 5, [-INF] * 5, null=8)
    q = feature_quality(NUMERIC, None, nothing)
    assert q["all_null"] == 1 and q["missing_rate"] == 1.0
    assert q["out_of_range_rate"] is None and q["constant"] is None
    # invalid values are values of the wrong kind, not missing ones
    broken = numeric_counts([0] * 5, [INF] * 5, [-INF] * 5, invalid=3)
    assert feature_quality(NUMERIC, None, broken)["all_null"] == 0


def test_no_rows_gives_no_metrics() -> None:
    q = feature_quality(NUMERIC, None, Counts.empty(NUMERIC.n_codes))
    assert q["rows"] == 0
    assert all(q[m] is None for m in QUALITY_METRICS)


def test_reference_without_rows_has_no_missing_change() -> None:
    cur = numeric_counts(
        [0, 0, 3, 0, 0], [INF, INF, 1.0, INF, INF], [-INF, -INF, 4.0, -INF, -INF], null=1
    )
    q = feature_quality(NUMERIC, Counts.empty(NUMERIC.n_codes), cur)
    assert q["missing_change"] is None and q["missing_rate"] == pytest.approx(0.25)


def test_categorical_rates() -> None:
    cur = categorical_counts([5, 3, 1, 1], null=10)  # a, b, other, unseen
    ref = categorical_counts([50, 40, 10, 0], null=0)
    q = feature_quality(CATEGORICAL, ref, cur)
    assert q["rows"] == 20
    assert q["missing_rate"] == pytest.approx(0.5)
    assert q["missing_change"] == pytest.approx(0.5)
    assert q["unseen_rate"] == pytest.approx(1 / 10)  # of the valid values
    assert q["invalid_rate"] == 0.0
    assert q["out_of_range_rate"] is None  # numeric only
    assert q["constant"] == 0 and q["all_null"] == 0


def test_categorical_constant_only_for_one_named_category() -> None:
    assert feature_quality(CATEGORICAL, None, categorical_counts([7, 0, 0, 0]))["constant"] == 1
    # "other" and "unseen" lump several categories: never called constant
    assert feature_quality(CATEGORICAL, None, categorical_counts([0, 0, 7, 0]))["constant"] == 0
    assert feature_quality(CATEGORICAL, None, categorical_counts([0, 0, 0, 7]))["constant"] == 0
    assert feature_quality(CATEGORICAL, None, categorical_counts([3, 4, 0, 0]))["constant"] == 0
    q = feature_quality(CATEGORICAL, None, categorical_counts([0, 0, 0, 0], null=4))
    assert q["all_null"] == 1 and q["unseen_rate"] is None


def test_quality_from_counted_values() -> None:
    """End to end through ``count``: None is missing, NaN and ±inf are invalid."""
    values = pa.array(
        [-5.0, 0.0, 3.0, 3.0, 10.0, 11.0, None, None, math.nan, math.inf, -math.inf, 4.0]
    )
    q = feature_quality(NUMERIC, None, count(NUMERIC, values))
    assert q["rows"] == 12
    assert q["missing_rate"] == pytest.approx(2 / 12)
    assert q["invalid_rate"] == pytest.approx(3 / 12)
    assert q["out_of_range_rate"] == pytest.approx(2 / 7)  # -5 and 11 of 7 finite values
    assert (q["min"], q["max"], q["constant"]) == (-5.0, 11.0, 0)
    assert q["mean"] == pytest.approx(np.mean([-5.0, 0.0, 3.0, 3.0, 10.0, 11.0, 4.0]))
    strings = pa.array(["a", "b", "zzz", "c", None])
    sq = feature_quality(CATEGORICAL, None, count(CATEGORICAL, strings))
    assert sq["unseen_rate"] == pytest.approx(1 / 4)  # "zzz"; "c" is a known reference category
    assert sq["missing_rate"] == pytest.approx(1 / 5)
