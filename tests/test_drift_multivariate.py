"""Multivariate drift detectors: domain classifier and PCA reconstruction error."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from watchkeeper.drift.multivariate import (
    MAX_CATEGORIES,
    MIN_ROWS,
    _auc_rows,
    _category_codes,
    domain_classifier,
    pca_reconstruction,
)

Columns = dict[str, np.ndarray]


@pytest.fixture(autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """Run scikit-learn's OpenMP loops on one thread.

    Two spinning OpenMP threads on a busy machine (parallel test workers, other jobs) slow the
    classifier four- to sixfold; one thread does the same work without the contention.
    """
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def numeric(n: int, p: int, seed: int) -> Columns:
    rng = np.random.default_rng(seed)
    return {f"f{i}": rng.normal(size=n) for i in range(p)}


def number_kinds(columns: Columns) -> dict[str, str]:
    return dict.fromkeys(columns, "number")


def assert_plain_json(result: dict[str, Any]) -> None:
    """Only plain Python scalars, lists and dicts: survives a JSON round trip unchanged."""
    assert json.loads(json.dumps(result)) == result


# ---------------------------------------------------------------- no drift


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_drift_is_not_flagged(seed: int) -> None:
    reference = numeric(4000, 20, seed=100 + seed)
    current = numeric(4000, 20, seed=200 + seed)
    kinds = number_kinds(reference)

    dc = domain_classifier(reference, current, kinds, seed=seed)
    assert dc["statistic"] < 0.55
    assert abs(dc["statistic"] - 0.5) < 0.05
    assert dc["drifted"] is False

    pca = pca_reconstruction(reference, current, kinds, seed=seed)
    assert pca["lower"] <= pca["statistic"] <= pca["upper"]
    assert pca["drifted"] is False


# ---------------------------------------------------------------- the domain classifier


@pytest.mark.parametrize("seed", [0, 1])
def test_mean_shift_in_one_of_twenty_features(seed: int) -> None:
    reference = numeric(5000, 20, seed=10 + seed)
    current = numeric(5000, 20, seed=20 + seed)
    current["f7"] = current["f7"] + 0.5

    result = domain_classifier(reference, current, number_kinds(reference), seed=seed)

    assert result["statistic"] >= 0.55
    assert result["drifted"] is True
    assert result["top_features"][0]["feature"] == "f7"
    # The shifted feature carries nearly all of the classifier's edge.
    assert result["top_features"][0]["importance"] > 0.05
    assert all(t["importance"] < 0.02 for t in result["top_features"][1:])
    assert_plain_json(result)


def test_result_shape() -> None:
    reference = numeric(1000, 12, seed=1)
    current = numeric(1500, 12, seed=2)
    current["f0"] = current["f0"] + 1.0
    result = domain_classifier(reference, current, number_kinds(reference), threshold=0.6)

    assert result["method"] == "domain_classifier"
    assert result["threshold"] == 0.6
    assert result["drifted"] is (result["statistic"] >= 0.6)
    assert result["p_value"] is None
    assert (result["n_reference"], result["n_current"], result["n_features"]) == (1000, 1000, 12)
    tops = result["top_features"]
    assert 1 <= len(tops) <= 10
    assert tops[0]["feature"] == "f0"  # the only feature that moved separates the two most
    importances = [t["importance"] for t in tops]
    assert all(i > 0 for i in importances)
    assert importances == sorted(importances, reverse=True)
    assert all(isinstance(i, float) for i in importances)
    assert_plain_json(result)


def test_categorical_and_bool_shifts_are_ranked_first() -> None:
    n = 4000
    reference = numeric(n, 8, seed=3)
    current = numeric(n, 8, seed=4)
    r, c = np.random.default_rng(5), np.random.default_rng(6)
    colours = np.array(["red", "green", "blue"], dtype=object)
    reference["colour"] = r.choice(colours, size=n, p=[0.5, 0.3, 0.2])
    current["colour"] = c.choice(colours, size=n, p=[0.3, 0.3, 0.4])
    flags = np.array([True, False, None], dtype=object)
    reference["flag"] = r.choice(flags, size=n, p=[0.45, 0.45, 0.1])
    current["flag"] = c.choice(flags, size=n, p=[0.45, 0.45, 0.1])
    kinds = number_kinds(reference) | {"colour": "string", "flag": "bool"}

    result = domain_classifier(reference, current, kinds)
    assert result["drifted"] is True
    assert result["top_features"][0]["feature"] == "colour"

    # The same for a bool feature whose share of True changes (an object array with None).
    reference["colour"] = current["colour"]
    current["flag"] = c.choice(flags, size=n, p=[0.25, 0.65, 0.1])
    result = domain_classifier(reference, current, kinds)
    assert result["drifted"] is True
    assert result["top_features"][0]["feature"] == "flag"


def test_new_category_beyond_the_cap_is_still_seen() -> None:
    """200 distinct ids (capped to 50 + other) do not break it; a new dominant value is found."""
    n = 3000
    r, c = np.random.default_rng(7), np.random.default_rng(8)
    reference: Columns = {"id": np.array([f"u{i}" for i in r.integers(0, 200, n)], dtype=object)}
    current: Columns = {"id": np.array([f"u{i}" for i in c.integers(0, 200, n)], dtype=object)}
    current["id"][: n // 3] = "newcomer"
    reference["x"], current["x"] = r.normal(size=n), c.normal(size=n)
    kinds = {"id": "string", "x": "number"}

    result = domain_classifier(reference, current, kinds)
    assert result["drifted"] is True
    assert result["top_features"][0]["feature"] == "id"


def test_category_codes() -> None:
    values = np.array(["b", "a", None, "b", "c", float("nan"), "a", "b"], dtype=object)
    codes = _category_codes(values)
    # By falling frequency: b (3) -> 0, a (2) -> 1, c (1) -> 2; missing -> NaN.
    np.testing.assert_array_equal(codes, [0, 1, np.nan, 0, 2, np.nan, 1, 0])

    many = np.array([f"v{i:03d}" for i in range(120) for _ in range(120 - i)], dtype=object)
    codes = _category_codes(many)
    assert codes.max() == MAX_CATEGORIES  # the shared "other" code
    assert len(np.unique(codes)) == MAX_CATEGORIES + 1
    assert codes[0] == 0  # v000 is the most frequent
    assert np.all(codes[many == "v119"] == MAX_CATEGORIES)

    assert np.isnan(_category_codes(np.array([None, None], dtype=object))).all()


# ---------------------------------------------------------------- missing values


def with_missing(columns: Columns, share: float, seed: int) -> Columns:
    rng = np.random.default_rng(seed)
    out = {}
    for name, values in columns.items():
        values = values.copy()
        values[rng.random(len(values)) < share] = np.nan
        out[name] = values
    return out


def test_missing_values_without_drift() -> None:
    n = 3000
    reference = with_missing(numeric(n, 10, seed=30), 0.2, seed=31)
    current = with_missing(numeric(n, 10, seed=32), 0.2, seed=33)
    r, c = np.random.default_rng(34), np.random.default_rng(35)
    levels = np.array(["x", "y", None], dtype=object)
    reference["level"] = r.choice(levels, size=n)
    current["level"] = c.choice(levels, size=n)
    # A column with no values at all, and one with a single value, on both sides.
    reference["empty"], current["empty"] = np.full(n, np.nan), np.full(n, np.nan)
    reference["rare"] = np.where(np.arange(n) == 5, 1.0, np.nan)
    current["rare"] = np.where(np.arange(n) == 9, 2.0, np.nan)
    kinds = number_kinds(reference) | {"level": "string"}

    dc = domain_classifier(reference, current, kinds)
    assert dc["statistic"] < 0.55
    assert dc["drifted"] is False
    pca = pca_reconstruction(reference, current, kinds)
    assert math.isfinite(pca["statistic"])
    assert pca["n_features"] == 10  # "empty" and "rare" are constant (or void) in the reference
    assert pca["drifted"] is False
    assert_plain_json(dc)
    assert_plain_json(pca)


def test_change_in_missing_rate_is_seen() -> None:
    """Same values, but one feature goes missing far more often: the indicator gives it away."""
    n = 3000
    reference = with_missing(numeric(n, 10, seed=40), 0.05, seed=41)
    current = numeric(n, 10, seed=42)
    current["f4"][np.random.default_rng(43).random(n) < 0.4] = np.nan

    result = domain_classifier(reference, current, number_kinds(reference))
    assert result["drifted"] is True
    assert result["top_features"][0]["feature"] == "f4"


def test_infinities_count_as_missing() -> None:
    reference = numeric(500, 3, seed=50)
    current = numeric(500, 3, seed=51)
    reference["f0"][::7] = np.inf
    current["f0"][::7] = -np.inf
    kinds = number_kinds(reference)
    assert domain_classifier(reference, current, kinds)["drifted"] is False
    assert math.isfinite(pca_reconstruction(reference, current, kinds)["statistic"])


# ---------------------------------------------------------------- PCA reconstruction


def correlated_pair(n: int, rho: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(size=n)
    b = rho * a + math.sqrt(1 - rho**2) * rng.normal(size=n)
    return a, b


def test_correlation_change_with_unchanged_marginals() -> None:
    """Two features correlated 0.9 in reference, independent in current: every marginal is
    still N(0, 1), so univariate methods see nothing; the reconstruction error rises."""
    n, p = 5000, 10
    reference = numeric(n, p, seed=60)
    current = numeric(n, p, seed=61)
    reference["f0"], reference["f1"] = correlated_pair(n, 0.9, np.random.default_rng(62))
    current["f0"], current["f1"] = correlated_pair(n, 0.0, np.random.default_rng(63))
    for name in reference:  # the marginals agree
        assert abs(reference[name].mean() - current[name].mean()) < 0.06
        assert abs(reference[name].std() - current[name].std()) < 0.06

    result = pca_reconstruction(reference, current, number_kinds(reference))
    assert result["drifted"] is True
    assert result["statistic"] > result["upper"]
    assert 1 <= result["components"] < p
    assert result["method"] == "pca_reconstruction"
    assert result["p_value"] is None
    assert (result["n_reference"], result["n_current"], result["n_features"]) == (n, n, p)
    assert_plain_json(result)

    # With the correlation kept, nothing is flagged.
    same = numeric(n, p, seed=64)
    same["f0"], same["f1"] = correlated_pair(n, 0.9, np.random.default_rng(65))
    assert pca_reconstruction(reference, same, number_kinds(reference))["drifted"] is False


def test_pca_components_follow_variance() -> None:
    """Three copies of one signal plus noise: one component explains well over half."""
    n = 2000
    rng = np.random.default_rng(70)
    signal = rng.normal(size=n)
    reference = {f"s{i}": signal + 0.1 * rng.normal(size=n) for i in range(3)}
    reference["noise"] = rng.normal(size=n)
    kinds = number_kinds(reference)
    assert pca_reconstruction(reference, reference, kinds, variance=0.7)["components"] == 1
    assert pca_reconstruction(reference, reference, kinds, variance=0.9)["components"] == 2
    # At most one fewer than the features, so there is always something to reconstruct.
    assert pca_reconstruction(reference, reference, kinds, variance=1.0)["components"] == 3


def test_pca_ignores_categoricals_and_needs_two_numbers() -> None:
    n = 200
    reference = {"x": np.arange(n, dtype=float), "c": np.array(["a"] * n, dtype=object)}
    kinds = {"x": "number", "c": "string"}
    result = pca_reconstruction(reference, reference, kinds)
    assert result["statistic"] is None
    assert result["drifted"] is False
    assert "numeric" in result["reason"]

    result = pca_reconstruction(reference, reference, {"c": "string"})
    assert result["statistic"] is None
    assert result["reason"] == "no numeric features"


def test_perfectly_collinear_features_do_not_false_alarm() -> None:
    """Zero reconstruction error on both sides: numerical noise must not count as drift."""
    rng = np.random.default_rng(80)
    a, b = rng.normal(size=1000), rng.normal(size=1000)
    reference = {"a": a, "twice_a": 2 * a}
    current = {"a": b, "twice_a": 2 * b}
    result = pca_reconstruction(reference, current, number_kinds(reference))
    assert result["components"] == 1
    assert result["statistic"] < 1e-20
    assert result["drifted"] is False


# ---------------------------------------------------------------- sampling, determinism, edges


def test_same_seed_same_result() -> None:
    reference = with_missing(numeric(3000, 8, seed=90), 0.1, seed=91)
    current = with_missing(numeric(2500, 8, seed=92), 0.1, seed=93)
    current["f2"] = current["f2"] * 1.5
    r, c = np.random.default_rng(94), np.random.default_rng(95)
    reference["k"] = r.choice(np.array(["p", "q", None], dtype=object), size=3000)
    current["k"] = c.choice(np.array(["p", "q", None], dtype=object), size=2500)
    kinds = number_kinds(reference) | {"k": "string"}

    for detector in (domain_classifier, pca_reconstruction):
        first = detector(reference, current, kinds, max_rows=2000, seed=7)
        again = detector(reference, current, kinds, max_rows=2000, seed=7)
        other = detector(reference, current, kinds, max_rows=2000, seed=8)
        assert first == again
        assert first["statistic"] != other["statistic"]


def test_down_sampling_bounds_and_balances() -> None:
    reference = numeric(7000, 4, seed=100)
    current = numeric(1200, 4, seed=101)
    kinds = number_kinds(reference)

    dc = domain_classifier(reference, current, kinds, max_rows=1000)
    assert (dc["n_reference"], dc["n_current"]) == (1000, 1000)
    dc = domain_classifier(reference, current, kinds)  # balanced down to the smaller side
    assert (dc["n_reference"], dc["n_current"]) == (1200, 1200)

    pca = pca_reconstruction(reference, current, kinds, max_rows=1000)
    assert (pca["n_reference"], pca["n_current"]) == (1000, 1000)
    pca = pca_reconstruction(reference, current, kinds)  # no balancing needed
    assert (pca["n_reference"], pca["n_current"]) == (5000, 1200)


def test_too_few_rows() -> None:
    small = numeric(MIN_ROWS - 1, 3, seed=110)
    enough = numeric(MIN_ROWS, 3, seed=111)
    kinds = number_kinds(small)
    for detector in (domain_classifier, pca_reconstruction):
        for reference, current in ((small, enough), (enough, small)):
            result = detector(reference, current, kinds)
            assert result["statistic"] is None
            assert result["drifted"] is False
            assert "rows" in result["reason"]
            assert (result["n_reference"], result["n_current"]) == (
                len(reference["f0"]),
                len(current["f0"]),
            )
            assert_plain_json(result)
        assert detector(enough, enough, kinds)["statistic"] is not None


def test_no_features() -> None:
    reference = numeric(100, 2, seed=120)
    result = domain_classifier(reference, reference, {})
    assert result["statistic"] is None
    assert result["drifted"] is False
    assert result["top_features"] == []
    assert "features" in result["reason"]
    # Features only on one side are not compared.
    result = domain_classifier(reference, {"other": reference["f0"]}, number_kinds(reference))
    assert result["statistic"] is None


def test_bad_inputs_raise() -> None:
    reference = numeric(100, 2, seed=130)
    with pytest.raises(ValueError, match="unknown kind"):
        domain_classifier(reference, reference, {"f0": "datetime"})
    ragged = {"f0": np.zeros(100), "f1": np.zeros(99)}
    with pytest.raises(ValueError, match="different lengths"):
        pca_reconstruction(ragged, reference, number_kinds(reference))
    with pytest.raises(ValueError, match="max_rows"):
        domain_classifier(reference, reference, number_kinds(reference), max_rows=5)
    with pytest.raises(ValueError, match="variance"):
        pca_reconstruction(reference, reference, number_kinds(reference), variance=0.0)


# ---------------------------------------------------------------- the AUC itself


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=60).filter(
        lambda pairs: 0 < sum(label for label, _ in pairs) < len(pairs)
    )
)
def test_auc_matches_sklearn(pairs: list[tuple[bool, int]]) -> None:
    """The rank AUC equals roc_auc_score, ties (few distinct scores) included."""
    labels = np.array([label for label, _ in pairs])
    scores = np.array([score for _, score in pairs], dtype=np.float64) / 5
    rows = np.vstack([scores, scores[::-1], -scores])
    got = _auc_rows(rows, labels)
    want = [roc_auc_score(labels, row) for row in rows]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_statistic_is_the_auc_of_the_out_of_fold_scores() -> None:
    """Separable sides give an AUC near 1; sides the model cannot tell apart give 0.5.

    (Not exactly 1: the pooled out-of-fold probabilities come from two models, whose
    confidences differ slightly at the edges.)
    """
    reference = {"x": np.linspace(0, 1, 400)}
    current = {"x": np.linspace(2, 3, 400)}
    result = domain_classifier(reference, current, {"x": "number"})
    assert result["statistic"] > 0.99
    assert result["top_features"] == [{"feature": "x", "importance": pytest.approx(0.5, abs=0.1)}]

    constant = {"x": np.ones(400)}
    result = domain_classifier(constant, constant, {"x": "number"})
    assert result["statistic"] == 0.5
    assert result["top_features"] == []
