"""Classification metrics finalized from a merged confusion matrix.

Labels are canonical strings (see docs/internals.md: bools are ``"1"``/``"0"``). The
confusion matrix maps ``(actual, predicted)`` to a count; windows merge by adding cells.

Conventions (scikit-learn's, where they exist):

* **Binary** when ``positive_label`` is given, or when every label is ``"0"`` or ``"1"``
  (positive ``"1"``), like ``average="binary"``. A ratio whose denominator is 0 is ``None``
  (scikit-learn warns and returns ``zero_division``). F1 is ``2TP / (2TP + FP + FN)``,
  which is what scikit-learn computes, defined whenever any positive is predicted or actual.
* **Macro** otherwise: per-class precision, recall and F1 over the union of actual and
  predicted labels, averaged unweighted, like ``average="macro"`` with ``zero_division=0``:
  a class that is never predicted has precision 0 (never actual: recall 0). Such a class
  always has a defined F1, so only an empty matrix gives ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "BINARY_LABELS",
    "LOG_LOSS_EPS",
    "classification_metrics",
    "log_loss",
    "positive_rate",
    "resolve_positive_label",
]

BINARY_LABELS = frozenset({"0", "1"})
# float64 machine epsilon, the clip scikit-learn's log_loss applies to float64 input.
LOG_LOSS_EPS = 2.220446049250313e-16


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def resolve_positive_label(labels: Iterable[str], positive_label: str | None) -> str | None:
    """Return the positive label to use, or ``None`` for a multiclass (macro) problem.

    An explicit ``positive_label`` wins; otherwise ``"1"`` when every label is ``"0"`` or
    ``"1"`` (including when there are no labels at all).
    """
    if positive_label is not None:
        return positive_label
    return "1" if set(labels) <= BINARY_LABELS else None


def classification_metrics(
    confusion: Mapping[tuple[str, str], int], positive_label: str | None = None
) -> dict[str, float | None]:
    """Return ``accuracy``, ``precision``, ``recall`` and ``f1`` from a confusion matrix.

    ``confusion[(actual, predicted)]`` is a count; cells with a count of zero or less are
    ignored. Everything is ``None`` for an empty matrix. See the module docstring for the
    binary/macro rule and the handling of 0/0.
    """
    cells = {k: c for k, c in confusion.items() if c > 0}
    total = sum(cells.values())
    correct = sum(c for (actual, predicted), c in cells.items() if actual == predicted)
    labels = {label for pair in cells for label in pair}
    out: dict[str, float | None] = {"accuracy": _ratio(correct, total)}
    positive = resolve_positive_label(labels, positive_label)
    if positive is not None:
        tp, fp, fn = _counts(cells, positive)
        out["precision"] = _ratio(tp, tp + fp)
        out["recall"] = _ratio(tp, tp + fn)
        out["f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
        return out
    # Here labels is not empty: an empty matrix resolved to binary above.
    precisions: list[float] = []
    recalls: list[float] = []
    f1s: list[float] = []
    for label in sorted(labels):
        tp, fp, fn = _counts(cells, label)
        precisions.append(_ratio(tp, tp + fp) or 0.0)
        recalls.append(_ratio(tp, tp + fn) or 0.0)
        f1s.append(_ratio(2 * tp, 2 * tp + fp + fn) or 0.0)
    k = len(labels)
    out["precision"] = sum(precisions) / k
    out["recall"] = sum(recalls) / k
    out["f1"] = sum(f1s) / k
    return out


def _counts(cells: Mapping[tuple[str, str], int], label: str) -> tuple[int, int, int]:
    """Return (true positives, false positives, false negatives) treating ``label`` as 1."""
    tp = fp = fn = 0
    for (actual, predicted), c in cells.items():
        if actual == label and predicted == label:
            tp += c
        elif predicted == label:
            fp += c
        elif actual == label:
            fn += c
    return tp, fp, fn


def positive_rate(
    pred_counts: Mapping[str, int], positive_label: str | None = None
) -> float | None:
    """Return the share of predictions equal to the positive label.

    ``pred_counts`` maps a predicted label to its count. The positive label is resolved as in
    :func:`resolve_positive_label`; ``None`` for a multiclass model with no positive label
    given, or when there are no predictions.
    """
    counts = {k: c for k, c in pred_counts.items() if c > 0}
    positive = resolve_positive_label(counts, positive_label)
    if positive is None:
        return None
    return _ratio(counts.get(positive, 0), sum(counts.values()))


def log_loss(logloss_sum: float, n: int) -> float | None:
    """Return the mean binary cross-entropy, ``None`` when ``n`` is 0.

    ``logloss_sum`` is the SQL sum over labelled rows of
    ``-(y * ln(p) + (1 - y) * ln(1 - p))`` with ``p`` clipped to
    ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]``, as scikit-learn's ``log_loss`` clips float64 input.
    """
    return _ratio(logloss_sum, n)
