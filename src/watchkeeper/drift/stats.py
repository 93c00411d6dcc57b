"""Drift statistics on binned counts, a false-discovery-rate control, and the drift verdict.

Everything here works on :class:`~watchkeeper.drift.profile.Counts` in one layout, so the
same code serves the offline command (counts from files) and the server (counts merged from
per-minute aggregates).

Methods (the names users see):

``psi``
    Population stability index over the coarse bins (~reference deciles for numbers; the
    categories for categorical features), with missing values as one more bin:
    ``PSI = Σ (c_i - r_i) · ln(c_i / r_i)`` over bin shares, a share of 0 replaced by
    ``1e-4``. Thresholds 0.1 (warn) and 0.25 (drift), the field's usual ones.
``jensen_shannon``
    Jensen-Shannon *distance* (square root of the divergence, base 2, so in [0, 1]) over
    the same bins. Thresholds 0.05 / 0.1.
``hellinger``
    Hellinger distance ``sqrt(1 - Σ sqrt(r_i c_i))`` over the same bins, in [0, 1].
    Thresholds 0.05 / 0.1.
``wasserstein``
    Earth mover's distance between the two distributions (non-missing values), divided by
    the reference's standard deviation so one threshold fits every feature. Thresholds
    0.05 / 0.1.
``ks``
    Two-sample Kolmogorov-Smirnov statistic (non-missing values). Thresholds 0.05 / 0.1.
``chi_square``
    Pearson's chi-square test of homogeneity on the category counts; the effect size
    judged is Cramér's V (``sqrt(chi2 / n)`` for two samples), thresholds 0.1 / 0.3
    (Cohen's small and medium effects).

p-values: ``ks`` uses the Kolmogorov distribution (as ``scipy.stats.ks_2samp`` with
``method="asymp"``); every binned method reports the chi-square homogeneity test on its bins
(for PSI this is its known asymptotic law, ``PSI · n_r n_c / (n_r + n_c) ≈ χ²``, up to the
smoothing); ``wasserstein`` has none. A result drifts when its effect size reaches the
threshold **and** its Benjamini-Hochberg adjusted p-value (across every result of a report)
is below ``alpha`` (0.05) — so large samples do not flag negligible differences, and many
features and segments do not flag by chance.

Binned error bounds (``extra.bound``): with every reference value an edge (the offline
exact mode), ``ks`` is exact. With quantile edges, the true KS statistic lies in
``[D, D + max_i max(r_i, c_i)]`` over the open bins with reference mass, and the true
Wasserstein distance is within ``Σ width_i (r_i + c_i)`` over bins where the two CDFs may
cross (both reported, normalised like the statistic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from watchkeeper.drift.profile import (
    MISSING,
    CategoricalLayout,
    Counts,
    Layout,
    NumericLayout,
    coarse_groups,
    interval_label,
)

PSI_EPS = 1e-4
DEFAULT_ALPHA = 0.05
MIN_SAMPLES = 30  # fewer non-missing values in a window than this: "insufficient"

NUMERIC_METHODS = ("psi", "jensen_shannon", "wasserstein", "ks", "hellinger")
CATEGORICAL_METHODS = ("psi", "jensen_shannon", "chi_square", "hellinger")
METHODS = ("psi", "jensen_shannon", "wasserstein", "ks", "hellinger", "chi_square")
DEFAULT_METHOD = {"number": "psi", "string": "psi", "bool": "psi"}
THRESHOLDS: dict[str, tuple[float, float]] = {  # (warn, drift)
    "psi": (0.1, 0.25),
    "jensen_shannon": (0.05, 0.1),
    "hellinger": (0.05, 0.1),
    "wasserstein": (0.05, 0.1),
    "ks": (0.05, 0.1),
    "chi_square": (0.1, 0.3),
}
SEVERITY_ORDER = {"drift": 0, "warn": 1, "insufficient": 2, "ok": 3}


class DriftConfigError(ValueError):
    """A method or threshold that cannot be used for a feature."""


def check_method(method: str | None) -> None:
    """A method name users gave (request, CLI): known, or DriftConfigError naming the choice."""
    if method is not None and method not in METHODS:
        raise DriftConfigError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")


@dataclass(frozen=True)
class MethodChoice:
    method: str
    warn: float
    drift: float


def choose(
    kind: str,
    method: str | None = None,
    warn: float | None = None,
    drift: float | None = None,
) -> MethodChoice:
    """The method and thresholds for a feature of ``kind``, defaults filled in."""
    m = method or DEFAULT_METHOD.get(kind, "psi")
    allowed = NUMERIC_METHODS if kind == "number" else CATEGORICAL_METHODS
    if m not in allowed:
        raise DriftConfigError(
            f"method {m!r} does not apply to a {kind} feature; use one of {', '.join(allowed)}"
        )
    dw, dd = THRESHOLDS[m]
    d = dd if drift is None else float(drift)
    w = min(dw, d) if warn is None else float(warn)
    if not (w >= 0 and d >= 0) or w > d:
        raise DriftConfigError(f"thresholds must satisfy 0 <= warn <= drift; got {w} and {d}")
    return MethodChoice(m, w, d)


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    method: str
    statistic: float | None
    p_value: float | None
    warn_threshold: float
    threshold: float
    n_reference: int
    n_current: int
    missing_reference: float | None
    missing_current: float | None
    extra: dict[str, Any] = field(default_factory=dict)
    histogram: dict[str, Any] | None = None
    segment: str | None = None
    p_adjusted: float | None = None
    severity: str = "ok"
    drifted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "segment": self.segment,
            "kind": self.kind,
            "method": self.method,
            "statistic": _clean(self.statistic),
            "p_value": _clean(self.p_value),
            "p_adjusted": _clean(self.p_adjusted),
            "warn_threshold": self.warn_threshold,
            "threshold": self.threshold,
            "severity": self.severity,
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "missing_reference": _clean(self.missing_reference),
            "missing_current": _clean(self.missing_current),
            "extra": {k: _clean(v) for k, v in self.extra.items()},
            "histogram": self.histogram,
        }


def _clean(x: Any) -> Any:
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


# ---------------------------------------------------------------------- bins and shares
def binned(
    layout: Layout, ref: Counts, cur: Counts, *, labels: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Counts of both sides in the bins the binned methods use, missing values last (and the
    bins' labels, unless ``labels`` is false)."""
    names: list[str] = []
    if isinstance(layout, NumericLayout):
        groups = coarse_groups(ref.n)
        k = int(groups.max()) + 1 if len(groups) else 0
        r = np.bincount(groups, weights=ref.n, minlength=k)
        c = np.bincount(groups, weights=cur.n, minlength=k)
        if labels:
            names = _group_labels(layout, groups, k)
    else:
        r, c = ref.n.astype(np.float64), cur.n.astype(np.float64)
        if labels:
            names = layout.labels()
    r = np.append(r, ref.null)
    c = np.append(c, cur.null)
    return r, c, [*names, MISSING] if labels else []


