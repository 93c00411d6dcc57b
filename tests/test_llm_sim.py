"""The simulated RAG chat app (support-bot): its OTLP requests decode with the server's own
decoder into the expected span tree and LLM events; outcome shares follow the configured mix
(checked by the label-free evaluators too); a short run against a real server stores it all."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.conftest import RunningServer
from watchkeeper.evaluators import detect_refusal, find_pii, groundedness
from watchkeeper.evaluators.pii import luhn_valid
from watchkeeper.llm.prices import PriceTable
from watchkeeper.llm_sim import (
    CUSTOMERS,
    DEFAULT_MIX,
    KNOWLEDGE_BASE,
    MODELS,
    SUPPORT_BOT,
    ChatMix,
    ChatSimulator,
    ChatTraffic,
    export_request,
)
from watchkeeper.otlp.decode import PROTOBUF, decode_request
from watchkeeper.otlp.genai import llm_events, price_events

T0 = 1_760_000_000.0  # 2025-10-09, inside the price table's dates


def _calls(n: int, seed: int = 5, mix: ChatMix = DEFAULT_MIX, rate: float = 2.0) -> list:  # type: ignore[type-arg]
    return ChatTraffic(seed, mix).calls(T0, n, rate)


def test_requests_decode_into_the_span_tree_and_llm_events() -> None:
    """Every trace is root -> retrieval -> (tool) -> LLM call, and its LLM span becomes one
    event with the call's ids, conversation, model, tokens, TTFT, texts, status and cost."""
    calls = _calls(400, mix=replace_mix(error=0.05))
    body = export_request(calls).SerializeToString()
    spans = decode_request(body, PROTOBUF)
    assert len(spans) == sum(len(c.spans) for c in calls)
    by_trace: dict[str, list] = {}  # type: ignore[type-arg]
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
        assert span.service_name == SUPPORT_BOT
    assert set(by_trace) == {c.trace_id for c in calls}
    tools = 0
    for call in calls:
        tree = by_trace[call.trace_id]
        (root,) = [s for s in tree if s.parent_span_id is None]
        assert (root.name, root.kind) == ("POST /chat", "server")
        assert all(s.parent_span_id == root.span_id for s in tree if s is not root)
        assert all(root.start_time_unix_nano <= s.start_time_unix_nano for s in tree)
        assert all(s.end_time_unix_nano <= root.end_time_unix_nano for s in tree)
        kinds = {s.name: s for s in tree}
        retrieval = kinds["retrieve_documents"]
        assert retrieval.attributes["openinference.span.kind"] == "RETRIEVER"
        docs = [retrieval.attributes[f"retrieval.documents.{i}.document.content"] for i in range(3)]
        assert tuple(docs) == call.documents
        llm = kinds[f"chat {call.request_model}"]
        assert llm.span_id == call.llm_span_id and llm.kind == "client"
        assert llm.start_time_unix_nano >= retrieval.end_time_unix_nano
        if "execute_tool lookup_order" in kinds:
            tools += 1
            assert kinds["execute_tool lookup_order"].end_time_unix_nano <= llm.start_time_unix_nano
        assert root.status_code == ("error" if call.outcome == "error" else "unset")
    assert 0.15 * len(calls) < tools < 0.35 * len(calls)  # tool share 0.25

    grouped, ignored = llm_events(spans)
    assert set(grouped) == {SUPPORT_BOT}
    assert ignored == len(spans) - len(calls)
    events = {e["event_id"]: e for e in grouped[SUPPORT_BOT]}
    assert price_events(list(events.values()), PriceTable.load()) == sum(
        c.answer is not None for c in calls
    )
    for call in calls:
        event = events[call.llm_span_id]
        assert event["segments"]["provider"] == "openai"
        assert event["segments"]["request_model"] == call.request_model
        assert event["trace_id"] == call.trace_id
        assert event["conversation_id"] == call.conversation_id
        assert all(doc in event["context"] for doc in call.documents)  # from the retrieval
        assert event["prompt"].endswith(call.question)
        if call.answer is None:
            assert event["status"] == "error" and event["error"]
            assert event["version"] == call.request_model
            assert "response" not in event and "cost_usd" not in event
            continue
        assert event["status"] == "ok"
        assert event["version"] == call.response_model
        assert event["response"] == call.answer
        assert event["segments"]["finish_reason"] == "stop"
        assert (event["input_tokens"], event["output_tokens"]) == (
            call.input_tokens,
            call.output_tokens,
        )
        assert call.output_tokens == math.ceil(len(call.answer) / 4)
        assert 0 < event["time_to_first_token_ms"] < event["latency_ms"]
        # priced from the shipped table at the call's date
        rate = {"gpt-4o-mini": (0.15, 0.60), "gpt-4.1-mini": (0.40, 1.60)}[call.request_model]
        expected = (call.input_tokens * rate[0] + call.output_tokens * rate[1]) / 1e6
        assert event["cost_usd"] == pytest.approx(expected, rel=1e-9)


