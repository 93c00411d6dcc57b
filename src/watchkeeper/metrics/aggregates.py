"""The merged aggregates of one time window, and how two windows merge.

The store produces one :class:`WindowAggregate` per 1-minute window (per model, version and
segment); any longer range or wider slice is the :func:`merge_aggregates` of its windows.
Every field is a count, a sum, a maximum or a dict of counts, so merging is exact and
associative, and the order of windows does not matter (up to float rounding of sums).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, TypeVar

__all__ = ["WindowAggregate", "add_counts", "merge_aggregates", "merge_all"]

K = TypeVar("K", bound=Hashable)


def add_counts(a: Mapping[K, int], b: Mapping[K, int]) -> dict[K, int]:
    """Return the key-wise sum of two count dicts (keys of either)."""
    out = dict(a)
    for key, count in b.items():
        out[key] = out.get(key, 0) + count
    return out


@dataclass(frozen=True)
class WindowAggregate:
    """Everything merged for one time window; every field defaults to "no data".

    Groups of fields (each ``*_n`` counts the rows that fed its sums):

    * operational: ``seconds`` (window length), ``n`` events, ``n_error``; latency in ms:
      ``latency_n``, ``latency_sum``, ``latency_max``, ``latency_bins`` (a
      :mod:`~watchkeeper.metrics.sketch` histogram);
    * classification: ``n_labeled`` (events with an actual), ``confusion``
      (``(actual, predicted) -> count``), ``pred_counts`` (``predicted -> count``, all
      events), ``score_pos_bins``/``score_neg_bins`` (score histograms of actual
      positives/negatives, :mod:`~watchkeeper.metrics.scores`), ``logloss_n``,
      ``logloss_sum``;
    * regression: ``reg_n`` and the sums of :func:`~watchkeeper.metrics.regression_metrics`;
    * LLM: ``llm_n`` calls, ``input_tokens``, ``output_tokens``, ``cost_usd``; time to first
      token in ms: ``ttft_n``, ``ttft_sum``, ``ttft_bins``; ``cost_bins`` (a sketch of the
      cost of each call, USD);
    * evaluations of LLM calls, each a dict keyed by evaluator name (``groundedness``,
      ``pii``, ...): ``eval_n`` calls evaluated, ``eval_flagged`` of them flagged (the bad
      outcome), ``eval_score_n`` with a score, ``eval_score_sum`` the sum of those scores.

    Instances are immutable by convention: do not mutate the dicts passed in. (They make
    instances unhashable; compare them with ``==``.)
    """

    seconds: float = 0.0
    n: int = 0
    n_error: int = 0
    latency_n: int = 0
    latency_sum: float = 0.0
    latency_max: float | None = None
    latency_bins: Mapping[int, int] = field(default_factory=dict)
    n_labeled: int = 0
    confusion: Mapping[tuple[str, str], int] = field(default_factory=dict)
    pred_counts: Mapping[str, int] = field(default_factory=dict)
    score_pos_bins: Mapping[int, int] = field(default_factory=dict)
    score_neg_bins: Mapping[int, int] = field(default_factory=dict)
    logloss_n: int = 0
    logloss_sum: float = 0.0
    reg_n: int = 0
    abs_err_sum: float = 0.0
    sq_err_sum: float = 0.0
    ape_sum: float = 0.0
    y_sum: float = 0.0
    y_sq_sum: float = 0.0
    llm_n: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    ttft_n: int = 0
    ttft_sum: float = 0.0
    ttft_bins: Mapping[int, int] = field(default_factory=dict)
    cost_bins: Mapping[int, int] = field(default_factory=dict)
    eval_n: Mapping[str, int] = field(default_factory=dict)
    eval_flagged: Mapping[str, int] = field(default_factory=dict)
    eval_score_n: Mapping[str, int] = field(default_factory=dict)
    eval_score_sum: Mapping[str, float] = field(default_factory=dict)
    # Metric values the engine already finished from this window's merged bins (percentiles,
    # ROC AUC) so the bins need not travel; valid for this exact window only, so merging
    # drops them.
    finalized: Mapping[str, float | None] = field(default_factory=dict)


_MAX_FIELDS = frozenset({"latency_max"})


def _merge_field(name: str, a: Any, b: Any) -> Any:
    if name == "finalized":
        return {}
    if name in _MAX_FIELDS:
        if a is None:
            return b
        return a if b is None else max(a, b)
    if isinstance(a, Mapping):
        return add_counts(a, b)
    return a + b


def merge_aggregates(a: WindowAggregate, b: WindowAggregate) -> WindowAggregate:
    """Return the aggregate of the union of the events behind ``a`` and ``b``.

    Counts, sums and ``seconds`` add; ``latency_max`` is the larger (``None`` is "no value");
    dicts of counts add key by key.
    """
    merged = {
        f.name: _merge_field(f.name, getattr(a, f.name), getattr(b, f.name))
        for f in dataclasses.fields(WindowAggregate)
    }
    return WindowAggregate(**merged)


def merge_all(aggregates: Iterable[WindowAggregate]) -> WindowAggregate:
    """Return the merge of any number of aggregates (an empty one for none)."""
    return reduce(merge_aggregates, aggregates, WindowAggregate())
