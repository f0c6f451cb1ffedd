"""The store's architecture as users meet it: backends by URI, SQL only in the backend, reads that only read,
segments that cannot inject, one Store shared by threads."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import threading
import tokenize
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import vigil
from segment_injections import INJECTIONS, SECRET_MARKERS
from vigil.errors import (
    InvalidParameterError,
    InvalidSegmentError,
    ReadOnlyError,
    StoreBusyError,
    StoreError,
    VigilError,
)

SRC = Path(vigil.__file__).resolve().parent
BACKEND = SRC / "store" / "duckdb"
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|CREATE\s+(TABLE|SEQUENCE|INDEX)"
                 r"|ALTER\s+TABLE|DROP\s+TABLE)\b", re.DOTALL)


# -- SQL lives in the backend only ----------------------------------------------------------------------
def _modules_outside_backend() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if BACKEND not in p.parents]


def test_no_module_outside_the_backend_imports_duckdb() -> None:
    offenders = []
    for path in _modules_outside_backend():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "duckdb" or n.startswith("duckdb.") for n in names):
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


def test_no_sql_string_outside_the_backend() -> None:
    offenders = []
    for path in _modules_outside_backend():
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if tok.type == tokenize.STRING and SQL.search(tok.string) and '"""' not in tok.string[:3]:
                offenders.append(f"{path.relative_to(SRC)}:{tok.start[0]}")
    assert offenders == []


def test_the_sql_check_would_catch_sql() -> None:
    assert SQL.search("'SELECT a FROM events_1'") and SQL.search('"DELETE FROM quarantine"')
    assert not SQL.search("'select the rows from the list'")


# -- vigil.open by URI -------------------------------------------------------------------------------------
def test_open_takes_a_path_or_a_duckdb_uri(tmp_path: Path) -> None:
    with vigil.open(tmp_path / "a") as a:
        assert a.uri.startswith("duckdb://") and (tmp_path / "a" / "vigil.duckdb").exists()
    with vigil.open(f"duckdb://{tmp_path / 'b'}") as b:
        assert b.home == tmp_path / "b"


@pytest.mark.parametrize("home, field", [(123, "home"), ("mysql://db/x", "uri"), ("a\x00b", "home")])
def test_open_refuses_what_cannot_be_a_home(tmp_path: Path, home: object, field: str) -> None:
    with pytest.raises(InvalidParameterError) as err:
        vigil.open(home)
    assert err.value.code == "invalid_parameter" and err.value.field == field


def test_unknown_scheme_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidParameterError, match="valid schemes: duckdb"):
        vigil.open("postgres+foo://x")


def test_a_regular_file_is_not_a_home(tmp_path: Path) -> None:
    file = tmp_path / "file.txt"
    file.write_text("x")
    with pytest.raises(InvalidParameterError, match="is a file"):
        vigil.open(file)


def test_a_corrupt_store_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "vigil.duckdb").write_bytes(b"\x00not a database" * 100)
    with pytest.raises(StoreError) as err:
        vigil.open(tmp_path)
    assert err.value.code == "store_error"


@pytest.mark.parametrize("project", ["", "  ", None, 123])
def test_blank_or_non_text_project_is_refused(tmp_path: Path, project: object) -> None:
    with pytest.raises(InvalidParameterError) as err:
        vigil.open(tmp_path, project=project)
    assert err.value.field == "project"


