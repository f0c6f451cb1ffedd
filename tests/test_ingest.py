"""Integration tests of ingestion, the registry and the store file, through the public API.

Every test works on a real store in a fresh ``tmp_path`` home (a DuckDB file
on disk) and real models.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vigil
from vigil.core.frames import content_hash, to_arrow
from vigil.store.database import CURRENT_FORMAT, DB_FILE, Database

TRAIN = pd.DataFrame({
    "age": [22.0, 35.0, 47.0, 51.0, 63.0, 29.0],
    "sex": ["F", "M", "F", "M", "F", "M"],
    "member": [True, False, True, True, False, False],
    "y": [0, 1, 0, 1, 1, 0],
})
T0 = pd.Timestamp("2026-02-01 10:15:30")


def events(n: int = 6, prefix: str = "e", with_target: bool = False) -> pd.DataFrame:
    """n valid events for the `credit` model, with fixed ids and timestamps."""
    i = np.arange(n)
    frame = pd.DataFrame({
        "event_id": [f"{prefix}{i}" for i in range(n)],
        "timestamp": [T0 + pd.Timedelta(minutes=7 * i) for i in range(n)],
        "age": np.round(20 + (i * 7.3) % 45, 1),     # event i has the same content whatever n is
        "sex": np.array(["F", "M"])[np.arange(n) % 2],
        "member": np.arange(n) % 3 == 0,
        "prediction": (np.arange(n) % 2).astype(np.int64),
        "score": np.round((i * 0.137) % 1, 3),
    })
    if with_target:
        frame["y"] = pd.array([1, None] * (n // 2) + [0] * (n % 2), dtype="Int64")
    return frame


@pytest.fixture
def store(tmp_path):
    s = vigil.open(tmp_path / "home")
    yield s
    s.close()


@pytest.fixture
def credit(store):
    store.register_model("credit", version="1", training_data=TRAIN, target="y", protected=["sex"])
    return store


def count(store, sql: str, params: list | None = None) -> int:
    return store._db.fetchall(sql, params or [])[0][0]


def stored_events(store, model: str = "credit") -> pd.DataFrame:
    return store.events(model).sort_values("event_id").reset_index(drop=True)


# -- input formats -----------------------------------------------------------------------------------


def _write(frame: pd.DataFrame, fmt: str, folder: Path):
    if fmt == "pandas":
        return frame
    if fmt == "polars":
        import polars as pl

        return pl.from_pandas(frame)
    if fmt == "arrow":
        return pa.Table.from_pandas(frame, preserve_index=False)
    if fmt == "parquet":
        path = folder / "events.parquet"
        frame.to_parquet(path, index=False)
        return path
    if fmt == "csv":
        path = folder / "events.csv"
        frame.to_csv(path, index=False)
        return str(path)
    if fmt == "jsonl":  # timestamps as Unix seconds
        path = folder / "events.jsonl"
        out = frame.assign(timestamp=(frame["timestamp"] - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s"))
        out.to_json(path, orient="records", lines=True)
        return path
    if fmt == "jsonl-iso":  # timestamps as ISO-8601 text
        path = folder / "events.jsonl"
        frame.to_json(path, orient="records", lines=True, date_format="iso")
        return path
    raise AssertionError(fmt)


@pytest.fixture(scope="module")
def reference_events(tmp_path_factory) -> pd.DataFrame:
    with vigil.open(tmp_path_factory.mktemp("ref")) as s:
        s.register_model("credit", version="1", training_data=TRAIN, target="y", protected=["sex"])
        s.log_predictions("credit", "1", events(9, with_target=True))
        return stored_events(s)


@pytest.mark.parametrize("fmt", [
    "pandas", "polars", "arrow", "parquet", "csv", "jsonl",
    "jsonl-iso",
])
def test_every_input_format_stores_the_same_events(credit, tmp_path, reference_events, fmt):
    data = _write(events(9, with_target=True), fmt, tmp_path)
    res = credit.log_predictions("credit", "1", data, batch_rows=4)
    assert (res.received, res.accepted, res.quarantined, res.duplicates) == (9, 9, 0, 0)
    assert res.labels == 5
    got = stored_events(credit)
    pd.testing.assert_frame_equal(got, reference_events, check_dtype=False)
    assert got["timestamp"].tolist()[:2] == [T0.tz_localize("UTC"), (T0 + pd.Timedelta(minutes=7)).tz_localize("UTC")]
    if fmt in ("parquet", "csv", "jsonl"):  # files go in batches of batch_rows, each its own transaction
        assert len(credit.batches("credit")) == 3
        assert set(credit.batches("credit")["source"]) == {str(data)}


def test_file_progress_callback(credit, tmp_path):
    path = _write(events(10), "parquet", tmp_path)
    calls = []
    credit.log_predictions("credit", "1", path, batch_rows=4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 10), (8, 10), (10, 10)]


def test_unreadable_file_is_a_batch_error(credit, tmp_path):
    with pytest.raises(vigil.BatchError, match="no such file"):
        credit.log_predictions("credit", "1", tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"event_id,age\ne1,30\ne2,31,extra\n")
    with pytest.raises(vigil.BatchError, match="bad.csv"):
        credit.log_predictions("credit", "1", bad)
    sheet = tmp_path / "events.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    with pytest.raises(vigil.BatchError, match="format"):
        credit.log_predictions("credit", "1", sheet)
    assert count(credit, "SELECT count(*) FROM ingest_batches") == 0


@pytest.mark.parametrize("content", [None, b"not parquet"], ids=["missing", "corrupt"])
def test_unreadable_parquet_file_is_a_batch_error(credit, tmp_path, content):
    path = tmp_path / "events.parquet"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(vigil.BatchError, match="events.parquet"):
        credit.log_predictions("credit", "1", path)


# -- defaults: ids and time ---------------------------------------------------------------------------


def test_event_id_and_timestamp_generated_when_absent(credit):
    frame = events(5).drop(columns=["event_id", "timestamp"])
    before = dt.datetime.now(dt.UTC)
    res = credit.log_predictions("credit", "1", frame)
    after = dt.datetime.now(dt.UTC)
    assert res.accepted == 5
    got = credit.events("credit")
    ids = got["event_id"].tolist()
    assert len(set(ids)) == 5
    for event_id in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", event_id)
        assert event_id[12] == "4" and event_id[16] in "89ab"  # UUID4: version and variant nibbles
    ts = got["timestamp"]
    assert str(ts.dt.tz) == "UTC"
    assert ((ts >= pd.Timestamp(before) - pd.Timedelta("1ms")) & (ts <= pd.Timestamp(after))).all()


# -- idempotency -------------------------------------------------------------------------------------


def test_resending_a_batch_is_a_no_op(credit):
    first = credit.log_predictions("credit", "1", events(6))
    again = credit.log_predictions("credit", "1", events(6))
    assert (first.accepted, first.duplicates) == (6, 0)
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 6, 0)
    assert len(credit.events("credit")) == 6


def test_resend_with_new_timestamps_is_still_a_duplicate(credit):
    credit.log_predictions("credit", "1", events(4))
    res = credit.log_predictions("credit", "1", events(4).drop(columns=["timestamp"]))
    assert (res.accepted, res.duplicates) == (0, 4)


def test_same_id_different_content_is_a_conflict_and_the_stored_row_stays(credit):
    credit.log_predictions("credit", "1", events(3))
    before = stored_events(credit)
    changed = events(3)
    changed.loc[1, "score"] = 0.999
    res = credit.log_predictions("credit", "1", changed)
    assert (res.accepted, res.duplicates, res.quarantined) == (0, 2, 1)
    assert res.reasons == {"duplicate_conflict": 1}
    q = credit.quarantine("credit", reason="duplicate_conflict")
    assert q["event_id"].tolist() == ["e1"] and q["row_number"].tolist() == [1]
    assert json.loads(q["raw"].iloc[0])["score"] == 0.999
    pd.testing.assert_frame_equal(stored_events(credit), before)


def test_duplicates_inside_one_batch(credit):
    frame = events(4)
    frame = pd.concat([frame, frame.iloc[[1]], frame.iloc[[2]].assign(score=0.0123)], ignore_index=True)
    res = credit.log_predictions("credit", "1", frame)
    assert (res.received, res.accepted, res.duplicates, res.quarantined) == (6, 4, 1, 1)
    assert res.reasons == {"duplicate_conflict": 1}
    got = stored_events(credit)
    assert got["event_id"].tolist() == ["e0", "e1", "e2", "e3"]
    assert got.loc[2, "score"] == frame.loc[2, "score"]  # the first row of an id wins
    q = credit.quarantine("credit")
    assert q["row_number"].tolist() == [5]


def test_dedup_survives_reopen(tmp_path):
    with vigil.open(tmp_path) as s:
        s.register_model("credit", version="1", training_data=TRAIN, target="y")
        s.log_predictions("credit", "1", events(5))
    with vigil.open(tmp_path) as s:
        res = s.log_predictions("credit", "1", events(7))
        assert (res.accepted, res.duplicates) == (2, 5)
        assert len(s.events("credit")) == 7


def test_signals_of_a_first_send(credit):
    res = credit.log_predictions("credit", "1", events(3).assign(sex=["F", "X", "M"], age=[30.0, 99.0, 30.0]))
    assert res.signals == {"unseen_category": {"sex": 1}, "out_of_range": {"age": 1}}
    rec = credit._db.fetchall("SELECT signals_json FROM ingest_batches WHERE batch_id = ?", [res.batch_id])
    assert json.loads(rec[0][0]) == res.signals


def test_resent_batch_adds_no_signals(credit):
    frame = events(3).assign(sex=["F", "X", "M"], age=[30.0, 99.0, 30.0])
    credit.log_predictions("credit", "1", frame)
    again = credit.log_predictions("credit", "1", frame)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert again.signals == {}


# -- labels ------------------------------------------------------------------------------------------


def test_labels_joined_by_id_with_label_time(credit):
    credit.log_predictions("credit", "1", events(4))
    when = pd.Timestamp("2026-03-05 08:00:00")
    res = credit.log_labels("credit", pd.DataFrame({"event_id": ["e2", "e0"], "y": [1, 0],
                                                    "label_time": [when, when + pd.Timedelta("1h")]}))
    assert (res.accepted, res.labels, res.quarantined) == (2, 2, 0)
    got = stored_events(credit).set_index("event_id")
    assert got.loc["e0", "y"] == 0 and got.loc["e2", "y"] == 1
    assert pd.isna(got.loc["e1", "y"])
    assert got.loc["e2", "label_time"] == when.tz_localize("UTC")
    assert got.loc["e0", "label_time"] == (when + pd.Timedelta("1h")).tz_localize("UTC")


def test_label_without_time_is_stamped_now(credit):
    credit.log_predictions("credit", "1", events(2))
    before = pd.Timestamp.now(tz="UTC")
    credit.log_labels("credit", pd.DataFrame({"event_id": ["e1"], "y": [1]}))
    got = stored_events(credit).set_index("event_id")
    assert before - pd.Timedelta("1ms") <= got.loc["e1", "label_time"] <= pd.Timestamp.now(tz="UTC")


def test_label_for_unknown_event_is_quarantined_with_its_row(credit):
    credit.log_predictions("credit", "1", events(2))
    res = credit.log_labels("credit", pd.DataFrame({"event_id": ["e0", "ghost"], "y": [1, 0]}))
    assert (res.accepted, res.quarantined, res.reasons) == (1, 1, {"unknown_event": 1})
    q = credit.quarantine("credit", kind="labels")
    assert len(q) == 1
    row = q.iloc[0]
    assert (row["reason"], row["event_id"], row["column"]) == ("unknown_event", "ghost", "event_id")
    assert "ghost" in row["message"]
    assert json.loads(row["raw"]) == {"event_id": "ghost", "y": 0}


def test_conflicting_second_label_is_quarantined_identical_is_a_no_op(credit):
    credit.log_predictions("credit", "1", events(2))
    credit.log_labels("credit", pd.DataFrame({"event_id": ["e0", "e1"], "y": [1, 0]}))
    same = credit.log_labels("credit", pd.DataFrame({"event_id": ["e0"], "y": [1]}))
    assert (same.accepted, same.duplicates, same.quarantined) == (0, 1, 0)
    other = credit.log_labels("credit", pd.DataFrame({"event_id": ["e1"], "y": [1]}))
    assert (other.accepted, other.quarantined, other.reasons) == (0, 1, {"label_conflict": 1})
    q = credit.quarantine("credit", reason="label_conflict")
    assert q["column"].tolist() == ["y"] and q["event_id"].tolist() == ["e1"]
    got = stored_events(credit).set_index("event_id")
    assert got.loc["e1", "y"] == 0  # the first label stays
    assert count(credit, "SELECT count(*) FROM labels_1") == 2


def test_target_in_prediction_batch_is_stored_as_label(credit):
    frame = events(4, with_target=True)
    res = credit.log_predictions("credit", "1", frame)
    assert res.labels == 2
    got = stored_events(credit).set_index("event_id")
    assert got.loc["e0", "y"] == 1 and pd.isna(got.loc["e1", "y"])
    assert got.loc["e0", "label_time"] == got.loc["e0", "timestamp"]
    # a later label for an event that already has one from the batch is a conflict, not an overwrite
    res = credit.log_labels("credit", pd.DataFrame({"event_id": ["e0", "e1"], "y": [0, 0]}))
    assert (res.accepted, res.reasons) == (1, {"label_conflict": 1})


# -- unknown model or version -------------------------------------------------------------------------


def _write_counts(store) -> tuple[int, ...]:
    return tuple(count(store, f"SELECT count(*) FROM {t}") for t in
                 ("events_1", "labels_1", "quarantine", "ingest_batches", "audit_log"))


def test_unknown_model_or_version_writes_nothing(credit):
    credit.log_predictions("credit", "1", events(2))
    before = _write_counts(credit)
    with pytest.raises(vigil.NotFoundError, match="'fraud'.*credit"):
        credit.log_predictions("fraud", "1", events(2, prefix="x"))
    with pytest.raises(vigil.NotFoundError, match="no version '9'"):
        credit.log_predictions("credit", "9", events(2, prefix="x"))
    with pytest.raises(vigil.NotFoundError, match="'fraud'"):
        credit.log_labels("fraud", pd.DataFrame({"event_id": ["e0"], "y": [1]}))
    assert _write_counts(credit) == before


def test_batch_error_writes_nothing(credit):
    before = _write_counts(credit)
    with pytest.raises(vigil.BatchError, match="colour"):
        credit.log_predictions("credit", "1", events(2).assign(colour="red"))
    assert _write_counts(credit) == before


# -- quarantine --------------------------------------------------------------------------------------


def test_quarantine_columns_and_messages(credit):
    frame = events(4)
    frame["age"] = frame["age"].astype(object)
    frame.loc[1, "age"] = "old"
    frame.loc[2, "score"] = 1.5
    frame.loc[3, "prediction"] = None
    res = credit.log_predictions("credit", "1", frame)
    assert res.accepted == 1 and res.quarantined == 3
    q = credit.quarantine("credit")
    for col in ("reason", "column", "value", "message", "raw", "batch_id", "event_id", "row_number"):
        assert col in q.columns
    got = {r.row_number: (r.reason, r.column, r.value) for r in q.itertuples()}
    assert got == {1: ("type_mismatch", "age", "'old'"), 2: ("probability_out_of_range", "score", "1.5"),
                   3: ("missing_value", "prediction", "null")}
    for r in q.itertuples():
        assert repr(r.column) in r.message
        raw = json.loads(r.raw)
        assert raw["event_id"] == r.event_id
    assert set(q["batch_id"]) == {res.batch_id}
    assert len(credit.quarantine("credit", reason="missing_value")) == 1


# -- PII ---------------------------------------------------------------------------------------------


SECRET, OTHER, IP = "ann.secret@example.org", "bob.other@example.org", "10.99.88.77"
MARKER = "visible-marker-7f3a"


def _pii_store(home):
    s = vigil.open(home)
    s.register_model("pii", version="1", training_data=TRAIN, target="y",
                     metadata={"email": "categorical", "ip": "categorical", "channel": "categorical"},
                     pii={"email": "hash", "ip": "drop"})
    n = 40
    frame = events(n).assign(email=[SECRET, OTHER] * (n // 2), ip=IP, channel=MARKER)
    frame["score"] = frame["score"].astype(object)
    frame.loc[3, "score"] = "high"  # one quarantined row, with its raw row kept
    res = s.log_predictions("pii", "1", frame)
    assert (res.accepted, res.quarantined) == (n - 1, 1)
    return s


def test_pii_never_stored_in_clear(tmp_path):
    s = _pii_store(tmp_path)
    got = s.events("pii")
    assert "ip" not in got.columns
    tokens = dict(zip(got["event_id"], got["email"], strict=True))
    assert SECRET not in set(tokens.values())
    assert tokens["e0"] == tokens["e2"] != tokens["e1"]           # same value, same token
    assert re.fullmatch(r"[0-9a-f]{32}", tokens["e0"])
    raw = json.loads(s.quarantine("pii")["raw"].iloc[0])
    assert "ip" not in raw and raw["email"] == tokens["e1"]      # row 3 has OTHER, like e1
    # a second batch with the same clear value maps to the same token
    s.log_predictions("pii", "1", events(1, prefix="z").assign(email=SECRET, ip=IP, channel=MARKER))
    assert s.events("pii").set_index("event_id").loc["z0", "email"] == tokens["e0"]
    s.close()
    blobs = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert MARKER.encode() in blobs       # the search does find clear text that is stored
    for clear in (SECRET, OTHER, IP):
        assert clear.encode() not in blobs, clear


def test_pii_value_absent_from_quarantine_message(tmp_path):
    with vigil.open(tmp_path) as s:
        s.register_model("m", version="1", training_data=TRAIN, target="y",
                         metadata={"ssn": "numeric"}, pii={"ssn": "hash"})
        res = s.log_predictions("m", "1", events(2).assign(ssn=["123456789", "987-65-4321"]))
        assert res.quarantined == 1
        q = s.quarantine("m")
        assert q["value"].isna().all()
        assert "987-65-4321" not in q["message"].iloc[0] and "987-65-4321" not in q["raw"].iloc[0]
    assert b"987-65-4321" not in (tmp_path / DB_FILE).read_bytes()


# -- registry: datasets ------------------------------------------------------------------------------


def test_register_dataset_by_content(store):
    pl = pytest.importorskip("polars")
    a = store.register_dataset("train", TRAIN)
    b = store.register_dataset("train", pl.from_pandas(TRAIN))
    c = store.register_dataset("train", pa.Table.from_pandas(TRAIN, preserve_index=False))
    assert (a.dataset_id, a.version) == (b.dataset_id, b.version) == (c.dataset_id, c.version) == (a.dataset_id, 1)
    assert a.content_hash == content_hash(to_arrow(TRAIN))
    d = store.register_dataset("train", TRAIN.assign(age=TRAIN["age"] + 1))
    assert d.version == 2 and d.content_hash != a.content_hash
    assert store.dataset("train").version == 2 and store.dataset("train", 1).dataset_id == a.dataset_id
    pd.testing.assert_frame_equal(a.load(), TRAIN, check_dtype=False)
    assert store.datasets()["version"].tolist() == [1, 2]


# -- registry: models --------------------------------------------------------------------------------


def _model_data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300), "c": rng.uniform(0, 5, 300)})
    y = ((X["a"] + 0.5 * X["b"] - 0.2 * X["c"] + rng.normal(scale=0.3, size=300)) > 0).astype(int)
    return X, y


def _sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _model_data()
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)


def _xgboost():
    xgb = pytest.importorskip("xgboost")
    X, y = _model_data()
    return xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(X, y)


def _lightgbm():
    lgb = pytest.importorskip("lightgbm")
    X, y = _model_data()
    return lgb.LGBMClassifier(n_estimators=20, num_leaves=7, n_jobs=1, verbose=-1).fit(X, y)


def _lambda():
    return lambda rows: np.asarray(rows)[:, 0] * 2 + 1


@pytest.mark.parametrize("make", [_sklearn, _xgboost, _lightgbm, _lambda], ids=["sklearn", "xgboost", "lightgbm",
                                                                               "lambda"])
def test_register_model_artifact_round_trip(store, make):
    model = make()
    X, y = _model_data()
    train = X.assign(y=y)
    mv = store.register_model("clf", version="1", model=model, training_data=train, target="y",
                              owner="risk-team")
    assert re.fullmatch(r"[0-9a-f]{64}", mv.artifact_sha256)
    artifact = store.home / "artifacts" / f"{mv.artifact_sha256}.pkl"
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == mv.artifact_sha256
    loaded = store.model("clf", "1").load_model()
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    else:
        np.testing.assert_array_equal(loaded(X.to_numpy()), model(X.to_numpy()))
    lineage = store.lineage("clf", "1")
    assert lineage["artifact"]["sha256"] == mv.artifact_sha256
    assert lineage["artifact"]["type"] == mv.artifact_type
    ds = lineage["training_data"]
    assert ds["content_hash"] == content_hash(to_arrow(train))
    assert ds["content_hash"] == content_hash(pq.read_table(store.home / store.dataset("clf-training").path))
    assert (ds["name"], ds["version"], ds["rows"]) == ("clf-training", 1, 300)
    assert (lineage["model"], lineage["version"], lineage["task"], lineage["owner"]) == ("clf", "1", "binary",
                                                                                        "risk-team")
    assert vigil.Schema.from_dict(lineage["schema"]) == mv.schema


def test_tampered_artifact_is_refused(store):
    mv = store.register_model("clf", version="1", model=_lambda(), training_data=TRAIN, target="y")
    path = store.home / "artifacts" / f"{mv.artifact_sha256}.pkl"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(vigil.ArtifactError, match="corrupt"):
        mv.load_model()


def test_same_version_twice_is_refused(credit):
    with pytest.raises(vigil.AlreadyExistsError, match="'1'"):
        credit.register_model("credit", version="1", training_data=TRAIN, target="y")
    assert len(credit.models()) == 1


def test_new_version_adds_a_metadata_column(credit):
    credit.log_predictions("credit", "1", events(2))
    credit.register_model("credit", version="2", training_data=TRAIN, target="y", metadata=["channel"])
    cols = [r[0] for r in credit._db.fetchall(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'events_1'")]
    assert "channel" in cols
    res = credit.log_predictions("credit", "2", events(2, prefix="v2-").assign(channel="web"))
    assert res.accepted == 2
    got = stored_events(credit).set_index("event_id")
    assert got.loc["v2-0", "channel"] == "web" and got.loc["v2-0", "model_version"] == "2"
    assert pd.isna(got.loc["e0", "channel"]) and got.loc["e0", "model_version"] == "1"
    assert len(credit.events("credit", version="1")) == 2


def test_new_version_changing_a_kind_is_refused(credit):
    with pytest.raises(vigil.SchemaError, match="'age'.*DOUBLE"):
        credit.register_model("credit", version="2", training_data=TRAIN, target="y", overrides={"age": "text"})
    with pytest.raises(vigil.NotFoundError):
        credit.model("credit", "2")
    cols = dict(credit._db.fetchall(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'events_1'"))
    assert cols["age"] == "DOUBLE"


def test_set_status_production_retires_previous(credit):
    credit.register_model("credit", version="2", training_data=TRAIN, target="y")
    credit.register_model("credit", version="3", training_data=TRAIN, target="y")
    credit.set_status("credit", "1", "production")
    credit.set_status("credit", "2", "shadow")
    mv = credit.set_status("credit", "3", "production")
    assert mv.status == "production"
    status = dict(zip(credit.models()["version"], credit.models()["status"], strict=True))
    assert status == {"1": "retired", "2": "shadow", "3": "production"}
    with pytest.raises(vigil.VigilError, match="status must be one of"):
        credit.set_status("credit", "3", "live")


def test_audit_log_records_each_action(credit):
    credit.register_dataset("extra", TRAIN.iloc[:3])
    credit.register_model("credit", version="2", training_data=TRAIN, target="y")
    credit.set_status("credit", "2", "production")
    log = credit.audit_log()
    actions = list(zip(log["action"], log["object_type"], log["object_id"], strict=True))
    for entry in [("create", "project", "default/default"), ("register", "dataset", "default/credit-training@1"),
                  ("register", "model", "default/credit"), ("register", "model_version", "default/credit@1"),
                  ("register", "dataset", "default/extra@1"), ("register", "model_version", "default/credit@2"),
                  ("status", "model_version", "default/credit@2")]:
        assert entry in actions
    assert log["entry_id"].is_monotonic_increasing
    assert log["actor"].notna().all() and log["occurred_at"].notna().all()
    details = json.loads(log[log["object_id"] == "default/credit@1"]["details_json"].iloc[0])
    assert details["training_data"] == "credit-training@1"


# -- the store file ----------------------------------------------------------------------------------


def test_reopen_keeps_everything(tmp_path):
    with vigil.open(tmp_path) as s:
        s.register_model("credit", version="1", training_data=TRAIN, target="y", model=_lambda())
        s.log_predictions("credit", "1", events(5, with_target=True))
        s.log_labels("credit", pd.DataFrame({"event_id": ["e1", "ghost"], "y": [0, 1]}))
        s.set_status("credit", "1", "production")
        snapshot = (stored_events(s), s.quarantine("credit"), s.batches("credit"), s.audit_log(), s.models(),
                    s.lineage("credit"))
    with vigil.open(tmp_path) as s:
        again = (stored_events(s), s.quarantine("credit"), s.batches("credit"), s.audit_log(), s.models(),
                 s.lineage("credit"))
        for a, b in zip(snapshot[:-1], again[:-1], strict=True):
            pd.testing.assert_frame_equal(a, b)
        assert snapshot[-1] == again[-1]
        assert s.model("credit").load_model()(np.array([[3.0]])).tolist() == [7.0]


def test_read_only_open_sees_the_data(tmp_path):
    with vigil.open(tmp_path) as s:
        s.register_model("credit", version="1", training_data=TRAIN, target="y")
        s.log_predictions("credit", "1", events(3))
    with vigil.open(tmp_path, read_only=True) as s:
        assert len(s.events("credit")) == 3


def test_newer_format_is_refused(tmp_path):
    vigil.open(tmp_path).close()
    con = duckdb.connect(str(tmp_path / DB_FILE))
    con.execute("UPDATE meta SET value = ? WHERE key = 'format'", [str(CURRENT_FORMAT + 1)])
    con.close()
    with pytest.raises(vigil.StoreVersionError, match=f"format {CURRENT_FORMAT + 1}.*newer Vigil.*upgrade"):
        vigil.open(tmp_path)
    with pytest.raises(vigil.StoreVersionError):
        vigil.open(tmp_path, read_only=True)


def test_format_1_is_migrated_with_its_data(tmp_path):
    db = Database.open(tmp_path, migrate_to=1)
    assert db.format_version == 1
    assert not db.table_exists("audit_log")
    db.execute("INSERT INTO projects (name, description, created_at) VALUES ('legacy', 'kept', TIMESTAMP "
               "'2025-01-01 00:00:00')")
    db.close()
    with vigil.open(tmp_path, project="legacy") as s:
        assert s._db.format_version == CURRENT_FORMAT
        assert "legacy" in s.projects()
        assert count(s, "SELECT count(*) FROM projects WHERE name = 'legacy' AND description = 'kept'") == 1
        s.register_model("credit", version="1", training_data=TRAIN, target="y")
        assert len(s.audit_log()) >= 2


def test_not_a_vigil_file_is_refused(tmp_path):
    con = duckdb.connect(str(tmp_path / DB_FILE))
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.close()
    with pytest.raises(vigil.StoreVersionError, match="not a Vigil store"):
        vigil.open(tmp_path)


def test_projects_are_separate(credit):
    other = credit.use("other")
    with pytest.raises(vigil.NotFoundError):
        other.model("credit")
    other.register_model("credit", version="1", training_data=TRAIN, target="y")
    other.log_predictions("credit", "1", events(2))
    credit.log_predictions("credit", "1", events(3))
    assert len(other.events("credit")) == 2 and len(credit.events("credit")) == 3
    assert credit.projects() == ["default", "other"]
