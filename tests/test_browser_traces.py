"""The trace list and the trace view in real headless Chromium against a real server fed over
OTLP/JSON (hex ids, as the specification writes them): the list shows exactly the traces the
API answers for the filters in the URL, a filter changed in the page changes the request and
the rows, pages go back with "Older"; the waterfall holds the API's spans in depth-first
order with bars as wide as their durations; selecting an LLM call shows its prompt and
response as text (a ``<script>`` stays text); feedback sent from the page is stored and shown
beside the automatic scores, and a read key sees the form disabled."""

from __future__ import annotations

import json
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

RAG = "rag-chat"
BILLING = "billing-bot"
BATCH = "batch-jobs"
T_RAG = "5b8efff798038103d269b633813fc60c"
T_BILL = "0af7651916cd43dd8448eb211c80319c"
FILLERS = 55  # more than one page of the list (50)
PROMPT = (
    'Where is order 1234?\n  <script>window.__pwned = 1</script> & <b>bold</b> "quoted"\n\n'
    "second   paragraph"
)
RESPONSE = "Order 1234 left the depot at 09:40.\n<img src=x onerror=alert(1)> is just text."
CONTEXT_DOC = "Order 1234 left the depot at 09:40 and arrives tomorrow."
BILL_RESPONSE = "Your invoice was sent to jane.doe@example.com, call +44 20 7946 0958."
# (span id, parent, name, start offset ms, duration ms, status, kind, extra attributes)
RAG_SPANS: list[tuple[str, str | None, str, float, float, str, str, dict[str, Any]]] = [
    ("a000000000000001", None, "POST /chat", 0, 1200, "ok", "server",
     {"gen_ai.conversation.id": "conv-42"}),
    ("a000000000000002", "a000000000000001", "retrieve documents", 20, 200, "ok", "internal",
     {"gen_ai.operation.name": "retrieval",
      "gen_ai.retrieval.documents": json.dumps([{"content": CONTEXT_DOC}])}),
    ("a000000000000003", "a000000000000001", "agent step", 240, 910, "ok", "internal", {}),
    ("a000000000000004", "a000000000000003", "chat gpt-4o-mini", 260, 840, "ok", "client",
     {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
      "gen_ai.usage.input_tokens": 412, "gen_ai.usage.output_tokens": 96,
      "gen_ai.response.time_to_first_chunk": 0.23, "gen_ai.conversation.id": "conv-42",
      "gen_ai.prompt": PROMPT, "gen_ai.completion": RESPONSE}),
    ("a000000000000005", "a000000000000003", "tool lookup_order", 1105, 40, "error", "client",
     {"error.type": "timeout"}),
]  # fmt: skip
BILL_SPANS: list[tuple[str, str | None, str, float, float, str, str, dict[str, Any]]] = [
    ("b000000000000001", None, "invoice question", 0, 3000, "error", "server", {}),
    ("b000000000000002", "b000000000000001", "chat gpt-4o", 100, 2800, "ok", "client",
     {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1000,
      "gen_ai.usage.output_tokens": 200, "gen_ai.prompt": "Where is my invoice?",
      "gen_ai.completion": BILL_RESPONSE}),
]  # fmt: skip


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": v}


def _otlp(service: str, trace_id: str, spans: list[Any], t0_ns: int) -> dict[str, Any]:
    """One OTLP/JSON export of SERVICE's spans of one trace (hex ids, nanosecond strings)."""
    out = []
    for span_id, parent, name, start, duration, status, kind, attrs in spans:
        start_ns = t0_ns + int(start * 1e6)
        span = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": name,
            "kind": f"SPAN_KIND_{kind.upper()}",
            "startTimeUnixNano": str(start_ns),
            "endTimeUnixNano": str(start_ns + int(duration * 1e6)),
            "attributes": [{"key": k, "value": _value(v)} for k, v in attrs.items()],
            "status": {"code": 2, "message": "order service timed out"} if status == "error"
            else {"code": 1},
            "events": [{"timeUnixNano": str(start_ns + 1000), "name": "step",
                        "attributes": [{"key": "n", "value": {"intValue": "1"}}]}],
        }  # fmt: skip
        if parent:
            span["parentSpanId"] = parent
        out.append(span)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "test"}, "spans": out}],
            }
        ]
    }


