"""The SDK's disk spool: atomic files, size bound, oldest-first claims across processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from watchkeeper.sdk.spool import Spool, default_spool_dir


def test_write_is_atomic_and_entries_oldest_first(tmp_path: Path) -> None:
    """Writes leave no temp files and entries come back oldest-first with their counts."""
    spool = Spool(tmp_path / "s", max_bytes=10_000)
    for i in range(3):
        spool.write("predictions", bytes([i]) * 10, records=i + 1)
    spool.write("actuals", b"a", records=4)
    entries = spool.entries()
    assert [(e.kind, e.records) for e in entries] == [
        ("predictions", 1), ("predictions", 2), ("predictions", 3), ("actuals", 4)
    ]  # fmt: skip
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith(".")]


def test_bound_drops_oldest_and_refuses_oversized(tmp_path: Path) -> None:
    """Past max_bytes the oldest files go; a batch bigger than the bound is refused."""
    spool = Spool(tmp_path, max_bytes=25)
    assert spool.write("predictions", b"x" * 10, 1) == []
    assert spool.write("predictions", b"y" * 10, 2) == []
    dropped = spool.write("predictions", b"z" * 10, 3)
    assert [e.records for e in dropped] == [1]
    assert [e.records for e in spool.entries()] == [2, 3]
    with pytest.raises(ValueError):
        spool.write("predictions", b"w" * 26, 4)


def test_claim_done_unclaim(tmp_path: Path) -> None:
    """A claimed file is hidden from other readers until done (deleted) or unclaimed."""
    spool = Spool(tmp_path, max_bytes=1000)
    spool.write("predictions", b"one", 1)
    spool.write("predictions", b"two", 1)
    claims = spool.claim()
    first, body = next(claims)
    assert body == b"one" and len(spool.entries()) == 1
    spool.unclaim(first)
    assert len(spool.entries()) == 2
    for entry, _ in spool.claim():
        spool.done(entry)
    assert list(tmp_path.iterdir()) == []


def test_stale_claims_of_dead_processes_are_released(tmp_path: Path) -> None:
    """A file claimed by a process that has exited becomes replayable again."""
    spool = Spool(tmp_path, max_bytes=1000)
    spool.write("predictions", b"data", 5)
    (entry,) = spool.entries()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    entry.path.rename(entry.path.with_name(f"{entry.path.name}.claim-{dead.pid}"))
    assert spool.entries() == []
    spool.release_stale_claims()
    assert [e.records for e in spool.entries()] == [5]


def test_default_spool_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """$WATCHKEEPER_SPOOL_DIR wins, else the XDG cache; the model name is made path-safe."""
    monkeypatch.setenv("WATCHKEEPER_SPOOL_DIR", str(tmp_path))
    assert default_spool_dir("a/b c") == tmp_path / "a_b_c"
    monkeypatch.delenv("WATCHKEEPER_SPOOL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_spool_dir("m") == tmp_path / "cache" / "watchkeeper" / "spool" / "m"
