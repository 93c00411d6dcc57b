"""Liveness and readiness probes (no key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from watchkeeper._version import __version__
from watchkeeper.api.errors import error_response
from watchkeeper.api.schemas import ERRORS, Health
from watchkeeper.store.base import Store


def health_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health)
    def healthz() -> dict[str, Any]:
        """The process is up."""
        return {"status": "ok", "version": __version__}

    @router.get("/readyz", response_model=Health, responses={503: ERRORS[503]})
    def readyz() -> Any:
        """The store accepts writes (its writer is running and its queue is not full)."""
        if not store.ready():
            return error_response(
                503, "not_ready", "the store is not ready", headers={"Retry-After": "1"}
            )
        return {"status": "ready", "version": __version__}

    return router