class Site:
    def __init__(self, server: RunningServer, now: datetime) -> None:
        self.server = server
        self.start = _iso(now - timedelta(minutes=90))
        self.end = _iso(now + timedelta(minutes=5))

    def list_path(self, **params: str) -> str:
        query = {"range": "custom", "start": self.start, "end": self.end, **params}
        return "/traces?" + "&".join(f"{k}={v}" for k, v in query.items())

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, cookies={"wk_key": self.server.read_key})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two LLM traces (a RAG chat with an error tool call; a billing answer leaking PII),
    55 one-span batch traces earlier, all evaluated by the server's evaluator runner."""
    with running_server(tmp_path_factory.mktemp("traces")) as server:
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = int((now - timedelta(minutes=5)).timestamp() * 1e9)
        exports = [
            _otlp(RAG, T_RAG, RAG_SPANS, t0),
            _otlp(BILLING, T_BILL, BILL_SPANS, t0 - int(120e9)),
        ]
        for i in range(FILLERS):
            spans: list[Any] = [
                (f"c{i:015x}", None, f"nightly job {i}", 0, 50 + i, "ok", "internal", {})
            ]
            exports.append(_otlp(BATCH, f"{i + 1:032x}", spans, t0 - int((600 + 30 * i) * 1e9)))
        headers = {"Authorization": f"Bearer {server.ingest_key}"}
        for body in exports:
            got = httpx.post(server.url + "/v1/traces", json=body, headers=headers, timeout=30)
            assert got.status_code == 200, got.text
        app = server.handle.app
        _wait_until(lambda: len(_spans(server, T_RAG)) == len(RAG_SPANS))
        app.state.evaluator_runner.run_once(datetime.now(UTC) + timedelta(seconds=30))
        app.state.store.refresh()
        assert any(s["evaluations"] for s in _spans(server, T_RAG))
        yield Site(server, now)


def _spans(server: RunningServer, trace_id: str) -> list[dict[str, Any]]:
    with server.client(server.read_key) as client:
        got = client.get(f"/api/v1/traces/{trace_id}")
    return list(got.json()["spans"]) if got.status_code == 200 else []


def _wait_until(check: Any) -> None:
    for _ in range(200):
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("the server did not store the spans")


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def listed(page: Page) -> list[str]:
    ids: list[str] = page.locator("#traces-table tbody tr").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.traceId)"
    )
    return ids


def answer_of(site: Site, url: str) -> dict[str, Any]:
    with site.api() as api:
        got = api.get(url)
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


# --------------------------------------------------------------------------- the list


def test_list_shows_the_api_traces_and_pages_back(site: Site, chromium: Browser) -> None:
    page, watch, requests = open_page(chromium, site.server, site.list_path())
    url = requests.last("/api/v1/traces?")
    asked = query(url)
    assert asked["start"] == site.start.replace("Z", ".000Z") and "cursor" not in asked
    answer = answer_of(site, url)
    assert listed(page) == [t["trace_id"] for t in answer["traces"]]
    assert len(answer["traces"]) == 50 and answer["next_cursor"]
    assert listed(page)[:2] == [T_RAG, T_BILL]  # newest first
    rag = page.locator(f'tr[data-trace-id="{T_RAG}"]')
    assert rag.locator('[data-col="root"] a').inner_text() == "POST /chat"
    assert rag.locator('[data-col="root"] a').get_attribute("href") == f"/traces/{T_RAG}"
    assert rag.locator('[data-col="spans"]').inner_text() == "5"
    assert rag.locator('[data-col="llm_calls"]').inner_text() == "1"
    assert rag.locator('[data-col="models"]').inner_text() == RAG
    assert "error" in rag.locator('[data-col="status"]').inner_text()  # its tool call failed
    bill = next(t for t in answer["traces"] if t["trace_id"] == T_BILL)
    assert bill["flags"].get("pii", 0) >= 1
    assert page.locator(f'tr[data-trace-id="{T_BILL}"] [data-flag="pii"]').count() == 1
    screenshot(page, "traces-list")

    page.locator("#older-page").click()
    page.wait_for_url("**cursor=**")
    page.wait_for_selector("body[data-loaded=true]")
    older_url = requests.last("cursor=")
    assert query(older_url)["cursor"] == answer["next_cursor"]
    older = answer_of(site, older_url)
    assert listed(page) == [t["trace_id"] for t in older["traces"]]
    assert len(older["traces"]) == FILLERS + 2 - 50 and older["next_cursor"] is None
    assert not set(listed(page)) & {t["trace_id"] for t in answer["traces"]}
    assert page.locator("#older-page").count() == 0 and page.locator("#newest-page").count() == 1
    assert watch.problems == []
    page.context.close()


