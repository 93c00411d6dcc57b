"""Monitor routes: list and read every monitor with the state of its series; create, replace
and delete monitors through the API (persisted); preview and switch on a model's default set.

Monitors of the settings file (``source: file``, and ``defaults`` for its ``- defaults:``
lines) are read-only here: the file is their record, reloaded on SIGHUP.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from watchkeeper.aggregate.sizes import floor_to
from watchkeeper.alerting.engine import judged_series
from watchkeeper.api.errors import APIError
from watchkeeper.api.models import bad_param, parse_range
from watchkeeper.api.schemas import ERRORS
from watchkeeper.drift.settings import DriftSettings
from watchkeeper.monitors.definitions import Monitor
from watchkeeper.monitors.files import MonitorConfigError, monitor_to_dict, validate_monitor
from watchkeeper.monitors.registry import (
    SOURCES,
    MonitorConflict,
    MonitorEntry,
    MonitorError,
    MonitorRegistry,
    Proposal,
    ReadOnlyMonitor,
    UnknownMonitor,
)
from watchkeeper.store.base import Store, UnknownModelError
from watchkeeper.store.keys import KeyInfo, KeyStore

from .auth import require

TASKS = ("classification", "regression", "llm")
MAX_SERIES_WINDOWS = 5000
EXAMPLE = {
    "name": "fraud-errors",
    "model": "fraud-scorer",
    "metric": "error_rate",
    "window": "5m",
    "condition": {"type": "static", "op": "above", "threshold": 0.05},
    "fire_after": 2,
    "of_last": 3,
}


class DefaultsBody(BaseModel):
    """Optional: the task and features to build the set with (default: the model's)."""

    model_config = ConfigDict(extra="forbid")
    task: Literal["classification", "regression", "llm"] | None = None
    features: list[str] | None = Field(default=None, max_length=1000)


def _series(name: str, states: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "series": key,
            "segment_value": key.partition("|")[2] or None,
            "status": state.get("status"),
            "severity": state.get("severity"),
            "since": state.get("since"),
            "last_window": state.get("last_window"),
        }
        for key, state in sorted(states.items())
        if key == name or key.startswith(name + "|")
    ]


