"""Checks the CLI runs before starting anything, so user mistakes get a clear message."""

from __future__ import annotations

import fcntl
import socket
import sqlite3
from pathlib import Path

import click


def prepare_data_dir(path: Path) -> Path:
    """Create ``path`` if needed and prove it is writable; a ClickException says what to do."""
    path = path.expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".watchkeeper-write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.ClickException(
            f"Cannot use data directory {str(path)!r}: {reason}. "
            "Pass --data-dir with a directory you can write to."
        ) from exc
    return path.resolve()


def check_port_free(host: str, port: int) -> None:
    """Fail early and clearly when ``host:port`` cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.ClickException(
            f"Cannot listen on host {host!r}: {exc.strerror}. Use an IP address such as "
            "127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces) with --host."
        ) from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # Same option uvicorn sets, so a port in TIME_WAIT does not count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno is not None and exc.errno in (98, 48, 10048):  # EADDRINUSE
                raise click.ClickException(
                    f"Port {port} on {host} is already in use. Stop the program using it "
                    f"or choose another port with --port (for example --port {port + 1})."
                ) from exc
            raise click.ClickException(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}. "
                "Ports below 1024 need extra privileges; try --port 8000."
            ) from exc


def check_data_dir_free(data_dir: Path) -> None:
    """Fail clearly when another process (a running server) holds the event store open."""
    from watchkeeper.store.duckdb_store import DB_FILE

    path = data_dir / DB_FILE
    if not path.exists():
        return
    # DuckDB takes a POSIX record lock on its file; probing with one of our own is harmless
    # here because this process has not opened the store yet.
    with path.open("rb+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise click.ClickException(
                f"The data directory {str(data_dir)!r} is in use by another Watchkeeper "
                "process. Stop that process, or choose another directory with --data-dir."
            ) from exc
        fcntl.lockf(handle, fcntl.LOCK_UN)


def create_key(data_dir: Path, scope: str, name: str | None) -> str:
    """A new API key in the data directory's key store (errors become ClickExceptions)."""
    from watchkeeper.store.keys import KeyStore

    try:
        return KeyStore(data_dir).create(scope, name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except (OSError, sqlite3.Error) as exc:
        raise click.ClickException(
            f"Cannot write the key store in {str(data_dir)!r}: {exc}. "
            "Check that the data directory is writable and not on a read-only disk."
        ) from exc
