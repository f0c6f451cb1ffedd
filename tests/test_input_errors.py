"""Bad input is refused with a Vigil error that has a code and names the field, never a raw exception.

Event ids that are not single values, duplicate column names, unreadable
files, unparseable times, unusable names, columns that match no role, PII
specs naming no column, and PII keys that went missing after use.
"""

from __future__ import annotations

import ast
import gzip
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vigil
from vigil.core.frames import naive_utc, to_arrow
from vigil.core.pii import check_pii_columns, key_fingerprint
from vigil.core.schema import MAX_NAME_LENGTH, check_name
from vigil.errors import BatchError, InvalidParameterError, SchemaError, SecretKeyError
from vigil.services.sources import count_file_rows, iter_file_batches, read_file
from vigil.store.keys import fingerprint_path, key_path, project_key

TRAIN = pd.DataFrame({"age": [22.0, 35.0, 47.0, 51.0], "y": [0, 1, 0, 1]})
SRC = Path(__file__).resolve().parents[1] / "src" / "vigil"


def events(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({
        "event_id": [f"e{i}" for i in range(n)],
        "timestamp": [pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=i + 1) for i in range(n)],
        "age": [30.0 + i for i in range(n)],
        "prediction": [i % 2 for i in range(n)],
        "score": [0.25] * n,
    })


@pytest.fixture
def store(tmp_path):
    s = vigil.open(tmp_path / "home")
    s.register_model("m", version="1", training_data=TRAIN, target="y")
    yield s
    s.close()


# -- event ids, columns ------------------------------------------------------------------------------


def test_event_id_column_of_lists_is_a_batch_error_naming_it(store):
    frame = events(2).assign(event_id=[[1, 2], [3]])
    with pytest.raises(BatchError) as err:
        store.log_predictions("m", "1", frame)
    assert (err.value.code, err.value.field) == ("batch_error", "event_id")
    assert "one string or integer per row" in str(err.value)
    with pytest.raises(BatchError) as err:
        store.log_labels("m", pd.DataFrame({"event_id": [["e0"]], "y": [1]}))
    assert (err.value.code, err.value.field) == ("batch_error", "event_id")
    assert store.events("m").empty


def test_csv_with_duplicate_column_names_is_a_batch_error_naming_them(store, tmp_path):
    path = tmp_path / "events.csv"
    events(2).to_csv(path, index=False)
    path.write_text(path.read_text().replace("prediction,score", "age,score", 1))  # two columns called 'age'
    with pytest.raises(BatchError) as err:
        store.log_predictions("m", "1", path)
    assert (err.value.code, err.value.field) == ("batch_error", "age")
    assert "duplicate column names ['age']" in str(err.value) and "events.csv" in str(err.value)
    with pytest.raises(BatchError, match=r"duplicate column names \['a'\]"):
        to_arrow(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]))


def test_cli_names_duplicate_csv_columns_instead_of_an_unexpected_key_error(tmp_path):
    from cli_helpers import one_error_line, run

    home = tmp_path / "home"
    with vigil.open(home) as s:
        s.register_model("m", version="1", training_data=TRAIN, target="y")
    path = tmp_path / "dup.csv"
    path.write_text("event_id,age,age,prediction\ne1,30,31,1\n")
    result = run(home, "ingest", "m", "1", str(path), ok=False)
    line = one_error_line(result)
    assert result.exit_code != 0 and "duplicate column names ['age']" in line and "unexpected" not in line.lower()


def test_columns_that_match_no_role_are_named_with_the_roles_the_schema_expects(store):
    with pytest.raises(BatchError) as err:
        store.log_predictions("m", "1", events(1).assign(predicton=1, channel="web"))
    assert (err.value.code, err.value.field) == ("batch_error", "predicton")
    message = str(err.value)
    assert "columns ['predicton', 'channel'] match no column" in message
    assert "did you mean 'prediction' for 'predicton'?" in message
    for expected in ("prediction: 'prediction'", "score: 'score'", "feature: 'age'", "target: 'y'",
                     "event_id: 'event_id'"):
        assert expected in message


# -- files -------------------------------------------------------------------------------------------


