"""Pure metric finalizers: merged window aggregates in, metric values out.

Nothing here touches a database or the network, and nothing uses numpy: the store computes
mergeable aggregates in SQL (the SQL expressions for bin indices live beside the Python
versions, :func:`bin_index_sql` and :func:`score_bin_sql`), merges windows by adding them,
and these functions turn the merged aggregates into numbers.
"""

from .aggregates import WindowAggregate, add_counts, merge_aggregates, merge_all
from .classification import (
    LOG_LOSS_EPS,
    classification_metrics,
    log_loss,
    positive_rate,
    resolve_positive_label,
)
from .registry import (
    EVAL_METRICS,
    METRICS,
    QUANTILE_METRICS,
    MetricGroup,
    MetricInfo,
    UnknownMetricError,
    compute,
)
from .regression import APE_EPS, R2_CONSTANT_TOLERANCE, r2, regression_metrics
from .scores import (
    SCORE_BINS,
    roc_auc_from_bins,
    roc_auc_tie_bound,
    score_bin,
    score_bin_sql,
)
from .sketch import (
    GAMMA,
    LN_GAMMA,
    MIN_POSITIVE,
    RELATIVE_ACCURACY,
    ZERO_BIN,
    bin_index,
    bin_index_sql,
    bin_value,
    bins_from_values,
    quantiles,
)
from .sketch import merge as merge_bins

__all__ = [
    "APE_EPS",
    "EVAL_METRICS",
    "GAMMA",
    "LN_GAMMA",
    "LOG_LOSS_EPS",
    "METRICS",
    "MIN_POSITIVE",
    "QUANTILE_METRICS",
    "R2_CONSTANT_TOLERANCE",
    "RELATIVE_ACCURACY",
    "SCORE_BINS",
    "ZERO_BIN",
    "MetricGroup",
    "MetricInfo",
    "UnknownMetricError",
    "WindowAggregate",
    "add_counts",
    "bin_index",
    "bin_index_sql",
    "bin_value",
    "bins_from_values",
    "classification_metrics",
    "compute",
    "log_loss",
    "merge_aggregates",
    "merge_all",
    "merge_bins",
    "positive_rate",
    "quantiles",
    "r2",
    "regression_metrics",
    "resolve_positive_label",
    "roc_auc_from_bins",
    "roc_auc_tie_bound",
    "score_bin",
    "score_bin_sql",
]
