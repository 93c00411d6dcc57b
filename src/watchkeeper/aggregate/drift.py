"""Drift and data quality over time ranges, from the store's feature counts.

Engine-neutral: asks a :class:`~watchkeeper.store.base.Store` for merged counts and turns
them into verdicts with :mod:`watchkeeper.drift`. The API and, later, the monitors use these.
"""

from __future__ import annotations

import copy
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from watchkeeper.drift.profile import LABEL, PSEUDO, Counts, Layout
from watchkeeper.drift.quality import feature_quality
from watchkeeper.drift.settings import DriftSettings
from watchkeeper.drift.stats import (
    FeatureDrift,
    MethodChoice,
    check_method,
    compare,
    judge,
    sort_results,
    summary,
)
from watchkeeper.store.base import Store

MULTIVARIATE_ROWS = 5000
COMPARE_CACHE_SIZE = 20_000  # heat-map cells remembered (a few hundred bytes each)


def _fingerprint(c: Counts) -> bytes:
    """A digest of everything :func:`compare` reads from a Counts."""
    h = hashlib.blake2b(digest_size=16)
    for a in (c.n, c.sums, c.squares, c.mins, c.maxs):
        h.update(a.tobytes())
    h.update(f"{c.null},{c.invalid},{len(c.n)}".encode())
    return h.digest()