def _truncated_parquet(path: Path) -> Path:
    pq.write_table(pa.Table.from_pandas(events(50), preserve_index=False), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_parquet_is_a_batch_error_naming_the_file_and_the_problem(store, tmp_path):
    path = _truncated_parquet(tmp_path / "cut.parquet")
    with pytest.raises(BatchError) as err:
        store.log_predictions("m", "1", path)
    assert (err.value.code, err.value.field) == ("batch_error", "path")
    assert "'" + str(path) + "'" in str(err.value) and "truncated" in str(err.value)
    for reader in (read_file, count_file_rows, lambda p: list(iter_file_batches(p))):
        with pytest.raises(BatchError, match="cut.parquet.*truncated"):
            reader(path)
    assert store.events("m").empty


@pytest.mark.parametrize("case", ["missing", "empty-parquet", "folder", "truncated-gzip-csv", "ragged-csv"])
def test_unreadable_files_are_batch_errors_naming_the_file(tmp_path, case):
    if case == "missing":
        path, problem = tmp_path / "none.csv", "no such file"
    elif case == "empty-parquet":
        path, problem = tmp_path / "empty.parquet", "empty"
        path.write_bytes(b"")
    elif case == "folder":
        path, problem = tmp_path / "dir.parquet", "is a folder"
        path.mkdir()
    elif case == "truncated-gzip-csv":
        path, problem = tmp_path / "cut.csv.gz", "truncated"
        data = gzip.compress(events(2000).to_csv(index=False).encode())
        path.write_bytes(data[: len(data) // 2])
    else:
        path, problem = tmp_path / "ragged.csv", "Expected 2 columns, got 3"
        path.write_text("event_id,age\ne1,30\ne2,31,extra\n")
    with pytest.raises(BatchError) as err:
        read_file(path)
    assert err.value.code == "batch_error" and err.value.field == "path"
    assert path.name in str(err.value) and problem in str(err.value)


# -- times and names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["garbage", "2026-13-45", None, [2026, 1, 1], float("nan"), 1e30])
def test_unparseable_time_is_an_invalid_parameter_naming_the_field(value):
    with pytest.raises(InvalidParameterError) as err:
        naive_utc(value, field="start")
    assert (err.value.code, err.value.field) == ("invalid_parameter", "start")
    assert "start" in str(err.value) and "not a time" in str(err.value)


def test_numbers_as_times_are_unix_seconds_as_in_events():
    assert str(naive_utc(1767322800)) == "2026-01-02 03:00:00"
    assert str(naive_utc("2026-01-02T04:00:00+01:00", field="end")) == "2026-01-02 03:00:00"


@pytest.mark.parametrize(("value", "problem"), [
    ("", "blank"), ("   ", "blank"), ("a\x00b", "NUL"), ("x" * (MAX_NAME_LENGTH + 1), "at most"),
    (7, "must be a string"), (None, "must be a string"),
], ids=["empty", "spaces", "nul", "too-long", "int", "none"])
def test_check_name_refuses_unusable_names(value, problem):
    with pytest.raises(InvalidParameterError) as err:
        check_name(value, "dataset")
    assert (err.value.code, err.value.field) == ("invalid_parameter", "dataset")
    assert problem in str(err.value)
    assert check_name("credit risk é" + "x" * (MAX_NAME_LENGTH - 13), "model").startswith("credit")


# -- PII specs ---------------------------------------------------------------------------------------


def test_pii_spec_naming_no_column_is_refused_with_near_matches(tmp_path):
    with pytest.raises(SchemaError) as err:
        check_pii_columns({"userid": "hash"}, ["user_id", "age"])
    assert (err.value.code, err.value.field) == ("schema_error", "pii")
    assert "did you mean 'user_id'" in str(err.value)
    with vigil.open(tmp_path) as s, pytest.raises(SchemaError) as err:
        s.register_model("m", version="1", training_data=TRAIN, target="y", metadata=["user_id"],
                         pii={"userid": "hash"})
    assert (err.value.code, err.value.field) == ("schema_error", "pii")
    assert "'user_id'" in str(err.value)
    assert check_pii_columns(["user_id"], ["user_id"]) == {"user_id": "hash"}


@pytest.mark.parametrize("action", ["encrypt", "mask", None])
def test_pii_action_other_than_hash_or_drop_is_refused(action):
    with pytest.raises(SchemaError) as err:
        check_pii_columns({"email": action}, ["email"])
    assert (err.value.code, err.value.field) == ("schema_error", "pii")
    assert "['hash', 'drop']" in str(err.value)


# -- PII keys ----------------------------------------------------------------------------------------


def _pii_store(home: Path):
    s = vigil.open(home)
    s.register_model("p", version="1", training_data=TRAIN, target="y", metadata=["email"], pii={"email": "hash"})
    s.log_predictions("p", "1", events(2).assign(email=["ann@example.org", "bob@example.org"]))
    return s


def test_deleted_pii_key_after_use_is_a_key_error_not_a_new_key(tmp_path):
    s = _pii_store(tmp_path)
    try:
        key_file = key_path(tmp_path, "default")
        key_file.unlink()
        with pytest.raises(SecretKeyError) as err:
            s.log_predictions("p", "1", events(3).iloc[2:].assign(email=["ann@example.org"]))
        assert (err.value.code, err.value.field) == ("key_error", "pii_key")
        message = str(err.value)
        assert "missing" in message and "backup" in message and fingerprint_path(tmp_path, "default").name in message
        assert not key_file.exists()  # nothing was silently regenerated
        assert len(s.events("p")) == 2
    finally:
        s.close()


def test_damaged_or_replaced_pii_key_is_a_key_error(tmp_path):
    key = project_key(tmp_path, "proj")
    path = key_path(tmp_path, "proj")
    path.write_bytes(key[:20])
    with pytest.raises(SecretKeyError, match="damaged") as err:
        project_key(tmp_path, "proj")
    assert (err.value.code, err.value.field) == ("key_error", "pii_key")
    path.write_bytes(os.urandom(32))
    with pytest.raises(SecretKeyError, match="another key") as err:
        project_key(tmp_path, "proj")
    assert err.value.code == "key_error"
    path.write_bytes(key)  # restored from a backup: accepted again
    assert project_key(tmp_path, "proj") == key


def test_deleting_the_fingerprint_knowingly_starts_afresh(tmp_path):
    key = project_key(tmp_path, "proj")
    key_path(tmp_path, "proj").unlink()
    fingerprint_path(tmp_path, "proj").unlink()
    fresh = project_key(tmp_path, "proj")
    assert fresh != key and len(fresh) == 32
    assert fingerprint_path(tmp_path, "proj").read_text() == key_fingerprint(fresh)


def test_pii_key_of_an_older_home_is_adopted_and_files_stay_private(tmp_path):
    folder = tmp_path / "secrets"
    folder.mkdir()
    old = os.urandom(32)
    key_path(tmp_path, "proj").write_bytes(old)  # a key made before fingerprints were recorded
    os.chmod(key_path(tmp_path, "proj"), 0o644)
    assert project_key(tmp_path, "proj") == old
    assert fingerprint_path(tmp_path, "proj").read_text() == key_fingerprint(old)
    assert key_path(tmp_path, "proj").stat().st_mode & 0o777 == 0o600
    assert fingerprint_path(tmp_path, "proj").stat().st_mode & 0o777 == 0o600
    new_home = tmp_path / "new"
    project_key(new_home, "proj")
    assert (new_home / "secrets").stat().st_mode & 0o777 == 0o700
    assert key_path(new_home, "proj").stat().st_mode & 0o777 == 0o600


def test_expected_fingerprint_guards_against_a_deleted_secrets_folder(tmp_path):
    fingerprint = key_fingerprint(project_key(tmp_path, "proj"))
    for path in (key_path(tmp_path, "proj"), fingerprint_path(tmp_path, "proj")):
        path.unlink()
    with pytest.raises(SecretKeyError, match="missing") as err:
        project_key(tmp_path, "proj", expected_fingerprint=fingerprint)
    assert err.value.code == "key_error"
    assert not key_path(tmp_path, "proj").exists()


# -- layering ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["frames", "pii", "schema", "validation"])
def test_core_ingestion_modules_do_no_file_io(module):
    tree = ast.parse((SRC / "core" / f"{module}.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    forbidden = ("os", "shutil", "pyarrow.parquet", "pyarrow.csv", "pyarrow.json", "vigil.store", "vigil.services")
    assert not [m for m in imported if m in forbidden or m.startswith(("vigil.store.", "vigil.services."))]
    calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "open" not in calls
