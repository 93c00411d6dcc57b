"""Reference profiles: the bins each feature's values fall into, and counts in those bins.

A **layout** is fixed by the reference data once, and every window of production traffic is
counted in the same bins, so drift over any range or segment is computed from merged counts.

Numeric layout. ``edges`` are sorted distinct values taken from the reference (its quantiles
at every 1 % online; every distinct value in the offline exact mode). Each value gets a
*code*, in value order::

    0        x < edges[0]                 (open-ended: below the reference's minimum)
    2k + 1   x == edges[k]                (a point bin, so discrete values keep their atoms)
    2k       edges[k-1] < x < edges[k]    (open interval between two edges)
    2L       x > edges[L-1]               (open-ended: above the reference's maximum)

With every reference value an edge, the Kolmogorov-Smirnov statistic over these codes is
exact (see :mod:`watchkeeper.drift.stats`); with quantile edges it is within a stated bound.

Categorical layout. The reference's most frequent categories keep their own code ``0..K-1``;
the other categories the reference holds share code ``K`` (``__other__``); a category the
reference never held gets ``K+1`` (``__unseen__``). Booleans are categories
``"true"``/``"false"``.

Missing values (null) and, for numbers, non-finite values (NaN, ±inf: type violations) are
counted apart from the codes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FINE_QUANTILES = 100  # online numeric bins: the reference's percentiles
COARSE_SHARE = 0.1  # binned methods (PSI, JS, Hellinger) merge fine bins into ~deciles
MAX_CATEGORIES = 50  # categories kept individually; the rest of the reference is "other"
MAX_KNOWN_CATEGORIES = 10_000  # reference categories remembered to tell "other" from "unseen"
OTHER = "__other__"
UNSEEN = "__unseen__"
MISSING = "missing"
# The model's outputs and ground truth, profiled and compared like features.
SCORE, PREDICTION, LABEL = "__score__", "__prediction__", "__label__"
PSEUDO = (SCORE, PREDICTION, LABEL)
SORT_EDGES = 4096  # above this many edges, count by sorting the values first

Kind = Literal["number", "string", "bool"]


@dataclass(frozen=True)
class NumericLayout:
    edges: tuple[float, ...]
    kind: Kind = "number"

    @property
    def n_codes(self) -> int:
        return 2 * len(self.edges) + 1

    @cached_property
    def edge_array(self) -> np.ndarray:
        return np.asarray(self.edges, dtype=np.float64)

    def codes(self, values: np.ndarray) -> np.ndarray:
        """Codes of finite float64 values."""
        edges = self.edge_array
        if not len(edges):
            return np.zeros(len(values), dtype=np.int32)
        j = np.searchsorted(edges, values, side="left")
        eq = edges[np.minimum(j, len(edges) - 1)] == values
        out: np.ndarray = (2 * j + eq).astype(np.int32)
        return out

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of each code's values as arrays; the outer codes are open-ended."""
        e = self.edge_array
        k = len(e)
        lo = np.empty(2 * k + 1)
        hi = np.empty(2 * k + 1)
        lo[0], hi[0] = -np.inf, e[0] if k else np.inf
        lo[1::2] = hi[1::2] = e
        lo[2::2] = e
        hi[2::2] = np.r_[e[1:], np.inf]
        return lo, hi

    def labels(self) -> list[str]:
        return [interval_label(lo, hi) for lo, hi in zip(*self.bounds(), strict=True)]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "edges": list(self.edges)}


