"""Moving an MLflow registered model's alias, against a real local MLflow store (SQLite)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.integrations.mlflow_registry import (
    RegistryError,
    _client,
    alias_version,
    move_alias,
)

if importlib.util.find_spec("mlflow") is None:  # a developer's machine without the extra
    if os.environ.get("CI"):  # CI installs it (the test extra): never skip there
        raise ImportError("mlflow is missing: pip install -c requirements/test.txt -e '.[test]'")
    pytest.skip("the 'mlflow' extra is not installed", allow_module_level=True)


def _mlflow(uri: str) -> Any:
    """MLflow's own client, made the way the integration makes it (telemetry off)."""
    return _client(uri)


@pytest.fixture
def registry(tmp_path: Path) -> str:
    """A local MLflow store with registered model 'fraud' holding versions 1 and 2."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = _mlflow(uri)
    client.create_registered_model("fraud")
    for n in (1, 2):
        artifacts = tmp_path / f"model-{n}"
        artifacts.mkdir()
        version = client.create_model_version("fraud", source=str(artifacts))
        assert str(version.version) == str(n)
    return uri


def test_move_alias_and_read_it_back(registry: str) -> None:
    """move_alias returns where the alias pointed before (None the first time) and MLflow's
    own client then resolves the alias to the new version."""
    assert alias_version(registry, "fraud", "champion") is None
    assert move_alias(registry, "fraud", "champion", "2") is None
    assert alias_version(registry, "fraud", "champion") == "2"
    assert move_alias(registry, "fraud", "champion", "1") == "2"  # the rollback
    assert alias_version(registry, "fraud", "champion") == "1"
    client = _mlflow(registry)
    assert str(client.get_model_version_by_alias("fraud", "champion").version) == "1"
    assert move_alias(registry, "fraud", "challenger", "2") is None
    assert alias_version(registry, "fraud", "champion") == "1"


def test_refusals_are_clear(registry: str) -> None:
    """A version that is not a version number, a version or model MLflow does not have: each
    is an error naming what was wrong, and the alias stays where it was."""
    move_alias(registry, "fraud", "champion", "2")
    with pytest.raises(ValueError, match="not an MLflow model version number"):
        move_alias(registry, "fraud", "champion", "1.0")
    with pytest.raises(RegistryError, match="alias 'champion' of 'fraud' at version 7"):
        move_alias(registry, "fraud", "champion", "7")
    with pytest.raises(RegistryError, match="registered model 'nope'"):
        move_alias(registry, "nope", "champion", "1")
    with pytest.raises(RegistryError, match="registered model 'nope'"):
        alias_version(registry, "nope", "champion")
    assert alias_version(registry, "fraud", "champion") == "2"


def test_missing_extra_names_it(tmp_path: Path) -> None:
    """Without MLflow importable the error says which extra to install (checked in a child
    interpreter where importing mlflow fails)."""
    script = textwrap.dedent("""
        import sys
        sys.modules["mlflow"] = None  # importing it now raises ImportError
        from watchkeeper.integrations.mlflow_registry import MlflowMissingError, move_alias
        try:
            move_alias("sqlite:///x.db", "m", "champion", "1")
        except MlflowMissingError as exc:
            print(exc)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "watchkeeper[mlflow]" in out.stdout
    assert not (tmp_path / "x.db").exists()


def test_importing_the_module_does_not_import_mlflow() -> None:
    """MLflow is imported on the first call only: importing Watchkeeper's module is free."""
    script = "import sys, watchkeeper.integrations.mlflow_registry; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
