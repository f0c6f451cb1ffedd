"""Model-agnostic Shapley values against trusted oracles: exact enumeration, shap, and linear closed forms."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from vigil.core.explain.adapters import ExplainError, as_model_function
from vigil.core.explain.background import summarize_background
from vigil.core.explain.shapley import exact_shapley, kernel_shapley, linear_shapley, permutation_shapley
from vigil.demo import load_adult

ESTIMATORS = {"permutation": permutation_shapley, "kernel": kernel_shapley}


def brute_force_shapley(f, x: pd.Series, background: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
    """Textbook Shapley values of v(S) = sum_k w_k f(x_S, b_k), one hybrid row at a time."""
    names = list(background.columns)
    d = len(names)

    def v(coalition: tuple[str, ...]) -> float:
        hybrid = background.copy()
        for name in coalition:
            hybrid[name] = x[name]
        return float(np.dot(weights, np.asarray(f(hybrid), dtype=float)))

    phi = np.zeros(d)
    for j, name in enumerate(names):
        others = [c for c in names if c != name]
        for size in range(d):
            for coalition in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
                phi[j] += weight * (v((*coalition, name)) - v(coalition))
    return phi


@pytest.fixture(scope="module")
def mlp10():
    """A 10-feature MLP classifier on synthetic data, 50 background rows, 20 rows to explain, exact values."""
    x, y = make_classification(3000, 10, n_informative=6, random_state=0)
    names = [f"f{i}" for i in range(10)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier((32, 16), max_iter=300, random_state=0).fit(x, y)
    background, rows = x[:50], x[100:120]
    exact = exact_shapley(model, rows, background=background, feature_names=names)
    spread = float(model.predict_proba(background)[:, 1].std())
    return model, names, background, rows, exact, spread


# -- exact enumeration --------------------------------------------------------------------------------------


def test_exact_matches_brute_force_on_an_interacting_function_with_weights():
    rng = np.random.default_rng(1)
    names = ["a", "b", "c", "d"]
    background = pd.DataFrame(rng.normal(size=(5, 4)), columns=names)
    weights = np.array([0.1, 0.4, 0.2, 0.2, 0.1])
    rows = pd.DataFrame(rng.normal(size=(3, 4)), columns=names)

    def f(df):
        return np.tanh(df["a"] * df["b"]) + df["c"] ** 2 * np.sign(df["d"]) + 0.5 * df["a"]

    e = exact_shapley(f, rows, background=background, background_weights=weights, feature_names=names)
    for i in range(len(rows)):
        expected = brute_force_shapley(f, rows.iloc[i], background, weights)
        np.testing.assert_allclose(e.values[i], expected, atol=1e-12)
    assert e.efficiency_gap() < 1e-12
    np.testing.assert_allclose(e.expected_value, weights @ f(background))
    np.testing.assert_allclose(e.model_output, f(rows))
    assert e.method == "exact" and e.error is None
    assert e.extra["model_calls"] == 3 * 14 + 3 + 1 and e.extra["model_rows"] == 3 * 14 * 5 + 3 + 5


@pytest.mark.slow  # shap's Exact explainer compiles its numba code on first use (~10 s)
def test_exact_agrees_with_shap_exact_explainer():
    x, y = make_classification(600, 7, n_informative=5, random_state=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier((16,), max_iter=200, random_state=0).fit(x, y)
    background, rows = x[:20], x[300:304]
    exact = exact_shapley(model, rows, background=background, feature_names=[f"f{i}" for i in range(7)])
    f = lambda a: model.predict_proba(a)[:, 1]  # noqa: E731
    theirs = shap.explainers.Exact(f, shap.maskers.Independent(background, max_samples=20))(rows, silent=True)
    np.testing.assert_allclose(exact.values, theirs.values, atol=1e-6)
    np.testing.assert_allclose(exact.expected_value, theirs.base_values, atol=1e-9)
    assert exact.efficiency_gap() < 1e-9


def test_kernel_with_a_budget_covering_every_coalition_is_exact_and_agrees_with_shap_kernel():
    x, y = make_classification(400, 6, n_informative=4, random_state=2)
    names = [f"f{i}" for i in range(6)]
    model = LogisticRegression().fit(x, y)
    background, rows = x[:15], x[200:204]
    f = lambda a: model.predict_proba(a)[:, 1]  # noqa: E731
    ours = kernel_shapley(model, rows, background=background, feature_names=names, budget=62)
    exact = exact_shapley(model, rows, background=background, feature_names=names)
    theirs = shap.KernelExplainer(f, background).shap_values(rows, nsamples=62, l1_reg=False, silent=True)
    np.testing.assert_allclose(ours.values, exact.values, atol=1e-10)
    np.testing.assert_allclose(theirs, exact.values, atol=1e-6)
    assert ours.extra["enumerated_sizes"] == [1, 2, 3, 4, 5] and np.all(ours.error == 0)


# -- linear closed form -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear_models():
    rng = np.random.default_rng(3)
    names = [f"x{j}" for j in range(7)]
    x = pd.DataFrame(rng.normal(size=(500, 7)) * np.arange(1, 8), columns=names)
    regressor = LinearRegression().fit(x, x.to_numpy() @ rng.normal(size=7) + rng.normal(size=500))
    classifier = LogisticRegression(max_iter=1000).fit(x, (x["x0"] - 0.3 * x["x3"] + rng.normal(size=500)) > 0)
    return x, regressor, classifier


@pytest.mark.parametrize("method", ["exact", "permutation", "kernel", "linear"])
@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_linear_models_get_coef_times_centred_value(linear_models, method, kind):
    x, regressor, classifier = linear_models
    model = regressor if kind == "regressor" else classifier
    background, rows = x.iloc[:40], x.iloc[100:110]
    weights = np.linspace(1.0, 3.0, 40)
    mean = weights @ background.to_numpy() / weights.sum()
    expected = (rows.to_numpy() - mean) * np.ravel(model.coef_)
    options = {"background": background, "background_weights": weights}
    if kind == "classifier":
        options["output"] = "log-odds"
    if method in ESTIMATORS:
        options["budget"] = 60
    explain = {"exact": exact_shapley, "linear": linear_shapley, **ESTIMATORS}[method]
    e = explain(model, rows, **options)
    np.testing.assert_allclose(e.values, expected, atol=1e-8)
    assert e.efficiency_gap() < 1e-8
    assert e.output == ("regression value" if kind == "regressor" else "log-odds of class True")
    if e.error is not None:
        assert np.nanmax(e.error) < 1e-8


def test_linear_shapley_refuses_what_it_cannot_explain_exactly(linear_models):
    x, _, classifier = linear_models
    with pytest.raises(ExplainError, match="log-odds only"):
        linear_shapley(classifier, x.iloc[:2], x.iloc[:10], output="probability")
    pipe = make_pipeline(StandardScaler(), LinearRegression()).fit(x, x["x0"])
    with pytest.raises(ExplainError, match="coef_.*got Pipeline"):
        linear_shapley(pipe, x.iloc[:2], x.iloc[:10])


# -- the stated error bound ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "bound"), [("kernel", 0.01), ("permutation", 0.2)])
def test_error_bound_at_budget_1000_on_a_10_feature_mlp(mlp10, method, bound):
    """The documented bound: max |error| vs exact below `bound` x the output's spread over the background."""
    model, names, background, rows, exact, spread = mlp10
    e = ESTIMATORS[method](model, rows, background=background, feature_names=names, budget=1000, seed=7)
    err = np.abs(e.values - exact.values)
    assert err.max() < bound * spread
    assert np.mean(err <= 4 * e.error + 1e-12) >= 0.95
    assert np.mean(err <= 2 * e.error + 1e-12) >= 0.85
    assert e.efficiency_gap() < 1e-9
    assert e.extra["coalitions_per_row"] <= 1000
    per_row = e.extra["coalitions_per_row"]
    assert e.extra["model_calls"] == 20 * per_row + 20 + 1  # the full coalition of each row, and the empty one
    assert e.extra["model_rows"] == 20 * per_row * 50 + 20 + 50  # full coalitions need no background