@dataclass(frozen=True)
class CategoricalLayout:
    categories: tuple[str, ...]
    known: frozenset[str] = field(default_factory=frozenset)
    kind: Kind = "string"
    truncated: bool = False  # more reference categories than MAX_KNOWN_CATEGORIES

    @property
    def n_codes(self) -> int:
        return len(self.categories) + 2

    @property
    def other_code(self) -> int:
        return len(self.categories)

    @property
    def unseen_code(self) -> int:
        return len(self.categories) + 1

    def codes(self, values: pa.Array) -> np.ndarray:
        """Codes of non-null string values."""
        idx = pc.index_in(values, value_set=pa.array(self.categories, pa.string()))
        out = np.array(idx.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int32)
        rest = out < 0
        if rest.any():
            if self.known:
                known = pc.is_in(values, value_set=pa.array(sorted(self.known), pa.string()))
                known_np = np.array(known.to_numpy(zero_copy_only=False), dtype=bool)
            else:
                known_np = np.zeros(len(out), dtype=bool)
            if self.truncated:  # cannot tell unseen from a rare known category
                known_np[:] = True
            out[rest & known_np] = self.other_code
            out[rest & ~known_np] = self.unseen_code
        return out

    def labels(self) -> list[str]:
        return [*self.categories, OTHER, UNSEEN]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "categories": list(self.categories),
            "known": sorted(self.known),
            "truncated": self.truncated,
        }


Layout = NumericLayout | CategoricalLayout


def layout_from_json(data: Mapping[str, Any]) -> Layout:
    if data["kind"] == "number":
        return NumericLayout(tuple(float(x) for x in data["edges"]))
    return CategoricalLayout(
        tuple(data["categories"]),
        frozenset(data.get("known", ())),
        data["kind"],
        bool(data.get("truncated", False)),
    )


@dataclass
class Counts:
    """Counts of one feature in one layout: per code, plus missing and invalid values.

    ``sums``/``squares`` (per code, numbers only) and ``mins``/``maxs`` let Wasserstein and the
    descriptive statistics be computed from merged counts without the raw values.
    """

    n: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray
    null: int = 0
    invalid: int = 0

    @classmethod
    def empty(cls, n_codes: int) -> Counts:
        return cls(
            np.zeros(n_codes, dtype=np.int64),
            np.zeros(n_codes),
            np.zeros(n_codes),
            np.full(n_codes, np.inf),
            np.full(n_codes, -np.inf),
        )

    @property
    def valid(self) -> int:
        return int(self.n.sum())

    @property
    def total(self) -> int:
        return self.valid + self.null + self.invalid

    def add(self, other: Counts) -> None:
        """Merge ``other`` into these counts, in place."""
        self.n += other.n
        self.sums += other.sums
        self.squares += other.squares
        np.minimum(self.mins, other.mins, out=self.mins)
        np.maximum(self.maxs, other.maxs, out=self.maxs)
        self.null += other.null
        self.invalid += other.invalid

    def merge(self, other: Counts) -> Counts:
        return Counts(
            self.n + other.n,
            self.sums + other.sums,
            self.squares + other.squares,
            np.minimum(self.mins, other.mins),
            np.maximum(self.maxs, other.maxs),
            self.null + other.null,
            self.invalid + other.invalid,
        )

    def add_code_rows(
        self,
        codes: np.ndarray,
        n: np.ndarray,
        sums: np.ndarray | None = None,
        squares: np.ndarray | None = None,
        mins: np.ndarray | None = None,
        maxs: np.ndarray | None = None,
    ) -> None:
        """Add aggregate rows (code, n, sum, sum of squares, min, max); code -1 is null,
        -2 invalid. Codes outside the layout (a stale aggregate) are ignored."""
        codes = np.asarray(codes, dtype=np.int64)
        n = np.asarray(n, dtype=np.int64)
        self.null += int(n[codes == NULL_CODE].sum())
        self.invalid += int(n[codes == INVALID_CODE].sum())
        ok = (codes >= 0) & (codes < len(self.n))
        c = codes[ok]
        np.add.at(self.n, c, n[ok])
        if sums is not None:
            np.add.at(self.sums, c, np.nan_to_num(np.asarray(sums, dtype=np.float64)[ok]))
        if squares is not None:
            np.add.at(self.squares, c, np.nan_to_num(np.asarray(squares, dtype=np.float64)[ok]))
        if mins is not None:
            m = np.asarray(mins, dtype=np.float64)[ok]
            np.minimum.at(self.mins, c, np.where(np.isnan(m), np.inf, m))
        if maxs is not None:
            m = np.asarray(maxs, dtype=np.float64)[ok]
            np.maximum.at(self.maxs, c, np.where(np.isnan(m), -np.inf, m))

    def to_json(self) -> dict[str, Any]:
        nz = np.flatnonzero(self.n)
        return {
            "codes": nz.tolist(),
            "n": self.n[nz].tolist(),
            "sums": self.sums[nz].tolist(),
            "squares": self.squares[nz].tolist(),
            "mins": self.mins[nz].tolist(),
            "maxs": self.maxs[nz].tolist(),
            "null": self.null,
            "invalid": self.invalid,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], n_codes: int) -> Counts:
        out = cls.empty(n_codes)
        out.add_code_rows(
            np.asarray(data["codes"], dtype=np.int64),
            np.asarray(data["n"], dtype=np.int64),
            np.asarray(data["sums"]),
            np.asarray(data["squares"]),
            np.asarray(data["mins"]),
            np.asarray(data["maxs"]),
        )
        out.null, out.invalid = int(data["null"]), int(data["invalid"])
        return out


