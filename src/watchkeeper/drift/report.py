"""The self-contained HTML drift report that ``watchkeeper drift --html report.html`` writes.

:func:`render_html` turns the drift result dict (the same one ``--json`` writes) into one HTML
page that works offline: the style sheet, the bar charts (inline SVG) and a few lines of
optional script are all inside the page; it loads no fonts, images, scripts or style sheets.

Feature names, categories and bin labels are user data: the template autoescapes everything,
and this module hands it only plain strings and numbers (never markup). All the chart geometry
is computed here so that the template only places what it is given.

The result is read defensively: any key may be missing or ``None`` and shows as "—"; unknown
methods, severities and ``extra`` keys are shown as they are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

__all__ = ["render_html"]

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_TEMPLATE = "report.html.j2"

DASH = "—"

# severity -> (sort rank, badge text, glyph); the badge always carries the text
_SEVERITIES: dict[str, tuple[int, str, str]] = {
    "drift": (0, "Drift", "▲"),
    "warn": (1, "Warning", "!"),
    "insufficient": (2, "Insufficient data", "?"),
    "ok": (3, "OK", "✓"),
}
_UNKNOWN_RANK = 4

_METHODS = {
    "psi": "Population stability index (PSI)",
    "jensen_shannon": "Jensen–Shannon distance",
    "wasserstein": "Wasserstein distance",
    "ks": "Kolmogorov–Smirnov",
    "hellinger": "Hellinger distance",
    "chi_square": "Chi-square",
    "domain_classifier": "Domain classifier",
    "pca_reconstruction": "PCA reconstruction error",
}

# labels for the ``extra`` keys the drift code writes; other keys show with "_" as spaces
_EXTRA_LABELS = {
    "cramers_v": "Cramér's V",
    "chi2": "χ²",
    "dof": "degrees of freedom",
    "unseen_share": "unseen categories (share of current)",
    "out_of_range_share": "outside the reference range (share of current)",
    "mean_reference": "mean (reference)",
    "mean_current": "mean (current)",
    "distance": "distance (unscaled)",
    "reference_std": "standard deviation (reference)",
    "bound": "error bound from binning",
    "reference_error": "reference error",
    "n_reference": "rows used (reference)",
    "n_current": "rows used (current)",
    "n_features": "features used",
    "components": "principal components",
    "p_value": "p-value",
}

# what the statistic of a multivariate check is
_MULTI_STATISTIC = {"domain_classifier": "AUC", "pca_reconstruction": "reconstruction error"}


# chart layout, in CSS pixels (the SVG is drawn at its natural size; wide charts scroll)
_PLOT_HEIGHT = 200.0
_PLOT_TOP = 40.0
_MIN_LEFT = 58.0
_RIGHT = 16.0
_FONT_PX = 11.0
_CHAR_PX = 6.6  # a generous average glyph width for 11px sans-serif
_GROUP_MIN = 16.0
_GROUP_MAX = 96.0
_PLOT_TARGET = 960.0
_PLOT_MIN = 300.0  # a chart of one or two bins is not a sliver
_BAR_MAX = 40.0
_ROTATE_DEG = 40.0
_ROTATE_STEEP_DEG = 65.0  # for narrow groups: keeps neighbouring labels apart
_STEEP_BELOW = 30.0  # group width (px) under which labels turn steeper
_ROTATED_MAX_CHARS = 20
_HORIZONTAL_MAX_BINS = 12


# ---------------------------------------------------------------- formatting


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not a number (bools are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _tidy_exponent(text: str) -> str:
    """``"1.230e-05"`` -> ``"1.23e-5"``."""
    mantissa, _, exponent = text.partition("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    sign = "-" if exponent.startswith("-") else ""
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


def fmt_sig(value: Any, digits: int = 4) -> str:
    """A number to ``digits`` significant digits: fixed notation for everyday magnitudes,
    scientific for very small or very large ones; "—" for missing or NaN."""
    x = _number(value)
    if x is None:
        return DASH if value is None else str(value)
    if math.isnan(x):
        return DASH
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude < -3 or magnitude >= 7:
        return _tidy_exponent(f"{x:.{digits - 1}e}")
    rounded = float(f"{x:.{digits}g}")  # round to significant digits first (0.099996 -> 0.1)
    magnitude = math.floor(math.log10(abs(rounded))) if rounded else 0
    decimals = max(0, digits - 1 - magnitude)
    text = f"{rounded:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_p(value: Any) -> str:
    """A p-value: scientific notation below 0.001 (where it matters), else 4 significant digits."""
    x = _number(value)
    if x is None or math.isnan(x):
        return DASH
    if x == 0:
        return "< 1e-300"  # underflowed: far below any threshold
    if abs(x) < 1e-3:
        return _tidy_exponent(f"{x:.3e}")
    return fmt_sig(x)


def fmt_pct(value: Any) -> str:
    """A share (0..1) as a percentage with up to 4 significant digits."""
    x = _number(value)
    if x is None or math.isnan(x):
        return DASH
    return f"{fmt_sig(x * 100)}%"


def fmt_count(value: Any) -> str:
    """A row count with thousands separators."""
    x = _number(value)
    if x is None:
        return DASH if value is None else str(value)
    if math.isnan(x) or math.isinf(x):
        return fmt_sig(x)
    if x == int(x):
        return f"{int(x):,}"
    return fmt_sig(x)


def fmt_value(value: Any) -> str:
    """Any ``extra`` value: numbers to 4 significant digits, containers as compact JSON."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return fmt_sig(value)
    if isinstance(value, str):
        return value
    try:
        text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = str(value)
    return text if len(text) <= 300 else text[:299] + "…"


