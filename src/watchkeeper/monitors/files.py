"""Monitor files: reading the ``monitors:`` section of a settings file with errors that point
at the YAML line and field, and writing monitors back (``monitors defaults``).

Besides monitors, the list may hold default sets, one line each: ``- defaults: fraud-scorer``
(optionally with ``task:`` and ``features:``) switches on :func:`default_monitors` for that
model (:class:`DefaultSet`; the server resolves it, see
:mod:`watchkeeper.monitors.registry`).

The models themselves are in :mod:`watchkeeper.monitors.definitions`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from watchkeeper.monitors.definitions import (
    CONDITION_TYPES,
    CONDITIONS,
    Monitor,
    MonitorFile,
)

# --------------------------------------------------------------------------- default sets


class DefaultSet(BaseModel):
    """A ``- defaults: MODEL`` item of ``monitors:``: :func:`default_monitors` for one model.

    ``task`` and ``features`` left out come from what the server knows of the model (its
    task, its feature names) when it resolves the set; a model not seen yet gets its set when
    its first events arrive.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: str = Field(min_length=1, description="the model")
    task: Literal["classification", "regression", "llm"] | None = None
    features: list[str] | None = None

    @property
    def model(self) -> str:
        """The model whose default set this is."""
        return self.defaults


class MonitorSettings(NamedTuple):
    """A ``monitors:`` section: its monitors and its default sets."""

    monitors: list[Monitor]
    default_sets: list[DefaultSet]


def _is_default_set(item: Any) -> bool:
    return isinstance(item, dict) and "defaults" in item


# --------------------------------------------------------------------------- errors


class Problem(NamedTuple):
    """One thing wrong in a file: its 1-based line (None if unknown), field path, reason."""

    line: int | None
    path: str
    reason: str


class MonitorConfigError(ValueError):
    """Invalid monitor definitions; :attr:`problems` lists every one found."""

    def __init__(
        self, message: str, problems: Sequence[Problem] = (), source: str = "<string>"
    ) -> None:
        self.message = message
        self.problems = list(problems)
        self.source = source
        super().__init__(message)

    def lines(self) -> list[str]:
        """Each problem as ``FILE:LINE: path: reason``."""
        out = []
        for p in self.problems:
            where = self.source if p.line is None else f"{self.source}:{p.line}"
            out.append(f"{where}: {p.path}: {p.reason}" if p.path else f"{where}: {p.reason}")
        return out

    def __str__(self) -> str:
        return "\n".join([self.message, *self.lines()]) if self.problems else self.message


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _strip_tags(loc: Sequence[int | str]) -> tuple[int | str, ...]:
    """Drop the discriminator tag pydantic puts after ``condition`` in a location."""
    out: list[int | str] = []
    for part in loc:
        if out and out[-1] == "condition" and part in CONDITION_TYPES:
            continue
        out.append(part)
    return tuple(out)


