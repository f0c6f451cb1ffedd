"""TreeSHAP on the tree models users bring beyond the core three: IsolationForest anomaly scores, CatBoost,
and scikit-learn forests subclassed by other packages.

Real data from ../shared/data (bike sharing hours for regressors and anomaly scores, German credit for
CatBoost with string categorical columns). Oracles: shap's TreeExplainer, exact Shapley values by
enumerating all 4,096 coalitions of the 12 bike-sharing features (the path-dependent game computed from
the trees' own arrays, the interventional game from the model's own ``score_samples``), and the models'
own outputs for efficiency, which is checked on every result.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.ensemble import ExtraTreesRegressor, IsolationForest, RandomForestClassifier, RandomForestRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vigil.core.explain import choose_method, explain
from vigil.core.explain.adapters import ExplainError, as_model_function
from vigil.core.explain.treeshap import tree_shap, tree_supports

EXACT = 1e-9
BIKE_TARGET_AND_LEAKS = ["instant", "dteday", "casual", "registered", "cnt"]


@pytest.fixture(scope="module")
def bike(shared_data):
    hour = pd.read_csv(shared_data / "bike_sharing" / "hour.csv")
    return hour.drop(columns=BIKE_TARGET_AND_LEAKS), hour["cnt"].astype(float)


@pytest.fixture(scope="module")
def german(shared_data):
    frame = pd.read_csv(shared_data / "german_credit" / "german.csv")
    categorical = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c])]
    return frame, categorical


# -- brute force: every coalition of up to ~14 players --------------------------------------------------------

def _shapley_from_game(v: np.ndarray, d: int) -> np.ndarray:
    """Exact Shapley values from a game given on every coalition (v[mask], bit j = player j present)."""
    masks = np.arange(2**d)
    sizes = np.array([bin(m).count("1") for m in masks])
    weight = np.array([math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d) for k in range(d)])
    phi = np.zeros(d)
    for j in range(d):
        without = masks[(masks >> j) & 1 == 0]
        phi[j] = np.sum(weight[sizes[without]] * (v[without | (1 << j)] - v[without]))
    return phi


def _path_dependent_game(trees: list[dict[str, np.ndarray]], x: np.ndarray, d: int) -> np.ndarray:
    """E[sum of trees | x_S], unknown features following the training cover, for every coalition S at once."""
    masks = np.arange(2**d)

    def expect(t: dict[str, np.ndarray], node: int) -> np.ndarray:
        left, right = t["left"][node], t["right"][node]
        if left < 0:
            return np.full(len(masks), float(t["value"][node]))
        f = t["feature"][node]
        known = (masks >> f) & 1 == 1
        e_left, e_right = expect(t, left), expect(t, right)
        if t["cover"][node] > 0:
            mixed = (t["cover"][left] * e_left + t["cover"][right] * e_right) / t["cover"][node]
        else:  # a subtree no training row reached: only a known feature leads into it
            mixed = 0.5 * (e_left + e_right)
        return np.where(known, e_left if t["goes_left"](x, node) else e_right, mixed)

    return sum(expect(t, 0) for t in trees)


def _sklearn_arrays(tree, values, features=None) -> dict:
    feature = tree.feature if features is None else np.where(tree.feature >= 0, np.asarray(features)[tree.feature], -1)
    return {"left": tree.children_left, "right": tree.children_right, "feature": feature,
            "cover": tree.weighted_n_node_samples, "value": values,
            "goes_left": lambda x, n: bool(tree.missing_go_to_left[n]) if np.isnan(x[feature[n]])
            else np.float32(x[feature[n]]) <= tree.threshold[n]}


def _c(n):
    """Mean path length of an unsuccessful search among n points (Liu, Ting and Zhou, 2008)."""
    n = np.asarray(n, dtype=float)
    out = 2.0 * (np.log(np.maximum(n, 3) - 1.0) + np.euler_gamma) - 2.0 * (np.maximum(n, 3) - 1.0) / np.maximum(n, 3)
    return np.where(n <= 1, 0.0, np.where(n == 2, 1.0, out))


def _mean_path_length(forest, rows, max_samples=None):
    """The additive quantity behind score_samples, read back from score_samples itself."""
    return -_c(max_samples or forest.max_samples_) * np.log2(-forest.score_samples(rows))


# -- IsolationForest ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("max_features", [1.0, 0.6], ids=["all-features", "feature-subsets"])
def test_isolation_forest_matches_shap_and_its_anomaly_score(bike, max_features):
    X, _ = bike
    forest = IsolationForest(n_estimators=50, max_samples=256, max_features=max_features, random_state=0).fit(X)
    rows = X.iloc[::97].iloc[:150]
    e = tree_shap(forest, rows)
    reference = shap.TreeExplainer(forest).shap_values(rows)
    assert np.abs(e.values - reference).max() < EXACT
    assert e.output.startswith("mean path length (score_samples = -2 ** (-mean path length / ")
    assert np.abs(e.model_output - _mean_path_length(forest, rows)).max() < EXACT
    assert e.efficiency_gap() < EXACT
    # the explained output is the score's exact monotone transform, and decision_function is the score shifted
    c = _c(forest.max_samples_)
    score = -(2.0 ** (-(e.values.sum(axis=1) + e.expected_value) / c))
    assert np.abs(score - forest.score_samples(rows)).max() < 1e-12
    assert np.abs(score - forest.offset_ - forest.decision_function(rows)).max() < 1e-12
    # the most anomalous row's shortest paths come with negative attributions: it is isolated early
    worst = int(np.argmin(forest.score_samples(rows)))
    assert e.values[worst].sum() < 0


@pytest.mark.parametrize("missing", [0.0, 0.15], ids=["complete", "with-missing-values"])
def test_isolation_forest_path_dependent_equals_enumerated_shapley_values(bike, missing):
    X, _ = bike
    X = X.astype(float).mask(np.random.default_rng(0).random(X.shape) < missing)
    forest = IsolationForest(n_estimators=4, max_samples=16, max_features=0.75, random_state=1).fit(X.iloc[:4000])
    d = X.shape[1]
    trees = []
    for est, features in zip(forest.estimators_, forest.estimators_features_, strict=True):
        tree = est.tree_
        depth = np.zeros(tree.node_count)
        for node in range(tree.node_count):
            if tree.children_left[node] >= 0:
                depth[tree.children_left[node]] = depth[tree.children_right[node]] = depth[node] + 1
        leaf_path_length = (depth + _c(tree.n_node_samples)) / len(forest.estimators_)
        trees.append(_sklearn_arrays(tree, leaf_path_length, features))
    rows = X.iloc[[5, 4321, 9876]].to_numpy()
    e = tree_shap(forest, X.iloc[[5, 4321, 9876]])
    for i, x in enumerate(rows):
        v = _path_dependent_game(trees, x, d)
        assert abs(v[-1] - _mean_path_length(forest, X.iloc[[5, 4321, 9876]])[i]) < EXACT
        assert np.abs(e.values[i] - _shapley_from_game(v, d)).max() < EXACT
        assert abs(e.expected_value[i] - v[0]) < EXACT
    assert e.efficiency_gap() < EXACT


def test_isolation_forest_interventional_equals_enumerated_shapley_values_of_score_samples(bike):
    X, _ = bike
    forest = IsolationForest(n_estimators=6, max_samples=32, random_state=2).fit(X.iloc[:5000])
    background = X.iloc[6000:6010]
    rows = X.iloc[[17, 12000]]
    e = tree_shap(forest, rows, background=background, feature_perturbation="interventional")
    d = X.shape[1]
    masks = np.arange(2**d)
    present = ((masks[:, None] >> np.arange(d)) & 1).astype(bool)
    bg = background.to_numpy()
    for i, x in enumerate(rows.to_numpy()):
        hybrid = np.where(present[:, None, :], x, bg[None, :, :]).reshape(-1, d)
        h = _mean_path_length(forest, pd.DataFrame(hybrid, columns=X.columns)).reshape(len(masks), len(bg))
        assert np.abs(e.values[i] - _shapley_from_game(h.mean(axis=1), d)).max() < EXACT
    assert abs(e.expected_value[0] - _mean_path_length(forest, background).mean()) < EXACT
    assert e.efficiency_gap() < EXACT
    reference = shap.TreeExplainer(forest, data=background, feature_perturbation="interventional")
    assert np.abs(e.values - reference.shap_values(rows)).max() < 1e-6  # shap's interventional sums in float32


def test_isolation_forest_auto_explains_the_score_not_the_label(bike):
    X, _ = bike
    forest = IsolationForest(n_estimators=20, max_samples=64, random_state=0).fit(X.iloc[:3000])
    assert tree_supports(forest) and choose_method(forest, X.shape[1]) == "tree"
    e = explain(forest, X.iloc[:20])
    assert e.method == "tree" and e.output.startswith("mean path length")
    assert np.abs(e.model_output - _mean_path_length(forest, X.iloc[:20])).max() < EXACT
    assert e.efficiency_gap() < EXACT
    f = as_model_function(forest)  # model-agnostic methods explain the score too, never predict()'s +-1
    assert f.output.startswith("anomaly score (score_samples")
    assert np.array_equal(f(X.iloc[:20]), forest.score_samples(X.iloc[:20]))
    pipe = make_pipeline(StandardScaler(), IsolationForest(n_estimators=20, max_samples=64, random_state=0))
    pipe.fit(X.iloc[:3000])
    p = explain(pipe, X.iloc[:20])
    assert p.method == "tree" and p.efficiency_gap() < EXACT
    assert np.abs(p.model_output - _mean_path_length(pipe, X.iloc[:20], pipe[-1].max_samples_)).max() < EXACT
    assert as_model_function(pipe).output.startswith("anomaly score")


def test_isolation_forest_subclass_is_read_like_its_base(bike):
    class Detector(IsolationForest):
        """A package's detector built on scikit-learn's (as pyod's and others are)."""

    X, _ = bike
    forest = Detector(n_estimators=10, max_samples=64, random_state=0).fit(X.iloc[:3000])
    e = explain(forest, X.iloc[:30])
    assert e.method == "tree" and e.output.startswith("mean path length")
    assert np.abs(e.model_output - _mean_path_length(forest, X.iloc[:30])).max() < EXACT
    assert e.efficiency_gap() < EXACT


# -- scikit-learn forests subclassed by other packages ------------------------------------------------------

class _ForestWithStd(RandomForestRegressor):
    """What scikit-optimize does: the same forest, predict(X, return_std=True) also gives a spread."""

    def predict(self, X, return_std=False):
        mean = super().predict(X)
        if return_std:
            return mean, np.std([t.predict(np.asarray(X, dtype=np.float32)) for t in self.estimators_], axis=0)
        return mean


class _ExtraTreesWithStd(ExtraTreesRegressor):
    def predict(self, X, return_std=False):
        mean = super().predict(X)
        return (mean, np.zeros(len(mean))) if return_std else mean


class _ShiftedForest(RandomForestClassifier):
    """A subclass that no longer outputs what its trees add up to."""

    def predict_proba(self, X):
        return np.clip(super().predict_proba(X) + 0.1, 0.0, 1.0)


@pytest.mark.parametrize("cls", [_ForestWithStd, _ExtraTreesWithStd], ids=["random-forest", "extra-trees"])
def test_subclassed_forests_match_shap_and_enumeration(bike, cls):
    X, y = bike
    model = cls(n_estimators=3, max_depth=4, random_state=0).fit(X.iloc[:3000], y.iloc[:3000])
    assert tree_supports(model) and choose_method(model, X.shape[1]) == "tree"
    rows = X.iloc[3000:3100]
    e = tree_shap(model, rows)
    assert np.abs(e.values - shap.TreeExplainer(model).shap_values(rows, check_additivity=False)).max() < EXACT
    assert np.abs(e.model_output - model.predict(rows)).max() < EXACT
    assert e.efficiency_gap() < EXACT and e.output == "regression value"
    trees = [_sklearn_arrays(t.tree_, t.tree_.value[:, 0, 0] / 3) for t in model.estimators_]
    for i in (0, 57):
        v = _path_dependent_game(trees, rows.to_numpy()[i], X.shape[1])
        assert np.abs(e.values[i] - _shapley_from_game(v, X.shape[1])).max() < EXACT


def test_subclass_that_changes_its_output_is_refused(bike):
    X, y = bike
    model = _ShiftedForest(n_estimators=3, max_depth=3, random_state=0).fit(X.iloc[:2000], y.iloc[:2000] > 150)
    with pytest.raises(ExplainError, match="does not output what its trees add up to"):
        tree_shap(model, X.iloc[:5])


# -- CatBoost ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def catboost():
    return pytest.importorskip("catboost")


#: one thread, seeded, and no training logs written into the working directory
CATBOOST_QUIET = {"verbose": 0, "random_seed": 0, "thread_count": 1, "allow_writing_files": False}


def _catboost(cls, frame, target, categorical, **params):
    X = frame.drop(columns=[target])
    model = cls(iterations=40, depth=4, **CATBOOST_QUIET, **params)
    return model.fit(X, frame[target], cat_features=[c for c in categorical if c in X.columns]), X


def test_catboost_regressor_with_string_categories_matches_shap(catboost, german):
    frame, categorical = german
    model, X = _catboost(catboost.CatBoostRegressor, frame, "credit_amount", categorical)
    rows = X.iloc[:200]
    e = tree_shap(model, rows)
    assert e.output == "regression value" and e.extra["engine"] == "catboost ShapValues"
    assert e.extra["trees"] == 40 and e.feature_names == list(X.columns)
    assert np.abs(e.values - shap.TreeExplainer(model).shap_values(rows)).max() < EXACT
    assert np.abs(e.model_output - model.predict(rows)).max() < EXACT
    assert e.efficiency_gap() < EXACT * np.abs(e.model_output).max()
    assert np.abs(e.values[:, X.columns.get_loc("purpose")]).max() > 1.0  # a string column gets its share
    shuffled = tree_shap(model, rows[list(reversed(X.columns))])  # columns are matched by name
    assert shuffled.feature_names == list(X.columns) and np.abs(shuffled.values - e.values).max() == 0.0
    assert explain(model, rows.iloc[:3]).method == "tree"


def test_catboost_binary_explains_log_odds_of_either_class(catboost, german):
    frame, categorical = german
    model, X = _catboost(catboost.CatBoostClassifier, frame, "credit", categorical)
    rows = X.iloc[:200]
    e = tree_shap(model, rows)
    assert e.output == "log-odds of class 2"
    assert np.abs(e.values - shap.TreeExplainer(model).shap_values(rows)).max() < EXACT
    assert np.abs(e.model_output - model.predict(rows, prediction_type="RawFormulaVal")).max() < EXACT
    assert e.efficiency_gap() < EXACT
    good = tree_shap(model, rows, class_index=1)  # a label: class 1 is "good credit", the first class
    assert good.output == "log-odds of class 1"
    assert np.abs(good.values + e.values).max() < EXACT and good.efficiency_gap() < EXACT


def test_catboost_multiclass_explains_the_chosen_class_margin(catboost, german):
    frame, categorical = german
    model, X = _catboost(catboost.CatBoostClassifier, frame, "housing", categorical, loss_function="MultiClass")
    rows = X.iloc[:200]
    e = tree_shap(model, rows, class_index="A153")
    assert e.output == "margin of class A153 (softmax input)"
    reference = shap.TreeExplainer(model).shap_values(rows)
    assert np.abs(e.values - reference[:, :, 2]).max() < EXACT
    assert np.abs(e.model_output - model.predict(rows, prediction_type="RawFormulaVal")[:, 2]).max() < EXACT
    assert e.efficiency_gap() < EXACT
    with pytest.raises(ExplainError, match="class_index"):
        tree_shap(model, rows)


def _oblivious_trees(model, path) -> tuple[list[dict], float]:
    """A numeric CatBoost model's oblivious trees as node arrays (its last split at the root), and its bias."""
    import json

    model.save_model(str(path), format="json")
    doc = json.loads(path.read_text())
    scale, bias = doc["scale_and_bias"]
    flat = {f["feature_index"]: f["flat_feature_index"] for f in doc["features_info"]["float_features"]}
    trees = []
    for tree in doc["oblivious_trees"]:
        splits = tree["splits"]
        depth = len(splits)
        n_inner = 2**depth - 1
        values, weights = np.asarray(tree["leaf_values"]) * scale, np.asarray(tree["leaf_weights"], dtype=float)
        left, right = np.full(2 * n_inner + 1, -1), np.full(2 * n_inner + 1, -1)
        feature, border = np.full(2 * n_inner + 1, -1), np.zeros(2 * n_inner + 1)
        value, cover = np.zeros(2 * n_inner + 1), np.zeros(2 * n_inner + 1)
        for node in range(2 * n_inner + 1):
            level = int(np.floor(np.log2(node + 1)))
            if level < depth:
                left[node], right[node] = 2 * node + 1, 2 * node + 2
                split = splits[depth - 1 - level]
                feature[node], border[node] = flat[split["float_feature_index"]], split["border"]
            else:  # leaf: bit k of CatBoost's leaf index answers split k ("greater than the border")
                leaf = node - n_inner
                value[node], cover[node] = values[leaf], weights[leaf]
        for node in range(n_inner - 1, -1, -1):
            cover[node] = cover[left[node]] + cover[right[node]]
        trees.append({"left": left, "right": right, "feature": feature, "cover": cover, "value": value,
                      "goes_left": lambda x, n, f=feature, b=border: not x[f[n]] > b[n]})
    return trees, float(bias[0])


def test_catboost_numeric_model_equals_enumerated_shapley_values(catboost, bike, tmp_path):
    X, y = bike
    model = catboost.CatBoostRegressor(iterations=6, depth=3, **CATBOOST_QUIET)
    model.fit(X.iloc[:4000], y.iloc[:4000])
    trees, bias = _oblivious_trees(model, tmp_path / "model.json")
    rows = X.iloc[[10, 5000, 15000]]
    e = tree_shap(model, rows)
    for i, x in enumerate(rows.to_numpy(dtype=float)):
        v = _path_dependent_game(trees, x, X.shape[1]) + bias
        assert abs(v[-1] - model.predict(rows)[i]) < EXACT * 1e3  # counts in the hundreds
        assert np.abs(e.values[i] - _shapley_from_game(v, X.shape[1])).max() < EXACT * 1e3
        assert abs(e.expected_value[i] - v[0]) < EXACT * 1e3
    assert e.efficiency_gap() < EXACT * 1e3


def _interventional_game(model, x, background, columns):
    """mean over background rows b of model(x on S, b elsewhere), for every coalition S (bit j = column j)."""
    d = len(columns)
    masks = np.arange(2**d)
    present = ((masks[:, None] >> np.arange(d)) & 1).astype(bool)
    bg = background.to_numpy(dtype=object)
    hybrid = np.where(present[:, None, :], np.asarray(x, dtype=object), bg[None, :, :]).reshape(-1, d)
    frame = pd.DataFrame(hybrid, columns=columns).astype(background.dtypes.to_dict())
    return np.asarray(model.predict(frame, prediction_type="RawFormulaVal")).reshape(len(masks), len(bg)).mean(axis=1)


def test_catboost_interventional_equals_enumerated_shapley_values(catboost, bike, german):
    X, y = bike
    numeric = catboost.CatBoostRegressor(iterations=6, depth=3, **CATBOOST_QUIET)
    numeric.fit(X.iloc[:4000], y.iloc[:4000])
    frame, categorical = german
    frame = frame[list(frame.columns[:12]) + ["credit"]]  # 12 columns, 7 of them strings
    with_strings, X_credit = _catboost(catboost.CatBoostClassifier, frame, "credit", categorical)
    for model, data, rows in ((numeric, X, [17, 12000]), (with_strings, X_credit, [3, 700])):
        background = data.iloc[500:508]
        e = tree_shap(model, data.iloc[rows], background=background, feature_perturbation="interventional")
        assert e.method == "tree_interventional" and e.baseline == "8 background rows"
        for i, row in enumerate(rows):
            v = _interventional_game(model, data.iloc[row].to_numpy(dtype=object), background, list(data.columns))
            scale = max(1.0, float(np.abs(v).max()))
            assert np.abs(e.values[i] - _shapley_from_game(v, data.shape[1])).max() < EXACT * scale
            assert abs(e.expected_value[i] - v[0]) < EXACT * scale
        assert e.efficiency_gap() < EXACT * max(1.0, float(np.abs(e.model_output).max()))
    assert np.abs(e.values[:, list(X_credit.columns).index("status")]).max() > 0.01  # a string column's share


def test_catboost_refusals_name_the_way_out(catboost, german):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    frame, categorical = german
    model, X = _catboost(catboost.CatBoostRegressor, frame, "credit_amount", categorical)
    rows = X.iloc[:5].copy()
    rows.loc[0, "purpose"] = None  # CatBoost cannot read a missing category
    with pytest.raises(ExplainError, match="CatBoost could not explain these rows"):
        tree_shap(model, rows)
    pipe = Pipeline([("same", FunctionTransformer()), ("model", model)])
    with pytest.raises(ExplainError, match="end of a Pipeline"):
        tree_shap(pipe, X.iloc[:5])
