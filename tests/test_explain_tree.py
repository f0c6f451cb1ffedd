"""TreeSHAP (vigil.core.explain.treeshap) against trusted oracles.

Oracles: exact Shapley values by enumerating every coalition (the path-dependent game computed from the
scikit-learn tree arrays, the interventional game from the model's own predict), shap's TreeExplainer
(its C++ Algorithm 2 in float64 for scikit-learn models), and the libraries' own TreeSHAP
(XGBoost pred_contribs, LightGBM pred_contrib). Those two accumulate in float32, so against them the
tolerance is 2e-5 relative to the largest attribution; against the float64 oracles it is 1e-9.
Efficiency (attributions + expected value = explained output) is checked at 1e-9 everywhere.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from vigil.core.explain.adapters import ExplainError
from vigil.core.explain.treeshap import tree_shap, tree_supports

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

EXACT = 1e-9


def _data(n=400, d=4, seed=0, nan=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y_reg = X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=n)
    y_clf = (y_reg + 0.3 * rng.normal(size=n) > 0).astype(int)
    if nan:
        X[rng.random(X.shape) < nan] = np.nan
    return X, y_reg, y_clf


def _close_to_float32(ours, theirs):
    scale = max(1.0, float(np.abs(theirs).max()))
    assert np.abs(ours - theirs).max() <= 2e-5 * scale


def _shapley(game, d):
    """Exact Shapley values of a d-player game given as a function of a frozenset."""
    phi = np.zeros(d)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        for k in range(d):
            for s in itertools.combinations(others, k):
                w = math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d)
                phi[i] += w * (game(frozenset(s) | {i}) - game(frozenset(s)))
    return phi


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


# -- exactness against enumeration -----------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [2, 4])
def test_path_dependent_equals_enumerated_shapley_values(depth):
    X, y, _ = _data(n=300, d=3)
    forest = RandomForestRegressor(n_estimators=3, max_depth=depth, random_state=0).fit(X, y)
    e = tree_shap(forest, X[:6])
    for row in range(6):
        def game(s, x=X[row]):
            return np.mean([_cover_expectation(t.tree_, x, s) for t in forest.estimators_])
        assert np.abs(e.values[row] - _shapley(game, 3)).max() < EXACT
        assert abs(e.expected_value[row] - game(frozenset())) < EXACT
    assert e.efficiency_gap() < EXACT
    assert np.allclose(e.model_output, forest.predict(X[:6]), atol=EXACT)


def test_interventional_equals_enumerated_shapley_values():
    X, y, _ = _data(n=300, d=4)
    model = GradientBoostingRegressor(n_estimators=15, max_depth=3, random_state=0).fit(X, y)
    background = X[100:108]
    e = tree_shap(model, X[:4], background=background, feature_perturbation="interventional")
    for row in range(4):
        def game(s, x=X[row]):
            hybrid = background.copy()
            hybrid[:, list(s)] = x[list(s)]
            return model.predict(hybrid).mean()
        assert np.abs(e.values[row] - _shapley(game, 4)).max() < EXACT
    assert abs(e.expected_value[0] - model.predict(background).mean()) < EXACT
    assert e.baseline == "8 background rows"


def test_leaves_solved_row_by_row_give_the_same_values():
    X, y, _ = _data(n=500, d=6)
    model = GradientBoostingRegressor(n_estimators=10, max_depth=5, random_state=0).fit(X, y)
    tables = tree_shap(model, X[:50])
    direct = tree_shap(model, X[:50], table_budget_mb=0)
    assert direct.extra["direct_leaves"] > 0 and tables.extra["direct_leaves"] == 0
    assert np.abs(tables.values - direct.values).max() < EXACT
    assert direct.efficiency_gap() < EXACT


# -- scikit-learn against shap's C++ TreeSHAP ---------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: DecisionTreeRegressor(max_depth=5, random_state=0),
    lambda: RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0),
    lambda: ExtraTreesRegressor(n_estimators=10, max_depth=6, random_state=0),
    lambda: GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0),
], ids=["tree", "forest", "extra-trees", "gradient-boosting"])
def test_sklearn_regressors_match_shap(make):
    X, y, _ = _data()
    model = make().fit(X, y)
    e = tree_shap(model, X[:100])
    reference = shap.TreeExplainer(model).shap_values(X[:100], check_additivity=False)
    assert np.abs(e.values - reference).max() < EXACT
    assert e.output == "regression value"
    assert e.efficiency_gap() < EXACT
    assert np.allclose(e.model_output, model.predict(X[:100]), atol=EXACT)


def test_random_forest_classifier_explains_probability():
    X, _, y = _data()
    model = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(X, y)
    e = tree_shap(model, X[:100])
    reference = shap.TreeExplainer(model).shap_values(X[:100], check_additivity=False)
    assert e.output == "probability of class 1"
    assert np.abs(e.values - reference[:, :, 1]).max() < EXACT
    assert np.allclose(e.model_output, model.predict_proba(X[:100])[:, 1], atol=EXACT)
    assert e.efficiency_gap() < EXACT
    zero = tree_shap(model, X[:100], class_index=0)
    assert np.allclose(zero.values, -e.values, atol=EXACT) and zero.output == "probability of class 0"


def test_gradient_boosting_classifier_explains_log_odds():
    X, _, y = _data()
    model = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    e = tree_shap(model, X[:100])
    reference = shap.TreeExplainer(model).shap_values(X[:100], check_additivity=False)
    assert e.output == "log-odds of class 1"
    assert np.abs(e.values - reference).max() < EXACT
    assert np.allclose(e.model_output, model.decision_function(X[:100]), atol=EXACT)


def test_hist_gradient_boosting_with_missing_values():
    X, y_reg, y = _data(n=600, nan=0.1)
    clf = HistGradientBoostingClassifier(max_iter=20, max_depth=4, random_state=0).fit(X, y)
    e = tree_shap(clf, X[:100])
    reference = shap.TreeExplainer(clf).shap_values(X[:100], check_additivity=False)
    assert e.output == "log-odds of class 1"
    assert np.abs(e.values - reference).max() < EXACT
    assert np.allclose(e.model_output, clf.decision_function(X[:100]), atol=EXACT)
    reg = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(X, y_reg)
    r = tree_shap(reg, X[:100])
    assert np.allclose(r.model_output, reg.predict(X[:100]), atol=EXACT) and r.efficiency_gap() < EXACT


# -- XGBoost and LightGBM against their own TreeSHAP ---------------------------------------------------------------

def test_xgboost_matches_pred_contribs_and_shap_with_missing_values():
    X, _, y = _data(n=800, d=5, nan=0.15)
    model = xgb.XGBClassifier(n_estimators=60, max_depth=5, random_state=0).fit(X, y)
    e = tree_shap(model, X[:200])
    contribs = model.get_booster().predict(xgb.DMatrix(X[:200]), pred_contribs=True)
    _close_to_float32(e.values, contribs[:, :-1])
    _close_to_float32(e.expected_value, contribs[:, -1])
    _close_to_float32(e.values, shap.TreeExplainer(model).shap_values(X[:200]))
    _close_to_float32(e.model_output, model.predict(X[:200], output_margin=True))
    assert e.output == "log-odds of class 1" and e.efficiency_gap() < EXACT
    booster = tree_shap(model.get_booster(), X[:200], feature_names=[f"f{i}" for i in range(5)])
    assert np.abs(booster.values - e.values).max() < EXACT


def test_xgboost_regressor_and_dataframe_columns_by_name():
    X, y, _ = _data(n=500, d=4)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = xgb.XGBRegressor(n_estimators=40, max_depth=4, random_state=0).fit(frame, y)
    e = tree_shap(model, frame[["d", "c", "b", "a"]].iloc[:50])  # columns are matched by name
    contribs = model.get_booster().predict(xgb.DMatrix(frame.iloc[:50]), pred_contribs=True)
    assert e.feature_names == ["a", "b", "c", "d"]
    _close_to_float32(e.values, contribs[:, :-1])
    _close_to_float32(e.model_output, model.predict(frame.iloc[:50]))


def test_lightgbm_matches_pred_contrib_with_every_missing_mode():
    X, y, _ = _data(n=800, d=4)
    X_train = X.copy()
    X_train[::7, 0] = np.nan  # feature 0 learns where NaN goes; the others never saw one
    X_test = X[:150].copy()
    X_test[::3, 1] = np.nan
    X_test[::5, 2] = 0.0
    for zero_as_missing in (False, True):
        model = lgb.LGBMRegressor(n_estimators=40, num_leaves=15, zero_as_missing=zero_as_missing,
                                  verbose=-1).fit(X_train, y)
        e = tree_shap(model, X_test)
        contribs = model.booster_.predict(X_test, pred_contrib=True)
        _close_to_float32(e.values, contribs[:, :-1])
        _close_to_float32(e.model_output, model.predict(X_test))
        assert e.efficiency_gap() < EXACT


def test_multiclass_boosters_explain_the_chosen_class_margin():
    X, y, _ = _data(n=600, d=4)
    labels = np.digitize(y, [-0.5, 0.5])
    model = xgb.XGBClassifier(n_estimators=30, max_depth=4, random_state=0).fit(X, labels)
    e = tree_shap(model, X[:100], class_index=2)
    contribs = model.get_booster().predict(xgb.DMatrix(X[:100]), pred_contribs=True)
    _close_to_float32(e.values, contribs[:, 2, :-1])
    _close_to_float32(e.model_output, model.predict(X[:100], output_margin=True)[:, 2])
    assert e.output == "margin of class 2 (softmax input)"
    light = lgb.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1).fit(X, labels)
    f = tree_shap(light, X[:100], class_index=1)
    contribs = light.booster_.predict(X[:100], pred_contrib=True).reshape(100, 3, 5)
    _close_to_float32(f.values, contribs[:, 1, :-1])
    with pytest.raises(ExplainError, match="class_index"):
        tree_shap(model, X[:5])


# -- interventional --------------------------------------------------------------------------------------------------

def test_interventional_matches_shap_and_caps_the_background():
    X, _, y = _data(n=800, d=5)
    model = xgb.XGBClassifier(n_estimators=40, max_depth=4, random_state=0).fit(X, y)
    e = tree_shap(model, X[:80], background=X[200:700], feature_perturbation="interventional", max_background=100)
    assert e.method == "tree_interventional" and e.baseline == "100 background rows (sampled from 500)"
    picked = np.sort(np.random.default_rng(0).choice(500, size=100, replace=False))
    background = X[200:700][picked]
    explainer = shap.TreeExplainer(model, data=background, feature_perturbation="interventional")
    _close_to_float32(e.values, explainer.shap_values(X[:80]))
    _close_to_float32(e.expected_value, model.predict(background, output_margin=True).mean())
    assert e.efficiency_gap() < EXACT


def test_interventional_probability_of_a_booster():
    X, _, y = _data(n=500, d=4)
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    e = tree_shap(model, X[:20], background=X[100:150], feature_perturbation="interventional", output="probability")
    assert e.output == "probability of class 1"
    assert np.allclose(e.values.sum(axis=1) + e.expected_value, model.predict_proba(X[:20])[:, 1], atol=1e-6)
    with pytest.raises(ExplainError, match="interventional"):
        tree_shap(model, X[:20], output="probability")


# -- pipelines -------------------------------------------------------------------------------------------------------

def _census(n=600, seed=0):
    rng = np.random.default_rng(seed)
    work = rng.choice(["private", "state", "self", "federal"], size=n)
    age = rng.integers(18, 70, size=n).astype(float)
    hours = rng.normal(40, 8, size=n)
    z = 0.04 * (age - 40) + 0.05 * (hours - 40) + np.where(work == "self", 0.8, 0.0) + rng.normal(size=n)
    frame = pd.DataFrame({"age": age, "workclass": work, "hours": hours})
    return frame, (z > 0).astype(int)


@pytest.mark.parametrize("final", [
    lambda: RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0),
    lambda: xgb.XGBClassifier(n_estimators=30, max_depth=4, random_state=0),
], ids=["forest", "xgboost"])
def test_pipeline_one_hot_columns_sum_back_to_their_raw_column(final):
    frame, y = _census()
    prep = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["workclass"]),
                              ("num", StandardScaler(), ["age", "hours"])])
    pipe = Pipeline([("prep", prep), ("model", final())]).fit(frame, y)
    rows = frame.iloc[:60]
    e = tree_shap(pipe, rows)
    assert e.feature_names == ["age", "workclass", "hours"]
    assert e.extra["transformed_features"] == 6
    assert e.efficiency_gap() < EXACT
    transformed = pipe[:-1].transform(rows)
    reference = shap.TreeExplainer(pipe[-1]).shap_values(transformed, check_additivity=False)
    if reference.ndim == 3:
        reference = reference[:, :, 1]
    names = list(pipe[:-1].get_feature_names_out())
    one_hot = [i for i, n in enumerate(names) if n.startswith("cat__workclass")]
    tolerance = 2e-5 if isinstance(pipe[-1], xgb.XGBClassifier) else EXACT
    assert np.abs(e.values[:, 1] - reference[:, one_hot].sum(axis=1)).max() < tolerance
    assert np.abs(e.values[:, 0] - reference[:, names.index("num__age")]).max() < tolerance
    pd.testing.assert_frame_equal(e.data, rows.reset_index(drop=True))


def test_pipeline_interventional_uses_raw_background_rows():
    frame, y = _census()
    prep = ColumnTransformer([("cat", OneHotEncoder(drop="first"), ["workclass"])], remainder="passthrough")
    pipe = Pipeline([("prep", prep), ("model", GradientBoostingClassifier(n_estimators=10, random_state=0))])
    pipe.fit(frame, y)
    e = tree_shap(pipe, frame.iloc[:20], background=frame.iloc[100:140], feature_perturbation="interventional")
    assert sorted(e.feature_names) == ["age", "hours", "workclass"]
    assert e.efficiency_gap() < EXACT
    assert np.allclose(e.model_output, pipe.decision_function(frame.iloc[:20]), atol=EXACT)


# -- errors and support ------------------------------------------------------------------------------------------------

def test_non_tree_models_are_refused_with_a_pointer():
    X, _, y = _data(n=100)
    linear = LogisticRegression().fit(X, y)
    assert not tree_supports(linear)
    assert tree_supports(Pipeline([("scale", StandardScaler()), ("tree", DecisionTreeClassifier().fit(X, y))]))
    with pytest.raises(ExplainError, match="model-agnostic"):
        tree_shap(linear, X[:5])
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    with pytest.raises(ExplainError, match="background"):
        tree_shap(forest, X[:5], feature_perturbation="interventional")
    with pytest.raises(ExplainError, match="feature_perturbation"):
        tree_shap(forest, X[:5], feature_perturbation="tree_path")
    with pytest.raises(ExplainError, match="lack the model's input column"):
        tree_shap(xgb.XGBClassifier(n_estimators=2).fit(pd.DataFrame(X, columns=list("abcd")), y),
                  pd.DataFrame(X[:, :3], columns=list("abc")))


def test_explanation_records_the_run():
    X, y, _ = _data(n=200)
    e = tree_shap(GradientBoostingRegressor(n_estimators=5, max_depth=2).fit(X, y), X[:3])
    assert e.method == "tree" and e.baseline == "training data (tree cover weights)"
    assert e.extra["trees"] == 5 and e.extra["max_depth"] == 2 and e.extra["engine"] == "numba"
    assert "compile_s" in e.extra and e.extra["model_calls"] == 0
    assert list(e.data.columns) == ["x0", "x1", "x2", "x3"]


def test_categorical_splits_use_the_library_treeshap():
    X, y, _ = _data(n=600, d=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["colour"] = pd.Categorical(np.random.default_rng(1).choice(["red", "green", "blue"], size=600))
    model = lgb.LGBMRegressor(n_estimators=20, min_data_per_group=5, cat_smooth=1, verbose=-1)
    model.fit(frame, y + (frame["colour"] == "red"))
    e = tree_shap(model, frame.iloc[:50])
    assert e.extra["engine"] == "lightgbm pred_contribs"
    assert np.allclose(e.model_output, model.predict(frame.iloc[:50]), atol=EXACT)
    assert e.efficiency_gap() < EXACT and np.abs(e.values[:, 3]).max() > 0.1
