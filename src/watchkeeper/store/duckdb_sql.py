"""DuckDB's SQL: tables, and the statements that maintain the per-minute aggregates.

Two kinds of aggregate rows, both keyed by (model, version, minute, segment key, segment value):

* **operational** rows (``agg_ops``, latency/ttft bins in ``agg_bins``, prediction counts in
  ``agg_pred``) are computed from each committed batch of new events, in the same transaction,
  and *appended*: several partial rows for one key are simply summed when queried. Events are
  immutable, so these rows are exact and never recomputed.
* **label** rows (``agg_labels``, ``agg_confusion``, score bins by label) depend on ground truth,
  which arrives late and may be corrected. A batch of actuals marks the minutes of its events
  dirty (``dirty``, same transaction); the aggregator deletes and recomputes the label rows of
  those minutes from events joined with actuals.

The segment key ``''`` holds the totals; each event also counts once under each of its segments.

An **hourly tier** (``agg_*_h``) holds the same rows summed per hour, so a 30-day query reads
720 rows per key instead of 43,200. Whatever changes a minute's rows (new events, recomputed
labels) marks its hour in ``dirty_hours`` in the same transaction; the roll-up job rebuilds
closed dirty hours from the minute tier. Queries read an hour from the hourly tier only when
it is not dirty, and from the minute tier otherwise, so answers are exact at every moment.
"""

from __future__ import annotations

from watchkeeper.metrics.classification import LOG_LOSS_EPS
from watchkeeper.metrics.scores import score_bin_sql
from watchkeeper.metrics.sketch import bin_index_sql

KEY_COLS = "model_id INTEGER, version VARCHAR, minute TIMESTAMP, seg_key VARCHAR, seg_value VARCHAR"

DDL = f"""
CREATE SEQUENCE IF NOT EXISTS model_ids START 1;
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY, name VARCHAR UNIQUE NOT NULL, task VARCHAR,
    created_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS model_features (
    model_id INTEGER, name VARCHAR, type VARCHAR, source VARCHAR, added_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS actuals (
    model_id INTEGER, event_id VARCHAR, label VARCHAR, label_value DOUBLE, ts TIMESTAMP,
    received_at TIMESTAMP, event_ts TIMESTAMP);
CREATE TABLE IF NOT EXISTS dirty (model_id INTEGER, minute TIMESTAMP);
CREATE TABLE IF NOT EXISTS reference_sets (
    model_id INTEGER, version VARCHAR, table_name VARCHAR, row_count BIGINT,
    uploaded_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS agg_ops ({KEY_COLS}, n BIGINT, n_error BIGINT, latency_n BIGINT,
    latency_sum DOUBLE, latency_max DOUBLE, llm_n BIGINT, input_tokens BIGINT,
    output_tokens BIGINT, cost_usd DOUBLE, ttft_n BIGINT, ttft_sum DOUBLE);
CREATE TABLE IF NOT EXISTS agg_bins ({KEY_COLS}, kind VARCHAR, bin INTEGER, n BIGINT);
CREATE TABLE IF NOT EXISTS agg_pred ({KEY_COLS}, predicted VARCHAR, n BIGINT);
CREATE TABLE IF NOT EXISTS agg_labels ({KEY_COLS}, n_labeled BIGINT, logloss_n BIGINT,
    logloss_sum DOUBLE, reg_n BIGINT, abs_err_sum DOUBLE, sq_err_sum DOUBLE, ape_sum DOUBLE,
    y_sum DOUBLE, y_sq_sum DOUBLE);
CREATE TABLE IF NOT EXISTS agg_confusion ({KEY_COLS}, actual VARCHAR, predicted VARCHAR,
    n BIGINT);
CREATE TABLE IF NOT EXISTS dirty_hours (model_id INTEGER, hour TIMESTAMP);
CREATE TABLE IF NOT EXISTS agg_feat ({KEY_COLS}, feature VARCHAR, bin INTEGER, n BIGINT,
    vsum DOUBLE, vsq DOUBLE, vmin DOUBLE, vmax DOUBLE);
CREATE TABLE IF NOT EXISTS agg_dupes (model_id INTEGER, version VARCHAR, minute TIMESTAMP,
    n BIGINT);
CREATE TABLE IF NOT EXISTS agg_rejects (model_id INTEGER, minute TIMESTAMP, code VARCHAR,
    batches BIGINT, rows_with_errors BIGINT);
CREATE TABLE IF NOT EXISTS drift_layouts (model_id INTEGER, feature VARCHAR, kind VARCHAR,
    layout VARCHAR, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS reference_profiles (model_id INTEGER, version VARCHAR,
    feature VARCHAR, counts VARCHAR, seg_key VARCHAR DEFAULT '', seg_value VARCHAR DEFAULT '');
CREATE TABLE IF NOT EXISTS feature_watermarks (model_id INTEGER PRIMARY KEY,
    received_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS agg_eval ({KEY_COLS}, evaluator VARCHAR, n BIGINT,
    n_flagged BIGINT, score_n BIGINT, score_sum DOUBLE);
"""

