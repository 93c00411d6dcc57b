"""``watchkeeper drift``: compare two files offline and gate a pipeline on the result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

# Exit codes: 0 nothing drifted, 1 something drifted, 2 bad input (click's usage errors too).
EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(EXIT_BAD_INPUT)


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1e-3 and x != 0 else f"{x:.4f}"
    return str(x)


def _table(result: dict[str, Any]) -> str:
    head = ("feature", "kind", "method", "statistic", "threshold", "p (adj.)", "verdict")
    rows = [
        (
            f["feature"],
            f["kind"],
            f["method"],
            _fmt(f["statistic"]),
            _fmt(f["threshold"]),
            _fmt(f["p_adjusted"]),
            f["severity"].upper() if f["severity"] in ("drift", "warn") else f["severity"],
        )
        for f in result["features"]
    ]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head]]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _methods(specs: tuple[str, ...]) -> tuple[str | None, dict[str, str]]:
    """``--method psi`` (every feature it fits) and ``--method amount=ks`` (one feature)."""
    global_method: str | None = None
    per_feature: dict[str, str] = {}
    for spec in specs:
        name, sep, method = spec.partition("=")
        if sep:
            per_feature[name.strip()] = method.strip()
        else:
            global_method = spec.strip()
    return global_method, per_feature


@click.command("drift")
@click.option(
    "--reference",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Reference data (what the model was trained on): .parquet or .csv.",
)
@click.option(
    "--current",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Current data to check: .parquet or .csv.",
)
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON here."
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML report here.",
)
@click.option("--columns", help="Comma-separated columns to compare (default: all in common).")
@click.option(
    "--method",
    "method_specs",
    multiple=True,
    help="A method for every feature it fits (psi, jensen_shannon, wasserstein, ks, hellinger,"
    " chi_square), or FEATURE=METHOD for one; repeatable.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML file whose drift: section sets methods and thresholds per feature.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="False discovery rate across features (default 0.05, or the config's).",
)
@click.option(
    "--multivariate/--no-multivariate",
    default=True,
    show_default=True,
    help="Also run the domain classifier and PCA reconstruction on samples.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the one-line summary.")
def drift_command(
    reference: Path,
    current: Path,
    json_out: Path | None,
    html_out: Path | None,
    columns: str | None,
    method_specs: tuple[str, ...],
    config_file: Path | None,
    alpha: float | None,
    multivariate: bool,
    quiet: bool,
) -> None:
    """Compare CURRENT against REFERENCE, feature by feature, without a server.

    Exit code 0 when nothing drifted, 1 when something did, 2 on bad input, so it can gate
    a pipeline:  watchkeeper drift --reference train.parquet --current today.parquet
    """
    from dataclasses import replace

    from watchkeeper.drift.offline import OfflineInputError, compare_files
    from watchkeeper.drift.settings import DriftSettings
    from watchkeeper.drift.stats import DriftConfigError, check_method

    settings = DriftSettings()
    if config_file is not None:
        from watchkeeper.server import ConfigError, load_drift_settings

        try:
            settings = load_drift_settings(config_file)
        except ConfigError as exc:
            _fail(str(exc))
    if alpha is not None:
        settings = replace(settings, alpha=alpha)
    global_method, per_feature = _methods(method_specs)
    for m in [global_method, *per_feature.values()]:
        try:
            check_method(m)
        except DriftConfigError as exc:
            _fail(str(exc))
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    try:
        result = compare_files(
            reference,
            current,
            columns=wanted,
            settings=settings,
            method=global_method,
            per_feature=per_feature,
            multivariate=multivariate,
        )
    except (OfflineInputError, DriftConfigError) as exc:
        _fail(str(exc))
    s = result["summary"]
    if not quiet:
        for note in result.get("notes", []):
            click.echo(f"note: {note}", err=True)
        click.echo(_table(result))
        for mv in result["multivariate"]:
            if mv.get("statistic") is not None:
                verdict = "DRIFT" if mv.get("drifted") else "ok"
                click.echo(f"{mv['method']}: {_fmt(mv['statistic'])} ({verdict})")
        click.echo()
    moved = [m for m in result["multivariate"] if m.get("drifted")]
    together = (
        "; taken together: "
        + ", ".join(f"{m['method']} {_fmt(m['statistic'])}" for m in moved)
        + " drifted"
        if moved
        else ""
    )
    click.echo(
        f"{s['drifted']} of {s['features']} feature(s) drifted, {s['warned']} warned{together}"
        f" ({result['current']['rows']:,} rows against {result['reference']['rows']:,})"
    )
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2, default=str))
    if html_out is not None:
        from watchkeeper.drift.report import render_html

        html_out.write_text(render_html(result), encoding="utf-8")
    if s["drifted"] or moved:
        raise SystemExit(EXIT_DRIFT)
