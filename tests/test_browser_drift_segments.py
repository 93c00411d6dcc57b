"""The Drift and Segments tabs in real headless Chromium against a real server fed by the
simulator: the heat-map holds the /drift/timeline numbers, a clicked cell opens the /drift
histogram and stays in the URL, and the segments table ranks the /segments values."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from browser_helpers import PageWatch, fill, screenshot, sign_in, upload_reference
from conftest import RunningServer, running_server
from watchkeeper.simulator import ETA_MODEL, FRAUD_MODEL

pytestmark = pytest.mark.browser

MINUTES = 12


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    """One server for the module: a reference for the fraud scorer (none for the ETA model),
    MINUTES of simulated traffic, binned; and a fixed custom range around it (no live
    refresh, so the page and the test read the same numbers)."""
    with running_server(tmp_path_factory.mktemp("drift-segments")) as server:
        upload_reference(server, FRAUD_MODEL, rows=4000)
        fill(server, minutes=MINUTES)
        server.handle.app.state.store.refresh_features()
        end = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=2)
        start = end - timedelta(minutes=MINUTES + 4)
        query = f"range=custom&start={_iso(start)}&end={_iso(end)}"
        yield server, query


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _open(chromium: Browser, server: RunningServer) -> tuple[Page, PageWatch, list[str]]:
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    watch = PageWatch(page)
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    sign_in(page, server.url, server.read_key)
    page.wait_for_selector("body[data-loaded=true]")  # the overview's requests are done
    return page, watch, requests


def _api(server: RunningServer, url: str) -> Any:
    with httpx.Client(cookies={"wk_key": server.read_key}, timeout=30) as api:
        r = api.get(url)
    assert r.status_code == 200, r.text
    return r.json()


def _click_cell(page: Page, feature: str, column: int) -> None:
    """A real mouse click at the centre of the heat-map cell (feature, column)."""
    x, y = page.evaluate(
        """([feature, column]) => {
            const gd = document.getElementById("plot-drift-heatmap");
            const L = gd._fullLayout;
            const box = gd.getBoundingClientRect();
            return [L.xaxis.d2p(gd.data[0].x[column]) + L._size.l + box.left,
                    L.yaxis.d2p(feature) + L._size.t + box.top];
        }""",
        [feature, column],
    )
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def _check_histogram(page: Page, server: RunningServer, requests: list[str], cell: str) -> None:
    """The open histogram shows the numbers of the page's own /drift request for the cell."""
    feature, _, start = cell.rpartition("@")
    card = page.locator(f'#card-drift-histogram[data-feature="{feature}"][data-window="{start}"]')
    card.wait_for(timeout=10_000)
    asked = [u for u in requests if "/drift?" in u and f"start={start.replace(':', '%3A')}" in u]
    assert asked, "the page did not ask /drift for the cell"
    params = parse_qs(urlsplit(asked[-1]).query)
    assert params["features"] == [feature] and params["multivariate"] == ["false"]
    result = _api(server, asked[-1])["features"][0]
    stats = {
        name: page.locator(f'#histogram-stats [data-stat="{name}"] .value').inner_text()
        for name in ("method", "statistic", "threshold", "severity", "n")
    }
    assert stats["method"] == result["method"]
    assert stats["statistic"] == f"{result['statistic']:.4f}"
    assert stats["threshold"] == f"{result['warn_threshold']:.2f} / {result['threshold']:.2f}"
    assert result["severity"] in stats["severity"]
    assert stats["n"] == f"{result['n_current']:,} / {result['n_reference']:,}"
    bars = page.evaluate(
        "() => document.getElementById('plot-drift-histogram').data"
        ".map((t) => ({name: t.name, x: t.x, y: t.y}))"
    )
    hist = result["histogram"]
    assert [b["name"] for b in bars] == ["reference", "window"]
    assert bars[0]["x"] == hist["labels"] == bars[1]["x"]
    assert bars[0]["y"] == pytest.approx([v * 100 for v in hist["reference"]])
    assert bars[1]["y"] == pytest.approx([v * 100 for v in hist["current"]])
    assert parse_qs(urlsplit(page.url).query)["cell"] == [cell]


