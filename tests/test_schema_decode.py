"""Body decoding: media types, gzip and its size cap, malformed JSON and NDJSON, bad IPC."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone

import orjson
import pytest

from watchkeeper.schema import BatchError, Limits, parse_events

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
BODY = orjson.dumps({"events": [{"event_id": "a", "score": 0.5}]})


def error_of(
    body: bytes, content_type: str | None, encoding: str | None = None, max_body: int = 2**26
) -> BatchError:
    limits = Limits(max_body_bytes=max_body)
    with pytest.raises(BatchError) as info:
        parse_events(body, content_type, encoding, now=NOW, limits=limits)
    return info.value


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json", "Application/JSON; charset=utf-8", "text/json"]
)
def test_json_content_types(content_type: str | None) -> None:
    """JSON is read when named (any case, any charset) or when no type is given."""
    assert parse_events(BODY, content_type, now=NOW).column("event_id").to_pylist() == ["a"]


def test_unsupported_media_type_and_encoding() -> None:
    """An unknown Content-Type or Content-Encoding is a 415."""
    for err in (error_of(BODY, "text/xml"), error_of(BODY, "application/json", "br")):
        assert (err.status, err.code) == (415, "unsupported_media_type")


def test_gzip_body() -> None:
    """A gzip body (also as several members) is read like the plain one."""
    plain = parse_events(BODY, None, now=NOW)
    assert parse_events(gzip.compress(BODY), None, "gzip", now=NOW).equals(plain)
    half = len(BODY) // 2
    two_members = gzip.compress(BODY[:half]) + gzip.compress(BODY[half:])
    assert parse_events(two_members, None, "GZIP", now=NOW).equals(plain)


def test_zip_bomb_is_413() -> None:
    """A small gzip body that inflates past max_body_bytes is refused with 413, not read."""
    bomb = gzip.compress(b" " * (8 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    err = error_of(bomb, None, "gzip", max_body=1024 * 1024)
    assert (err.status, err.code) == (413, "too_large")


def test_plain_body_over_limit_is_413() -> None:
    """An uncompressed body over max_body_bytes is refused with 413."""
    err = error_of(BODY, None, max_body=10)
    assert (err.status, err.code) == (413, "too_large")


def test_broken_gzip_is_400() -> None:
    """A body that is not gzip, or is cut short, is a 400."""
    for body in (b"not gzip", gzip.compress(BODY)[:-12]):
        err = error_of(body, None, "gzip")
        assert (err.status, err.code) == (400, "malformed_body")


def test_malformed_json_names_line_and_column() -> None:
    """Malformed JSON is a 400 whose message gives the line and column."""
    err = error_of(b'{"events": [\n  {"score": 1,}\n]}', "application/json")
    assert (err.status, err.code) == (400, "malformed_body")
    assert "line 2, column 14" in err.message  # orjson >= 3.9 points at the trailing comma


def test_malformed_ndjson_names_the_line() -> None:
    """In NDJSON the bad line is named, counting blank lines."""
    body = b'{"event_id": "a"}\n\n{"event_id": \n{"event_id": "c"}\n'
    err = error_of(body, "application/x-ndjson")
    assert err.status == 400 and "line 3" in err.message


def test_wrong_top_level_shape_is_400() -> None:
    """A JSON object without "events", with extra keys or a non-array is a 400."""
    for body in (b'{"event": []}', b'{"events": [], "x": 1}', b'{"events": {}}', b"3"):
        assert error_of(body, None).code == "malformed_body"


def test_unreadable_arrow_is_400() -> None:
    """Bytes that are not an Arrow IPC stream are a 400."""
    err = error_of(b"\xff\xff\xff\xff garbage", "application/vnd.apache.arrow.stream")
    assert (err.status, err.code) == (400, "malformed_body")


def test_to_dict_is_the_reply_body() -> None:
    """BatchError.to_dict gives the JSON reply with code, message, count and details."""
    err = error_of(orjson.dumps([{"score": "x"}]), None)
    assert err.to_dict() == {
        "error": "invalid_rows",
        "message": "1 of 1 events is invalid; nothing was stored",
        "error_count": 1,
        "details": [{"row": 0, "field": "score", "reason": "expected a number, got string"}],
    }
