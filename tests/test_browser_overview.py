"""The overview page in real headless Chromium against a real server fed by the simulator:
every model's row shows what the JSON API says (numbers, sparklines, alerts, drift), worst
first."""

from __future__ import annotations

import json
import math
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Request

from browser_helpers import PageWatch, fill, screenshot, sign_in, upload_reference
from conftest import RunningServer
from tests.helpers import wait_for
from watchkeeper.simulator import ETA_MODEL, FRAUD_MODEL

pytestmark = pytest.mark.browser

# column -> (metric name, decimals, scale): the same rules as FORMAT in web/static/overview.js
COLUMNS = {
    "throughput": ("throughput", 2, 1),
    "latency_p95": ("latency_p95", 1, 1),
    "error_rate": ("error_rate", 2, 100),
}
SEVERITIES = ("critical", "warning", "info")


def js_fixed(value: float, digits: int, scale: float = 1) -> str:
    """JavaScript's ``(value * scale).toFixed(digits)``: ties round away from zero."""
    exact = Decimal(value * scale)
    return str(exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def shown(value: float | None, digits: int, scale: float = 1) -> str:
    return "—" if value is None else js_fixed(value, digits, scale)


class Calls:
    """The API calls the page made, by kind: the hour's numbers (``window=all``) and the
    sparklines (``window=1m``, kept by their start so a row is compared with the query it
    was drawn from), the drift summaries, and anything else."""

    def __init__(self, page: Page) -> None:
        self.hour: dict[str, str] = {}
        self.spark: dict[tuple[str, str], str] = {}
        self.drift: dict[str, str] = {}
        self.paths: set[str] = set()
        page.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if not parts.path.startswith("/api/"):
            return
        query = parse_qs(parts.query)
        model = parts.path.split("/models/")[1].split("/")[0] if "/models/" in parts.path else ""
        self.paths.add(parts.path.replace(model, "{m}") if model else parts.path)
        if parts.path.endswith("/metrics") and query.get("window") == ["all"]:
            self.hour[model] = request.url
        elif parts.path.endswith("/metrics") and query.get("window") == ["1m"]:
            self.spark[(model, iso_minute(query["start"][0]))] = request.url
        elif parts.path.endswith("/drift"):
            self.drift[model] = request.url


def iso_minute(text: str) -> str:
    return text.replace(".000Z", "Z").replace("+00:00", "Z")


def drift_state(summary: dict[str, int]) -> str:
    """The page's reading of a drift summary (driftCell in overview.js)."""
    if summary["drifted"] > 0:
        return "drifted"
    if summary["warned"] > 0:
        return "warned"
    if summary["features"] > 0 and summary["insufficient"] == summary["features"]:
        return "insufficient"
    return "ok"


def firing_counts(alerts: list[dict[str, Any]], model: str) -> Counter[str]:
    return Counter(a["severity"] for a in alerts if a["model"] == model and a["status"] == "firing")


def expected_order(
    api: httpx.Client, calls: Calls, names: list[str], drift: dict[str, str]
) -> list[str]:
    """Worst first, from the API: critical firing, warning firing, drifted, the rest; then
    the higher error rate, then the name."""
    alerts = api.get("/api/v1/alerts", params={"status": "open", "limit": 1000}).json()["alerts"]

    def key(name: str) -> tuple[int, float, str]:
        counts = firing_counts(alerts, name)
        rank = 0 if counts["critical"] else 1 if counts["warning"] else 2
        if rank == 2 and drift[name] != "drifted":
            rank = 3
        error_rate = api.get(calls.hour[name]).json()["metrics"]["error_rate"][0]
        return rank, -(error_rate if error_rate is not None else -1), name

    return sorted(names, key=key)


def page_order(page: Page) -> list[str]:
    return [
        str(m)
        for m in page.eval_on_selector_all(
            "#model-rows tr", "rows => rows.map(r => r.dataset.model)"
        )
    ]


def refreshed(page: Page) -> None:
    """Ask for a refresh now (as when the tab becomes visible) and wait until it is done."""
    before = page.locator("#status").inner_text()
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_function(
        "before => document.querySelector('#status').textContent !== before",
        arg=before,
        timeout=15_000,
    )


def check_numbers(row: Locator, model: dict[str, Any], value: dict[str, float | None]) -> None:
    """The row's cells show the API's values with the page's formatting rules."""

    def cell(col: str) -> Locator:
        return row.locator(f'[data-col="{col}"]')

    for col, (metric, digits, scale) in COLUMNS.items():
        number = value[metric]
        assert number is not None
        assert cell(col).locator(".text .value").inner_text() == shown(number, digits, scale)
        assert math.isclose(float(cell(col).get_attribute("data-value") or "nan"), number)
    classifier = model["task"] == "classification"
    assert model["task"] == ("classification" if model["name"] == FRAUD_MODEL else "regression")
    quality, digits, scale = ("accuracy", 1, 100) if classifier else ("mae", 2, 1)
    assert cell("quality").get_attribute("data-metric") == quality
    assert value[quality] is not None, f"{model['name']} has no labelled events yet"
    text = cell("quality").locator(":scope > .text")
    assert text.locator(".value").inner_text() == shown(value[quality], digits, scale)
    label = text.locator(".metric-name").inner_text()
    if classifier:  # F1 beside accuracy: accuracy alone flatters an imbalanced model
        assert value["f1"] is not None
        assert label == f"accuracy % · F1 {shown(value['f1'], 2)}"
    else:
        assert label == "MAE"
    coverage = cell("label_coverage").locator(".value").inner_text()
    assert coverage == shown(value["label_coverage"], 0, 100)
    assert cell("task").inner_text() == model["task"].capitalize()
    assert "ago" in cell("last_seen").inner_text()
    link = row.locator('[data-col="name"] a')
    assert link.inner_text() == model["name"]
    assert link.get_attribute("href") == f"/models/{model['name']}/operations"


def check_sparklines(row: Locator, name: str, calls: Calls, api: httpx.Client) -> int:
    """Each sparkline holds exactly the API's per-minute series and draws one point per
    minute with data; returns how many sparklines the row has."""
    sparks = row.locator("svg.spark")
    for i in range(sparks.count()):
        svg = sparks.nth(i)
        metric = svg.get_attribute("data-metric") or ""
        start = iso_minute(svg.get_attribute("data-start") or "")
        got = api.get(calls.spark[(name, start)]).json()
        want = got["metrics"][metric]
        assert len(want) == 60 == len(got["windows"])  # the last 60 whole minutes
        assert json.loads(svg.get_attribute("data-points") or "null") == want
        drawn = (
            sum(
                len((line.get_attribute("points") or "").split())
                for line in svg.locator("polyline").all()
            )
            + svg.locator("circle.spark-dot").count()
        )
        assert drawn == sum(v is not None for v in want) > 0
        assert svg.locator("circle.spark-last").count() == 1
        # said in words too (screen readers, hover): the range of the values, the last one
        label = svg.get_attribute("aria-label") or ""
        assert label == svg.locator("title").text_content()
        assert "per minute over the last hour: from " in label
    return sparks.count()


def add_monitor(api: httpx.Client, name: str, model: str, severity: str) -> None:
    """A latency monitor any traffic breaches: it fires on the scheduler's next run."""
    condition = {"type": "static", "op": "above", "threshold": 1, "severity": severity}
    body = {
        "name": name,
        "model": model,
        "metric": "latency_p95",
        "window": "1m",
        "condition": condition,
    }
    r = api.post("/api/v1/monitors", json=body)
    assert r.status_code == 201, r.text


def test_overview_rows_show_the_api_and_the_worst_come_first(
    server: RunningServer, chromium: Browser
) -> None:
    """Signed in with a read key, each row shows exactly what the JSON API returns — the
    hour's numbers, the per-minute sparklines, the firing alerts by severity and the drift
    summary — and a model whose critical alert starts firing moves to the top."""
    upload_reference(server, FRAUD_MODEL, rows=2000)  # first, so traffic is binned against it
    fill(server, minutes=4)
    server.handle.app.state.store.refresh_features()  # every event binned: drift is final
    page = chromium.new_page(viewport={"width": 1280, "height": 720})
    watch = PageWatch(page)
    calls = Calls(page)
    sign_in(page, server.url, server.read_key)
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator("#model-rows tr").count() == 2
    assert "Worst first" in page.locator("#order-note").inner_text()

    with httpx.Client(base_url=server.url, cookies={"wk_key": server.read_key}) as api:
        # drift: the API's summary for the page's own query; no reference, no request (no 409)
        fraud = api.get(calls.drift[FRAUD_MODEL]).json()["summary"]
        drift = {FRAUD_MODEL: drift_state(fraud), ETA_MODEL: "no-reference"}
        assert set(calls.drift) == {FRAUD_MODEL}
        for name, state in drift.items():
            cell = page.locator(f'#model-rows tr[data-model="{name}"] [data-col="drift"]')
            assert cell.get_attribute("data-state") == state
        fraud_cell = page.locator(f'#model-rows tr[data-model="{FRAUD_MODEL}"] [data-col="drift"]')
        assert fraud_cell.get_attribute("data-drifted") == str(fraud["drifted"])
        eta_cell = page.locator(f'#model-rows tr[data-model="{ETA_MODEL}"] [data-col="drift"]')
        assert eta_cell.inner_text() == "no reference"

        # nothing firing yet: every row says so, in words; order from the API's numbers
        for badge in page.locator('[data-col="health"] .badge').all():
            assert badge.inner_text() == "✓ OK"
        before = page_order(page)
        assert before == expected_order(api, calls, before, drift)

        # the model now last gets a critical alert, the other one a warning
        last, other = before[-1], before[0]
        with server.client() as admin:
            add_monitor(admin, "overview-critical", last, "critical")
            add_monitor(admin, "overview-warning", other, "warning")

        def both_firing() -> list[dict[str, Any]] | None:
            got = api.get("/api/v1/alerts", params={"status": "firing"}).json()["alerts"]
            return got if len(got) == 2 else None

        wait_for(both_firing, timeout=40)
        page.wait_for_function(
            "m => document.querySelector('#model-rows tr').dataset.model === m",
            arg=last,
            timeout=15_000,
        )
        refreshed(page)  # a whole refresh after the alerts: the DOM and the calls agree
        after = page_order(page)
        assert after == [last, other] == expected_order(api, calls, after, drift)

        alerts = api.get("/api/v1/alerts", params={"status": "open", "limit": 1000}).json()[
            "alerts"
        ]
        models = {m["name"]: m for m in api.get("/api/v1/models").json()["models"]}
        assert set(models) == {FRAUD_MODEL, ETA_MODEL} == set(calls.hour)
        for name, model in models.items():
            row = page.locator(f'#model-rows tr[data-model="{name}"]')
            health = row.locator('[data-col="health"]')
            counts = firing_counts(alerts, name)
            assert sum(counts.values()) == 1
            for sev in SEVERITIES:
                assert health.get_attribute(f"data-{sev}") == str(counts[sev])
                badge = health.locator(f'.badge[data-severity="{sev}"]')
                if counts[sev]:
                    symbol = "▲" if sev == "critical" else "●"
                    assert badge.inner_text() == f"{symbol} {counts[sev]} {sev}"
                    assert badge.get_attribute("href") == f"/models/{name}/alerts"
                else:
                    assert badge.count() == 0
            monitor = "overview-critical" if name == last else "overview-warning"
            assert (
                health.locator(".why")
                .inner_text()
                .startswith(f"{monitor} (latency_p95), firing for")
            )
            # the exact queries the page made, asked again by us: same numbers expected
            metrics: dict[str, Any] = api.get(calls.hour[name]).json()["metrics"]
            check_numbers(row, model, {k: v[0] for k, v in metrics.items()})
            assert check_sparklines(row, name, calls, api) == 4

    # the page's calls are the ones overview.js lists (the benchmark measures these)
    assert calls.paths == {
        "/api/v1/models",
        "/api/v1/alerts",
        "/api/v1/models/{m}",
        "/api/v1/models/{m}/metrics",
        "/api/v1/models/{m}/drift",
    }
    screenshot(page, "overview")
    assert watch.problems == []


def test_overview_updates_rows_in_place(server: RunningServer, chromium: Browser) -> None:
    """The 10-second refresh keeps the same row elements (no flicker) and picks up new models."""
    fill(server, minutes=1)
    page = chromium.new_page()
    watch = PageWatch(page)
    sign_in(page, server.url, server.read_key)
    page.wait_for_selector("body[data-loaded=true]")
    page.evaluate("document.querySelector('#model-rows tr').dataset.marker = 'kept'")
    page.evaluate("document.querySelector('#model-rows svg.spark').dataset.marker = 'kept'")
    first = page.locator("#status").inner_text()
    with server.client() as client:
        client.post("/api/v1/models/third-model/predictions", json=[{"latency_ms": 5}])
    page.wait_for_selector('#model-rows tr[data-model="third-model"]', timeout=20_000)
    assert page.locator("#status").inner_text() != first
    assert page.locator('#model-rows tr[data-marker="kept"]').count() == 1
    assert page.locator('#model-rows svg.spark[data-marker="kept"]').count() == 1
    # a model without a task or labels: no quality number, said as "no data", not a blank
    third = page.locator('#model-rows tr[data-model="third-model"]')
    assert third.locator('[data-col="quality"] > .text .value').inner_text() == "—"
    assert third.locator('[data-col="drift"]').get_attribute("data-state") == "no-reference"
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
    assert not page.locator("#order-note").is_visible()
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
