"""Univariate drift statistics: pure functions on raw arrays or on bin counts, and a drift decision.

Binning. A numeric column is cut at the *reference* (baseline) quantiles
(:func:`quantile_edges`, then :func:`bin_counts`); a categorical column is
counted on the reference's categories plus one *unseen* bucket, last, for
current values the reference never had (:func:`category_counts`). Every
measure has a raw form ``f(reference, current)`` and a counts form
``f_from_counts(ref_counts, cur_counts)`` for counts kept in profiles; given
the same bins the two agree exactly.

Measures. :func:`psi`, :func:`js_distance` (Jensen-Shannon distance, base 2),
:func:`hellinger`, :func:`ks` (two-sample Kolmogorov-Smirnov), :func:`chi2`
(chi-squared test of the 2 x k table; :func:`homogeneity_test` for small
counts) and :func:`wasserstein` (normalised by the reference's standard
deviation; the decision divides by :func:`wasserstein_scale`, the same but
for a constant reference, measured against its magnitude). Non-finite
numbers (NaN, +-inf) and missing categories are ignored everywhere: they are
a data-integrity signal, not drift.

Decision. :func:`decide` (used by :func:`column_drift`, :func:`drift_table`
and the profile-based drift of :mod:`vigil.core.monitoring`) flags drift
when all three hold:

1. both samples have at least :data:`MIN_ROWS` (30) values (finite numbers,
   non-missing categories); below that the result is ``drifted=None``,
   ``status="insufficient_data"``: too few rows to decide either way;
2. the *effect size* reaches its fixed threshold (:data:`DEFAULTS`);
3. the column's test rejects "same distribution" at p < :data:`SIGNIFICANCE`
   (0.01): KS for numbers, chi-squared for categories, by Monte Carlo
   conditional on the margins when an expected count is below 5
   (:func:`homogeneity_test`), where the chi-squared distribution is no
   guide.

The effect size, never a p-value alone: at large n a two-sample test rejects
shifts nobody cares about (a mean shift of 3% of a standard deviation gives a
KS p-value near 1e-6 at 100,000 rows a side and 1e-12 at 200,000), while an
effect size stays put as the sample grows. The test keeps a small window's
noise from passing for an effect; the minimum size keeps a handful of rows
from deciding anything. The p-value methods ("ks", "chi2") decide on the
p-value alone, still with the minimum size.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref, cur = rng.normal(size=5_000), rng.normal(0.5, 1.0, size=5_000)
>>> r = column_drift(ref, cur, kind="numeric")
>>> r["method"], round(r["value"], 2), r["drifted"]
('wasserstein', 0.52, True)
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import special

from vigil.errors import MetricInputError

__all__ = [
    "DEFAULTS",
    "METHODS",
    "UNSEEN",
    "MetricInputError",
    "StatTestResult",
    "DriftMethod",
    "quantile_edges",
    "bin_counts",
    "category_counts",
    "psi",
    "psi_from_counts",
    "js_distance",
    "js_distance_from_counts",
    "hellinger",
    "hellinger_from_counts",
    "ks",
    "ks_from_counts",
    "chi2",
    "chi2_from_counts",
    "wasserstein",
    "wasserstein_from_counts",
    "wasserstein_from_sums",
    "WassersteinEstimate",
    "wasserstein_scale",
    "homogeneity_test",
    "decide",
    "MIN_ROWS",
    "SIGNIFICANCE",
    "STATUSES",
    "column_drift",
    "drift_table",
]

#: Label of the bucket that holds current categories the reference never had (always last).
UNSEEN = "<unseen>"

#: Internal resolution of the fast path: fine bins per numeric column.
FINE_BINS = 1_000
#: Rows sampled from each side to place the fine bins (and the reference deciles) on large columns.
SAMPLE_SIZE = 100_000
#: Below this many rows (both sides together) KS and Wasserstein are computed exactly with SciPy.
EXACT_MAX_ROWS = 100_000
#: Evidently's floor on the standard deviation that normalises the Wasserstein distance.
MIN_SCALE = 1e-3
#: A reference whose standard deviation is at most this share of its magnitude is constant (the share covers the
#: rounding of a constant's computed moments): see :func:`wasserstein_scale`.
CONSTANT_SPREAD = 1e-9
#: Fewest values on each side (finite numbers, non-missing categories) for any drift decision.
MIN_ROWS = 30
#: Below this expected count in any cell, the chi-squared p-value comes from a Monte Carlo test instead.
MIN_EXPECTED = 5.0
#: Tables simulated by the Monte Carlo chi-squared test (p-values resolve to 1 / (MC_TABLES + 1)).
MC_TABLES = 2_000

_CHUNK = 1 << 16
_TAILS = np.array([1e-5, 3e-5, 1e-4, 3e-4])
_FINE_LEVELS = np.concatenate([[0.0], _TAILS, np.arange(1, FINE_BINS) / FINE_BINS, 1.0 - _TAILS[::-1], [1.0]])
_KINDS = ("numeric", "categorical")


class StatTestResult(NamedTuple):
    """A test statistic and its p-value; unpacks as ``statistic, p_value = ...``."""

    statistic: float
    p_value: float


class DriftMethod(NamedTuple):
    """How a drift method decides: which column kinds it applies to and which side of the threshold is drift."""

    kinds: tuple[str, ...]
    #: "above": drift when value >= threshold (an effect size); "below": drift when value < threshold (a p-value)
    direction: str
    threshold: float
    description: str


#: The drift methods :func:`column_drift` and :func:`drift_table` know, with their default thresholds.
METHODS: Mapping[str, DriftMethod] = MappingProxyType({
    "wasserstein": DriftMethod(("numeric",), "above", 0.1,
                               "Wasserstein distance / reference standard deviation (Evidently's normed Wasserstein)"),
    "js_distance": DriftMethod(_KINDS, "above", 0.1, "Jensen-Shannon distance, base 2, on the reference bins"),
    "hellinger": DriftMethod(_KINDS, "above", 0.1, "Hellinger distance on the reference bins"),
    "psi": DriftMethod(_KINDS, "above", 0.2, "population stability index on the reference bins"),
    "ks": DriftMethod(("numeric",), "below", 0.05, "Kolmogorov-Smirnov p-value (flags tiny shifts at large n)"),
    "chi2": DriftMethod(("categorical",), "below", 0.05, "chi-squared p-value (flags tiny shifts at large n)"),
})

#: Default (method, threshold) per column kind. Effect sizes, not p-values, so that the decision does not
#: cry wolf at large n: a shift of 0.1 reference standard deviations (numeric) or a Jensen-Shannon distance
#: of 0.1 (categorical; e.g. a 50/50 split moving to about 62/38) is what a person would call drift, at
#: 1,000 rows or at 10,000,000, whereas at 1,000,000 rows a side a KS p-value falls below 0.05 for a mean
#: shift of 0.005 standard deviations, twenty times smaller.
DEFAULTS: Mapping[str, tuple[str, float]] = MappingProxyType({
    "numeric": ("wasserstein", 0.1),
    "categorical": ("js_distance", 0.1),
})


# -- the shared input checks -----------------------------------------------------------------------------


def _as_1d(x: Any, name: str) -> np.ndarray | pd.Categorical:
    """A 1-D NumPy array (or a pandas Categorical) without copying when possible."""
    if isinstance(x, pd.Series):
        if isinstance(x.dtype, pd.CategoricalDtype):
            return x.array
        if isinstance(x.dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(x.dtype):
            return x.to_numpy(dtype=np.float64, na_value=np.nan)
        return x.to_numpy()
    if isinstance(x, pd.Categorical):
        return x
    if isinstance(x, pd.DataFrame):
        raise MetricInputError(f"{name} must be 1-D (one column), got a DataFrame with {x.shape[1]} columns")
    try:
        arr = np.asarray(x)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise MetricInputError(f"{name} must be array-like, got {type(x).__name__}") from err
    if arr.ndim != 1:
        raise MetricInputError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    return arr


def _numeric_array(x: Any, name: str) -> np.ndarray:
    """A 1-D numeric array (a view when possible), non-finite values still in it."""
    arr = _as_1d(x, name)
    if isinstance(arr, pd.Categorical):
        raise MetricInputError(f"{name} is categorical; use kind='categorical' (or the categorical= list)")
    if arr.dtype.kind in "iuf":
        return arr
    if arr.dtype.kind == "b":
        return arr.astype(np.float64)
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise MetricInputError(
            f"{name} must be numeric, got dtype {arr.dtype}; pass kind='categorical' for categories"
        ) from err


def _finite(x: Any, name: str) -> np.ndarray:
    """The finite values of a numeric input as float64; an error naming the argument if none are left."""
    arr = _numeric_array(x, name).astype(np.float64, copy=False)
    ok = np.isfinite(arr)
    if not ok.all():
        arr = arr[ok]
    if arr.size == 0:
        raise MetricInputError(f"{name} has no finite values")
    return arr


def _check_counts(ref_counts: Any, cur_counts: Any) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name, c in (("ref_counts", ref_counts), ("cur_counts", cur_counts)):
        arr = np.asarray(c, dtype=np.float64) if not isinstance(c, np.ndarray) else c.astype(np.float64, copy=False)
        if arr.ndim != 1:
            raise MetricInputError(f"{name} must be 1-D, got shape {arr.shape}")
        total = float(arr.sum()) if arr.size else 0.0  # NaN and inf carry into the sum: one pass checks both
        if not math.isfinite(total) or (arr.size and arr.min() < 0):
            raise MetricInputError(f"{name} must hold finite, non-negative counts")
        if total <= 0:
            raise MetricInputError(f"{name} is empty (its counts sum to 0)")
        out.append(arr)
    if out[0].shape != out[1].shape:
        raise MetricInputError(
            f"ref_counts and cur_counts must have the same bins, got lengths {out[0].size} and {out[1].size}"
        )
    return out[0], out[1]


def _check_bins(bins: Any) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 2:
        raise MetricInputError(f"bins must be an integer >= 2, got {bins!r}")
    return int(bins)


def _check_edges(edges: Any) -> np.ndarray:
    arr = np.asarray(edges, dtype=np.float64)
    if arr.ndim != 1:
        raise MetricInputError(f"edges must be 1-D, got shape {arr.shape}")
    if not np.isfinite(arr).all() or (np.diff(arr) <= 0).any():
        raise MetricInputError("edges must be finite and strictly increasing (see quantile_edges)")
    return arr


def _resolve_kind(x: Any, kind: str) -> str:
    if kind in _KINDS:
        return kind
    if kind != "auto":
        raise MetricInputError(f"kind must be 'numeric', 'categorical' or 'auto', got {kind!r}")
    if isinstance(x, pd.Categorical) or (isinstance(x, pd.Series) and isinstance(x.dtype, pd.CategoricalDtype)):
        return "categorical"
    dtype = x.dtype if isinstance(x, pd.Series | np.ndarray) else np.asarray(x).dtype
    is_num = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    return "numeric" if is_num else "categorical"


# -- bins -------------------------------------------------------------------------------------------------


def _edges_from_sorted(s: np.ndarray, bins: int) -> np.ndarray:
    return np.unique(np.quantile(s, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def quantile_edges(reference: Any, *, bins: int = 10) -> np.ndarray:
    """The inner edges of ``bins`` equal-frequency bins of ``reference``: unique and sorted.

    Non-finite values are ignored. Ties can merge edges, so fewer than ``bins - 1``
    edges (and ``bins`` bins) may come back. Use them with :func:`bin_counts`.

    >>> quantile_edges([1, 2, 3, 4, 5, 6, 7, 8, 9, np.nan], bins=4)
    array([3., 5., 7.])
    >>> quantile_edges([0, 0, 0, 1], bins=4)
    array([0.  , 0.25])
    """
    return _edges_from_sorted(_finite(reference, "reference"), _check_bins(bins))


def bin_counts(values: Any, edges: Any) -> np.ndarray:
    """Counts of ``values`` in the ``len(edges) + 1`` bins the edges make; non-finite values are left out.

    Bin ``i`` holds ``edges[i-1] <= x < edges[i]`` (``np.searchsorted(edges, x, side="right")``):
    the first bin is everything below the first edge, the last everything from the last edge up.

    >>> bin_counts([0.5, 1.0, 1.5, 2.0, 9.0, np.nan], [1.0, 2.0])
    array([1, 2, 2])
    """
    e = _check_edges(edges)
    x = _numeric_array(values, "values")
    x = x[np.isfinite(x)] if x.dtype.kind == "f" else x
    return np.bincount(np.searchsorted(e, x, side="right"), minlength=e.size + 1).astype(np.int64)


def _code_counts(codes: np.ndarray, k: int) -> np.ndarray:
    """Counts of the categorical codes 0..k-1 (code -1, missing, left out), chunked to keep memory flat."""
    counts = np.zeros(k, dtype=np.int64)
    small = codes.dtype.itemsize <= 2 and codes.dtype.kind == "i"
    width = 1 << (8 * codes.dtype.itemsize) if small else 0
    unsigned = np.dtype(f"u{codes.dtype.itemsize}") if small else None
    for start in range(0, codes.size, _CHUNK * 4):
        ch = codes[start:start + _CHUNK * 4]
        if small:  # -1 (missing) lands in the last slot of the unsigned view
            counts += np.bincount(ch.view(unsigned), minlength=width)[:k]
        else:
            counts += np.bincount(ch[ch >= 0], minlength=k)[:k]
    return counts


def _value_counts(x: Any, name: str) -> tuple[pd.Index, np.ndarray, bool]:
    """(distinct values, their counts, whether the values are a declared category list)."""
    arr = _as_1d(x, name)
    if isinstance(arr, pd.Categorical):
        return arr.categories, _code_counts(np.asarray(arr.codes), len(arr.categories)), True
    if arr.dtype.kind == "b":
        counts = np.bincount(arr.view(np.uint8), minlength=2).astype(np.int64)
        keep = counts > 0
        return pd.Index(np.array([False, True])[keep]), counts[keep], False
    if arr.dtype.kind in "iu" and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if hi - lo < (1 << 20):
            counts = np.zeros(hi - lo + 1, dtype=np.int64)
            for start in range(0, arr.size, _CHUNK * 4):
                counts += np.bincount((arr[start:start + _CHUNK * 4] - lo).astype(np.intp), minlength=hi - lo + 1)
            keep = np.flatnonzero(counts)
            return pd.Index(keep + lo), counts[keep], False
    vc = pd.Series(arr, copy=False).value_counts(dropna=True, sort=False)
    return vc.index, vc.to_numpy(dtype=np.int64), False


def category_counts(reference: Any, current: Any) -> tuple[np.ndarray, np.ndarray, list]:
    """Counts of each reference category in both samples, plus an *unseen* bucket, last.

    The categories are the reference's: a pandas categorical's declared categories
    (in their order), otherwise its distinct values, sorted. Current values the
    reference never had are counted in the last bucket, labelled :data:`UNSEEN`.
    Missing values are left out.

    >>> ref_counts, cur_counts, labels = category_counts(["a", "b", "b", None], ["b", "c", "c"])
    >>> ref_counts.tolist(), cur_counts.tolist(), labels
    ([1, 2, 0], [0, 1, 2], ['a', 'b', '<unseen>'])
    """
    ref_labels, ref_counts, declared = _value_counts(reference, "reference")
    cur_labels, cur_counts, _ = _value_counts(current, "current")
    if not declared:
        try:
            ref_labels, order = ref_labels.sort_values(return_indexer=True)
            ref_counts = ref_counts[order]
        except TypeError:  # values of mixed types: keep the order they came in
            pass
    k = len(ref_labels)
    if ref_labels.equals(cur_labels):
        cur_in_ref = np.append(cur_counts, 0)
    else:
        pos = ref_labels.get_indexer(cur_labels) if len(cur_labels) else np.zeros(0, dtype=np.intp)
        pos = np.where(pos < 0, k, pos)
        cur_in_ref = np.bincount(pos, weights=cur_counts, minlength=k + 1).round().astype(np.int64)
    return np.append(ref_counts, 0).astype(np.int64), cur_in_ref, [*ref_labels.tolist(), UNSEEN]


def _binned(reference: Any, current: Any, bins: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both samples on the reference's bins (quantile bins or categories + unseen)."""
    if _resolve_kind(reference, kind) == "categorical":
        rc, cc, _ = category_counts(reference, current)
        return rc, cc
    edges = quantile_edges(reference, bins=bins)
    return bin_counts(reference, edges), bin_counts(current, edges)


