"""The self-contained HTML drift report (``watchkeeper drift --html``)."""

from __future__ import annotations

import copy
import itertools
import os
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Request

from watchkeeper.drift.report import fmt_count, fmt_p, fmt_pct, fmt_sig, render_html

HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_CATEGORY = '"&<>'
LONG_CATEGORY = "a category label far too long to fit under a bar " * 2
VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source"}
SVG_LEAVES = {"rect", "line", "path", "circle", "stop"}


def shares(n: int, tilt: float = 0.0) -> list[float]:
    raw = [1.0 + tilt * i + (i % 3) * 0.3 for i in range(n)]
    total = sum(raw)
    return [x / total for x in raw]


def numeric_labels(n: int) -> list[str]:
    edges = [round(1.2 + 2.2 * i, 2) for i in range(n - 2)]
    inner = [f"[{a}, {b})" for a, b in itertools.pairwise(edges)]
    return [f"< {edges[0]}", *inner, f">= {edges[-1]}", "missing"]


def histogram(labels: list[str], tilt: float = 0.1) -> dict[str, Any]:
    n = len(labels)
    return {"labels": labels, "reference": shares(n), "current": shares(n, tilt)}


def feature(name: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "feature": name,
        "segment": None,
        "kind": "number",
        "method": "psi",
        "statistic": 0.05,
        "p_value": None,
        "p_adjusted": None,
        "warn_threshold": 0.1,
        "threshold": 0.25,
        "severity": "ok",
        "drifted": False,
        "n_reference": 100_000,
        "n_current": 1_000_000,
        "missing_reference": 0.0,
        "missing_current": 0.02,
        "extra": {"bound": 0.004},
        "histogram": histogram(numeric_labels(12)),
    }
    base.update(fields)
    return base


def make_result() -> dict[str, Any]:
    categories = [f"cat_{i:02d}" for i in range(38)] + [HOSTILE_CATEGORY, LONG_CATEGORY]
    features = [
        feature(
            "latency_ms",
            method="wasserstein",
            statistic=0.02,
            threshold=0.3,
            histogram=histogram(numeric_labels(60), 0.02),
        ),
        feature("amount", statistic=0.31, severity="drift", drifted=True),
        feature(
            HOSTILE_NAME,
            kind="string",
            method="chi_square",
            statistic=0.15,
            threshold=0.1,
            warn_threshold=0.05,
            p_value=1e-9,
            p_adjusted=3e-9,
            severity="warn",
            drifted=False,
            extra={"cramers_v": 0.2, "unseen_share": 0.05, "note": HOSTILE_CATEGORY},
            histogram=histogram(["a", "b", HOSTILE_CATEGORY, "missing"], 0.5),
        ),
        feature(
            "country",
            kind="string",
            method="jensen_shannon",
            statistic=0.6,
            threshold=0.2,
            severity="drift",
            drifted=True,
            extra={"unseen_share": 0.05, "top_new": ["xx", "yy"]},
            histogram=histogram(categories, 0.05),
        ),
        feature(
            "is_fraud",
            segment="eu",
            kind="bool",
            method="hellinger",
            statistic=0.01,
            histogram=histogram(["false", "true"], 0.2),
        ),
        feature(
            "score",
            method="ks",
            statistic=0.12,
            threshold=0.1,
            warn_threshold=0.08,
            p_value=0.0004,
            p_adjusted=0.0021,
            severity="warn",
            histogram=histogram(["only bin"]),
        ),
        feature(
            "rare_flag",
            kind="bool",
            method="hellinger",
            statistic=None,
            p_value=None,
            severity="insufficient",
            drifted=False,
            n_current=3,
            histogram={
                "labels": ["false", "true"],
                "reference": [0.9, 0.1],
                "current": [1.0, None],
            },
        ),
    ]
    # missing keys: no extra, no histogram, no method, no statistic
    features.append({"feature": "notes", "kind": "string", "severity": "ok", "drifted": False})
    return {
        "generated_at": "2026-11-30T17:00:00Z",
        "watchkeeper_version": "0.9.0",
        "reference": {"source": "ref.parquet", "rows": 100_000},
        "current": {"source": "cur.parquet", "rows": 1_000_000},
        "summary": {"features": 8, "drifted": 2, "warned": 2, "fdr_alpha": 0.05},
        "notes": ["column <b>raw</b> skipped: unsupported type"],
        "features": features,
        "multivariate": [
            {
                "method": "domain_classifier",
                "statistic": 0.71,
                "threshold": 0.55,
                "drifted": True,
                "top_features": [
                    {"feature": "amount", "importance": 0.12},
                    {"feature": HOSTILE_NAME, "importance": 0.04},
                ],
            },
            {
                "method": "pca_reconstruction",
                "statistic": 1.3,
                "reference_error": 1.0,
                "lower": 0.95,
                "upper": 1.05,
                "drifted": True,
            },
            {
                "method": "pca_reconstruction",
                "statistic": None,
                "drifted": False,
                "reason": "fewer than 2 numeric features",
                "n_reference": 12_000,
                "p_value": None,
            },
        ],
    }


