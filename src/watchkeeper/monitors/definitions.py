"""Monitor definitions: what to watch and when to alert, validated with line-precise errors.

A monitor watches one metric of one model — optionally of one ``version`` and one
``segment`` (``region:eu``; ``region:*`` for one alert per value) — over fixed windows
(``1m 5m 15m 1h 1d``), with a condition (``type``):

``static``
    ``op`` (``above`` / ``below``) a ``threshold``, one ``severity`` (default critical).
``multi_level``
    A ``warning`` and a ``critical`` threshold, ordered with ``op`` (for ``above``,
    warning ≤ critical; for ``below``, warning ≥ critical).
``dynamic``
    A band learned from the metric's own history (median ± ``sensitivity`` · MAD, at least
    ``min_band`` wide; see :mod:`watchkeeper.monitors.evaluate`), one- or two-sided
    (``direction``). Only earlier windows of the same ``seasonality`` bucket (hour of the day
    or of the week) within ``lookback`` count, and it arms once ``min_history`` of them
    exist; a definition whose lookback can never hold that many is rejected.

and, for every kind, a policy: fire after ``fire_after`` of the last ``of_last`` windows
breach, resolve after ``resolve_after`` clean windows; a window with fewer than
``min_samples`` events (rows, for data metrics) counts as no data, and ``no_data`` says
what no data does (``alert``, ``ignore``: count as clean, ``keep``: keep the state);
``renotify`` repeats a firing alert's notification.

Metric names: the registry's (:data:`watchkeeper.metrics.METRICS`: operational, quality,
LLM); ``drift:<feature>`` (the drift statistic of one feature, its configured method) and
``drift_score`` (the share of features drifted); ``<quality>:<feature>`` for each of
:data:`watchkeeper.drift.quality.QUALITY_METRICS` (``missing_rate:amount``); and the
model-wide ``duplicate_rate`` and ``rejected_batches`` (which take no version or segment).

Errors collect every problem of a file, each with its YAML line and field path:
``monitors.yaml:12: monitors[2].condition.threshold: Input should be a valid number``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from watchkeeper.aggregate.sizes import WINDOWS
from watchkeeper.drift.quality import QUALITY_METRICS
from watchkeeper.metrics import METRICS

__all__ = [
    "CONDITIONS",
    "CONDITION_TYPES",
    "DATASET_METRICS",
    "FEATURE_METRICS",
    "MONITOR_WINDOWS",
    "Condition",
    "DynamicCondition",
    "MetricRef",
    "Monitor",
    "MonitorFile",
    "MultiLevelCondition",
    "StaticCondition",
    "format_duration",
    "parse_duration",
    "parse_metric",
]

Op = Literal["above", "below"]
Severity = Literal["warning", "critical"]
Seasonality = Literal["none", "hour_of_day", "hour_of_week"]
Direction = Literal["above", "below", "both"]
NoData = Literal["alert", "ignore", "keep"]

MONITOR_WINDOWS: dict[str, int] = {k: s for k, s in WINDOWS.items() if s is not None}
CONDITION_TYPES = ("static", "multi_level", "dynamic")
FEATURE_METRICS: tuple[str, ...] = ("drift", *QUALITY_METRICS)  # written NAME:<feature>
DATASET_METRICS = ("duplicate_rate", "rejected_batches")  # per model: no version, no segment
MODEL_METRICS: tuple[str, ...] = (*METRICS, "drift_score", *DATASET_METRICS)
SEASON_SECONDS: dict[str, int | None] = {
    "none": None,
    "hour_of_day": 86_400,
    "hour_of_week": 7 * 86_400,
}
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"d": 86_400, "h": 3600, "m": 60, "s": 1}


def _error(kind: str, reason: str) -> PydanticCustomError:
    """A validation error whose message is exactly ``reason`` (no "Value error, " prefix)."""
    return PydanticCustomError(kind, "{reason}", {"reason": reason})


# --------------------------------------------------------------------------- durations


def parse_duration(value: object) -> timedelta:
    """``30s``, ``5m``, ``1h`` or ``7d`` (a positive whole number and one unit) as a timedelta."""
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError(f"a duration must be positive, not {value}")
        return value
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"invalid duration {value!r}: write a whole number and a unit"
            " s, m, h or d (30s, 5m, 1h, 7d)"
        )
    seconds = int(match[1]) * _UNITS[match[2]]
    if seconds == 0:
        raise ValueError(f"a duration must be positive, not {value!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration`, in the largest unit that divides evenly."""
    seconds = int(value.total_seconds())
    for unit, size in _UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")


def _duration(value: object) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _error("duration", str(exc)) from None


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class MetricRef:
    """A parsed metric name: ``family`` says which part of the server computes it.

    ``model``: :data:`~watchkeeper.metrics.METRICS`; ``drift``: ``drift:<feature>`` or
    ``drift_score`` (``feature`` None); ``quality``: ``<quality>:<feature>``; ``dataset``:
    ``duplicate_rate``, ``rejected_batches``.
    """

    family: Literal["model", "drift", "quality", "dataset"]
    name: str
    feature: str | None = None


