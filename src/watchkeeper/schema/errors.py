"""Errors raised for request bodies that cannot be stored, and the collector of row errors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

MAX_DETAILS: Final = 100


class BatchError(Exception):
    """A request body that cannot be stored; the API layer replies with `status`.

    `details` lists at most 100 problems as ``{"row": i, "field": "features.x", "reason": ...}``
    (row is the 0-based index in the batch, or None when the problem is a whole Arrow column
    or the batch itself); `error_count` counts all of them.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        error_count: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: list[dict[str, Any]] = details or []
        self.error_count = error_count if error_count is not None else max(1, len(self.details))

    def __reduce__(self) -> tuple[Any, ...]:  # raised in OTLP worker processes, pickled back
        return (
            type(self),
            (self.status, self.code, self.message, self.details, self.error_count),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the error reply."""
        return {
            "error": self.code,
            "message": self.message,
            "error_count": self.error_count,
            "details": self.details,
        }

    def __repr__(self) -> str:
        return f"BatchError({self.status}, {self.code!r}, {self.message!r})"


def malformed(message: str) -> BatchError:
    """A 400 for a body that cannot be decoded at all."""
    return BatchError(400, "malformed_body", message)


def empty_batch(what: str) -> BatchError:
    """A 422 for a batch without rows."""
    return BatchError(422, "empty_batch", f"the batch holds no {what}; send at least one")


class RowErrors:
    """Collects every problem of a batch; `raise_if_any` turns them into one 422."""

    def __init__(self, n_rows: int, noun: str = "events") -> None:
        self.n_rows = n_rows
        self.noun = noun
        self._items: list[tuple[int, str | None, str]] = []

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, row: int | None, field: str | None, reason: str) -> None:
        """Record one problem; row None means the whole column or batch, field None the row."""
        self._items.append((-1 if row is None else row, field, reason))

    def add_rows(self, rows: Iterable[int], field: str, reason: str) -> None:
        """Record the same problem for many rows."""
        self._items.extend((row, field, reason) for row in rows)

    def flagged(self, field: str) -> set[int]:
        """The rows that already have a problem recorded for `field`."""
        return {row for row, name, _ in self._items if name == field}

    def raise_if_any(self) -> None:
        """Raise the 422 for everything collected so far, sorted by row then field."""
        if not self._items:
            return
        self._items.sort(key=lambda item: (item[0], item[1] or ""))
        bad_rows = {row for row, _, _ in self._items if row >= 0}
        whole = any(row < 0 for row, _, _ in self._items)
        if whole and not bad_rows:
            message = f"the batch of {self.n_rows} {self.noun} is invalid; nothing was stored"
        else:
            verb = "is" if len(bad_rows) == 1 else "are"
            message = (
                f"{len(bad_rows)} of {self.n_rows} {self.noun} {verb} invalid; nothing was stored"
            )
        details = [
            {"row": None if row < 0 else row, "field": field, "reason": reason}
            for row, field, reason in self._items[:MAX_DETAILS]
        ]
        raise BatchError(422, "invalid_rows", message, details, len(self._items))
