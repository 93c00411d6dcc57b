"""Human feedback on LLM calls, and how far automatic evaluators agree with people.

``POST /api/v1/feedback`` takes one item or ``{"feedback": [...]}`` (all-or-nothing: one
invalid item rejects the request, every problem listed by row and field). A verdict becomes
the call's ``human`` evaluation and a corrected answer its actual (see
:mod:`watchkeeper.store.duckdb_feedback`). ``GET /api/v1/models/{m}/feedback/agreement``
compares the human verdicts with an evaluator's on the same calls (Cohen's kappa).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from watchkeeper.api.errors import APIError
from watchkeeper.api.ingest import read_body
from watchkeeper.api.models import bad_param
from watchkeeper.api.schemas import ERRORS
from watchkeeper.evaluators.agreement import binary_agreement
from watchkeeper.evaluators.settings import EVALUATORS as ALL_EVALUATORS
from watchkeeper.schema import BatchError
from watchkeeper.schema.contract import DEFAULT_LIMITS
from watchkeeper.schema.decode import decompress
from watchkeeper.schema.errors import RowErrors
from watchkeeper.schema.values import json_type, parse_rfc3339
from watchkeeper.store.base import Store
from watchkeeper.store.keys import KeyStore

from .auth import require

MAX_ITEMS = 1000
MAX_BODY = 80 * 1024 * 1024  # 1000 items with long corrected answers
MAX_ID = 1024
MAX_COMMENT = 4096
MAX_BY = 256
# The evaluators a person's verdict can be compared with (docs/llm.md): all but "human".
EVALUATORS = tuple(e for e in ALL_EVALUATORS if e != "human")
_TEXT = {
    "model": 128,
    "event_id": MAX_ID,
    "trace_id": MAX_ID,
    "feedback_id": MAX_ID,
    "comment": MAX_COMMENT,
    "corrected_answer": DEFAULT_LIMITS.max_text_len,
    "by": MAX_BY,
}
_LIMITS = replace(DEFAULT_LIMITS, max_body_bytes=MAX_BODY)
FIELDS = frozenset({*_TEXT, "thumbs", "score", "timestamp"})
_VERDICT = ("thumbs", "score", "comment", "corrected_answer")


def parse_feedback(body: bytes, now: datetime | None = None) -> list[dict[str, Any]]:
    """The feedback items of a request body, checked; a BatchError (422) lists every problem
    by row (0-based; a single object is row 0), field and reason."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BatchError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    if isinstance(doc, dict) and "feedback" in doc and "model" not in doc:
        rows = doc["feedback"]
        if not isinstance(rows, list):
            raise BatchError(
                422,
                "invalid_request",
                "feedback must be a list",
                [{"row": None, "field": "feedback", "reason": "expected a list of objects"}],
            )
    elif isinstance(doc, dict):
        rows = [doc]
    else:
        raise BatchError(
            422,
            "invalid_request",
            'send one feedback object or {"feedback": [...]}',
            [{"row": None, "field": None, "reason": f"expected an object, got {json_type(doc)}"}],
        )
    if not rows:
        raise BatchError(
            422,
            "invalid_request",
            "no feedback items",
            [{"row": None, "field": "feedback", "reason": "the list is empty"}],
        )
    if len(rows) > MAX_ITEMS:
        raise BatchError(
            413, "too_large", f"{len(rows)} feedback items; send at most {MAX_ITEMS} per request"
        )
    received = now or datetime.now(timezone.utc)
    errs = RowErrors(len(rows), "feedback items")
    items = [_item(i, row, errs, received) for i, row in enumerate(rows)]
    errs.raise_if_any()
    return items


