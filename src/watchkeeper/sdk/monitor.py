"""``Monitor``: the object users create in their model server.

``log()``, ``log_actual()`` and ``log_feedback()`` only put a tuple on a bounded queue (a
few microseconds in the caller's thread); a daemon worker thread batches, compresses, sends,
retries and spools (see :mod:`watchkeeper.sdk.worker`). No exception raised inside
Watchkeeper reaches the caller of ``log``, ``log_actual``, ``log_feedback``, ``track``,
``flush``, ``close`` or ``stats``; problems are counted (:meth:`Monitor.stats`) and logged
once on the ``"watchkeeper"`` logger.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import secrets
import threading
import time
import weakref
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from watchkeeper.sdk.serving import ServingCache, ServingClient, resolve_interval
from watchkeeper.sdk.spool import Spool, default_spool_dir
from watchkeeper.sdk.tracking import Call
from watchkeeper.sdk.transport import HTTPTransport, Transport
from watchkeeper.sdk.worker import Pipeline

_live: weakref.WeakSet[Monitor] = weakref.WeakSet()
_hooks_lock = threading.Lock()
_hooks_installed = False


def _install_process_hooks() -> None:
    """Register the fork and exit hooks once, when the first Monitor is made."""
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
    os.register_at_fork(after_in_child=_after_fork_in_child)
    atexit.register(_at_exit)


def _after_fork_in_child() -> None:
    for monitor in list(_live):
        monitor._reset_after_fork()


def _at_exit() -> None:
    for monitor in list(_live):
        monitor.close(timeout=2.0)


def _new_prefix() -> str:
    return secrets.token_hex(8) + "-"


class Monitor:
    """Sends one model's predictions and ground truth to a Watchkeeper server.

    ``url`` defaults to ``$WATCHKEEPER_URL`` or ``http://127.0.0.1:8000``; ``api_key`` to
    ``$WATCHKEEPER_API_KEY``. Batches of up to ``batch_size`` records leave at least every
    ``flush_interval`` seconds. At most ``max_queue`` records of each kind wait in memory;
    beyond that new records are dropped and counted, the caller is never blocked.
    Undeliverable batches are retried ``max_retries`` times (back-off starting at ``backoff``
    seconds) and then written to ``spool_dir`` — by default ``$WATCHKEEPER_SPOOL_DIR/<model>``
    or ``~/.cache/watchkeeper/spool/<model>``; pass ``spool_dir=False`` to never write to
    disk — which holds at most ``max_spool_bytes`` and is replayed when the server answers.
    ``transport`` replaces HTTP (e.g. :class:`~watchkeeper.testing.InMemoryTransport`).

    :meth:`serving_version` reads the version that should serve from ``url`` (always over
    HTTP, with ``api_key``), refreshed every ``serving_interval`` seconds — by default
    ``$WATCHKEEPER_SERVING_INTERVAL`` or 30.

    Invalid settings raise ``ValueError`` here, at start-up; after that, nothing raises.
    """

    def __init__(
        self,
        model: str,
        version: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        *,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        spool_dir: str | os.PathLike[str] | Literal[False] | None = None,
        max_spool_bytes: int = 256 * 1024 * 1024,
        timeout: float = 5.0,
        transport: Transport | None = None,
        max_retries: int = 5,
        backoff: float = 0.5,
        serving_interval: float | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError("model must be a non-empty string")
        if batch_size < 1 or max_queue < 1 or flush_interval <= 0 or max_retries < 0:
            raise ValueError("batch_size, max_queue, flush_interval must be > 0, max_retries >= 0")
        self.model = model
        self.version = None if version is None else str(version)
        self.url = url or os.environ.get("WATCHKEEPER_URL") or "http://127.0.0.1:8000"
        key = api_key if api_key is not None else os.environ.get("WATCHKEEPER_API_KEY")
        if transport is None:
            transport = HTTPTransport(self.url, key, timeout)
        # The serving version's cache and refresher: made on the first serving_version() call.
        self._serving_settings = (key, timeout, resolve_interval(serving_interval))
        self._serving: ServingCache | None = None
        self._serving_lock = threading.Lock()
        spool: Spool | None = None
        if spool_dir is not False:
            directory = default_spool_dir(model) if spool_dir is None else Path(spool_dir)
            spool = Spool(directory, max_spool_bytes)
        self._settings: dict[str, Any] = {
            "batch_size": batch_size,
            "flush_interval": flush_interval,
            "max_queue": max_queue,
            "max_retries": max_retries,
            "backoff": backoff,
        }
        self._transport = transport
        self._spool = spool
        self._closed = False
        self._new_pipeline()
        _install_process_hooks()
        _live.add(self)

    def _new_pipeline(self) -> None:
        self._pipeline = Pipeline(self.model, self._transport, self._spool, **self._settings)
        self._predictions = self._pipeline.predictions
        self._actuals = self._pipeline.actuals
        self._feedback = self._pipeline.feedback
        self._wake = self._pipeline.wake
        self._max_queue: int = self._settings["max_queue"]
        self._batch_size: int = self._settings["batch_size"]
        self._prefix = _new_prefix()
        self._ids = itertools.count()
        self._running = False
        # A Monitor dropped without close() still lets its worker finish and exit.
        finalizer = weakref.finalize(self, Pipeline.request_stop, self._pipeline)
        finalizer.atexit = False

    def _reset_after_fork(self) -> None:
        """In a forked child: fresh queues, lock and id prefix; the worker starts lazily.

        Records the parent had queued stay the parent's to send. The serving version keeps
        the parent's last answer; the child refreshes it with its own thread.
        """
        self._serving_lock = threading.Lock()
        if self._serving is not None:
            self._serving = self._serving.forked()
            self._stop_serving_with_monitor(self._serving)
        if not self._closed:
            self._new_pipeline()

    def _start(self) -> bool:
        """Start the worker if needed; False once closed."""
        if self._closed:
            return False
        self._pipeline.start(f"watchkeeper-{self.model}")
        self._running = True
        return True

    def _new_event_id(self) -> str:
        """A fresh id, unique across processes (random per-process prefix + counter)."""
        return f"{self._prefix}{next(self._ids):x}"

    def _enqueue(self, queue: Any, record: tuple[Any, ...]) -> None:
        if not self._running and not self._start():
            self._pipeline.drop()
            self._pipeline.warn_once("closed", "watchkeeper: log() after close(); dropped")
        elif len(queue) >= self._max_queue:
            self._pipeline.drop()
            self._pipeline.warn_once("full", "watchkeeper: queue full, records dropped")
        else:
            queue.append(record)
            if len(queue) >= self._batch_size and not self._wake.is_set():
                self._wake.set()

    def log(
        self,
        features: dict[str, Any] | None = None,
        prediction: Any = None,
        score: float | None = None,
        probabilities: dict[str, float] | None = None,
        latency_ms: float | None = None,
        segments: dict[str, str] | None = None,
        status: str = "ok",
        error: str | None = None,
        event_id: str | None = None,
        timestamp: float | datetime | None = None,
        prompt: str | None = None,
        response: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        time_to_first_token_ms: float | None = None,
        cost_usd: float | None = None,
        trace_id: str | None = None,
        conversation_id: str | None = None,
        context: str | None = None,
    ) -> str:
        """Queue one prediction and return its event id (pass it to :meth:`log_actual`).

        ``timestamp`` is epoch seconds or a datetime (naive = UTC); default: now.
        LLM calls may also carry ``trace_id`` (the OpenTelemetry trace, 32 hex digits, to
        see the call in its trace), ``conversation_id`` and ``context`` (the retrieved text
        the answer should rest on; the groundedness evaluator reads it).
        Values are checked in the worker thread; fields left as None are not sent.
        """
        try:
            if event_id is None:
                event_id = f"{self._prefix}{next(self._ids):x}"
            if type(features) is dict:
                features = features.copy()
            if type(segments) is dict:
                segments = segments.copy()
            record = (
                event_id,
                time.time() if timestamp is None else timestamp,
                self.version,
                features,
                prediction,
                score,
                probabilities,
                latency_ms,
                status,
                error,
                segments,
                prompt,
                response,
                input_tokens,
                output_tokens,
                time_to_first_token_ms,
                cost_usd,
                trace_id,
                conversation_id,
                context,
            )
            self._enqueue(self._predictions, record)
        except Exception as exc:
            self._pipeline.drop()
            self._failed_call("log", exc)
        return str(event_id)

    def log_actual(
        self, event_id: str, label: Any, timestamp: float | datetime | None = None
    ) -> None:
        """Queue the ground-truth ``label`` of an earlier prediction (from any process)."""
        try:
            self._enqueue(self._actuals, (event_id, label, timestamp))
        except Exception as exc:
            self._pipeline.drop()
            self._failed_call("log_actual", exc)

    def log_feedback(
        self,
        event_id: str | None = None,
        *,
        trace_id: str | None = None,
        thumbs: Literal["up", "down"] | bool | None = None,
        score: float | None = None,
        comment: str | None = None,
        corrected_answer: str | None = None,
        by: str | None = None,
        feedback_id: str | None = None,
        timestamp: float | datetime | None = None,
    ) -> str:
        """Queue a person's verdict on an LLM call (its ``event_id``) or a whole trace
        (``trace_id``): ``thumbs`` (``"up"``/``"down"``, or True/False), a ``score`` from 0
        to 1, a ``comment``, a ``corrected_answer`` (stored as the call's actual). Returns
        the feedback id: the server stores an id once, so retries never count twice.
        It becomes the call's ``human`` evaluation (``POST /api/v1/feedback``, docs/llm.md).
        """
        try:
            if feedback_id is None:
                feedback_id = f"{self._prefix}f{next(self._ids):x}"
            record = (
                self.model,
                feedback_id,
                event_id,
                trace_id,
                thumbs,
                score,
                comment,
                corrected_answer,
                by,
                time.time() if timestamp is None else timestamp,
            )
            self._enqueue(self._feedback, record)
        except Exception as exc:
            self._pipeline.drop()
            self._failed_call("log_feedback", exc)
        return str(feedback_id)

    def track(
        self,
        features: dict[str, Any] | None = None,
        segments: dict[str, str] | None = None,
        **fields: Any,
    ) -> Call:
        """Time a model call: ``with monitor.track(x) as call: call.prediction = ...``.

        On exit the call is logged with its latency, and with status ``"error"`` and the
        error text if the block raised; the exception itself propagates unchanged.
        """
        return Call(self, features, segments, fields)

    def stats(self) -> dict[str, int]:
        """Counters of records since start (or fork): ``queued`` (accepted by log), ``sent``
        (accepted by the server, replays included), ``dropped`` (queue full or after close),
        ``rejected`` (4xx, or invalid before sending), ``retried`` (send attempts repeated),
        ``spooled`` (written to disk), ``replayed`` (sent from disk), ``spool_dropped``
        (oldest spool files removed for space), ``failed`` (lost: no spool or disk error)."""
        try:
            return self._pipeline.stats()
        except Exception:  # pragma: no cover - defensive
            return {}

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is sent or spooled; True if all was sent."""
        try:
            return self._pipeline.flush(timeout)
        except Exception as exc:
            self._failed_call("flush", exc)
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Flush, then stop the worker; later ``log()`` calls are dropped and counted."""
        try:
            if self._closed:
                return
            deadline = time.monotonic() + timeout
            self._pipeline.flush(timeout)
            self._closed = True
            self._running = False
            if self._serving is not None:
                self._serving.stop()
            self._pipeline.stop(deadline - time.monotonic())
            _live.discard(self)
        except Exception as exc:
            self._failed_call("close", exc)

    def serving_version(self, default: str | None = None, wait: float = 0.0) -> str | None:
        """The version that should serve this model, as set on the server (``PUT
        /api/v1/models/<model>/serving``, or a rollback action) — else ``default``.

        Answers from a cache at once; the first call starts a background thread that refreshes
        it every ``serving_interval`` seconds. ``wait`` > 0 lets a start-up path wait up to
        that many seconds for the server's first answer. While the server cannot be reached
        the last answer stays; before any answer, or when nothing is set, ``default``.
        """
        try:
            state = self._serving_state(wait)
            version = None if state is None else state.get("version")
            return default if version is None else str(version)
        except Exception as exc:
            self._failed_call("serving_version", exc)
            return default

    def serving(self, wait: float = 0.0) -> dict[str, Any] | None:
        """The whole serving state from the same cache: ``version`` and ``fallback`` (either
        may be None), ``updated_at``, ``updated_by``, ``reason`` and ``alert_id`` (the alert
        behind a rollback); None before the server's first answer or for a model it does not
        know yet."""
        try:
            state = self._serving_state(wait)
            return None if state is None else dict(state)
        except Exception as exc:
            self._failed_call("serving", exc)
            return None

    def _serving_state(self, wait: float) -> dict[str, Any] | None:
        cache = self._serving
        if cache is None:
            with self._serving_lock:
                if self._serving is None:
                    key, timeout, interval = self._serving_settings
                    client = ServingClient(self.url, key, timeout)
                    self._serving = ServingCache(client, self.model, interval)
                    self._stop_serving_with_monitor(self._serving)
                cache = self._serving
        if self._closed:
            cache.stop()
            return cache.state()
        return cache.state(wait)

    def _stop_serving_with_monitor(self, cache: ServingCache) -> None:
        """A Monitor dropped without close() also ends its serving refresher."""
        finalizer = weakref.finalize(self, ServingCache.stop, cache)
        finalizer.atexit = False

    def _failed_call(self, method: str, exc: Exception) -> None:
        with contextlib.suppress(Exception):
            self._pipeline.warn_once(method, "watchkeeper: %s() failed: %r", method, exc)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Monitor({self.model!r}, version={self.version!r}, url={self.url!r})"