@pytest.mark.parametrize("paired", [True, False])
def test_kernel_standard_errors_cover_the_error_when_sampling_dominates(mlp10, paired):
    model, names, background, rows, exact, spread = mlp10
    e = kernel_shapley(model, rows, background=background, feature_names=names, budget=250, paired=paired, seed=3)
    err = np.abs(e.values - exact.values)
    assert e.extra["enumerated_sizes"] == [1, 9]
    assert np.mean(err <= 4 * e.error) >= 0.95
    assert err.max() > 1e-4  # a real sampling error, covered by a real standard error
    assert err.max() < (0.1 if paired else 0.25) * spread


def test_paired_and_antithetic_sampling_reduce_the_error(mlp10):
    model, names, background, rows, exact, _ = mlp10

    def error(fn, **options):
        return np.mean([np.abs(fn(model, rows, background=background, feature_names=names, seed=s,
                                  **options).values - exact.values).mean() for s in range(2)])

    assert error(kernel_shapley, budget=250) < error(kernel_shapley, budget=250, paired=False)
    assert error(permutation_shapley, budget=360) < error(permutation_shapley, budget=360, antithetic=False)


# -- raw columns through a pipeline -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adult_pipeline():
    adult = load_adult()
    numeric = ["age", "education-num", "hours-per-week", "capital-gain"]
    categorical = ["workclass", "marital-status", "occupation", "sex"]
    x = adult[numeric + categorical]
    y = (adult["income"] == ">50K").astype(int)
    encode = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
                                ("num", StandardScaler(), numeric)])
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(x.iloc[:8000], y.iloc[:8000])
    return model, x


