"""LLM quality and cost metrics: finalized from merged evaluation aggregates they equal the
same figures computed directly from the evaluations (numpy as the oracle); merging the
aggregates of any split equals the aggregate of the union (Hypothesis); cost_p95 and
cost_per_call from a real DuckDB store match numpy on the stored costs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.metrics import EVAL_METRICS, WindowAggregate, compute, merge_all
from watchkeeper.schema import parse_events
from watchkeeper.store.base import WindowQuery
from watchkeeper.store.duckdb_store import DuckDBStore

EVALUATORS = (
    "groundedness", "pii", "refusal", "toxicity", "exact_match", "token_f1",
    "semantic_similarity", "judge_groundedness", "judge_relevance", "judge_correctness", "human",
)  # fmt: skip
Evaluation = tuple[str, float | None, bool]  # (evaluator, score, flagged)

evaluations = st.lists(
    st.tuples(
        st.sampled_from(EVALUATORS),
        st.one_of(st.none(), st.floats(0.0, 1.0)),
        st.booleans(),
    ),
    max_size=60,
)


def aggregate(rows: Sequence[Evaluation]) -> WindowAggregate:
    """What the store's agg_eval rows hold for these evaluations (written here in Python)."""
    n: dict[str, int] = {}
    flagged: dict[str, int] = {}
    score_n: dict[str, int] = {}
    score_sum: dict[str, float] = {}
    for evaluator, score, bad in rows:
        n[evaluator] = n.get(evaluator, 0) + 1
        flagged[evaluator] = flagged.get(evaluator, 0) + int(bad)
        score_n[evaluator] = score_n.get(evaluator, 0) + (score is not None)
        score_sum[evaluator] = score_sum.get(evaluator, 0.0) + (score or 0.0)
    return WindowAggregate(
        eval_n=n, eval_flagged=flagged, eval_score_n=score_n, eval_score_sum=score_sum
    )


def oracle(rows: Sequence[Evaluation]) -> dict[str, float | None]:
    """Each metric computed straight from the rows with numpy."""

    def of(*names: str) -> list[Evaluation]:
        return [r for r in rows if r[0] in names]

    def rate(*names: str) -> float | None:
        got = of(*names)
        return float(np.mean([r[2] for r in got])) if got else None

    def mean(name: str) -> float | None:
        scores = [r[1] for r in of(name) if r[1] is not None]
        return float(np.mean(scores)) if scores else None

    counts = [len(of(e)) for e in EVALUATORS]
    return {
        "evaluated_count": max(counts),
        "hallucination_rate": rate("groundedness"),
        "groundedness": mean("groundedness"),
        "pii_rate": rate("pii"),
        "refusal_rate": rate("refusal"),
        "toxicity_rate": rate("toxicity"),
        "exact_match": mean("exact_match"),
        "token_f1": mean("token_f1"),
        "semantic_similarity": mean("semantic_similarity"),
        "judge_groundedness": mean("judge_groundedness"),
        "judge_relevance": mean("judge_relevance"),
        "judge_correctness": mean("judge_correctness"),
        "judge_fail_rate": rate("judge_groundedness", "judge_relevance", "judge_correctness"),
        "human_score": mean("human"),
        "thumbs_down_rate": rate("human"),
    }


def _close(a: dict[str, float | None], b: dict[str, float | None]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if a[k] is None or b[k] is None:
            assert a[k] is None and b[k] is None, k
        else:
            assert math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12), k  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(rows=evaluations)
def test_metrics_equal_the_oracle(rows: list[Evaluation]) -> None:
    """Every evaluation metric finalized from the aggregate equals numpy on the rows."""
    assert set(oracle(rows)) == EVAL_METRICS
    _close(compute(sorted(EVAL_METRICS), aggregate(rows)), oracle(rows))


@settings(max_examples=200, deadline=None)
@given(rows=evaluations, cuts=st.lists(st.integers(0, 60), max_size=5))
def test_merge_of_any_split_is_the_aggregate_of_the_union(
    rows: list[Evaluation], cuts: list[int]
) -> None:
    """Merging the evaluation aggregates of the parts of any split gives the counts of the
    whole exactly (and its sums up to float rounding), hence the same metrics."""
    bounds = [0, *sorted(c for c in cuts if c <= len(rows)), len(rows)]
    parts = [aggregate(rows[a:b]) for a, b in itertools.pairwise(bounds)]
    merged, whole = merge_all(parts), aggregate(rows)
    assert dict(merged.eval_n) == dict(whole.eval_n)
    assert dict(merged.eval_flagged) == dict(whole.eval_flagged)
    assert dict(merged.eval_score_n) == dict(whole.eval_score_n)
    assert dict(merged.eval_score_sum) == pytest.approx(dict(whole.eval_score_sum))
    _close(compute(sorted(EVAL_METRICS), merged), oracle(rows))


def test_empty_window() -> None:
    """No evaluations: every rate and mean is None, evaluated_count 0; no calls: the cost
    metrics are None."""
    got = compute([*sorted(EVAL_METRICS), "cost_per_call", "cost_p95"], WindowAggregate())
    assert got.pop("evaluated_count") == 0
    assert set(got.values()) == {None}


NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path)
    s.start()
    yield s
    s.close()


def test_cost_metrics_from_the_store_match_numpy(store: DuckDBStore) -> None:
    """cost_per_call = total cost / LLM calls; cost_p95 is within 1 % of the stored cost at
    rank floor(0.95·(n−1)) (the sketch's rule), per window and over the range."""
    rng = np.random.default_rng(11)
    costs = rng.lognormal(mean=-7.0, sigma=1.0, size=400)
    body = orjson.dumps(
        [
            {
                "event_id": f"c{i}",
                "timestamp": (NOW - timedelta(minutes=1 + i % 4, seconds=i % 50)).isoformat(),
                "prompt": "q",
                "response": "a",
                "cost_usd": float(c),
            }
            for i, c in enumerate(costs)
        ]
        + [  # calls without a cost count as calls, never as a zero cost in the sketch
            {
                "event_id": f"free{i}",
                "timestamp": (NOW - timedelta(minutes=2)).isoformat(),
                "prompt": "q",
                "response": "a",
            }
            for i in range(10)
        ]
    )
    store.ingest_events("m", parse_events(body, "application/json"))
    names = ["cost_per_call", "cost_p95", "cost_usd"]
    q = WindowQuery("m", NOW - timedelta(minutes=10), NOW, None)
    for with_names in (names, None):  # finished in SQL, and from the bins in Python
        ((_, agg),) = store.window_aggregates(q, with_names)
        got = compute(names, agg)
        assert got["cost_per_call"] == pytest.approx(costs.sum() / 410, rel=1e-9)
        expected = np.sort(costs)[math.floor(0.95 * (len(costs) - 1))]
        assert got["cost_p95"] == pytest.approx(expected, rel=0.01)