EXPECTED_ORDER = [
    "country",  # drift, 3.0x its threshold
    "amount",  # drift, 1.24x
    HOSTILE_NAME,  # warn, 1.5x
    "score",  # warn, 1.2x
    "rare_flag",  # insufficient
    "latency_ms",  # ok, 0.067x
    "is_fraud",  # ok, 0.04x
    "notes",  # ok, no statistic: last
]


class Page(HTMLParser):
    """Collects what the tests look at, and checks that tags balance."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.cards: list[str] = []  # feature names in page order
        self.charts: list[dict[str, int]] = []  # per <svg>: bars of each series
        self.urls: list[str] = []
        self.titles: list[str] = []
        self._in_card_name = False
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        for key in ("src", "href", "xlink:href", "action", "poster", "data"):
            if key in attr:
                self.urls.append(attr[key])
        classes = attr.get("class", "").split()
        if tag == "svg":
            self.charts.append({"ref": 0, "cur": 0})
        if tag == "rect" and "bar" in classes:
            self.charts[-1]["ref" if "ref" in classes else "cur"] += 1
        if tag == "h3" and self.stack[-2:] == ["details", "summary"]:
            self._in_card_name = True
            self.cards.append("")
        self._in_title = tag == "title"
        if tag == "title":
            self.titles.append("")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SVG_LEAVES:
            self.problems.append(f"self-closed <{tag}/>")
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            if tag in self.stack:
                del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag) :]
            return
        self.stack.pop()
        self._in_card_name = self._in_card_name and tag != "h3"
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_card_name:
            self.cards[-1] += data
        if self._in_title:
            self.titles[-1] += data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    assert page.problems == []
    assert page.stack == []
    return page


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return make_result()


@pytest.fixture(scope="module")
def html(result: dict[str, Any]) -> str:
    return render_html(result)


def test_parses_and_tags_balance(html: str) -> None:
    assert html.startswith("<!doctype html>")
    page = parse(html)
    assert len(page.cards) == 8


def test_self_contained(html: str) -> None:
    page = parse(html)
    # the only links are to anchors in the page and to the charts' own patterns
    assert page.urls and all(u.startswith("#") for u in page.urls), page.urls
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<link\b|@import|@font-face|<img\b|<iframe\b", html, re.I)
    assert not re.search(r"\bsrc\s*=", html, re.I)
    assert set(re.findall(r"url\(([^)]*)\)", html)) <= {f"#hatch-c{i}" for i in range(1, 9)}


def test_escapes_hostile_names(html: str) -> None:
    assert HOSTILE_NAME not in html
    assert html.count("<script") == 1  # the page's own
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE_CATEGORY not in html
    assert "&#34;&amp;&lt;&gt;" in html
    page = parse(html)
    assert HOSTILE_NAME in page.cards
    assert any(t.startswith(HOSTILE_CATEGORY + " — ") for t in page.titles)  # a bar's tooltip


def test_sorted_by_severity_then_ratio(html: str) -> None:
    assert parse(html).cards == EXPECTED_ORDER
    overview = re.findall(r'<td class="name"><a href="#feature-(\d+)">', html)
    assert overview == [str(i) for i in range(1, 9)]


def test_one_chart_per_feature_with_a_bar_per_bin_and_series(
    html: str, result: dict[str, Any]
) -> None:
    by_name = {f["feature"]: f for f in result["features"]}
    expected = [
        len(by_name[name]["histogram"]["labels"])
        for name in EXPECTED_ORDER
        if "histogram" in by_name[name]
    ]
    page = parse(html)
    assert [c["ref"] for c in page.charts] == expected
    assert [c["cur"] for c in page.charts] == expected
    assert len(page.charts) == len(result["features"]) - 1  # "notes" has no histogram
    assert "No histogram in the result for this feature." in html


def test_header_summary_and_numbers(html: str) -> None:
    text = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))
    assert "2 of 8 features drifted , 2 warned, 1 with too little data to test." in text
    assert "(Benjamini–Hochberg, false discovery rate 0.05)" in text
    assert "ref.parquet · 100,000 rows" in text
    assert "cur.parquet · 1,000,000 rows" in text
    assert "2026-11-30T17:00:00Z" in text and "0.9.0" in text
    assert "statistic 0.31 vs threshold 0.25" in text
    assert "1e-9 / 3e-9" in text  # p-values in scientific notation
    assert "4e-4 / 0.0021" in text
    assert "statistic — vs threshold 0.25" in text  # null statistic
    assert "Cramér's V" in text and "0% / 2%" in text
    assert "Domain classifier ▲ Drift" in text and "AUC 0.71 Threshold 0.55" in text
    assert "reconstruction error 1.3 Expected range 0.95 to 1.05 reference error 1" in text
    assert "Not computed fewer than 2 numeric features" in text
    assert "rows used (reference) 12,000" in text and "p-value —" not in text
    assert "unseen categories (share of current) 5%" in text  # shares as percentages
    assert "segment: eu" in text
    assert "Notes column <b>raw</b> skipped: unsupported type" in text
    assert "<b>raw</b>" not in html


def test_shares_in_tooltips_and_long_labels_truncated(html: str) -> None:
    page = parse(html)
    assert "true — current: —" in page.titles  # a null share
    assert any(re.fullmatch(r"a — reference: \d+(\.\d+)?%", t) for t in page.titles)
    assert LONG_CATEGORY in page.titles  # the full label stays in a tooltip...
    assert "a category label fa…</text>" in html  # ...while the axis shows a truncated one


def test_multivariate_empty_or_missing() -> None:
    for multivariate in ([], None, "drop"):
        result = make_result()
        if multivariate == "drop":
            del result["multivariate"]
        else:
            result["multivariate"] = multivariate
        out = render_html(result)
        parse(out)
        assert "Multivariate checks" not in out


def test_sparse_results_render() -> None:
    parse(render_html({}))
    assert "The result lists no features." in render_html({"features": []})
    bare = render_html({"features": [{"feature": "x"}, {}, {"feature": "y", "drifted": True}]})
    page = parse(bare)
    assert page.cards == ["y", "feature 2", "x"]  # unknown severity after known ones
    assert "0 of 3 features drifted" not in bare  # counted from the features
    assert "1 of 3 features drifted</strong>, 0 warned." in bare


def test_one_bin_and_many_bins_stay_inside_the_chart() -> None:
    for labels in (["only"], numeric_labels(60), [LONG_CATEGORY] * 3):
        result = {"features": [feature("f", histogram=histogram(labels))]}
        svg = re.search(r'<svg class="chart" width="([\d.]+)"', render_html(result))
        assert svg is not None
        width = float(svg.group(1))
        xs = [
            float(x) for x in re.findall(r'<rect class="bar \w+" x="([\d.]+)"', render_html(result))
        ]
        assert len(xs) == 2 * len(labels)
        assert min(xs) > 0 and max(xs) < width


@pytest.mark.parametrize(
    ("value", "sig", "p"),
    [
        (None, "—", "—"),
        (float("nan"), "—", "—"),
        (0.31, "0.31", "0.31"),
        (0.123456, "0.1235", "0.1235"),
        (1e-9, "1e-9", "1e-9"),
        (3.21e-12, "3.21e-12", "3.21e-12"),
        (0.0004, "4e-4", "4e-4"),
        (12.5, "12.5", "12.5"),
        (0, "0", "< 1e-300"),
    ],
)
def test_number_formats(value: float | None, sig: str, p: str) -> None:
    assert fmt_sig(value) == sig
    assert fmt_p(value) == p


def test_count_and_percent_formats() -> None:
    assert fmt_count(1_000_000) == "1,000,000"
    assert fmt_count(None) == "—"
    assert fmt_pct(0.02) == "2%"
    assert fmt_pct(0.123456) == "12.35%"
    assert fmt_pct(None) == "—"


@pytest.mark.browser
def test_in_chromium(chromium: Browser, html: str, tmp_path: Path) -> None:
    out = Path(os.environ.get("WK_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift-report.html").write_text(html, encoding="utf-8")
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    requests: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    def request(req: Request) -> None:
        requests.append(req.url)

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("request", request)
    try:
        page.set_content(html, wait_until="load")
        assert page.locator("details.feature").count() == 8
        assert page.locator("details.feature[open]").count() == 5  # the "ok" ones start closed
        assert page.locator("svg.chart").count() == 7
        assert page.locator("#controls").is_visible()
        # the script opens everything for reading / the screenshot
        page.get_by_role("button", name="Expand all").click()
        assert page.locator("details.feature[open]").count() == 8
        first_bar = page.locator("svg.chart").first.locator("rect.bar.cur").first
        box = first_bar.bounding_box()
        assert box is not None and box["width"] > 3 and box["height"] > 0
        # the hostile name shows as text; no alert ran
        assert page.locator("h3", has_text=HOSTILE_NAME).count() == 1
        page.screenshot(path=str(out / "drift-report.png"), full_page=True)
        page.get_by_role("button", name="Collapse all").click()
        assert page.locator("details.feature[open]").count() == 0
    finally:
        page.close()
    assert problems == []
    assert requests == []


def test_result_is_not_mutated(result: dict[str, Any]) -> None:
    before = copy.deepcopy(result)
    render_html(result)
    assert result == before
