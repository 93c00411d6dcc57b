"""Oracle tests for classification metrics from a confusion matrix, against scikit-learn."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)
from sklearn.metrics import (
    log_loss as sk_log_loss,
)

from watchkeeper.metrics.classification import (
    LOG_LOSS_EPS,
    classification_metrics,
    log_loss,
    positive_rate,
    resolve_positive_label,
)

SETTINGS = settings(max_examples=100, deadline=None)
# Both sides divide the same integer counts; scikit-learn goes through float arrays and
# (for macro) a numpy mean, which can differ in the last bits. 1e-12 is ~5000 ulps of 1.
TOL = 1e-12


def confusion_of(y_true: list[str], y_pred: list[str]) -> dict[tuple[str, str], int]:
    """Count (actual, predicted) pairs, as the SQL aggregate does."""
    return dict(Counter(zip(y_true, y_pred, strict=True)))


def sklearn_metrics(
    y_true: list[str], y_pred: list[str], average: str, pos_label: str = "1"
) -> dict[str, float]:
    """The four metrics from scikit-learn (zero_division=0 silences undefined warnings)."""
    kw = {"pos_label": pos_label} if average == "binary" else {}  # sklearn warns otherwise
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average=average, zero_division=0, **kw
    )
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def assert_matches(ours: dict[str, float | None], theirs: dict[str, float]) -> None:
    """Assert every metric is defined and equal to scikit-learn's within TOL."""
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=TOL), key


@pytest.mark.parametrize("seed", range(3))
def test_binary_against_sklearn(seed: int) -> None:
    """Binary "0"/"1" labels give sklearn's accuracy, precision, recall, f1 (pos "1")."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, 500)
    y_pred = np.where(rng.random(500) < 0.8, y_true, 1 - y_true)
    t, p = [str(v) for v in y_true], [str(v) for v in y_pred]
    assert_matches(classification_metrics(confusion_of(t, p)), sklearn_metrics(t, p, "binary"))


def test_binary_with_explicit_positive_label() -> None:
    """A given positive_label makes string labels binary, like pos_label in sklearn."""
    t = ["spam", "ham", "spam", "ham", "spam", "ham", "ham"]
    p = ["spam", "spam", "ham", "ham", "spam", "ham", "ham"]
    ours = classification_metrics(confusion_of(t, p), positive_label="spam")
    assert_matches(ours, sklearn_metrics(t, p, "binary", pos_label="spam"))
    assert ours["precision"] == pytest.approx(2 / 3)
    # The individual scorers agree with the combined one used by sklearn_metrics.
    kw = {"pos_label": "spam"}
    assert ours["precision"] == pytest.approx(precision_score(t, p, **kw), abs=TOL)
    assert ours["recall"] == pytest.approx(recall_score(t, p, **kw), abs=TOL)
    assert ours["f1"] == pytest.approx(f1_score(t, p, **kw), abs=TOL)


@pytest.mark.parametrize("seed", range(3))
def test_macro_against_sklearn(seed: int) -> None:
    """Multiclass labels give sklearn's macro averages over the union of labels."""
    rng = np.random.default_rng(seed)
    classes = np.array(["cat", "dog", "eel", "fox"])
    y_true = classes[rng.integers(0, 3, 400)]  # "fox" is never an actual label
    y_pred = np.where(rng.random(400) < 0.6, y_true, classes[rng.integers(0, 4, 400)])
    t, p = y_true.tolist(), y_pred.tolist()
    assert_matches(classification_metrics(confusion_of(t, p)), sklearn_metrics(t, p, "macro"))


def test_macro_class_never_predicted_counts_zero() -> None:
    """A class that is never predicted has precision 0 in the macro average (sklearn's 0)."""
    t = ["a", "b", "c", "c"]
    p = ["a", "b", "b", "b"]
    ours = classification_metrics(confusion_of(t, p))
    assert ours["precision"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert_matches(ours, sklearn_metrics(t, p, "macro"))


def test_undefined_values_are_none() -> None:
    """0/0 gives None: no predicted positives -> precision; no actual positives -> recall."""
    only_negatives = classification_metrics({("0", "0"): 5})
    assert only_negatives == {"accuracy": 1.0, "precision": None, "recall": None, "f1": None}
    no_predicted_positive = classification_metrics({("1", "0"): 2, ("0", "0"): 3})
    assert no_predicted_positive["precision"] is None
    assert no_predicted_positive["recall"] == 0.0
    assert no_predicted_positive["f1"] == 0.0  # sklearn: 2TP/(2TP+FP+FN) = 0/2
    empty = classification_metrics({})
    assert empty == {"accuracy": None, "precision": None, "recall": None, "f1": None}
    assert classification_metrics({("1", "1"): 0}) == empty


def test_resolve_positive_label() -> None:
    """Explicit label wins; {"0","1"} (or nothing) means "1"; anything else is multiclass."""
    assert resolve_positive_label(["a", "b"], "a") == "a"
    assert resolve_positive_label(["0", "1"], None) == "1"
    assert resolve_positive_label(["0"], None) == "1"
    assert resolve_positive_label([], None) == "1"
    assert resolve_positive_label(["0", "1", "2"], None) is None


label_pairs = st.lists(
    st.tuples(st.sampled_from(["0", "1", "2"]), st.sampled_from(["0", "1", "2"])),
    min_size=1,
    max_size=100,
)


@SETTINGS
@given(label_pairs)
def test_matches_sklearn_on_arbitrary_labels(pairs: list[tuple[str, str]]) -> None:
    """On any labels, the binary or macro choice and every value match scikit-learn."""
    t = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    ours = classification_metrics(confusion_of(t, p))
    if set(t) | set(p) <= {"0", "1"}:
        theirs = sklearn_metrics(t, p, "binary")
        # Where we say None (0/0) sklearn reports zero_division=0.
        ours = {k: 0.0 if v is None else v for k, v in ours.items()}
    else:
        theirs = sklearn_metrics(t, p, "macro")
    assert_matches(ours, theirs)


def test_positive_rate() -> None:
    """Share of predictions equal to the positive label; None when undefined."""
    assert positive_rate({"1": 3, "0": 1}) == 0.75
    assert positive_rate({"0": 4}) == 0.0
    assert positive_rate({"spam": 1, "ham": 3}, "spam") == 0.25
    assert positive_rate({"a": 1, "b": 3}) is None  # multiclass, no positive label
    assert positive_rate({}) is None


def test_log_loss_against_sklearn() -> None:
    """Mean of the SQL's clipped per-row terms equals sklearn's log_loss, clipping included."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 1000)
    p = 1 / (1 + np.exp(-(rng.normal(size=1000) + y)))
    p[:4] = [0.0, 1.0, 0.0, 1.0]  # exercise the clip at both ends
    y[:4] = [0, 1, 1, 0]
    clipped = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    terms = -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    ours = log_loss(float(terms.sum()), len(y))
    # Relative 1e-12: a float sum of 1000 positive terms in a different order than
    # sklearn's; each order is within ~1000 * eps = 2.2e-13 of the exact sum.
    assert ours == pytest.approx(sk_log_loss(y, p), rel=1e-12)
    float64_eps = float(np.finfo(np.float64).eps)
    assert float64_eps == LOG_LOSS_EPS


def test_log_loss_empty() -> None:
    """No labelled rows gives None."""
    assert log_loss(0.0, 0) is None
