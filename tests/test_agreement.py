"""Agreement of two raters (watchkeeper.evaluators.agreement) against scikit-learn's
``cohen_kappa_score`` and ``confusion_matrix``, on random data and on known answers."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from watchkeeper.evaluators.agreement import (
    NO_PAIRS,
    ONE_CLASS,
    binary_agreement,
    cohen_kappa,
    confusion,
    observed_agreement,
)

_pairs = st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("abcd")), max_size=200)
_bool_pairs = st.lists(st.tuples(st.booleans(), st.booleans()), max_size=200)
# No deadline: the machine is shared; correctness, not speed, is what these check.
PROPS = settings(max_examples=200, deadline=None)


def _sklearn_kappa(a: list[object], b: list[object]) -> float:
    with warnings.catch_warnings():  # sklearn warns (0/0) where kappa is undefined
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(a, b))


@PROPS
@given(_pairs)
def test_kappa_matches_sklearn_on_random_raters(pairs: list[tuple[str, str]]) -> None:
    """Any number of classes, any marginals: the same kappa as scikit-learn where it is
    defined, and None exactly where scikit-learn answers NaN."""
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    ours = cohen_kappa(a, b)
    if not pairs:
        assert ours is None
        return
    theirs = _sklearn_kappa(a, b)
    if theirs != theirs:  # NaN
        assert ours is None
    else:
        assert ours == pytest.approx(theirs, abs=1e-12)


@PROPS
@given(_bool_pairs)
def test_binary_agreement_matches_sklearn(pairs: list[tuple[bool, bool]]) -> None:
    """The 2x2 confusion is scikit-learn's with labels [flagged, ok], the rate is the share of
    the diagonal, and kappa is scikit-learn's."""
    result = binary_agreement(pairs)
    assert result.n == len(pairs)
    if not pairs:
        assert result.agreement_rate is None and result.kappa is None
        assert result.reason == NO_PAIRS
        return
    human = [h for h, _ in pairs]
    judge = [e for _, e in pairs]
    matrix = confusion_matrix(human, judge, labels=[True, False]).tolist()
    assert [list(row) for row in result.confusion] == matrix
    assert result.agreement_rate == pytest.approx((matrix[0][0] + matrix[1][1]) / len(pairs))
    theirs = _sklearn_kappa(human, judge)
    if theirs != theirs:
        assert result.kappa is None and result.reason == ONE_CLASS
    else:
        assert result.kappa == pytest.approx(theirs, abs=1e-12) and result.reason is None


@PROPS
@given(_pairs)
def test_kappa_is_symmetric_and_order_invariant(pairs: list[tuple[str, str]]) -> None:
    """Swapping the raters or shuffling the items leaves kappa unchanged."""
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    assert cohen_kappa(a, b) == cohen_kappa(b, a)
    assert cohen_kappa(a[::-1], b[::-1]) == cohen_kappa(a, b)


def test_known_answers() -> None:
    """Hand-computed cases: perfect agreement, perfect disagreement, chance, and the textbook
    example (Cohen 1960 style: 20 yes/yes, 15 no/no, 5 + 10 disagreements -> 0.4)."""
    assert cohen_kappa([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == -1.0
    # Rater b flags half of each of a's classes: agreement is what chance predicts.
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 1, 0]) == 0.0
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 = 0.4
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert observed_agreement(a, b) == pytest.approx(0.7)


def test_undefined_cases_are_none_with_a_reason() -> None:
    """No pairs, or both raters always giving the same single verdict: None and why."""
    empty = binary_agreement([])
    assert (empty.n, empty.agreement_rate, empty.kappa, empty.reason) == (0, None, None, NO_PAIRS)
    same = binary_agreement([(True, True)] * 3)
    assert same.agreement_rate == 1.0 and same.kappa is None and same.reason == ONE_CLASS
    # One rater uses one class only, the other both: defined (chance agreement < 1).
    mixed = binary_agreement([(True, True), (True, False)])
    assert mixed.kappa == 0.0 and mixed.reason is None
    assert mixed.as_dict()["confusion"] == {
        "human_flagged": {"evaluator_flagged": 1, "evaluator_ok": 1},
        "human_ok": {"evaluator_flagged": 0, "evaluator_ok": 0},
    }


def test_confusion_layout_and_length_check() -> None:
    """Rows are the first rater, columns the second; unequal lengths are an error."""
    assert confusion(["x", "y", "y"], ["y", "y", "x"], ["x", "y"]) == [[0, 1], [1, 1]]
    with pytest.raises(ValueError, match="different numbers"):
        cohen_kappa([1], [1, 0])