def test_pipeline_on_raw_adult_columns(adult_pipeline):
    model, x = adult_pipeline
    background = summarize_background(x.iloc[:8000], size=20)
    missing = x.index[(x.index > 8000) & x["workclass"].isna()][0]
    rows = x.loc[[8001, 8002, 8003, missing]]
    exact = exact_shapley(model, rows, background=background)
    sampled = permutation_shapley(model, rows, background=background, budget=1400, seed=1)
    assert exact.feature_names == list(x.columns)
    assert exact.output == "probability of class 1"
    assert "k-means summary of 8,000 rows" in exact.baseline
    assert exact.efficiency_gap() < 1e-9 and sampled.efficiency_gap() < 1e-9
    err = np.abs(exact.values - sampled.values)
    assert np.all(err <= 4 * sampled.error + 1e-9)
    assert err.max() < 0.01
    np.testing.assert_allclose(exact.model_output, model.predict_proba(rows)[:, 1])
    assert exact.to_frame()["value"].tolist()[:8] == rows.iloc[0].tolist()


# -- background summaries -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_frame():
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame({
        "height": rng.normal(170, 10, n),
        "visits": rng.poisson(3, n).astype(np.int64),
        "plan": pd.Categorical(rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1])),
        "city": pd.array(rng.choice(["Oslo", "Lima", "Pune", None], n), dtype="str"),
        "active": rng.random(n) < 0.3,
        "score": pd.array(np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)), dtype="float32"),
    })
    frame.loc[rng.random(n) < 0.05, "height"] = np.nan
    return frame


def test_kmeans_summary_keeps_columns_dtypes_and_real_values(mixed_frame):
    rows, weights, text = summarize_background(mixed_frame, size=25, seed=1)
    assert len(rows) == len(weights) <= 25 and abs(weights.sum() - 1) < 1e-12 and np.all(weights > 0)
    assert list(rows.columns) == list(mixed_frame.columns)
    assert (rows.dtypes == mixed_frame.dtypes).all()
    for column in ["plan", "city", "active"]:
        assert set(rows[column].dropna()) <= set(mixed_frame[column].dropna())
    assert rows["visits"].between(mixed_frame["visits"].min(), mixed_frame["visits"].max()).all()
    assert rows["height"].notna().all()  # 5% missing: no cluster is mostly missing
    assert "k-means summary of 3,000 rows" in text
    # cluster means weighted by cluster size give back the column mean when no value is missing
    complete = mixed_frame.dropna(subset=["height"]).reset_index(drop=True)
    rows, weights, _ = summarize_background(complete, size=25, seed=1)
    np.testing.assert_allclose(weights @ rows["height"].to_numpy(), complete["height"].mean(), rtol=1e-12)


def test_kmeans_summary_of_two_obvious_clusters():
    frame = pd.DataFrame({"x": [0.0, 0.1, 0.2, 0.3, 100.0, 100.5, 101.0],
                          "colour": ["blue", "red", "red", None, "green", "green", "red"],
                          "flag": [True, False, False, False, True, True, False]})
    rows, weights, _ = summarize_background(frame, size=2)
    rows = rows.sort_values("x").reset_index(drop=True)
    weights = np.sort(weights)[::-1]  # the low cluster has four rows
    np.testing.assert_allclose(rows["x"], [0.15, 100.5])
    np.testing.assert_allclose(weights, [4 / 7, 3 / 7])
    assert rows["colour"].tolist() == ["red", "green"] and rows["flag"].tolist() == [False, True]


