"""Wiring: the store, the key store, the API and the dashboard in one ASGI app, served by uvicorn."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from fastapi import FastAPI

from watchkeeper.alerting.action_runner import ActionRunner
from watchkeeper.alerting.actions import ActionConfigError, ActionsConfig, load_actions
from watchkeeper.alerting.engine import AlertEngine
from watchkeeper.alerting.notify import Notifier, NotifyConfig, NotifyConfigError
from watchkeeper.api.app import build_api
from watchkeeper.api.prometheus import MetricsSettings
from watchkeeper.drift.settings import DriftSettings
from watchkeeper.drift.stats import DriftConfigError
from watchkeeper.evaluators.runner import EvaluatorRunner
from watchkeeper.evaluators.settings import EvaluatorConfigError, EvaluatorSettings
from watchkeeper.llm.prices import PriceConfigError, PriceTable
from watchkeeper.monitors.definitions import Monitor
from watchkeeper.monitors.files import (
    MonitorConfigError,
    MonitorSettings,
    load_monitor_settings,
)
from watchkeeper.monitors.registry import MonitorRegistry
from watchkeeper.otlp.prepare import ExportPool
from watchkeeper.store.base import StoreClosedError
from watchkeeper.store.duckdb_store import DuckDBStore
from watchkeeper.store.keys import KeyStore

log = logging.getLogger("watchkeeper.server")

SETTINGS_KEYS = {"memory_limit", "max_pending_rows", "checkpoint_threshold"}
SECTIONS = {
    "store",
    "drift",
    "monitors",
    "notifications",
    "actions",
    "metrics",
    "prices",
    "evaluators",
}


class ConfigError(ValueError):
    """The configuration file is unreadable or names unknown settings."""


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    config_file: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    drift: DriftSettings | None = None  # overrides the config file's drift: section
    evaluate_interval: float = 10.0  # seconds between alert-engine runs (0: never on its own)
    monitors: list[Monitor] | None = None  # added to the config file's monitors: section
    notify_interval: float = 1.0  # seconds between outbox deliveries (0: never on its own)
    action_interval: float = 1.0  # seconds between claims of queued action runs (0: never)
    metrics: MetricsSettings | None = None  # overrides the config file's metrics: section
    evaluators: EvaluatorSettings | None = None  # overrides the config file's evaluators:
    # processes that decode large OTLP exports (None: one per CPU but one, at most 4; 0: none)
    otlp_workers: int | None = None


def _load_doc(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    unknown_top = set(doc) - SECTIONS
    if unknown_top:
        raise ConfigError(
            f"{path}: unknown section(s) {sorted(unknown_top)}; known: {sorted(SECTIONS)}"
        )
    return doc


def load_settings(path: Path | None) -> dict[str, Any]:
    """Read the YAML config's ``store:`` section; unknown keys are an error naming them."""
    store = _load_doc(path).get("store") or {}
    if not isinstance(store, dict):
        raise ConfigError(f"{path}: 'store' must be a mapping")
    unknown = set(store) - SETTINGS_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown store setting(s) {sorted(unknown)}; known: {sorted(SETTINGS_KEYS)}"
        )
    return dict(store)


def load_monitor_definitions(path: Path | None) -> list[Monitor]:
    """The YAML config's ``monitors:`` section, validated (every problem with its line)."""
    return load_monitor_section(path).monitors


def load_monitor_section(path: Path | None) -> MonitorSettings:
    """The YAML config's ``monitors:`` section: its monitors and ``- defaults:`` sets."""
    if path is None:
        return MonitorSettings([], [])
    try:
        return load_monitor_settings(path)
    except MonitorConfigError as exc:
        raise ConfigError("\n".join(exc.lines())) from None


def load_notifications(path: Path | None) -> NotifyConfig:
    """The YAML config's ``notifications:`` section (channels and routes), validated."""
    doc = _load_doc(path).get("notifications")
    try:
        return NotifyConfig.parse(doc)
    except NotifyConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_action_settings(path: Path | None) -> ActionsConfig:
    """The YAML config's ``actions:`` section (automated responses), validated (every
    problem with its line)."""
    if path is None:
        return ActionsConfig()
    try:
        return load_actions(path)
    except ActionConfigError as exc:
        raise ConfigError("\n".join(exc.lines())) from None


