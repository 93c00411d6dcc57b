"""The LLM tab's cost-per-call chart, evaluator charts and worst calls in real headless
Chromium, against a real server whose evaluator runner judged real LLM calls (sent through
the predictions API with prompt, response and retrieved context): each chart holds exactly
the metrics API's values for the request the page made, only the evaluator metrics with
results are drawn, the worst calls are the evaluations API's rows (each linking to its trace
view), and a model without evaluator results gets a card saying how to turn them on."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from browser_helpers import open_page, screenshot
from conftest import RunningServer, running_server

pytestmark = pytest.mark.browser

BOT = "support-bot"
PLAIN = "plain-llm"
CONTEXT = "Parcels leave the depot at 09:40. Delivery takes two working days."
ANSWERS = [
    "Parcels leave the depot at 09:40.",  # grounded
    "Your parcel was eaten by a dragon in Lisbon.",  # not in the context
    "I'm sorry, but I can't help with that request.",  # a refusal
    "Write to jane.doe@example.com for a refund.",  # PII
]
RATES = {"hallucination_rate", "pii_rate", "refusal_rate", "toxicity_rate"}


def _events(minutes: int) -> list[dict[str, Any]]:
    now = time.time()
    out = []
    for i in range(minutes * 3):
        tokens_in, tokens_out = 100 + 7 * i, 20 + 3 * i
        out.append(
            {
                "event_id": f"call-{i:04d}",
                "trace_id": f"{i + 1:032x}",
                "timestamp": now - minutes * 60 + i * 20,
                "version": "gpt-a" if i % 2 else "gpt-b",
                "prompt": f"Question {i}: when does my parcel leave?",
                "response": ANSWERS[i % len(ANSWERS)],
                "context": CONTEXT,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "latency_ms": 900.0 + i,
                "time_to_first_token_ms": 200.0 + i,
                "cost_usd": tokens_in * 1e-6 + tokens_out * 4e-6,
            }
        )
    return out


class Site:
    def __init__(self, server: RunningServer) -> None:
        self.server = server
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        self.start = _iso(now - timedelta(minutes=24))
        self.end = _iso(now + timedelta(minutes=2))

    def path(self, model: str, **params: str) -> str:
        query = {"range": "custom", "start": self.start, "end": self.end, **params}
        return f"/models/{model}/llm?" + "&".join(f"{k}={v}" for k, v in query.items())

    def get(self, url: str) -> Any:
        with httpx.Client(base_url=self.server.url, cookies={"wk_key": self.server.read_key}) as c:
            got = c.get(url)
        assert got.status_code == 200, got.text
        return got.json()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """support-bot: 60 evaluated calls over 20 minutes; plain-llm: calls without text (so
    nothing for the evaluators)."""
    with running_server(tmp_path_factory.mktemp("llm-tab")) as server:
        with server.client() as client:
            sent = client.post(
                f"/api/v1/models/{BOT}/predictions?task=llm", json={"events": _events(20)}
            )
            assert sent.status_code == 200, sent.text
            bare = [
                {"input_tokens": 50, "output_tokens": 10, "cost_usd": 0.0001, "latency_ms": 50.0}
                for _ in range(10)
            ]
            plain = client.post(f"/api/v1/models/{PLAIN}/predictions?task=llm", json=bare)
            assert plain.status_code == 200, plain.text
        app = server.handle.app
        written = app.state.evaluator_runner.run_once(datetime.now(UTC) + timedelta(seconds=30))
        assert written > 0
        app.state.store.refresh()
        yield Site(server)


def drawn(page: Page, plot: str) -> dict[str, dict[str, Any]]:
    """The data traces (not monitor overlays) of ``#plot-PLOT`` by name."""
    got: list[dict[str, Any]] = page.evaluate(
        """(id) => document.getElementById(id).data.filter((t) => !(t.meta && t.meta.monitor))
             .map((t) => ({name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || [])}))""",
        f"plot-{plot}",
    )
    return {t["name"]: t for t in got}


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_cost_and_evaluator_charts_hold_the_api_values(site: Site, chromium: Browser) -> None:
    page, watch, requests = open_page(chromium, site.server, site.path(BOT))
    series = site.get(requests.last(f"/models/{BOT}/metrics?", "window=1m"))
    totals = site.get(requests.last(f"/models/{BOT}/metrics?", "window=all"))["metrics"]
    m = series["metrics"]

    cost = drawn(page, "cost-per-call")
    assert cost["mean"]["x"] == series["windows"]
    assert cost["mean"]["y"] == m["cost_per_call"] and cost["p95"]["y"] == m["cost_p95"]
    assert sum(1 for v in m["cost_per_call"] if v is not None) >= 15  # the data is there

    rates = drawn(page, "eval-rates")
    names = {
        "hallucination": "hallucination_rate",
        "PII": "pii_rate",
        "refusal": "refusal_rate",
        "toxicity": "toxicity_rate",
    }
    with_data = {n for n in names.values() if totals[n][0] is not None}
    assert with_data == RATES  # every label-free evaluator judged these calls
    assert {names[n] for n in rates} == with_data  # judge and thumbs-down have no results
    for label, metric in names.items():
        assert rates[label]["y"] == m[metric]
    # one call in four leaks an e-mail address, one in four refuses
    assert math.isclose(totals["pii_rate"][0], 0.25) and math.isclose(
        totals["refusal_rate"][0], 0.25
    )
    scores = drawn(page, "eval-scores")
    assert set(scores) == {"groundedness"} and scores["groundedness"]["y"] == m["groundedness"]
    assert page.locator("#card-eval-reference").count() == 0  # no actual answers sent
    assert "judge" in page.locator("#card-eval-rates .not-shown").inner_text()
    assert page.locator("#card-evaluators-off").count() == 0
    assert float(page.locator('[data-stat="evaluated_count"]').get_attribute("data-value") or 0) > 0

    # worst calls: the evaluations API's flagged rows, worst first, linking to their traces
    worst_url = requests.last(f"/models/{BOT}/evaluations?")
    assert query(worst_url)["flagged"] == "true"
    worst = site.get(worst_url)["evaluations"]
    rows = page.locator("#worst-table tbody tr").evaluate_all(
        "(rows) => rows.map((r) => [r.dataset.eventId, r.dataset.evaluator,"
        " r.querySelector('a.trace-link').getAttribute('href')])"
    )
    assert rows == [
        [e["event_id"], e["evaluator"], f"/traces/{e['trace_id']}?span={e['event_id']}"]
        for e in worst
    ]
    assert rows and all(e["flagged"] for e in worst)
    screenshot(page, "model-llm-evaluators")

    page.select_option("#worst-evaluator", "pii")
    page.wait_for_function("() => location.search.includes('worst=pii')")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#worst-table tbody tr')]"
        ".every((r) => r.dataset.evaluator === 'pii')"
    )
    pii_url = requests.last(f"/models/{BOT}/evaluations?", "evaluator=pii")
    pii = site.get(pii_url)["evaluations"]
    shown = page.locator("#worst-table tbody tr").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.eventId)"
    )
    assert shown == [e["event_id"] for e in pii] and shown
    first = page.locator("#worst-table tbody tr").first.inner_text()
    assert "jane.doe@example.com" in first
    assert watch.problems == []
    page.context.close()


