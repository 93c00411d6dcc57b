"""The retrieved context of an LLM call, read from the stored spans of its trace.

An LLM call's context is, in order of preference:

1. the event's own ``context`` field (filled at ingestion when the retrieval spans came in the
   same export);
2. the ``watchkeeper.context`` attribute of the call's own span;
3. the documents of the retrieval spans of the same trace that started before the call ended,
   in start order: OpenInference ``RETRIEVER`` spans
   (``retrieval.documents.{i}.document.content``) and GenAI retrieval spans
   (``gen_ai.operation.name`` ``retrieval``/``retrieve`` with ``gen_ai.retrieval.documents``,
   a list of documents or its JSON text, each with ``content``/``text``/``page_content``).

Pure functions over span dicts as ``Store.trace_spans`` returns them (``attributes`` a dict
of flat OpenTelemetry attribute keys), so they are tested without a store; the OTLP mapping
(:mod:`watchkeeper.otlp.genai`) reads the retrieval spans of an export with the same
:func:`is_retrieval` and :func:`retrieval_documents`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "CONTEXT_ATTRIBUTE",
    "call_context",
    "is_retrieval",
    "is_retrieval_span",
    "retrieval_documents",
    "span_documents",
]

CONTEXT_ATTRIBUTE = "watchkeeper.context"
_OPERATION = "gen_ai.operation.name"
_OPENINFERENCE_KIND = "openinference.span.kind"
_RETRIEVAL_OPERATIONS = frozenset({"retrieval", "retrieve"})
_GENAI_DOCUMENTS = "gen_ai.retrieval.documents"
_OPENINFERENCE_DOCUMENT = "retrieval.documents.{}.document.content"


def _attrs(span: Mapping[str, Any]) -> Mapping[str, Any]:
    attrs = span.get("attributes") or {}
    if isinstance(attrs, str):
        try:
            attrs = json.loads(attrs)
        except ValueError:
            return {}
    return attrs if isinstance(attrs, Mapping) else {}


def is_retrieval_span(span: Mapping[str, Any]) -> bool:
    """A GenAI retrieval span or an OpenInference RETRIEVER span."""
    return is_retrieval(_attrs(span))


def is_retrieval(attrs: Mapping[str, Any]) -> bool:
    """Whether a span's attributes make it a retrieval: GenAI ``gen_ai.operation.name``
    retrieval/retrieve, or OpenInference ``RETRIEVER``."""
    operation = attrs.get(_OPERATION)
    if isinstance(operation, str) and operation.lower() in _RETRIEVAL_OPERATIONS:
        return True
    kind = attrs.get(_OPENINFERENCE_KIND)
    return isinstance(kind, str) and kind.upper() == "RETRIEVER"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _document_text(doc: Any) -> str | None:
    if isinstance(doc, str):
        return _text(doc)
    if not isinstance(doc, Mapping):
        return None
    for key in ("content", "text", "page_content"):
        value = doc.get(key)
        if isinstance(value, list):  # parts: [{"type": "text", "content": ...}]
            parts = [_document_text(p) for p in value]
            joined = "\n".join(p for p in parts if p)
            if joined:
                return joined
        elif _text(value):
            return str(value)
    inner = doc.get("document")
    return _document_text(inner) if isinstance(inner, Mapping) else None


def span_documents(span: Mapping[str, Any]) -> list[str]:
    """The documents a retrieval span returned (GenAI first, then OpenInference)."""
    return retrieval_documents(_attrs(span))


def retrieval_documents(attrs: Mapping[str, Any]) -> list[str]:
    """The documents in a retrieval span's attributes: GenAI ``gen_ai.retrieval.documents``
    (structured or its JSON text; each document's ``content``/``text``/``page_content``),
    then OpenInference ``retrieval.documents.N.document.content``."""
    docs: Any = attrs.get(_GENAI_DOCUMENTS)
    if isinstance(docs, str):
        try:
            docs = json.loads(docs)
        except ValueError:
            docs = [docs]
    if isinstance(docs, Mapping):
        docs = docs.get("documents", [docs])
    out = [t for t in (_document_text(d) for d in (docs if isinstance(docs, list) else [])) if t]
    i = 0
    while (key := _OPENINFERENCE_DOCUMENT.format(i)) in attrs:
        text = _text(attrs[key])
        if text:
            out.append(text)
        i += 1
    return out


def _time(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return float("-inf")


def call_context(spans: Sequence[Mapping[str, Any]], span_id: str | None = None) -> list[str]:
    """The retrieved context of the LLM call ``span_id`` in a trace's ``spans``: its own
    ``watchkeeper.context`` attribute, else the documents of the trace's retrieval spans that
    started before the call ended (all of them when the call's span is not among ``spans``)."""
    call = next((s for s in spans if span_id is not None and s.get("span_id") == span_id), None)
    if call is not None:
        own = _attrs(call).get(CONTEXT_ATTRIBUTE)
        if isinstance(own, list):
            texts = [t for t in (_text(v) for v in own) if t]
            if texts:
                return texts
        elif _text(own):
            return [str(own)]
    end = float("inf")
    if call is not None:
        end = _time(call.get("end_ts") or call.get("start_ts"))
        if end == float("-inf"):
            end = float("inf")
    retrievals = sorted(
        (s for s in spans if is_retrieval_span(s) and _time(s.get("start_ts")) <= end),
        key=lambda s: _time(s.get("start_ts")),
    )
    return [doc for s in retrievals for doc in span_documents(s)]
