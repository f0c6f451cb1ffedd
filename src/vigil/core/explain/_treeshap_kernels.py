"""Compiled kernels for exact TreeSHAP (numba): leaf tables built once per model, then one pass per row.

Every leaf contributes a product game to the Shapley values: with P the distinct features on the path to
the leaf (d of them), the leaf is reached by a coalition S when each feature in S lets x through and each
feature outside S "lets it through" with weight r_j, the share of cover that goes the path's way
(path-dependent TreeSHAP), or 0/1 for one background row (interventional TreeSHAP). Which features let x
through is a d-bit mask A, so each leaf's attributions depend on x only through A: a table of
2**d x d numbers per leaf, built once, makes a row cost O(leaves x depth) per tree instead of
O(leaves x depth**2) (Lundberg et al.'s Algorithm 2). Leaves without a table (too many distinct features,
or past the memory budget) are solved directly per row without masks, so any number of distinct path
features works: the path-dependent game by Gauss-Legendre quadrature of its Beta-integral form (every
term a product of non-negative numbers, so no cancellation at any depth), the interventional game per
background row from the closed-form Shapley weights.

Node kinds (how a split treats its value):
  0: x <= t goes left, NaN follows the default child (scikit-learn, LightGBM missing_type=NaN)
  1: x < t goes left, NaN follows the default child (XGBoost)
  2: NaN becomes 0.0, then x <= t (LightGBM missing_type=None)
  3: NaN becomes 0.0; |x| <= 1e-35 follows the default child, else x <= t (LightGBM missing_type=Zero)
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

MAX_SLOTS = 62  # the row kernel's int64 pass masks (leaves with a table have at most 16 slots)


def shapley_weights(n: int = MAX_SLOTS + 2) -> np.ndarray:
    """W[d, k] = k! (d-1-k)! / d!, the Shapley weight of a coalition of k among d players (0 past d-1).

    >>> shapley_weights(4)[3, :3].round(4).tolist()
    [0.3333, 0.1667, 0.3333]
    """
    out = np.zeros((n, n + 1))
    for d in range(1, n):
        # 1 / (d * C(d-1, k)) by the multiplicative recurrence, exact enough in float64 for d < 64
        c = 1.0
        for k in range(d):
            out[d, k] = 1.0 / (d * c)
            c = c * (d - 1 - k) / (k + 1)
    return out


@njit(cache=True)
def _goes_left(v, thr, kind, default_left):
    if kind == 2 or kind == 3:
        if np.isnan(v):
            v = 0.0
        if kind == 3 and abs(v) <= 1e-35:
            return default_left
        return v <= thr
    if np.isnan(v):
        return default_left
    if kind == 1:
        return v < thr
    return v <= thr


@njit(cache=True, nogil=True)
def collect_leaves(tree_node_start, node_left, node_right, node_feat, node_cover, node_value, fill,
                   leaf_tree, leaf_node, leaf_value, leaf_path_start, path_node, path_left, path_slot,
                   leaf_slot_start, slot_feat, slot_r, node_slot):
    """Walk every tree depth first; count (fill=False) or record (fill=True) each leaf's path.

    Returns (leaves, path entries, slots, deepest path). Slots are a leaf's distinct path features in
    order of first appearance; slot_r is the product of cover shares along the path for that feature;
    node_slot[node] is the slot of the node's own feature (the same for every leaf below it).
    """
    n_trees = tree_node_start.shape[0] - 1
    widest = 0  # no path or stack is longer than a tree's node count
    for t in range(n_trees):
        widest = max(widest, tree_node_start[t + 1] - tree_node_start[t])
    stack = np.empty(widest + 1, np.int64)
    stack_depth = np.empty(widest + 1, np.int64)
    trail = np.empty(widest + 1, np.int64)  # node at each depth on the current path
    feats = np.empty(widest + 1, np.int64)
    rs = np.empty(widest + 1, np.float64)
    n_leaves = 0
    n_path = 0
    n_slots = 0
    deepest = 0
    for t in range(n_trees):
        start = tree_node_start[t]
        top = 0
        stack[0] = start
        stack_depth[0] = 0
        while top >= 0:
            node = stack[top]
            depth = stack_depth[top]
            top -= 1
            trail[depth] = node
            if node_feat[node] >= 0:
                top += 1
                stack[top] = node_right[node]
                stack_depth[top] = depth + 1
                top += 1
                stack[top] = node_left[node]
                stack_depth[top] = depth + 1
                continue
            if depth > deepest:
                deepest = depth
            d = 0
            for k in range(depth):
                parent = trail[k]
                child = trail[k + 1]
                f = node_feat[parent]
                cover = node_cover[parent]
                share = node_cover[child] / cover if cover > 0 else 0.5
                slot = -1
                for s in range(d):
                    if feats[s] == f:
                        slot = s
                        break
                if slot < 0:
                    slot = d
                    feats[d] = f
                    rs[d] = 1.0
                    d += 1
                rs[slot] *= share
                if fill:
                    path_node[n_path + k] = parent
                    path_left[n_path + k] = 1 if child == node_left[parent] else 0
                    path_slot[n_path + k] = slot
                    node_slot[parent] = slot
            if fill:
                leaf_tree[n_leaves] = t
                leaf_node[n_leaves] = node
                leaf_value[n_leaves] = node_value[node]
                leaf_path_start[n_leaves] = n_path
                leaf_slot_start[n_leaves] = n_slots
                for s in range(d):
                    slot_feat[n_slots + s] = feats[s]
                    slot_r[n_slots + s] = rs[s]
            n_leaves += 1
            n_path += depth
            n_slots += d
    if fill:
        leaf_path_start[n_leaves] = n_path
        leaf_slot_start[n_leaves] = n_slots
    return n_leaves, n_path, n_slots, deepest


@njit(cache=True, nogil=True)
def build_path_tables(lo, hi, leaf_slot_start, slot_r, leaf_value, leaf_table_start, weights, table,
                      leaf_expected):
    """Path-dependent tables: table[start + A*d + i] = leaf's share of phi_i when x passes the slots in A.

    With R(A) the product of r_j over slots outside A and E(A) = sum over S within A of
    W[d, |S|] * prod_{j in A minus S} r_j: phi_i = (1 - r_i) v R(A) E(A - i) for i in A, and
    -r_i v R(A + i) E(A) otherwise. E comes from E_k(T) = E_{k+1}(T - h) + r_h E_k(T - h).
    """
    for leaf in range(lo, hi):
        s0 = leaf_slot_start[leaf]
        d = leaf_slot_start[leaf + 1] - s0
        v = leaf_value[leaf]
        r = slot_r[s0:s0 + d]
        prod = 1.0
        for j in range(d):
            prod *= r[j]
        leaf_expected[leaf] = v * prod
        start = leaf_table_start[leaf]
        if start < 0 or d == 0:
            continue
        size = 1 << d
        e = np.zeros((size, d + 1))
        for k in range(d):
            e[0, k] = weights[d, k]
        for mask in range(1, size):
            h = 0
            while (mask >> (h + 1)) != 0:
                h += 1
            prev = mask ^ (1 << h)
            for k in range(d):
                e[mask, k] = e[prev, k + 1] + r[h] * e[prev, k]
        outside = np.empty(size)  # R(mask)
        outside[size - 1] = 1.0
        for mask in range(size - 2, -1, -1):
            j = 0
            while (mask >> j) & 1:
                j += 1
            outside[mask] = outside[mask | (1 << j)] * r[j]
        for mask in range(size):
            base = start + mask * d
            for i in range(d):
                bit = 1 << i
                if mask & bit:
                    table[base + i] = (1.0 - r[i]) * v * outside[mask] * e[mask ^ bit, 0]
                else:
                    table[base + i] = -r[i] * v * outside[mask | bit] * e[mask, 0]


@njit(cache=True, nogil=True)
def node_directions(X, node_feat, node_thr, node_kind, node_default_left):
    """dirs[row, node] = 1 when the row goes to the node's left child (0 for leaves)."""
    n = X.shape[0]
    n_nodes = node_feat.shape[0]
    out = np.zeros((n, n_nodes), np.int8)
    for row in range(n):
        for node in range(n_nodes):
            f = node_feat[node]
            if f >= 0 and _goes_left(X[row, f], node_thr[node], node_kind[node], node_default_left[node] != 0):
                out[row, node] = 1
    return out


