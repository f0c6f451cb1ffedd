"""What-if and counterfactual search, checked by re-predicting with the model itself, by the analytic
decision boundary of a logistic regression, and on the Adult census data.
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from vigil.core.explain.adapters import ExplainError
from vigil.core.explain.counterfactual import LINE_SEARCH_TOL, Counterfactuals, counterfactuals, what_if

FEATURES = ["income", "debt", "tenure", "plan", "region"]


@pytest.fixture(scope="module")
def credit():
    """A synthetic credit data set: numeric, integer and categorical inputs, region not used by the label."""
    rng = np.random.default_rng(42)
    n = 2_000
    X = pd.DataFrame({
        "income": rng.normal(50, 12, n),
        "debt": rng.gamma(2.0, 8.0, n),
        "tenure": rng.integers(0, 30, n),
        "plan": rng.choice(["basic", "plus", "premium"], n, p=[0.5, 0.3, 0.2]),
        "region": rng.choice(["north", "south"], n),
    })
    logit = (0.12 * (X["income"] - 50) - 0.15 * (X["debt"] - 16) + 0.08 * (X["tenure"] - 15)
             + 1.0 * (X["plan"] == "premium") - 0.4)
    y = (logit + rng.logistic(size=n) * 0.4 > 0).astype(int)
    return X, y.to_numpy()


def _pipeline(estimator):
    pre = make_column_transformer((OneHotEncoder(sparse_output=False, handle_unknown="ignore"), ["plan", "region"]),
                                  remainder=StandardScaler())
    return make_pipeline(pre, estimator)


@pytest.fixture(scope="module", params=["logistic", "gradient_boosting"])
def fitted(request, credit):
    X, y = credit
    estimator = (LogisticRegression(max_iter=1_000) if request.param == "logistic"
                 else GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0))
    return request.param, _pipeline(estimator).fit(X, y)


def _check(result: Counterfactuals, model, original: pd.DataFrame, *, actionable, ranges, target, threshold=0.5):
    """Every invariant a counterfactual must keep, checked with the model itself."""
    assert len(result) == len(result.rows) == len(result.distances) == len(result.probabilities)
    p = model.predict_proba(result.rows[original.columns])[:, 1]
    np.testing.assert_allclose(p, result.probabilities, atol=1e-12)
    flipped = p >= threshold if target == 1 else p < threshold
    assert flipped.all(), f"not every counterfactual flips the decision: {p}"
    sets = []
    for i, change in enumerate(result.changes):
        row = result.rows.iloc[i]
        differs = {c for c in original.columns if row[c] != original[c].iloc[0]}
        assert differs == set(change), (differs, change)
        assert differs <= set(actionable)
        for name, value in change.items():
            assert row[name] == value
            spec = ranges.get(name)
            if isinstance(spec, tuple):
                assert spec[0] <= value <= spec[1]
            elif spec is not None:
                assert value in spec
        sets.append(frozenset(change))
    assert len(set(sets)) == len(sets), "two counterfactuals change the same features"
    assert list(result.distances) == sorted(result.distances)


def _mad(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.median(np.abs(values - np.median(values))))


def test_counterfactuals_flip_respect_immutables_ranges_and_differ(credit, fitted):
    X, _ = credit
    name, model = fitted
    p = model.predict_proba(X)[:, 1]
    rows = np.flatnonzero((p > 0.05) & (p < 0.3))[:3].tolist() + np.flatnonzero(p > 0.75)[:2].tolist()
    ranges = {"income": (20.0, 90.0), "plan": ["basic", "premium"], "tenure": (0, 29)}
    actionable = ["income", "debt", "tenure", "plan"]
    for i in rows:
        original = X.iloc[[i]].reset_index(drop=True)
        target = 0 if p[i] >= 0.5 else 1
        result = counterfactuals(model, original, immutable=["region"], ranges=ranges, data=X, n=3)
        assert result.target == target
        assert len(result) >= 1, (name, i, result.message)
        _check(result, model, original, actionable=actionable, ranges=ranges, target=target)
        assert (result.rows["region"] == original["region"].iloc[0]).all()
        assert all(isinstance(c["tenure"], int) for c in result.changes if "tenure" in c)
        # the reported distance is sum |change| / MAD + 1 per category changed + 0.5 per change
        for change, distance in zip(result.changes, result.distances, strict=True):
            expected = 0.5 * len(change)
            for feature, value in change.items():
                if feature == "plan":
                    expected += 1
                else:
                    expected += abs(value - original[feature].iloc[0]) / _mad(X[feature])
            assert distance == pytest.approx(expected)


def test_logistic_counterfactuals_sit_on_the_decision_boundary(credit):
    X, y = credit
    model = _pipeline(LogisticRegression(max_iter=1_000)).fit(X, y)
    p = model.predict_proba(X)[:, 1]
    i = int(np.flatnonzero((p > 0.1) & (p < 0.4))[0])
    original = X.iloc[[i]].reset_index(drop=True)
    result = counterfactuals(model, original, actionable=["income", "debt"], data=X, n=3)
    _check(result, model, original, actionable=["income", "debt"], ranges={}, target=1)
    for change in result.changes:
        for feature, value in change.items():
            # one tolerance back towards the original value the decision is not flipped any more
            step = LINE_SEARCH_TOL * result.extra["scales"][feature] * 1.01
            back = value - step if value > original[feature].iloc[0] else value + step
            probe = original.assign(**{**change, feature: back})
            assert model.predict_proba(probe)[0, 1] < 0.5


@pytest.mark.parametrize("threshold, start", [(0.5, "low"), (0.7, "low"), (0.5, "high"), (0.3, "high")])
def test_one_actionable_feature_matches_the_analytic_boundary(threshold, start):
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(1_000, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0], columns=["a", "b", "c"])
    y = (X["a"] - 0.7 * X["b"] + 2.0 * X["c"] + rng.logistic(size=1_000) * 0.5 > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    w, b = model.coef_[0], model.intercept_[0]
    p = model.predict_proba(X)[:, 1]
    candidates = np.flatnonzero((p < threshold - 0.15) & (p > threshold - 0.35) if start == "low"
                                else (p > threshold + 0.15) & (p < threshold + 0.35))
    row = X.iloc[[int(candidates[0])]].reset_index(drop=True)
    logit = np.log(threshold / (1 - threshold))
    boundary = (logit - b - w[1] * row["b"].iloc[0] - w[2] * row["c"].iloc[0]) / w[0]
    assert X["a"].min() < boundary < X["a"].max()
    result = counterfactuals(model, row, actionable=["a"], data=X, threshold=threshold, n=3)
    assert len(result) == 1 and list(result.changes[0]) == ["a"]
    found = result.changes[0]["a"]
    scale = _mad(X["a"])
    assert result.extra["scales"]["a"] == pytest.approx(scale)
    assert abs(found - boundary) <= LINE_SEARCH_TOL * scale + 1e-9
    # found on the flipping side of the boundary
    assert (found >= boundary) == (w[0] > 0) if start == "low" else (found <= boundary) == (w[0] > 0)
    assert result.distances[0] == pytest.approx(abs(found - row["a"].iloc[0]) / scale + 0.5)


def test_diverse_counterfactuals_on_a_linear_score():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(800, 4)), columns=["w", "x", "y", "z"])
    y = (X.sum(axis=1) + rng.logistic(size=800) * 0.3 > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    row = pd.DataFrame({"w": [-0.3], "x": [-0.3], "y": [-0.3], "z": [-0.3]})
    result = counterfactuals(model, row, data=X, n=4)
    assert len(result) == 4
    sets = [frozenset(c) for c in result.changes]
    # every single feature flips this row on its own: four different one-feature changes, no superset
    assert sorted(len(s) for s in sets) == [1, 1, 1, 1] and len(set(sets)) == 4
    _check(result, model, row, actionable=list(X.columns), ranges={}, target=1)


def test_counterfactuals_are_deterministic(credit, fitted):
    X, _ = credit
    _, model = fitted
    p = model.predict_proba(X)[:, 1]
    row = X.iloc[[int(np.flatnonzero(p < 0.3)[0])]]
    first = counterfactuals(model, row, data=X, immutable=["region"], seed=3)
    second = counterfactuals(model, row, data=X, immutable=["region"], seed=3)
    assert first.changes == second.changes and first.distances == second.distances
    frame = first.to_frame()
    assert frame.columns[:5].tolist() == ["counterfactual", "features_changed", "n_changes", "distance",
                                          "probability"]
    assert frame["features_changed"].tolist() == [", ".join(c) for c in first.changes]
    assert "Counterfactuals" in first._repr_html_() and "→" in first._repr_html_()


def test_counterfactual_errors_name_the_problem(credit):
    X, y = credit
    model = _pipeline(LogisticRegression(max_iter=1_000)).fit(X, y)
    p = model.predict_proba(X)[:, 1]
    low = X.iloc[[int(np.argmin(p))]]
    with pytest.raises(ExplainError, match=r"\['region'\] are both actionable and immutable"):
        counterfactuals(model, low, actionable=["income", "region"], immutable=["region"], data=X)
    with pytest.raises(ExplainError, match=r"ranges names unknown feature\(s\) \['salary'\]"):
        counterfactuals(model, low, ranges={"salary": (0, 1)}, data=X)
    with pytest.raises(ExplainError, match=r"immutable names unknown feature\(s\) \['age'\]"):
        counterfactuals(model, low, immutable=["age"], data=X)
    with pytest.raises(ExplainError, match="already classified as 0"):
        counterfactuals(model, low, target=0, data=X)
    with pytest.raises(ExplainError, match="target='yes' is not one of the model's classes"):
        counterfactuals(model, low, target="yes", data=X)
    multiclass = _pipeline(LogisticRegression(max_iter=1_000)).fit(X, pd.qcut(X["income"], 3, labels=False))
    with pytest.raises(ExplainError, match="need a binary classifier; this one has 3 classes"):
        counterfactuals(multiclass, low, data=X, class_index=0)
    regressor = _pipeline(LinearRegression()).fit(X, X["income"])
    with pytest.raises(ExplainError, match="this model is a regressor"):
        counterfactuals(regressor, low, data=X)


def test_impossible_flip_gives_an_empty_result_with_a_message(credit):
    X, y = credit
    model = _pipeline(LogisticRegression(max_iter=1_000)).fit(X, y)
    p = model.predict_proba(X)[:, 1]
    low = X.iloc[[int(np.argmin(p))]]
    # region does not move the score enough, and tenure may only move by 1
    tenure = int(low["tenure"].iloc[0])
    result = counterfactuals(model, low, actionable=["region", "tenure"], ranges={"tenure": (tenure, tenure + 1)},
                             data=X)
    assert len(result) == 0 and result.changes == [] and len(result.rows) == 0
    assert "no change of at most 2 of the searchable actionable features ['region', 'tenure']" in result.message
    assert result.to_frame().empty
    assert result.message in result._repr_html_().replace("&#x27;", "'")
    tight = counterfactuals(model, X.iloc[[int(np.argsort(p)[len(p) // 3])]], data=X, budget=5, immutable=["region"])
    assert len(tight) == 0 and "the budget ran out" in tight.message


def test_numeric_feature_without_data_or_range_is_not_searched(credit):
    X, y = credit
    model = _pipeline(LogisticRegression(max_iter=1_000)).fit(X, y)
    row = X.iloc[[int(np.argmin(np.abs(model.predict_proba(X)[:, 1] - 0.3)))]]
    result = counterfactuals(model, row, actionable=["income", "debt"], ranges={"income": (0.0, 200.0)})
    assert result.extra["not_searched"] == ["debt"]
    assert len(result) == 1 and list(result.changes[0]) == ["income"]
    # without data the scale is a quarter of the range
    assert result.extra["scales"]["income"] == pytest.approx(50.0)
    _check(result, model, row.reset_index(drop=True), actionable=["income"], ranges={"income": (0.0, 200.0)},
           target=1)


# -- what-if ---------------------------------------------------------------------------------------------------


def test_what_if_predicts_both_rows(credit):
    X, y = credit
    model = _pipeline(LogisticRegression(max_iter=1_000)).fit(X, y)
    row = X.iloc[3].to_dict()
    result = what_if(model, row, {"income": row["income"] + 10, "plan": "premium"}, explain=False)
    expected = model.predict_proba(pd.DataFrame([row, {**row, "income": row["income"] + 10, "plan": "premium"}]))
    assert result.original_prediction == pytest.approx(expected[0, 1], abs=1e-12)
    assert result.new_prediction == pytest.approx(expected[1, 1], abs=1e-12)
    assert result.delta > 0 and result.output == "probability of class 1"
    frame = result.to_frame()
    assert frame.set_index("feature")["changed"].to_dict() == {
        "income": True, "debt": False, "tenure": False, "plan": True, "region": False}
    assert frame.set_index("feature").loc["plan", "new_value"] == "premium"
    assert result.before is None and "What if" in result._repr_html_()
    with pytest.raises(ExplainError, match=r"unknown feature\(s\) \['salary'\]"):
        what_if(model, row, {"salary": 1.0}, explain=False)


def test_what_if_explains_both_rows_when_the_dispatcher_exists():
    explain = getattr(importlib.import_module("vigil.core.explain"), "explain", None)
    if explain is None:
        pytest.skip("vigil.core.explain.explain is not available in this tree")
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    model = LinearRegression().fit(X, 3 * X["a"] - 2 * X["b"] + X["c"])
    row = {"a": 0.5, "b": 1.0, "c": -1.0}
    result = what_if(model, row, {"b": 2.0}, background=X, method="exact")
    assert result.new_prediction - result.original_prediction == pytest.approx(-2.0)
    frame = result.to_frame().set_index("feature")
    # exact Shapley values of a linear model: coefficient x (x - background mean); only b's share moves
    np.testing.assert_allclose(frame["attribution_change"], [0.0, model.coef_[1] * 1.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(frame["attribution_before"]["a"], model.coef_[0] * (0.5 - X["a"].mean()), atol=1e-9)
    assert result.before.efficiency_gap() < 1e-9 and result.after.efficiency_gap() < 1e-9


# -- real data -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["logistic", "gradient_boosting"])
def test_adult_counterfactuals(shared_data, kind):
    train = shared_data / "adult" / "adult_train.csv.gz"
    if not train.is_file():
        pytest.skip(f"{train} not found")
    df = pd.read_csv(train).sample(4_000, random_state=1).reset_index(drop=True)
    y = (df.pop("income") == ">50K").astype(int).to_numpy()
    df = df.drop(columns=["fnlwgt", "education"])
    categorical = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    pre = make_column_transformer((OneHotEncoder(sparse_output=False, handle_unknown="ignore"), categorical),
                                  remainder=StandardScaler())
    estimator = (LogisticRegression(max_iter=2_000) if kind == "logistic"
                 else GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0))
    model = make_pipeline(pre, estimator).fit(df, y)
    immutable = ["age", "sex", "race", "native-country", "marital-status", "relationship"]
    p = model.predict_proba(df)[:, 1]
    for i in np.flatnonzero((p > 0.1) & (p < 0.4))[:3]:
        original = df.iloc[[int(i)]].reset_index(drop=True)
        # education only goes up; at most 80 hours a week
        ranges = {"education-num": (int(original["education-num"].iloc[0]), 16), "hours-per-week": (1, 80)}
        result = counterfactuals(model, original, immutable=immutable, ranges=ranges, data=df, n=3)
        assert len(result) >= 1, result.message
        actionable = [c for c in df.columns if c not in immutable]
        _check(result, model, original, actionable=actionable, ranges=ranges, target=1)
        assert (result.rows[immutable] == original[immutable].iloc[0]).all().all()
