"""Exact path-dependent SHAP interaction values of tree ensembles, and every class of a classifier in one pass.

Interaction values (``tree_shap_interactions``) follow shap's ``TreeExplainer.shap_interaction_values``:
for features i != j, ``I[i, j]`` is half the Shapley interaction index of the path-dependent game, and
the diagonal ``I[i, i]`` is what is left of feature i's SHAP value, so each row of the matrix sums to it
(and the whole matrix plus the expected value to the model output). Each leaf's game is a product over
the distinct features on its path (see ``_treeshap_kernels``); fixing feature j present or absent leaves
the same kind of game over the others, scaled by (1 if x passes j's splits else 0) or by j's cover share
r_j, so ``I[i, j] = (a_j - r_j) / 2 * phi_i(leaf game without j)``. Per leaf that depends on x only
through which path features x passes, so small leaves get a table of every pass mask, built once.

``tree_shap_classes`` explains all classes of a classifier with one walk over the trees: a forest's
leaves carry every class's value, a booster's trees each belong to one class, and the tables of both
games are linear in the leaf value, so one table per leaf serves every class.

>>> import numpy as np
>>> from sklearn.tree import DecisionTreeRegressor
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
>>> tree = DecisionTreeRegressor(max_depth=2).fit(X, [0.0, 1.0, 2.0, 5.0])
>>> e = tree_shap_interactions(tree, X, feature_names=["a", "b"])
>>> e.interactions.shape, bool(np.allclose(e.interactions.sum(axis=2), e.values))
((4, 2, 2), True)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.explain import treeshap as _ts
from vigil.core.explain.adapters import ExplainError
from vigil.core.explain.explanation import Explanation

try:
    from numba import njit

    from vigil.core.explain import _treeshap_kernels as _kernels
    from vigil.core.explain._treeshap_kernels import _goes_left
except ImportError:  # numba missing
    _kernels = None

INTERACTION_TABLE_MAX_SLOTS = 10  # leaves with more distinct path features are solved row by row
INTERACTION_TABLE_MB = 64.0  # tables are built for a few trees at a time within this much memory


if _kernels is not None:

    @njit(cache=True, nogil=True)
    def _leaf_phi(r, d, mask, skip, v, weights, out, g, h):
        """Shapley values out[i] of one leaf's product game over its d slots, slot ``skip`` left out (-1: none).

        A slot in ``mask`` lets x through (factor 1 when present, r when absent); one outside it blocks
        x (factor 0 when present, r when absent). G(t) = prod over passing players of (t + r) gives every
        E(A) = sum over S within A of W[|S|] prod over A - S of r; dropping slot i divides G by (t + r_i).
        """
        players = d - 1 if skip >= 0 else d
        a = 0
        g[0] = 1.0
        outside = 1.0
        for j in range(d):
            if j == skip:
                continue
            if (mask >> j) & 1:
                rj = r[j]
                g[a + 1] = g[a]
                for k in range(a, 0, -1):
                    g[k] = g[k - 1] + rj * g[k]
                g[0] = rj * g[0]
                a += 1
            else:
                outside *= r[j]
        e_all = 0.0
        for k in range(a + 1):
            e_all += weights[players, k] * g[k]
        for i in range(d):
            if i == skip:
                continue
            if (mask >> i) & 1:
                ri = r[i]
                h[a - 1] = g[a]
                for k in range(a - 1, 0, -1):
                    h[k - 1] = g[k] - ri * h[k]
                e_minus = 0.0
                for k in range(a):
                    e_minus += weights[players, k] * h[k]
                out[i] = (1.0 - ri) * v * outside * e_minus
            else:
                out[i] = -v * outside * e_all

    @njit(cache=True, nogil=True)
    def _leaf_interactions(r, d, mask, v, weights, out, p, q, g, h):
        """out[i * d + j]: the leaf's interaction values for pass mask ``mask`` (rows sum to its SHAP values)."""
        _leaf_phi(r, d, mask, -1, v, weights, p, g, h)
        for i in range(d):
            out[i * d + i] = p[i]
        for j in range(d):
            fixed = ((mask >> j) & 1) - r[j]
            _leaf_phi(r, d, mask, j, v, weights, q, g, h)
            for i in range(d):
                if i != j:
                    value = 0.5 * fixed * q[i]
                    out[i * d + j] = value
                    out[i * d + i] -= value

    @njit(cache=True, nogil=True)
    def _build_interaction_tables(lo, hi, leaf_slot_start, slot_r, leaf_value, leaf_table_start, weights, table,
                                  table_offset):
        """table[start + (mask * d + i) * d + j] for every pass mask of each leaf lo..hi-1 that has a table."""
        g = np.empty(66)
        h = np.empty(66)
        p = np.empty(66)
        q = np.empty(66)
        for leaf in range(lo, hi):
            start = leaf_table_start[leaf]
            if start < 0:
                continue
            s0 = leaf_slot_start[leaf]
            d = leaf_slot_start[leaf + 1] - s0
            r = slot_r[s0:s0 + d]
            for mask in range(1 << d):
                at = start - table_offset + mask * d * d
                _leaf_interactions(r, d, mask, leaf_value[leaf], weights, table[at:at + d * d], p, q, g, h)

    @njit(cache=True, nogil=True)
    def _interaction_rows(lo_row, hi_row, X, tree_lo, tree_hi, tree_node_start, tree_leaf_start, node_feat,
                          node_thr, node_kind, node_default_left, node_left, node_right, node_slot, leaf_node,
                          leaf_slot_start, slot_feat, slot_r, leaf_value, leaf_table_start, table, table_offset,
                          weights, out, pred):
        """Add trees tree_lo..tree_hi-1's interaction values to out[row] (n, F, F) and their sum to pred[row]."""
        widest = 1
        for t in range(tree_lo, tree_hi):
            widest = max(widest, tree_node_start[t + 1] - tree_node_start[t])
        masks = np.empty(widest, np.int64)
        scratch = np.empty(66 * 66)
        g = np.empty(66)
        h = np.empty(66)
        p = np.empty(66)
        q = np.empty(66)
        for row in range(lo_row, hi_row):
            for t in range(tree_lo, tree_hi):
                ns = tree_node_start[t]
                masks[0] = -1
                for node in range(ns, tree_node_start[t + 1]):
                    f = node_feat[node]
                    if f < 0:
                        continue
                    bit = np.int64(1) << node_slot[node]
                    m = masks[node - ns]
                    if _goes_left(X[row, f], node_thr[node], node_kind[node], node_default_left[node] != 0):
                        masks[node_left[node] - ns] = m
                        masks[node_right[node] - ns] = m & ~bit
                    else:
                        masks[node_left[node] - ns] = m & ~bit
                        masks[node_right[node] - ns] = m
                for leaf in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
                    s0 = leaf_slot_start[leaf]
                    d = leaf_slot_start[leaf + 1] - s0
                    full = (np.int64(1) << d) - 1
                    m = masks[leaf_node[leaf] - ns] & full
                    if m == full:
                        pred[row] += leaf_value[leaf]
                    if d == 0:
                        continue
                    start = leaf_table_start[leaf]
                    if start >= 0:
                        values = table[start - table_offset + m * d * d:]
                    else:
                        _leaf_interactions(slot_r[s0:s0 + d], d, m, leaf_value[leaf], weights, scratch, p, q, g, h)
                        values = scratch
                    for i in range(d):
                        fi = slot_feat[s0 + i]
                        for j in range(d):
                            out[row, fi, slot_feat[s0 + j]] += values[i * d + j]

    @njit(cache=True, nogil=True)
    def _class_rows(lo_row, hi_row, X, tree_node_start, tree_leaf_start, node_feat, node_thr, node_kind,
                    node_default_left, node_left, node_right, node_slot, leaf_node, leaf_slot_start, slot_feat, slot_r,
                    leaf_value, leaf_class, class_values, leaf_table_start, table, weights, phi, pred):
        """Like ``shap_rows``, for every class at once: phi[row, feature * k + class], pred[row, class].

        A leaf of class c >= 0 adds its table (built with its value) to class c only; a leaf of class -1
        (a forest's) has a table built with value 1, scaled by class_values[leaf, c] for each class c.
        """
        n_features = X.shape[1]
        n_classes = class_values.shape[1]
        n_trees = tree_node_start.shape[0] - 1
        widest = 1
        for t in range(n_trees):
            widest = max(widest, tree_node_start[t + 1] - tree_node_start[t])
        block = 64
        scratch = np.empty(66)
        g = np.empty(66)
        h = np.empty(66)
        for lo in range(lo_row, hi_row, block):
            nb = min(hi_row, lo + block) - lo
            xb = np.empty((n_features, nb))
            for r in range(nb):
                for f in range(n_features):
                    xb[f, r] = X[lo + r, f]
            acc = np.zeros((n_features * n_classes, nb))
            total = np.zeros((n_classes, nb))
            masks = np.empty((widest, nb), np.int64)
            leaf_mask = np.empty(nb, np.int64)
            for t in range(n_trees):
                ns = tree_node_start[t]
                for r in range(nb):
                    masks[0, r] = -1
                for node in range(ns, tree_node_start[t + 1]):
                    f = node_feat[node]
                    if f < 0:
                        continue
                    here = node - ns
                    left = node_left[node] - ns
                    right = node_right[node] - ns
                    bit = np.int64(1) << node_slot[node]
                    thr = node_thr[node]
                    kind = node_kind[node]
                    dl = np.int64(node_default_left[node] != 0)
                    for r in range(nb):
                        v = xb[f, r]
                        if kind >= 2:
                            gl = np.int64(_goes_left(v, thr, kind, dl != 0))
                        elif kind == 1:
                            gl = np.int64(v < thr) | (np.int64(v != v) & dl)
                        else:
                            gl = np.int64(v <= thr) | (np.int64(v != v) & dl)
                        m = masks[here, r]
                        masks[left, r] = m & ~(bit * (1 - gl))
                        masks[right, r] = m & ~(bit * gl)
                for leaf in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
                    s0 = leaf_slot_start[leaf]
                    d = leaf_slot_start[leaf + 1] - s0
                    full = (np.int64(1) << d) - 1
                    c = leaf_class[leaf]
                    at = leaf_node[leaf] - ns
                    for r in range(nb):
                        m = masks[at, r] & full
                        leaf_mask[r] = m
                        if m == full:
                            if c >= 0:
                                total[c, r] += leaf_value[leaf]
                            else:
                                for cc in range(n_classes):
                                    total[cc, r] += class_values[leaf, cc]
                    if d == 0:
                        continue
                    start = leaf_table_start[leaf]
                    for i in range(d):
                        f = slot_feat[s0 + i]
                        if start >= 0:
                            if c >= 0:
                                for r in range(nb):
                                    acc[f * n_classes + c, r] += table[start + leaf_mask[r] * d + i]
                            else:
                                for cc in range(n_classes):
                                    w = class_values[leaf, cc]
                                    if w != 0.0:
                                        for r in range(nb):
                                            acc[f * n_classes + cc, r] += w * table[start + leaf_mask[r] * d + i]
                    if start < 0:
                        for r in range(nb):
                            _leaf_phi(slot_r[s0:s0 + d], d, leaf_mask[r], -1, leaf_value[leaf], weights, scratch,
                                      g, h)
                            for i in range(d):
                                f = slot_feat[s0 + i]
                                if c >= 0:
                                    acc[f * n_classes + c, r] += scratch[i]
                                else:
                                    for cc in range(n_classes):
                                        acc[f * n_classes + cc, r] += class_values[leaf, cc] * scratch[i]
            for r in range(nb):
                for cc in range(n_classes):
                    pred[lo + r, cc] += total[cc, r]
                for f in range(acc.shape[0]):
                    phi[lo + r, f] += acc[f, r]


