"""Monitor definitions: every condition loads, every error names its line and field."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from watchkeeper.aggregate.sizes import WINDOWS
from watchkeeper.cli.main import main
from watchkeeper.monitors.definitions import (
    DynamicCondition,
    MetricRef,
    Monitor,
    MultiLevelCondition,
    StaticCondition,
    format_duration,
    parse_duration,
    parse_metric,
)
from watchkeeper.monitors.files import (
    MonitorConfigError,
    Problem,
    default_monitors,
    dump_monitors,
    load_monitors,
    loads_monitors,
)


def _yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _problems(text: str) -> list[Problem]:
    with pytest.raises(MonitorConfigError) as info:
        loads_monitors(_yaml(text), "m.yaml")
    return info.value.problems


def _one(text: str) -> Problem:
    (problem,) = _problems(text)
    return problem


VALID = """
monitors:
  - name: fraud.errors
    model: fraud-scorer
    metric: error_rate
    window: 5m
    condition: {type: static, op: above, threshold: 0.05}
  - name: fraud.latency
    model: fraud-scorer
    metric: latency_p95
    version: "2.3.0"
    segment: region:*
    window: 15m
    condition:
      type: multi_level
      op: above
      warning: 200
      critical: 500
    fire_after: 2
    of_last: 3
    resolve_after: 2
    min_samples: 30
    no_data: alert
    renotify: 4h
    labels: {team: risk, tier: 1}
    description: slow
  - name: fraud.accuracy
    model: fraud-scorer
    metric: accuracy
    segment: region:eu
    window: 1h
    enabled: false
    condition:
      type: dynamic
      seasonality: none
      lookback: 7d
      direction: below
      sensitivity: 2.5
      min_band: 0.01
