"""Nearest counterfactuals, checked against exact optima: SciPy's linear and mixed-integer programs and an
enumeration of the integer lattice for logistic regressions of German credit, an enumeration of a tree ensemble's
cells for gradient boosting.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from sklearn.compose import make_column_transformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, StandardScaler

from vigil.core.explain.counterfactual import LINE_SEARCH_TOL, counterfactuals

NUMERIC = ["month", "credit_amount", "investment_as_income_percentage", "residence_since", "age",
           "number_of_credits", "people_liable_for"]
ROWS = 40


@pytest.fixture(scope="module")
def german(shared_data):
    path = shared_data / "german_credit" / "german.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    df = pd.read_csv(path)
    return df[NUMERIC], (df["credit"] == 1).astype(int).to_numpy()  # 1 = good credit


def scale_of(values) -> float:
    """Vigil's documented scale: the median absolute deviation, the standard deviation when that is 0."""
    values = np.asarray(values, dtype=float)
    mad = float(np.median(np.abs(values - np.median(values))))
    return mad if mad > 0 else float(np.std(values))


def linear_problem(model, X: pd.DataFrame, row: pd.Series):
    """The decision function ``w . x + b`` of a scaler + logistic regression pipeline, from its coefficients."""
    scaler, lr = model[0], model[-1]
    w = lr.coef_[0] / scaler.scale_
    need = -float(model.decision_function(row.to_frame().T)[0])  # the decision must rise by this (>= 0)
    return w, need, X.min().to_numpy(float), X.max().to_numpy(float)


def bad_rows(model, X, count=ROWS):
    return np.flatnonzero(model.predict_proba(X)[:, 1] < 0.5)[:count]