@njit(cache=True, nogil=True)
def build_interventional_tables(lo, hi, bg_dirs, leaf_path_start, path_node, path_left, path_slot,
                                leaf_slot_start, leaf_value, leaf_table_start, weights, table, leaf_expected):
    """Interventional tables, averaged over the background rows (leaves without a table are skipped).

    For one background row z with pass mask B and x with pass mask A, the leaf's game is v when
    U = A - B is inside S and V = B - A outside S (0 if a slot passes neither): phi_i = v W[u+w, u-1]
    for i in U and -v W[u+w, u] for i in V. Background rows only enter through the histogram of B.
    """
    n_bg = bg_dirs.shape[0]
    for leaf in range(lo, hi):
        start = leaf_table_start[leaf]
        if start < 0:  # solved by interventional_direct_rows, expected value by direct_expected
            continue
        s0 = leaf_slot_start[leaf]
        d = leaf_slot_start[leaf + 1] - s0
        v = leaf_value[leaf]
        size = 1 << d
        full = size - 1
        hist = np.zeros(size)
        for b in range(n_bg):
            mask = full
            for p in range(leaf_path_start[leaf], leaf_path_start[leaf + 1]):
                if bg_dirs[b, path_node[p]] != path_left[p]:
                    mask &= ~(1 << path_slot[p])
            hist[mask] += 1.0
        for m in range(size):
            hist[m] /= n_bg
        leaf_expected[leaf] = v * hist[full]
        if d == 0:
            continue
        seen = np.empty(size, np.int64)
        n_seen = 0
        for m in range(size):
            if hist[m] > 0:
                seen[n_seen] = m
                n_seen += 1
        for a in range(size):
            base = start + a * d
            for i in range(d):
                table[base + i] = 0.0
            for q in range(n_seen):
                b = seen[q]
                if (~a & ~b) & full:
                    continue
                only_x = a & ~b
                only_z = b & ~a
                u = 0
                w = 0
                for i in range(d):
                    u += (only_x >> i) & 1
                    w += (only_z >> i) & 1
                if u + w == 0:
                    continue
                gain = v * hist[b] * weights[u + w, u - 1] if u > 0 else 0.0
                loss = -v * hist[b] * weights[u + w, u] if w > 0 else 0.0
                for i in range(d):
                    if (only_x >> i) & 1:
                        table[base + i] += gain
                    elif (only_z >> i) & 1:
                        table[base + i] += loss