def test_filters_in_the_page_change_the_request_and_the_rows(site: Site, chromium: Browser) -> None:
    page, watch, requests = open_page(chromium, site.server, site.list_path())
    page.select_option("#filter-status", "error")
    page.wait_for_url("**status=error**")
    page.wait_for_selector("body[data-loaded=true]")
    url = requests.last("status=error")
    assert query(page.url)["range"] == "custom"  # the range is kept
    assert listed(page) == [t["trace_id"] for t in answer_of(site, url)["traces"]]
    assert listed(page) == [T_RAG, T_BILL]

    page.select_option("#filter-model", RAG)
    page.wait_for_url(f"**model={RAG}**")
    page.wait_for_selector("body[data-loaded=true]")
    url = requests.last(f"model={RAG}")
    assert query(url)["status"] == "error"
    assert listed(page) == [t["trace_id"] for t in answer_of(site, url)["traces"]] == [T_RAG]

    # a number filter applies with the form's button; the select filters stay
    page.fill("#filter-min_latency_ms", "2000")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**min_latency_ms=2000**")
    page.wait_for_selector("body[data-loaded=true]")
    url = requests.last("min_latency_ms=2000")
    assert query(url)["model"] == RAG and answer_of(site, url)["traces"] == []
    assert "No traces match these filters" in page.locator("#no-traces").inner_text()

    with page.expect_navigation():
        page.locator("#clear-filters").click()
    page.wait_for_selector("body[data-loaded=true]")
    page.fill("#filter-min_latency_ms", "2000")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**min_latency_ms=2000**")
    page.wait_for_selector("body[data-loaded=true]")
    url = requests.last("min_latency_ms=2000")
    assert "model" not in query(url) and "status" not in query(url)
    assert listed(page) == [t["trace_id"] for t in answer_of(site, url)["traces"]] == [T_BILL]

    # flagged by an evaluator: the API's evaluator + flagged=true
    page.select_option("#filter-evaluator", "pii")
    page.wait_for_url("**evaluator=pii**")
    page.wait_for_selector("body[data-loaded=true]")
    url = requests.last("evaluator=pii")
    assert query(url)["flagged"] == "true"
    assert listed(page) == [t["trace_id"] for t in answer_of(site, url)["traces"]] == [T_BILL]
    screenshot(page, "traces-list-filtered")
    assert watch.problems == []
    page.context.close()


def test_conversation_filter_from_the_url(site: Site, chromium: Browser) -> None:
    page, watch, requests = open_page(
        chromium, site.server, site.list_path(conversation_id="conv-42")
    )
    url = requests.last("conversation_id=conv-42")
    assert listed(page) == [t["trace_id"] for t in answer_of(site, url)["traces"]] == [T_RAG]
    assert page.locator("#filter-conversation_id").input_value() == "conv-42"
    assert watch.problems == []
    page.context.close()


def test_empty_list_says_how_to_send_traces(site: Site, chromium: Browser) -> None:
    path = "/traces?range=custom&start=2001-01-01T00:00:00Z&end=2001-01-02T00:00:00Z"
    page, watch, _ = open_page(chromium, site.server, path)
    text = page.locator("#no-traces").inner_text()
    assert f"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={site.server.url}/v1/traces" in text
    assert 'OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <ingest key>"' in text
    screenshot(page, "traces-empty")
    assert watch.problems == []
    page.context.close()


# --------------------------------------------------------------------------- the trace view


def _expected_order(spans: list[Any]) -> list[tuple[str, int]]:
    """Depth first, children by start: the tree written above, walked independently."""
    children: dict[str | None, list[Any]] = {}
    for s in spans:
        children.setdefault(s[1], []).append(s)
    out: list[tuple[str, int]] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda s: s[3]):
            out.append((s[0], depth))
            walk(s[0], depth + 1)

    walk(None, 0)
    return out


def test_waterfall_rows_depths_and_bar_widths(site: Site, chromium: Browser) -> None:
    page, watch, _ = open_page(chromium, site.server, f"/traces/{T_RAG}")
    rows = page.locator("#waterfall-rows button.wf-row").evaluate_all(
        """(rows) => rows.map((r) => {
             const track = r.querySelector('.wf-track').getBoundingClientRect();
             const bar = r.querySelector('.wf-bar').getBoundingClientRect();
             return {id: r.dataset.spanId, depth: Number(r.dataset.depth),
                     error: r.classList.contains('error'), text: r.innerText,
                     track: track.width, left: bar.left - track.left,
                     width: parseFloat(getComputedStyle(r.querySelector('.wf-bar')).width)};
           })"""
    )
    api = _spans(site.server, T_RAG)
    assert [(r["id"], r["depth"]) for r in rows] == [(s["span_id"], s["depth"]) for s in api]
    assert [(r["id"], r["depth"]) for r in rows] == _expected_order(RAG_SPANS)
    total = max(s[3] + s[4] for s in RAG_SPANS) - min(s[3] for s in RAG_SPANS)
    spec = {s[0]: s for s in RAG_SPANS}
    for row in rows:
        span = spec[row["id"]]
        assert abs(row["width"] - row["track"] * span[4] / total) <= 1.0, row
        assert abs(row["left"] - row["track"] * span[3] / total) <= 1.0, row
        assert row["error"] == (span[5] == "error")
        assert ("✕" in row["text"]) == (span[5] == "error")  # not colour alone
    # the LLM call was selected by default, as the URL would say
    assert page.locator('button.wf-row[aria-pressed="true"]').get_attribute("data-span-id") == (
        "a000000000000004"
    )
    screenshot(page, "trace-view")
    assert watch.problems == []
    page.context.close()


