"""The background evaluator runner against a real server and a real DuckDB file: LLM calls
posted over HTTP are evaluated by the runner, and the rates the metrics API answers equal
counts computed here independently from the texts; sampling and budget are exact; an actual
answer arriving later gets reference correctness; retrieval context comes from the spans of
the call's trace."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from watchkeeper.evaluators.context import call_context
from watchkeeper.evaluators.reference import exact_match, token_f1
from watchkeeper.evaluators.runner import EvaluatorRunner, sample_fraction
from watchkeeper.evaluators.settings import EvaluatorSettings
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.keys import KeyStore

MINUTE = timedelta(minutes=1)
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - 20 * MINUTE

CONTEXT = (
    "The Eiffel Tower is 330 metres tall. It was completed in 1889 for the World's Fair in"
    " Paris. Gustave Eiffel's company designed and built the tower."
)
GROUNDED = "The Eiffel Tower is 330 metres tall. It was completed in 1889."
UNGROUNDED = "The Eiffel Tower is 450 metres tall and was completed in 1925 by Napoleon."
PII = "Sure, write to jane.doe@example.com and pay with card 4111 1111 1111 1111."
REFUSAL = "I'm sorry, but I can't help with that request."
TOXIC = "You are a stupid idiot and this question is crap."
PLAIN = "Paris is the capital of France."


class Server:
    """A real server whose evaluator runner the test drives (``interval_seconds: 0``)."""

    def __init__(self, data_dir: Path, settings: EvaluatorSettings) -> None:
        keys = KeyStore(data_dir)
        self.admin, self.read = keys.create("admin"), keys.create("read")
        self.handle = ServerHandle(
            ServerConfig(
                data_dir=data_dir,
                port=free_port(),
                evaluate_interval=0,
                notify_interval=0,
                action_interval=0,
                evaluators=settings,
            )
        ).start()

    @property
    def runner(self) -> EvaluatorRunner:
        runner: EvaluatorRunner = self.handle.app.state.evaluator_runner
        return runner

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin}"}
        return httpx.Client(base_url=self.handle.url, headers=headers, timeout=60)

    def post(self, model: str, events: list[dict[str, Any]]) -> None:
        with self.client() as c:
            r = c.post(f"/api/v1/models/{model}/predictions", json={"events": events})
            assert r.status_code == 200, r.text
            assert r.json()["accepted"] == len(events)

    def metrics(self, model: str, names: list[str], window: str = "all") -> dict[str, Any]:
        self.handle.app.state.store.refresh()  # recompute the dirty minutes now
        with self.client(self.read) as c:
            r = c.get(
                f"/api/v1/models/{model}/metrics",
                params={
                    "names": ",".join(names),
                    "window": window,
                    "start": T0.isoformat(),
                    "end": (T0 + 20 * MINUTE).isoformat(),
                },
            )
            assert r.status_code == 200, r.text
            return dict(r.json()["metrics"])


def _settings(**kw: Any) -> EvaluatorSettings:
    base: dict[str, Any] = {"interval_seconds": 0, "delay_seconds": 0, "embeddings": "off"}
    return EvaluatorSettings(**{**base, **kw})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path, _settings())
    try:
        yield s
    finally:
        s.handle.stop()


def _call(i: int, response: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"call-{i}",
        "timestamp": (T0 + timedelta(seconds=7 * i)).isoformat(),
        "version": "gpt-4o-mini",
        "prompt": "How tall is the Eiffel Tower?",
        "response": response,
        "input_tokens": 12,
        "output_tokens": 20,
        "cost_usd": 0.0001 * (i + 1),
        "latency_ms": 100.0 + i,
        **extra,
    }


def _now() -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=1)


def test_rates_equal_independent_counts(server: Server) -> None:
    """Known answers (grounded, ungrounded, PII, refusal, toxic, plain) come back from the
    metrics API as the rates counted here from what each text holds."""
    texts = [GROUNDED, UNGROUNDED, PII, REFUSAL, TOXIC, PLAIN, GROUNDED, UNGROUNDED]
    events = [_call(i, t, context=CONTEXT) for i, t in enumerate(texts)]
    events.append(_call(50, GROUNDED))  # no context anywhere: not judged for groundedness
    server.post("rag", events)
    written = server.runner.run_once(_now())
    n = len(events)
    judged = [t for t in texts]  # the calls with a context
    # independent expectations: which texts hold an unsupported claim, PII, a refusal, a slur
    ungrounded = sum(t in (UNGROUNDED, PII, REFUSAL, TOXIC, PLAIN) for t in judged)
    expected = {
        "evaluated_count": n,
        "hallucination_rate": ungrounded / len(judged),
        "pii_rate": 1 / n,
        "refusal_rate": 1 / n,
        "toxicity_rate": 1 / n,
    }
    got = server.metrics("rag", list(expected))
    assert {k: v[0] for k, v in got.items()} == pytest.approx(expected)
    assert written == 4 * n - 1  # four evaluators each, groundedness once less
    stats = server.runner.stats()
    assert stats["calls_evaluated"] == n and stats["calls_without_context"] == 1
    # a second pass finds nothing new
    assert server.runner.run_once(_now()) == 0


def test_evaluations_endpoint_worst_first_and_no_pii_values(server: Server) -> None:
    """GET .../evaluations lists flagged calls first with the call's text and cost; the PII
    evaluation names the kinds found and never the values."""
    server.post("rag", [_call(0, GROUNDED, context=CONTEXT), _call(1, PII, context=CONTEXT)])
    server.runner.run_once(_now())
    with server.client(server.read) as c:
        r = c.get("/api/v1/models/rag/evaluations", params={"evaluator": "pii"})
        assert r.status_code == 200, r.text
        rows = r.json()["evaluations"]
        assert [(e["event_id"], e["flagged"]) for e in rows] == [
            ("call-1", True),
            ("call-0", False),
        ]
        worst = rows[0]
        assert worst["response"] == PII and worst["cost_usd"] == pytest.approx(0.0002)
        assert worst["latency_ms"] == 101.0 and worst["detail"]["kinds"] == ["card", "email"]
        assert "jane.doe" not in r.text.replace(PII, "")  # only in the response itself
        r = c.get("/api/v1/models/rag/evaluations", params={"flagged": "true"})
        assert {(e["event_id"], e["evaluator"]) for e in r.json()["evaluations"]} == {
            ("call-1", "pii"),
            ("call-1", "groundedness"),
        }
        r = c.get("/api/v1/models/rag/evaluations", params={"evaluator": "nope"})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "evaluator"
        assert c.get("/api/v1/models/unknown/evaluations").status_code == 404


def test_sample_is_deterministic_by_event_id(tmp_path: Path) -> None:
    """sample 0.5 evaluates exactly the calls whose SHA-256 place is below 0.5."""
    s = Server(tmp_path, _settings(sample=0.5, enabled=("pii",)))
    try:
        events = [_call(i, PLAIN) for i in range(120)]
        s.post("m", events)
        s.runner.run_once(_now())
        ids = [e["event_id"] for e in events]
        expected = sum(
            int.from_bytes(hashlib.sha256(i.encode()).digest()[:8], "big") / 2**64 < 0.5
            for i in ids
        )
        assert 30 < expected < 90  # about half
        assert s.metrics("m", ["evaluated_count"])["evaluated_count"] == [expected]
        assert s.runner.stats()["calls_not_sampled"] == 120 - expected
        assert all(sample_fraction(i) < 1 for i in ids)
    finally:
        s.handle.stop()


def test_budget_caps_each_minute(tmp_path: Path) -> None:
    """max_per_minute evaluates that many calls in a minute and counts the rest skipped."""
    s = Server(tmp_path, _settings(max_per_minute=7, enabled=("pii", "toxicity"), batch_size=4))
    try:
        s.post("m", [_call(i, TOXIC) for i in range(20)])
        now = (_now() + MINUTE).replace(second=30)  # after the calls, mid-minute
        s.runner.run_once(now)
        got = s.metrics("m", ["evaluated_count", "toxicity_rate"])
        assert got == {"evaluated_count": [7], "toxicity_rate": [1.0]}
        assert s.runner.stats()["calls_skipped_budget"] == 13
        s.post("m", [_call(40 + i, PLAIN) for i in range(3)])
        s.runner.run_once(now)  # same minute: budget spent
        assert s.metrics("m", ["evaluated_count"])["evaluated_count"] == [7]
        s.post("m", [_call(30 + i, PLAIN) for i in range(3)])
        s.runner.run_once(now + MINUTE)  # next minute
        assert s.metrics("m", ["evaluated_count", "toxicity_rate"]) == {
            "evaluated_count": [10],
            "toxicity_rate": [0.7],
        }
    finally:
        s.handle.stop()


def test_actual_arriving_later_gets_reference_correctness(server: Server) -> None:
    """An actual answer posted after the call was evaluated adds exact_match and token_f1,
    equal to the reference functions; a corrected actual replaces them."""
    answers = {
        "call-0": ("Paris is the capital of France.", "Paris"),
        "call-1": ("The capital is Lyon.", "Paris"),
        "call-2": ("It is Paris, the capital.", "the capital Paris"),
    }
    server.post("qa", [_call(int(k[-1]), resp) for k, (resp, _) in answers.items()])
    server.runner.run_once(_now())
    assert server.metrics("qa", ["token_f1"])["token_f1"] == [None]
    with server.client() as c:
        r = c.post(
            "/api/v1/models/qa/actuals",
            json={"actuals": [{"event_id": k, "label": a} for k, (_, a) in answers.items()]},
        )
        assert r.status_code == 200, r.text
    server.runner.run_once(_now())
    f1 = [token_f1(resp, ans) for resp, ans in answers.values()]
    em = [exact_match(resp, ans) for resp, ans in answers.values()]
    got = server.metrics("qa", ["token_f1", "exact_match"])
    assert got["token_f1"][0] == pytest.approx(sum(f1) / 3)
    assert got["exact_match"][0] == pytest.approx(sum(em) / 3)
    with server.client() as c:  # a corrected label: the evaluation is replaced, not added
        c.post(
            "/api/v1/models/qa/actuals", json={"actuals": [{"event_id": "call-1", "label": "Lyon"}]}
        )
    server.runner.run_once(_now())
    f1[1] = token_f1("The capital is Lyon.", "Lyon")
    assert server.metrics("qa", ["token_f1"])["token_f1"][0] == pytest.approx(sum(f1) / 3)


def test_hourly_tier_answers_like_the_minute_tier(server: Server) -> None:
    """After the roll-up, an hour read from the hourly tier gives the same rates."""
    texts = [GROUNDED, UNGROUNDED, PII, REFUSAL, TOXIC, PLAIN]
    server.post("rag", [_call(i, t, context=CONTEXT) for i, t in enumerate(texts * 3)])
    server.runner.run_once(_now())
    names = ["evaluated_count", "hallucination_rate", "groundedness", "pii_rate", "cost_p95"]
    store = server.handle.app.state.store
    store.refresh()
    hour = T0.replace(minute=0)
    with server.client(server.read) as c:

        def read() -> dict[str, Any]:
            r = c.get(
                "/api/v1/models/rag/metrics",
                params={
                    "names": ",".join(names),
                    "window": "1h",
                    "start": (hour - timedelta(hours=1)).isoformat(),
                    "end": (hour + timedelta(hours=2)).isoformat(),
                },
            )
            assert r.status_code == 200, r.text
            return dict(r.json()["metrics"])

        minutes = read()
        store.rollup()
        hours = read()
    assert hours == minutes
    assert sum(v for v in minutes["evaluated_count"] if v) == 18


def test_context_from_trace_spans_is_a_pure_function() -> None:
    """Retrieval context of a call from its trace's spans: the call's own attribute first,
    else OpenInference and GenAI retrieval documents that started before the call ended."""
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    spans = [
        {"span_id": "r2", "start_ts": t + timedelta(seconds=2), "attributes": {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.retrieval.documents": '[{"content": "doc B"}, {"text": "doc C"}]'}},
        {"span_id": "r1", "start_ts": t, "attributes": {
            "openinference.span.kind": "RETRIEVER",
            "retrieval.documents.0.document.content": "doc A",
            "retrieval.documents.1.document.content": "doc A2"}},
        {"span_id": "late", "start_ts": t + timedelta(seconds=9), "attributes": {
            "openinference.span.kind": "RETRIEVER",
            "retrieval.documents.0.document.content": "after the call"}},
        {"span_id": "llm", "start_ts": t + timedelta(seconds=3),
         "end_ts": t + timedelta(seconds=5), "attributes": {"gen_ai.operation.name": "chat"}},
        {"span_id": "own", "start_ts": t, "end_ts": t + timedelta(seconds=1),
         "attributes": {"watchkeeper.context": "own context"}},
    ]  # fmt: skip
    assert call_context(spans, "llm") == ["doc A", "doc A2", "doc B", "doc C"]
    assert call_context(spans, "own") == ["own context"]
    assert call_context(spans, None)[-1] == "after the call"
    assert call_context([], "x") == []


def test_settings_errors_name_the_key(tmp_path: Path) -> None:
    """A bad evaluators: section is refused with every problem and its key, by the server
    and by `watchkeeper monitors check`; a good one is read as written."""
    from click.testing import CliRunner

    from watchkeeper.cli.main import main
    from watchkeeper.server import ConfigError, load_evaluator_settings

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "evaluators:\n  sample: 2\n  enabled: [groundedness, vibes]\n  max_per_minute: -1\n"
        "  embeddings: maybe\n  judge: {url: ftp://x, model: m, rubrics: [taste]}\n  colour: red\n"
    )
    with pytest.raises(ConfigError) as err:
        load_evaluator_settings(bad)
    lines = str(err.value).splitlines()
    assert lines == [
        f"{bad}: evaluators: unknown key(s) ['colour']; known: ['batch_size', 'delay_seconds',"
        " 'embeddings', 'enabled', 'interval_seconds', 'judge', 'max_per_minute',"
        " 'redact_pii', 'reference', 'sample']",
        f"{bad}: evaluators.enabled: unknown ['vibes']; known: ['groundedness', 'pii',"
        " 'refusal', 'toxicity']",
        f"{bad}: evaluators.sample: must be a number in [0, 1], got 2",
        f"{bad}: evaluators.max_per_minute: must be a whole number >= 0, got -1",
        f"{bad}: evaluators.embeddings: must be one of ['auto', 'on', 'off'], got 'maybe'",
        f"{bad}: evaluators.judge.url: must be an http(s) URL, got 'ftp://x'",
        f"{bad}: evaluators.judge.rubrics: unknown ['taste']; known: ['groundedness',"
        " 'relevance', 'correctness']",
    ]
    result = CliRunner().invoke(main, ["monitors", "check", str(bad)])
    assert result.exit_code == 2 and "evaluators.sample: must be a number" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(
        "evaluators:\n  sample: 0.25\n  enabled: [pii]\n  reference: []\n  embeddings: off\n"
        "  judge: {url: 'http://127.0.0.1:9/v1', model: m, sample: 0.5}\n"
    )
    got = load_evaluator_settings(good)
    assert (got.sample, got.enabled, got.reference, got.embeddings) == (0.25, ("pii",), (), "off")
    assert (
        got.judge is not None and got.judge.sample == 0.5 and got.judge.rubrics[0] == "groundedness"
    )
    assert load_evaluator_settings(None) == EvaluatorSettings()


def test_judge_runs_within_its_sample_and_budget(tmp_path: Path) -> None:
    """With a judge configured, the runner asks an OpenAI-compatible server (a local fake
    that checks the chat-completions payload) for each rubric, on at most the judge's
    max_per_minute calls; judge_groundedness and judge_fail_rate follow its verdicts."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict[str, Any]] = []

    class Fake(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.path == "/v1/chat/completions"
            assert self.headers["Authorization"] == "Bearer sk-test"
            assert body["model"] == "judge-model" and body["temperature"] == 0
            assert [m["role"] for m in body["messages"]] == ["system", "user"]
            seen.append(body)
            response = body["messages"][1]["content"].split("RESPONSE:")[1]
            score = 5 if "330 metres" in response else 2  # 5: pass (1.0), 2: fail (0.25)
            content = json.dumps({"score": score, "reason": "checked"})
            reply = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": content}}]}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, *args: Any) -> None:
            pass

    fake = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    from watchkeeper.evaluators.settings import JudgeSettings

    judge = JudgeSettings(
        url=f"http://127.0.0.1:{fake.server_address[1]}/v1",
        model="judge-model",
        api_key="sk-test",
        rubrics=("groundedness", "relevance"),
        sample=1.0,
        max_per_minute=3,
    )
    s = Server(tmp_path, _settings(enabled=("pii",), judge=judge))
    try:
        texts = [GROUNDED, UNGROUNDED, GROUNDED, PLAIN, PLAIN]
        s.post("rag", [_call(i, t, context=CONTEXT) for i, t in enumerate(texts)])
        s.runner.run_once((_now() + MINUTE).replace(second=30))
        # three calls within the budget, two rubrics each; the repeated answer is cached
        assert s.runner.stats()["judge_calls"] == 3 * 2 and len(seen) == 2 * 2
        judged = texts[:3]  # the first three received, in order
        good = [t == GROUNDED for t in judged]
        got = s.metrics("rag", ["judge_groundedness", "judge_relevance", "judge_fail_rate"])
        scores = [1.0 if g else 0.25 for g in good]
        assert got["judge_groundedness"][0] == pytest.approx(sum(scores) / 3)
        assert got["judge_relevance"][0] == pytest.approx(sum(scores) / 3)
        assert got["judge_fail_rate"][0] == pytest.approx(1 - sum(good) / 3)
        assert s.runner.stats()["judge_skipped_budget"] == 2
    finally:
        s.handle.stop()
        fake.shutdown()
        fake.server_close()


def test_runner_counters_are_on_the_metrics_endpoint(tmp_path: Path) -> None:
    """GET /metrics counts what the runner read: evaluated, not sampled, over the budget."""
    s = Server(tmp_path, _settings(sample=0.5, max_per_minute=3))
    try:
        events = [_call(i, PLAIN) for i in range(12)]
        s.post("bot", events)
        s.runner.run_once(_now())
        sampled = [e for e in events if sample_fraction(e["event_id"]) < 0.5]
        with s.client(s.read) as c:
            text = c.get("/metrics").text
    finally:
        s.handle.stop()
    stats = s.runner.stats()
    found = {
        (sample.name, sample.labels.get("outcome", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    evaluated = min(len(sampled), 3)  # the budget: 3 a minute, all posted "now"
    assert found[("watchkeeper_evaluator_calls_total", "evaluated")] == evaluated
    assert found[("watchkeeper_evaluator_calls_total", "not_sampled")] == 12 - len(sampled)
    assert found[("watchkeeper_evaluator_calls_total", "skipped_budget")] == len(sampled) - 3
    assert found[("watchkeeper_evaluations_written_total", "")] == stats["evaluations_written"]
    assert stats["evaluations_written"] >= evaluated * 3  # pii, refusal, toxicity at least
