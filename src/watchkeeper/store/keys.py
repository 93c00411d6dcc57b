"""API keys: created by the CLI or the API, stored hashed, verified by the server.

Keys live in their own SQLite file (``keys.sqlite`` in the data directory) rather than in the
DuckDB event store, because DuckDB allows one writing process per file: ``watchkeeper keys
create`` must work while a server holds the event store open. SQLite in WAL mode lets both
processes use the key file at once.

A key is ``wk_<scope>_<43 url-safe random characters>`` (256 bits of entropy). Only its SHA-256
digest is stored: with that much entropy a slow password hash buys nothing, and verification
stays a single indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCOPES = ("ingest", "read", "admin")
KEY_FILE = "keys.sqlite"
_CACHE_SECONDS = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    digest TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT,
    scope TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
"""


@dataclass(frozen=True)
class KeyInfo:
    """What the server knows about a verified key."""

    id: int
    name: str | None
    scope: str
    prefix: str
    created_at: str

    def allows(self, scope: str) -> bool:
        """Admin keys can do everything; other keys only their own scope."""
        return self.scope == "admin" or self.scope == scope


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class KeyStore:
    """API keys of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self._path = Path(data_dir) / KEY_FILE
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self._path, timeout=10.0)
        try:
            with con:
                yield con
        finally:
            con.close()

    def create(self, scope: str, name: str | None = None) -> str:
        """Make a new key with ``scope`` and return it; only its digest is kept."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
        raw = f"wk_{scope}_{secrets.token_urlsafe(32)}"
        now = datetime.now(timezone.utc).isoformat()
        with self._connect() as con:
            con.execute(
                "INSERT INTO api_keys (digest, prefix, name, scope, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (_digest(raw), raw[: len(scope) + 8], name, scope, now),
            )
        return raw

    def verify(self, raw: str) -> KeyInfo | None:
        """The key's info, or None for an unknown or revoked key (cached a few seconds)."""
        if not raw or len(raw) > 256:
            return None
        digest = _digest(raw)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        with self._connect() as con:
            row = con.execute(
                "SELECT id, name, scope, prefix, created_at FROM api_keys"
                " WHERE digest = ? AND revoked_at IS NULL",
                (digest,),
            ).fetchone()
        info = KeyInfo(*row) if row else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, info)
        return info

    def list(self) -> list[KeyInfo]:
        """Every key that is not revoked (without secrets)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT id, name, scope, prefix, created_at FROM api_keys"
                " WHERE revoked_at IS NULL ORDER BY id"
            ).fetchall()
        return [KeyInfo(*row) for row in rows]

    def revoke(self, key_id: int) -> bool:
        """Revoke a key by id; True if one was revoked."""
        now = datetime.now(timezone.utc).isoformat()
        with self._connect() as con:
            cur = con.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
        with self._lock:
            self._cache.clear()
        return cur.rowcount > 0
