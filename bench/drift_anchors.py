"""Drift anchors for ``bench_drift_offline.py``: each one is a whole process of its own.

    python bench/drift_anchors.py {duckdb|evidently|nannyml} REFERENCE.parquet CURRENT.parquet
    python bench/drift_anchors.py versions

Runs in the benchmark-only virtualenv (``bench/requirements-anchors.txt``), never in the
product's. Imports nothing from ``watchkeeper`` or ``bench/common.py``. Each anchor reads the
two Parquet files, computes univariate drift for the feature columns (every column but
``score`` and ``prediction``: numbers are numeric features, strings categorical) and prints
one JSON line: what it computed, how many columns it calls drifted, and its own split of the
time (``load_s``, ``compute_s``; the benchmark measures the whole process from outside).

* ``duckdb``: what an engineer writes by hand. Query 1 takes the reference's deciles of
  every numeric column; query 2 counts both files in those bins (``histogram(CASE ...)``)
  and counts the categories (``histogram(col)``), one row per file. PSI, Jensen-Shannon
  distance and the chi-square test of the 2 x k table then run in numpy/scipy on those
  few hundred counts. Drifted: PSI >= 0.1.
* ``evidently``: ``Report([DataDriftPreset()])`` on pandas DataFrames read with
  ``pandas.read_parquet``, with an explicit ``DataDefinition`` (numerical / categorical
  columns); the snapshot is turned into its ``dict()``. Evidently picks the test per column
  (over 1,000 rows: normed Wasserstein for numbers, Jensen-Shannon for categories, 0.1).
* ``nannyml``: ``UnivariateDriftCalculator`` with its defaults (Jensen-Shannon for both
  kinds, standard-deviation thresholds) and its default chunking: ``DefaultChunker``, ten
  chunks of each data set (reference 10 x 10 %, current 10 x 10 %). Fitted on the reference,
  calculated on the current. Drifted: a column with an alert in any current chunk.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

OUTPUTS = ("score", "prediction")  # model outputs, not features
PSI_DRIFT = 0.1
PSI_EPS = 1e-4  # share floor so an empty bin does not make PSI infinite

os.environ.setdefault("DO_NOT_TRACK", "1")  # evidently's telemetry
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # nannyml's


def feature_columns(path: str) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns from the Parquet schema."""
    import pyarrow.parquet as pq
    import pyarrow.types as pt

    numeric: list[str] = []
    categorical: list[str] = []
    for field in pq.read_schema(path):
        if field.name in OUTPUTS:
            continue
        if pt.is_integer(field.type) or pt.is_floating(field.type):
            numeric.append(field.name)
        elif pt.is_string(field.type) or pt.is_large_string(field.type):
            categorical.append(field.name)
    return numeric, categorical


# --- duckdb -----------------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bin_case(col: str, edges: list[float]) -> str:
    """Bin k for x <= edges[k], len(edges) above the last edge (NULL stays NULL)."""
    whens = " ".join(f"WHEN {col} <= {e!r} THEN {k}" for k, e in enumerate(edges))
    return f"CASE WHEN {col} IS NULL THEN NULL {whens} ELSE {len(edges)} END"


def _compare(ref: dict[Any, int], cur: dict[Any, int]) -> dict[str, float]:
    import numpy as np
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    keys = sorted(set(ref) | set(cur), key=str)
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    c = np.array([cur.get(k, 0) for k in keys], dtype=np.float64)
    p = np.maximum(r / r.sum(), PSI_EPS)
    q = np.maximum(c / c.sum(), PSI_EPS)
    psi = float(np.sum((q - p) * np.log(q / p)))
    js = float(jensenshannon(r, c, base=2))
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    chi2, pvalue = (0.0, 1.0) if table.shape[1] < 2 else chi2_contingency(table)[:2]
    return {"psi": psi, "js": js, "chi2": float(chi2), "p_value": float(pvalue)}