@njit(cache=True, nogil=True)
def shap_rows(lo_row, hi_row, X, tree_node_start, tree_leaf_start, node_feat, node_thr, node_kind,
              node_default_left, node_left, node_right, node_slot, leaf_node, leaf_slot_start, slot_feat, slot_r,
              leaf_value, leaf_table_start, table, weights, phi, pred):
    """Attributions phi[row, feature] (added to) and the tree sum pred[row] for rows lo_row..hi_row-1 of X,
    over the leaves that have a table (node_slot must be below 63 on their paths; other leaves are skipped).

    Nodes come after their parent within a tree, so one pass over a tree's nodes carries each node's
    pass mask down (the child a row does not take loses the parent's slot bit). Rows go in blocks,
    transposed so that the inner loops run over the rows of a block: no dependency chains, and one
    tree's tables stay in cache while the whole block uses them.
    """
    n_features = X.shape[1]
    n_trees = tree_node_start.shape[0] - 1
    widest = 1
    for t in range(n_trees):
        widest = max(widest, tree_node_start[t + 1] - tree_node_start[t])
    block = 64
    for lo in range(lo_row, hi_row, block):
        nb = min(hi_row, lo + block) - lo
        xb = np.empty((n_features, nb))
        for r in range(nb):
            for f in range(n_features):
                xb[f, r] = X[lo + r, f]
        acc = np.zeros((phi.shape[1], nb))
        total = np.zeros(nb)
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
                start = leaf_table_start[leaf]
                if start < 0:  # no table: path_dependent_direct_rows / interventional_direct_rows add it
                    continue
                s0 = leaf_slot_start[leaf]
                d = leaf_slot_start[leaf + 1] - s0
                full = (np.int64(1) << d) - 1
                value = leaf_value[leaf]
                at = leaf_node[leaf] - ns
                for r in range(nb):
                    m = masks[at, r] & full
                    leaf_mask[r] = m
                    total[r] += value if m == full else 0.0
                for i in range(d):
                    f = slot_feat[s0 + i]
                    for r in range(nb):
                        acc[f, r] += table[start + leaf_mask[r] * d + i]
        for r in range(nb):
            pred[lo + r] += total[r]
            for f in range(phi.shape[1]):
                phi[lo + r, f] += acc[f, r]


