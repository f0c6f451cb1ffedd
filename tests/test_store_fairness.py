"""Fairness of a stored model: per window, protected attributes as features, metadata or PII tokens."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier

import vigil
from cli_helpers import run

FEATURES = ["income", "debt", "household"]
START = pd.Timestamp("2026-05-04", tz="UTC")


def _people(n: int, seed: int, female_share: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = np.where(rng.random(n) < female_share, "F", "M")
    frame = pd.DataFrame({
        "income": rng.normal(50, 15, n) - 6 * (sex == "F"),
        "debt": rng.normal(20, 8, n),
        # a proxy of sex: strongly tied to it and used by the model
        "household": np.where(rng.random(n) < 0.9, np.where(sex == "F", 1.0, 0.0), rng.integers(0, 2, n)),
        "sex": sex,
        "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
        "national_id": [f"id-{seed}-{i}" for i in range(n)],
        "ethnicity": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
    })
    z = 0.06 * (frame["income"] - 50) - 0.1 * (frame["debt"] - 20) + 1.2 * frame["household"] - 0.4
    frame["approved"] = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return frame


@pytest.fixture
def store(tmp_path):
    train = _people(3000, 0)
    model = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(train[FEATURES],
                                                                                        train["approved"])
    s = vigil.open(tmp_path / "home")
    ds = s.register_dataset("loans-train", train.drop(columns=["national_id"]))
    s.register_model("loans", version="1", task="binary", model=model, training_data=ds, target="approved",
                     protected=["sex", "region", "ethnicity"], metadata=["region", "ethnicity"],
                     pii={"ethnicity": "hash"})
    frames = []
    for week, share in enumerate((0.5, 0.15)):  # the second week under-represents women
        events = _people(1500, week + 1, female_share=share)
        events["event_id"] = [f"w{week}-{i}" for i in range(len(events))]
        events["timestamp"] = START + pd.Timedelta(weeks=week) + pd.to_timedelta(np.arange(len(events)), unit="min")
        events["score"] = model.predict_proba(events[FEATURES])[:, 1]
        events["prediction"] = (events["score"] > 0.5).astype(int)
        frames.append(events)
        s.log_predictions("loans", "1", events.drop(columns=["approved", "national_id"]))
        s.log_labels("loans", events[["event_id", "approved"]])
    s.frames = frames
    yield s
    s.close()


def test_store_fairness_per_window_equals_the_engine_on_the_same_rows(store):
    result = store.fairness("loans", version="1", protected=["sex", "region"], window="7d", min_group_size=20)
    assert sorted(result.by_group["window"].unique()) == [START.tz_localize(None), START.tz_localize(None)
                                                            + pd.Timedelta(weeks=1)]
    for week, events in enumerate(store.frames):
        when = START.tz_localize(None) + pd.Timedelta(weeks=week)
        expected = vigil.fairness(events["approved"], events["prediction"], events[["sex", "region"]],
                                  y_score=events["score"], min_group_size=20)
        got = result.by_group[result.by_group["window"] == when].drop(columns="window").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected.by_group.reset_index(drop=True), check_exact=False, rtol=1e-12)
        summary = result.summary[result.summary["window"] == when]
        assert set(summary["attribute"]) == {"sex", "region", "sex & region"}


def test_pii_hashed_protected_attribute_groups_like_the_clear_values(store):
    result = store.fairness("loans", protected=["ethnicity"], window="7d", min_group_size=20)
    stored = store.events("loans")
    assert not stored["ethnicity"].isin(["a", "b", "c"]).any()  # only tokens in the store
    columns = ["count", "selection_rate", "tpr", "fpr"]
    for week, events in enumerate(store.frames):
        clear = vigil.fairness(events["approved"], events["prediction"], events["ethnicity"], min_group_size=20)
        part = result.by_group[result.by_group["window"] == START.tz_localize(None) + pd.Timedelta(weeks=week)]
        got = part[columns].sort_values("count").to_numpy(dtype=float)
        want = clear.by_group[columns].sort_values("count").to_numpy(dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_representation_flags_the_under_represented_group_over_time(store):
    result = store.fairness("loans", protected=["sex"], window="7d")
    rep = result.representation.set_index(["window", "group"])
    first, second = sorted(result.representation["window"].unique())
    assert rep.loc[(first, "F"), "flag"] == "ok"
    assert rep.loc[(second, "F"), "flag"] == "under_represented"
    assert rep.loc[(second, "F"), "current_share"] == pytest.approx(0.15, abs=0.03)


def test_proxies_name_the_feature_tied_to_sex_that_carries_attribution(store):
    result = store.fairness("loans", protected=["sex"], window="30d")
    proxies = result.proxies.set_index("feature")
    assert proxies.loc["household", "flag"] == "proxy"
    assert proxies.loc["debt", "flag"] == "ok"


def test_fairness_in_the_report_and_the_cli(store, tmp_path):
    report = store.report("loans", window="7d", fairness_window="7d")
    assert "Fairness" in [s.heading for s in report.sections]
    assert "Disparate impact: sex" in report.html
    home = store.home
    store.close()
    out = run(home, "fairness", "loans", "--protected", "sex", "--window", "7d", "--format", "json").stdout
    frame = pd.DataFrame(json.loads(out))
    assert set(frame["attribute"]) == {"sex"} and len(frame) == 2
    table = run(home, "fairness", "loans", "--show", "disparities").stdout
    assert "selection_rate" in table


def test_unknown_protected_attribute_is_a_clear_error(store):
    with pytest.raises(vigil.VigilError, match="'gender'.*protected attributes: ") as err:
        store.fairness("loans", protected=["gender"])
    assert err.value.field == "protected"
    assert all(f"'{name}'" in str(err.value) for name in ("sex", "region", "ethnicity"))


def test_mean_attribution_of_a_protected_attribute_that_is_a_model_input(tmp_path):
    train = _people(2000, 0)
    train["female"] = (train["sex"] == "F").astype(float)
    inputs = [*FEATURES, "female"]
    model = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(train[inputs],
                                                                                        train["approved"])
    with vigil.open(tmp_path / "home") as s:
        s.register_model("loans", version="1", task="binary", model=model, training_data=train[[*inputs, "approved"]],
                         target="approved", protected=["female"])
        events = _people(600, 1)
        events["female"] = (events["sex"] == "F").astype(float)
        events["event_id"] = [f"e{i}" for i in range(len(events))]
        events["timestamp"] = START + pd.to_timedelta(np.arange(len(events)), unit="min")
        events["score"] = model.predict_proba(events[inputs])[:, 1]
        events["prediction"] = (events["score"] > 0.5).astype(int)
        s.log_predictions("loans", "1", events[["event_id", "timestamp", *inputs, "score", "prediction"]])
        s.log_labels("loans", events[["event_id", "approved"]])
        s.explain_sample("loans", rate=0.5)
        result = s.fairness("loans", window="7d")
        importance = s.feature_importance("loans", window="7d")
    assert set(result.attributions["feature"]) == {"female"}
    assert list(result.attributions["source"]) == ["training", "production"]
    want = importance[importance["feature"] == "female"]["mean_attribution"].to_numpy()
    np.testing.assert_allclose(result.attributions["mean_attribution"].to_numpy(), want)
    assert (result.attributions["mean_abs_attribution"] > 0).all()