# -- distances on counts ----------------------------------------------------------------------------------


def psi_from_counts(ref_counts: Any, cur_counts: Any, *, eps: float = 1e-4) -> float:
    """Population stability index of two count vectors over the same bins.

    ``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)`` where ``r_i``, ``c_i`` are the
    bins' proportions of the reference and the current sample (count / total).
    Empty bins: the proportion of an empty bin (on either side) is replaced by
    ``eps`` before the sum, and the proportions are not renormalised afterwards
    -- Evidently's rule (its default is 0.0001 too; Evidently further lowers it
    to a millionth of the smallest proportion when that is below 0.0001), so the
    result equals Evidently's PSI on the same bins. A bin empty on both sides
    contributes exactly 0, so padding bins (an empty unseen bucket) change
    nothing. PSI is symmetric and >= 0; by convention < 0.1 is stable, 0.1-0.25
    a moderate shift, > 0.25 a large one.

    >>> round(psi_from_counts([50, 30, 20], [40, 30, 30]), 4)
    0.0629
    >>> psi_from_counts([5, 0, 5], [5, 0, 5])
    0.0
    """
    r, c = _check_counts(ref_counts, cur_counts)
    if not 0 < eps < 1:
        raise MetricInputError(f"eps must be in (0, 1), got {eps!r}")
    return float(psi_rows(r, c, eps=eps))


