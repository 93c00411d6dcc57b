"""DuckDB's read side: merge per-minute aggregates into windows; describe models.

Every query here reads the small aggregate tables, never the raw events: a 30-day metrics
query touches at most one row per minute, key and histogram bin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import numpy as np

from watchkeeper.metrics import (
    EVAL_METRICS,
    METRICS,
    QUANTILE_METRICS,
    WindowAggregate,
    bin_value,
)
from watchkeeper.store.base import ModelInfo, VersionInfo, WindowQuery


def first(result: duckdb.DuckDBPyConnection | list[Any]) -> Any:
    """The first row of a result, consuming all of it (DuckDB 2.0 refuses further work on a
    connection whose last result was not read to the end)."""
    rows = result if isinstance(result, list) else result.fetchall()
    return rows[0] if rows else None


def _naive(ts: datetime) -> datetime:
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
    return ts


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts.replace(tzinfo=timezone.utc)


class Reads:
    """Mixin holding the aggregate queries; the store passes a per-thread cursor."""

    @staticmethod
    def _window_aggregates(
        cur: duckdb.DuckDBPyConnection,
        model_id: int,
        q: WindowQuery,
        names: Sequence[str] | None = None,
    ) -> list[tuple[datetime, WindowAggregate]]:
        """Merged aggregates per window. With ``names``, fetch only what those metrics need,
        and finish percentiles and ROC AUC here in SQL (``WindowAggregate.finalized``) so
        that histogram bins never travel to Python."""
        found, seconds = Reads._merged(cur, model_id, q, names, None)
        return [
            (datetime.fromtimestamp(b, tz=timezone.utc), WindowAggregate(seconds=seconds, **f))
            for b, f in sorted(found.items())
        ]

    @staticmethod
    def _segment_aggregates(
        cur: duckdb.DuckDBPyConnection,
        model_id: int,
        q: WindowQuery,
        by: str,
        values: Sequence[str],
        names: Sequence[str] | None = None,
    ) -> dict[str, WindowAggregate]:
        """One aggregate over the whole range per value of segment ``by`` — the same merge as
        :meth:`_window_aggregates` with ``segment=(by, value)`` and one window, in one pass
        grouped by value instead of one query per value."""
        found, seconds = Reads._merged(cur, model_id, q, names, (by, list(values)))
        return {values[b - 1]: WindowAggregate(seconds=seconds, **f) for b, f in found.items()}

    @staticmethod
    def _merged(
        cur: duckdb.DuckDBPyConnection,
        model_id: int,
        q: WindowQuery,
        names: Sequence[str] | None,
        group: tuple[str, list[str]] | None,
    ) -> tuple[dict[int, dict[str, Any]], float]:
        """The fields of each group's merged aggregate, keyed by an integer: the window's
        start (epoch seconds), or with ``group=(segment, values)`` the 1-based position of
        the segment's value in ``values`` (over one window covering the range)."""
        start, end = _naive(q.start), _naive(q.end)
        epoch0 = int(start.replace(tzinfo=timezone.utc).timestamp())
        if group is not None:
            bucket = "list_position($vals, seg_value)"
            seconds = (end - start).total_seconds()
        elif q.window_seconds:
            w = int(q.window_seconds)
            bucket = f"(epoch(minute)::BIGINT // {w}) * {w}"
            seconds = float(w)
        else:
            bucket = str(epoch0)
            seconds = (end - start).total_seconds()
        params: dict[str, Any] = {"mid": model_id}
        if group is not None:
            where = "model_id = $mid AND seg_key = $sk AND list_contains($vals, seg_value)"
            params.update(sk=group[0], vals=group[1])
        else:
            seg_key, seg_value = q.segment or ("", "")
            where = "model_id = $mid AND seg_key = $sk AND seg_value = $sv"
            params.update(sk=seg_key, sv=seg_value)
        if q.version is not None:
            where += " AND version = $ver"
            params["ver"] = q.version
        hourly = q.window_seconds is None or q.window_seconds % 3600 == 0
        minute_ranges, hour_ranges = _tiers(cur, model_id, start, end, hourly)

        def source(table: str) -> str:
            """The table's rows in range: clean hours from the hourly tier, the rest from
            minutes (explicit ranges, so both tiers prune by their zone maps)."""
            parts = [
                f"SELECT * FROM {table}{tier} WHERE {where}"
                f" AND minute >= TIMESTAMP '{lo}' AND minute < TIMESTAMP '{hi}'"
                for tier, ranges in (("", minute_ranges), ("_h", hour_ranges))
                for lo, hi in ranges
            ]
            return "(" + " UNION ALL ".join(parts or [f"SELECT * FROM {table} LIMIT 0"]) + ")"

        def rows(select: str, table: str, group: str = "1") -> list[tuple[Any, ...]]:
            return cur.execute(
                f"SELECT {bucket} AS b, {select} FROM {source(table)} GROUP BY {group}",
                params,
            ).fetchall()

        fields: dict[int, dict[str, Any]] = defaultdict(dict)
        for b, *vals in rows(
            "sum(n), sum(n_error), sum(latency_n), sum(latency_sum), max(latency_max),"
            " sum(llm_n), sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(ttft_n),"
            " sum(ttft_sum)",
            "agg_ops",
        ):
            cols = [
                "n",
                "n_error",
                "latency_n",
                "latency_sum",
                "latency_max",
                "llm_n",
                "input_tokens",
                "output_tokens",
                "cost_usd",
                "ttft_n",
                "ttft_sum",
            ]
            for name, val in zip(cols, vals, strict=True):
                if val is not None:
                    fields[b][name] = float(val) if name in _FLOATS else int(val)
        if names is None:
            bins: dict[int, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
            for b, kind, idx, n in rows("kind, bin, sum(n)", "agg_bins", "1, 2, 3"):
                bins[b][kind][int(idx)] = int(n)
            for b, kinds in bins.items():
                for kind, name in _BIN_FIELDS.items():
                    if kind in kinds:
                        fields[b][name] = dict(kinds[kind])
        else:
            _finish_in_sql(cur, bucket, source, params, names, fields)
        if names is None or "positive_rate" in names:
            for b, predicted, n in rows("predicted, sum(n)", "agg_pred", "1, 2"):
                fields[b].setdefault("pred_counts", {})[predicted] = int(n)
        # Operational and LLM metrics read nothing of the labels: skip their table then.
        with_labels = names is None or any(
            n not in METRICS or METRICS[n].group not in _NO_LABELS for n in names
        )
        for b, *vals in (
            rows(
                "sum(n_labeled), sum(logloss_n), sum(logloss_sum), sum(reg_n), sum(abs_err_sum),"
                " sum(sq_err_sum), sum(ape_sum), sum(y_sum), sum(y_sq_sum)",
                "agg_labels",
            )
            if with_labels
            else []
        ):
            cols = [
                "n_labeled",
                "logloss_n",
                "logloss_sum",
                "reg_n",
                "abs_err_sum",
                "sq_err_sum",
                "ape_sum",
                "y_sum",
                "y_sq_sum",
            ]
            for name, val in zip(cols, vals, strict=True):
                fields[b][name] = float(val) if name in _FLOATS else int(val)
        if names is None or any(n in EVAL_METRICS for n in names):
            for b, evaluator, *vals in rows(
                "evaluator, sum(n), sum(n_flagged), sum(score_n), sum(score_sum)",
                "agg_eval",
                "1, 2",
            ):
                for name, val in zip(_EVAL_FIELDS, vals, strict=True):
                    number = float(val) if name == "eval_score_sum" else int(val)
                    fields[b].setdefault(name, {})[evaluator] = number
        if names is None or _CONFUSION_METRICS.intersection(names):
            for b, actual, predicted, n in rows(
                "actual, predicted, sum(n)", "agg_confusion", "1, 2, 3"
            ):
                fields[b].setdefault("confusion", {})[(actual, predicted)] = int(n)
        return dict(fields), seconds

    @staticmethod
    def _segment_values(
        cur: duckdb.DuckDBPyConnection, model_id: int, name: str, start: datetime, end: datetime
    ) -> list[str]:
        """The values segment ``name`` took in [start, end) (both tiers)."""
        return [
            r[0]
            for r in cur.execute(
                "SELECT DISTINCT seg_value FROM (SELECT seg_value FROM agg_ops WHERE model_id = $m"
                " AND seg_key = $k AND minute >= $s AND minute < $e UNION ALL SELECT seg_value"
                " FROM agg_ops_h WHERE model_id = $m AND seg_key = $k AND minute >= $s"
                " AND minute < $e) ORDER BY 1",
                {"m": model_id, "k": name, "s": _naive(start), "e": _naive(end)},
            ).fetchall()
        ]

    @staticmethod
    def _model_info(
        cur: duckdb.DuckDBPyConnection,
        model_id: int,
        name: str,
        task: str | None,
        features: dict[str, str],
    ) -> ModelInfo:
        created = first(cur.execute("SELECT created_at FROM models WHERE id = ?", [model_id]))
        refs = {
            r[0]
            for r in cur.execute(
                "SELECT version FROM reference_sets WHERE model_id = ?", [model_id]
            ).fetchall()
        }
        versions = [
            VersionInfo(
                version=v,
                event_count=int(n),
                first_seen=_aware(lo),
                last_seen=_aware(hi + timedelta(minutes=1)),
                has_reference=v in refs or "" in refs,
            )
            for v, n, lo, hi in cur.execute(
                "SELECT version, sum(n), min(minute), max(minute) FROM agg_ops"
                " WHERE model_id = ? AND seg_key = '' GROUP BY version ORDER BY version",
                [model_id],
            ).fetchall()
        ]
        actuals = first(cur.execute("SELECT count(*) FROM actuals WHERE model_id = ?", [model_id]))
        segments = [
            r[0]
            for r in cur.execute(
                "SELECT DISTINCT seg_key FROM agg_ops WHERE model_id = ? AND seg_key <> ''"
                " ORDER BY 1",
                [model_id],
            ).fetchall()
        ]
        firsts = [v.first_seen for v in versions if v.first_seen]
        lasts = [v.last_seen for v in versions if v.last_seen]
        return ModelInfo(
            name=name,
            task=task,
            created_at=_aware(created[0]) if created else datetime.now(timezone.utc),  # type: ignore[arg-type]
            event_count=sum(v.event_count for v in versions),
            actual_count=int(actuals[0]) if actuals else 0,
            first_seen=min(firsts) if firsts else None,
            last_seen=max(lasts) if lasts else None,
            versions=versions,
            features=dict(sorted(features.items())),
            segments=segments,
        )


_FLOATS = {
    "latency_sum",
    "latency_max",
    "cost_usd",
    "ttft_sum",
    "logloss_sum",
    "abs_err_sum",
    "sq_err_sum",
    "ape_sum",
    "y_sum",
    "y_sq_sum",
}
_BIN_FIELDS = {
    "latency": "latency_bins",
    "ttft": "ttft_bins",
    "cost": "cost_bins",
    "score_pos": "score_pos_bins",
    "score_neg": "score_neg_bins",
}

_CONFUSION_METRICS = {"accuracy", "precision", "recall", "f1"}
_EVAL_FIELDS = ("eval_n", "eval_flagged", "eval_score_n", "eval_score_sum")
_NO_LABELS = {"operational", "llm"}  # metric groups computed without ground truth


def _tiers(
    cur: duckdb.DuckDBPyConnection, model_id: int, start: datetime, end: datetime, hourly: bool
) -> tuple[list[tuple[datetime, datetime]], list[tuple[datetime, datetime]]]:
    """Split [start, end) into ranges read from the minute tier and from the hourly tier.

    Whole hours inside the range come from the hourly tier unless they are dirty (changed
    since their last roll-up); partial hours at the edges and dirty hours come from minutes.
    """
    hs = start.replace(minute=0, second=0, microsecond=0)
    if hs < start:
        hs += timedelta(hours=1)
    he = end.replace(minute=0, second=0, microsecond=0)
    if not hourly or hs >= he:
        return [(start, end)], []
    dirty = [
        r[0]
        for r in cur.execute(
            "SELECT DISTINCT hour FROM dirty_hours WHERE model_id = ? AND hour >= ? AND hour < ?"
            " ORDER BY 1",
            [model_id, hs, he],
        ).fetchall()
    ]
    if len(dirty) > 48:  # many hours not rolled up yet (a fresh backfill): minutes only
        return [(start, end)], []
    minutes = [(start, hs), (he, end)]
    hours: list[tuple[datetime, datetime]] = []
    cursor = hs
    for hour in dirty:
        if hour > cursor:
            hours.append((cursor, hour))
        minutes.append((hour, hour + timedelta(hours=1)))
        cursor = hour + timedelta(hours=1)
    if cursor < he:
        hours.append((cursor, he))
    return [(a, b) for a, b in minutes if a < b], hours


def _finish_in_sql(
    cur: duckdb.DuckDBPyConnection,
    bucket: str,
    source: Callable[[str], str],
    params: dict[str, Any],
    names: Sequence[str],
    fields: dict[int, dict[str, Any]],
) -> None:
    """Percentiles and ROC AUC per window, finished next to the engine.

    DuckDB merges the bins per window and hands them over as columns (numpy arrays, no
    Python objects per bin); the finishing is vectorized over all windows at once. Same
    rules as :func:`watchkeeper.metrics.quantiles` (the bin holding rank ``floor(q·(n−1))``)
    and :func:`watchkeeper.metrics.roc_auc_from_bins` (integer sums, one division);
    ``test_store_duckdb`` checks that both give identical values.
    """
    by_kind: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for name in names:
        if name in QUANTILE_METRICS:
            kind, qv = QUANTILE_METRICS[name]
            by_kind[kind].append((name, qv))
    for kind, wanted in by_kind.items():
        got = cur.execute(
            f"SELECT {bucket} AS b, bin, sum(n)::BIGINT AS n FROM {source('agg_bins')}"
            " WHERE kind = $kind GROUP BY 1, 2 HAVING sum(n) > 0 ORDER BY 1, 2",
            {**params, "kind": kind},
        ).fetchnumpy()
        b, idx, n = (np.asarray(got[c]) for c in ("b", "bin", "n"))
        if not len(b):
            continue
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        totals = np.add.reduceat(n, starts)
        cum = np.cumsum(n)
        before = cum[starts] - n[starts]
        for name, qv in wanted:
            rank = np.floor((totals - 1) * qv).astype(np.int64)
            at = np.searchsorted(cum, before + rank, side="right")
            for window, bin_index in zip(b[starts].tolist(), idx[at].tolist(), strict=True):
                fields[window].setdefault("finalized", {})[name] = bin_value(int(bin_index))
    if "roc_auc" in names:
        got = cur.execute(
            f"""SELECT {bucket} AS b, bin,
                       coalesce(sum(n) FILTER (WHERE kind = 'score_pos'), 0)::BIGINT AS p,
                       coalesce(sum(n) FILTER (WHERE kind = 'score_neg'), 0)::BIGINT AS ng
                FROM {source("agg_bins")} WHERE kind IN ('score_pos', 'score_neg')
                GROUP BY 1, 2 ORDER BY 1, 2""",
            params,
        ).fetchnumpy()
        b, pos, neg = (np.asarray(got[c]) for c in ("b", "p", "ng"))
        if len(b):
            starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
            cum_neg = np.cumsum(neg)
            below = (
                cum_neg
                - neg
                - np.repeat(cum_neg[starts] - neg[starts], np.diff(np.r_[starts, len(b)]))
            )
            twice = np.add.reduceat(pos * (2 * below + neg), starts)
            n_pos, n_neg = np.add.reduceat(pos, starts), np.add.reduceat(neg, starts)
            for window, t, p_, n_ in zip(
                b[starts].tolist(), twice.tolist(), n_pos.tolist(), n_neg.tolist(), strict=True
            ):
                auc = None if not p_ or not n_ else t / (2 * p_ * n_)
                fields[window].setdefault("finalized", {})["roc_auc"] = auc
