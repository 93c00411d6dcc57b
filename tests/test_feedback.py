"""Human feedback over HTTP (a real server on loopback, a real DuckDB file): validation,
idempotent resends, durability across a restart, the ``human`` evaluation and the actual it
implies, and judge-human agreement against scikit-learn's Cohen's kappa."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.metrics import cohen_kappa_score

from tests.conftest import RunningServer, running_server
from watchkeeper.api.auth import COOKIE, CSRF_HEADER

NOW = datetime.now(timezone.utc).replace(microsecond=0)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _store(server: RunningServer) -> Any:
    return server.handle.app.state.store


def _calls(server: RunningServer, ids: list[str], trace: str = TRACE, model: str = "chat") -> None:
    """LLM calls ``ids`` of one trace, one second apart (the last is the latest)."""
    events = [
        {
            "event_id": eid,
            "timestamp": (NOW - timedelta(minutes=10) + timedelta(seconds=i)).isoformat(),
            "version": "v1",
            "prompt": f"question {eid}",
            "response": f"answer {eid}",
            "trace_id": trace,
            "segments": {"region": "eu"},
        }
        for i, eid in enumerate(ids)
    ]
    with server.client(server.ingest_key) as c:
        r = c.post(f"/api/v1/models/{model}/predictions", json={"events": events})
    assert r.status_code == 200, r.text


def _post(server: RunningServer, body: Any, key: str | None = None) -> httpx.Response:
    with server.client(key or server.ingest_key) as c:
        return c.post("/api/v1/feedback", json=body)


def _human(server: RunningServer, event_id: str, model: str = "chat") -> dict[str, Any] | None:
    rows = _store(server).evaluations_for(model, [event_id])
    found = [r for r in rows if r["evaluator"] == "human"]
    return found[0] if found else None


def test_thumbs_down_is_stored_and_becomes_the_human_evaluation(server: RunningServer) -> None:
    """A thumbs down on a stored call is kept as sent (with the call's trace filled in) and
    recorded as the call's ``human`` evaluation: score 0, flagged, with the call's version,
    time and segments."""
    _calls(server, ["e1"])
    r = _post(
        server,
        {
            "model": "chat",
            "event_id": "e1",
            "thumbs": "down",
            "comment": "wrong",
            "by": "ana@example.com",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    (result,) = body["feedback"]
    assert result["event_id"] == "e1" and result["trace_id"] == TRACE
    assert result["evaluation"] is True and result["actual"] is False
    with server.client(server.read_key) as c:
        listed = c.get("/api/v1/feedback", params={"model": "chat"}).json()["feedback"]
    assert len(listed) == 1
    row = listed[0]
    assert (row["model"], row["event_id"], row["trace_id"], row["thumbs"], row["score"]) == (
        "chat",
        "e1",
        TRACE,
        "down",
        None,
    )
    assert (row["comment"], row["by"], row["corrected_answer"]) == (
        "wrong",
        "ana@example.com",
        None,
    )
    human = _human(server, "e1")
    assert human is not None
    assert (human["score"], human["flagged"], human["source"], human["label"]) == (
        0.0,
        True,
        "human",
        "down",
    )
    assert human["version"] == "v1" and human["segments"] == {"region": "eu"}
    assert human["event_ts"] == NOW - timedelta(minutes=10)
    assert human["detail"]["comment"] == "wrong"


def test_score_wins_over_thumbs_and_the_newest_verdict_wins(server: RunningServer) -> None:
    """An explicit score is the evaluation's score (flagged below 0.5); a later verdict on the
    same call replaces the earlier one; a comment alone changes no evaluation."""
    _calls(server, ["e1"])
    assert _post(
        server, {"model": "chat", "event_id": "e1", "thumbs": "up", "score": 0.8}
    ).is_success
    human = _human(server, "e1")
    assert human is not None and (human["score"], human["flagged"]) == (0.8, False)
    assert _post(server, {"model": "chat", "event_id": "e1", "score": 0.25}).is_success
    human = _human(server, "e1")
    assert human is not None and (human["score"], human["flagged"], human["label"]) == (
        0.25,
        True,
        None,
    )
    r = _post(server, {"model": "chat", "event_id": "e1", "comment": "still meh"})
    assert r.json()["feedback"][0]["evaluation"] is False
    human = _human(server, "e1")
    assert human is not None and human["score"] == 0.25


def test_corrected_answer_becomes_the_actual(server: RunningServer) -> None:
    """A corrected answer is stored as the call's actual (its label), so reference
    correctness runs on it; the model's actual count shows it."""
    _calls(server, ["e1", "e2"])
    r = _post(server, {"model": "chat", "event_id": "e2", "corrected_answer": "Paris, France."})
    assert r.status_code == 200, r.text
    assert r.json()["feedback"][0]["actual"] is True
    rows = _store(server).llm_events_after("chat", None, NOW + timedelta(hours=1), 10)
    labels = {row["event_id"]: row["label"] for row in rows}
    assert labels == {"e1": None, "e2": "Paris, France."}
    with server.client(server.read_key) as c:
        assert c.get("/api/v1/models/chat").json()["actual_count"] == 1


def test_feedback_before_its_call_waits_for_it(server: RunningServer) -> None:
    """Feedback on a call not stored yet is kept; no evaluation is made up, and a corrected
    answer waits as an actual that the call adopts when it arrives."""
    _calls(server, ["e0"])  # the model exists
    r = _post(
        server, {"model": "chat", "event_id": "late", "thumbs": "down", "corrected_answer": "42"}
    )
    assert r.status_code == 200, r.text
    result = r.json()["feedback"][0]
    assert result["evaluation"] is False and result["event_id"] == "late"
    assert _human(server, "late") is None
    _calls(server, ["late"])
    rows = _store(server).llm_events_after("chat", None, NOW + timedelta(hours=1), 10)
    assert {row["event_id"]: row["label"] for row in rows}["late"] == "42"
    # the evaluator runner, meeting the call, records the verdict that waited for it
    runner = server.handle.app.state.evaluator_runner
    runner.run_once(datetime.now(timezone.utc) + timedelta(minutes=1))
    human = _human(server, "late")
    assert human is not None and human["flagged"] is True and human["score"] == 0.0
    assert runner.stats()["human_verdicts"] >= 1


def test_trace_feedback_attaches_to_the_last_call_of_the_trace(server: RunningServer) -> None:
    """Feedback naming only a trace rates the model's last call in it (the answer a person
    saw); a trace without calls of the model stores the feedback and evaluates nothing."""
    _calls(server, ["retrieve", "draft", "final"])
    r = _post(server, {"model": "chat", "trace_id": TRACE, "thumbs": "up"})
    assert r.status_code == 200, r.text
    assert r.json()["feedback"][0]["event_id"] == "final"
    human = _human(server, "final")
    assert human is not None and (human["score"], human["flagged"]) == (1.0, False)
    assert _human(server, "draft") is None
    other = "0" * 31 + "1"
    r = _post(server, {"model": "chat", "trace_id": other, "thumbs": "down"})
    assert r.json()["feedback"][0]["event_id"] is None
    with server.client(server.read_key) as c:
        by_trace = c.get("/api/v1/feedback", params={"trace_id": other}).json()["feedback"]
        by_event = c.get("/api/v1/feedback", params={"event_id": "final"}).json()["feedback"]
    assert [f["thumbs"] for f in by_trace] == ["down"]
    assert [f["trace_id"] for f in by_event] == [TRACE]


def test_resend_with_feedback_id_stores_nothing_twice(server: RunningServer) -> None:
    """A resent request (same feedback_id per model) answers the stored ids as duplicates and
    stores no second row; a name repeated inside one request is stored once too."""
    _calls(server, ["e1", "e2"])
    body = {
        "feedback": [
            {"model": "chat", "event_id": "e1", "thumbs": "down", "feedback_id": "fb-1"},
            {"model": "chat", "event_id": "e2", "thumbs": "up", "feedback_id": "fb-2"},
            {"model": "chat", "event_id": "e2", "thumbs": "down", "feedback_id": "fb-2"},
        ]
    }
    first = _post(server, body).json()
    assert (first["accepted"], first["duplicates"]) == (2, 1)
    assert first["feedback"][2]["id"] == first["feedback"][1]["id"]
    again = _post(server, body).json()
    assert (again["accepted"], again["duplicates"]) == (0, 3)
    assert [f["id"] for f in again["feedback"]] == [f["id"] for f in first["feedback"]]
    with server.client(server.read_key) as c:
        listed = c.get("/api/v1/feedback").json()["feedback"]
    assert sorted(f["feedback_id"] for f in listed) == ["fb-1", "fb-2"]
    human = _human(server, "e2")
    assert human is not None and human["flagged"] is False  # the stored one, not the repeat


def test_feedback_survives_a_restart(tmp_path: Path) -> None:
    """Feedback is in the DuckDB file: after a restart it is listed, and a resend of the same
    feedback_id is still a duplicate."""
    stamp = (NOW - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    item = {
        "model": "chat",
        "event_id": "e1",
        "score": 0.9,
        "feedback_id": "keep-me",
        "timestamp": stamp,
    }
    with running_server(tmp_path) as first:
        _calls(first, ["e1"])
        assert _post(first, item).json()["accepted"] == 1
    with running_server(tmp_path) as second:
        with second.client(second.read_key) as c:
            listed = c.get("/api/v1/feedback", params={"model": "chat"}).json()["feedback"]
        assert [(f["feedback_id"], f["score"]) for f in listed] == [("keep-me", 0.9)]
        assert listed[0]["created_at"].startswith(stamp[:19])
        assert _post(second, item).json()["duplicates"] == 1
        human = _human(second, "e1")
        assert human is not None and human["score"] == 0.9


BAD_FIELDS = [
    ({"model": 3}, "model", "expected a string"),
    ({"model": None}, "model", "required"),
    ({"event_id": ""}, "event_id", "must not be empty"),
    ({"event_id": "x" * 1025}, "event_id", "longer than 1024"),
    ({"trace_id": 7}, "trace_id", "expected a string"),
    ({"thumbs": "sideways"}, "thumbs", "expected 'up' or 'down'"),
    ({"score": 1.5}, "score", "from 0 to 1"),
    ({"score": -0.1}, "score", "from 0 to 1"),
    ({"score": True}, "score", "expected a number"),
    ({"score": "0.5"}, "score", "expected a number"),
    ({"comment": "c" * 4097}, "comment", "longer than 4096"),
    ({"corrected_answer": ["a"]}, "corrected_answer", "expected a string"),
    ({"corrected_answer": "a" * (64 * 1024 + 1)}, "corrected_answer", "longer than"),
    ({"by": "b" * 257}, "by", "longer than 256"),
    ({"timestamp": "yesterday"}, "timestamp", "RFC 3339"),
    ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp", "in the future"),
    ({"feedback_id": 12}, "feedback_id", "expected a string"),
    ({"color": "red"}, "color", "unknown field"),
]


@pytest.mark.parametrize(("change", "field", "reason"), BAD_FIELDS)
def test_each_invalid_field_is_named(
    server: RunningServer, change: dict[str, Any], field: str, reason: str
) -> None:
    """Every field's bad value is a 422 naming the row, the field and why; nothing stored."""
    _calls(server, ["e1"])
    good = {"model": "chat", "event_id": "e1", "thumbs": "up"}
    body = {"feedback": [good, {**good, **change}]}
    r = _post(server, body)
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert any(d["row"] == 1 and d["field"] == field and reason in d["reason"] for d in details), (
        details
    )
    assert all(d["row"] == 1 for d in details)
    with server.client(server.read_key) as c:
        assert c.get("/api/v1/feedback").json()["feedback"] == []


def test_missing_target_and_missing_verdict(server: RunningServer) -> None:
    """Neither event_id nor trace_id, and none of thumbs/score/comment/corrected_answer, are
    each a named problem of the row."""
    _calls(server, ["e1"])
    r = _post(server, {"model": "chat", "by": "ana"})
    assert r.status_code == 422
    got = {(d["row"], d["field"]) for d in r.json()["error"]["details"]}
    assert got == {(0, "event_id"), (0, "thumbs")}
    reasons = " ".join(d["reason"] for d in r.json()["error"]["details"])
    assert "trace_id" in reasons and "corrected_answer" in reasons


def test_batch_shape_errors(server: RunningServer) -> None:
    """Not JSON: 400; an empty list, a non-list, a non-object: 422; over 1000 items: 413;
    an unknown model: 404 naming the rows."""
    _calls(server, ["e1"])
    with server.client(server.ingest_key) as c:
        assert c.post("/api/v1/feedback", content=b"{nope").status_code == 400
    assert _post(server, {"feedback": []}).status_code == 422
    assert _post(server, {"feedback": {"model": "chat"}}).status_code == 422
    assert _post(server, [1, 2]).status_code == 422
    r = _post(server, {"feedback": ["x"]})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["row"] == 0
    item = {"model": "chat", "event_id": "e1", "thumbs": "up"}
    assert _post(server, {"feedback": [item] * 1001}).status_code == 413
    assert _post(server, {"feedback": [item] * 1000}).status_code == 200
    r = _post(server, {"feedback": [item, {**item, "model": "nope"}]})
    assert r.status_code == 404
    assert r.json()["error"]["details"] == [
        {"row": 1, "field": "model", "reason": "no model named 'nope'"}
    ]


def test_gzip_body_is_read_and_other_encodings_refused(server: RunningServer) -> None:
    """The SDK sends gzip (Content-Encoding: gzip); an encoding we cannot read is a 415."""
    import gzip
    import json

    _calls(server, ["gz"])
    body = gzip.compress(json.dumps({"feedback": [{"model": "chat", "event_id": "gz",
                                                   "thumbs": "down"}]}).encode())  # fmt: skip
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with server.client(server.ingest_key) as c:
        r = c.post("/api/v1/feedback", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 1
        headers["Content-Encoding"] = "br"
        r = c.post("/api/v1/feedback", content=body, headers=headers)
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    assert _human(server, "gz") is not None


def test_keys_and_dashboard_cookie(server: RunningServer) -> None:
    """Writing needs an ingest (or admin) key, or the dashboard's cookie with its request
    header; reading needs a read key."""
    _calls(server, ["e1"])
    item = {"model": "chat", "event_id": "e1", "thumbs": "up"}
    assert _post(server, item, server.read_key).status_code == 403
    with httpx.Client(base_url=server.url) as c:
        assert c.post("/api/v1/feedback", json=item).status_code == 401
        c.cookies.set(COOKIE, server.admin_key)
        assert c.post("/api/v1/feedback", json=item).status_code == 401
        r = c.post("/api/v1/feedback", json=item, headers={CSRF_HEADER: "1"})
        assert r.status_code == 200, r.text
    with server.client(server.ingest_key) as c:
        assert c.get("/api/v1/feedback").status_code == 403


def test_listing_filters_newest_first(server: RunningServer) -> None:
    """GET filters by model, call, trace and time, newest first, with a limit; an unknown
    model is 404 and start after end 422."""
    _calls(server, ["e1", "e2"])
    _calls(server, ["x1"], trace="1" * 32, model="other")
    times = [NOW - timedelta(minutes=m) for m in (30, 20, 10)]
    for t, (model, eid) in zip(
        times, [("chat", "e1"), ("chat", "e2"), ("other", "x1")], strict=True
    ):
        stamp = t.isoformat()
        assert _post(
            server, {"model": model, "event_id": eid, "thumbs": "up", "timestamp": stamp}
        ).is_success
    with server.client(server.read_key) as c:

        def ids(**params: Any) -> list[str]:
            r = c.get("/api/v1/feedback", params=params)
            assert r.status_code == 200, r.text
            return [f["event_id"] for f in r.json()["feedback"]]

        assert ids() == ["x1", "e2", "e1"]
        assert ids(model="chat") == ["e2", "e1"]
        assert ids(event_id="e1") == ["e1"]
        assert ids(trace_id="1" * 32) == ["x1"]
        assert ids(
            start=(NOW - timedelta(minutes=25)).isoformat(),
            end=(NOW - timedelta(minutes=5)).isoformat(),
        ) == ["x1", "e2"]
        assert ids(limit=1) == ["x1"]
        assert c.get("/api/v1/feedback", params={"model": "nope"}).status_code == 404
        bad = c.get("/api/v1/feedback", params={"start": NOW.isoformat(), "end": NOW.isoformat()})
        assert bad.status_code == 422


def test_agreement_with_the_judge_matches_sklearn(server: RunningServer) -> None:
    """Human verdicts against ``judge_correctness`` on the same calls: the pair count, the
    agreement rate, the 2x2 confusion and scikit-learn's kappa; calls judged by one side only
    are not pairs."""
    ids = [f"e{i}" for i in range(10)]
    _calls(server, ids)
    human = [True, True, False, False, False, True, False, False, True, False]
    judge = [True, False, False, False, True, True, False, False, False, False]
    items = [
        {"model": "chat", "event_id": eid, "thumbs": "down" if h else "up"}
        for eid, h in zip(ids[:8], human[:8], strict=True)
    ]
    items.append({"model": "chat", "event_id": "e8", "score": 0.2})  # flagged by its score
    items.append({"model": "chat", "event_id": "e9", "score": 0.7})
    assert _post(server, {"feedback": items}).is_success
    _store(server).record_evaluations(
        "chat",
        [
            {
                "event_id": eid,
                "evaluator": "judge_correctness",
                "score": 0.0 if j else 1.0,
                "flagged": j,
                "source": "judge",
            }
            for eid, j in zip(ids, judge, strict=True)
        ],
    )
    with server.client(server.read_key) as c:
        r = c.get(
            "/api/v1/models/chat/feedback/agreement", params={"evaluator": "judge_correctness"}
        )
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["n"] == 10 and got["reason"] is None
        assert got["kappa"] == pytest.approx(cohen_kappa_score(human, judge))
        assert got["agreement_rate"] == pytest.approx(0.7)
        assert got["confusion"] == {
            "human_flagged": {"evaluator_flagged": 2, "evaluator_ok": 2},
            "human_ok": {"evaluator_flagged": 1, "evaluator_ok": 5},
        }
        # A range before the calls holds no pairs: null, with the reason.
        empty = c.get(
            "/api/v1/models/chat/feedback/agreement",
            params={
                "evaluator": "judge_correctness",
                "end": (NOW - timedelta(hours=1)).isoformat(),
            },
        ).json()
        assert (empty["n"], empty["kappa"], empty["agreement_rate"]) == (0, None, None)
        assert "no items" in empty["reason"]
        none = c.get(
            "/api/v1/models/chat/feedback/agreement", params={"evaluator": "judge_relevance"}
        ).json()
        assert none["n"] == 0 and none["kappa"] is None
        bad = c.get("/api/v1/models/chat/feedback/agreement", params={"evaluator": "vibes"})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "evaluator"
        assert c.get("/api/v1/models/nope/feedback/agreement").status_code == 404


def test_agreement_with_one_verdict_only_has_no_kappa(server: RunningServer) -> None:
    """When humans and the evaluator flag every call alike, agreement is 1 but kappa is
    undefined: null, with the reason."""
    _calls(server, ["e1", "e2"])
    assert _post(
        server,
        {
            "feedback": [
                {"model": "chat", "event_id": "e1", "thumbs": "down"},
                {"model": "chat", "event_id": "e2", "thumbs": "down"},
            ]
        },
    ).is_success
    _store(server).record_evaluations(
        "chat",
        [
            {"event_id": e, "evaluator": "judge_groundedness", "score": 0.1, "flagged": True}
            for e in ("e1", "e2")
        ],
    )
    with server.client(server.read_key) as c:
        got = c.get(
            "/api/v1/models/chat/feedback/agreement", params={"evaluator": "judge_groundedness"}
        ).json()
    assert (got["n"], got["agreement_rate"], got["kappa"]) == (2, 1.0, None)
    assert "undefined" in got["reason"]
