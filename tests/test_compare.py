"""vigil.compare on real data: the Adult census file the demo ships, with drift injected on known columns."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

import vigil
from vigil.demo import load_adult, train_model

FEATURES = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week", "workclass", "education",
            "marital-status", "occupation", "relationship", "race", "sex", "native-country"]


@pytest.fixture(scope="module")
def halves():
    adult = load_adult()
    rng = np.random.default_rng(11)
    order = rng.permutation(len(adult))
    half = len(adult) // 2
    return adult.iloc[order[:half]].reset_index(drop=True), adult.iloc[order[half:]].reset_index(drop=True)


def test_no_drift_between_random_halves(halves):
    reference, current = halves
    result = vigil.compare(reference[FEATURES], current[FEATURES])
    assert not result.drift["drifted"].any(), result.drift[result.drift["drifted"]]


def test_injected_drift_is_found_on_exactly_those_columns(halves):
    reference, current = halves
    current = current.copy()
    rng = np.random.default_rng(5)
    current["age"] = current["age"] + 6  # about 0.45 standard deviations older
    private = current["workclass"] == "Private"
    flip = private & (rng.random(len(current)) < 0.5)  # half of the private sector goes self-employed
    current.loc[flip, "workclass"] = "Self-emp-not-inc"
    result = vigil.compare(reference[FEATURES], current[FEATURES])
    flagged = set(result.drift[result.drift["drifted"]]["column"])
    assert flagged == {"age", "workclass"}
    row = result.drift.set_index("column").loc["age"]
    assert row["method"] == "wasserstein" and row["value"] > row["threshold"]


def test_performance_and_schema_roles(halves, tmp_path):
    reference, current = halves
    model = train_model(reference)
    frames = []
    for frame in (reference, current):
        frame = frame.copy()
        frame["prediction"] = model.predict(frame[FEATURES])
        frame["score"] = model.predict_proba(frame[FEATURES])[:, 1]
        frames.append(frame)
    with vigil.open(tmp_path) as store:
        store.register_model("adult", version="1", training_data=reference, target="income")
        schema = store.schema("adult")
    result = vigil.compare(frames[0], frames[1], schema=schema)
    perf = result.performance.set_index("metric")
    cur = frames[1]
    assert perf.loc["accuracy", "current"] == pytest.approx(skm.accuracy_score(cur["income"], cur["prediction"]))
    assert perf.loc["roc_auc", "current"] == pytest.approx(
        skm.roc_auc_score(cur["income"] == ">50K", cur["score"]), abs=2e-3)
    assert "prediction" in set(result.drift["column"]) and "income" not in set(result.drift["column"])
    html = result.report().html
    assert "<html" in html and "Drift" in html