_FAMILIES = (
    "known: the metrics of docs/metrics.md (latency_p95, error_rate, accuracy, mae, ...), "
    + ", ".join(("drift_score", *DATASET_METRICS))
    + ", and per feature "
    + ", ".join(f"{f}:<feature>" for f in FEATURE_METRICS)
)


def parse_metric(name: str) -> MetricRef:
    """Parse a monitor's metric name; :class:`ValueError` says what is wrong and suggests."""
    prefix, sep, feature = name.partition(":")
    if sep:
        if prefix in FEATURE_METRICS:
            if not feature.strip():
                raise ValueError(f"metric {name!r} needs a feature: {prefix}:<feature>")
            family: Literal["drift", "quality"] = "drift" if prefix == "drift" else "quality"
            return MetricRef(family, prefix, feature)
        if prefix in MODEL_METRICS:
            raise ValueError(f"metric {prefix!r} takes no feature (use segment: to watch a slice)")
        close = difflib.get_close_matches(prefix, FEATURE_METRICS, n=3)
        hint = f"did you mean {', '.join(f'{c}:{feature}' for c in close)}? " if close else ""
        raise ValueError(f"unknown metric {name!r}; {hint}{_FAMILIES}")
    if name in METRICS:
        return MetricRef("model", name)
    if name == "drift_score":
        return MetricRef("drift", name)
    if name in DATASET_METRICS:
        return MetricRef("dataset", name)
    if name in FEATURE_METRICS:
        raise ValueError(f"metric {name!r} is per feature: write {name}:<feature>")
    candidates = [*MODEL_METRICS, *(f"{f}:<feature>" for f in FEATURE_METRICS)]
    close = difflib.get_close_matches(name, candidates, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"unknown metric {name!r}; {hint}{_FAMILIES}")


# --------------------------------------------------------------------------- models


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=()
    )


class StaticCondition(_Strict):
    """Breach when the value is above (below) ``threshold``; equal is no breach."""

    type: Literal["static"]
    op: Op
    threshold: float
    severity: Severity = "critical"


class MultiLevelCondition(_Strict):
    """A ``warning`` and a ``critical`` threshold on the same side (``op``)."""

    type: Literal["multi_level"]
    op: Op
    warning: float
    critical: float

    @field_validator("critical")
    @classmethod
    def _ordered(cls, critical: float, info: ValidationInfo) -> float:
        op, warning = info.data.get("op"), info.data.get("warning")
        if warning is None or op is None:
            return critical  # already reported
        if op == "above" and critical < warning:
            raise _error(
                "threshold_order",
                f"critical ({critical:g}) must not be below warning ({warning:g}) for op: above",
            )
        if op == "below" and critical > warning:
            raise _error(
                "threshold_order",
                f"critical ({critical:g}) must not be above warning ({warning:g}) for op: below",
            )
        return critical


