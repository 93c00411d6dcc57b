"""The alert state machine of one monitor series (one model, metric and segment value).

:func:`step` is pure: it takes the series' :class:`State`, the verdict on one closed window
(an :class:`Observation`), the monitor's :class:`Policy` and the current time, and returns
the next state with the :class:`Transition` records to store and notify. The scheduler keeps
the state (``to_dict`` / ``from_dict``, JSON-able) and feeds windows in order; a window at or
before the last one seen is ignored, so re-delivering a window after a crash is harmless.

Rules, per window:

* **No data** — no value, zero samples, or fewer than ``min_samples`` — follows
  ``policy.no_data``: ``keep`` leaves the state exactly as it is (nothing counted, nothing
  emitted); ``ignore`` counts the window as clean, so it can resolve an alert; ``alert``
  counts it as a breach of severity ``warning`` (or the current, higher one) and emits one
  ``no_data`` transition per episode.
* **Firing** needs ``fire_after`` (m) breaching windows among the last ``of_last`` (n)
  windows: ``ok`` → ``pending`` on the first breach when m > 1, → ``firing`` when the m-th
  arrives (straight from ``ok`` when m = 1). ``pending`` falls back to ``ok`` quietly —
  no transition — once its breaches have left the last n windows; callers showing pending
  alerts close them when the status is back to ``ok``.
* **While firing**, a breach of another severity emits ``escalated`` or ``deescalated``;
  ``resolve_after`` (k) consecutive clean windows emit ``resolved`` and return to ``ok``.
  The breaches of a resolved episode are forgotten, so the next episode needs m fresh
  breaches (no flapping on the tail of the last one).
* **Re-notify**: while firing, when ``now - last_notified_at >= renotify``, emit
  ``renotify``. Firing and escalating also count as notifying.

An *episode* runs from its first breaching window (``since``) to its resolution or quiet
reset; ``State.episode`` counts the episodes that fired, so ``(series, episode)`` names an
alert.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, cast

Status = Literal["ok", "pending", "firing"]
NoDataPolicy = Literal["alert", "ignore", "keep"]
# "cleared" is never emitted by step(): the alert engine records it when a pending series
# falls back to ok without firing (its breaches left the last n windows).
Kind = Literal[
    "pending", "firing", "escalated", "deescalated", "resolved", "renotify", "no_data", "cleared"
]

STATUSES: tuple[Status, ...] = ("ok", "pending", "firing")
NO_DATA_POLICIES: tuple[NoDataPolicy, ...] = ("alert", "ignore", "keep")
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}
STATE_VERSION = 1


@dataclass(frozen=True)
class Policy:
    """Hysteresis and housekeeping of one monitor; the defaults fire and resolve at once."""

    fire_after: int = 1
    of_last: int = 1
    resolve_after: int = 1
    min_samples: int = 0
    no_data: NoDataPolicy = "keep"
    renotify: timedelta | None = None

    def __post_init__(self) -> None:
        if self.fire_after < 1:
            raise ValueError(f"fire_after must be at least 1, not {self.fire_after}")
        if self.of_last < self.fire_after:
            raise ValueError(
                f"of_last ({self.of_last}) must be at least fire_after ({self.fire_after}): "
                f"fire after m of the last n windows needs n >= m"
            )
        if self.resolve_after < 1:
            raise ValueError(f"resolve_after must be at least 1, not {self.resolve_after}")
        if self.min_samples < 0:
            raise ValueError(f"min_samples must not be negative, not {self.min_samples}")
        if self.no_data not in NO_DATA_POLICIES:
            raise ValueError(
                f"no_data must be one of {', '.join(NO_DATA_POLICIES)}, not {self.no_data!r}"
            )
        if self.renotify is not None and self.renotify <= timedelta(0):
            raise ValueError(f"renotify must be a positive interval, not {self.renotify}")


@dataclass(frozen=True)
class Observation:
    """The verdict on one closed window: ``severity`` None means not breaching."""

    window_start: datetime
    value: float | None
    severity: str | None
    samples: int

    def __post_init__(self) -> None:
        if self.severity is not None and self.severity not in SEVERITY_RANK:
            raise ValueError(
                f"severity must be None, 'warning' or 'critical', not {self.severity!r}"
            )
        if self.samples < 0:
            raise ValueError(f"samples must not be negative, not {self.samples}")


@dataclass(frozen=True)
class Transition:
    """One recorded change; ``at`` is the start of the window that caused it."""

    kind: Kind
    at: datetime
    severity: str | None
    cause: str


@dataclass
class State:
    """Where one series stands. ``recent`` holds the breach flags of the last ``of_last``
    counted windows, oldest first; ``since`` is the first breaching window of the current
    episode; ``no_data_noted`` says whether this episode already emitted ``no_data``."""

    status: Status = "ok"
    recent: tuple[bool, ...] = ()
    clean_streak: int = 0
    severity: str | None = None
    since: datetime | None = None
    last_notified_at: datetime | None = None
    episode: int = 0
    no_data_noted: bool = False
    last_window: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "status": self.status,
            "recent": list(self.recent),
            "clean_streak": self.clean_streak,
            "severity": self.severity,
            "since": _iso(self.since),
            "last_notified_at": _iso(self.last_notified_at),
            "episode": self.episode,
            "no_data_noted": self.no_data_noted,
            "last_window": _iso(self.last_window),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> State:
        version = data.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise ValueError(f"unknown alert state version {version!r}")
        status = data.get("status", "ok")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        severity = data.get("severity")
        if severity is not None and severity not in SEVERITY_RANK:
            raise ValueError(f"severity must be None, 'warning' or 'critical', not {severity!r}")
        return cls(
            status=cast(Status, status),
            recent=tuple(bool(flag) for flag in data.get("recent", ())),
            clean_streak=int(data.get("clean_streak", 0)),
            severity=severity,
            since=_parse(data.get("since")),
            last_notified_at=_parse(data.get("last_notified_at")),
            episode=int(data.get("episode", 0)),
            no_data_noted=bool(data.get("no_data_noted", False)),
            last_window=_parse(data.get("last_window")),
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse(text: Any) -> datetime | None:
    return None if text is None else datetime.fromisoformat(str(text))


def is_no_data(obs: Observation, policy: Policy) -> bool:
    """Whether ``obs`` counts as a window without data under ``policy``."""
    return (
        obs.value is None
        or math.isnan(obs.value)
        or obs.samples == 0
        or obs.samples < policy.min_samples
    )


def step(
    state: State, obs: Observation, policy: Policy, now: datetime
) -> tuple[State, list[Transition]]:
    """The state after window ``obs`` and the transitions it caused (``state`` untouched)."""
    if state.last_window is not None and obs.window_start <= state.last_window:
        return state, []  # a window seen before (or out of order): already counted
    out: list[Transition] = []
    at = obs.window_start

    no_data = is_no_data(obs, policy)
    if no_data:
        if policy.no_data == "keep":
            return state, []
        if policy.no_data == "ignore":
            severity: str | None = None
        else:
            severity = _higher(state.severity, "warning")
    else:
        severity = obs.severity
    breached = severity is not None
    what = _what(obs, policy) if no_data else f"value {_num(obs.value)}"

    recent = (*state.recent, breached)[-policy.of_last :]
    hits = sum(recent)
    new = replace(
        state,
        recent=recent,
        clean_streak=0 if breached else state.clean_streak + 1,
        last_window=at,
    )
    if no_data and breached and not state.no_data_noted:
        out.append(Transition("no_data", at, severity, what))
        new.no_data_noted = True
    counted = f"{hits} of the last {len(recent)} windows breached ({what})"

    if state.status == "ok" and breached:
        new.since, new.severity = at, severity
        if hits >= policy.fire_after:
            _fire(new, out, at, severity, counted, now)
        else:
            new.status = "pending"
            out.append(Transition("pending", at, severity, counted))
    elif state.status == "pending":
        if hits >= policy.fire_after:  # a breach always here, unless the policy changed
            _fire(new, out, at, severity or state.severity, counted, now)
        elif hits == 0:
            new = _quiet(new)
        elif breached:
            new.severity = severity
    elif state.status == "firing":
        if breached and severity != state.severity:
            assert severity is not None
            rose = SEVERITY_RANK[severity] > SEVERITY_RANK.get(state.severity or "", 0)
            kind: Kind = "escalated" if rose else "deescalated"
            verb = "rose" if rose else "fell"
            cause = f"severity {verb} from {state.severity} to {severity} ({what})"
            out.append(Transition(kind, at, severity, cause))
            new.severity = severity
            if rose:
                new.last_notified_at = now
        elif not breached and new.clean_streak >= policy.resolve_after:
            k = new.clean_streak
            cause = f"{k} clean window" if k == 1 else f"{k} clean windows"
            out.append(Transition("resolved", at, state.severity, cause))
            return _quiet(new, resolved=True), out
        last = new.last_notified_at
        if policy.renotify is not None and (last is None or now - last >= policy.renotify):
            since = new.since or at
            cause = f"still firing since {since.isoformat()} ({_span(now - since)})"
            out.append(Transition("renotify", at, new.severity, cause))
            new.last_notified_at = now
    return new, out


def _fire(
    new: State, out: list[Transition], at: datetime, severity: str | None, cause: str, now: datetime
) -> None:
    new.status = "firing"
    new.severity = severity
    new.episode += 1
    new.last_notified_at = now
    out.append(Transition("firing", at, severity, cause))


def _quiet(state: State, *, resolved: bool = False) -> State:
    """Back to ``ok``: the episode's bookkeeping cleared (its breaches too, once resolved)."""
    return replace(
        state,
        status="ok",
        recent=() if resolved else state.recent,
        severity=None,
        since=None,
        no_data_noted=False,
    )


def _higher(current: str | None, floor: str) -> str:
    if current is not None and SEVERITY_RANK[current] > SEVERITY_RANK[floor]:
        return current
    return floor


def _what(obs: Observation, policy: Policy) -> str:
    if obs.value is None or math.isnan(obs.value) or obs.samples == 0:
        return "no data for the window"
    return f"only {obs.samples} samples in the window, fewer than {policy.min_samples}"


def _num(value: float | None) -> str:
    if value is None:
        return "none"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    return f"{value:.6g}"


def _span(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if mins or not parts:
        parts.append(f"{mins} min")
    return " ".join(parts)
