"""The ``watchkeeper`` command: run the server, manage API keys, run a demo."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from watchkeeper._version import __version__
from watchkeeper.cli.actions import actions
from watchkeeper.cli.checks import (
    check_data_dir_free,
    check_port_free,
    create_key,
    prepare_data_dir,
)
from watchkeeper.cli.demo import demo
from watchkeeper.cli.drift import drift_command
from watchkeeper.cli.monitors import monitors
from watchkeeper.cli.silence import silence

SCOPES = ("ingest", "read", "admin")
_DATA_DIR_HELP = "Directory holding the event store and API keys (created if missing)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="watchkeeper")
def main() -> None:
    """Watchkeeper: self-hosted monitoring for ML models and LLM applications.

    Start with `watchkeeper demo` to see it with simulated traffic, or
    `watchkeeper serve --data-dir DIR` to run it for real.
    """


@main.command()
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help=_DATA_DIR_HELP,
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Settings file (YAML).",
)
@click.option(
    "--otlp-workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Processes that decode large OTLP exports (default: CPUs - 1, at most 4; 0: none).",
)
def serve(
    data_dir: Path, host: str, port: int, config_file: Path | None, otlp_workers: int | None
) -> None:
    """Run the Watchkeeper server until Ctrl-C.

    Create a key to sign in to the dashboard with `watchkeeper keys create --scope read`.
    """
    from watchkeeper.server import ConfigError, ServerConfig
    from watchkeeper.server import serve as run_server

    data_dir = prepare_data_dir(data_dir)
    check_port_free(host, port)
    check_data_dir_free(data_dir)
    config = ServerConfig(
        data_dir=data_dir,
        host=host,
        port=port,
        config_file=config_file,
        otlp_workers=otlp_workers,
    )
    click.echo(f"Watchkeeper {__version__} on http://{host}:{port}/ (data in {data_dir})", err=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_server(config)
    except ConfigError as exc:
        raise click.ClickException(f"{exc}. Fix the file given with --config.") from exc
    click.echo("Watchkeeper stopped.", err=True)


@main.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option(
    "--scope",
    required=True,
    type=click.Choice(SCOPES),
    help="ingest: send events; read: dashboard and queries; admin: everything.",
)
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help=_DATA_DIR_HELP,
)
@click.option("--name", default=None, help="A label to recognise the key by later.")
def keys_create(scope: str, data_dir: Path, name: str | None) -> None:
    """Create an API key and print it (only the key, on stdout).

    The key is shown once; only its hash is stored. Example:

        KEY=$(watchkeeper keys create --scope ingest --data-dir ./data)
    """
    data_dir = prepare_data_dir(data_dir)
    click.echo(create_key(data_dir, scope, name))


main.add_command(demo)
main.add_command(drift_command)
main.add_command(silence)
main.add_command(monitors)
main.add_command(actions)


if __name__ == "__main__":
    main()
