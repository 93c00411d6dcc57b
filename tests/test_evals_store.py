"""Evaluations on a real DuckDB file: stored once per (event, evaluator) with the event's
version, time and segments; re-evaluation replaces; the aggregates of late evaluations are
recomputed for their minutes, per segment, and the hourly tier agrees; listing is worst
first; the runner's watermarks move with the rows in one write."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from watchkeeper.metrics import compute
from watchkeeper.schema import parse_events
from watchkeeper.store.base import UnknownModelError, WindowQuery
from watchkeeper.store.duckdb_store import DuckDBStore

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
T0 = NOW - timedelta(minutes=30)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path)
    s.start()
    yield s
    s.close()


def _calls(n: int) -> bytes:
    return orjson.dumps(
        [
            {
                "event_id": f"e{i}",
                "timestamp": (T0 + timedelta(seconds=20 * i)).isoformat(),
                "version": "v2" if i % 4 == 0 else "v1",
                "prompt": f"question {i}",
                "response": f"answer {i}",
                "cost_usd": 0.001 * (i + 1),
                "segments": {"region": "eu" if i % 3 else "us"},
            }
            for i in range(n)
        ]
    )


def _agg(store: DuckDBStore, names: list[str], **kw: Any) -> dict[str, float | None]:
    store.refresh()
    q = WindowQuery("m", T0, NOW, None, **kw)
    (got,) = store.window_aggregates(q, names)
    return compute(names, got[1])


def test_record_replace_and_aggregate(store: DuckDBStore) -> None:
    """Rows copy the event's version, time and segments; a second evaluation of the same
    (event, evaluator) replaces the first; rates follow per version and segment."""
    store.ingest_events("m", parse_events(_calls(12), "application/json"))
    rows = [
        {"event_id": f"e{i}", "evaluator": "groundedness", "score": i / 12, "flagged": i % 2 == 1}
        for i in range(12)
    ]
    assert store.record_evaluations("m", rows) == 12
    assert _agg(store, ["hallucination_rate", "groundedness", "evaluated_count"]) == {
        "hallucination_rate": 0.5,
        "groundedness": pytest.approx(sum(i / 12 for i in range(12)) / 12),
        "evaluated_count": 12,
    }
    # re-evaluate e1, e3: no longer flagged; counts stay 12 (replaced, not added)
    again = [{"event_id": e, "evaluator": "groundedness", "score": 1.0, "flagged": False}
             for e in ("e1", "e3")]  # fmt: skip
    assert store.record_evaluations("m", again) == 2
    assert _agg(store, ["hallucination_rate", "evaluated_count"]) == {
        "hallucination_rate": 4 / 12,
        "evaluated_count": 12,
    }
    flagged = {i for i in range(12) if i % 2 == 1} - {1, 3}
    us = [i for i in range(12) if i % 3 == 0]
    assert _agg(store, ["hallucination_rate"], segment=("region", "us")) == {
        "hallucination_rate": sum(i in flagged for i in us) / len(us)
    }
    v2 = [i for i in range(12) if i % 4 == 0]
    assert _agg(store, ["hallucination_rate"], version="v2") == {
        "hallucination_rate": sum(i in flagged for i in v2) / len(v2)
    }
    (one,) = store.evaluations_for("m", ["e3"])
    assert one["version"] == "v1" and one["segments"] == {"region": "us"}
    assert one["event_ts"] == T0 + timedelta(seconds=60) and one["source"] == "auto"


def test_list_worst_first_with_the_call(store: DuckDBStore) -> None:
    """Flagged first, then the lowest score (highest for pii); each row carries the call."""
    store.ingest_events("m", parse_events(_calls(5), "application/json"))
    store.record_evaluations(
        "m",
        [
            {"event_id": "e0", "evaluator": "groundedness", "score": 0.9, "flagged": False},
            {"event_id": "e1", "evaluator": "groundedness", "score": 0.2, "flagged": True},
            {"event_id": "e2", "evaluator": "groundedness", "score": 0.5, "flagged": True},
            {"event_id": "e3", "evaluator": "groundedness", "score": 0.4, "flagged": False},
            {"event_id": "e4", "evaluator": "pii", "score": 1.0, "flagged": True,
             "detail": {"kinds": ["email"]}},
        ],
    )  # fmt: skip
    rows = store.list_evaluations("m", evaluator="groundedness")
    assert [r["event_id"] for r in rows] == ["e1", "e2", "e3", "e0"]
    assert rows[0]["response"] == "answer 1" and rows[0]["cost_usd"] == pytest.approx(0.002)
    assert [r["event_id"] for r in store.list_evaluations("m", flagged=False)] == ["e3", "e0"]
    (pii,) = store.list_evaluations("m", evaluator="pii")
    assert pii["detail"] == {"kinds": ["email"]}
    late = store.list_evaluations("m", start=T0 + timedelta(seconds=50), limit=2)
    assert [r["event_id"] for r in late] == ["e4", "e3"]
    with pytest.raises(UnknownModelError):
        store.list_evaluations("nobody")


def test_unknown_event_is_kept_but_not_aggregated(store: DuckDBStore) -> None:
    """An evaluation of an event not stored has no time: listed by id, counted nowhere."""
    store.ingest_events("m", parse_events(_calls(2), "application/json"))
    store.record_evaluations("m", [{"event_id": "ghost", "evaluator": "human", "score": 0.0,
                                    "flagged": True, "source": "human"}])  # fmt: skip
    (ghost,) = store.evaluations_for("m", ["ghost"])
    assert ghost["event_ts"] is None and ghost["source"] == "human"
    assert _agg(store, ["human_score", "thumbs_down_rate"]) == {
        "human_score": None,
        "thumbs_down_rate": None,
    }


def test_watermarks_move_with_the_rows(store: DuckDBStore) -> None:
    """The runner's reads: calls after a (received_at, event_id) watermark, oldest first,
    and the watermark written with the chunk's rows."""
    store.ingest_events("m", parse_events(_calls(6), "application/json"))
    ((mid, _),) = store.llm_model_ids()
    until = datetime.now(timezone.utc) + timedelta(seconds=1)
    first = store.llm_events_after(mid, None, until, 4)
    assert [c["event_id"] for c in first] == ["e0", "e1", "e2", "e3"]
    last = first[-1]
    store.record_evaluations(mid, [], watermarks=[("events", last["received_at"], "e3")])
    assert store.eval_watermark(mid, "events") == (last["received_at"], "e3")
    rest = store.llm_events_after(mid, store.eval_watermark(mid, "events"), until, 4)
    assert [c["event_id"] for c in rest] == ["e4", "e5"]
    assert store.llm_events_after(mid, None, last["received_at"] - timedelta(seconds=1), 9) == []


def test_hourly_tier_matches_minutes(store: DuckDBStore) -> None:
    """After the roll-up, whole hours come from the hourly tier with the same values."""
    store.ingest_events("m", parse_events(_calls(90), "application/json"))
    store.record_evaluations(
        "m",
        [{"event_id": f"e{i}", "evaluator": ev, "score": (i % 7) / 7, "flagged": i % 5 == 0}
         for i in range(90) for ev in ("pii", "toxicity")],
    )  # fmt: skip
    store.refresh()
    names = ["pii_rate", "toxicity_rate", "evaluated_count", "cost_p95", "cost_per_call"]
    q = WindowQuery("m", T0 - timedelta(hours=2), NOW + timedelta(hours=2), 3600)

    def read() -> list[tuple[datetime, dict[str, float | None]]]:
        return [(t, compute(names, a)) for t, a in store.window_aggregates(q, names)]

    minutes = read()
    store.rollup()
    hours = read()
    assert [t for t, _ in hours] == [t for t, _ in minutes]
    for (_, a), (_, b) in zip(hours, minutes, strict=True):
        assert a == pytest.approx(b, rel=1e-12)  # sums of costs added in another order
    assert sum(v["evaluated_count"] or 0 for _, v in minutes) == 90
