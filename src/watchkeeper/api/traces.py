"""Trace routes: the list of traces with filters, and one trace as a span tree.

A trace is every span stored under one trace id (see
:mod:`watchkeeper.store.duckdb_traces`). The list is newest first and pages with an opaque
cursor; one trace carries its spans depth first with their ``depth``, the prompt and
response of its LLM calls, their evaluations, and the trace's feedback.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from watchkeeper.api.errors import APIError
from watchkeeper.api.schemas import ERRORS
from watchkeeper.evaluators.settings import EVALUATORS
from watchkeeper.otlp.decode import Span, SpanEvent
from watchkeeper.otlp.genai import prompt_text, response_text
from watchkeeper.store.base import Store
from watchkeeper.store.keys import KeyStore

from .auth import require

MAX_LIMIT: Final = 500
DEFAULT_RANGE: Final = timedelta(hours=24)
TRACE_STATUSES: Final = ("ok", "error")
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")


def encode_cursor(start: datetime, trace_id: str) -> str:
    """The opaque position after a listed trace (its start and id)."""
    delta = start.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    micros = delta // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}:{trace_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (start, trace_id) of a cursor; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, trace_id = raw.split(":", 1)
        start = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(micros))
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise ValueError("not a cursor from a previous page") from None
    if not _TRACE_ID.match(trace_id):
        raise ValueError("not a cursor from a previous page")
    return start, trace_id


def bad_filter(field: str, reason: str) -> APIError:
    """A 422 ``invalid_parameter`` naming the parameter and what is wrong with it (as every
    other endpoint answers a bad query parameter)."""
    return APIError(
        422,
        "invalid_parameter",
        f"{field}: {reason}",
        [{"row": None, "field": field, "reason": reason}],
    )


def _time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad_filter(field, f"expected an ISO 8601 time, got {value[:64]!r}") from None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _number(value: str | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise bad_filter(field, f"expected a number, got {value[:64]!r}") from None
    if not number >= 0 or number == float("inf"):
        raise bad_filter(field, "must be a finite number >= 0")
    return number


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise bad_filter("flagged", f"expected true or false, got {value[:64]!r}")


def _limit(value: str | None) -> int:
    if value is None:
        return 100
    try:
        limit = int(value)
    except ValueError:
        raise bad_filter("limit", f"expected an integer, got {value[:64]!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_filter("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def list_filters(
    *,
    model: str | None,
    status: str | None,
    min_latency_ms: str | None,
    min_cost_usd: str | None,
    evaluator: str | None,
    flagged: str | None,
    conversation_id: str | None,
    start: str | None,
    end: str | None,
    limit: str | None,
    cursor: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``Store.list_traces`` (limit + 1, to see if more follow),
    or a 422 naming the first bad parameter."""
    if status is not None and status not in TRACE_STATUSES:
        raise bad_filter("status", f"must be one of {', '.join(TRACE_STATUSES)}")
    if evaluator is not None and evaluator not in EVALUATORS:
        raise bad_filter("evaluator", f"must be one of {', '.join(EVALUATORS)}")
    end_ = _time(end, "end") or (now or datetime.now(timezone.utc))
    start_ = _time(start, "start") or end_ - DEFAULT_RANGE
    if start_ >= end_:
        raise bad_filter("start", "must be before end")
    before = None
    if cursor is not None:
        try:
            before = decode_cursor(cursor)
        except ValueError as exc:
            raise bad_filter("cursor", str(exc)) from None
    return {
        "start": start_,
        "end": end_,
        "model": model,
        "status": status,
        "min_latency_ms": _number(min_latency_ms, "min_latency_ms"),
        "min_cost_usd": _number(min_cost_usd, "min_cost_usd"),
        "evaluator": evaluator,
        "flagged": _flag(flagged),
        "conversation_id": conversation_id,
        "limit": _limit(limit) + 1,
        "before": before,
    }