def load_metrics_settings(path: Path | None) -> MetricsSettings:
    """The YAML config's ``metrics:`` section (GET /metrics, docs/prometheus.md)."""
    try:
        return MetricsSettings.from_config(_load_doc(path).get("metrics"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_drift_settings(path: Path | None) -> DriftSettings:
    """Read the YAML config's ``drift:`` section (methods and thresholds per feature)."""
    doc = _load_doc(path).get("drift")
    if doc is not None and not isinstance(doc, dict):
        raise ConfigError(f"{path}: 'drift' must be a mapping")
    try:
        return DriftSettings.from_config(doc)
    except (DriftConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_price_table(path: Path | None) -> PriceTable:
    """The shipped LLM prices with the YAML config's ``prices:`` rows over them (docs/llm.md)."""
    try:
        return PriceTable.load(_load_doc(path).get("prices"))
    except PriceConfigError as exc:
        raise ConfigError("\n".join(f"{path}: {line}" for line in exc.lines())) from None


def load_evaluator_settings(path: Path | None) -> EvaluatorSettings:
    """The YAML config's ``evaluators:`` section (docs/llm.md), validated (every problem
    with its key)."""
    try:
        return EvaluatorSettings.from_config(_load_doc(path).get("evaluators"))
    except EvaluatorConfigError as exc:
        raise ConfigError("\n".join(f"{path}: {line}" for line in exc.lines())) from None


def default_otlp_workers() -> int:
    """Worker processes for OTLP decoding: every CPU but one (the store's writer and the
    HTTP server keep it), at most 4; none on a single CPU."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(4, (cpus or 1) - 1))


def create_app(config: ServerConfig) -> FastAPI:
    """The whole server as one ASGI app; the store opens and closes with the app's lifespan."""
    settings = {**load_settings(config.config_file), **config.settings}
    drift = config.drift or load_drift_settings(config.config_file)
    section = load_monitor_section(config.config_file)
    store = DuckDBStore(config.data_dir, **settings)
    keys = KeyStore(config.data_dir)
    notify = load_notifications(config.config_file)
    registry = MonitorRegistry(  # the API's monitors are read from the store at start
        store, section.monitors + list(config.monitors or []), section.default_sets
    )
    engine = AlertEngine(
        store,
        registry,
        drift=drift,
        notify=notify,
        dashboard_url=f"http://{config.host}:{config.port}/",
    )
    notifier = Notifier(store, notify, config.notify_interval)
    actions = load_action_settings(config.config_file)
    engine.actions = actions
    prices = load_price_table(config.config_file)
    runner = ActionRunner(store, actions, config.action_interval)
    app = build_api(store, keys, drift, registry, lambda: runner.config)
    scheduler = Scheduler(engine, config.evaluate_interval)
    evaluator_settings = config.evaluators or load_evaluator_settings(config.config_file)
    evaluators = EvaluatorRunner(store, evaluator_settings)
    otlp_pool = ExportPool(
        default_otlp_workers() if config.otlp_workers is None else config.otlp_workers, prices
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.start()
        registry.load()
        scheduler.start()
        notifier.start()
        runner.start()
        evaluators.start()
        try:
            yield
        finally:
            evaluators.stop()
            otlp_pool.close()
            runner.stop()
            notifier.stop()
            scheduler.stop()
            store.close()

    app.router.lifespan_context = lifespan
    try:
        from watchkeeper.web.routes import web_router
    except ImportError:  # pragma: no cover - the dashboard is part of the package
        log.warning("dashboard not available")
    else:
        app.include_router(web_router(keys.verify))
    app.state.store = store
    app.state.keys = keys
    app.state.alert_engine = engine
    app.state.scheduler = scheduler
    app.state.notifier = notifier
    app.state.action_runner = runner
    app.state.prices = prices
    app.state.otlp_pool = otlp_pool
    app.state.evaluator_settings = evaluator_settings
    app.state.evaluator_runner = evaluators
    app.state.monitors = registry
    app.state.metrics_settings = config.metrics or load_metrics_settings(config.config_file)
    return app


def reload_config(app: FastAPI, config: ServerConfig) -> str:
    """Re-read the settings file's ``monitors:``, ``notifications:`` and ``actions:`` (on
    SIGHUP; runs already recorded keep going). An
    invalid file changes nothing; returns what happened, in words. Monitors created through
    the API stay as they are."""
    try:
        section = load_monitor_section(config.config_file)
        notify = load_notifications(config.config_file)
        actions = load_action_settings(config.config_file)
    except ConfigError as exc:
        log.error("reload refused, the running monitors stay: %s", exc)
        return f"reload refused: {exc}"
    monitors = section.monitors + list(config.monitors or [])
    engine: AlertEngine = app.state.alert_engine
    engine.notify = notify
    registry: MonitorRegistry = app.state.monitors
    registry.set_file(monitors, section.default_sets)  # the engine takes them on its next run
    app.state.notifier.config = notify
    engine.actions = actions
    app.state.action_runner.config = actions
    sets = len(section.default_sets)
    message = (
        f"reloaded {len(monitors)} monitor(s)"
        + (f", {sets} default set(s)" if sets else "")
        + f", {len(notify.channels)} channel(s) and {len(actions.actions)} action(s)"
    )
    log.warning(message)
    return message


class Scheduler:
    """Runs the alert engine every ``interval`` seconds on a thread of its own (the engine
    evaluates only windows that closed since its last run)."""

    def __init__(self, engine: AlertEngine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.last_run_seconds = 0.0
        self.last_run_at = time.time()  # wall clock of the last run's end (first: creation)

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="wk-alerts", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            t0 = time.perf_counter()
            try:
                self.engine.run(datetime.now(timezone.utc))
            except StoreClosedError:
                return
            except Exception:
                log.exception("the alert engine failed; trying again next run")
            self.runs += 1
            self.last_run_seconds = time.perf_counter() - t0
            self.last_run_at = time.time()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def _uvicorn(config: ServerConfig, app: FastAPI) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )


def serve(config: ServerConfig) -> None:
    """Run the server in the foreground until SIGINT or SIGTERM; SIGHUP re-reads the
    monitors and notifications of the settings file."""
    app = create_app(config)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: reload_config(app, config))
    _uvicorn(config, app).run()


class ServerHandle:
    """A server running in a background thread (demo, tests, notebooks)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.app = create_app(config)
        self._server = _uvicorn(config, self.app)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    def start(self, timeout: float = 30.0) -> ServerHandle:
        """Start serving; returns once the server accepts requests."""
        self._thread = threading.Thread(target=self._server.run, name="wk-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server could not start on {self.url}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not start within {timeout} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> ServerHandle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
