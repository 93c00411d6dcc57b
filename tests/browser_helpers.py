"""What every browser test needs: sign in, fill a server from the simulator, and watch a
page for console errors, page errors and failed requests."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response

from conftest import RunningServer
from watchkeeper.simulator import Simulator, reference_csv

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


class PageWatch:
    """Everything that went wrong in a page: console errors, exceptions, failed requests."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        self.metric_urls: dict[str, str] = {}
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("requestfailed", lambda req: self.problems.append(f"failed: {req.url}"))
        page.on("response", self._response)
        page.on("request", self._remember)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(f"{response.status} {response.url}")

    def _remember(self, request: Request) -> None:
        if "/metrics?" in request.url:
            self.metric_urls[request.url.split("/models/")[1].split("/")[0]] = request.url


def sign_in(page: Page, url: str, key: str) -> None:
    """Sign in through the form; the browser keeps the cookie for the next pages."""
    page.goto(url + "/")
    assert page.url == url + "/login"  # not signed in yet: sent to the sign-in form
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")


def fill(server: RunningServer, minutes: float) -> None:
    sim = Simulator(server.url, server.admin_key, rate=20.0, seed=1)
    sent = sim.backfill(minutes)
    sim.stop()  # flushes and closes the SDK clients
    with server.client() as client:
        for _ in range(100):
            models = client.get("/api/v1/models").json()["models"]
            if sum(m["event_count"] for m in models) == sent:
                server.handle.app.state.store.refresh()  # late labels into the aggregates now
                return
            time.sleep(0.1)
    raise AssertionError("the server did not store every simulated event")


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot saved as a test artefact (test-artifacts/NAME.png)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def upload_reference(server: RunningServer, model: str, rows: int) -> None:
    """The simulator's reference (training) data for MODEL, uploaded as CSV."""
    with server.client() as client:
        put = client.put(
            f"/api/v1/models/{model}/reference",
            content=reference_csv(model, rows=rows).encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert put.status_code == 200, put.text


class Requests:
    """The API requests a page made, in order."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        page.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        if "/api/v1/" in request.url:
            self.urls.append(request.url)

    def last(self, *parts: str) -> str:
        """The last request whose URL holds every one of ``parts``."""
        found = [u for u in self.urls if all(p in u for p in parts)]
        assert found, f"no request with {parts}; made: {self.urls}"
        return found[-1]


def open_page(
    browser: Browser, server: RunningServer, path: str, key: str | None = None
) -> tuple[Page, PageWatch, Requests]:
    """A page signed in with ``key`` (default: the read key) by the session cookie the
    sign-in form sets, showing ``path`` once loaded."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    cookie = key or server.read_key
    context.add_cookies([{"name": "wk_key", "value": cookie, "url": server.url}])
    page = context.new_page()
    watch = PageWatch(page)
    requests = Requests(page)
    page.goto(server.url + path)
    page.wait_for_selector("body[data-loaded=true]")
    return page, watch, requests