def _label(key: str) -> str:
    return _EXTRA_LABELS.get(key, key.replace("_", " "))


def _detail(key: Any, value: Any) -> tuple[str, str]:
    """An ``extra`` entry as (label, text); shares show as percentages."""
    key = str(key)
    if key.endswith("_share") and _number(value) is not None:
        return _label(key), fmt_pct(value)
    if key == "p_value":
        return _label(key), fmt_p(value)
    return _label(key), fmt_value(value)


def _text(value: Any, default: str = DASH) -> str:
    return default if value is None or value == "" else str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value
    return ()


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _signed(text: str) -> str:
    return text if text.startswith(("-", "0", "—")) else f"+{text}"


def _n(value: float) -> str:
    """An SVG coordinate."""
    return f"{value:.1f}".removesuffix(".0")


# ---------------------------------------------------------------- the chart


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    title: str


@dataclass(frozen=True)
class Bin:
    label: str  # the full label (shown in the tooltip)
    shown: str  # what fits under the bar group
    truncated: bool
    missing: bool  # the "missing values" bin
    band_x: str
    band_width: str
    label_x: str
    summary: str
    reference: Bar
    current: Bar


@dataclass(frozen=True)
class Tick:
    y: str
    label: str


@dataclass(frozen=True)
class Chart:
    uid: str
    width: str
    height: str
    plot_left: str
    plot_right: str
    tick_x: str
    plot_top: str
    plot_height: str
    baseline: str
    axis_title_y: str
    label_y: str
    rotate: bool
    rotate_deg: str
    bins: tuple[Bin, ...]
    ticks: tuple[Tick, ...]
    legend_x: str
    aria_label: str


def _nice_max(top: float) -> tuple[float, float]:
    """A round axis maximum at or above ``top`` (a share) and its tick step; at most 5 steps."""
    if not top > 0 or math.isinf(top):
        return 0.1, 0.025
    exponent = math.floor(math.log10(top)) - 1
    while True:
        for factor in (1.0, 2.0, 2.5, 5.0):
            step = factor * 10.0**exponent
            steps = math.ceil(top / step - 1e-9)
            if steps <= 5:
                return steps * step, step
        exponent += 1


def _share(values: Sequence[Any], i: int) -> float | None:
    x = _number(values[i]) if i < len(values) else None
    return None if x is None or math.isnan(x) else x


