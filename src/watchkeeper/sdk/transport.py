"""Transports: how a finished request body reaches the server.

A :class:`Transport` gets a path (``/api/v1/models/<model>/predictions`` or ``.../actuals``)
and a gzip'd JSON body and answers with a :class:`SendResult`. It may raise; the worker
treats an exception like a connection error (retry, then spool).
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from watchkeeper._version import __version__
from watchkeeper.sdk.wire import decode_batch

USER_AGENT = f"watchkeeper-python/{__version__}"


@dataclass(frozen=True)
class SendResult:
    """The server's answer. ``status`` 0 means no answer (connection error, timeout)."""

    status: int
    message: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """True for 2xx: the batch is stored."""
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """True when trying again later may succeed: no answer, 408, 429 or 5xx."""
        return self.status in (0, 408, 429) or self.status >= 500


@runtime_checkable
class Transport(Protocol):
    """Sends one request body. Implementations need not be thread-safe (one worker calls)."""

    def send(self, path: str, body: bytes) -> SendResult:
        """POST ``body`` (gzip'd JSON) to ``path`` and report the answer."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HTTPTransport:
    """Sends over HTTP(S) with ``http.client`` on one persistent connection.

    The connection is re-opened after any failure, and once immediately when a reused
    keep-alive connection turns out to be closed by the server. After ``fork`` the child
    opens its own connection.
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Watchkeeper url must be http(s)://host[:port][/prefix], got {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": USER_AGENT,
        }
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._conn: http.client.HTTPConnection | None = None
        self._pid = os.getpid()
        self._used = False

    def _connection(self) -> http.client.HTTPConnection:
        if self._pid != os.getpid():
            # Forked: drop our copy of the parent's socket. close() only releases this
            # process's descriptor (no shutdown, no TLS alert), the parent's stays usable.
            self._pid = os.getpid()
            self.close()
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
            self._used = False
        return self._conn

    def _post(self, path: str, body: bytes) -> SendResult:
        conn = self._connection()
        conn.request("POST", self._prefix + path, body=body, headers=self._headers)
        response = conn.getresponse()
        text = response.read(65536).decode("utf-8", "replace")
        if not response.isclosed():
            response.read()
        self._used = True
        return SendResult(
            response.status, text[:1000], parse_retry_after(response.getheader("Retry-After"))
        )

    def send(self, path: str, body: bytes) -> SendResult:
        """POST the body; never raises (a failure is ``SendResult(0, reason)``)."""
        for attempt in (0, 1):
            reused = self._conn is not None and self._used
            try:
                return self._post(path, body)
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                stale = isinstance(
                    exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                )
                if attempt == 0 and reused and stale:
                    continue
                return SendResult(0, f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the connection (a new one is opened by the next send)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()


class InMemoryTransport:
    """Keeps every batch in memory instead of sending it: for tests of your instrumentation.

    ``respond`` (optional) decides the answer for each request, e.g. ``lambda path, n:
    SendResult(503)``; by default every batch is accepted with 200. Only accepted batches
    are recorded in :attr:`batches`; :attr:`requests` counts every attempt.
    """

    def __init__(self, respond: Callable[[str, int], SendResult] | None = None) -> None:
        self.respond = respond
        self.batches: list[tuple[str, list[dict[str, Any]]]] = []
        self.requests = 0
        self.closed = False
        self._lock = threading.Lock()

    def send(self, path: str, body: bytes) -> SendResult:
        """Decode and record the batch; answer with ``respond`` or 200."""
        objects = decode_batch(body)
        with self._lock:
            self.requests += 1
            result = self.respond(path, len(objects)) if self.respond else SendResult(200)
            if result.ok:
                self.batches.append((path, objects))
        return result

    def close(self) -> None:
        """Mark closed (batches stay readable)."""
        self.closed = True

    def _objects(self, suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [o for path, objs in self.batches if path.endswith(suffix) for o in objs]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every prediction event accepted so far, in order."""
        return self._objects("/predictions")

    @property
    def actuals(self) -> list[dict[str, Any]]:
        """Every actual accepted so far, in order."""
        return self._objects("/actuals")

    @property
    def feedback(self) -> list[dict[str, Any]]:
        """Every feedback item accepted so far, in order."""
        return self._objects("/feedback")

    def clear(self) -> None:
        """Forget recorded batches."""
        with self._lock:
            self.batches.clear()
