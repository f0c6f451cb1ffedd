"""TreeSHAP on the trees that broke it: deep trees, paths of hundreds of distinct features, and its own check.

Oracles: exact Shapley values by enumerating every coalition (the interventional game from the model's
own predict), and an independent path-dependent reference written here from the scikit-learn tree
arrays (per leaf, the coalition-size polynomial built from scratch for every feature, all terms
non-negative, so it stays exact in float64 at any depth). Efficiency is checked against the model's
own predict.
"""

from __future__ import annotations

import functools
import itertools
import math
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.tree import DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from vigil.core.explain import treeshap
from vigil.core.explain.adapters import ExplainError
from vigil.core.explain.treeshap import tree_shap

DATA = Path("/work/shared/data")
EXACT = 1e-9


def _bike(n=None):
    frame = pd.read_csv(DATA / "bike_sharing" / "hour.csv")
    if n is not None:
        frame = frame.sample(n, random_state=0)
    return frame.drop(columns=["instant", "dteday", "casual", "registered", "cnt"]), frame["cnt"]


def _interventional_by_enumeration(predict, x, background):
    """Exact interventional Shapley values of one row: every coalition, averaged over the background rows."""
    d = len(x)
    coalitions = list(itertools.product([0, 1], repeat=d))
    masks = np.array(coalitions, dtype=bool)
    hybrid = np.where(masks[:, None, :], x[None, None, :], background[None, :, :]).reshape(-1, d)
    value = predict(hybrid).reshape(len(masks), len(background)).mean(axis=1)
    index = {c: i for i, c in enumerate(coalitions)}
    phi = np.zeros(d)
    for c, i in index.items():
        k = sum(c)
        for j in range(d):
            if not c[j]:
                with_j = c[:j] + (1,) + c[j + 1:]
                phi[j] += math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d) * (value[index[with_j]] -
                                                                                                value[i])
    return phi


@functools.cache
def _shapley_hankel(d):
    """H[a, b] = (a+b)! (d-1-a-b)! / d!, the Shapley weight of a coalition of a + b among d players (0 past d-1)."""
    w = [float(Fraction(math.factorial(k) * math.factorial(d - 1 - k), math.factorial(d))) for k in range(d)]
    k = np.add.outer(np.arange(d), np.arange(d))
    return np.where(k < d, np.array(w + [0.0] * d)[np.minimum(k, d)], 0.0)


def _path_dependent_reference(forest, x):
    """Path-dependent TreeSHAP of a scikit-learn forest's probability of class 1, leaf by leaf, independently.

    For a leaf with distinct path features 1..d (x passes j: p_j in {0, 1}; cover share r_j) the game
    is v prod_{S} p_j prod_{not S} r_j, so phi_i = v (p_i - r_i) sum_k W_d(k) c_k, with c_k the t**k
    coefficient of prod_{j != i} (p_j t + r_j) = (product over j < i) (product over j > i): with the
    Hankel matrix H[a, b] = W_d(a + b), sum_k W_d(k) c_k = before_i . H after_i. Every term is
    non-negative, so float64 keeps it exact at any depth.
    """
    phi = np.zeros(len(x))
    for estimator in forest.estimators_:
        tree = estimator.tree_
        fractions = tree.value[:, 0, :] / tree.value[:, 0, :].sum(axis=1, keepdims=True)
        left, right, feature, threshold = tree.children_left, tree.children_right, tree.feature, tree.threshold
        weight = tree.weighted_n_node_samples
        stack = [(0, [])]
        while stack:
            node, path = stack.pop()
            if left[node] >= 0:
                f, cover = int(feature[node]), weight[node]
                goes_left = x[f] <= threshold[node]
                for child, is_left in ((left[node], True), (right[node], False)):
                    share = weight[child] / cover
                    stack.append((child, [*path, (f, share, goes_left == is_left)]))
                continue
            v = fractions[node, 1] / len(forest.estimators_)
            slots: dict[int, list[float]] = {}
            for f, share, passes in path:
                p, r = slots.get(f, [1.0, 1.0])
                slots[f] = [p * passes, r * share]
            feats = list(slots)
            p = np.array([slots[f][0] for f in feats])
            r = np.array([slots[f][1] for f in feats])
            d = len(feats)
            if d == 0:
                continue
            hankel = _shapley_hankel(d)
            before, after = np.zeros((d, d)), np.zeros((d, d))
            before[0, 0] = after[d - 1, 0] = 1.0
            for i in range(1, d):
                before[i] = before[i - 1] * r[i - 1]
                before[i, 1:] += before[i - 1, :-1] * p[i - 1]
                j = d - 1 - i
                after[j] = after[j + 1] * r[j + 1]
                after[j, 1:] += after[j + 1, :-1] * p[j + 1]
            phi[feats] += v * (p - r) * ((before @ hankel) * after).sum(axis=1)
    return phi