def check_flipped(model, result, original):
    p = model.predict_proba(result.rows[original.columns])[:, 1]
    assert (p >= 0.5).all(), p
    np.testing.assert_allclose(p, result.probabilities, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------------
# Linear models: the exact optimum
# ---------------------------------------------------------------------------------------------------------------------


def test_logistic_counterfactual_is_the_linear_program_optimum(german):
    X, y = german
    X = X.astype(float)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    scales = np.array([scale_of(X[c]) for c in NUMERIC])
    several = 0
    for i in bad_rows(model, X):
        row = X.iloc[i]
        x0 = row.to_numpy(float)
        w, need, low, high = linear_problem(model, X, row)
        # min sum (up + down) / scale  s.t.  w . (up - down) >= need, x0 + up <= max, x0 - down >= min
        lp = linprog(np.r_[1 / scales, 1 / scales], A_ub=-np.r_[w, -w][None, :], b_ub=[-need],
                     bounds=list(zip(np.zeros(7), high - x0, strict=True)) + list(zip(np.zeros(7), x0 - low,
                                                                                     strict=True)),
                     method="highs")
        assert lp.status == 0
        result = counterfactuals(model, X.iloc[[i]], data=X, sparsity=0.0, max_changes=len(NUMERIC), n=1)
        assert result.extra["method"] == "linear"
        distance = result.distances[0]
        # equal to the optimum, plus the nudge past the boundary (1e-9 in log-odds)
        assert lp.fun - 1e-9 <= distance <= lp.fun * (1 + 1e-6) + 1e-8, (i, distance, lp.fun)
        check_flipped(model, result, X.iloc[[i]])
        for name, value in result.changes[0].items():
            assert X[name].min() <= value <= X[name].max()
        several += len(result.changes[0]) > 1
    assert several >= 1  # some rows need a second feature once the first reaches its range's end


def oracle_milp(model, X, row, scales, sparsity, max_changes, exclude=()):
    """min sum |change| / scale + sparsity * changes, at most max_changes, no set of ``exclude`` contained."""
    w, need, low, high = linear_problem(model, X, row)
    x0 = row.to_numpy(float)
    m = len(w)
    up, down = high - x0, x0 - low
    # variables: up (m), down (m), changed (m)
    cost = np.r_[1 / scales, 1 / scales, np.full(m, sparsity)]
    rows = [np.r_[w, -w, np.zeros(m)]]
    lo, hi = [need], [np.inf]
    for j in range(m):
        link = np.zeros(3 * m)
        link[j], link[m + j], link[2 * m + j] = 1.0, 1.0, -max(up[j], down[j])
        rows.append(link)
        lo.append(-np.inf)
        hi.append(0.0)
    rows.append(np.r_[np.zeros(2 * m), np.ones(m)])
    lo.append(-np.inf)
    hi.append(max_changes)
    for names in exclude:
        rows.append(np.r_[np.zeros(2 * m), [float(c in names) for c in NUMERIC]])
        lo.append(-np.inf)
        hi.append(len(names) - 1)
    res = milp(cost, constraints=LinearConstraint(np.array(rows), lo, hi),
               integrality=np.r_[np.zeros(2 * m), np.ones(m)], bounds=Bounds(0, np.r_[up, down, np.ones(m)]),
               options={"mip_rel_gap": 0.0})
    assert res.status == 0
    return res.fun


def test_logistic_counterfactuals_with_the_sparsity_cost_are_the_optimum_over_feature_sets(german):
    X, y = german
    X = X.astype(float)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    scales = np.array([scale_of(X[c]) for c in NUMERIC])
    for i in bad_rows(model, X):
        row = X.iloc[i]
        result = counterfactuals(model, X.iloc[[i]], data=X, n=3)  # sparsity 0.5, at most 3 changes
        assert result.extra["method"] == "linear" and len(result) == 3
        check_flipped(model, result, X.iloc[[i]])
        # each is the nearest whose feature set contains none of the earlier ones
        earlier = []
        for change, distance in zip(result.changes, result.distances, strict=True):
            best = oracle_milp(model, X, row, scales, 0.5, 3, exclude=earlier)
            assert distance == pytest.approx(best, rel=1e-6, abs=1e-8), (i, len(earlier), change)
            assert not any(set(e) <= set(change) for e in earlier)
            earlier.append(frozenset(change))


def test_integer_features_reach_the_optimum_of_the_integer_lattice(german):
    X, y = german  # integer columns: changes stay whole numbers
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    moving = ["month", "credit_amount"]
    scales = np.array([scale_of(X[c]) for c in moving])
    j = [NUMERIC.index(c) for c in moving]
    grids = [np.arange(X[c].min(), X[c].max() + 1) for c in moving]
    month, amount = np.meshgrid(*grids, indexing="ij")
    for i in bad_rows(model, X, 10):
        row = X.iloc[i]
        w, need, _, _ = linear_problem(model, X, row)
        x0 = row.to_numpy(float)[j]
        rise = w[j[0]] * (month - x0[0]) + w[j[1]] * (amount - x0[1])
        cost = (np.abs(month - x0[0]) / scales[0] + np.abs(amount - x0[1]) / scales[1]
                + 0.5 * ((month != x0[0]).astype(int) + (amount != x0[1])))
        best = float(cost[rise >= need].min()) if (rise >= need).any() else np.inf
        result = counterfactuals(model, X.iloc[[i]], data=X, actionable=moving, n=1)
        assert result.extra["method"] == "linear"
        if not np.isfinite(best):
            assert len(result) == 0 and "solved exactly" in result.message
            continue
        assert result.distances[0] == pytest.approx(best, rel=1e-9), i
        assert all(isinstance(v, int) for v in result.changes[0].values())
        check_flipped(model, result, X.iloc[[i]])


def test_only_models_linear_in_the_moving_features_take_the_exact_path():
    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["u", "v"], n)})
    y = (X["a"] + X["b"] + (X["c"] == "u") + rng.logistic(size=n) * 0.3 > 0.5).astype(int)
    numeric = X[["a", "b"]]
    row = pd.DataFrame({"a": [-0.5], "b": [-0.5], "c": ["v"]})

    def method(model, data, **kw):
        return counterfactuals(model, row[list(data.columns)], data=data, n=1, **kw).extra["method"]

    assert method(LogisticRegression().fit(numeric, y), numeric) == "linear"
    one_hot = make_column_transformer((OneHotEncoder(), ["c"]), remainder=StandardScaler())
    mixed = make_pipeline(one_hot, LogisticRegression()).fit(X, y)
    assert method(mixed, X, immutable=["c"]) == "linear"  # the one-hot column does not move
    assert method(mixed, X) == "search"  # a category may change
    binned = make_pipeline(KBinsDiscretizer(n_bins=5, encode="onehot-dense", quantile_method="averaged_inverted_cdf"),
                           LogisticRegression()).fit(numeric, y)
    assert method(binned, numeric) == "search"
    a_binned = make_pipeline(make_column_transformer(
        (KBinsDiscretizer(n_bins=5, encode="onehot-dense", quantile_method="averaged_inverted_cdf"), ["a"]),
        remainder="passthrough"), LogisticRegression()).fit(numeric, y)
    assert method(a_binned, numeric) == "search"
    assert method(a_binned, numeric, actionable=["b"]) == "linear"
    trees = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(numeric, y)
    assert method(trees, numeric) == "search"


