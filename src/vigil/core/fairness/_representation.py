"""Representation: each group's share of a reference (training) set against its share of a current set."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from vigil.core.fairness import _engine as engine
from vigil.core.fairness._inputs import binary, fail, sensitive
from vigil.core.fairness._intervals import _newcombe, _wilson, z_value
from vigil.core.fairness._report import _float_option


def _side(groups: Any, labels: Any, name: str, pos_label: Any, intersections: bool) -> dict:
    """{(attribute, group): (rows, positives)} of one side, and the attribute names in order."""
    attrs = sensitive(groups, None, name)
    n = attrs[0].codes.shape[0]
    for attr in attrs[1:]:
        if attr.codes.shape[0] != n:
            raise fail(f"{name}[{attr.name!r}]", f"{n:,} rows (as {name}[{attrs[0].name!r}])",
                       f"{attr.codes.shape[0]:,}")
    lay = engine.layout(attrs, n, intersections, spare=1)
    cell = lay.row_cell.astype(np.int64)
    stats_ = [np.bincount(cell, minlength=lay.n_cells)]
    if labels is not None:
        y = binary(labels, name.replace("groups", "labels"), pos_label, n, like=name)
        stats_.append(np.bincount(cell, weights=y, minlength=lay.n_cells).astype(np.int64))
    cells = np.column_stack(stats_)
    groups_ = engine.aggregate(lay, cells, None, cells[:, 0])
    out: dict[tuple[str, str], np.ndarray] = {}
    for k, attribute in enumerate(groups_.names):
        for i in range(int(groups_.starts[k]), int(groups_.starts[k + 1])):
            out[(attribute, groups_.labels[i])] = groups_.ints[i]
    return {"names": groups_.names, "counts": out, "rows": n}


def representation(
    reference_groups: Any,
    current_groups: Any,
    *,
    min_share_ratio: float = 0.8,
    max_share_ratio: float = 1.25,
    reference_labels: Any = None,
    current_labels: Any = None,
    pos_label: Any = 1,
    confidence: float = 0.95,
    intersections: bool = True,
) -> pd.DataFrame:
    """Each group's share of the reference (training) data against its share of the current data.

    One row per group (of each attribute, and of their cross when several are
    given as a DataFrame or dict): counts, shares, ``share_ratio`` (current /
    reference), the interval of the share difference (Newcombe), its two-sample
    ``p_value``, the attribute's chi-square goodness-of-fit p-value of the
    current counts against the reference shares (``chi2_p_value``, SciPy's
    ``chisquare``), and with labels each side's base rate. ``flag`` is
    ``"under_represented"`` (ratio below ``min_share_ratio``),
    ``"over_represented"`` (above ``max_share_ratio``) or ``"ok"``, a ratio out of
    bounds counting only when the interval of the difference excludes 0.
    Missing values are a group of their own; a group seen on one side only has
    a count of 0 on the other. Run per window, it tracks a group's share over
    time.

    >>> ref = ["F"] * 500 + ["M"] * 500
    >>> cur = ["F"] * 200 + ["M"] * 800
    >>> representation(ref, cur)[["group", "reference_share", "current_share", "share_ratio", "flag"]]
      group  reference_share  current_share  share_ratio               flag
    0     F              0.5            0.2          0.4  under_represented
    1     M              0.5            0.8          1.6   over_represented
    """
    lo = _float_option(min_share_ratio, "min_share_ratio", 0.0, 1.0)
    hi = _float_option(max_share_ratio, "max_share_ratio", 1.0, np.inf)
    z = z_value(confidence)
    ref = _side(reference_groups, reference_labels, "reference_groups", pos_label, bool(intersections))
    cur = _side(current_groups, current_labels, "current_groups", pos_label, bool(intersections))
    if ref["names"] != cur["names"]:
        raise fail("current_groups", f"the attributes of reference_groups ({ref['names']})", repr(cur["names"]))
    if ref["rows"] == 0 or cur["rows"] == 0:
        side = "reference_groups" if ref["rows"] == 0 else "current_groups"
        raise fail(side, "at least one row", "0")
    keys = list(ref["counts"]) + [k for k in cur["counts"] if k not in ref["counts"]]
    keys.sort(key=lambda k: ref["names"].index(k[0]))  # stable: reference order, then new groups, per attribute
    width = 2 if reference_labels is not None or current_labels is not None else 1
    zero = np.zeros(width, dtype=np.int64)

    def table(side: dict) -> np.ndarray:
        rows = [side["counts"].get(k, zero) for k in keys]
        return np.array([np.pad(r, (0, width - r.shape[0])) for r in rows], dtype=np.float64).reshape(len(keys), -1)

    r_tab, c_tab = table(ref), table(cur)
    attribute = np.array([k[0] for k in keys], dtype=object)
    r_n, c_n = r_tab[:, 0], c_tab[:, 0]
    r_total, c_total = float(ref["rows"]), float(cur["rows"])
    r_share, c_share = r_n / r_total, c_n / c_total
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = c_share / r_share
        pooled = (r_n + c_n) / (r_total + c_total)
        zstat = (c_share - r_share) / np.sqrt(pooled * (1 - pooled) * (1 / r_total + 1 / c_total))
    p_value = np.where(np.isfinite(zstat), 2 * special.ndtr(-np.abs(zstat)), np.where(c_share == r_share, 1.0, 0.0))
    rl, rh = _wilson(r_n, np.full_like(r_n, r_total), z)
    cl, ch = _wilson(c_n, np.full_like(c_n, c_total), z)
    diff_low, diff_high = _newcombe(c_share, cl, ch, r_share, rl, rh)
    significant = (diff_low > 0) | (diff_high < 0)
    flag = np.where(significant & (ratio < lo), "under_represented",
                    np.where(significant & (ratio > hi), "over_represented", "ok")).astype(object)
    chi2_p = np.empty(len(keys))
    for name in ref["names"]:
        rows = attribute == name
        chi2_p[rows] = _goodness_of_fit(c_n[rows], r_share[rows])
    data: dict[str, Any] = {
        "attribute": attribute, "group": np.array([k[1] for k in keys], dtype=object),
        "reference_count": r_n.astype(np.int64), "reference_share": r_share,
        "current_count": c_n.astype(np.int64), "current_share": c_share, "share_ratio": ratio,
        "difference_low": diff_low, "difference_high": diff_high, "p_value": p_value, "chi2_p_value": chi2_p,
    }
    if width == 2:
        with np.errstate(divide="ignore", invalid="ignore"):
            data["reference_base_rate"] = r_tab[:, 1] / r_n if reference_labels is not None else np.nan
            data["current_base_rate"] = c_tab[:, 1] / c_n if current_labels is not None else np.nan
    data["flag"] = flag
    return pd.DataFrame(data)


def _goodness_of_fit(observed: np.ndarray, expected_share: np.ndarray) -> float:
    """p-value of the chi-square goodness-of-fit test of counts against shares (0 when a new group appears)."""
    expected = expected_share * observed.sum()
    seen = expected > 0
    if np.any(observed[~seen] > 0):
        return 0.0
    if seen.sum() < 2:
        return 1.0
    statistic = float(np.sum((observed[seen] - expected[seen]) ** 2 / expected[seen]))
    return float(special.chdtrc(int(seen.sum()) - 1, statistic))  # the chi-square survival function