def test_deep_interventional_tree_past_the_table_budget_exits_cleanly_and_exactly(tmp_path):
    script = tmp_path / "deep_tree.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np, pandas as pd
        from sklearn.tree import DecisionTreeRegressor
        from vigil.core.explain.treeshap import tree_shap
        frame = pd.read_csv({str(DATA / "bike_sharing" / "hour.csv")!r})
        X = frame.drop(columns=["instant", "dteday", "casual", "registered", "cnt"])
        model = DecisionTreeRegressor(random_state=0).fit(X, frame["cnt"])
        rows, background = X.sample(40, random_state=1), X.sample(100, random_state=2)
        e = tree_shap(model, rows, background=background, feature_perturbation="interventional")
        out = model.predict(rows)
        scale = np.abs(out) + np.abs(e.expected_value) + np.abs(e.values).sum(axis=1)
        gap = np.abs(e.values.sum(axis=1) + e.expected_value - out) / scale
        np.save({str(tmp_path / "phi.npy")!r}, e.values[:1])
        print(model.get_depth(), model.get_n_leaves(), e.extra["engine"], gap.max())
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    depth, n_leaves, engine, gap = done.stdout.split()
    assert int(depth) > 30 and int(n_leaves) > 15000 and engine == "numba"
    assert float(gap) <= EXACT
    X, y = _bike()
    model = DecisionTreeRegressor(random_state=0).fit(X, y)  # deterministic: the same tree as the subprocess's
    x, background = X.sample(40, random_state=1).to_numpy()[0], X.sample(100, random_state=2).to_numpy()
    exact = _interventional_by_enumeration(lambda a: model.predict(pd.DataFrame(a, columns=X.columns)), x,
                                           background)
    np.testing.assert_allclose(np.load(tmp_path / "phi.npy")[0], exact, rtol=0, atol=EXACT * np.abs(exact).sum())


def test_depth_16_interventional_tree_equals_enumeration():
    X, y = _bike(4000)
    model = DecisionTreeRegressor(max_depth=16, random_state=0).fit(X, y)
    assert model.get_depth() == 16 and X.shape[1] == 12
    rows, background = X.iloc[:3], X.iloc[100:130]
    e = tree_shap(model, rows, background=background, feature_perturbation="interventional")
    assert e.extra["direct_leaves"] > 0  # the leaves the old hand-over to shap got wrong
    predict = lambda a: model.predict(pd.DataFrame(a, columns=X.columns))  # noqa: E731
    for i in range(len(rows)):
        exact = _interventional_by_enumeration(predict, rows.to_numpy()[i], background.to_numpy())
        np.testing.assert_allclose(e.values[i], exact, rtol=0, atol=EXACT * max(1.0, np.abs(exact).sum()))
    tables = tree_shap(model, rows, background=background, feature_perturbation="interventional",
                       table_budget_mb=4096)
    np.testing.assert_allclose(tables.values, e.values, rtol=0, atol=EXACT * np.abs(e.values).sum())


@pytest.fixture(scope="module")
def sst2_forest():
    frame = pd.read_csv(DATA / "sst2" / "sst2_train.csv").sample(800, random_state=0)
    X = CountVectorizer(min_df=2).fit_transform(frame["sentence"]).toarray().astype(np.float64)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, frame["label"])
    return forest, X


def test_bag_of_words_forest_with_hundreds_of_path_features_is_exact(sst2_forest):
    forest, X = sst2_forest
    leaves = treeshap._leaves(treeshap._parse(forest, None), treeshap.TABLE_BUDGET_MB)
    assert np.diff(leaves.slot_start).max() > 100  # far past a 64-bit mask
    rows = X[:3]
    e = tree_shap(forest, rows)
    out = forest.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(e.model_output, out, rtol=0, atol=1e-12)
    scale = np.abs(out) + np.abs(e.expected_value) + np.abs(e.values).sum(axis=1)
    assert np.max(np.abs(e.values.sum(axis=1) + e.expected_value - out) / scale) <= EXACT
    with threadpool_limits(1):  # the reference's many small products: threads only cost here
        for i in range(2):
            np.testing.assert_allclose(e.values[i], _path_dependent_reference(forest, rows[i]), rtol=0, atol=EXACT)