def _group_labels(layout: NumericLayout, groups: np.ndarray, k: int) -> list[str]:
    lows, highs = layout.bounds()
    first_idx = np.searchsorted(groups, np.arange(k), side="left")
    last_idx = np.searchsorted(groups, np.arange(k), side="right") - 1
    # a group starting (ending) with a point bin is closed on that side
    return [
        interval_label(float(lows[a]), float(highs[z]), a % 2 == 1, z % 2 == 1)
        for a, z in zip(first_idx.tolist(), last_idx.tolist(), strict=True)
    ]


def _shares(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    return r / max(r.sum(), 1.0), c / max(c.sum(), 1.0)


def psi(r: np.ndarray, c: np.ndarray) -> float:
    p, q = _shares(r, c)
    p = np.where(p == 0, PSI_EPS, p)
    q = np.where(q == 0, PSI_EPS, q)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(r: np.ndarray, c: np.ndarray) -> float:
    p, q = _shares(r, c)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


def hellinger(r: np.ndarray, c: np.ndarray) -> float:
    p, q = _shares(r, c)
    return math.sqrt(max(1.0 - float(np.sum(np.sqrt(p * q))), 0.0))


def chi_square(r: np.ndarray, c: np.ndarray) -> tuple[float, int, float, float]:
    """Pearson's homogeneity test of two count vectors: (chi2, dof, p-value, Cramér's V)."""
    keep = (r + c) > 0
    table = np.vstack([r[keep], c[keep]]).astype(np.float64)
    n = table.sum()
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return 0.0, 0, 1.0, 0.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    # chdtrc is the chi-square survival function (what scipy.stats.chi2.sf calls), without
    # importing scipy.stats (half a second of the offline command's start-up)
    return chi2, dof, float(special.chdtrc(dof, chi2)), math.sqrt(chi2 / n)


def ks(ref: Counts, cur: Counts) -> tuple[float, float, float]:
    """(D, p-value, bound) from numeric counts; see the module notes for the bound."""
    nr, nc = ref.valid, cur.valid
    rc = np.cumsum(ref.n) / nr
    cc = np.cumsum(cur.n) / nc
    d = float(np.max(np.abs(rc - cc)))
    open_codes = np.arange(len(ref.n)) % 2 == 0
    pr, pc_ = ref.n / nr, cur.n / nc
    mass = open_codes & (ref.n > 0)
    bound = float(np.max(np.maximum(pr, pc_)[mass])) if mass.any() else 0.0
    en = nr * nc / (nr + nc)
    # round(en) as scipy's ks_2samp(method="asymp"); it is 0 for one value a side (en 0.5)
    from scipy.stats import kstwo  # only when KS is asked for: scipy.stats is slow to import

    p = float(kstwo.sf(d, max(round(en), 1)))
    return d, min(max(p, 0.0), 1.0), bound


def wasserstein(layout: NumericLayout, ref: Counts, cur: Counts) -> tuple[float, float]:
    """(W1, bound): ∫|F_r - F_c| from counts and sums per code (not normalised).

    Per code, ∫(F_r - F_c) is exact from each side's count and sum of values in the code;
    its absolute value equals ∫|F_r - F_c| unless the CDFs cross inside the code, which can
    only happen where the ranges of F_r - F_c over the code straddle 0: there the error is at
    most ``width · (r_i + c_i)`` (the bound).
    """
    nr, nc = ref.valid, cur.valid
    lo, hi = layout.bounds()
    pr, pc_ = ref.n / nr, cur.n / nc
    # F just before and just after each code, from whole counts: summing the shares in
    # floating point drifts from 1 (and from each other), and a 1e-16 difference at the top
    # would count as a crossing over the whole upper open-ended code
    rcum, ccum = np.cumsum(ref.n), np.cumsum(cur.n)
    rstart, rend = (rcum - ref.n) / nr, rcum / nr
    cstart, cend = (ccum - cur.n) / nc, ccum / nc
    integral = np.zeros(len(pr))
    width = np.zeros(len(pr))
    inner = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
    w = np.where(inner, hi - lo, 0.0)
    hi_f = np.where(inner, hi, 0.0)
    ir = rstart * w + (ref.n * hi_f - ref.sums) / nr
    ic = cstart * w + (cur.n * hi_f - cur.sums) / nc
    integral[inner] = (ir - ic)[inner]
    width[inner] = w[inner]
    e0, e_last = hi[0], lo[-1]
    if math.isfinite(e0):  # below the first edge: ∫_{-inf}^{e0} F = Σ (e0 - v) / n
        integral[0] = (ref.n[0] * e0 - ref.sums[0]) / nr - (cur.n[0] * e0 - cur.sums[0]) / nc
        left = min(ref.mins[0], cur.mins[0])
        width[0] = e0 - left if math.isfinite(left) else 0.0
        # above the last edge: ∫_{e}^{inf} (1 - F) = Σ (v - e) / n, and ∫ (F_r - F_c) is
        # ∫ (1 - F_c) - ∫ (1 - F_r)
        integral[-1] = (cur.sums[-1] - cur.n[-1] * e_last) / nc - (
            ref.sums[-1] - ref.n[-1] * e_last
        ) / nr
        right = max(ref.maxs[-1], cur.maxs[-1])
        width[-1] = right - e_last if math.isfinite(right) else 0.0
    g_lo = rstart - cend
    g_hi = rend - cstart
    crossing = (g_lo < 0) & (g_hi > 0)
    # Where ∫g ≥ 0, ∫|g| − ∫g = 2∫g⁻ ≤ 2·width·(−g_lo); where ∫g < 0, 2∫g⁺ ≤ 2·width·g_hi;
    # and never more than width·(g_hi − g_lo) = width·(r_i + c_i).
    # (where ∫g = 0 both hold, so the smaller: keeps the bound symmetric in its arguments)
    one_sided = (
        2
        * width
        * np.where(integral > 0, -g_lo, np.where(integral < 0, g_hi, np.minimum(g_hi, -g_lo)))
    )
    per_bin = np.minimum(width * (pr + pc_), one_sided)
    err = float(np.sum(per_bin[crossing]))
    return float(np.sum(np.abs(integral))), err


def reference_std(ref: Counts) -> float:
    n = ref.valid
    if n < 2:
        return 0.0
    mean = ref.sums.sum() / n
    var = max(ref.squares.sum() / n - mean * mean, 0.0)
    return math.sqrt(var * n / (n - 1))


# ---------------------------------------------------------------------- one feature
def compare(
    feature: str,
    layout: Layout,
    ref: Counts,
    cur: Counts,
    choice: MethodChoice | None = None,
    *,
    min_samples: int = MIN_SAMPLES,
    histogram: bool = True,
) -> FeatureDrift:
    """The drift of one feature: ``cur`` against ``ref``, both counted in ``layout``."""
    kind = layout.kind
    choice = choice or choose(kind)
    m = choice.method
    r, c, labels = binned(layout, ref, cur, labels=histogram)
    result = FeatureDrift(
        feature=feature,
        kind=kind,
        method=m,
        statistic=None,
        p_value=None,
        warn_threshold=choice.warn,
        threshold=choice.drift,
        n_reference=ref.valid,
        n_current=cur.valid,
        missing_reference=ref.null / ref.total if ref.total else None,
        missing_current=cur.null / cur.total if cur.total else None,
    )
    if histogram:
        p, q = r / max(r.sum(), 1.0), c / max(c.sum(), 1.0)
        result.histogram = {
            "labels": labels,
            "reference": [round(float(x), 6) for x in p],
            "current": [round(float(x), 6) for x in q],
        }
    if isinstance(layout, CategoricalLayout) and cur.valid:
        result.extra["unseen_share"] = float(cur.n[layout.unseen_code] / cur.valid)
    if isinstance(layout, NumericLayout) and cur.valid and ref.valid:
        result.extra["mean_reference"] = float(ref.sums.sum() / ref.valid)
        result.extra["mean_current"] = float(cur.sums.sum() / cur.valid)
        if len(ref.n) > 2:
            result.extra["out_of_range_share"] = float((cur.n[0] + cur.n[-1]) / cur.valid)
    binned_n = (r.sum(), c.sum())
    enough_binned = binned_n[0] > 0 and binned_n[1] >= min_samples
    enough_values = ref.valid > 0 and cur.valid >= min_samples
    if m in ("psi", "jensen_shannon", "hellinger", "chi_square"):
        if not enough_binned:
            result.severity = "insufficient"
            return result
        chi2, dof, p_value, v = chi_square(r, c)
        result.p_value = p_value
        if m == "psi":
            result.statistic = psi(r, c)
        elif m == "jensen_shannon":
            result.statistic = jensen_shannon(r, c)
        elif m == "hellinger":
            result.statistic = hellinger(r, c)
        else:
            result.statistic = v
            result.extra.update(chi2=chi2, dof=dof, cramers_v=v)
    elif not enough_values or not isinstance(layout, NumericLayout):
        result.severity = "insufficient"
        return result
    elif m == "ks":
        d, p_value, bound = ks(ref, cur)
        result.statistic, result.p_value = d, p_value
        result.extra["bound"] = bound
    else:  # wasserstein
        w, err = wasserstein(layout, ref, cur)
        std = reference_std(ref)
        scale = std if std > 0 else 1.0
        result.statistic = w / scale
        result.extra.update(distance=w, reference_std=std, bound=err / scale)
    return result


# ---------------------------------------------------------------------- many features
def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (the step-up false discovery rate procedure)."""
    p = np.asarray(p_values, dtype=np.float64)
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def judge(results: Sequence[FeatureDrift], alpha: float = DEFAULT_ALPHA) -> None:
    """Set ``p_adjusted``, ``severity`` and ``drifted`` on every result, in place."""
    with_p = [r for r in results if r.p_value is not None and r.statistic is not None]
    adjusted = benjamini_hochberg([r.p_value for r in with_p])  # type: ignore[misc]
    for r, a in zip(with_p, adjusted, strict=True):
        r.p_adjusted = float(a)
    for r in results:
        if r.statistic is None:
            r.severity, r.drifted = "insufficient", False
            continue
        significant = r.p_adjusted is None or r.p_adjusted < alpha
        if significant and r.statistic >= r.threshold:
            r.severity, r.drifted = "drift", True
        elif significant and r.statistic >= r.warn_threshold:
            r.severity, r.drifted = "warn", False
        else:
            r.severity, r.drifted = "ok", False


def sort_results(results: list[FeatureDrift]) -> list[FeatureDrift]:
    """Worst first: severity, then how far past its threshold."""

    def key(r: FeatureDrift) -> tuple[int, float, str]:
        ratio = (r.statistic or 0.0) / r.threshold if r.threshold else 0.0
        return (SEVERITY_ORDER.get(r.severity, 9), -ratio, r.feature)

    return sorted(results, key=key)


def summary(results: Sequence[FeatureDrift], alpha: float = DEFAULT_ALPHA) -> dict[str, Any]:
    return {
        "features": len(results),
        "drifted": sum(r.severity == "drift" for r in results),
        "warned": sum(r.severity == "warn" for r in results),
        "insufficient": sum(r.severity == "insufficient" for r in results),
        "fdr_alpha": alpha,
    }


def method_overrides(
    spec: Mapping[str, Any] | None,
) -> dict[str, dict[str, Any]]:
    """Normalise per-feature settings ``{feature: {"method": .., "warn": .., "drift": ..}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in (spec or {}).items():
        if isinstance(value, str):
            out[name] = {"method": value}
        elif isinstance(value, Mapping):
            unknown = set(value) - {"method", "warn", "drift", "enabled"}
            if unknown:
                raise DriftConfigError(
                    f"drift settings for {name!r}: unknown key(s) {', '.join(sorted(unknown))};"
                    " use method, warn, drift, enabled"
                )
            out[name] = dict(value)
        else:
            raise DriftConfigError(f"drift settings for {name!r} must be a method or a mapping")
    return out