class DynamicCondition(_Strict):
    """A band around the median of the metric's own seasonal history."""

    type: Literal["dynamic"]
    sensitivity: float = Field(3.0, gt=0)
    seasonality: Seasonality = "hour_of_week"
    min_history: int = Field(8, ge=1)
    lookback: Duration = timedelta(days=28)
    direction: Direction = "both"
    min_band: float = Field(0.0, ge=0)
    severity: Severity = "warning"

    def history_capacity(self, window_seconds: int) -> int:
        """The most earlier windows of the same bucket that ``lookback`` can hold."""
        lookback = int(self.lookback.total_seconds())
        period = SEASON_SECONDS[self.seasonality]
        if period is None:
            return lookback // window_seconds
        return -(-lookback // period) * (3600 // window_seconds)


Condition = Annotated[
    StaticCondition | MultiLevelCondition | DynamicCondition, Field(discriminator="type")
]
CONDITIONS: dict[str, type[_Strict]] = {
    "static": StaticCondition,
    "multi_level": MultiLevelCondition,
    "dynamic": DynamicCondition,
}


class Monitor(_Strict):
    """One monitor: a metric of a model, a window, a condition and an alerting policy."""

    name: str
    model: str = Field(min_length=1)
    metric: str
    version: str | None = None
    segment: str | None = None
    window: str
    condition: Condition
    fire_after: int = Field(1, ge=1)
    of_last: int = Field(1, ge=1)
    resolve_after: int = Field(1, ge=1)
    min_samples: int = Field(0, ge=0)
    no_data: NoData = "keep"
    renotify: Duration | None = None
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _of_last_defaults_to_fire_after(cls, data: Any) -> Any:
        if isinstance(data, dict) and "of_last" not in data:
            fire_after = data.get("fire_after")
            if isinstance(fire_after, int) and not isinstance(fire_after, bool) and fire_after >= 1:
                data = {**data, "of_last": fire_after}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise _error(
                "monitor_name",
                f"invalid monitor name {name!r}: use letters, digits, '_', '.' and '-' only",
            )
        return name

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric: str) -> str:
        try:
            parse_metric(metric)
        except ValueError as exc:
            raise _error("unknown_metric", str(exc)) from None
        return metric

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_text(cls, version: Any) -> Any:
        if isinstance(version, int | float) and not isinstance(version, bool):
            raise _error(
                "version_type",
                'write the version in quotes (version: "1.10"): YAML reads an unquoted'
                " 1.10 as the number 1.1",
            )
        return version

    @field_validator("version", "segment")
    @classmethod
    def _scoped_metric(cls, value: str | None, info: ValidationInfo) -> str | None:
        metric = info.data.get("metric")
        if value is not None and metric in DATASET_METRICS:
            raise _error(
                "unscoped_metric",
                f"{metric} is counted per model: it takes no {info.field_name}",
            )
        return value

    @field_validator("segment")
    @classmethod
    def _segment(cls, segment: str | None) -> str | None:
        if segment is None:
            return None
        name, sep, value = segment.partition(":")
        if not (sep and name.strip() and value.strip()):
            raise _error(
                "segment",
                f"invalid segment {segment!r}: write name:value (region:eu),"
                " or name:* for one alert per value",
            )
        return segment

    @field_validator("window")
    @classmethod
    def _window(cls, window: str) -> str:
        if window not in MONITOR_WINDOWS:
            raise _error(
                "window", f"invalid window {window!r}: one of {', '.join(MONITOR_WINDOWS)}"
            )
        return window

    @field_validator("condition")
    @classmethod
    def _armable(cls, condition: Any, info: ValidationInfo) -> Any:
        window = info.data.get("window")
        if not isinstance(condition, DynamicCondition) or window not in MONITOR_WINDOWS:
            return condition
        seconds = MONITOR_WINDOWS[window]
        period = SEASON_SECONDS[condition.seasonality]
        if period is not None and seconds > 3600:
            raise _error(
                "seasonality",
                f"seasonality {condition.seasonality} needs a window of 1h or less, not"
                f" {window} (or use seasonality: none)",
            )
        if period is not None and condition.lookback.total_seconds() < period:
            raise _error(
                "lookback",
                f"lookback {format_duration(condition.lookback)} is shorter than one"
                f" {condition.seasonality.removeprefix('hour_of_')}",
            )
        capacity = condition.history_capacity(seconds)
        if capacity < condition.min_history:
            raise _error(
                "min_history",
                f"never arms: a lookback of {format_duration(condition.lookback)} holds at most"
                f" {capacity} earlier {window} windows of the same {condition.seasonality}"
                f" bucket, fewer than min_history ({condition.min_history}); lengthen"
                " lookback or lower min_history",
            )
        return condition

    @field_validator("of_last")
    @classmethod
    def _of_last(cls, of_last: int, info: ValidationInfo) -> int:
        fire_after = info.data.get("fire_after")
        if fire_after is not None and of_last < fire_after:
            raise _error(
                "of_last",
                f"of_last ({of_last}) must be at least fire_after ({fire_after})",
            )
        return of_last

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_text(cls, labels: Any) -> Any:
        if not isinstance(labels, dict):
            return labels
        return {
            k: (str(v).lower() if isinstance(v, bool) else str(v))
            if isinstance(v, int | float)
            else v
            for k, v in labels.items()
        }

    @property
    def metric_ref(self) -> MetricRef:
        """The parsed :attr:`metric`."""
        return parse_metric(self.metric)

    @property
    def window_seconds(self) -> int:
        """The window's length in seconds."""
        return MONITOR_WINDOWS[self.window]

    @property
    def segment_name(self) -> str | None:
        """The segment's name (``region`` of ``region:eu`` or ``region:*``)."""
        return None if self.segment is None else self.segment.partition(":")[0]

    @property
    def segment_value(self) -> str | None:
        """The segment's value; None for ``name:*`` (each value) or no segment."""
        if self.segment is None or self.each_segment_value:
            return None
        return self.segment.partition(":")[2]

    @property
    def each_segment_value(self) -> bool:
        """True for ``segment: name:*``: one alert series per value of the segment."""
        return self.segment is not None and self.segment.partition(":")[2] == "*"


class MonitorFile(BaseModel):
    """The ``monitors:`` section of a settings file; other sections are ignored here."""

    model_config = ConfigDict(extra="ignore")

    monitors: list[Monitor] = Field(default_factory=list)

    @field_validator("monitors", mode="before")
    @classmethod
    def _empty(cls, monitors: Any) -> Any:
        return [] if monitors is None else monitors