def _chart(uid: str, feature: str, histogram: Mapping[str, Any]) -> Chart | None:
    labels = [_text(x, "") for x in _sequence(histogram.get("labels"))]
    reference = _sequence(histogram.get("reference"))
    current = _sequence(histogram.get("current"))
    count = max(len(labels), len(reference), len(current))
    if count == 0:
        return None
    labels += [f"bin {i + 1}" for i in range(len(labels), count)]
    labels = [label or f"bin {i + 1}" for i, label in enumerate(labels)]
    ref = [_share(reference, i) for i in range(count)]
    cur = [_share(current, i) for i in range(count)]

    group = min(_GROUP_MAX, max(_GROUP_MIN, _PLOT_TARGET / count))
    group = max(group, _PLOT_MIN / count)
    plot_width = group * count
    fits = all(len(label) * _CHAR_PX <= group - 6 for label in labels)
    rotate = not (fits and count <= _HORIZONTAL_MAX_BINS)
    shown = [_truncate(label, _ROTATED_MAX_CHARS) if rotate else label for label in labels]

    degrees = _ROTATE_STEEP_DEG if group < _STEEP_BELOW else _ROTATE_DEG
    sin, cos = math.sin(math.radians(degrees)), math.cos(math.radians(degrees))
    if rotate:
        longest = max(len(s) for s in shown) * _CHAR_PX
        label_band = longest * sin + _FONT_PX * cos + 14
        # a rotated label reaches left of its group's centre; keep the first ones inside
        overhang = max(len(s) * _CHAR_PX * cos - (i + 0.5) * group for i, s in enumerate(shown))
        left = max(_MIN_LEFT, overhang + 8)
    else:
        label_band = _FONT_PX + 16
        left = _MIN_LEFT
    baseline = _PLOT_TOP + _PLOT_HEIGHT
    height = baseline + label_band + 6

    top = max([x for x in ref + cur if x is not None], default=0.0)
    axis_max, step = _nice_max(top)
    ticks = tuple(
        Tick(_n(baseline - _PLOT_HEIGHT * (k * step) / axis_max), fmt_pct(k * step))
        for k in range(round(axis_max / step) + 1)
    )

    def bar(x: float, width: float, share: float | None, series: str, label: str) -> Bar:
        h = 0.0 if share is None or share <= 0 else _PLOT_HEIGHT * min(share, axis_max) / axis_max
        if share is not None and share > 0:
            h = max(h, 1.0)  # a tiny but non-zero share stays visible
        title = f"{label} — {series}: {fmt_pct(share)}"
        return Bar(_n(x), _n(baseline - h), _n(width), _n(h), title)

    bins = []
    bar_width = min(_BAR_MAX, (group * 0.72 - 1) / 2)
    pad = (group - 2 * bar_width - 1) / 2
    for i, label in enumerate(labels):
        x0 = left + i * group
        r, c = ref[i], cur[i]
        delta = (
            ""
            if r is None or c is None
            else f"\nchange: {_signed(fmt_sig((c - r) * 100))} percentage points"
        )
        summary = f"{label}\nreference: {fmt_pct(r)}\ncurrent: {fmt_pct(c)}{delta}"
        bins.append(
            Bin(
                label=label,
                shown=shown[i],
                truncated=shown[i] != label,
                missing=label.strip().lower() == "missing",
                band_x=_n(x0),
                band_width=_n(group),
                label_x=_n(x0 + group / 2),
                summary=summary,
                reference=bar(x0 + pad, bar_width, ref[i], "reference", label),
                current=bar(x0 + pad + bar_width + 1, bar_width, cur[i], "current", label),
            )
        )
    width = left + plot_width + _RIGHT
    return Chart(
        uid=uid,
        width=_n(max(width, 360.0)),
        height=_n(height),
        plot_left=_n(left),
        plot_right=_n(left + plot_width),
        tick_x=_n(left - 6),
        plot_top=_n(_PLOT_TOP),
        plot_height=_n(_PLOT_HEIGHT),
        baseline=_n(baseline),
        axis_title_y=_n(_PLOT_TOP + _PLOT_HEIGHT / 2),
        label_y=_n(baseline + 14),
        rotate=rotate,
        rotate_deg=_n(-degrees),
        bins=tuple(bins),
        ticks=ticks,
        legend_x=_n(left),
        aria_label=(
            f"Share of rows per bin of {feature}: reference (solid) against current (hatched), "
            f"{count} bins"
        ),
    )


