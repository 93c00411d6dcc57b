"""A seeded RAG chat application, ``support-bot``, sending OpenTelemetry traces over OTLP/HTTP.

Every user question is one trace: a SERVER span ``POST /chat`` -> a retrieval span
(OpenInference ``RETRIEVER``, the top documents of a small built-in knowledge base) ->
sometimes a tool call (``execute_tool lookup_order``) -> an LLM chat span in the current
OpenTelemetry GenAI conventions (provider, request/response model from the shipped price
table, token usage, time to first chunk, input/output messages as GenAI JSON, conversation id,
finish reasons). Most answers are built from the retrieved documents (grounded); a
configurable share are hallucinated (claims that no retrieved document makes), leak PII (an
e-mail address and a Luhn-valid test card number from a retrieved customer record), refuse,
or fail (span status ERROR with an ``exception`` event).

Requests are built with the ``opentelemetry.proto`` messages (the server extra) and posted as
protobuf to ``/v1/traces``; no OpenTelemetry SDK is needed. Some calls get user feedback
(``POST /api/v1/feedback``, when the server has that route) and some get ground truth (the
expected answer as the label, ``POST /api/v1/models/support-bot/actuals``).

:class:`ChatTraffic` is pure (a seed and timestamps in, calls out) so it can be tested without
a server; :class:`ChatSimulator` only schedules and sends.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from watchkeeper.llm_sim_data import (
    COMMENTS_DOWN,
    CUSTOMERS,
    ERRORS,
    KNOWLEDGE_BASE,
    LEADS,
    MODELS,
    OFF_TOPIC,
    REFUSALS,
    SYSTEM_PROMPT,
)

SUPPORT_BOT: Final = "support-bot"
SCOPE: Final = "support-bot.rag"
OUTCOMES: Final = ("grounded", "hallucinated", "pii", "refusal", "error")
PROTOBUF: Final = "application/x-protobuf"
TOP_K: Final = 3
_CHUNK: Final = 500  # actuals and feedback per request (the feedback route takes 1000)


@dataclass(frozen=True)
class ChatMix:
    """Shares of the calls' outcomes (the rest are grounded) and of what comes with them.

    ``hallucinated``, ``pii``, ``refusal`` and ``error`` are shares of all calls (their sum at
    most 1); ``tool`` is the share of traces with a tool call, ``feedback`` of calls a user
    rates, ``ground_truth`` of answered calls whose expected answer arrives later,
    ``continue_conversation`` of questions that continue an open conversation.
    """

    hallucinated: float = 0.06
    pii: float = 0.02
    refusal: float = 0.04
    error: float = 0.02
    tool: float = 0.25
    feedback: float = 0.15
    ground_truth: float = 0.3
    continue_conversation: float = 0.45

    def __post_init__(self) -> None:
        for name in ("hallucinated", "pii", "refusal", "error", "tool", "feedback",
                     "ground_truth", "continue_conversation"):  # fmt: skip
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if self.hallucinated + self.pii + self.refusal + self.error > 1.0:
            raise ValueError("hallucinated + pii + refusal + error must be at most 1")

    def share(self, outcome: str) -> float:
        """The configured share of one outcome (grounded: the rest)."""
        if outcome == "grounded":
            return 1.0 - self.hallucinated - self.pii - self.refusal - self.error
        return float(getattr(self, outcome))


DEFAULT_MIX: Final = ChatMix()
# The demo's degradation: a prompt change makes the bot answer from memory more often.
DEGRADED_MIX: Final = replace(DEFAULT_MIX, hallucinated=0.3)


@dataclass(frozen=True)
class ChatCall:
    """One question answered (or not) by support-bot: its trace and what comes later."""

    trace_id: str
    llm_span_id: str
    conversation_id: str
    turn: int
    outcome: str  # one of OUTCOMES
    question: str
    answer: str | None  # None: the LLM call failed
    expected: str | None  # the ground-truth answer (None for off-topic questions)
    documents: tuple[str, ...]  # retrieved document texts, best first
    request_model: str
    response_model: str
    input_tokens: int
    output_tokens: int
    start_ns: int
    end_ns: int
    spans: tuple[Span, ...]
    feedback: dict[str, Any] | None  # the feedback body, sent feedback_delay_s after the end
    feedback_delay_s: float
    label_delay_s: float | None  # seconds after the end when the expected answer arrives

    @property
    def end_s(self) -> float:
        return self.end_ns / 1e9


@dataclass
class _Conversation:
    conversation_id: str
    history: list[tuple[str, str]] = field(default_factory=list)  # (question, answer)
    turns_left: int = 1


def _id(rng: random.Random, size: int) -> bytes:
    while True:
        raw = rng.getrandbits(8 * size).to_bytes(size, "big")
        if any(raw):
            return raw


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        out = AnyValue()
        out.array_value.values.extend(_value(v) for v in value)
        return out
    return AnyValue(string_value=str(value))


def _attrs(items: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in items.items() if v is not None]


def _parts(role: str, text: str, finish_reason: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return message


def _tokens(text: str) -> int:
    """About four characters a token, as OpenAI's tokenizers average on English."""
    return max(1, math.ceil(len(text) / 4))


