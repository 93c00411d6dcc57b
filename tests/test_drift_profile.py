"""Reference profiles: numeric and categorical layouts, counts, merging, JSON, coarse bins."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.drift.profile import (
    OTHER,
    SORT_EDGES,
    UNSEEN,
    CategoricalLayout,
    Counts,
    Layout,
    NumericLayout,
    build_layout,
    coarse_groups,
    count,
    layout_from_json,
)

# Magnitudes are kept to |x| <= 1e9: squares of values past ~1e154 overflow float64 (a
# warning, an error under this suite's filterwarnings), and no feature is that large.
FINITE = st.one_of(
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False),
    st.integers(-5, 5).map(float),  # small integers give ties and atoms
)
NUMERIC_VALUE = st.one_of(
    FINITE,
    FINITE,
    FINITE,
    st.none(),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
CATEGORY = st.one_of(st.sampled_from(["a", "b", "c", "d", "e", "zz"]), st.none())
FINE = st.one_of(st.just("exact"), st.integers(1, 20))
PROPS = settings(max_examples=60, deadline=None)


def num(values: Sequence[float | None] | np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.float64())


def cats(values: list[str | None]) -> pa.Array:
    return pa.array(values, type=pa.string())


def numeric_layout(ref: Sequence[float | None], fine: int | str) -> NumericLayout:
    layout = build_layout(num(ref), "number", fine=fine)  # type: ignore[arg-type]
    assert isinstance(layout, NumericLayout)
    return layout


def abs_sum(values: list[float | None]) -> float:
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    return float(sum(finite))


def assert_counts_equal(a: Counts, b: Counts, scale: float) -> None:
    """Equal counts; sums and squares up to float summation order.

    Adding n values in another order changes a sum by at most ~n·eps·Σ|x| (eps 2.2e-16);
    with at most a few hundred values, 1e-12·Σ|x| (1e-12·Σx² for squares) covers it.
    """
    np.testing.assert_array_equal(a.n, b.n)
    np.testing.assert_array_equal(a.mins, b.mins)
    np.testing.assert_array_equal(a.maxs, b.maxs)
    assert (a.null, a.invalid) == (b.null, b.invalid)
    np.testing.assert_allclose(a.sums, b.sums, rtol=0, atol=1e-12 * (scale + 1))
    np.testing.assert_allclose(a.squares, b.squares, rtol=0, atol=1e-12 * (scale**2 + 1))


# ---------------------------------------------------------------------- numeric codes
def test_numeric_codes_follow_the_documented_layout() -> None:
    layout = NumericLayout((1.0, 2.0, 3.0))
    assert layout.n_codes == 7
    values = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, -1e300, 1e300])
    np.testing.assert_array_equal(layout.codes(values), [0, 1, 2, 3, 4, 5, 6, 0, 6])
    lo, hi = layout.bounds()
    assert list(lo) == [-math.inf, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert list(hi) == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, math.inf]
    assert layout.labels() == ["< 1", "= 1", "(1, 2)", "= 2", "(2, 3)", "= 3", "> 3"]


def test_empty_numeric_layout_has_one_code() -> None:
    layout = build_layout(num([None, math.nan, None]), "number")
    assert layout == NumericLayout(())
    c = count(layout, num([1.0, None, 2.0, math.inf]))
    assert list(c.n) == [2] and (c.null, c.invalid) == (1, 1)


def test_quantile_layout_keeps_min_max_and_atoms() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=20_000)
    layout = numeric_layout(list(ref), 100)
    assert len(layout.edges) == 101  # continuous: 101 distinct percentiles
    assert layout.edges[0] == ref.min() and layout.edges[-1] == ref.max()
    assert set(layout.edges) <= set(ref.tolist())  # "inverted_cdf" picks values that occur
    c = count(layout, num(ref))
    assert c.n[0] == 0 and c.n[-1] == 0  # nothing of the reference outside its own range
    # each open bin between two percentiles holds ~1 % of the reference (±1 value per edge)
    open_share = c.n[2:-2:2] / len(ref)
    assert np.all(np.abs(open_share - 0.01) <= 2 / len(ref))

    ints = rng.poisson(3, 20_000).astype(float)
    int_layout = numeric_layout(list(ints), 100)
    values, freq = np.unique(ints, return_counts=True)
    assert set(int_layout.edges) <= set(values.tolist())
    # every atom holding a percentile is an edge (so its point bin keeps it whole), and so
    # is the maximum; only rarer values (the top tail here) share the last open bin
    assert set(values[freq >= len(ints) / 100].tolist()) <= set(int_layout.edges)
    assert int_layout.edges[-1] == ints.max()
    ic = count(int_layout, num(ints))
    assert ic.n[0::2].sum() == np.sum(freq[~np.isin(values, int_layout.edges)])


@PROPS
@given(st.lists(FINITE, min_size=1, max_size=60), st.lists(FINITE, max_size=60), FINE)
def test_codes_are_monotone_in_value(
    ref: list[float], values: list[float], fine: int | str
) -> None:
    layout = numeric_layout(ref, fine)
    x = np.sort(np.asarray(values + ref, dtype=np.float64))
    codes = layout.codes(x)
    assert np.all(np.diff(codes) >= 0)  # x <= y  =>  code(x) <= code(y)
    assert codes.min(initial=0) >= 0 and codes.max(initial=0) < layout.n_codes
    lo, hi = layout.bounds()
    for v, code in zip(x, codes, strict=True):  # every value lies in its code's range
        if lo[code] == hi[code]:
            assert v == lo[code]
        else:
            assert lo[code] < v < hi[code]


@PROPS
@given(st.lists(FINITE, min_size=1, max_size=60))
def test_exact_layout_puts_every_reference_value_on_a_point_bin(ref: list[float]) -> None:
    layout = numeric_layout(ref, "exact")
    assert len(layout.edges) == len(set(ref))
    codes = layout.codes(np.asarray(ref))
    assert np.all(codes % 2 == 1)
    np.testing.assert_array_equal(layout.edge_array[codes // 2], ref)


# ---------------------------------------------------------------------- counting
@PROPS
@given(st.lists(FINITE, min_size=1, max_size=40), st.lists(NUMERIC_VALUE, max_size=80), FINE)
def test_numeric_count_matches_a_direct_tally(
    ref: list[float], values: list[float | None], fine: int | str
) -> None:
    layout = numeric_layout(ref, fine)
    c = count(layout, num(values))
    assert c.null == sum(v is None for v in values)  # None is missing
    assert c.invalid == sum(v is not None and not math.isfinite(v) for v in values)  # NaN, ±inf
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    assert c.valid == len(finite) and c.total == len(values)
    codes = layout.codes(finite)
    for code in range(layout.n_codes):
        mine = finite[codes == code]
        assert c.n[code] == len(mine)
        assert c.sums[code] == pytest.approx(
            mine.sum(), rel=1e-12, abs=1e-12 * (abs_sum(values) + 1)
        )
        assert c.mins[code] == (mine.min() if len(mine) else math.inf)
        assert c.maxs[code] == (mine.max() if len(mine) else -math.inf)


def test_large_exact_layout_counts_like_the_per_value_path() -> None:
    """Above SORT_EDGES edges counting sorts the values first; the result is the same."""
    rng = np.random.default_rng(5)
    ref = np.round(rng.normal(size=12_000) * 3, 3)  # > SORT_EDGES distinct values, with ties
    cur = np.concatenate([np.round(rng.normal(0.2, 1.1, 3_000), 4), [-9.0, 9.0]])
    layout = numeric_layout(list(ref), "exact")
    assert SORT_EDGES < len(layout.edges) < len(ref)
    c = count(layout, num(cur))
    codes = layout.codes(cur)
    np.testing.assert_array_equal(c.n, np.bincount(codes, minlength=layout.n_codes))
    # sums: a cumulative-sum difference vs a direct sum; both within ~1e-12 of the values' scale
    np.testing.assert_allclose(
        c.sums, np.bincount(codes, weights=cur, minlength=layout.n_codes), rtol=0, atol=1e-9
    )
    has = c.n > 0
    for code in np.flatnonzero(has)[:200]:
        assert c.mins[code] == cur[codes == code].min()
        assert c.maxs[code] == cur[codes == code].max()
    assert np.all(np.isinf(c.mins[~has]))


@PROPS
@given(
    st.lists(FINITE, min_size=1, max_size=30),
    st.lists(NUMERIC_VALUE, max_size=60),
    FINE,
    st.randoms(),
)
def test_row_order_does_not_matter(
    ref: list[float], values: list[float | None], fine: int | str, rnd: random.Random
) -> None:
    layout = numeric_layout(ref, fine)
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert_counts_equal(count(layout, num(values)), count(layout, num(shuffled)), abs_sum(values))


@PROPS
@given(
    st.lists(FINITE, min_size=1, max_size=30),
    st.lists(NUMERIC_VALUE, max_size=50),
    st.lists(NUMERIC_VALUE, max_size=50),
    FINE,
)
def test_numeric_merge_equals_count_of_union(
    ref: list[float], a: list[float | None], b: list[float | None], fine: int | str
) -> None:
    layout = numeric_layout(ref, fine)
    whole = count(layout, num(a + b))
    merged = count(layout, num(a)).merge(count(layout, num(b)))
    assert_counts_equal(merged, whole, abs_sum(a + b))
    in_place = count(layout, num(a))
    in_place.add(count(layout, num(b)))
    assert_counts_equal(in_place, whole, abs_sum(a + b))
    # chunked input counts the same as one array
    chunked = pa.chunked_array([num(a), num(b)], type=pa.float64())
    assert_counts_equal(count(layout, chunked), whole, abs_sum(a + b))


@PROPS
@given(
    st.lists(CATEGORY, min_size=1, max_size=40),
    st.lists(CATEGORY, max_size=50),
    st.lists(CATEGORY, max_size=50),
    st.integers(0, 4),
)
def test_categorical_merge_equals_count_of_union(
    ref: list[str | None], a: list[str | None], b: list[str | None], k: int
) -> None:
    layout = build_layout(cats(ref), "string", max_categories=k)
    whole = count(layout, cats(a + b))
    assert whole.null == sum(v is None for v in a + b)
    assert whole.valid == sum(v is not None for v in a + b)
    assert_counts_equal(count(layout, cats(a)).merge(count(layout, cats(b))), whole, 0.0)
    shuffled = list(reversed(a + b))
    assert_counts_equal(count(layout, cats(shuffled)), whole, 0.0)


# ---------------------------------------------------------------------- categorical layout
def test_categorical_layout_keeps_top_categories_other_and_unseen() -> None:
    ref = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] + [None] * 2
    layout = build_layout(cats(ref), "string", max_categories=2)
    assert isinstance(layout, CategoricalLayout)
    # by count, ties by name: a (5), then b before c (3 each)
    assert layout.categories == ("a", "b")
    assert layout.known == frozenset({"c", "d"})
    assert layout.labels() == ["a", "b", OTHER, UNSEEN]
    c = count(layout, cats(["a", "b", "c", "d", "new", None, "a"]))
    assert list(c.n) == [2, 1, 2, 1] and c.null == 1


def test_truncated_layout_cannot_tell_unseen_from_rare() -> None:
    layout = CategoricalLayout(("a",), frozenset({"b"}), "string", truncated=True)
    c = count(layout, cats(["a", "b", "never"]))
    assert list(c.n) == [1, 2, 0]  # "never" could be a forgotten reference category


def test_booleans_are_categories() -> None:
    layout = build_layout(pa.array([True, False, True, None]), "bool")
    assert isinstance(layout, CategoricalLayout) and layout.kind == "bool"
    assert layout.categories == ("true", "false")
    c = count(layout, pa.array([False, False, None, True]))
    assert list(c.n) == [1, 2, 0, 0] and c.null == 1


def test_dictionary_and_integer_columns_count_as_strings() -> None:
    layout = build_layout(cats(["x", "y", "y"]), "string")
    dictionary = pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 1, 0], pa.int32()), cats(["x", "z"])
    )
    assert list(count(layout, dictionary).n) == [0, 2, 0, 2]  # y, x, other, unseen
    int_layout = build_layout(pa.array([1, 2, 2, None]), "string")
    assert int_layout.categories == ("2", "1")  # type: ignore[union-attr]
    assert list(count(int_layout, pa.array([2, 3])).n) == [1, 0, 0, 1]


# ---------------------------------------------------------------------- JSON
@PROPS
@given(st.lists(FINITE, min_size=1, max_size=30), st.lists(NUMERIC_VALUE, max_size=60), FINE)
def test_numeric_json_round_trip(
    ref: list[float], values: list[float | None], fine: int | str
) -> None:
    layout = numeric_layout(ref, fine)
    back = layout_from_json(json.loads(json.dumps(layout.to_json())))
    assert back == layout
    x = np.asarray([v for v in values + ref if v is not None and math.isfinite(v)], dtype=float)
    np.testing.assert_array_equal(back.codes(x), layout.codes(x))
    c = count(layout, num(values))
    again = Counts.from_json(json.loads(json.dumps(c.to_json())), back.n_codes)
    assert_counts_equal(again, c, 0.0)  # JSON floats round-trip exactly


@PROPS
@given(
    st.lists(CATEGORY, min_size=1, max_size=30), st.lists(CATEGORY, max_size=40), st.integers(0, 4)
)
def test_categorical_json_round_trip(
    ref: list[str | None], values: list[str | None], k: int
) -> None:
    layout = build_layout(cats(ref), "string", max_categories=k)
    back = layout_from_json(json.loads(json.dumps(layout.to_json())))
    assert back == layout
    present = cats([v for v in values if v is not None])
    np.testing.assert_array_equal(back.codes(present), layout.codes(present))
    c = count(layout, cats(values))
    assert_counts_equal(Counts.from_json(json.loads(json.dumps(c.to_json())), back.n_codes), c, 0.0)


def test_bool_layout_json_keeps_its_kind() -> None:
    layout: Layout = build_layout(pa.array([True, False]), "bool")
    back = layout_from_json(json.loads(json.dumps(layout.to_json())))
    assert back == layout and back.kind == "bool"


def test_counts_from_json_ignores_stale_codes_and_null_extremes() -> None:
    """A stored blob whose non-finite extremes came back as null (strict JSON writers) and a
    code past the layout (a stale aggregate) still load."""
    data = {
        "codes": [0, 1, 9],
        "n": [2, 1, 5],
        "sums": [3.0, 4.0, 1.0],
        "squares": [5.0, 16.0, 1.0],
        "mins": [1.0, None, 0.0],
        "maxs": [2.0, None, 0.0],
        "null": 3,
        "invalid": 1,
    }
    c = Counts.from_json(data, 3)
    assert list(c.n) == [2, 1, 0] and (c.null, c.invalid) == (3, 1)
    assert list(c.mins) == [1.0, math.inf, math.inf]
    assert list(c.maxs) == [2.0, -math.inf, -math.inf]


# ---------------------------------------------------------------------- coarse groups
def group_shares(ref_n: np.ndarray, groups: np.ndarray) -> np.ndarray:
    shares: np.ndarray = np.bincount(groups, weights=ref_n) / ref_n.sum()
    return shares


@pytest.mark.parametrize("fine", [100, "exact"])
def test_coarse_groups_are_deciles_for_continuous_data(fine: int | str) -> None:
    rng = np.random.default_rng(3)
    ref = rng.lognormal(size=50_000)
    layout = numeric_layout(list(ref), fine)
    c = count(layout, num(ref))
    groups = coarse_groups(c.n)
    assert groups[0] == 0 and groups[-1] == groups.max()  # outer codes: own (empty) bins
    assert np.all(np.diff(groups) >= 0)  # contiguous runs of codes
    inner = group_shares(c.n, groups)[1:-1]
    assert len(inner) == 10
    # 10 % ± 1 %: a bin closes at the fine code that crosses the next 10 % step, so it
    # overshoots by at most one fine code (~1 % of the reference with 100 quantiles, one
    # value in exact mode)
    assert np.all(np.abs(inner - 0.1) <= 0.01), inner


@pytest.mark.parametrize("share_of_ones", [0.5, 0.97, 0.03, 0.2])
def test_coarse_groups_keep_the_two_atoms_of_a_binary_feature(share_of_ones: float) -> None:
    rng = np.random.default_rng(4)
    ref = (rng.random(10_000) < share_of_ones).astype(float)
    layout = numeric_layout(list(ref), 100)
    assert layout.edges == (0.0, 1.0)
    c = count(layout, num(ref))
    groups = coarse_groups(c.n)
    assert groups[1] != groups[3]  # "= 0" and "= 1" in different bins
    np.testing.assert_allclose(
        sorted(group_shares(c.n, groups)[groups[[1, 3]]]),
        sorted([1 - ref.mean(), ref.mean()]),
    )


def test_coarse_groups_keep_a_heavy_atom_alone() -> None:
    """A zero-inflated feature: 40 % zeros, the rest continuous; the atom gets its own bin."""
    rng = np.random.default_rng(6)
    ref = np.where(rng.random(20_000) < 0.4, 0.0, rng.exponential(size=20_000))
    layout = numeric_layout(list(ref), 100)
    c = count(layout, num(ref))
    groups = coarse_groups(c.n)
    zero = int(layout.codes(np.array([0.0]))[0])
    members = np.flatnonzero(groups == groups[zero])
    assert c.n[members].sum() == c.n[zero]  # nothing else with mass shares the atom's bin


@PROPS
@given(st.lists(st.integers(0, 50), min_size=1, max_size=40), st.sampled_from([0.1, 0.25]))
def test_coarse_group_invariants(inner: list[int], share: float) -> None:
    ref = np.array([0, *inner, 0], dtype=np.int64)  # outer codes: the reference has none
    groups = coarse_groups(ref, share)
    k = int(groups.max()) + 1
    np.testing.assert_array_equal(np.unique(groups), np.arange(k))
    assert np.all(np.diff(groups) >= 0) and np.all(np.diff(groups) <= 1)
    assert groups[0] == 0 and groups[-1] == k - 1
    assert np.count_nonzero(groups == 0) == 1 and np.count_nonzero(groups == k - 1) == 1
    total = ref.sum()
    if total == 0:
        return
    mass = np.bincount(groups, weights=ref)
    assert np.all(mass[1:-1] > 0)  # no inner bin without reference mass
    heavy = np.flatnonzero(ref > share * total)
    for code in heavy:  # an atom heavier than a step shares its bin with no other mass
        assert mass[groups[code]] == ref[code]
