"""The LLM-as-judge client against a real HTTP server on loopback that speaks the OpenAI
chat-completions API and checks each request's shape (tests/judge_server.py)."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.judge_server import JudgeServer, hashed_score
from watchkeeper.evaluators.judge import (
    RUBRICS,
    Judge,
    JudgeConfig,
    JudgeError,
    JudgeResult,
    parse_verdict,
)

KEY = "sk-test-4f9a1c0b7e2d"


@pytest.fixture
def server() -> Iterator[JudgeServer]:
    with JudgeServer(KEY) as running:
        yield running


def _judge(server: JudgeServer, **overrides: object) -> tuple[Judge, list[float]]:
    settings: dict[str, object] = {
        "url": server.url,
        "model": "gpt-4o-mini",
        "api_key": KEY,
        "max_per_minute": 60_000,
        "burst": 1000,
    }
    settings.update(overrides)
    sleeps: list[float] = []
    return Judge(JudgeConfig.from_mapping(settings), sleep=sleeps.append), sleeps


def test_request_is_the_documented_chat_completions_payload(server: JudgeServer) -> None:
    """One evaluate = one POST /v1/chat/completions with the bearer key, the model, a system
    rubric and a user message, temperature 0 and the JSON response format."""
    judge, _ = _judge(server)
    judge.evaluate("relevance", prompt="What is 2+2? SCORE=5", response="4")
    assert server.count == 1
    got = server.requests[0]
    assert got.headers["Authorization"] == f"Bearer {KEY}"
    assert got.headers["Content-Type"] == "application/json"
    user = Judge.user_message(RUBRICS["relevance"], "What is 2+2? SCORE=5", "4", None, None)
    assert got.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": RUBRICS["relevance"].instructions},
            {"role": "user", "content": user},
        ],
        "temperature": 0,
        "response_format": {"type": "json_object"},
    }


@pytest.mark.parametrize("raw", [1, 2, 3, 4, 5])
def test_scores_are_mapped_to_0_1_and_pass_from_4(server: JudgeServer, raw: int) -> None:
    """A 1-5 verdict becomes (s - 1) / 4; 4 and 5 pass with the rubric's labels."""
    judge, _ = _judge(server)
    result = judge.evaluate(
        "groundedness",
        prompt="Who founded Acme?",
        response=f"Jane Smith. SCORE={raw}",
        context="Acme was founded by Jane Smith.",
    )
    assert result.score == (raw - 1) / 4
    assert result.raw == raw
    assert result.passed is (raw >= 4)
    assert result.label == ("grounded" if raw >= 4 else "ungrounded")
    assert result.reason == f"scored {raw} by the stand-in"
    assert not result.cached


def test_unmarked_inputs_get_the_servers_hashed_verdict(server: JudgeServer) -> None:
    """Without a marker the stand-in's verdict is a hash of the user message: the client
    reports exactly that score for each rubric, and the inputs reach the message."""
    judge, _ = _judge(server)
    cases = [
        ("groundedness", {"context": "Refunds take 5 days."}),
        ("relevance", {}),
        ("correctness", {"reference": "Five business days."}),
    ]
    for name, extra in cases:
        result = judge.evaluate(
            name, prompt="How long do refunds take?", response="5 days", **extra
        )  # type: ignore[arg-type]
        user = server.requests[-1].body["messages"][1]["content"]
        assert result.raw == hashed_score(user)
        for text in extra.values():
            assert text in user
    assert server.count == 3


def test_rubric_inputs_are_required() -> None:
    """Correctness needs a reference, groundedness a context: a ValueError before any
    request (the url points nowhere)."""
    judge = Judge(JudgeConfig(url="http://127.0.0.1:9/v1", model="m"))
    with pytest.raises(ValueError, match="reference"):
        judge.evaluate("correctness", prompt="q", response="a")
    with pytest.raises(ValueError, match="context"):
        judge.evaluate("groundedness", prompt="q", response="a", context="  ")
    with pytest.raises(ValueError, match="unknown rubric"):
        judge.evaluate("tone", prompt="q", response="a")
    assert judge.requests == 0


def test_cache_hits_send_no_request(server: JudgeServer) -> None:
    """The same (model, rubric, inputs) is answered from the LRU; any change asks again; a
    second judge sharing the persisted tier asks nothing; another model is another key."""
    store: dict[str, JudgeResult] = {}

    class DictCache:
        def get(self, key: str) -> JudgeResult | None:
            return store.get(key)

        def put(self, key: str, result: JudgeResult) -> None:
            store[key] = result

    judge, _ = _judge(server)
    judge.store = DictCache()
    first = judge.evaluate("relevance", prompt="q1", response="a1")
    again = judge.evaluate("relevance", prompt="q1", response="a1")
    assert server.count == 1
    assert again.cached and not first.cached
    assert (again.score, again.label, again.reason) == (first.score, first.label, first.reason)
    judge.evaluate("relevance", prompt="q1", response="a2")
    judge.evaluate("correctness", prompt="q1", response="a1", reference="r")
    assert server.count == 3 and len(store) == 3

    fresh, _ = _judge(server)
    fresh.store = DictCache()
    assert fresh.evaluate("relevance", prompt="q1", response="a1").cached
    assert server.count == 3
    other, _ = _judge(server, model="gpt-4.1")
    other.store = DictCache()
    assert not other.evaluate("relevance", prompt="q1", response="a1").cached
    assert server.count == 4


