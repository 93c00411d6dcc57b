"""Tests of the metric catalogue and compute(): end to end against numpy and scikit-learn."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

import watchkeeper.metrics as metrics
from watchkeeper.metrics import (
    LOG_LOSS_EPS,
    METRICS,
    RELATIVE_ACCURACY,
    UnknownMetricError,
    WindowAggregate,
    bins_from_values,
    compute,
    roc_auc_tie_bound,
    score_bin,
)

EXPECTED_NAMES = {
    "count", "throughput", "error_count", "error_rate", "latency_mean", "latency_p50",
    "latency_p90", "latency_p95", "latency_p99", "latency_max", "accuracy", "precision",
    "recall", "f1", "roc_auc", "log_loss", "positive_rate", "label_coverage", "labeled_count",
    "mae", "rmse", "mape", "r2", "input_tokens", "output_tokens", "total_tokens", "cost_usd",
    "ttft_mean", "ttft_p50", "ttft_p95", "ttft_p99", "cost_per_call", "cost_p95",
    "evaluated_count", "hallucination_rate", "groundedness", "pii_rate", "refusal_rate",
    "toxicity_rate", "exact_match", "token_f1", "semantic_similarity", "judge_groundedness",
    "judge_relevance", "judge_correctness", "judge_fail_rate", "human_score", "thumbs_down_rate",
}  # fmt: skip
COUNT_LIKE = {"count", "error_count", "labeled_count", "input_tokens", "output_tokens"}
COUNT_LIKE |= {"total_tokens", "cost_usd", "evaluated_count"}


def test_catalogue() -> None:
    """METRICS holds exactly the documented names, each with a valid group, unit, text."""
    assert set(METRICS) == EXPECTED_NAMES
    for name, info in METRICS.items():
        assert info.name == name
        assert info.group in {"operational", "classification", "regression", "llm"}
        assert info.unit and info.description
    assert METRICS["roc_auc"].group == "classification"
    assert METRICS["ttft_p99"].group == "llm"


def test_public_names_pinned() -> None:
    """The package's __all__ is pinned, and every name in it exists."""
    assert set(metrics.__all__) >= {
        "METRICS", "MetricInfo", "UnknownMetricError", "WindowAggregate", "compute",
        "merge_aggregates", "quantiles", "bin_index", "bin_index_sql", "bin_value",
        "roc_auc_from_bins", "score_bin", "score_bin_sql", "SCORE_BINS", "classification_metrics",
        "positive_rate", "log_loss", "LOG_LOSS_EPS", "regression_metrics", "GAMMA", "LN_GAMMA",
        "MIN_POSITIVE", "ZERO_BIN", "RELATIVE_ACCURACY", "merge_bins", "EVAL_METRICS",
    }  # fmt: skip
    assert len(metrics.__all__) == 36
    for name in metrics.__all__:
        assert hasattr(metrics, name), name


def test_unknown_metric() -> None:
    """An unknown name raises UnknownMetricError (a ValueError) that lists valid names."""
    with pytest.raises(UnknownMetricError) as info:
        compute(["count", "latency_p42"], WindowAggregate())
    assert isinstance(info.value, ValueError)
    assert info.value.name == "latency_p42"
    assert "latency_p42" in str(info.value) and "latency_p99" in str(info.value)


def test_empty_window() -> None:
    """On an empty window count-like metrics are 0 and every other metric is None."""
    values = compute(sorted(EXPECTED_NAMES), WindowAggregate())
    for name, value in values.items():
        if name in COUNT_LIKE:
            assert value == 0, name
        else:
            assert value is None, name


def test_throughput_and_rates() -> None:
    """Throughput is n / seconds (None without a window length); rates divide by n."""
    agg = WindowAggregate(seconds=120.0, n=600, n_error=30, n_labeled=150)
    got = compute(["throughput", "error_rate", "label_coverage", "count"], agg)
    assert got == {"throughput": 5.0, "error_rate": 0.05, "label_coverage": 0.25, "count": 600}
    assert compute(["throughput"], WindowAggregate(n=5))["throughput"] is None


def test_positive_label_is_passed_through() -> None:
    """positive_label picks the class for precision/recall and positive_rate."""
    agg = WindowAggregate(
        confusion={("spam", "spam"): 3, ("ham", "spam"): 1, ("ham", "ham"): 4},
        pred_counts={"spam": 4, "ham": 4},
    )
    got = compute(["precision", "recall", "positive_rate"], agg, positive_label="spam")
    assert got == {"precision": 0.75, "recall": 1.0, "positive_rate": 0.5}


