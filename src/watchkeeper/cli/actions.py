"""``watchkeeper actions``: see automated responses' runs and approve or reject them on a
running server (its API)."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlencode

import click

from watchkeeper.cli.silence import _KEY, _URL, _call


@click.group("actions")
def actions() -> None:
    """Automated responses: list their runs, approve or reject those awaiting approval."""


@actions.command("list")
@_URL
@_KEY
@click.option("--status", help="Only runs in this status (e.g. awaiting_approval, failed).")
@click.option("--model", help="Only this model's runs.")
@click.option("--action", "action", help="Only this action's runs.")
@click.option("--alert", "alert_id", type=int, help="Only the runs of this alert (its id).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--configured", is_flag=True, help="List the configured actions instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON.")
def list_(
    url: str,
    key: str | None,
    status: str | None,
    model: str | None,
    action: str | None,
    alert_id: int | None,
    limit: int,
    configured: bool,
    as_json: bool,
) -> None:
    """Action runs, newest first: id, status, action, model, alert, when, error."""
    if configured:
        got = _call(url, key, "GET", "/api/v1/actions")
        if as_json:
            click.echo(json.dumps(got, indent=2))
            return
        for a in got["actions"]:
            when = ", ".join(f"{k}={v}" for k, v in a["when"].items() if v is not None)
            extra = " (approval)" if a["approval"] else ""
            click.echo(f"{a['name']}\t{a['type']}{extra}\t{when}")
        return
    query = {"status": status, "model": model, "action": action, "alert_id": alert_id}
    params = urlencode({k: v for k, v in {**query, "limit": limit}.items() if v is not None})
    got = _call(url, key, "GET", f"/api/v1/actions/runs?{params}")
    if as_json:
        click.echo(json.dumps(got, indent=2))
        return
    for r in got["runs"]:
        click.echo(_line(r))


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['id']}\t{r['status']}\t{r['action']} ({r['type']})\t{r['model']}"
        f"\talert {r['alert_id']} {r['kind']}\t{r['requested_at']}\t{r['error'] or ''}"
    )


@actions.command("approve")
@_URL
@_KEY
@click.argument("run_id", type=int)
@click.option("--by", default=lambda: os.environ.get("USER"), help="Who (default $USER).")
def approve(url: str, key: str | None, run_id: int, by: str | None) -> None:
    """Approve a run awaiting approval: the server runs it next."""
    got = _call(url, key, "POST", f"/api/v1/actions/runs/{run_id}/approve", {"by": by})
    click.echo(f"run {run_id} approved: {got['status']}")


@actions.command("reject")
@_URL
@_KEY
@click.argument("run_id", type=int)
@click.option("--by", default=lambda: os.environ.get("USER"), help="Who (default $USER).")
@click.option("--reason", help="Why (kept with the run).")
def reject(url: str, key: str | None, run_id: int, by: str | None, reason: str | None) -> None:
    """Reject a run awaiting approval: it never runs."""
    body = {"by": by, "reason": reason}
    got = _call(url, key, "POST", f"/api/v1/actions/runs/{run_id}/reject", body)
    click.echo(f"run {run_id} {got['status']}")
