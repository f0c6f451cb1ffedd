"""Monitoring through the store: profiles per window and segment agree with metrics on the raw events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import vigil
from vigil.demo import make_demo_data

MODEL = "income"


@pytest.fixture(scope="module")
def demo():
    return make_demo_data(days=14, events_per_day=300, seed=3)


@pytest.fixture(scope="module")
def store(tmp_path_factory, demo):
    s = vigil.open(tmp_path_factory.mktemp("monitoring-home"))
    ds = s.register_dataset("train", demo.train_df)
    s.register_model(MODEL, version="1", model=demo.model, training_data=ds, target="income",
                     protected=["sex"], metadata=["channel"])
    s.log_predictions(MODEL, "1", demo.events)
    s.log_labels(MODEL, demo.labels)
    yield s
    s.close()


def labelled_events(store, **where):
    events = store.events(MODEL)
    events = events[events["income"].notna()]
    for column, value in where.items():
        events = events[events[column] == value]
    return events


def test_daily_performance_agrees_with_scikit_learn(store):
    perf = store.performance(MODEL, version="1", window="1d")
    events = labelled_events(store)
    events["day"] = events["timestamp"].dt.floor("D")
    checked = 0
    for day, rows in events.groupby("day"):
        got = perf[perf["window"] == day].set_index("metric")["value"]
        y, pred, score = rows["income"], rows["prediction"], rows["score"]
        positive = y == ">50K"
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
        assert got["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label=">50K", zero_division=0),
                                                 abs=1e-12)
        assert got["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label=">50K", zero_division=0), abs=1e-12)
        if positive.any() and not positive.all():
            assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(positive, score), abs=2e-3)
        assert got["brier"] == pytest.approx(skm.brier_score_loss(positive, score), abs=1e-9)
        checked += 1
    assert checked >= 10


def test_a_week_is_the_merge_of_its_days(store):
    week = store.performance(MODEL, version="1", window="1w")
    events = labelled_events(store)
    start = week["window"].iloc[0]
    rows = events[(events["timestamp"] >= start) & (events["timestamp"] < start + pd.Timedelta(days=7))]
    got = week[week["window"] == start].set_index("metric")["value"]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(rows["income"], rows["prediction"]), abs=1e-12)


def test_segment_performance(store):
    perf = store.performance(MODEL, version="1", window="1d", segment={"sex": "Female"})
    assert (perf["segment"] == "sex == 'Female'").all()
    rows = labelled_events(store, sex="Female")
    rows = rows.assign(day=rows["timestamp"].dt.floor("D"))
    for day, day_rows in rows.groupby("day"):
        got = perf[(perf["window"] == day) & (perf["metric"] == "accuracy")]["value"].item()
        assert got == pytest.approx(skm.accuracy_score(day_rows["income"], day_rows["prediction"]), abs=1e-12)


def test_bad_segment_names_the_problem(store):
    with pytest.raises(vigil.VigilError, match="segment"):
        store.performance(MODEL, version="1", segment="no_such_column > 3")


def test_drift_against_training_flags_the_drifted_columns_late_not_early(store):
    drift = store.drift(MODEL, version="1", window="1w", baseline="training")
    assert set(drift.columns) >= {"window", "column", "method", "value", "threshold", "drifted", "p_value"}
    by_window = drift.groupby("window")["drifted"].sum()
    assert by_window.iloc[-1] >= by_window.iloc[0]
    assert (drift[drift["kind"] == "numeric"]["method"] == "wasserstein").all()
    assert (drift[drift["kind"] == "categorical"]["method"] == "js_distance").all()


def test_rolling_baseline_skips_the_first_window(store):
    drift = store.drift(MODEL, version="1", window="1d", baseline="previous")
    days = store.traffic(MODEL, version="1", window="1d")["window"].unique()
    assert drift["window"].min() == days[1]


def test_traffic_agrees_with_raw_events(store):
    traffic = store.traffic(MODEL, version="1", window="30d")
    events = store.events(MODEL)
    got = traffic.groupby("metric")["value"].sum()
    assert got["events"] == len(events)
    assert got["labelled"] == events["income"].notna().sum()


def test_integrity_missing_rate_agrees_with_raw_events(store):
    integrity = store.integrity(MODEL, version="1", window="1d")
    events = store.events(MODEL)
    missing = events.groupby(events["timestamp"].dt.floor("D"))["workclass"].apply(lambda c: c.isna().mean())
    got = integrity[(integrity["column"] == "workclass") & (integrity["metric"] == "missing_rate")]
    got = got.set_index("window")["value"]
    pd.testing.assert_series_equal(got.sort_index(), missing.sort_index(), check_names=False, check_index_type=False)


def test_adding_a_day_recomputes_only_that_day(tmp_path, demo):
    with vigil.open(tmp_path) as s:
        s.register_model(MODEL, version="1", model=demo.model, training_data=demo.train_df, target="income",
                         metadata=["channel"])
        days = demo.events["timestamp"].dt.floor("D")
        first, last = days.min(), days.max()
        stamps = "SELECT window_start, max(computed_at) FROM profiles WHERE grain = '1d' AND segment = '' GROUP BY 1"
        s.log_predictions(MODEL, "1", demo.events[days < last])
        s.traffic(MODEL, version="1")  # a read waits for the write path to bring the profiles up to date
        before = dict(s._db.fetchall(stamps))
        assert len(before) == days[days < last].nunique()
        s.log_predictions(MODEL, "1", demo.events[days == last])
        s.traffic(MODEL, version="1")
        after = dict(s._db.fetchall(stamps))
        assert {w for w in after if after[w] != before.get(w)} == {last.tz_localize(None).to_pydatetime()}
        assert s.refresh_profiles(MODEL, version="1") == 0
        counts = s.traffic(MODEL, version="1", window="1d")
        events = counts[counts["metric"] == "events"].set_index("window")["value"]
        assert events.sum() == len(demo.events)
        assert events.index.min() == first


def test_profiles_survive_reopening(tmp_path, demo):
    with vigil.open(tmp_path) as s:
        s.register_model(MODEL, version="1", training_data=demo.train_df, target="income", metadata=["channel"])
        s.log_predictions(MODEL, "1", demo.events)
        s.log_labels(MODEL, demo.labels)
        before = s.performance(MODEL, version="1")
        assert len(before) and np.isfinite(before["value"].to_numpy(float)).all()
    with vigil.open(tmp_path) as s:
        assert s.refresh_profiles(MODEL, version="1") == 0
        pd.testing.assert_frame_equal(before, s.performance(MODEL, version="1"))


def test_worst_segments_ranks_by_the_metric_on_raw_events(store):
    worst = store.worst_segments(MODEL, version="1", metric="accuracy", by=["sex", "channel"], min_count=20)
    assert list(worst["gap"]) == sorted(worst["gap"])
    events = labelled_events(store)
    for row in worst.itertuples():
        rows = events[events[row.column] == row.value]
        assert row.labelled == len(rows)
        assert row.score == pytest.approx(skm.accuracy_score(rows["income"], rows["prediction"]), abs=1e-12)
    assert worst["overall"].iloc[0] == pytest.approx(skm.accuracy_score(events["income"], events["prediction"]))


def test_worst_segments_refuses_an_unknown_metric(store):
    with pytest.raises(vigil.VigilError, match="metric 'nonsense'.*accuracy"):
        store.worst_segments(MODEL, version="1", metric="nonsense")


def test_integrity_counts_quarantined_rows_by_column_and_reason(tmp_path, demo):
    with vigil.open(tmp_path) as s:
        s.register_model(MODEL, version="1", training_data=demo.train_df, target="income", metadata=["channel"])
        bad = demo.events.head(10).copy()
        bad["age"] = bad["age"].astype(object)
        bad.loc[bad.index[:3], "age"] = "old"
        bad.loc[bad.index[3:5], "score"] = 1.5
        s.log_predictions(MODEL, "1", bad)
        integrity = s.integrity(MODEL, version="1", window="30d")
        assert integrity[integrity["metric"] == "quarantined_rows"]["value"].sum() == 5
        counts = integrity.groupby(["column", "metric"])["value"].sum()
        assert counts[("age", "quarantined_type_mismatch")] == 3
        assert counts[("score", "quarantined_probability_out_of_range")] == 2


def test_a_version_without_training_data_takes_its_first_day_of_events_as_baseline(tmp_path):
    rng = np.random.default_rng(3)
    day = pd.DataFrame({"a": rng.normal(size=200), "b": np.full(200, np.nan), "prediction": rng.integers(0, 2, 200)})
    schema = vigil.Schema.infer(day.assign(b=rng.normal(size=200)), prediction="prediction")
    home = tmp_path / "home"
    with vigil.open(home) as store:
        store.register_model("m", version="1", schema=schema)  # nothing to take a baseline from yet
        assert store.drift("m").empty
        first = day.assign(timestamp=pd.Timestamp("2026-01-01 08:00"))
        later = day.assign(a=day["a"] + 3, timestamp=pd.Timestamp("2026-01-02 08:00"))
        store.log_predictions("m", "1", pd.concat([first, later], ignore_index=True))
        drift = store.drift("m").set_index(["window", "column"])
    assert set(drift["baseline"]) == {"first day of events"}
    a = drift.xs("a", level="column")["drifted"]
    assert not a.iloc[0] and a.iloc[1]  # the first day is the baseline; the shifted second day drifts
    assert "b" not in drift.index.get_level_values("column")  # no finite value in the baseline: nothing to compare
    with vigil.open(home, read_only=True) as reader:  # the baseline was kept at the write: reads agree
        again = reader.drift("m").set_index(["window", "column"])
    pd.testing.assert_frame_equal(again, drift)


def test_a_repeated_read_sees_a_window_recomputed_since(tmp_path):
    rng = np.random.default_rng(5)
    train = pd.DataFrame({"a": rng.normal(size=500), "label": rng.integers(0, 2, 500)})
    home = tmp_path / "home"

    def day(n, at, shift=0.0):
        frame = pd.DataFrame({"a": rng.normal(shift, size=n), "prediction": rng.integers(0, 2, n),
                              "score": rng.random(n), "timestamp": pd.Timestamp(at)})
        return frame.assign(event_id=[f"{at}-{shift}-{i}" for i in range(n)])

    with vigil.open(home) as store:
        store.register_model("m", version="1", training_data=train, target="label")
        store.log_predictions("m", "1", pd.concat([day(200, "2026-01-01 05:00"), day(200, "2026-01-02 05:00")]))
        before = store.drift("m", columns=["a"])  # decoded and held
        store.log_predictions("m", "1", day(2000, "2026-01-02 09:00", shift=4.0))  # the second day recomputed
        after = store.drift("m", columns=["a"])
    with vigil.open(home, read_only=True) as fresh:
        pd.testing.assert_frame_equal(after, fresh.drift("m", columns=["a"]))
    assert before["drifted"].tolist() == [False, False] and after["drifted"].tolist() == [False, True]
