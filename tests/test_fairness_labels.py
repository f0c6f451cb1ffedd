"""Labels matched to classes by value (core.labels), and store fairness that is right with partial labels and
never depends on the model being explainable or loadable."""

from __future__ import annotations

import shutil
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, recall_score

import vigil
from vigil.core.labels import class_index, is_class, is_missing
from vigil.errors import ArtifactError, MetricInputError
from vigil.store.artifacts import ARTIFACT_DIR

START = pd.Timestamp("2026-03-02", tz="UTC")

# -- core.labels ----------------------------------------------------------------------------------------

NUMBER_CASES = {
    "numpy bool": np.array([True, False, True]),
    "numpy int": np.array([1, 0, 1]),
    "numpy uint8": np.array([1, 0, 1], dtype=np.uint8),
    "numpy float": np.array([1.0, 0.0, 1.0]),
    "numpy float32": np.array([1.0, 0.0, 1.0], dtype=np.float32),
    "object mix": np.array([True, 0, 1.0], dtype=object),
    "list": [1, False, np.float64(1.0)],
    "nullable Int64": pd.Series([1, 0, 1], dtype="Int64"),
    "nullable boolean": pd.Series([True, False, True], dtype="boolean"),
    "arrow-backed int": pd.Series([1, 0, 1], dtype="int64[pyarrow]"),
    "arrow int": pa.array([1, 0, 1]),
    "arrow bool chunks": pa.chunked_array([[True], [False, True]]),
    "decimal": [Decimal("1"), Decimal("0.0"), Decimal("1.00")],
}


@pytest.mark.parametrize("classes", [[0, 1], [False, True], [0.0, 1.0]], ids=["int", "bool", "float"])
@pytest.mark.parametrize("case", list(NUMBER_CASES))
def test_numbers_and_booleans_match_numeric_classes_by_value(case, classes):
    np.testing.assert_array_equal(class_index(NUMBER_CASES[case], classes), [1, 0, 1])


MISSING_CASES = {
    "float nan": np.array([1.0, np.nan, 0.0]),
    "object none": np.array([True, None, False], dtype=object),
    "pd.NA object": np.array([1, pd.NA, 0], dtype=object),
    "nullable Int64": pd.Series([1, None, 0], dtype="Int64"),
    "nullable boolean": pd.Series([True, None, False], dtype="boolean"),
    "arrow int with null": pa.array([1, None, 0]),
    "arrow-backed float": pd.Series([1.0, None, 0.0], dtype="float64[pyarrow]"),
}


@pytest.mark.parametrize("case", list(MISSING_CASES))
def test_missing_values_are_no_class_and_are_told_apart_from_unknown_ones(case):
    values = MISSING_CASES[case]
    np.testing.assert_array_equal(class_index(values, [0, 1]), [1, -1, 0])
    np.testing.assert_array_equal(is_missing(values), [False, True, False])


TEXT_CASES = {
    "numpy str": np.array(["yes", "no", "maybe", "yes"]),
    "object with none": np.array(["yes", "no", None, "yes"], dtype=object),
    "pandas str": pd.Series(["yes", "no", None, "yes"], dtype="str"),
    "pandas string": pd.Series(["yes", "no", None, "yes"], dtype="string"),
    "category": pd.Series(["yes", "no", None, "yes"], dtype="category"),
    "category with unused levels": pd.Series(pd.Categorical(["yes", "no", "maybe", "yes"],
                                                            categories=["maybe", "yes", "zzz", "no"])),
    "arrow string": pa.array(["yes", "no", None, "yes"]),
    "arrow dictionary chunks": pa.chunked_array([pa.array(["yes", "no"]).dictionary_encode(),
                                                 pa.array([None, "yes"]).dictionary_encode()]),
    "bytes": np.array([b"yes", b"no", b"maybe", b"yes"], dtype=object),
}


@pytest.mark.parametrize("case", list(TEXT_CASES))
def test_strings_match_string_classes_exactly(case):
    np.testing.assert_array_equal(class_index(TEXT_CASES[case], ["no", "yes"]), [1, 0, -1, 1])


def test_strings_are_compared_as_strings_case_and_spaces_included():
    np.testing.assert_array_equal(class_index(["yes", "Yes", " yes", "yes "], ["no", "yes"]), [1, -1, -1, -1])
    np.testing.assert_array_equal(class_index(["1.0", "1"], ["0", "1"]), [-1, 1])


