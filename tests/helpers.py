"""Small helpers shared by tests (polling instead of sleeping)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(fn: Callable[[], T | None], timeout: float = 15.0, interval: float = 0.05) -> T:
    """Call ``fn`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


def ready(url: str) -> bool:
    """Whether the server at ``url`` answers ``/readyz`` with 200."""
    import httpx

    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def send_error_burst(url: str, key: str) -> None:
    """100 calls of model ``m``, half failed, in the two minutes before this one: an
    ``error_rate`` monitor on 1m windows fires on the scheduler's next run."""
    from datetime import datetime, timedelta, timezone

    import httpx

    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    events = [
        {
            "event_id": f"e{i}",
            "timestamp": (now - timedelta(seconds=110 - i)).isoformat(),
            "prediction": 1,
            "status": "error" if i % 2 else "ok",
        }
        for i in range(100)
    ]
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{url}/api/v1/models/m/predictions", json={"events": events}, headers=headers)
    assert r.status_code == 200, r.text
