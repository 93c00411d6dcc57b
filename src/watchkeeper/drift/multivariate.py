"""Multivariate drift detectors on bounded samples: a domain classifier and PCA reconstruction.

Univariate statistics compare one feature at a time, so they miss changes in how features
relate to each other (two features that stop being correlated keep their marginals). The two
detectors here look at all numeric and categorical features together, on samples of at most
``max_rows`` rows per side drawn with a seeded generator, so their cost is bounded whatever
the window holds and the same inputs and seed always give the same result.

``domain_classifier``
    Train a classifier to tell reference rows from current rows; its cross-validated ROC AUC
    is the statistic (0.5: indistinguishable), and permutation importance names the features
    that give the current window away. Sees any kind of change, including interactions.
``pca_reconstruction``
    Fit PCA on reference numbers and measure how badly it reconstructs current rows
    (NannyML's data reconstruction drift, on one window). Sees changes in the correlation
    structure that leave every marginal intact.

Both return plain JSON-serialisable dicts (``method``, ``statistic``, ``drifted``, the sample
sizes and method-specific fields); neither has a p-value. A result that cannot be computed
(too few rows, no usable features) has ``statistic: None``, ``drifted: False`` and a
``reason``.

Inputs are column name -> 1-D array: numbers as float64 with NaN for missing (infinities are
treated as missing too), categoricals (``kinds[name]`` ``"string"`` or ``"bool"``) as object
arrays with ``None`` (or NaN) for missing. Only features named in ``kinds`` and present on
both sides are used; all arrays of one side must have the same length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

__all__ = [
    "MAX_CATEGORIES",
    "MIN_ROWS",
    "domain_classifier",
    "pca_reconstruction",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

MIN_ROWS = 20
"""Fewest rows per side either detector needs; below it the result has ``statistic: None``."""

MAX_CATEGORIES = 50
"""Categories per feature the classifier sees: the most frequent ones, the rest as "other"."""

TOP_FEATURES = 10
"""Most features listed in ``top_features``."""

_KINDS = frozenset({"number", "string", "bool"})

# The classifier: small and regularised, because its job is to find a difference, not to
# model anything well; trees of at most 7 leaves still capture interactions. 50 trees at a
# learning rate of 0.2 find a half-sigma shift nearly as well as 100 at 0.1 (AUC ~0.005 lower)
# in half the time: 2 x 2,500 rows of 25 features fit in ~0.05 s per fold on two cores.
_HGB_PARAMS: dict[str, Any] = {
    "max_iter": 50,
    "learning_rate": 0.2,
    "max_leaf_nodes": 7,
    "early_stopping": False,
}
# Leaves hold at least 1/40 of the training fold, between 5 and 50 rows: 50 damps fitting
# noise in full samples, and small samples still get splits.
_MIN_LEAF = (5, 50)

# Permuted copies of a held-out fold are predicted in one call, this many cells at a time.
_PREDICT_CELLS = 4_000_000

# Floor on the half-width of the PCA band (squared standardised units), so that numerical
# noise cannot flag features that reconstruct perfectly (error ~1e-30 on both sides).
_PCA_MIN_HALF_WIDTH = 1e-9


# ---------------------------------------------------------------- shared helpers


def _features(
    reference: Mapping[str, Any], current: Mapping[str, Any], kinds: Mapping[str, str]
) -> list[str]:
    """Names in ``kinds`` present on both sides, in ``kinds`` order; checks the kinds."""
    for name, kind in kinds.items():
        if kind not in _KINDS:
            raise ValueError(
                f"feature {name!r}: unknown kind {kind!r} (expected one of {sorted(_KINDS)})"
            )
    return [name for name in kinds if name in reference and name in current]


def _length(side: Mapping[str, Any], names: Sequence[str], label: str) -> int:
    """The common length of ``side``'s arrays for ``names`` (any array when ``names`` is empty)."""
    lengths = {len(side[name]) for name in names} if names else {len(v) for v in side.values()}
    if len(lengths) > 1:
        raise ValueError(f"{label} columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _sample(rng: np.random.Generator, n: int, size: int) -> IntArray:
    """``size`` distinct row indices out of ``n`` (all of them, in order, when ``size >= n``)."""
    if size >= n:
        return np.arange(n, dtype=np.intp)
    return np.sort(rng.choice(n, size=size, replace=False)).astype(np.intp)


def _as_float(values: Any) -> FloatArray:
    """A float64 copy with NaN for missing (None, NaN, ±inf)."""
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = np.array([np.nan if v is None else v for v in arr.tolist()], dtype=np.float64)
    out = np.array(arr, dtype=np.float64, copy=True).reshape(-1)
    out[~np.isfinite(out)] = np.nan
    return out


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _category_codes(values: Any, max_categories: int = MAX_CATEGORIES) -> FloatArray:
    """Integer codes (as float64, NaN for missing) for a categorical column.

    The ``max_categories`` most frequent values get codes ``0 ..`` by falling frequency (ties
    by their text), every other value shares the next code, "other".
    """
    items = np.asarray(values, dtype=object).reshape(-1).tolist()
    present = [i for i, v in enumerate(items) if not _is_missing(v)]
    codes = np.full(len(items), np.nan)
    if not present:
        return codes
    texts = np.array([str(items[i]) for i in present])
    uniques, inverse, counts = np.unique(texts, return_inverse=True, return_counts=True)
    order = sorted(range(len(uniques)), key=lambda j: (-int(counts[j]), str(uniques[j])))
    rank = np.empty(len(uniques), dtype=np.float64)
    rank[order] = np.minimum(np.arange(len(uniques)), max_categories)
    codes[np.asarray(present, dtype=np.intp)] = rank[inverse.reshape(-1)]
    return codes


def _skipped(
    method: str, reason: str, n_reference: int, n_current: int, **extra: Any
) -> dict[str, Any]:
    return {
        "method": method,
        "statistic": None,
        **extra,
        "drifted": False,
        "reason": reason,
        "n_reference": n_reference,
        "n_current": n_current,
        "p_value": None,
    }


def _auc_rows(scores: FloatArray, labels: npt.NDArray[np.bool_]) -> FloatArray:
    """ROC AUC of each row of ``scores`` (2-D) against ``labels`` (Mann-Whitney, ties 1/2).

    Equals ``sklearn.metrics.roc_auc_score(labels, row)`` for every row.
    """
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    ranks = rankdata(scores, axis=1)
    pos_rank_sum = ranks[:, labels].sum(axis=1)
    return np.asarray((pos_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg), dtype=np.float64)


# ---------------------------------------------------------------- domain classifier


def _encode(
    reference: Mapping[str, Any],
    current: Mapping[str, Any],
    features: Sequence[str],
    kinds: Mapping[str, str],
    ref_rows: IntArray,
    cur_rows: IntArray,
) -> tuple[FloatArray, npt.NDArray[np.bool_], list[list[int]]]:
    """The design matrix (reference rows first), its categorical mask, and each feature's columns.

    Numbers are used as they are (NaN for missing, which the model routes natively) plus a 0/1
    missing-indicator column when any value is missing; categoricals become integer codes
    over the pooled sample (:func:`_category_codes`), missing as NaN.
    """
    columns: list[FloatArray] = []
    categorical: list[bool] = []
    groups: list[list[int]] = []
    for name in features:
        ref_values = np.asarray(reference[name]).reshape(-1)[ref_rows]
        cur_values = np.asarray(current[name]).reshape(-1)[cur_rows]
        group = [len(columns)]
        if kinds[name] == "number":
            x = np.concatenate([_as_float(ref_values), _as_float(cur_values)])
            columns.append(x)
            categorical.append(False)
            missing = np.isnan(x)
            if missing.any():
                group.append(len(columns))
                columns.append(missing.astype(np.float64))
                categorical.append(False)
        else:
            pooled = np.concatenate([ref_values.astype(object), cur_values.astype(object)])
            columns.append(_category_codes(pooled))
            categorical.append(True)
        groups.append(group)
    matrix = np.column_stack(columns) if columns else np.empty((len(ref_rows) + len(cur_rows), 0))
    return np.ascontiguousarray(matrix, dtype=np.float64), np.array(categorical, dtype=bool), groups


def domain_classifier(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    *,
    max_rows: int = 5000,
    seed: int = 0,
    threshold: float = 0.55,
) -> dict[str, Any]:
    """Can a classifier tell current rows from reference rows? Its ROC AUC says how well.

    Each side is down-sampled (seeded, without replacement) to
    ``min(len(reference), len(current), max_rows)`` rows, so the two classes are balanced;
    rows are labelled reference 0, current 1. Features: numbers as they are plus a
    missing-indicator column when any are missing; categoricals as codes of their
    :data:`MAX_CATEGORIES` most frequent values plus "other", missing as its own branch. A
    small ``HistGradientBoostingClassifier`` (50 trees of at most 7 leaves, no early
    stopping) is trained with 2-fold stratified cross-validation; ``statistic`` is the ROC AUC
    of the pooled out-of-fold probabilities. ``drifted`` when it reaches ``threshold``.

    ``top_features``: permutation importance on the held-out folds — the drop in that AUC
    when one feature's columns are shuffled within each held-out fold (one repeat) — for the
    (at most 10) features whose importance is positive, largest first.

    Why 0.55: with no drift the AUC is 0.5 up to noise. A fixed score's AUC has sampling
    standard deviation ``sqrt((n_0 + n_1 + 1) / (12 n_0 n_1))`` — about 0.006 with 5,000
    rows a side — and pooling two folds' models roughly doubles it (their probabilities are
    not calibrated to each other): measured over null runs, the standard deviation is about
    0.011 at 5,000 rows a side, and the mean sits at or slightly *below* 0.5 (a model that
    fitted noise in its training fold does a little worse than chance on the other, never
    better). So 0.55 sits some 5 standard deviations above the null at full samples, while a
    mean shift of half a standard deviation in one of 20 features (an AUC of 0.64 for a
    perfect classifier; this one reaches about 0.61) clearly crosses it; a shift of 0.2
    standard deviations (about 0.53) does not. Small samples are noisier — standard
    deviation 0.023 at 500 rows a side, 0.046 at 100, where about 13% of null runs reach
    0.55 — so raise the threshold for small windows. There is no p-value: the pooled
    out-of-fold AUC has no exact null law.

    Importances are differences of two noisy AUCs: without drift a few features show small
    positive ones (~0.001–0.005) by chance, so read ``top_features`` only when ``drifted``.

    Returns ``{"method": "domain_classifier", "statistic", "threshold", "drifted",
    "n_reference", "n_current", "n_features", "top_features", "p_value": None}`` where the
    ``n_*`` count the rows actually used; ``statistic: None`` with a ``reason`` when either
    side has fewer than :data:`MIN_ROWS` rows or there are no features.
    """
    if max_rows < MIN_ROWS:
        raise ValueError(f"max_rows must be at least {MIN_ROWS}, got {max_rows}")
    method = "domain_classifier"
    features = _features(reference, current, kinds)
    n_ref = _length(reference, features, "reference")
    n_cur = _length(current, features, "current")
    extra = {"threshold": float(threshold), "top_features": []}
    if not features:
        return _skipped(method, "no features to compare", n_ref, n_cur, **extra)
    if min(n_ref, n_cur) < MIN_ROWS:
        return _skipped(method, f"fewer than {MIN_ROWS} rows on a side", n_ref, n_cur, **extra)

    rng = np.random.default_rng(seed)
    m = min(n_ref, n_cur, max_rows)
    x, categorical, groups = _encode(
        reference, current, features, kinds, _sample(rng, n_ref, m), _sample(rng, n_cur, m)
    )
    y = np.concatenate([np.zeros(m, dtype=bool), np.ones(m, dtype=bool)])

    # 2-fold stratified split: half of each class (rounded down) in fold 0, the rest in fold 1.
    in_fold0 = np.zeros(2 * m, dtype=bool)
    for offset in (0, m):
        in_fold0[offset + rng.permutation(m)[: m // 2]] = True
    folds = [np.flatnonzero(in_fold0), np.flatnonzero(~in_fold0)]
    model_seed = int(rng.integers(2**31 - 1))
    perm_rng = np.random.default_rng(rng.integers(2**63 - 1))

    from sklearn.ensemble import HistGradientBoostingClassifier

    oof = np.empty(2 * m)
    permuted = np.empty((len(groups), 2 * m))
    for k, test in enumerate(folds):
        train = folds[1 - k]
        # A numeric column with no value in the training fold says nothing (its missing
        # indicator carries the information) and trips scikit-learn's binning: blank it.
        dead = np.isnan(x[train]).all(axis=0) & ~categorical
        x_fold = np.where(dead, 0.0, x) if dead.any() else x
        model = HistGradientBoostingClassifier(
            **_HGB_PARAMS,
            categorical_features=categorical if categorical.any() else None,
            min_samples_leaf=min(_MIN_LEAF[1], max(_MIN_LEAF[0], len(train) // 40)),
            random_state=model_seed,
        )
        model.fit(x_fold[train], y[train])
        x_test = x_fold[test]
        oof[test] = model.predict_proba(x_test)[:, 1]
        shuffles = [perm_rng.permutation(len(test)) for _ in groups]
        per_call = max(1, _PREDICT_CELLS // max(1, x_test.size))
        for start in range(0, len(groups), per_call):
            batch = range(start, min(start + per_call, len(groups)))
            stacked = np.tile(x_test, (len(batch), 1))
            for b, g in enumerate(batch):
                block = slice(b * len(test), (b + 1) * len(test))
                cols = np.asarray(groups[g], dtype=np.intp)
                stacked[block, cols] = x_test[np.ix_(shuffles[g], cols)]
            proba = model.predict_proba(stacked)[:, 1]
            permuted[start : batch.stop, test] = proba.reshape(len(batch), len(test))

    auc = float(_auc_rows(oof[np.newaxis, :], y)[0])
    drops = auc - _auc_rows(permuted, y)
    ranked = sorted(
        ((float(d), name) for d, name in zip(drops.tolist(), features, strict=True) if d > 0),
        key=lambda pair: (-pair[0], pair[1]),
    )
    return {
        "method": method,
        "statistic": auc,
        "threshold": float(threshold),
        "drifted": bool(auc >= threshold),
        "n_reference": m,
        "n_current": m,
        "n_features": len(features),
        "top_features": [
            {"feature": name, "importance": drop} for drop, name in ranked[:TOP_FEATURES]
        ],
        "p_value": None,
    }


# ---------------------------------------------------------------- PCA reconstruction


def _numeric_matrix(side: Mapping[str, Any], names: Sequence[str], rows: IntArray) -> FloatArray:
    columns = [_as_float(np.asarray(side[name]).reshape(-1)[rows]) for name in names]
    return np.column_stack(columns) if columns else np.empty((len(rows), 0))


def pca_reconstruction(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    *,
    max_rows: int = 5000,
    seed: int = 0,
    variance: float = 0.9,
    sigmas: float = 3.0,
) -> dict[str, Any]:
    """Does a PCA fitted on reference numbers reconstruct current rows as well as reference rows?

    This is NannyML's data reconstruction drift, applied to one current window rather than a
    series of chunks: compress the rows onto the reference's main principal components and
    back; when the relationships between features change (say two features stop being
    correlated), current rows leave the reference's subspace and their reconstruction error
    rises — even if no single feature's distribution moved, which univariate methods would
    need to see.

    Numeric features only. Each side is down-sampled (seeded) to at most ``max_rows`` rows;
    the reference sample is split in two random halves. On the first half: mean and
    standard deviation per feature (features constant or entirely missing there are skipped),
    then PCA by SVD of the standardised rows (missing values imputed with the mean, i.e. 0),
    keeping the fewest components that explain ``variance`` of the variance — at most one
    fewer than the number of features, so something is left to measure. The error of a row is
    the mean squared difference between it and its reconstruction, in standardised units.

    ``reference_error`` is the mean error of the held-out reference half, ``statistic`` that
    of the current sample. The band is ``reference_error ± sigmas · s · sqrt(1/n_current +
    1/n_held_out)`` with ``s`` the held-out errors' standard deviation: the standard error of
    the *difference* of the two means. (The standard error of the current mean alone,
    ``s / sqrt(n_current)``, would ignore the held-out mean's own noise — larger, since the
    held-out half is smaller than the current sample — and a 3-sigma band would then
    false-alarm about 8% of the time.) ``drifted`` when the statistic lies outside the band;
    a band narrower than ``±1e-9`` is widened to that.

    Returns ``{"method": "pca_reconstruction", "statistic", "reference_error", "lower",
    "upper", "components", "n_features", "drifted", "n_reference", "n_current",
    "p_value": None}``, the ``n_*`` counting the rows used; ``statistic: None`` with a
    ``reason`` when either side has fewer than :data:`MIN_ROWS` rows, or fewer than two
    usable numeric features remain.
    """
    if max_rows < MIN_ROWS:
        raise ValueError(f"max_rows must be at least {MIN_ROWS}, got {max_rows}")
    if not 0 < variance <= 1:
        raise ValueError(f"variance must be in (0, 1], got {variance}")
    if not sigmas > 0:
        raise ValueError(f"sigmas must be positive, got {sigmas}")
    method = "pca_reconstruction"
    numeric = [n for n in _features(reference, current, kinds) if kinds[n] == "number"]
    n_ref = _length(reference, numeric, "reference")
    n_cur = _length(current, numeric, "current")
    if not numeric:
        return _skipped(method, "no numeric features", n_ref, n_cur)
    if min(n_ref, n_cur) < MIN_ROWS:
        return _skipped(method, f"fewer than {MIN_ROWS} rows on a side", n_ref, n_cur)

    rng = np.random.default_rng(seed)
    ref_rows = _sample(rng, n_ref, max_rows)
    cur_rows = _sample(rng, n_cur, max_rows)
    ref = _numeric_matrix(reference, numeric, ref_rows)
    cur = _numeric_matrix(current, numeric, cur_rows)
    shuffled = rng.permutation(len(ref_rows))
    half = len(ref_rows) // 2
    fit, held = ref[shuffled[:half]], ref[shuffled[half:]]

    with np.errstate(invalid="ignore"):  # all-NaN columns give NaN; they are skipped
        observed = ~np.isnan(fit)
        counts = observed.sum(axis=0)
        mean = np.where(observed, fit, 0.0).sum(axis=0) / np.maximum(counts, 1)
        spread = np.sqrt(
            np.where(observed, (fit - mean) ** 2, 0.0).sum(axis=0) / np.maximum(counts, 1)
        )
    usable = (counts > 0) & (spread > 1e-12 * np.maximum(1.0, np.abs(mean)))
    p = int(usable.sum())
    if p < 2:
        reason = "fewer than two non-constant numeric features"
        return _skipped(method, reason, len(ref_rows), len(cur_rows))
    mean, spread = mean[usable], spread[usable]

    def standardise(block: FloatArray) -> FloatArray:
        z = (block[:, usable] - mean) / spread
        return np.where(np.isnan(z), 0.0, z)

    z_fit = standardise(fit)
    _, singular, vt = np.linalg.svd(z_fit, full_matrices=False)
    explained = singular**2
    share = np.cumsum(explained) / explained.sum()
    k = min(int(np.searchsorted(share, variance - 1e-12)) + 1, p - 1)
    basis = vt[:k]

    def errors(block: FloatArray) -> FloatArray:
        z = standardise(block)
        residual = z - (z @ basis.T) @ basis
        return np.asarray(np.mean(residual**2, axis=1), dtype=np.float64)

    held_errors = errors(held)
    cur_error = float(np.mean(errors(cur)))
    ref_error = float(np.mean(held_errors))
    s = float(np.std(held_errors, ddof=1))
    half_width = max(sigmas * s * math.sqrt(1 / len(cur_rows) + 1 / len(held)), _PCA_MIN_HALF_WIDTH)
    lower, upper = ref_error - half_width, ref_error + half_width
    return {
        "method": method,
        "statistic": cur_error,
        "reference_error": ref_error,
        "lower": lower,
        "upper": upper,
        "components": k,
        "n_features": p,
        "drifted": bool(not lower <= cur_error <= upper),
        "n_reference": len(ref_rows),
        "n_current": len(cur_rows),
        "p_value": None,
    }
