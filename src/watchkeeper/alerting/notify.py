"""Notifications: channels, routes, and the durable outbox's sender.

A ``notifications:`` section of the settings file names **channels** and **routes**::

    notifications:
      channels:
        - name: ops
          type: webhook
          url: https://hooks.example.com/watchkeeper
          secret_env: WK_OPS_SECRET        # HMAC-SHA256 signature, secret from the environment
      routes:
        - channels: [ops]
          severities: [critical]           # optional filters: all must match
          monitors: [fraud-error-rate]
          labels: {team: payments}

Each alert transition that people should hear about (firing, escalated, de-escalated,
resolved, re-notify, no data) is written to the **outbox** in the same transaction as the
transition itself, once per matching channel. A sender thread delivers due rows, retries with
exponential back-off (1 s, 2 s, 4 s ... capped at 5 minutes, 20 attempts), and marks them
delivered — so a notification survives a crash and a restart, and is sent once per
transition. Receivers can de-duplicate on ``X-Watchkeeper-Delivery`` (the outbox id, the
same on every retry) and verify ``X-Watchkeeper-Signature: sha256=<hex HMAC of the body>``.

Only the generic webhook channel exists yet; Slack, PagerDuty, e-mail and Alertmanager come
next on the same outbox.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

log = logging.getLogger("watchkeeper.notify")

NOTIFY_KINDS = ("firing", "escalated", "deescalated", "resolved", "renotify", "no_data")
MAX_ATTEMPTS = 20
MAX_BACKOFF = timedelta(minutes=5)


class NotifyConfigError(ValueError):
    """The ``notifications:`` section is invalid; the message names each field at fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannel(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret_env: str | None = None
    timeout_s: float = Field(10.0, gt=0, le=120)

    def secret(self) -> bytes | None:
        if self.secret_env is None:
            return None
        value = os.environ.get(self.secret_env)
        return None if value is None else value.encode()


class Route(_Strict):
    channels: list[str] = Field(min_length=1)
    severities: list[Literal["warning", "critical"]] | None = None
    monitors: list[str] | None = None
    labels: dict[str, str] | None = None

    def matches(self, change: Mapping[str, Any], severity: str | None) -> bool:
        if self.monitors is not None and change["monitor"] not in self.monitors:
            return False
        if self.severities is not None and severity not in self.severities:
            return False
        labels = change.get("labels") or {}
        return all(labels.get(k) == v for k, v in (self.labels or {}).items())


class NotifyConfig(_Strict):
    channels: list[WebhookChannel] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_channels(self) -> NotifyConfig:
        names = [c.name for c in self.channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"channel name(s) used twice: {', '.join(dup)}")
        for i, route in enumerate(self.routes):
            unknown = [c for c in route.channels if c not in names]
            if unknown:
                raise ValueError(
                    f"routes[{i}] names unknown channel(s) {', '.join(unknown)};"
                    f" channels: {', '.join(names) or 'none'}"
                )
        return self

    @classmethod
    def parse(cls, doc: Any) -> NotifyConfig:
        try:
            return cls.model_validate(doc or {})
        except ValidationError as exc:
            lines = [
                f"notifications.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                if e["loc"]
                else f"notifications: {e['msg']}"
                for e in exc.errors()
            ]
            raise NotifyConfigError("\n".join(lines)) from None

    def channel(self, name: str) -> WebhookChannel | None:
        return next((c for c in self.channels if c.name == name), None)

    def deliveries(self, change: Mapping[str, Any]) -> list[str]:
        """The channels that hear about ``change`` (an alert transition record)."""
        if change["kind"] not in NOTIFY_KINDS:
            return []
        severity = change.get("severity") or change.get("alert_severity")
        out: list[str] = []
        for route in self.routes:
            if route.matches(change, severity):
                out += [c for c in route.channels if c not in out]
        return out


def payload(change: Mapping[str, Any], alert_id: int, dashboard: str | None) -> dict[str, Any]:
    """The JSON a webhook receives for one transition: what, where, how bad, since when."""
    at = change["at"]
    since = change.get("since") or at
    segment = (
        f"{change['segment']}:{change['segment_value']}" if change.get("segment_value") else None
    )
    link = None
    if dashboard:
        link = f"{dashboard.rstrip('/')}/models/{change['model']}?metric={change['metric']}"
    return {
        "version": 1,
        "kind": change["kind"],
        "alert_id": alert_id,
        "monitor": change["monitor"],
        "model": change["model"],
        "model_version": change.get("version"),
        "metric": change["metric"],
        "segment": segment,
        "window": change["window"],
        "window_start": _iso(at),
        "severity": change.get("severity") or change.get("alert_severity"),
        "value": change.get("value"),
        "samples": change.get("samples"),
        "condition": change.get("context"),
        "cause": change.get("cause"),
        "breaching_since": _iso(since),
        "labels": change.get("labels") or {},
        "dashboard_url": link,
    }


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: 1 s, 2 s, 4 s ... at most 5 minutes."""
    return min(timedelta(seconds=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


class Notifier:
    """Delivers the outbox on a thread of its own (``run_once`` for tests)."""

    def __init__(self, store: Any, config: NotifyConfig, interval: float = 1.0) -> None:
        self.store = store
        self.config = config
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failures = 0

    def start(self) -> None:
        if not self.config.channels or self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="wk-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once(datetime.now(timezone.utc))
            except Exception:
                log.exception("delivering notifications failed; trying again")

    def run_once(self, now: datetime) -> int:
        """Send every due notification once; returns how many were delivered."""
        sent = 0
        for row in self.store.due_notifications(now, limit=100):
            channel = self.config.channel(row["channel"])
            if channel is None:  # the channel left the settings: give up on it
                self.store.notification_result(row["id"], False, "channel removed", None)
                continue
            ok, error = self._post(channel, row["id"], row["payload"])
            retry = None if ok else now + backoff(row["attempts"] + 1)
            if not ok and row["attempts"] + 1 >= MAX_ATTEMPTS:
                retry = None  # given up: stays in the outbox as failed
            self.store.notification_result(row["id"], ok, error, retry)
            if ok:
                sent += 1
                self.delivered += 1
            else:
                self.failures += 1
        return sent

    def _post(self, channel: WebhookChannel, delivery: int, body: bytes) -> tuple[bool, str | None]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "watchkeeper",
            "X-Watchkeeper-Delivery": str(delivery),
        }
        secret = channel.secret()
        if secret is not None:
            headers["X-Watchkeeper-Signature"] = sign(secret, body)
        req = urllib.request.Request(channel.url, data=body, headers=headers, method="POST")
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=channel.timeout_s) as resp:
                resp.read()
                return 200 <= resp.status < 300, None
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return False, f"{type(exc).__name__}: {exc} after {time.perf_counter() - t0:.1f} s"


def encode(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, default=str, sort_keys=True).encode()


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        text: str = value.isoformat().replace("+00:00", "Z")
        return text
    return str(value)


__all__: Sequence[str] = (
    "NOTIFY_KINDS",
    "Notifier",
    "NotifyConfig",
    "NotifyConfigError",
    "Route",
    "WebhookChannel",
    "backoff",
    "encode",
    "payload",
    "sign",
)
