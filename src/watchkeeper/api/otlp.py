"""``POST /v1/traces``: OTLP/HTTP trace export (protobuf or JSON, gzip) -> spans and events.

Every span is kept in the store's ``spans`` table (one write per request) for the trace
views; spans that are LLM calls also become events of the model named by their
``service.name`` (task ``llm``). With ``evaluators.redact_pii`` on, personal data is redacted
from the spans and events before anything is stored. The reply is an
``ExportTraceServiceResponse`` in the request's format; LLM spans that could not be stored
are counted in ``partialSuccess``. A full write queue answers 503 with Retry-After, which
OpenTelemetry exporters retry (spans are keyed by trace and span id, event ids are span ids,
so a resent request stores nothing twice).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.concurrency import run_in_threadpool

from watchkeeper.api.errors import APIError
from watchkeeper.api.ingest import read_body
from watchkeeper.api.schemas import ERRORS
from watchkeeper.llm.prices import PriceTable
from watchkeeper.otlp.decode import PROTOBUF, Format, request_format
from watchkeeper.otlp.prepare import Chunk, ExportPool, prepare_export
from watchkeeper.schema import DEFAULT_LIMITS, BatchError
from watchkeeper.schema.batch import receipt_time
from watchkeeper.schema.events import events_from_rows
from watchkeeper.store.base import Store, StoreBusyError, StoreError
from watchkeeper.store.keys import KeyStore

from .auth import require

_TYPES = {
    PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "object"}},
}


def redact_pii(state: Any) -> bool:
    """Whether the server's ``evaluators.redact_pii`` setting is on (off when unset)."""
    return bool(getattr(getattr(state, "evaluator_settings", None), "redact_pii", False))


def ingest_export(
    store: Store,
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    prices: PriceTable | None = None,
    redact: bool = False,
    pool: ExportPool | None = None,
) -> tuple[int, str]:
    """Decode one export (in ``pool``'s worker processes when given) and store all its
    spans (one write) and its LLM-call events, the two writes in flight together; returns
    (LLM spans rejected, first reasons)."""
    now = receipt_time(None)
    if pool is not None:
        prepared = pool.prepare(body, content_type, content_encoding, redact, now)
    else:
        prepared = prepare_export(body, content_type, content_encoding, prices, redact, now)
    # The spans and the valid events go to the store's writer as one request (they share a
    # group commit, and a full queue refuses them together: the exporter's retry is safe,
    # spans are keyed by ids and events by span ids); chunks with invalid events follow.
    ready = [c for c in prepared.chunks if c.table is not None]
    answers = store.ingest_export(prepared.spans, [(c.model, c.table) for c in ready])
    rejected = 0
    reasons: list[str] = []
    for chunk, answer in zip(ready, answers, strict=True):
        if isinstance(answer, StoreError):
            assert chunk.table is not None
            bad, reason = _refused(store, chunk.model, chunk.table.num_rows, answer)
            rejected += bad
            reasons.append(f"{chunk.model}: {reason}")
    invalid = [c for c in prepared.chunks if c.table is None]
    more, why = store_chunks(store, invalid, now)
    return rejected + more, "; ".join([*reasons, *([why] if why else [])][:5])


def store_chunks(store: Store, chunks: list[Chunk], now: datetime) -> tuple[int, str]:
    """Store prepared chunks of LLM events; returns (events rejected, first reasons).

    A chunk whose rows do not make a valid batch is stored without its invalid events;
    StoreBusyError (and a closing store) propagate for a 503.
    """
    rejected = 0
    reasons: list[str] = []
    for chunk in chunks:
        if chunk.table is not None:
            bad, reason = _store_table(store, chunk.model, chunk.table)
        else:
            assert chunk.error is not None  # prepare_export keeps the rows with their error
            bad, reason = _store_valid(store, chunk.model, chunk.rows, chunk.error, now)
        rejected += bad
        if reason:
            reasons.append(f"{chunk.model}: {reason}")
    return rejected, "; ".join(reasons[:5])


