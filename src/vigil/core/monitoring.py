"""Monitoring from profiles, pure: windows, a baseline's bins, drift and integrity of two profiles.

The store keeps one profile per column and window (:mod:`vigil.core.profiles`)
and :func:`vigil.compare` builds them from two frames; both get their drift
and integrity figures here, so the two agree by construction.

Bins. A numeric column is binned once per model version on the baseline's
values (:func:`baseline_edges`): its minimum, its 1%..99% quantiles and the
float just above its maximum. The first bin then holds exactly the values
below the baseline's range and the last exactly those above it, so the
out-of-range share is an exact count, and the bins' sums
(``NumericProfile.hist_sums``) place the out-of-range mass where it is.

Exactness. Counts are exact and merge exactly: the out-of-range share is
exactly the share of values strictly below the baseline's minimum or strictly
above its maximum, as on the raw data. The normalised Wasserstein distance
from bin counts and sums is exact in every bin where the two cumulative
distributions cannot cross (values outside the baseline's range against the
training baseline among them) and always between guaranteed bounds
(:func:`profile_wasserstein`). Quantile-based figures (the outlier share's
robust range) come from the KLL sketch, within its rank error (about 1.3%).

Drift decisions are :func:`vigil.core.metrics.drift.decide`'s: the effect size
at its threshold, the column's test at p < 0.01 and at least 30 values on each
side, else ``status="insufficient_data"``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import numpy as np

from vigil.core import profiles as prof
from vigil.core.metrics import drift
from vigil.errors import InvalidParameterError

__all__ = [
    "DECILE_POSITIONS",
    "EDGE_QUANTILES",
    "baseline_edges",
    "categorical_drift",
    "coarse_counts",
    "integrity_metrics",
    "numeric_drift",
    "outside_share",
    "parse_window",
    "profile_wasserstein",
    "robust_range",
    "training_integrity",
    "window_start",
]

#: Window lengths by suffix.
_UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}
#: Fine bins of the numeric baseline: inner edges at these quantiles (plus its minimum and maximum).
EDGE_QUANTILES = np.linspace(0.01, 0.99, 99)
#: Every tenth quantile edge is a decile: the 10 bins PSI, Jensen-Shannon and Hellinger use.
DECILE_POSITIONS = np.arange(9, 99, 10)
_NUMERIC_STATS = ("wasserstein", "psi", "js_distance", "hellinger", "ks_p_value")
_CATEGORICAL_STATS = ("js_distance", "psi", "hellinger", "chi2_p_value")


# -- windows ---------------------------------------------------------------------------------------------------


def parse_window(window: str) -> tuple[str, dt.timedelta]:
    """``(grain, length)`` for a window like ``"1h"``, ``"6h"``, ``"1d"``, ``"7d"``, ``"1w"``, ``"30d"``.

    The grain is the base window profiles are kept at: ``"1h"`` for windows
    shorter than a day or not a whole number of days, else ``"1d"``. An
    hourly window must divide a day.

    >>> parse_window("1w")
    ('1d', datetime.timedelta(days=7))
    >>> parse_window("6h")
    ('1h', datetime.timedelta(seconds=21600))
    >>> parse_window("5h")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: window '5h': an hourly window must divide a day (1h, 2h, 3h, 4h, 6h, 8h, 12h)
    """
    match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", str(window).lower())
    if not match or int(match.group(1)) == 0:
        raise InvalidParameterError(f"window {window!r} is not a length like '1h', '6h', '1d', '7d', '1w' or '30d'",
                                    field="window")
    length = int(match.group(1)) * _UNITS[match.group(2)]
    if length < dt.timedelta(days=1) and dt.timedelta(days=1) % length:
        raise InvalidParameterError(
            f"window {window!r}: an hourly window must divide a day (1h, 2h, 3h, 4h, 6h, 8h, 12h)", field="window")
    grain = "1h" if length < dt.timedelta(days=1) or length % dt.timedelta(days=1) else "1d"
    return grain, length


def window_start(ts: Any, length: dt.timedelta) -> np.ndarray:
    """The start of the window each timestamp falls in (windows aligned on 1970-01-01 UTC; weeks on Mondays).

    >>> str(window_start(np.array(["2026-01-07T13:00"], dtype="datetime64[us]"), dt.timedelta(weeks=1))[0])
    '2026-01-05T00:00:00.000000'
    >>> str(window_start(np.array(["2026-01-07T13:20"], dtype="datetime64[us]"), dt.timedelta(hours=6))[0])
    '2026-01-07T12:00:00.000000'
    """
    values = np.asarray(ts, dtype="datetime64[us]").astype(np.int64)
    step = int(length / dt.timedelta(microseconds=1))
    origin = 4 * 86_400_000_000 if length % dt.timedelta(weeks=1) == dt.timedelta(0) else 0  # 1970-01-05: Monday
    return ((values - origin) // step * step + origin).astype("datetime64[us]")


# -- bins ------------------------------------------------------------------------------------------------------


def baseline_edges(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed bin edges of a numeric column, and among them its deciles.

    The fine edges are the finite values' minimum, their unique 1%..99%
    quantiles and the float just above their maximum, so that with
    :class:`~vigil.core.profiles.NumericProfile` the first bin counts exactly
    the values below the baseline's range and the last exactly those above it.
    The deciles (10 bins) are the 10%..90% quantiles. Empty arrays when no
    value is finite.

    >>> fine, deciles = baseline_edges(np.arange(1000.0))
    >>> fine[:3].tolist(), float(fine[-1]) > 999.0, deciles[:2].round(2).tolist()
    ([0.0, 9.99, 19.98], True, [99.9, 199.8])
    >>> p = prof.NumericProfile(edges=fine).update([-5.0, 0.0, 500.0, 999.0, 1e6])
    >>> int(p.hist[0]), int(p.hist[-1])  # strictly below 0, strictly above 999
    (1, 1)
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return np.empty(0), np.empty(0)
    quantiles = np.quantile(finite, EDGE_QUANTILES)
    lo, hi = float(finite.min()), float(finite.max())
    with np.errstate(over="ignore"):
        above = float(np.nextafter(hi, math.inf))
    outer = [lo, above] if math.isfinite(above) else [lo]  # above the largest float there is no value
    return np.unique(np.concatenate([quantiles, outer])), np.unique(quantiles[DECILE_POSITIONS])


def coarse_counts(fine_counts: np.ndarray, edges: np.ndarray, coarse_edges: np.ndarray) -> np.ndarray:
    """Counts on fine bins (inner ``edges``) summed into the bins of ``coarse_edges`` (a subset of them).

    >>> coarse_counts(np.array([1, 2, 3, 4]), np.array([1.0, 2.0, 3.0]), np.array([2.0]))
    array([3, 7])

    Rows of a 2-D ``fine_counts`` (one profile each) are summed each on its own.
    """
    splits = np.searchsorted(edges, coarse_edges) + 1
    return np.add.reduceat(np.asarray(fine_counts), np.unique(np.concatenate([[0], splits])), axis=-1)


# -- drift -----------------------------------------------------------------------------------------------------


def profile_wasserstein(ref: prof.NumericProfile, cur: prof.NumericProfile, *,
                        normalized: bool = True) -> drift.WassersteinEstimate:
    """The Wasserstein distance between two numeric profiles on the same edges, with guaranteed bounds.

    From the bins' counts and sums (:func:`vigil.core.metrics.drift.wasserstein_from_sums`),
    the outer bins reaching to the profiles' exact extremes; ``low <= true
    distance <= high`` always, and ``value`` is exact in every bin where the
    two cumulative distributions cannot cross (below the baseline's minimum and
    above its maximum against the training baseline, among others). Profiles
    stored before the sums were kept give the linear interpolation of the
    counts, with the bounds of an unknown placement within each bin.
    ``normalized`` divides by :func:`vigil.core.metrics.drift.wasserstein_scale`
    of the reference (its standard deviation; its magnitude when it is constant).

    >>> edges, _ = baseline_edges(np.arange(100.0))
    >>> ref = prof.NumericProfile(edges=edges).update(np.arange(100.0))
    >>> cur = prof.NumericProfile(edges=edges).update(np.r_[np.arange(99.0), 10_000.0])
    >>> est = profile_wasserstein(ref, cur, normalized=False)  # scipy.stats.wasserstein_distance: 99.01
    >>> [round(v, 2) for v in est]
    [99.01, 99.01, 99.5]
    """
    if ref.hist is None or cur.hist is None or not np.array_equal(ref.edges, cur.edges):
        raise InvalidParameterError("both profiles need the same bin edges (see baseline_edges)", field="cur")
    if not ref.count or not cur.count:
        raise InvalidParameterError("both profiles need finite values", field="cur" if ref.count else "ref")
    edges = ref.edges
    lower, upper = min(ref.min, cur.min, float(edges[0])), max(ref.max, cur.max, float(edges[-1]))
    scale = drift.wasserstein_scale(ref.std, ref.min, ref.max) if normalized else None
    sums = (ref.hist_sums, cur.hist_sums)
    if all(s is not None and np.isfinite(s).all() for s in sums):
        return drift.wasserstein_from_sums(ref.hist, cur.hist, sums[0], sums[1], edges, lower=lower, upper=upper,
                                           scale=scale)
    value = drift.wasserstein_from_counts(ref.hist, cur.hist, edges, lower=lower, upper=upper, scale=scale)
    # without sums a bin's values may sit anywhere in it: F - G stays within [lo, hi] there, and so the bin's
    # share of the distance within [w * distance of 0 to [lo, hi], w * max(|lo|, |hi|)]
    p, q = ref.hist / ref.hist.sum(), cur.hist / cur.hist.sum()
    d_a = np.concatenate([[0.0], np.cumsum(p)[:-1] - np.cumsum(q)[:-1]])
    d_b = d_a + p - q
    lo, hi = np.maximum(d_a - q, d_b - p), np.minimum(d_a + p, d_b + q)
    width = np.diff(np.concatenate([[lower], edges, [upper]]))
    low = float(np.sum(width * np.where(lo > 0, lo, np.where(hi < 0, -hi, 0.0))))
    high = float(np.sum(width * np.maximum(np.abs(lo), np.abs(hi))))
    if scale is not None:
        low, high = low / scale, high / scale
    return drift.WassersteinEstimate(value, min(low, value), max(high, value))


def numeric_drift(ref: prof.NumericProfile, cur: prof.NumericProfile, edges: np.ndarray, deciles: np.ndarray, *,
                  method: str | None = None, threshold: float | None = None) -> dict[str, Any]:
    """Drift of a numeric column between two profiles binned on the same ``edges`` (see :func:`baseline_edges`).

    PSI, Jensen-Shannon and Hellinger use the baseline's ``deciles``; KS the
    fine bins (a lower bound of the statistic at the bins' resolution); the
    normalised Wasserstein distance is :func:`profile_wasserstein`'s. The
    decision is :func:`vigil.core.metrics.drift.decide`'s with the profiles'
    counts of finite values: effect size >= threshold and KS p < 0.01, and at
    least 30 values each side, else ``drifted=None``,
    ``status="insufficient_data"`` (measures NaN when a side has no finite
    value). Keys: ``method, value, threshold, drifted, status, p_value, psi,
    js_distance, hellinger``.

    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(size=5000)
    >>> edges, deciles = baseline_edges(train)
    >>> ref = prof.NumericProfile(edges=edges).update(train)
    >>> moved = prof.NumericProfile(edges=edges).update(rng.normal(0.5, size=500))
    >>> r = numeric_drift(ref, moved, edges, deciles)
    >>> r["method"], round(r["value"], 2), r["drifted"], r["status"]  # scipy: 0.4832
    ('wasserstein', 0.48, True, 'drift')
    >>> numeric_drift(ref, prof.NumericProfile(edges=edges).update([9.0] * 5), edges, deciles)["status"]
    'insufficient_data'
    """
    return numeric_drift_series(ref, [cur], edges, deciles, method=method, threshold=threshold)[0]


def numeric_drift_series(ref: prof.NumericProfile, currents: list[prof.NumericProfile], edges: np.ndarray,
                         deciles: np.ndarray, *, method: str | None = None, threshold: float | None = None
                         ) -> list[dict[str, Any]]:
    """:func:`numeric_drift` of each of ``currents`` against one reference, computed for all of them at once
    (a window series against the training baseline).

    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(size=5000)
    >>> edges, deciles = baseline_edges(train)
    >>> ref = prof.NumericProfile(edges=edges).update(train)
    >>> days = [prof.NumericProfile(edges=edges).update(rng.normal(shift, size=500)) for shift in (0.0, 0.5)]
    >>> [r["status"] for r in numeric_drift_series(ref, days, edges, deciles)]
    ['ok', 'drift']
    """
    n_ref = int(ref.count)
    results: list[dict[str, Any] | None] = [None] * len(currents)
    usable = []
    for i, cur in enumerate(currents):
        if n_ref and cur.count:
            usable.append(i)
        else:
            results[i] = drift.decide(dict.fromkeys(_NUMERIC_STATS, math.nan), "numeric", method, threshold,
                                      n_ref=n_ref, n_cur=int(cur.count))
    if not usable:
        return results  # type: ignore[return-value]
    chosen = [currents[i] for i in usable]
    if ref.hist is None or any(cur.hist is None or not np.array_equal(ref.edges, cur.edges) for cur in chosen):
        raise InvalidParameterError("both profiles need the same bin edges (see baseline_edges)", field="cur")
    edges = np.asarray(edges, dtype=np.float64)
    fine_r = np.asarray(ref.hist, dtype=np.float64)
    fine_c = np.stack([np.asarray(cur.hist, dtype=np.float64) for cur in chosen])
    coarse_r, coarse_c = coarse_counts(fine_r, edges, deciles), coarse_counts(fine_c, edges, deciles)
    _, ks_p = drift.ks_rows(fine_r, fine_c)
    psi = drift.psi_rows(coarse_r, coarse_c)
    js = drift.js_distance_rows(coarse_r, coarse_c)
    hellinger = drift.hellinger_rows(coarse_r, coarse_c)
    wasserstein = _wasserstein_series(ref, chosen)
    for k, i in enumerate(usable):
        stats = {"wasserstein": float(wasserstein[k]), "psi": float(psi[k]), "js_distance": float(js[k]),
                 "hellinger": float(hellinger[k]), "ks_p_value": float(ks_p[k])}
        results[i] = drift.decide(stats, "numeric", method, threshold, n_ref=n_ref, n_cur=int(chosen[k].count))
    return results  # type: ignore[return-value]


def _wasserstein_series(ref: prof.NumericProfile, currents: list[prof.NumericProfile]) -> np.ndarray:
    """:func:`profile_wasserstein`'s normalised values of each current profile against ``ref``."""
    edges = ref.edges
    scale = drift.wasserstein_scale(ref.std, ref.min, ref.max)
    with_sums = [k for k, cur in enumerate(currents)
                 if cur.hist_sums is not None and np.isfinite(cur.hist_sums).all()]
    values = np.empty(len(currents))
    if ref.hist_sums is None or not np.isfinite(ref.hist_sums).all():
        with_sums = []
    if with_sums:
        chosen = [currents[k] for k in with_sums]
        lower = np.array([min(ref.min, cur.min, float(edges[0])) for cur in chosen])
        upper = np.array([max(ref.max, cur.max, float(edges[-1])) for cur in chosen])
        value, _, _ = drift.wasserstein_rows(np.asarray(ref.hist, dtype=np.float64),
                                             np.stack([np.asarray(c.hist, dtype=np.float64) for c in chosen]),
                                             np.asarray(ref.hist_sums, dtype=np.float64),
                                             np.stack([np.asarray(c.hist_sums, dtype=np.float64) for c in chosen]),
                                             np.asarray(edges, dtype=np.float64), lower, upper)
        values[with_sums] = value / scale
    for k in sorted(set(range(len(currents))) - set(with_sums)):  # profiles kept before the sums were
        values[k] = profile_wasserstein(ref, currents[k]).value
    return values


def categorical_drift(ref: prof.CategoricalProfile, cur: prof.CategoricalProfile, *, method: str | None = None,
                      threshold: float | None = None) -> dict[str, Any]:
    """Drift of a categorical column: the baseline's categories plus an "unseen" bucket.

    The test is :func:`vigil.core.metrics.drift.homogeneity_test`: chi-squared
    when every expected count is at least 5, else a seeded Monte Carlo test
    conditional on the margins (the same counts give the same p-value), valid
    at any size. The decision is :func:`vigil.core.metrics.drift.decide`'s with
    the profiles' counts of non-missing values (at least 30 each side). Keys
    as :func:`numeric_drift`'s.

    >>> ref = prof.CategoricalProfile().update(["a", "b"] * 500)
    >>> r = categorical_drift(ref, prof.CategoricalProfile().update(["new"]))  # one row, unseen
    >>> r["value"], r["drifted"], r["status"]
    (1.0, None, 'insufficient_data')
    >>> categorical_drift(ref, prof.CategoricalProfile().update(["a"] * 40 + ["b"] * 10))["status"]
    'drift'
    """
    rf, cf = ref.frequencies(), cur.frequencies()
    labels = sorted(rf)
    r = np.array([rf[k] for k in labels] + [0], dtype=float)
    c = np.array([cf.get(k, 0) for k in labels] + [sum(v for k, v in cf.items() if k not in rf)], dtype=float)
    n_ref, n_cur = int(r.sum()), int(c.sum())
    if not n_ref or not n_cur:
        return drift.decide(dict.fromkeys(_CATEGORICAL_STATS, math.nan), "categorical", method, threshold,
                            n_ref=n_ref, n_cur=n_cur)
    stats = {
        "js_distance": drift.js_distance_from_counts(r, c),
        "psi": drift.psi_from_counts(r, c),
        "hellinger": drift.hellinger_from_counts(r, c),
        "chi2_p_value": drift.homogeneity_test(r, c).p_value,
    }
    return drift.decide(stats, "categorical", method, threshold, n_ref=n_ref, n_cur=n_cur)


# -- integrity -------------------------------------------------------------------------------------------------


def robust_range(profile: prof.NumericProfile) -> tuple[float, float]:
    """The baseline's robust range of a numeric column: 3 interquartile ranges beyond the quartiles.

    The quartiles come from the profile's sketch (within its rank error).

    >>> p = prof.NumericProfile().update(np.arange(101.0))
    >>> robust_range(p)
    (-125.0, 225.0)
    """
    q1, q3 = profile.quantiles([0.25, 0.75])
    return float(q1 - 3 * (q3 - q1)), float(q3 + 3 * (q3 - q1))


def _edge_index(edges: np.ndarray | None, x: float) -> int | None:
    if edges is None or not math.isfinite(x):
        return None
    j = int(np.searchsorted(edges, x, side="left"))
    return j if j < edges.size and edges[j] == x else None


def outside_share(profile: prof.NumericProfile, lo: float, hi: float) -> tuple[float, float]:
    """Shares of a profile's finite values strictly below ``lo`` and strictly above ``hi``.

    Exact when the bins answer: ``lo`` is a bin edge (values below it are
    whole bins), and the float just above ``hi`` is one (values above it
    are); :func:`baseline_edges` makes both true of the baseline's minimum and
    maximum. Exact too when ``lo`` or ``hi`` lies beyond the profile's
    extremes. Otherwise from the KLL sketch, within its rank error
    (:attr:`~vigil.core.profiles.NumericProfile.rank_error`, about 1.3%). NaN
    for a profile with no finite value.

    >>> edges, _ = baseline_edges(np.array([1.0, 2.0, 3.0]))
    >>> p = prof.NumericProfile(edges=edges).update([1.0, 1.0, 2.0, 3.0, 3.5, 0.5, 3.0, 2.0, 2.0, 2.0])
    >>> outside_share(p, 1.0, 3.0)  # the values equal to the minimum or maximum are inside
    (0.1, 0.1)
    """
    n = profile.count
    if not n:
        return math.nan, math.nan
    edges, hist = profile.edges, profile.hist
    if lo <= profile.min:
        below = 0.0
    elif lo > profile.max:
        below = 1.0
    elif (j := _edge_index(edges, lo)) is not None:
        below = float(hist[: j + 1].sum()) / n
    else:
        below = float(profile.cdf([lo], inclusive=False)[0])
    if hi >= profile.max:
        above = 0.0
    elif hi < profile.min:
        above = 1.0
    elif (j := _edge_index(edges, float(np.nextafter(hi, math.inf)))) is not None:
        above = float(hist[j + 1:].sum()) / n
    else:
        above = 1.0 - float(profile.cdf([hi])[0])
    return below, above


def integrity_metrics(profile: prof.NumericProfile | prof.CategoricalProfile,
                      reference: prof.NumericProfile | prof.CategoricalProfile | None) -> dict[str, float]:
    """A column's integrity figures in one window against its baseline profile.

    - ``missing_rate``: missing values over all rows (non-finite numbers count
      as rows, not as missing);
    - numeric, when both have finite values: ``out_of_range_rate``, the share
      of finite values strictly below the baseline's minimum or strictly above
      its maximum (:func:`outside_share`: exact on :func:`baseline_edges`
      bins), and ``outlier_rate``, the share outside :func:`robust_range`
      (from the sketch);
    - categorical, when both have values: ``unseen_category_rate``, the share
      of non-missing values in categories the baseline never had.

    >>> edges, _ = baseline_edges(np.arange(10.0))
    >>> ref = prof.NumericProfile(edges=edges).update(np.arange(10.0))
    >>> cur = prof.NumericProfile(edges=edges).update([0.0, 0.0, 5.0, 9.0, 12.0, None, 1.0, 2.0, 3.0, 4.0])
    >>> integrity_metrics(cur, ref)
    {'missing_rate': 0.1, 'out_of_range_rate': 0.1111111111111111, 'outlier_rate': 0.0}
    >>> integrity_metrics(prof.CategoricalProfile().update(["a", "z", None, "a"]),
    ...                   prof.CategoricalProfile().update(["a", "b"]))
    {'missing_rate': 0.25, 'unseen_category_rate': 0.3333333333333333}
    """
    if not isinstance(profile, prof.NumericProfile | prof.CategoricalProfile):
        raise InvalidParameterError(f"integrity needs a numeric or categorical profile, got {type(profile).__name__}",
                                    field="profile")
    total = profile.count + profile.missing + getattr(profile, "nonfinite", 0)
    out = {"missing_rate": profile.missing / total if total else math.nan}
    if reference is None or not profile.count or not reference.count:
        return out
    if type(reference) is not type(profile):
        raise InvalidParameterError(f"a {type(profile).__name__} is checked against one of the same type, got "
                                    f"{type(reference).__name__}", field="reference")
    if isinstance(profile, prof.NumericProfile):
        out["out_of_range_rate"] = sum(outside_share(profile, reference.min, reference.max))
        out["outlier_rate"] = sum(outside_share(profile, *robust_range(reference)))
    else:
        known = reference.frequencies()
        unseen = sum(v for k, v in profile.frequencies().items() if k not in known)
        out["unseen_category_rate"] = unseen / profile.count
    return out


def training_integrity(reference: prof.NumericProfile | prof.CategoricalProfile | None) -> dict[str, float]:
    """The integrity figures of the baseline itself: what each window's figure is read beside.

    :func:`integrity_metrics` of the baseline against itself: its own
    ``missing_rate``; ``out_of_range_rate`` 0 (nothing lies outside its own
    range) and ``outlier_rate`` its share outside its own :func:`robust_range`
    (from the sketch, as a window's is) for a numeric column;
    ``unseen_category_rate`` 0 for a categorical one. The same keys as a
    window's figures when both have values; empty without a baseline profile.

    >>> edges, _ = baseline_edges(np.arange(20.0))
    >>> ref = prof.NumericProfile(edges=edges).update([*range(19), 500.0, None])
    >>> {k: round(v, 4) for k, v in training_integrity(ref).items()}  # 1 missing of 21; 500 of 20 outlying
    {'missing_rate': 0.0476, 'out_of_range_rate': 0.0, 'outlier_rate': 0.05}
    >>> training_integrity(prof.CategoricalProfile().update(["a", "b", None, "a"]))
    {'missing_rate': 0.25, 'unseen_category_rate': 0.0}
    >>> training_integrity(None)
    {}
    """
    return {} if reference is None else integrity_metrics(reference, reference)
