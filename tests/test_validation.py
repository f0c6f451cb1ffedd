"""Unit tests of the row validator (one per rule) and of Schema inference.

Every rule is checked by what it returns for a small, hand-made batch: which
rows are accepted, which are refused, with which reason, column and message.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from vigil.core.schema import RESERVED_NAMES, Column, Kind, LabelType, Role, Schema
from vigil.core.validation import (
    REASONS,
    parse_timestamps,
    validate_labels,
    validate_predictions,
)
from vigil.errors import BatchError, SchemaError

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binary_schema() -> Schema:
    """age (numeric, training range 20..60, nullable: training had a NaN), income (numeric, no NaN),
    sex (categorical F/M), member (boolean), integer target y in {0, 1}."""
    train = pd.DataFrame(
        {
            "age": [20.0, 35.0, np.nan, 60.0],
            "income": [1.0, 2.0, 3.0, 4.0],
            "sex": ["F", "M", "F", "M"],
            "member": [True, False, True, False],
            "y": [0, 1, 0, 1],
        }
    )
    return Schema.infer(train, target="y")


@pytest.fixture(scope="module")
def multiclass_schema() -> Schema:
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "y": ["a", "b", "c", "a", "b", "c"]})
    return Schema.infer(train, target="y", scores={"p_a": "a", "p_b": "b", "p_c": "c"})


@pytest.fixture(scope="module")
def regression_schema() -> Schema:
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.5, 1.7, 2.9]})
    return Schema.infer(train, target="y", task="regression")


@pytest.fixture(scope="module")
def embedding_schema() -> Schema:
    train = pd.DataFrame({"emb": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], "y": [0, 1]})
    return Schema.infer(train, target="y")


def good_rows(n: int = 1) -> dict[str, list]:
    """Columns of n valid events for ``binary_schema``."""
    return {
        "event_id": [f"e{i}" for i in range(n)],
        "age": [30.0] * n,
        "income": [2.0] * n,
        "sex": ["F"] * n,
        "member": [True] * n,
        "prediction": [1] * n,
        "score": [0.7] * n,
    }


def batch(**changes: list) -> pd.DataFrame:
    """Two valid events, then the given columns replaced (row 0 stays valid when the change keeps it)."""
    cols = good_rows(2)
    cols.update(changes)
    return pd.DataFrame(cols)


def only_rejection(result, row: int = 1) -> dict:
    """The single rejection record, checking that exactly the given row was refused."""
    rejected = result.rejected.to_pylist()
    assert [r["row"] for r in rejected] == [row], rejected
    assert result.rows.tolist() == [i for i in range(result.accepted + 1) if i != row]
    return rejected[0]


def assert_partition(result, n: int) -> None:
    rows = result.rows.tolist() + result.rejected.column("row").to_pylist()
    assert sorted(rows) == list(range(n))
    assert all(r in REASONS for r in result.rejected.column("reason").to_pylist())


# -- missing required values -------------------------------------------------------------------------


def test_valid_rows_are_accepted_typed(binary_schema):
    result = validate_predictions(batch(), binary_schema, now=NOW)
    assert result.accepted == 2 and result.rejected.num_rows == 0
    t = result.table
    assert t.schema.field("age").type == pa.float64()
    assert t.schema.field("member").type == pa.bool_()
    assert t.schema.field("prediction").type == pa.int64()
    assert t.schema.field("timestamp").type == pa.timestamp("us")
    assert t.column("event_id").to_pylist() == ["e0", "e1"]
    # no timestamp column: every event is stamped `now`, in UTC
    assert set(t.column("timestamp").to_pylist()) == {NOW.replace(tzinfo=None)}


def test_null_prediction_is_missing_value(binary_schema):
    result = validate_predictions(batch(prediction=[1, None]), binary_schema, now=NOW)
    rec = only_rejection(result)
    assert (rec["reason"], rec["column"], rec["event_id"]) == ("missing_value", "prediction", "e1")
    assert "prediction" in rec["message"]


def test_label_with_null_event_id_is_missing_value(binary_schema):
    result = validate_labels(pd.DataFrame({"event_id": ["a", None], "y": [1, 0]}), binary_schema, now=NOW)
    rec = only_rejection(result)
    assert (rec["reason"], rec["column"]) == ("missing_value", "event_id")
    assert result.table.column("event_id").to_pylist() == ["a"]


def test_label_with_null_target_is_missing_value(binary_schema):
    result = validate_labels(pd.DataFrame({"event_id": ["a", "b"], "y": [1, None]}), binary_schema, now=NOW)
    rec = only_rejection(result)
    assert (rec["reason"], rec["column"]) == ("missing_value", "y")


# -- type mismatches ---------------------------------------------------------------------------------


def test_numeric_feature_given_text_is_type_mismatch(binary_schema):
    result = validate_predictions(batch(income=[2.0, "abc"]), binary_schema, now=NOW)
    rec = only_rejection(result)
    assert (rec["reason"], rec["column"], rec["value"]) == ("type_mismatch", "income", "'abc'")
    assert "'income'" in rec["message"] and "'abc'" in rec["message"]


def test_numeric_feature_given_numeric_strings_is_accepted(binary_schema):
    result = validate_predictions(batch(income=["2.5", " 3 "]), binary_schema, now=NOW)
    assert result.accepted == 2
    assert result.table.column("income").to_pylist() == [2.5, 3.0]


def test_boolean_feature_given_maybe_is_type_mismatch(binary_schema):
    result = validate_predictions(batch(member=["yes", "maybe"]), binary_schema, now=NOW)
    rec = only_rejection(result)
    assert (rec["reason"], rec["column"], rec["value"]) == ("type_mismatch", "member", "'maybe'")
    assert "'member'" in rec["message"] and "'maybe'" in rec["message"]
    assert result.table.column("member").to_pylist() == [True]


@pytest.mark.parametrize("values, expected", [(["true", "No"], [True, False]), ([1, 0], [True, False]),
                                              (["Y", "f"], [True, False])])
def test_boolean_spellings_are_accepted(binary_schema, values, expected):
    result = validate_predictions(batch(member=values), binary_schema, now=NOW)
    assert result.accepted == 2
    assert result.table.column("member").to_pylist() == expected


def test_integer_class_label_given_text_is_type_mismatch(binary_schema):
    result = validate_predictions(batch(prediction=["1", "x"]), binary_schema, now=NOW)
    rec = only_rejection(result)
    assert (rec["reason"], rec["column"], rec["value"]) == ("type_mismatch", "prediction", "'x'")
    assert "'x'" in rec["message"]
    assert result.table.column("prediction").to_pylist() == [1]


def test_integer_class_label_given_fraction_is_type_mismatch(binary_schema):
    result = validate_predictions(batch(prediction=[1.0, 0.5]), binary_schema, now=NOW)
    rec = only_rejection(result)
    assert (rec["reason"], rec["column"]) == ("type_mismatch", "prediction")


def test_mixed_type_object_column_names_the_bad_row(binary_schema):
    # pandas object column mixing numbers and text: only the text row is refused, not the batch
    result = validate_predictions(batch(age=[41, "old"]), binary_schema, now=NOW)
    rec = only_rejection(result)
    assert (rec["reason"], rec["column"]) == ("type_mismatch", "age")
    assert result.table.column("age").to_pylist() == [41.0]


# -- finiteness -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_score_is_not_finite(binary_schema, bad):
    # a pyarrow table keeps NaN as NaN (pandas turns it into a null: see the next test)
    table = pa.table({**good_rows(2), "score": pa.array([0.5, bad], pa.float64())})
    rec = only_rejection(validate_predictions(table, binary_schema, now=NOW))
    assert (rec["reason"], rec["column"]) == ("not_finite", "score")
    assert "'score'" in rec["message"] and rec["value"] in rec["message"]


def test_pandas_nan_score_is_refused(binary_schema):
    rec = only_rejection(validate_predictions(batch(score=[0.5, np.nan]), binary_schema, now=NOW))
    assert rec["column"] == "score" and rec["reason"] in ("missing_value", "not_finite")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_regression_prediction_is_not_finite(regression_schema, bad):
    table = pa.table({"x": [1.0, 2.0], "prediction": pa.array([1.5, bad], pa.float64())})
    rec = only_rejection(validate_predictions(table, regression_schema, now=NOW))
    assert (rec["reason"], rec["column"]) == ("not_finite", "prediction")


def test_nan_in_nullable_feature_is_accepted_and_counted(binary_schema):
    assert binary_schema.column("age").nullable
    for frame in (batch(age=[30.0, np.nan]), pa.table({**good_rows(2), "age": pa.array([30.0, math.nan])})):
        result = validate_predictions(frame, binary_schema, now=NOW)
        assert result.accepted == 2 and result.rejected.num_rows == 0
        assert result.signals.get("missing_value") == {"age": 1}
        assert result.table.column("age").to_pylist() == [30.0, None]  # stored as a null, not a NaN


@pytest.mark.parametrize("bad", [math.inf, -math.inf])
def test_inf_in_feature_is_not_finite(binary_schema, bad):
    rec = only_rejection(validate_predictions(batch(age=[30.0, bad]), binary_schema, now=NOW))
    assert (rec["reason"], rec["column"]) == ("not_finite", "age")
    assert "'age'" in rec["message"] and "inf" in rec["message"]


def test_spelled_out_infinity_is_not_finite_not_a_type_mismatch(binary_schema):
    rec = only_rejection(validate_predictions(batch(income=["1.5", "Infinity"]), binary_schema, now=NOW))
    assert (rec["reason"], rec["column"]) == ("not_finite", "income")


# -- probabilities -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.01, 1.01, 7.0])
def test_probability_outside_unit_interval(binary_schema, bad):
    rec = only_rejection(validate_predictions(batch(score=[1.0, bad]), binary_schema, now=NOW))
    assert (rec["reason"], rec["column"]) == ("probability_out_of_range", "score")
    assert "'score'" in rec["message"] and str(bad) in rec["message"]


def test_probability_bounds_are_inclusive(binary_schema):
    assert validate_predictions(batch(score=[0.0, 1.0]), binary_schema, now=NOW).accepted == 2


def test_multiclass_probabilities_must_sum_to_one(multiclass_schema):
    frame = pd.DataFrame({
        "x": [1.0, 2.0, 3.0, 4.0],
        "prediction": ["a", "b", "c", "a"],
        "p_a": [0.2, 0.5, 0.1, 1 / 3],
        "p_b": [0.3, 0.3, 0.1, 1 / 3],
        "p_c": [0.5, 0.2, 0.1, 1 / 3 + 1e-6],   # row 2 sums to 0.3; row 3 to 1 + 1e-6 (within tolerance)
    })
    result = validate_predictions(frame, multiclass_schema, now=NOW)
    rec = only_rejection(result, row=2)
    assert rec["reason"] == "probabilities_not_summing_to_one"
    assert all(name in rec["message"] for name in ("p_a", "p_b", "p_c"))
    assert result.rows.tolist() == [0, 1, 3]


def test_multiclass_sum_slightly_off_is_refused(multiclass_schema):
    frame = pd.DataFrame({"x": [1.0], "prediction": ["a"], "p_a": [0.4], "p_b": [0.4], "p_c": [0.21]})
    result = validate_predictions(frame, multiclass_schema, now=NOW)
    assert result.reasons() == {"probabilities_not_summing_to_one": 1}


def test_multiclass_tolerance_is_configurable(multiclass_schema):
    frame = pd.DataFrame({"x": [1.0], "prediction": ["a"], "p_a": [0.4], "p_b": [0.4], "p_c": [0.21]})
    assert validate_predictions(frame, multiclass_schema, now=NOW, probability_tolerance=0.05).accepted == 1


# -- timestamps --------------------------------------------------------------------------------------


def test_parse_timestamps_iso_strings_with_offsets():
    values = pa.array(["2026-01-02T03:04:05+01:00", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05",
                       "2026-01-02T03:04:05.250-05:30", "soon", None, ""])
    parsed, bad = parse_timestamps(values)
    assert parsed[:4].tolist() == [
        dt.datetime(2026, 1, 2, 2, 4, 5),
        dt.datetime(2026, 1, 2, 3, 4, 5),
        dt.datetime(2026, 1, 2, 3, 4, 5),         # naive: taken as UTC
        dt.datetime(2026, 1, 2, 8, 34, 5, 250000),
    ]
    assert bad.tolist() == [False, False, False, False, True, False, True]
    assert np.isnat(parsed[5])


def test_parse_timestamps_epoch_seconds():
    parsed, bad = parse_timestamps(pa.array([0, 1767322800]))
    assert parsed.tolist() == [dt.datetime(1970, 1, 1), dt.datetime(2026, 1, 2, 3, 0)]
    parsed, bad = parse_timestamps(pa.array([1767322800.5, math.inf, None]))
    assert parsed[0] == np.datetime64("2026-01-02T03:00:00.5", "us")
    assert bad.tolist() == [False, True, False]


def _ts_frame(ts) -> pa.Table:
    cols = good_rows(2)
    return pa.table({**cols, "timestamp": ts})


def test_tz_aware_pandas_timestamps_become_utc(binary_schema):
    ts = pd.Series(pd.to_datetime(["2026-01-02 03:04:05", "2026-07-01 12:00:00"])).dt.tz_localize("Europe/Paris")
    frame = batch()
    frame["timestamp"] = ts
    # validated as of August: a July time is no longer in the future (which would make it implausible)
    result = validate_predictions(frame, binary_schema, now=dt.datetime(2026, 8, 1, tzinfo=dt.UTC))
    assert result.accepted == 2
    assert result.table.column("timestamp").to_pylist() == [dt.datetime(2026, 1, 2, 2, 4, 5),
                                                            dt.datetime(2026, 7, 1, 10, 0, 0)]


def test_naive_timestamps_are_taken_as_utc(binary_schema):
    frame = batch()
    frame["timestamp"] = pd.to_datetime(["2026-01-02 03:04:05", "2026-01-03 00:00:00"])
    result = validate_predictions(frame, binary_schema, now=NOW)
    assert result.table.column("timestamp").to_pylist() == [dt.datetime(2026, 1, 2, 3, 4, 5),
                                                            dt.datetime(2026, 1, 3)]


def test_epoch_seconds_timestamps(binary_schema):
    result = validate_predictions(_ts_frame([1767322800, 1767322801]), binary_schema, now=NOW)
    assert result.table.column("timestamp").to_pylist() == [dt.datetime(2026, 1, 2, 3, 0, 0),
                                                            dt.datetime(2026, 1, 2, 3, 0, 1)]


def test_null_timestamp_is_filled_with_now(binary_schema):
    result = validate_predictions(_ts_frame(pa.array([1767322800, None])), binary_schema, now=NOW)
    assert result.accepted == 2
    assert result.table.column("timestamp").to_pylist()[1] == NOW.replace(tzinfo=None)


def test_non_finite_epoch_timestamp_is_bad_timestamp(binary_schema):
    result = validate_predictions(_ts_frame(pa.array([1767322800.0, math.inf])), binary_schema, now=NOW)
    rec = only_rejection(result)
    assert (rec["reason"], rec["column"]) == ("bad_timestamp", "timestamp")
    assert "'timestamp'" in rec["message"] and "inf" in rec["message"]


def test_iso_string_timestamps_through_validate_predictions(binary_schema):
    result = validate_predictions(_ts_frame(["2026-01-02T03:04:05+01:00", "2026-01-02T03:04:05"]),
                                  binary_schema, now=NOW)
    assert result.table.column("timestamp").to_pylist() == [dt.datetime(2026, 1, 2, 2, 4, 5),
                                                            dt.datetime(2026, 1, 2, 3, 4, 5)]


def test_unparseable_string_timestamp_is_bad_timestamp(binary_schema):
    rec = only_rejection(validate_predictions(_ts_frame(["2026-01-02T03:04:05Z", "next tuesday"]),
                                              binary_schema, now=NOW))
    assert (rec["reason"], rec["column"], rec["value"]) == ("bad_timestamp", "timestamp", "'next tuesday'")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_absurd_epoch_timestamp_is_implausible_not_now(binary_schema):
    # a finite number is a readable timestamp, only an absurd one: implausible_timestamp (it was bad_timestamp,
    # the reason for text that cannot be parsed, before plausible ranges existed)
    result = validate_predictions(_ts_frame(pa.array([1767322800.0, 1e20])), binary_schema, now=NOW)
    assert result.reasons() == {"implausible_timestamp": 1}


# -- signals: accepted but counted -------------------------------------------------------------------


def test_unseen_category_and_out_of_range_are_accepted_and_counted(binary_schema):
    frame = pd.DataFrame({**good_rows(3), "sex": ["F", "X", "Y"], "age": [30.0, 99.0, 5.0]})
    result = validate_predictions(frame, binary_schema, now=NOW)
    assert result.accepted == 3 and result.rejected.num_rows == 0
    assert result.signals["unseen_category"] == {"sex": 2}
    assert result.signals["out_of_range"] == {"age": 2}
    assert result.table.column("sex").to_pylist() == ["F", "X", "Y"]


def test_predicted_class_outside_the_model_classes_is_refused(binary_schema):
    # a binary 0/1 model predicting 7 was stored and counted as an unseen category: that was the bug
    rec = only_rejection(validate_predictions(batch(prediction=[1, 7]), binary_schema, now=NOW))
    assert (rec["reason"], rec["column"], rec["value"]) == ("unknown_class", "prediction", "7")


def test_signals_count_only_accepted_rows(binary_schema):
    result = validate_predictions(batch(age=[30.0, 99.0], prediction=[1, None]), binary_schema, now=NOW)
    assert result.accepted == 1
    assert result.signals.get("out_of_range", {}) == {}


# -- embeddings --------------------------------------------------------------------------------------


def test_embedding_of_wrong_dimension(embedding_schema):
    frame = pd.DataFrame({"emb": [[1.0, 2.0, 3.0], [1.0, 2.0]], "prediction": [1, 0], "score": [0.5, 0.5]})
    result = validate_predictions(frame, embedding_schema, now=NOW)
    rec = only_rejection(result)
    assert (rec["reason"], rec["column"]) == ("wrong_dimension", "emb")
    assert "'emb'" in rec["message"] and "3" in rec["message"]
    assert result.table.schema.field("emb").type == pa.list_(pa.float32())


def test_embedding_with_nan_is_not_finite(embedding_schema):
    table = pa.table({"emb": pa.array([[1.0, 2.0, 3.0], [1.0, math.nan, 3.0]]), "prediction": [1, 0],
                      "score": [0.5, 0.5]})
    rec = only_rejection(validate_predictions(table, embedding_schema, now=NOW))
    assert (rec["reason"], rec["column"]) == ("not_finite", "emb")


def test_embedding_given_text_is_type_mismatch(embedding_schema):
    frame = pd.DataFrame({"emb": ["[1, 2, 3]"], "prediction": [1], "score": [0.5]})
    result = validate_predictions(frame, embedding_schema, now=NOW)
    assert result.reasons() == {"type_mismatch": 1}


# -- event ids ---------------------------------------------------------------------------------------


def test_event_ids_generated_where_absent_or_null(binary_schema):
    frame = batch()
    del frame["event_id"]
    ids = validate_predictions(frame, binary_schema, now=NOW).table.column("event_id").to_pylist()
    assert len(set(ids)) == 2
    assert all(len(i) == 32 and int(i, 16) >= 0 and i[12] == "4" for i in ids)
    ids = validate_predictions(batch(event_id=["mine", None]), binary_schema, now=NOW).table.column("event_id")
    assert ids[0].as_py() == "mine" and len(ids[1].as_py()) == 32


def test_integer_event_ids_are_stored_as_text(binary_schema):
    ids = validate_predictions(batch(event_id=[1, 2]), binary_schema, now=NOW).table.column("event_id")
    assert ids.to_pylist() == ["1", "2"]


# -- batch-level errors ------------------------------------------------------------------------------


def test_unknown_column_is_a_batch_error_naming_it(binary_schema):
    with pytest.raises(BatchError, match="colour"):
        validate_predictions(batch(colour=["red", "blue"]), binary_schema, now=NOW)


def test_absent_feature_is_a_batch_error_naming_it(binary_schema):
    frame = batch().drop(columns=["income"])
    with pytest.raises(BatchError, match="income"):
        validate_predictions(frame, binary_schema, now=NOW)


def test_absent_prediction_is_a_batch_error(binary_schema):
    with pytest.raises(BatchError, match="prediction"):
        validate_predictions(batch().drop(columns=["prediction"]), binary_schema, now=NOW)


def test_score_and_target_may_be_absent(binary_schema):
    result = validate_predictions(batch().drop(columns=["score"]), binary_schema, now=NOW)
    assert result.accepted == 2 and "score" not in result.table.column_names


def test_labels_with_a_feature_column_is_a_batch_error(binary_schema):
    with pytest.raises(BatchError, match="age"):
        validate_labels(pd.DataFrame({"event_id": ["a"], "y": [1], "age": [3.0]}), binary_schema)


def test_labels_for_a_schema_without_target():
    schema = Schema.infer(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(BatchError, match="target"):
        validate_labels(pd.DataFrame({"event_id": ["a"], "y": [1]}), schema)


def test_each_row_is_reported_once_with_its_first_failure(binary_schema):
    frame = pd.DataFrame({**good_rows(4), "income": [1.0, "abc", "abc", 1.0], "score": [0.5, 2.0, 0.5, -1.0]})
    result = validate_predictions(frame, binary_schema, now=NOW)
    assert_partition(result, 4)
    got = {r["row"]: (r["reason"], r["column"]) for r in result.rejected.to_pylist()}
    assert got == {1: ("type_mismatch", "income"), 2: ("type_mismatch", "income"),
                   3: ("probability_out_of_range", "score")}
    assert result.rejected.column("event_id").to_pylist() == ["e1", "e2", "e3"]


def test_empty_batch(binary_schema):
    result = validate_predictions(batch().iloc[:0], binary_schema, now=NOW)
    assert result.accepted == 0 and result.rejected.num_rows == 0


@pytest.mark.parametrize("column", ["income", "member", "timestamp"])
def test_huge_integer_is_a_row_problem_not_an_exception(binary_schema, column):
    frame = batch()
    frame[column] = np.array([1, 2**62], dtype=np.int64)
    result = validate_predictions(frame, binary_schema, now=NOW)
    assert result.accepted + result.rejected.num_rows == 2


@pytest.mark.parametrize("values", [[1, 2**64], [dt.datetime(2026, 1, 1), 9.3e18], [dt.datetime(2026, 1, 1), math.inf]],
                         ids=["int", "datetime-big", "datetime-inf"])
def test_overflowing_object_column_is_rows_not_an_exception(binary_schema, values):
    frame = batch()
    frame["income"] = pd.Series(values, dtype=object)
    result = validate_predictions(frame, binary_schema, now=NOW)
    assert result.accepted + result.rejected.num_rows == 2


def test_all_null_numeric_feature_is_accepted_and_counted(binary_schema):
    frame = batch()
    frame["income"] = pd.Series([None, None], dtype=object)
    result = validate_predictions(frame, binary_schema, now=NOW)
    assert result.accepted == 2 and result.signals["missing_value"] == {"income": 2}
    assert result.table.column("income").null_count == 2


def test_all_null_score_column_is_rows_not_an_exception(binary_schema):
    frame = batch()
    frame["score"] = pd.Series([None, None], dtype=object)
    result = validate_predictions(frame, binary_schema, now=NOW)
    assert result.accepted == 0 and result.reasons() == {"missing_value": 2}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_float_beyond_int64_is_not_stored_as_garbage(binary_schema):
    result = validate_predictions(batch(prediction=[1.0, 1e300]), binary_schema, now=NOW)
    stored = result.table.column("prediction").to_pylist()
    assert -(2**63) not in stored


# -- Schema: inference -------------------------------------------------------------------------------


def test_infer_kinds():
    train = pd.DataFrame({
        "num": [1, 2, 3, 4],
        "flt": [0.5, 1.5, 2.5, np.nan],
        "cat": ["a", "b", "a", None],
        "flag": [True, False, True, False],
        "txt": ["w1", "w2", "w3", "w4"],
        "emb": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]],
        "y": [0, 1, 0, 1],
    })
    s = Schema.infer(train, target="y", max_categories=3)
    kinds = {c.name: c.kind for c in s.features}
    assert kinds == {"num": Kind.NUMERIC, "flt": Kind.NUMERIC, "cat": Kind.CATEGORICAL, "flag": Kind.BOOLEAN,
                     "txt": Kind.TEXT, "emb": Kind.EMBEDDING}
    assert s.column("emb").dimension == 2 and s.column("emb").storage_type == "FLOAT[]"
    assert (s.column("num").min, s.column("num").max, s.column("num").nullable) == (1.0, 4.0, False)
    assert (s.column("flt").min, s.column("flt").max, s.column("flt").nullable) == (0.5, 2.5, True)
    assert s.column("cat").categories == ("a", "b") and s.column("cat").nullable
    assert s.column("txt").categories is None
    assert s.task == "binary" and s.classes == (0, 1) and s.positive_class == 1
    assert s.target.label_type == LabelType.INTEGER and s.target.storage_type == "BIGINT"
    assert [c.name for c in s.scores] == ["score"] and s.scores[0].class_label == "1"
    assert s.event_id.name == "event_id" and s.timestamp.name == "timestamp"


def test_text_when_many_distinct_strings():
    train = pd.DataFrame({"comment": [f"comment {i}" for i in range(300)], "y": [0, 1] * 150})
    assert Schema.infer(train, target="y").column("comment").kind == Kind.TEXT
    assert Schema.infer(train.iloc[:150], target="y").column("comment").kind == Kind.CATEGORICAL


def test_infer_from_polars_and_arrow_agree():
    pl = pytest.importorskip("polars")
    data = {"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"], "y": ["no", "yes", "no"]}
    a = Schema.infer(pd.DataFrame(data), target="y")
    assert Schema.infer(pl.DataFrame(data), target="y") == a
    assert Schema.infer(pa.table(data), target="y") == a
    assert a.target.label_type == LabelType.STRING and a.positive_class == "yes"


def test_infer_tasks():
    x = list(range(60))
    assert Schema.infer(pd.DataFrame({"x": x, "y": [i * 0.37 for i in x]}), target="y").task == "regression"
    assert Schema.infer(pd.DataFrame({"x": x, "y": [i % 3 for i in x]}), target="y").task == "multiclass"
    assert Schema.infer(pd.DataFrame({"x": x, "y": x}), target="y").task == "regression"   # > 50 classes
    with pytest.raises(SchemaError, match="3 classes"):
        Schema.infer(pd.DataFrame({"x": x, "y": [i % 3 for i in x]}), target="y", task="binary")


def test_overrides_role_kind_and_dict():
    train = pd.DataFrame({"zip": ["1", "2"], "region": ["n", "s"], "age": [1.0, 2.0], "y": [0, 1]})
    s = Schema.infer(train, target="y", overrides={
        "zip": "text",
        "region": "metadata",
        "age": {"min": 0.0, "max": 120.0, "nullable": True},
        "channel": {"kind": "categorical", "categories": ["web", "app"]},
    })
    assert s.column("zip").kind == Kind.TEXT and s.column("zip").role == Role.FEATURE
    assert s.column("region").role == Role.METADATA
    assert (s.column("age").min, s.column("age").max, s.column("age").nullable) == (0.0, 120.0, True)
    assert s.column("channel").role == Role.METADATA and s.column("channel").categories == ("web", "app")
    with pytest.raises(SchemaError, match="zip"):
        Schema.infer(train, target="y", overrides={"zip": "nonsense"})
    with pytest.raises(SchemaError, match="unknown fields"):
        Schema.infer(train, target="y", overrides={"zip": {"colour": "red"}})


def test_protected_and_pii_flags():
    train = pd.DataFrame({"age": [1.0, 2.0], "sex": ["F", "M"], "y": [0, 1]})
    s = Schema.infer(train, target="y", protected=["sex"], metadata=["email", "ip"],
                     pii={"email": "hash", "ip": "drop"})
    assert s.column("sex").protected and s.column("sex").role == Role.FEATURE
    assert [c.name for c in s.protected] == ["sex"]
    assert {c.name: c.pii for c in s.pii} == {"email": "hash", "ip": "drop"}
    assert s.column("email").storage_type == "VARCHAR"
    with pytest.raises(SchemaError, match="cannot be PII"):
        Column("p", Role.PREDICTION, Kind.NUMERIC, pii="hash")
    with pytest.raises(SchemaError, match="pii must be one of"):
        Column("email", Role.METADATA, Kind.CATEGORICAL, pii="encrypt")


def test_metadata_only_protected_attribute():
    train = pd.DataFrame({"age": [1.0, 2.0], "y": [0, 1]})
    s = Schema.infer(train, target="y", metadata=["race"], protected=["race"])
    col = s.column("race")
    assert col.role == Role.METADATA and col.protected
    assert "race" not in [c.name for c in s.features]
    with pytest.raises(SchemaError, match="'gender'.*metadata"):
        Schema.infer(train, target="y", protected=["gender"])


@pytest.mark.parametrize("name", sorted(n for n, role in RESERVED_NAMES.items() if role is None))
def test_reserved_names_are_refused(name):
    with pytest.raises(SchemaError, match=f"{name!r} is a name Vigil keeps"):
        Schema.infer(pd.DataFrame({name: [1.0, 2.0], "y": [0, 1]}), target="y")


def test_reserved_name_in_another_role_suggests_the_role():
    with pytest.raises(SchemaError, match="give it the role 'timestamp'"):
        Schema.infer(pd.DataFrame({"timestamp": [1.0, 2.0], "y": [0, 1]}), target="y", timestamp="ts")


def test_schema_json_round_trip():
    train = pd.DataFrame({
        "x": [1.0, 2.0, 3.0], "c": ["a", "b", "c"], "emb": [[0.1, 0.2]] * 3, "y": ["lo", "mid", "hi"],
    })
    s = Schema.infer(train, target="y", scores=["p_hi", "p_lo", "p_mid"], metadata=["sex", "email"],
                     protected=["sex"], pii={"email": "hash"})
    again = Schema.from_json(s.to_json())
    assert again == s
    assert again.classes == ("hi", "lo", "mid")
    assert again.column("email").pii == "hash" and again.column("sex").protected
    assert again.column("emb").dimension == 2
    b = Schema.infer(pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}), target="y")
    assert Schema.from_json(b.to_json()) == b and Schema.from_json(b.to_json()).positive_class == 1
    with pytest.raises(SchemaError, match="newer"):
        Schema.from_dict({**s.to_dict(), "version": 2})


def test_multiclass_score_columns_mapping():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["b", "a", "c"]})
    s = Schema.infer(train, target="y", scores=["s0", "s1", "s2"])  # in the order of the sorted classes
    assert s.task == "multiclass"
    assert [(c.name, c.class_label) for c in s.scores] == [("s0", "a"), ("s1", "b"), ("s2", "c")]
    s = Schema.infer(train, target="y", scores={"pc": "c", "pa": "a", "pb": "b"})
    assert {c.name: c.class_label for c in s.scores} == {"pc": "c", "pa": "a", "pb": "b"}
    with pytest.raises(SchemaError, match="2 score columns for 3 classes"):
        Schema.infer(train, target="y", scores=["s0", "s1"])
    with pytest.raises(SchemaError, match="one score column per class"):
        Schema.infer(train, target="y", scores="p")
    assert Schema.infer(train, target="y").scores == []


def test_schema_invariants():
    cols = (Column("event_id", Role.EVENT_ID, Kind.ID), Column("timestamp", Role.TIMESTAMP, Kind.TIMESTAMP))
    with pytest.raises(SchemaError, match="prediction column or score"):
        Schema(columns=cols)
    with pytest.raises(SchemaError, match="twice"):
        Schema(columns=(*cols, Column("p", Role.PREDICTION, Kind.NUMERIC), Column("p", Role.FEATURE, Kind.NUMERIC)))
    with pytest.raises(SchemaError, match="task"):
        Schema(columns=(*cols, Column("p", Role.PREDICTION, Kind.NUMERIC)), task="clustering")
    with pytest.raises(SchemaError, match="no column 'nope'"):
        Schema.infer(pd.DataFrame({"x": [1.0], "y": [0]}), target="y").column("nope")


def test_dates_as_features_are_refused_with_advice():
    train = pd.DataFrame({"when": pd.to_datetime(["2026-01-01", "2026-01-02"]), "y": [0, 1]})
    with pytest.raises(SchemaError, match="'when' holds dates"):
        Schema.infer(train, target="y")


def test_nanosecond_timestamps_are_truncated_to_microseconds_not_refused(binary_schema):
    frame = batch()
    frame["timestamp"] = pd.to_datetime(["2026-01-01T00:00:00.123456789Z", "2026-01-01T00:00:01.000000001Z"])
    result = validate_predictions(frame, binary_schema, now=NOW)
    assert result.accepted == 2
    assert [str(t) for t in result.table.column("timestamp").to_pylist()] == [
        "2026-01-01 00:00:00.123456", "2026-01-01 00:00:01"]


@pytest.mark.parametrize(("options", "outputs"), [
    ({}, {"prediction": Role.PREDICTION, "score": Role.SCORE}),
    ({"prediction": "label", "scores": "p"}, {"label": Role.PREDICTION, "p": Role.SCORE}),
])
def test_inferred_features_leave_out_the_models_own_output_columns(options, outputs):
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1], **{name: [0, 1] for name in outputs}})
    schema = Schema.infer(frame, target="y", **options)
    assert [c.name for c in schema.features] == ["x"]
    assert {name: schema.column(name).role for name in outputs} == outputs