def _store_valid(
    store: Store, model: str, events: list[dict[str, Any]], exc: BatchError, now: datetime
) -> tuple[int, str | None]:
    """Events that made ``exc`` as a batch: the valid ones are stored, the rest counted."""
    reason = _reason(exc)
    good = [] if exc.status != 422 else [e for e in events if _valid(e, now)]
    store.record_rejected(model, exc.code, len(events) - len(good))
    if not good or len(good) == len(events):
        return len(events), reason
    try:
        table = events_from_rows(good, now)
    except BatchError as again:  # valid one by one, not together
        rest, _ = _store_valid(store, model, good, again, now)
    else:
        rest, _ = _store_table(store, model, table)
    return len(events) - len(good) + rest, reason


def _store_table(store: Store, model: str, table: pa.Table) -> tuple[int, str | None]:
    try:
        store.ingest_events(model, table, task="llm")
    except StoreError as exc:
        return _refused(store, model, table.num_rows, exc)
    return 0, None


def _refused(store: Store, model: str, rows: int, exc: StoreError) -> tuple[int, str]:
    """A batch the store refused: counted (503s propagate, for the exporter to retry)."""
    if exc.status == 503:
        raise exc
    store.record_rejected(model, exc.code, rows)
    return rows, str(exc)


def _valid(event: dict[str, Any], now: datetime) -> bool:
    try:
        events_from_rows([event], now)
    except BatchError:
        return False
    return True


def _reason(exc: BatchError) -> str:
    detail = next(iter(exc.details), None)
    if detail:
        return f"{detail.get('field')}: {detail.get('reason')}"
    return exc.message


def export_response(fmt: Format, rejected: int, message: str) -> Response:
    """An ExportTraceServiceResponse in the request's format."""
    if fmt is Format.PROTOBUF:
        reply = ExportTraceServiceResponse()
        if rejected or message:
            reply.partial_success.rejected_spans = rejected
            reply.partial_success.error_message = message
        return Response(reply.SerializeToString(), media_type=PROTOBUF)
    body: dict[str, Any] = {}
    if rejected or message:  # int64 is a string in the protobuf JSON mapping
        body["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return Response(orjson.dumps(body), media_type="application/json")


def status_response(status: int, message: str, headers: Mapping[str, str]) -> Response:
    """An OTLP/protobuf error body: a google.rpc.Status (code 2 field 1, message field 2)."""
    code = {400: 3, 413: 8, 415: 3, 503: 14}.get(status, 2)  # gRPC status codes
    text = message.encode()
    body = b"\x08" + bytes([code]) + b"\x12" + _varint(len(text)) + text
    return Response(body, status_code=status, media_type=PROTOBUF, headers=dict(headers))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def otlp_router(store: Store, keys: KeyStore) -> APIRouter:
    router = APIRouter(tags=["otlp"])
    can_ingest = Depends(require(keys, "ingest"))

    @router.post(
        "/v1/traces",
        dependencies=[can_ingest],
        responses={**ERRORS, 200: {"content": _TYPES}},
        response_class=Response,
        openapi_extra={"requestBody": {"required": True, "content": _TYPES}},
        summary="OTLP/HTTP trace export: spans are kept, LLM calls become events",
    )
    async def post_traces(request: Request) -> Response:
        content_type = request.headers.get("content-type")
        fmt = request_format(content_type)  # 415 before reading the body
        try:
            body = await read_body(request, DEFAULT_LIMITS.max_body_bytes)
            rejected, message = await run_in_threadpool(
                ingest_export,
                store,
                body,
                content_type,
                request.headers.get("content-encoding"),
                getattr(request.app.state, "prices", None),
                redact_pii(request.app.state),
                getattr(request.app.state, "otlp_pool", None),
            )
        except (APIError, BatchError, StoreError) as exc:
            if fmt is not Format.PROTOBUF:
                raise
            headers = getattr(exc, "headers", None) or {}
            if isinstance(exc, StoreBusyError):
                headers = {"Retry-After": str(exc.retry_after)}
            elif getattr(exc, "status", 500) == 503:
                headers = {"Retry-After": "5"}
            return status_response(exc.status, getattr(exc, "message", str(exc)), headers)
        return export_response(fmt, rejected, message)

    return router
