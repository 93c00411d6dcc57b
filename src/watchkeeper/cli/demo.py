"""``watchkeeper demo``: a server with simulated models, ready to look at in a browser."""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from pathlib import Path
from types import FrameType

import click

from watchkeeper.cli.checks import (
    check_data_dir_free,
    check_port_free,
    create_key,
    prepare_data_dir,
)


def _wait_for_shutdown() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


DEMO_SETTINGS = """\
# The settings file `watchkeeper demo` writes and serves with: a starting point for your own.
drift:
  features:  # time-of-day inputs differ between a short window and the day-long reference
    hour_of_day: {enabled: false}
    day_of_week: {enabled: false}
monitors:
  - defaults: delivery-eta  # the proposed set: latency, errors, mae, drift, missing values
  - name: fraud-amount-drift
    model: fraud-scorer
    metric: drift:amount
    window: 5m
    segment: "region:*"
    condition: {type: static, op: above, threshold: 0.25}
    description: the amount's distribution moved away from the training data
  - name: fraud-error-rate
    model: fraud-scorer
    metric: error_rate
    window: 5m
    condition: {type: static, op: above, threshold: 0.05}
    fire_after: 2
    of_last: 3
    min_samples: 30
  - name: eta-latency-p95
    model: delivery-eta
    metric: latency_p95
    window: 5m
    condition: {type: multi_level, op: above, warning: 40, critical: 80}
  - name: support-bot-hallucinations
    model: support-bot
    metric: hallucination_rate
    window: 5m
    condition: {type: static, op: above, threshold: 0.2}
    fire_after: 2
    of_last: 3
    min_samples: 30
    description: support-bot answers with claims its retrieved documents do not make
evaluators:
  embeddings: off  # no model to load: the evaluators catch up with the backfill in a minute
actions:
  - name: fraud-rules-fallback  # send fraud-scorer's traffic to the rules while amounts drift
    type: fallback
    when: {monitors: [fraud-amount-drift], kinds: [firing, resolved]}
    target: rules-v1
    approval: true              # someone approves it first: watchkeeper actions approve ID
"""


def write_settings(data_dir: Path) -> Path:
    """Write the demo's settings file into its data directory (replacing an older one)."""
    path = data_dir / "demo-settings.yaml"
    path.write_text(DEMO_SETTINGS, encoding="utf-8")
    return path