def window_from_raw(seed: int) -> tuple[WindowAggregate, dict[str, np.ndarray]]:
    """A synthetic 60 s window: raw arrays, and the aggregate the SQL rollup would store."""
    rng = np.random.default_rng(seed)
    n = 5000
    raw = {
        "error": rng.random(n) < 0.03,
        "latency": rng.lognormal(3.0, 1.0, n),
        "labeled": rng.random(n) < 0.6,
        "y": rng.integers(0, 2, n),
        "y_reg": rng.normal(100.0, 20.0, n),
        "in_tok": rng.integers(0, 500, n),
        "out_tok": rng.integers(0, 800, n),
        "cost": rng.random(n) * 0.01,
        "ttft": rng.gamma(2.0, 100.0, n),
    }
    raw["score"] = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * raw["y"])))
    raw["pred"] = (raw["score"] >= 0.5).astype(int)
    raw["yhat"] = raw["y_reg"] + rng.normal(0, 5.0, n)
    lab = raw["labeled"]
    y, s, pred = raw["y"][lab], raw["score"][lab], raw["pred"][lab]
    p = np.clip(s, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    yr, yh = raw["y_reg"][lab], raw["yhat"][lab]
    agg = WindowAggregate(
        seconds=60.0,
        n=n,
        n_error=int(raw["error"].sum()),
        latency_n=n,
        latency_sum=float(raw["latency"].sum()),
        latency_max=float(raw["latency"].max()),
        latency_bins=bins_from_values(raw["latency"].tolist()),
        n_labeled=int(lab.sum()),
        confusion=dict(Counter(zip(map(str, y), map(str, pred), strict=True))),
        pred_counts=dict(Counter(map(str, raw["pred"]))),
        score_pos_bins=dict(Counter(score_bin(v) for v in s[y == 1].tolist())),
        score_neg_bins=dict(Counter(score_bin(v) for v in s[y == 0].tolist())),
        logloss_n=int(lab.sum()),
        logloss_sum=float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum()),
        reg_n=int(lab.sum()),
        abs_err_sum=float(np.abs(yr - yh).sum()),
        sq_err_sum=float(((yr - yh) ** 2).sum()),
        ape_sum=float((np.abs(yr - yh) / np.maximum(np.abs(yr), 2.220446049250313e-16)).sum()),
        y_sum=float(yr.sum()),
        y_sq_sum=float((yr**2).sum()),
        llm_n=n,
        input_tokens=int(raw["in_tok"].sum()),
        output_tokens=int(raw["out_tok"].sum()),
        cost_usd=float(raw["cost"].sum()),
        ttft_n=n,
        ttft_sum=float(raw["ttft"].sum()),
        ttft_bins=bins_from_values(raw["ttft"].tolist()),
    )
    return agg, raw


@pytest.mark.parametrize("seed", range(2))
def test_compute_end_to_end_against_oracles(seed: int) -> None:
    """Every metric computed from the aggregate matches numpy/sklearn on the raw data."""
    agg, raw = window_from_raw(seed)
    got = compute(sorted(EXPECTED_NAMES), agg)
    lab = raw["labeled"]
    y, s, pred = raw["y"][lab], raw["score"][lab], raw["pred"][lab]
    yr, yh = raw["y_reg"][lab], raw["yhat"][lab]
    n = len(raw["error"])
    # Exact: integer counts, and ratios of integers (one rounding on each side).
    assert got["count"] == n and got["labeled_count"] == int(lab.sum())
    assert got["error_count"] == int(raw["error"].sum())
    assert got["throughput"] == n / 60.0
    assert got["error_rate"] == raw["error"].mean()
    assert got["label_coverage"] == lab.mean()
    assert got["positive_rate"] == raw["pred"].mean()
    assert got["total_tokens"] == int(raw["in_tok"].sum() + raw["out_tok"].sum())
    assert got["latency_max"] == raw["latency"].max()
    # Means of float sums: numpy sums pairwise too, rel=1e-12 covers the order difference.
    close = {"rel": 1e-12}
    assert got["latency_mean"] == pytest.approx(raw["latency"].mean(), **close)
    assert got["ttft_mean"] == pytest.approx(raw["ttft"].mean(), **close)
    assert got["cost_usd"] == pytest.approx(raw["cost"].sum(), **close)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred), **close)
    assert got["precision"] == pytest.approx(precision_score(y, pred), **close)
    assert got["recall"] == pytest.approx(recall_score(y, pred), **close)
    assert got["f1"] == pytest.approx(f1_score(y, pred), **close)
    assert got["log_loss"] == pytest.approx(log_loss(y, s), **close)
    assert got["mae"] == pytest.approx(mean_absolute_error(yr, yh), **close)
    assert got["rmse"] == pytest.approx(root_mean_squared_error(yr, yh), **close)
    assert got["mape"] == pytest.approx(mean_absolute_percentage_error(yr, yh), **close)
    # r2: SST from raw sums cancels by y_sq/SST ≈ (100² + 20²) / 20² = 26x; abs=1e-10.
    assert got["r2"] == pytest.approx(r2_score(yr, yh), abs=1e-10)
    # roc_auc: within the tie bound derived from the bins (see test_metrics_scores).
    bound = roc_auc_tie_bound(agg.score_pos_bins, agg.score_neg_bins)
    assert bound is not None
    assert abs(got["roc_auc"] - roc_auc_score(y, s)) <= bound + 1e-12  # type: ignore[operator]
    # Quantiles: the sketch's proven bound (1 % relative, see test_metrics_sketch).
    a = RELATIVE_ACCURACY
    percentiles = {"latency": (50, 90, 95, 99), "ttft": (50, 95, 99)}
    for key, qs in percentiles.items():
        for q in qs:
            est = got[f"{key}_p{q}"]
            assert est is not None
            lower = np.quantile(raw[key], q / 100, method="lower")
            higher = np.quantile(raw[key], q / 100, method="higher")
            assert (1 - a) * lower * (1 - 1e-9) <= est <= (1 + a) * higher * (1 + 1e-9)
