"""Exit codes of the ``vigil`` command come from the error codes, and docs/errors.md lists exactly those codes."""

from __future__ import annotations

import inspect
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import vigil
from cli_helpers import ENV, run
from vigil import errors
from vigil.errors import EXIT_CODES, HTTP_STATUSES, VigilError
from vigil.interfaces.api import Store
from vigil.interfaces.cli import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
ROW = re.compile(r"^\|\s*`(?P<code>[a-z_]+)`\s*\|\s*`(?P<cls>\w+)`\s*\|(?P<meaning>[^|]+)\|\s*(?P<exit>\d+)\s*\|"
                 r"\s*(?P<http>\d+)\s*\|\s*$")



def error_lines(result) -> tuple[str, str | None]:
    """The ``error: ...`` line of a failing command and its ``hint: ...`` line if any; no traceback."""
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    if len(lines) == 2:
        assert lines[1].startswith("hint: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0], lines[1] if len(lines) == 2 else None


def documented_codes() -> dict[str, dict[str, str]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            assert match["code"] not in rows, f"{match['code']} is listed twice"
            rows[match["code"]] = match.groupdict()
    return rows


def error_classes() -> dict[str, type[VigilError]]:
    return {cls.code: cls for _, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, VigilError) and cls.__module__ == errors.__name__}


# -- the table -------------------------------------------------------------------------------------------------


def test_the_error_table_lists_exactly_the_codes_of_errors_py_with_their_numbers():
    rows = documented_codes()
    assert set(rows) == set(EXIT_CODES) == set(HTTP_STATUSES)
    for code, row in rows.items():
        assert int(row["exit"]) == EXIT_CODES[code], code
        assert int(row["http"]) == HTTP_STATUSES[code], code
        assert row["meaning"].strip(), code


def test_the_error_table_names_the_class_of_each_code():
    classes = error_classes()
    rows = documented_codes()
    assert set(classes) == set(rows)  # every class has a row, and every row a class
    for code, row in rows.items():
        assert classes[code].__name__ == row["cls"], code
        assert getattr(errors, row["cls"]).code == code


def test_exit_code_follows_the_class_not_the_message():
    for code, cls in error_classes().items():
        assert errors.exit_code(cls("any words at all")) == EXIT_CODES[code]
    assert errors.exit_code(errors.NotFoundError("invalid parameter")) == 3


# -- through the command ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A store with model ``credit`` version 1 (binary, protected ``sex``) and 300 labelled events."""
    tmp = tmp_path_factory.mktemp("cli-errors")
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"income": rng.normal(50, 15, 300).round(1), "sex": rng.choice(["F", "M"], 300)})
    train["default"] = (train["income"] < 45).astype(int)
    clf = LogisticRegression().fit(train[["income"]], train["default"])
    (tmp / "model.pkl").write_bytes(pickle.dumps(clf))
    train.to_csv(tmp / "train.csv", index=False)
    events = pd.DataFrame({"event_id": [f"e{i}" for i in range(300)],
                           "timestamp": pd.date_range("2026-01-05", periods=300, freq="h", tz="UTC"),
                           "income": rng.normal(50, 15, 300).round(1), "sex": rng.choice(["F", "M"], 300)})
    events["score"] = clf.predict_proba(events[["income"]])[:, 1]
    events["prediction"] = (events["score"] > 0.5).astype(int)
    events.to_parquet(tmp / "events.parquet", index=False)
    pd.DataFrame({"event_id": events["event_id"], "default": (events["income"] < 45).astype(int)}).to_csv(
        tmp / "labels.csv", index=False)
    home = tmp / "home"
    run(home, "init")
    run(home, "model", "register", "credit", "--version", "1", "--task", "binary", "--training-data",
        str(tmp / "train.csv"), "--target", "default", "--model", str(tmp / "model.pkl"), "--protected", "sex")
    run(home, "ingest", "credit", "1", str(tmp / "events.parquet"))
    run(home, "labels", "credit", str(tmp / "labels.csv"))
    return home


@pytest.mark.parametrize("command", [["report", "nope"], ["events", "nope"], ["model", "show", "nope"],
                                     ["fairness", "nope"], ["quarantine", "nope"], ["report", "credit", "-v", "9"]])
def test_a_model_or_version_not_found_exits_3(home, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)  # where `vigil report` would write its file
    result = run(home, *command, ok=False)
    assert result.exit_code == EXIT_CODES["not_found"] == 3
    error, _ = error_lines(result)
    assert ("'nope'" if "nope" in command else "'9'") in error
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", [["report", "credit"], ["fairness", "credit"]])
@pytest.mark.parametrize("window", ["1x", "0d", "5h"])
def test_an_invalid_window_exits_with_the_invalid_parameter_code(home, command, window):
    result = run(home, *command, "--window", window, ok=False)
    assert result.exit_code == EXIT_CODES["invalid_parameter"] == 2
    error, _ = error_lines(result)
    assert "--window" in error and repr(window) in error