AGG_TABLES = (
    "agg_ops",
    "agg_bins",
    "agg_pred",
    "agg_labels",
    "agg_confusion",
    "agg_feat",
    "agg_eval",
)
# The hourly tier: the same tables with ``minute`` holding the hour, rolled up from minutes.
DDL += "".join(
    f"CREATE TABLE IF NOT EXISTS {t}_h AS SELECT * FROM {t} LIMIT 0;\n" for t in AGG_TABLES
)

CORE_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "VARCHAR NOT NULL"),
    ("ts", "TIMESTAMP NOT NULL"),
    ("version", "VARCHAR NOT NULL"),
    ("prediction", "VARCHAR"),
    ("prediction_value", "DOUBLE"),
    ("score", "DOUBLE"),
    ("probabilities", "VARCHAR"),
    ("latency_ms", "DOUBLE"),
    ("is_error", "BOOLEAN NOT NULL"),
    ("error", "VARCHAR"),
    ("segments", "MAP(VARCHAR, VARCHAR)"),
    ("prompt", "VARCHAR"),
    ("response", "VARCHAR"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("ttft_ms", "DOUBLE"),
    ("cost_usd", "DOUBLE"),
    ("trace_id", "VARCHAR"),
    ("conversation_id", "VARCHAR"),
    ("context", "VARCHAR"),
)
# Columns added after the first release: tables made before them gain them at start.
ADDED_EVENT_COLUMNS: tuple[str, ...] = ("trace_id", "conversation_id", "context")

