"""The FastAPI application: routers wired to one store and one key store."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from watchkeeper._version import __version__
from watchkeeper.alerting.actions import ActionsConfig
from watchkeeper.api.actions import actions_router
from watchkeeper.api.alerts import alerts_router
from watchkeeper.api.drift import drift_router
from watchkeeper.api.errors import install_error_handlers
from watchkeeper.api.evaluations import evaluations_router
from watchkeeper.api.feedback import feedback_router
from watchkeeper.api.health import health_router
from watchkeeper.api.ingest import ingest_router
from watchkeeper.api.models import models_router
from watchkeeper.api.monitors import monitors_router
from watchkeeper.api.otlp import otlp_router
from watchkeeper.api.prometheus import metrics_router
from watchkeeper.api.segments import segments_router
from watchkeeper.api.serving import serving_router
from watchkeeper.api.traces import traces_router
from watchkeeper.drift.settings import DriftSettings
from watchkeeper.monitors.registry import MonitorRegistry
from watchkeeper.store.base import Store
from watchkeeper.store.keys import KeyStore


def build_api(
    store: Store,
    keys: KeyStore,
    drift: DriftSettings | None = None,
    monitors: MonitorRegistry | None = None,
    actions: Callable[[], ActionsConfig] | None = None,
) -> FastAPI:
    """The JSON API; the server adds the dashboard and lifecycle around it."""
    app = FastAPI(
        title="Watchkeeper",
        version=__version__,
        description="Monitoring for ML models and LLM applications in production.",
    )
    install_error_handlers(app)
    app.include_router(health_router(store))
    app.include_router(ingest_router(store, keys))
    app.include_router(otlp_router(store, keys))
    app.include_router(traces_router(store, keys))
    app.include_router(models_router(store, keys))
    app.include_router(evaluations_router(store, keys))
    app.include_router(segments_router(store, keys))
    app.include_router(drift_router(store, keys, drift or DriftSettings()))
    app.include_router(alerts_router(store, keys))
    registry = monitors if monitors is not None else MonitorRegistry(store)
    app.include_router(monitors_router(store, keys, registry, drift))
    app.include_router(serving_router(store, keys))
    app.include_router(feedback_router(store, keys))
    app.include_router(actions_router(store, keys, actions or ActionsConfig))
    app.include_router(metrics_router(store, keys, app.state, drift))
    return app