# ---------------------------------------------------------------- features


@dataclass(frozen=True)
class Severity:
    key: str
    label: str
    glyph: str
    rank: int

    @property
    def css(self) -> str:
        """A class name: the severity itself when known (never user text)."""
        return f"sev-{self.key}" if self.key in _SEVERITIES else "sev-unknown"


@dataclass(frozen=True)
class Feature:
    anchor: str
    name: str
    segment: str
    kind: str
    method: str
    method_key: str
    severity: Severity
    statistic: str
    threshold: str
    warn_threshold: str
    ratio: str
    p_value: str
    p_adjusted: str
    n_reference: str
    n_current: str
    missing_reference: str
    missing_current: str
    extra: tuple[tuple[str, str], ...]
    chart: Chart | None


def _severity(feature: Mapping[str, Any]) -> Severity:
    key = feature.get("severity")
    if not isinstance(key, str) or not key:
        drifted = feature.get("drifted")
        key = "drift" if drifted is True else "ok" if drifted is False else "unknown"
    rank, label, glyph = _SEVERITIES.get(key, (_UNKNOWN_RANK, key.replace("_", " "), "•"))
    return Severity(key, label, glyph, rank)


def _ratio(feature: Mapping[str, Any]) -> float | None:
    statistic, threshold = _number(feature.get("statistic")), _number(feature.get("threshold"))
    if statistic is None or threshold is None or not threshold > 0:
        return None
    ratio = statistic / threshold
    return None if math.isnan(ratio) else ratio


def _sort_key(item: tuple[str, Mapping[str, Any]]) -> tuple[int, bool, float, str, str]:
    """Severity first (drift, warn, insufficient, ok), then statistic / threshold, largest
    first (features without a ratio last), then the name and segment."""
    name, feature = item
    ratio = _ratio(feature)
    segment = _text(feature.get("segment"), "")
    return (_severity(feature).rank, ratio is None, -(ratio or 0.0), name, segment)


def _feature(position: int, name: str, feature: Mapping[str, Any]) -> Feature:
    """The view of one feature; ``position`` is its place on the page (for ids)."""
    method_key = _text(feature.get("method"))
    ratio = _ratio(feature)
    extra = tuple(_detail(k, v) for k, v in _mapping(feature.get("extra")).items())
    return Feature(
        anchor=f"feature-{position + 1}",
        name=name,
        segment=_text(feature.get("segment"), ""),
        kind=_text(feature.get("kind")),
        method=_METHODS.get(method_key, method_key.replace("_", " ")),
        method_key=method_key,
        severity=_severity(feature),
        statistic=fmt_sig(feature.get("statistic")),
        threshold=fmt_sig(feature.get("threshold")),
        warn_threshold=fmt_sig(feature.get("warn_threshold")),
        ratio="" if ratio is None else f"{fmt_sig(ratio, 3)}× the threshold",
        p_value=fmt_p(feature.get("p_value")),
        p_adjusted=fmt_p(feature.get("p_adjusted")),
        n_reference=fmt_count(feature.get("n_reference")),
        n_current=fmt_count(feature.get("n_current")),
        missing_reference=fmt_pct(feature.get("missing_reference")),
        missing_current=fmt_pct(feature.get("missing_current")),
        extra=extra,
        chart=_chart(f"c{position + 1}", name, _mapping(feature.get("histogram"))),
    )


# ---------------------------------------------------------------- multivariate


@dataclass(frozen=True)
class TopFeature:
    name: str
    importance: str
    width: str  # percent of the largest importance, for the CSS bar


@dataclass(frozen=True)
class Multivariate:
    method: str
    badge: Severity
    statistic_label: str
    statistic: str
    threshold: str
    range: str
    reason: str
    details: tuple[tuple[str, str], ...]
    top_features: tuple[TopFeature, ...]


