"""The catalogue of metrics and :func:`compute`, which finalizes them from an aggregate.

Each metric is a name users see (API, YAML, docs), a :class:`MetricInfo`, and a pure
function of a merged :class:`~watchkeeper.metrics.aggregates.WindowAggregate`. A value is
``None`` when it is undefined for the window (no data, 0/0); count-like metrics (``count``,
``error_count``, ``labeled_count``, token counts) are ``0`` and ``cost_usd`` is ``0.0`` when
the window is empty. Counts are returned as ``int``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from .aggregates import WindowAggregate
from .classification import classification_metrics, log_loss, positive_rate
from .regression import regression_metrics
from .scores import roc_auc_from_bins
from .sketch import quantiles

__all__ = [
    "EVAL_METRICS",
    "METRICS",
    "MetricGroup",
    "MetricInfo",
    "UnknownMetricError",
    "compute",
]

MetricGroup = Literal["operational", "classification", "regression", "llm"]


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is: its name, group, unit and a one-line description."""

    name: str
    group: MetricGroup
    unit: str
    description: str


class UnknownMetricError(ValueError):
    """A metric name that is not in :data:`METRICS`."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown metric {name!r}; valid metrics: {', '.join(sorted(METRICS))}")


_Finalizer = Callable[[WindowAggregate, "str | None"], "float | None"]


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _quantile(bins: str, q: float) -> _Finalizer:
    def finalize(agg: WindowAggregate, _: str | None) -> float | None:
        return quantiles(getattr(agg, bins), [q])[0]

    return finalize


def _classification(key: str) -> _Finalizer:
    def finalize(agg: WindowAggregate, positive_label: str | None) -> float | None:
        return classification_metrics(agg.confusion, positive_label)[key]

    return finalize


def _regression(key: str) -> _Finalizer:
    def finalize(agg: WindowAggregate, _: str | None) -> float | None:
        sums = (agg.abs_err_sum, agg.sq_err_sum, agg.ape_sum, agg.y_sum, agg.y_sq_sum)
        return regression_metrics(agg.reg_n, *sums)[key]

    return finalize


def _eval_rate(*evaluators: str) -> _Finalizer:
    """Share of evaluated calls that the evaluators flagged (the bad outcome)."""

    def finalize(agg: WindowAggregate, _: str | None) -> float | None:
        flagged = sum(agg.eval_flagged.get(e, 0) for e in evaluators)
        return _ratio(flagged, sum(agg.eval_n.get(e, 0) for e in evaluators))

    return finalize


def _eval_mean(evaluator: str) -> _Finalizer:
    """Mean score of an evaluator over the calls it scored."""

    def finalize(agg: WindowAggregate, _: str | None) -> float | None:
        return _ratio(agg.eval_score_sum.get(evaluator, 0.0), agg.eval_score_n.get(evaluator, 0))

    return finalize


_JUDGES = ("judge_groundedness", "judge_relevance", "judge_correctness")
_OPS: MetricGroup = "operational"
_CLS: MetricGroup = "classification"
_REG: MetricGroup = "regression"
_LLM: MetricGroup = "llm"

# name -> (group, unit, description, finalizer)
_TABLE: dict[str, tuple[MetricGroup, str, str, _Finalizer]] = {
    "count": (_OPS, "events", "Events in the window", lambda a, _: a.n),
    "throughput": (
        _OPS,
        "events/s",
        "Events per second over the window",
        lambda a, _: a.n / a.seconds if a.seconds > 0 else None,
    ),
    "error_count": (_OPS, "events", "Events with status error", lambda a, _: a.n_error),
    "error_rate": (
        _OPS,
        "ratio",
        "Share of events with status error",
        lambda a, _: _ratio(a.n_error, a.n),
    ),
    "latency_mean": (_OPS, "ms", "Mean latency", lambda a, _: _ratio(a.latency_sum, a.latency_n)),
    "latency_p50": (_OPS, "ms", "Median latency (±1 %)", _quantile("latency_bins", 0.5)),
    "latency_p90": (_OPS, "ms", "90th percentile latency (±1 %)", _quantile("latency_bins", 0.9)),
    "latency_p95": (_OPS, "ms", "95th percentile latency (±1 %)", _quantile("latency_bins", 0.95)),
    "latency_p99": (_OPS, "ms", "99th percentile latency (±1 %)", _quantile("latency_bins", 0.99)),
    "latency_max": (_OPS, "ms", "Largest latency", lambda a, _: a.latency_max),
    "accuracy": (
        _CLS,
        "ratio",
        "Share of labelled predictions that are right",
        _classification("accuracy"),
    ),
    "precision": (
        _CLS,
        "ratio",
        "Precision (binary, or macro average)",
        _classification("precision"),
    ),
    "recall": (_CLS, "ratio", "Recall (binary, or macro average)", _classification("recall")),
    "f1": (_CLS, "ratio", "F1 score (binary, or macro average)", _classification("f1")),
    "roc_auc": (
        _CLS,
        "ratio",
        "Area under the ROC curve of the score (1000 score bins)",
        lambda a, _: roc_auc_from_bins(a.score_pos_bins, a.score_neg_bins),
    ),
    "log_loss": (
        _CLS,
        "nats",
        "Mean binary cross-entropy of the score",
        lambda a, _: log_loss(a.logloss_sum, a.logloss_n),
    ),
    "positive_rate": (
        _CLS,
        "ratio",
        "Share of predictions equal to the positive label",
        lambda a, pos: positive_rate(a.pred_counts, pos),
    ),
    "label_coverage": (
        _CLS,
        "ratio",
        "Share of events with an actual label",
        lambda a, _: _ratio(a.n_labeled, a.n),
    ),
    "labeled_count": (_CLS, "events", "Events with an actual label", lambda a, _: a.n_labeled),
    "mae": (_REG, "target units", "Mean absolute error", _regression("mae")),
    "rmse": (_REG, "target units", "Root mean squared error", _regression("rmse")),
    "mape": (_REG, "ratio", "Mean absolute percentage error (as a ratio)", _regression("mape")),
    "r2": (_REG, "ratio", "Coefficient of determination R²", _regression("r2")),
    "input_tokens": (_LLM, "tokens", "Prompt tokens", lambda a, _: a.input_tokens),
    "output_tokens": (_LLM, "tokens", "Completion tokens", lambda a, _: a.output_tokens),
    "total_tokens": (
        _LLM,
        "tokens",
        "Prompt plus completion tokens",
        lambda a, _: a.input_tokens + a.output_tokens,
    ),
    "cost_usd": (_LLM, "USD", "Cost of LLM calls", lambda a, _: a.cost_usd),
    "ttft_mean": (
        _LLM,
        "ms",
        "Mean time to first token",
        lambda a, _: _ratio(a.ttft_sum, a.ttft_n),
    ),
    "ttft_p50": (_LLM, "ms", "Median time to first token (±1 %)", _quantile("ttft_bins", 0.5)),
    "ttft_p95": (
        _LLM,
        "ms",
        "95th percentile time to first token (±1 %)",
        _quantile("ttft_bins", 0.95),
    ),
    "ttft_p99": (
        _LLM,
        "ms",
        "99th percentile time to first token (±1 %)",
        _quantile("ttft_bins", 0.99),
    ),
    "cost_per_call": (
        _LLM,
        "USD",
        "Mean cost of an LLM call",
        lambda a, _: _ratio(a.cost_usd, a.llm_n),
    ),
    "cost_p95": (
        _LLM,
        "USD",
        "95th percentile cost of a call with a cost (±1 %)",
        _quantile("cost_bins", 0.95),
    ),
    "evaluated_count": (
        _LLM,
        "calls",
        "Calls evaluated (the most any one evaluator judged)",
        lambda a, _: max(a.eval_n.values(), default=0),
    ),
    "hallucination_rate": (
        _LLM,
        "ratio",
        "Share of calls judged for groundedness with an unsupported claim",
        _eval_rate("groundedness"),
    ),
    "groundedness": (
        _LLM,
        "ratio",
        "Mean share of a response's sentences supported by its context",
        _eval_mean("groundedness"),
    ),
    "pii_rate": (
        _LLM,
        "ratio",
        "Share of evaluated calls with personal data in the prompt or response",
        _eval_rate("pii"),
    ),
    "refusal_rate": (
        _LLM,
        "ratio",
        "Share of evaluated calls whose response declines",
        _eval_rate("refusal"),
    ),
    "toxicity_rate": (
        _LLM,
        "ratio",
        "Share of evaluated calls whose response has a word of the toxicity list",
        _eval_rate("toxicity"),
    ),
    "exact_match": (
        _LLM,
        "ratio",
        "Share of labelled calls whose response matches the actual answer (SQuAD)",
        _eval_mean("exact_match"),
    ),
    "token_f1": (
        _LLM,
        "ratio",
        "Mean token F1 of the response against the actual answer (SQuAD)",
        _eval_mean("token_f1"),
    ),
    "semantic_similarity": (
        _LLM,
        "ratio",
        "Mean similarity of the response to the actual answer",
        _eval_mean("semantic_similarity"),
    ),
    "judge_groundedness": (
        _LLM,
        "ratio",
        "Mean groundedness score of the LLM judge",
        _eval_mean("judge_groundedness"),
    ),
    "judge_relevance": (
        _LLM,
        "ratio",
        "Mean relevance score of the LLM judge",
        _eval_mean("judge_relevance"),
    ),
    "judge_correctness": (
        _LLM,
        "ratio",
        "Mean correctness score of the LLM judge",
        _eval_mean("judge_correctness"),
    ),
    "judge_fail_rate": (
        _LLM,
        "ratio",
        "Share of the LLM judge's verdicts that failed (all rubrics)",
        _eval_rate(*_JUDGES),
    ),
    "human_score": (_LLM, "ratio", "Mean score people gave", _eval_mean("human")),
    "thumbs_down_rate": (
        _LLM,
        "ratio",
        "Share of people's verdicts that were negative",
        _eval_rate("human"),
    ),
}

METRICS: Mapping[str, MetricInfo] = MappingProxyType(
    {
        name: MetricInfo(name=name, group=group, unit=unit, description=description)
        for name, (group, unit, description, _) in _TABLE.items()
    }
)


# Metrics an engine may finish itself from merged bins (see WindowAggregate.finalized):
# name -> (bin kind, quantile) for percentiles.
QUANTILE_METRICS: Mapping[str, tuple[str, float]] = MappingProxyType(
    {
        f"{kind}_p{pct}": (kind, pct / 100)
        for kind, pcts in (("latency", (50, 90, 95, 99)), ("ttft", (50, 95, 99)), ("cost", (95,)))
        for pct in pcts
    }
)

# Metrics computed from the evaluation aggregates (``eval_*`` fields): the engines read
# those only when one of these is asked for.
EVAL_METRICS: frozenset[str] = frozenset(
    {
        "evaluated_count",
        "hallucination_rate",
        "groundedness",
        "pii_rate",
        "refusal_rate",
        "toxicity_rate",
        "exact_match",
        "token_f1",
        "semantic_similarity",
        *_JUDGES,
        "judge_fail_rate",
        "human_score",
        "thumbs_down_rate",
    }
)


def compute(
    names: Sequence[str], agg: WindowAggregate, positive_label: str | None = None
) -> dict[str, float | None]:
    """Return ``{name: value}`` for each requested metric of the merged aggregate ``agg``.

    ``positive_label`` picks the positive class for binary classification metrics and
    ``positive_rate`` (default: ``"1"`` when labels are ``"0"``/``"1"``, else macro averages).
    Raises :class:`UnknownMetricError` for a name not in :data:`METRICS`, before computing
    anything.
    """
    for name in names:
        if name not in _TABLE:
            raise UnknownMetricError(name)
    done = agg.finalized
    return {
        name: done[name] if name in done else _TABLE[name][3](agg, positive_label) for name in names
    }
