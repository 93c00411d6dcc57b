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

Channel types: ``webhook`` (the JSON of :func:`payload`, signed), ``slack`` (an incoming
webhook, Block Kit), ``pagerduty`` (Events API v2; trigger and resolve share a ``dedup_key``)
and ``alertmanager`` (``POST /api/v2/alerts``). The outbox stores the channel-neutral payload;
each channel renders its request when it sends, so a secret from the environment is read at
send time and never stored. ``email`` goes over SMTP (STARTTLS, login) with a plain-text
and an HTML body.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import os
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from watchkeeper.monitors.definitions import MONITOR_WINDOWS
from watchkeeper.telemetry import Counter

log = logging.getLogger("watchkeeper.notify")

NOTIFY_KINDS = ("firing", "escalated", "deescalated", "resolved", "renotify", "no_data")
MAX_ATTEMPTS = 20
MAX_BACKOFF = timedelta(minutes=5)


class NotifyConfigError(ValueError):
    """The ``notifications:`` section is invalid; the message names each field at fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Channel(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    timeout_s: float = Field(10.0, gt=0, le=120)

    def render(self, msg: Mapping[str, Any], delivery: int) -> tuple[str, dict[str, str], bytes]:
        """(url, headers, body) of the request that delivers ``msg`` (a :func:`payload`)."""
        raise NotImplementedError


def _env(name: str | None, what: str) -> str:
    value = os.environ.get(name or "")
    if not value:
        raise DeliveryError(f"{what}: environment variable {name} is not set")
    return value


class DeliveryError(Exception):
    """A notification that cannot be built (e.g. a secret missing from the environment)."""


class WebhookChannel(_Channel):
    """JSON as :func:`payload` builds it, signed with HMAC-SHA256 when a secret is set."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret_env: str | None = None

    def secret(self) -> bytes | None:
        if self.secret_env is None:
            return None
        value = os.environ.get(self.secret_env)
        return None if value is None else value.encode()

    def render(self, msg: Mapping[str, Any], delivery: int) -> tuple[str, dict[str, str], bytes]:
        body = encode(msg)
        headers = {"X-Watchkeeper-Delivery": str(delivery)}
        secret = self.secret()
        if secret is not None:
            headers["X-Watchkeeper-Signature"] = sign(secret, body)
        return self.url, headers, body


class SlackChannel(_Channel):
    """A Slack incoming webhook: a Block Kit message (header, fields, cause, link)."""

    type: Literal["slack"]
    webhook_url_env: str  # the webhook URL is a secret: it comes from the environment

    def render(self, msg: Mapping[str, Any], delivery: int) -> tuple[str, dict[str, str], bytes]:
        url = _env(self.webhook_url_env, f"slack channel {self.name}")
        icon = {"resolved": "✅", "critical": "🔴", "warning": "🟠"}
        state = "RESOLVED" if msg["kind"] == "resolved" else (msg["severity"] or "").upper()
        mark = icon["resolved"] if msg["kind"] == "resolved" else icon.get(msg["severity"], "⚪")
        title = f"{mark} [{state}] {msg['monitor']}: {msg['metric']} of {msg['model']}"
        fields = [
            (
                "Model",
                f"{msg['model']}" + (f" {msg['model_version']}" if msg["model_version"] else ""),
            ),
            ("Metric", msg["metric"]),
            ("Value", _show(msg["value"])),
            ("Condition", _condition(msg["condition"])),
            ("Window", f"{msg['window']} from {msg['window_start']}"),
            ("Breaching since", _since(msg)),
        ]
        if msg["segment"]:
            fields.append(("Segment", msg["segment"]))
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields][:10],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": str(msg["cause"] or "")}},
        ]
        moved = moved_most(msg)
        if moved:
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*Moved most*\n{moved}"[:3000]},
                }
            )
        if msg["dashboard_url"]:
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Open in Watchkeeper"},
                            "url": msg["dashboard_url"],
                        }
                    ],
                }
            )
        return url, {}, encode({"text": title, "blocks": blocks})


