"""A DDSketch-style log-spaced histogram: mergeable quantiles with 1 % relative error.

The store counts values per bin in SQL (see :func:`bin_index_sql`), one row of bin counts per
1-minute window; any time range merges by adding counts (:func:`merge`), and
:func:`quantiles` turns merged counts into estimates.

Bin ``i`` holds the values in ``(GAMMA**(i-1), GAMMA**i]`` and is represented by
``2 * GAMMA**i / (GAMMA + 1)``, which is within ``RELATIVE_ACCURACY`` of every value in the
bin: at the top edge the ratio is ``2 / (GAMMA + 1) = 1 - a``, at the bottom edge it is
``2 * GAMMA / (GAMMA + 1) = 1 + a``. Values ``<= MIN_POSITIVE`` (zero, and negatives, which
the sketch is not meant for) share ``ZERO_BIN`` and are estimated as ``0.0``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from itertools import accumulate

__all__ = [
    "GAMMA",
    "LN_GAMMA",
    "MIN_POSITIVE",
    "RELATIVE_ACCURACY",
    "ZERO_BIN",
    "bin_index",
    "bin_index_sql",
    "bin_value",
    "bins_from_values",
    "merge",
    "quantiles",
]

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA = math.log(GAMMA)
MIN_POSITIVE = 1e-9
# The smallest 32-bit integer: sorts before every real bin, and fits SQL INTEGER.
ZERO_BIN = -2147483648


def bin_index(x: float) -> int:
    """Return the bin of ``x``: ``ceil(ln(x) / LN_GAMMA)``, or ``ZERO_BIN`` if ``x <= 1e-9``.

    This is the same double-precision arithmetic as :func:`bin_index_sql`, so Python and the
    database put a value in the same bin. ``x`` must be finite and not NaN.
    """
    if x <= MIN_POSITIVE:
        return ZERO_BIN
    if not math.isfinite(x):
        raise ValueError(f"cannot bin a non-finite value: {x!r}")
    return math.ceil(math.log(x) / LN_GAMMA)


def bin_index_sql(column: str) -> str:
    """Return the SQL expression computing :func:`bin_index` of ``column``.

    ``column`` is pasted as is (pass a quoted identifier or an expression you trust). The
    constants are written in exponent form (``2.0000666706669435e-2``): engines such as
    DuckDB read a plain ``0.0200…`` literal as a DECIMAL, which may round differently from
    the Python float, while an exponent literal is parsed straight to the same DOUBLE.
    """
    return (
        f"CASE WHEN {column} <= {_exp_literal(MIN_POSITIVE)} THEN {ZERO_BIN} "
        f"ELSE CAST(ceil(ln({column}) / {_exp_literal(LN_GAMMA)}) AS INTEGER) END"
    )


def _exp_literal(x: float) -> str:
    """Write ``x`` with its shortest round-tripping digits in exponent form (``1e-9``)."""
    return format(Decimal(repr(x)), "e")


def bin_value(i: int) -> float:
    """Return the representative value of bin ``i`` (``0.0`` for ``ZERO_BIN``)."""
    if i == ZERO_BIN:
        return 0.0
    return 2.0 * GAMMA**i / (GAMMA + 1.0)


def bins_from_values(values: Iterable[float]) -> dict[int, int]:
    """Count ``values`` per bin, as the SQL aggregate does (for tests and small inputs)."""
    bins: dict[int, int] = {}
    for x in values:
        i = bin_index(x)
        bins[i] = bins.get(i, 0) + 1
    return bins


def merge(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int]:
    """Return the bin counts of the union of the samples behind ``a`` and ``b``."""
    out = dict(a)
    for i, count in b.items():
        out[i] = out.get(i, 0) + count
    return out


def quantiles(bins: Mapping[int, int], qs: Sequence[float]) -> list[float | None]:
    """Estimate the ``qs`` quantiles of the sample whose bin counts are ``bins``.

    Rank rule: with ``n`` values in all, the ``q`` quantile is the value of the bin holding
    the sorted value at 0-based rank ``k = floor(q * (n - 1))``, i.e. the first bin (in
    ascending order) whose cumulative count exceeds ``k``. That sorted value is
    ``numpy.quantile(x, q, method="lower")``, so the estimate lies in
    ``[(1 - a) * lower, (1 + a) * higher]`` where ``higher`` is
    ``numpy.quantile(x, q, method="higher")`` (up to float rounding at bin edges, and values
    ``<= MIN_POSITIVE`` which are estimated as 0).

    Returns ``None`` for every ``q`` when ``bins`` holds no values. Bins with a count of zero
    or less are ignored. Raises ``ValueError`` for a ``q`` outside ``[0, 1]``.
    """
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q!r}")
    ordered = sorted((i, c) for i, c in bins.items() if c > 0)
    n = sum(c for _, c in ordered)
    if n == 0:
        return [None for _ in qs]
    cumulative = list(accumulate(c for _, c in ordered))
    out: list[float | None] = []
    for q in qs:
        # Same float arithmetic as numpy's "lower" method: floor((n - 1) * q).
        rank = math.floor((n - 1) * q)
        out.append(bin_value(ordered[bisect_right(cumulative, rank)][0]))
    return out
