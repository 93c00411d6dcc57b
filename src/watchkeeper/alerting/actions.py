"""Automated responses: the actions that alert transitions set off, and their settings.

An ``actions:`` section of the settings file lists them::

    actions:
      - name: retrain
        type: webhook                     # webhook | command | rollback | fallback
        when: {monitors: [fraud.drift_score], severities: [warning, critical]}
        url: https://ci.example.com/hooks/retrain
        secret_env: WK_RETRAIN_SECRET     # HMAC-SHA256 signature, secret from the environment
        rate_limit: {max: 1, per: 6h}     # per action and model (default: 1 per 1h)
      - name: roll-back-fraud
        type: rollback
        when: {models: [fraud-scorer], severities: [critical]}
        approval: true                    # a person approves each run first

Each transition that matches an action's ``when`` (monitors, models, severities, labels and
transition kinds, ``firing`` by default) asks for a **run**, recorded by the store in the
transaction that records the transition (:func:`watchkeeper.store.duckdb_actions.
enqueue_action_runs`): queued, awaiting approval, rate-limited or silenced. The runner
(:mod:`watchkeeper.alerting.action_runner`) claims queued runs and does them with a timeout, on
worker threads of its own, so the alert engine never waits for an action:

- ``webhook``: POSTs the alert (the JSON a notification webhook gets) with
  ``X-Watchkeeper-Action``, ``X-Watchkeeper-Run`` (de-duplicate on it) and, with
  ``secret_env``, ``X-Watchkeeper-Signature: sha256=<hex HMAC of the body>``;
- ``command``: runs ``argv`` (no shell) with the alert as JSON on standard input; its exit
  code and output (the first and last 8 KiB of each stream) are kept; past ``timeout_s`` its
  process group gets SIGTERM, then SIGKILL;
- ``rollback``: points the model's serving version at the previous healthy one (see
  :func:`~watchkeeper.alerting.action_runner.rollback_target`), and with ``mlflow:`` moves the registered model's alias there;
- ``fallback``: names ``target`` as the model's fallback; a run for a ``resolved`` transition
  (``when.kinds: [firing, resolved]``) clears it again if it still is ``target`` — such an
  undo run is never held back by approval, rate limit or silence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from watchkeeper.alerting.notify import encode, payload
from watchkeeper.monitors.definitions import Duration
from watchkeeper.monitors.files import (
    MonitorConfigError,
    Problem,
    _at,
    _line,
    _path,
    _sorted,
    parse_yaml,
    pydantic_problem,
)
from watchkeeper.monitors.lifecycle import Kind
from watchkeeper.store.base import ActionRequest

ACTION_TYPES = ("webhook", "command", "rollback", "fallback")
KINDS: tuple[str, ...] = get_args(Kind)
UNDO_KINDS = ("resolved", "cleared")


class ActionConfigError(MonitorConfigError):
    """The ``actions:`` section is invalid; :attr:`problems` lists each with its line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_FIRING: list[Kind] = ["firing"]


class When(_Strict):
    """Which transitions set the action off: every filter given must match."""

    monitors: list[str] | None = None
    models: list[str] | None = None
    severities: list[Literal["warning", "critical"]] | None = None
    labels: dict[str, str] | None = None
    kinds: list[Kind] = Field(default_factory=lambda: _FIRING.copy(), min_length=1)

    def matches(self, change: Mapping[str, Any]) -> bool:
        severity = change.get("severity") or change.get("alert_severity")
        labels = change.get("labels") or {}
        return (
            change["kind"] in self.kinds
            and (self.monitors is None or change["monitor"] in self.monitors)
            and (self.models is None or change["model"] in self.models)
            and (self.severities is None or severity in self.severities)
            and all(labels.get(k) == v for k, v in (self.labels or {}).items())
        )


class RateLimit(_Strict):
    """At most ``max`` runs of the action per model in any ``per``."""

    max: int = Field(ge=1)
    per: Duration