def _item(i: int, row: Any, errs: RowErrors, now: datetime) -> dict[str, Any]:
    if not isinstance(row, dict):
        errs.add(i, None, f"expected an object, got {json_type(row)}")
        return {}
    for name in sorted(set(row) - FIELDS):
        errs.add(i, name, "unknown field")
    out: dict[str, Any] = {}
    for name, limit in _TEXT.items():
        value = row.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errs.add(i, name, f"expected a string, got {json_type(value)}")
        elif not value.strip():
            errs.add(i, name, "must not be empty")
        elif len(value) > limit:
            errs.add(i, name, f"longer than {limit} characters")
        else:
            out[name] = value
    if row.get("model") is None:
        errs.add(i, "model", "required")
    if row.get("event_id") is None and row.get("trace_id") is None:
        errs.add(i, "event_id", "required: the event_id and/or the trace_id the feedback is about")
    thumbs = row.get("thumbs")
    if thumbs is not None:
        if thumbs in ("up", "down"):
            out["thumbs"] = thumbs
        else:
            errs.add(i, "thumbs", "expected 'up' or 'down'")
    score = row.get("score")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            errs.add(i, "score", f"expected a number from 0 to 1, got {json_type(score)}")
        elif not (math.isfinite(score) and 0 <= score <= 1):
            errs.add(i, "score", "expected a number from 0 to 1")
        else:
            out["score"] = float(score)
    if all(row.get(name) is None for name in _VERDICT):
        errs.add(i, "thumbs", "needs at least one of thumbs, score, comment, corrected_answer")
    stamp = row.get("timestamp")
    if stamp is not None:
        micros = parse_rfc3339(stamp) if isinstance(stamp, str) else None
        if micros is None:
            errs.add(i, "timestamp", "expected an RFC 3339 timestamp")
        else:
            at = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)
            if at > now + DEFAULT_LIMITS.max_future:
                errs.add(i, "timestamp", "timestamp is in the future")
            else:
                out["created_at"] = at
    return out


def utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _bounds(
    start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """Optional [start, end) in aware UTC (naive means UTC); 422 unless start < end."""
    start = None if start is None else utc(start)
    end = None if end is None else utc(end)
    if start is not None and end is not None and start >= end:
        raise bad_param("start", "must be before end")
    return start, end


def feedback_router(store: Store, keys: KeyStore) -> APIRouter:
    router = APIRouter(tags=["feedback"])
    can_ingest = Depends(require(keys, "ingest"))
    can_read = Depends(require(keys, "read"))

    @router.post(
        "/api/v1/feedback",
        dependencies=[can_ingest],
        responses=ERRORS,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}
        },
        summary="Send human feedback on LLM calls (thumbs, score, comment, corrected answer)",
    )
    async def post_feedback(request: Request) -> dict[str, Any]:
        """One feedback object or ``{"feedback": [...]}`` (at most 1000); answered after the
        commit. A ``feedback_id`` already stored for the model stores nothing again."""
        body = await read_body(request, MAX_BODY)
        encoding = request.headers.get("content-encoding")  # the SDK sends gzip
        body = await run_in_threadpool(decompress, body, encoding, _LIMITS)
        items = await run_in_threadpool(parse_feedback, body)
        unknown = sorted({i["model"] for i in items if not store.has_model(i["model"])})
        if unknown:
            raise APIError(
                404,
                "unknown_model",
                f"no model named {unknown[0]!r}; send predictions to create it",
                [
                    {"row": n, "field": "model", "reason": f"no model named {i['model']!r}"}
                    for n, i in enumerate(items)
                    if i["model"] in unknown
                ],
            )
        results = await run_in_threadpool(store.record_feedback, items)
        duplicates = sum(1 for r in results if r["duplicate"])
        return {
            "accepted": len(results) - duplicates,
            "duplicates": duplicates,
            "feedback": results,
        }

    @router.get("/api/v1/feedback", dependencies=[can_read], responses=ERRORS)
    async def get_feedback(
        model: str | None = Query(None, max_length=128),
        event_id: str | None = Query(None, max_length=MAX_ID),
        trace_id: str | None = Query(None, max_length=MAX_ID),
        start: datetime | None = Query(None, description="inclusive, by the feedback's time"),
        end: datetime | None = Query(None, description="exclusive"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Feedback, newest first, filtered by model, call, trace and time."""
        start, end = _bounds(start, end)
        rows = await run_in_threadpool(
            lambda: store.list_feedback(model, event_id, trace_id, start, end, limit)
        )
        return {"feedback": rows}

    @router.get(
        "/api/v1/models/{model}/feedback/agreement", dependencies=[can_read], responses=ERRORS
    )
    async def get_agreement(
        model: str,
        evaluator: str = Query("judge_correctness", description="compared with the humans"),
        start: datetime | None = Query(None, description="inclusive, by the call's time"),
        end: datetime | None = Query(None, description="exclusive"),
    ) -> dict[str, Any]:
        """Human verdicts (flagged or not) against an evaluator's on the same calls: number of
        pairs, agreement rate, Cohen's kappa and the 2x2 confusion; null values carry a
        ``reason`` (no pairs, or one verdict only)."""
        if evaluator not in EVALUATORS:
            raise bad_param("evaluator", f"must be one of {list(EVALUATORS)}")
        start, end = _bounds(start, end)
        pairs = await run_in_threadpool(store.verdict_pairs, model, evaluator, start, end)
        return {"model": model, "evaluator": evaluator, **binary_agreement(pairs).as_dict()}

    return router