def test_drift_heatmap_cells_open_their_histogram(
    filled: tuple[RunningServer, str], chromium: Browser
) -> None:
    """The heat-map holds /drift/timeline's numbers; clicking a drifted cell opens its
    histogram with /drift's numbers and puts the cell in the URL; a reload re-opens it, a
    refresh keeps it, and the keyboard list opens another cell the same way."""
    server, query = filled
    page, watch, requests = _open(chromium, server)
    page.goto(f"{server.url}/models/{FRAUD_MODEL}/drift?{query}")
    page.wait_for_selector("body[data-loaded=true]")

    timeline_urls = [u for u in requests if "/drift/timeline?" in u]
    assert len(timeline_urls) == 1
    timeline = _api(server, timeline_urls[0])
    heat = page.evaluate(
        "() => { const t = document.getElementById('plot-drift-heatmap').data[0];"
        " return {y: t.y, z: t.z, customdata: t.customdata, text: t.text}; }"
    )
    features = timeline["features"]
    assert heat["y"] == [f["feature"] for f in features]
    for row, f in enumerate(features):
        ratios = [None if s is None else s / f["threshold"] for s in f["statistic"]]
        assert heat["z"][row] == pytest.approx(ratios, nan_ok=True)
        cells = heat["customdata"][row]
        assert [c[0] for c in cells] == f["statistic"]
        assert [c[3] for c in cells] == f["severity"]
        assert [c[4] for c in cells] == f["n"]
        assert [c[6] for c in cells] == timeline["windows"]
        assert {c[2] for c in cells} == {f["method"]} and {c[1] for c in cells} == {f["threshold"]}
        # colour is not the only signal: drifted cells carry a symbol
        assert [t == "▲" for t in heat["text"][row]] == [s == "drift" for s in f["severity"]]
    flagged = [
        (f["feature"], i)
        for f in features
        for i, s in enumerate(f["severity"])
        if s == "drift" and f["n"][i] >= 100
    ]
    assert flagged, "the simulated traffic should drift from a reference spread over a day"
    screenshot(page, "model-drift")

    feature, column = flagged[0]
    cell = f"{feature}@{timeline['windows'][column]}"
    _click_cell(page, feature, column)
    _check_histogram(page, server, requests, cell)
    # the selected cell is outlined on the heat-map
    outline = page.evaluate(
        "() => document.getElementById('plot-drift-heatmap').layout.shapes.map((s) => s.x0)"
    )
    assert outline == [timeline["windows"][column]]
    page.mouse.move(0, 0)  # no hover label over the screenshot
    screenshot(page, "model-drift-histogram")

    asked = len([u for u in requests if "/drift?" in u])
    page.evaluate("WK.refresh()")  # what the periodic refresh runs; it keeps the open cell
    assert len([u for u in requests if "/drift?" in u]) == asked + 1
    assert page.locator("#card-drift-histogram").get_attribute("data-feature") == feature
    assert parse_qs(urlsplit(page.url).query)["cell"] == [cell]

    requests.clear()
    page.reload()
    page.wait_for_selector("body[data-loaded=true]")
    _check_histogram(page, server, requests, cell)

    # keyboard: a link of the flagged-cells list (focus, Enter) opens that cell instead
    listed = page.locator("#flagged-table tbody tr").evaluate_all(
        "(rows) => rows.map((r) => `${r.dataset.feature}@${r.dataset.window}`)"
    )
    assert cell in listed
    other_cell = next(c for c in listed if c != cell)
    feature_, _, window_ = other_cell.rpartition("@")
    other = page.locator(f'#flagged-table tr[data-feature="{feature_}"][data-window="{window_}"]')
    other.locator("a").focus()
    page.keyboard.press("Enter")
    _check_histogram(page, server, requests, other_cell)
    assert watch.problems == []


