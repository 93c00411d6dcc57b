"""DuckDB's read side: merge per-minute aggregates into windows; describe models.

Every query here reads the small aggregate tables, never the raw events: a 30-day metrics
query touches at most one row per minute, key and histogram bin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb

from watchkeeper.metrics import QUANTILE_METRICS, WindowAggregate, bin_value
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
        start, end = _naive(q.start), _naive(q.end)
        epoch0 = int(start.replace(tzinfo=timezone.utc).timestamp())
        if q.window_seconds:
            w = int(q.window_seconds)
            bucket = f"(epoch(minute)::BIGINT // {w}) * {w}"
            seconds = float(w)
        else:
            bucket = str(epoch0)
            seconds = (end - start).total_seconds()
        seg_key, seg_value = q.segment or ("", "")
        where = (
            "model_id = $mid AND minute >= $start AND minute < $end"
            " AND seg_key = $sk AND seg_value = $sv"
        )
        params: dict[str, Any] = {
            "mid": model_id,
            "start": start,
            "end": end,
            "sk": seg_key,
            "sv": seg_value,
        }
        if q.version is not None:
            where += " AND version = $ver"
            params["ver"] = q.version

        def rows(select: str, table: str, group: str = "1") -> list[tuple[Any, ...]]:
            return cur.execute(
                f"SELECT {bucket} AS b, {select} FROM {table} WHERE {where} GROUP BY {group}",
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
            _finish_in_sql(cur, bucket, where, params, names, fields)
        if names is None or "positive_rate" in names:
            for b, predicted, n in rows("predicted, sum(n)", "agg_pred", "1, 2"):
                fields[b].setdefault("pred_counts", {})[predicted] = int(n)
        for b, *vals in rows(
            "sum(n_labeled), sum(logloss_n), sum(logloss_sum), sum(reg_n), sum(abs_err_sum),"
            " sum(sq_err_sum), sum(ape_sum), sum(y_sum), sum(y_sq_sum)",
            "agg_labels",
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
        if names is None or _CONFUSION_METRICS.intersection(names):
            for b, actual, predicted, n in rows(
                "actual, predicted, sum(n)", "agg_confusion", "1, 2, 3"
            ):
                fields[b].setdefault("confusion", {})[(actual, predicted)] = int(n)
        out = []
        for b in sorted(fields):
            when = datetime.fromtimestamp(b, tz=timezone.utc)
            out.append((when, WindowAggregate(seconds=seconds, **fields[b])))
        return out

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
    "score_pos": "score_pos_bins",
    "score_neg": "score_neg_bins",
}

_CONFUSION_METRICS = {"accuracy", "precision", "recall", "f1"}


def _finish_in_sql(
    cur: duckdb.DuckDBPyConnection,
    bucket: str,
    where: str,
    params: dict[str, Any],
    names: Sequence[str],
    fields: dict[int, dict[str, Any]],
) -> None:
    """Percentiles and ROC AUC per window, computed by the engine from the merged bins.

    The same rules as :func:`watchkeeper.metrics.quantiles` (the bin holding rank
    ``floor(q·(n−1))``) and :func:`watchkeeper.metrics.roc_auc_from_bins` (integer sums,
    one division); ``test_store_duckdb`` checks that both give identical values.
    """
    by_kind: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for name in names:
        if name in QUANTILE_METRICS:
            kind, qv = QUANTILE_METRICS[name]
            by_kind[kind].append((name, qv))
    for kind, wanted in by_kind.items():
        qs = sorted({qv for _, qv in wanted})
        got = cur.execute(
            f"""WITH m AS (SELECT {bucket} AS b, bin, sum(n) AS n FROM agg_bins
                           WHERE {where} AND kind = $kind GROUP BY 1, 2 HAVING sum(n) > 0),
            c AS (SELECT b, bin,
                         sum(n) OVER (PARTITION BY b ORDER BY bin
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum,
                         sum(n) OVER (PARTITION BY b) AS total FROM m)
            SELECT b, q, min(bin) FILTER (WHERE cum > floor((total - 1) * q))
            FROM c CROSS JOIN (SELECT unnest($qs::DOUBLE[]) AS q) GROUP BY b, q""",
            {**params, "kind": kind, "qs": qs},
        ).fetchall()
        found = {(b, qv): idx for b, qv, idx in got}
        for b in {b for b, _ in found}:
            done = fields[b].setdefault("finalized", {})
            for name, qv in wanted:
                idx = found.get((b, qv))
                done[name] = None if idx is None else bin_value(int(idx))
    if "roc_auc" in names:
        for b, twice, pos, neg in cur.execute(
            f"""WITH m AS (SELECT {bucket} AS b, bin,
                                  coalesce(sum(n) FILTER (WHERE kind = 'score_pos'), 0) AS p,
                                  coalesce(sum(n) FILTER (WHERE kind = 'score_neg'), 0) AS ng
                           FROM agg_bins WHERE {where} AND kind IN ('score_pos', 'score_neg')
                           GROUP BY 1, 2),
            c AS (SELECT b, p, ng,
                         coalesce(sum(ng) OVER (PARTITION BY b ORDER BY bin ROWS BETWEEN
                                  UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS below FROM m)
            SELECT b, sum(p * (2 * below + ng))::HUGEINT, sum(p)::HUGEINT, sum(ng)::HUGEINT
            FROM c GROUP BY b""",
            params,
        ).fetchall():
            auc = None if not pos or not neg else int(twice) / (2 * int(pos) * int(neg))
            fields[b].setdefault("finalized", {})["roc_auc"] = auc
