"""From request bytes to Python rows or an Arrow table: media types, gzip, JSON, NDJSON, IPC."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from enum import Enum
from typing import Any

import orjson
import pyarrow as pa

from watchkeeper.schema.contract import Limits
from watchkeeper.schema.errors import BatchError, malformed


class Format(Enum):
    """The body formats the ingest endpoints accept."""

    JSON = "json"
    NDJSON = "ndjson"
    ARROW = "arrow"


_MEDIA_TYPES = {
    "application/json": Format.JSON,
    "text/json": Format.JSON,
    "application/x-ndjson": Format.NDJSON,
    "application/ndjson": Format.NDJSON,
    "application/jsonl": Format.NDJSON,
    "application/x-jsonlines": Format.NDJSON,
    "application/vnd.apache.arrow.stream": Format.ARROW,
}


def body_format(content_type: str | None) -> Format:
    """The format named by a Content-Type header (parameters such as charset are ignored)."""
    if content_type is None or not content_type.strip():
        return Format.JSON
    media = content_type.split(";", 1)[0].strip().lower()
    found = _MEDIA_TYPES.get(media)
    if found is None:
        accepted = ", ".join(sorted(_MEDIA_TYPES))
        raise BatchError(
            415,
            "unsupported_media_type",
            f"unsupported Content-Type {media[:100]!r}; send one of {accepted}",
        )
    return found


def too_large(limit: int) -> BatchError:
    """A 413 for a body over the size limit."""
    return BatchError(413, "too_large", f"the body is larger than {limit} bytes once decompressed")


def decompress(body: bytes, content_encoding: str | None, limits: Limits) -> bytes:
    """The body with its Content-Encoding undone, never larger than `limits.max_body_bytes`."""
    cap = limits.max_body_bytes
    if len(body) > cap:
        raise too_large(cap)
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise BatchError(
            415,
            "unsupported_media_type",
            f"unsupported Content-Encoding {encoding[:100]!r}; send gzip or none",
        )
    out: list[bytes] = []
    size = 0
    rest = body
    try:
        while rest:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = inflater.decompress(rest, cap + 1 - size)
            size += len(chunk)
            out.append(chunk)
            if size > cap or inflater.unconsumed_tail:
                raise too_large(cap)
            if not inflater.eof:
                raise malformed("the gzip body is truncated")
            rest = inflater.unused_data  # a further gzip member may follow
    except zlib.error as exc:
        raise malformed(f"the body is not valid gzip: {exc}") from None
    return b"".join(out)


def _json_error(exc: orjson.JSONDecodeError, line_offset: int = 0) -> BatchError:
    reason = str(exc.msg).rstrip(".")
    return malformed(
        f"malformed JSON at line {exc.lineno + line_offset}, column {exc.colno}: {reason}"
    )


def load_json_rows(body: bytes, key: str) -> list[Any]:
    """Rows of a JSON body: ``{key: [...]}`` or a bare array."""
    if not body.strip():
        return []
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _json_error(exc) from None
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        if key not in doc:
            raise malformed(f'expected {{"{key}": [...]}} or a JSON array; no "{key}" key')
        extra = sorted(k for k in doc if k != key)
        if extra:
            raise malformed(f"unexpected top-level keys: {', '.join(extra[:10])}")
        rows = doc[key]
        if not isinstance(rows, list):
            raise malformed(f'"{key}" must be a JSON array')
        return rows
    raise malformed(f'expected {{"{key}": [...]}} or a JSON array')


def load_ndjson_rows(body: bytes) -> list[Any]:
    """Rows of an NDJSON body, one JSON value per non-blank line."""
    lines = body.split(b"\n")
    rows: list[Any] = []
    append = rows.append
    loads = orjson.loads
    for number, line in enumerate(lines, start=1):
        if not line or line.isspace():
            continue
        try:
            append(loads(line))
        except orjson.JSONDecodeError as exc:
            reason = str(exc.msg).rstrip(".")
            raise malformed(
                f"malformed JSON on line {number}, column {exc.colno}: {reason}"
            ) from None
    return rows


def load_arrow(body: bytes, limits: Limits) -> pa.Table:
    """The table in an Arrow IPC stream, refusing one that inflates past the size limit."""
    batches: list[pa.RecordBatch] = []
    size = 0
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        for batch in reader:
            size += batch.nbytes
            if size > limits.max_body_bytes:
                raise too_large(limits.max_body_bytes)
            batches.append(batch)
        schema = reader.schema
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise malformed(f"the body is not a readable Arrow IPC stream: {exc}") from None
    return pa.Table.from_batches(batches, schema=schema)


def decode_batch(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    limits: Limits,
    key: str,
    from_arrow: Callable[[pa.Table], pa.Table],
    from_rows: Callable[[list[Any]], pa.Table],
) -> pa.Table:
    """Decompress and decode a body by its format, then normalize it with the matching
    function: ``from_arrow`` for an Arrow stream, ``from_rows`` for JSON (``{key: [...]}`` or a
    bare array) and NDJSON rows."""
    fmt = body_format(content_type)
    data = decompress(body, content_encoding, limits)
    if fmt is Format.ARROW:
        return from_arrow(load_arrow(data, limits))
    rows = load_json_rows(data, key) if fmt is Format.JSON else load_ndjson_rows(data)
    return from_rows(rows)
