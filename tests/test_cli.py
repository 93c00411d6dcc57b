"""The ``watchkeeper`` command line: help, version, keys, and clear errors for user mistakes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import watchkeeper
from conftest import free_port
from watchkeeper._version import __version__
from watchkeeper.cli.main import main
from watchkeeper.store.keys import KeyStore


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(
    "args",
    [[], ["serve"], ["keys"], ["keys", "create"], ["demo"]],
    ids=["main", "serve", "keys", "keys-create", "demo"],
)
def test_every_command_has_help(runner: CliRunner, args: list[str]) -> None:
    """--help works on every command and describes its options without starting anything."""
    result = runner.invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if args and args[-1] in {"serve", "create", "demo"}:
        assert "--data-dir" in result.output


def test_version(runner: CliRunner) -> None:
    """--version prints the package version."""
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_keys_create_prints_only_a_working_key(runner: CliRunner, tmp_path: Path) -> None:
    """`keys create` prints just the key on stdout, and the key verifies with its scope."""
    result = runner.invoke(
        main, ["keys", "create", "--scope", "read", "--data-dir", str(tmp_path), "--name", "ci"]
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert result.stdout == key + "\n"
    info = KeyStore(tmp_path).verify(key)
    assert info is not None and info.scope == "read" and info.name == "ci"


def test_keys_create_makes_a_missing_data_dir(runner: CliRunner, tmp_path: Path) -> None:
    """A data directory that does not exist yet is created."""
    data_dir = tmp_path / "new" / "data"
    result = runner.invoke(
        main, ["keys", "create", "--scope", "admin", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    assert KeyStore(data_dir).verify(result.stdout.strip()) is not None


def test_bad_scope_fails_with_the_valid_choices(runner: CliRunner, tmp_path: Path) -> None:
    """An unknown scope exits non-zero, lists the valid scopes, and shows no traceback."""
    result = runner.invoke(main, ["keys", "create", "--scope", "root", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "ingest" in result.output and "admin" in result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_unusable_data_dir_says_what_to_do(runner: CliRunner, tmp_path: Path) -> None:
    """A data dir that cannot be created (its parent is a file) gives a clear error, exit 1."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = runner.invoke(
        main, ["keys", "create", "--scope", "read", "--data-dir", str(blocker / "d")]
    )
    assert result.exit_code == 1
    assert "Cannot use data directory" in result.output and "--data-dir" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_serve_on_a_busy_port_says_what_to_do(runner: CliRunner, tmp_path: Path) -> None:
    """`serve` on a port another program holds fails fast with a hint to use --port."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(main, ["serve", "--data-dir", str(tmp_path), "--port", str(port)])
    assert result.exit_code == 1
    assert "already in use" in result.output and "--port" in result.output
    assert "Traceback" not in result.output


def test_demo_on_a_busy_port_fails_before_creating_keys(runner: CliRunner, tmp_path: Path) -> None:
    """`demo` checks the port before it makes keys or starts anything."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(main, ["demo", "--data-dir", str(tmp_path), "--port", str(port)])
    assert result.exit_code == 1
    assert "already in use" in result.output
    assert KeyStore(tmp_path).list() == []


def test_serve_rejects_a_missing_config_file(runner: CliRunner, tmp_path: Path) -> None:
    """A --config path that does not exist is a usage error naming the option."""
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(main, ["serve", "--data-dir", str(tmp_path), "--config", str(missing)])
    assert result.exit_code == 2
    assert "--config" in result.output


def test_serve_reports_an_invalid_config_file(runner: CliRunner, tmp_path: Path) -> None:
    """A config file with unknown settings is reported as a message, not a traceback."""
    config = tmp_path / "wk.yaml"
    config.write_text("store:\n  colour: blue\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [
        "serve",
        "--data-dir",
        str(tmp_path / "d"),
        "--port",
        str(port),
        "--config",
        str(config),
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    assert "colour" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("store:\n  colour: blue\n", "colour"),
        (
            "monitors:\n  - name: p95\n    model: m\n    metric: latency_p95\n"
            "    window: 5m\n    condition: {type: static, op: above, threshold: fast}\n",
            "wk.yaml:6: monitors[0].condition.threshold",
        ),
        ("drift:\n  features:\n    amount: median\n", "median"),
    ],
)
def test_serve_names_what_is_wrong_in_each_section(
    runner: CliRunner, tmp_path: Path, text: str, expected: str
) -> None:
    """Every section of the settings file is checked before the server starts: a monitor's
    problem comes with its line, as `watchkeeper monitors check` prints it."""
    config = tmp_path / "wk.yaml"
    config.write_text(text)
    args = ["serve", "--data-dir", str(tmp_path / "d"), "--port", str(free_port())]
    result = runner.invoke(main, [*args, "--config", str(config)])
    assert result.exit_code == 1
    assert expected in result.output
    assert "Traceback" not in result.output


def test_serve_on_a_data_dir_in_use_says_so(runner: CliRunner, tmp_path: Path) -> None:
    """A second server on a data directory that a running server holds fails clearly."""
    first, second = free_port(), free_port()
    src = str(Path(watchkeeper.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    code = "from watchkeeper.cli.main import main; main()"
    args = ["serve", "--data-dir", str(tmp_path), "--port"]
    holder = subprocess.Popen(
        [sys.executable, "-c", code, *args, str(first)], env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # wait until the first server answers
            try:
                if httpx.get(f"http://127.0.0.1:{first}/login").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.1)
        result = runner.invoke(main, [*args, str(second)])
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert result.exit_code == 1
    assert "in use by another Watchkeeper process" in result.output


def test_the_demo_settings_file_is_valid(tmp_path: Path) -> None:
    """The settings file the demo serves with passes `monitors check` and the server's
    loaders: a default set, four monitors (one on support-bot's hallucination_rate), an
    action needing approval."""
    from watchkeeper.cli.demo import write_settings
    from watchkeeper.server import (
        load_action_settings,
        load_drift_settings,
        load_monitor_section,
    )

    path = write_settings(tmp_path)
    result = CliRunner().invoke(main, ["monitors", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "4 monitors, 1 default set, 1 action OK"
    section = load_monitor_section(path)
    assert "hallucination_rate" in {m.metric for m in section.monitors}
    assert [s.model for s in section.default_sets] == ["delivery-eta"]
    (action,) = load_action_settings(path).actions
    assert action.approval and action.type == "fallback"
    assert not load_drift_settings(path).enabled("fraud-scorer", "hour_of_day")
