"""The server's monitors, from three sources, in one thread-safe registry.

``file``
    The settings file's ``monitors:`` list (and :attr:`ServerConfig.monitors`), replaced as a
    whole on SIGHUP (:meth:`MonitorRegistry.set_file`). Read-only through the API.
``api``
    Monitors created through the API, persisted in the store (``monitor_defs``) and read back
    when the server starts. The default set switched on with
    ``POST /api/v1/models/{model}/monitors/defaults`` is stored here too, one monitor each.
``defaults``
    The default sets of the settings file (``- defaults: MODEL``), resolved against what the
    store knows of the model — its task and feature names — when the model is first seen,
    and again every ``recheck`` seconds (a model's features can grow). Until the model has
    events its set is *pending* and holds no monitor. Read-only through the API.

A name is unique across sources: the API refuses one that is taken (:class:`MonitorConflict`
names where). Should two sources still meet — a SIGHUP adds to the file a name the API
already holds, or a default set resolves to a name taken since — the file wins over the API
and the API over the default sets; what loses stays stored and is logged, not evaluated.

Every change bumps :attr:`MonitorRegistry.generation`, so the alert engine re-reads its
monitors only when something changed. The registry imports no store: it needs only the few
methods of :class:`MonitorStore`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from watchkeeper.monitors.definitions import Monitor
from watchkeeper.monitors.files import (
    DefaultSet,
    MonitorConfigError,
    default_monitors,
    monitor_to_dict,
    validate_monitor,
)

log = logging.getLogger("watchkeeper.monitors")

Source = Literal["file", "api", "defaults"]
SOURCES: tuple[Source, ...] = ("file", "api", "defaults")
RECHECK = 60.0  # seconds between re-reads of a resolved default set's model


class ModelFacts(Protocol):
    """What the registry reads of a model (the store's ``ModelInfo`` has it)."""

    @property
    def task(self) -> str | None: ...

    @property
    def features(self) -> Mapping[str, str]: ...


class MonitorStore(Protocol):
    """The part of the store the registry uses."""

    def monitor_defs(self) -> list[dict[str, Any]]: ...

    def put_monitor_def(
        self, name: str, definition: Mapping[str, Any], by: str | None
    ) -> dict[str, Any]: ...

    def delete_monitor_def(self, name: str) -> bool: ...

    def has_model(self, name: str) -> bool: ...

    def get_model(self, name: str) -> ModelFacts: ...


@dataclass(frozen=True)
class MonitorEntry:
    """One monitor and where it is defined (``created_at`` and after: API monitors only)."""

    monitor: Monitor
    source: Source
    default_set: str | None = None  # the model of the settings file's default set
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def name(self) -> str:
        return self.monitor.name


class MonitorError(Exception):
    """Base of the registry's refusals; ``message`` says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownMonitor(MonitorError):
    """No monitor has this name."""


class MonitorConflict(MonitorError):
    """The name is taken by another monitor (``source`` says where that one is defined)."""

    def __init__(self, name: str, source: Source, default_set: str | None = None) -> None:
        self.name, self.source = name, source
        super().__init__(f"a monitor named {name!r} already exists: {_where(source, default_set)}")


class ReadOnlyMonitor(MonitorError):
    """The monitor comes from the settings file: change it there."""

    def __init__(self, name: str, source: Source, default_set: str | None = None) -> None:
        self.name, self.source = name, source
        super().__init__(
            f"monitor {name!r} is {_where(source, default_set)}: edit the settings file and"
            " send the server SIGHUP (kill -HUP <pid>) to reload it"
        )


def _where(source: Source, default_set: str | None) -> str:
    if source == "file":
        return "defined in the settings file's monitors: section"
    if source == "defaults":
        return f"part of the default set '- defaults: {default_set}' of the settings file"
    return "created through the API (PUT /api/v1/monitors/{name} replaces it)"


@dataclass(frozen=True)
class Proposal:
    """A model's default set as :func:`default_monitors` makes it, with what it was made of."""

    model: str
    task: str | None
    features: list[str]
    monitors: list[Monitor]


@dataclass
class _Resolved:
    key: tuple[str | None, tuple[str, ...]]
    monitors: list[Monitor]
    checked: float


class MonitorRegistry:
    """The monitors the server evaluates and the API serves (see the module's docstring)."""

    def __init__(
        self,
        store: MonitorStore,
        file_monitors: Sequence[Monitor] = (),
        default_sets: Sequence[DefaultSet] = (),
        *,
        recheck: float = RECHECK,
    ) -> None:
        self.store = store
        self.recheck = recheck
        self._lock = threading.RLock()
        self._generation = 0
        self._file: dict[str, Monitor] = {}
        self._sets: list[DefaultSet] = []
        self._resolved: dict[str, _Resolved] = {}  # by the set's model
        self._api: dict[str, MonitorEntry] = {}
        self._loaded = False
        self._view: dict[str, MonitorEntry] | None = None
        self._resolved_from: dict[str, DefaultSet] = {}  # the line each resolution came from
        self._set_file(file_monitors, default_sets)

    # ------------------------------------------------------------------ reading
    @property
    def generation(self) -> int:
        """Bumped on every change of the monitors (reload, API write, a set resolved)."""
        return self._generation

    def load(self) -> None:
        """Read the API's monitors from the store (once the store has started); a stored
        definition this version finds invalid is logged and skipped."""
        with self._lock:
            api: dict[str, MonitorEntry] = {}
            rows = sorted(self.store.monitor_defs(), key=lambda r: (r["created_at"], r["name"]))
            for row in rows:
                try:
                    monitor = validate_monitor(row["definition"], f"stored monitor {row['name']}")
                except MonitorConfigError as exc:
                    log.error("stored monitor %s is invalid and skipped: %s", row["name"], exc)
                    continue
                api[monitor.name] = _api_entry(monitor, row)
            self._api = api
            self._loaded = True
            self._changed()

    def refresh(self) -> None:
        """Resolve the settings file's default sets whose model has appeared (or whose
        ``recheck`` time has come); cheap when nothing is due."""
        with self._lock:
            self._ensure_loaded()
            now = time.monotonic()
            changed = False
            for s in self._sets:
                done = self._resolved.get(s.model)
                if done is not None and now - done.checked < self.recheck:
                    continue
                facts = self._facts(s.model)
                if facts is None:
                    continue  # not seen yet: pending
                task = s.task if s.task is not None else facts[0]
                features = list(s.features) if s.features is not None else facts[1]
                key = (task, tuple(features))
                if done is not None and done.key == key:
                    done.checked = now
                    continue
                monitors = default_monitors(s.model, task, features)
                self._resolved[s.model] = _Resolved(key, monitors, now)
                log.info("default set of %s: %d monitor(s)", s.model, len(monitors))
                changed = True
            if changed:
                self._changed()

    def entries(self) -> list[MonitorEntry]:
        """Every monitor (enabled or not) with its source: the file's in its order, then the
        API's in order of creation, then the default sets'."""
        with self._lock:
            self.refresh()
            return list(self._entries().values())

    def get(self, name: str) -> MonitorEntry | None:
        """The monitor of that name, or None."""
        with self._lock:
            self.refresh()
            return self._entries().get(name)

    def enabled(self) -> list[Monitor]:
        """The monitors to evaluate now."""
        return self.snapshot()[1]

    def snapshot(self) -> tuple[int, list[Monitor]]:
        """The generation and the enabled monitors, read together."""
        with self._lock:
            self.refresh()
            monitors = [e.monitor for e in self._entries().values() if e.monitor.enabled]
            return self._generation, monitors

    def pending(self) -> list[DefaultSet]:
        """The settings file's default sets whose model has no events yet."""
        with self._lock:
            self.refresh()
            return [s for s in self._sets if s.model not in self._resolved]

    def propose(
        self, model: str, task: str | None = None, features: Sequence[str] | None = None
    ) -> Proposal | None:
        """A model's default set; ``task`` and ``features`` not given come from the store.
        None when the model has no events and ``task`` is not given either."""
        facts = self._facts(model)
        if facts is None and task is None and features is None:
            return None
        known_task, known_features = facts or (None, [])
        task = task if task is not None else known_task
        names = list(features) if features is not None else known_features
        return Proposal(model, task, names, default_monitors(model, task, names))

    # ------------------------------------------------------------------ writing
    def set_file(self, monitors: Sequence[Monitor], default_sets: Sequence[DefaultSet]) -> None:
        """The settings file's monitors and default sets (at start and on SIGHUP)."""
        with self._lock:
            self._set_file(monitors, default_sets)
            self._changed()

    def create(self, monitor: Monitor, by: str | None = None) -> MonitorEntry:
        """Store a new API monitor; :class:`MonitorConflict` when its name is taken."""
        with self._lock:
            self.refresh()
            taken = self._entries().get(monitor.name)
            if taken is not None:
                raise MonitorConflict(monitor.name, taken.source, taken.default_set)
            entry = self._put(monitor, by)
            self._changed()
            return entry

    def replace(self, name: str, monitor: Monitor, by: str | None = None) -> MonitorEntry:
        """Replace an API monitor's definition (its alert states stay)."""
        if monitor.name != name:
            raise ValueError(f"the monitor is named {monitor.name!r}, not {name!r}")
        with self._lock:
            self._writable(name)
            entry = self._put(monitor, by)
            self._changed()
            return entry

    def delete(self, name: str) -> None:
        """Delete an API monitor; its series' alert states and its alerts stay stored."""
        with self._lock:
            self._writable(name)
            self.store.delete_monitor_def(name)
            del self._api[name]
            self._changed()

    def create_defaults(
        self, proposal: Proposal, by: str | None = None
    ) -> tuple[list[MonitorEntry], list[MonitorEntry]]:
        """Store a proposed default set as API monitors: (created, already there). A name
        already taken, whatever its source, is left as it is."""
        with self._lock:
            self.refresh()
            created, existing = [], []
            for monitor in proposal.monitors:
                taken = self._entries().get(monitor.name)
                if taken is not None:
                    existing.append(taken)
                    continue
                created.append(self._put(monitor, by))
                self._view = None
            if created:
                self._changed()
            return created, existing

    # ------------------------------------------------------------------ inside
    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def _changed(self) -> None:
        self._generation += 1
        self._view = None

    def _set_file(self, monitors: Sequence[Monitor], default_sets: Sequence[DefaultSet]) -> None:
        file: dict[str, Monitor] = {}
        for m in monitors:
            if m.name in file:
                log.warning("monitor %s is defined twice; the first definition is used", m.name)
                continue
            file[m.name] = m
        self._file = file
        sets = {s.model: s for s in reversed(default_sets)}  # the first of a model wins
        self._sets = [s for s in default_sets if sets.get(s.model) is s]
        kept = {s.model: s for s in self._sets}
        self._resolved = {  # a set whose line is unchanged keeps its resolution
            model: r
            for model, r in self._resolved.items()
            if model in kept and self._resolved_from.get(model) == kept[model]
        }
        self._resolved_from = dict(kept)

    def _entries(self) -> dict[str, MonitorEntry]:
        if self._view is not None:
            return self._view
        view: dict[str, MonitorEntry] = {
            m.name: MonitorEntry(m, "file") for m in self._file.values()
        }
        for name, entry in self._api.items():
            if name in view:
                log.warning("monitor %s of the API is shadowed by the settings file's", name)
                continue
            view[name] = entry
        for s in self._sets:
            done = self._resolved.get(s.model)
            for m in done.monitors if done else ():
                if m.name not in view:  # a monitor of the file (or API) replaces the default
                    view[m.name] = MonitorEntry(m, "defaults", default_set=s.model)
        self._view = view
        return view

    def _facts(self, model: str) -> tuple[str | None, list[str]] | None:
        try:
            if not self.store.has_model(model):
                return None
            info = self.store.get_model(model)
        except Exception:  # the model vanished or the store is closing: try again later
            log.debug("cannot read model %s", model, exc_info=True)
            return None
        return info.task, sorted(info.features)

    def _writable(self, name: str) -> None:
        self.refresh()
        entry = self._entries().get(name)
        if entry is None:
            raise UnknownMonitor(f"no monitor named {name!r}")
        if entry.source != "api":
            raise ReadOnlyMonitor(name, entry.source, entry.default_set)

    def _put(self, monitor: Monitor, by: str | None) -> MonitorEntry:
        row = self.store.put_monitor_def(monitor.name, monitor_to_dict(monitor), by)
        entry = _api_entry(monitor, row)
        self._api[monitor.name] = entry
        return entry


def _api_entry(monitor: Monitor, row: Mapping[str, Any]) -> MonitorEntry:
    return MonitorEntry(
        monitor,
        "api",
        created_at=row.get("created_at"),
        updated_at=row.get("updated_at"),
        updated_by=row.get("updated_by"),
    )