class PagerDutyChannel(_Channel):
    """PagerDuty Events API v2: trigger, and resolve with the same ``dedup_key``."""

    type: Literal["pagerduty"]
    routing_key_env: str
    url: str = Field("https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://")

    def render(self, msg: Mapping[str, Any], delivery: int) -> tuple[str, dict[str, str], bytes]:
        key = _env(self.routing_key_env, f"pagerduty channel {self.name}")
        dedup = f"watchkeeper-{msg['alert_id']}"
        if msg["kind"] == "resolved":
            body: dict[str, Any] = {
                "routing_key": key,
                "event_action": "resolve",
                "dedup_key": dedup,
            }
        else:
            body = {
                "routing_key": key,
                "event_action": "trigger",
                "dedup_key": dedup,
                "payload": {
                    "summary": (
                        f"{msg['monitor']}: {msg['metric']} of {msg['model']} is"
                        f" {_show(msg['value'])} ({_condition(msg['condition'])})"
                    )[:1024],
                    "source": msg["model"],
                    "severity": "critical" if msg["severity"] == "critical" else "warning",
                    "timestamp": msg["window_start"],
                    "component": msg["model"],
                    "group": msg["segment"] or msg["model"],
                    "class": msg["metric"],
                    "custom_details": {
                        k: msg.get(k)
                        for k in (
                            "cause",
                            "window",
                            "breaching_since",
                            "breaching_for",
                            "labels",
                            "condition",
                            "moved_most",
                        )
                    },
                },
            }
            if msg["dashboard_url"]:
                body["links"] = [{"href": msg["dashboard_url"], "text": "Open in Watchkeeper"}]
        return self.url, {}, encode(body)


class AlertmanagerChannel(_Channel):
    """Prometheus Alertmanager's ``POST /api/v2/alerts``: routing, inhibition and on-call
    schedules stay there. A resolution sends the same labels with ``endsAt``."""

    type: Literal["alertmanager"]
    url: str = Field(pattern=r"^https?://")

    def render(self, msg: Mapping[str, Any], delivery: int) -> tuple[str, dict[str, str], bytes]:
        labels = {
            "alertname": msg["monitor"],
            "model": msg["model"],
            "metric": msg["metric"],
            "severity": msg["severity"] or "warning",
            "source": "watchkeeper",
            **{str(k): str(v) for k, v in (msg["labels"] or {}).items()},
        }
        if msg["segment"]:
            labels["segment"] = msg["segment"]
        if msg["model_version"]:
            labels["version"] = msg["model_version"]
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {
                "summary": f"{msg['metric']} of {msg['model']} is {_show(msg['value'])}",
                "description": str(msg["cause"] or ""),
                "condition": _condition(msg["condition"]),
                **({"moved_most": moved} if (moved := moved_most(msg)) else {}),
            },
            "startsAt": msg["breaching_since"] or msg["window_start"],
        }
        if msg["kind"] == "resolved":
            alert["endsAt"] = msg["window_start"]
        if msg["dashboard_url"]:
            alert["generatorURL"] = msg["dashboard_url"]
        return self.url.rstrip("/") + "/api/v2/alerts", {}, encode([alert])


class EmailChannel(_Channel):
    """E-mail over SMTP: STARTTLS and login when set, a plain-text and an HTML body, a
    ``Message-ID`` per outbox row (the same on every retry)."""

    type: Literal["email"]
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username_env: str | None = None
    password_env: str | None = None
    ca_file: str | None = None  # a private CA to trust for STARTTLS (default: the system's)
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(min_length=1)

    def render(self, msg: Mapping[str, Any], delivery: int) -> tuple[str, dict[str, str], bytes]:
        raise DeliveryError("e-mail is sent with deliver(), not over HTTP")

    def message(self, msg: Mapping[str, Any], delivery: int) -> EmailMessage:
        state = "RESOLVED" if msg["kind"] == "resolved" else (msg["severity"] or "").upper()
        subject = f"[{state}] {msg['monitor']}: {msg['metric']} of {msg['model']}"
        rows = [
            (
                "Model",
                str(msg["model"]) + (f" {msg['model_version']}" if msg["model_version"] else ""),
            ),
            ("Metric", str(msg["metric"])),
            ("Segment", str(msg["segment"] or "all")),
            ("Value", _show(msg["value"])),
            ("Condition", _condition(msg["condition"])),
            ("Window", f"{msg['window']} from {msg['window_start']}"),
            ("Breaching since", _since(msg)),
            ("Cause", str(msg["cause"] or "")),
        ]
        moved = moved_most(msg)
        if moved:
            rows.append(("Moved most", moved))
        text = "\n".join(f"{k}: {v}" for k, v in rows)
        if msg["dashboard_url"]:
            text += f"\n\n{msg['dashboard_url']}"
        cells = "".join(
            f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        link = (
            f"<p><a href='{html.escape(msg['dashboard_url'])}'>Open in Watchkeeper</a></p>"
            if msg["dashboard_url"]
            else ""
        )
        em = EmailMessage()
        em["Subject"] = subject
        em["From"] = self.sender
        em["To"] = ", ".join(self.to)
        em["Message-ID"] = f"<watchkeeper-{delivery}@{self.sender.split('@', 1)[1]}>"
        em.set_content(text)
        em.add_alternative(
            f"<html><body><h3>{html.escape(subject)}</h3><table>{cells}</table>{link}"
            "</body></html>",
            subtype="html",
        )
        return em

    def deliver(self, msg: Mapping[str, Any], delivery: int) -> None:
        em = self.message(msg, delivery)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
            if self.username_env is not None:
                user = _env(self.username_env, f"email channel {self.name}")
                password = _env(self.password_env, f"email channel {self.name}")
                smtp.login(user, password)
            smtp.send_message(em)


Channel = Annotated[
    WebhookChannel | SlackChannel | PagerDutyChannel | AlertmanagerChannel | EmailChannel,
    Field(discriminator="type"),
]


def _since(msg: Mapping[str, Any]) -> str:
    since = msg.get("breaching_since")
    if not since:
        return "—"
    return f"{since} (for {msg['breaching_for']})" if msg.get("breaching_for") else str(since)


def _show(value: Any) -> str:
    return "—" if value is None else f"{float(value):.4g}"


def _condition(cond: Any) -> str:
    if not isinstance(cond, Mapping):
        return "—"
    if "threshold" in cond:
        return f"{cond.get('op')} {cond['threshold']:g}"
    if "critical" in cond:
        return f"{cond.get('op')} {cond['warning']:g} (warning) / {cond['critical']:g} (critical)"
    band = cond.get("band") or {}
    if band.get("lower") is not None or band.get("upper") is not None:
        return f"outside [{_show(band.get('lower'))}, {_show(band.get('upper'))}] (learned band)"
    return "learned band"


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
    channels: list[Channel] = Field(default_factory=list)
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

    def channel(self, name: str) -> _Channel | None:
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
        "breaching_for": _breaching_for(since, at, change.get("window")),
        "moved_most": (change.get("context") or {}).get("moved_most"),
        "labels": change.get("labels") or {},
        "dashboard_url": link,
    }