# -- shared set-up ---------------------------------------------------------------------------------------------

def _setup(model: Any, rows: Any, feature_names: Sequence[str] | None, what: str) -> tuple[Any, Any, list[str] | None]:
    """(final estimator, pipeline steps before it or None, input column names if known)."""
    if _kernels is None:
        raise ExplainError(f"{what} needs numba (pip install numba)")
    final, prefix = _ts._split_pipeline(model)
    if not _ts.tree_supports(final):
        raise ExplainError(f"{what} explains tree ensembles (XGBoost, LightGBM, scikit-learn trees); a "
                           f"{type(final).__name__} is not one: use a model-agnostic method")
    names = _ts._input_names(model, final, prefix, feature_names, rows)
    return final, prefix, names


def _rows(prefix: Any, names: list[str] | None, rows: Any, trees: _ts._Trees,
          what: str) -> tuple[pd.DataFrame, list[str], np.ndarray, list[str] | None]:
    """(frame of the rows, their column names, float64 rows as the trees see them, pipeline sources or None)."""
    if trees.categorical:
        raise ExplainError(f"{what} does not support categorical splits: one-hot encode the column in a Pipeline, "
                           "or use tree_shap (the library's own TreeSHAP)")
    if names is None and prefix is None:
        names = trees.names or [f"x{i}" for i in range(trees.n_features)]
    frame = _ts._frame(rows, names)
    names = [str(c) for c in frame.columns]
    if prefix is not None:
        X = _ts._transform(prefix, frame)
        sources = _ts._sources(prefix, names)
        if len(sources) != X.shape[1]:
            raise ExplainError(f"the pipeline makes {X.shape[1]} columns but {len(sources)} could be traced to inputs")
        unknown = sorted(set(sources) - set(names))
        if unknown:
            raise ExplainError(f"the pipeline reads column(s) {unknown} that are not among the rows' columns {names}")
    else:
        X, sources = _ts._matrix(frame, names), None
    return frame, names, _ts._prepare_x(X, trees), sources