class ActionBase(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)
    description: str | None = None
    when: When = Field(default_factory=When)
    rate_limit: RateLimit | None = RateLimit(max=1, per=timedelta(hours=1))
    approval: bool = False

    @property
    def kind(self) -> str:
        return str(getattr(self, "type"))  # noqa: B009 - every subclass declares it


class WebhookAction(ActionBase):
    """POST the alert JSON to ``url``."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(
        default_factory=dict, description="header name -> environment variable holding it"
    )
    secret_env: str | None = None
    timeout_s: float = Field(10.0, gt=0, le=120)


class CommandAction(ActionBase):
    """Run ``argv`` with the alert JSON on standard input."""

    type: Literal["command"]
    argv: list[str] = Field(min_length=1)
    timeout_s: float = Field(300.0, gt=0, le=86400)
    env: dict[str, str] = Field(default_factory=dict)
    inherit_env: bool = True
    cwd: str | None = None


class MlflowAlias(_Strict):
    """The MLflow registered model whose alias follows a rollback."""

    tracking_uri: str = Field(min_length=1)
    registered_model: str | None = None  # default: the Watchkeeper model's name
    alias: str = Field(min_length=1)


class RollbackAction(ActionBase):
    """Point the model's serving version at the previous healthy version."""

    type: Literal["rollback"]
    mlflow: MlflowAlias | None = None


class FallbackAction(ActionBase):
    """Name ``target`` (a fallback model or rule-based path) as the model's fallback."""

    type: Literal["fallback"]
    target: str = Field(min_length=1, max_length=200)


Action = Annotated[
    WebhookAction | CommandAction | RollbackAction | FallbackAction,
    Field(discriminator="type"),
]
_BY_TYPE: dict[str, type[ActionBase]] = {
    "webhook": WebhookAction,
    "command": CommandAction,
    "rollback": RollbackAction,
    "fallback": FallbackAction,
}
_NESTED: dict[str, type[BaseModel]] = {
    "when": When,
    "rate_limit": RateLimit,
    "mlflow": MlflowAlias,
}


_ONE: TypeAdapter[WebhookAction | CommandAction | RollbackAction | FallbackAction] = TypeAdapter(
    Action
)


@dataclass(frozen=True)
class ActionsConfig:
    """The validated ``actions:`` section."""

    actions: list[WebhookAction | CommandAction | RollbackAction | FallbackAction] = field(
        default_factory=list
    )

    def action(self, name: str) -> ActionBase | None:
        return next((a for a in self.actions if a.name == name), None)

    def requests(
        self, change: Mapping[str, Any], alert_id: int, dashboard: str | None
    ) -> list[ActionRequest]:
        """The runs one transition asks for (the store decides their status)."""
        out = []
        body: bytes | None = None
        for a in self.actions:
            if not a.when.matches(change):
                continue
            if body is None:
                body = encode(payload(change, alert_id, dashboard))
            undo = isinstance(a, FallbackAction) and change["kind"] in UNDO_KINDS
            limit = a.rate_limit
            out.append(
                ActionRequest(
                    action=a.name,
                    type=a.type,
                    payload=body,
                    approval=a.approval,
                    rate_max=None if limit is None else limit.max,
                    rate_per=None if limit is None else limit.per,
                    undo=undo,
                )
            )
        return out


def action_to_dict(action: ActionBase) -> dict[str, Any]:
    """An action as the API shows it (secrets are only ever names of environment variables)."""
    return action.model_dump(mode="json")


# --------------------------------------------------------------------------- loading


def _problem(err: Any, data: Any, root: yaml.Node | None) -> Problem:
    loc = tuple(err["loc"])
    if len(loc) >= 3 and loc[0] == "actions" and loc[2] in ACTION_TYPES:
        loc = loc[:2] + loc[3:]  # the discriminator's tag
    return pydantic_problem(
        err, loc, data, root, noun="action", types=ACTION_TYPES, known_fields=_known_fields
    )


