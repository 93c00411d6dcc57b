"""OTLP exports prepared in worker processes (``ExportPool``): the same tables as in the
request's thread, errors that keep their status, a dead worker replaced without losing the
export, and a real server that stores a large export prepared by its worker."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import free_port
from watchkeeper.llm.prices import PriceTable
from watchkeeper.llm_sim import ChatTraffic, export_request
from watchkeeper.otlp.decode import PROTOBUF
from watchkeeper.otlp.prepare import ExportPool, PreparedExport, prepare_export
from watchkeeper.schema import BatchError
from watchkeeper.server import ServerConfig, ServerHandle, default_otlp_workers
from watchkeeper.store.keys import KeyStore

NOW = datetime.now(timezone.utc)  # the calls of _body() are from the last 10 minutes


def _body(n: int, seed: int = 3, service: str = "support-bot") -> bytes:
    calls = ChatTraffic(seed, service=service).calls(time.time() - 600, n, 2.0)
    return export_request(calls, service).SerializeToString()


def _same(a: PreparedExport, b: PreparedExport) -> None:
    assert a.spans.equals(b.spans)
    assert [(c.model, c.rows, c.error) for c in a.chunks] == [(c.model, [], None) for c in b.chunks]
    for x, y in zip(a.chunks, b.chunks, strict=True):
        assert x.table is not None and y.table is not None
        assert x.table.equals(y.table)


@pytest.fixture
def pool() -> ExportPool:
    p = ExportPool(1, PriceTable.load(), min_bytes=0)
    yield p
    p.close()


def test_a_worker_prepares_the_same_tables_as_the_request_thread(pool: ExportPool) -> None:
    body = _body(40)
    here = prepare_export(body, PROTOBUF, None, PriceTable.load(), False, NOW)
    there = pool.prepare(body, PROTOBUF, None, False, NOW)
    assert pool.offloaded == 1
    _same(there, here)
    assert here.spans.num_rows >= 3 * 40 and sum(c.table.num_rows for c in here.chunks) == 40
    # redaction happens in the worker too
    redacted = pool.prepare(body, PROTOBUF, None, True, NOW)
    _same(redacted, prepare_export(body, PROTOBUF, None, PriceTable.load(), True, NOW))


def test_small_exports_stay_in_the_request_thread() -> None:
    pool = ExportPool(1, None, min_bytes=1 << 30)
    try:
        pool.prepare(_body(2), PROTOBUF, None, False, NOW)
        assert pool.offloaded == 0 and pool._pool is None  # no process was started
    finally:
        pool.close()


def test_a_malformed_body_raises_the_same_error_from_a_worker(pool: ExportPool) -> None:
    with pytest.raises(BatchError) as here:
        prepare_export(b"\xff\xff\xff", PROTOBUF, None, None, False, NOW)
    with pytest.raises(BatchError) as there:
        pool.prepare(b"\xff\xff\xff", PROTOBUF, None, False, NOW)
    assert (there.value.status, there.value.code, there.value.message) == (
        here.value.status,
        here.value.code,
        here.value.message,
    )
    assert there.value.status == 400


def test_a_dead_worker_is_replaced_and_its_export_still_prepared(pool: ExportPool) -> None:
    body = _body(10)
    pool.prepare(body, PROTOBUF, None, False, NOW)
    executor = pool._pool
    assert executor is not None
    for pid in list(executor._processes):  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    expected = prepare_export(body, PROTOBUF, None, PriceTable.load(), False, NOW)
    _same(pool.prepare(body, PROTOBUF, None, False, NOW), expected)  # in the caller's thread
    _same(pool.prepare(body, PROTOBUF, None, False, NOW), expected)  # a fresh pool
    assert pool._pool is not executor and pool.offloaded == 2


def test_a_closed_pool_prepares_in_the_caller_thread() -> None:
    pool = ExportPool(1, None, min_bytes=0)
    pool.close()
    body = _body(3)
    _same(
        pool.prepare(body, PROTOBUF, None, False, NOW),
        prepare_export(body, PROTOBUF, None, None, False, NOW),
    )
    assert pool.offloaded == 0


def test_default_worker_count_leaves_a_cpu_and_caps_at_four() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert default_otlp_workers() == max(0, min(4, cpus - 1))


def test_a_server_stores_a_large_export_prepared_by_its_worker(tmp_path: Path) -> None:
    import httpx

    keys = KeyStore(tmp_path)
    ingest, read = keys.create("ingest"), keys.create("read")
    handle = ServerHandle(ServerConfig(data_dir=tmp_path, port=free_port(), otlp_workers=1))
    handle.start()
    try:
        body = _body(120, service="big-app")
        assert len(body) >= handle.app.state.otlp_pool.min_bytes  # goes to the worker
        r = httpx.post(
            handle.url + "/v1/traces",
            content=body,
            headers={"Content-Type": PROTOBUF, "Authorization": f"Bearer {ingest}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert handle.app.state.otlp_pool.offloaded == 1
        r = httpx.post(  # malformed: a 400 from the worker's BatchError
            handle.url + "/v1/traces",
            content=b"\xff" * (100 * 1024),
            headers={"Content-Type": PROTOBUF, "Authorization": f"Bearer {ingest}"},
            timeout=60,
        )
        assert r.status_code == 400
        with httpx.Client(base_url=handle.url, headers={"Authorization": f"Bearer {read}"}) as c:
            assert c.get("/api/v1/models/big-app").json()["event_count"] == 120
            traces = c.get("/api/v1/traces", params={"model": "big-app", "limit": 500})
            assert len(traces.json()["traces"]) == 120
    finally:
        handle.stop()
