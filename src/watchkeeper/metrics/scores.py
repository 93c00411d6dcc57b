"""ROC AUC from mergeable score histograms.

The store counts labelled events per score bin, separately for actual positives and actual
negatives (:func:`score_bin_sql`); windows merge by adding counts. :func:`roc_auc_from_bins`
is the Mann–Whitney statistic on the binned scores: a (positive, negative) pair counts 1 when
the positive's bin is higher, 1/2 when both share a bin. It equals scikit-learn's
``roc_auc_score`` exactly when every score already sits on the bin grid (one distinct score
per bin), and otherwise differs by at most ``tied_pairs / (2 * P * N)``, where ``tied_pairs``
is the number of (positive, negative) pairs sharing a bin (:func:`roc_auc_tie_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = [
    "SCORE_BINS",
    "roc_auc_from_bins",
    "roc_auc_tie_bound",
    "score_bin",
    "score_bin_sql",
]

SCORE_BINS = 1000


def score_bin(p: float) -> int:
    """Return the bin of score ``p``: ``min(max(floor(p * 1000), 0), 999)``.

    Scores outside ``[0, 1]`` are clamped into the first or last bin. ``p`` must not be NaN.
    """
    return min(max(math.floor(p * SCORE_BINS), 0), SCORE_BINS - 1)


def score_bin_sql(column: str) -> str:
    """Return the SQL expression computing :func:`score_bin` of ``column``.

    Written with ``CASE`` so it is plain ANSI SQL and never casts an out-of-range double:
    ``p * 1000 >= 999`` is exactly when ``min(floor(p * 1000), 999)`` is 999, and
    ``p * 1000 < 1`` exactly when ``max(floor(p * 1000), 0)`` is 0.
    """
    top = SCORE_BINS - 1
    return (
        f"CASE WHEN {column} * {SCORE_BINS} >= {top} THEN {top} "
        f"WHEN {column} * {SCORE_BINS} < 1 THEN 0 "
        f"ELSE CAST(floor({column} * {SCORE_BINS}) AS INTEGER) END"
    )


def _totals(pos: Mapping[int, int], neg: Mapping[int, int]) -> tuple[int, int]:
    return sum(c for c in pos.values() if c > 0), sum(c for c in neg.values() if c > 0)


def roc_auc_from_bins(pos: Mapping[int, int], neg: Mapping[int, int]) -> float | None:
    """Return the area under the ROC curve from per-bin counts of positives and negatives.

    ``pos[b]`` (``neg[b]``) is the number of actual positives (negatives) whose score fell in
    bin ``b``; higher bins mean more positive. Pairs in the same bin count 1/2. Returns
    ``None`` when there are no positives or no negatives. Counts of zero or less are ignored.
    The sum is kept in integers (twice the count of concordant pairs plus tied pairs), so
    the result is rounded once.
    """
    n_pos, n_neg = _totals(pos, neg)
    if n_pos == 0 or n_neg == 0:
        return None
    twice_concordant = 0
    negatives_below = 0
    for b in sorted(set(pos) | set(neg)):
        p = max(pos.get(b, 0), 0)
        n = max(neg.get(b, 0), 0)
        twice_concordant += p * (2 * negatives_below + n)
        negatives_below += n
    return twice_concordant / (2 * n_pos * n_neg)


def roc_auc_tie_bound(pos: Mapping[int, int], neg: Mapping[int, int]) -> float | None:
    """Return the largest possible error of :func:`roc_auc_from_bins` due to binning.

    A pair sharing a bin counts 1/2 where its exact scores would give 0, 1/2 or 1, so the
    error is at most ``(pairs sharing a bin) / (2 * P * N)``. ``None`` when AUC is undefined.
    """
    n_pos, n_neg = _totals(pos, neg)
    if n_pos == 0 or n_neg == 0:
        return None
    tied = sum(max(c, 0) * max(neg.get(b, 0), 0) for b, c in pos.items())
    return tied / (2 * n_pos * n_neg)
