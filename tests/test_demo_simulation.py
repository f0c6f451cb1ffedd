from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from vigil.demo import (
    CHANNELS,
    DemoData,
    load_adult,
    make_demo_data,
    simulate_traffic,
    split_features,
    train_model,
)

START = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = 60
EVENTS_PER_DAY = 400


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return load_adult()


@pytest.fixture(scope="module")
def split(adult: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return train_test_split(adult, train_size=0.5, stratify=adult["income"], random_state=0)


@pytest.fixture(scope="module")
def model(split: tuple[pd.DataFrame, pd.DataFrame]):
    return train_model(split[0], seed=0)


@pytest.fixture(scope="module")
def traffic(split, model) -> tuple[pd.DataFrame, pd.DataFrame]:
    return simulate_traffic(split[1], model, days=DAYS, events_per_day=EVENTS_PER_DAY, start=START, seed=0)


@pytest.fixture(scope="module")
def joined(traffic) -> pd.DataFrame:
    events, labels = traffic
    frame = events.merge(labels, on="event_id", how="inner", validate="one_to_one")
    frame["day"] = (frame["timestamp"] - pd.Timestamp(START)).dt.days
    return frame


def days_since_start(timestamps: pd.Series) -> pd.Series:
    return (timestamps - pd.Timestamp(START)).dt.days


def test_load_adult_shape_missing_values_and_target(adult: pd.DataFrame) -> None:
    assert adult.shape == (32_561, 15)
    assert adult.columns.tolist() == [
        "age",
        "workclass",
        "fnlwgt",
        "education",
        "education-num",
        "marital-status",
        "occupation",
        "relationship",
        "race",
        "sex",
        "capital-gain",
        "capital-loss",
        "hours-per-week",
        "native-country",
        "income",
    ]
    assert adult.isna().sum()[["workclass", "occupation", "native-country"]].tolist() == [1_836, 1_843, 583]
    assert adult.isna().sum().sum() == 1_836 + 1_843 + 583
    assert set(adult["income"]) == {"<=50K", ">50K"}
    assert adult["income"].value_counts().to_dict() == {"<=50K": 24_720, ">50K": 7_841}
    assert not adult.isin(["?"]).any().any()
    assert adult["sex"].value_counts().to_dict() == {"Male": 21_790, "Female": 10_771}
    assert all(adult[column].str.strip().equals(adult[column]) for column in ["workclass", "sex"])


def test_split_features_excludes_target_and_sampling_weight(adult: pd.DataFrame) -> None:
    numeric, categorical = split_features(adult)
    assert numeric == ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
    assert "fnlwgt" not in numeric + categorical
    assert "income" not in numeric + categorical
    assert len(categorical) == 8


def test_train_model_predicts_labels_and_probability_of_high_income(model, split) -> None:
    pool = split[1]
    assert list(model.classes_) == ["<=50K", ">50K"]
    assert "fnlwgt" not in model.feature_names_in_
    predictions = model.predict(pool)
    assert set(predictions) <= {"<=50K", ">50K"}
    assert accuracy_score(pool["income"], predictions) > 0.85
    scores = model.predict_proba(pool)[:, 1]
    np.testing.assert_array_equal(predictions == ">50K", scores > 0.5)


def test_events_and_labels_have_the_documented_columns(traffic, model) -> None:
    events, labels = traffic
    features = list(model.feature_names_in_)
    assert events.columns.tolist() == ["event_id", "timestamp", *features, "prediction", "score", "channel"]
    assert "income" not in events.columns
    assert labels.columns.tolist() == ["event_id", "income", "label_time"]
    assert str(events["timestamp"].dt.tz) == "UTC"
    assert str(labels["label_time"].dt.tz) == "UTC"
    assert set(events["channel"]) == set(CHANNELS)
    assert set(labels["income"]) == {"<=50K", ">50K"}


def test_event_ids_are_unique_and_timestamps_within_the_period(traffic) -> None:
    events, labels = traffic
    assert events["event_id"].is_unique
    assert events["event_id"].str.fullmatch(r"[0-9a-f]{32}").all()
    assert labels["event_id"].is_unique
    assert labels["event_id"].isin(events["event_id"]).all()
    assert events["timestamp"].min() >= pd.Timestamp(START)
    assert events["timestamp"].max() < pd.Timestamp(START + timedelta(days=DAYS))
    assert events["timestamp"].is_monotonic_increasing
    per_day = events.groupby(days_since_start(events["timestamp"])).size()
    assert per_day.index.tolist() == list(range(DAYS))
    assert 0.8 * EVENTS_PER_DAY < per_day.mean() < 1.2 * EVENTS_PER_DAY
    weekday_volume = per_day.groupby(
        (pd.Timestamp(START) + pd.to_timedelta(per_day.index, unit="D")).day_of_week
    )
    assert weekday_volume.mean()[[0, 1, 2]].min() > weekday_volume.mean()[[5, 6]].max()


def test_scores_are_probabilities_consistent_with_predictions(traffic) -> None:
    events, _ = traffic
    assert events["score"].between(0.0, 1.0).all()
    assert set(events["prediction"]) == {"<=50K", ">50K"}
    np.testing.assert_array_equal(events["prediction"] == ">50K", events["score"] > 0.5)


def test_female_share_rises_and_age_falls(traffic) -> None:
    events, _ = traffic
    day = days_since_start(events["timestamp"])
    first_week, last_week = events[day < 7], events[day >= DAYS - 7]
    female_first = (first_week["sex"] == "Female").mean()
    female_last = (last_week["sex"] == "Female").mean()
    assert 0.28 < female_first < 0.38
    assert 0.45 < female_last < 0.55
    assert female_last - female_first > 0.10
    assert first_week["age"].mean() - last_week["age"].mean() > 2.0
    assert last_week["hours-per-week"].mean() - first_week["hours-per-week"].mean() > 1.0
    assert (last_week["capital-gain"] > 0).mean() > (first_week["capital-gain"] > 0).mean() + 0.03
    assert (last_week["channel"] == "web").mean() > (first_week["channel"] == "web").mean() + 0.1


def test_accuracy_falls_between_first_and_last_ten_days(joined: pd.DataFrame) -> None:
    first, last = joined[joined["day"] < 10], joined[joined["day"] >= DAYS - 10]
    assert len(last) > 500
    first_accuracy = accuracy_score(first["income"], first["prediction"])
    last_accuracy = accuracy_score(last["income"], last["prediction"])
    assert first_accuracy > 0.83
    assert first_accuracy - last_accuracy >= 0.03


def test_labels_arrive_late_for_about_seventy_percent_of_traffic(traffic, joined: pd.DataFrame) -> None:
    events, labels = traffic
    end = pd.Timestamp(START + timedelta(days=DAYS))
    delay_days = (joined["label_time"] - joined["timestamp"]).dt.total_seconds() / 86_400
    assert (joined["label_time"] > joined["timestamp"]).all()
    assert delay_days.min() >= 2.0
    assert delay_days.max() <= 14.0
    assert (labels["label_time"] < end).all()
    assert 0.55 < len(labels) / len(events) < 0.70
    settled = events["timestamp"] < end - pd.Timedelta(days=14)
    settled_coverage = events.loc[settled, "event_id"].isin(labels["event_id"]).mean()
    assert settled_coverage == pytest.approx(0.70, abs=0.02)
    last_two_days = events["timestamp"] >= end - pd.Timedelta(days=2)
    assert not events.loc[last_two_days, "event_id"].isin(labels["event_id"]).any()
    assert labels["label_time"].is_monotonic_increasing


def test_same_seed_gives_equal_frames_and_other_seed_differs(split, model) -> None:
    kwargs = {"days": 5, "events_per_day": 200, "start": START}
    events_a, labels_a = simulate_traffic(split[1], model, seed=7, **kwargs)
    events_b, labels_b = simulate_traffic(split[1], model, seed=7, **kwargs)
    pd.testing.assert_frame_equal(events_a, events_b)
    pd.testing.assert_frame_equal(labels_a, labels_b)
    events_c, _ = simulate_traffic(split[1], model, seed=8, **kwargs)
    assert not set(events_a["event_id"]) & set(events_c["event_id"])


def test_zero_drift_keeps_the_pool_mix(split, model) -> None:
    events, _ = simulate_traffic(split[1], model, days=20, events_per_day=300, start=START, drift=0.0)
    day = days_since_start(events["timestamp"])
    female_first = (events.loc[day < 5, "sex"] == "Female").mean()
    female_last = (events.loc[day >= 15, "sex"] == "Female").mean()
    assert abs(female_last - female_first) < 0.05


def test_simulate_traffic_rejects_naive_start(split, model) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        simulate_traffic(split[1], model, days=2, events_per_day=10, start=datetime(2024, 1, 1))


def test_make_demo_data_bundles_model_and_traffic() -> None:
    demo = make_demo_data(days=3, events_per_day=100, seed=1, start=START)
    assert isinstance(demo, DemoData)
    assert demo.features == demo.numeric + demo.categorical
    assert demo.train_df.columns.tolist() == [*demo.features, "income"]
    assert len(demo.train_df) == 32_561 // 2
    assert list(demo.model.feature_names_in_) == demo.features
    assert set(demo.features) <= set(demo.events.columns)
    assert demo.start == pd.Timestamp(START)
    assert demo.end == pd.Timestamp(START) + pd.Timedelta(days=3)
    assert demo.events["timestamp"].between(demo.start, demo.end, inclusive="left").all()


def test_make_demo_data_rejects_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_demo_data(days=2, events_per_day=10, start=datetime(2024, 1, 1))
