"""Drift on the DuckDB store, read side: layouts, reference and window counts, samples, and
the data-quality counters (duplicates, refused batches, feature history).

Every query reads the small count tables (``reference_profiles``, ``agg_feat`` and its hourly
tier, ``agg_dupes``, ``agg_rejects``) except the bounded samples for the multivariate checks.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.drift.profile import INVALID_CODE, LABEL, NULL_CODE, Counts, Layout, count
from watchkeeper.store import duckdb_sql as sql
from watchkeeper.store.base import NoReferenceError
from watchkeeper.store.duckdb_drift import FEATURE_PREFIX, _arrow
from watchkeeper.store.duckdb_reads import _naive, _tiers, first
from watchkeeper.store.duckdb_upkeep import ModelState


def _bucket(start: datetime, window_seconds: int | None) -> str:
    """SQL for a row's window start (epoch seconds): aligned multiples of the window, or the
    range's start when the range is one window."""
    if window_seconds:
        w = int(window_seconds)
        return f"(epoch(minute)::BIGINT // {w}) * {w}"
    return str(int(start.replace(tzinfo=timezone.utc).timestamp()))


class DriftReads:
    """Mixin of :class:`~watchkeeper.store.duckdb_store.DuckDBStore`."""

    _require: Callable[[str], ModelState]
    _cursor: Callable[[], duckdb.DuckDBPyConnection]
    _layouts: dict[int, dict[str, Layout]]
    _models_lock: threading.Lock

    def drift_layouts(self, model: str) -> dict[str, Layout]:
        m = self._require(model)
        layouts = self._layouts.get(m.id)
        if not layouts:
            raise NoReferenceError(
                f"model {model!r} has no reference profile: upload one with"
                f" PUT /api/v1/models/{model}/reference, or pin a window of its traffic with"
                f" POST /api/v1/models/{model}/reference/pin"
            )
        return dict(layouts)

    def reference_counts(
        self, model: str, version: str | None, segment: tuple[str, str] | None = None
    ) -> dict[str, Counts]:
        """The reference profile for ``version`` (its own reference if uploaded, else the
        model's default) and ``segment`` (that segment's part of the reference when the
        reference has the segment's column, else the whole reference)."""
        m = self._require(model)
        layouts = self.drift_layouts(model)
        cur = self._cursor()
        sk, sv = segment or ("", "")
        if segment is not None:
            has = first(
                cur.execute(
                    "SELECT count(*) FROM reference_profiles WHERE model_id = ? AND seg_key = ?"
                    " AND seg_value = ?",
                    [m.id, sk, sv],
                ).fetchall()
            )
            if not (has and has[0]):
                sk, sv = "", ""
        rows = cur.execute(
            "SELECT version, feature, counts FROM reference_profiles WHERE model_id = ?"
            " AND version IN (?, '') AND seg_key = ? AND seg_value = ?",
            [m.id, version or "", sk, sv],
        ).fetchall()
        have_own = any(v == (version or "") for v, _, _ in rows)
        have_default = any(v == "" for v, _, _ in rows)
        if not have_own and have_default:  # no reference of its own: the default one
            want = ""
        elif not have_own:  # no default set but versioned ones: use the one that fixed the bins
            rows = cur.execute(
                "SELECT p.version, p.feature, p.counts FROM reference_profiles p"
                " JOIN (SELECT version FROM reference_sets WHERE model_id = ?"
                "       ORDER BY uploaded_at DESC LIMIT 1) r ON r.version = p.version"
                " WHERE p.model_id = ? AND p.seg_key = ? AND p.seg_value = ?",
                [m.id, m.id, sk, sv],
            ).fetchall()
            want = rows[0][0] if rows else ""
        else:
            want = version or ""
        out: dict[str, Counts] = {}
        for v, feature, blob in rows:
            if v == want and feature in layouts:
                out[feature] = Counts.from_json(json.loads(blob), layouts[feature].n_codes)
        return out

    def feature_counts(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: str | None = None,
        segment: tuple[str, str] | None = None,
        by: str | None = None,
        window_seconds: int | None = None,
        features: Sequence[str] | None = None,
    ) -> dict[tuple[int, str], dict[str, Counts]]:
        """Merged feature counts keyed by (window start epoch, segment value).

        Without ``window_seconds`` there is one window (keyed by ``start``); with ``by``,
        one entry per value of that segment (else the segment value is ``''``).
        """
        m = self._require(model)
        layouts = self.drift_layouts(model)
        cur = self._cursor()
        start, end = _naive(start), _naive(end)
        bucket = _bucket(start, window_seconds)
        params: dict[str, Any] = {"mid": m.id}
        if by is not None:
            where = "model_id = $mid AND seg_key = $sk"
            params["sk"] = by
        else:
            sk, sv = segment or ("", "")
            where = "model_id = $mid AND seg_key = $sk AND seg_value = $sv"
            params.update(sk=sk, sv=sv)
        if version is not None:
            where += " AND version = $ver"
            params["ver"] = version
        wanted = [f for f in (features or layouts) if f in layouts]
        if not wanted:
            return {}
        params["feats"] = wanted
        where += " AND list_contains($feats, feature)"
        hourly = window_seconds is None or window_seconds % 3600 == 0
        minute_ranges, hour_ranges = _tiers(cur, m.id, start, end, hourly)
        parts = [
            f"SELECT * FROM agg_feat{tier} WHERE {where}"
            f" AND minute >= TIMESTAMP '{lo}' AND minute < TIMESTAMP '{hi}'"
            for tier, ranges in (("", minute_ranges), ("_h", hour_ranges))
            for lo, hi in ranges
        ]
        if not parts:
            return {}
        got = _arrow(
            cur,
            f"SELECT {bucket} AS b, seg_value, feature, bin, sum(n)::BIGINT AS n,"
            " sum(vsum) AS s, sum(vsq) AS q, min(vmin) AS lo, max(vmax) AS hi"
            f" FROM ({' UNION ALL '.join(parts)}) GROUP BY ALL ORDER BY 1, 2, 3",
            params,
        )
        out: dict[tuple[int, str], dict[str, Counts]] = defaultdict(dict)
        if not got.num_rows:
            return out
        cols = {
            name: got.column(name).to_numpy(zero_copy_only=False)
            for name in ("b", "bin", "n", "s", "q", "lo", "hi")
        }
        b = cols["b"]

        def changed(name: str) -> Any:  # row i differs from row i - 1 (strings, in Arrow)
            col = got.column(name)
            return pc.not_equal(col.slice(1), col.slice(0, len(col) - 1)).to_numpy(
                zero_copy_only=False
            )

        # Rows come ordered by (window, segment value, feature): one group per change of key.
        change = (b[1:] != b[:-1]) | changed("seg_value") | changed("feature")
        starts = np.flatnonzero(np.r_[True, change])
        seg = pc.take(got.column("seg_value"), pa.array(starts)).to_pylist()
        feat = pc.take(got.column("feature"), pa.array(starts)).to_pylist()
        group = np.cumsum(np.r_[True, change]) - 1  # the group of each row
        codes = np.asarray(cols["bin"], dtype=np.int64)
        n = np.asarray(cols["n"], dtype=np.int64)
        sums = np.nan_to_num(np.asarray(cols["s"], dtype=np.float64))
        squares = np.nan_to_num(np.asarray(cols["q"], dtype=np.float64))
        lows = np.asarray(cols["lo"], dtype=np.float64)
        highs = np.asarray(cols["hi"], dtype=np.float64)
        lows = np.where(np.isnan(lows), np.inf, lows)
        highs = np.where(np.isnan(highs), -np.inf, highs)
        nulls = np.bincount(group, weights=n * (codes == NULL_CODE), minlength=len(starts))
        invalid = np.bincount(group, weights=n * (codes == INVALID_CODE), minlength=len(starts))
        group_feature = np.array(feat, dtype=object)
        made: list[Any] = [None] * len(starts)
        # The same sums as Counts.add_code_rows, for every group of a feature at once.
        for feature in dict.fromkeys(group_feature.tolist()):
            n_codes = layouts[str(feature)].n_codes
            mine = np.flatnonzero(group_feature == feature)  # this feature's groups
            slot = np.full(len(starts), -1, dtype=np.int64)
            slot[mine] = np.arange(len(mine))
            rows = slot[group]
            ok = (rows >= 0) & (codes >= 0) & (codes < n_codes)
            at = (rows[ok], codes[ok])
            shape = (len(mine), n_codes)
            n_2d = np.zeros(shape, dtype=np.int64)
            np.add.at(n_2d, at, n[ok])
            sums_2d = np.zeros(shape)
            np.add.at(sums_2d, at, sums[ok])
            squares_2d = np.zeros(shape)
            np.add.at(squares_2d, at, squares[ok])
            mins_2d = np.full(shape, np.inf)
            np.minimum.at(mins_2d, at, lows[ok])
            maxs_2d = np.full(shape, -np.inf)
            np.maximum.at(maxs_2d, at, highs[ok])
            for i, g in enumerate(mine.tolist()):
                made[g] = Counts(
                    n_2d[i],
                    sums_2d[i],
                    squares_2d[i],
                    mins_2d[i],
                    maxs_2d[i],
                    int(nulls[g]),
                    int(invalid[g]),
                )
        for g, a in enumerate(starts.tolist()):  # in key order, as the rows came
            key = (int(b[a]), "" if by is None else str(seg[g]))
            out[key][str(feat[g])] = made[g]
        return out

    def label_counts(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: str | None = None,
        segment: tuple[str, str] | None = None,
    ) -> Counts | None:
        """Ground truth of the events in the range, counted in the label's layout."""
        m = self._require(model)
        lay = self.drift_layouts(model).get(LABEL)
        if lay is None:
            return None
        where = "a.model_id = ? AND a.event_ts >= ? AND a.event_ts < ?"
        params: list[Any] = [m.id, _naive(start), _naive(end)]
        join = ""
        if version is not None or segment is not None:
            join = (
                f" JOIN {sql.events_table(m.id)} e ON e.event_id = a.event_id AND e.ts = a.event_ts"
            )
            if version is not None:
                where += " AND e.version = ?"
                params.append(version)
            if segment is not None:
                where += " AND e.segments[?] = ?"
                params += [segment[0], segment[1]]
        column = "label_value" if lay.kind == "number" else "label"
        got = _arrow(
            self._cursor(), f"SELECT a.{column} AS v FROM actuals a{join} WHERE {where}", params
        )
        return count(lay, got.column("v"))

    def sample_rows(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: str | None = None,
        segment: tuple[str, str] | None = None,
        limit: int = 5000,
    ) -> dict[str, np.ndarray]:
        """A uniform sample of the window's feature values (for the multivariate checks)."""
        m = self._require(model)
        names = sorted(m.features)
        if not names:
            return {}
        where = "ts >= ? AND ts < ?"
        params: list[Any] = [_naive(start), _naive(end)]
        if version is not None:
            where += " AND version = ?"
            params.append(version)
        if segment is not None:
            where += " AND segments[?] = ?"
            params += [segment[0], segment[1]]
        cols = ", ".join(sql.ident(FEATURE_PREFIX + n) for n in names)
        # DuckDB samples before WHERE: filter in a subquery so the sample is the window's.
        got = _arrow(
            self._cursor(),
            f"SELECT * FROM (SELECT {cols} FROM {sql.events_table(m.id)} WHERE {where})"
            f" USING SAMPLE reservoir({int(limit)} ROWS) REPEATABLE (7)",
            params,
        )
        return _as_arrays(got, names)

    def reference_sample(
        self, model: str, version: str | None, limit: int = 5000
    ) -> dict[str, np.ndarray]:
        m = self._require(model)
        cur = self._cursor()
        row = first(
            cur.execute(
                "SELECT table_name FROM reference_sets WHERE model_id = ?"
                " ORDER BY (version = ?) DESC, (version = '') DESC, uploaded_at DESC LIMIT 1",
                [m.id, version or ""],
            ).fetchall()
        )
        if row is None:
            return {}
        names = sorted(m.features)
        table = _arrow(
            cur,
            f"SELECT * FROM {sql.ident(row[0])} USING SAMPLE reservoir({int(limit)} ROWS)"
            " REPEATABLE (7)",
        )
        present = [n for n in names if FEATURE_PREFIX + n in table.column_names]
        return _as_arrays(table, present)

    def duplicate_counts(
        self, model: str, start: datetime, end: datetime, window_seconds: int | None
    ) -> dict[int, int]:
        m = self._require(model)
        start, end = _naive(start), _naive(end)
        bucket = _bucket(start, window_seconds)
        rows = (
            self._cursor()
            .execute(
                f"SELECT {bucket}, sum(n) FROM agg_dupes WHERE model_id = ? AND minute >= ?"
                " AND minute < ? GROUP BY 1",
                [m.id, start, end],
            )
            .fetchall()
        )
        return {int(b): int(n) for b, n in rows}

    def rejected_counts(
        self, model: str, start: datetime, end: datetime, window_seconds: int | None
    ) -> dict[int, dict[str, tuple[int, int]]]:
        """Refused batches per window start: code -> (batches, rows with errors)."""
        m = self._require(model)
        start, end = _naive(start), _naive(end)
        bucket = _bucket(start, window_seconds)
        out: dict[int, dict[str, tuple[int, int]]] = {}
        for b, code, batches, rows in (
            self._cursor()
            .execute(
                f"SELECT {bucket}, code, sum(batches), sum(rows_with_errors) FROM agg_rejects"
                " WHERE model_id = ? AND minute >= ? AND minute < ? GROUP BY 1, 2",
                [m.id, start, end],
            )
            .fetchall()
        ):
            out.setdefault(int(b), {})[str(code)] = (int(batches), int(rows))
        return out

    def feature_history(self, model: str) -> list[tuple[str, str, str, datetime]]:
        """(feature, type, where first seen, when) for every feature of the model."""
        m = self._require(model)
        return [
            (name, typ, src, at.replace(tzinfo=timezone.utc))
            for name, typ, src, at in self._cursor()
            .execute(
                "SELECT name, type, source, added_at FROM model_features WHERE model_id = ?"
                " ORDER BY added_at, name",
                [m.id],
            )
            .fetchall()
        ]


def _as_arrays(
    table: pa.Table, names: Sequence[str], prefixed: bool = True
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for n in names:
        col = table.column(FEATURE_PREFIX + n if prefixed else n).combine_chunks()
        if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
            out[n] = np.asarray(
                col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False),
                dtype=np.float64,
            )
        else:
            out[n] = np.asarray(col.to_pylist(), dtype=object)
    return out