def _out(entry: MonitorEntry, states: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A monitor as the API shows it: its definition, where it comes from, its series."""
    m = entry.monitor
    out = {
        **monitor_to_dict(m),
        "enabled": m.enabled,
        "source": entry.source,
        "default_set": entry.default_set,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "updated_by": entry.updated_by,
    }
    if states is not None:
        out["series"] = _series(m.name, states)
    return out


def _invalid(exc: MonitorConfigError) -> APIError:
    return APIError(
        422,
        "invalid_monitor",
        f"{exc.message}: " + "; ".join(f"{p.path or 'body'}: {p.reason}" for p in exc.problems),
        [{"row": None, "field": p.path or None, "reason": p.reason} for p in exc.problems],
    )


def _refused(exc: MonitorError) -> APIError:
    if isinstance(exc, UnknownMonitor):
        return APIError(404, "not_found", exc.message)
    if isinstance(exc, ReadOnlyMonitor):
        return APIError(409, "read_only_monitor", exc.message)
    if isinstance(exc, MonitorConflict):
        return APIError(409, "monitor_exists", exc.message)
    return APIError(409, "conflict", exc.message)


def _by(info: KeyInfo) -> str:
    return info.name or f"key {info.prefix}"


def monitors_router(
    store: Store,
    keys: KeyStore,
    registry: MonitorRegistry,
    drift: DriftSettings | None = None,
) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["monitors"])
    can_read = Depends(require(keys, "read"))
    can_write = require(keys, "admin")

    def parse(body: Any, name: str | None = None) -> Monitor:
        if name is not None and isinstance(body, dict):
            given = body.get("name", name)
            if given != name:
                raise bad_param("name", f"the body names {given!r}; the path {name!r}")
            body = {**body, "name": name}
        try:
            return validate_monitor(body)
        except MonitorConfigError as exc:
            raise _invalid(exc) from None

    @router.get("/monitors", dependencies=[can_read], responses=ERRORS)
    async def list_monitors(
        model: str | None = Query(None, max_length=128, description="only this model's"),
        source: str | None = Query(None, description="file, api or defaults"),
    ) -> dict[str, Any]:
        """Every monitor (settings file, API, default sets) with the state of its series."""
        if source is not None and source not in SOURCES:
            raise bad_param("source", f"must be one of {', '.join(SOURCES)}")

        def read() -> dict[str, Any]:
            states = store.alert_states()
            entries = [
                e
                for e in registry.entries()
                if (model is None or e.monitor.model == model)
                and (source is None or e.source == source)
            ]
            pending = [
                {"defaults": s.model, "reason": "the model has no events yet"}
                for s in registry.pending()
                if (model is None or s.model == model) and source in (None, "defaults")
            ]
            return {"monitors": [_out(e, states) for e in entries], "pending_defaults": pending}

        return await run_in_threadpool(read)

    @router.get("/monitors/{name}", dependencies=[can_read], responses=ERRORS)
    async def get_monitor(name: str) -> dict[str, Any]:
        """One monitor: its definition, where it is defined, the state of each series."""
        entry = await run_in_threadpool(registry.get, name)
        if entry is None:
            raise APIError(404, "not_found", f"no monitor named {name!r}")
        return _out(entry, await run_in_threadpool(store.alert_states))

    @router.get("/monitors/{name}/series", dependencies=[can_read], responses=ERRORS)
    async def monitor_series_view(
        name: str,
        start: datetime | None = Query(None, description="inclusive; default end - 1d"),
        end: datetime | None = Query(None, description="exclusive; default now"),
        segment_value: str | None = Query(
            None, max_length=256, description="one value of a name:* monitor (default: all)"
        ),
    ) -> dict[str, Any]:
        """Each window as the alert engine judges it: value, samples, whether it counts,
        the severity it breaches with, and the threshold(s) or the learned band — for a
        chart to draw beside the metric."""
        entry = await run_in_threadpool(registry.get, name)
        if entry is None:
            raise APIError(404, "not_found", f"no monitor named {name!r}")
        m = entry.monitor
        start_, end_ = parse_range(start, end, timedelta(days=1))
        seconds = m.window_seconds
        start_ = floor_to(start_, seconds)
        if (end_ - start_).total_seconds() / seconds > MAX_SERIES_WINDOWS:
            raise bad_param(
                "start",
                f"{m.window} windows from start to end are more than {MAX_SERIES_WINDOWS}:"
                " shorten the range",
            )

        def read() -> dict[str, Any]:
            try:
                judged = judged_series(store, m, start_, end_, drift=drift)
            except UnknownModelError:
                judged = {}
            if segment_value is not None:
                judged = {k: v for k, v in judged.items() if k == segment_value}
            return {
                "monitor": m.name,
                "model": m.model,
                "metric": m.metric,
                "window": m.window,
                "condition": m.condition.model_dump(mode="json"),
                "start": start_,
                "end": end_,
                "series": [
                    {"segment_value": k, "windows": rows}
                    for k, rows in sorted(
                        judged.items(), key=lambda kv: (kv[0] is not None, kv[0] or "")
                    )
                ],
            }

        return await run_in_threadpool(read)

    @router.post("/monitors", responses=ERRORS, status_code=201)
    async def create_monitor(
        body: Any = Body(..., examples=[EXAMPLE]), key: KeyInfo = Depends(can_write)
    ) -> dict[str, Any]:
        """Create a monitor (a definition as in the settings file); stored and evaluated
        from the next run of the alert engine."""
        monitor = parse(body)
        try:
            entry = await run_in_threadpool(registry.create, monitor, _by(key))
        except MonitorError as exc:
            raise _refused(exc) from None
        return _out(entry, {})

    @router.put("/monitors/{name}", responses=ERRORS)
    async def replace_monitor(
        name: str, body: Any = Body(..., examples=[EXAMPLE]), key: KeyInfo = Depends(can_write)
    ) -> dict[str, Any]:
        """Replace a monitor created through the API; its alert states stay."""
        monitor = parse(body, name)
        try:
            entry = await run_in_threadpool(registry.replace, name, monitor, _by(key))
        except MonitorError as exc:
            raise _refused(exc) from None
        return _out(entry, await run_in_threadpool(store.alert_states))

    @router.delete(
        "/monitors/{name}",
        dependencies=[Depends(can_write)],
        responses=ERRORS,
        status_code=204,
        response_class=Response,
    )
    async def delete_monitor(name: str) -> Response:
        """Delete a monitor created through the API; its alerts and their history stay."""
        try:
            await run_in_threadpool(registry.delete, name)
        except MonitorError as exc:
            raise _refused(exc) from None
        return Response(status_code=204)

    def propose(model: str, task: str | None, features: list[str] | None) -> Proposal:
        if task is not None and task not in TASKS:
            raise bad_param("task", f"must be one of {', '.join(TASKS)}")
        proposal = registry.propose(model, task, features)
        if proposal is None:
            raise APIError(
                404,
                "unknown_model",
                f"no model named {model!r} yet: send its first events, or give its task"
                " (and features) to set its monitors up before",
            )
        return proposal

    def _features(text: str | None) -> list[str] | None:
        return None if text is None else [f.strip() for f in text.split(",") if f.strip()]

    @router.get("/models/{model}/monitors/defaults", dependencies=[can_read], responses=ERRORS)
    async def preview_defaults(
        model: str,
        task: str | None = Query(None, description="classification, regression or llm"),
        features: str | None = Query(None, description="comma-separated; default: the model's"),
    ) -> dict[str, Any]:
        """The model's default set as it would be created (nothing is stored)."""
        p = await run_in_threadpool(propose, model, task, _features(features))
        existing = {e.name: e for e in await run_in_threadpool(registry.entries)}
        return {
            "model": p.model,
            "task": p.task,
            "features": p.features,
            "monitors": [
                {
                    **monitor_to_dict(m),
                    "exists": existing[m.name].source if m.name in existing else None,
                }
                for m in p.monitors
            ],
        }

    @router.post("/models/{model}/monitors/defaults", responses=ERRORS, status_code=201)
    async def create_defaults(
        model: str,
        response: Response,
        body: DefaultsBody | None = None,
        key: KeyInfo = Depends(can_write),
    ) -> dict[str, Any]:
        """Switch the model's default set on: each monitor is stored as an API monitor (to
        edit or delete one by one); names that exist already are left as they are."""
        body = body or DefaultsBody()
        p = await run_in_threadpool(propose, model, body.task, body.features)
        created, existing = await run_in_threadpool(registry.create_defaults, p, _by(key))
        if not created:
            response.status_code = 200
        return {
            "model": p.model,
            "task": p.task,
            "features": p.features,
            "created": [_out(e) for e in created],
            "existing": [{"name": e.name, "source": e.source} for e in existing],
        }

    return router
