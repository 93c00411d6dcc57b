"""Regression metrics finalized from merged sums.

Per labelled row with actual ``y`` and prediction ``ŷ`` the store sums, in SQL:

* ``abs_err_sum``: ``|y - ŷ|``
* ``sq_err_sum``: ``(y - ŷ)²``
* ``ape_sum``: ``|y - ŷ| / max(|y|, APE_EPS)``, scikit-learn's
  ``mean_absolute_percentage_error`` term (a ratio, not a percentage)
* ``y_sum`` and ``y_sq_sum``: ``y`` and ``y²``, for the total sum of squares

Conventions:

* every metric is ``None`` when ``n`` is 0;
* ``r2 = 1 - SSE / SST`` with ``SST = y_sq_sum - y_sum² / n``. It is ``None`` when ``n < 2``
  (scikit-learn returns NaN and warns) and when ``SST`` is zero *to float precision*
  (``SST <= R2_CONSTANT_TOLERANCE * y_sq_sum``): the actuals are constant and R² is
  undefined. scikit-learn's default (``force_finite=True``) reports 1.0 or 0.0 there, which
  would read as "perfect" or "no skill" on a dashboard; with ``force_finite=False`` it gives
  NaN or -inf, which ``None`` stands for. The tolerance exists because the sums formula
  cancels: ``y_sq_sum - y_sum² / n`` of a constant column is a rounding residue of order
  ``eps * y_sq_sum``, not 0, and would give a meaningless R². Actuals whose coefficient of
  variation is below about 1e-5 count as constant.
"""

from __future__ import annotations

import math

__all__ = ["APE_EPS", "R2_CONSTANT_TOLERANCE", "r2", "regression_metrics"]

# float64 machine epsilon: scikit-learn's floor on |y| in the MAPE denominator.
APE_EPS = 2.220446049250313e-16
R2_CONSTANT_TOLERANCE = 1e-10


def r2(n: int, sq_err_sum: float, y_sum: float, y_sq_sum: float) -> float | None:
    """Return the coefficient of determination from sums (see the module docstring)."""
    if n < 2:
        return None
    sst = y_sq_sum - y_sum * y_sum / n
    if sst <= R2_CONSTANT_TOLERANCE * y_sq_sum:
        return None
    return 1.0 - sq_err_sum / sst


def regression_metrics(
    n: int,
    abs_err_sum: float,
    sq_err_sum: float,
    ape_sum: float,
    y_sum: float,
    y_sq_sum: float,
) -> dict[str, float | None]:
    """Return ``mae``, ``rmse``, ``mape`` and ``r2`` for ``n`` labelled rows from their sums.

    All are ``None`` when ``n`` is 0; see the module docstring for ``r2``.
    """
    if n <= 0:
        return {"mae": None, "rmse": None, "mape": None, "r2": None}
    return {
        "mae": abs_err_sum / n,
        # max(..., 0): a sum of squares cannot be negative; guard against a bad aggregate.
        "rmse": math.sqrt(max(sq_err_sum, 0.0) / n),
        "mape": ape_sum / n,
        "r2": r2(n, sq_err_sum, y_sum, y_sq_sum),
    }