def test_drift_without_reference_explains_how_to_add_one(
    filled: tuple[RunningServer, str], chromium: Browser
) -> None:
    """A model without a reference shows how to add one, not an error."""
    server, query = filled
    page, watch, _ = _open(chromium, server)
    page.goto(f"{server.url}/models/{ETA_MODEL}/drift?{query}")
    page.wait_for_selector("body[data-loaded=true]")
    card = page.locator("#card-no-reference")
    assert card.get_by_role("heading", name="No reference to compare with").is_visible()
    assert f"PUT /api/v1/models/{ETA_MODEL}/reference" in card.inner_text()
    assert f"POST /api/v1/models/{ETA_MODEL}/reference/pin" in card.inner_text()
    assert page.locator("#plot-drift-heatmap").count() == 0
    assert not page.locator("#error").is_visible()
    assert watch.problems == []


def _worst_first(values: list[dict[str, Any]], metric: str, lower_is_worse: bool) -> list[str]:
    def key(v: dict[str, Any]) -> tuple[bool, float, int]:
        x = v["metrics"][metric]
        if x is None:
            return (True, 0.0, -v["metrics"]["count"])
        return (False, x if lower_is_worse else -x, -v["metrics"]["count"])

    return [v["value"] for v in sorted(values, key=key)]


def test_segments_table_ranks_the_api_values_worst_first(
    filled: tuple[RunningServer, str], chromium: Browser
) -> None:
    """The table lists /segments' values worst first for the chosen metric (higher error rate,
    lower accuracy), with its numbers; the choice is in the URL; a value links to Operations
    filtered to that segment."""
    server, query = filled
    page, watch, requests = _open(chromium, server)
    page.goto(f"{server.url}/models/{FRAUD_MODEL}/segments?{query}&by=region&metric=error_rate")
    page.wait_for_selector("body[data-loaded=true]")

    for metric, lower_is_worse in (("error_rate", False), ("accuracy", True)):
        asked = [u for u in requests if "/segments?" in u and f"names=count%2C{metric}" in u]
        assert asked, f"the page did not ask /segments for {metric}"
        data = _api(server, asked[-1])
        assert data["by"] == "region" and not data["truncated"]
        order = _worst_first(data["values"], metric, lower_is_worse)
        rows = page.locator("#segments-table tbody tr")
        assert rows.evaluate_all("(rs) => rs.map((r) => r.dataset.value)") == order
        by_value = {v["value"]: v["metrics"] for v in data["values"]}
        for i, value in enumerate(order):
            row = rows.nth(i)
            assert row.locator('[data-col="count"]').inner_text() == f"{by_value[value]['count']:,}"
            shown = row.locator('[data-col="metric"]').get_attribute("data-value")
            assert math.isclose(float(shown or "nan"), by_value[value][metric])
        bars = page.evaluate("() => document.getElementById('plot-segments-chart').data[0].y")
        assert [b.split(" (")[0] for b in bars] == [
            v for v in order if by_value[v][metric] is not None
        ]
        if metric == "error_rate":
            screenshot(page, "model-segments")
            page.select_option("#segments-metric", "accuracy")
            page.wait_for_url("**metric=accuracy**")
            expect(page.locator("#title-segments-table")).to_have_text("Accuracy by region")

    first = page.locator("#segments-table tbody tr").first
    value = first.get_attribute("data-value")
    link = first.locator("a")
    params = parse_qs(urlsplit(link.get_attribute("href") or "").query)
    assert params["segment"] == [f"region:{value}"]
    assert "by" not in params and "metric" not in params and params["range"] == ["custom"]
    link.click()
    page.wait_for_url(f"**/models/{FRAUD_MODEL}/operations?**")
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator("#filter-segment").input_value() == f"region:{value}"
    assert watch.problems == []