def run_duckdb(ref: str, cur: str) -> dict[str, Any]:
    import duckdb

    numeric, categorical = feature_columns(ref)
    t0 = time.perf_counter()
    con = duckdb.connect()
    probs = [i / 10 for i in range(1, 10)]
    deciles = con.execute(
        "SELECT "
        + ", ".join(f"quantile_cont({_quote(c)}, {probs}) AS {_quote(c)}" for c in numeric)
        + " FROM read_parquet($ref)",
        {"ref": ref},
    ).fetchone()
    assert deciles is not None
    edges = {c: sorted(set(d or [])) for c, d in zip(numeric, deciles, strict=True)}
    aggs = [f"histogram({_bin_case(_quote(c), edges[c])}) AS {_quote(c)}" for c in numeric]
    aggs += [f"histogram({_quote(c)}) AS {_quote(c)}" for c in categorical]
    select = ", ".join(aggs)
    rows = con.execute(
        f"SELECT 'ref' AS side, {select} FROM read_parquet($ref) "
        f"UNION ALL SELECT 'cur' AS side, {select} FROM read_parquet($cur)",
        {"ref": ref, "cur": cur},
    ).fetchall()
    t1 = time.perf_counter()
    counts = {row[0]: dict(zip(numeric + categorical, row[1:], strict=True)) for row in rows}
    columns = {c: _compare(counts["ref"][c], counts["cur"][c]) for c in numeric + categorical}
    t2 = time.perf_counter()
    drifted = sorted(c for c, s in columns.items() if s["psi"] >= PSI_DRIFT)
    return {
        "columns": len(columns),
        "numeric": len(numeric),
        "categorical": len(categorical),
        "rows_reference": sum(counts["ref"][numeric[0]].values()) if numeric else None,
        "rows_current": sum(counts["cur"][numeric[0]].values()) if numeric else None,
        "drifted": drifted,
        "n_drifted": len(drifted),
        "rule": f"psi >= {PSI_DRIFT}",
        "psi": {c: round(s["psi"], 4) for c, s in columns.items()},
        "load_s": None,  # DuckDB reads while it counts: all in query_s
        "query_s": round(t1 - t0, 3),
        "compute_s": round(t2 - t1, 3),
    }


# --- evidently --------------------------------------------------------------------------------


def run_evidently(ref: str, cur: str) -> dict[str, Any]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric, categorical = feature_columns(ref)
    t0 = time.perf_counter()
    ref_df = pd.read_parquet(ref, columns=numeric + categorical)
    cur_df = pd.read_parquet(cur, columns=numeric + categorical)
    t1 = time.perf_counter()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur_df, data_definition=definition),
        Dataset.from_pandas(ref_df, data_definition=definition),
    )
    result = snapshot.dict()
    text = json.dumps(result, default=str)  # the whole result, as a caller would store it
    t2 = time.perf_counter()
    drifted: list[str] = []
    count = None
    for metric in result["metrics"]:
        name, config, value = metric["metric_name"], metric["config"], metric["value"]
        if name.startswith("DriftedColumnsCount"):
            count = value["count"]
        elif name.startswith("ValueDrift"):
            # a distance drifts at or above its threshold, a p-value below it
            p_value = "p_value" in config["method"].lower()
            if (value < config["threshold"]) if p_value else (value >= config["threshold"]):
                drifted.append(config["column"])
    return {
        "columns": len(numeric) + len(categorical),
        "rows_reference": len(ref_df),
        "rows_current": len(cur_df),
        "drifted_columns_count": None if count is None else int(count),
        "drifted": sorted(drifted),
        "n_drifted": len(drifted),
        "rule": "evidently defaults (value >= threshold of each column's test)",
        "result_json_chars": len(text),
        "load_s": round(t1 - t0, 3),
        "compute_s": round(t2 - t1, 3),
    }


# --- nannyml ----------------------------------------------------------------------------------


def run_nannyml(ref: str, cur: str) -> dict[str, Any]:
    import nannyml as nml
    import pandas as pd

    numeric, categorical = feature_columns(ref)
    t0 = time.perf_counter()
    ref_df = pd.read_parquet(ref, columns=numeric + categorical)
    cur_df = pd.read_parquet(cur, columns=numeric + categorical)
    t1 = time.perf_counter()
    calc = nml.UnivariateDriftCalculator(
        column_names=numeric + categorical,
        treat_as_numerical=numeric,
        treat_as_categorical=categorical,
    )
    calc.fit(ref_df)
    frame = calc.calculate(cur_df).filter(period="analysis").to_df()
    t2 = time.perf_counter()
    drifted = sorted(
        {
            col
            for col, method, field in frame.columns
            if field == "alert" and frame[(col, method, field)].any()
        }
    )
    return {
        "columns": len(numeric) + len(categorical),
        "rows_reference": len(ref_df),
        "rows_current": len(cur_df),
        "chunks_current": len(frame),
        "chunking": "DefaultChunker (10 chunks of each data set)",
        "drifted": drifted,
        "n_drifted": len(drifted),
        "rule": "nannyml defaults: jensen_shannon alert in any current chunk",
        "load_s": round(t1 - t0, 3),
        "compute_s": round(t2 - t1, 3),
    }


# --- entry point ------------------------------------------------------------------------------


def versions() -> dict[str, Any]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable}
    for dist in ("duckdb", "evidently", "nannyml", "pandas", "numpy", "scipy", "pyarrow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


ANCHORS = {"duckdb": run_duckdb, "evidently": run_evidently, "nannyml": run_nannyml}


def main(argv: list[str]) -> int:
    if argv[:1] == ["versions"]:
        print(json.dumps(versions()))
        return 0
    if len(argv) != 3 or argv[0] not in ANCHORS:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    name, ref, cur = argv
    print(json.dumps({"anchor": name, **ANCHORS[name](ref, cur)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
