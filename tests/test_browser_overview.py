"""The overview page in real headless Chromium against a real server fed by the simulator."""

from __future__ import annotations

import math
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    Response,
)

from conftest import RunningServer
from watchkeeper.simulator import ETA_MODEL, FRAUD_MODEL, Simulator

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# column -> (metric name, decimals, scale): the same rules as FORMAT in web/static/overview.js
COLUMNS = {
    "throughput": ("throughput", 2, 1),
    "latency_p95": ("latency_p95", 1, 1),
    "error_rate": ("error_rate", 2, 100),
}


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


def js_fixed(value: float, digits: int, scale: float = 1) -> str:
    """JavaScript's ``(value * scale).toFixed(digits)``: ties round away from zero."""
    exact = Decimal(value * scale)
    return str(exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def shown(value: float | None, digits: int, scale: float = 1) -> str:
    return "—" if value is None else js_fixed(value, digits, scale)


def check_row(row: Locator, model: dict[str, Any], value: dict[str, float | None]) -> None:
    """The row's cells show the API's values with the page's formatting rules."""

    def cell(col: str) -> Locator:
        return row.locator(f'[data-col="{col}"]')

    for col, (metric, digits, scale) in COLUMNS.items():
        number = value[metric]
        assert number is not None
        assert cell(col).locator(".value").inner_text() == shown(number, digits, scale)
        assert math.isclose(float(cell(col).get_attribute("data-value") or "nan"), number)
    classifier = model["task"] == "classification"
    assert model["task"] == ("classification" if model["name"] == FRAUD_MODEL else "regression")
    quality, digits, scale = ("accuracy", 1, 100) if classifier else ("mae", 2, 1)
    assert cell("quality").get_attribute("data-metric") == quality
    assert value[quality] is not None, f"{model['name']} has no labelled events yet"
    assert cell("quality").locator(".value").inner_text() == shown(value[quality], digits, scale)
    coverage = cell("label_coverage").locator(".value").inner_text()
    assert coverage == shown(value["label_coverage"], 0, 100)
    assert cell("task").inner_text() == model["task"].capitalize()
    assert "ago" in cell("last_seen").inner_text()


def sign_in(page: Page, url: str, key: str) -> None:
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


def test_overview_shows_the_api_numbers_for_each_model(
    server: RunningServer, chromium: Browser
) -> None:
    """Signed in with a read key, each model's row shows exactly what the JSON API returns."""
    fill(server, minutes=4)
    page = chromium.new_page(viewport={"width": 1360, "height": 640})
    watch = PageWatch(page)
    sign_in(page, server.url, server.read_key)
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator("#model-rows tr").count() == 2

    with httpx.Client(base_url=server.url, cookies={"wk_key": server.read_key}) as api:
        models = {m["name"]: m for m in api.get("/api/v1/models").json()["models"]}
        assert set(models) == {FRAUD_MODEL, ETA_MODEL} == set(watch.metric_urls)
        for name, model in models.items():
            # the exact query the page made, asked again by us: same numbers expected
            metrics: dict[str, Any] = api.get(watch.metric_urls[name]).json()["metrics"]
            row = page.locator(f'#model-rows tr[data-model="{name}"]')
            check_row(row, model, {k: v[0] for k, v in metrics.items()})

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    assert watch.problems == []


def test_overview_updates_rows_in_place(server: RunningServer, chromium: Browser) -> None:
    """The 5-second refresh keeps the same row elements (no flicker) and picks up new models."""
    fill(server, minutes=1)
    page = chromium.new_page()
    watch = PageWatch(page)
    sign_in(page, server.url, server.read_key)
    page.wait_for_selector("body[data-loaded=true]")
    page.evaluate("document.querySelector('#model-rows tr').dataset.marker = 'kept'")
    first = page.locator("#status").inner_text()
    with server.client() as client:
        client.post("/api/v1/models/third-model/predictions", json=[{"latency_ms": 5}])
    page.wait_for_selector('#model-rows tr[data-model="third-model"]', timeout=12_000)
    assert page.locator("#status").inner_text() != first
    assert page.locator('#model-rows tr[data-marker="kept"]').count() == 1
    assert watch.problems == []


def test_overview_shows_an_empty_state_without_models(
    server: RunningServer, chromium: Browser
) -> None:
    """With no data yet the page says so and shows how to send the first event."""
    page = chromium.new_page()
    watch = PageWatch(page)
    sign_in(page, server.url, server.read_key)
    page.wait_for_selector("body[data-loaded=true]")
    assert page.get_by_role("heading", name="No models yet").is_visible()
    assert not page.locator(".table-wrap").is_visible()
    assert watch.problems == []


def test_overview_shows_api_failures(server: RunningServer, chromium: Browser) -> None:
    """When the API answers with an error the page shows a visible alert naming it."""
    page = chromium.new_page()
    sign_in(page, server.url, server.read_key)
    page.wait_for_selector("body[data-loaded=true]")
    page.route(
        "**/api/v1/models",
        lambda route: route.fulfill(status=500, json={"detail": "store unavailable"}),
    )
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    alert = page.get_by_role("alert")
    alert.wait_for(timeout=8_000)
    assert "HTTP 500: store unavailable" in alert.inner_text()
