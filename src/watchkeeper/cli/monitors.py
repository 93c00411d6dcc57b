"""``watchkeeper monitors``: validate monitor definitions offline (CI) and propose defaults."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from watchkeeper.alerting.actions import ActionsConfig, load_actions
from watchkeeper.alerting.notify import NotifyConfig, NotifyConfigError
from watchkeeper.evaluators.settings import EvaluatorConfigError, EvaluatorSettings
from watchkeeper.llm.prices import PriceConfigError, PriceTable
from watchkeeper.monitors.definitions import DynamicCondition, Monitor, MultiLevelCondition
from watchkeeper.monitors.files import (
    DefaultSet,
    MonitorConfigError,
    default_monitors,
    dump_monitors,
    load_monitor_settings,
)

EXIT_BAD_INPUT = 2  # as `watchkeeper drift`: click's usage errors exit 2 too


def _condition(m: Monitor) -> str:
    c = m.condition
    if isinstance(c, MultiLevelCondition):
        text = f"{c.op} {c.warning:g} warning / {c.critical:g} critical"
    elif isinstance(c, DynamicCondition):
        text = f"dynamic {c.direction} ×{c.sensitivity:g} ({c.seasonality}) {c.severity}"
    else:
        text = f"{c.op} {c.threshold:g} {c.severity}"
    if m.of_last > 1:
        text += f", {m.fire_after} of {m.of_last}"
    return text


def _table(monitors: list[Monitor]) -> str:
    head = ("name", "model", "metric", "window", "condition")
    rows = [
        (
            m.name + ("" if m.enabled else " (disabled)"),
            m.model + (f"@{m.version}" if m.version else ""),
            m.metric + (f" [{m.segment}]" if m.segment else ""),
            m.window,
            _condition(m),
        )
        for m in monitors
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head]]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _default_set(s: DefaultSet) -> str:
    task = f"task {s.task}" if s.task else "the model's task"
    if s.features is None:
        features = "its features"
    else:
        features = f"features {', '.join(s.features)}" if s.features else "no features"
    return f"default set of {s.model}: {task}, {features}"


@click.group("monitors")
def monitors() -> None:
    """Monitors as code: validate a file, propose a default set."""


@monitors.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check(file: Path) -> None:
    """Validate the monitors, actions, notifications, prices and evaluators of FILE without a
    server.

    Exits 0 and prints a table when every monitor is valid (then a line per `- defaults:
    MODEL` item, which the server resolves, and a count of actions and channels); exits 2
    and prints every problem as FILE:LINE: field: reason otherwise. The store: and drift:
    sections are left to `watchkeeper serve`.
    """
    problems: list[str] = []
    summaries: list[str] = []
    found: list[Monitor] = []
    sets: list[DefaultSet] = []
    actions = ActionsConfig()
    notify = NotifyConfig()
    try:
        found, sets = load_monitor_settings(file)
    except MonitorConfigError as exc:
        problems += exc.lines()
        summaries.append(exc.message)
    else:  # the file reads: its other sections can be checked too
        try:
            actions = load_actions(file)
        except MonitorConfigError as exc:
            problems += exc.lines()
            summaries.append(exc.message)
        try:
            doc = yaml.safe_load(file.read_text(encoding="utf-8"))
            notify = NotifyConfig.parse(doc.get("notifications") if isinstance(doc, dict) else None)
        except NotifyConfigError as exc:
            problems += [f"{file}: {line}" for line in str(exc).splitlines() if line.strip()]
            summaries.append("invalid notifications")
        try:
            doc = yaml.safe_load(file.read_text(encoding="utf-8"))
            PriceTable.load(doc.get("prices") if isinstance(doc, dict) else None)
        except PriceConfigError as exc:
            problems += [f"{file}: {line}" for line in exc.lines()]
            summaries.append("invalid prices")
        try:
            doc = yaml.safe_load(file.read_text(encoding="utf-8"))
            EvaluatorSettings.from_config(doc.get("evaluators") if isinstance(doc, dict) else None)
        except EvaluatorConfigError as exc:
            problems += [f"{file}: {line}" for line in exc.lines()]
            summaries.append("invalid evaluators")
    if summaries:
        for line in problems:
            click.echo(line, err=True)
        click.echo(f"{file}: {'; '.join(summaries)}", err=True)
        raise SystemExit(EXIT_BAD_INPUT) from None
    if found:
        click.echo(_table(found))
    for s in sets:
        click.echo(f"+ {_default_set(s)}")
    names = {m.name for m in found}
    for a in actions.actions:
        wanted = a.when.monitors or []
        unknown = [m for m in wanted if m not in names]
        if unknown and not sets:  # default sets and API monitors are named at run time
            click.echo(
                f"note: action {a.name!r} waits for monitor(s) {', '.join(unknown)} not in"
                " this file (monitors created through the API count too)",
                err=True,
            )
    summary = f"{len(found)} monitor{'' if len(found) == 1 else 's'}"
    if sets:
        summary += f", {len(sets)} default set{'' if len(sets) == 1 else 's'}"
    if actions.actions:
        summary += f", {len(actions.actions)} action{'' if len(actions.actions) == 1 else 's'}"
    if notify.channels:
        summary += f", {len(notify.channels)} channel{'' if len(notify.channels) == 1 else 's'}"
    click.echo(f"{summary} OK")


@monitors.command("defaults")
@click.option("--model", required=True, help="The model to propose monitors for.")
@click.option(
    "--task",
    type=click.Choice(["classification", "regression", "llm"]),
    default=None,
    help="Adds accuracy (classification), mae (regression) or ttft_p95 (llm).",
)
@click.option(
    "--feature",
    "features",
    multiple=True,
    help="A feature to watch for missing values (the first five); repeatable.",
)
def defaults(model: str, task: str | None, features: tuple[str, ...]) -> None:
    """Print a proposed set of monitors for a model as YAML, ready to paste.

    The output is a whole `monitors:` section (valid on its own); to add it to a settings
    file that already has one, paste its items under that list. Example:

        watchkeeper monitors defaults --model fraud-scorer --task classification --feature amount
    """
    click.echo(dump_monitors(default_monitors(model, task, list(features))), nl=False)
