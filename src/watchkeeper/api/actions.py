"""Automated-response routes: the configured actions, their runs, and a person's approval."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from watchkeeper.alerting.actions import ActionsConfig, action_to_dict
from watchkeeper.api.errors import APIError
from watchkeeper.api.models import bad_param
from watchkeeper.api.schemas import ERRORS
from watchkeeper.store.base import RUN_STATUSES, Store
from watchkeeper.store.keys import KeyInfo, KeyStore

from .auth import require


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: str | None = Field(None, max_length=200, description="who (default: the key's name)")
    reason: str | None = Field(None, max_length=2000, description="why (kept with a rejection)")


def actions_router(store: Store, keys: KeyStore, config: Callable[[], ActionsConfig]) -> APIRouter:
    """``config`` returns the actions in force (a reload replaces them)."""
    router = APIRouter(prefix="/api/v1", tags=["actions"])
    can_read = Depends(require(keys, "read"))
    admin = require(keys, "admin")

    @router.get("/actions", dependencies=[can_read], responses=ERRORS)
    async def list_actions() -> dict[str, Any]:
        """The actions of the settings file (secrets appear only as environment variables'
        names)."""
        return {"actions": [action_to_dict(a) for a in config().actions]}

    @router.get("/actions/runs", dependencies=[can_read], responses=ERRORS)
    async def list_runs(
        model: str | None = Query(None, max_length=128),
        action: str | None = Query(None, max_length=128),
        status: str | None = Query(None, description=", ".join(RUN_STATUSES)),
        alert_id: int | None = Query(None),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Action runs, newest first, each with its alert, status and outcome."""
        if status is not None and status not in RUN_STATUSES:
            raise bad_param("status", f"must be one of {', '.join(RUN_STATUSES)}")
        runs = await run_in_threadpool(
            lambda: store.list_action_runs(
                model=model, action=action, status=status, alert_id=alert_id, limit=limit
            )
        )
        return {"runs": runs}

    @router.get("/actions/runs/{run_id}", dependencies=[can_read], responses=ERRORS)
    async def get_run(run_id: int) -> dict[str, Any]:
        """One run."""
        run = await run_in_threadpool(store.get_action_run, run_id)
        if run is None:
            raise APIError(404, "not_found", f"no action run {run_id}")
        return run

    async def decide(
        run_id: int, approve: bool, body: DecisionBody | None, key: KeyInfo
    ) -> dict[str, Any]:
        body = body or DecisionBody(by=None, reason=None)
        by = body.by or key.name or f"key {key.prefix}"
        before = await run_in_threadpool(store.decide_action_run, run_id, approve, by, body.reason)
        if before is None:
            raise APIError(404, "not_found", f"no action run {run_id}")
        if before != "awaiting_approval":
            raise APIError(
                409,
                "not_awaiting_approval",
                f"action run {run_id} is {before}: only a run awaiting approval can be"
                f" {'approved' if approve else 'rejected'}",
            )
        run = await run_in_threadpool(store.get_action_run, run_id)
        assert run is not None
        return run

    @router.post("/actions/runs/{run_id}/approve", responses=ERRORS)
    async def approve(
        run_id: int, body: DecisionBody | None = None, key: KeyInfo = Depends(admin)
    ) -> dict[str, Any]:
        """Let a run awaiting approval go: it is queued and runs within a second or so."""
        return await decide(run_id, True, body, key)

    @router.post("/actions/runs/{run_id}/reject", responses=ERRORS)
    async def reject(
        run_id: int, body: DecisionBody | None = None, key: KeyInfo = Depends(admin)
    ) -> dict[str, Any]:
        """Refuse a run awaiting approval: it never runs (the reason is kept as its error)."""
        return await decide(run_id, False, body, key)

    return router
