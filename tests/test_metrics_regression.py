"""Oracle tests for regression metrics from sums, against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    root_mean_squared_error,
)

from watchkeeper.metrics.regression import APE_EPS, regression_metrics

SETTINGS = settings(max_examples=100, deadline=None)


def sums(y: np.ndarray, yhat: np.ndarray) -> tuple[int, float, float, float, float, float]:
    """The per-window sums the SQL computes, in the order regression_metrics takes them."""
    err = y - yhat
    ape = np.abs(err) / np.maximum(np.abs(y), APE_EPS)
    return (
        len(y),
        float(np.abs(err).sum()),
        float((err**2).sum()),
        float(ape.sum()),
        float(y.sum()),
        float((y**2).sum()),
    )


@pytest.mark.parametrize("seed", range(3))
def test_against_sklearn(seed: int) -> None:
    """mae, rmse, mape and r2 from sums equal scikit-learn's on raw arrays."""
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, 2000)
    yhat = y + rng.normal(0, 3, 2000)
    got = regression_metrics(*sums(y, yhat))
    # mae, rmse, mape: a mean of the same terms summed in another order; relative error of
    # a 2000-term float sum is below 2000 * eps ≈ 4.4e-13, so rel=1e-12.
    assert got["mae"] == pytest.approx(mean_absolute_error(y, yhat), rel=1e-12)
    assert got["rmse"] == pytest.approx(root_mean_squared_error(y, yhat), rel=1e-12)
    assert got["mape"] == pytest.approx(mean_absolute_percentage_error(y, yhat), rel=1e-12)
    # r2: SST = Σy² - (Σy)²/n cancels; y_sq_sum / SST ≈ (50² + 10²) / 10² = 26, so the
    # rounding error of the sums (~1e-13 relative) is amplified ~26x: abs=1e-10 is ample.
    assert got["r2"] == pytest.approx(r2_score(y, yhat), abs=1e-10)


def test_mape_with_zero_actuals() -> None:
    """Rows with y = 0 use sklearn's max(|y|, eps) denominator, giving the same huge MAPE."""
    y = np.array([0.0, 1.0, 2.0, -4.0])
    yhat = np.array([0.5, 1.0, 1.0, -3.0])
    got = regression_metrics(*sums(y, yhat))
    assert got["mape"] == pytest.approx(mean_absolute_percentage_error(y, yhat), rel=1e-12)


def test_known_values() -> None:
    """A hand-checked example: errors 1, -1, 2, 0 on y = 1, 2, 3, 4."""
    y = np.array([1.0, 2.0, 3.0, 4.0])
    yhat = np.array([0.0, 3.0, 1.0, 4.0])
    got = regression_metrics(*sums(y, yhat))
    assert got["mae"] == 1.0
    assert got["rmse"] == pytest.approx(np.sqrt(6 / 4), rel=1e-15)
    assert got["r2"] == pytest.approx(1 - 6 / 5, rel=1e-15)  # SSE 6, SST 5


def test_empty_and_undefined() -> None:
    """n = 0 gives all None; n = 1 or constant actuals give r2 None (sklearn: NaN / forced)."""
    assert regression_metrics(0, 0.0, 0.0, 0.0, 0.0, 0.0) == {
        "mae": None,
        "rmse": None,
        "mape": None,
        "r2": None,
    }
    one = regression_metrics(*sums(np.array([3.0]), np.array([2.0])))
    assert one["mae"] == 1.0 and one["r2"] is None
    constant = np.full(1000, 0.1)  # Σy² - (Σy)²/n is a rounding residue here, not 0
    got = regression_metrics(*sums(constant, constant + 0.01))
    assert got["r2"] is None
    assert got["mae"] == pytest.approx(0.01, rel=1e-9)


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)


@SETTINGS
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=100))
def test_mae_rmse_mape_properties(rows: list[tuple[float, float]]) -> None:
    """On any data, mae <= rmse and both match sklearn; r2 is at most 1 when defined."""
    y = np.array([r[0] for r in rows])
    yhat = np.array([r[1] for r in rows])
    got = regression_metrics(*sums(y, yhat))
    mae, rmse, r2 = got["mae"], got["rmse"], got["r2"]
    assert mae is not None and rmse is not None
    # abs 1e-9 on values up to 2e3: float sums of <= 100 terms (relative ~1e-14).
    assert mae == pytest.approx(mean_absolute_error(y, yhat), rel=1e-12, abs=1e-9)
    assert rmse == pytest.approx(root_mean_squared_error(y, yhat), rel=1e-12, abs=1e-9)
    assert mae <= rmse * (1 + 1e-12) + 1e-12
    assert r2 is None or r2 <= 1.0