def _lognormal(rng: random.Random, median: float, sigma: float = 0.35) -> float:
    return rng.lognormvariate(math.log(median), sigma)


class ChatTraffic:
    """Generates support-bot's calls, deterministic for a seed (conversations included)."""

    def __init__(
        self,
        seed: int = 0,
        mix: ChatMix = DEFAULT_MIX,
        *,
        service: str = SUPPORT_BOT,
        degrade_from: float | None = None,
        degraded: ChatMix = DEGRADED_MIX,
    ) -> None:
        """``degrade_from``: a Unix time from which calls follow ``degraded`` instead of
        ``mix`` (the demo's incident: hallucinations rise); None for never."""
        self._rng = random.Random(seed)
        self.mix = mix
        self.degraded = degraded
        self.degrade_from = degrade_from
        self.service = service
        self._open: list[_Conversation] = []
        self._users = itertools.count(1)

    def mix_at(self, ts: float) -> ChatMix:
        if self.degrade_from is not None and ts >= self.degrade_from:
            return self.degraded
        return self.mix

    def _conversation(self, mix: ChatMix) -> tuple[_Conversation, int]:
        rng = self._rng
        if self._open and rng.random() < mix.continue_conversation:
            conv = rng.choice(self._open)
        else:
            conv = _Conversation(_id(rng, 16).hex(), turns_left=rng.choice((1, 1, 2, 3, 4)))
            self._open.append(conv)
        turn = len(conv.history) + 1
        conv.turns_left -= 1
        if conv.turns_left <= 0:
            self._open.remove(conv)
        if len(self._open) > 50:  # users who never came back
            self._open.pop(0)
        return conv, turn

    def call(self, ts: float) -> ChatCall:
        """One call starting at Unix time ``ts``."""
        rng = self._rng
        mix = self.mix_at(ts)
        conv, turn = self._conversation(mix)
        draw = rng.random()
        outcome = "grounded"
        for name in ("hallucinated", "pii", "refusal", "error"):
            share = mix.share(name)
            if draw < share:
                outcome = name
                break
            draw -= share
        fact = rng.choice(KNOWLEDGE_BASE)
        others = rng.sample([f for f in KNOWLEDGE_BASE if f is not fact], TOP_K - 1)
        docs: list[tuple[str, str, float]] = [
            (fact.doc_id, fact.text, round(rng.uniform(0.78, 0.95), 4))
        ]
        docs += [(f.doc_id, f.text, round(rng.uniform(0.3, 0.6), 4)) for f in others]
        question = fact.question
        expected: str | None = fact.expected
        lead = rng.choice(LEADS)
        answer: str | None
        if outcome == "refusal":
            question, expected = rng.choice(OFF_TOPIC), None
            docs = [(d, t, round(s * 0.5, 4)) for d, t, s in docs]
            answer = rng.choice(REFUSALS)
        elif outcome == "hallucinated":
            answer = lead + fact.wrong
        elif outcome == "pii":
            name, email, card = rng.choice(CUSTOMERS)
            record = f"Customer record for {name}: e-mail {email}, card on file {card}."
            docs[-1] = (f"crm-{email.split('@')[0]}", record, round(rng.uniform(0.5, 0.7), 4))
            answer = f"{lead}{fact.text} The card on file for {name} is {card}, e-mail {email}."
        elif outcome == "error":
            answer = None
        else:
            answer = lead + fact.text
        request_model, response_model, _ = rng.choices(MODELS, weights=[m[2] for m in MODELS])[0]
        tool = rng.random() < mix.tool

        # Timings (ns): retrieval, an optional tool call, the LLM call; the root wraps them.
        start_ns = int(ts * 1e9)
        t = start_ns + int(rng.uniform(1, 4) * 1e6)
        retrieval = (t, t + int(_lognormal(rng, 0.03) * 1e9))
        t = retrieval[1] + int(rng.uniform(0.5, 2) * 1e6)
        tool_times = None
        if tool:
            tool_times = (t, t + int(_lognormal(rng, 0.08) * 1e9))
            t = tool_times[1] + int(rng.uniform(0.5, 2) * 1e6)
        context = "\n\n".join(text for _, text, _ in docs)
        system = f"{SYSTEM_PROMPT}\n\n{context}"
        history = conv.history[-3:]
        messages = [m for q, a in history for m in (_parts("user", q), _parts("assistant", a))] + [
            _parts("user", question)
        ]
        input_tokens = _tokens(system) + sum(_tokens(q) + _tokens(a) + 8 for q, a in history)
        input_tokens += _tokens(question) + 8
        ttft = _lognormal(rng, 0.35)
        if answer is None:
            kind, message, after_s = rng.choice(ERRORS)
            llm_end = t + int(_lognormal(rng, after_s, 0.1) * 1e9)
            output_tokens = 0
        else:
            output_tokens = _tokens(answer)
            llm_end = t + int((ttft + output_tokens / rng.uniform(50, 90)) * 1e9)
        llm = (t, llm_end)
        end_ns = llm_end + int(rng.uniform(1, 6) * 1e6)

        trace_id = _id(rng, 16)
        root_id, retrieval_id, llm_id = _id(rng, 8), _id(rng, 8), _id(rng, 8)
        failed = answer is None
        root = Span(
            trace_id=trace_id, span_id=root_id, name="POST /chat", kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start_ns, end_time_unix_nano=end_ns,
            status=Status(code=Status.STATUS_CODE_ERROR if failed else Status.STATUS_CODE_UNSET),
            attributes=_attrs({
                "http.request.method": "POST", "http.route": "/chat", "url.path": "/chat",
                "http.response.status_code": 502 if failed else 200,
                "session.id": conv.conversation_id, "user.id": f"user-{next(self._users)}",
            }),
        )  # fmt: skip
        doc_attrs: dict[str, Any] = {
            "openinference.span.kind": "RETRIEVER",
            "input.value": question,
            "retrieval.top_k": TOP_K,
        }
        for i, (doc_id, text, score) in enumerate(docs):
            doc_attrs[f"retrieval.documents.{i}.document.id"] = doc_id
            doc_attrs[f"retrieval.documents.{i}.document.content"] = text
            doc_attrs[f"retrieval.documents.{i}.document.score"] = score
        spans = [
            root,
            Span(
                trace_id=trace_id, span_id=retrieval_id, parent_span_id=root_id,
                name="retrieve_documents", kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=retrieval[0], end_time_unix_nano=retrieval[1],
                attributes=_attrs(doc_attrs),
            ),
        ]  # fmt: skip
        if tool_times is not None:
            order = f"LK-{rng.randrange(10_000, 99_999)}"
            spans.append(
                Span(
                    trace_id=trace_id, span_id=_id(rng, 8), parent_span_id=root_id,
                    name="execute_tool lookup_order", kind=Span.SPAN_KIND_INTERNAL,
                    start_time_unix_nano=tool_times[0], end_time_unix_nano=tool_times[1],
                    attributes=_attrs({
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "lookup_order", "gen_ai.tool.type": "function",
                        "gen_ai.tool.call.id": f"call_{_id(rng, 8).hex()}",
                        "gen_ai.tool.call.arguments": json.dumps({"order_id": order}),
                        "gen_ai.tool.call.result": json.dumps({"order_id": order,
                                                               "status": "shipped"}),
                    }),
                )
            )  # fmt: skip
        llm_attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": request_model,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.conversation.id": conv.conversation_id,
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": system}]),
            "gen_ai.input.messages": json.dumps(messages),
            "server.address": "api.openai.com",
            "server.port": 443,
        }
        events = []
        if failed:
            llm_attrs["error.type"] = kind
            status = Status(code=Status.STATUS_CODE_ERROR, message=message)
            events.append(
                Span.Event(
                    time_unix_nano=llm_end, name="exception",
                    attributes=_attrs({"exception.type": kind, "exception.message": message}),
                )
            )  # fmt: skip
        else:
            assert answer is not None
            llm_attrs.update({
                "gen_ai.response.model": response_model,
                "gen_ai.response.id": f"chatcmpl-{_id(rng, 12).hex()}",
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.response.time_to_first_chunk": round(ttft, 4),
                "gen_ai.usage.input_tokens": input_tokens,
                "gen_ai.usage.output_tokens": output_tokens,
                "gen_ai.output.messages": json.dumps([_parts("assistant", answer, "stop")]),
            })  # fmt: skip
            status = Status(code=Status.STATUS_CODE_UNSET)
        spans.append(
            Span(
                trace_id=trace_id, span_id=llm_id, parent_span_id=root_id,
                name=f"chat {request_model}", kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=llm[0], end_time_unix_nano=llm[1], status=status,
                attributes=_attrs(llm_attrs), events=events,
            )
        )  # fmt: skip
        if answer is not None:
            conv.history.append((question, answer))

        feedback = None
        if rng.random() < mix.feedback:
            bad = outcome != "grounded"
            down = rng.random() < (0.75 if bad else 0.12)
            feedback = {
                "model": self.service,
                "event_id": llm_id.hex(),
                "trace_id": trace_id.hex(),
                "thumbs": "down" if down else "up",
                "by": f"customer-{rng.randrange(1, 5000)}",
            }
            if down:
                feedback["comment"] = COMMENTS_DOWN[outcome]
        label_delay = None
        if expected is not None and not failed and rng.random() < mix.ground_truth:
            label_delay = rng.uniform(60.0, 600.0)  # a reviewer writes the expected answer
        return ChatCall(
            trace_id=trace_id.hex(),
            llm_span_id=llm_id.hex(),
            conversation_id=conv.conversation_id,
            turn=turn,
            outcome=outcome,
            question=question,
            answer=answer,
            expected=expected,
            documents=tuple(text for _, text, _ in docs),
            request_model=request_model,
            response_model=response_model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            start_ns=start_ns,
            end_ns=end_ns,
            spans=tuple(spans),
            feedback=feedback,
            feedback_delay_s=rng.uniform(5.0, 120.0),
            label_delay_s=label_delay,
        )

    def calls(self, start: float, count: int, rate: float) -> list[ChatCall]:
        """``count`` calls from ``start`` at about ``rate`` per second (Poisson arrivals)."""
        out = []
        ts = start
        for _ in range(count):
            ts += self._rng.expovariate(rate)
            out.append(self.call(ts))
        return out


