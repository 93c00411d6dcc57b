"""The model page's Alerts tab, the Alerts page and the Monitors page in real headless
Chromium, against a real server whose alert engine raised real alerts: monitors of the
settings file and a default set, traffic with errors, a slow segment and a traffic spike, and
an action that waits for approval."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from browser_helpers import PageWatch, screenshot, sign_in
from tests import test_alerts
from tests.helpers import send_error_burst, wait_for
from tests.test_alerts import CONFIG, Server, _run_through, _traffic
from tests.test_notify import _serve
from watchkeeper.alerting.engine import SETTLE
from watchkeeper.store.keys import KeyStore

pytestmark = pytest.mark.browser

ADMIN_NAME = "ana-oncall"
SETTINGS = (
    CONFIG
    + """  - defaults: m
actions:
  - name: page-oncall
    type: command
    when: {monitors: [errors]}
    argv: ["true"]
    approval: true
    rate_limit: null
"""
)


class Alerting:
    """A server with alerts raised by its engine (which runs only when this class runs it)."""

    def __init__(self, server: Server, read_key: str) -> None:
        self.server = server
        self.url = server.url
        self.admin_key = server.key
        self.read_key = read_key

    def api(self, path: str, **params: Any) -> Any:
        with self.server.client() as c:
            r = c.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("/api/v1/alerts", limit=1000, **params)["alerts"]
        return alerts


@pytest.fixture
def alerting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Alerting]:
    """Minutes 0-10 of traffic (errors in 3-5, region us slow in 4, a spike in 10; half an
    hour ago) judged by the engine, then an error burst in the last two minutes: alerts that
    resolved, alerts firing now (critical and warning), one pending, and action runs that
    wait for approval."""
    # test_alerts' traffic starts at its T0: half an hour before now, not before its import
    fresh = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=30)
    monkeypatch.setattr(test_alerts, "T0", fresh)
    admin = KeyStore(tmp_path).create("admin", name=ADMIN_NAME)
    read = KeyStore(tmp_path).create("read")
    server = _serve(tmp_path, SETTINGS, key=admin, action_interval=0)
    try:
        _traffic(server)
        _run_through(server, range(11))
        send_error_burst(server.url, admin)
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        server.engine.run(now + SETTLE + timedelta(seconds=1))
        yield Alerting(server, read)
    finally:
        server.handle.stop()


def signed_in(chromium: Browser, url: str, key: str) -> BrowserContext:
    """A browser context with the sign-in cookie (the sign-in page itself is closed, so its
    overview's requests do not count against the page under test)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    first = context.new_page()
    sign_in(first, url, key)
    first.wait_for_selector("body[data-loaded=true]")
    first.close()
    return context


def open_page(context: BrowserContext, url: str) -> tuple[Page, PageWatch]:
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(url)
    page.wait_for_selector("body[data-loaded=true]")
    return page, watch


def rows(page: Page, selector: str, attribute: str) -> list[str]:
    """An attribute of every element matching ``selector``, read at one moment."""
    values: list[str] = page.evaluate(
        "([sel, attr]) => [...document.querySelectorAll(sel)].map((e) => e.getAttribute(attr))",
        [selector, attribute],
    )
    return values


def expected_order(alerts: list[dict[str, Any]]) -> list[str]:
    """Open first (firing before pending, critical before warning), then the most recent."""

    def rank(a: dict[str, Any]) -> tuple[int, int, float, int]:
        status = {"firing": 0, "pending": 1}.get(a["status"], 2)
        severity = 0 if a["severity"] == "critical" or status == 2 else 1
        started = datetime.fromisoformat(a["started_at"].replace("Z", "+00:00")).timestamp()
        return (status, severity, -started, -a["id"])

    return [str(a["id"]) for a in sorted(alerts, key=rank)]


def test_alerts_tab_shows_the_api_alerts_and_acknowledges_silences_and_approves(
    alerting: Alerting, chromium: Browser
) -> None:
    """With an admin key: the timeline and the table hold exactly the model's alerts (with
    their transitions); acknowledge, silence and approve from the page change what the API
    reports, and the table updates in place."""
    api_alerts = alerting.alerts(model="m")
    assert {a["status"] for a in api_alerts} >= {"firing", "resolved"}
    context = signed_in(chromium, alerting.url, alerting.admin_key)
    page, watch = open_page(context, alerting.url + "/models/m/alerts?range=1h")

    # the timeline: one bar per alert, on its series' row, labelled with its state
    bars = page.evaluate(
        """() => document.getElementById('plot-alert-timeline').data
            .filter((t) => t.type === 'bar')
            .flatMap((t) => t.customdata.map((c, i) => [c[0], t.y[i], t.name]))"""
    )
    assert sorted(b[0] for b in bars) == sorted(a["id"] for a in api_alerts)
    by_id = {a["id"]: a for a in api_alerts}
    for alert_id, row, name in bars:
        a = by_id[alert_id]
        assert row.startswith(a["monitor"])
        assert name.endswith(f"{a['severity']} · {a['status']}")
    ticks = page.evaluate(
        "() => document.getElementById('plot-alert-timeline').layout.yaxis.ticktext"
    )
    assert any("errors" in t and "critical firing" in t for t in ticks), ticks
    marks = page.evaluate(
        """() => document.getElementById('plot-alert-timeline').data
            .filter((t) => t.type === 'scatter').reduce((n, t) => n + t.x.length, 0)"""
    )
    assert marks == sum(len(a["transitions"]) for a in api_alerts)

    # the table: open first, then recent; every alert's transitions
    assert rows(page, "tr.alert-row", "data-alert-id") == expected_order(api_alerts)
    for a in api_alerts:
        row = page.locator(f'tr.alert-row[data-alert-id="{a["id"]}"]')
        assert row.get_attribute("data-status") == a["status"]
        assert a["status"] in row.locator('[data-col="status"]').inner_text()
        assert row.locator('[data-col="metric"]').inner_text() == a["metric"]
        kinds = rows(page, f'tr.transitions-row[data-alert-id="{a["id"]}"] tbody tr', "data-kind")
        assert kinds == [t["kind"] for t in a["transitions"]]
    firing = next(a for a in api_alerts if a["monitor"] == "errors" and a["status"] == "firing")
    row = page.locator(f'tr.alert-row[data-alert-id="{firing["id"]}"]')
    assert row.locator('[data-col="value"] .judged').inner_text() == "0.5 vs > 0.1"
    screenshot(page, "model-alerts")

    # the monitor's view of the selected alert (the first one): its metric and threshold
    chart = "document.getElementById('plot-monitor-series')"
    assert f"alert {firing['id']}" in page.locator("#title-monitor-series").inner_text()
    judged = alerting.api(
        "/api/v1/monitors/errors/series",
        start=(datetime.now(timezone.utc) - timedelta(hours=2)).isoformat(),
    )["series"][0]["windows"]
    api_values = {w["window_start"]: w["value"] for w in judged}
    traces = page.evaluate(f"() => {chart}.data.map((t) => [t.name, t.x, t.y])")
    shown = {name: dict(zip(x, y, strict=True)) for name, x, y in traces}
    assert shown["error_rate"] and all(api_values[t] == v for t, v in shown["error_rate"].items())
    assert set(shown["threshold (above 0.1)"].values()) == {0.1}
    assert [t for t, v in shown["breach (critical)"].items()] == [
        w["window_start"]
        for w in judged
        if w["breach"] == "critical" and w["window_start"] in shown["error_rate"]
    ]
    # pick the traffic alert: its learned band is drawn instead, and the URL keeps the choice
    traffic = next(a for a in api_alerts if a["monitor"] == "traffic" and a["status"] == "firing")
    page.locator(f'button[data-chart="{traffic["id"]}"]').click()
    page.wait_for_url(f"**/models/m/alerts?range=1h&alert={traffic['id']}")
    page.locator("#title-monitor-series", has_text=f"alert {traffic['id']}").wait_for()
    names = page.evaluate(f"() => {chart}.data.map((t) => t.name)")
    assert "learned band" in names and "count" in names, names

    # acknowledge: the API shows it, and so does the row (updated in place)
    row.get_by_role("button", name="Acknowledge").click()
    row.locator('[data-col="acknowledged"]', has_text=ADMIN_NAME).wait_for()
    (acked,) = [a for a in alerting.alerts(model="m") if a["id"] == firing["id"]]
    assert acked["acknowledged"]["by"] == ADMIN_NAME
    assert acked["transitions"][-1]["kind"] == "acknowledged"
    assert row.get_by_role("button", name="Acknowledge").count() == 0

    # silence this monitor for 4 hours, with a comment
    row.get_by_role("button", name="Silence").click()
    form = page.locator("#silence-form")
    form.get_by_label("For").select_option("4h")
    form.get_by_label("Comment").fill("fix being deployed")
    form.get_by_role("button", name="Create silence").click()
    row.locator('[data-col="acknowledged"]', has_text="Silenced until").wait_for()
    (silence,) = alerting.api("/api/v1/silences", active="true")["silences"]
    assert (silence["model"], silence["monitor"]) == ("m", "errors")
    assert (silence["comment"], silence["created_by"]) == ("fix being deployed", ADMIN_NAME)
    start, end = (datetime.fromisoformat(silence[k]) for k in ("starts_at", "ends_at"))
    assert end - start == timedelta(hours=4)
    assert page.locator("#silence-form").count() == 0

    # approve one waiting run, reject the other
    waiting = alerting.api("/api/v1/actions/runs", status="awaiting_approval")["runs"]
    assert rows(page, "#approvals-table tbody tr", "data-run-id") == [str(r["id"]) for r in waiting]
    first, second = waiting
    page.locator(f'tr[data-run-id="{first["id"]}"]').get_by_role("button", name="Approve").click()
    page.locator(f'tr[data-run-id="{first["id"]}"]').wait_for(state="detached")
    page.locator(f'tr[data-run-id="{second["id"]}"]').get_by_role("button", name="Reject").click()
    page.locator("#no-approvals").wait_for()
    runs = {r["id"]: r for r in alerting.api("/api/v1/actions/runs")["runs"]}
    assert runs[first["id"]]["status"] == "queued"
    assert runs[first["id"]]["decided_by"] == ADMIN_NAME
    assert runs[second["id"]]["status"] == "rejected"
    assert watch.problems == []
    context.close()


def test_with_a_read_key_the_buttons_are_disabled_and_say_why(
    alerting: Alerting, chromium: Browser
) -> None:
    """A read key sees the same alerts, but acknowledge, silence, approve and expire are
    disabled with an explanation, and clicking them sends nothing."""
    with httpx.Client(
        base_url=alerting.url, headers={"Authorization": f"Bearer {alerting.admin_key}"}
    ) as c:
        r = c.post("/api/v1/silences", json={"model": "m", "monitor": "slow", "duration": "1h"})
        assert r.status_code == 201, r.text
    context = signed_in(chromium, alerting.url, alerting.read_key)
    page, watch = open_page(context, alerting.url + "/models/m/alerts")
    writes: list[str] = []
    page.on("request", lambda req: writes.extend([req.url] if req.method != "GET" else []))
    assert "read key" in page.locator("#alerts-readonly").inner_text()
    assert page.locator("button[data-chart]").first.is_enabled()  # reading stays possible
    buttons = page.locator("#panel .alerts-card button:not([data-chart])")
    assert buttons.count() >= 4
    for button in buttons.all():
        assert button.is_disabled()
        assert "admin key" in str(button.get_attribute("title"))
    page.locator("tr.alert-row button").first.click(force=True)
    assert page.locator("#silence-form").count() == 0

    page2, watch2 = open_page(context, alerting.url + "/alerts")
    expire = page2.locator("#silences-table").get_by_role("button", name="Expire now")
    assert expire.is_disabled() and "admin key" in str(expire.get_attribute("title"))
    assert writes == []
    assert watch.problems == [] and watch2.problems == []
    context.close()


def test_alerts_page_lists_every_alert_with_filters_in_the_url(
    alerting: Alerting, chromium: Browser
) -> None:
    """Open alerts first, then recent; the status, model and severity filters change the
    list and the URL (a reload keeps them); each row links to its model's Alerts tab; a
    silence is expired from the page."""
    with httpx.Client(
        base_url=alerting.url, headers={"Authorization": f"Bearer {alerting.admin_key}"}
    ) as c:
        r = c.post(
            "/api/v1/silences",
            json={"model": "m", "monitor": "traffic", "duration": "2h", "comment": "load test"},
        )
        assert r.status_code == 201, r.text
        silence_id = r.json()["id"]
    context = signed_in(chromium, alerting.url, alerting.admin_key)
    page, watch = open_page(context, alerting.url + "/alerts")
    everything = alerting.alerts()
    assert rows(page, "#alerts-table tbody tr", "data-alert-id") == expected_order(everything)
    first = expected_order(everything)[0]
    link = page.locator("#alerts-table tbody tr").first.get_by_role("link", name="m", exact=True)
    assert link.get_attribute("href") == f"/models/m/alerts?range=1h&alert={first}"
    traffic = next(a for a in everything if a["monitor"] == "traffic" and a["status"] == "firing")
    silenced = page.locator(
        f'#alerts-table tr[data-alert-id="{traffic["id"]}"] [data-col="acknowledged"]'
    )
    assert "Silenced until" in silenced.inner_text()
    screenshot(page, "alerts")

    page.get_by_label("Status").select_option("resolved")
    page.wait_for_url("**/alerts?status=resolved")
    resolved = [str(a["id"]) for a in alerting.alerts(status="resolved")]
    wait_for(lambda: rows(page, "#alerts-table tbody tr", "data-alert-id") == resolved)
    page.get_by_label("Severity").select_option("warning")
    page.wait_for_url("**/alerts?status=resolved&severity=warning")
    warning = [
        str(a["id"]) for a in alerting.alerts(status="resolved") if a["severity"] == "warning"
    ]
    assert warning and len(warning) < len(resolved)
    wait_for(lambda: rows(page, "#alerts-table tbody tr", "data-alert-id") == warning)
    page.get_by_label("Model").select_option("m")
    page.wait_for_url("**/alerts?status=resolved&severity=warning&model=m")

    # the URL alone gives the same view (a new tab: a reload would abort the page's requests)
    assert watch.problems == []
    url = page.url
    page.close()
    page, watch = open_page(context, url)
    assert page.get_by_label("Status").input_value() == "resolved"
    assert page.get_by_label("Severity").input_value() == "warning"
    assert page.get_by_label("Model").input_value() == "m"
    assert rows(page, "#alerts-table tbody tr", "data-alert-id") == warning

    # a row's link opens the model's Alerts tab with that alert charted
    page.locator(f'#alerts-table tr[data-alert-id="{warning[0]}"]').get_by_role(
        "link", name="traffic"
    ).click()
    page.wait_for_url(f"**/models/m/alerts?range=1h&alert={warning[0]}")
    page.locator("#title-monitor-series", has_text=f"alert {warning[0]}").wait_for()
    assert watch.problems == []
    page.go_back()
    page.wait_for_selector("body[data-loaded=true]")
    watch.problems.clear()  # leaving a live page may abort its refresh: not a failure

    row = page.locator(f'#silences-table tr[data-silence-id="{silence_id}"]')
    assert row.get_attribute("data-state") == "active"
    row.get_by_role("button", name="Expire now").click()
    page.locator(
        f'#silences-table tr[data-silence-id="{silence_id}"][data-state="expired"]'
    ).wait_for()
    assert alerting.api("/api/v1/silences", active="true")["silences"] == []
    assert watch.problems == []
    context.close()


def test_monitors_page_lists_every_monitor_with_its_state(
    alerting: Alerting, chromium: Browser
) -> None:
    """Every monitor of the API, with where it is defined, its condition, its state and its
    open alert's value, linking to the model tab that charts its metric; filtered by state
    through the URL."""
    new = {
        "name": "fast-errors",
        "model": "m",
        "metric": "error_rate",
        "window": "1m",
        "condition": {"type": "multi_level", "op": "above", "warning": 0.05, "critical": 0.2},
    }
    with alerting.server.client() as c:
        assert c.post("/api/v1/monitors", json=new).status_code == 201
    data = alerting.api("/api/v1/monitors")
    monitors = {m["name"]: m for m in data["monitors"]}
    assert {m["source"] for m in monitors.values()} == {"file", "defaults", "api"}
    context = signed_in(chromium, alerting.url, alerting.read_key)
    page, watch = open_page(context, alerting.url + "/monitors")
    assert sorted(rows(page, "#monitors-table tbody tr", "data-monitor")) == sorted(monitors)
    tabs = {
        "errors": "operations",
        "m.accuracy": "quality",
        "m.drift.x": "drift",
        "m.missing.x": "data-quality",
    }
    for name, tab in tabs.items():
        link = page.locator(f'tr[data-monitor="{name}"] [data-col="metric"] a')
        assert link.get_attribute("href") == f"/models/m/{tab}"
    open_alerts = {a["series"]: a for a in alerting.alerts(status="open")}
    for name, m in monitors.items():
        row = page.locator(f'tr[data-monitor="{name}"]')
        assert row.get_attribute("data-source") == m["source"]
        state = row.locator('[data-col="state"]').inner_text()
        value = row.locator('[data-col="value"]').inner_text()
        alerting_series = [s for s in m["series"] if s["status"] in ("firing", "pending")]
        for s in alerting_series:
            assert f"{s['severity']} {s['status']}" in state
            assert f"{open_alerts[s['series']]['last_value']:.4g}" in value
        if m["series"] and not alerting_series:
            assert "ok" in state and value == "—"
    assert "above 0.1 → critical" in page.locator('tr[data-monitor="errors"]').inner_text()
    assert "2 of the last 3" in page.locator('tr[data-monitor="errors"]').inner_text()
    api_row = page.locator('tr[data-monitor="fast-errors"]')
    assert f"API\nby {ADMIN_NAME}" in api_row.locator('[data-col="source"]').inner_text()
    assert "above 0.05 → warning, above 0.2 → critical" in api_row.inner_text()
    assert "not evaluated yet" in api_row.locator('[data-col="state"]').inner_text()
    assert "default set of m" in page.locator('tr[data-monitor="m.accuracy"]').inner_text()
    screenshot(page, "monitors")

    page.get_by_label("State").select_option("alerting")
    page.wait_for_url("**/monitors?state=alerting")
    alerting_names = sorted(
        n
        for n, m in monitors.items()
        if any(s["status"] in ("firing", "pending") for s in m["series"])
    )
    assert alerting_names
    wait_for(
        lambda: sorted(rows(page, "#monitors-table tbody tr", "data-monitor")) == alerting_names
    )
    assert watch.problems == []
    context.close()
