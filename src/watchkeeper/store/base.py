"""The narrow interface every storage engine implements, and what crosses it.

Engines append normalized Arrow batches (see ``docs/internals.md``) and answer aggregate
queries. Metric code never sees a database driver: it receives merged aggregates
(:class:`watchkeeper.metrics.WindowAggregate`) per time window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from watchkeeper.drift.profile import Counts, Layout
    from watchkeeper.metrics import WindowAggregate

TASKS = ("classification", "regression", "llm")


class StoreError(Exception):
    """Base of the errors a store raises for the API layer to translate."""

    status = 500
    code = "store_error"

    def __init__(self, message: str, details: Sequence[Mapping[str, object]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class UnknownModelError(StoreError):
    status = 404
    code = "unknown_model"


class SchemaConflictError(StoreError):
    """A batch's feature types disagree with the model's schema."""

    status = 422
    code = "schema_conflict"


class StoreBusyError(StoreError):
    """The write queue is full: the client should retry after a pause."""

    status = 503
    code = "busy"
    retry_after = 1


class NoReferenceError(StoreError):
    """Drift needs a reference profile the model does not have yet."""

    status = 409
    code = "no_reference"


class EmptyRangeError(StoreError):
    """A time range holds nothing to act on (e.g. nothing to pin as a reference)."""

    status = 422
    code = "empty_range"


class StoreClosedError(StoreError):
    status = 503
    code = "shutting_down"


@dataclass(frozen=True)
class IngestResult:
    """What a committed batch did: rows stored, and rows already there (retries)."""

    accepted: int
    duplicates: int
    unmatched: int = 0  # actuals whose event is not (yet) stored


@dataclass(frozen=True)
class VersionInfo:
    version: str
    event_count: int
    first_seen: datetime | None
    last_seen: datetime | None
    has_reference: bool


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str | None
    created_at: datetime
    event_count: int
    actual_count: int
    first_seen: datetime | None
    last_seen: datetime | None
    versions: list[VersionInfo] = field(default_factory=list)
    features: dict[str, str] = field(default_factory=dict)  # name -> number|string|bool
    segments: list[str] = field(default_factory=list)


RUN_STATUSES = (  # an action run's life: see watchkeeper.store.duckdb_actions
    "awaiting_approval",
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "rejected",
    "rate_limited",
    "silenced",
    "interrupted",
)


@dataclass(frozen=True)
class ActionRequest:
    """One run of an automated response that an alert transition asks for (see
    :mod:`watchkeeper.alerting.actions`); the store decides its status when recording it."""

    action: str
    type: str
    payload: bytes  # the alert as JSON
    approval: bool = False
    rate_max: int | None = None  # at most this many runs of the action per model ...
    rate_per: timedelta | None = None  # ... in this long
    undo: bool = False  # undoes an earlier run: never held back, never counted


@dataclass(frozen=True)
class WindowQuery:
    """Which aggregates to merge: one model, a range, a window size, optional filters."""

    model: str
    start: datetime  # inclusive, UTC, naive or aware
    end: datetime  # exclusive
    window_seconds: int | None  # None: one window covering [start, end)
    version: str | None = None
    segment: tuple[str, str] | None = None


class Store(Protocol):
    """Append batches; answer aggregate queries. Implemented by each engine."""

    def start(self) -> None: ...

    def close(self) -> None: ...

    def ingest_events(
        self, model: str, batch: pa.Table, *, task: str | None = None
    ) -> IngestResult:
        """Store a normalized event batch; returns once it is durably committed."""
        ...

    def ingest_actuals(self, model: str, batch: pa.Table) -> IngestResult:
        """Store ground truth joined to events by ``event_id``; durable on return."""
        ...

    def put_reference(
        self, model: str, version: str | None, batch: pa.Table, schema: Mapping[str, str]
    ) -> int:
        """Replace the model's (or one version's) reference dataset; returns its row count."""
        ...

    def ready(self) -> bool:
        """Accepting writes (for /readyz)."""
        ...

    def has_model(self, name: str) -> bool:
        """Cheap existence check (no queries)."""
        ...

    def list_models(self) -> list[ModelInfo]: ...

    def get_model(self, name: str) -> ModelInfo:
        """Raises UnknownModelError when there is no such model."""
        ...

    def window_aggregates(
        self, query: WindowQuery, names: Sequence[str] | None = None
    ) -> list[tuple[datetime, WindowAggregate]]:
        """Merged aggregates per window start, for every window that has data.

        With ``names`` the engine may fetch only what those metrics need and finish some of
        them itself (``WindowAggregate.finalized``); without, every field is filled.
        """
        ...

    def segment_values(self, model: str, name: str, start: datetime, end: datetime) -> list[str]:
        """The values segment ``name`` took in [start, end), sorted."""
        ...

    def segment_aggregates(
        self, query: WindowQuery, by: str, values: Sequence[str], names: Sequence[str] | None = None
    ) -> dict[str, WindowAggregate]:
        """One aggregate over [query.start, query.end) per value of segment ``by`` among
        ``values`` (``query.segment`` and ``window_seconds`` are ignored): what
        :meth:`window_aggregates` gives with ``segment=(by, value)`` and one window, for every
        value at once. Values without data are left out."""
        ...

    # ---- drift and data quality (the engine keeps per-minute feature counts)
    def drift_layouts(self, model: str) -> dict[str, Layout]:
        """Each profiled feature's bins; NoReferenceError when the model has no reference."""
        ...

    def reference_counts(
        self, model: str, version: str | None, segment: tuple[str, str] | None = None
    ) -> dict[str, Counts]:
        """The reference profile of ``version`` (its own, else the model's default), for one
        segment value when the reference has that segment's column."""
        ...

    def feature_counts(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: str | None = None,
        segment: tuple[str, str] | None = None,
        by: str | None = None,
        window_seconds: int | None = None,
        features: Sequence[str] | None = None,
    ) -> dict[tuple[int, str], dict[str, Counts]]:
        """Merged feature counts per (window start epoch, value of segment ``by``)."""
        ...

    def label_counts(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: str | None = None,
        segment: tuple[str, str] | None = None,
    ) -> Counts | None:
        """Ground truth of the range's events in the label's bins (None: no label profile)."""
        ...

    def sample_rows(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: str | None = None,
        segment: tuple[str, str] | None = None,
        limit: int = 5000,
    ) -> dict[str, np.ndarray]:
        """A uniform sample of the range's feature values."""
        ...

    def reference_sample(
        self, model: str, version: str | None, limit: int = 5000
    ) -> dict[str, np.ndarray]:
        """A uniform sample of the reference's feature values."""
        ...

    def duplicate_counts(
        self, model: str, start: datetime, end: datetime, window_seconds: int | None
    ) -> dict[int, int]:
        """Duplicate events refused per window start epoch."""
        ...

    def record_rejected(self, model: str, code: str, rows_with_errors: int) -> None:
        """Count a refused batch; per minute (data quality) only for a known model. Never
        raises."""
        ...

    def rejected_counts(
        self, model: str, start: datetime, end: datetime, window_seconds: int | None
    ) -> dict[int, dict[str, tuple[int, int]]]:
        """Refused batches per window start epoch: error code -> (batches, rows with errors)."""
        ...

    def feature_history(self, model: str) -> list[tuple[str, str, str, datetime]]:
        """(feature, type, first seen in: events|reference, when) for every feature."""
        ...

    def pin_reference(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: str | None,
        source_version: str | None,
    ) -> int:
        """Make a range of the model's traffic its reference; returns the row count."""
        ...

    # ---- alerts
    def alert_states(self) -> dict[str, dict[str, Any]]:
        """Every alert series' stored state machine (JSON-able), by series."""
        ...

    def record_alerts(
        self,
        states: Mapping[str, tuple[str, str | None, dict[str, Any]]],
        changes: Sequence[Mapping[str, Any]],
        outbox: Callable[[Mapping[str, Any], int], list[tuple[str, bytes]]] | None = None,
        actions: Callable[[Mapping[str, Any], int], list[ActionRequest]] | None = None,
    ) -> None:
        """Store an evaluation run's states and transitions, and the notifications
        ``outbox`` asks for and the action runs ``actions`` asks for, in one transaction."""
        ...

    def due_notifications(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Queued notifications whose next attempt is due."""
        ...

    def add_silence(
        self,
        *,
        model: str | None,
        monitor: str | None,
        severity: str | None,
        labels: Mapping[str, str] | None,
        starts_at: datetime,
        ends_at: datetime,
        created_by: str | None,
        comment: str | None,
    ) -> int:
        """A silence over matching alerts' notifications; returns its id."""
        ...

    def expire_silence(self, silence_id: int) -> bool:
        """End a silence now (False: no such silence)."""
        ...

    def list_silences(self, *, active_at: datetime | None = None) -> list[dict[str, Any]]:
        """Silences, newest first (only those active at ``active_at`` when given)."""
        ...

    def acknowledge(self, alert_id: int, by: str | None, comment: str | None) -> bool:
        """Acknowledge an alert (False: no such alert)."""
        ...

    def notification_result(
        self, outbox_id: int, ok: bool, error: str | None, retry_at: datetime | None
    ) -> None:
        """Record one delivery attempt (retry_at None on failure: give up)."""
        ...

    def outbox_counts(self) -> dict[str, int]:
        """Notifications by status."""
        ...

    def list_alerts(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        monitor: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Alerts, newest first, each with its transitions."""
        ...

    # ---- monitors created through the API
    def monitor_defs(self) -> list[dict[str, Any]]:
        """Every stored monitor (name, definition as a dict, created_at, updated_at,
        updated_by), by name."""
        ...

    def put_monitor_def(
        self, name: str, definition: Mapping[str, Any], by: str | None
    ) -> dict[str, Any]:
        """Insert or replace a monitor's definition (waits for the commit); the stored row."""
        ...

    def delete_monitor_def(self, name: str) -> bool:
        """Delete a stored monitor (False: none of that name)."""
        ...

    # ---- the serving version of each model (rollback and fallback point it elsewhere)
    def get_serving(self, model: str) -> dict[str, Any] | None:
        """``{model, version, fallback, updated_at, updated_by, reason, alert_id}``
        (``updated_at`` aware UTC); None when nothing was ever set for the model."""
        ...

    def set_serving(
        self,
        model: str,
        version: str | None,
        *,
        fallback: str | None = None,
        by: str | None = None,
        reason: str | None = None,
        alert_id: int | None = None,
    ) -> dict[str, Any]:
        """Set the serving version and fallback and append the change to the history, in one
        transaction (waits for the commit); returns the new state as get_serving would."""
        ...

    def serving_history(self, model: str, limit: int = 100) -> list[dict[str, Any]]:
        """The model's serving changes, newest first: ``{id, model, version, fallback, at, by,
        reason, alert_id}``."""
        ...

    # ---- automated responses (watchkeeper.alerting.actions)
    def list_action_runs(
        self,
        *,
        model: str | None = None,
        action: str | None = None,
        status: str | None = None,
        alert_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Action runs, newest first (``payload`` and ``output`` as JSON objects)."""
        ...

    def get_action_run(self, run_id: int) -> dict[str, Any] | None:
        """One action run, or None."""
        ...

    def decide_action_run(
        self, run_id: int, approve: bool, by: str | None, reason: str | None = None
    ) -> str | None:
        """Approve or reject a run awaiting approval; the status it had (None: no such run)."""
        ...

    def claim_action_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """Queued runs, oldest first, marked running."""
        ...

    def finish_action_run(
        self,
        run_id: int,
        status: str,
        *,
        exit_code: int | None = None,
        output: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record a run's outcome."""
        ...

    def interrupt_action_runs(self) -> int:
        """Mark runs left running by a crash interrupted; how many."""
        ...

    def action_counts(self) -> dict[str, int]:
        """Action runs by status."""
        ...

    # ---- spans and traces (watchkeeper.store.duckdb_traces)
    def ingest_spans(self, batch: pa.Table) -> int:
        """Append an OTLP export's spans (Arrow, the ``spans`` columns) in one write; spans
        already stored (same trace and span id) are skipped. How many were new."""
        ...

    def ingest_export(
        self, spans: pa.Table, events: Sequence[tuple[str, pa.Table]], *, task: str = "llm"
    ) -> list[IngestResult | StoreError]:
        """An OTLP export's spans and its LLM events (a batch per model) in one request to
        the writer: queued together or refused together (StoreBusyError). Per events batch
        its IngestResult or the StoreError that refused it; a failure of the spans raises."""
        ...

    def trace_spans(self, trace_id: str) -> list[dict[str, Any]]:
        """A trace's spans by start time: the ``spans`` columns as keys, attributes, events
        and resource decoded, times aware UTC. Empty when the trace is unknown."""
        ...

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """A trace's summary (as in ``list_traces``) with its spans depth first, each with
        its ``depth``; None when unknown."""
        ...

    def list_traces(
        self,
        *,
        start: datetime,
        end: datetime,
        model: str | None = None,
        status: str | None = None,
        min_latency_ms: float | None = None,
        min_cost_usd: float | None = None,
        evaluator: str | None = None,
        flagged: bool | None = None,
        conversation_id: str | None = None,
        limit: int = 100,
        before: tuple[datetime, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Trace summaries (first span in [start, end)), newest first, after ``before``
        (the last (start, trace_id) of the previous page), with ``flags`` per evaluator."""
        ...

    def trace_flags(self, trace_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per trace, per evaluator: how many of its evaluations are flagged."""
        ...

    # ---- human feedback (watchkeeper.store.duckdb_feedback)
    def record_feedback(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Store feedback items (a named one only once) and record the ``human`` evaluations
        and actuals they imply; one ``{id, feedback_id, duplicate, event_id, trace_id,
        evaluation, actual}`` per item. UnknownModelError (nothing stored) for a model."""
        ...

    def list_feedback(
        self,
        model: str | None = None,
        event_id: str | None = None,
        trace_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Feedback, newest first: ``{model, id, event_id, trace_id, thumbs, score, comment,
        corrected_answer, by, created_at (aware UTC), feedback_id}``."""
        ...

    def human_verdicts(self, model: int, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The ``human`` evaluation rows of the newest verdict on each of these calls (for
        the evaluator runner: feedback that arrived before its call)."""
        ...

    def verdict_pairs(
        self,
        model: str,
        evaluator: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[tuple[bool, bool]]:
        """(human flagged, ``evaluator`` flagged) per call of the model both judged."""
        ...

    # ---- evaluations of LLM calls (watchkeeper.store.duckdb_evals)
    def record_evaluations(
        self,
        model: str | int,
        rows: Sequence[Mapping[str, Any]],
        *,
        watermarks: Sequence[tuple[str, datetime, str]] = (),
    ) -> int:
        """Store evaluations (one per model, event and evaluator: a later one replaces) and
        the runner's ``(kind, received_at, event_id)`` watermarks in one write; marks the
        events' minutes for the evaluation aggregates. How many rows were stored."""
        ...

    def evaluations_for(self, model: str | int, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Every evaluation of these events (``detail`` decoded, times aware UTC)."""
        ...

    def list_evaluations(
        self,
        model: str | int,
        evaluator: str | None = None,
        flagged: bool | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        worst_first: bool = True,
        version: str | None = None,
        segment: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Evaluations of calls in [start, end) (of one version and segment when given),
        worst first, each with the call's prompt, response, latency_ms and cost_usd."""
        ...

    def eval_watermark(self, model: str | int, kind: str) -> tuple[datetime, str] | None:
        """How far the evaluator runner has read ``kind`` (events|actuals) of the model."""
        ...

    def llm_events_after(
        self,
        model: str | int,
        after: tuple[datetime, str] | None,
        until: datetime,
        limit: int,
        *,
        texts: bool = True,
    ) -> list[dict[str, Any]]:
        """Calls received after ``after`` (exclusive) up to ``until``, oldest first
        (``texts=False``: without prompt and context, response only when labelled)."""
        ...

    def llm_actuals_after(
        self, model: str | int, after: tuple[datetime, str] | None, until: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """Calls whose actual was received after ``after`` up to ``until``, oldest first."""
        ...

    def llm_model_ids(self) -> list[tuple[int, str]]:
        """(id, name) of every model, LLM models first."""
        ...

    def stats(self) -> dict[str, float]:
        """Engine health figures (queue depth, commits, rows) for /metrics and /readyz."""
        ...