def test_lru_evicts_the_least_recently_used(server: JudgeServer) -> None:
    """With cache_size 2, a third entry evicts the oldest; the refreshed one stays."""
    judge, _ = _judge(server, cache_size=2)
    for prompt in ("a", "b", "a", "c"):
        judge.evaluate("relevance", prompt=prompt, response="x")
    assert server.count == 3  # a, b, c; the second "a" was a hit
    assert judge.evaluate("relevance", prompt="a", response="x").cached
    assert not judge.evaluate("relevance", prompt="b", response="x").cached
    assert server.count == 4


def test_rate_limit_spaces_requests_across_threads(server: JudgeServer) -> None:
    """max_per_minute 6 = one slot every 10 s, shared by 8 threads: with the clock held still,
    the callers are told to wait 0, 10, ..., 70 s (each exactly one slot) and every request
    still arrives once. No wall-clock timing: the waits are what the bucket handed out."""
    now = [1000.0]
    sleeps: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            sleeps.append(seconds)

    config = JudgeConfig(url=server.url, model="m", api_key=KEY, max_per_minute=6)
    judge = Judge(config, clock=lambda: now[0], sleep=sleep)
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda i: judge.evaluate("relevance", prompt=f"q{i}", response="a"), range(8))
        )
    assert server.count == 8 and len(results) == 8
    assert sorted(sleeps) == pytest.approx([10.0 * k for k in range(1, 8)])

    now[0] += 25.0  # 2.5 slots later: the backlog (7 reserved) is not yet paid off
    judge.evaluate("relevance", prompt="late", response="a")
    assert sleeps[-1] == pytest.approx(80.0 - 25.0)


def test_burst_lets_the_first_calls_through(server: JudgeServer) -> None:
    """burst 3: three calls without waiting, the fourth waits one slot (60 / 30 = 2 s)."""
    sleeps: list[float] = []
    config = JudgeConfig(url=server.url, model="m", api_key=KEY, max_per_minute=30, burst=3)
    judge = Judge(config, clock=lambda: 0.0, sleep=sleeps.append)
    for i in range(4):
        judge.evaluate("relevance", prompt=f"q{i}", response="a")
    assert sleeps == pytest.approx([2.0])
    assert server.count == 4


def test_429_is_retried_after_retry_after(server: JudgeServer) -> None:
    """A 429 with Retry-After: 2 is retried after 2 s; the verdict is the retry's."""
    judge, sleeps = _judge(server)
    server.fail_next(429, retry_after="2")
    result = judge.evaluate("relevance", prompt="q SCORE=4", response="a")
    assert server.count == 2
    assert sleeps == [2.0]
    assert result.raw == 4 and result.passed


def test_5xx_retried_with_backoff_then_gives_up(server: JudgeServer) -> None:
    """Two 500s then success: exponential back-off 0.5, 1 s. Four 503s with max_retries 3:
    JudgeError after 4 requests. A huge Retry-After is capped."""
    judge, sleeps = _judge(server)
    server.fail_next(500, times=2)
    assert judge.evaluate("relevance", prompt="q SCORE=2", response="a").raw == 2
    assert server.count == 3 and sleeps == [0.5, 1.0]

    judge, sleeps = _judge(server, max_retries=3, max_retry_wait_seconds=7)
    server.fail_next(503, retry_after="3600", times=4)
    with pytest.raises(JudgeError, match="HTTP 503"):
        judge.evaluate("relevance", prompt="q2", response="a")
    assert server.count == 3 + 4
    assert sleeps == [7.0, 7.0, 7.0]


def test_client_errors_are_not_retried(server: JudgeServer) -> None:
    """A wrong key (401) raises at once, with the API's message and without the key."""
    judge, sleeps = _judge(server, api_key="sk-wrong-key-0000")
    with pytest.raises(JudgeError, match="401") as caught:
        judge.evaluate("relevance", prompt="q", response="a")
    assert "Incorrect API key" in str(caught.value)
    assert "sk-wrong-key-0000" not in str(caught.value)
    assert server.count == 1 and sleeps == []