def _fold(sources: list[str] | None, names: list[str]) -> np.ndarray | None:
    """(raw columns, transformed columns) 0/1 matrix summing transformed attributions back to raw columns."""
    if sources is None:
        return None
    index = {name: j for j, name in enumerate(names)}
    fold = np.zeros((len(names), len(sources)))
    fold[[index[s] for s in sources], np.arange(len(sources))] = 1.0
    return fold


# -- interaction values ----------------------------------------------------------------------------------------

def _interactions(trees: _ts._Trees, X: np.ndarray,
                  table_mb: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(interactions (n, F, F), tree sums (n,), expected tree sum) for float64 rows X."""
    leaves = _ts._leaves(trees, 0.0)
    if leaves is None:
        raise ExplainError(f"a leaf path splits on more than {_kernels.MAX_SLOTS} distinct features: interaction "
                           "values are not available for trees this deep")
    weights = _kernels.shapley_weights()
    d = np.diff(leaves.slot_start)
    reach = np.ones(len(leaves.value))  # each leaf's share of the cover: the product of its slots' r
    if np.any(d > 0):
        reach[d > 0] = np.multiply.reduceat(leaves.slot_r, leaves.slot_start[:-1][d > 0])
    expected = float(np.sum(leaves.value * reach))
    # a table per leaf when its masks are few enough to be worth building for these rows
    small = (d > 0) & (d <= INTERACTION_TABLE_MAX_SLOTS) & ((2.0 ** d) <= max(len(X), 16))
    sizes = np.where(small, (2 ** np.minimum(d, INTERACTION_TABLE_MAX_SLOTS)) * d * d, 0).astype(np.int64)
    cumulative = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    table_start = np.where(small, cumulative[:-1], -1).astype(np.int64)
    out = np.zeros((len(X), trees.n_features, trees.n_features))
    pred = np.zeros(len(X))
    budget = max(int(table_mb * 2**20 / 8), 1)
    tree_sizes = np.add.reduceat(sizes, leaves.tree_leaf_start[:-1]) if len(sizes) else np.zeros(trees.n_trees)
    tree_sizes = np.where(np.diff(leaves.tree_leaf_start) > 0, tree_sizes, 0)
    t = 0
    while t < trees.n_trees:
        hi, used = t, 0
        while hi < trees.n_trees and (hi == t or used + tree_sizes[hi] <= budget):
            used += int(tree_sizes[hi])
            hi += 1
        lo_leaf, hi_leaf = int(leaves.tree_leaf_start[t]), int(leaves.tree_leaf_start[hi])
        offset = int(cumulative[lo_leaf])
        table = np.empty(max(used, 1))
        _ts._in_threads(lambda a, b, *rest, first=lo_leaf: _build_interaction_tables(a + first, b + first, *rest),
                        hi_leaf - lo_leaf, leaves.slot_start, leaves.slot_r, leaves.value, table_start, weights,
                        table, offset)
        _ts._in_threads(_interaction_rows, len(X), X, t, hi, trees.tree_node_start, leaves.tree_leaf_start,
                        trees.feature, trees.threshold, trees.kind, trees.default_left, trees.left, trees.right,
                        leaves.node_slot, leaves.leaf_node, leaves.slot_start, leaves.slot_feat, leaves.slot_r,
                        leaves.value, table_start, table, offset, weights, out, pred)
        t = hi
    return out, pred, expected


def tree_shap_interactions(
    model: Any,
    rows: Any,
    *,
    class_index: Any = None,
    feature_names: Sequence[str] | None = None,
    table_budget_mb: float = INTERACTION_TABLE_MB,
) -> Explanation:
    """Exact path-dependent SHAP interaction values, as shap's ``TreeExplainer.shap_interaction_values``.

    Returns an ``Explanation`` whose ``interactions`` has shape (rows, features, features): off the
    diagonal half the Shapley interaction index of each pair (symmetric), on it each feature's main
    effect, so ``interactions.sum(axis=2)`` is ``values`` (the ordinary TreeSHAP attributions) and the
    whole matrix plus ``expected_value`` is ``model_output``. The model, ``class_index`` and the
    explained output are as in ``tree_shap``; a Pipeline's transformed columns are summed back to its
    raw input columns (both axes). Categorical splits and the interventional game are not supported.
    ``table_budget_mb``: memory for the per-leaf tables of pass masks (built a few trees at a time).

    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestRegressor
    >>> X = np.random.default_rng(0).normal(size=(80, 3))
    >>> forest = RandomForestRegressor(n_estimators=4, max_depth=3, random_state=0).fit(X, X[:, 0] * X[:, 1])
    >>> e = tree_shap_interactions(forest, X[:5], feature_names=["a", "b", "c"])
    >>> bool(np.allclose(e.interactions, e.interactions.transpose(0, 2, 1))), e.efficiency_gap() < 1e-9
    (True, True)
    """
    what = "tree_shap_interactions"
    final, prefix, names = _setup(model, rows, feature_names, what)
    started = time.perf_counter()
    compile_s = _ts._ensure_compiled()
    trees = _ts._parse(final, class_index)
    frame, names, X, sources = _rows(prefix, names, rows, trees, what)
    inter, pred, expected_sum = _interactions(trees, X, table_budget_mb)
    fold = _fold(sources, names)
    if fold is not None:
        inter = np.einsum("af,nfg,bg->nab", fold, inter, fold, optimize=True)
    return Explanation(
        method="tree", output=trees.output_text, feature_names=names, values=inter.sum(axis=2),
        expected_value=np.full(len(X), expected_sum + trees.base_offset), model_output=pred + trees.base_offset,
        baseline="training data (tree cover weights)", data=frame, interactions=inter,
        extra={"trees": trees.n_trees, "engine": "numba", "model_calls": 0, "library": trees.library,
               "compile_s": round(compile_s, 3), "seconds": round(time.perf_counter() - started, 4)},
    )


# -- every class in one pass -----------------------------------------------------------------------------------

_STRUCTURE = ("tree_node_start", "left", "right", "feature", "threshold", "kind", "default_left", "cover")


def _same_structure(a: _ts._Trees, b: _ts._Trees) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in _STRUCTURE)


def _joined(per_class: list[_ts._Trees]) -> tuple[_ts._Trees, np.ndarray, np.ndarray]:
    """One ensemble for all classes: (trees with each node's table value, node values (nodes, k), tree class).

    Classes whose trees have the same structure (a forest's) share one copy whose leaves carry every
    class's value (tree class -1, table value 1); otherwise each class's trees keep their own value.
    """
    k = len(per_class)
    groups: list[tuple[_ts._Trees, list[int]]] = []
    for c, trees in enumerate(per_class):
        for group in groups:
            if _same_structure(group[0], trees):
                group[1].append(c)
                break
        else:
            groups.append((trees, [c]))
    parts = {key: [] for key in ("left", "right", "feature", "threshold", "kind", "default_left", "cover")}
    starts, scalar, matrix, tree_class = [0], [], [], []
    for trees, members in groups:
        offset = int(sum(len(p) for p in parts["feature"]))
        inner = trees.feature >= 0
        for key in parts:
            arr = getattr(trees, key)
            if key in ("left", "right"):
                arr = np.where(inner, arr + offset, -1)
            parts[key].append(arr)
        starts.extend((trees.tree_node_start[1:] + offset).tolist())
        values = np.zeros((len(trees.feature), k))
        for c in members:
            values[:, c] = per_class[c].value
        matrix.append(values)
        if len(members) == 1:
            scalar.append(trees.value)
            tree_class.extend([members[0]] * trees.n_trees)
        else:
            scalar.append(np.where(inner, 0.0, 1.0))
            tree_class.extend([-1] * trees.n_trees)
    first = per_class[0]
    joined = _ts._Trees(np.asarray(starts, np.int64), *(np.concatenate(parts[key]) for key in
                                                        ("left", "right", "feature", "threshold", "kind",
                                                         "default_left", "cover")),
                        np.concatenate(scalar), base_offset=0.0, n_features=first.n_features,
                        input_dtype=first.input_dtype, output_kind=first.output_kind, output_text="",
                        library=first.library, names=first.names, categorical=any(t.categorical for t in per_class))
    return joined, np.concatenate(matrix), np.asarray(tree_class, np.int64)


def _parse_classes(final: Any) -> list[_ts._Trees]:
    """The trees explaining each class of a classifier, in class order (the model file decoded once)."""
    _ts._DECODED.clear()
    _ts._DECODED["on"] = True
    try:
        first = _ts._parse(final, 0)
        classes = first.extra.get("classes", [None])
        if classes == [None] or len(classes) < 2:
            raise ExplainError(f"tree_shap_classes explains classifiers; this {type(final).__name__} has no "
                               "classes: use tree_shap")
        return [first if first.extra.get("position") == c else _ts._parse(final, classes[c])
                for c in range(len(classes))]
    finally:
        _ts._DECODED.clear()


def tree_shap_classes(
    model: Any,
    rows: Any,
    *,
    background: Any = None,
    feature_perturbation: str = "path_dependent",
    feature_names: Sequence[str] | None = None,
    max_background: int = _ts.MAX_BACKGROUND,
    seed: int = 0,
    table_budget_mb: float = _ts.TABLE_BUDGET_MB,
) -> list[Explanation]:
    """Exact TreeSHAP of every class of a classifier in one pass: one ``Explanation`` per class, in class order.

    Each element is what ``tree_shap(model, rows, class_index=c, ...)`` returns for class position c
    (class margins of a multiclass booster, log-odds of each class of a binary one, class probabilities of
    a scikit-learn forest), computed with a single walk over the trees for all classes;
    ``np.stack([e.values for e in out], axis=-1)`` is the (rows, features, classes) array. Arguments are
    those of ``tree_shap``; categorical splits are not supported here (explain them class by class).

    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> X = np.random.default_rng(0).normal(size=(90, 3))
    >>> y = np.digitize(X[:, 0], [-0.5, 0.5])
    >>> forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    >>> out = tree_shap_classes(forest, X[:4], feature_names=["a", "b", "c"])
    >>> [e.output for e in out], max(e.efficiency_gap() for e in out) < 1e-9
    (['probability of class 0', 'probability of class 1', 'probability of class 2'], True)
    """
    what = "tree_shap_classes"
    if feature_perturbation not in _ts.PERTURBATIONS:
        raise ExplainError(f"feature_perturbation={feature_perturbation!r}: choose one of {list(_ts.PERTURBATIONS)}")
    interventional = feature_perturbation == "interventional"
    if interventional and background is None:
        raise ExplainError("feature_perturbation='interventional' needs background= rows (for example a sample of "
                           "the training data)")
    final, prefix, names = _setup(model, rows, feature_names, what)
    started = time.perf_counter()
    compile_s = _ts._ensure_compiled()
    per_class = _parse_classes(final)
    joined, class_values, tree_class = _joined(per_class)
    frame, names, X, sources = _rows(prefix, names, rows, joined, what)
    bg_frame = None
    if interventional:
        bg_frame = _ts._sample(_ts._frame(background, names), max_background, seed)
        if len(bg_frame) == 0:
            raise ExplainError("background= has no rows")
        bg = _ts._transform(prefix, bg_frame) if prefix is not None else _ts._matrix(bg_frame, names)
        bg = _ts._prepare_x(bg, joined)
    leaves = _ts._leaves(joined, table_budget_mb)
    if leaves is None:
        raise ExplainError(f"a leaf path splits on more than {_kernels.MAX_SLOTS} distinct features: explain the "
                           "classes one by one with tree_shap")
    if interventional and np.any(leaves.table_start < 0):
        raise ExplainError("the interventional tables do not fit table_budget_mb: raise it, or explain the classes "
                           "one by one with tree_shap")
    leaf_tree = np.repeat(np.arange(joined.n_trees), np.diff(leaves.tree_leaf_start))
    leaf_class = tree_class[leaf_tree]
    leaf_values = np.ascontiguousarray(class_values[leaves.leaf_node])
    weights = _kernels.shapley_weights()
    table = np.zeros(leaves.table_size)
    leaf_expected = np.zeros(len(leaves.value))
    if interventional:
        dirs = _kernels.node_directions(bg, joined.feature, joined.threshold, joined.kind, joined.default_left)
        _ts._in_threads(_kernels.build_interventional_tables, len(leaves.value), dirs, leaves.path_start,
                        leaves.path_node, leaves.path_left, leaves.path_slot, leaves.slot_start, leaves.value,
                        leaves.table_start, weights, table, leaf_expected)
    else:
        _ts._in_threads(_kernels.build_path_tables, len(leaves.value), leaves.slot_start, leaves.slot_r,
                        leaves.value, leaves.table_start, weights, table, leaf_expected)
    k = len(per_class)
    phi = np.zeros((len(X), joined.n_features * k))
    pred = np.zeros((len(X), k))
    _ts._in_threads(_class_rows, len(X), X, joined.tree_node_start, leaves.tree_leaf_start, joined.feature,
                    joined.threshold, joined.kind, joined.default_left, joined.left, joined.right, leaves.node_slot,
                    leaves.leaf_node, leaves.slot_start, leaves.slot_feat, leaves.slot_r, leaves.value, leaf_class,
                    leaf_values, leaves.table_start, table, weights, phi, pred)
    phi = phi.reshape(len(X), joined.n_features, k)
    expected = np.zeros(k)
    single = leaf_class >= 0
    np.add.at(expected, leaf_class[single], leaf_expected[single])
    expected += (leaf_expected[~single, None] * leaf_values[~single]).sum(axis=0)
    fold = _fold(sources, names)
    if fold is not None:
        phi = np.einsum("af,nfk->nak", fold, phi, optimize=True)
    if interventional:
        baseline = f"{len(bg_frame)} background rows" + (f" (sampled from {len(background)})"
                                                         if len(background) > len(bg_frame) else "")
    else:
        baseline = "training data (tree cover weights)"
    extra = {"trees": joined.n_trees, "engine": "numba", "model_calls": 0, "library": joined.library,
             "compile_s": round(compile_s, 3), "classes_in_one_pass": k,
             "direct_leaves": int(np.sum(leaves.table_start < 0)),
             "seconds": round(time.perf_counter() - started, 4)}
    return [Explanation(method="tree_interventional" if interventional else "tree", output=trees.output_text,
                        feature_names=names, values=np.ascontiguousarray(phi[:, :, c]),
                        expected_value=np.full(len(X), expected[c] + trees.base_offset),
                        model_output=pred[:, c] + trees.base_offset, baseline=baseline, data=frame, extra=dict(extra))
            for c, trees in enumerate(per_class)]