def _known_fields(data: Any, loc: tuple[int | str, ...]) -> list[str]:
    if len(loc) == 2 and loc[0] == "actions":
        kind = _at(data, (*loc, "type"))
        model = _BY_TYPE.get(kind) if isinstance(kind, str) else None
        return list(model.model_fields) if model else []
    if len(loc) == 3 and loc[0] == "actions" and str(loc[2]) in _NESTED:
        return list(_NESTED[str(loc[2])].model_fields)
    return []


def _meaning(valid: list[tuple[int, ActionBase]], root: yaml.Node | None) -> list[Problem]:
    """What the types cannot say: unique names, no rollback when an alert resolves."""
    problems = []
    first: dict[str, int] = {}
    for i, a in valid:
        if a.name in first:
            loc: tuple[int | str, ...] = ("actions", i, "name")
            problems.append(
                Problem(
                    _line(root, loc),
                    _path(loc),
                    f"duplicate action name {a.name!r} (first at actions[{first[a.name]}])",
                )
            )
        first.setdefault(a.name, i)
        if isinstance(a, RollbackAction):
            undo = [k for k in a.when.kinds if k in UNDO_KINDS]
            if undo:
                loc = ("actions", i, "when", "kinds")
                problems.append(
                    Problem(
                        _line(root, loc),
                        _path(loc),
                        f"a rollback on {', '.join(undo)} would roll back a model that"
                        " recovered; use firing, escalated, renotify or no_data",
                    )
                )
    return problems


def validate_actions(
    data: Any,
    *,
    source: str = "<string>",
    root: yaml.Node | None = None,
    problems: Sequence[Problem] = (),
) -> ActionsConfig:
    """Validate a loaded settings document's ``actions:`` list (``root``, the document's
    YAML node, gives each problem its line; ``problems`` found earlier, such as duplicate
    keys, are reported with the others). Raises :class:`ActionConfigError`."""
    problems = list(problems)
    items = data.get("actions") if isinstance(data, dict) else None
    valid: list[tuple[int, WebhookAction | CommandAction | RollbackAction | FallbackAction]] = []
    if data is not None and not isinstance(data, dict):
        problems.append(Problem(_line(root, ()), "", "expected a mapping"))
    elif items is not None and not isinstance(items, list):
        loc = ("actions",)
        problems.append(Problem(_line(root, loc), "actions", "expected a list of actions"))
    else:
        for i, item in enumerate(items or []):  # each on its own: every problem at once
            try:
                valid.append((i, _ONE.validate_python(item)))
            except ValidationError as exc:
                problems += [
                    _problem({**e, "loc": ("actions", i, *e["loc"])}, data, root)
                    for e in exc.errors(include_url=False)
                ]
        problems += _meaning([(i, a) for i, a in valid], root)
    if problems:
        n = len(problems)
        raise ActionConfigError(
            f"{n} problem{'s' if n > 1 else ''} in the actions", _sorted(problems), source
        )
    return ActionsConfig([a for _, a in valid])


def loads_actions(text: str, source: str = "<string>") -> ActionsConfig:
    """The ``actions:`` section of a YAML settings document (other sections are ignored)."""
    root, data, duplicates = parse_yaml(text, source, "actions", ActionConfigError)
    return validate_actions(data, source=source, root=root, problems=duplicates)


def load_actions(path: str | Path) -> ActionsConfig:
    """The ``actions:`` section of a settings file; errors are ``FILE:LINE: path: reason``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ActionConfigError(
            "cannot read the file", [Problem(None, "", f"cannot read: {exc}")], str(path)
        ) from None
    return loads_actions(text, str(path))


__all__: Sequence[str] = (
    "ACTION_TYPES",
    "Action",
    "ActionConfigError",
    "ActionsConfig",
    "CommandAction",
    "FallbackAction",
    "RollbackAction",
    "WebhookAction",
    "action_to_dict",
    "load_actions",
    "loads_actions",
    "validate_actions",
)
