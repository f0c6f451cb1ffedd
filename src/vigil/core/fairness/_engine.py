"""The counting engine: rows to per-cell sufficient statistics in one pass, cells to groups on tiny arrays.

A *cell* is one combination of all the sensitive attributes' values. The rows
are counted once per cell (one ``np.bincount`` over the integer key
``cell x y_true x y_pred`` for a classifier, a few weighted ones for a
regressor or for scores); every group of every attribute, alone or crossed,
is then a sum of cells, computed on arrays with as many rows as there are
cells. Nothing per row is done per group.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.core.fairness._inputs import SEP, Attribute, binary, column, fail

#: Crosses with more cells than this (and than half the rows) are compressed to the cells present.
DENSE_CELLS = 1 << 16


@dataclass
class Layout:
    """Rows mapped to cells, and the groupings ("slices") reported: each a tuple of attribute positions."""

    attributes: list[Attribute]
    sizes: list[int]
    row_cell: np.ndarray | None  # per row, its cell (small unsigned dtype when dense)
    cell_codes: np.ndarray  # (attributes, cells): each cell's code in every attribute
    slices: list[tuple[int, ...]]

    @property
    def n_cells(self) -> int:
        return self.cell_codes.shape[1]


def _dtype_for(n_values: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if n_values <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    return np.dtype(np.int64)


def _as(codes: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Non-negative integer codes in ``dtype``: a view when only the signedness differs (int8 codes as uint8)."""
    if codes.dtype.kind in "iu" and codes.dtype.itemsize == dtype.itemsize:
        return codes.view(dtype)
    return codes.astype(dtype, copy=False)


def slices_of(n_attributes: int, intersections: bool) -> list[tuple[int, ...]]:
    """Each attribute alone, then (with 3 or more) every pair, then the full cross.

    >>> slices_of(3, True)
    [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    """
    out: list[tuple[int, ...]] = [(i,) for i in range(n_attributes)]
    if intersections and n_attributes >= 2:
        if n_attributes >= 3:
            out += [(i, j) for i in range(n_attributes) for j in range(i + 1, n_attributes)]
        out.append(tuple(range(n_attributes)))
    return out