def _line(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the deepest node of ``loc`` that exists (a key's own line)."""
    if root is None:
        return None
    node = root
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = None
            for key, value in node.value:  # the last one wins, as when YAML is loaded
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    found = (key, value)
            if found is None:
                return line
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _at(data: Any, loc: Sequence[int | str]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _known_fields(data: Any, loc: tuple[int | str, ...]) -> list[str]:
    """The fields the model at ``loc`` (a monitor or a condition) accepts."""
    if loc and loc[-1] == "condition":
        kind = _at(data, (*loc, "type"))
        model = CONDITIONS.get(kind) if isinstance(kind, str) else None
        return list(model.model_fields) if model else []
    if len(loc) == 2 and loc[0] == "monitors":
        if _is_default_set(_at(data, loc)):
            return list(DefaultSet.model_fields)
        return list(Monitor.model_fields)
    return []


def pydantic_problem(
    err: Any,
    loc: tuple[int | str, ...],
    data: Any,
    root: yaml.Node | None,
    *,
    noun: str,
    types: Sequence[str],
    known_fields: Callable[[Any, tuple[int | str, ...]], list[str]],
) -> Problem:
    """One pydantic error as a :class:`Problem` with its YAML line, in words: ``noun`` and
    ``types`` name the discriminated union (``condition``: static, ...), ``known_fields``
    lists what the model at a location accepts (for "did you mean")."""
    kind = err["type"]
    line_loc = loc
    reason = str(err["msg"]).removeprefix("Value error, ")
    if kind == "union_tag_invalid":
        loc = line_loc = (*loc, "type")
        reason = f"unknown {noun} type {err['ctx']['tag']!r}; expected {', '.join(types)}"
    elif kind == "union_tag_not_found":
        reason = f"a{'n' if noun[0] in 'aeiou' else ''} {noun} needs a type: {', '.join(types)}"
    elif kind == "missing":
        reason = f"required field {loc[-1]!r} is missing"
    elif kind == "extra_forbidden":
        known = known_fields(data, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        reason = f"unknown field {loc[-1]!r}"
        if close:
            reason += f"; did you mean {close[0]!r}?"
        if known:
            reason += f" (known: {', '.join(known)})"
    return Problem(_line(root, line_loc), _path(loc), reason)


def _problem(err: Any, data: Any, root: yaml.Node | None) -> Problem:
    return pydantic_problem(
        err,
        _strip_tags(err["loc"]),
        data,
        root,
        noun="condition",
        types=CONDITION_TYPES,
        known_fields=_known_fields,
    )


def _walk(
    node: yaml.Node, loc: tuple[int | str, ...]
) -> Iterator[tuple[yaml.Node, tuple[int | str, ...]]]:
    yield node, loc
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _walk(value, (*loc, getattr(key, "value", "?")))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _walk(item, (*loc, i))


def duplicate_keys(root: yaml.Node | None, section: str = "monitors") -> list[Problem]:
    """Keys given twice in one mapping under ``section:`` (YAML would keep the last)."""
    if not isinstance(root, yaml.MappingNode):
        return []
    problems = []
    for key, value in root.value:
        if getattr(key, "value", None) != section:
            continue
        for node, loc in _walk(value, (section,)):
            if not isinstance(node, yaml.MappingNode):
                continue
            first: dict[str, int] = {}
            for k, _ in node.value:
                if not isinstance(k, yaml.ScalarNode) or k.tag == "tag:yaml.org,2002:merge":
                    continue
                line = k.start_mark.line + 1
                if k.value in first:
                    problems.append(
                        Problem(
                            line,
                            _path((*loc, k.value)),
                            f"duplicate key {k.value!r} (first at line {first[k.value]})",
                        )
                    )
                else:
                    first[k.value] = line
    return problems


def _duplicate_names(data: Any, root: yaml.Node | None) -> list[Problem]:
    monitors = data.get("monitors") if isinstance(data, dict) else None
    if not isinstance(monitors, list):
        return []
    first: dict[str, tuple[int, int | None]] = {}
    problems = []
    for i, item in enumerate(monitors):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        loc = ("monitors", i, "name")
        line = _line(root, loc)
        if name in first:
            j, first_line = first[name]
            at = f"line {first_line}" if first_line is not None else f"monitors[{j}]"
            problems.append(
                Problem(line, _path(loc), f"duplicate monitor name {name!r} (first at {at})")
            )
        else:
            first[name] = (i, line)
    return problems


def _duplicate_sets(data: Any, root: yaml.Node | None) -> list[Problem]:
    monitors = data.get("monitors") if isinstance(data, dict) else None
    if not isinstance(monitors, list):
        return []
    first: dict[str, int | None] = {}
    problems = []
    for i, item in enumerate(monitors):
        model = item.get("defaults") if _is_default_set(item) else None
        if not isinstance(model, str):
            continue
        loc = ("monitors", i, "defaults")
        line = _line(root, loc)
        if model in first:
            at = f"line {first[model]}" if first[model] is not None else "an earlier item"
            problems.append(
                Problem(line, _path(loc), f"the default set of {model!r} is given twice ({at})")
            )
        else:
            first[model] = line
    return problems


def _reindexed(err: Any, index: Sequence[int]) -> Any:
    """An error of the monitors-only list with the item's index in the whole list."""
    loc = tuple(err["loc"])
    if len(loc) > 1 and loc[0] == "monitors" and isinstance(loc[1], int):
        return {**err, "loc": ("monitors", index[loc[1]], *loc[2:])}
    return err


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0))


# --------------------------------------------------------------------------- loading


def validate_monitors(
    data: Any,
    *,
    source: str = "<string>",
    root: yaml.Node | None = None,
    problems: Sequence[Problem] = (),
) -> list[Monitor]:
    """The monitors of a loaded settings document (its ``- defaults:`` items are validated
    too, and left out: :func:`validate_monitor_settings` returns them)."""
    return validate_monitor_settings(data, source=source, root=root, problems=problems).monitors


def validate_monitor_settings(
    data: Any,
    *,
    source: str = "<string>",
    root: yaml.Node | None = None,
    problems: Sequence[Problem] = (),
) -> MonitorSettings:
    """Validate a loaded settings document (a mapping with a ``monitors:`` list of monitors
    and ``- defaults: MODEL`` items).

    ``root``, the document's YAML node (:func:`yaml.compose`), gives problems their lines;
    ``problems`` found earlier (duplicate keys) are reported with the others. Raises
    :class:`MonitorConfigError` listing every problem.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MonitorConfigError(
            "invalid monitor definitions",
            [Problem(_line(root, ()), "", "expected a mapping with a `monitors:` list")],
            source,
        )
    problems = list(problems)
    items, plain = data.get("monitors"), data
    sets: list[DefaultSet] = []
    index: list[int] = []
    if isinstance(items, list):  # default sets apart; the monitors keep their own indexes
        index = [i for i, item in enumerate(items) if not _is_default_set(item)]
        plain = {**data, "monitors": [items[i] for i in index]}
        for i, item in enumerate(items):
            if not _is_default_set(item):
                continue
            try:
                sets.append(DefaultSet.model_validate(item))
            except ValidationError as exc:
                problems += [
                    _problem({**err, "loc": ("monitors", i, *err["loc"])}, data, root)
                    for err in exc.errors(include_url=False)
                ]
    monitors: list[Monitor] = []
    try:
        monitors = MonitorFile.model_validate(plain).monitors
    except ValidationError as exc:
        problems += [
            _problem(_reindexed(err, index), data, root) for err in exc.errors(include_url=False)
        ]
    problems += _duplicate_names(data, root) + _duplicate_sets(data, root)
    if problems:
        n = len(problems)
        raise MonitorConfigError(
            f"{n} problem{'s' if n > 1 else ''} in the monitor definitions",
            _sorted(problems),
            source,
        )
    return MonitorSettings(monitors, sets)


def validate_monitor(data: Any, source: str = "<request>") -> Monitor:
    """One monitor definition (an API request's body); each problem's path is relative to
    the monitor (``condition.threshold: Input should be a valid number``)."""
    problems: list[Problem] = []
    if not isinstance(data, dict):
        problems.append(Problem(None, "", "expected an object: a monitor definition"))
    elif _is_default_set(data):
        problems.append(
            Problem(None, "defaults", "a default set is not a monitor: POST it to"
                    " /api/v1/models/{model}/monitors/defaults")
        )  # fmt: skip
    else:
        try:
            return Monitor.model_validate(data)
        except ValidationError as exc:
            wrapped = {"monitors": [data]}
            for err in exc.errors(include_url=False):
                p = _problem({**err, "loc": ("monitors", 0, *err["loc"])}, wrapped, None)
                path = p.path.removeprefix("monitors[0]").removeprefix(".")
                problems.append(p._replace(path=path))
    n = len(problems)
    raise MonitorConfigError(
        f"{n} problem{'s' if n > 1 else ''} in the monitor definition", problems, source
    )


def loads_monitors(text: str, source: str = "<string>") -> list[Monitor]:
    """The monitors of a YAML document (see :func:`load_monitors`)."""
    return loads_monitor_settings(text, source).monitors


def parse_yaml(
    text: str,
    source: str,
    section: str = "monitors",
    error: type[MonitorConfigError] = MonitorConfigError,
) -> tuple[yaml.Node | None, Any, list[Problem]]:
    """A YAML document's node tree (for lines), its data, and the keys given twice under
    ``section:``; a syntax error raises ``error`` with the line."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        duplicates = duplicate_keys(root, section)  # before construction flattens merge keys
        data = None if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "invalid YAML"
        raise error(
            "invalid YAML", [Problem(line, "", f"YAML syntax error: {what}")], source
        ) from None
    except yaml.YAMLError as exc:
        raise error("invalid YAML", [Problem(None, "", f"YAML error: {exc}")], source) from None
    finally:
        loader.dispose()
    return root, data, duplicates


def loads_monitor_settings(text: str, source: str = "<string>") -> MonitorSettings:
    """The monitors and default sets of a YAML document (see :func:`load_monitor_settings`)."""
    root, data, duplicates = parse_yaml(text, source)
    if root is None:
        return MonitorSettings([], [])
    return validate_monitor_settings(data, source=source, root=root, problems=duplicates)


def load_monitors(path: str | Path) -> list[Monitor]:
    """The monitors of a settings file's top-level ``monitors:`` list (its ``- defaults:``
    items are checked and left out; see :func:`load_monitor_settings`)."""
    return load_monitor_settings(path).monitors


def load_monitor_settings(path: str | Path) -> MonitorSettings:
    """The monitors and default sets of a settings file's top-level ``monitors:`` list.

    Other top-level sections (``store:``, ``drift:``, ...) are ignored; a file without
    ``monitors:`` holds none. Raises :class:`MonitorConfigError` with every problem, each
    with its line: ``FILE:LINE: monitors[2].condition.threshold: Input should be a valid
    number``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise MonitorConfigError(
            "cannot read the file", [Problem(None, "", f"cannot read: {reason}")], str(path)
        ) from None
    return loads_monitor_settings(text, str(path))


# --------------------------------------------------------------------------- writing


def monitor_to_dict(monitor: Monitor) -> dict[str, Any]:
    """The monitor as plain YAML/JSON data, defaults left out (it loads back equal)."""
    out = monitor.model_dump(mode="json", exclude_defaults=True)
    if out.get("of_last") == monitor.fire_after:
        del out["of_last"]
    return out


def dump_monitors(monitors: Sequence[Monitor]) -> str:
    """A YAML document ``monitors: [...]`` that :func:`loads_monitors` reads back."""
    doc = {"monitors": [monitor_to_dict(m) for m in monitors]}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _llm_monitors(slug: str) -> list[dict[str, Any]]:
    """Quality and spend of an LLM application (the evaluators' metrics, docs/llm.md).

    Hallucination and PII are judged on fixed shares (a rate that creeps up slowly is still
    a problem), over hourly windows of at least 20 calls; refusals, daily spend and the
    cost of a call against their own history (what is normal differs from one app to the
    next). PII counts prompts too, where users paste their own, hence its looser share.
    """
    weekly = {"type": "dynamic", "seasonality": "none", "lookback": "7d", "min_history": 24}
    return [
        {
            "name": f"{slug}.hallucination_rate",
            "metric": "hallucination_rate",
            "window": "1h",
            "condition": {"type": "multi_level", "op": "above", "warning": 0.1, "critical": 0.25},
            "min_samples": 20,
            "description": "more than 10 % (25 %) of answers are not supported by their context",
        },
        {
            "name": f"{slug}.pii_rate",
            "metric": "pii_rate",
            "window": "1h",
            "condition": {
                "type": "static",
                "op": "above",
                "threshold": 0.05,
                "severity": "warning",
            },
            "min_samples": 20,
            "description": "personal data in more than 5 % of calls",
        },
        {
            "name": f"{slug}.refusal_rate",
            "metric": "refusal_rate",
            "window": "1h",
            "condition": {**weekly, "sensitivity": 4, "direction": "above", "min_band": 0.02},
            "min_samples": 20,
            "description": "the model declines or hands off more often than in the last week",
        },
        {
            "name": f"{slug}.daily_cost",
            "metric": "cost_usd",
            "window": "1d",
            "condition": {
                "type": "dynamic",
                "seasonality": "none",
                "lookback": "28d",
                "min_history": 7,
                "sensitivity": 4,
                "direction": "above",
            },
            "description": "the day's spend above its usual level (the last four weeks)",
        },
        {
            "name": f"{slug}.cost_p95",
            "metric": "cost_p95",
            "window": "1h",
            "condition": {**weekly, "sensitivity": 4, "direction": "above"},
            "min_samples": 30,
            "description": "the p95 cost of a call rises against the last week",
        },
    ]


def default_monitors(
    model: str, task: str | None = None, features: Sequence[str] = ()
) -> list[Monitor]:
    """A sensible starting set for one model (``task``: classification, regression, llm).

    - ``latency_p95`` (5m windows) above its usual level for this hour of the day (median
      and MAD of the same hour over the last 7 days, 5 deviations), in 2 of the last 3
      windows, judged only with 100 calls or more: the p95 of fewer calls is mostly decided
      by how many of the slowest 1-2 % fell into the window, and even with a few hundred
      it jumps by a fifth now and then (a model with under 20 calls a minute needs a
      longer window);
    - ``error_rate`` above 5 % in 2 of the last 3 5m windows (critical);
    - ``accuracy`` dropping (classification) or ``mae`` rising (regression), dynamic over
      hourly windows without seasonality (ground truth is sparse and late), 4 deviations
      (accuracy: at least 6 points); ``ttft_p95`` dynamic for LLMs;
    - LLMs also get the evaluators' rates (hallucination and PII over fixed shares,
      refusals against the last week) and spend: the day's ``cost_usd`` and the hourly
      ``cost_p95`` of a call above their usual levels (see :func:`_llm_monitors`);
    - ``drift_score`` (the share of features drifted, per hour) 0.15 or more above its
      usual share at this hour of the day: features that follow the clock (rush-hour
      traffic, couriers at night) drift against a day-long reference every day at the same
      hours, which a fixed threshold would report every day;
    - for each of the first five ``features``: its drift statistic (``drift:<feature>``)
      0.15 or more above its usual level at this hour of the day, in 2 of the last 3 hours
      (one feature moving is below what ``drift_score`` notices), and missing values:
      ``missing_change`` (the missing share minus the reference's) above 0.1, rather than
      ``missing_rate`` above a fixed share, so a feature that is often null by design does
      not alert forever.

    The hour-of-day baselines arm after a day (latency) or five days (drift) of history.
    Other windows with fewer than 30 events (labelled events for accuracy and mae, values
    for a feature's drift) are skipped. ``bench/bench_detection.py`` measures these choices.
    """
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
    by_hour = {"type": "dynamic", "seasonality": "hour_of_day", "lookback": "7d"}
    drift_band = {**by_hour, "min_history": 5, "direction": "above", "min_band": 0.05}
    out: list[dict[str, Any]] = [
        {
            "name": f"{slug}.latency_p95",
            "metric": "latency_p95",
            "window": "5m",
            "condition": {**by_hour, "min_history": 12, "sensitivity": 5, "direction": "above"},
            "fire_after": 2,
            "of_last": 3,
            "min_samples": 100,
            "description": "p95 latency above its usual level for this hour of the day",
        },
        {
            "name": f"{slug}.error_rate",
            "metric": "error_rate",
            "window": "5m",
            "condition": {"type": "static", "op": "above", "threshold": 0.05},
            "fire_after": 2,
            "of_last": 3,
            "min_samples": 30,
            "description": "more than 5 % of calls fail",
        },
    ]
    quality = {
        "classification": ("accuracy", "below", 0.015),
        "regression": ("mae", "above", 0.0),
        "llm": ("ttft_p95", "above", 0.0),
    }
    if task in quality:
        metric, direction, min_band = quality[task]
        out.append(
            {
                "name": f"{slug}.{metric}",
                "metric": metric,
                "window": "1h",
                "condition": {
                    "type": "dynamic",
                    "seasonality": "none",
                    "lookback": "7d",
                    "min_history": 24,
                    "sensitivity": 4,
                    "direction": direction,
                    "min_band": min_band,
                },
                "min_samples": 30,
                "description": f"{metric} {'drops' if direction == 'below' else 'rises'}"
                " against the last week",
            }
        )
    if task == "llm":
        out += _llm_monitors(slug)
    if features or task != "llm":
        out.append(
            {
                "name": f"{slug}.drift_score",
                "metric": "drift_score",
                "window": "1h",
                "condition": {**drift_band, "severity": "warning"},
                "description": "more features drifted than usual at this hour of the day",
            }
        )
    names = {m["name"] for m in out}
    for kind in ("drift", "missing"):
        for i, feature in enumerate(list(features)[:5]):
            fslug = re.sub(r"[^A-Za-z0-9_.-]+", "_", feature)
            name = f"{slug}.{kind}.{fslug}"
            if name in names:
                name += f".{i}"
            names.add(name)
            if kind == "drift":
                out.append(
                    {
                        "name": name,
                        "metric": f"drift:{feature}",
                        "window": "1h",
                        "condition": {**drift_band, "severity": "warning"},
                        "fire_after": 2,
                        "of_last": 3,
                        "min_samples": 30,
                        "description": f"{feature} drifts more than usual at this hour of the day",
                    }
                )
                continue
            out.append(
                {
                    "name": name,
                    "metric": f"missing_change:{feature}",
                    "window": "1h",
                    "condition": {
                        "type": "static",
                        "op": "above",
                        "threshold": 0.1,
                        "severity": "warning",
                    },
                    "min_samples": 30,
                    "description": f"{feature} is missing 10 points more often than in the"
                    " reference",
                }
            )
    return [Monitor.model_validate({"name": m.pop("name"), "model": model, **m}) for m in out]
