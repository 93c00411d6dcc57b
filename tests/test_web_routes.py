"""The dashboard's routes over HTTP: pages behind the sign-in, plotly.js from the installed
package (never a CDN), and the cookie's rules for writes."""

from __future__ import annotations

import gzip
import re
from importlib.resources import files

import httpx
import plotly
import pytest

from conftest import RunningServer
from watchkeeper.web.routes import TABS

PAGES = [
    "/",
    "/alerts",
    "/monitors",
    "/traces",
    "/traces/5b8efff798038103d269b633813fc60c",
    *(f"/models/m/{tab}" for tab, _ in TABS),
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_a_sign_in(server: RunningServer, path: str) -> None:
    response = httpx.get(server.url + path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_its_scripts(server: RunningServer, path: str) -> None:
    """Each page is HTML whose scripts all exist on the server (a missing one would be a
    console error in the browser), under a CSP that allows scripts from this server only."""
    cookies = {"wk_key": server.read_key}
    with httpx.Client(base_url=server.url, cookies=cookies) as client:
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-eval" not in csp
        scripts = re.findall(r'<script src="([^"]+)"', page.text)
        assert scripts, "every page draws with a script"
        assert "<script>" not in page.text  # no inline script (CSP would block it)
        for src in scripts:
            assert src.startswith("/static/"), src
            assert client.get(src).status_code == 200, src
        for href in re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text):
            assert client.get(href).status_code == 200


def test_model_page_has_a_tab_link_for_each_view(server: RunningServer) -> None:
    cookies = {"wk_key": server.read_key}
    with httpx.Client(base_url=server.url, cookies=cookies) as client:
        page = client.get("/models/fraud%20scorer/drift").text
    links = re.findall(r'href="(/models/[^"]+)"[^>]*>([^<]+)</a>', page)
    assert [label for _, label in links] == [label for _, label in TABS]
    assert links[0][0] == "/models/fraud%20scorer/operations"
    assert 'aria-current="page">Drift</a>' in page
    assert 'data-model="fraud scorer"' in page


def test_model_root_redirects_to_operations_keeping_the_view(server: RunningServer) -> None:
    cookies = {"wk_key": server.read_key}
    got = httpx.get(
        server.url + "/models/m?range=24h&version=v2", cookies=cookies, follow_redirects=False
    )
    assert got.status_code == 307
    assert got.headers["location"] == "/models/m/operations?range=24h&version=v2"


def test_a_trace_id_that_is_not_hex_is_a_404_page(server: RunningServer) -> None:
    got = httpx.get(server.url + "/traces/not-a-trace", cookies={"wk_key": server.read_key})
    assert got.status_code == 404
    assert "A trace id is 32 hexadecimal digits." in got.text


def test_unknown_tab_is_a_404_page(server: RunningServer) -> None:
    got = httpx.get(server.url + "/models/m/nonsense", cookies={"wk_key": server.read_key})
    assert got.status_code == 404
    assert "There is no “nonsense” tab." in got.text


def test_plotly_comes_from_the_installed_package(server: RunningServer) -> None:
    """The bundle is byte-for-byte the plotly package's offline plotly.min.js, gzipped for
    browsers that accept it, and revalidated by ETag."""
    shipped = files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
    with httpx.Client(base_url=server.url) as client:
        raw = client.get("/static/vendor/plotly.min.js", headers={"Accept-Encoding": "identity"})
        assert raw.status_code == 200
        assert raw.content == shipped
        assert "content-encoding" not in raw.headers
        packed = client.get("/static/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.content == shipped  # httpx decodes it
        assert int(packed.headers["content-length"]) < len(shipped) / 3
        etag = packed.headers["etag"]
        assert plotly.__version__ in etag
        again = client.get("/static/vendor/plotly.min.js", headers={"If-None-Match": etag})
        assert again.status_code == 304
    assert gzip.decompress(gzip.compress(shipped)) == shipped


def test_cookie_writes_need_the_dashboard_header(server: RunningServer) -> None:
    """A signed-in browser's cookie authorizes a write only with X-Watchkeeper-Request, which
    a page from another site cannot add without a CORS pre-flight (never granted)."""
    with httpx.Client(base_url=server.url, cookies={"wk_key": server.admin_key}) as client:
        body = {"model": "m", "duration": "10m", "comment": "from the page"}
        bare = client.post("/api/v1/silences", json=body)
        assert bare.status_code == 401
        assert bare.json()["error"]["code"] == "missing_api_key"
        made = client.post("/api/v1/silences", json=body, headers={"X-Watchkeeper-Request": "1"})
        assert made.status_code == 201, made.text
        preflight = client.options(
            "/api/v1/silences",
            headers={
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-watchkeeper-request",
            },
        )
        assert "access-control-allow-origin" not in preflight.headers
    with httpx.Client(base_url=server.url, cookies={"wk_key": server.read_key}) as client:
        denied = client.post("/api/v1/silences", json=body, headers={"X-Watchkeeper-Request": "1"})
        assert denied.status_code == 403
