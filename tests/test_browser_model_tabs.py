"""The model page's Operations, Quality, Data quality and LLM tabs in real headless Chromium
against a real server fed by the simulator (plus a few LLM events and API monitors): each
tab loads without console errors or failed requests, its charts hold exactly what the JSON
API answers for the request the page made, the monitors' thresholds and learned bands are
drawn on the charts they watch, the version filter and the range picker change what is
asked for, and a refresh keeps the user's zoom."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from browser_helpers import PageWatch, fill, open_page, screenshot, upload_reference
from conftest import RunningServer, running_server
from watchkeeper.simulator import ETA_MODEL, FRAUD_MODEL

pytestmark = pytest.mark.browser

LLM_MODEL = "chat-assistant"
UNLABELLED = "fresh-classifier"
MONITORS: list[dict[str, Any]] = [
    {"name": "fraud-latency", "model": FRAUD_MODEL, "metric": "latency_p95", "window": "5m",
     "condition": {"type": "static", "op": "above", "threshold": 40}},
    {"name": "fraud-errors", "model": FRAUD_MODEL, "metric": "error_rate", "window": "1m",
     "condition": {"type": "multi_level", "op": "above", "warning": 0.02, "critical": 0.05}},
    {"name": "fraud-p99-band", "model": FRAUD_MODEL, "metric": "latency_p99", "window": "1m",
     "condition": {"type": "dynamic", "seasonality": "none", "min_history": 5, "lookback": "30m"}},
    {"name": "fraud-accuracy", "model": FRAUD_MODEL, "metric": "accuracy", "window": "5m",
     "condition": {"type": "static", "op": "below", "threshold": 0.9}},
    {"name": "fraud-cvv-missing", "model": FRAUD_MODEL, "metric": "missing_rate:cvv_match",
     "window": "5m", "condition": {"type": "static", "op": "above", "threshold": 0.5}},
    {"name": "eta-mae", "model": ETA_MODEL, "metric": "mae", "window": "5m",
     "condition": {"type": "static", "op": "above", "threshold": 8}},
    {"name": "chat-ttft", "model": LLM_MODEL, "metric": "ttft_p95", "window": "5m",
     "condition": {"type": "static", "op": "above", "threshold": 500}},
]  # fmt: skip


class Site:
    """A filled server and the custom range (not live: no refresh timer) the tests view."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        self.start = _iso(now - timedelta(minutes=24))
        self.end = _iso(now + timedelta(minutes=2))

    def path(self, model: str, tab: str, **params: str) -> str:
        query = {"range": "custom", "start": self.start, "end": self.end, **params}
        return f"/models/{model}/{tab}?" + "&".join(f"{k}={v}" for k, v in query.items())

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, cookies={"wk_key": self.server.read_key})


def _llm_events(rng: random.Random, minutes: int) -> list[dict[str, Any]]:
    now = time.time()
    events = []
    for i in range(minutes * 6):
        tokens_in, tokens_out = rng.randint(50, 800), rng.randint(20, 400)
        events.append(
            {
                "timestamp": now - minutes * 60 + i * 10,
                "version": "gpt-a" if i % 3 else "gpt-b",
                "prompt": "Where is my parcel?",
                "response": "It left the depot.",
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "time_to_first_token_ms": rng.lognormvariate(5.5, 0.4),
                "latency_ms": rng.lognormvariate(7, 0.3),
                "cost_usd": tokens_in * 1e-6 + tokens_out * 3e-6,
            }
        )
    return events


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One server for the module: 20 simulated minutes, fraud-scorer's reference, LLM calls
    of two versions, a classifier without labels, and monitors of every kind."""
    with running_server(tmp_path_factory.mktemp("model-tabs")) as server:
        upload_reference(server, FRAUD_MODEL, rows=4000)
        fill(server, minutes=20)
        with server.client() as client:
            llm = client.post(
                f"/api/v1/models/{LLM_MODEL}/predictions?task=llm",
                json={"events": _llm_events(random.Random(3), 20)},
            )
            assert llm.status_code == 200, llm.text
            fresh = [{"score": 0.3, "prediction": 0, "latency_ms": 12.0} for _ in range(40)]
            assert client.post(f"/api/v1/models/{UNLABELLED}/predictions", json=fresh).is_success
            for monitor in MONITORS:
                created = client.post("/api/v1/monitors", json=monitor)
                assert created.status_code == 201, created.text
        server.handle.app.state.store.refresh()
        server.handle.app.state.store.refresh_features()  # data quality: every event binned
        yield Site(server)


def traces(page: Page, plot: str) -> list[dict[str, Any]]:
    """The Plotly traces drawn in ``#plot``: name, x, y and meta of each."""
    got: list[dict[str, Any]] = page.evaluate(
        """(id) => document.getElementById(id).data.map((t) => ({
             name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || []),
             meta: t.meta || null, yaxis: t.yaxis || "y"}))""",
        f"plot-{plot}",
    )
    return got


