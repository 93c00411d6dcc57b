"""``Call``: what ``Monitor.track()`` yields — set its attributes inside the ``with`` block."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from watchkeeper.sdk.wire import EVENT_FIELDS

if TYPE_CHECKING:
    from watchkeeper.sdk.monitor import Monitor

#: Attributes a Call sends: the event's fields, less the version (the Monitor's own).
CALL_FIELDS = tuple(name for name in EVENT_FIELDS if name != "version")


class Call:
    """One tracked model call.

    Set ``prediction``, ``score``, ``probabilities``, ``response``, ``input_tokens``,
    ``output_tokens``, ``time_to_first_token_ms``, ``cost_usd``, ``context`` (or any other
    field of ``Monitor.log``) inside the block. ``event_id`` is known from the start, for a later
    ``log_actual``. On exit ``latency_ms`` is measured with ``time.perf_counter`` (unless
    you set it), the timestamp is the start time, and an exception raised by the block
    sets ``status="error"`` and ``error="<Type>: <message>"`` before it propagates.
    """

    features: dict[str, Any] | None
    segments: dict[str, str] | None
    prediction: Any
    score: float | None
    probabilities: dict[str, float] | None
    latency_ms: float | None
    status: str
    error: str | None
    event_id: str
    timestamp: float | None
    prompt: str | None
    response: str | None
    input_tokens: int | None
    output_tokens: int | None
    time_to_first_token_ms: float | None
    cost_usd: float | None
    trace_id: str | None
    conversation_id: str | None
    context: str | None

    def __init__(
        self,
        monitor: Monitor,
        features: dict[str, Any] | None,
        segments: dict[str, str] | None,
        fields: dict[str, Any],
    ) -> None:
        for name in CALL_FIELDS:
            setattr(self, name, None)
        self.status = "ok"
        self.features = features
        self.segments = segments
        self._monitor = monitor
        self._start = 0.0
        for name, value in fields.items():
            if name in CALL_FIELDS:
                setattr(self, name, value)
            else:
                monitor._pipeline.warn_once(
                    "track-field", "watchkeeper: track() ignores unknown field %r", name
                )
        if self.event_id is None:
            self.event_id = monitor._new_event_id()

    def __enter__(self) -> Call:
        if self.timestamp is None:
            self.timestamp = time.time()
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed_ms = (time.perf_counter() - self._start) * 1000.0
        try:
            if self.latency_ms is None:
                self.latency_ms = elapsed_ms
            if exc is not None:
                self.status = "error"
                self.error = f"{type(exc).__name__}: {exc}"
            unknown = [k for k in vars(self) if k not in CALL_FIELDS and not k.startswith("_")]
            if unknown:
                self._monitor._pipeline.warn_once(
                    "call-attr", "watchkeeper: Call attributes %s are not sent", unknown
                )
            self._monitor.log(**{name: getattr(self, name) for name in CALL_FIELDS})
        except Exception as error:  # never mask or replace the user's exception
            self._monitor._failed_call("track", error)

    def __repr__(self) -> str:
        return f"<watchkeeper.Call event_id={self.event_id!r} status={self.status!r}>"
