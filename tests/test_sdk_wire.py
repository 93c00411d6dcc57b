"""Properties of the SDK's record cleaning and batch encoding (worker-thread side)."""

from __future__ import annotations

import gzip
import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.sdk.wire import (
    ACTUALS,
    EVENT_FIELDS,
    PREDICTIONS,
    InvalidRecord,
    clean_actual,
    clean_event,
    decode_batch,
    encode_batch,
)

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.dictionaries(st.text(max_size=5), st.one_of(st.floats(), st.text(max_size=3))),
    st.lists(st.integers(), max_size=3),
)


class NumpyLike:
    """Stands in for a numpy scalar: unwrapped through .item()."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def item(self) -> Any:
        return self.value


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


@given(st.tuples(*[anything] * len(EVENT_FIELDS)))
def test_clean_event_always_valid_json_or_invalid(values: tuple[Any, ...]) -> None:
    """Whatever a user passes, a cleaned event is strict JSON with finite numbers, or refused."""
    try:
        event = clean_event(values)
    except (InvalidRecord, TypeError, ValueError):
        return
    json.dumps(event, allow_nan=False)
    assert all(_finite(v) for v in event.values())
    assert 0 < len(event["event_id"]) <= 128
    assert set(event) <= set(EVENT_FIELDS)


def test_numpy_like_scalars_are_unwrapped() -> None:
    """Objects with .item() (numpy scalars) become plain JSON numbers."""
    values: list[Any] = [None] * len(EVENT_FIELDS)
    values[0] = "id-1"
    values[EVENT_FIELDS.index("features")] = {"a": NumpyLike(3.5), "b": NumpyLike(float("nan"))}
    values[EVENT_FIELDS.index("score")] = NumpyLike(0.75)
    values[EVENT_FIELDS.index("input_tokens")] = NumpyLike(12)
    event = clean_event(tuple(values))
    assert event == {"event_id": "id-1", "features": {"a": 3.5, "b": None}, "score": 0.75,
                     "input_tokens": 12}  # fmt: skip


@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), st.one_of(st.integers(),
       st.text(), st.booleans()), st.floats(0, 2e9)), max_size=20))  # fmt: skip
def test_encode_decode_round_trip(rows: list[tuple[str, Any, float]]) -> None:
    """encode_batch then decode_batch gives back the same actuals."""
    actuals = [clean_actual(row) for row in rows]
    assert decode_batch(encode_batch(ACTUALS, actuals)) == actuals
    assert json.loads(gzip.decompress(encode_batch(PREDICTIONS, []))) == {"events": []}