"""


def test_every_condition_type_loads() -> None:
    errors, latency, accuracy = loads_monitors(_yaml(VALID))
    assert errors.condition == StaticCondition(
        type="static", op="above", threshold=0.05, severity="critical"
    )
    assert (errors.fire_after, errors.of_last, errors.no_data, errors.enabled) == (
        1,
        1,
        "keep",
        True,
    )
    assert isinstance(latency.condition, MultiLevelCondition)
    assert (latency.condition.warning, latency.condition.critical) == (200, 500)
    assert (latency.fire_after, latency.of_last, latency.resolve_after) == (2, 3, 2)
    assert latency.renotify == timedelta(hours=4)
    assert latency.labels == {"team": "risk", "tier": "1"}
    assert latency.version == "2.3.0"
    assert latency.segment_name == "region" and latency.each_segment_value
    assert latency.segment_value is None
    assert latency.window_seconds == 900
    cond = accuracy.condition
    assert isinstance(cond, DynamicCondition)
    assert (cond.seasonality, cond.direction, cond.sensitivity) == ("none", "below", 2.5)
    assert cond.lookback == timedelta(days=7)
    assert (cond.min_history, cond.severity) == (8, "warning")
    assert accuracy.segment_value == "eu" and not accuracy.each_segment_value
    assert not accuracy.enabled


def test_dynamic_defaults() -> None:
    (m,) = loads_monitors(
        "monitors:\n- {name: a, model: m, metric: count, window: 5m, condition: {type: dynamic}}"
    )
    assert m.condition == DynamicCondition(
        type="dynamic",
        sensitivity=3.0,
        seasonality="hour_of_week",
        min_history=8,
        lookback=timedelta(days=28),
        direction="both",
        min_band=0.0,
        severity="warning",
    )


def test_of_last_defaults_to_fire_after() -> None:
    (m,) = loads_monitors(
        "monitors:\n- {name: a, model: m, metric: count, window: 5m, fire_after: 3,"
        " condition: {type: static, op: below, threshold: 1}}"
    )
    assert (m.fire_after, m.of_last) == (3, 3)


def test_other_sections_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "watchkeeper.yaml"
    path.write_text(
        _yaml("""
        store:
          memory_limit: 1GB
        drift:
          alpha: 0.05
          features:
            amount: {method: ks}
        monitors:
          - name: a
            model: m
            metric: drift:amount
            window: 1h
            condition: {type: static, op: above, threshold: 0.1}
        """)
    )
    (m,) = load_monitors(path)
    assert m.metric_ref == MetricRef("drift", "drift", "amount")


@pytest.mark.parametrize("text", ["", "store: {memory_limit: 1GB}\n", "monitors:\n"])
def test_no_monitors(text: str) -> None:
    assert loads_monitors(text) == []


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("latency_p95", MetricRef("model", "latency_p95")),
        ("cost_usd", MetricRef("model", "cost_usd")),
        ("drift_score", MetricRef("drift", "drift_score")),
        ("drift:amount", MetricRef("drift", "drift", "amount")),
        ("missing_rate:amount", MetricRef("quality", "missing_rate", "amount")),
        ("out_of_range_rate:x:y", MetricRef("quality", "out_of_range_rate", "x:y")),
        ("duplicate_rate", MetricRef("dataset", "duplicate_rate")),
        ("rejected_batches", MetricRef("dataset", "rejected_batches")),
    ],
)
def test_metric_names(name: str, ref: MetricRef) -> None:
    assert parse_metric(name) == ref


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("latency_p59", "did you mean latency_p99, latency_p95"),
        ("eror_rate", "did you mean error_rate"),
        ("misisng_rate:amount", "did you mean missing_rate:amount"),
        ("missing_rate", "is per feature: write missing_rate:<feature>"),
        ("drift:", "needs a feature"),
        ("accuracy:amount", "takes no feature"),
        ("zzz", "per feature drift:<feature>"),
    ],
)
def test_unknown_metric_suggests(name: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_metric(name)


def test_unknown_metric_points_at_its_line() -> None:
    problem = _one("""
        monitors:
          - name: a
            model: m
            metric: latncy_p95
            window: 5m
            condition: {type: static, op: above, threshold: 1}
        """)
    assert problem.line == 4
    assert problem.path == "monitors[0].metric"
    assert "did you mean latency_p95" in problem.reason
    assert "missing_rate:<feature>" in problem.reason  # lists the families


@pytest.mark.parametrize(
    ("snippet", "line", "path", "reason"),
    [
        ("    threshold: abc\n", 9, "monitors[0].condition.threshold", "valid number"),
        ("    threshold: .nan\n", 9, "monitors[0].condition.threshold", "finite number"),
        ("    threshold: 1\n    thresold: 2\n", 10, "monitors[0].condition.thresold", "unknown"),
        ("    threshold: 1\n    severity: high\n", 10, "monitors[0].condition.severity", "warning"),
        ("", 6, "monitors[0].condition.threshold", "'threshold' is missing"),
    ],
)
def test_condition_errors(snippet: str, line: int, path: str, reason: str) -> None:
    text = _yaml("""
        monitors:
          - name: a
            model: m
            metric: count
            window: 5m
            condition:
              type: static
              op: above
        """) + textwrap.indent(snippet, "  ")
    problem = _one(text)
    assert (problem.line, problem.path) == (line, path)
    assert reason in problem.reason


def test_unknown_field_suggests_the_close_one() -> None:
    problem = _one("""
        monitors:
          - name: a
            model: m
            metric: count
            window: 5m
            fire_afterr: 2
            condition: {type: static, op: above, threshold: 1}
        """)
    assert (problem.line, problem.path) == (6, "monitors[0].fire_afterr")
    assert "did you mean 'fire_after'?" in problem.reason


def test_unknown_condition_type_points_at_type() -> None:
    problem = _one("""
        monitors:
          - name: a
            model: m
            metric: count
            window: 5m
            condition:
              op: above
              type: statc
        """)
    assert (problem.line, problem.path) == (8, "monitors[0].condition.type")
    assert "unknown condition type 'statc'" in problem.reason


def test_missing_field_points_at_the_monitor() -> None:
    problem = _one("""
        monitors:
          - name: a
            model: m
            metric: count
            condition: {type: static, op: above, threshold: 1}
        """)
    assert (problem.line, problem.path) == (2, "monitors[0].window")
    assert problem.reason == "required field 'window' is missing"


def test_multi_level_order() -> None:
    base = """
        monitors:
          - name: a
            model: m
            metric: accuracy
            window: 5m
            condition:
              type: multi_level
              op: {op}
              warning: 0.9
              critical: {critical}
        """
    above = _one(base.replace("{op}", "above").replace("{critical}", "0.8"))
    assert (above.line, above.path) == (10, "monitors[0].condition.critical")
    assert "must not be below warning (0.9)" in above.reason
    below = _one(base.replace("{op}", "below").replace("{critical}", "0.95"))
    assert "must not be above warning (0.9)" in below.reason
    for op, critical in [("above", "0.95"), ("below", "0.8"), ("above", "0.9")]:
        assert loads_monitors(_yaml(base.replace("{op}", op).replace("{critical}", critical)))


def test_dynamic_that_never_arms() -> None:
    problem = _one("""
        monitors:
          - name: a
            model: m
            metric: count
            window: 1h
            condition:
              type: dynamic
              lookback: 28d
        """)
    assert (problem.line, problem.path) == (6, "monitors[0].condition")
    assert "never arms" in problem.reason and "min_history (8)" in problem.reason
    # a 28-day lookback holds 4 earlier windows of each hour of the week
    (m,) = loads_monitors(
        "monitors:\n- {name: a, model: m, metric: count, window: 1h,"
        " condition: {type: dynamic, min_history: 4}}"
    )
    assert isinstance(m.condition, DynamicCondition)
    assert m.condition.history_capacity(m.window_seconds) == 4


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("{type: dynamic, seasonality: hour_of_day}", "needs a window of 1h or less"),
        ("{type: dynamic, lookback: 3d}", "shorter than one week"),
        ("{type: dynamic, sensitivity: 0}", "greater than 0"),
        ("{type: dynamic, min_history: 0}", "greater than or equal to 1"),
        ("{type: dynamic, lookback: 3x}", "invalid duration '3x'"),
    ],
)
def test_dynamic_errors(condition: str, reason: str) -> None:
    window = "1d" if "hour_of_day" in condition else "5m"
    problem = _one(f"""
        monitors:
          - name: a
            model: m
            metric: count
            window: {window}
            condition: {condition}
        """)
    assert problem.line == 6
    assert problem.path.startswith("monitors[0].condition")
    assert reason in problem.reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("name", "'a b'", "invalid monitor name"),
        ("window", "2m", "invalid window '2m': one of 1m, 5m, 15m, 1h, 1d"),
        ("window", "all", "invalid window"),
        ("segment", "region", "write name:value"),
        ("segment", "':eu'", "write name:value"),
        ("version", "1.10", 'quotes (version: "1.10")'),
        ("fire_after", "0", "greater than or equal to 1"),
        ("fire_after", "2.5", "valid integer"),
        ("min_samples", "-1", "greater than or equal to 0"),
        ("no_data", "panic", "'alert', 'ignore' or 'keep'"),
        ("renotify", "soon", "invalid duration"),
        ("renotify", "0m", "must be positive"),
        ("enabled", "maybe", "valid boolean"),
        ("labels", "[a]", "valid dictionary"),
    ],
)
def test_field_errors(field: str, value: str, reason: str) -> None:
    fields = {
        "name": "a",
        "model": "m",
        "metric": "count",
        "window": "5m",
        "condition": "{type: static, op: above, threshold: 1}",
    }
    fields[field] = value
    body = "".join(
        f"{'  - ' if i == 0 else '    '}{k}: {v}\n" for i, (k, v) in enumerate(fields.items())
    )
    line = 2 + list(fields).index(field)
    problem = _one("monitors:\n" + body)
    assert (problem.line, problem.path) == (line, f"monitors[0].{field}")
    assert reason in problem.reason


def test_dataset_metrics_take_no_scope() -> None:
    problems = _problems("""
        monitors:
          - name: a
            model: m
            metric: duplicate_rate
            version: "1"
            segment: region:eu
            window: 1h
            condition: {type: static, op: above, threshold: 0.01}
        """)
    assert [(p.line, p.path) for p in problems] == [
        (5, "monitors[0].version"),
        (6, "monitors[0].segment"),
    ]
    assert "counted per model" in problems[0].reason


def test_of_last_below_fire_after() -> None:
    problem = _one("""
        monitors:
          - name: a
            model: m
            metric: count
            window: 5m
            fire_after: 3
            of_last: 2
            condition: {type: static, op: above, threshold: 1}
        """)
    assert (problem.line, problem.path) == (7, "monitors[0].of_last")
    assert problem.reason == "of_last (2) must be at least fire_after (3)"


def test_duplicate_names_point_at_the_second() -> None:
    problem = _one("""
        monitors:
          - name: a
            model: m
            metric: count
            window: 5m
            condition: {type: static, op: above, threshold: 1}
          - name: a
            model: m
            metric: error_rate
            window: 5m
            condition: {type: static, op: above, threshold: 1}
        """)
    assert (problem.line, problem.path) == (7, "monitors[1].name")
    assert problem.reason == "duplicate monitor name 'a' (first at line 2)"


def test_duplicate_keys_are_reported_and_merge_keys_are_not() -> None:
    problem = _one("""
        monitors:
          - name: a
            model: m
            metric: count
            window: 5m
            window: 1h
            condition: {type: static, op: above, threshold: 1}
        """)
    assert (problem.line, problem.path) == (6, "monitors[0].window")
    assert problem.reason == "duplicate key 'window' (first at line 5)"
    shared = """
        shared: &shared
          model: m
          window: 5m
          condition: {type: static, op: above, threshold: 1}
        monitors:
          - <<: *shared
            name: a
            metric: count
          - <<: *shared
            name: b
            metric: count
            window: 7m
        """
    problem = _one(shared)  # the monitor's own key wins and is the one reported
    assert (problem.line, problem.path) == (12, "monitors[1].window")
    (a,) = loads_monitors(_yaml(shared).replace("window: 7m", "window: 1h"))[:1]
    assert a.window == "5m"


def test_yaml_syntax_error_has_its_line() -> None:
    problem = _one("""
        monitors:
          - name: a
            model: [m
        """)
    assert problem.line == 4 and problem.path == ""
    assert problem.reason.startswith("YAML syntax error")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    problem = _one(text)
    assert problem.line == 1 and "monitors:" in problem.reason


def test_monitors_must_be_a_list() -> None:
    problem = _one("store: {}\nmonitors: {name: a}\n")
    assert (problem.line, problem.path) == (2, "monitors")


def test_every_problem_at_once_sorted_by_line() -> None:
    with pytest.raises(MonitorConfigError) as info:
        loads_monitors(
            _yaml("""
            monitors:
              - name: a
                model: m
                metric: count
                window: 2m
                condition: {type: static, op: above, threshold: x}
              - name: a
                model: m
                metric: latency_p59
                window: 5m
                condition: {type: dynamic, sensitivity: -1}
            """),
            "f.yaml",
        )
    err = info.value
    assert [p.line for p in err.problems] == [5, 6, 7, 9, 11]
    assert (
        err.lines()[0]
        == "f.yaml:5: monitors[0].window: invalid window '2m': one of 1m, 5m, 15m, 1h, 1d"
    )
    assert err.lines()[1].startswith(
        "f.yaml:6: monitors[0].condition.threshold: Input should be a valid number"
    )
    assert str(err).startswith("5 problems in the monitor definitions\nf.yaml:5: ")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(MonitorConfigError) as info:
        load_monitors(tmp_path / "nope.yaml")
    (problem,) = info.value.problems
    assert problem.line is None and "No such file" in problem.reason
    assert info.value.lines()[0].startswith(f"{tmp_path / 'nope.yaml'}: cannot read")


@pytest.mark.parametrize(
    ("text", "delta", "back"),
    [
        ("30s", timedelta(seconds=30), "30s"),
        ("5m", timedelta(minutes=5), "5m"),
        ("90m", timedelta(minutes=90), "90m"),
        ("120m", timedelta(hours=2), "2h"),
        ("1h", timedelta(hours=1), "1h"),
        ("7d", timedelta(days=7), "7d"),
        (" 28d ", timedelta(days=28), "28d"),
    ],
)
def test_durations(text: str, delta: timedelta, back: str) -> None:
    assert parse_duration(text) == delta
    assert format_duration(delta) == back


@pytest.mark.parametrize("text", ["", "5", "m", "1.5h", "-1h", "1w", "1h30m", "0s", 5, None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_monitor_windows_are_the_aggregate_windows() -> None:
    for window, seconds in WINDOWS.items():
        text = (
            f"monitors:\n- {{name: a, model: m, metric: count, window: {window},"
            " condition: {type: static, op: above, threshold: 1}}"
        )
        if seconds is None:
            with pytest.raises(MonitorConfigError):
                loads_monitors(text)
        else:
            assert loads_monitors(text)[0].window_seconds == seconds


@pytest.mark.parametrize("task", [None, "classification", "regression", "llm"])
def test_default_monitors_round_trip(task: str | None) -> None:
    features = ["amount", "country", "a b", "a/b", "e", "f", "g"]
    monitors = default_monitors("fraud scorer", task, features)
    names = [m.name for m in monitors]
    assert len(set(names)) == len(names)
    assert all(m.model == "fraud scorer" for m in monitors)
    metrics = {m.metric for m in monitors}
    assert {"latency_p95", "error_rate", "drift_score"} <= metrics
    assert len([m for m in metrics if m.startswith("missing_change:")]) == 5
    expected = {"classification": "accuracy", "regression": "mae", "llm": "ttft_p95"}
    if task is not None:
        assert expected[task] in metrics
    text = dump_monitors(monitors)
    assert "of_last" in text  # 2 of 3 for errors; defaults are left out otherwise
    assert loads_monitors(text) == monitors
    errors = next(m for m in monitors if m.metric == "error_rate")
    assert (errors.fire_after, errors.of_last) == (2, 3)


def test_default_monitors_for_a_bare_llm() -> None:
    metrics = [m.metric for m in default_monitors("chat", "llm", [])]
    assert metrics == [
        "latency_p95",
        "error_rate",
        "ttft_p95",
        "hallucination_rate",
        "pii_rate",
        "refusal_rate",
        "cost_usd",
        "cost_p95",
    ]


def test_default_monitors_compare_with_the_same_hour_and_wait_for_a_second_window() -> None:
    """The defaults tuned by bench/bench_detection.py: latency and drift against the same
    hour of the last days, 2 of 3 windows where one window alone is noise, a drift monitor
    per named feature (the first five), and every dynamic baseline can arm."""
    features = ["amount", "country", "c", "d", "e", "f"]
    monitors = {m.name: m for m in default_monitors("m", "classification", features)}
    latency = monitors["m.latency_p95"]
    assert isinstance(latency.condition, DynamicCondition)
    assert latency.condition.seasonality == "hour_of_day"
    assert (latency.fire_after, latency.of_last, latency.window) == (2, 3, "5m")
    drift = [m for m in monitors.values() if m.metric.startswith("drift:")]
    assert [m.metric for m in drift] == [f"drift:{f}" for f in features[:5]]
    for m in [*drift, monitors["m.drift_score"]]:
        assert isinstance(m.condition, DynamicCondition)
        assert m.condition.seasonality == "hour_of_day" and m.condition.direction == "above"
        assert m.condition.min_band > 0  # a flat history (always 0) does not alert on noise
    assert (drift[0].fire_after, drift[0].of_last) == (2, 3)
    for m in monitors.values():
        if isinstance(m.condition, DynamicCondition):
            assert m.condition.history_capacity(m.window_seconds) >= m.condition.min_history


def test_dump_round_trips_every_field() -> None:
    monitors = loads_monitors(_yaml(VALID))
    doc = yaml.safe_load(dump_monitors(monitors))
    assert doc["monitors"][1]["renotify"] == "4h"
    assert doc["monitors"][2]["condition"]["lookback"] == "7d"
    assert loads_monitors(dump_monitors(monitors)) == monitors


def test_monitor_is_immutable() -> None:
    (m,) = loads_monitors(_yaml(VALID))[:1]
    with pytest.raises(ValueError, match="frozen"):
        m.window = "1h"  # type: ignore[misc]
    assert isinstance(m, Monitor)


# --------------------------------------------------------------------------- the command


def test_cli_check_ok(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("store: {memory_limit: 1GB}\n" + _yaml(VALID))
    result = CliRunner().invoke(main, ["monitors", "check", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "model", "metric", "window", "condition"]
    assert lines[2].split()[:5] == ["fraud.errors", "fraud-scorer", "error_rate", "5m", "above"]
    assert "fraud-scorer@2.3.0" in lines[3] and "[region:*]" in lines[3]
    assert "2 of 3" in lines[3] and "(disabled)" in lines[4]
    assert lines[-1] == "3 monitors OK"


def test_cli_check_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        _yaml("""
        monitors:
          - name: a
            model: m
            metric: latncy_p95
            window: 2m
            condition: {type: static, op: above, threshold: 1}
        """)
    )
    result = CliRunner().invoke(main, ["monitors", "check", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert err[0].startswith(f"{path}:4: monitors[0].metric: unknown metric 'latncy_p95'")
    assert (
        err[1] == f"{path}:5: monitors[0].window: invalid window '2m': one of 1m, 5m, 15m, 1h, 1d"
    )
    assert err[2] == f"{path}: 2 problems in the monitor definitions"
    assert "Traceback" not in result.output


def test_cli_check_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["monitors", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_cli_defaults_round_trip(tmp_path: Path) -> None:
    args = ["monitors", "defaults", "--model", "fraud-scorer", "--task", "classification"]
    result = CliRunner().invoke(main, [*args, "--feature", "amount", "--feature", "country"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "m.yaml"
    path.write_text(result.stdout)
    names = [m.name for m in load_monitors(path)]
    assert names == [
        "fraud-scorer.latency_p95",
        "fraud-scorer.error_rate",
        "fraud-scorer.accuracy",
        "fraud-scorer.drift_score",
        "fraud-scorer.drift.amount",
        "fraud-scorer.drift.country",
        "fraud-scorer.missing.amount",
        "fraud-scorer.missing.country",
    ]
    check = CliRunner().invoke(main, ["monitors", "check", str(path)])
    assert check.exit_code == 0 and check.stdout.endswith("8 monitors OK\n")


def test_cli_as_a_process(tmp_path: Path) -> None:
    """As CI runs it: a separate process, exit code 2 and the problem on stderr."""
    path = tmp_path / "m.yaml"
    path.write_text("monitors:\n  - name: a\n    model: m\n")
    out = subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli.main", "monitors", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert f"{path}:2: monitors[0].metric: required field 'metric' is missing" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_check_also_checks_actions_and_notifications(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        _yaml("""
        monitors:
          - {name: a, model: m, metric: error_rate, window: 5m,
             condition: {type: static, op: above, threshold: 0.1}}
        actions:
          - name: retrain
            type: comand
        notifications:
          channels:
            - {name: ops, type: webhook}
        """)
    )
    result = CliRunner().invoke(main, ["monitors", "check", str(path)])
    assert result.exit_code == 2
    err = result.stderr.splitlines()
    assert err[0].startswith(f"{path}:6: actions[0].type: unknown action type 'comand'")
    assert any(line.startswith(f"{path}: notifications.channels.0") for line in err)
    assert err[-1] == f"{path}: 1 problem in the actions; invalid notifications"

    path.write_text(
        _yaml("""
        monitors:
          - {name: a, model: m, metric: error_rate, window: 5m,
             condition: {type: static, op: above, threshold: 0.1}}
        actions:
          - {name: page-ci, type: webhook, url: "http://ci/hook", when: {monitors: [b]}}
        notifications:
          channels: [{name: ops, type: webhook, url: "http://hooks/x"}]
          routes: [{channels: [ops]}]
        """)
    )
    result = CliRunner().invoke(main, ["monitors", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "1 monitor, 1 action, 1 channel OK"
    assert "action 'page-ci' waits for monitor(s) b" in result.stderr
