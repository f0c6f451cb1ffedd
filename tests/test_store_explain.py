"""Explanations of stored predictions: kept with the event, per-window importance, drift, online sampling."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import vigil
from cli_helpers import run
from vigil.errors import NotFoundError, VigilError

FEATURES = ["income", "debt", "age", "tenure"]
START = pd.Timestamp("2026-03-02", tz="UTC")


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "income": rng.normal(50, 15, n), "debt": rng.normal(20, 8, n),
        "age": rng.integers(18, 80, n).astype(float), "tenure": rng.exponential(5, n),
        "sex": rng.choice(["F", "M"], n),
    })
    z = 0.08 * (frame["income"] - 50) - 0.15 * (frame["debt"] - 20) + 0.02 * (frame["age"] - 45)
    frame["default"] = (rng.random(n) < 1 / (1 + np.exp(z))).astype(int)
    return frame


def _events(model, n: int, seed: int, day0: int, days: int, debt_constant: bool = False) -> pd.DataFrame:
    frame = _frame(n, seed)
    if debt_constant:  # the model's second feature stops varying: its attributions shrink to ~0
        frame["debt"] = 20.0
    frame["event_id"] = [f"e{seed}-{i}" for i in range(n)]
    frame["timestamp"] = START + pd.to_timedelta(day0 + np.arange(n) * days / n, unit="D")
    frame["score"] = model.predict_proba(frame[FEATURES])[:, 1]
    frame["prediction"] = (frame["score"] > 0.5).astype(int)
    return frame


@pytest.fixture(scope="module")
def trained():
    train = _frame(3000, 0)
    tree = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0).fit(train[FEATURES],
                                                                                       train["default"])
    linear = LogisticRegression(max_iter=1000).fit(train[FEATURES], train["default"])
    return train, tree, linear


@pytest.fixture
def store(tmp_path, trained):
    train, tree, linear = trained
    s = vigil.open(tmp_path / "home")
    ds = s.register_dataset("credit-train", train)
    for name, model in (("credit", tree), ("credit-linear", linear)):
        s.register_model(name, version="1", task="binary", model=model, training_data=ds, target="default",
                         protected=["sex"])
        events = _events(model, 400, 1, 0, 4)
        s.log_predictions(name, "1", events.drop(columns=["default"]))
        s.log_labels(name, events[["event_id", "default"]])
    yield s
    s.close()


def test_a_stored_event_is_explained_by_treeshap_and_agrees_with_shap(store, trained):
    train, tree, _ = trained
    e = store.explain("credit", event_id="e1-7", method="auto")
    assert e.method == "tree" and e.event_ids == ["e1-7"] and e.model_version == "1"
    assert e.output.startswith("log-odds")
    row = store.events("credit").set_index("event_id").loc[["e1-7"], FEATURES]
    expected = shap.TreeExplainer(tree).shap_values(row)
    np.testing.assert_allclose(e.values, np.asarray(expected).reshape(1, -1), atol=1e-6)
    assert e.efficiency_gap() < 1e-6
    assert e.data.iloc[0]["income"] == pytest.approx(row.iloc[0]["income"])


def test_a_past_explanation_is_shown_exactly_as_it_was(store, tmp_path):
    first = store.explain("credit", event_id=["e1-3", "e1-4"])
    home = store.home
    store.close()
    with vigil.open(home) as again:
        later = again.explain("credit", event_id=["e1-4", "e1-3"])
    assert later.event_ids == ["e1-4", "e1-3"]
    np.testing.assert_array_equal(later.values, first.values[::-1])
    assert later.extra["explained_at"] == first.extra["explained_at"][::-1]
    assert later.baseline == first.baseline and later.output == first.output


def test_linear_model_stored_explanation_is_coefficient_times_deviation(store, trained):
    train, _, linear = trained
    e = store.explain("credit-linear", event_id="e1-11", method="exact", output="log-odds")
    # the stored background is 100 training rows sampled with seed 0
    background = train[FEATURES].sample(n=100, random_state=0)
    x = store.events("credit-linear").set_index("event_id").loc["e1-11", FEATURES].astype(float)
    np.testing.assert_allclose(e.values[0], linear.coef_[0] * (x - background.mean()).to_numpy(), atol=1e-9)


def test_explain_sample_is_stable_and_skips_what_is_done(store):
    first = store.explain_sample("credit", rate=0.25)
    assert 60 < first < 140  # 25% of 400, decided by the event id
    assert store.explain_sample("credit", rate=0.25) == 0
    more = store.explain_sample("credit", rate=0.5)
    assert 140 < first + more < 260


def test_feature_importance_per_window_and_explanation_drift(store, trained):
    _, tree, _ = trained
    store.log_predictions("credit", "1", _events(tree, 400, 2, 4, 2, debt_constant=True).drop(columns=["default"]))
    store.explain_sample("credit", rate=1.0)
    imp = store.feature_importance("credit", window="2d")
    assert list(imp.columns[:3]) == ["window", "source", "explained"]
    training = imp[imp["source"] == "training"].set_index("feature")
    assert training.loc["debt", "rank"] <= 2
    windows = sorted(imp.loc[imp["source"] == "production", "window"].unique())
    assert len(windows) == 3
    last = imp[imp["window"] == windows[-1]].set_index("feature")
    assert last.loc["debt", "mean_abs_attribution"] < 0.35 * training.loc["debt", "mean_abs_attribution"]
    drift = store.explanation_drift("credit", window="2d")
    assert drift["drifted"].tolist() == [False, False, True]
    assert drift["largest_mover"].iloc[-1] == "debt"


def test_online_explainer_works_off_the_ingest_path(store, trained):
    _, tree, _ = trained
    with store.explain_online("credit", rate=1.0, interval=0.05) as online:
        deadline = time.time() + 30
        while online.explained < 400 and time.time() < deadline:
            time.sleep(0.05)
        assert online.explained == 400
        store.log_predictions("credit", "1", _events(tree, 50, 3, 5, 1).drop(columns=["default"]))
        while online.explained < 450 and time.time() < deadline:
            time.sleep(0.05)
    assert online.explained == 450
    assert store.explain_sample("credit", rate=1.0) == 0


def test_what_if_and_counterfactuals_on_a_stored_event(store):
    e = store.explain("credit-linear", event_id="e1-20")
    change = store.what_if("credit-linear", "e1-20", {"debt": 60.0})
    assert change.new_prediction != pytest.approx(change.original_prediction)
    flips = store.counterfactuals("credit-linear", "e1-20", actionable=["income", "debt"], n=2)
    model = store.model("credit-linear").load_model()
    before = model.predict_proba(pd.DataFrame([e.data.iloc[0][FEATURES]]))[0, 1] > 0.5
    assert len(flips.rows) >= 1
    assert ((model.predict_proba(flips.rows[FEATURES].astype(float))[:, 1] > 0.5) != before).all()
    assert change.after is not None and change.after.model_version is None


def test_clear_errors(store):
    with pytest.raises(NotFoundError, match="no event"):
        store.explain("credit", event_id="nope")
    with pytest.raises(VigilError, match="event_id= .* or rows="):
        store.explain("credit")
    with pytest.raises(VigilError, match="method"):
        store.explain("credit", event_id="e1-1", method="astrology")
    rows = store.explain("credit", rows={"income": 70.0, "debt": 5.0, "age": 40.0, "tenure": 2.0})
    assert rows.event_ids is None and len(rows) == 1


def test_cli_explain_shows_the_stored_attributions(store):
    stored = store.explain("credit", event_id="e1-5")
    home = store.home
    store.close()
    table = run(home, "explain", "credit", "e1-5", "--top", "2").stdout
    assert "e1-5" in table and "log-odds" in table and "2 more feature(s)" in table
    exported = json.loads(run(home, "explain", "credit", "e1-5", "--format", "json").stdout)
    by_feature = {r["feature"]: r["attribution"] for r in exported}
    assert by_feature == pytest.approx(dict(zip(stored.feature_names, stored.values[0], strict=True)), abs=1e-12)
    assert "explained" in run(home, "explain", "credit", "--sample", "0.1").stdout
    bad = run(home, "explain", "credit", ok=False)
    assert bad.exit_code != 0 and "EVENT_ID" in bad.output
