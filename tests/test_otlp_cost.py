"""OTLP spans without a cost of their own are priced from the price table in force on the
call's date; a span's own cost is kept; an unknown model stays without cost."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import httpx
import orjson

from conftest import RunningServer
from watchkeeper.llm.prices import PriceTable

END_NS = time.time_ns() - 5 * 1_000_000_000


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"key": key, "value": {"stringValue": value}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"intValue": str(value)}}


def _span(span_id: str, model: str, tokens: tuple[int, int], **extra: Any) -> dict[str, Any]:
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": tokens[0],
        "gen_ai.usage.output_tokens": tokens[1],
        **extra,
    }
    return {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": span_id,
        "name": f"chat {model}",
        "startTimeUnixNano": str(END_NS - 400_000_000),
        "endTimeUnixNano": str(END_NS),
        "attributes": [_attr(k, v) for k, v in attrs.items()],
    }


def _cost(server: RunningServer, model: str, version: str) -> float | None:
    params = {"names": "cost_usd,count", "window": "all", "version": version, "start": "2000-01-01T00:00:00Z"}  # fmt: skip
    with server.client() as client:
        got = client.get(f"/api/v1/models/{model}/metrics", params=params).json()["metrics"]
    assert got["count"] == [1], f"{version} was not stored once"
    value: float | None = got["cost_usd"][0]
    return value


def test_spans_are_priced_from_the_table_in_force(server: RunningServer) -> None:
    spans = [
        _span("b7ad6b7169203331", "gpt-4o-mini-2024-07-18", (1200, 345)),
        _span("b7ad6b7169203332", "gpt-4o", (1000, 100), **{"gen_ai.usage.cost": 0.5}),
        _span("b7ad6b7169203333", "no-such-model-7", (1000, 100)),
    ]
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", "pricing-app")]},
                "scopeSpans": [{"spans": spans}],
            }
        ]
    }
    reply = httpx.post(
        server.url + "/v1/traces",
        content=orjson.dumps(body),
        headers={
            "Authorization": f"Bearer {server.ingest_key}",
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    at = datetime.fromtimestamp(END_NS / 1e9, timezone.utc)
    expected = PriceTable.load().cost("openai", "gpt-4o-mini-2024-07-18", at, 1200, 345)
    assert expected is not None and expected > 0
    # the stored cost is the table's (a float sum of one value: exact)
    assert _cost(server, "pricing-app", "gpt-4o-mini-2024-07-18") == expected
    assert _cost(server, "pricing-app", "gpt-4o") == 0.5  # the span's own cost wins
    assert _cost(server, "pricing-app", "no-such-model-7") == 0.0  # unknown: no cost added
