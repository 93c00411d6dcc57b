"""A directory of request bodies that could not be delivered, replayed oldest-first.

Each file is one batch exactly as it would be sent (gzip'd JSON), named
``<time_ns>-<pid>-<seq>-<records>.<kind>.gz`` so that sorting by name is oldest-first and the
record count is known without reading it. Files are written atomically (a ``.tmp`` file then
``os.replace``). Several processes may share a directory (pre-fork servers): a file is
claimed by renaming it to ``...gz.claim-<pid>`` before it is replayed, so only one process
sends it; claims left by dead processes are released on start.

The total size is bounded by ``max_bytes``: the oldest files are dropped to make room.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SUFFIX = ".gz"
_CLAIM = ".claim-"


def default_spool_dir(model: str) -> Path:
    """``$WATCHKEEPER_SPOOL_DIR/<model>``, else ``$XDG_CACHE_HOME`` (or ``~/.cache``)
    ``/watchkeeper/spool/<model>``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model) or "_"
    base = os.environ.get("WATCHKEEPER_SPOOL_DIR")
    if base:
        return Path(base) / safe
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "watchkeeper" / "spool" / safe


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled batch: its file, kind (``predictions``/``actuals``) and record count."""

    path: Path
    kind: str
    records: int


def _parse(path: Path) -> SpoolEntry | None:
    name = path.name
    if not name.endswith(_SUFFIX) or name.startswith("."):
        return None
    stem, _, kind = name[: -len(_SUFFIX)].rpartition(".")
    try:
        records = int(stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None
    return SpoolEntry(path, kind, records)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class Spool:
    """The spool directory of one model. Not thread-safe: only the worker thread uses it."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        self.maybe_nonempty = True

    def release_stale_claims(self) -> None:
        """Give back files claimed by processes that no longer exist."""
        try:
            paths = list(self.directory.iterdir())
        except OSError:
            return
        for path in paths:
            base, sep, pid = path.name.rpartition(_CLAIM)
            if sep and pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.replace(path, path.with_name(base))

    def entries(self) -> list[SpoolEntry]:
        """Unclaimed batches, oldest first."""
        try:
            paths = sorted(self.directory.iterdir())
        except OSError:
            return []
        entries = [e for e in map(_parse, paths) if e is not None]
        self.maybe_nonempty = bool(entries)
        return entries

    def write(self, kind: str, body: bytes, records: int) -> list[SpoolEntry]:
        """Store a batch atomically; return the old entries dropped to stay under max_bytes.

        Raises OSError when the directory cannot be written and ValueError when the batch
        alone is larger than max_bytes.
        """
        if len(body) > self.max_bytes:
            raise ValueError("batch larger than max_spool_bytes")
        self.directory.mkdir(parents=True, exist_ok=True)
        dropped: list[SpoolEntry] = []
        entries = self.entries()
        sizes = {e.path: _size(e.path) for e in entries}
        total = sum(sizes.values())
        for entry in entries:
            if total + len(body) <= self.max_bytes:
                break
            try:
                entry.path.unlink()
            except FileNotFoundError:
                continue  # another process claimed it
            total -= sizes[entry.path]
            dropped.append(entry)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq)}-{records}.{kind}{_SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(body)
        os.replace(tmp, self.directory / name)
        self.maybe_nonempty = True
        return dropped

    def claim(self) -> Iterator[tuple[SpoolEntry, bytes]]:
        """Yield (entry, body) oldest-first; each is claimed for this process while yielded.

        The caller must call :meth:`done` or :meth:`unclaim` for each entry it receives.
        """
        for entry in self.entries():
            claimed = entry.path.with_name(f"{entry.path.name}{_CLAIM}{os.getpid()}")
            try:
                os.replace(entry.path, claimed)
                body = claimed.read_bytes()
            except OSError:
                continue
            yield SpoolEntry(claimed, entry.kind, entry.records), body

    def done(self, entry: SpoolEntry) -> None:
        """Delete a replayed (or permanently rejected) batch."""
        with contextlib.suppress(OSError):
            entry.path.unlink()

    def unclaim(self, entry: SpoolEntry) -> None:
        """Put a batch back for a later replay."""
        base = entry.path.name.rpartition(_CLAIM)[0]
        with contextlib.suppress(OSError):
            os.replace(entry.path, entry.path.with_name(base))
        self.maybe_nonempty = True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
