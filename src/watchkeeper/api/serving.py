"""The serving version of each model: which version should serve, and a fallback.

Serving processes poll ``GET …/serving`` (with their ingest key) through the SDK's
``Monitor.serving_version()``; an ETag and ``If-None-Match`` make an unchanged answer a bodiless
304. People and deploy pipelines set it with ``PUT`` (admin); rollback and fallback actions set
it through the store. Every change is kept (``GET …/serving/history``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from watchkeeper.api.errors import APIError
from watchkeeper.api.schemas import ERRORS
from watchkeeper.store.base import Store, UnknownModelError
from watchkeeper.store.keys import KeyInfo, KeyStore

from .auth import require

_EMPTY = {"version": None, "fallback": None, "updated_at": None, "updated_by": None,
          "reason": None, "alert_id": None}  # fmt: skip


class ServingBody(BaseModel):
    """The version that should serve (null: no preference) and an optional fallback."""

    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(..., min_length=1, max_length=128)
    fallback: str | None = Field(
        None, min_length=1, max_length=200, description="a fallback model or rule-based path"
    )
    reason: str | None = Field(None, max_length=2000)
    by: str | None = Field(None, max_length=200, description="default: the API key's name")
    force: bool = Field(False, description="accept a version never logged for the model")


def _require_model(store: Store, model: str) -> None:
    if not store.has_model(model):
        raise UnknownModelError(f"no model named {model!r}; send predictions to create it")


def _state(model: str, row: dict[str, Any] | None) -> dict[str, Any]:
    return {"model": model, **_EMPTY} if row is None else dict(row)


def etag(body: bytes) -> str:
    """A strong validator of a serving answer: changes whenever any of its fields does."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag`` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = tag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in if_none_match.split(","))


def _json(state: dict[str, Any], status: int = 200) -> Response:
    body = orjson.dumps(state)
    headers = {"ETag": etag(body), "Cache-Control": "no-cache"}
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def serving_router(store: Store, keys: KeyStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1/models", tags=["serving"])
    can_poll = Depends(require(keys, "read", "ingest"))
    can_read = Depends(require(keys, "read"))
    can_set = require(keys, "admin")

    @router.get(
        "/{model}/serving",
        dependencies=[can_poll],
        responses={**ERRORS, 304: {"description": "Unchanged since the ETag sent"}},
    )
    async def get_serving(model: str, request: Request) -> Response:
        """The version that should serve and the fallback (null when never set), with an ETag;
        ``If-None-Match`` with that ETag answers 304 without a body while nothing changed.
        Readable with a ``read`` or an ``ingest`` key (serving processes hold the latter)."""
        _require_model(store, model)
        row = await run_in_threadpool(store.get_serving, model)
        response = _json(_state(model, row))
        tag = response.headers["ETag"]
        if _matches(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers={"ETag": tag, "Cache-Control": "no-cache"})
        return response

    @router.put("/{model}/serving", responses=ERRORS)
    async def put_serving(
        model: str, body: ServingBody, info: KeyInfo = Depends(can_set)
    ) -> Response:
        """Point the model at a version (and a fallback); recorded in the history. A version
        never logged for the model is refused unless ``force`` is true."""
        _require_model(store, model)
        if body.version is not None and not body.force:
            known = [v.version for v in (await run_in_threadpool(store.get_model, model)).versions]
            if body.version not in known:
                reason = (
                    f"version {body.version!r} was never logged for model {model!r}"
                    f" (known: {', '.join(known) or 'none'}); send force: true to set it anyway"
                )
                raise APIError(
                    422,
                    "unknown_version",
                    f"version: {reason}",
                    [{"row": None, "field": "version", "reason": reason}],
                )
        row = await run_in_threadpool(
            lambda: store.set_serving(
                model,
                body.version,
                fallback=body.fallback,
                by=body.by or info.name or info.prefix,
                reason=body.reason,
            )
        )
        return _json(_state(model, row))

    @router.get("/{model}/serving/history", dependencies=[can_read], responses=ERRORS)
    async def serving_history(model: str, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        """Every change of the serving version and fallback, newest first: who, when, why, and
        the alert behind a rollback."""
        _require_model(store, model)
        history = await run_in_threadpool(store.serving_history, model, limit)
        return {"model": model, "history": history}

    return router