def test_llm_span_shows_prompt_and_response_as_text(site: Site, chromium: Browser) -> None:
    page, watch, _ = open_page(chromium, site.server, f"/traces/{T_RAG}?span=a000000000000001")
    assert page.locator("#span-name").inner_text() == "POST /chat"
    assert page.locator("#span-prompt").count() == 0
    page.locator('button.wf-row[data-span-id="a000000000000004"]').click()
    page.wait_for_selector("#span-prompt")
    assert query(page.url)["span"] == "a000000000000004"
    api = next(s for s in _spans(site.server, T_RAG) if s["span_id"] == "a000000000000004")
    assert api["prompt"] == PROMPT and api["response"] == RESPONSE
    prompt = page.locator("#span-prompt").evaluate("(n) => n.textContent")
    response = page.locator("#span-response").evaluate("(n) => n.textContent")
    assert prompt == PROMPT and response == RESPONSE
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#panel script, #panel img, #panel b").count() == 0
    facts = page.locator("#llm-facts").inner_text()
    assert "412 in · 96 out" in facts and "230 ms" in facts
    assert isinstance(api["cost_usd"], float) and api["cost_usd"] > 0
    evaluations = page.locator("#span-evaluations tbody tr").evaluate_all(
        "(rows) => rows.map((r) => [r.dataset.evaluator, r.dataset.flagged === 'true'])"
    )
    assert evaluations == [[e["evaluator"], bool(e["flagged"])] for e in api["evaluations"]]
    assert evaluations  # the runner evaluated the call
    attrs = page.locator("#span-attributes tbody tr").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.key)"
    )
    assert attrs == sorted(api["attributes"])
    screenshot(page, "trace-view-llm")

    # keyboard: ↓ selects the next row (the failed tool call) and keeps it in the URL
    page.locator('button.wf-row[data-span-id="a000000000000004"]').focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => location.search.includes('a000000000000005')")
    assert page.locator("#span-name").inner_text() == "tool lookup_order"
    assert "order service timed out" in page.locator("#span-detail").inner_text()
    assert watch.problems == []
    link = urlsplit(page.url)
    page.context.close()

    # the link opens the same span
    page, watch, _ = open_page(chromium, site.server, f"{link.path}?{link.query}")
    assert page.locator('button.wf-row[aria-pressed="true"]').get_attribute("data-span-id") == (
        "a000000000000005"
    )
    assert page.locator("#span-name").inner_text() == "tool lookup_order"
    assert watch.problems == []
    page.context.close()


def test_feedback_from_the_page_is_stored_and_shown(site: Site, chromium: Browser) -> None:
    page, watch, _ = open_page(chromium, site.server, f"/traces/{T_RAG}", key=site.server.admin_key)
    comment = "Wrong depot <b>time</b>"
    page.locator("#thumbs-down").check()
    page.fill("#feedback-comment", comment)
    page.fill("#feedback-corrected", "It left at 10:15.")
    page.locator("#feedback-submit").click()
    page.wait_for_function(
        "() => document.getElementById('feedback-result').textContent.includes('recorded')"
    )
    with site.api() as api:
        stored = api.get("/api/v1/feedback", params={"trace_id": T_RAG}).json()["feedback"]
    assert len(stored) == 1
    got = stored[0]
    assert got["thumbs"] == "down" and got["comment"] == comment
    assert got["corrected_answer"] == "It left at 10:15."
    assert got["event_id"] == "a000000000000004" and got["trace_id"] == T_RAG
    shown = page.locator("#trace-feedback tbody tr")
    assert shown.count() == 1 and comment in shown.inner_text()
    assert page.locator("#trace-feedback b").count() == 0
    screenshot(page, "trace-view-feedback")
    assert watch.problems == []
    page.context.close()


def test_read_key_sees_the_feedback_form_disabled(site: Site, chromium: Browser) -> None:
    page, watch, _ = open_page(chromium, site.server, f"/traces/{T_BILL}")
    assert page.locator("#feedback-submit").is_disabled()
    assert "Needs an admin key" in page.locator("#feedback-why").inner_text()
    assert watch.problems == []
    page.context.close()


def test_unknown_trace_says_so(site: Site, chromium: Browser) -> None:
    page, watch, _ = open_page(chromium, site.server, "/traces/ffffffffffffffffffffffffffffffff")
    assert "No such trace" in page.locator("#trace-missing").inner_text()
    # the API's 404 (and the browser's console line about it) is the only problem
    assert any(p.startswith("404 ") and "/api/v1/traces/ffff" in p for p in watch.problems)
    assert [p for p in watch.problems if "404" not in p] == []
    page.context.close()