def _z(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def replace_mix(**kwargs: float) -> ChatMix:
    fields = {**DEFAULT_MIX.__dict__, **kwargs}
    return ChatMix(**fields)


def test_genai_attributes_follow_the_current_conventions() -> None:
    """The LLM span carries GenAI input/output messages (role + parts), system instructions
    holding the retrieved context, the conversation id and finish reasons."""
    call = next(c for c in _calls(50) if c.answer is not None and c.turn > 1)
    spans = decode_request(export_request([call]).SerializeToString(), PROTOBUF)
    (llm,) = [s for s in spans if s.span_id == call.llm_span_id]
    attrs = llm.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.conversation.id"] == call.conversation_id
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    messages = json.loads(attrs["gen_ai.input.messages"])
    assert len(messages) == min(2 * (call.turn - 1), 6) + 1
    assert [m["role"] for m in messages[-3:]] == ["user", "assistant", "user"]
    assert messages[-1]["parts"] == [{"type": "text", "content": call.question}]
    (output,) = json.loads(attrs["gen_ai.output.messages"])
    assert output == {
        "role": "assistant",
        "parts": [{"type": "text", "content": call.answer}],
        "finish_reason": "stop",
    }
    (instructions,) = json.loads(attrs["gen_ai.system_instructions"])
    assert all(doc in instructions["content"] for doc in call.documents)
    known = {m[0] for m in MODELS}
    assert attrs["gen_ai.request.model"] in known


def test_generation_is_deterministic_per_seed() -> None:
    first = export_request(_calls(60, seed=3)).SerializeToString()
    again = export_request(_calls(60, seed=3)).SerializeToString()
    other = export_request(_calls(60, seed=4)).SerializeToString()
    assert first == again
    assert first != other


@pytest.mark.parametrize("seed", [1, 2])
def test_outcome_shares_follow_the_mix_and_the_evaluators_agree(seed: int) -> None:
    """For a seed, the shares of hallucinated, PII, refused and failed calls are within 4
    standard errors of the configured rates, and the label-free evaluators see exactly the
    generated outcomes: grounded answers are supported by the retrieved documents,
    hallucinated ones are not, PII answers carry an e-mail and a Luhn-valid card number."""
    mix = ChatMix(hallucinated=0.2, pii=0.05, refusal=0.1, error=0.03)
    n = 4000
    calls = _calls(n, seed=seed, mix=mix)
    counts = Counter(c.outcome for c in calls)
    for outcome in ("grounded", "hallucinated", "pii", "refusal", "error"):
        p = mix.share(outcome)
        assert abs(counts[outcome] / n - p) < 4 * math.sqrt(p * (1 - p) / n), outcome
    cards = {card.replace(" ", "") for _, _, card in CUSTOMERS}
    assert all(luhn_valid(card) for card in cards)
    for call in calls:
        if call.answer is None:
            assert call.outcome == "error"
            continue
        g = groundedness(call.answer, list(call.documents))
        assert g.hallucination == (call.outcome in ("hallucinated", "refusal")), call.answer
        kinds = {f.kind for f in find_pii(call.answer)}
        assert kinds == ({"email", "card"} if call.outcome == "pii" else set()), call.answer
        refused = detect_refusal(call.answer).kind == "refusal"
        assert refused == (call.outcome == "refusal"), call.answer
        if call.outcome in ("grounded", "pii"):
            fact = next(f for f in KNOWLEDGE_BASE if f.text == call.documents[0])
            assert call.expected == fact.expected


def test_the_degradation_raises_hallucinations_after_its_start() -> None:
    start = T0 + 3600
    traffic = ChatTraffic(9, degrade_from=start)
    calls = traffic.calls(T0, 4000, 0.5)  # ~8000 s: half before, half after
    before = [c for c in calls if c.start_ns / 1e9 < start]
    after = [c for c in calls if c.start_ns / 1e9 >= start]
    assert len(before) > 1000 and len(after) > 1000

    def share(group: list) -> float:  # type: ignore[type-arg]
        return sum(c.outcome == "hallucinated" for c in group) / len(group)

    assert abs(share(before) - traffic.mix.hallucinated) < 0.03
    assert abs(share(after) - traffic.degraded.hallucinated) < 0.05


def test_conversations_have_several_turns_and_feedback_and_labels_come_with_some() -> None:
    calls = _calls(2000)
    turns = Counter(c.conversation_id for c in calls)
    assert max(turns.values()) >= 3
    assert sum(v > 1 for v in turns.values()) > 100
    last: dict[str, int] = {}
    for call in calls:  # a conversation starts at turn 1 and counts its answered turns
        previous = last.get(call.conversation_id, 0)
        assert call.turn in (previous, previous + 1) and call.turn >= 1
        last[call.conversation_id] = call.turn
    rated = [c for c in calls if c.feedback is not None]
    assert abs(len(rated) / len(calls) - DEFAULT_MIX.feedback) < 0.03
    bad_down = [c.feedback["thumbs"] == "down" for c in rated if c.outcome != "grounded"]
    good_down = [c.feedback["thumbs"] == "down" for c in rated if c.outcome == "grounded"]
    assert sum(bad_down) / len(bad_down) > 0.5 > sum(good_down) / len(good_down)
    labelled = [c for c in calls if c.label_delay_s is not None]
    assert all(c.expected and c.answer is not None for c in labelled)
    answered = sum(c.expected is not None and c.answer is not None for c in calls)
    assert abs(len(labelled) / answered - DEFAULT_MIX.ground_truth) < 0.04


def test_a_run_against_a_real_server_stores_calls_labels_and_feedback(
    server: RunningServer,
) -> None:
    """Backfill a few minutes and stream a few live calls: the server stores one LLM event per
    trace, the expected answers as actuals, and (where the route exists) the feedback."""
    sim = ChatSimulator(server.url, server.admin_key, rate=10.0, seed=11)
    sent = sim.backfill(3)
    assert sent == sim.traces_sent > 100 and not sim.errors
    assert sim.spans_sent >= 3 * sent
    sim.start()
    deadline = time.monotonic() + 60
    while sim.traces_sent < sent + 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    sim.stop()
    assert sim.traces_sent >= sent + 5 and not sim.errors
    with server.client(server.read_key) as client:
        deadline = time.monotonic() + 60
        while True:
            model = client.get(f"/api/v1/models/{SUPPORT_BOT}").json()
            if model["event_count"] >= sim.traces_sent or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert model["task"] == "llm"
        assert model["event_count"] == sim.traces_sent
        assert model["actual_count"] == sim.actuals_sent > 0
        now = datetime.now(timezone.utc)
        params = {"names": "count,error_rate", "window": "all",
                  "start": _z(now - timedelta(hours=1)), "end": _z(now)}  # fmt: skip
        metrics = client.get(f"/api/v1/models/{SUPPORT_BOT}/metrics", params=params).json()
        assert metrics["metrics"]["count"] == [sim.traces_sent]
        assert 0 < metrics["metrics"]["error_rate"][0] < 0.1
        if sim.feedback_route:
            reply = client.get("/api/v1/feedback", params={"model": SUPPORT_BOT, "limit": 1000})
            assert reply.status_code == 200
            assert len(reply.json()["feedback"]) == sim.feedback_sent > 0


def test_an_ingest_key_is_enough_and_a_missing_server_is_reported(server: RunningServer) -> None:
    """With an ingest key (no reads) the backfill does not wait for a count it cannot read;
    against a closed port the failures are collected, not raised."""
    sim = ChatSimulator(server.url, server.ingest_key, rate=5.0, seed=2, timeout=5.0)
    assert sim.backfill(1) == sim.traces_sent > 0 and not sim.errors
    assert sim.stored_calls() is None
    gone = ChatSimulator("http://127.0.0.1:9", server.ingest_key, rate=5.0, seed=2, timeout=1.0)
    gone._stop.set()  # no waiting between retries
    gone.backfill(0.2)
    assert gone.traces_sent == 0 and gone.errors and gone.errors[0].startswith("traces: 0")
    assert httpx.get(server.url + "/healthz").status_code == 200