# -- a small home --------------------------------------------------------------------------------------
def _home(path: Path, n: int = 400, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    train = pd.DataFrame({"age": rng.normal(40, 10, 500), "income": rng.normal(50, 15, 500),
                          "sex": rng.choice(["F", "M"], 500), "y": rng.integers(0, 2, 500)})
    clf = LogisticRegression().fit(train[["age", "income"]], train["y"])
    with vigil.open(path) as store:
        store.register_model("credit", version="1", task="binary", model=clf, training_data=train, target="y",
                             protected=["sex"])
        ev = pd.DataFrame({"event_id": [f"e{i}" for i in range(n)], "age": rng.normal(42, 10, n),
                           "income": rng.normal(50, 15, n), "sex": rng.choice(["F", "M"], n),
                           "timestamp": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.uniform(0, 10, n), "D")})
        ev["score"] = clf.predict_proba(ev[["age", "income"]])[:, 1]
        ev["prediction"] = (ev["score"] >= 0.5).astype(int)
        store.log_predictions("credit", "1", ev)
        store.log_labels("credit", pd.DataFrame({"event_id": ev["event_id"][: n // 2],
                                                 "y": rng.integers(0, 2, n // 2)}))
        store.explain_sample("credit", version="1", rate=0.2)
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _home(tmp_path_factory.mktemp("arch") / "home")


READS = {
    "performance": lambda s, **k: s.performance("credit", **k),
    "drift": lambda s, **k: s.drift("credit", **k),
    "integrity": lambda s, **k: s.integrity("credit", **k),
    "traffic": lambda s, **k: s.traffic("credit", **k),
    "multivariate_drift": lambda s, **k: s.multivariate_drift("credit", **k),
    "outliers": lambda s, **k: s.outliers("credit", **k),
    "fairness": lambda s, **k: s.fairness("credit", window="1d", **k).by_group,
    "events": lambda s, **k: s.events("credit", **k),
}


# -- reads only read -------------------------------------------------------------------------------------
def test_every_read_works_on_a_read_only_store(home: Path) -> None:
    with vigil.open(home, read_only=True) as store:
        assert store.read_only
        for name, read in READS.items():
            assert len(read(store)) > 0, name
        assert len(store.worst_segments("credit", by=["sex"], min_count=10))
        assert len(store.feature_importance("credit"))
        assert len(store.explanation_drift("credit"))
        assert len(store.quarantine("credit", include_resolved=True)) == 0
        assert len(store.batches("credit")) == 2
        assert "<html" in store.report("credit", window="1d").html[:200].lower() or store.report("credit")
        assert store.models()["model"].tolist() == ["credit"]


def test_every_write_on_a_read_only_store_says_read_only(home: Path) -> None:
    with vigil.open(home, read_only=True) as store:
        writes = [
            lambda: store.log_predictions("credit", "1", pd.DataFrame({"age": [1.0], "income": [2.0], "sex": ["F"],
                                                                       "prediction": [1], "score": [0.6]})),
            lambda: store.log_labels("credit", pd.DataFrame({"event_id": ["e1"], "y": [1]})),
            lambda: store.delete_events("credit", event_ids=["e1"]),
            lambda: store.set_status("credit", "1", "production"),
            lambda: store.register_dataset("d", pd.DataFrame({"x": [1]})),
        ]
        for write in writes:
            with pytest.raises(ReadOnlyError) as err:
                write()
            assert err.value.code == "read_only"


def test_reads_write_nothing(home: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    with vigil.open(copy) as store:
        store.refresh_profiles("credit")  # settle what the write path had pending
        before = store._db.fetchall("SELECT count(*), max(computed_at) FROM profiles")
        marks = store._db.fetchall("SELECT * FROM profile_marks ORDER BY ALL")
        for read in READS.values():
            read(store, segment={"sex": "F"})
        assert store._db.fetchall("SELECT count(*), max(computed_at) FROM profiles") == before
        assert store._db.fetchall("SELECT * FROM profile_marks ORDER BY ALL") == marks


def test_a_second_process_cannot_read_while_one_writes_and_is_told_why(home: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "busy"
    shutil.copytree(home, copy)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, vigil\n"
        f"s = vigil.open({str(copy)!r})\n"
        "print('open', flush=True)\n"
        "sys.stdin.readline()\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreBusyError) as err:
            vigil.open(copy, read_only=True)
        assert err.value.code == "store_busy" and "vigil serve" in str(err.value) and "copy" in str(err.value)
    finally:
        holder.communicate("\n", timeout=60)


# -- segments ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(READS))
def test_every_injection_is_refused_by_every_read(home: Path, name: str) -> None:
    read = READS[name]
    with vigil.open(home, read_only=True) as store:
        ids_before = store._db.fetchall("SELECT count(*) FROM projects")
        for text in INJECTIONS:
            with pytest.raises(InvalidSegmentError) as err:
                read(store, segment=text)
            assert err.value.code == "invalid_segment", text
            message = str(err.value)
            assert "root:" not in message
            assert not any(marker in message for marker in SECRET_MARKERS if marker in text), (text, message)
        assert store._db.fetchall("SELECT count(*) FROM projects") == ids_before


def test_sequences_are_untouched_by_injections(home: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "seq"
    shutil.copytree(home, copy)
    with vigil.open(copy) as store:
        for text in [t for t in INJECTIONS if "nextval" in t]:
            with pytest.raises(InvalidSegmentError):
                store.performance("credit", segment=text)
        other = store.use("second")
        assert store._db.fetchone("SELECT project_id FROM projects WHERE name = 'second'")[0] == 2
        other.projects()


@pytest.mark.parametrize("name", ["performance", "drift", "integrity", "traffic", "fairness", "events",
                                  "multivariate_drift"])
def test_dict_and_expression_segments_give_identical_frames(home: Path, name: str) -> None:
    read = READS[name]
    with vigil.open(home, read_only=True) as store:
        by_dict = read(store, segment={"sex": "F", "age": {"lt": 45}})
        by_text = read(store, segment="age < 45 and sex == 'F'")
        pd.testing.assert_frame_equal(by_dict.reset_index(drop=True), by_text.reset_index(drop=True))
        assert len(by_dict) > 0


def test_a_segment_on_an_unknown_column_names_the_near_match(home: Path) -> None:
    with vigil.open(home, read_only=True) as store, pytest.raises(InvalidSegmentError, match="age"):
        store.performance("credit", segment="agee > 3")


def test_segmented_events_are_exactly_the_rows_the_segment_selects(home: Path) -> None:
    with vigil.open(home, read_only=True) as store:
        every = store.events("credit")
        some = store.events("credit", segment="sex == 'F' and (age < 35 or income > 60)")
        expected = every[(every["sex"] == "F") & ((every["age"] < 35) | (every["income"] > 60))]
        assert some["event_id"].tolist() == expected["event_id"].tolist()


# -- threads ------------------------------------------------------------------------------------------------
def _events(ids: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    return pd.DataFrame({"event_id": ids, "age": rng.normal(40, 10, n), "income": rng.normal(50, 15, n),
                         "sex": rng.choice(["F", "M"], n), "prediction": rng.integers(0, 2, n),
                         "score": rng.uniform(0, 1, n),
                         "timestamp": pd.Timestamp("2026-02-01") + pd.to_timedelta(rng.uniform(0, 3, n), "D")})


@pytest.mark.parametrize("round_", range(3))
def test_writers_and_readers_share_one_store(tmp_path: Path, round_: int) -> None:
    home = _home(tmp_path / "threads", n=50, seed=round_)
    errors: list[BaseException] = []
    with vigil.open(home) as store:
        online = store.explain_online("credit", version="1", rate=0.5, interval=0.05)

        def write(k: int) -> None:
            try:
                for b in range(5):
                    # overlapping ids: writer k and k+1 share half of each batch
                    ids = [f"t{(k * 10 + b * 20 + i) % 400}" for i in range(20)]
                    store.log_predictions("credit", "1", _events(ids, seed=0))  # same content for the same id
            except BaseException as err:  # noqa: BLE001
                errors.append(err)

        def read() -> None:
            try:
                for _ in range(8):
                    frame = store.events("credit")
                    assert "event_id" in frame and "Count" not in frame
                    store.performance("credit")
                    store.drift("credit", columns=["age"])
            except BaseException as err:  # noqa: BLE001
                errors.append(err)

        threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
        threads += [threading.Thread(target=read) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        online.stop()
        assert errors == []
        expected = {f"t{(k * 10 + b * 20 + i) % 400}" for k in range(4) for b in range(5) for i in range(20)}
        stored = store.events("credit", start="2026-02-01")
        assert sorted(stored["event_id"]) == sorted(expected)
        assert store._db.fetchone("SELECT count(*) FROM events_1 WHERE timestamp >= '2026-02-01'")[0] == len(expected)
        assert online.error is None and online.passes > 0
        assert online.explained > 0


def test_an_online_explainer_reports_a_failure_at_once(tmp_path: Path) -> None:
    home = _home(tmp_path / "fail", n=20)
    with vigil.open(home) as store:
        online = store.explain_online("credit", rate=1.0, interval=0.05, method="no-such-method")
        for _ in range(200):
            if online.error is not None:
                break
            threading.Event().wait(0.02)
        assert online.status.startswith("failed") and online.running
        assert isinstance(online.error, VigilError)
        with pytest.raises(VigilError):
            online.stop()
