"""The DuckDB store on its own: aggregates stay exact through compaction, late and early
labels, corrections and restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from watchkeeper.metrics import compute
from watchkeeper.schema import parse_actuals, parse_events
from watchkeeper.store.base import UnknownModelError, WindowQuery
from watchkeeper.store.duckdb_store import DuckDBStore

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
NAMES = ["count", "accuracy", "label_coverage", "latency_p50", "latency_max", "roc_auc"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path)
    s.start()
    yield s
    s.close()


def events(n: int, start: int = 0, minutes: int = 10) -> bytes:
    return orjson.dumps(
        [
            {
                "event_id": f"e{i}",
                "timestamp": (NOW - timedelta(minutes=1 + i % minutes)).isoformat(),
                "prediction": i % 2,
                "score": (i % 10) / 10,
                "latency_ms": float(i % 97 + 1),
                "segments": {"region": "eu" if i % 3 else "us"},
                "features": {"x": i},
            }
            for i in range(start, start + n)
        ]
    )


def actuals(ids: range, label: int | None = None) -> bytes:
    return orjson.dumps(
        [{"event_id": f"e{i}", "label": (i % 2) if label is None else label} for i in ids]
    )


def metrics(s: DuckDBStore, segment: tuple[str, str] | None = None) -> dict[str, float | None]:
    q = WindowQuery(
        "m", NOW - timedelta(hours=1), NOW + timedelta(minutes=1), None, segment=segment
    )
    got = s.window_aggregates(q)
    assert len(got) == 1
    return compute(NAMES, got[0][1])


def test_compaction_keeps_metrics_and_merges_rows(store: DuckDBStore) -> None:
    """Twenty small batches leave partial rows; compaction merges them, metrics unchanged."""
    for b in range(20):
        store.ingest_events("m", parse_events(events(50, start=b * 50), "application/json"))
    before = metrics(store), metrics(store, ("region", "eu"))
    cur = store._cursor()
    rows_before = cur.execute("SELECT count(*) FROM agg_ops").fetchone()
    store.compact()
    rows_after = cur.execute("SELECT count(*) FROM agg_ops").fetchone()
    assert rows_before is not None and rows_after is not None
    assert rows_after[0] < rows_before[0]
    # 10 minutes x (totals + 2 regions) at most, since every key now has one row.
    assert rows_after[0] <= 30
    assert (metrics(store), metrics(store, ("region", "eu"))) == before


def test_labels_before_events_are_joined_later(store: DuckDBStore) -> None:
    """Actuals that arrive before their events are kept and counted once the events come."""
    store.ingest_events("m", parse_events(events(10), "application/json"))
    res = store.ingest_actuals("m", parse_actuals(actuals(range(100)), "application/json"))
    assert res.unmatched == 90
    store.ingest_events("m", parse_events(events(90, start=10), "application/json"))
    store.refresh()
    got = metrics(store)
    assert got["count"] == 100 and got["label_coverage"] == 1.0 and got["accuracy"] == 1.0


def test_corrected_label_replaces_the_first(store: DuckDBStore) -> None:
    """A second label for the same event replaces the first; the window is recomputed."""
    store.ingest_events("m", parse_events(events(100), "application/json"))
    store.ingest_actuals("m", parse_actuals(actuals(range(100)), "application/json"))
    store.refresh()
    assert metrics(store)["accuracy"] == 1.0
    store.ingest_actuals("m", parse_actuals(actuals(range(0, 100, 2), label=1), "application/json"))
    store.refresh()
    assert metrics(store)["accuracy"] == 0.5
    assert metrics(store)["label_coverage"] == 1.0


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    """Models, schema, events and aggregates are read back from the file after a restart."""
    s = DuckDBStore(tmp_path)
    s.start()
    s.ingest_events("m", parse_events(events(100), "application/json"))
    s.ingest_actuals("m", parse_actuals(actuals(range(100)), "application/json"))
    s.refresh()
    before = metrics(s)
    s.close()
    s2 = DuckDBStore(tmp_path)
    s2.start()
    try:
        assert metrics(s2) == before
        info = s2.get_model("m")
        assert info.features == {"x": "number"} and info.task == "classification"
        assert (
            s2.ingest_events("m", parse_events(events(100), "application/json")).duplicates == 100
        )
    finally:
        s2.close()


def test_unknown_model(store: DuckDBStore) -> None:
    """Asking for a model that does not exist raises UnknownModelError (404 in the API)."""
    with pytest.raises(UnknownModelError):
        store.get_model("nope")


def test_engine_finished_percentiles_and_auc_equal_python(store: DuckDBStore) -> None:
    """Percentiles and ROC AUC finished in SQL per window are identical to the pure Python
    finalizers run on the full merged bins (same rank rule, same integer AUC sums)."""
    rng = __import__("random").Random(7)
    body = orjson.dumps(
        [
            {
                "event_id": f"p{i}",
                "timestamp": (NOW - timedelta(seconds=rng.randint(60, 3000))).isoformat(),
                "prediction": i % 2,
                "score": rng.random(),
                "latency_ms": rng.lognormvariate(2, 1),
                "time_to_first_token_ms": rng.lognormvariate(5, 0.3),
                "input_tokens": 3,
                "segments": {"region": rng.choice(["eu", "us"])},
            }
            for i in range(3000)
        ]
    )
    store.ingest_events("m", parse_events(body, "application/json"))
    labels = orjson.dumps([{"event_id": f"p{i}", "label": rng.randint(0, 1)} for i in range(2500)])
    store.ingest_actuals("m", parse_actuals(labels, "application/json"))
    store.refresh()
    names = ["latency_p50", "latency_p90", "latency_p95", "latency_p99", "ttft_p50",
             "ttft_p95", "ttft_p99", "roc_auc", "accuracy", "count"]  # fmt: skip
    for window in (None, 300, 3600):
        for segment in (None, ("region", "eu")):
            q = WindowQuery("m", NOW - timedelta(hours=2), NOW, window, segment=segment)
            full = dict(store.window_aggregates(q))
            fast = dict(store.window_aggregates(q, names))
            assert full.keys() == fast.keys() and full
            for when, agg in full.items():
                assert fast[when].finalized, "the engine finished nothing"
                assert compute(names, fast[when]) == compute(names, agg)


def test_hourly_tier_is_exact_before_and_after_rollup_and_late_data(store: DuckDBStore) -> None:
    """Hourly windows read rolled-up hours from the hourly tier and dirty ones from minutes:
    the answers are the same before the roll-up, after it, and after late events land in an
    hour that was already rolled up."""

    def batch(ids: range, hours_back: int) -> bytes:
        return orjson.dumps([
            {"event_id": f"h{i}", "timestamp": (NOW - timedelta(hours=hours_back, minutes=i % 50)).isoformat(),
             "prediction": 1, "score": 0.7, "latency_ms": float(1 + i % 40),
             "segments": {"region": "eu"}} for i in ids
        ])  # fmt: skip

    for h in range(1, 6):
        store.ingest_events(
            "m", parse_events(batch(range(h * 1000, h * 1000 + 300), h), "application/json")
        )
    names = ["count", "latency_p95", "latency_max"]

    def series(window: int | None) -> list[tuple[datetime, dict[str, float | None]]]:
        q = WindowQuery("m", NOW - timedelta(hours=7), NOW, window, segment=("region", "eu"))
        return [(w, compute(names, a)) for w, a in store.window_aggregates(q, names)]

    before = series(3600), series(None)
    store.rollup()
    cur = store._cursor()
    assert first_count(cur, "SELECT count(*) FROM agg_ops_h") > 0
    assert first_count(cur, "SELECT count(*) FROM dirty_hours") == 0
    assert (series(3600), series(None)) == before
    store.ingest_events("m", parse_events(batch(range(9000, 9100), 3), "application/json"))
    after = series(None)
    assert after[0][1]["count"] == before[1][0][1]["count"] + 100  # type: ignore[operator]
    store.rollup()
    assert series(None) == after


def first_count(cur: object, query: str) -> int:
    return int(cur.execute(query).fetchall()[0][0])  # type: ignore[attr-defined]


def test_group_commit_merges_batches_and_stores_a_repeated_id_once(store: DuckDBStore) -> None:
    """Requests that wait together are committed in one group (one insert per model); the
    same batch sent twice at once is stored once, and each request gets its own answer."""
    import threading
    import time

    release = threading.Event()
    blocker = threading.Thread(target=store._submit, args=(release.wait, 1))
    blocker.start()
    while store.stats()["queue_requests"] < 1 and store.stats()["queue_rows"] < 1:
        time.sleep(0.001)
    results = []
    bodies = [events(100), events(100), events(50, start=100)]
    threads = [
        threading.Thread(
            target=lambda b=b: results.append(
                store.ingest_events("m", parse_events(b, "application/json"))
            )
        )
        for b in bodies
    ]
    for t in threads:
        t.start()
    while store.stats()["queue_rows"] < 251:
        time.sleep(0.001)
    commits = store.stats()["commits"]
    release.set()
    for t in [*threads, blocker]:
        t.join()
    # The blocker's own commit, then one commit for all three waiting requests.
    assert store.stats()["commits"] == commits + 2
    assert sorted((r.accepted, r.duplicates) for r in results) == [(0, 100), (50, 0), (100, 0)]
    assert metrics(store)["count"] == 150


def test_late_events_after_a_rollup_reach_the_hourly_tier(store: DuckDBStore) -> None:
    """A batch marks its hours for the roll-up at most once while they stay marked; an
    hour rolled up and then written again (a late event) is marked anew, so a range read
    from the hourly tier still counts every event."""
    hour = (NOW - timedelta(hours=3)).replace(minute=0)

    def batch(first: int, n: int) -> bytes:
        return orjson.dumps(
            [
                {
                    "event_id": f"h{i}",
                    "timestamp": (hour + timedelta(minutes=i % 60)).isoformat(),
                    "latency_ms": 1.0 + i,
                }
                for i in range(first, first + n)
            ]
        )

    def hourly_count() -> int:
        q = WindowQuery("late", hour, hour + timedelta(hours=1), 3600)
        got = store.window_aggregates(q)
        return sum(compute(["count"], agg)["count"] or 0 for _, agg in got)

    store.ingest_events("late", parse_events(batch(0, 10), "application/json"))
    store.ingest_events("late", parse_events(batch(10, 10), "application/json"))
    store.rollup()
    assert hourly_count() == 20
    store.ingest_events("late", parse_events(batch(20, 5), "application/json"))  # late
    assert hourly_count() == 25  # the hour is dirty again: read from minutes
    store.rollup()
    assert hourly_count() == 25
