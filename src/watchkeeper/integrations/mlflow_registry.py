"""Point an MLflow registered model's alias at the version Watchkeeper says should serve.

A rollback action moves Watchkeeper's serving version (see ``docs/serving.md``) and, when an
MLflow tracking URI is configured, the registered model's alias too, so serving stacks that
load ``models:/<name>@<alias>`` follow it.

**Watchkeeper versions are taken to be MLflow model version numbers**: the ``version`` a model
logs with (``Monitor(version="3")``) is version 3 of the registered model. A version that is
not a whole number is refused before MLflow is called.

Needs the ``mlflow`` extra (``pip install 'watchkeeper[mlflow]'``: the MLflow client, plus
SQLAlchemy and Alembic for database tracking URIs such as ``sqlite:///mlflow.db``); MLflow is
imported on the first call, never at import time. MLflow's usage telemetry is switched off
(``MLFLOW_DISABLE_TELEMETRY``) unless the environment already says otherwise.
"""

from __future__ import annotations

import os
from typing import Any

EXTRA = "mlflow"


class MlflowMissingError(ImportError):
    """MLflow is not installed: the ``mlflow`` extra is needed."""


class RegistryError(RuntimeError):
    """MLflow refused or failed a registry call (unknown model, alias or version, ...)."""


def _client(tracking_uri: str) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage telemetry, ever
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise MlflowMissingError(
            "moving an MLflow model alias needs MLflow: install the 'mlflow' extra"
            f" (pip install 'watchkeeper[{EXTRA}]')"
        ) from exc
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _aliases(client: Any, registered_model: str, tracking_uri: str) -> dict[str, str]:
    try:
        model = client.get_registered_model(registered_model)
    except Exception as exc:
        raise RegistryError(
            f"MLflow at {tracking_uri}: cannot read registered model {registered_model!r}: {exc}"
        ) from exc
    return {str(alias): str(version) for alias, version in (model.aliases or {}).items()}


def alias_version(tracking_uri: str, registered_model: str, alias: str) -> str | None:
    """The version ``alias`` of ``registered_model`` points at; None when the alias is not
    set. Raises RegistryError when MLflow cannot answer (e.g. no such registered model)."""
    client = _client(tracking_uri)
    return _aliases(client, registered_model, tracking_uri).get(alias)


def move_alias(tracking_uri: str, registered_model: str, alias: str, version: str) -> str | None:
    """Point ``alias`` of ``registered_model`` at model version ``version``; returns the
    version it pointed at before (None: the alias was not set).

    Raises ValueError for a version that is not an MLflow version number, RegistryError when
    MLflow refuses (no such registered model or version), MlflowMissingError without the
    extra."""
    number = str(version).strip()
    if not number.isdigit():
        raise ValueError(
            f"version {version!r} is not an MLflow model version number; Watchkeeper versions"
            " are taken to be the registered model's version numbers (e.g. '3')"
        )
    client = _client(tracking_uri)
    before = _aliases(client, registered_model, tracking_uri).get(alias)
    try:
        client.set_registered_model_alias(registered_model, alias, number)
    except Exception as exc:
        raise RegistryError(
            f"MLflow at {tracking_uri}: cannot point alias {alias!r} of {registered_model!r}"
            f" at version {number}: {exc}"
        ) from exc
    return before
