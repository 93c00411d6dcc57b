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
    FEEDBACK,
    PREDICTIONS,
    InvalidRecord,
    clean_actual,
    clean_event,
    clean_feedback,
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


feedback_values = st.tuples(
    st.sampled_from(["support-bot", "m"]),
    st.one_of(st.none(), st.text(max_size=8)),
    st.one_of(st.none(), st.text(max_size=8), st.integers()),
    st.one_of(st.none(), st.text(max_size=8)),
    st.one_of(st.none(), st.booleans(), st.sampled_from(["up", "down", "meh", ""])),
    st.one_of(st.none(), st.floats(), st.integers(-2, 2), st.booleans()),
    st.one_of(st.none(), st.text(max_size=8)),
    st.one_of(st.none(), st.text(max_size=8)),
    st.one_of(st.none(), st.text(max_size=8)),
    st.one_of(st.none(), st.floats(), st.floats(-1e11, 2e9), st.integers(0, 2_000_000_000)),
)


@given(feedback_values)
def test_clean_feedback_is_accepted_by_the_server_or_refused_here(values: tuple[Any, ...]) -> None:
    """Oracle: the server's own feedback parser. Whatever a user passes, the SDK sends an
    item the server accepts (feedback batches are all-or-nothing there), or drops it."""
    from watchkeeper.api.feedback import parse_feedback
    from watchkeeper.schema import BatchError

    try:
        item = clean_feedback(values)
    except InvalidRecord:
        return
    body = json.dumps(decode_batch(encode_batch(FEEDBACK, [item]))[0], allow_nan=False)
    try:
        (parsed,) = parse_feedback(body.encode())  # the server's clock, later than the SDK's
    except BatchError as exc:
        raise AssertionError(f"{item} refused: {exc.details}") from None
    assert parsed["model"] == values[0]
    if values[4] is not None:
        assert parsed["thumbs"] == ("up" if values[4] in (True, "up") else "down")


def test_feedback_batch_key_and_timestamp() -> None:
    item = clean_feedback(
        ("m", "f1", "e1", None, True, NumpyLike(0.25), " ", None, None, 1_700_000_000.5)
    )
    assert item == {
        "model": "m",
        "feedback_id": "f1",
        "event_id": "e1",
        "thumbs": "up",
        "score": 0.25,
        "timestamp": "2023-11-14T22:13:20.500000Z",
    }
    assert json.loads(gzip.decompress(encode_batch(FEEDBACK, [item]))) == {"feedback": [item]}


def test_feedback_text_limits_are_the_servers() -> None:
    """The SDK cannot import the server's limits (it stays dependency-free): same numbers."""
    from watchkeeper.api.feedback import _TEXT
    from watchkeeper.sdk.wire import _FEEDBACK_TEXT

    assert _FEEDBACK_TEXT == _TEXT
    too_long = "x" * (_TEXT["comment"] + 1)
    try:
        clean_feedback(("m", "f", "e", None, None, None, too_long, None, None, None))
    except InvalidRecord as exc:
        assert "comment" in str(exc)
    else:
        raise AssertionError("a comment longer than the server takes was not refused")