def test_sample_summary_and_small_tables(mixed_frame):
    rows, weights, text = summarize_background(mixed_frame, size=40, method="sample", seed=2)
    assert len(rows) == 40 and np.allclose(weights, 1 / 40)
    assert text == "40 rows sampled uniformly from 3,000 rows"
    assert set(rows["height"].dropna()) <= set(mixed_frame["height"].dropna())
    whole, weights, text = summarize_background(mixed_frame.iloc[:7], size=40)
    assert len(whole) == 7 and text == "all 7 rows" and np.allclose(weights, 1 / 7)
    only_text = mixed_frame[["plan", "city"]]
    rows, weights, _ = summarize_background(only_text, size=6)
    assert len(rows) <= 6 and set(rows["plan"]) <= {"basic", "plus", "pro"}


def test_summary_errors_name_the_argument(mixed_frame):
    with pytest.raises(ExplainError, match="method='median'"):
        summarize_background(mixed_frame, method="median")
    with pytest.raises(ExplainError, match="size=0"):
        summarize_background(mixed_frame, size=0)
    with pytest.raises(ExplainError, match="no rows"):
        summarize_background(mixed_frame.iloc[:0])


def test_large_backgrounds_are_summarised_and_summaries_are_accepted(mixed_frame):
    frame = mixed_frame[["height", "visits", "plan", "active"]].dropna().reset_index(drop=True)

    def f(df):
        return df["height"] / 100 + df["visits"] * (df["plan"] == "pro") - df["active"].astype(float)

    rows = frame.iloc[:3]
    auto = exact_shapley(f, rows, background=frame, feature_names=list(frame.columns), background_size=30)
    assert auto.extra["background_rows"] <= 30 and "k-means summary" in auto.baseline
    summary = summarize_background(frame, size=30)
    given = exact_shapley(f, rows, background=summary, feature_names=list(frame.columns))
    np.testing.assert_allclose(auto.values, given.values)
    np.testing.assert_allclose(given.expected_value, summary[1] @ f(summary[0]))
    with pytest.raises(ExplainError, match="drop background_weights"):
        exact_shapley(f, rows, background=summary, background_weights=np.ones(30), feature_names=list(frame.columns))


# -- batching, frames and bookkeeping -----------------------------------------------------------------------


def test_frame_and_array_models_give_the_same_values():
    rng = np.random.default_rng(8)
    names = ["a", "b", "c", "d", "e"]
    x = rng.normal(size=(60, 5))
    coef = np.array([1.0, -2.0, 0.5, 0.0, 3.0])

    def on_array(arr):
        return np.sin(arr @ coef) + arr[:, 0] * arr[:, 1]

    def on_frame(df):
        return on_array(df[names].to_numpy())

    array_fn = as_model_function(on_array, feature_names=names)
    array_fn.wants_frame = False
    for method in ESTIMATORS.values():
        one = method(array_fn, x[:4], background=x[10:30], budget=40, seed=4)
        other = method(on_frame, pd.DataFrame(x[:4], columns=names), background=x[10:30], feature_names=names,
                       budget=40, seed=4, chunk_rows=100)
        np.testing.assert_allclose(one.values, other.values, atol=1e-12)
        np.testing.assert_allclose(one.error, other.error, atol=1e-12)
        assert other.extra["chunk_rows"] == 100


def test_categorical_columns_with_different_categories_in_rows_and_background():
    rows = pd.DataFrame({"colour": pd.Categorical(["red", "blue"]), "size": [1.0, 2.0]})
    background = pd.DataFrame({"colour": pd.Categorical(["green", "red", "green"]), "size": [0.0, 1.0, 3.0]})

    def f(df):
        return (df["colour"].astype(str) == "red") * 2.0 + df["size"]

    e = exact_shapley(f, rows, background=background, feature_names=["colour", "size"])
    expected = np.array([brute_force_shapley(f, rows.iloc[i], background, np.full(3, 1 / 3)) for i in range(2)])
    np.testing.assert_allclose(e.values, expected, atol=1e-12)


