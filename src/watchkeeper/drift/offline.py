"""Offline drift between two files (Parquet or CSV), read through DuckDB without a server.

The reference is read once and profiled in the **exact** layout (every distinct reference value
is a bin edge, up to ``MAX_EXACT_EDGES``), so the Kolmogorov-Smirnov statistic is exact and the
Wasserstein distance carries a tiny stated bound. The current file is streamed in Arrow record
batches and counted batch by batch, so memory stays bounded whatever its size.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from watchkeeper._version import __version__
from watchkeeper.drift.profile import Counts, Kind, Layout, build_layout, count
from watchkeeper.drift.settings import DriftSettings
from watchkeeper.drift.stats import (
    DriftConfigError,
    FeatureDrift,
    MethodChoice,
    choose,
    compare,
    judge,
    sort_results,
    summary,
)

MAX_EXACT_EDGES = 1_000_000  # above this many distinct reference values: 100,000 quantile bins
FALLBACK_QUANTILES = 100_000
BATCH_ROWS = 131_072
SLICE_ROWS = 1_000_000  # values of one column counted at a time
SAMPLE_ROWS = 5000

_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "REAL",
)


class OfflineInputError(ValueError):
    """The files cannot be compared (missing, unreadable, no common columns...)."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind


def _relation(path: Path) -> str:
    text = str(path)
    if not any(ch in text for ch in "*?[") and not path.exists():
        raise OfflineInputError(f"{path}: no such file")
    quoted = "'" + text.replace("'", "''") + "'"
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return f"read_parquet({quoted})"
    if suffix in (".csv", ".tsv", ".txt", ".gz"):
        return f"read_csv({quoted}, header = true)"
    raise OfflineInputError(f"{path}: use a .parquet or .csv file")


def _kind(sql_type: str) -> Kind | None:
    t = sql_type.upper()
    if t.startswith(_NUMERIC) or t.startswith("DECIMAL"):
        return "number"
    if t == "BOOLEAN":
        return "bool"
    if t == "VARCHAR":
        return "string"
    return None


def _describe(con: duckdb.DuckDBPyConnection, rel: str, path: Path) -> dict[str, str]:
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()
    except duckdb.Error as exc:
        raise OfflineInputError(f"{path}: cannot read it: {exc}") from None
    return {str(r[0]): str(r[1]) for r in rows}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def plan_columns(
    ref_types: Mapping[str, str],
    cur_types: Mapping[str, str],
    wanted: Sequence[str] | None,
) -> tuple[list[Column], list[str]]:
    """The columns to compare and notes about the ones left out."""
    notes: list[str] = []
    if wanted:
        missing = [c for c in wanted if c not in ref_types or c not in cur_types]
        if missing:
            raise OfflineInputError(
                f"column(s) {', '.join(missing)} not in both files; the files share:"
                f" {', '.join(c for c in ref_types if c in cur_types) or 'nothing'}"
            )
        names = list(wanted)
    else:
        names = [c for c in ref_types if c in cur_types]
        only_ref = [c for c in ref_types if c not in cur_types]
        only_cur = [c for c in cur_types if c not in ref_types]
        if only_ref:
            notes.append(f"only in the reference (skipped): {', '.join(only_ref)}")
        if only_cur:
            notes.append(f"only in the current file (skipped): {', '.join(only_cur)}")
    out: list[Column] = []
    for name in names:
        rk, ck = _kind(ref_types[name]), _kind(cur_types[name])
        if rk is None:
            notes.append(f"{name}: type {ref_types[name]} is not compared")
            continue
        if rk != ck and not (rk == "number" and ck == "number"):
            raise OfflineInputError(
                f"column {name!r} is {ref_types[name]} in the reference but"
                f" {cur_types[name]} in the current file"
            )
        out.append(Column(name, rk))
    if not out:
        raise OfflineInputError("the two files have no comparable columns in common")
    return out, notes