NULL_CODE = -1
INVALID_CODE = -2


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def interval_label(lo: float, hi: float, lo_closed: bool = False, hi_closed: bool = False) -> str:
    """A bin's label: ``= 3``, ``< 0.5``, ``> 99``, ``[1.2, 3.4)``..."""
    if lo == hi:
        return f"= {_fmt(lo)}"
    if lo == -math.inf:
        return f"< {_fmt(hi)}"
    if hi == math.inf:
        return f"> {_fmt(lo)}"
    return f"{'[' if lo_closed else '('}{_fmt(lo)}, {_fmt(hi)}{']' if hi_closed else ')'}"


def _numbers(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int, int]:
    """Finite values, the null count and the non-finite count of a numeric column."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    nulls = values.null_count
    arr = np.asarray(pc.drop_null(values).cast(pa.float64()).to_numpy(zero_copy_only=False))
    finite = np.isfinite(arr)
    return arr[finite], nulls, int(len(arr) - finite.sum())


def _strings(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, int]:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_boolean(values.type):
        values = pc.if_else(values, "true", "false")
    elif not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return pc.drop_null(values), values.null_count


def build_layout(
    values: pa.Array | pa.ChunkedArray,
    kind: Kind,
    *,
    fine: int | Literal["exact"] = FINE_QUANTILES,
    max_categories: int = MAX_CATEGORIES,
) -> Layout:
    """The layout of one feature from its reference values."""
    if kind == "number":
        arr, _, _ = _numbers(values)
        if not len(arr):
            return NumericLayout(())
        if fine == "exact":
            edges = np.unique(arr)
        else:  # "inverted_cdf" picks values that occur, so discrete data keeps its atoms
            q = np.linspace(0.0, 1.0, fine + 1)
            edges = np.unique(np.quantile(arr, q, method="inverted_cdf"))
        return NumericLayout(tuple(float(x) for x in edges))
    strings, _ = _strings(values)
    vc = pc.value_counts(strings)
    cats = vc.field("values").to_pylist()
    counts = vc.field("counts").to_numpy()
    order = sorted(range(len(cats)), key=lambda i: (-int(counts[i]), str(cats[i])))
    top = tuple(str(cats[i]) for i in order[:max_categories])
    rest = [str(cats[i]) for i in order[max_categories:]]
    truncated = len(rest) > MAX_KNOWN_CATEGORIES
    return CategoricalLayout(top, frozenset(rest[:MAX_KNOWN_CATEGORIES]), kind, truncated)


def count(layout: Layout, values: pa.Array | pa.ChunkedArray, out: Counts | None = None) -> Counts:
    """Counts of ``values`` in ``layout`` (added into ``out`` when given, and returned)."""
    if out is None:
        out = Counts.empty(layout.n_codes)
    if isinstance(layout, NumericLayout):
        arr, nulls, invalid = _numbers(values)
        out.null += nulls
        out.invalid += invalid
        if len(layout.edges) > SORT_EDGES:
            _count_sorted(layout, arr, out)
            return out
        codes = layout.codes(arr)
        out.n += np.bincount(codes, minlength=layout.n_codes)
        out.sums += np.bincount(codes, weights=arr, minlength=layout.n_codes)
        out.squares += np.bincount(codes, weights=arr * arr, minlength=layout.n_codes)
        np.minimum.at(out.mins, codes, arr)
        np.maximum.at(out.maxs, codes, arr)
        return out
    strings, nulls = _strings(values)
    if len(strings):
        out.n += np.bincount(layout.codes(strings), minlength=layout.n_codes)
    out.null += nulls
    return out


def _count_sorted(layout: NumericLayout, arr: np.ndarray, out: Counts) -> None:
    """Counts against many edges (the exact layout): sort the values first, so the lookups
    among 100,000 edges walk memory in order instead of at random. Same result as the
    per-value path."""
    srt = np.sort(arr)
    if not len(srt):
        return
    e = layout.edge_array
    j = np.searchsorted(e, srt, side="left")
    codes = 2 * j + (e[np.minimum(j, len(e) - 1)] == srt)
    k = layout.n_codes
    out.n += np.bincount(codes, minlength=k)
    out.sums += np.bincount(codes, weights=srt, minlength=k)
    out.squares += np.bincount(codes, weights=srt * srt, minlength=k)
    first = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    last = np.r_[first[1:], len(codes)] - 1
    present = codes[first]
    out.mins[present] = np.minimum(out.mins[present], srt[first])
    out.maxs[present] = np.maximum(out.maxs[present], srt[last])


def coarse_groups(ref: np.ndarray, share: float = COARSE_SHARE) -> np.ndarray:
    """Map each numeric code to a coarse bin (so ~deciles): a code's bin is given by the
    reference mass before it, in steps of ``share``; an atom heavier than ``share`` gets a
    bin of its own, a last bin lighter than half a step joins the one before, and the two
    open-ended outer codes keep bins of their own."""
    n = len(ref)
    if n <= 2:
        return np.arange(n, dtype=np.int64)
    inner = np.asarray(ref[1:-1], dtype=np.float64)
    total = inner.sum()
    mass_before = np.cumsum(inner) - inner
    if total <= 0:
        steps = np.zeros(len(inner), dtype=np.int64)
    else:
        steps = np.floor(mass_before / total / share + 1e-9).astype(np.int64)
    heavy = (inner > share * total) & (total > 0)
    # a bin starts where the step changes, and at a heavy atom when lighter codes with mass
    # precede it in its step (the step always changes right after a heavy atom): so a heavy
    # atom never shares its bin with another value, and no bin is left without mass
    starts = np.ones(len(inner), dtype=bool)
    starts[1:] = steps[1:] != steps[:-1]
    step_start = np.maximum.accumulate(np.where(starts, np.arange(len(inner)), 0))
    starts |= heavy & (mass_before > mass_before[step_start])
    inner_groups = np.cumsum(starts) - 1
    last = int(inner_groups.max())
    last_mass = inner[inner_groups == last].sum()
    # (a light last bin with mass stays apart from a heavy atom: a 97/3 binary feature
    # keeps both of its values)
    if (
        last > 0
        and total > 0
        and last_mass < 0.5 * share * total
        and not (last_mass > 0 and heavy[inner_groups == last - 1].any())
    ):
        inner_groups[inner_groups == last] = last - 1
    groups = np.empty(n, dtype=np.int64)
    groups[0] = 0
    groups[1:-1] = inner_groups + 1
    groups[-1] = int(groups[1:-1].max()) + 1
    return groups
