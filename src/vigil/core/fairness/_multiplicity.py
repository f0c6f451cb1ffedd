"""Adjusting a family of p-values for multiple comparisons: Holm (family-wise error) and Benjamini-Hochberg (FDR)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vigil.core.fairness._inputs import fail

#: The adjustments :func:`adjust_p_values` (and ``fairness(multiple_testing=...)``) accept.
METHODS = ("holm", "bh", "none")


def adjust_p_values(p_values: Any, method: str = "holm", *, family_size: int | None = None) -> np.ndarray:
    """Adjusted p-values of a family of tests: reject where the adjusted value is below the level.

    ``"holm"``: Holm's step-down, which keeps the probability of any false
    rejection in the family (the family-wise error) at the level, whatever the
    dependence between the tests. ``"bh"``: Benjamini-Hochberg, which keeps
    the expected share of false rejections among the rejections (the false
    discovery rate) at the level, for independent or positively dependent
    tests. ``"none"``: the p-values unchanged. NaN entries (tests not made)
    stay NaN and are not counted.

    ``family_size``: the number of hypotheses in the family when the given
    p-values are only some of them (the others are untested, or not shown);
    at least the number of finite p-values. Holm's step-down over the given
    values with the multipliers of the whole family still controls the
    family-wise error over the whole family.

    >>> adjust_p_values([0.01, 0.04, 0.03, np.nan]).round(6).tolist()
    [0.03, 0.06, 0.06, nan]
    >>> adjust_p_values([0.01, 0.04, 0.03], "bh").round(6).tolist()
    [0.03, 0.04, 0.04]
    """
    if not isinstance(method, str) or method not in METHODS:
        raise fail("multiple_testing", "one of " + ", ".join(repr(m) for m in METHODS), repr(method))
    p = np.array(p_values, dtype=np.float64, ndmin=1)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    r = finite.size
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise fail("p_values", "numbers in [0, 1]", f"values from {p[finite].min()} to {p[finite].max()}")
    m = r if family_size is None else family_size
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < r:
        raise fail("family_size", f"an integer >= the number of p-values ({r})", repr(family_size))
    if r == 0:
        return out
    if method == "none":
        out[finite] = p[finite]
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    ranked = p[order]
    rank = np.arange(1, r + 1)
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum((m - rank + 1) * ranked, 1.0))
    else:
        adjusted = np.minimum.accumulate(np.minimum(m * ranked / rank, 1.0)[::-1])[::-1]
    out[order] = adjusted
    return out
