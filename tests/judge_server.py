"""A stand-in for an OpenAI-compatible chat-completions API on loopback, for the judge's tests.

A real HTTP server (``http.server.ThreadingHTTPServer``) that accepts only what the OpenAI API
documents for ``POST /v1/chat/completions``: a bearer key, a JSON body with a non-empty
``model`` and ``messages`` (each a ``role`` and a string or text-part ``content``), known
top-level parameters only, ``temperature`` in 0..2, ``response_format`` of type ``text``,
``json_object`` or ``json_schema`` (``json_object`` requires the word "JSON" in the messages,
as the API does). Errors come back in the API's shape (``{"error": {"message", "type",
"param", "code"}}``); a good request gets a ``chat.completion`` object.

The verdict is a function of the request: the last user message's ``SCORE=<n>`` marker, or
else ``1 + sha256(user message) % 5`` (:func:`hashed_score`). Tests can queue failures
(``fail_next(429, retry_after="1")``) or literal replies (``reply_next("garbage")``), and read
every request received (``requests``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Request body parameters of the chat-completions API (https://platform.openai.com/docs/api-reference/chat/create).
KNOWN_PARAMS = frozenset(
    {
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions",
        "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata",
        "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty",
        "prompt_cache_key", "reasoning_effort", "response_format", "safety_identifier", "seed",
        "service_tier", "stop", "store", "stream", "stream_options", "temperature",
        "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    }
)  # fmt: skip
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_MARKER = re.compile(r"SCORE=(\d)")


def hashed_score(user_content: str) -> int:
    """The verdict for a user message without a ``SCORE=`` marker."""
    return 1 + int(hashlib.sha256(user_content.encode("utf-8")).hexdigest(), 16) % 5


def verdict(user_content: str) -> int:
    found = _MARKER.search(user_content)
    return int(found.group(1)) if found else hashed_score(user_content)


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self._send(status, body, headers)

    def do_GET(self) -> None:
        self._error(404, f"Invalid URL (GET {self.path})", code="unknown_url")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        owner = self.server.owner
        if self.path != "/v1/chat/completions":
            self._error(404, f"Invalid URL (POST {self.path})", code="unknown_url")
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "We could not parse the JSON body of your request.")
            return
        with owner.lock:
            owner.requests.append(Received(dict(self.headers.items()), body, time.monotonic()))
            action = owner.script.popleft() if owner.script else None
        if self.headers.get("Authorization") != f"Bearer {owner.api_key}":
            self._error(401, "Incorrect API key provided.", code="invalid_api_key")
            return
        problem = validate(body, self.headers.get("Content-Type", ""))
        if problem:
            param, message = problem
            self._error(400, message, param=param)
            return
        if action is not None and action[0] == "fail":
            _, status, retry_after = action
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            if status == 429:
                self._error(429, "Rate limit reached.", "requests", "rate_limit_exceeded",
                            headers=headers)  # fmt: skip
            else:
                self._error(status, "The server had an error.", "server_error", headers=headers)
            return
        user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        if isinstance(user, list):
            user = "".join(part.get("text", "") for part in user)
        if action is not None and action[0] == "reply":
            content = action[1]
        else:
            score = verdict(user)
            content = json.dumps({"score": score, "reason": f"scored {score} by the stand-in"})
        prompt_tokens = sum(len(str(m["content"]).split()) for m in body["messages"])
        completion_tokens = len(content.split())
        self._send(
            200,
            {
                "id": f"chatcmpl-{len(owner.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "system_fingerprint": "fp_standin",
            },
        )


def validate(body: Any, content_type: str) -> tuple[str | None, str] | None:
    """``(param, message)`` for a request the OpenAI API would refuse, else None."""
    if not content_type.startswith("application/json"):
        return None, "Content-Type must be application/json"
    if not isinstance(body, dict):
        return None, "The request body must be a JSON object."
    unknown = sorted(set(body) - KNOWN_PARAMS)
    if unknown:
        return unknown[0], f"Unrecognized request argument supplied: {unknown[0]}"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model", "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages", "[] is too short - 'messages'"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"messages[{i}].role", f"Invalid value for 'messages[{i}].role'"
        content = message.get("content")
        parts_ok = isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        )
        if not (isinstance(content, str) or parts_ok):
            return f"messages[{i}].content", f"Invalid type for 'messages[{i}].content'"
    temperature = body.get("temperature", 1)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        return "temperature", "Invalid type for 'temperature': expected a decimal"
    if not 0 <= temperature <= 2:
        return "temperature", f"Invalid 'temperature': {temperature} is not in [0, 2]"
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            return "response_format.type", "Invalid value for 'response_format.type'"
        if kind == "json_object" and "json" not in json.dumps(messages).lower():
            return (
                "messages",
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
            )
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: JudgeServer


class JudgeServer:
    """Start with ``with JudgeServer(api_key) as server:``; ``server.url`` is the base URL."""

    def __init__(self, api_key: str = "sk-test-judge-key") -> None:
        self.api_key = api_key
        self.requests: list[Received] = []
        self.script: deque[tuple[Any, ...]] = deque()
        self.lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def fail_next(self, status: int, retry_after: str | None = None, times: int = 1) -> None:
        with self.lock:
            self.script.extend(("fail", status, retry_after) for _ in range(times))

    def reply_next(self, content: str) -> None:
        with self.lock:
            self.script.append(("reply", content))

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def __enter__(self) -> JudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