def upload_reference(url: str, api_key: str, model: str, csv_text: str) -> None:
    """PUT a model's reference data (CSV) to the server."""
    req = urllib.request.Request(
        f"{url.rstrip('/')}/api/v1/models/{model}/reference",
        data=csv_text.encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "text/csv"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()


@click.command()
@click.option(
    "--data-dir",
    default=Path("./watchkeeper-data"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the demo's event store and keys (created if missing).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port."
)
@click.option(
    "--rate",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0.1, 5000.0),
    help="Simulated events per second, across all models.",
)
@click.option(
    "--backfill-minutes",
    default=60,
    show_default=True,
    type=click.IntRange(0, 7 * 24 * 60),
    help="Minutes of history to send before going live.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed of the traffic.")
def demo(
    data_dir: Path, host: str, port: int, rate: float, backfill_minutes: int, seed: int
) -> None:
    """Run a server fed by simulated models (fraud-scorer, delivery-eta) and an LLM chat app
    (support-bot, OpenTelemetry traces) until Ctrl-C.

    Sends BACKFILL-MINUTES of history first, then streams live traffic, and prints the
    dashboard address and a read key to sign in with.
    """
    from watchkeeper.llm_sim import SUPPORT_BOT, ChatSimulator
    from watchkeeper.server import ServerConfig, ServerHandle
    from watchkeeper.simulator import ETA_MODEL, FRAUD_MODEL, Simulator, reference_csv

    data_dir = prepare_data_dir(data_dir)
    check_port_free(host, port)
    check_data_dir_free(data_dir)
    admin_key = create_key(data_dir, "admin", "demo-simulator")
    read_key = create_key(data_dir, "read", "demo-browser")

    click.echo(f"Starting Watchkeeper (data in {data_dir}) ...", err=True)
    settings = write_settings(data_dir)
    handle = ServerHandle(
        ServerConfig(data_dir=data_dir, host=host, port=port, config_file=settings)
    )
    try:
        handle.start()
    except (RuntimeError, TimeoutError) as exc:
        message = f"{exc}. See the messages above."
        raise click.ClickException(message) from exc
    # The incident: the last 30 minutes of history (and all live traffic) drift in apac.
    drift_from = time.time() - 30 * 60 if backfill_minutes > 30 else None
    simulator = Simulator(handle.url, admin_key, rate=rate, seed=seed, drift_from=drift_from)
    # support-bot's incident: hallucinations rise (6 % -> 30 %) for the last 20 minutes of
    # history, or 10 minutes into live traffic with a shorter backfill.
    now = time.time()
    degrade_from = now - 20 * 60 if backfill_minutes > 20 else now + 10 * 60
    llm_rate = max(0.2, rate / 10)
    # at most 30 minutes of chat history: the evaluators behind ingestion catch up sooner
    llm_minutes = min(backfill_minutes, 30)
    chat = ChatSimulator(handle.url, admin_key, rate=llm_rate, seed=seed, degrade_from=degrade_from)
    try:
        click.echo("Uploading the models' reference (training) data ...", err=True)
        for model in (FRAUD_MODEL, ETA_MODEL):
            upload_reference(handle.url, admin_key, model, reference_csv(model, seed=seed + 1))
        if backfill_minutes:
            label = f"Sending {backfill_minutes} min of history"
            with click.progressbar(length=backfill_minutes, label=label, file=None) as bar:

                def advance(done: int, total: int) -> None:
                    bar.update(done - bar.pos)

                simulator.backfill(backfill_minutes, progress=advance)
            click.echo("Waiting for the server to store the history ...", err=True)
            simulator.flush(timeout=120.0)
            label = f"Sending {llm_minutes} min of {SUPPORT_BOT} traces"
            with click.progressbar(length=llm_minutes, label=label, file=None) as bar:

                def advance_chat(done: int, total: int) -> None:
                    bar.update(done - bar.pos)

                chat.backfill(llm_minutes, progress=advance_chat)
        simulator.start()
        chat.start()
        url = handle.url.rstrip("/") + "/"
        click.echo()
        click.secho("Watchkeeper demo is running.", bold=True)
        click.echo(f"  Dashboard:          {click.style(url, fg='cyan', bold=True)}")
        click.echo(f"  Sign in with:       {click.style(read_key, bold=True)}   (read key)")
        click.echo(
            f"  Admin key:          {admin_key}   (API; in the dashboard also ack/silence/approve)"
        )
        click.echo(f"  Grafana/Prometheus: {url}metrics   (bearer: the read key)")
        click.echo(f"  Live traffic:       ~{rate:g} events/s from fraud-scorer and delivery-eta")
        click.echo(
            f"  LLM app:            {SUPPORT_BOT}, ~{llm_rate:g} chats/s as OpenTelemetry traces"
            f"   ({url}traces)"
        )
        click.echo(f"  Alerts:             {url}api/v1/alerts?status=open")
        click.echo(f"  Monitors:           {url}api/v1/monitors")
        click.echo(f"  Settings file:      {settings}   (its monitors and actions)")
        click.echo(
            "  Actions:            WATCHKEEPER_API_KEY=<admin key> watchkeeper actions list"
            "   (approve with: watchkeeper actions approve ID)"
        )
        click.echo("Press Ctrl-C to stop.")
        _wait_for_shutdown()
    finally:
        click.echo("\nStopping ...", err=True)
        simulator.stop()
        chat.stop()
        handle.stop()
    click.echo("Stopped.", err=True)
