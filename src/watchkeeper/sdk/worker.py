"""The background half of the SDK: bounded queues drained by one daemon thread.

Callers append tuples to :attr:`Pipeline.predictions` / :attr:`Pipeline.actuals` /
:attr:`Pipeline.feedback` (deques; an append is atomic). The worker wakes when a queue reaches ``batch_size``, on ``flush()``, or
every ``flush_interval`` seconds; it cleans and encodes each batch and hands it to the
transport. 2xx: done. 408/429/5xx/no answer: retried ``max_retries`` times with exponential
back-off and jitter (``Retry-After`` honoured), then spooled to disk. Other 4xx: rejected for
good, counted, the server's message logged once. Spooled batches are replayed oldest-first
as soon as the server answers again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.parse
from collections import deque
from typing import Any

from watchkeeper.sdk.spool import Spool
from watchkeeper.sdk.transport import SendResult, Transport
from watchkeeper.sdk.wire import (
    ACTUALS,
    FEEDBACK,
    PREDICTIONS,
    clean_actual,
    clean_event,
    clean_feedback,
    encode_batch,
)

logger = logging.getLogger("watchkeeper")

_NAMES = "queued sent dropped rejected retried spooled replayed spool_dropped failed"
COUNTERS: tuple[str, ...] = tuple(_NAMES.split(" "))
_MAX_DELAY = 60.0
_REPLAY_PER_ROUND = 20


_CLEANERS = {PREDICTIONS: clean_event, ACTUALS: clean_actual, FEEDBACK: clean_feedback}


class Pipeline:
    """Queues, counters and the worker thread of one Monitor in one process."""

    def __init__(
        self,
        model: str,
        transport: Transport,
        spool: Spool | None,
        *,
        batch_size: int,
        flush_interval: float,
        max_queue: int,
        max_retries: int,
        backoff: float,
    ) -> None:
        self.transport = transport
        self.spool = spool
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_retries = max_retries
        self.backoff = backoff
        quoted = urllib.parse.quote(model, safe="")
        self.paths = {kind: f"/api/v1/models/{quoted}/{kind}" for kind in (PREDICTIONS, ACTUALS)}
        self.paths[FEEDBACK] = "/api/v1/feedback"
        self.predictions: deque[tuple[Any, ...]] = deque()
        self.actuals: deque[tuple[Any, ...]] = deque()
        self.feedback: deque[tuple[Any, ...]] = deque()
        self.wake = threading.Event()
        self._interrupt = threading.Event()
        self._lock = threading.Lock()
        self._done_cond = threading.Condition(threading.Lock())
        self._taken = 0
        self._done = 0
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._flush_deadline: float | None = None
        self._replay_now = False
        self._next_replay = 0.0
        self._replay_failures = 0

    # -- caller side ------------------------------------------------------------------------
    def start(self, name: str) -> None:
        """Start the worker thread (once)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=name, daemon=True)
                self._thread.start()

    def drop(self, count: int = 1) -> None:
        """Count records dropped before they were queued (queue full, bad call)."""
        with self._lock:
            self._counts["dropped"] += count

    def warn_once(self, key: str, message: str, *args: object) -> None:
        """Log at WARNING the first time ``key`` is seen, at DEBUG afterwards."""
        level = logging.DEBUG if key in self._warned else logging.WARNING
        self._warned.add(key)
        logger.log(level, message, *args)

    def stats(self) -> dict[str, int]:
        """A snapshot of the counters (see ``Monitor.stats``)."""
        with self._lock:
            counts = dict(self._counts)
            counts["queued"] = self._taken + self._waiting()
        return counts

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued before the call is sent, spooled or refused."""
        start = time.monotonic()
        with self._lock:
            target = self._taken + self._waiting()
            thread = self._thread
        if thread is None or not thread.is_alive():
            return target == self._done
        before = self._undelivered()
        self._flush_deadline = start + max(0.0, timeout - min(0.5, timeout / 5))
        self._interrupt.set()
        self.wake.set()
        try:
            with self._done_cond:
                reached = self._done_cond.wait_for(lambda: self._done >= target, timeout)
        finally:
            self._flush_deadline = None
        return reached and self._undelivered() == before

    def _waiting(self) -> int:
        return len(self.predictions) + len(self.actuals) + len(self.feedback)

    def request_stop(self) -> None:
        """Ask the worker to send or spool what is left (one attempt each) and end."""
        self._stopping = True
        self._interrupt.set()
        self.wake.set()

    def stop(self, timeout: float) -> None:
        """request_stop(), wait up to ``timeout`` for the worker, close the transport."""
        self.request_stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout))
        try:
            self.transport.close()
        except Exception as exc:  # a user transport may raise anything
            logger.debug("watchkeeper: transport.close() failed: %r", exc)

    def _undelivered(self) -> int:
        c = self._counts
        return c["rejected"] + c["spooled"] + c["failed"]

    # -- worker thread ----------------------------------------------------------------------
    def _run(self) -> None:
        if self.spool is not None:
            self.spool.release_stale_claims()
        while True:
            self.wake.wait(self.flush_interval)
            self.wake.clear()
            stopping = self._stopping
            try:
                self._drain()
                if self._replay_due(stopping):
                    self._replay()
            except Exception as exc:  # never let the worker die
                self.warn_once("worker", "watchkeeper: worker error: %r", exc)
            if stopping and not self._waiting():
                return

    def _replay_due(self, stopping: bool) -> bool:
        if stopping or self.spool is None or not self.spool.maybe_nonempty:
            return False
        return self._replay_now or time.monotonic() >= self._next_replay

    def _drain(self) -> None:
        queues = (
            (PREDICTIONS, self.predictions),  # first: feedback and actuals name their events
            (ACTUALS, self.actuals),
            (FEEDBACK, self.feedback),
        )
        while self._waiting():
            for kind, queue in queues:
                budget = len(queue)
                while budget > 0:
                    with self._lock:
                        count = min(len(queue), self.batch_size, budget)
                        items = [queue.popleft() for _ in range(count)]
                        self._taken += count
                    budget -= count
                    if not items:
                        break
                    self._process(kind, items)

    def _process(self, kind: str, items: list[tuple[Any, ...]]) -> None:
        try:
            clean = _CLEANERS[kind]
            objects: list[dict[str, Any]] = []
            for values in items:
                try:
                    objects.append(clean(values))
                except Exception as exc:
                    self._counts["rejected"] += 1
                    self.warn_once("invalid", "watchkeeper: record dropped: %s", exc)
            if objects:
                body = encode_batch(kind, objects)
                self._deliver(kind, body, len(objects))
        except Exception as exc:
            self._counts["failed"] += len(items)
            self.warn_once("process", "watchkeeper: batch lost: %r", exc)
        finally:
            with self._done_cond:
                self._done += len(items)
                self._done_cond.notify_all()

    def _send(self, kind: str, body: bytes) -> SendResult:
        try:
            return self.transport.send(self.paths[kind], body)
        except Exception as exc:
            logger.debug("watchkeeper: transport raised %r", exc)
            return SendResult(0, f"{type(exc).__name__}: {exc}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, _MAX_DELAY)
        return float(min(self.backoff * 2**attempt, _MAX_DELAY) * random.uniform(0.5, 1.5))

    def _deliver(self, kind: str, body: bytes, count: int) -> None:
        attempt = 0
        while True:
            result = self._send(kind, body)
            if result.ok:
                self._counts["sent"] += count
                self._replay_now = self.spool is not None and self.spool.maybe_nonempty
                return
            if not result.retryable:
                self._reject(kind, result, count)
                return
            if attempt >= self.max_retries or self._stopping:
                break
            delay = self._delay(attempt, result.retry_after)
            deadline = self._flush_deadline
            if deadline is not None and time.monotonic() + delay > deadline:
                break
            self._counts["retried"] += 1
            attempt += 1
            if not self._sleep(delay):
                break
        logger.debug("watchkeeper: giving up on a batch for now: %s", result.message)
        self._spool(kind, body, count)

    def _sleep(self, delay: float) -> bool:
        """Back-off wait; False when close() or a flush deadline means: spool now."""
        end = time.monotonic() + delay
        while (remaining := end - time.monotonic()) > 0:
            if self._interrupt.wait(remaining):
                self._interrupt.clear()
                deadline = self._flush_deadline
                if self._stopping or (deadline is not None and end > deadline):
                    return False
        return True

    def _reject(self, kind: str, result: SendResult, count: int) -> None:
        self._counts["rejected"] += count
        self.warn_once(
            f"reject-{kind}-{result.status}",
            "watchkeeper: server rejected a batch of %d %s (HTTP %d): %s",
            count,
            kind,
            result.status,
            result.message,
        )

    def _spool(self, kind: str, body: bytes, count: int) -> None:
        if self.spool is None:
            self._counts["failed"] += count
            self.warn_once("nospool", "watchkeeper: server unreachable, %d records lost", count)
            return
        try:
            dropped = self.spool.write(kind, body, count)
        except (OSError, ValueError) as exc:
            self._counts["failed"] += count
            self.warn_once(
                "spool", "watchkeeper: cannot spool to %s: %r", self.spool.directory, exc
            )
            return
        self._counts["spooled"] += count
        self._counts["spool_dropped"] += sum(entry.records for entry in dropped)
        if dropped:
            self.warn_once("spoolfull", "watchkeeper: spool full, oldest batches dropped")

    def _replay(self) -> None:
        assert self.spool is not None
        self._replay_now = False
        replayed = 0
        for entry, body in self.spool.claim():
            if entry.kind not in self.paths:
                self.spool.unclaim(entry)
                continue
            result = self._send(entry.kind, body)
            if result.ok:
                self.spool.done(entry)
                self._counts["sent"] += entry.records
                self._counts["replayed"] += entry.records
                self._replay_failures = 0
            elif not result.retryable:
                self.spool.done(entry)
                self._reject(entry.kind, result, entry.records)
            else:
                self.spool.unclaim(entry)
                self._replay_failures += 1
                delay = self._delay(min(self._replay_failures, 10), result.retry_after)
                self._next_replay = time.monotonic() + delay
                return
            replayed += 1
            if replayed >= _REPLAY_PER_ROUND or self._stopping:
                self._replay_now = True
                return
