"""Confidence intervals, vectorised over groups: Wilson, Newcombe, normal (Welch) and Hanley-McNeil, and the
p-values of the tests they invert.

Every function takes arrays (or scalars) and returns arrays of the same shape;
an undefined interval (no trials) is NaN. Nothing here loops in Python or calls
SciPy per element: a report with thousands of groups costs a few array
operations.
"""

from __future__ import annotations

import math
import numbers
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import special

from vigil.core.metrics.drift import MetricInputError

__all__ = ["newcombe_interval", "proportions_p_value", "wilson_interval"]

#: The largest z searched when inverting Newcombe's interval: its two-sided p-value (~4e-350) is 0 in floats.
_Z_MAX = 40.0


def z_value(confidence: Any) -> float:
    """The two-sided normal quantile of ``confidence`` (1.959964 for 0.95).

    >>> round(z_value(0.95), 6)
    1.959964
    """
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise MetricInputError(f"confidence: expected a number strictly between 0 and 1, got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + float(confidence) / 2)


def _wilson(x: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score bounds of x successes in n trials (float arrays), NaN where n == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        z2n = z * z / n
        denom = 1.0 + z2n
        centre = (p + z2n / 2.0) / denom
        half = (z / denom) * np.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def wilson_interval(successes: Any, trials: Any, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion ``successes / trials`` (no continuity correction).

    Unlike the normal (Wald) interval it stays inside [0, 1] and keeps its
    coverage for small groups and rates near 0 or 1. Vectorised: arrays in,
    ``(low, high)`` arrays out; NaN where ``trials`` is 0. Newcombe's (1998)
    example, 81 of 263:

    >>> low, high = wilson_interval(81, 263)
    >>> round(float(low), 4), round(float(high), 4)
    (0.2553, 0.3662)
    """
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(n < 0) or np.any(x < 0) or np.any(x > n):
        raise MetricInputError("successes, trials: expected 0 <= successes <= trials, got "
                               f"{np.asarray(successes).tolist()!r} of {np.asarray(trials).tolist()!r}")
    return _wilson(x, n, z_value(confidence))


def _newcombe(p1: np.ndarray, l1: np.ndarray, u1: np.ndarray, p2: np.ndarray, l2: np.ndarray,
              u2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score bounds of p1 - p2 from the two Wilson intervals."""
    d = p1 - p2
    return d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def newcombe_interval(x1: Any, n1: Any, x2: Any, n2: Any, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Interval of the difference of two independent proportions ``x1/n1 - x2/n2``.

    Newcombe's hybrid score interval (method 10 of Newcombe 1998): it combines
    the two Wilson intervals, so it inherits their good coverage for small
    groups and extreme rates, and it costs no iteration. Vectorised like
    :func:`wilson_interval`. Newcombe's example, 56/70 against 48/80:

    >>> low, high = newcombe_interval(56, 70, 48, 80)
    >>> round(float(low), 4), round(float(high), 4)
    (0.0524, 0.3339)
    """
    z = z_value(confidence)
    a = [np.asarray(v, dtype=np.float64) for v in (x1, n1, x2, n2)]
    _check_counts(a)
    l1, u1 = _wilson(a[0], a[1], z)
    l2, u2 = _wilson(a[2], a[3], z)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _newcombe(a[0] / a[1], l1, u1, a[2] / a[3], l2, u2)


def _check_counts(a: list[np.ndarray]) -> None:
    for (x, n), name in (((a[0], a[1]), "x1, n1"), ((a[2], a[3]), "x2, n2")):
        if np.any(n < 0) or np.any(x < 0) or np.any(x > n):
            raise MetricInputError(f"{name}: expected 0 <= successes <= trials, got {x.tolist()!r} of {n.tolist()!r}")


def _newcombe_gap(z: np.ndarray, p: np.ndarray, n: np.ndarray, var: np.ndarray, sign: np.ndarray,
                  d: np.ndarray) -> np.ndarray:
    """Newcombe's lower bound of ``pa - pb`` (``d`` > 0) at the normal quantile ``z`` (one per comparison).

    Rows 0 and 1 of ``p``, ``n``, ``var`` (``p (1 - p) / n``) and ``sign`` (-1, +1) are the two groups: the
    distance from ``pa`` down to its Wilson lower bound, and from ``pb`` up to its upper bound, are
    ``half -/+ t (1/2 - p) / (1 + t)`` with ``t = z^2 / n``, computed for both groups at once.
    """
    z2 = z * z
    t = z2 / n
    den = 1.0 + t
    reach = (z * np.sqrt(var + t / (4.0 * n)) + sign * t * (0.5 - p)) / den
    return d - np.sqrt(reach[0] ** 2 + reach[1] ** 2)


def newcombe_p(x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Two-sided p-values of ``x1/n1 == x2/n2`` that invert Newcombe's interval (float arrays, NaN without trials).

    The p-value is ``1 - c`` for the confidence ``c`` at which the interval's bound nearer 0 reaches 0. That
    bound falls monotonically and smoothly with z (each Wilson interval widens with z), so its root is found
    by the Illinois variant of regula falsi on [0, 40], vectorised, to 1e-12 in z.
    """
    x1, n1, x2, n2 = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x1, n1, x2, n2)))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.asarray(x1 / n1 - x2 / n2)
    out = np.where(np.isfinite(d), 1.0, np.nan)
    solve = np.flatnonzero(np.isfinite(d) & (d != 0))
    if solve.size == 0:
        return out
    swap = d.flat[solve] < 0  # make the difference positive: the lower bound is the one that reaches 0
    xa = np.where(swap, x2.flat[solve], x1.flat[solve])
    na = np.where(swap, n2.flat[solve], n1.flat[solve])
    xb = np.where(swap, x1.flat[solve], x2.flat[solve])
    nb = np.where(swap, n1.flat[solve], n2.flat[solve])
    gap = np.abs(d.flat[solve])
    n = np.stack([na, nb])
    p = np.stack([xa / na, xb / nb])
    var = p * (1.0 - p) / n
    sign = np.array([[-1.0], [1.0]])
    a, fa = np.zeros_like(gap), gap.copy()
    b = np.full_like(gap, _Z_MAX)
    fb = _newcombe_gap(b, p, n, var, sign, gap)
    beyond = fb >= 0  # still excludes 0 at z = 40: p below any float
    fb = np.where(beyond, -1.0, fb)
    for _ in range(100):
        c = b - fb * (b - a) / (fb - fa)
        fc = _newcombe_gap(c, p, n, var, sign, gap)
        crossed = (fc > 0) != (fb > 0)
        a, fa = np.where(crossed, b, a), np.where(crossed, fb, fa / 2.0)
        b, fb = c, fc
        if np.all((np.abs(b - a) <= 1e-12) | (fc == 0)):
            break
    z = np.where(beyond, _Z_MAX, b)
    out.flat[solve] = special.erfc(z / math.sqrt(2.0))
    return out


#: Below this smallest expected count of a 2x2 table, a difference of proportions is tested exactly (Cochran's rule).
EXACT_BELOW = 5.0
#: Cells of the hypergeometric grid evaluated at once by :func:`fisher_p`.
_FISHER_CHUNK = 1 << 21


def fisher_p(x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Two-sided p-values of Fisher's exact test of the 2x2 tables ``[[x1, n1 - x1], [x2, n2 - x2]]`` (integral
    float arrays, n1 and n2 > 0), as ``scipy.stats.fisher_exact``: the probability, given the margins, of the
    tables no more likely than the one observed. One hypergeometric grid over each table's support."""
    from scipy import stats

    k_total, n_total = x1 + x2, n1 + n2
    low = np.maximum(0.0, k_total - n2)
    size = (np.minimum(k_total, n1) - low + 1).astype(np.int64)
    out = np.empty(x1.shape)
    order = np.argsort(size, kind="stable")
    start = 0
    while start < order.size:  # tables by support size, as many at a time as fit in a grid of _FISHER_CHUNK cells
        stop = start + 1
        while stop < order.size and int(size[order[stop]]) * (stop + 1 - start) <= _FISHER_CHUNK:
            stop += 1
        part = order[start:stop]
        width = int(size[order[stop - 1]])
        k = low[part, None] + np.arange(width)[None, :]
        inside = np.arange(width)[None, :] < size[part, None]
        k = np.where(inside, k, low[part, None])
        args = (n_total[part, None], k_total[part, None], n1[part, None])
        log_pmf = stats.hypergeom.logpmf(k, *args)
        observed = stats.hypergeom.logpmf(x1[part], *(a[:, 0] for a in args))
        as_likely = inside & (log_pmf <= observed[:, None] + 1e-7)  # scipy's relative tolerance for ties
        out[part] = np.minimum(np.where(as_likely, np.exp(log_pmf), 0.0).sum(axis=1), 1.0)
        start = stop
    return out


def proportions_p(x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray,
                  exact_below: float = EXACT_BELOW) -> np.ndarray:
    """Two-sided p-values of ``x1/n1 == x2/n2``: Newcombe's interval inverted, or Fisher's exact test where the
    table's smallest expected count is below ``exact_below`` and the counts are whole numbers."""
    x1, n1, x2, n2 = (np.array(v, dtype=np.float64) for v in np.broadcast_arrays(x1, n1, x2, n2))
    out = newcombe_p(x1, n1, x2, n2)
    if exact_below > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            k_total, n_total = x1 + x2, n1 + n2
            expected = np.minimum(n1, n2) * np.minimum(k_total, n_total - k_total) / n_total
        whole = np.all([v == np.rint(v) for v in (x1, n1, x2, n2)], axis=0)
        exact = np.flatnonzero((n1 > 0) & (n2 > 0) & whole & (expected < exact_below))
        if exact.size:
            out.flat[exact] = fisher_p(*(v.flat[exact] for v in (x1, n1, x2, n2)))
    return out


def proportions_p_value(x1: Any, n1: Any, x2: Any, n2: Any, *, exact_below: float = EXACT_BELOW) -> np.ndarray:
    """Two-sided p-value of equal proportions ``x1/n1 == x2/n2``, as a fairness report tests a difference of rates.

    The test Newcombe's interval inverts: the p-value is ``1 - c`` for the
    confidence ``c`` at which :func:`newcombe_interval` just reaches 0, so
    ``p < 1 - confidence`` exactly when the interval at ``confidence``
    excludes 0. Where the 2x2 table's smallest expected count is below
    ``exact_below`` (5, Cochran's rule; 0 never) and the counts are whole,
    Fisher's exact test instead (as ``scipy.stats.fisher_exact``), whose
    level holds at any size. Vectorised; NaN where a group has no trials, 1
    for equal proportions. Newcombe's example, 56/70 against 48/80 (its 95%
    interval excludes 0), and Fisher's tea tasting, 3/4 against 1/4:

    >>> p = proportions_p_value(56, 70, 48, 80)
    >>> round(float(p), 4)
    0.0081
    >>> low, high = newcombe_interval(56, 70, 48, 80, confidence=1 - float(p))
    >>> abs(float(low)) < 1e-9
    True
    >>> round(float(proportions_p_value(3, 4, 1, 4)), 4)
    0.4857
    """
    a = [np.asarray(v, dtype=np.float64) for v in (x1, n1, x2, n2)]
    _check_counts(a)
    if isinstance(exact_below, bool) or not isinstance(exact_below, numbers.Real) or not exact_below >= 0:
        raise MetricInputError(f"exact_below: expected a number >= 0, got {exact_below!r}")
    return proportions_p(*a, exact_below=float(exact_below))


def normal_p(diff: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Two-sided p-values of ``diff == 0`` for a normal estimate with standard error ``se`` (NaN where undefined).

    >>> normal_p(np.array([1.959964, 0.0, np.nan]), np.array([1.0, 0.0, 1.0])).round(4).tolist()
    [0.05, 1.0, nan]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        p = special.erfc(np.abs(diff) / (se * math.sqrt(2.0)))
    return np.where(np.isfinite(diff) & np.isfinite(se), np.where(diff == 0, 1.0, p), np.nan)


def mean_interval(total: np.ndarray, total_sq: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, ...]:
    """Mean, its standard error and normal bounds from sums (sample variance, n - 1); NaN below 2 rows.

    >>> mean, se, low, high = mean_interval(np.array([6.0]), np.array([14.0]), np.array([3.0]), 1.959964)
    >>> float(mean[0]), round(float(se[0]), 6)
    (2.0, 0.57735)
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        var = np.maximum(total_sq - total * mean, 0.0) / (n - 1.0)
        se = np.where(n > 1, np.sqrt(var / n), np.nan)
    return mean, se, mean - z * se, mean + z * se


def hanley_mcneil_se(auc: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    """Standard error of a ROC AUC after Hanley and McNeil (1982); NaN without both classes.

    >>> round(float(hanley_mcneil_se(np.array([0.8]), np.array([50.0]), np.array([50.0]))[0]), 4)
    0.0445
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        q1 = auc / (2.0 - auc)
        q2 = 2.0 * auc * auc / (1.0 + auc)
        var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
        return np.sqrt(np.maximum(var, 0.0))


def is_finite_number(value: Any) -> bool:
    """True for a real, finite number that is not a boolean."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
