"""``Monitor.serving_version()`` against a real server: cached, refreshed in the background with
ETags, never raising, surviving an outage and a fork."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, free_port
from tests.helpers import wait_for
from watchkeeper import Monitor
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.keys import KeyStore


@pytest.fixture
def monitors() -> Iterator[list[Monitor]]:
    made: list[Monitor] = []
    yield made
    for m in made:
        m.close(timeout=5)


def _monitor(made: list[Monitor], url: str, key: str, **kwargs: object) -> Monitor:
    mon = Monitor("svc", version="1.0", url=url, api_key=key, spool_dir=False, **kwargs)  # type: ignore[arg-type]
    made.append(mon)
    return mon


def _put(url: str, admin_key: str, **body: object) -> dict[str, object]:
    r = httpx.put(
        f"{url}/api/v1/models/svc/serving",
        json=body,
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def _create_model(url: str, ingest_key: str) -> None:
    """The model exists once it has logged: one event of version 1.0."""
    with Monitor("svc", version="1.0", url=url, api_key=ingest_key, spool_dir=False) as mon:
        mon.log(prediction=1, latency_ms=3.0)
        assert mon.flush(timeout=20)


def test_put_changes_serving_version_after_refresh(
    server: RunningServer, monitors: list[Monitor]
) -> None:
    """Before anything is set the default comes back; after each PUT the next refresh makes
    serving_version() and serving() return the new version and fallback."""
    _create_model(server.url, server.ingest_key)
    mon = _monitor(monitors, server.url, server.ingest_key, serving_interval=0.1)
    assert mon.serving_version("fallback-default", wait=10) == "fallback-default"
    assert mon.serving(wait=10) == {
        "model": "svc",
        "version": None,
        "fallback": None,
        "updated_at": None,
        "updated_by": None,
        "reason": None,
        "alert_id": None,
    }
    _put(server.url, server.admin_key, version="1.0", reason="release")
    assert wait_for(lambda: mon.serving_version() == "1.0")
    _put(server.url, server.admin_key, version="0.9", fallback="rules", force=True)
    assert wait_for(lambda: mon.serving_version("x") == "0.9")
    state = mon.serving()
    assert state is not None
    assert (state["version"], state["fallback"], state["reason"]) == ("0.9", "rules", None)


def test_unchanged_answers_are_304(server: RunningServer, monitors: list[Monitor]) -> None:
    """After the first answer every refresh sends If-None-Match and gets a 304: the cached
    value stays and no body is parsed again."""
    _create_model(server.url, server.ingest_key)
    _put(server.url, server.admin_key, version="1.0")
    mon = _monitor(monitors, server.url, server.ingest_key, serving_interval=0.05)
    assert mon.serving_version(wait=10) == "1.0"
    cache = mon._serving
    assert cache is not None
    wait_for(lambda: cache.counts["unchanged"] >= 3)
    assert cache.counts["refreshed"] == 1 and cache.counts["failed"] == 0
    assert mon.serving_version() == "1.0"


def test_wait_gives_the_first_answer_to_a_start_up_path(
    server: RunningServer, monitors: list[Monitor]
) -> None:
    """With the default 30 s interval, wait= lets the very first call return the server's
    answer; without wait the first call returns the default at once."""
    _create_model(server.url, server.ingest_key)
    _put(server.url, server.admin_key, version="1.0")
    patient = _monitor(monitors, server.url, server.ingest_key)
    assert patient.serving_version("none", wait=10) == "1.0"
    hasty = _monitor(monitors, server.url, server.ingest_key)
    assert hasty.serving_version("none") in ("none", "1.0")  # may race the first answer
    assert wait_for(lambda: hasty.serving_version("none") == "1.0")


def test_server_down_keeps_last_value_then_recovers(
    tmp_path: Path, monitors: list[Monitor], caplog: pytest.LogCaptureFixture
) -> None:
    """While the server is down the last answer stays (and a Monitor that never got one
    returns its default), nothing raises; once the server is back changes arrive again."""
    data = tmp_path / "data"
    keys = KeyStore(data)
    admin, ingest = keys.create("admin"), keys.create("ingest")
    port = free_port()
    handle = ServerHandle(ServerConfig(data_dir=data, port=port))
    handle.start()
    try:
        _create_model(handle.url, ingest)
        _put(handle.url, admin, version="1.0")
        mon = _monitor(monitors, handle.url, ingest, serving_interval=0.1)
        assert mon.serving_version(wait=10) == "1.0"
    finally:
        handle.stop()
    cache = mon._serving
    assert cache is not None
    wait_for(lambda: cache.counts["failed"] >= 2)
    assert mon.serving_version("default") == "1.0"
    assert mon.serving() is not None
    never = _monitor(monitors, handle.url, ingest, serving_interval=0.1)
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        assert never.serving_version("default", wait=0.5) == "default"
        assert never.serving() is None
    warned = [r for r in caplog.records if r.name == "watchkeeper"]
    assert not warned, "an unreachable server is not worth a warning on every poll"

    handle = ServerHandle(ServerConfig(data_dir=data, port=port))
    handle.start()
    try:
        _put(handle.url, admin, version="1.0", fallback="rules", reason="degraded")
        assert wait_for(lambda: (mon.serving() or {}).get("fallback") == "rules", timeout=30)
        assert wait_for(lambda: never.serving_version() == "1.0", timeout=30)
    finally:
        handle.stop()


def test_refused_key_answers_default_and_warns_once(
    server: RunningServer, monitors: list[Monitor], caplog: pytest.LogCaptureFixture
) -> None:
    """A key the server refuses counts as an answer (wait does not hang on it): the default
    comes back, and the refusal is logged once, not on every refresh."""
    _create_model(server.url, server.ingest_key)
    _put(server.url, server.admin_key, version="1.0")
    mon = _monitor(monitors, server.url, "wk_ingest_wrong", serving_interval=0.05)
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        assert mon.serving_version("default", wait=10) == "default"
        cache = mon._serving
        assert cache is not None
        wait_for(lambda: cache.counts["failed"] >= 3)
    warned = [r for r in caplog.records if "HTTP 401" in r.getMessage()]
    assert len(warned) == 1


def test_fork_child_refreshes_with_its_own_thread(
    server: RunningServer, monitors: list[Monitor]
) -> None:
    """A forked child starts with the parent's last answer at once, and its own refresher
    picks up a change the child makes (the parent's thread does not exist in the child)."""
    _create_model(server.url, server.ingest_key)
    _put(server.url, server.admin_key, version="1.0")
    mon = _monitor(monitors, server.url, server.ingest_key, serving_interval=0.1)
    assert mon.serving_version(wait=10) == "1.0"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # multi-threaded fork on 3.12+
        pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            inherited = mon.serving_version("none") == "1.0"
            request = urllib.request.Request(
                f"{server.url}/api/v1/models/svc/serving",
                data=json.dumps({"version": "2.0", "force": True}).encode(),
                headers={"Authorization": f"Bearer {server.admin_key}",
                         "Content-Type": "application/json"},
                method="PUT",
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
            seen = wait_for(lambda: mon.serving_version() == "2.0", timeout=15)
            code = 0 if inherited and seen else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert wait_for(lambda: mon.serving_version() == "2.0")


def test_close_stops_the_refresher(server: RunningServer) -> None:
    """After close() the refresher thread ends and serving_version() still answers from the
    cache without starting another."""
    _create_model(server.url, server.ingest_key)
    _put(server.url, server.admin_key, version="1.0")
    mon = Monitor("svc", url=server.url, api_key=server.ingest_key, spool_dir=False,
                  serving_interval=0.05)  # fmt: skip
    assert mon.serving_version(wait=10) == "1.0"
    cache = mon._serving
    assert cache is not None and cache._thread is not None
    thread = cache._thread
    mon.close()
    wait_for(lambda: not thread.is_alive())
    assert mon.serving_version("d") == "1.0"
    assert cache._thread is thread


def test_interval_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interval comes from the argument, else $WATCHKEEPER_SERVING_INTERVAL, else 30 s; a
    bad value is a ValueError at construction, naming where it came from."""
    monkeypatch.delenv("WATCHKEEPER_SERVING_INTERVAL", raising=False)

    def interval(**kwargs: object) -> float:
        mon = Monitor("svc", spool_dir=False, **kwargs)  # type: ignore[arg-type]
        try:
            return float(mon._serving_settings[2])
        finally:
            mon.close(timeout=1)

    assert interval() == 30.0
    assert interval(serving_interval=2) == 2.0
    monkeypatch.setenv("WATCHKEEPER_SERVING_INTERVAL", "0.25")
    assert interval() == 0.25
    assert interval(serving_interval=5.0) == 5.0
    monkeypatch.setenv("WATCHKEEPER_SERVING_INTERVAL", "soon")
    with pytest.raises(ValueError, match="WATCHKEEPER_SERVING_INTERVAL"):
        interval()
    monkeypatch.delenv("WATCHKEEPER_SERVING_INTERVAL")
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="serving_interval"):
            interval(serving_interval=bad)
