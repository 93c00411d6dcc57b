"""The dashboard: server-rendered pages, a cookie sign-in, and the static files they use.

Pages read data through the same JSON API as everyone else (``/api/v1/...``, authenticated by
the ``wk_key`` cookie set here); this module only renders shells and handles the sign-in.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from functools import cache
from importlib.resources import files as package_files
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from watchkeeper._version import __version__

COOKIE_NAME = "wk_key"
# The model page's tabs, in the order the tab bar shows them: (path, label).
TABS = (
    ("operations", "Operations"),
    ("quality", "Quality"),
    ("drift", "Drift"),
    ("data-quality", "Data quality"),
    ("segments", "Segments"),
    ("llm", "LLM"),
    ("alerts", "Alerts"),
)
_TAB_LABELS = dict(TABS)
COOKIE_MAX_AGE = 30 * 24 * 3600  # sign in once a month
READ_SCOPES = frozenset({"read", "admin"})
_MAX_FORM_BYTES = 4096
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_HERE = Path(__file__).parent
_MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
# Scripts only from this server (no inline script, no eval). Styles also allow inline ones:
# plotly.js writes <style> elements and style attributes while it draws.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class KeyInfoLike(Protocol):
    """What the dashboard needs to know about a verified key."""

    @property
    def scope(self) -> str: ...

    @property
    def name(self) -> str | None: ...


VerifyKey = Callable[[str], KeyInfoLike | None]


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Every file in ``static/`` with its media type, read once (no path ever hits the disk)."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted((_HERE / "static").iterdir()):
        if path.is_file() and path.suffix in _MEDIA_TYPES:
            media = _MEDIA_TYPES[path.suffix]
            if media.startswith("text/"):
                media += "; charset=utf-8"
            files[path.name] = (path.read_bytes(), media)
    return files


@cache
def plotly_bundle() -> tuple[bytes, bytes, str]:
    """plotly.js as shipped inside the installed ``plotly`` Python package (its offline
    bundle), raw and gzipped, with the package's version: nothing comes from a CDN."""
    import plotly

    raw = package_files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
    return raw, gzip.compress(raw, compresslevel=6), str(plotly.__version__)


def web_router(verify_key: VerifyKey) -> APIRouter:
    """Routes for the dashboard pages, sign-in/out, static files and the favicon."""
    router = APIRouter(include_in_schema=False)
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    static = _load_static()

    def page(name: str, status_code: int = 200, **context: object) -> HTMLResponse:
        html = env.get_template(name).render(version=__version__, **context)
        return HTMLResponse(html, status_code=status_code, headers=_SECURITY_HEADERS)

    def signed_in(request: Request) -> KeyInfoLike | None:
        raw = request.cookies.get(COOKIE_NAME, "")
        info = verify_key(raw) if raw else None
        return info if info is not None and info.scope in READ_SCOPES else None

    def signed_in_page(request: Request, name: str, **context: object) -> Response:
        info = signed_in(request)
        if info is None:
            return RedirectResponse("/login", status_code=303)
        return page(name, 200, key_name=info.name, key_scope=info.scope, **context)

    @router.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> Response:
        return signed_in_page(request, "overview.html", nav="models")

    @router.get("/alerts", response_class=HTMLResponse)
    def alerts_page(request: Request) -> Response:
        return signed_in_page(request, "alerts.html", nav="alerts")

    @router.get("/monitors", response_class=HTMLResponse)
    def monitors_page(request: Request) -> Response:
        return signed_in_page(request, "monitors.html", nav="monitors")

    @router.get("/traces", response_class=HTMLResponse)
    def traces_page(request: Request) -> Response:
        return signed_in_page(request, "traces.html", nav="traces")

    @router.get("/traces/{trace_id}", response_class=HTMLResponse)
    def trace_page(trace_id: str, request: Request) -> Response:
        if not _TRACE_ID.fullmatch(trace_id):
            return page("not_found.html", 404, what="A trace id is 32 hexadecimal digits.")
        return signed_in_page(request, "trace.html", nav="traces", trace_id=trace_id.lower())

    @router.get("/models/{model}", response_class=HTMLResponse)
    def model_page(model: str, request: Request) -> Response:
        target = f"/models/{quote(model, safe='')}/operations"
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(target, status_code=307)

    @router.get("/models/{model}/{tab}", response_class=HTMLResponse)
    def model_tab(model: str, tab: str, request: Request) -> Response:
        if tab not in _TAB_LABELS:
            return page("not_found.html", 404, what=f"There is no “{tab}” tab.")
        return signed_in_page(request, "model.html", nav="models", model=model, tab=tab, tabs=TABS)

    @router.get("/login", response_class=HTMLResponse)
    def login_form() -> Response:
        return page("login.html", error=None)

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        body = await request.body()
        if len(body) > _MAX_FORM_BYTES:
            return page("login.html", 413, error="That request is too large to be an API key.")
        form = parse_qs(body.decode("utf-8", errors="replace"))
        raw = (form.get("api_key") or [""])[0].strip()
        info = verify_key(raw) if raw else None
        if not raw:
            return page("login.html", 400, error="Enter an API key.")
        if info is None:
            error = (
                "That key is not valid (or has been revoked). Create one with: "
                "watchkeeper keys create --scope read --data-dir DIR"
            )
            return page("login.html", 401, error=error)
        if info.scope not in READ_SCOPES:
            error = f"This is an {info.scope} key; sign in with a read or admin key."
            return page("login.html", 403, error=error)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            raw,
            max_age=COOKIE_MAX_AGE,
            path="/",
            httponly=True,
            samesite="strict",
        )
        return response

    @router.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    @router.get("/static/{name}")
    def static_file(name: str) -> Response:
        if name not in static:
            return Response("Not found", status_code=404, media_type="text/plain")
        content, media_type = static[name]
        return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @router.get("/static/vendor/plotly.min.js")
    def plotly_js(request: Request) -> Response:
        raw, packed, version = plotly_bundle()
        etag = f'"plotly-{version}"'
        headers = {
            "Cache-Control": "public, max-age=86400",
            "ETag": etag,
            "Vary": "Accept-Encoding",
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(packed, media_type="text/javascript; charset=utf-8", headers=headers)
        return Response(raw, media_type="text/javascript; charset=utf-8", headers=headers)

    @router.get("/favicon.ico")
    def favicon() -> Response:
        content, media_type = static["favicon.svg"]
        return Response(content, media_type=media_type, headers={"Cache-Control": "max-age=86400"})

    return router
