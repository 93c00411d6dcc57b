"""Alert routes: current and past alerts with their transitions, acknowledgements and
silences (the monitors' routes are in :mod:`watchkeeper.api.monitors`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from watchkeeper.api.errors import APIError
from watchkeeper.api.models import _utc, bad_param
from watchkeeper.api.schemas import ERRORS
from watchkeeper.monitors.definitions import parse_duration
from watchkeeper.store.base import Store
from watchkeeper.store.keys import KeyStore

from .auth import require

STATUSES = ("open", "pending", "firing", "resolved", "cleared")


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: str | None = Field(None, max_length=200)
    comment: str | None = Field(None, max_length=2000)


class SilenceBody(BaseModel):
    """What to silence (every field given must match) and for how long."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, max_length=128)
    monitor: str | None = Field(None, max_length=128)
    severity: Literal["warning", "critical"] | None = None
    labels: dict[str, str] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    duration: str | None = Field(None, description="e.g. 30m, 2h, 1d (or give ends_at)")
    created_by: str | None = Field(None, max_length=200)
    comment: str | None = Field(None, max_length=2000)


def alerts_router(store: Store, keys: KeyStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["alerts"])
    can_read = Depends(require(keys, "read"))

    @router.get("/alerts", dependencies=[can_read], responses=ERRORS)
    async def list_alerts(
        status: str | None = Query(None, description="open, pending, firing, resolved, cleared"),
        model: str | None = Query(None, max_length=128),
        monitor: str | None = Query(None, max_length=128),
        since: datetime | None = Query(None, description="changed at or after"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Alerts, newest first, each with every transition (time, cause, value, threshold)."""
        if status is not None and status not in STATUSES:
            raise bad_param("status", f"must be one of {', '.join(STATUSES)}")
        alerts = await run_in_threadpool(
            store.list_alerts,
            status=status,
            model=model,
            monitor=monitor,
            since=_utc(since) if since else None,
            limit=limit,
        )
        return {"alerts": alerts}

    can_act = Depends(require(keys, "admin"))

    @router.post("/alerts/{alert_id}/ack", dependencies=[can_act], responses=ERRORS)
    async def acknowledge(alert_id: int, body: AckBody | None = None) -> dict[str, Any]:
        """Acknowledge an alert: recorded as a transition; its re-notifications stop."""
        body = body or AckBody(by=None, comment=None)
        ok = await run_in_threadpool(store.acknowledge, alert_id, body.by, body.comment)
        if not ok:
            raise APIError(404, "not_found", f"no alert {alert_id}")
        return {"alert_id": alert_id, "acknowledged": True}

    @router.post("/silences", dependencies=[can_act], responses=ERRORS, status_code=201)
    async def add_silence(body: SilenceBody) -> dict[str, Any]:
        """Hold back the notifications of matching alerts (they are still recorded)."""
        starts = _utc(body.starts_at) if body.starts_at else datetime.now(timezone.utc)
        if body.ends_at is not None:
            ends = _utc(body.ends_at)
        else:
            try:
                ends = starts + parse_duration(body.duration or "")
            except ValueError as exc:
                raise bad_param("duration", str(exc)) from None
        if ends <= starts:
            raise bad_param("ends_at", "must be after starts_at")
        if not any((body.model, body.monitor, body.severity, body.labels)):
            raise bad_param("model", "match something: model, monitor, severity or labels")
        silence_id = await run_in_threadpool(
            lambda: store.add_silence(
                model=body.model,
                monitor=body.monitor,
                severity=body.severity,
                labels=body.labels,
                starts_at=starts,
                ends_at=ends,
                created_by=body.created_by,
                comment=body.comment,
            )
        )
        return {"id": silence_id, "starts_at": starts, "ends_at": ends}

    @router.get("/silences", dependencies=[can_read], responses=ERRORS)
    async def list_silences(
        active: bool = Query(False, description="only those in force now"),
    ) -> dict[str, Any]:
        """Silences, newest first."""
        when = datetime.now(timezone.utc) if active else None
        return {"silences": await run_in_threadpool(lambda: store.list_silences(active_at=when))}

    @router.delete("/silences/{silence_id}", dependencies=[can_act], responses=ERRORS)
    async def expire_silence(silence_id: int) -> dict[str, Any]:
        """End a silence now."""
        if not await run_in_threadpool(store.expire_silence, silence_id):
            raise APIError(404, "not_found", f"no silence {silence_id}")
        return {"id": silence_id, "expired": True}

    return router