def data_trace(drawn: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [t for t in drawn if t["name"] == name and not (t["meta"] or {}).get("monitor")]
    assert len(found) == 1, [t["name"] for t in drawn]
    return found[0]


def overlays(drawn: list[dict[str, Any]], monitor: str, kind: str) -> list[dict[str, Any]]:
    return [
        t
        for t in drawn
        if (t["meta"] or {}).get("monitor") == monitor and t["meta"]["kind"] == kind
    ]


def stat(page: Page, key: str) -> float | None:
    raw = page.locator(f'[data-stat="{key}"]').get_attribute("data-value")
    return None if raw in (None, "") else float(raw)


def close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    """An ISO time as Plotly keeps it (``2026-11-30 22:00:00`` or with ``T``/``Z``), in UTC."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def expect_clean(watch: PageWatch, allowed: tuple[str, ...] = ()) -> None:
    problems = [p for p in watch.problems if not any(a in p for a in allowed)]
    assert problems == []


# --------------------------------------------------------------------------- operations


def test_operations_charts_hold_the_api_numbers_and_monitor_overlays(
    site: Site, chromium: Browser
) -> None:
    page, watch, requests = open_page(chromium, site.server, site.path(FRAUD_MODEL, "operations"))
    with site.api() as api:
        series_url = requests.last(f"/models/{FRAUD_MODEL}/metrics?", "window=1m")
        answer = api.get(series_url).json()
        totals = api.get(requests.last(f"/models/{FRAUD_MODEL}/metrics?", "window=all")).json()
        band = api.get(requests.last("/monitors/fraud-p99-band/series?")).json()

    latency = traces(page, "latency")
    for name in ("p50", "p95", "p99"):
        drawn = data_trace(latency, name)
        assert drawn["x"] == answer["windows"]
        assert drawn["y"] == answer["metrics"][f"latency_{name}"]
    errors = traces(page, "error_rate")
    assert data_trace(errors, "error rate")["y"] == answer["metrics"]["error_rate"]
    throughput = data_trace(traces(page, "throughput"), "events/s")
    assert (
        throughput["y"]
        and throughput["y"] == answer["metrics"]["throughput"][: len(throughput["y"])]
    )
    assert sum(1 for c in answer["metrics"]["count"] if c) > 15  # the data is really there

    # range totals as tiles, from the window=all answer
    for key in ("count", "error_rate", "latency_p95"):
        assert close(stat(page, key), totals["metrics"][key][0])

    # static threshold (5m monitor on a 1m chart: still drawn), warning + critical levels,
    # and the learned band equal to the engine's per-window band
    (line,) = overlays(latency, "fraud-latency", "threshold")
    assert (
        line["y"] == [40, 40] and "monitor fraud-latency" in line["name"] and "5m" in line["name"]
    )
    levels = {t["meta"]["level"]: t["y"][0] for t in overlays(errors, "fraud-errors", "threshold")}
    assert levels == {"warning": 0.02, "critical": 0.05}
    (upper,) = overlays(latency, "fraud-p99-band", "band_upper")
    assert upper["name"] == "p99 band (monitor fraud-p99-band)"
    windows = band["series"][0]["windows"]
    assert upper["y"] == [w["band"]["upper"] for w in windows]
    assert any(v is not None for v in upper["y"])  # armed within the range
    assert len(overlays(latency, "fraud-p99-band", "band_lower")) == 1

    screenshot(page, "model-operations")
    expect_clean(watch)
    page.context.close()


def test_refresh_keeps_the_users_zoom(site: Site, chromium: Browser) -> None:
    """Live range (its end moves with every refresh): a zoom survives the next refresh."""
    page, watch, _ = open_page(chromium, site.server, f"/models/{FRAUD_MODEL}/operations?range=1h")
    now = datetime.now(UTC).replace(microsecond=0)
    zoom_x = [_iso(now - timedelta(minutes=30)), _iso(now - timedelta(minutes=20))]
    page.evaluate(
        "([x]) => Plotly.relayout('plot-latency', {'xaxis.range': x, 'yaxis.range': [0, 500]})",
        [zoom_x],
    )
    before = page.locator("#status").inner_text()
    page.wait_for_timeout(1100)  # the status shows seconds: the next one will differ
    page.evaluate("WK.refresh()")
    page.wait_for_function("(s) => document.getElementById('status').textContent !== s", arg=before)
    layout = page.evaluate(
        "(() => { const l = document.getElementById('plot-latency').layout;"
        " return [l.xaxis.range, l.yaxis.range]; })()"
    )
    assert [_parse(v) for v in layout[0]] == [_parse(v) for v in zoom_x]
    assert layout[1] == [0, 500]
    # an untouched chart still follows the live range, which ends now
    other = page.evaluate("document.getElementById('plot-throughput').layout.xaxis.range")
    assert _parse(other[1]) > now - timedelta(seconds=5)
    expect_clean(watch)
    page.context.close()


def test_range_picker_keeps_version_and_segment(site: Site, chromium: Browser) -> None:
    path = f"/models/{ETA_MODEL}/operations?range=1h&version=v1&segment=city:london"
    page, watch, requests = open_page(chromium, site.server, path)
    assert "version=v1" in requests.last(f"/models/{ETA_MODEL}/metrics?")
    page.locator("#range-picker a", has_text="24 h").click()
    page.wait_for_url("**range=24h**")
    page.wait_for_selector("body[data-loaded=true]")
    params = query(page.url)
    assert params["range"] == "24h" and params["version"] == "v1"
    assert params["segment"] == "city:london"
    asked = query(requests.last(f"/models/{ETA_MODEL}/metrics?", "window=15m"))
    assert asked["version"] == "v1" and asked["segment"] == "city:london"
    tab_links = page.locator("nav.tabs a").evaluate_all("(links) => links.map((a) => a.href)")
    assert all("version=v1" in href and "range=24h" in href for href in tab_links)
    expect_clean(watch)
    page.context.close()


# --------------------------------------------------------------------------- quality


def test_quality_classification_with_label_coverage(site: Site, chromium: Browser) -> None:
    page, watch, requests = open_page(chromium, site.server, site.path(FRAUD_MODEL, "quality"))
    with site.api() as api:
        answer = api.get(requests.last(f"/models/{FRAUD_MODEL}/metrics?", "window=1m")).json()
        totals = api.get(requests.last(f"/models/{FRAUD_MODEL}/metrics?", "window=all")).json()
    m = answer["metrics"]
    quality = traces(page, "quality")
    for name, metric in [("accuracy", "accuracy"), ("F1", "f1"), ("ROC AUC", "roc_auc"),
                         ("precision", "precision"), ("recall", "recall")]:  # fmt: skip
        assert data_trace(quality, name)["y"] == m[metric]
    assert any(v is not None for v in m["accuracy"])
    coverage = traces(page, "coverage")
    assert data_trace(coverage, "labelled events")["y"] == m["labeled_count"]
    covered = data_trace(coverage, "label coverage")
    assert covered["y"] == m["label_coverage"] and covered["yaxis"] == "y2"
    (line,) = overlays(quality, "fraud-accuracy", "threshold")
    assert line["y"] == [0.9, 0.9] and "below" in line["name"]
    assert close(stat(page, "accuracy"), totals["metrics"]["accuracy"][0])
    assert close(stat(page, "label_coverage"), totals["metrics"]["label_coverage"][0])
    assert (
        page.locator("#card-no-labels").count() == 0 or page.locator("#card-no-labels").is_hidden()
    )
    screenshot(page, "model-quality")
    expect_clean(watch)
    page.context.close()


def test_quality_regression_and_the_version_filter(site: Site, chromium: Browser) -> None:
    page, watch, requests = open_page(chromium, site.server, site.path(ETA_MODEL, "quality"))
    with site.api() as api:
        answer = api.get(requests.last(f"/models/{ETA_MODEL}/metrics?", "window=1m")).json()
        everything = stat(page, "mae")
        assert data_trace(traces(page, "errors"), "MAE")["y"] == answer["metrics"]["mae"]
        assert data_trace(traces(page, "errors"), "RMSE")["y"] == answer["metrics"]["rmse"]
        assert data_trace(traces(page, "r2"), "R²")["y"] == answer["metrics"]["r2"]
        (line,) = overlays(traces(page, "errors"), "eta-mae", "threshold")
        assert line["y"] == [8, 8]
        screenshot(page, "model-quality-regression")

        page.select_option("#filter-version", "v2")
        page.wait_for_url("**version=v2**")
        page.wait_for_selector("body[data-loaded=true]")
        url = requests.last(f"/models/{ETA_MODEL}/metrics?", "window=all")
        assert query(url)["version"] == "v2"
        only_v2 = api.get(url).json()["metrics"]["mae"][0]
        assert close(stat(page, "mae"), only_v2) and not close(only_v2, everything)
        per_window = api.get(requests.last(f"/models/{ETA_MODEL}/metrics?", "window=1m")).json()
        assert data_trace(traces(page, "errors"), "MAE")["y"] == per_window["metrics"]["mae"]
    expect_clean(watch)
    page.context.close()


def test_quality_says_when_no_labels_arrived_yet(site: Site, chromium: Browser) -> None:
    page, watch, _ = open_page(chromium, site.server, site.path(UNLABELLED, "quality"))
    note = page.locator("#card-no-labels")
    assert note.is_visible()
    assert "No labels yet" in note.inner_text() and "/actuals" in note.inner_text()
    assert stat(page, "label_coverage") == 0
    screenshot(page, "model-quality-no-labels")
    expect_clean(watch)
    page.context.close()


# --------------------------------------------------------------------------- data quality


def test_data_quality_charts_and_worst_features(site: Site, chromium: Browser) -> None:
    page, watch, requests = open_page(chromium, site.server, site.path(FRAUD_MODEL, "data-quality"))
    with site.api() as api:
        answer = api.get(requests.last(f"/models/{FRAUD_MODEL}/data-quality?", "window=1m")).json()
        total = api.get(requests.last(f"/models/{FRAUD_MODEL}/data-quality?", "window=all")).json()
    missing = traces(page, "missing")
    cvv = data_trace(missing, "cvv_match")  # the simulator leaves a third of cvv_match empty
    assert cvv["x"] == [w["start"] for w in answer["windows"]]
    assert cvv["y"] == [w["features"]["cvv_match"]["missing_rate"] for w in answer["windows"]]
    (line,) = overlays(missing, "fraud-cvv-missing", "threshold")
    assert line["y"] == [0.5, 0.5]
    out_of_range = traces(page, "out_of_range")
    for t in out_of_range:
        assert t["y"] == [w["features"][t["name"]]["out_of_range_rate"] for w in answer["windows"]]
    duplicates = data_trace(traces(page, "duplicates"), "duplicate rate")
    assert duplicates["y"] == [w["duplicate_rate"] for w in answer["windows"]]

    first = page.locator("#worst-features tbody tr").first
    assert first.get_attribute("data-feature") == "cvv_match"
    shown = first.locator('[data-col="missing_rate"]').get_attribute("data-value")
    assert close(
        float(shown or "nan"), total["windows"][0]["features"]["cvv_match"]["missing_rate"]
    )
    assert close(stat(page, "rows"), total["windows"][0]["rows"])
    screenshot(page, "model-data-quality")
    expect_clean(watch)
    page.context.close()


def test_data_quality_without_reference_says_how_to_add_one(site: Site, chromium: Browser) -> None:
    page, watch, requests = open_page(chromium, site.server, site.path(ETA_MODEL, "data-quality"))
    with site.api() as api:
        refused = api.get(requests.last(f"/models/{ETA_MODEL}/data-quality?"))
    assert refused.status_code == 409
    card = page.locator("#card-no-reference")
    assert card.is_visible()
    assert refused.json()["error"]["message"] in card.inner_text()
    assert page.locator("#error").is_hidden()  # explained, not an error
    screenshot(page, "model-data-quality-no-reference")
    expect_clean(watch, allowed=("409", "status of 409"))
    page.context.close()


# --------------------------------------------------------------------------- LLM


def test_llm_tab_charts_and_version_filter(site: Site, chromium: Browser) -> None:
    page, watch, requests = open_page(chromium, site.server, site.path(LLM_MODEL, "llm"))
    with site.api() as api:
        answer = api.get(requests.last(f"/models/{LLM_MODEL}/metrics?", "window=1m")).json()
        m = answer["metrics"]
        tokens = traces(page, "tokens")
        assert data_trace(tokens, "tokens in")["y"] == m["input_tokens"]
        assert data_trace(tokens, "tokens out")["y"] == m["output_tokens"]
        assert data_trace(traces(page, "cost"), "cost")["y"] == m["cost_usd"]
        ttft = traces(page, "ttft")
        for name in ("p50", "p95", "p99"):
            assert data_trace(ttft, name)["y"] == m[f"ttft_{name}"]
        (line,) = overlays(ttft, "chat-ttft", "threshold")
        assert line["y"] == [500, 500]
        calls = stat(page, "count")
        screenshot(page, "model-llm")

        page.select_option("#filter-version", "gpt-b")
        page.wait_for_url("**version=gpt-b**")
        page.wait_for_selector("body[data-loaded=true]")
        url = requests.last(f"/models/{LLM_MODEL}/metrics?", "window=all")
        assert query(url)["version"] == "gpt-b"
        only_b = api.get(url).json()["metrics"]
        assert close(stat(page, "count"), only_b["count"][0]) and stat(page, "count") != calls
        assert close(stat(page, "cost_usd"), only_b["cost_usd"][0])
    expect_clean(watch)
    page.context.close()


def test_llm_tab_explains_what_to_send_for_other_models(site: Site, chromium: Browser) -> None:
    page, watch, _ = open_page(chromium, site.server, site.path(FRAUD_MODEL, "llm"))
    card = page.locator("#card-no-llm")
    assert card.is_visible()
    text = card.inner_text()
    assert "input_tokens" in text and "time_to_first_token_ms" in text and "cost_usd" in text
    assert page.locator("#panel .plot").count() == 0  # no empty charts
    screenshot(page, "model-llm-none")
    expect_clean(watch)
    page.context.close()


def test_segment_filter_narrows_every_request_and_chart(site: Site, chromium: Browser) -> None:
    """Choosing a segment value in the filter puts it in the URL and in every metrics request;
    the charts then hold that segment's numbers, not all traffic's."""
    page, watch, requests = open_page(chromium, site.server, site.path(FRAUD_MODEL, "operations"))
    options = page.locator("#filter-segment option").evaluate_all("os => os.map(o => o.value)")
    assert "region:eu" in options and "" in options  # filled from /segments
    with site.api() as api:
        everything = api.get(requests.last(f"/models/{FRAUD_MODEL}/metrics?", "window=all"))
        page.select_option("#filter-segment", "region:eu")
        page.wait_for_url("**segment=region%3Aeu**")
        page.wait_for_selector("body[data-loaded=true]")
        url = requests.last(f"/models/{FRAUD_MODEL}/metrics?", "window=1m")
        assert query(url)["segment"] == "region:eu"
        answer = api.get(url).json()
        drawn = data_trace(traces(page, "latency"), "p95")
        assert drawn["y"] == answer["metrics"]["latency_p95"]
        totals_url = requests.last(f"/models/{FRAUD_MODEL}/metrics?", "window=all")
        eu = api.get(totals_url).json()["metrics"]["count"][0]
        assert close(stat(page, "count"), eu)
        assert 0 < eu < everything.json()["metrics"]["count"][0]
    assert page.locator("#filter-segment").input_value() == "region:eu"
    expect_clean(watch)
    page.context.close()