def test_a_string_class_takes_the_numbers_its_text_reads_as_and_back():
    # the documented rule: a string and a number are equal when the string reads as that number
    np.testing.assert_array_equal(class_index(np.array([1, 0, 2]), ["0", "1"]), [1, 0, -1])
    np.testing.assert_array_equal(class_index(np.array([1.0, np.nan, 0.0]), ["0", "1"]), [1, -1, 0])
    np.testing.assert_array_equal(class_index(np.array([True, False]), ["0", "1"]), [1, 0])
    np.testing.assert_array_equal(class_index(["1", "0", "1.0", "1e0", " 1", "1_0", "x"], [0, 1]),
                                  [1, 0, 1, 1, -1, -1, -1])
    np.testing.assert_array_equal(class_index(["True", "false", "1"], [False, True]), [1, 0, 1])
    assert is_class(["1"], 1.0)[0] and is_class([1], "1")[0] and not is_class(["yes"], 1)[0]


def test_a_match_of_the_same_kind_comes_before_one_across_kinds():
    np.testing.assert_array_equal(class_index(np.array([1, "1"], dtype=object), ["1", 1]), [1, 0])
    np.testing.assert_array_equal(class_index(np.array([1.0]), ["1", 1]), [1])


def test_equal_classes_give_the_value_to_the_first():
    np.testing.assert_array_equal(class_index(np.array([1, 1.0, True], dtype=object), [True, 1, 1.0]), [0, 0, 0])


def test_big_integers_are_matched_exactly_not_through_floats():
    big = 2**62
    np.testing.assert_array_equal(class_index(np.array([big, big + 1], dtype=np.int64), [big + 1, big]), [1, 0])
    np.testing.assert_array_equal(class_index(np.array([2**64 - 1, 3], dtype=np.uint64), [3, 2**64 - 1]), [1, 0])


def test_values_of_no_class_are_minus_one_and_not_missing():
    values = pd.Series([0.0, 1.0, 2.0, 0.5, np.nan])
    np.testing.assert_array_equal(class_index(values, [0, 1]), [0, 1, -1, -1, -1])
    np.testing.assert_array_equal(is_missing(values), [False, False, False, False, True])


def test_matching_a_long_column_agrees_with_a_python_loop():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 4, 50_000).astype(float)
    values[rng.random(values.size) < 0.2] = np.nan
    want = [-1 if np.isnan(v) or v == 3 else int(v) for v in values]
    np.testing.assert_array_equal(class_index(values, [0, 1, 2]), want)
    text = pd.Series(np.where(np.isnan(values), None, values.astype(str)), dtype="str")
    np.testing.assert_array_equal(class_index(text, ["0.0", "1.0", "2.0"]), want)


def test_not_a_column_is_a_clear_error():
    with pytest.raises(MetricInputError, match="one column of labels") as err:
        class_index(np.zeros((2, 2)), [0, 1])
    assert err.value.field == "values"
    with pytest.raises(MetricInputError, match="single value"):
        class_index("yes", ["no", "yes"])
    with pytest.raises(MetricInputError, match="sequence of class values") as err:
        class_index([1], 1)
    assert err.value.field == "classes"


# -- store fairness with partial labels, against scikit-learn and Fairlearn ------------------------------

CONVERT = {
    "bool": lambda a: a.astype(bool),
    "int": lambda a: a.astype(np.int64),
    "float": lambda a: a.astype(np.float64),
    "string": lambda a: np.where(a == 1, "yes", "no"),
    "category": lambda a: pd.Categorical(np.where(a == 1, "yes", "no")),
}