def test_worst_calls_follow_the_version_filter(site: Site, chromium: Browser) -> None:
    """With the tab filtered to one version, the worst calls are that version's only."""
    page, watch, requests = open_page(chromium, site.server, site.path(BOT, version="gpt-a"))
    page.wait_for_selector("#worst-table tbody tr")
    worst_url = requests.last(f"/models/{BOT}/evaluations?")
    assert query(worst_url)["version"] == "gpt-a"
    worst = site.get(worst_url)["evaluations"]
    assert worst and {e["version"] for e in worst} == {"gpt-a"}
    shown = page.locator("#worst-table tbody tr").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.eventId)"
    )
    assert shown == [e["event_id"] for e in worst]
    assert all(int(event_id.split("-")[1]) % 2 == 1 for event_id in shown)
    assert watch.problems == []
    page.context.close()


def test_model_without_evaluations_says_how_to_turn_them_on(site: Site, chromium: Browser) -> None:
    page, watch, _ = open_page(chromium, site.server, site.path(PLAIN))
    card = page.locator("#card-evaluators-off")
    assert card.is_visible()
    text = card.inner_text()
    assert "evaluators:" in text and "enabled: [groundedness, pii, refusal, toxicity]" in text
    for chart in ("eval-rates", "eval-scores", "eval-reference"):
        assert page.locator(f"#plot-{chart}").count() == 0
    assert page.locator("#plot-cost-per-call").count() == 1  # cost is still charted
    assert "No evaluator results" in page.locator("#no-worst").inner_text()
    screenshot(page, "model-llm-no-evaluators")
    assert watch.problems == []
    page.context.close()