def _proportions(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum(axis=-1, keepdims=True)


def psi_rows(ref_counts: np.ndarray, cur_counts: np.ndarray, *, eps: float = 1e-4) -> np.ndarray:
    """:func:`psi_from_counts` of one reference against each row of ``cur_counts`` (unchecked counts, last axis
    the bins: the caller has validated them).

    >>> psi_rows(np.array([50.0, 30, 20]), np.array([[40.0, 30, 30], [50, 30, 20]])).round(4).tolist()
    [0.0629, 0.0]
    """
    p, q = _proportions(ref_counts), _proportions(cur_counts)
    p, q = np.where(p == 0, eps, p), np.where(q == 0, eps, q)
    return np.sum((q - p) * np.log(q / p), axis=-1)


def js_distance_from_counts(ref_counts: Any, cur_counts: Any) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors over the same bins.

    ``sqrt((KL(p || m) + KL(q || m)) / 2)`` with ``m = (p + q) / 2`` and base-2
    logarithms; equal to ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
    0 means the same distribution, 1 disjoint supports.

    >>> js_distance_from_counts([1, 0], [0, 1])
    1.0
    >>> round(js_distance_from_counts([50, 30, 20], [40, 30, 30]), 4)
    0.1062
    """
    r, c = _check_counts(ref_counts, cur_counts)
    return float(js_distance_rows(r, c))


def js_distance_rows(ref_counts: np.ndarray, cur_counts: np.ndarray) -> np.ndarray:
    """:func:`js_distance_from_counts` of one reference against each row of ``cur_counts`` (unchecked counts).

    >>> js_distance_rows(np.array([1.0, 0]), np.array([[0.0, 1], [1, 0]])).tolist()
    [1.0, 0.0]
    """
    p, q = _proportions(ref_counts), _proportions(cur_counts)
    m = (p + q) / 2.0
    js = (np.sum(special.rel_entr(p, m), axis=-1) + np.sum(special.rel_entr(q, m), axis=-1)) / (2.0 * math.log(2.0))
    return np.minimum(1.0, np.sqrt(np.maximum(js, 0.0)))


def hellinger_from_counts(ref_counts: Any, cur_counts: Any) -> float:
    """Hellinger distance (in [0, 1]) of two count vectors over the same bins.

    ``sqrt(sum_i (sqrt(p_i) - sqrt(q_i))**2 / 2)`` on the proportions; 0 means
    the same distribution, 1 disjoint supports.

    >>> hellinger_from_counts([1, 0], [0, 1])
    1.0
    >>> round(hellinger_from_counts([50, 30, 20], [40, 30, 30]), 4)
    0.0885
    """
    r, c = _check_counts(ref_counts, cur_counts)
    return float(hellinger_rows(r, c))


def hellinger_rows(ref_counts: np.ndarray, cur_counts: np.ndarray) -> np.ndarray:
    """:func:`hellinger_from_counts` of one reference against each row of ``cur_counts`` (unchecked counts).

    >>> hellinger_rows(np.array([1.0, 0]), np.array([[0.0, 1], [1, 0]])).tolist()
    [1.0, 0.0]
    """
    diff = np.sqrt(_proportions(ref_counts)) - np.sqrt(_proportions(cur_counts))
    return np.minimum(1.0, np.sqrt(0.5 * np.sum(diff ** 2, axis=-1)))


def _kolmogorov_sf(d: Any, n_ref: Any, n_cur: Any) -> np.ndarray:
    """P(D > d) from the asymptotic Kolmogorov distribution, effective n with Stephens' correction (elementwise)."""
    en = np.sqrt(n_ref * n_cur / (n_ref + n_cur))
    tail = np.clip(special.kolmogorov((en + 0.12 + 0.11 / en) * d), 0.0, 1.0)
    return np.where(np.asarray(d) <= 0, 1.0, tail)


def ks_from_counts(ref_counts: Any, cur_counts: Any) -> StatTestResult:
    """Kolmogorov-Smirnov statistic of two count vectors over the same ordered bins, and its p-value.

    The statistic is the largest absolute difference of the two cumulative
    proportions at the bin edges. The true statistic can peak inside a bin, so
    this is a lower bound of it, exact when every distinct value has its own
    bin; with ``k`` equal-frequency bins it is short by at most about ``1/k``.
    The p-value is the asymptotic Kolmogorov distribution's tail at
    ``(sqrt(n) + 0.12 + 0.11 / sqrt(n)) * D`` with the effective
    ``n = n_ref * n_cur / (n_ref + n_cur)`` (Stephens' finite-sample
    correction; within a few percent of SciPy's ``method="asymp"``).

    >>> res = ks_from_counts([10, 10, 10, 10], [0, 10, 10, 20])
    >>> round(res.statistic, 2), round(res.p_value, 3)
    (0.25, 0.139)
    """
    r, c = _check_counts(ref_counts, cur_counts)
    d, p_value = ks_rows(r, c)
    return StatTestResult(float(d), float(p_value))


def ks_rows(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ks_from_counts`'s statistics and p-values of one reference against each row of ``cur_counts``
    (unchecked counts).

    >>> d, p = ks_rows(np.array([10.0, 10, 10, 10]), np.array([[0.0, 10, 10, 20], [10, 10, 10, 10]]))
    >>> d.round(2).tolist(), p.round(3).tolist()
    ([0.25, 0.0], [0.139, 1.0])
    """
    nr, nc = ref_counts.sum(axis=-1), cur_counts.sum(axis=-1)
    cdf_r, cdf_c = np.cumsum(ref_counts, axis=-1) / nr, np.cumsum(cur_counts, axis=-1) / nc[..., None]
    d = np.max(np.abs(cdf_r - cdf_c), axis=-1)
    return d, _kolmogorov_sf(d, nr, nc)


def chi2_from_counts(ref_counts: Any, cur_counts: Any, *, correction: bool = True) -> StatTestResult:
    """Chi-squared test of homogeneity of the 2 x k table [ref_counts; cur_counts].

    Categories empty on both sides are dropped first; the result equals
    ``scipy.stats.chi2_contingency(table, correction=correction)`` on what is
    left, which applies Yates' continuity correction only when two categories
    remain (one degree of freedom), never for k > 2. Fewer than two categories
    left gives (0.0, 1.0).

    >>> res = chi2_from_counts([50, 30, 20, 0], [40, 30, 30, 0])
    >>> round(res.statistic, 3), round(res.p_value, 3)
    (3.111, 0.211)
    """
    r, c = _check_counts(ref_counts, cur_counts)
    keep = (r + c) > 0
    if keep.sum() < 2:
        return StatTestResult(0.0, 1.0)
    observed = np.vstack([r[keep], c[keep]])
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    dof = observed.shape[1] - 1
    if dof == 1 and correction:  # Yates, as SciPy: move each cell by at most 0.5 towards its expectation
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return StatTestResult(statistic, float(special.chdtrc(dof, statistic)))


def homogeneity_test(ref_counts: Any, cur_counts: Any, *, n_tables: int = MC_TABLES, seed: int = 0
                     ) -> StatTestResult:
    """The chi-squared test of homogeneity of [ref_counts; cur_counts], valid at any counts.

    When every expected count is at least :data:`MIN_EXPECTED` (5) it is
    :func:`chi2_from_counts` (SciPy's ``chi2_contingency``). Below that the
    chi-squared distribution misstates the tail (a single current row in a
    category the reference never had gives p = 0), so the p-value is a Monte
    Carlo one conditional on both margins, as R's
    ``chisq.test(simulate.p.value=TRUE)``: ``n_tables`` tables with the
    observed row and column totals are drawn (multivariate hypergeometric,
    generator seeded with ``seed``: the same counts give the same p-value), and
    ``p = (1 + #{simulated statistic >= observed}) / (n_tables + 1)`` with the
    statistic of Pearson, uncorrected. It is valid at every sample size: under
    "same distribution" ``P(p <= a) <= a``.

    >>> homogeneity_test([5000, 5000, 0], [0, 0, 1]).p_value  # one unseen row: the exact chance is 1e-4
    0.0004997501249375312
    >>> round(homogeneity_test([50, 30, 20], [40, 30, 30]).p_value, 3)  # large counts: chi-squared
    0.211
    """
    r, c = _check_counts(ref_counts, cur_counts)
    keep = (r + c) > 0
    if keep.sum() < 2:
        return StatTestResult(0.0, 1.0)
    r, c = r[keep], c[keep]
    totals = r + c
    n_ref, n_cur = float(r.sum()), float(c.sum())
    n = n_ref + n_cur
    e_ref, e_cur = totals * (n_ref / n), totals * (n_cur / n)
    if min(float(e_ref.min()), float(e_cur.min())) >= MIN_EXPECTED:
        return chi2_from_counts(r, c)
    if not (np.array_equal(r, np.round(r)) and np.array_equal(c, np.round(c))):
        raise MetricInputError("a Monte Carlo chi-squared test needs whole counts")
    if isinstance(n_tables, bool) or not isinstance(n_tables, int) or n_tables < 99:
        raise MetricInputError(f"n_tables must be an integer >= 99, got {n_tables!r}")
    # with fixed margins the current row decides the table: sum (x - E)^2 (1/E_cur + 1/E_ref) over the columns
    weight = 1.0 / e_cur + 1.0 / e_ref
    observed = float(np.sum((c - e_cur) ** 2 * weight))
    rng = np.random.default_rng(seed)
    sims = rng.multivariate_hypergeometric(totals.astype(np.int64), int(n_cur), size=n_tables, method="marginals")
    stats = np.sum((sims - e_cur) ** 2 * weight, axis=1)
    extreme = int(np.count_nonzero(stats >= observed * (1.0 - 64.0 * np.finfo(float).eps)))
    return StatTestResult(observed, (1.0 + extreme) / (n_tables + 1.0))


def wasserstein_from_counts(
    ref_counts: Any,
    cur_counts: Any,
    edges: Any,
    *,
    lower: float | None = None,
    upper: float | None = None,
    scale: float | None = None,
    interpolation: str = "linear",
) -> float:
    """Wasserstein-1 distance approximated from counts over the bins ``edges`` make.

    It is the integral of ``|F - G|`` over the value axis, where ``F`` and ``G``
    are the cumulative proportions, known exactly at the edges. Between edges:

    - ``interpolation="linear"``: the values are taken as spread evenly within
      each bin, so the CDFs are piecewise linear (the error shrinks with the bin
      width; right for continuous data);
    - ``interpolation="step"``: each bin's values are taken to sit on its left
      edge, so the CDFs are steps (exact for discrete data whose values are the
      edges, as with ``edges`` = every distinct value).

    The outer bins reach from ``lower`` to the first edge and from the last edge
    to ``upper`` (e.g. the pooled minimum and maximum); left at None their mass
    is put on the first / last edge. Pass ``scale`` (the reference's standard
    deviation) for the normalised form of :func:`wasserstein`.

    >>> wasserstein_from_counts([1, 1, 0], [0, 1, 1], [0.0, 1.0], lower=-1.0, upper=2.0, interpolation="step")
    1.0
    >>> wasserstein_from_counts([2, 0], [0, 2], [1.0], lower=0.0, upper=2.0)
    1.0
    """
    r, c = _check_counts(ref_counts, cur_counts)
    e = _check_edges(edges)
    if r.size != e.size + 1:
        raise MetricInputError(f"edges must have len(ref_counts) - 1 = {r.size - 1} values, got {e.size}")
    if interpolation not in ("linear", "step"):
        raise MetricInputError(f"interpolation must be 'linear' or 'step', got {interpolation!r}")
    lo = e[0] if e.size else 0.0
    hi = e[-1] if e.size else 0.0
    if lower is not None:
        if lower > lo:
            raise MetricInputError(f"lower must be <= the first edge {lo!r}, got {lower!r}")
        lo = float(lower)
    if upper is not None:
        if upper < hi:
            raise MetricInputError(f"upper must be >= the last edge {hi!r}, got {upper!r}")
        hi = float(upper)
    points = np.concatenate([[lo], e, [hi]])
    width = np.diff(points)
    diff = np.concatenate([[0.0], np.cumsum(r) / r.sum() - np.cumsum(c) / c.sum()])  # at each point
    diff[-1] = 0.0
    a, b = diff[:-1], diff[1:]
    if interpolation == "step":
        w = float(np.sum(width * np.abs(b)))
    else:
        same = a * b >= 0
        denom = np.where(same, 1.0, np.abs(a) + np.abs(b))
        area = np.where(same, (np.abs(a) + np.abs(b)) / 2.0, (a * a + b * b) / (2.0 * denom))
        w = float(np.sum(width * area))
    if scale is not None:
        if not scale > 0:
            raise MetricInputError(f"scale must be > 0, got {scale!r}")
        w /= scale
    return w


class WassersteinEstimate(NamedTuple):
    """A Wasserstein distance estimated from bins, with guaranteed bounds: ``low <= true distance <= high``."""

    value: float
    low: float
    high: float


def wasserstein_from_sums(
    ref_counts: Any,
    cur_counts: Any,
    ref_sums: Any,
    cur_sums: Any,
    edges: Any,
    *,
    lower: float,
    upper: float,
    scale: float | None = None,
) -> WassersteinEstimate:
    """Wasserstein-1 distance from counts *and sums of the values* per bin, with bounds on the error.

    The bins are those of :func:`bin_counts` on ``edges``, the outer ones
    closed by ``lower`` and ``upper`` (the smallest and largest value of both
    samples). With ``F``, ``G`` the cumulative proportions, a bin's sum gives
    the exact integral of ``F - G`` over the bin, so the bin's share of the
    distance ``integral |F - G|`` is exact wherever ``F - G`` keeps one sign
    in the bin. That is certain when the counts rule a crossing out (as in the
    outer bins against a reference that has no value there: values outside the
    reference's range are exact), and assumed when ``F - G`` has the same
    sign at both ends and over the bin (shifts, changes of scale). In the other
    bins each side's values are spread evenly around their mean, as widely as
    the bin allows (a point when the mean sits on an edge, as for integers).

    ``low`` and ``high`` hold for any data with these counts and sums: per bin,
    ``|integral (F - G)| <= integral |F - G| <= w |d| + ...`` from either end
    (``d`` the difference of the cumulative proportions there, the rest the
    exact integrals of the within-bin rises of ``F`` and ``G``). Pass ``scale``
    (see :func:`wasserstein_scale`) for the normalised distance.

    >>> ref, cur = np.array([0.0, 0.0, 1.0, 1.0]), np.array([1.0, 1.0, 2.0, 2.0])
    >>> edges = np.array([1.0, 2.0])
    >>> idx_r, idx_c = np.searchsorted(edges, ref, side="right"), np.searchsorted(edges, cur, side="right")
    >>> est = wasserstein_from_sums(np.bincount(idx_r, minlength=3), np.bincount(idx_c, minlength=3),
    ...                             np.bincount(idx_r, ref, 3), np.bincount(idx_c, cur, 3), edges, lower=0.0, upper=2.0)
    >>> est.value, est.low <= 1.0 <= est.high  # scipy.stats.wasserstein_distance(ref, cur) is 1.0
    (1.0, True)
    """
    r, c = _check_counts(ref_counts, cur_counts)
    e = _check_edges(edges)
    if r.size != e.size + 1:
        raise MetricInputError(f"edges must have len(ref_counts) - 1 = {r.size - 1} values, got {e.size}")
    sums = []
    for name, x in (("ref_sums", ref_sums), ("cur_sums", cur_sums)):
        arr = np.asarray(x, dtype=np.float64)
        if arr.shape != r.shape or not np.isfinite(arr).all():
            raise MetricInputError(f"{name} must hold {r.size} finite sums, one per bin")
        sums.append(arr)
    lo, hi = float(lower), float(upper)
    if not (math.isfinite(lo) and math.isfinite(hi)) or (e.size and (lo > e[0] or hi < e[-1])) or lo > hi:
        raise MetricInputError(f"lower and upper must be finite and enclose the edges, got {lower!r} and {upper!r}")
    if scale is not None and not scale > 0:
        raise MetricInputError(f"scale must be > 0, got {scale!r}")
    value, low, high = wasserstein_rows(r, c, sums[0], sums[1], e, np.array([lo]), np.array([hi]))
    if scale is not None:
        value, low, high = value / scale, low / scale, high / scale
    return WassersteinEstimate(float(value[0]), float(low[0]), float(high[0]))


def wasserstein_rows(ref_counts: np.ndarray, cur_counts: np.ndarray, ref_sums: np.ndarray, cur_sums: np.ndarray,
                     edges: np.ndarray, lower: np.ndarray, upper: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`wasserstein_from_sums` (unscaled) of one reference against each row of ``cur_counts`` and
    ``cur_sums`` (2-D), each row closed by its own ``lower`` and ``upper``: arrays of the values, lows and highs.
    Unchecked: the caller has validated the counts, sums and bounds.

    >>> edges = np.array([1.0, 2.0])
    >>> value, low, high = wasserstein_rows(np.array([2.0, 2, 0]), np.array([[0.0, 2, 2]]), np.array([0.0, 2, 0]),
    ...                                     np.array([[0.0, 2, 4]]), edges, np.array([0.0]), np.array([2.0]))
    >>> value.tolist()
    [1.0]
    """
    r, c = np.atleast_2d(ref_counts), np.atleast_2d(cur_counts)
    rows = c.shape[0]
    a = np.concatenate([np.asarray(lower, dtype=np.float64)[:, None], np.broadcast_to(edges, (rows, edges.size))],
                       axis=1)
    b = np.concatenate([np.broadcast_to(edges, (rows, edges.size)), np.asarray(upper, dtype=np.float64)[:, None]],
                       axis=1)
    w = b - a
    p, q = np.broadcast_to(_proportions(r), c.shape), _proportions(c)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins: no mean, placed on the left edge
        m_r = np.clip(np.where(r > 0, ref_sums / np.where(r > 0, r, 1.0), a), a, b)
        m_c = np.clip(np.where(c > 0, cur_sums / np.where(c > 0, c, 1.0), a), a, b)
    d_a = np.concatenate([np.zeros((rows, 1)), np.cumsum(p, axis=1)[:, :-1] - np.cumsum(q, axis=1)[:, :-1]], axis=1)
    d_b = d_a + p - q
    rise_r, rise_c = p * (b - m_r), q * (b - m_c)  # integrals of F - F(a) and G - G(a) over the bin
    signed = d_a * w + rise_r - rise_c
    low = np.abs(signed)
    high = np.maximum(np.minimum(w * np.abs(d_a) + rise_r + rise_c,
                                 w * np.abs(d_b) + (p * w - rise_r) + (q * w - rise_c)), low)
    steady = (np.sign(d_a) * np.sign(d_b) >= 0) & (np.sign(d_a + d_b) * np.sign(signed) >= 0)
    value = low.copy()
    mixed = ~steady
    if mixed.any():
        spread = _spread_evenly(a[mixed], b[mixed], d_a[mixed], p[mixed], q[mixed], m_r[mixed], m_c[mixed])
        value[mixed] = np.clip(spread, low[mixed], high[mixed])
    return value.sum(axis=1), low.sum(axis=1), high.sum(axis=1)


def _spread_evenly(a: np.ndarray, b: np.ndarray, d_a: np.ndarray, p: np.ndarray, q: np.ndarray,
                   m_r: np.ndarray, m_c: np.ndarray) -> np.ndarray:
    """integral |F - G| over bins [a, b] where each side's mass (p, q) is uniform on the widest interval centred on
    its mean (m_r, m_c) that fits in the bin: F - G is then linear between the breakpoints."""
    h_r, h_c = np.minimum(m_r - a, b - m_r), np.minimum(m_c - a, b - m_c)
    points = np.sort(np.stack([a, m_r - h_r, m_r + h_r, m_c - h_c, m_c + h_c, b], axis=1), axis=1)
    x0, x1 = points[:, :-1], points[:, 1:]  # the five pieces of each bin, one row a bin

    def rise(x: np.ndarray, mass: np.ndarray, m: np.ndarray, h: np.ndarray, right: bool) -> np.ndarray:
        mass, m, h = mass[:, None], m[:, None], h[:, None]
        width = 2.0 * h
        ramp = np.minimum(np.maximum((x - (m - h)) / np.where(width > 0, width, 1.0), 0.0), 1.0)
        jump = (x >= m) if right else (x > m)  # a point mass: right-continuous value or left limit
        return mass * np.where(width > 0, ramp, jump)

    d = d_a[:, None]
    v0 = d + rise(x0, p, m_r, h_r, True) - rise(x0, q, m_c, h_c, True)
    v1 = d + rise(x1, p, m_r, h_r, False) - rise(x1, q, m_c, h_c, False)
    same = v0 * v1 >= 0
    denom = np.where(same, 1.0, np.abs(v0) + np.abs(v1))
    area = np.where(same, (np.abs(v0) + np.abs(v1)) / 2.0, (v0 * v0 + v1 * v1) / (2.0 * denom))
    return np.sum((x1 - x0) * area, axis=1)


def wasserstein_scale(std: float, lo: float, hi: float) -> float:
    """What the normalised Wasserstein distance divides by: the reference's spread, or its size when it has none.

    The reference's standard deviation ``std`` (population), floored at
    :data:`MIN_SCALE` (0.001, Evidently's rule), unless the reference is
    constant (``std`` at most :data:`CONSTANT_SPREAD` of its magnitude
    ``max(|lo|, |hi|)``, its extremes): with no spread to measure a shift
    against, the floor would call a move from 10.0 to 10.01 ten standard
    deviations. The distance is then divided by the magnitude (floored at
    0.001 too): at the default threshold of 0.1 a constant column drifts when
    its values move by a tenth of their size (10.0 to 12.0), not by 0.01.

    >>> wasserstein_scale(2.0, -5.0, 5.0), wasserstein_scale(0.0, 10.0, 10.0), wasserstein_scale(0.0, 0.0, 0.0)
    (2.0, 10.0, 0.001)
    """
    magnitude = max(abs(float(lo)), abs(float(hi)))
    if float(std) > CONSTANT_SPREAD * magnitude:
        return max(float(std), MIN_SCALE)
    return max(magnitude, MIN_SCALE)


# -- distances on raw samples -----------------------------------------------------------------------------


def psi(reference: Any, current: Any, *, bins: int = 10, eps: float = 1e-4, kind: str = "auto") -> float:
    """Population stability index of two samples on the reference's bins (see :func:`psi_from_counts`).

    Numeric samples are cut at ``bins`` reference quantiles (:func:`quantile_edges`),
    categorical ones counted by category (:func:`category_counts`). ``kind`` is
    "numeric", "categorical" or "auto" (numbers are numeric; strings, booleans and
    pandas categoricals categorical).

    >>> rng = np.random.default_rng(0)
    >>> round(psi(rng.normal(size=10_000), rng.normal(0.5, 1, size=10_000)), 2)
    0.24
    """
    return psi_from_counts(*_binned(reference, current, _check_bins(bins), kind), eps=eps)


def js_distance(reference: Any, current: Any, *, bins: int = 10, kind: str = "auto") -> float:
    """Jensen-Shannon distance (base 2) of two samples on the reference's bins (see :func:`psi`).

    >>> js_distance(["a", "a", "b"], ["a", "a", "b"])
    0.0
    """
    return js_distance_from_counts(*_binned(reference, current, _check_bins(bins), kind))


def hellinger(reference: Any, current: Any, *, bins: int = 10, kind: str = "auto") -> float:
    """Hellinger distance of two samples on the reference's bins (see :func:`psi`).

    >>> hellinger(["a", "a"], ["b", "b"])
    1.0
    """
    return hellinger_from_counts(*_binned(reference, current, _check_bins(bins), kind))


def ks(reference: Any, current: Any) -> StatTestResult:
    """Two-sample Kolmogorov-Smirnov test on the finite values: ``scipy.stats.ks_2samp`` (exact when small).

    SciPy picks the exact distribution below 10,000 values per side and the
    asymptotic one above; the result is SciPy's, unchanged.

    >>> ks([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0])
    StatTestResult(statistic=0.5, p_value=0.771...)
    """
    from scipy import stats  # scipy.stats takes ~1 s to import: only the exact paths load it

    res = stats.ks_2samp(_finite(reference, "reference"), _finite(current, "current"))
    return StatTestResult(float(res.statistic), float(res.pvalue))


def chi2(reference: Any, current: Any, *, bins: int = 10, kind: str = "auto", correction: bool = True
         ) -> StatTestResult:
    """Chi-squared test of two samples on the reference's bins (see :func:`chi2_from_counts`, :func:`psi`).

    >>> res = chi2(["a"] * 50 + ["b"] * 50, ["a"] * 30 + ["b"] * 70)
    >>> round(res.statistic, 2), round(res.p_value, 4)
    (7.52, 0.0061)
    """
    return chi2_from_counts(*_binned(reference, current, _check_bins(bins), kind), correction=correction)


def wasserstein(reference: Any, current: Any, *, normalized: bool = True) -> float:
    """Wasserstein-1 distance of two samples (``scipy.stats.wasserstein_distance``), on the finite values.

    With ``normalized=True`` (the default) it is divided by the reference's
    standard deviation (population, ``ddof=0``), floored at 0.001 as in
    Evidently's "normed Wasserstein": 0.1 means the current distribution has
    moved by a tenth of a reference standard deviation. (The drift decision,
    :func:`column_drift`, divides by :func:`wasserstein_scale` instead: the
    same, except for a constant reference, which has no spread to divide by.)

    >>> wasserstein([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], normalized=False)
    1.0
    """
    from scipy import stats

    r = _finite(reference, "reference")
    w = float(stats.wasserstein_distance(r, _finite(current, "current")))
    return w / max(float(np.std(r)), MIN_SCALE) if normalized else w


# -- the fast numeric engine ------------------------------------------------------------------------------


_MAGNITUDE = np.int64(0x7FFF_FFFF_FFFF_FFFF)


def _order_keys(x: np.ndarray) -> np.ndarray:
    """A float64 key per value with the values' order: the IEEE-754 bits as an integer (sign-corrected).

    The bits grow with the logarithm of the magnitude, so an equal-width grid over the keys is a log-scale
    grid (both signs), for the price of three integer operations instead of a logarithm.
    """
    k = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    return (k ^ ((k >> 63) & _MAGNITUDE)).astype(np.float64)


class _Binner:
    """Bins values like ``np.searchsorted(edges, x, side="right")``, several times faster.

    A table over an equal-width grid of the edges' range gives each value a
    lower bound of its bin, and a few vectorised steps (``idx += x >= edges[idx]``)
    finish it. The grid is on the values, or on their bit patterns (a
    log-scale grid) for heavy tails, over all edges or their central 98%,
    whichever leaves fewest edges crowded into a cell. Values in crowded cells
    (and off the grid) go through ``np.searchsorted``; when that would be most
    of them it is plain ``searchsorted``.
    """

    GRID = 1 << 16
    MAX_STEPS = 4

    def __init__(self, edges: np.ndarray) -> None:
        self.edges = edges
        self.n = n = edges.size
        self.table: np.ndarray | None = None
        if n < 16:
            return
        g = self.GRID
        best = None
        # (bits, first edge, last edge): the plain grid first; the others only when it crowds or needs many steps
        for bits, i0, i1 in ((False, 0, n - 1), (True, 0, n - 1), (False, n // 100, n - 1 - n // 100),
                             (True, n // 100, n - 1 - n // 100)):
            keys = _order_keys(edges) if bits else edges
            lo, hi = float(keys[i0]), float(keys[i1])
            width = (hi - lo) / g
            if not (math.isfinite(width) and width > 0):
                continue
            # Slot j >= 1 is grid cell j-1, [lo + (j-1)w, lo + j w); slot 0 is below lo, slot g+1 from hi up.
            # A value in slot j lies above every edge in cells <= j-3 and below every edge in cells >= j+2,
            # whatever the rounding of either position (off by far less than a cell): low[j] counts the first,
            # span[j] the edges in between.
            cell = np.clip(np.floor((keys - lo) / width), -2, g + 1).astype(np.intp) + 2
            below = np.bincount(cell, minlength=g + 4)
            np.cumsum(below, out=below)  # below[m] = edges in cells <= m - 2
            low = np.empty(g + 2, dtype=np.intp)
            low[0] = 0
            low[1:] = below[:g + 1]
            span = np.empty(g + 2, dtype=np.intp)
            span[:-1] = below[3:]  # edges in cells <= j + 1
            span[-1] = n
            span -= low
            del below
            crowded = span > self.MAX_STEPS
            share = float(span[crowded].sum()) / n  # ~ share of the (near equal-mass) bins handled slowly
            steps = int(span[~crowded].max()) if (~crowded).any() else 0
            cost = share * 100 + steps + bits  # searchsorted ~ 100 steps' work; the bit keys ~ one step
            if best is None or cost < best[0]:
                best = (cost, bits, lo, width, low, steps, crowded, share)
            if share == 0 and steps <= 2:
                break
        if best is None or best[-1] > 0.5:  # most values would be searched anyway: plain searchsorted
            return
        _, self.bits, self.lo, width, self.table, self.steps, crowded, _ = best
        self.scale = 1.0 / width
        self.fused = not self.bits and abs(self.lo) * self.scale < 1e12
        self.crowded = crowded if crowded.any() else None
        self.padded = np.append(edges, np.nan)  # x >= nan is False: a value never walks past the last edge

    def index(self, x: np.ndarray) -> np.ndarray:
        """Bin index of each (finite) value."""
        if self.table is None:
            return np.searchsorted(self.edges, x, side="right")
        with np.errstate(over="ignore", invalid="ignore"):  # huge values overflow to inf: clipped to the last slot
            if self.fused:  # (x - lo) * scale in one pass less: lo * scale < 1e12 keeps the rounding < 1e-3 cell
                u = np.multiply(x, self.scale)
                u -= self.lo * self.scale
            else:
                u = _order_keys(x) if self.bits else x.astype(np.float64)
                u -= self.lo
                u *= self.scale
        u += 1.0
        np.clip(u, 0.0, self.GRID + 1.0, out=u)
        slot = u.astype(np.intp)
        del u
        idx = self.table[slot]
        for _ in range(self.steps):
            idx += x >= self.padded[idx]
        if self.crowded is not None:
            slow = np.flatnonzero(self.crowded[slot])
            if slow.size:
                idx[slow] = np.searchsorted(self.edges, x[slow], side="right")
        return idx


class _Scan(NamedTuple):
    counts: np.ndarray
    n: int
    lo: float
    hi: float
    std: float


def _scan(x: np.ndarray, binner: _Binner, center: float | None) -> _Scan:
    """One chunked pass: bin counts of the finite values, their number, the min / max of those below the first
    edge / from the last edge up (inf / -inf when there are none), and the std (computed around ``center``)."""
    counts = np.zeros(binner.n + 1, dtype=np.int64)
    n, lo, hi, s1, s2 = 0, math.inf, -math.inf, 0.0, 0.0
    for start in range(0, x.size, _CHUNK):
        ch = x[start:start + _CHUNK]
        if ch.dtype != np.float64:
            ch = ch.astype(np.float64)
        ok = np.isfinite(ch)
        if ok.size - np.count_nonzero(ok):
            ch = ch[ok]
            if ch.size == 0:
                continue
        n += ch.size
        part = np.bincount(binner.index(ch), minlength=binner.n + 1)
        counts += part
        if part[0]:  # values below the first edge: the Wasserstein integral needs how far down they go
            lo = min(lo, float(ch.min()))
        if part[-1]:
            hi = max(hi, float(ch.max()))
        if center is not None:
            d = ch - center
            s1 += float(d.sum())
            d *= d
            s2 += float(d.sum())
    std = math.sqrt(max(s2 / n - (s1 / n) ** 2, 0.0)) if (center is not None and n) else math.nan
    return _Scan(counts, n, lo, hi, std)


def _sorted_sample(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A sorted sample (with replacement) of the finite values of ``x``; all of them when ``x`` is small."""
    if x.size > size:
        rng, s = np.random.default_rng(seed), np.empty(size, dtype=np.float64)
        for start in range(0, size, _CHUNK):  # in blocks: no index array the size of the sample
            part = s[start:start + _CHUNK]
            part[:] = x[rng.integers(0, x.size, size=part.size)]
        s = s[np.isfinite(s)]
        if s.size:
            s.sort()
            return s
    s = x.astype(np.float64)  # a copy: sorted in place below
    s = s[np.isfinite(s)] if not np.isfinite(s).all() else s
    s.sort()
    return s


def _numeric_stats(reference: Any, current: Any, *, bins: int, exact: bool | None) -> dict[str, float]:
    """Every numeric measure of one column pair: 10-bin PSI/JS/Hellinger, KS, normalised Wasserstein.

    Small inputs (<= EXACT_MAX_ROWS rows together, or exact=True) get SciPy's exact KS and Wasserstein and
    bins from all of the reference. Larger ones take one pass per side into fine bins placed at FINE_BINS
    quantiles of a fixed-seed sample of each side (SAMPLE_SIZE rows each) plus the reference deciles of the
    reference sample; the coarse bins are sums of fine bins, KS is read at the fine edges and Wasserstein
    integrated over them.
    """
    r = _numeric_array(reference, "reference")
    c = _numeric_array(current, "current")
    if exact is None:
        exact = r.size + c.size <= EXACT_MAX_ROWS
    if exact:
        rf, cf = _finite(r, "reference"), _finite(c, "current")
        edges = _edges_from_sorted(np.sort(rf), bins)
        rc, cc = bin_counts(rf, edges), bin_counts(cf, edges)
        ks_res = ks(rf, cf)
        w = wasserstein(rf, cf, normalized=False) / wasserstein_scale(float(np.std(rf)), float(rf.min()),
                                                                      float(rf.max()))
        return _coarse(rc, cc) | {"ks": ks_res.statistic, "ks_p_value": ks_res.p_value, "wasserstein": w,
                                  "n_ref": rf.size, "n_cur": cf.size}
    rs = _sorted_sample(r, SAMPLE_SIZE, seed=0)
    cs = _sorted_sample(c, SAMPLE_SIZE, seed=1)
    if rs.size == 0:
        raise MetricInputError("reference has no finite values")
    if cs.size == 0:
        raise MetricInputError("current has no finite values")
    coarse_edges = _edges_from_sorted(rs, bins)
    fine, discrete = _fine_edges(rs, cs, coarse_edges)
    center = float(rs[rs.size // 2])
    ref_lo, ref_hi = float(rs[0]), float(rs[-1])  # only to tell a constant reference (see wasserstein_scale)
    del rs, cs  # memory: the samples are done with
    binner = _Binner(fine)
    rscan = _scan(r, binner, center=center)
    cscan = _scan(c, binner, center=None)
    # coarse bin j = fine bins (k_{j-1}, k_j] where fine[k_j] is coarse edge j
    starts = np.concatenate([[0], np.searchsorted(fine, coarse_edges) + 1])
    rc = np.add.reduceat(rscan.counts, starts)
    cc = np.add.reduceat(cscan.counts, starts)
    ks_res = ks_from_counts(rscan.counts, cscan.counts)
    w = wasserstein_from_counts(
        rscan.counts, cscan.counts, fine,
        lower=min(rscan.lo, cscan.lo, fine[0]), upper=max(rscan.hi, cscan.hi, fine[-1]),
        scale=wasserstein_scale(rscan.std, ref_lo, ref_hi), interpolation="step" if discrete else "linear",
    )
    return _coarse(rc, cc) | {"ks": ks_res.statistic, "ks_p_value": ks_res.p_value, "wasserstein": w,
                              "n_ref": rscan.n, "n_cur": cscan.n}


def _fine_edges(rs: np.ndarray, cs: np.ndarray, coarse: np.ndarray) -> tuple[np.ndarray, bool]:
    """Fine edges from two sorted samples and the coarse edges, and whether they are every distinct value.

    Discrete data (at most FINE_BINS + 1 distinct values in the samples) get every distinct value. Otherwise
    each side offers its quantiles at FINE_BINS equal-mass levels, finer levels in the tails and its
    extremes, so both distributions are resolved wherever they have mass (also where they no longer overlap)
    and the outer bins of the Wasserstein integral hold only the few values beyond the samples. Of those,
    edges closer than half a fine bin of pooled mass to the previous one (or to a coarse edge) are dropped,
    outside the tails: the fast binner needs fewer steps when no two edges crowd together.
    """
    def distinct(s: np.ndarray) -> np.ndarray:
        return s[np.concatenate([[True], s[1:] != s[:-1]])]

    if sum(1 + np.count_nonzero(s[1:] != s[:-1]) for s in (rs, cs)) <= FINE_BINS + 1:
        return np.union1d(np.union1d(distinct(rs), distinct(cs)), coarse), True
    picks = np.unique(np.concatenate([s[np.round(_FINE_LEVELS * (s.size - 1)).astype(np.intp)] for s in (rs, cs)]))

    def pooled_cdf(v: np.ndarray) -> np.ndarray:
        return (np.searchsorted(rs, v, side="right") + np.searchsorted(cs, v, side="right")) / (rs.size + cs.size)

    gap, tail = 0.5 / FINE_BINS, 1.0 / FINE_BINS
    cdf = pooled_cdf(picks)
    coarse_cdf = pooled_cdf(coarse)
    near = np.searchsorted(coarse_cdf, cdf)
    dist = np.minimum(np.abs(cdf - coarse_cdf[np.minimum(near, coarse.size - 1)]),
                      np.abs(cdf - coarse_cdf[np.maximum(near - 1, 0)])) if coarse.size else np.full(cdf.size, 1.0)
    keep, last = [], -1.0
    for i, (c, d) in enumerate(zip(cdf.tolist(), dist.tolist(), strict=True)):
        if c <= tail or c >= 1.0 - tail or (c - last >= gap and d >= gap):
            keep.append(i)
            last = c
    return np.union1d(picks[keep], coarse), False


def _coarse(rc: np.ndarray, cc: np.ndarray) -> dict[str, float]:
    return {"psi": psi_from_counts(rc, cc), "js_distance": js_distance_from_counts(rc, cc),
            "hellinger": hellinger_from_counts(rc, cc)}


def _categorical_stats(reference: Any, current: Any) -> dict[str, float]:
    rc, cc, _ = category_counts(reference, current)
    if rc.sum() == 0:
        raise MetricInputError("reference has no non-missing values")
    if cc.sum() == 0:
        raise MetricInputError("current has no non-missing values")
    res = homogeneity_test(rc, cc)
    return _coarse(rc, cc) | {"chi2": res.statistic, "chi2_p_value": res.p_value, "n_ref": int(rc.sum()),
                              "n_cur": int(cc.sum())}


# -- the decision -----------------------------------------------------------------------------------------


def _check_method(method: str | None, threshold: float | None, kind: str, where: str) -> tuple[str, float]:
    if kind not in _KINDS:
        raise MetricInputError(f"kind must be 'numeric' or 'categorical', got {kind!r}")
    name = DEFAULTS[kind][0] if method is None else method
    if name not in METHODS:
        raise MetricInputError(f"{where}method must be one of {sorted(METHODS)}, got {name!r}")
    spec = METHODS[name]
    if kind not in spec.kinds:
        raise MetricInputError(f"{where}method {name!r} does not apply to {kind} columns; use one of "
                               f"{sorted(m for m, s in METHODS.items() if kind in s.kinds)}")
    if threshold is None:
        threshold = DEFAULTS[kind][1] if method is None else spec.threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise MetricInputError(f"{where}threshold must be a finite number, got {threshold!r}")
    return name, float(threshold)


#: An effect-size decision also needs the column's test (KS for numeric, chi-squared for categorical) to reject
#: "same distribution" at this level: a small window's effect size is inflated by noise alone. At large n every
#: p-value is tiny and the effect size decides.
SIGNIFICANCE = 0.01

#: The ``status`` of a decision.
STATUSES = ("drift", "ok", "insufficient_data")


def _check_size(n: Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise MetricInputError(f"{name} must be a count of values (an integer >= 0), got {n!r}")
    return int(n)


def decide(stats: Mapping[str, float], kind: str, method: str | None = None, threshold: float | None = None, *,
           n_ref: int, n_cur: int) -> dict[str, Any]:
    """The drift decision from a column's measures and the sizes of the two samples they come from.

    ``stats`` holds the METHODS names plus ``ks_p_value`` (numeric) or
    ``chi2_p_value`` (categorical); ``n_ref`` and ``n_cur`` are the numbers of
    values each measure saw (finite numbers, non-missing categories). An
    effect-size method flags drift when all of these hold:

    - ``n_ref >= MIN_ROWS`` and ``n_cur >= MIN_ROWS`` (:data:`MIN_ROWS`, 30);
    - the value is >= the threshold;
    - the column's test p-value is below :data:`SIGNIFICANCE` (0.01).

    A p-value method ("ks", "chi2") flags drift when the p-value is below the
    threshold, with the same minimum size. Below the minimum size nothing is
    decided: ``drifted`` is None and ``status`` "insufficient_data". Keys:
    ``method, value, threshold, drifted, status, p_value, psi, js_distance,
    hellinger``; ``status`` is "drift", "ok" or "insufficient_data".

    >>> stats = {"wasserstein": 0.3, "js_distance": 0.2, "hellinger": 0.2, "psi": 0.4, "ks_p_value": 0.2}
    >>> decide(stats, "numeric", n_ref=1000, n_cur=500)["drifted"]  # a large effect, but not significant
    False
    >>> decide({**stats, "ks_p_value": 1e-9}, "numeric", n_ref=1000, n_cur=500)["status"]
    'drift'
    >>> r = decide({**stats, "ks_p_value": 1e-9}, "numeric", n_ref=1000, n_cur=12)
    >>> r["drifted"], r["status"]
    (None, 'insufficient_data')
    """
    method, threshold = _check_method(method, threshold, kind, "")
    n_ref, n_cur = _check_size(n_ref, "n_ref"), _check_size(n_cur, "n_cur")
    p_value = stats["ks_p_value"] if kind == "numeric" else stats["chi2_p_value"]
    value = {"ks": stats.get("ks_p_value"), "chi2": stats.get("chi2_p_value")}.get(method, stats.get(method))
    drifted: bool | None
    if min(n_ref, n_cur) < MIN_ROWS:
        drifted, status = None, "insufficient_data"
    else:
        if METHODS[method].direction == "above":
            drifted = bool(value >= threshold and p_value < SIGNIFICANCE)
        else:
            drifted = bool(value < threshold)
        status = "drift" if drifted else "ok"
    return {"method": method, "value": float(value), "threshold": float(threshold), "drifted": drifted,
            "status": status, "p_value": float(p_value), "psi": float(stats["psi"]),
            "js_distance": float(stats["js_distance"]), "hellinger": float(stats["hellinger"])}


def column_drift(
    reference: Any,
    current: Any,
    *,
    kind: str = "numeric",
    method: str | None = None,
    threshold: float | None = None,
    bins: int = 10,
    exact: bool | None = None,
) -> dict[str, Any]:
    """Whether one column drifted: the chosen measure against its threshold, and the others beside it.

    ``method`` is a key of :data:`METHODS`; by default :data:`DEFAULTS`
    (normalised Wasserstein for numeric columns, Jensen-Shannon distance for
    categorical ones, both at 0.1). The decision is :func:`decide`'s: an
    effect-size method flags drift when the value is >= the threshold *and*
    the p-value is below :data:`SIGNIFICANCE` (0.01); a p-value method ("ks",
    "chi2") when the p-value is below the threshold; either only when both
    samples have at least :data:`MIN_ROWS` (30) values, else ``drifted`` is
    None (too few to decide). The result always has the same keys: ``method,
    value, threshold, drifted, p_value`` (KS for numeric; for categorical the
    chi-squared test of :func:`homogeneity_test`, Monte Carlo at small
    counts), ``psi, js_distance, hellinger`` (on ``bins`` reference-quantile
    bins or the categories).

    Up to 100,000 rows (both sides together) everything is exact. Above that,
    numeric columns go through the same binned fast path as :func:`drift_table`
    (KS to within about 0.002, normalised Wasserstein to within about 1%).

    >>> r = column_drift(["a"] * 60 + ["b"] * 40, ["a"] * 20 + ["b"] * 80, kind="categorical")
    >>> r["method"], round(r["value"], 3), r["drifted"], r["p_value"] < 0.001
    ('js_distance', 0.353, True, True)
    """
    bins = _check_bins(bins)
    stats = _numeric_stats(reference, current, bins=bins, exact=exact) if kind == "numeric" else \
        _categorical_stats(reference, current)
    result = decide(stats, kind, method, threshold, n_ref=stats["n_ref"], n_cur=stats["n_cur"])
    del result["status"]  # drifted says it: True, False, or None for too few values
    return result


TABLE_COLUMNS = ["column", "kind", "method", "value", "threshold", "drifted", "p_value", "psi", "js_distance",
                 "hellinger"]


def _per_column(option: Any, arg: str, columns: dict[str, str]) -> dict[str, Any]:
    """Resolve a {column or kind: setting} mapping to one setting (or None) per column."""
    if option is None:
        return dict.fromkeys(columns)
    if not isinstance(option, Mapping):
        raise MetricInputError(f"{arg} must be a mapping of column name or kind ('numeric', 'categorical') to a "
                               f"setting, e.g. {{'numeric': ...}}; got {type(option).__name__}")
    unknown = sorted(set(option) - set(columns) - set(_KINDS), key=str)
    if unknown:
        raise MetricInputError(f"{arg} names columns that are not compared: {unknown}")
    return {col: option.get(col, option.get(kind)) for col, kind in columns.items()}


def drift_table(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    n_jobs: int = 2,
    bins: int = 10,
    exact: bool | None = None,
) -> pd.DataFrame:
    """Drift of every column of two frames, one row per column: the fast stateless comparison.

    Columns: ``column, kind, method, value, threshold, drifted, p_value, psi,
    js_distance, hellinger`` (see :func:`column_drift`). With neither
    ``numeric`` nor ``categorical`` given, the shared columns are compared and
    typed by dtype (numbers numeric; pandas categoricals, strings, booleans
    categorical); given either, only the listed columns are compared.
    ``methods`` and ``thresholds`` map a column name or a kind to a method name
    or threshold (a column name wins over its kind). ``n_jobs`` threads share
    the columns (-1: one per CPU; 1: no extra thread).

    How it is fast (1,000,000 vs 1,000,000 rows x 20 columns in about 0.4 s on
    2 cores, ~3x the NumPy 10-bin PSI baseline): one chunked pass per numeric
    column and side into ~1,000-2,000 fine bins placed at the quantiles of a
    fixed-seed sample (100,000 rows of each side, plus the deciles of the
    reference sample, so the 10 reference bins are exact sums of fine bins);
    categoricals by their codes; the calling thread and ``n_jobs - 1`` more
    share the columns.
    PSI, JS and Hellinger are computed on the reference-decile bins (placed on
    the reference sample when the reference has more than 100,000 rows), KS is
    the largest CDF difference at the fine edges (a lower bound, within ~0.002
    of the exact value; p-value asymptotic), the Wasserstein distance the
    integral of the fine binned CDFs (within ~1%). Up to 100,000 rows (both
    sides together) KS and Wasserstein are SciPy's exact values instead
    (``exact=True`` forces that, ``exact=False`` forces the binned path).
    A column with no finite / non-missing value on one side gets NaN measures
    and ``drifted=None``: a data-integrity check, not drift, reports it. So
    does one with fewer than :data:`MIN_ROWS` values on a side (its measures
    are reported, undecided).

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    >>> cur = pd.DataFrame({"x": rng.normal(1.0, 1.0, size=500), "c": rng.choice(["a", "b"], 500)})
    >>> drift_table(ref, cur)[["column", "kind", "method", "drifted"]]
      column         kind       method  drifted
    0      x      numeric  wasserstein     True
    1      c  categorical  js_distance    False
    """
    for arg, df in (("reference_df", reference_df), ("current_df", current_df)):
        if not isinstance(df, pd.DataFrame):
            raise MetricInputError(f"{arg} must be a pandas DataFrame, got {type(df).__name__}")
    columns = _table_columns(reference_df, current_df, numeric, categorical)
    bins = _check_bins(bins)
    chosen_methods = _per_column(methods, "methods", columns)
    chosen_thresholds = _per_column(thresholds, "thresholds", columns)
    plan = {}
    for col, kind in columns.items():
        where = f"for column {col!r}: "
        plan[col] = _check_method(chosen_methods[col], chosen_thresholds[col], kind, where)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise MetricInputError(f"n_jobs must be a positive integer or -1 (one per CPU), got {n_jobs!r}")
    workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs

    def one(col: str) -> dict[str, Any]:
        kind = columns[col]
        method, threshold = plan[col]
        ref, cur = reference_df[col], current_df[col]
        try:
            if kind == "numeric":
                stats = _numeric_stats(ref, cur, bins=bins, exact=exact)
            else:
                stats = _categorical_stats(ref, cur)
        except MetricInputError as err:
            if "no finite" not in str(err) and "no non-missing" not in str(err):
                raise MetricInputError(f"column {col!r}: {err}") from err
            return {"column": col, "kind": kind, "method": method, "value": math.nan, "threshold": threshold,
                    "drifted": None, "p_value": math.nan, "psi": math.nan, "js_distance": math.nan,
                    "hellinger": math.nan}
        return {"column": col, "kind": kind} | decide(stats, kind, method, threshold, n_ref=stats["n_ref"],
                                                      n_cur=stats["n_cur"])

    # numeric columns cost the most: start them first so the threads finish together
    order = iter(sorted(columns, key=lambda col: columns[col] != "numeric"))
    lock = threading.Lock()
    results: dict[str, dict[str, Any]] = {}

    def drain() -> None:
        while True:
            with lock:
                col = next(order, None)
            if col is None:
                return
            results[col] = one(col)

    helpers = min(workers, len(columns)) - 1
    if helpers == 0:
        drain()
    else:
        # the calling thread works too: what it allocates reuses memory the process already holds, while each
        # extra thread's allocations come from a fresh malloc arena
        with ThreadPoolExecutor(max_workers=helpers) as pool:
            futures = [pool.submit(drain) for _ in range(helpers)]
            try:
                drain()
            finally:
                for future in futures:
                    future.result()
    rows = [results[col] for col in columns]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _table_columns(reference_df: pd.DataFrame, current_df: pd.DataFrame, numeric: Sequence[str] | None,
                   categorical: Sequence[str] | None) -> dict[str, str]:
    """{column: kind} in output order, after checking the columns exist once in both frames."""
    for arg, cols in (("numeric", numeric), ("categorical", categorical)):
        if isinstance(cols, str):
            raise MetricInputError(f"{arg} must be a list of column names, got the string {cols!r}")
    if numeric is None and categorical is None:
        shared = [c for c in reference_df.columns if c in current_df.columns]
        columns = {c: _resolve_kind(reference_df[c], "auto") for c in shared}
    else:
        columns = dict.fromkeys(numeric or [], "numeric")
        for c in categorical or []:
            if c in columns:
                raise MetricInputError(f"column {c!r} is listed as both numeric and categorical")
            columns[c] = "categorical"
    for arg, df in (("reference_df", reference_df), ("current_df", current_df)):
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise MetricInputError(f"{arg} has no column(s) {missing}")
        dup = [c for c in columns if isinstance(df[c], pd.DataFrame)]
        if dup:
            raise MetricInputError(f"{arg} has more than one column named {dup}")
    if not columns:
        raise MetricInputError("no columns to compare: reference_df and current_df share none")
    return columns