# ---------------------------------------------------------------------------------------------------------------------
# Other models: the search
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def boosted(german):
    X, y = german
    X = X.astype(float)
    return X, GradientBoostingClassifier(n_estimators=40, max_depth=2, random_state=0).fit(X, y)


def test_more_features_allowed_never_give_a_farther_counterfactual(boosted):
    X, model = boosted
    found = 0
    for i in bad_rows(model, X, 20):
        several = counterfactuals(model, X.iloc[[i]], data=X, n=3)
        single = counterfactuals(model, X.iloc[[i]], data=X, n=3, max_changes=1)
        assert several.extra["method"] == "search"
        if len(single):
            assert len(several) and several.distances[0] <= single.distances[0] + 1e-12, i
            found += 1
        if len(several):
            check_flipped(model, several, X.iloc[[i]])
    assert found >= 15


def tree_cells_optimum(model, X, row, moving, scales):
    """The exact nearest flip over two features of a tree ensemble: its decision is constant on the cells the
    split thresholds make, so the nearest point of each cell (thresholds are compared in float32) is tried."""
    points = []
    for name in moving:
        column = NUMERIC.index(name)
        thresholds = np.unique(np.concatenate([tree.tree_.threshold[tree.tree_.feature == column]
                                               for tree in model.estimators_[:, 0]]))
        low, high = X[name].min(), X[name].max()
        edges = np.r_[low, thresholds[(thresholds > low) & (thresholds < high)], high]
        v = float(row[name])
        starts = [low] + [float(np.nextafter(np.float32(e), np.float32(np.inf))) for e in edges[1:-1]]
        points.append(sorted({min(max(v, a), b) for a, b in zip(starts, edges[1:], strict=True)}))
    grid = np.array(list(itertools.product(*points)))
    rows = pd.DataFrame([row.to_dict()] * len(grid))
    rows[moving[0]], rows[moving[1]] = grid[:, 0], grid[:, 1]
    flips = model.predict_proba(rows[NUMERIC])[:, 1] >= 0.5
    moved = np.abs(grid - row[moving].to_numpy(float))
    cost = (moved / scales).sum(axis=1) + 0.5 * (moved > 0).sum(axis=1)
    return float(cost[flips].min()) if flips.any() else np.inf


def test_two_feature_search_reaches_the_exact_optimum_of_the_tree_cells(boosted):
    X, model = boosted
    moving = ["month", "age"]
    scales = np.array([scale_of(X[c]) for c in moving])
    reached = tried = 0
    for i in bad_rows(model, X, 30):
        best = tree_cells_optimum(model, X, X.iloc[i], moving, scales)
        result = counterfactuals(model, X.iloc[[i]], data=X, actionable=moving, n=1)
        if not np.isfinite(best):
            assert len(result) == 0
            continue
        tried += 1
        assert len(result) == 1
        distance = result.distances[0]
        assert distance >= best - 1e-9  # no distance below the true optimum
        # within the line search's tolerance on each changed feature
        reached += distance <= best + 2 * LINE_SEARCH_TOL + 1e-9
    assert tried >= 20 and reached >= 0.9 * tried, (reached, tried)
