"""Implausible event times and class values a model does not have: quarantined per row, through the store.

Each test logs a small batch to a real store (``vigil.open(tmp_path)``) and
checks which rows were refused, with which reason, column and message; the
unit-level checks call the validator with a fixed ``now``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import vigil
from vigil.core.schema import EARLIEST_TIMESTAMP, FUTURE_TOLERANCE, Schema
from vigil.core.validation import REASONS, validate_labels, validate_predictions

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
TRAIN = pd.DataFrame({"age": [22.0, 35.0, 47.0, 51.0], "y": [0, 1, 0, 1]})
TEXT_TRAIN = pd.DataFrame({"age": [22.0, 35.0, 47.0, 51.0], "y": ["no", "yes", "no", "yes"]})
MC_TRAIN = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "y": ["a", "b", "c", "a", "b", "c"]})
SCORES = {"p_a": "a", "p_b": "b", "p_c": "c"}


@pytest.fixture
def store(tmp_path):
    s = vigil.open(tmp_path / "home")
    s.register_model("m", version="1", training_data=TRAIN, target="y")
    yield s
    s.close()


def recent(n: int) -> list[pd.Timestamp]:
    """n event times in the last hours, plausible whenever the test runs."""
    return [pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=i + 1) for i in range(n)]


def events(timestamps: list, predictions: list | None = None) -> pd.DataFrame:
    n = len(timestamps)
    return pd.DataFrame({
        "event_id": [f"e{i}" for i in range(n)],
        "timestamp": pd.Series(timestamps, dtype=object) if any(isinstance(t, str) for t in timestamps)
        else timestamps,
        "age": [30.0] * n,
        "prediction": predictions if predictions is not None else [1] * n,
        "score": [0.7] * n,
    })


def quarantined(store, model: str = "m") -> dict[str, tuple[str, str, str]]:
    """event id -> (reason, column, message) of the quarantine."""
    q = store.quarantine(model)
    return {r.event_id: (r.reason, r.column, r.message) for r in q.itertuples()}


# -- timestamps --------------------------------------------------------------------------------------


def test_millisecond_epoch_is_quarantined_with_a_hint(store):
    now_s = int(pd.Timestamp.now(tz="UTC").timestamp())
    res = store.log_predictions("m", "1", events([now_s - 60, now_s * 1000]))
    assert (res.accepted, res.quarantined, res.reasons) == (1, 1, {"implausible_timestamp": 1})
    reason, column, message = quarantined(store)["e1"]
    assert (reason, column) == ("implausible_timestamp", "timestamp")
    assert "looks like milliseconds since 1970: divide by 1000 or send an ISO-8601 string" in message
    assert "implausible_timestamp" in REASONS
    assert store.events("m")["event_id"].tolist() == ["e0"]  # reading the version back works


@pytest.mark.parametrize(("factor", "unit"), [(10**6, "microseconds"), (10**9, "nanoseconds")])
def test_microsecond_and_nanosecond_epochs_get_their_own_hint(factor, unit):
    schema = Schema.infer(TRAIN, target="y")
    secs = int(dt.datetime(2026, 1, 2, tzinfo=dt.UTC).timestamp())
    result = validate_predictions(events([secs, secs * factor]), schema, now=NOW)
    (rec,) = result.rejected.to_pylist()
    assert (rec["row"], rec["reason"], rec["column"]) == (1, "implausible_timestamp", "timestamp")
    assert f"looks like {unit} since 1970: divide by {factor}" in rec["message"]


@pytest.mark.parametrize("value", ["9999-12-31", "0001-01-01", 1.7e12, -1e11, 1e20, 0],
                         ids=["year-9999", "year-1", "year-55840", "negative-epoch", "huge-epoch", "epoch-zero"])
def test_absurd_timestamps_are_quarantined_and_reads_still_work(store, value):
    good = recent(1)[0]
    ts = [good.isoformat(), value] if isinstance(value, str) else [good.timestamp(), value]
    res = store.log_predictions("m", "1", events(ts))
    assert (res.accepted, res.reasons) == (1, {"implausible_timestamp": 1})
    reason, column, message = quarantined(store)["e1"]
    assert (reason, column) == ("implausible_timestamp", "timestamp")
    assert "outside the plausible range 1990-01-01 .. " in message
    assert ("divide by 1000" if value == 1.7e12 else "set timestamp_range=(earliest, latest)") in message
    assert store.events("m")["event_id"].tolist() == ["e0"]
    assert len(store.traffic("m", window="1d")) >= 1


def test_late_backfill_is_accepted_and_the_far_future_is_not():
    schema = Schema.infer(TRAIN, target="y")
    times = ["1990-01-01T00:00:00Z", "1995-06-01T08:00:00Z", "2006-03-01T00:00:00Z",
             (NOW + dt.timedelta(hours=23)).isoformat(), (NOW + dt.timedelta(days=2)).isoformat(),
             "1989-12-31T23:59:59Z"]
    result = validate_predictions(events(times), schema, now=NOW)
    assert result.rows.tolist() == [0, 1, 2, 3]
    assert [(r["row"], r["reason"]) for r in result.rejected.to_pylist()] == [
        (4, "implausible_timestamp"), (5, "implausible_timestamp")]
    assert schema.timestamp_bounds(NOW) == (EARLIEST_TIMESTAMP, NOW.replace(tzinfo=None) + FUTURE_TOLERANCE)


def test_timestamp_range_of_a_model_replaces_the_default(tmp_path):
    with vigil.open(tmp_path) as s:
        s.register_model("hist", version="1", training_data=TRAIN, target="y",
                         timestamp_range=("1960-01-01", "2100-01-01"))
        assert s.schema("hist").timestamp_range == ("1960-01-01T00:00:00", "2100-01-01T00:00:00")
        res = s.log_predictions("hist", "1", events(["1970-05-01T00:00:00Z", "2090-01-01T00:00:00Z",
                                                     "1959-12-31T00:00:00Z"]))
        assert (res.accepted, res.reasons) == (2, {"implausible_timestamp": 1})
        assert "1960-01-01 .. 2100-01-01 UTC" in quarantined(s, "hist")["e2"][2]


def test_timestamp_range_round_trips_and_old_schemas_read_without_it():
    schema = Schema.infer(TRAIN, target="y", timestamp_range=(dt.datetime(1960, 1, 1), None))
    assert Schema.from_json(schema.to_json()) == schema
    assert schema.timestamp_range == ("1960-01-01T00:00:00", None)
    plain = Schema.infer(TRAIN, target="y")
    stored = plain.to_dict()
    assert "timestamp_range" not in stored        # a schema without a range is stored as before
    assert Schema.from_dict(stored).timestamp_range is None
    assert Schema.from_dict(stored) == plain


@pytest.mark.parametrize("bounds", [("2020-01-01", "2010-01-01"), ("garbage", None), "2020-01-01"],
                         ids=["reversed", "unparseable", "not-a-pair"])
def test_bad_timestamp_range_is_a_schema_error(bounds):
    with pytest.raises(vigil.SchemaError) as err:
        Schema.infer(TRAIN, target="y", timestamp_range=bounds)
    assert (err.value.code, err.value.field) == ("schema_error", "timestamp_range")


def test_label_time_outside_the_range_is_quarantined(store):
    store.log_predictions("m", "1", events(recent(2)))
    res = store.log_labels("m", pd.DataFrame({"event_id": ["e0", "e1"], "y": [1, 0],
                                              "label_time": [recent(1)[0].isoformat(), "9999-12-31"]}))
    assert (res.accepted, res.reasons) == (1, {"implausible_timestamp": 1})
    assert quarantined(store)["e1"][:2] == ("implausible_timestamp", "label_time")


def test_timestamp_metadata_beyond_year_9999_is_refused_not_stored():
    schema = Schema.infer(TRAIN, target="y", metadata={"signup": "timestamp"})
    frame = events(["2026-01-02T00:00:00Z"] * 2).assign(signup=[1.7e9, 1.7e15])
    result = validate_predictions(frame, schema, now=NOW)
    (rec,) = result.rejected.to_pylist()
    assert (rec["row"], rec["reason"], rec["column"]) == (1, "implausible_timestamp", "signup")
    assert "microseconds" in rec["message"]


# -- classes -----------------------------------------------------------------------------------------


def test_integer_label_outside_the_binary_classes_is_quarantined(store):
    store.log_predictions("m", "1", events(recent(3)))
    res = store.log_labels("m", pd.DataFrame({"event_id": ["e0", "e1", "e2"], "y": [1, 2, 0]}))
    assert (res.accepted, res.reasons) == (2, {"unknown_class": 1})
    reason, column, message = quarantined(store)["e1"]
    assert (reason, column) == ("unknown_class", "y")
    assert "not one of the model's classes [0, 1]" in message
    assert store.events("m").set_index("event_id")["y"].isna().tolist() == [False, True, False]


def test_string_labelled_model_refuses_values_that_are_not_its_classes(tmp_path):
    with vigil.open(tmp_path) as s:
        s.register_model("t", version="1", training_data=TEXT_TRAIN, target="y")
        s.log_predictions("t", "1", events(recent(4), predictions=["yes", "no", "yes", "no"]))
        labels = pd.DataFrame({"event_id": ["e0", "e1", "e2", "e3"],
                               "y": pd.Series(["yes", 1, "Yes", "maybe"], dtype=object)})
        res = s.log_labels("t", labels)
        assert (res.accepted, res.reasons) == (1, {"unknown_class": 3})
        got = quarantined(s, "t")
        assert {k: v[:2] for k, v in got.items()} == {k: ("unknown_class", "y") for k in ("e1", "e2", "e3")}
        assert "['no', 'yes']" in got["e2"][2]


def test_labels_of_an_integer_model_compare_by_value():
    schema = Schema.infer(TRAIN, target="y")
    labels = pd.DataFrame({"event_id": list("abcde"), "y": pd.Series([1, 1.0, "1", "0", 0.0], dtype=object)})
    result = validate_labels(labels, schema, now=NOW)
    assert result.accepted == 5 and result.table.column("y").to_pylist() == [1, 1, 1, 0, 0]
    booleans = validate_labels(pd.DataFrame({"event_id": ["a", "b"], "y": [True, False]}), schema, now=NOW)
    assert booleans.table.column("y").to_pylist() == [1, 0]  # as in Python, True == 1
    # a float column with NaN for "no label yet", as pandas reads a CSV with gaps: 1.0 is the class 1
    frame = events(["2026-01-02T00:00:00Z"] * 3).assign(y=[1.0, np.nan, 0.0])
    result = validate_predictions(frame, schema, now=NOW)
    assert result.accepted == 3 and result.table.column("y").to_pylist() == [1, None, 0]
    result = validate_predictions(events(["2026-01-02T00:00:00Z"] * 2).assign(y=[1.0, 3.0]), schema, now=NOW)
    assert [(r["row"], r["reason"], r["column"]) for r in result.rejected.to_pylist()] == [(1, "unknown_class", "y")]


def test_unknown_predicted_class_of_a_multiclass_model_is_quarantined(tmp_path):
    with vigil.open(tmp_path) as s:
        s.register_model("mc", version="1", training_data=MC_TRAIN, target="y", scores=SCORES)
        frame = pd.DataFrame({"event_id": ["a", "b"], "timestamp": recent(2), "x": [1.0, 2.0],
                              "prediction": ["a", "d"], "p_a": [0.5, 0.2], "p_b": [0.3, 0.3], "p_c": [0.2, 0.5]})
        res = s.log_predictions("mc", "1", frame)
        assert (res.accepted, res.reasons) == (1, {"unknown_class": 1})
        assert quarantined(s, "mc")["b"][:2] == ("unknown_class", "prediction")


def test_multiclass_batch_missing_a_score_column_is_a_batch_error(tmp_path):
    with vigil.open(tmp_path) as s:
        s.register_model("mc", version="1", training_data=MC_TRAIN, target="y", scores=SCORES)
        frame = pd.DataFrame({"event_id": ["a"], "timestamp": recent(1), "x": [1.0], "prediction": ["a"],
                              "p_a": [0.2], "p_b": [0.3]})  # p_c absent: the sum to 1 could not be checked
        with pytest.raises(vigil.BatchError) as err:
            s.log_predictions("mc", "1", frame)
        assert (err.value.code, err.value.field) == ("batch_error", "p_c")
        assert "['p_c']" in str(err.value)
        assert s.events("mc").empty
        # without any score column the batch is taken (scores are optional), and checked per row as usual
        assert s.log_predictions("mc", "1", frame.drop(columns=["p_a", "p_b"])).accepted == 1


def test_boolean_and_single_class_models_do_not_refuse_valid_booleans():
    schema = Schema.infer(pd.DataFrame({"x": [1.0, 2.0], "y": [True, False]}), target="y")
    frame = pd.DataFrame({"x": [1.0, 2.0], "prediction": [True, False], "timestamp": ["2026-01-02"] * 2})
    assert validate_predictions(frame, schema, now=NOW).accepted == 2
    one = dataclasses.replace(Schema.infer(TRAIN, target="y"), classes=(0,))  # training saw one class only
    assert validate_predictions(events(["2026-01-02"] * 2, predictions=[0, 1]), one, now=NOW).accepted == 2
    assert validate_predictions(pa.table({"x": [1.0], "prediction": pa.array([True]), "timestamp": ["2026-01-02"]}),
                                schema, now=NOW).accepted == 1
