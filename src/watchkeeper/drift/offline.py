"""Offline drift between two files (Parquet or CSV), read through DuckDB without a server.

The reference is read once and profiled in the **exact** layout (every distinct reference value
is a bin edge, up to ``MAX_EXACT_EDGES``), so the Kolmogorov-Smirnov statistic is exact and the
Wasserstein distance carries a tiny stated bound. The current file is streamed in Arrow record
batches and counted batch by batch, so memory stays bounded whatever its size.
"""

from __future__ import annotations

import math
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
    choose,
    compare,
    judge,
    sort_results,
    summary,
)

MAX_EXACT_EDGES = 1_000_000  # above this many distinct reference values: 100,000 quantile bins
FALLBACK_QUANTILES = 100_000
BATCH_ROWS = 131_072
SLICE_ROWS = 1_000_000
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
        select = ", ".join(_ident(c.name) for c in plan)
        ref_table = con.sql(f"SELECT {select} FROM {ref_rel}").to_arrow_table()
        assert ref_table is not None
        if not ref_table.num_rows:
            raise OfflineInputError(f"{reference}: holds no rows")
        layouts = {c.name: _exact_layout(ref_table.column(c.name), c.kind) for c in plan}
        ref_counts = {c.name: count(layouts[c.name], ref_table.column(c.name)) for c in plan}
        ref_rows = ref_table.num_rows
        del ref_table
        cur_counts = {c.name: Counts.empty(layouts[c.name].n_codes) for c in plan}
        cur_rows = 0
        try:
            reader = con.sql(f"SELECT {select} FROM {cur_rel}").to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            raise OfflineInputError(f"{current}: cannot read it: {exc}") from None
        # Count in slices of about a million rows: big enough that the per-slice work over
        # 100,000 exact edges is small next to the sort, small enough to bound memory.
        # numpy's sort and search release the GIL, so two threads use both cores.
        with ThreadPoolExecutor(max_workers=threads or 2) as pool:

            def count_slice(batches: list[pa.RecordBatch]) -> None:
                table = pa.Table.from_batches(batches)
                got = pool.map(
                    lambda c: (c.name, count(layouts[c.name], table.column(c.name))), plan
                )
                for name, counts in got:
                    cur_counts[name].add(counts)

            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            for batch in reader:
                cur_rows += batch.num_rows
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= SLICE_ROWS:
                    count_slice(pending)
                    pending, pending_rows = [], 0
            if pending:
                count_slice(pending)
        if not cur_rows:
            raise OfflineInputError(f"{current}: holds no rows")
        results: list[FeatureDrift] = []
        for c in plan:
            if per_feature and c.name in per_feature:
                try:
                    choice = choose(c.kind, per_feature[c.name])
                except DriftConfigError as exc:
                    raise OfflineInputError(f"{c.name}: {exc}") from None
            else:
                choice = settings.choice("", c.name, c.kind, method)
            results.append(
                compare(
                    c.name,
                    layouts[c.name],
                    ref_counts[c.name],
                    cur_counts[c.name],
                    choice,
                    min_samples=settings.min_samples,
                )
            )
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
