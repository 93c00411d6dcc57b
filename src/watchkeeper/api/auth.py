"""API-key authentication: ``Authorization: Bearer``, ``X-API-Key``, or the dashboard cookie.

The cookie (set by the dashboard's login page) is accepted on GET requests, and on writes only
together with the header ``X-Watchkeeper-Request`` that the dashboard's own scripts send: a
page from another site cannot add a custom header to a cross-site request without a CORS
pre-flight, which this server never grants, so it cannot make a signed-in browser write
anything (the cookie is also ``SameSite=Strict``).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from watchkeeper.api.errors import APIError
from watchkeeper.store.keys import KeyInfo, KeyStore

COOKIE = "wk_key"
CSRF_HEADER = "x-watchkeeper-request"


def presented_key(request: Request) -> str | None:
    """The key a request carries, if any."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    if request.method in ("GET", "HEAD") or request.headers.get(CSRF_HEADER):
        return request.cookies.get(COOKIE)
    return None


def require(keys: KeyStore, scope: str, *also: str) -> Callable[[Request], KeyInfo]:
    """A FastAPI dependency admitting keys that carry ``scope`` or one of ``also`` (or
    admin). ``also`` is for the few reads a serving process makes with its ingest key."""
    scopes = (scope, *also)
    wanted = " or ".join(f"'{s}'" for s in scopes)

    def dependency(request: Request) -> KeyInfo:
        raw = presented_key(request)
        if raw is None:
            raise APIError(
                401,
                "missing_api_key",
                "this route needs an API key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        info = keys.verify(raw)
        if info is None:
            raise APIError(
                401,
                "invalid_api_key",
                "the API key is unknown or revoked",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not any(info.allows(s) for s in scopes):
            raise APIError(
                403,
                "insufficient_scope",
                f"this route needs a key with scope {wanted} (or 'admin'); yours is '{info.scope}'",
            )
        return info

    return dependency
