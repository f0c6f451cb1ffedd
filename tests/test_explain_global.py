"""Global explanations against their oracles: scikit-learn's permutation importance and partial dependence
(same permutations, same grid: equal numbers), SHAP's TreeExplainer for real attributions, SciPy's Spearman
correlation, and hand-computed drift scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import inspection
from sklearn.compose import make_column_transformer
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, make_scorer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from vigil.core.explain.adapters import ExplainError
from vigil.core.explain.explanation import Explanation
from vigil.core.explain.importance import (
    DRIFT_THRESHOLD,
    explanation_drift,
    mean_abs_importance,
    partial_dependence,
    partial_dependence_figure,
    permutation_importance,
)


@pytest.fixture(scope="module")
def mixed():
    """Numeric and categorical inputs; y depends on a, plan and b, never on noise."""
    rng = np.random.default_rng(7)
    n = 600
    X = pd.DataFrame({
        "a": rng.normal(size=n),
        "b": rng.uniform(0, 5, n),
        "noise": rng.normal(size=n),
        "plan": rng.choice(["basic", "pro", "max"], n),
        "visits": rng.integers(0, 20, n),
    })
    logit = 1.5 * X["a"] + 1.2 * (X["plan"] == "pro") - 0.6 * X["b"] + 0.05 * X["visits"] + 1.0
    y = (logit + rng.logistic(size=n) * 0.5 > 0).astype(int)
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def mixed_pipeline(mixed):
    X, y = mixed
    pre = make_column_transformer((OneHotEncoder(sparse_output=False), ["plan"]), remainder="passthrough")
    return make_pipeline(pre, GradientBoostingClassifier(n_estimators=40, random_state=0)).fit(X, y)


def _by_feature(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame.set_index("feature")[column]


# -- mean |attribution| ----------------------------------------------------------------------------------------


def test_mean_abs_importance_equals_numpy_and_ranks():
    values = np.array([[0.5, -2.0, 0.0], [-1.5, 1.0, 0.1], [1.0, -3.0, -0.1]])
    e = Explanation(method="exact", output="model output", feature_names=["x", "y", "z"], values=values,
                    expected_value=0.0, model_output=values.sum(axis=1), baseline="zeros")
    frame = mean_abs_importance(e)
    assert frame["feature"].tolist() == ["y", "x", "z"]
    assert frame["rank"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(_by_feature(frame, "mean_abs_attribution")[["x", "y", "z"]],
                               np.abs(values).mean(axis=0))
    np.testing.assert_allclose(_by_feature(frame, "mean_attribution")[["x", "y", "z"]], values.mean(axis=0))
    with pytest.raises(ExplainError, match="expected an Explanation"):
        mean_abs_importance(values)


# -- permutation importance: scikit-learn is the oracle ------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7])
def test_permutation_importance_equals_sklearn_on_arrays(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] - 0.5 * X[:, 2] + rng.normal(0, 0.5, 300) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    ours = permutation_importance(model, X, y, n_repeats=6, seed=seed, feature_names=["f0", "f1", "f2", "f3"])
    theirs = inspection.permutation_importance(model, X, y, n_repeats=6, random_state=seed)
    np.testing.assert_allclose(_by_feature(ours, "importance_mean")[["f0", "f1", "f2", "f3"]],
                               theirs.importances_mean, atol=1e-12)
    np.testing.assert_allclose(_by_feature(ours, "importance_std")[["f0", "f1", "f2", "f3"]],
                               theirs.importances_std, atol=1e-12)
    assert ours["feature"].iloc[0] == "f0"
    assert ours.attrs["metric"] == "accuracy"
    assert ours.attrs["baseline_score"] == pytest.approx(model.score(X, y))


@pytest.mark.parametrize("metric", ["roc_auc", "neg_log_loss", "accuracy", "f1", "neg_brier_score",
                                    "average_precision", "matthews_corrcoef"])
def test_permutation_importance_equals_sklearn_through_a_pipeline_on_mixed_columns(mixed, mixed_pipeline, metric):
    X, y = mixed
    ours = permutation_importance(mixed_pipeline, X, y, metric=metric, n_repeats=4, seed=3)
    theirs = inspection.permutation_importance(mixed_pipeline, X, y, scoring=metric, n_repeats=4, random_state=3)
    names = list(X.columns)
    np.testing.assert_allclose(_by_feature(ours, "importance_mean")[names], theirs.importances_mean, atol=1e-12)
    np.testing.assert_allclose(_by_feature(ours, "importance_std")[names], theirs.importances_std, atol=1e-12)
    if metric in ("roc_auc", "neg_log_loss"):
        assert ours["feature"].iloc[0] == "a"
        assert abs(_by_feature(ours, "importance_mean")["noise"]) < 0.3 * ours["importance_mean"].iloc[0]
    # batched: one call for the baseline and one per permuted column, whatever n_repeats
    if metric != "matthews_corrcoef":
        assert ours.attrs["model_calls"] == 1 + len(names)


def test_permutation_importance_equals_sklearn_for_regressors_and_scorers(mixed):
    X, _ = mixed
    Xn = X[["a", "b", "noise", "visits"]]
    target = 2 * Xn["a"] - Xn["b"] ** 2 + 0.1 * np.random.default_rng(1).normal(size=len(Xn))
    model = GradientBoostingRegressor(n_estimators=30, random_state=0).fit(Xn, target)
    for metric, scoring in [("auto", None), ("neg_mean_absolute_error", "neg_mean_absolute_error"),
                            ("neg_root_mean_squared_error", "neg_root_mean_squared_error")]:
        ours = permutation_importance(model, Xn, target, metric=metric, n_repeats=3, seed=11)
        theirs = inspection.permutation_importance(model, Xn, target, scoring=scoring, n_repeats=3, random_state=11)
        np.testing.assert_allclose(_by_feature(ours, "importance_mean")[list(Xn.columns)], theirs.importances_mean,
                                   atol=1e-12)
    assert ours.attrs["metric"] == "neg_root_mean_squared_error"
    classifier = LogisticRegression().fit(Xn, target > 0)
    scorer = make_scorer(balanced_accuracy_score)
    ours = permutation_importance(classifier, Xn, target > 0, metric=scorer, n_repeats=3, seed=2)
    theirs = inspection.permutation_importance(classifier, Xn, target > 0, scoring=scorer, n_repeats=3,
                                               random_state=2)
    np.testing.assert_allclose(_by_feature(ours, "importance_mean")[list(Xn.columns)], theirs.importances_mean,
                               atol=1e-12)


def test_permutation_importance_errors_name_the_argument(mixed, mixed_pipeline):
    X, y = mixed
    with pytest.raises(ExplainError, match="metric='auc_roc' is not known"):
        permutation_importance(mixed_pipeline, X, y, metric="auc_roc")
    with pytest.raises(ExplainError, match="y has 10 values for 600 rows"):
        permutation_importance(mixed_pipeline, X, y[:10])
    with pytest.raises(ExplainError, match=r"data lacks the model's input column\(s\) \['plan'\]"):
        permutation_importance(mixed_pipeline, X.drop(columns="plan"), y)
    with pytest.raises(ExplainError, match="n_repeats=0"):
        permutation_importance(mixed_pipeline, X, y, n_repeats=0)


# -- partial dependence: scikit-learn's brute method is the oracle -------------------------------------------


@pytest.mark.parametrize("model_kind", ["gradient_boosting", "logistic_pipeline", "regressor"])
def test_partial_dependence_equals_sklearn_brute(mixed, model_kind):
    X, y = mixed
    Xn = X[["a", "b", "noise", "visits"]]
    if model_kind == "gradient_boosting":
        model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(Xn, y)
    elif model_kind == "logistic_pipeline":
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(Xn, y)
    else:
        model = GradientBoostingRegressor(n_estimators=30, random_state=0).fit(Xn, Xn["a"] * Xn["b"])
    for feature in ["a", "visits"]:
        ours = partial_dependence(model, Xn, feature, kind="both", sample=None)
        average = ours[ours["kind"] == "average"]
        grid = average["value"].to_numpy(dtype=float)
        # scikit-learn refuses integer columns (ours are put on the grid as floats): give it floats
        theirs = inspection.partial_dependence(model, Xn.astype(float), [feature], method="brute", kind="both",
                                               custom_values={feature: grid})
        np.testing.assert_allclose(average["prediction"], theirs["average"][0], rtol=0, atol=1e-9)
        ice = ours[ours["kind"] == "individual"]
        ice_matrix = ice["prediction"].to_numpy().reshape(len(grid), len(Xn)).T
        np.testing.assert_allclose(ice_matrix, theirs["individual"][0], rtol=0, atol=1e-9)
        assert ice["row"].to_numpy().reshape(len(grid), len(Xn))[0].tolist() == list(range(len(Xn)))
    expected = "regression value" if model_kind == "regressor" else "probability of class 1"
    assert ours.attrs["output"] == expected


def test_partial_dependence_grid_is_quantiles_or_the_distinct_values(mixed, mixed_pipeline):
    X, _ = mixed
    frame = partial_dependence(mixed_pipeline, X, "a", grid=15)
    np.testing.assert_allclose(frame["value"].to_numpy(dtype=float),
                               np.quantile(X["a"], np.linspace(0.05, 0.95, 15)))
    assert frame["kind"].unique().tolist() == ["average"] and frame["row"].isna().all()
    # visits has 20 distinct values: all of them form the default 20-point grid
    visits = partial_dependence(mixed_pipeline, X, "visits")
    assert visits["value"].tolist() == sorted(X["visits"].unique().astype(float).tolist())


def test_partial_dependence_categorical_feature_through_a_pipeline(mixed, mixed_pipeline):
    X, _ = mixed
    ours = partial_dependence(mixed_pipeline, X, "plan", kind="both", sample=None)
    average = ours[ours["kind"] == "average"]
    assert average["value"].tolist() == ["basic", "max", "pro"]
    theirs = inspection.partial_dependence(mixed_pipeline, X, ["plan"], method="brute", kind="average",
                                           categorical_features=["plan"],
                                           custom_values={"plan": np.array(["basic", "max", "pro"], dtype=object)})
    np.testing.assert_allclose(average["prediction"], theirs["average"][0], atol=1e-9)
    # the data say "pro" raises the probability
    assert average.set_index("value")["prediction"].idxmax() == "pro"


def test_partial_dependence_sample_average_is_the_mean_of_its_ice_curves(mixed, mixed_pipeline):
    X, _ = mixed
    frame = partial_dependence(mixed_pipeline, X, "b", kind="both", sample=100, seed=4, grid=[0.5, 2.5, 4.5])
    ice = frame[frame["kind"] == "individual"]
    rows = ice["row"].unique()
    assert len(rows) == 100 and rows.min() >= 0 and rows.max() < len(X)
    np.testing.assert_allclose(frame[frame["kind"] == "average"]["prediction"],
                               ice.groupby("value")["prediction"].mean().to_numpy(), atol=1e-12)
    # an ICE curve is the model on that row with b replaced
    row = int(rows[0])
    probe = pd.concat([X.iloc[[row]]] * 3, ignore_index=True).assign(b=[0.5, 2.5, 4.5])
    np.testing.assert_allclose(ice[ice["row"] == row]["prediction"], mixed_pipeline.predict_proba(probe)[:, 1])
    individual = partial_dependence(mixed_pipeline, X, "b", kind="individual", sample=10)
    assert set(individual["kind"]) == {"individual"}


def test_partial_dependence_errors(mixed, mixed_pipeline):
    X, _ = mixed
    with pytest.raises(ExplainError, match="feature='age' is not one of the model's inputs"):
        partial_dependence(mixed_pipeline, X, "age")
    with pytest.raises(ExplainError, match="kind='ice'"):
        partial_dependence(mixed_pipeline, X, "a", kind="ice")
    with pytest.raises(ExplainError, match="at least 2 points"):
        partial_dependence(mixed_pipeline, X, "a", grid=1)


def test_partial_dependence_figure_draws_the_average_over_a_few_ice_lines(mixed, mixed_pipeline):
    X, _ = mixed
    frame = partial_dependence(mixed_pipeline, X, "a", kind="both", sample=50, grid=5)
    figure = partial_dependence_figure(frame, ice_lines=8)
    assert len(figure.data) == 9
    average = figure.data[-1]
    assert average.name == "partial dependence"
    np.testing.assert_allclose(average.y, frame[frame["kind"] == "average"]["prediction"])
    assert figure.layout.yaxis.title.text == "probability of class 1"
    with pytest.raises(ExplainError, match="lacks column"):
        partial_dependence_figure(frame.drop(columns="row"))


# -- explanation drift ---------------------------------------------------------------------------------------


def test_explanation_drift_numbers_by_hand():
    ref = pd.DataFrame({"feature": ["a", "b", "c", "d"], "mean_abs_attribution": [4.0, 3.0, 2.0, 1.0],
                        "mean_attribution": [1.0, -1.0, 0.0, 0.5]})
    cur = pd.DataFrame({"feature": ["a", "b", "c", "e"], "mean_abs_attribution": [1.0, 3.0, 2.0, 4.0],
                        "mean_attribution": [0.0, -1.0, 0.5, 2.0]})
    d = explanation_drift(ref, cur, top_k=2)
    # shares: ref a .4 b .3 c .2 d .1 e 0; cur a .1 b .3 c .2 d 0 e .4 -> half L1 = (.3 + .1 + .4) / 2
    assert d.score == pytest.approx(0.4)
    assert d.drifted and d.threshold == DRIFT_THRESHOLD
    assert d.largest_mover == "e"
    features = ["a", "b", "c", "d", "e"]
    expected_rho = stats.spearmanr([4, 3, 2, 1, 0], [1, 3, 2, 0, 4]).statistic
    assert d.rank_correlation == pytest.approx(expected_rho)
    assert d.top_k == 2 and d.top_k_overlap == pytest.approx(1 / 3)  # {a, b} vs {e, b}
    table = d.table.set_index("feature").loc[features]
    np.testing.assert_allclose(table["change"], [-3, 0, 0, -1, 4])
    np.testing.assert_allclose(table["relative_change"][["a", "b", "d"]], [-0.75, 0, -1])
    assert np.isinf(table.loc["e", "relative_change"])
    np.testing.assert_allclose(table["mean_attribution_shift"], [-1, 0, 0.5, -0.5, 2.0])
    assert table.loc["e", "reference_rank"] == 5 and table.loc["e", "current_rank"] == 1
    assert d.to_dict()["largest_mover"] == "e"
    same = explanation_drift(ref, ref)
    assert same.score == 0 and not same.drifted and same.largest_mover is None and same.rank_correlation == 1


def test_explanation_drift_score_ignores_scale_and_accepts_importance_frames():
    ref = {"a": 0.5, "b": 0.25, "c": 0.25}
    doubled = {k: 2 * v for k, v in ref.items()}
    assert explanation_drift(ref, doubled).score == pytest.approx(0)
    perm = pd.DataFrame({"feature": ["a", "b", "c"], "importance_mean": [0.1, -0.01, 0.1]})
    d = explanation_drift(ref, perm)
    # negative permutation importance counts as 0: shares .5 0 .5
    assert d.score == pytest.approx(0.25)
    with pytest.raises(ExplainError, match="'mean_abs_attribution', 'importance_mean' or 'importance'"):
        explanation_drift(ref, pd.DataFrame({"feature": ["a"], "weight": [1.0]}))
    with pytest.raises(ExplainError, match="threshold=2"):
        explanation_drift(ref, ref, threshold=2)


def _tree_explanation(model, rows: pd.DataFrame) -> Explanation:
    import shap

    explainer = shap.TreeExplainer(model)
    values = explainer.shap_values(rows)
    margin = model.decision_function(rows)
    return Explanation(method="tree", output="log-odds of class 1", feature_names=list(rows.columns), values=values,
                       expected_value=float(np.ravel(explainer.expected_value)[0]), model_output=margin,
                       baseline="training data (path-dependent)", data=rows.reset_index(drop=True))


@pytest.fixture(scope="module")
def tree_setup():
    rng = np.random.default_rng(3)
    n = 3_000
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=["x0", "x1", "x2", "x3", "x4"])
    y = (2 * X["x0"] + X["x1"] - 0.5 * X["x2"] + rng.logistic(size=n) * 0.3 > 0).astype(int)
    model = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0).fit(X, y)
    return X, y, model


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # raised by shap on import
def test_explanation_drift_is_low_between_samples_of_the_same_distribution(tree_setup):
    X, _, model = tree_setup
    first = _tree_explanation(model, X.iloc[:1_000])
    second = _tree_explanation(model, X.iloc[1_000:2_000])
    assert first.efficiency_gap() < 1e-6
    d = explanation_drift(first, second, top_k=2)
    assert d.score < 0.05 and not d.drifted
    assert d.rank_correlation > 0.8
    assert d.top_k_overlap == 1.0


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # raised by shap on import
def test_explanation_drift_flags_data_and_model_changes_and_names_the_mover(tree_setup):
    X, y, model = tree_setup
    reference = _tree_explanation(model, X.iloc[:1_000])
    # data change: x0 collapses to a narrow band, so it explains far less of the output
    shifted = X.iloc[1_000:2_000].assign(x0=lambda df: 0.05 * df["x0"])
    d = explanation_drift(reference, _tree_explanation(model, shifted))
    assert d.drifted and d.score > 2 * DRIFT_THRESHOLD
    assert d.largest_mover == "x0"
    assert d.table.set_index("feature").loc["x0", "change"] < 0
    # model change: the new model is driven by x3
    target = (2 * X["x3"] - X["x1"] > 0).astype(int)
    retrained = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0).fit(X, target)
    d = explanation_drift(reference, _tree_explanation(retrained, X.iloc[:1_000]))
    assert d.drifted and d.largest_mover == "x3"
    assert d.table.set_index("feature").loc["x3", "share_change"] > 0.3
    assert d.rank_correlation < 0.5
    # explanations of different outputs are not comparable
    probability = Explanation(method="tree", output="probability of class 1", feature_names=reference.feature_names,
                              values=reference.values, expected_value=0.0, model_output=0.0, baseline="-")
    with pytest.raises(ExplainError, match="reference explains 'log-odds of class 1'"):
        explanation_drift(reference, probability)


# -- real data -------------------------------------------------------------------------------------------------


def test_adult_permutation_importance_and_pdp_equal_sklearn(shared_data):
    train = shared_data / "adult" / "adult_train.csv.gz"
    if not train.is_file():
        pytest.skip(f"{train} not found")
    df = pd.read_csv(train).sample(2_000, random_state=0).reset_index(drop=True)
    y = (df.pop("income") == ">50K").to_numpy()
    categorical = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    pre = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), categorical), remainder=StandardScaler())
    model = make_pipeline(pre, LogisticRegression(max_iter=1_000)).fit(df, y)
    ours = permutation_importance(model, df, y, metric="roc_auc", n_repeats=3, seed=5)
    theirs = inspection.permutation_importance(model, df, y, scoring="roc_auc", n_repeats=3, random_state=5)
    np.testing.assert_allclose(_by_feature(ours, "importance_mean")[list(df.columns)], theirs.importances_mean,
                               atol=1e-12)
    assert set(ours["feature"].iloc[:4]) & {"relationship", "marital-status", "capital-gain", "education",
                                             "education-num", "occupation"}
    pdp = partial_dependence(model, df, "age", sample=None, grid=10)
    numeric = [c for c in df.columns if c not in categorical]
    theirs = inspection.partial_dependence(model, df.astype(dict.fromkeys(numeric, float)), ["age"], method="brute",
                                           custom_values={"age": pdp["value"].to_numpy(dtype=float)})
    np.testing.assert_allclose(pdp["prediction"], theirs["average"][0], atol=1e-9)