_MULTI_KNOWN = {
    "method",
    "statistic",
    "threshold",
    "drifted",
    "top_features",
    "lower",
    "upper",
    "reason",
}


def _multivariate(entry: Mapping[str, Any]) -> Multivariate:
    method_key = _text(entry.get("method"))
    drifted = entry.get("drifted")
    tops = [_mapping(t) for t in _sequence(entry.get("top_features"))]
    largest = max((abs(_number(t.get("importance")) or 0.0) for t in tops), default=0.0)
    top_features = tuple(
        TopFeature(
            name=_text(t.get("feature")),
            importance=fmt_sig(t.get("importance")),
            width=_n(100 * abs(_number(t.get("importance")) or 0.0) / largest if largest else 0),
        )
        for t in tops
    )
    lower, upper = entry.get("lower"), entry.get("upper")
    span = f"{fmt_sig(lower)} to {fmt_sig(upper)}" if lower is not None or upper is not None else ""
    if drifted is True:
        badge = Severity("drift", *_SEVERITIES["drift"][1:], rank=0)
    elif entry.get("statistic") is None:
        badge = Severity("insufficient", "Not computed", "?", rank=2)
    elif drifted is False:
        badge = Severity("ok", *_SEVERITIES["ok"][1:], rank=3)
    else:
        badge = Severity("unknown", "Not decided", "•", rank=_UNKNOWN_RANK)
    return Multivariate(
        method=_METHODS.get(method_key, method_key.replace("_", " ")),
        badge=badge,
        statistic_label=_MULTI_STATISTIC.get(method_key, "statistic"),
        statistic=fmt_sig(entry.get("statistic")),
        threshold=fmt_sig(entry.get("threshold")) if entry.get("threshold") is not None else "",
        range=span,
        reason=_text(entry.get("reason"), ""),
        details=tuple(
            _detail(k, v) for k, v in entry.items() if k not in _MULTI_KNOWN and v is not None
        ),
        top_features=top_features,
    )


# ---------------------------------------------------------------- the page


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=True,  # every name, category and label is user data
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(result: Mapping[str, Any]) -> str:
    """The drift report for ``result`` as one self-contained HTML page."""
    raw = [_mapping(f) for f in _sequence(result.get("features"))]
    named = [(_text(f.get("feature"), f"feature {i + 1}"), f) for i, f in enumerate(raw)]
    features = [_feature(i, *item) for i, item in enumerate(sorted(named, key=_sort_key))]
    summary = _mapping(result.get("summary"))
    counts = {key: sum(f.severity.key == key for f in features) for key in _SEVERITIES}

    def summary_count(key: str, fallback: int) -> str:
        value = _number(summary.get(key))
        return fmt_count(value) if value is not None else f"{fallback:,}"

    reference, current = _mapping(result.get("reference")), _mapping(result.get("current"))
    fdr = _number(summary.get("fdr_alpha"))
    context = {
        "title": f"Drift report — {_text(current.get('source'), 'current data')}",
        "generated_at": _text(result.get("generated_at")),
        "version": _text(result.get("watchkeeper_version")),
        "reference": {
            "source": _text(reference.get("source")),
            "rows": fmt_count(reference.get("rows")),
        },
        "current": {"source": _text(current.get("source")), "rows": fmt_count(current.get("rows"))},
        "total": summary_count("features", len(features)),
        "drifted": summary_count("drifted", counts["drift"]),
        "warned": summary_count("warned", counts["warn"]),
        "insufficient": summary_count("insufficient", counts["insufficient"]),
        "fdr_alpha": fmt_sig(fdr) if fdr is not None else "",
        "notes": [str(n) for n in _sequence(result.get("notes")) if n is not None and n != ""],
        "features": features,
        "collapsed": counts["ok"],
        "multivariate": [_multivariate(_mapping(m)) for m in _sequence(result.get("multivariate"))],
    }
    return _environment().get_template(_TEMPLATE).render(context)
