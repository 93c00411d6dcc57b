"""The window sizes users name (API, monitors, CLI): seconds, or None for one window over the
whole range. A module of its own so that pure code (monitor definitions) can name them without
importing the store interface."""

from __future__ import annotations

from datetime import datetime, timezone

WINDOWS: dict[str, int | None] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "1d": 86400,
    "all": None,
}


def floor_to(moment: datetime, seconds: int) -> datetime:
    """The start (UTC) of the ``seconds``-long window holding ``moment``; windows are
    aligned to multiples of their length since the epoch."""
    return datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, tz=timezone.utc)