def _outcomes(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    y = (rng.random(n) < np.where(group == "a", 0.6, 0.35)).astype(int)
    prediction = np.where(rng.random(n) < 0.85, y, 1 - y)
    return pd.DataFrame({"x": rng.normal(size=n), "group": group, "y": y, "prediction": prediction,
                         "score": np.clip(0.5 * prediction + 0.5 * rng.random(n), 0, 1)})


@pytest.mark.parametrize("share", [1.0, 0.6], ids=["fully-labelled", "partly-labelled"])
@pytest.mark.parametrize("dtype", list(CONVERT))
def test_group_metrics_equal_sklearn_and_fairlearn_on_the_labelled_events(tmp_path, dtype, share):
    convert = CONVERT[dtype]
    train = _outcomes(200, 0)
    train = train[["x", "group"]].assign(y=convert(train["y"].to_numpy()))
    events = _outcomes(400, 1)
    events["event_id"] = [f"e{i}" for i in range(len(events))]
    events["timestamp"] = START + pd.to_timedelta(np.arange(len(events)), unit="min")
    labelled = np.random.default_rng(2).random(len(events)) < share
    logged = events.assign(prediction=convert(events["prediction"].to_numpy()))
    with vigil.open(tmp_path / "home") as store:
        store.register_model("m", version="1", task="binary", training_data=train, target="y",
                             protected=["group"])
        store.log_predictions("m", "1", logged.drop(columns="y"))
        labels = pd.DataFrame({"event_id": events["event_id"], "y": convert(events["y"].to_numpy())})
        store.log_labels("m", labels[labelled])
        result = store.fairness("m", window="30d", min_group_size=1)
    truth = events[labelled]
    y, p, g = truth["y"].to_numpy(), truth["prediction"].to_numpy(), truth["group"].to_numpy()
    frame = MetricFrame(metrics={"selection_rate": selection_rate, "tpr": true_positive_rate,
                                 "fpr": false_positive_rate}, y_true=y, y_pred=p, sensitive_features=g).by_group
    got = result.by_group[result.by_group["attribute"] == "group"].set_index("group")
    assert sorted(got.index) == ["a", "b", "c"]
    for name in ("a", "b", "c"):
        row, mask = got.loc[name], g == name
        assert row["count"] == mask.sum()
        assert row["base_rate"] == pytest.approx(y[mask].mean(), abs=1e-12)
        assert row["accuracy"] == pytest.approx(accuracy_score(y[mask], p[mask]), abs=1e-12)
        assert row["tpr"] == pytest.approx(recall_score(y[mask], p[mask]), abs=1e-12)
        for metric in ("selection_rate", "tpr", "fpr"):
            assert row[metric] == pytest.approx(frame.loc[name, metric], abs=1e-12)
    assert "left out" not in " ".join(result.notes)


# -- fairness without explanations, and without the model -----------------------------------------------


def _people(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    # region stands in for sex: a proxy to find without any attribution
    region = np.where(rng.random(n) < 0.85, np.where(sex == "F", "north", "south"), rng.choice(["north", "south"], n))
    income = rng.normal(50, 10, n)
    z = 0.08 * (income - 50) + 0.8 * (region == "north") - 0.4
    return pd.DataFrame({"income": income, "region": pd.Categorical(region), "sex": sex,
                         "approved": (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)})


def test_fairness_of_a_model_that_cannot_be_explained_has_groups_proxies_and_a_note(tmp_path):
    train = _people(600, 0)
    model = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype", random_state=0)
    model.fit(train[["income", "region"]], train["approved"])
    events = _people(300, 1)
    events["event_id"] = [f"e{i}" for i in range(len(events))]
    events["timestamp"] = START + pd.to_timedelta(np.arange(len(events)), unit="min")
    events["score"] = model.predict_proba(events[["income", "region"]])[:, 1]
    events["prediction"] = (events["score"] > 0.5).astype(int)
    with vigil.open(tmp_path / "home") as store:
        store.register_model("loans", version="1", task="binary", model=model, training_data=train,
                             target="approved", features=["income", "region"], metadata=["sex"], protected=["sex"])
        store.log_predictions("loans", "1", events.drop(columns="approved"))
        store.log_labels("loans", events[["event_id", "approved"]].iloc[:200])
        result = store.fairness("loans", window="30d", min_group_size=20)
    assert sorted(result.by_group["group"]) == ["F", "M"]
    assert result.by_group["count"].sum() == 200
    assert len(result.disparities) and len(result.summary) and len(result.representation)
    proxies = result.proxies.set_index("feature")
    assert proxies.loc["region", "flag"] == "proxy"
    assert proxies["attribution_share"].isna().all()
    assert result.attributions.empty
    assert any("without attributions" in note for note in result.notes)
    assert result.summary["note"].str.contains("without attributions").all()


def test_fairness_reads_stored_explanations_and_never_loads_the_model(tmp_path):
    train = _people(800, 0).assign(region=lambda f: (f["region"] == "north").astype(float))
    model = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0)
    model.fit(train[["income", "region"]], train["approved"])
    events = _people(300, 1).assign(region=lambda f: (f["region"] == "north").astype(float))
    events["event_id"] = [f"e{i}" for i in range(len(events))]
    events["timestamp"] = START + pd.to_timedelta(np.arange(len(events)), unit="min")
    events["score"] = model.predict_proba(events[["income", "region"]])[:, 1]
    events["prediction"] = (events["score"] > 0.5).astype(int)
    with vigil.open(tmp_path / "home") as store:
        store.register_model("loans", version="1", task="binary", model=model, training_data=train,
                             target="approved", features=["income", "region"], metadata=["sex"], protected=["sex"])
        store.log_predictions("loans", "1", events.drop(columns="approved"))
        store.log_labels("loans", events[["event_id", "approved"]])
        store.explain_sample("loans", rate=0.3)
        home = store.home
    shutil.rmtree(home / ARTIFACT_DIR)  # no model to load from here on
    with vigil.open(home) as store:
        with pytest.raises(ArtifactError):
            store.model("loans").load_model()
        result = store.fairness("loans", window="30d", min_group_size=20)
    proxies = result.proxies.set_index("feature")
    assert proxies.loc["region", "flag"] == "proxy"
    assert proxies.loc["region", "attribution_share"] > 0.05
    assert proxies["attribution_share"].sum() == pytest.approx(1.0)
    assert not any("without attributions" in note for note in result.notes)
    assert sorted(result.by_group["group"]) == ["F", "M"]