@pytest.mark.parametrize("command", [["report", "credit", "-o", "r.html"], ["fairness", "credit"]])
def test_an_invalid_segment_exits_with_the_invalid_segment_code(home, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    result = run(home, *command, "--segment", "x; DROP", ok=False)
    assert result.exit_code == EXIT_CODES["invalid_segment"] == 2
    error, _ = error_lines(result)
    assert "segment" in error and "';'" in error
    assert not (tmp_path / "r.html").exists()


def test_a_missing_store_exits_with_the_store_error_code(tmp_path):
    result = run(tmp_path / "nothing", "ingest", "credit", "1", "events.csv", ok=False)
    assert result.exit_code == EXIT_CODES["store_error"] == 6
    assert "vigil init" in error_lines(result)[0]


def test_a_refused_batch_exits_with_the_batch_error_code(home, tmp_path):
    (tmp_path / "extra.csv").write_text("event_id,income,sex,score,prediction,branch\nx1,50,F,0.2,0,north\n")
    result = run(home, "ingest", "credit", "1", str(tmp_path / "extra.csv"), ok=False)
    assert result.exit_code == EXIT_CODES["batch_error"] == 5
    assert "branch" in error_lines(result)[0]


def test_usage_errors_still_exit_2(home):
    result = run(home, "events", "credit", "--format", "xml", ok=False)
    assert result.exit_code == 2 and "xml" in error_lines(result)[0]
    result = run(home, "report", "credit", "--no-such-option", ok=False)
    assert result.exit_code == 2 and "--no-such-option" in error_lines(result)[0]


def test_an_unexpected_error_is_one_line_exit_1_and_debug_shows_the_traceback(home, monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(Store, "models", broken)
    monkeypatch.delenv("VIGIL_DEBUG", raising=False)
    result = run(home, "model", "list", ok=False)
    assert result.exit_code == 1
    error, _ = error_lines(result)
    assert "unexpected RuntimeError: the disk is on fire" in error and "--debug" in error
    debugged = CliRunner().invoke(app, ["--home", str(home), "--debug", "model", "list"], env=ENV)
    assert debugged.exit_code == 1 and isinstance(debugged.exception, RuntimeError)


# -- events delete ---------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_home(tmp_path, home) -> Path:
    """A copy of the module's store, for tests that change it."""
    import shutil

    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    return copy


@pytest.mark.parametrize("args", [[], ["--event-id", "e1", "--start", "2026-01-05", "--end", "2026-01-06"],
                                  ["--start", "2026-01-05"], ["--start", "2026-01-06", "--end", "2026-01-05"],
                                  ["--start", "someday", "--end", "2026-01-06"]])
def test_events_delete_needs_ids_or_a_whole_range(fresh_home, args):
    result = run(fresh_home, "events", "delete", "credit", *args, "--yes", ok=False)
    assert result.exit_code == 2
    error_lines(result)
    with vigil.open(fresh_home, read_only=True) as store:
        assert len(store.events("credit")) == 300


def test_events_delete_of_an_unknown_model_exits_3(fresh_home):
    result = run(fresh_home, "events", "delete", "nope", "--event-id", "e1", "--yes", ok=False)
    assert result.exit_code == 3 and "'nope'" in error_lines(result)[0]


def test_events_delete_without_yes_asks_and_a_no_deletes_nothing(fresh_home):
    result = CliRunner().invoke(app, ["--home", str(fresh_home), "events", "delete", "credit", "--event-id", "e1"],
                                input="n\n", env=ENV)
    assert result.exit_code == 1 and "aborted" in result.stderr
    with vigil.open(fresh_home, read_only=True) as store:
        assert "e1" in set(store.events("credit")["event_id"])


def test_events_delete_by_id_deletes_those_events_and_says_how_many(fresh_home):
    result = run(fresh_home, "events", "delete", "credit", "--event-id", "e1,e2", "--event-id", "e3", "--yes")
    assert "deleted 3 event(s) of credit" in result.stdout
    with vigil.open(fresh_home, read_only=True) as store:
        left = set(store.events("credit")["event_id"])
    assert len(left) == 297 and not {"e1", "e2", "e3"} & left


def test_events_delete_by_range_deletes_the_range_only(fresh_home):
    # events are hourly from 2026-01-05 00:00: [02:00, 05:00) holds e2, e3, e4
    result = CliRunner().invoke(app, ["--home", str(fresh_home), "events", "delete", "credit", "--start",
                                      "2026-01-05T02:00", "--end", "2026-01-05T05:00Z"], input="y\n", env=ENV)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "deleted 3 event(s) of credit" in result.stdout
    with vigil.open(fresh_home, read_only=True) as store:
        left = set(store.events("credit")["event_id"])
    assert len(left) == 297 and not {"e2", "e3", "e4"} & left and {"e1", "e5"} <= left


def test_events_without_a_subcommand_still_shows_events(home):
    out = run(home, "events", "credit", "--limit", "2").stdout
    assert "e0" in out and "e1" in out and "e2" not in out
    assert run(home, "events", "show", "credit", "--limit", "2").stdout == out


# -- explain --trust -------------------------------------------------------------------------------------------


def test_explain_refuses_an_unsigned_model_and_trust_loads_it(fresh_home):
    signatures = list((fresh_home / "artifacts").glob("*.sig"))
    assert signatures
    for signature in signatures:  # nothing says who made the model file now
        signature.unlink()
    refused = run(fresh_home, "explain", "credit", "e7", ok=False)
    assert refused.exit_code == EXIT_CODES["untrusted_artifact"] == 9
    assert "--trust" in error_lines(refused)[0]
    out = run(fresh_home, "explain", "credit", "e7", "--trust", "--top", "1").stdout
    assert "credit event e7" in out and "income" in out