class _CompareCache:
    """Heat-map cells already computed, keyed by the *content* of their inputs (layout,
    method, reference and window counts), so a refresh recomputes only the windows whose
    counts changed (the newest, or those a late event reached): a new write changes the
    counts, hence the key, and can never be answered from an older result."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._cells: OrderedDict[tuple[Any, ...], FeatureDrift] = OrderedDict()

    def compare(
        self,
        name: str,
        lay: Layout,
        ref: Counts,
        ref_key: bytes,
        cur: Counts,
        choice: MethodChoice,
        min_samples: int,
    ) -> FeatureDrift:
        key = (name, lay, ref_key, _fingerprint(cur), choice, min_samples)
        with self._lock:
            hit = self._cells.get(key)
            if hit is not None:
                self._cells.move_to_end(key)
        if hit is None:
            hit = compare(name, lay, ref, cur, choice, min_samples=min_samples, histogram=False)
            with self._lock:
                self._cells[key] = hit
                while len(self._cells) > self.size:
                    self._cells.popitem(last=False)
        out = copy.copy(hit)  # judge() sets p_adjusted and severity on it
        out.extra = dict(hit.extra)
        return out


_CELLS = _CompareCache(COMPARE_CACHE_SIZE)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def drift_report(
    store: Store,
    model: str,
    start: datetime,
    end: datetime,
    *,
    against: str = "reference",
    version: str | None = None,
    segment: tuple[str, str] | None = None,
    by: str | None = None,
    method: str | None = None,
    features: Sequence[str] | None = None,
    multivariate: bool = True,
    settings: DriftSettings | None = None,
) -> dict[str, Any]:
    """Per-feature drift of [start, end) against the reference or the previous window."""
    settings = settings or DriftSettings()
    check_method(method)
    layouts = store.drift_layouts(model)
    wanted = [f for f in (features or layouts) if f in layouts and settings.enabled(model, f)]
    unknown = [f for f in (features or []) if f not in layouts]
    prev_by: dict[str, dict[str, Counts]] = {}
    if against == "previous":
        prev_start = start - (end - start)
        prev = store.feature_counts(
            model, prev_start, start, version=version, segment=segment, features=wanted
        )
        if by is not None:
            prev_by = {
                sv: c
                for (_, sv), c in store.feature_counts(
                    model, prev_start, start, version=version, by=by, features=wanted
                ).items()
            }
        ref = next(iter(prev.values()), {})
        ref = dict(ref)
        if LABEL in wanted:
            lc = store.label_counts(model, prev_start, start, version=version, segment=segment)
            if lc is not None:
                ref[LABEL] = lc
        ref_desc = {"against": "previous", "start": prev_start, "end": start}
    else:
        ref = store.reference_counts(model, version, segment)
        ref_desc = {"against": "reference", "version": version}
    current = store.feature_counts(
        model, start, end, version=version, segment=segment, by=by, features=wanted
    )
    groups: dict[str, dict[str, Counts]] = {}
    for (_, seg_value), counts in current.items():
        groups.setdefault(seg_value, {}).update(counts)
    if by is None:
        groups.setdefault("", {})
        if LABEL in wanted:
            lc = store.label_counts(model, start, end, version=version, segment=segment)
            if lc is not None and lc.total:
                groups[""][LABEL] = lc
    results: list[FeatureDrift] = []
    for seg_value, counts in sorted(groups.items()):
        seg_ref = ref
        if by is not None:  # the same segment value of the reference, or of the previous range
            seg_ref = (
                prev_by.get(seg_value, {})
                if against == "previous"
                else store.reference_counts(model, version, (by, seg_value))
            )
        for name in wanted:
            lay = layouts[name]
            r = seg_ref.get(name) or Counts.empty(lay.n_codes)
            c = counts.get(name) or Counts.empty(lay.n_codes)
            if name == LABEL and not c.total:
                continue  # no ground truth yet for this range
            res = compare(
                name,
                lay,
                r,
                c,
                settings.choice(model, name, lay.kind, method),
                min_samples=settings.min_samples,
            )
            if by is not None:
                res.segment = f"{by}:{seg_value}"
            results.append(res)
    judge(results, settings.alpha)
    results = sort_results(results)
    out: dict[str, Any] = {
        "model": model,
        "start": start,
        "end": end,
        "version": version,
        "segment": f"{segment[0]}:{segment[1]}" if segment else None,
        "by": by,
        "reference": ref_desc,
        "summary": summary(results, settings.alpha),
        "features": [r.to_dict() for r in results],
        "unknown_features": unknown,
        "multivariate": [],
    }
    if multivariate and by is None:
        chosen = {n: layouts[n] for n in wanted}  # the features asked for and switched on
        out["multivariate"] = _multivariate(
            store, model, start, end, version, segment, against, chosen
        )
    return out


def _multivariate(
    store: Store,
    model: str,
    start: datetime,
    end: datetime,
    version: str | None,
    segment: tuple[str, str] | None,
    against: str,
    layouts: Mapping[str, Layout],
) -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_limits

    from watchkeeper.drift.multivariate import domain_classifier, pca_reconstruction

    cur = store.sample_rows(
        model, start, end, version=version, segment=segment, limit=MULTIVARIATE_ROWS
    )
    if against == "previous":
        ref = store.sample_rows(
            model,
            start - (end - start),
            start,
            version=version,
            segment=segment,
            limit=MULTIVARIATE_ROWS,
        )
    else:
        ref = store.reference_sample(model, version, limit=MULTIVARIATE_ROWS)
    names = [n for n in layouts if n not in PSEUDO and n in cur and n in ref]
    kinds = {n: layouts[n].kind for n in names}
    r = {n: ref[n] for n in names}
    c = {n: cur[n] for n in names}
    # One OpenMP thread: the server's writer and other requests share the cores, and the
    # classifier's threads slow down several times when they must wait for them.
    with threadpool_limits(limits=1, user_api="openmp"):
        return [
            domain_classifier(r, c, kinds, max_rows=MULTIVARIATE_ROWS),
            pca_reconstruction(r, c, kinds, max_rows=MULTIVARIATE_ROWS),
        ]


def _windows(start: datetime, end: datetime, seconds: int) -> list[int]:
    first = int(start.timestamp()) // seconds * seconds
    last = math.ceil(end.timestamp())
    return list(range(first, last, seconds))


def drift_timeline(
    store: Store,
    model: str,
    start: datetime,
    end: datetime,
    window_seconds: int,
    *,
    version: str | None = None,
    segment: tuple[str, str] | None = None,
    method: str | None = None,
    features: Sequence[str] | None = None,
    settings: DriftSettings | None = None,
) -> dict[str, Any]:
    """Drift statistic per feature per window against the reference (for the heat-map)."""
    settings = settings or DriftSettings()
    check_method(method)
    layouts = store.drift_layouts(model)
    wanted = [
        f
        for f in (features or layouts)
        if f in layouts and f != LABEL and settings.enabled(model, f)
    ]
    ref = store.reference_counts(model, version, segment)
    counts = store.feature_counts(
        model,
        start,
        end,
        version=version,
        segment=segment,
        window_seconds=window_seconds,
        features=wanted,
    )
    windows = _windows(start, end, window_seconds)
    index = {w: i for i, w in enumerate(windows)}
    rows: dict[str, dict[str, Any]] = {}
    choices = {n: settings.choice(model, n, layouts[n].kind, method) for n in wanted}
    for name in wanted:
        lay = layouts[name]
        choice = choices[name]
        rows[name] = {
            "feature": name,
            "kind": lay.kind,
            "method": choice.method,
            "warn_threshold": choice.warn,
            "threshold": choice.drift,
            "statistic": [None] * len(windows),
            "p_adjusted": [None] * len(windows),
            "severity": ["insufficient"] * len(windows),
            "n": [0] * len(windows),
        }
    refs = {name: ref.get(name) or Counts.empty(layouts[name].n_codes) for name in wanted}
    ref_keys = {name: _fingerprint(r) for name, r in refs.items()}
    for (b, _), per_feature in counts.items():
        i = index.get(b)
        if i is None:
            continue
        results = []
        for name in wanted:
            lay = layouts[name]
            c = per_feature.get(name)
            if c is None:
                continue
            res = _CELLS.compare(
                name, lay, refs[name], ref_keys[name], c, choices[name], settings.min_samples
            )
            results.append(res)
        judge(results, settings.alpha)
        for res in results:
            row = rows[res.feature]
            d = res.to_dict()
            row["statistic"][i] = d["statistic"]
            row["p_adjusted"][i] = d["p_adjusted"]
            row["severity"][i] = res.severity
            row["n"][i] = res.n_current

    def worst(row: dict[str, Any]) -> float:
        vals = [v for v in row["statistic"] if v is not None]
        return -(max(vals) / row["threshold"]) if vals and row["threshold"] else 0.0

    return {
        "model": model,
        "start": start,
        "end": end,
        "window_seconds": window_seconds,
        "version": version,
        "segment": f"{segment[0]}:{segment[1]}" if segment else None,
        "windows": [_iso(w) for w in windows],
        "features": sorted(rows.values(), key=lambda r: (worst(r), r["feature"])),
    }


MOVERS = 5  # features and segment values named in a drift alert
MOVER_SEGMENTS = 4  # segment names searched for the values that moved most


def _ratio(row: Mapping[str, Any]) -> float:
    """How far past its drift threshold a result is (statistic ÷ threshold; 0 when unknown)."""
    stat, threshold = row.get("statistic"), row.get("threshold")
    if stat is None or not threshold:
        return 0.0
    return float(stat) / float(threshold)


def _mover(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "feature": row["feature"],
        "method": row["method"],
        "statistic": row["statistic"],
        "threshold": row["threshold"],
        "severity": row["severity"],
        **({"segment": row["segment"]} if row.get("segment") else {}),
    }


def drift_movers(
    store: Store,
    model: str,
    start: datetime,
    end: datetime,
    *,
    version: str | None = None,
    segment: tuple[str, str] | None = None,
    feature: str | None = None,
    settings: DriftSettings | None = None,
    top: int = MOVERS,
) -> dict[str, Any]:
    """What moved most in [start, end): the context a drift alert carries.

    ``features``: the features furthest past their drift threshold (statistic ÷ threshold),
    drifted ones first; ``segments``: for each of the model's segment names (at most
    :data:`MOVER_SEGMENTS`), the segment values in which those features (or ``feature``
    alone, for a ``drift:<feature>`` monitor) moved past their warning threshold, most first,
    each with the feature and statistic — for model-wide drift only (counts are kept per one
    segment at a time, so one segment value is not broken down by another). Features without
    a reference are left out.
    """
    report = drift_report(
        store,
        model,
        start,
        end,
        version=version,
        segment=segment,
        features=[feature] if feature else None,
        multivariate=False,
        settings=settings,
    )
    rows = [r for r in report["features"] if r["statistic"] is not None]
    rows.sort(key=lambda r: (not r["drifted"], -_ratio(r), r["feature"]))
    features = [_mover(r) for r in rows[:top]]
    focus = [f["feature"] for f in features if f["severity"] != "ok"][:3] or [
        f["feature"] for f in features[:1]
    ]
    segments: list[dict[str, Any]] = []
    # Counts are kept per one segment at a time: a monitor of one segment value cannot be
    # broken down by another segment, so only model-wide drift lists segment values.
    names = [] if segment is not None else store.get_model(model).segments
    for name in names[:MOVER_SEGMENTS] if focus else []:
        by = drift_report(
            store,
            model,
            start,
            end,
            version=version,
            segment=segment,
            by=name,
            features=focus,
            multivariate=False,
            settings=settings,
        )
        segments += [r for r in by["features"] if r["statistic"] is not None]
    segments.sort(key=lambda r: (not r["drifted"], -_ratio(r), r["segment"], r["feature"]))
    seen: set[str] = set()
    moved: list[dict[str, Any]] = []
    for r in segments:  # one entry per segment value that moved: its feature that moved most
        if r["segment"] in seen or r["severity"] not in ("warn", "drift"):
            continue
        seen.add(r["segment"])
        moved.append(_mover(r))
        if len(moved) == top:
            break
    return {"features": features, "segments": moved}


def data_quality(
    store: Store,
    model: str,
    start: datetime,
    end: datetime,
    window_seconds: int | None,
    *,
    version: str | None = None,
    segment: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Data-quality metrics per feature and window, plus duplicates and schema changes."""
    layouts = store.drift_layouts(model)
    names = [n for n in layouts if n not in PSEUDO]
    ref = store.reference_counts(model, version, segment)
    counts = store.feature_counts(
        model,
        start,
        end,
        version=version,
        segment=segment,
        window_seconds=window_seconds,
        features=names,
    )
    dups = store.duplicate_counts(model, start, end, window_seconds) if segment is None else {}
    refused = store.rejected_counts(model, start, end, window_seconds)
    history = store.feature_history(model)
    windows = _windows(start, end, window_seconds) if window_seconds else [int(start.timestamp())]
    out_windows = []
    by_window = {b: v for (b, _), v in counts.items()}
    for w in windows:
        per_feature = by_window.get(w, {})
        w_start = datetime.fromtimestamp(w, tz=timezone.utc)
        w_end = w_start + timedelta(seconds=window_seconds) if window_seconds else end
        feats = {}
        rows = 0
        for name in names:
            lay = layouts[name]
            c = per_feature.get(name) or Counts.empty(lay.n_codes)
            rows = max(rows, c.total)
            feats[name] = feature_quality(lay, ref.get(name), c)
        appeared = [
            name
            for name, _, source, at in history
            if source == "events" and w_start <= at < w_end and name not in layouts
        ]
        disappeared = [n for n, q in feats.items() if q["all_null"] == 1]
        dup = dups.get(w, 0)
        out_windows.append(
            {
                "start": _iso(w),
                "rows": rows,
                "duplicates": dup if segment is None else None,
                "duplicate_rate": (dup / (rows + dup) if rows + dup else None)
                if segment is None
                else None,
                "features": feats,
                "schema": {"appeared": appeared, "disappeared": disappeared},
                "rejected": {  # batches refused at ingestion (wrong types, bad rows), by code
                    "batches": sum(b for b, _ in refused.get(w, {}).values()),
                    "rows_with_errors": sum(r for _, r in refused.get(w, {}).values()),
                    "by_code": {code: b for code, (b, _) in refused.get(w, {}).items()},
                },
            }
        )
    not_in_reference = sorted(
        name for name, _, _, _ in history if name not in layouts and name not in PSEUDO
    )
    return {
        "model": model,
        "start": start,
        "end": end,
        "window_seconds": window_seconds,
        "version": version,
        "segment": f"{segment[0]}:{segment[1]}" if segment else None,
        "features_not_in_reference": not_in_reference,
        "windows": out_windows,
    }