def _exact_layout(values: pa.ChunkedArray, kind: Kind) -> Layout:
    if kind != "number":
        return build_layout(values, kind)
    layout = build_layout(values, kind, fine="exact")
    if len(getattr(layout, "edges", ())) > MAX_EXACT_EDGES:
        layout = build_layout(values, kind, fine=FALLBACK_QUANTILES)
    return layout


def compare_files(
    reference: Path,
    current: Path,
    *,
    columns: Sequence[str] | None = None,
    settings: DriftSettings | None = None,
    method: str | None = None,
    per_feature: Mapping[str, str] | None = None,
    multivariate: bool = True,
    memory_limit: str = "1GB",
    threads: int | None = None,
) -> dict[str, Any]:
    """Drift of every common column of ``current`` against ``reference``.

    Methods: ``per_feature`` wins, then ``method`` where it fits the feature's kind, then the
    ``settings`` (the YAML ``drift:`` section), then the defaults.
    """
    settings = settings or DriftSettings()
    alpha = settings.alpha
    con = duckdb.connect(config={"memory_limit": memory_limit})
    cleanup: list[tempfile.TemporaryDirectory[str]] = []
    try:
        con.execute("SET enable_progress_bar = false").fetchall()
        if threads:
            con.execute(f"SET threads = {int(threads)}").fetchall()
        ref_rel, cur_rel = _relation(Path(reference)), _relation(Path(current))
        plan, notes = plan_columns(
            _describe(con, ref_rel, Path(reference)),
            _describe(con, cur_rel, Path(current)),
            columns,
        )
        plan = [c for c in plan if settings.enabled("", c.name)]
        if not plan:
            raise OfflineInputError("every column is switched off (enabled: false)")
        if not ref_rel.startswith("read_parquet") or not cur_rel.startswith("read_parquet"):
            # Text formats are parsed once into a temporary Parquet file (streamed by DuckDB),
            # so the per-column passes below read a column instead of re-parsing every row.
            tmp = tempfile.TemporaryDirectory(prefix="wk-drift-")
            cleanup.append(tmp)
            ref_rel = _as_parquet(con, ref_rel, plan, Path(tmp.name) / "reference.parquet")
            cur_rel = _as_parquet(con, cur_rel, plan, Path(tmp.name) / "current.parquet")

        choices: dict[str, MethodChoice] = {}
        for c in plan:
            if per_feature and c.name in per_feature:
                try:
                    choices[c.name] = choose(c.kind, per_feature[c.name])
                except DriftConfigError as exc:
                    raise OfflineInputError(f"{c.name}: {exc}") from None
            else:
                choices[c.name] = settings.choice("", c.name, c.kind, method)

        def one_column(c: Column) -> tuple[FeatureDrift, int, int]:
            """Profile one column of the reference and count the current file in it, a slice
            of about a million rows at a time: memory holds one column's slice, whatever the
            file's size, and a whole slice is sorted at once (cheap next to the per-slice work
            over 100,000 exact edges)."""
            cur = con.cursor()
            try:
                ref_col = cur.sql(f"SELECT {_ident(c.name)} FROM {ref_rel}").to_arrow_table()
                assert ref_col is not None
                layout = _exact_layout(ref_col.column(0), c.kind)
                ref_counts = count(layout, ref_col.column(0))
                del ref_col
                counts = Counts.empty(layout.n_codes)
                reader = cur.sql(f"SELECT {_ident(c.name)} FROM {cur_rel}").to_arrow_reader(
                    BATCH_ROWS
                )
                pending: list[pa.Array] = []
                rows = 0
                for batch in reader:
                    pending.append(batch.column(0))
                    rows += batch.num_rows
                    if rows >= SLICE_ROWS:
                        count(layout, pa.chunked_array(pending), counts)
                        pending, rows = [], 0
                if pending:
                    count(layout, pa.chunked_array(pending), counts)
                result = compare(
                    c.name,
                    layout,
                    ref_counts,
                    counts,
                    choices[c.name],
                    min_samples=settings.min_samples,
                )
                # Only the verdict is kept: the counts of 100,000 exact bins go now.
                return result, ref_counts.total, counts.total
            finally:
                cur.close()

        # numpy's sort and search release the GIL: two columns at a time use both cores.
        try:
            with ThreadPoolExecutor(max_workers=threads or 2) as pool:
                done = dict(zip([c.name for c in plan], pool.map(one_column, plan), strict=True))
        except duckdb.Error as exc:
            raise OfflineInputError(f"cannot read the files: {exc}") from None
        results = [done[c.name][0] for c in plan]
        ref_rows = max(v[1] for v in done.values())
        cur_rows = max(v[2] for v in done.values())
        if not ref_rows:
            raise OfflineInputError(f"{reference}: holds no rows")
        if not cur_rows:
            raise OfflineInputError(f"{current}: holds no rows")
        judge(results, alpha)
        results = sort_results(results)
        for r in results:
            _coarsen_histogram(r)
        mv: list[dict[str, Any]] = []
        if multivariate:
            mv = _multivariate(con, ref_rel, cur_rel, plan)
        return {
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "watchkeeper_version": __version__,
            "reference": {"source": str(reference), "rows": ref_rows},
            "current": {"source": str(current), "rows": cur_rows},
            "summary": summary(results, alpha),
            "notes": notes,
            "features": [r.to_dict() for r in results],
            "multivariate": mv,
        }
    finally:
        con.close()
        for tmp in cleanup:
            tmp.cleanup()


