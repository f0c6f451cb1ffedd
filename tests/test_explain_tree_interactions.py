"""SHAP interaction values and all-class TreeSHAP (vigil.core.explain.tree_interactions) against trusted oracles.

Oracles: the Shapley interaction index of the path-dependent game enumerated over every coalition (the
game computed from the scikit-learn tree arrays), shap's TreeExplainer.shap_interaction_values (its C++
in float64 for scikit-learn models; for XGBoost it hands over to XGBoost's pred_interactions, float32),
and tree_shap class by class. Data: the bike-sharing hourly records (real, numeric) from /work/shared/data.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from vigil.core.explain import tree_interactions
from vigil.core.explain.adapters import ExplainError
from vigil.core.explain.explanation import Explanation
from vigil.core.explain.tree_interactions import tree_shap_classes, tree_shap_interactions
from vigil.core.explain.treeshap import tree_shap

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

EXACT = 1e-9
DATA = Path("/work/shared/data/bike_sharing/hour.csv")
if not DATA.exists():
    DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bike_sharing" / "hour.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "temp", "atemp", "hum", "windspeed"]


@pytest.fixture(scope="module")
def bike():
    if not DATA.exists():
        pytest.skip("bike-sharing data not found")
    frame = pd.read_csv(DATA)
    return frame.sample(n=3000, random_state=0).reset_index(drop=True)


def _cover_expectation(tree, x, known, node=0):
    """E[tree(x) | x_known] with unknown features split by training cover (the path-dependent game)."""
    left, right = tree.children_left[node], tree.children_right[node]
    if left < 0:
        return float(tree.value[node, 0, 0])
    f = tree.feature[node]
    if f in known:
        go_left = np.float32(x[f]) <= tree.threshold[node]
        return _cover_expectation(tree, x, known, left if go_left else right)
    w = tree.weighted_n_node_samples
    return (w[left] * _cover_expectation(tree, x, known, left)
            + w[right] * _cover_expectation(tree, x, known, right)) / w[node]


def _enumerated_interactions(game, d):
    """shap's interaction matrix by enumeration: half the Shapley interaction index off the diagonal, the rest of
    each Shapley value on it."""
    value = {frozenset(s): game(frozenset(s)) for k in range(d + 1) for s in itertools.combinations(range(d), k)}
    phi = np.zeros(d)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        for k in range(d):
            for s in itertools.combinations(others, k):
                w = math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d)
                phi[i] += w * (value[frozenset(s) | {i}] - value[frozenset(s)])
    out = np.zeros((d, d))
    for i, j in itertools.permutations(range(d), 2):
        rest = [m for m in range(d) if m not in (i, j)]
        for k in range(d - 1):
            for s in itertools.combinations(rest, k):
                s = frozenset(s)
                w = math.factorial(k) * math.factorial(d - k - 2) / math.factorial(d - 1)
                out[i, j] += 0.5 * w * (value[s | {i, j}] - value[s | {i}] - value[s | {j}] + value[s])
    for i in range(d):
        out[i, i] = phi[i] - out[i].sum()
    return out, phi


# -- interaction values: exactness against enumeration ---------------------------------------------------------------

@pytest.mark.parametrize("depth", [3, 6])
def test_interactions_equal_the_enumerated_shapley_interaction_index(bike, depth):
    cols = ["hr", "temp", "hum", "workingday", "windspeed"]
    X, y = bike[cols].to_numpy(dtype=float), bike["cnt"].to_numpy(dtype=float)
    forest = RandomForestRegressor(n_estimators=3, max_depth=depth, random_state=0).fit(X[:2000], y[:2000])
    e = tree_shap_interactions(forest, X[2000:2005], feature_names=cols)
    assert e.interactions.shape == (5, 5, 5)
    for row in range(5):
        def game(s, x=X[2000 + row]):
            return np.mean([_cover_expectation(t.tree_, x, s) for t in forest.estimators_])
        reference, phi = _enumerated_interactions(game, 5)
        assert np.abs(e.interactions[row] - reference).max() < EXACT * max(1.0, np.abs(reference).max())
        assert np.abs(e.values[row] - phi).max() < EXACT * max(1.0, np.abs(phi).max())
        assert abs(e.expected_value[row] - game(frozenset())) < EXACT * abs(game(frozenset()))
    assert np.abs(e.model_output - forest.predict(X[2000:2005])).max() < 1e-9 * np.abs(y).max()
    assert e.efficiency_gap() < 1e-9 * np.abs(y).max()


def test_interactions_are_symmetric_and_sum_to_tree_shap(bike):
    X, y = bike[FEATURES], bike["cnt"]
    model = GradientBoostingRegressor(n_estimators=30, max_depth=4, random_state=0).fit(X[:2000], y[:2000])
    e = tree_shap_interactions(model, X[2000:2100])
    plain = tree_shap(model, X[2000:2100])
    scale = np.abs(plain.values).max()
    assert e.feature_names == FEATURES
    assert np.abs(e.interactions - e.interactions.transpose(0, 2, 1)).max() < EXACT * scale
    assert np.abs(e.values - plain.values).max() < EXACT * scale
    assert np.abs(e.expected_value - plain.expected_value).max() < EXACT * scale
    assert e.efficiency_gap() < EXACT * scale


# -- interaction values: against shap --------------------------------------------------------------------------------

def test_interactions_match_shap_for_a_forest_classifier(bike):
    X, y = bike[FEATURES].to_numpy(dtype=float), (bike["cnt"] > bike["cnt"].median()).to_numpy()
    forest = RandomForestClassifier(n_estimators=8, max_depth=7, random_state=0).fit(X[:2000], y[:2000])
    rows = X[2000:2060]
    e = tree_shap_interactions(forest, rows)
    reference = np.asarray(shap.TreeExplainer(forest).shap_interaction_values(rows))
    reference = reference[..., 1] if reference.ndim == 4 else reference[1]
    assert e.output == "probability of class True"
    assert np.abs(e.interactions - reference).max() < EXACT
    assert e.efficiency_gap() < EXACT


def test_interactions_match_shap_for_xgboost_with_missing_values(bike):
    X = bike[FEATURES].to_numpy(dtype=float)
    X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    y = (bike["cnt"] > bike["cnt"].median()).to_numpy(dtype=int)
    model = xgb.XGBClassifier(n_estimators=40, max_depth=5, random_state=0).fit(X[:2000], y[:2000])
    rows = X[2000:2100]
    e = tree_shap_interactions(model, rows)
    reference = np.asarray(shap.TreeExplainer(model).shap_interaction_values(rows), dtype=np.float64)
    # shap hands XGBoost models to XGBoost's pred_interactions, which accumulates in float32
    assert np.abs(e.interactions - reference).max() <= 2e-5 * max(1.0, np.abs(reference).max())
    assert e.efficiency_gap() < EXACT


def test_leaves_without_tables_and_chunked_tables_give_the_same_values(bike, monkeypatch):
    X, y = bike[FEATURES], bike["cnt"]
    model = lgb.LGBMRegressor(n_estimators=20, num_leaves=31, verbose=-1).fit(X[:2000], y[:2000])
    rows = X[2000:2040]
    tables = tree_shap_interactions(model, rows)
    chunked = tree_shap_interactions(model, rows, table_budget_mb=0.01)
    monkeypatch.setattr(tree_interactions, "INTERACTION_TABLE_MAX_SLOTS", 0)
    direct = tree_shap_interactions(model, rows)
    scale = np.abs(tables.interactions).max()
    assert np.abs(tables.interactions - chunked.interactions).max() < EXACT * scale
    assert np.abs(tables.interactions - direct.interactions).max() < EXACT * scale
    assert np.abs(tables.values - tree_shap(model, rows).values).max() < EXACT * scale


def test_pipeline_interactions_sum_back_to_raw_columns(bike):
    frame = bike[["season", "temp", "hum"]].assign(season=bike["season"].map({1: "w", 2: "sp", 3: "su", 4: "f"}))
    prep = ColumnTransformer([("cat", OneHotEncoder(), ["season"])], remainder="passthrough")
    pipe = Pipeline([("prep", prep), ("model", RandomForestRegressor(n_estimators=5, max_depth=5, random_state=0))])
    pipe.fit(frame[:2000], bike["cnt"][:2000])
    rows = frame[2000:2030]
    e = tree_shap_interactions(pipe, rows)
    plain = tree_shap(pipe, rows)
    assert e.feature_names == ["season", "temp", "hum"] and e.interactions.shape == (30, 3, 3)
    scale = np.abs(plain.values).max()
    assert np.abs(e.values - plain.values).max() < EXACT * scale
    transformed = pipe[:-1].transform(rows)
    inner = tree_shap_interactions(pipe[-1], transformed)
    # the four season columns' block, summed, is the season-season entry
    assert np.abs(inner.interactions[:, :4, :4].sum(axis=(1, 2)) - e.interactions[:, 0, 0]).max() < EXACT * scale


def test_interaction_refusals_name_the_way_out(bike):
    with pytest.raises(ExplainError, match="tree ensembles"):
        tree_shap_interactions(LinearRegression().fit(bike[FEATURES], bike["cnt"]), bike[FEATURES][:3])
    cat = bike[["temp", "hum"]].assign(season=bike["season"].astype("category"))
    hgb = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(cat, bike["cnt"])
    with pytest.raises(ExplainError, match="categorical"):
        tree_shap_interactions(hgb, cat[:3])


# -- the Explanation carrying them ------------------------------------------------------------------------------------

def test_explanation_carries_interactions_and_their_global_importance(bike):
    X, y = bike[FEATURES], bike["cnt"]
    model = RandomForestRegressor(n_estimators=5, max_depth=6, random_state=0).fit(X[:2000], y[:2000])
    e = tree_shap_interactions(model, X[2000:2050])
    frame = e.interaction_importance()
    assert list(frame.columns) == ["feature_a", "feature_b", "mean_abs_interaction"]
    assert len(frame) == len(FEATURES) * (len(FEATURES) - 1) // 2
    assert frame["mean_abs_interaction"].is_monotonic_decreasing
    top = frame.iloc[0]
    a, b = FEATURES.index(top["feature_a"]), FEATURES.index(top["feature_b"])
    assert top["mean_abs_interaction"] == pytest.approx(np.abs(e.interactions[:, a, b]).mean())
    matrix = e.interaction_importance(matrix=True)
    assert matrix.shape == (len(FEATURES), len(FEATURES))
    assert np.allclose(matrix.to_numpy(), matrix.to_numpy().T)
    assert e[3:5].interactions.shape == (2, len(FEATURES), len(FEATURES))
    assert np.array_equal(e[4].interactions[0], e.interactions[4])
    with pytest.raises(ValueError, match="interactions of shape"):
        Explanation(method="tree", output="v", feature_names=["a"], values=np.zeros((2, 1)), expected_value=0.0,
                    model_output=0.0, baseline="b", interactions=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="no interaction values"):
        tree_shap(model, X[:2]).interaction_importance()


# -- every class in one pass ----------------------------------------------------------------------------------------

def _weather(bike):
    return bike[FEATURES].to_numpy(dtype=float), bike["weathersit"].to_numpy()  # classes 1..3 in this sample


@pytest.mark.parametrize("make", [
    lambda: RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0),
    lambda: xgb.XGBClassifier(n_estimators=15, max_depth=4, random_state=0),
    lambda: lgb.LGBMClassifier(n_estimators=15, num_leaves=15, verbose=-1),
    lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
], ids=["forest", "xgboost", "lightgbm", "hist-gradient-boosting"])
def test_all_classes_in_one_pass_equal_each_class_alone(bike, make):
    X, y = _weather(bike)
    if isinstance(make(), xgb.XGBClassifier):
        y = np.unique(y, return_inverse=True)[1]
    model = make().fit(X[:2000], y[:2000])
    rows = X[2000:2080]
    out = tree_shap_classes(model, rows)
    classes = list(model.classes_)
    assert len(out) == len(classes) == 3
    for position, (e, label) in enumerate(zip(out, classes, strict=True)):
        alone = tree_shap(model, rows, class_index=label)
        assert e.output == alone.output
        assert np.abs(e.values - alone.values).max() < EXACT
        assert np.abs(e.expected_value - alone.expected_value).max() < EXACT
        assert np.abs(e.model_output - alone.model_output).max() < EXACT
        assert e.efficiency_gap() < EXACT
        assert e.extra["classes_in_one_pass"] == 3, position
    stacked = np.stack([e.values for e in out], axis=-1)
    if isinstance(model, RandomForestClassifier | xgb.XGBClassifier):
        reference = np.asarray(shap.TreeExplainer(model).shap_values(rows), dtype=np.float64)
        tolerance = EXACT if isinstance(model, RandomForestClassifier) else 2e-5 * max(1.0, np.abs(reference).max())
        assert np.abs(stacked - reference).max() < tolerance
    if isinstance(model, RandomForestClassifier):
        assert np.allclose(np.stack([e.model_output for e in out], axis=-1), model.predict_proba(rows), atol=EXACT)


def test_all_classes_interventional_and_binary_boosters(bike):
    X, y = _weather(bike)
    y = np.unique(y, return_inverse=True)[1]
    background = X[2500:2540]
    model = xgb.XGBClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X[:2000], y[:2000])
    out = tree_shap_classes(model, X[2000:2030], background=background, feature_perturbation="interventional")
    for c, e in enumerate(out):
        alone = tree_shap(model, X[2000:2030], class_index=c, background=background,
                          feature_perturbation="interventional")
        assert np.abs(e.values - alone.values).max() < EXACT and e.efficiency_gap() < EXACT
        assert e.baseline == "40 background rows"
    binary = xgb.XGBClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X[:2000], y[:2000] == 0)
    negative, positive = tree_shap_classes(binary, X[2000:2030])
    assert positive.output == "log-odds of class 1"
    assert np.abs(negative.values + positive.values).max() < EXACT
    assert np.abs(positive.values - tree_shap(binary, X[2000:2030]).values).max() < EXACT


def test_all_classes_refusals(bike):
    X, y = bike[FEATURES], bike["cnt"]
    with pytest.raises(ExplainError, match="classifiers"):
        tree_shap_classes(RandomForestRegressor(n_estimators=2, max_depth=2).fit(X, y), X[:2])
    forest = RandomForestClassifier(n_estimators=2, max_depth=2).fit(X, y > 100)
    with pytest.raises(ExplainError, match="background"):
        tree_shap_classes(forest, X[:2], feature_perturbation="interventional")
    with pytest.raises(ExplainError, match="feature_perturbation"):
        tree_shap_classes(forest, X[:2], feature_perturbation="marginal")
