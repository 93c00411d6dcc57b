"""OpenTelemetry (OTLP/HTTP) trace ingestion: decode requests, map LLM-call spans to events."""

from watchkeeper.otlp.decode import Format, Span, SpanEvent, decode_request, request_format
from watchkeeper.otlp.genai import is_llm_call, llm_events, model_name, span_event

__all__ = [
    "Format",
    "Span",
    "SpanEvent",
    "decode_request",
    "is_llm_call",
    "llm_events",
    "model_name",
    "request_format",
    "span_event",
]
