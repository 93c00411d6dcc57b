"""The serving version, cached in the process and refreshed by a daemon thread.

Watchkeeper keeps, per model, the version that should serve and an optional fallback
(``GET /api/v1/models/<model>/serving``); rollback and fallback actions change it. A serving
process reads it through :meth:`watchkeeper.Monitor.serving_version`, which only looks at this
cache: the first call starts a thread that asks the server every ``interval`` seconds with
``If-None-Match`` (an unchanged answer is a bodiless 304), and sooner, with back-off, while the
server does not answer. Failures keep the last value; nothing raises into the caller.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import threading
import urllib.parse
from typing import Any

from watchkeeper.sdk.transport import USER_AGENT, HTTPTransport

logger = logging.getLogger("watchkeeper")

ENV_INTERVAL = "WATCHKEEPER_SERVING_INTERVAL"
DEFAULT_INTERVAL = 30.0
_FIRST_RETRY = 0.5  # seconds after a failed poll; doubles, up to the interval


def resolve_interval(value: float | None) -> float:
    """The refresh interval: ``value``, else ``$WATCHKEEPER_SERVING_INTERVAL``, else 30 s.

    Raises ValueError for anything but a positive finite number of seconds."""
    source = "serving_interval"
    if value is None:
        raw = os.environ.get(ENV_INTERVAL, "").strip()
        if not raw:
            return DEFAULT_INTERVAL
        source = ENV_INTERVAL
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{ENV_INTERVAL} must be a number of seconds, got {raw!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{source} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{source} must be a positive number of seconds, got {value!r}")
    return float(value)


class ServingClient(HTTPTransport):
    """GETs the serving state on one persistent connection (the transport's connection
    handling: re-opened after a failure, and by the child after ``fork``).

    Used by one thread at a time (the refresher).
    """

    def __init__(self, url: str, api_key: str | None, timeout: float) -> None:
        super().__init__(url, api_key, timeout)
        auth = {k: v for k, v in self._headers.items() if k == "Authorization"}
        self._headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **auth}

    def get(self, path: str, etag: str | None) -> tuple[int, str | None, bytes]:
        """(status, ETag, body); status 0 when the server did not answer. Never raises."""
        headers = dict(self._headers)
        if etag:
            headers["If-None-Match"] = etag
        for attempt in (0, 1):
            reused = self._conn is not None and self._used
            try:
                conn = self._connection()
                conn.request("GET", self._prefix + path, headers=headers)
                response = conn.getresponse()
                body = response.read(1 << 20)
                if not response.isclosed():
                    response.read()
                self._used = True
                return response.status, response.getheader("ETag"), body
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 0 and reused:
                    continue  # a keep-alive connection the server had closed: once more
                return 0, None, f"{type(exc).__name__}: {exc}".encode()
        raise AssertionError("unreachable")  # pragma: no cover


class ServingCache:
    """One model's serving state as last answered by the server, and its refresher thread."""

    def __init__(
        self,
        client: ServingClient,
        model: str,
        interval: float,
        *,
        state: dict[str, Any] | None = None,
        etag: str | None = None,
        answered: bool = False,
    ) -> None:
        self._client = client
        self.model = model
        self.interval = interval
        self._path = f"/api/v1/models/{urllib.parse.quote(model, safe='')}/serving"
        # Replaced whole (never mutated), so readers need no lock.
        self._state: dict[str, Any] | None = state
        self._etag = etag
        self._answered = threading.Event()
        if answered:
            self._answered.set()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self.counts = {"refreshed": 0, "unchanged": 0, "failed": 0}

    def state(self, wait: float = 0.0) -> dict[str, Any] | None:
        """The last known state (None: nothing known or set); starts the refresher on the
        first call, and waits up to ``wait`` seconds for the server's first answer."""
        self._start()
        if wait > 0 and not self._answered.is_set():
            self._answered.wait(wait)
        return self._state

    def _start(self) -> None:
        if self._thread is not None or self._stopped.is_set():
            return
        with self._lock:
            if self._thread is None and not self._stopped.is_set():
                name = f"watchkeeper-serving-{self.model}"
                self._thread = threading.Thread(target=self._run, name=name, daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """End the refresher (it finishes a request in flight first); the cache stays."""
        self._stopped.set()

    def forked(self) -> ServingCache:
        """A copy for a forked child: same last answer, fresh lock, no thread yet."""
        return ServingCache(
            self._client,
            self.model,
            self.interval,
            state=self._state,
            etag=self._etag,
            answered=self._answered.is_set(),
        )

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                ok = self.refresh()
            except Exception as exc:  # never let the thread die
                self._warn("error", "watchkeeper: serving refresh failed: %r", exc)
                ok = False
            failures = 0 if ok else failures + 1
            delay = self.interval
            if failures:
                delay = min(self.interval, _FIRST_RETRY * 2 ** min(failures - 1, 10))
            self._stopped.wait(delay)
        self._client.close()

    def refresh(self) -> bool:
        """Ask the server once; False when it did not answer usefully (retry sooner)."""
        status, etag, body = self._client.get(self._path, self._etag)
        if status == 304:
            self.counts["unchanged"] += 1
            self._answered.set()
            return True
        if status == 200:
            try:
                state = json.loads(body)
                if not isinstance(state, dict) or "version" not in state:
                    raise ValueError("no 'version' in the answer")
            except ValueError as exc:
                self.counts["failed"] += 1
                self._warn("invalid", "watchkeeper: unreadable serving answer: %s", exc)
                return False
            self._state, self._etag = state, etag
            self.counts["refreshed"] += 1
            self._answered.set()
            return True
        if status == 404:  # the model has not logged anything yet: nothing is set
            self._state, self._etag = None, None
            self._answered.set()
            return True
        self.counts["failed"] += 1
        if 400 <= status < 500:  # a wrong key or scope: retrying soon will not help
            self._answered.set()
            self._warn(
                f"http-{status}",
                "watchkeeper: the server refused the serving version (HTTP %d): %s",
                status,
                body[:300].decode("utf-8", "replace"),
            )
            return True
        logger.debug("watchkeeper: no serving version from the server (%d): %r", status, body)
        return False

    def _warn(self, key: str, message: str, *args: object) -> None:
        level = logging.DEBUG if key in self._warned else logging.WARNING
        self._warned.add(key)
        logger.log(level, message, *args)