def _as_parquet(
    con: duckdb.DuckDBPyConnection, rel: str, plan: Sequence[Column], path: Path
) -> str:
    if rel.startswith("read_parquet"):
        return rel
    select = ", ".join(_ident(c.name) for c in plan)
    target = "'" + str(path).replace("'", "''") + "'"
    try:
        con.execute(f"COPY (SELECT {select} FROM {rel}) TO {target} (FORMAT parquet)").fetchall()
    except duckdb.Error as exc:
        raise OfflineInputError(f"cannot read {rel}: {exc}") from None
    return f"read_parquet({target})"


def _coarsen_histogram(r: FeatureDrift) -> None:
    """Categorical histograms can be long; keep the 30 largest bins plus missing."""
    h = r.histogram
    if not h or len(h["labels"]) <= 32:
        return
    shares = np.asarray(h["reference"]) + np.asarray(h["current"])
    keep = [*sorted(np.argsort(-shares[:-1])[:30].tolist()), len(shares) - 1]
    h["labels"] = [h["labels"][i] for i in keep]
    h["reference"] = [h["reference"][i] for i in keep]
    h["current"] = [h["current"][i] for i in keep]


def _sample(
    con: duckdb.DuckDBPyConnection, rel: str, plan: Sequence[Column]
) -> dict[str, np.ndarray]:
    select = ", ".join(_ident(c.name) for c in plan)
    table = con.sql(
        f"SELECT {select} FROM {rel} USING SAMPLE reservoir({SAMPLE_ROWS} ROWS) REPEATABLE (7)"
    ).to_arrow_table()
    assert table is not None
    out: dict[str, np.ndarray] = {}
    for c in plan:
        col = table.column(c.name).combine_chunks()
        if c.kind == "number":
            out[c.name] = np.asarray(
                col.cast(pa.float64()).fill_null(math.nan).to_numpy(zero_copy_only=False),
                dtype=np.float64,
            )
        else:
            out[c.name] = np.asarray(col.to_pylist(), dtype=object)
    return out


def _multivariate(
    con: duckdb.DuckDBPyConnection, ref_rel: str, cur_rel: str, plan: Sequence[Column]
) -> list[dict[str, Any]]:
    from watchkeeper.drift.multivariate import domain_classifier, pca_reconstruction

    ref, cur = _sample(con, ref_rel, plan), _sample(con, cur_rel, plan)
    kinds = {c.name: c.kind for c in plan}
    return [
        domain_classifier(ref, cur, kinds, max_rows=SAMPLE_ROWS),
        pca_reconstruction(ref, cur, kinds, max_rows=SAMPLE_ROWS),
    ]
