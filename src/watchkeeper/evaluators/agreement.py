"""Agreement between two raters of the same items: a human and an evaluator (or two judges).

Pure functions over verdict sequences, used by the feedback API to say how far an automatic
evaluator (``judge_correctness``, ``groundedness``, ...) can be trusted where people looked:

- the **observed agreement**: the share of items both raters gave the same verdict;
- **Cohen's kappa**: agreement corrected for chance, ``(p_o - p_e) / (1 - p_e)`` where ``p_e``
  is the agreement two independent raters with the same marginal rates would reach; 1 is
  perfect, 0 is chance, below 0 is worse than chance (the same value as
  ``sklearn.metrics.cohen_kappa_score``, unweighted);
- the **confusion** of the two raters' verdicts.

Undefined cases are None with a reason, never a made-up number: no items at all, or
``p_e = 1`` (both raters gave every item one and the same verdict, so chance explains all
agreement and kappa is 0/0).

Kappa is computed in integers until the one final division: ``p_o - p_e`` and ``1 - p_e``
share the denominator ``n²``, so ``kappa = (n·agree - Σ r_k c_k) / (n² - Σ r_k c_k)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

NO_PAIRS = "no items carry a verdict of both raters"
ONE_CLASS = "both raters gave every item the same single verdict; kappa is undefined (0/0)"


def _check(a: Sequence[Hashable], b: Sequence[Hashable]) -> None:
    if len(a) != len(b):
        raise ValueError(f"the raters judged different numbers of items: {len(a)} and {len(b)}")


def observed_agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """The share of items on which the two raters agree; None without items."""
    _check(a, b)
    if not a:
        return None
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's (unweighted) kappa of two raters over the same items, any number of classes;
    None when undefined (no items, or chance agreement of 1)."""
    _check(a, b)
    n = len(a)
    if n == 0:
        return None
    agree = sum(1 for x, y in zip(a, b, strict=True) if x == y)
    rows, cols = Counter(a), Counter(b)
    chance = sum(count * cols.get(label, 0) for label, count in rows.items())
    if chance == n * n:
        return None
    return (n * agree - chance) / (n * n - chance)


def confusion(
    a: Sequence[Hashable], b: Sequence[Hashable], labels: Sequence[Hashable]
) -> list[list[int]]:
    """Counts with rater ``a``'s verdict ``labels[i]`` and rater ``b``'s ``labels[j]`` at
    ``[i][j]`` (the layout of ``sklearn.metrics.confusion_matrix(a, b, labels=labels)``);
    verdicts outside ``labels`` are not counted."""
    _check(a, b)
    index = {label: i for i, label in enumerate(labels)}
    out = [[0] * len(labels) for _ in labels]
    for x, y in zip(a, b, strict=True):
        i, j = index.get(x), index.get(y)
        if i is not None and j is not None:
            out[i][j] += 1
    return out


@dataclass(frozen=True)
class Agreement:
    """How far two raters of flagged/ok verdicts agree (``human`` and ``evaluator``)."""

    n: int
    agreement_rate: float | None
    kappa: float | None
    # [human flagged, human ok] x [evaluator flagged, evaluator ok]
    confusion: tuple[tuple[int, int], tuple[int, int]]
    reason: str | None  # why agreement_rate or kappa is None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the API answers with."""
        (ff, fo), (of, oo) = self.confusion
        return {
            "n": self.n,
            "agreement_rate": self.agreement_rate,
            "kappa": self.kappa,
            "confusion": {
                "human_flagged": {"evaluator_flagged": ff, "evaluator_ok": fo},
                "human_ok": {"evaluator_flagged": of, "evaluator_ok": oo},
            },
            "reason": self.reason,
        }


def binary_agreement(pairs: Iterable[tuple[bool, bool]]) -> Agreement:
    """Agreement of (human flagged, evaluator flagged) verdict pairs."""
    items = list(pairs)
    human = [bool(h) for h, _ in items]
    other = [bool(e) for _, e in items]
    matrix = confusion(human, other, [True, False])
    kappa = cohen_kappa(human, other)
    reason = NO_PAIRS if not items else (ONE_CLASS if kappa is None else None)
    return Agreement(
        n=len(items),
        agreement_rate=observed_agreement(human, other),
        kappa=kappa,
        confusion=((matrix[0][0], matrix[0][1]), (matrix[1][0], matrix[1][1])),
        reason=reason,
    )