def _as_span(row: Mapping[str, Any]) -> Span:
    """A stored span as the decoder's Span, for the prompt/response extraction."""
    events = [
        SpanEvent(str(e.get("name", "")), int(e.get("time") or 0), dict(e.get("attributes") or {}))
        for e in row.get("events") or []
        if isinstance(e, dict)
    ]
    return Span(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        name=row["name"] or "",
        kind=row["kind"] or "unspecified",
        start_time_unix_nano=0,
        end_time_unix_nano=0,
        status_code=row["status"] or "unset",
        status_message=row["status_message"] or "",
        attributes=dict(row.get("attributes") or {}),
        events=events,
    )


def trace_detail(store: Store, trace_id: str) -> dict[str, Any] | None:
    """The trace with prompt/response and evaluations on its LLM spans, and its feedback."""
    trace = store.get_trace(trace_id)
    if trace is None:
        return None
    llm_by_model: dict[str, list[str]] = {}
    for span in trace["spans"]:
        if span["is_llm"]:
            as_span = _as_span(span)
            span["prompt"] = prompt_text(as_span)
            span["response"] = response_text(as_span)
            llm_by_model.setdefault(span["model"], []).append(span["span_id"])
        span["evaluations"] = []
    by_span: dict[str, list[dict[str, Any]]] = {}
    for model, ids in llm_by_model.items():
        if not store.has_model(model):
            continue  # its events were all rejected: nothing was evaluated
        for evaluation in store.evaluations_for(model, ids):
            by_span.setdefault(evaluation["event_id"], []).append(evaluation)
    for span in trace["spans"]:
        span["evaluations"] = by_span.get(span["span_id"], [])
    trace["feedback"] = store.list_feedback(trace_id=trace_id, limit=1000)
    return trace


def traces_router(store: Store, keys: KeyStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["traces"])
    can_read = Depends(require(keys, "read"))

    @router.get("/traces", dependencies=[can_read], responses=ERRORS)
    async def list_traces(
        model: str | None = Query(None, max_length=128, description="a span of this model"),
        status: str | None = Query(None, description="ok or error (a span failed)"),
        min_latency_ms: str | None = Query(None, description="trace duration at least"),
        min_cost_usd: str | None = Query(None, description="total cost at least"),
        evaluator: str | None = Query(None, description="evaluated by this evaluator"),
        flagged: str | None = Query(None, description="true: an evaluation flagged"),
        conversation_id: str | None = Query(None, max_length=1024),
        start: str | None = Query(None, description="first span at or after (default end-24h)"),
        end: str | None = Query(None, description="first span before (default now)"),
        limit: str | None = Query(None, description=f"1..{MAX_LIMIT}, default 100"),
        cursor: str | None = Query(None, max_length=200, description="next_cursor of a page"),
    ) -> dict[str, Any]:
        """Traces whose first span starts in [start, end), newest first, with their
        duration, span and LLM-call counts, tokens, cost, status and flags per evaluator."""
        kwargs = list_filters(
            model=model,
            status=status,
            min_latency_ms=min_latency_ms,
            min_cost_usd=min_cost_usd,
            evaluator=evaluator,
            flagged=flagged,
            conversation_id=conversation_id,
            start=start,
            end=end,
            limit=limit,
            cursor=cursor,
        )
        limit_ = kwargs["limit"] - 1
        traces = await run_in_threadpool(lambda: store.list_traces(**kwargs))
        next_cursor = None
        if len(traces) > limit_:
            traces = traces[:limit_]
            last = traces[-1]
            next_cursor = encode_cursor(last["start"], last["trace_id"])
        return {"traces": traces, "next_cursor": next_cursor}

    @router.get("/traces/{trace_id}", dependencies=[can_read], responses=ERRORS)
    async def get_trace(trace_id: str) -> dict[str, Any]:
        """One trace: its spans depth first (with depth, attributes, events, resource), the
        prompt, response and evaluations of its LLM calls, and its feedback."""
        if not _TRACE_ID.match(trace_id):
            raise bad_filter("trace_id", "expected 32 hex digits")
        trace = await run_in_threadpool(trace_detail, store, trace_id.lower())
        if trace is None:
            raise APIError(404, "not_found", f"no trace {trace_id.lower()}")
        return trace

    return router
