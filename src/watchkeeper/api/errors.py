"""One error shape for every API failure: ``{"error": {code, message, details}}``.

``details`` lists ``{"row", "field", "reason"}`` items for bad batches and query parameters, so
a client can find exactly what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from watchkeeper.schema import BatchError
from watchkeeper.store.base import StoreBusyError, StoreError


class APIError(Exception):
    """An error the API answers with directly (auth, bad query parameters, ...)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
    error_count: int | None = None,
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message, "details": list(details)}
    if error_count is not None:
        body["error_count"] = error_count
    return Response(
        orjson.dumps({"error": body}),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Translate every known error class into the one error shape."""

    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    async def on_batch_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, BatchError)
        return error_response(
            exc.status, exc.code, exc.message, exc.details, error_count=exc.error_count
        )

    async def on_store_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreError)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, StoreBusyError) else {}
        if exc.status == 503 and not headers:
            headers = {"Retry-After": "5"}
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = [
            {
                "row": None,
                "field": ".".join(str(p) for p in err.get("loc", ())[1:]) or None,
                "reason": err.get("msg", "invalid"),
            }
            for err in exc.errors()
        ]
        return error_response(422, "invalid_request", "the request is invalid", details)

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(BatchError, on_batch_error)
    app.add_exception_handler(StoreError, on_store_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