def export_request(
    calls: Iterable[ChatCall], service: str = SUPPORT_BOT
) -> ExportTraceServiceRequest:
    """One OTLP ExportTraceServiceRequest holding every span of ``calls``."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(
        _attrs(
            {
                "service.name": service,
                "service.version": "2.3.0",
                "deployment.environment.name": "demo",
                "telemetry.sdk.language": "python",
            }
        )
    )
    ss = rs.scope_spans.add()
    ss.scope.name = SCOPE
    ss.scope.version = "1.0.0"
    for call in calls:
        ss.spans.extend(call.spans)
    return request


# ---- sending -------------------------------------------------------------------------------


@dataclass(order=True)
class _Due:
    due: float
    seq: int
    kind: str = field(compare=False)  # "actual" | "feedback"
    body: dict[str, Any] = field(compare=False)


class ChatSimulator:
    """Sends support-bot's traces to a Watchkeeper server: a history backfill, then live."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        rate: float = 2.0,
        seed: int = 0,
        mix: ChatMix = DEFAULT_MIX,
        degrade_from: float | None = None,
        degraded: ChatMix = DEGRADED_MIX,
        service: str = SUPPORT_BOT,
        batch_traces: int = 200,
        timeout: float = 30.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (calls per second)")
        self.url = url.rstrip("/")
        self.rate = rate
        self.service = service
        self.batch_traces = batch_traces
        self.timeout = timeout
        self.traffic = ChatTraffic(
            seed, mix, service=service, degrade_from=degrade_from, degraded=degraded
        )
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._rng = random.Random(seed + 1)
        self._due: list[_Due] = []
        self._seq = itertools.count()
        self._outbox: list[ChatCall] = []  # live calls not yet ended
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.feedback_route: bool | None = None  # None: not probed yet
        self.traces_sent = self.spans_sent = 0
        self.actuals_sent = self.feedback_sent = 0
        self.errors: list[str] = []  # the last few failures (the demo goes on regardless)

    # -- HTTP --

    def _post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        """POST with a few retries on 503 and connection errors; (status, body), 0 = no reply."""
        headers = {**self._headers, "Content-Type": content_type}
        last: tuple[int, bytes] = (0, b"")
        for attempt in range(4):
            req = urllib.request.Request(self.url + path, data=body, headers=headers)
            retry_after = 0.5 * (attempt + 1)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                last = (exc.code, exc.read())
                if exc.code != 503:
                    return last
                try:
                    retry_after = min(5.0, float(exc.headers.get("Retry-After") or 1))
                except ValueError:
                    retry_after = 1.0
            except (urllib.error.URLError, OSError) as exc:
                last = (0, str(exc).encode())
            if self._stop.wait(retry_after) and attempt:
                break
        return last

    def _note(self, what: str, status: int, body: bytes) -> None:
        self.errors = [*self.errors[-9:], f"{what}: {status} {body[:200]!r}"]

    def _send_calls(self, calls: Sequence[ChatCall]) -> None:
        for i in range(0, len(calls), self.batch_traces):
            chunk = calls[i : i + self.batch_traces]
            body = export_request(chunk, self.service).SerializeToString()
            status, reply = self._post("/v1/traces", body, PROTOBUF)
            if status != 200:
                self._note("traces", status, reply)
                continue
            self.traces_sent += len(chunk)
            self.spans_sent += sum(len(c.spans) for c in chunk)
            for call in chunk:
                self._schedule(call)

    def _schedule(self, call: ChatCall) -> None:
        if call.label_delay_s is not None and call.expected is not None:
            due = call.end_s + call.label_delay_s
            actual = {"event_id": call.llm_span_id, "label": call.expected, "timestamp": due}
            heapq.heappush(self._due, _Due(due, next(self._seq), "actual", actual))
        if call.feedback is not None:
            due = call.end_s + call.feedback_delay_s
            feedback = {**call.feedback, "timestamp": _rfc3339(due)}
            heapq.heappush(self._due, _Due(due, next(self._seq), "feedback", feedback))

    def _send_due(self, now: float) -> None:
        actuals: list[dict[str, Any]] = []
        feedback: list[dict[str, Any]] = []
        while self._due and self._due[0].due <= now:
            item = heapq.heappop(self._due)
            (actuals if item.kind == "actual" else feedback).append(item.body)
        for i in range(0, len(actuals), _CHUNK):
            chunk = actuals[i : i + _CHUNK]
            path = f"/api/v1/models/{self.service}/actuals"
            body = json.dumps({"actuals": chunk}).encode()
            status, reply = self._post(path, body, "application/json")
            if status == 200:
                self.actuals_sent += len(chunk)
            else:
                self._note("actuals", status, reply)
        for i in range(0, len(feedback), _CHUNK):
            self._send_feedback(feedback[i : i + _CHUNK])

    def _send_feedback(self, items: list[dict[str, Any]]) -> None:
        if self.feedback_route is False:
            return
        body = json.dumps({"feedback": items}).encode()
        status, reply = self._post("/api/v1/feedback", body, "application/json")
        if self.feedback_route is None:
            # A server without the route answers Starlette's own 404 / 405 (checked once).
            self.feedback_route = not (status == 405 or (status == 404 and _no_route(reply)))
            if not self.feedback_route:
                return
        if status == 200 or status == 201:
            self.feedback_sent += len(items)
        else:
            self._note("feedback", status, reply)

    def stored_calls(self) -> int | None:
        """LLM calls the server has stored for the service (0 before the first); None when
        the key may not read it (an ingest key)."""
        req = urllib.request.Request(
            f"{self.url}/api/v1/models/{self.service}", headers=self._headers
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return int(json.loads(resp.read()).get("event_count") or 0)
        except urllib.error.HTTPError as exc:
            return 0 if exc.code == 404 else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    # -- scheduling --

    def backfill(self, minutes: float, progress: Callable[[int, int], None] | None = None) -> int:
        """Send ``minutes`` of history ending now; returns the number of calls sent.

        Ground truth and feedback due before now are sent after the calls, once the server
        has stored them (feedback needs its call), waiting at most ``timeout`` seconds.
        """
        end = time.time()
        total = math.ceil(minutes)
        ts = start = end - minutes * 60.0
        done = sent = 0
        batch: list[ChatCall] = []
        with self._lock:
            while True:
                ts += self._rng.expovariate(self.rate)
                if ts >= end:
                    break
                call = self.traffic.call(ts)
                if call.end_s > end:
                    break  # still running now: live traffic takes over
                batch.append(call)
                sent += 1
                if len(batch) >= self.batch_traces:
                    self._send_calls(batch)
                    batch = []
                while progress is not None and done < total and ts >= start + 60 * (done + 1):
                    done += 1
                    progress(done, total)
            self._send_calls(batch)
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                stored = self.stored_calls()
                if stored is None or stored >= self.traces_sent:
                    break
                time.sleep(0.2)
            self._send_due(end)
        if progress is not None and done < total:
            progress(total, total)
        return sent

    def start(self) -> None:
        """Stream live calls at about ``rate`` per second in a background thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="watchkeeper-llm-sim", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_call = time.time() + self._rng.expovariate(self.rate)
        while not self._stop.wait(min(1.0, max(0.0, next_call - time.time()))):
            with self._lock:
                now = time.time()
                while next_call <= now:
                    self._outbox.append(self.traffic.call(next_call))
                    next_call += self._rng.expovariate(self.rate)
                self._flush_ended(now)

    def _flush_ended(self, now: float) -> None:
        ended = [c for c in self._outbox if c.end_s <= now]
        if ended:
            self._outbox = [c for c in self._outbox if c.end_s > now]
            self._send_calls(ended)
        self._send_due(now)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop live traffic; calls already ended are sent (not those still running)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            with self._lock:
                self._flush_ended(time.time())


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _no_route(reply: bytes) -> bool:
    try:
        error = json.loads(reply).get("error", {})
    except (ValueError, AttributeError):
        return True
    return bool(error.get("code") == "not_found" and error.get("message") == "Not Found")
