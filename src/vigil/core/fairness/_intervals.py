"""Confidence intervals, vectorised over groups: Wilson, Newcombe, normal (Welch) and Hanley-McNeil.

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

from vigil.core.metrics.drift import MetricInputError

__all__ = ["newcombe_interval", "wilson_interval"]


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
    for (x, n), name in (((a[0], a[1]), "x1, n1"), ((a[2], a[3]), "x2, n2")):
        if np.any(n < 0) or np.any(x < 0) or np.any(x > n):
            raise MetricInputError(f"{name}: expected 0 <= successes <= trials, got {x.tolist()!r} of {n.tolist()!r}")
    l1, u1 = _wilson(a[0], a[1], z)
    l2, u2 = _wilson(a[2], a[3], z)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _newcombe(a[0] / a[1], l1, u1, a[2] / a[3], l2, u2)


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
