"""The alert state machine: hand-written sequences for each rule, then properties over random
policies and windows (firing needs m of the last n, resolving exactly k clean windows,
determinism, the JSON round trip)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.monitors.lifecycle import (
    Observation,
    Policy,
    State,
    Transition,
    is_no_data,
    step,
)

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
PROPS = settings(max_examples=150, deadline=None)


def obs(
    i: int, severity: str | None = None, value: float = 412.0, samples: int = 100
) -> Observation:
    return Observation(T0 + i * MINUTE, value, severity, samples)


def nodata(i: int) -> Observation:
    return Observation(T0 + i * MINUTE, None, None, 0)


def window_end(o: Observation) -> datetime:
    return o.window_start + MINUTE


@dataclass
class Run:
    states: list[State]
    steps: list[list[Transition]]

    @property
    def state(self) -> State:
        return self.states[-1]

    def kinds(self) -> list[list[str]]:
        return [[t.kind for t in ts] for ts in self.steps]

    def flat(self) -> list[Transition]:
        return [t for ts in self.steps for t in ts]


def run(policy: Policy, observations: list[Observation], state: State | None = None) -> Run:
    states, steps = [state or State()], []
    for o in observations:
        new, transitions = step(states[-1], o, policy, window_end(o))
        states.append(new)
        steps.append(transitions)
    return Run(states[1:], steps)


W, C = "warning", "critical"


def pattern(text: str, start: int = 0) -> list[Observation]:
    """``.`` clean, ``w`` warning, ``c`` critical, ``-`` no data; one window a minute."""
    codes = {".": None, "w": W, "c": C}
    return [
        nodata(start + i) if ch == "-" else obs(start + i, codes[ch]) for i, ch in enumerate(text)
    ]


# ----------------------------------------------------------------------- policy validation
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fire_after": 0}, "fire_after must be at least 1"),
        ({"fire_after": 3, "of_last": 2}, r"of_last \(2\) must be at least fire_after \(3\)"),
        ({"resolve_after": 0}, "resolve_after must be at least 1"),
        ({"min_samples": -1}, "min_samples must not be negative"),
        ({"no_data": "skip"}, "no_data must be one of alert, ignore, keep"),
        ({"renotify": timedelta(0)}, "renotify must be a positive interval"),
    ],
)
def test_bad_policies_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Policy(**kwargs)  # type: ignore[arg-type]


def test_bad_observations_are_rejected() -> None:
    with pytest.raises(ValueError, match="severity must be None, 'warning' or 'critical'"):
        Observation(T0, 1.0, "fatal", 10)
    with pytest.raises(ValueError, match="samples must not be negative"):
        Observation(T0, 1.0, None, -1)


# ---------------------------------------------------------------------------------- firing
def test_one_breach_fires_at_once_by_default() -> None:
    r = run(Policy(), [obs(0), obs(1, C, value=3.5)])
    assert r.kinds() == [[], ["firing"]]
    assert r.steps[1] == [
        Transition("firing", T0 + MINUTE, C, "1 of the last 1 windows breached (value 3.5)")
    ]
    s = r.state
    assert (s.status, s.severity, s.since, s.episode) == ("firing", C, T0 + MINUTE, 1)
    assert s.last_notified_at == T0 + 2 * MINUTE  # ``now`` of the firing step


def test_m_of_n_goes_through_pending() -> None:
    r = run(Policy(fire_after=3, of_last=5), pattern("w.w.c"))
    assert r.kinds() == [["pending"], [], [], [], ["firing"]]
    assert r.steps[0][0].cause == "1 of the last 1 windows breached (value 412.0)"
    assert r.steps[4] == [
        Transition("firing", T0 + 4 * MINUTE, C, "3 of the last 5 windows breached (value 412.0)")
    ]
    assert [s.status for s in r.states] == ["pending"] * 4 + ["firing"]
    assert r.state.since == T0 and r.state.episode == 1


def test_breaches_spread_wider_than_n_do_not_fire() -> None:
    r = run(Policy(fire_after=3, of_last=5), pattern("w...w...w...w"))
    assert [t.kind for t in r.flat()] == ["pending"]
    assert all(s.status == "pending" for s in r.states)
    assert r.state.since == T0  # still the first breach of the episode


def test_pending_resets_quietly_when_its_breaches_leave_the_window() -> None:
    r = run(Policy(fire_after=2, of_last=3), pattern("w...w"))
    assert r.kinds() == [["pending"], [], [], [], ["pending"]]
    assert [s.status for s in r.states] == ["pending", "pending", "pending", "ok", "pending"]
    assert r.states[3].since is None and r.states[3].severity is None
    assert r.state.since == T0 + 4 * MINUTE and r.state.episode == 0


# -------------------------------------------------------------------------------- resolving
def test_resolves_after_k_consecutive_clean_windows() -> None:
    r = run(Policy(resolve_after=3), pattern("w..w..."))
    assert r.kinds() == [["firing"], [], [], [], [], [], ["resolved"]]
    assert r.steps[6] == [Transition("resolved", T0 + 6 * MINUTE, W, "3 clean windows")]
    s = r.state
    assert (s.status, s.severity, s.since, s.recent, s.episode) == ("ok", None, None, (), 1)
    single = run(Policy(), pattern("c."))
    assert single.steps[1][0].cause == "1 clean window"


def test_a_resolved_episode_is_forgotten() -> None:
    policy = Policy(fire_after=2, of_last=4, resolve_after=1)
    r = run(policy, pattern("ww.w"))
    assert r.kinds() == [["pending"], ["firing"], ["resolved"], ["pending"]]
    again = run(policy, pattern("ww.ww"))
    assert again.state.status == "firing" and again.state.episode == 2
    assert again.state.since == T0 + 3 * MINUTE


# ----------------------------------------------------------------------- severity changes
def test_escalates_and_deescalates_while_firing() -> None:
    r = run(Policy(resolve_after=2), pattern("wc.cww.."))
    assert r.kinds() == [["firing"], ["escalated"], [], [], ["deescalated"], [], [], ["resolved"]]
    up, down = r.steps[1][0], r.steps[4][0]
    assert (up.severity, up.cause) == (C, "severity rose from warning to critical (value 412.0)")
    assert (down.severity, down.cause) == (
        W,
        "severity fell from critical to warning (value 412.0)",
    )
    assert r.states[2].severity == C  # a clean window keeps the severity
    assert r.states[1].last_notified_at == T0 + 2 * MINUTE  # escalating notifies
    assert r.states[4].last_notified_at == T0 + 2 * MINUTE  # de-escalating does not reset it
    assert r.steps[7][0].severity == W


def test_pending_takes_no_severity_transitions() -> None:
    r = run(Policy(fire_after=3, of_last=3), pattern("wcw"))
    assert r.kinds() == [["pending"], [], ["firing"]]
    assert r.states[1].severity == C and r.state.severity == W


# -------------------------------------------------------------------------------- renotify
def test_renotifies_every_interval_while_firing() -> None:
    policy = Policy(renotify=timedelta(minutes=10))
    r = run(policy, pattern("w" * 25))
    renotified = [i for i, ts in enumerate(r.steps) if [t.kind for t in ts] == ["renotify"]]
    assert renotified == [10, 20]  # fired with now = 1 min; now = 11 and 21 min
    first = r.steps[10][0]
    assert first.at == T0 + 10 * MINUTE and first.severity == W
    assert first.cause == f"still firing since {T0.isoformat()} (11 min)"
    assert r.states[10].last_notified_at == T0 + 11 * MINUTE
    assert not any(run(Policy(), pattern("w" * 25)).steps[1:])  # no interval, no reminders


def test_escalation_restarts_the_renotify_clock() -> None:
    policy = Policy(renotify=timedelta(minutes=10), resolve_after=5)
    r = run(policy, pattern("wwwwwc" + "c" * 14 + "..."))
    kinds = {i: [t.kind for t in ts] for i, ts in enumerate(r.steps) if ts}
    assert kinds == {0: ["firing"], 5: ["escalated"], 15: ["renotify"]}
    # clean windows while firing still renotify; a long timestamped gap too
    later = run(policy, [obs(40)], r.state)
    assert later.kinds() == [["renotify"]] and later.state.status == "firing"
    assert later.steps[0][0].cause == f"still firing since {T0.isoformat()} (41 min)"


def test_renotify_never_while_pending_or_ok() -> None:
    policy = Policy(fire_after=30, of_last=30, renotify=timedelta(minutes=1))
    assert [t.kind for t in run(policy, pattern("w." * 10)).flat()] == ["pending"]


# ------------------------------------------------------------------------- no data, samples
def test_few_samples_count_as_no_data() -> None:
    policy = Policy(min_samples=30, no_data="alert")
    assert is_no_data(obs(0, samples=29), policy)
    assert not is_no_data(obs(0, samples=30), policy)
    assert is_no_data(obs(0, samples=0), Policy())
    assert is_no_data(Observation(T0, math.nan, W, 10), Policy())
    r = run(policy, [obs(0, samples=29), obs(1, C, samples=5)])
    assert r.kinds() == [["no_data", "firing"], []]
    assert r.steps[0][0].cause == "only 29 samples in the window, fewer than 30"
    assert r.state.severity == W  # the critical value with 5 samples did not count
    kept = run(Policy(min_samples=30), [obs(0, C, samples=29)])
    assert kept.kinds() == [[]] and kept.state == State()


def test_no_data_keep_leaves_the_state_alone() -> None:
    policy = Policy(resolve_after=2, no_data="keep")
    r = run(policy, pattern("c---.-.-"))
    assert r.kinds() == [["firing"], [], [], [], [], [], ["resolved"], []]
    assert r.states[1] is r.states[0] and r.states[3] is r.states[0]
    assert r.states[4].clean_streak == 1 and r.states[5].clean_streak == 1


def test_no_data_ignore_counts_as_clean() -> None:
    r = run(Policy(resolve_after=2, no_data="ignore"), pattern("c--"))
    assert r.kinds() == [["firing"], [], ["resolved"]]
    assert run(Policy(no_data="ignore"), pattern("---")).state.status == "ok"


def test_no_data_alert_breaches_once_per_episode() -> None:
    policy = Policy(fire_after=2, of_last=3, resolve_after=2, no_data="alert")
    r = run(policy, pattern("---c--.c"))
    assert r.kinds() == [["no_data", "pending"], ["firing"], [], ["escalated"], [], [], [], []]
    note = r.steps[0][0]
    assert note == Transition("no_data", T0, W, "no data for the window")
    assert r.steps[1][0].cause == "2 of the last 2 windows breached (no data for the window)"
    assert r.states[5].severity == C  # no data keeps the higher severity
    fresh = run(policy, pattern("--.-", start=20), State())
    assert [t.kind for t in fresh.flat()] == ["no_data", "pending", "firing"]
    # after resolving, a new episode notes no data again
    back = run(Policy(no_data="alert"), pattern("-.-"))
    assert back.kinds() == [["no_data", "firing"], ["resolved"], ["no_data", "firing"]]
    assert back.state.episode == 2


# ---------------------------------------------------------------------- order, purity, JSON
def test_repeated_or_older_windows_are_ignored() -> None:
    policy = Policy(fire_after=2, of_last=2)
    first, _ = step(State(), obs(5, W), policy, T0)
    again, transitions = step(first, obs(5, W), policy, T0)
    older, transitions_older = step(first, obs(4, W), policy, T0)
    assert again is first and older is first and transitions == transitions_older == []
    _, transitions = step(first, obs(6, W), policy, T0)
    assert [t.kind for t in transitions] == ["firing"]


def test_step_does_not_touch_its_input() -> None:
    state = run(Policy(fire_after=2, of_last=3), pattern("w")).state
    snapshot = State.from_dict(state.to_dict())
    step(state, obs(1, C), Policy(fire_after=2, of_last=3), T0)
    assert state == snapshot


def test_state_round_trips_through_json() -> None:
    state = run(Policy(renotify=timedelta(minutes=1)), pattern("wc")).state
    data = json.loads(json.dumps(state.to_dict()))
    assert data["status"] == "firing" and data["since"] == T0.isoformat()
    assert State.from_dict(data) == state
    assert State.from_dict({}) == State()
    with pytest.raises(ValueError, match="status must be one of ok, pending, firing"):
        State.from_dict({"status": "resolved"})
    with pytest.raises(ValueError, match="unknown alert state version 9"):
        State.from_dict({"version": 9})


# ------------------------------------------------------------------------------ properties
@st.composite
def policies(draw: st.DrawFn) -> Policy:
    m = draw(st.integers(1, 4))
    renotify = draw(st.one_of(st.none(), st.integers(1, 20)))
    return Policy(
        fire_after=m,
        of_last=draw(st.integers(m, 6)),
        resolve_after=draw(st.integers(1, 4)),
        min_samples=draw(st.integers(0, 3)),
        no_data=draw(st.sampled_from(["alert", "ignore", "keep"])),
        renotify=None if renotify is None else renotify * MINUTE,
    )


@st.composite
def windows(draw: st.DrawFn) -> list[Observation]:
    n = draw(st.integers(0, 60))
    gaps = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    out, t = [], T0
    for gap in gaps:
        t += gap * MINUTE
        value = draw(st.one_of(st.just(1.0), st.just(1.0), st.none(), st.just(math.nan)))
        severity = draw(st.sampled_from([None, None, W, C]))
        out.append(Observation(t, value, severity, draw(st.sampled_from([0, 2, 5, 100]))))
    return out


def effective(o: Observation, policy: Policy) -> bool | None:
    """The oracle: whether a window counts as a breach; None when it is not counted."""
    if is_no_data(o, policy):
        return {"keep": None, "ignore": False, "alert": True}[policy.no_data]
    return o.severity is not None


@PROPS
@given(policies(), windows())
def test_fires_only_on_m_of_the_last_n(policy: Policy, observations: list[Observation]) -> None:
    r = run(policy, observations)
    flags: list[bool] = []
    before = State()
    for o, state, transitions in zip(observations, r.states, r.steps, strict=True):
        flag = effective(o, policy)
        if flag is not None:
            flags.append(flag)
        kinds = [t.kind for t in transitions]
        if "firing" in kinds:
            assert flag is True
            assert sum(flags[-policy.of_last :]) >= policy.fire_after
        if state.status == "firing":
            assert "firing" in kinds or before.status == "firing"
        else:
            assert not set(kinds) & {"escalated", "deescalated", "renotify"}
        if flag is None:
            assert state == before and transitions == []
        before = state


@PROPS
@given(policies(), windows())
def test_resolves_after_exactly_k_clean_windows(
    policy: Policy, observations: list[Observation]
) -> None:
    r = run(policy, observations)
    clean_run = 0
    before = State()
    for o, state, transitions in zip(observations, r.states, r.steps, strict=True):
        flag = effective(o, policy)
        if flag is not None:
            clean_run = 0 if flag else clean_run + 1
        resolved = any(t.kind == "resolved" for t in transitions)
        if before.status == "firing":
            should = flag is False and clean_run == policy.resolve_after
            assert resolved == should
            assert state.status == ("ok" if should else "firing")
        else:
            assert not resolved
        before = state


@PROPS
@given(policies(), windows())
def test_replaying_gives_the_same_transitions(
    policy: Policy, observations: list[Observation]
) -> None:
    first, second = run(policy, observations), run(policy, observations)
    assert first.steps == second.steps and first.states == second.states
    episodes = [t.kind for t in first.flat() if t.kind in ("firing", "resolved")]
    assert episodes == ["firing", "resolved"] * (len(episodes) // 2) + ["firing"] * (
        len(episodes) % 2
    )
    final = first.states[-1] if first.states else State()
    assert final.episode == episodes.count("firing")
    assert final.status == ("firing" if len(episodes) % 2 else final.status)


@PROPS
@given(policies(), windows())
def test_every_state_round_trips(policy: Policy, observations: list[Observation]) -> None:
    for state in run(policy, observations).states:
        assert State.from_dict(json.loads(json.dumps(state.to_dict()))) == state
