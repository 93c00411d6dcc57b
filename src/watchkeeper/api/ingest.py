"""Write routes: prediction events, ground truth, reference datasets.

Each answers 2xx only after the store has committed the batch. A batch is all-or-nothing: one
invalid row rejects the whole request (422, every problem listed by row and field), so a
client can fix and resend it; event ids make resending safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from watchkeeper.api.errors import APIError
from watchkeeper.api.schemas import ERRORS, ActualsAccepted, EventsAccepted, ReferenceAccepted
from watchkeeper.schema import (
    DEFAULT_LIMITS,
    BatchError,
    parse_actuals,
    parse_events,
    parse_reference,
    validate_model_name,
)
from watchkeeper.store.base import SchemaConflictError, Store, UnknownModelError
from watchkeeper.store.keys import KeyStore

from .auth import require

_BATCH_TYPES = {
    "application/json": {"schema": {"type": "object"}},
    "application/x-ndjson": {"schema": {"type": "string"}},
    "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
}
_REFERENCE_TYPES = {
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "text/csv": {"schema": {"type": "string"}},
}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes on the wire (413)."""
    too_large = APIError(
        413, "too_large", f"the body is larger than {limit} bytes; send smaller batches"
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(
    request: Request, parse: Callable[[bytes, str | None, str | None], pa.Table]
) -> pa.Table:
    """Read a batch body and normalize it with ``parse`` (off the event loop)."""
    body = await read_body(request, DEFAULT_LIMITS.max_body_bytes)
    headers = request.headers
    return await run_in_threadpool(
        parse, body, headers.get("content-type"), headers.get("content-encoding")
    )


def ingest_router(store: Store, keys: KeyStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1/models", tags=["ingest"])
    can_ingest = Depends(require(keys, "ingest"))

    @router.post(
        "/{model}/predictions",
        response_model=EventsAccepted,
        dependencies=[can_ingest],
        responses=ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": _BATCH_TYPES}},
        summary="Send a batch of prediction events",
    )
    async def post_predictions(
        model: str,
        request: Request,
        task: Literal["classification", "regression", "llm"] | None = Query(
            None, description="The model's task; inferred from the first batches when absent"
        ),
    ) -> dict[str, Any]:
        validate_model_name(model)
        try:
            batch = await parse_body(request, parse_events)
            result = await run_in_threadpool(store.ingest_events, model, batch, task=task)
        except (BatchError, SchemaConflictError) as exc:
            if exc.status in (400, 413, 415, 422):  # refusals: server health, and data
                # quality of a model already known (record_rejected tells them apart)
                rows = getattr(exc, "error_count", None) or max(1, len(exc.details))
                await run_in_threadpool(store.record_rejected, model, exc.code, rows)
            raise
        return {"accepted": result.accepted, "duplicates": result.duplicates}

    @router.post(
        "/{model}/actuals",
        response_model=ActualsAccepted,
        dependencies=[can_ingest],
        responses=ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": _BATCH_TYPES}},
        summary="Send ground truth for earlier predictions, joined by event_id",
    )
    async def post_actuals(model: str, request: Request) -> dict[str, Any]:
        validate_model_name(model)
        if not store.has_model(model):  # 404 before reading a large body
            raise UnknownModelError(f"no model named {model!r}; send predictions to create it")
        batch = await parse_body(request, parse_actuals)
        result = await run_in_threadpool(store.ingest_actuals, model, batch)
        return {"accepted": result.accepted, "unmatched": result.unmatched}

    @router.put(
        "/{model}/reference",
        response_model=ReferenceAccepted,
        dependencies=[can_ingest],
        responses=ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": _REFERENCE_TYPES}},
        summary="Upload the reference (training) dataset as Parquet or CSV",
    )
    async def put_reference(
        model: str,
        request: Request,
        version: str | None = Query(None, max_length=128, description="Only for this version"),
    ) -> dict[str, Any]:
        validate_model_name(model)
        body = await read_body(request, DEFAULT_LIMITS.max_body_bytes)
        ref = await run_in_threadpool(parse_reference, body, request.headers.get("content-type"))
        rows = await run_in_threadpool(store.put_reference, model, version, ref.table, ref.schema)
        return {"rows": rows, "features": ref.schema, "version": version}

    return router
