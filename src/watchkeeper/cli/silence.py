"""``watchkeeper silence``: silence alerts' notifications on a running server (its API)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

import click

_URL = click.option(
    "--url",
    default=lambda: os.environ.get("WATCHKEEPER_URL", "http://127.0.0.1:8000"),
    show_default="$WATCHKEEPER_URL or http://127.0.0.1:8000",
    help="The server.",
)
_KEY = click.option(
    "--key",
    default=lambda: os.environ.get("WATCHKEEPER_API_KEY"),
    help="An admin key (default: $WATCHKEEPER_API_KEY).",
)


def _call(url: str, key: str | None, method: str, path: str, body: Any = None) -> Any:
    if not key:
        raise click.ClickException("give an admin key with --key or $WATCHKEEPER_API_KEY")
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise click.ClickException(f"the server said {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None


@click.group("silence")
def silence() -> None:
    """Hold back the notifications of matching alerts for a while (alerts are still recorded)."""


@silence.command("add")
@_URL
@_KEY
@click.option("--model", help="Only this model's alerts.")
@click.option("--monitor", help="Only this monitor's alerts.")
@click.option("--severity", type=click.Choice(["warning", "critical"]), help="Only this severity.")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE a monitor's label must have.")
@click.option("--duration", default="1h", show_default=True, help="30m, 2h, 1d ...")
@click.option("--comment", help="Why (shown with the silence).")
@click.option("--by", "created_by", default=lambda: os.environ.get("USER"), help="Who.")
def add(
    url: str,
    key: str | None,
    model: str | None,
    monitor: str | None,
    severity: str | None,
    labels: tuple[str, ...],
    duration: str,
    comment: str | None,
    created_by: str | None,
) -> None:
    """Silence matching alerts; prints the silence's id."""
    parsed: dict[str, str] = {}
    for item in labels:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{item!r}: use KEY=VALUE", param_hint="--label")
        parsed[k] = v
    body = {
        "model": model,
        "monitor": monitor,
        "severity": severity,
        "labels": parsed or None,
        "duration": duration,
        "comment": comment,
        "created_by": created_by,
    }
    got = _call(url, key, "POST", "/api/v1/silences", body)
    click.echo(f"silence {got['id']} until {got['ends_at']}")


@silence.command("list")
@_URL
@_KEY
@click.option("--all", "show_all", is_flag=True, help="Also the ended ones.")
def list_(url: str, key: str | None, show_all: bool) -> None:
    """The silences in force (or all of them)."""
    path = "/api/v1/silences" + ("" if show_all else "?active=true")
    for s in _call(url, key, "GET", path)["silences"]:
        what = ", ".join(
            f"{k}={s[k]}" for k in ("model", "monitor", "severity") if s[k] is not None
        )
        what += "".join(f", {k}={v}" for k, v in (s["labels"] or {}).items())
        click.echo(f"{s['id']}\t{s['starts_at']} → {s['ends_at']}\t{what}\t{s['comment'] or ''}")


@silence.command("expire")
@_URL
@_KEY
@click.argument("silence_id", type=int)
def expire(url: str, key: str | None, silence_id: int) -> None:
    """End a silence now."""
    _call(url, key, "DELETE", f"/api/v1/silences/{silence_id}")
    click.echo(f"silence {silence_id} expired")
