"""Data-quality metrics of one feature in one window, read off its counts.

Every value is a share of the window's rows for that feature (or a flag), so monitors can
watch them with one threshold whatever the traffic:

``missing_rate``        null values / rows
``missing_change``      missing_rate minus the reference's missing rate
``invalid_rate``        values of the wrong kind that reached the store: NaN or ±inf in a
                        number (a wrongly typed value is refused at ingestion, 422)
``out_of_range_rate``   numbers below the reference's minimum or above its maximum
``unseen_rate``         categories the reference never held
``constant``            1 when every non-missing value is the same (and there are ≥ 2)
``all_null``            1 when the feature had rows but no value
"""

from __future__ import annotations

from typing import Any

import numpy as np

from watchkeeper.drift.profile import CategoricalLayout, Counts, Layout, NumericLayout

QUALITY_METRICS = (
    "missing_rate",
    "missing_change",
    "invalid_rate",
    "out_of_range_rate",
    "unseen_rate",
    "constant",
    "all_null",
)


def feature_quality(layout: Layout, ref: Counts | None, cur: Counts) -> dict[str, Any]:
    """The quality metrics of one feature (None where a metric does not apply)."""
    rows = cur.total
    valid = cur.valid
    out: dict[str, Any] = {m: None for m in QUALITY_METRICS}
    out["rows"] = rows
    if not rows:
        return out
    out["missing_rate"] = cur.null / rows
    out["invalid_rate"] = cur.invalid / rows
    if ref is not None and ref.total:
        out["missing_change"] = out["missing_rate"] - ref.null / ref.total
    out["all_null"] = int(valid == 0 and cur.null > 0)
    if isinstance(layout, NumericLayout):
        if valid and len(cur.n) > 2:
            out["out_of_range_rate"] = float((cur.n[0] + cur.n[-1]) / valid)
        nz = np.flatnonzero(cur.n)
        if valid >= 2:
            lo = float(np.min(cur.mins[nz]))
            hi = float(np.max(cur.maxs[nz]))
            out["constant"] = int(lo == hi)
            out["min"], out["max"] = lo, hi
            out["mean"] = float(cur.sums.sum() / valid)
    elif isinstance(layout, CategoricalLayout):
        if valid:
            out["unseen_rate"] = float(cur.n[layout.unseen_code] / valid)
        if valid >= 2:
            # other/unseen lump several categories: "constant" only when one named
            # category holds every value
            named = cur.n[: layout.other_code]
            out["constant"] = int(np.count_nonzero(cur.n) == 1 and named.sum() == valid)
    return out