def gauss_legendre(n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre rules on [0, 1] of every power-of-two size q up to the first >= n_max: nodes[q, :q] and
    weights[q, :q] integrate polynomials of degree < 2q exactly (other rows are zero).

    >>> t, w = gauss_legendre(3)
    >>> round(float((w[4, :4] * t[4, :4] ** 7).sum()), 12)  # integral of t**7 over [0, 1]
    0.125
    """
    top = 1
    while top < n_max:
        top *= 2
    nodes = np.zeros((top + 1, top))
    weights = np.zeros((top + 1, top))
    q = 1
    while q <= top:
        nodes[q, :q], weights[q, :q] = _legendre_rule(q)
        q *= 2
    return nodes, weights


@functools.cache
def _legendre_rule(q: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(q)
    return (x + 1.0) / 2.0, w / 2.0


@njit(cache=True)
def _passes(row_value_at, leaf, leaf_path_start, path_node, path_left, path_slot, d, out):
    # out[j] = 1.0 when the row goes the path's way at every node of slot j (row_value_at[node]: 1 = left)
    for j in range(d):
        out[j] = 1.0
    for p in range(leaf_path_start[leaf], leaf_path_start[leaf + 1]):
        if row_value_at[path_node[p]] != path_left[p]:
            out[path_slot[p]] = 0.0


@njit(cache=True)
def _all_pass(p, d):
    """Whether the row passes every one of the leaf's d path slots (it reaches the leaf)."""
    for j in range(d):  # noqa: SIM110 - a loop numba compiles, not a generator
        if p[j] == 0.0:
            return False
    return True


@njit(cache=True)
def _row_directions(x, leaf, leaf_path_start, path_node, node_feat, node_thr, node_kind, node_default_left, dirs):
    for p in range(leaf_path_start[leaf], leaf_path_start[leaf + 1]):
        node = path_node[p]
        dirs[node] = 1 if _goes_left(x[node_feat[node]], node_thr[node], node_kind[node],
                                     node_default_left[node] != 0) else 0


@njit(cache=True, nogil=True)
def path_dependent_direct_rows(lo, hi, X, direct, leaf_path_start, path_node, path_left, path_slot,
                               leaf_slot_start, slot_feat, slot_r, leaf_value, node_feat, node_thr, node_kind,
                               node_default_left, gl_nodes, gl_weights, phi, pred):
    """Path-dependent attributions (added to phi) and tree sums (pred) of rows lo..hi from the leaves in direct.

    With p_j = 1 when x passes slot j (else 0) and r_j its cover share, the leaf's game is
    v prod_{j in S} p_j prod_{j not in S} r_j, and since the Shapley weight k! (d-1-k)! / d! is the
    integral of t**k (1-t)**(d-1-k) over [0, 1]: phi_i = v (p_i - r_i) * integral of
    prod_{j != i} (t p_j + (1-t) r_j) dt, a polynomial of degree d-1 that d // 2 + 1 Gauss nodes
    (rounded up to a power of two) integrate exactly. Prefix and suffix products give every i without division.
    """
    widest = 1
    for leaf in direct:
        widest = max(widest, leaf_slot_start[leaf + 1] - leaf_slot_start[leaf])
    p = np.empty(widest)
    factor = np.empty(widest)
    prefix = np.empty(widest + 1)
    acc = np.empty(widest)
    dirs = np.zeros(node_feat.shape[0], np.int64)
    for row in range(lo, hi):
        x = X[row]
        for leaf in direct:
            s0 = leaf_slot_start[leaf]
            d = leaf_slot_start[leaf + 1] - s0
            v = leaf_value[leaf]
            _row_directions(x, leaf, leaf_path_start, path_node, node_feat, node_thr, node_kind, node_default_left,
                            dirs)
            _passes(dirs, leaf, leaf_path_start, path_node, path_left, path_slot, d, p)
            if _all_pass(p, d):
                pred[row] += v
            q = 1  # the power-of-two rule gauss_legendre made, exact for degree d - 1
            while q < d // 2 + 1:
                q *= 2
            for i in range(d):
                acc[i] = 0.0
            for k in range(q):
                t = gl_nodes[q, k]
                for j in range(d):
                    factor[j] = t * p[j] + (1.0 - t) * slot_r[s0 + j]
                prefix[0] = 1.0
                for j in range(d):
                    prefix[j + 1] = prefix[j] * factor[j]
                suffix = gl_weights[q, k]
                for i in range(d - 1, -1, -1):
                    acc[i] += prefix[i] * suffix
                    suffix *= factor[i]
            for i in range(d):
                phi[row, slot_feat[s0 + i]] += v * (p[i] - slot_r[s0 + i]) * acc[i]


@njit(cache=True, nogil=True)
def direct_expected(direct, bg_dirs, leaf_path_start, path_node, path_left, leaf_value, leaf_expected):
    """leaf_expected[leaf] = v * the share of background rows that reach the leaf, for the leaves in direct."""
    n_bg = bg_dirs.shape[0]
    for leaf in direct:
        reached = 0
        for b in range(n_bg):
            ok = True
            for p in range(leaf_path_start[leaf], leaf_path_start[leaf + 1]):
                if bg_dirs[b, path_node[p]] != path_left[p]:
                    ok = False
                    break
            if ok:
                reached += 1
        leaf_expected[leaf] = leaf_value[leaf] * reached / n_bg


@njit(cache=True, nogil=True)
def interventional_direct_rows(lo, hi, X, direct, bg_dirs, leaf_path_start, path_node, path_left, path_slot,
                               leaf_slot_start, slot_feat, leaf_value, node_feat, node_thr, node_kind,
                               node_default_left, weights, phi, pred):
    """Interventional attributions (added to phi) and tree sums (pred) of rows lo..hi from the leaves in direct.

    For x and one background row z the leaf's game is v when the slots only x passes (U) are in S and
    those only z passes (V) are not, and 0 if a slot passes neither: phi_i = v W[u+w, u-1] for i in U
    and -v W[u+w, u] for i in V, averaged over the background rows. Leaf by leaf, so each background
    row's pass pattern is found once per leaf and block of rows.
    """
    n_bg = bg_dirs.shape[0]
    widest = 1
    for leaf in direct:
        widest = max(widest, leaf_slot_start[leaf + 1] - leaf_slot_start[leaf])
    z_pass = np.empty((n_bg, widest))
    p = np.empty(widest)
    dirs = np.zeros(node_feat.shape[0], np.int64)
    for leaf in direct:
        s0 = leaf_slot_start[leaf]
        d = leaf_slot_start[leaf + 1] - s0
        v = leaf_value[leaf] / n_bg
        for b in range(n_bg):
            _passes(bg_dirs[b], leaf, leaf_path_start, path_node, path_left, path_slot, d, z_pass[b])
        for row in range(lo, hi):
            _row_directions(X[row], leaf, leaf_path_start, path_node, node_feat, node_thr, node_kind,
                            node_default_left, dirs)
            _passes(dirs, leaf, leaf_path_start, path_node, path_left, path_slot, d, p)
            if _all_pass(p, d):
                pred[row] += leaf_value[leaf]
            for b in range(n_bg):
                u = 0
                w = 0
                dead = False
                for j in range(d):
                    if p[j] != 0.0:
                        if z_pass[b, j] == 0.0:
                            u += 1
                    elif z_pass[b, j] != 0.0:
                        w += 1
                    else:
                        dead = True
                        break
                if dead or u + w == 0:
                    continue
                gain = v * weights[u + w, u - 1] if u > 0 else 0.0
                loss = -v * weights[u + w, u] if w > 0 else 0.0
                for j in range(d):
                    if p[j] != 0.0:
                        if z_pass[b, j] == 0.0:
                            phi[row, slot_feat[s0 + j]] += gain
                    elif z_pass[b, j] != 0.0:
                        phi[row, slot_feat[s0 + j]] += loss