FEATURE_SQL_TYPES = {"number": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN"}


def ident(name: str) -> str:
    """Quote an identifier (feature names may hold ':', '.', '-')."""
    return '"' + name.replace('"', '""') + '"'


def events_table(model_id: int) -> str:
    return f"ev_{model_id}"


def create_events_table(model_id: int) -> str:
    cols = ", ".join(f"{name} {typ}" for name, typ in CORE_EVENT_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {events_table(model_id)} ({cols}, received_at TIMESTAMP)"


def _expanded(source: str, columns: str) -> str:
    """Rows of ``source`` once under the totals key and once per segment they carry.

    ``columns`` are select-list items over ``source`` (expressions need an alias).
    """
    rest = "* EXCLUDE (version, minute, segments)"
    return f"""
    base AS (SELECT version, CAST(date_trunc('minute', ts) AS TIMESTAMP) AS minute, segments,
                    {columns} FROM {source}),
    x AS (
        SELECT version, minute, '' AS seg_key, '' AS seg_value, {rest} FROM base
        UNION ALL
        SELECT version, minute, kv.key, kv.value, * EXCLUDE (version, minute, segments, kv)
        FROM (SELECT *, unnest(map_entries(segments)) AS kv FROM base)
    )"""


_KEYS = "version, minute, seg_key, seg_value"


def ops_aggregate_sql(
    model_id: int,
    source: str,
    with_predictions: bool,
    with_ttft: bool = True,
    with_cost: bool = True,
) -> list[str]:
    """Statements appending the operational aggregates of the events in ``source``.

    The batch is expanded by segment once, into a temporary table with the bin indices
    already computed, and every aggregate reads that.
    """
    cols = (
        "is_error, latency_ms, cost_usd, ttft_ms, input_tokens, output_tokens, prediction,"
        f" {bin_index_sql('latency_ms')} AS lat_bin, {bin_index_sql('ttft_ms')} AS ttft_bin,"
        f" {bin_index_sql('cost_usd')} AS cost_bin,"
        " (prompt IS NOT NULL OR response IS NOT NULL OR input_tokens IS NOT NULL"
        " OR output_tokens IS NOT NULL) AS is_llm"
    )
    stmts = [
        f"CREATE OR REPLACE TEMP TABLE _x AS WITH {_expanded(source, cols)} SELECT * FROM x",
        f"""INSERT INTO agg_ops
        SELECT {model_id}, {_KEYS}, count(*), count(*) FILTER (WHERE is_error),
            count(latency_ms), coalesce(sum(latency_ms), 0), max(latency_ms),
            count(*) FILTER (WHERE is_llm),
            coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
            coalesce(sum(cost_usd), 0), count(ttft_ms), coalesce(sum(ttft_ms), 0)
        FROM _x GROUP BY ALL""",
    ]
    # One statement for every sketch kind: a small batch's cost is mostly per statement.
    kinds = [("latency", "lat_bin", "latency_ms")]
    if with_cost:
        kinds.append(("cost", "cost_bin", "cost_usd"))
    if with_ttft:
        kinds.append(("ttft", "ttft_bin", "ttft_ms"))
    parts = " UNION ALL ".join(
        f"SELECT {_KEYS}, '{kind}' AS kind, {bin_col} AS bin FROM _x WHERE {col} IS NOT NULL"
        for kind, bin_col, col in kinds
    )
    stmts.append(
        f"INSERT INTO agg_bins SELECT {model_id}, {_KEYS}, kind, bin, count(*)"
        f" FROM ({parts}) GROUP BY ALL"
    )
    if with_predictions:
        stmts.append(
            f"""INSERT INTO agg_pred SELECT {model_id}, {_KEYS}, prediction, count(*)
            FROM _x WHERE prediction IS NOT NULL GROUP BY ALL"""
        )
    stmts.append("DROP TABLE _x")
    return stmts


def label_aggregate_sql(model_id: int, with_confusion: bool = True) -> list[str]:
    """Statements recomputing label aggregates for the minutes in temp table ``_dirty``.

    Parameters ``$lo``/``$hi``: bounds of those minutes. Regression models get no confusion
    cells (every distinct number would be a class, and "accuracy" would mean nothing).
    """
    ev = events_table(model_id)
    source = f"""(SELECT e.version, e.ts, e.segments, e.prediction, e.prediction_value, e.score,
                        a.label, a.label_value
                 FROM {ev} e JOIN actuals a ON a.event_id = e.event_id
                 WHERE a.model_id = {model_id} AND e.ts >= $lo AND e.ts < $hi
                   AND a.event_ts >= $lo AND a.event_ts < $hi
                   AND CAST(date_trunc('minute', e.ts) AS TIMESTAMP) IN (SELECT minute FROM _dirty))"""
    cte = "WITH " + _expanded(source, "prediction, prediction_value, score, label, label_value")
    p = f"least(greatest(score, {LOG_LOSS_EPS!r}), 1 - {LOG_LOSS_EPS!r})"
    binary = "score IS NOT NULL AND label IN ('0', '1')"
    reg = "label_value IS NOT NULL AND prediction_value IS NOT NULL"
    err = "abs(label_value - prediction_value)"
    where_dirty = f"model_id = {model_id} AND minute IN (SELECT minute FROM _dirty)"
    confusion = [
        f"""INSERT INTO agg_confusion {cte}
        SELECT {model_id}, {_KEYS}, label, prediction, count(*)
        FROM x WHERE prediction IS NOT NULL GROUP BY ALL"""
    ]
    return [
        f"DELETE FROM agg_labels WHERE {where_dirty}",
        f"DELETE FROM agg_confusion WHERE {where_dirty}",
        f"DELETE FROM agg_bins WHERE {where_dirty} AND kind IN ('score_pos', 'score_neg')",
        f"""INSERT INTO agg_labels {cte}
        SELECT {model_id}, {_KEYS}, count(*),
            count(*) FILTER (WHERE {binary}),
            coalesce(sum(-(CASE WHEN label = '1' THEN ln({p}) ELSE ln(1 - {p}) END))
                FILTER (WHERE {binary}), 0),
            count(*) FILTER (WHERE {reg}),
            coalesce(sum({err}) FILTER (WHERE {reg}), 0),
            coalesce(sum({err} * {err}) FILTER (WHERE {reg}), 0),
            coalesce(sum({err} / greatest(abs(label_value), 2.220446049250313e-16))
                FILTER (WHERE {reg}), 0),
            coalesce(sum(label_value) FILTER (WHERE {reg}), 0),
            coalesce(sum(label_value * label_value) FILTER (WHERE {reg}), 0)
        FROM x GROUP BY ALL""",
        f"""INSERT INTO agg_bins {cte}
        SELECT {model_id}, {_KEYS},
            CASE WHEN label = '1' THEN 'score_pos' ELSE 'score_neg' END,
            {score_bin_sql("score")}, count(*)
        FROM x WHERE {binary} GROUP BY ALL""",
        *(confusion if with_confusion else []),
        *eval_aggregate_sql(model_id),
    ]


def eval_aggregate_sql(model_id: int) -> list[str]:
    """Statements recomputing the evaluation aggregates (``agg_eval``) of the minutes in
    temp table ``_dirty``, bounds ``$lo``/``$hi``: evaluations arrive late and are replaced
    on re-evaluation, like labels, so they share the ``dirty`` mechanism."""
    source = f"""(SELECT version, event_ts AS ts, segments, evaluator, score, flagged
                 FROM evaluations
                 WHERE model_id = {model_id} AND event_ts >= $lo AND event_ts < $hi
                   AND CAST(date_trunc('minute', event_ts) AS TIMESTAMP)
                       IN (SELECT minute FROM _dirty))"""
    where_dirty = f"model_id = {model_id} AND minute IN (SELECT minute FROM _dirty)"
    return [
        f"DELETE FROM agg_eval WHERE {where_dirty}",
        f"""INSERT INTO agg_eval WITH {_expanded(source, "evaluator, score, flagged")}
        SELECT {model_id}, {_KEYS}, evaluator, count(*), count(*) FILTER (WHERE flagged),
            count(score), coalesce(sum(score), 0)
        FROM x GROUP BY ALL""",
    ]


_OPS_SUMS = (
    "sum(n), sum(n_error), sum(latency_n), sum(latency_sum), max(latency_max), sum(llm_n),"
    " sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(ttft_n), sum(ttft_sum)"
)
_LABEL_SUMS = (
    "sum(n_labeled), sum(logloss_n), sum(logloss_sum), sum(reg_n), sum(abs_err_sum),"
    " sum(sq_err_sum), sum(ape_sum), sum(y_sum), sum(y_sq_sum)"
)
# How rows of each aggregate table merge: the extra key columns, then the merged values.
MERGE: dict[str, str] = {
    "agg_ops": _OPS_SUMS,
    "agg_bins": "kind, bin, sum(n)",
    "agg_pred": "predicted, sum(n)",
    "agg_labels": _LABEL_SUMS,
    "agg_confusion": "actual, predicted, sum(n)",
    "agg_feat": "feature, bin, sum(n), sum(vsum), sum(vsq), min(vmin), max(vmax)",
    "agg_eval": "evaluator, sum(n), sum(n_flagged), sum(score_n), sum(score_sum)",
}


def compact_sql(model_id: int) -> list[str]:
    """Statements merging partial operational rows of minutes in [$lo, $hi) into one per key."""
    rng = f"model_id = {model_id} AND minute >= $lo AND minute < $hi"
    out = []
    for table in ("agg_ops", "agg_bins", "agg_pred", "agg_feat"):
        out += [
            f"CREATE OR REPLACE TEMP TABLE _compact AS SELECT model_id, {_KEYS}, {MERGE[table]}"
            f" FROM {table} WHERE {rng} GROUP BY ALL",
            f"DELETE FROM {table} WHERE {rng}",
            f"INSERT INTO {table} SELECT * FROM _compact",
            "DROP TABLE _compact",
        ]
    return out


def mark_hours_sql(model_id: int, source: str, column: str) -> str:
    """Mark the hours of ``source.column`` dirty for the hourly tier."""
    return (
        f"INSERT INTO dirty_hours SELECT DISTINCT {model_id},"
        f" CAST(date_trunc('hour', {column}) AS TIMESTAMP) FROM {source}"
    )


def rollup_sql(model_id: int) -> list[str]:
    """Statements rebuilding the hourly tier for the closed dirty hours (before ``$cut``)."""
    hours = "(SELECT hour FROM _hours)"
    out = [
        "CREATE OR REPLACE TEMP TABLE _hours AS SELECT DISTINCT hour FROM dirty_hours"
        f" WHERE model_id = {model_id} AND hour < $cut",
    ]
    for table in AGG_TABLES:
        out += [
            f"DELETE FROM {table}_h WHERE model_id = {model_id} AND minute IN {hours}",
            f"""INSERT INTO {table}_h
            SELECT model_id, version, CAST(date_trunc('hour', minute) AS TIMESTAMP) AS minute,
                   seg_key, seg_value, {MERGE[table]}
            FROM {table}
            WHERE model_id = {model_id}
              AND minute >= (SELECT min(hour) FROM _hours)
              AND minute < (SELECT max(hour) FROM _hours) + INTERVAL 1 HOUR
              AND CAST(date_trunc('hour', minute) AS TIMESTAMP) IN {hours}
            GROUP BY ALL""",
        ]
    out += [
        f"DELETE FROM dirty_hours WHERE model_id = {model_id} AND hour IN {hours}",
        "DROP TABLE _hours",
    ]
    return out
