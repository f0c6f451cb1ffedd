"""Property tests: whatever a batch holds, validation accounts for every row, and so does the store.

Frames are generated against fixed schemas (a binary model with numeric,
categorical and boolean features, a prediction and a score; a multiclass
model with three class-probability columns) with values drawn from a mix of
valid values, None, NaN, infinities, wrong-typed strings, huge numbers, odd
unicode and mixed-type object columns. The column set is always valid, so no
exception at all is allowed: each row is accepted (and typed) or rejected
with a known reason.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vigil
from vigil.core.schema import Schema
from vigil.core.validation import REASONS, validate_predictions

# a float beyond int64 in an integer label column warns as it is cast (reported bug, see
# test_validation.py::test_float_beyond_int64_is_not_stored_as_garbage)
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SAFE_INT = 2**53

TRAIN = pd.DataFrame({
    "num": [1.0, 5.0, np.nan, 9.0],          # nullable numeric feature (training had a missing value)
    "amount": [10.0, 20.0, 30.0, 40.0],      # numeric feature without missing values
    "cat": ["a", "b", "c", "a"],
    "flag": [True, False, True, False],
    "y": [0, 1, 0, 1],
})
MC_TRAIN = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "y": ["a", "b", "c", "a", "b", "c"]})

BINARY = Schema.infer(TRAIN, target="y")
MULTICLASS = Schema.infer(MC_TRAIN, target="y", scores={"p_a": "a", "p_b": "b", "p_c": "c"})

# -- value strategies --------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from([
    "", " ", "abc", "nan", "NaN", "inf", "-Infinity", "1e400", "-1e-400", "0x1A", "1_000", "３", "٣", "½",
    "\x00", "\u202e1", "🙂", "true", "FALSE", "maybe", "None", "null", "2026-01-01", "1,5", "  7  ",
])
TEXT = st.one_of(ODD_TEXT, st.text(max_size=8))
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.0000001, -1e-9, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf]),
)
INTS = st.integers(-SAFE_INT, SAFE_INT)
HUGE_INTS = st.one_of(st.integers(SAFE_INT + 1, 2**63 - 1), st.integers(2**63, 2**80))
MISSING = st.sampled_from([None, math.nan])
ODDS = st.one_of(st.lists(st.integers(0, 3), max_size=2), st.just({"k": 1}), st.just(b"\xff"))


def mixed(valid: st.SearchStrategy, *, huge: bool = False) -> st.SearchStrategy:
    """Mostly valid values, the rest anything; `huge` adds integers beyond 2**53."""
    others = [MISSING, FLOATS, INTS, TEXT, st.booleans(), ODDS]
    if huge:
        others.append(HUGE_INTS)
    return st.one_of(valid, valid, valid, *others)


NUM_VALID = st.floats(-100, 100, allow_nan=False)
CAT_VALID = st.sampled_from(["a", "b", "c", "z"])
FLAG_VALID = st.sampled_from([True, False, "yes", "no", 1, 0])
PRED_VALID = st.sampled_from([0, 1, 1.0, "1", 2])
SCORE_VALID = st.floats(0, 1)
MC_PRED_VALID = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def column_values(draw, n: int, valid: st.SearchStrategy, huge: bool = False) -> list:
    # sometimes the whole column is of one clean type, sometimes a mixed object column
    if draw(st.booleans()):
        return draw(st.lists(valid, min_size=n, max_size=n))
    return draw(st.lists(mixed(valid, huge=huge), min_size=n, max_size=n))


@st.composite
def timestamps(draw, n: int, strings: bool = True, huge: bool = False):
    """A timestamp column of one kind (or None for absent): datetimes naive or tz-aware, epoch numbers."""
    kind = draw(st.sampled_from(["absent", "naive", "aware", "epoch_int", "epoch_float"]
                                + (["strings", "mixed"] if strings else [])))
    opt = lambda s: st.one_of(st.none(), s, s, s)  # noqa: E731
    dts = st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1))
    if kind == "absent":
        return None
    if kind == "naive":
        return pd.to_datetime(pd.Series(draw(st.lists(opt(dts), min_size=n, max_size=n)), dtype=object))
    if kind == "aware":
        values = pd.to_datetime(pd.Series(draw(st.lists(opt(dts), min_size=n, max_size=n)), dtype=object))
        zone = draw(st.sampled_from(["UTC", "Europe/Paris", "Asia/Kolkata"]))
        return values.dt.tz_localize(zone, nonexistent="shift_forward", ambiguous="NaT")
    if kind == "epoch_int":
        return draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n))
    if kind == "epoch_float":
        return draw(st.lists(opt(st.floats(-1e12, 1e12) | st.sampled_from([math.nan, math.inf])),
                             min_size=n, max_size=n))
    if kind == "strings":
        iso = dts.map(lambda d: d.isoformat() + draw(st.sampled_from(["", "Z", "+05:30", "-01:00"])))
        return draw(st.lists(st.one_of(iso, TEXT, st.none()), min_size=n, max_size=n))
    # a datetime followed by an infinite float or one beyond int64 makes to_arrow raise OverflowError
    # (known bug): only in the known-bug property
    floats = FLOATS if huge else st.floats(-1e15, 1e15) | st.just(math.nan)
    return draw(st.lists(st.one_of(dts, INTS, TEXT, st.none(), floats), min_size=n, max_size=n))


@st.composite
def event_ids(draw, n: int):
    kind = draw(st.sampled_from(["absent", "unique", "pool", "mixed"]))
    if kind == "absent":
        return None
    if kind == "unique":
        return [f"u{draw(st.integers(0, 10**12))}-{i}" for i in range(n)]
    pool = st.sampled_from(["e1", "e2", "e3", "é", ""])
    if kind == "pool":  # duplicates within the batch and, in the store test, across batches
        return draw(st.lists(st.one_of(pool, st.none()), min_size=n, max_size=n))
    return draw(st.lists(st.one_of(pool, st.none(), st.integers(0, 5), TEXT), min_size=n, max_size=n))


@st.composite
def binary_frames(draw, *, huge: bool = True, strings: bool = True) -> pd.DataFrame:
    n = draw(st.integers(0, 25))
    cols: dict = {}
    ids = draw(event_ids(n))
    if ids is not None:
        cols["event_id"] = ids
    ts = draw(timestamps(n, strings=strings, huge=huge))
    if ts is not None:
        cols["timestamp"] = ts
    cols["num"] = draw(column_values(n, NUM_VALID, huge))
    cols["amount"] = draw(column_values(n, NUM_VALID, huge))
    cols["cat"] = draw(column_values(n, CAT_VALID, huge))
    cols["flag"] = draw(column_values(n, FLAG_VALID, huge))
    cols["prediction"] = draw(column_values(n, PRED_VALID, huge))
    if draw(st.booleans()):
        cols["score"] = draw(column_values(n, SCORE_VALID, huge))
    if draw(st.booleans()):
        cols["y"] = draw(column_values(n, st.sampled_from([0, 1]), huge))
    frame = build_frame(cols, n, avoid_null_numeric=not huge)
    return frame[draw(st.permutations(list(frame.columns)))] if n else frame


NUMERIC_COLUMNS = {"num", "amount", "score", "x", "p_a", "p_b", "p_c"}


def build_frame(cols: dict, n: int, avoid_null_numeric: bool = True) -> pd.DataFrame:
    series = {}
    for name, values in cols.items():
        s = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
        s = s.infer_objects()
        if avoid_null_numeric and name in NUMERIC_COLUMNS and s.dtype == object and s.isna().all():
            # an all-null object column reaches validation as Arrow type null, which crashes the numeric
            # check (reported bug, see test_validation.py::test_all_null_numeric_column_is_rows_not_an_exception)
            s = s.astype("float64")
        series[name] = s
    return pd.DataFrame(series, index=range(n))


@st.composite
def multiclass_frames(draw) -> pd.DataFrame:
    n = draw(st.integers(0, 25))
    cols: dict = {"x": draw(column_values(n, NUM_VALID)), "prediction": draw(column_values(n, MC_PRED_VALID))}
    # probabilities: usually a proper distribution (maybe perturbed), else anything
    probs = []
    for _ in range(n):
        w = draw(st.lists(st.floats(0.01, 1), min_size=3, max_size=3))
        p = [v / sum(w) for v in w]
        if draw(st.booleans()):
            p[draw(st.integers(0, 2))] += draw(st.sampled_from([1e-7, 1e-5, 1e-3, 0.2, -0.2]))
        probs.append(p)
    for j, name in enumerate(["p_a", "p_b", "p_c"]):
        if draw(st.booleans()):
            cols[name] = [p[j] for p in probs]
        else:
            cols[name] = draw(column_values(n, st.just(1 / 3)))
    ids = draw(event_ids(n))
    if ids is not None:
        cols["event_id"] = ids
    return build_frame(cols, n)


# -- checks ------------------------------------------------------------------------------------------


def check_result(result, frame: pd.DataFrame, schema: Schema) -> None:
    n = len(frame)
    rejected = result.rejected
    assert result.accepted + rejected.num_rows == n
    assert result.table.num_rows == len(result.rows) == result.accepted
    seen = result.rows.tolist() + rejected.column("row").to_pylist()
    assert sorted(seen) == list(range(n)), "each input row exactly once"
    for rec in rejected.to_pylist():
        assert rec["reason"] in REASONS, rec
        assert rec["message"], rec
        if rec["column"] is not None:
            assert rec["column"] in schema, rec
    t = result.table
    assert t.column("event_id").null_count == 0
    assert t.column("timestamp").null_count == 0
    assert t.schema.field("timestamp").type == pa.timestamp("us")
    for col in schema.columns:
        if col.name not in t.column_names or col.role.value in ("event_id", "timestamp"):
            continue
        values = t.column(col.name)
        assert values.type == vigil.core.validation.arrow_type(col), col.name
        if values.type == pa.float64():
            x = values.to_numpy(zero_copy_only=False)
            x = x[~np.isnan(x)] if values.null_count else x
            assert np.isfinite(x).all(), col.name
            # a null is stored as a null, never as a NaN
            assert not pc.any(pc.is_nan(values.drop_null())).as_py() if len(values.drop_null()) else True
        if col.role.value == "score":
            assert values.null_count == 0
            x = values.to_numpy(zero_copy_only=False)
            assert ((x >= 0) & (x <= 1)).all()
        if col.role.value == "prediction" or col.required:
            assert values.null_count == 0, col.name


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=binary_frames())
def test_binary_validation_accounts_for_every_row(frame):
    result = validate_predictions(frame, BINARY, now=NOW)
    check_result(result, frame, BINARY)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=multiclass_frames())
def test_multiclass_validation_accounts_for_every_row(frame):
    result = validate_predictions(frame, MULTICLASS, now=NOW)
    check_result(result, frame, MULTICLASS)
    t = result.table
    if {"p_a", "p_b", "p_c"} <= set(t.column_names) and t.num_rows:
        total = sum(t.column(c).to_numpy(zero_copy_only=False) for c in ("p_a", "p_b", "p_c"))
        assert (np.abs(total - 1) <= 1e-4 + 1e-12).all()


# -- the same through the store ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = vigil.open(tmp_path_factory.mktemp("prop-home"))
    s.register_model("bin", version="1", training_data=TRAIN, target="y")
    yield s
    s.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=binary_frames())
def test_store_accounts_for_every_row(store, frame):
    before = len(store.events("bin"))
    res = store.log_predictions("bin", "1", frame)
    assert res.received == len(frame)
    assert res.accepted + res.quarantined + res.duplicates == len(frame)
    quarantined = store.quarantine("bin")
    mine = quarantined[quarantined["batch_id"] == res.batch_id]
    # a row already held for the same reason by an earlier batch is held once (re-sending is safe)
    held = set(zip(quarantined["reason"], quarantined["raw"], strict=True))
    assert len(mine) <= res.quarantined and len(held) >= len(set(zip(mine["reason"], mine["raw"], strict=True)))
    stored = mine["reason"].value_counts().to_dict()
    assert all(stored.get(reason, 0) <= n for reason, n in res.reasons.items()) and set(stored) <= set(res.reasons)
    assert set(mine["reason"]) <= set(REASONS)
    assert len(store.events("bin")) == before + res.accepted
    batches = store.batches("bin")
    rec = batches[batches["batch_id"] == res.batch_id].iloc[0]
    assert (rec["received"], rec["accepted"], rec["duplicates"], rec["quarantined"]) == (
        len(frame), res.accepted, res.duplicates, res.quarantined)
