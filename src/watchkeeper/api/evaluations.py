"""Evaluation routes: a model's evaluated LLM calls, worst first, each with its call."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from watchkeeper.api.models import _utc, bad_param, parse_segment
from watchkeeper.api.schemas import ERRORS
from watchkeeper.evaluators.settings import EVALUATORS
from watchkeeper.store.base import Store
from watchkeeper.store.keys import KeyStore

from .auth import require


def evaluations_router(store: Store, keys: KeyStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1/models", tags=["evaluations"])
    can_read = Depends(require(keys, "read"))

    @router.get("/{model}/evaluations", dependencies=[can_read], responses=ERRORS)
    async def list_evaluations(
        model: str,
        evaluator: str | None = Query(None, description="one evaluator name, e.g. groundedness"),
        flagged: bool | None = Query(None, description="only flagged (true) or unflagged"),
        start: datetime | None = Query(None, description="calls at or after (call time)"),
        end: datetime | None = Query(None, description="calls before (call time)"),
        limit: int = Query(100, ge=1, le=1000),
        version: str | None = Query(None, max_length=128, description="calls of one version"),
        segment: str | None = Query(None, description="name:value", max_length=300),
    ) -> dict[str, Any]:
        """Evaluations of the model's calls, worst first (flagged first, then the lowest
        score, or the highest for pii, toxicity and refusal), each with the call's prompt,
        response, latency, cost and trace id."""
        if evaluator is not None and evaluator not in EVALUATORS:
            raise bad_param("evaluator", f"must be one of {', '.join(EVALUATORS)}")
        start_ = _utc(start) if start else None
        end_ = _utc(end) if end else None
        if start_ and end_ and start_ >= end_:
            raise bad_param("start", "must be before end")
        if not store.has_model(model):
            store.get_model(model)  # raises the store's 404
        seg = parse_segment(segment)
        rows = await run_in_threadpool(
            functools.partial(
                store.list_evaluations,
                model,
                evaluator,
                flagged,
                start_,
                end_,
                limit,
                version=version,
                segment=seg,
            )
        )
        return {"model": model, "evaluations": rows}

    return router