def layout(attributes: list[Attribute], n_rows: int, intersections: bool, spare: int = 4) -> Layout:
    """Cells of the rows. ``spare``: room left in the dtype of ``row_cell`` for ``cell * spare + outcome``."""
    sizes = [len(a.labels) for a in attributes]
    cells = math.prod(sizes)
    slices = slices_of(len(attributes), intersections)
    if cells <= max(DENSE_CELLS, n_rows // 2):
        dtype = _dtype_for(cells * spare)
        cell = attributes[0].codes.astype(dtype)  # a copy: the caller may build its key in place
        for attr, k in zip(attributes[1:], sizes[1:], strict=True):
            cell *= k
            cell += _as(attr.codes, dtype)
        cell_codes = np.array(np.unravel_index(np.arange(cells), sizes), dtype=np.int64).reshape(len(sizes), cells)
        return Layout(attributes, sizes, cell, cell_codes, slices)
    # a sparse cross: number the combinations present
    cell = attributes[0].codes.astype(np.int64)
    for attr, k in zip(attributes[1:], sizes[1:], strict=True):
        cell = cell * k + attr.codes
    _, first, inverse = np.unique(cell, return_index=True, return_inverse=True)
    cell_codes = np.array([a.codes[first] for a in attributes], dtype=np.int64)
    return Layout(attributes, sizes, inverse.astype(np.int64, copy=False), cell_codes, slices)


def group_confusion(group_codes: Any, y_true: Any, y_pred: Any, n_groups: int) -> np.ndarray:
    """Per-group confusion counts ``[[tn, fp], [fn, tp]]`` (shape ``n_groups x 2 x 2``) in one ``np.bincount``.

    ``group_codes`` are integers in ``[0, n_groups)`` (a categorical's codes,
    a SQL dictionary id...), ``y_true`` and ``y_pred`` 0/1 or booleans. This is
    the whole per-row cost of a classification report; the counts, as a tidy
    frame, go to :meth:`~vigil.core.fairness.FairnessReport.from_counts`.

    >>> group_confusion([0, 0, 1, 1], [0, 1, 1, 1], [0, 1, 0, 1], 2).tolist()
    [[[1, 0], [0, 1]], [[0, 0], [1, 1]]]
    """
    codes = column(group_codes, "group_codes")
    n = codes.shape[0]
    if isinstance(n_groups, bool) or not isinstance(n_groups, numbers.Integral) or n_groups < 1:
        raise fail("n_groups", "an integer >= 1", repr(n_groups))
    yt = binary(y_true, "y_true", 1, n, like="group_codes")
    yp = binary(y_pred, "y_pred", 1, n, like="group_codes")
    if codes.dtype.kind not in "iub":
        raise fail("group_codes", "integer codes", f"values of dtype {codes.dtype}")
    if n and (codes.min() < 0 or codes.max() >= n_groups):
        raise fail("group_codes", f"integers in [0, {n_groups})", f"values from {codes.min()} to {codes.max()}")
    key = codes.astype(np.int64) * 4
    key += yt.astype(np.int64) * 2
    key += yp
    return np.bincount(key, minlength=4 * n_groups).reshape(n_groups, 2, 2)


def confusion_cells(lay: Layout, yt: np.ndarray, yp: np.ndarray, *, in_place: bool) -> np.ndarray:
    """Per-cell ``[tn, fp, fn, tp]`` counts (cells x 4): one bincount over ``cell * 4 + 2 * y_true + y_pred``.

    ``in_place`` builds the key in ``lay.row_cell`` itself (which is then gone).
    """
    dtype = lay.row_cell.dtype
    key = lay.row_cell if in_place else lay.row_cell.copy()
    if in_place:
        lay.row_cell = None
    key *= 4
    t = yt.astype(dtype)
    t *= 2
    key += t
    key += yp.astype(dtype, copy=False)
    return np.bincount(key, minlength=4 * lay.n_cells).reshape(lay.n_cells, 4)


def weighted_cells(lay: Layout, weights: list[np.ndarray]) -> np.ndarray:
    """Per-cell sums of each weight array (cells x len(weights)), float64."""
    cells = lay.n_cells
    return np.stack([np.bincount(lay.row_cell, weights=w, minlength=cells) for w in weights], axis=1)


@dataclass
class Groups:
    """The groups of every slice, concatenated: labels, their slice, per-group statistics, cell -> group maps."""

    names: list[str]  # one per slice: "race", "race & sex"
    starts: np.ndarray  # first group of each slice (len(slices) + 1 entries, the last = number of groups)
    labels: list[str]
    ints: np.ndarray | None  # (groups, m) integer statistics
    floats: np.ndarray | None  # (groups, m') float statistics
    cell_group: list[np.ndarray]  # per slice: group index (within the slice) of each cell, -1 for an empty cell
    keys: list[list[tuple[str, ...]]]  # per slice, each group's value labels


def aggregate(lay: Layout, ints: np.ndarray | None, floats: np.ndarray | None, count: np.ndarray) -> Groups:
    """Sum cells into the groups of every slice; groups without rows are dropped.

    ``count`` is each cell's row count (the column that decides emptiness).
    """
    names, starts, labels, int_parts, float_parts, maps, keys = [], [0], [], [], [], [], []
    n_attributes = len(lay.sizes)
    for subset in lay.slices:
        sizes = [lay.sizes[i] for i in subset]
        codes = lay.cell_codes[list(subset)]
        identity = len(subset) == n_attributes  # the full cross: its groups are the cells
        if identity:
            uniq_codes, inverse = codes, np.arange(lay.n_cells)
        else:
            try:
                uniq, inverse = np.unique(np.ravel_multi_index(codes, sizes), return_inverse=True)
                uniq_codes = np.array(np.unravel_index(uniq, sizes), dtype=np.int64).reshape(len(sizes), -1)
            except ValueError:  # too many combinations to number densely
                uniq_codes, inverse = np.unique(codes.T, axis=0, return_inverse=True)
                uniq_codes = uniq_codes.T
            inverse = inverse.reshape(-1)
        g = uniq_codes.shape[1]

        def summed(values: np.ndarray, g: int = g, inverse: np.ndarray = inverse, identity: bool = identity):
            if identity:
                return values
            out = np.zeros((g, *values.shape[1:]), dtype=values.dtype)
            np.add.at(out, inverse, values)
            return out

        keep = summed(count) > 0
        remap = np.full(g, -1, dtype=np.int64)
        remap[keep] = np.arange(int(keep.sum()))
        maps.append(remap[inverse])
        if ints is not None:
            int_parts.append(summed(ints)[keep])
        if floats is not None:
            float_parts.append(summed(floats)[keep])
        value_labels = [[lay.attributes[a].labels[c] for c in uniq_codes[j][keep]] for j, a in enumerate(subset)]
        slice_keys = list(zip(*value_labels, strict=True))
        keys.append(slice_keys)
        labels.extend(SEP.join(k) for k in slice_keys)
        names.append(SEP.join(lay.attributes[a].name for a in subset))
        starts.append(starts[-1] + len(slice_keys))
    return Groups(
        names=names,
        starts=np.asarray(starts, dtype=np.int64),
        labels=labels,
        ints=np.concatenate(int_parts) if int_parts else None,
        floats=np.concatenate(float_parts) if float_parts else None,
        cell_group=maps,
        keys=keys,
    )


def group_auc(row_group: np.ndarray, n_groups: int, y: np.ndarray, score: np.ndarray,
              order: np.ndarray) -> np.ndarray:
    """Per-group ROC AUC (Mann-Whitney U, tied scores counted half), NaN for a group without both classes.

    ``order`` sorts the rows by score (``np.argsort(score, kind="stable")``,
    shared by every slice); ranks are taken within each group, so each value
    equals scikit-learn's ``roc_auc_score`` on that group's rows.

    >>> s = np.array([0.1, 0.4, 0.35, 0.8, 0.5, 0.5])
    >>> group_auc(np.array([0, 0, 0, 0, 1, 1]), 2, np.array([0, 0, 1, 1, 0, 1]), s, np.argsort(s, kind="stable"))
    array([0.75, 0.5 ])
    """
    n = row_group.shape[0]
    if n == 0:
        return np.full(n_groups, np.nan)
    by_score = row_group[order]
    if n_groups < np.iinfo(np.int16).max:
        by_score = by_score.astype(np.int16)  # a radix sort
    within = np.argsort(by_score, kind="stable")
    rows = order[within]
    g = by_score[within].astype(np.int64)
    s = score[rows]
    yy = y[rows].astype(np.float64)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(g[1:], g[:-1], out=new[1:])
    new[1:] |= s[1:] != s[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    counts = np.bincount(g, minlength=n_groups)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    block_group = g[starts]
    rank = (starts + ends + 1) / 2.0 - first[block_group]  # the average within-group rank of a block of ties
    rank_sum = np.bincount(block_group, weights=rank * np.add.reduceat(yy, starts), minlength=n_groups)
    pos = np.bincount(g, weights=yy, minlength=n_groups)
    neg = counts - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((pos > 0) & (neg > 0), (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg), np.nan)
