"""Shared fixtures: a real server on a loopback port over a fresh DuckDB file per test."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.keys import KeyStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    handle: ServerHandle
    admin_key: str
    ingest_key: str
    read_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def running_server(data_dir: Path) -> Iterator[RunningServer]:
    """A server on DATA_DIR (own port) with one key of each scope, stopped on exit."""
    keys = KeyStore(data_dir)
    admin, ingest, read = (keys.create(s) for s in ("admin", "ingest", "read"))
    handle = ServerHandle(ServerConfig(data_dir=data_dir, port=free_port()))
    handle.start()
    try:
        yield RunningServer(handle.url, data_dir, handle, admin, ingest, read)
    finally:
        handle.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    """A fresh server (own data dir, own port) with one key of each scope."""
    with running_server(tmp_path) as running:
        yield running


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright (never a downloaded browser).

    Missing Chromium skips the browser tests on a developer's machine, but fails them in CI
    (where ``scripts/install-test-deps.sh`` installs it), so CI cannot go green without them.
    """
    if not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