def test_the_model_sees_exactly_the_reported_rows_and_seeds_repeat():
    seen = []
    names = [f"x{j}" for j in range(12)]

    def f(df):
        seen.append(len(df))
        return df.to_numpy() @ np.arange(12.0) + df["x0"] * df["x1"]

    rng = np.random.default_rng(0)
    rows, background = rng.normal(size=(3, 12)), rng.normal(size=(9, 12))
    for method in ESTIMATORS.values():
        seen.clear()
        e = method(f, rows, background=background, feature_names=names, budget=300, seed=5)
        assert sum(seen) == e.extra["model_rows"]
        assert e.extra["model_calls"] == 3 * e.extra["coalitions_per_row"] + 3 + 1
        again = method(f, rows, background=background, feature_names=names, budget=300, seed=5)
        other = method(f, rows, background=background, feature_names=names, budget=300, seed=6)
        np.testing.assert_allclose(e.values, again.values, rtol=1e-12, atol=1e-12)
        assert not np.array_equal(e.values, other.values)
        assert e.efficiency_gap() < 1e-9


def test_kernel_plan_follows_the_budget():
    f = lambda df: df.sum(axis=1)  # noqa: E731
    names = [f"x{j}" for j in range(20)]
    rows, background = np.ones((1, 20)), np.zeros((2, 20))
    e = kernel_shapley(f, rows, background=background, feature_names=names, budget=1000)
    assert e.extra["enumerated_sizes"] == [1, 19]  # 40 coalitions, as shap's KernelExplainer; 480 pairs sampled
    assert e.extra["coalitions_per_row"] == 1000
    small = kernel_shapley(f, rows, background=background, feature_names=names, budget=30)
    assert small.extra["enumerated_sizes"] == [] and small.extra["coalitions_per_row"] <= 30
    np.testing.assert_allclose(small.values, 1.0, atol=1e-9)  # an additive game is fitted exactly


def test_class_index_picks_the_explained_class():
    x, y = make_classification(300, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=1)
    model = LogisticRegression(max_iter=500).fit(x, y)
    names = ["a", "b", "c", "d"]
    e = exact_shapley(model, x[:3], background=x[10:20], feature_names=names, class_index=2)

    def third(df):
        return model.predict_proba(df[names].to_numpy())[:, 2]

    ref = exact_shapley(third, pd.DataFrame(x[:3], columns=names), background=x[10:20], feature_names=names)
    assert e.output == "probability of class 2" and list(e.data.columns) == names
    np.testing.assert_allclose(e.values, ref.values, atol=1e-12)
    with pytest.raises(ExplainError, match="class_index"):
        kernel_shapley(model, x[:3], background=x[10:20], feature_names=names)


# -- errors -------------------------------------------------------------------------------------------------


def test_errors_name_what_is_wrong():
    names = [f"x{j}" for j in range(17)]
    f = lambda df: df.sum(axis=1)  # noqa: E731
    rows, background = np.ones((1, 17)), np.zeros((2, 17))
    with pytest.raises(ExplainError, match="17 features is too many"):
        exact_shapley(f, rows, background=background, feature_names=names)
    with pytest.raises(ExplainError, match="budget=20 is too small"):
        permutation_shapley(f, rows, background=background, feature_names=names, budget=20)
    with pytest.raises(ExplainError, match="budget=10 is too small"):
        kernel_shapley(f, rows, background=background, feature_names=names, budget=10)
    with pytest.raises(ExplainError, match="budget=-1"):
        kernel_shapley(f, rows, background=background, feature_names=names, budget=-1)
    with pytest.raises(ExplainError, match="background= is required"):
        kernel_shapley(f, rows, background=None, feature_names=names)
    with pytest.raises(ExplainError, match="background_weights has 3 values for 2"):
        kernel_shapley(f, rows, background=background, background_weights=[1, 2, 3], feature_names=names)
    with pytest.raises(ExplainError, match=r"background lacks the model's input column\(s\) \['x16'\]"):
        kernel_shapley(f, rows, background=pd.DataFrame(background[:, :16], columns=names[:16]),
                       feature_names=names)
    with pytest.raises(ExplainError, match="chunk_rows=0"):
        kernel_shapley(f, rows, background=background, feature_names=names, chunk_rows=0)