@pytest.mark.parametrize(
    "reply",
    ["Looks fine to me.", '{"score": 9, "reason": "x"}', '{"score": "high"}', '{"verdict": 4}', ""],
)
def test_garbage_reply_raises(server: JudgeServer, reply: str) -> None:
    """A reply without a usable 1-5 score is a JudgeError, not a guess, and is not cached."""
    judge, _ = _judge(server)
    server.reply_next(reply)
    with pytest.raises(JudgeError):
        judge.evaluate("relevance", prompt="q SCORE=5", response="a")
    assert judge.evaluate("relevance", prompt="q SCORE=5", response="a").raw == 5
    assert server.count == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"score": 4, "reason": "ok"}', (4.0, "ok")),
        ('```json\n{"score": 2, "reason": "thin"}\n```', (2.0, "thin")),
        ('Here is my verdict: {"score": "5", "reason": "all there"} Thanks.', (5.0, "all there")),
        ("3", (3.0, "")),
        ("4/5", (4.0, "")),
        ("Score: 1", (1.0, "")),
        ('{"score": 3.5}', (3.5, "")),
    ],
)
def test_parse_verdict_is_lenient_about_form(content: str, expected: tuple[float, str]) -> None:
    """Fenced JSON, JSON inside prose, numeric strings and bare numbers are all read."""
    assert parse_verdict(content) == expected


def test_fenced_reply_through_the_server(server: JudgeServer) -> None:
    """A code-fenced reply from the API is parsed like a bare one."""
    judge, _ = _judge(server)
    server.reply_next('```json\n{"score": 1, "reason": "made up"}\n```')
    result = judge.evaluate("correctness", prompt="q", response="a", reference="b")
    assert (result.score, result.passed, result.label, result.reason) == (
        0.0,
        False,
        "incorrect",
        "made up",
    )


def test_key_never_logged_or_shown(
    server: JudgeServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key from api_key_env is sent, but not in logs (retries log a warning), errors or
    the config's repr."""
    monkeypatch.setenv("WK_TEST_JUDGE_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    config = JudgeConfig(url=server.url, model="m", api_key_env="WK_TEST_JUDGE_KEY")
    judge = Judge(config, sleep=lambda s: None)
    server.fail_next(429, retry_after="1")
    judge.evaluate("relevance", prompt="q", response="a")
    server.fail_next(500, times=4)
    with pytest.raises(JudgeError) as caught:
        judge.evaluate("relevance", prompt="q2", response="a")
    assert server.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert any("retry" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert KEY not in record.getMessage()
    assert KEY not in str(caught.value)
    assert KEY not in repr(config) and KEY not in repr(
        JudgeConfig(url=server.url, model="m", api_key=KEY)
    )


def test_unreachable_judge_is_a_judge_error() -> None:
    """Connection refused on every attempt: JudgeError after max_retries + 1 tries."""
    with JudgeServer(KEY) as gone:
        url = gone.url
    judge = Judge(JudgeConfig(url=url, model="m", max_retries=2), sleep=lambda s: None)
    with pytest.raises(JudgeError, match="3 attempts"):
        judge.evaluate("relevance", prompt="q", response="a")
    assert judge.requests == 3


def test_stand_in_refuses_what_the_api_refuses(server: JudgeServer) -> None:
    """The stand-in is strict (so the tests above can fail): no key, an unknown parameter,
    a bad role, json_object without the word JSON are refused in the API's error shape."""

    def post(body: dict[str, object], key: str | None = KEY) -> tuple[int, dict[str, object]]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(
            server.url + "/chat/completions", json.dumps(body).encode(), headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    good = {"model": "m", "messages": [{"role": "user", "content": "Say JSON"}]}
    status, body = post(good)
    assert status == 200 and body["object"] == "chat.completion"
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage"}
    for bad, key in [
        (good, None),
        ({**good, "temprature": 0}, KEY),
        ({**good, "messages": [{"role": "robot", "content": "x"}]}, KEY),
        ({**good, "messages": []}, KEY),
        ({"messages": good["messages"]}, KEY),
        (
            {
                **good,
                "response_format": {"type": "json_object"},
                "messages": [{"role": "user", "content": "hi"}],
            },
            KEY,
        ),
    ]:
        status, body = post(bad, key)
        assert status in (400, 401), bad
        assert set(body["error"]) == {"message", "type", "param", "code"}  # type: ignore[arg-type]


def test_config_from_settings_ignores_runner_keys() -> None:
    """The settings section's judge block builds the config; rubrics/sample are the runner's."""
    config = JudgeConfig.from_mapping(
        {"url": "http://127.0.0.1:8080/v1", "model": "gpt-4o-mini", "api_key_env": "X",
         "rubrics": ["groundedness"], "sample": 0.1, "max_per_minute": 30, "timeout_seconds": 30}
    )  # fmt: skip
    assert (config.max_per_minute, config.timeout_seconds, config.api_key_env) == (30, 30, "X")
    with pytest.raises(ValueError):
        JudgeConfig(url="ftp://x", model="m")
    with pytest.raises(ValueError):
        JudgeConfig(url="http://x", model="m", max_per_minute=0)
