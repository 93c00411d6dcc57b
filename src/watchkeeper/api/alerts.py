"""Alert and monitor routes: current and past alerts with their transitions, and the monitors
with the state of each of their series."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from watchkeeper.api.models import _utc, bad_param
from watchkeeper.api.schemas import ERRORS
from watchkeeper.monitors.definitions import Monitor
from watchkeeper.monitors.files import monitor_to_dict
from watchkeeper.store.base import Store
from watchkeeper.store.keys import KeyStore

from .auth import require

STATUSES = ("open", "pending", "firing", "resolved", "cleared")


def alerts_router(store: Store, keys: KeyStore, monitors: list[Monitor]) -> APIRouter:
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

    @router.get("/monitors", dependencies=[can_read], responses=ERRORS)
    async def list_monitors() -> dict[str, Any]:
        """The monitors of the settings file, each with the state of its series."""
        states = await run_in_threadpool(store.alert_states)
        out = []
        for m in monitors:
            series = {
                key: state
                for key, state in states.items()
                if key == m.name or key.startswith(m.name + "|")
            }
            out.append(
                {
                    **monitor_to_dict(m),
                    "enabled": m.enabled,
                    "series": [
                        {
                            "series": key,
                            "segment_value": key.partition("|")[2] or None,
                            "status": state.get("status"),
                            "severity": state.get("severity"),
                            "since": state.get("since"),
                            "last_window": state.get("last_window"),
                        }
                        for key, state in sorted(series.items())
                    ],
                }
            )
        return {"monitors": out}

    return router