def _breaching_for(since: Any, at: Any, window: Any) -> str | None:
    """From the first breaching window's start to the end of this one, in words (``25m``)."""
    if not (isinstance(since, datetime) and isinstance(at, datetime)):
        return None  # the engine's records carry datetimes; anything else says nothing
    if window not in MONITOR_WINDOWS:
        return None
    since, at = (d if d.tzinfo else d.replace(tzinfo=timezone.utc) for d in (since, at))
    seconds = int((at - since).total_seconds()) + MONITOR_WINDOWS[window]
    if seconds <= 0:
        return None
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    return " ".join(p for p in parts if p) or f"{seconds}s"


def moved_most(msg: Mapping[str, Any]) -> str | None:
    """A drift alert's "what moved most", in one line for people (None for other alerts)."""
    movers = msg.get("moved_most")
    if not isinstance(movers, Mapping):
        return None

    def one(r: Mapping[str, Any], where: bool) -> str:
        stat = f"{r['method']} {_show(r['statistic'])}"
        if r.get("threshold"):
            stat += f" vs {r['threshold']:g}"
        return (f"{r['segment']}: {r['feature']}" if where else str(r["feature"])) + f" ({stat})"

    out = []
    if movers.get("features"):
        out.append("features: " + ", ".join(one(r, False) for r in movers["features"]))
    if movers.get("segments"):
        out.append("segments: " + ", ".join(one(r, True) for r in movers["segments"]))
    return "; ".join(out) or None


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
        self.attempts = Counter()  # (channel, delivered|failed), read by GET /metrics

    def start(self) -> None:
        if self.interval <= 0:
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
            self.attempts.inc((row["channel"], "delivered" if ok else "failed"))
            if ok:
                sent += 1
                self.delivered += 1
            else:
                self.failures += 1
        return sent

    def _post(self, channel: _Channel, delivery: int, stored: bytes) -> tuple[bool, str | None]:
        if isinstance(channel, EmailChannel):
            try:
                channel.deliver(json.loads(stored), delivery)
                return True, None
            except (DeliveryError, smtplib.SMTPException, OSError) as exc:
                return False, f"{type(exc).__name__}: {exc}"
        try:
            url, extra, body = channel.render(json.loads(stored), delivery)
        except DeliveryError as exc:
            return False, str(exc)
        headers = {"Content-Type": "application/json", "User-Agent": "watchkeeper", **extra}
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=channel.timeout_s) as resp:
                resp.read()
                return 200 <= resp.status < 300, None
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return False, f"{type(exc).__name__}: {exc} after {time.perf_counter() - t0:.1f} s"


def encode(data: Any) -> bytes:
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