def test_bag_of_words_forest_of_depth_30_matches_shap(sst2_forest):
    shap = pytest.importorskip("shap")
    _, X = sst2_forest
    y = sst2_forest[0].predict(X)  # any labels: only the tree shape matters
    forest = RandomForestClassifier(n_estimators=10, max_depth=30, random_state=0).fit(X, y)
    e = tree_shap(forest, X[:3])
    assert e.extra["direct_leaves"] > 0
    explainer = shap.TreeExplainer(forest)
    theirs = np.asarray(explainer.shap_values(X[:3], check_additivity=False))[..., 1]
    np.testing.assert_allclose(e.values, theirs, rtol=0, atol=EXACT)
    with threadpool_limits(1):
        np.testing.assert_allclose(e.values[0], _path_dependent_reference(forest, X[0]), rtol=0, atol=EXACT)


def _corrupt(run):
    def corrupted(trees, X, background, budget_mb):
        phi, pred, expected, leaves = run(trees, X, background, budget_mb)
        return phi + 1e-3, pred, expected, leaves
    return corrupted


def test_the_efficiency_check_refuses_wrong_values(monkeypatch):
    X, y = _bike(2000)
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(X, y)
    monkeypatch.setattr(treeshap, "_run", _corrupt(treeshap._run))
    with pytest.raises(ExplainError, match=r"efficiency check.*by up to 0\.012"):  # 12 features x 1e-3
        tree_shap(model, X.iloc[:5])


def test_a_failed_check_with_tables_is_recomputed_row_by_row(monkeypatch):
    X, y = _bike(2000)
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(X, y)
    good = tree_shap(model, X.iloc[:5])
    run = treeshap._run
    monkeypatch.setattr(treeshap, "_run", lambda t, x, b, budget: (_corrupt(run) if budget > 0 else run)(t, x, b,
                                                                                                         budget))
    e = tree_shap(model, X.iloc[:5])
    assert e.extra["engine"] == "numba (row by row)" and "efficiency gap 0.012" in e.extra["recomputed"]
    np.testing.assert_allclose(e.values, good.values, rtol=0, atol=1e-9)


def test_the_check_also_guards_the_shap_and_library_engines(monkeypatch):
    X, y = _bike(2000)
    booster = xgb.XGBClassifier(n_estimators=20, max_depth=4).fit(X, y > 150)
    wrong = treeshap._shap_fallback
    monkeypatch.setattr(treeshap, "_shap_fallback", lambda *a: (wrong(*a)[0] * 1.01, wrong(*a)[1]))
    with pytest.raises(ExplainError, match=r"TreeSHAP \(shap\) failed its efficiency check.*probability"):
        tree_shap(booster, X.iloc[:5], background=X.iloc[:50], feature_perturbation="interventional",
                  output="probability")
    native = treeshap._native_contribs
    monkeypatch.setattr(treeshap, "_native_contribs", lambda *a: (native(*a)[0] + 1e-2, *native(*a)[1:]))
    categorical = X.astype({"season": "category"}).iloc[:300]
    model = xgb.XGBClassifier(n_estimators=10, max_depth=3, enable_categorical=True, tree_method="hist")
    model.fit(categorical, y.iloc[:300] > 150)
    with pytest.raises(ExplainError, match=r"xgboost pred_contribs\) failed its efficiency check"):
        tree_shap(model, categorical.iloc[:5])


def test_no_tree_is_handed_to_shaps_interventional_code_past_its_node_limit(monkeypatch):
    X, y = _bike(2000)
    booster = xgb.XGBClassifier(n_estimators=5, max_depth=5).fit(X, y > 150)
    largest = int(np.diff(treeshap._parse(booster, None).tree_node_start).max())
    monkeypatch.setattr(treeshap, "SHAP_INTERVENTIONAL_MAX_NODES", largest - 1)
    with pytest.raises(ExplainError, match=rf"a tree of {largest} nodes.*output='auto' \(log-odds of class 1\)"):
        tree_shap(booster, X.iloc[:5], background=X.iloc[:50], feature_perturbation="interventional",
                  output="probability")
    monkeypatch.setattr(treeshap, "SHAP_INTERVENTIONAL_MAX_NODES", largest)
    e = tree_shap(booster, X.iloc[:5], background=X.iloc[:50], feature_perturbation="interventional",
                  output="probability")
    assert e.extra["engine"] == "shap" and e.extra["efficiency_gap"] <= 1e-7
