"""Monitor conditions: does one window's value breach? Pure functions, no store, no clock.

The scheduler calls these once per closed window with the window's value (and, for a dynamic
condition, the same series' earlier window values); :mod:`watchkeeper.monitors.lifecycle`
turns the answers into alert state.

Conditions (the names users see):

``static``
    ``value > threshold`` (``op: above``) or ``value < threshold`` (``op: below``); equal is
    not a breach.
``multi_level``
    Two static thresholds, ``critical`` checked first. For ``above`` the warning threshold
    must not exceed the critical one, for ``below`` not be under it.
``dynamic``
    A band learned from the series' own history, in four steps:

    1. *Seasonality*: only history from the same bucket as the window counts — the same
       hour of the day (0-23) or of the week (Monday 00:00 is 0, Sunday 23:00 is 167), in
       UTC — so the Monday 9:00 peak is compared with earlier Monday 9:00s, not with
       Sunday night. ``none`` uses every point.
    2. *Lookback*: points in ``[at - lookback, at)``, 28 days by default (four of each hour
       of the week); missing and non-finite values are skipped.
    3. *Centre and spread*: the median and the median absolute deviation (MAD). The history
       holds the very incidents and spikes that alerts are for; one spike of 100σ moves a
       mean by 100σ/n and a standard deviation by about 100σ/√n, so a few of them blind a
       mean ± 3·std band, while the median and MAD tolerate up to half the points being
       arbitrarily wrong (50 % breakdown point). The MAD is multiplied by 1.4826
       (= 1/Φ⁻¹(3/4)), which makes it estimate σ for normally distributed data, so
       ``sensitivity`` reads as "how many standard deviations".
    4. *Band*: ``median ± sensitivity · max(1.4826·MAD, min_band, 1e-9·|median|)``. The
       floors keep a perfectly flat history (MAD 0: a constant error rate of 0) from
       flagging the tiniest change; set ``min_band`` to the smallest change worth an alert.
       ``direction`` makes it one-sided (the other bound is ±∞).

    With fewer than ``min_history`` points in the bucket the condition is not *armed*: it
    reports how much history it still needs and never breaches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

Op = Literal["above", "below"]
Level = Literal["critical", "warning"]
Seasonality = Literal["none", "hour_of_day", "hour_of_week"]
Direction = Literal["above", "below", "both"]

OPS: tuple[Op, ...] = ("above", "below")
SEASONALITIES: tuple[Seasonality, ...] = ("none", "hour_of_day", "hour_of_week")
DIRECTIONS: tuple[Direction, ...] = ("above", "below", "both")

MAD_TO_SIGMA = 1.4826  # 1 / Φ⁻¹(0.75): the MAD of N(μ, σ²) is σ / 1.4826
RELATIVE_FLOOR = 1e-9  # the band is never narrower than this share of |median|

_BUCKET_WORDS: dict[Seasonality, str] = {
    "none": "",
    "hour_of_day": " in this hour of the day",
    "hour_of_week": " in this hour of the week",
}


def _present(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _check_op(op: str) -> None:
    if op not in OPS:
        raise ValueError(f"op must be 'above' or 'below', not {op!r}")


def static(value: float | None, op: Op, threshold: float) -> bool | None:
    """Whether ``value`` breaches ``threshold`` (strictly); None when there is no value."""
    _check_op(op)
    if not _present(value):
        return None
    assert value is not None
    return value > threshold if op == "above" else value < threshold


def multi_level(value: float | None, op: Op, warning: float, critical: float) -> Level | None:
    """``"critical"``, ``"warning"`` or None (no breach, or no value)."""
    _check_op(op)
    if op == "above" and warning > critical:
        raise ValueError(
            f"for op 'above' the warning threshold ({warning}) must not exceed "
            f"the critical one ({critical})"
        )
    if op == "below" and warning < critical:
        raise ValueError(
            f"for op 'below' the warning threshold ({warning}) must not be under "
            f"the critical one ({critical})"
        )
    if static(value, op, critical):
        return "critical"
    if static(value, op, warning):
        return "warning"
    return None


@dataclass(frozen=True)
class Band:
    """The learned band for one window. ``mad`` is already scaled by 1.4826 (a σ estimate).

    When not ``armed``, ``lower`` and ``upper`` (and ``median``, ``mad``) are None and
    ``reason`` says how much more history is needed; ``n`` is the number of history points
    used (or found, when not armed)."""

    armed: bool
    median: float | None
    mad: float | None
    lower: float | None
    upper: float | None
    n: int
    reason: str | None


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is timezone.utc:
        return moment
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def bucket(moment: datetime, seasonality: Seasonality) -> int:
    """The seasonal bucket of ``moment``: its UTC hour of the day (0-23), of the week
    (0-167, Monday 00:00 is 0), or 0 for ``none``."""
    if seasonality == "none":
        return 0
    m = utc(moment)
    if seasonality == "hour_of_day":
        return m.hour
    if seasonality == "hour_of_week":
        return m.weekday() * 24 + m.hour
    raise ValueError(f"seasonality must be one of {', '.join(SEASONALITIES)}, not {seasonality!r}")


def _median(ordered: Sequence[float]) -> float:
    """The median of sorted values, as ``numpy.median`` computes it (the mean of the two
    middle values for an even count). Pure Python: a band's history is tens of values, where
    numpy's per-call overhead would dominate (a chart judges hundreds of windows)."""
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def dynamic_baseline(
    history: Sequence[tuple[datetime, float | None]],
    at: datetime,
    *,
    seasonality: Seasonality,
    sensitivity: float = 3.0,
    min_history: int = 8,
    lookback: timedelta = timedelta(days=28),
    direction: Direction = "both",
    min_band: float = 0.0,
) -> Band:
    """The band the window starting at ``at`` is judged against (see the module docstring).

    ``history`` holds ``(window_start, value)`` pairs of the same series, in any order;
    points at or after ``at`` are ignored, so passing the window itself is harmless."""
    if seasonality not in SEASONALITIES:
        raise ValueError(
            f"seasonality must be one of {', '.join(SEASONALITIES)}, not {seasonality!r}"
        )
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if not (math.isfinite(sensitivity) and sensitivity > 0):
        raise ValueError(f"sensitivity must be a positive number, not {sensitivity}")
    if min_history < 1:
        raise ValueError(f"min_history must be at least 1, not {min_history}")
    if lookback <= timedelta(0):
        raise ValueError(f"lookback must be positive, not {lookback}")
    if not (math.isfinite(min_band) and min_band >= 0):
        raise ValueError(f"min_band must be a non-negative number, not {min_band}")

    end = utc(at)
    start = end - lookback
    target = bucket(end, seasonality)
    picked: list[float] = []
    for moment, value in history:
        if value is None or not math.isfinite(value):
            continue
        m = utc(moment)
        if start <= m < end and bucket(m, seasonality) == target:
            picked.append(float(value))
    n = len(picked)
    if n < min_history:
        missing = min_history - n
        noun = "window" if missing == 1 else "windows"
        reason = f"needs {missing} more {noun} of history{_BUCKET_WORDS[seasonality]}"
        return Band(False, None, None, None, None, n, reason)

    median = _median(sorted(picked))
    mad = _median(sorted(abs(v - median) for v in picked)) * MAD_TO_SIGMA
    half = sensitivity * max(mad, min_band, RELATIVE_FLOOR * abs(median))
    lower = median - half if direction != "above" else -math.inf
    upper = median + half if direction != "below" else math.inf
    return Band(True, median, mad, lower, upper, n, None)


def breaches(value: float | None, band: Band) -> bool | None:
    """Whether ``value`` lies strictly outside ``band``; None when there is no value or the
    band is not armed."""
    if not _present(value) or not band.armed:
        return None
    assert value is not None and band.lower is not None and band.upper is not None
    return value < band.lower or value > band.upper
