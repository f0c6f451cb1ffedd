"""The ``vigil`` command, against real stores in tmp_path (CliRunner, plus one run of the installed executable)."""

import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import vigil
from cli_helpers import ENV, run
from test_cli_errors import error_lines
from vigil.errors import EXIT_CODES
from vigil.interfaces.cli import app


def one_error_line(result) -> str:
    """The ``error: ...`` line of a failing command (a ``hint: ...`` line may follow it)."""
    return error_lines(result)[0]


def events_frame(ids: list[str], clf: LogisticRegression, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    frame = pd.DataFrame({
        "event_id": ids,
        "timestamp": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
        "income": rng.normal(50, 15, n).round(1),
        "sex": rng.choice(["F", "M"], n),
    })
    frame["score"] = clf.predict_proba(frame[["income"]])[:, 1]
    frame["prediction"] = (frame["score"] > 0.5).astype(int)
    return frame


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"income": rng.normal(50, 15, 200).round(1), "sex": rng.choice(["F", "M"], 200)})
    train["default"] = (train["income"] < 45).astype(int)
    clf = LogisticRegression().fit(train[["income"]], train["default"])
    paths = {name: tmp_path / name for name in
             ("train.csv", "model.pkl", "events.parquet", "events.csv", "bad.csv", "labels.csv", "extra.csv")}
    train.to_csv(paths["train.csv"], index=False)
    paths["model.pkl"].write_bytes(pickle.dumps(clf))
    events_frame([f"p{i}" for i in range(120)], clf).to_parquet(paths["events.parquet"], index=False)
    events_frame([f"c{i}" for i in range(80)], clf, seed=2).to_csv(paths["events.csv"], index=False)
    bad = events_frame([f"b{i}" for i in range(10)], clf, seed=3).astype({"score": object, "income": object})
    bad.loc[0, "score"] = 1.3
    bad.loc[1, "income"] = "unknown"
    bad.loc[2, "prediction"] = None
    bad.to_csv(paths["bad.csv"], index=False)
    labels = pd.DataFrame({"event_id": [f"p{i}" for i in range(40)], "default": [0, 1] * 20})
    labels.to_csv(paths["labels.csv"], index=False)
    extra = events_frame(["x1", "x2"], clf).assign(branch="north")  # a column the schema does not know
    extra.to_csv(paths["extra.csv"], index=False)
    return paths


@pytest.fixture
def home(tmp_path: Path, files: dict[str, Path]) -> Path:
    """A store with model ``credit`` version 1 registered (binary, target ``default``, from CSV + pickle)."""
    home = tmp_path / "home"
    run(home, "init")
    run(home, "model", "register", "credit", "--version", "1", "--task", "binary",
        "--training-data", str(files["train.csv"]), "--target", "default", "--model", str(files["model.pkl"]),
        "--protected", "sex", "--owner", "risk", "--description", "test model")
    return home


@pytest.mark.parametrize("command", [[], ["init"], ["model"], ["model", "register"], ["model", "list"],
                                     ["model", "show"], ["model", "status"], ["ingest"], ["labels"],
                                     ["events"], ["events", "show"], ["events", "delete"], ["quarantine"],
                                     ["report"], ["explain"], ["fairness"], ["demo"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env=ENV)
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_init_creates_then_reopens_the_store(tmp_path: Path) -> None:
    home = tmp_path / "h"
    first = run(home, "init")
    assert "Created a Vigil store in" in first.output and str(home.resolve()) in first.output
    assert (home / "vigil.duckdb").is_file()
    assert "Opened the Vigil store in" in run(home, "init").output


def test_model_register_from_csv_and_pickle(home: Path, files: dict[str, Path]) -> None:
    with vigil.open(home) as store:
        mv = store.model("credit", "1")
        lineage = store.lineage("credit", "1")
        model = mv.load_model()
    assert (mv.task, mv.status, mv.owner) == ("binary", "draft", "risk")
    assert [c.name for c in mv.schema.protected] == ["sex"]
    assert lineage["training_data"]["rows"] == 200
    assert model.predict(pd.DataFrame({"income": [10.0, 90.0]})).tolist() == [1, 0]
    listing = run(home, "model", "list").output
    assert "credit" in listing and mv.artifact_sha256[:12] in listing


def test_model_register_in_production_and_status_change(home: Path, files: dict[str, Path]) -> None:
    run(home, "model", "register", "credit", "--version", "2", "--task", "binary", "--training-data",
        str(files["train.csv"]), "--target", "default", "--status", "production")
    run(home, "model", "status", "credit", "1", "production")
    out = run(home, "model", "status", "credit", "2", "production").output
    assert "retired: version 1" in out
    with vigil.open(home) as store:
        statuses = dict(zip(store.models()["version"], store.models()["status"], strict=True))
    assert statuses == {"1": "retired", "2": "production"}


def test_model_show_prints_lineage_json_with_artifact_sha256(home: Path) -> None:
    shown = json.loads(run(home, "model", "show", "credit").output)
    sha = shown["artifact"]["sha256"]
    assert hashlib.sha256((home / "artifacts" / f"{sha}.pkl").read_bytes()).hexdigest() == sha
    with vigil.open(home) as store:
        assert sha == store.model("credit").artifact_sha256
        assert shown["training_data"]["content_hash"] == store.dataset("credit-training").content_hash
    assert shown["model"] == "credit" and shown["version"] == "1"


def test_ingest_parquet_and_csv(home: Path, files: dict[str, Path]) -> None:
    out = run(home, "ingest", "credit", "1", str(files["events.parquet"]), "--batch-rows", "50").output
    assert "120 received: 120 accepted" in out
    out = run(home, "ingest", "credit", "1", str(files["events.csv"])).output
    assert "80 received: 80 accepted" in out
    again = run(home, "ingest", "credit", "1", str(files["events.parquet"])).output
    assert "0 accepted, 120 duplicates" in again
    with vigil.open(home) as store:
        assert len(store.events("credit")) == 200
        batches = store.batches("credit")
    assert batches["received"].tolist() == [50, 50, 20, 80, 120]


def test_ingest_bad_rows_are_quarantined_with_exit_0(home: Path, files: dict[str, Path]) -> None:
    result = run(home, "ingest", "credit", "1", str(files["bad.csv"]))
    assert "10 received: 7 accepted, 0 duplicates, 3 quarantined" in result.output
    for reason in ("probability_out_of_range", "type_mismatch", "missing_value"):
        assert reason in result.output
    with vigil.open(home) as store:
        quarantined = store.quarantine("credit")
        assert len(store.events("credit")) == 7
    assert sorted(quarantined["event_id"]) == ["b0", "b1", "b2"]


def test_ingest_missing_file_is_one_line_with_the_batch_error_code(home: Path, tmp_path: Path) -> None:
    for name in ("nope.parquet", "nope.csv"):
        result = run(home, "ingest", "credit", "1", str(tmp_path / name), ok=False)
        assert result.exit_code == EXIT_CODES["batch_error"]
        assert name in one_error_line(result)


def test_ingest_unknown_model_names_it(home: Path, files: dict[str, Path]) -> None:
    result = run(home, "ingest", "fraud", "1", str(files["events.csv"]), ok=False)
    assert result.exit_code == EXIT_CODES["not_found"]
    assert "'fraud'" in one_error_line(result)
    result = run(home, "ingest", "credit", "9", str(files["events.csv"]), ok=False)
    assert result.exit_code == EXIT_CODES["not_found"]
    assert "'9'" in one_error_line(result)


def test_ingest_batch_level_error_exits_with_the_batch_error_code(home: Path, files: dict[str, Path]) -> None:
    result = run(home, "ingest", "credit", "1", str(files["extra.csv"]), ok=False)
    assert result.exit_code == EXIT_CODES["batch_error"]
    assert "branch" in one_error_line(result)
    with vigil.open(home) as store:
        assert store.events("credit").empty


def test_labels_are_joined(home: Path, files: dict[str, Path]) -> None:
    run(home, "ingest", "credit", "1", str(files["events.parquet"]))
    out = run(home, "labels", "credit", str(files["labels.csv"])).output
    assert "40 received: 40 accepted" in out
    with vigil.open(home) as store:
        events = store.events("credit")
    assert events["default"].notna().sum() == 40
    assert events.set_index("event_id").loc["p1", "default"] == 1


def test_events_csv_and_json_parse_back(home: Path, files: dict[str, Path], tmp_path: Path) -> None:
    run(home, "ingest", "credit", "1", str(files["events.parquet"]))
    run(home, "labels", "credit", str(files["labels.csv"]))
    with vigil.open(home) as store:
        expected = store.events("credit")
    as_csv = pd.read_csv(io.StringIO(run(home, "events", "credit", "--format", "csv").stdout))
    assert as_csv["event_id"].tolist() == expected["event_id"].tolist()
    assert np.allclose(as_csv["score"], expected["score"])
    as_json = json.loads(run(home, "events", "credit", "-f", "json", "--limit", "5").stdout)
    assert [r["event_id"] for r in as_json] == expected["event_id"].head(5).tolist()
    assert as_json[1]["default"] == 1 and as_json[0]["score"] == expected["score"].iloc[0]
    assert pd.Timestamp(as_json[0]["timestamp"]) == expected["timestamp"].iloc[0]
    window = json.loads(run(home, "events", "credit", "-f", "json", "--start", "2026-01-01T10:00",
                            "--end", "2026-01-01T12:00Z").stdout)
    assert [r["event_id"] for r in window] == ["p10", "p11"]
    out = tmp_path / "export.csv"
    run(home, "events", "credit", "--output", str(out), "--columns", "event_id,score")
    assert pd.read_csv(out).columns.tolist() == ["event_id", "score"]
    table = run(home, "events", "credit", "--limit", "3").output
    assert "p0" in table and "p2" in table and "p3" not in table and "more events follow" in table


def test_events_bad_options_are_usage_errors(home: Path, tmp_path: Path) -> None:
    result = run(home, "events", "credit", "--start", "someday", ok=False)
    assert result.exit_code == 2 and "--start" in one_error_line(result)
    result = run(home, "events", "credit", "--format", "xml", ok=False)
    assert result.exit_code == 2 and "xml" in one_error_line(result)
    result = run(home, "events", "credit", "--output", str(tmp_path / "x.txt"), ok=False)
    assert result.exit_code == 2 and "x.txt" in one_error_line(result)
    result = run(home, "model", "register", "m", "--version", "1", "--task", "clustering", "--training-data",
                 "t.csv", "--target", "y", ok=False)
    assert result.exit_code == 2 and "clustering" in one_error_line(result)


def test_quarantine_listing(home: Path, files: dict[str, Path]) -> None:
    run(home, "ingest", "credit", "1", str(files["bad.csv"]))
    table = run(home, "quarantine", "credit").output
    assert "3 quarantined rows for credit" in table
    for reason in ("probability_out_of_range", "type_mismatch", "missing_value"):
        assert reason in table
    rows = json.loads(run(home, "quarantine", "credit", "--reason", "type_mismatch", "-f", "json").stdout)
    assert [(r["event_id"], r["column"], r["raw"]["income"]) for r in rows] == [("b1", "income", "unknown")]
    as_csv = pd.read_csv(io.StringIO(run(home, "quarantine", "credit", "-f", "csv", "--limit", "2").stdout))
    assert len(as_csv) == 2
    result = run(home, "quarantine", "credit", "--reason", "bad_vibes", ok=False)
    assert result.exit_code == 2 and "bad_vibes" in one_error_line(result)


@pytest.mark.parametrize("command", [["events", "credit"], ["quarantine", "credit"], ["model", "list"],
                                     ["ingest", "credit", "1", "events.csv"], ["labels", "credit", "labels.csv"]])
def test_commands_on_a_missing_store_fail_cleanly_and_create_nothing(tmp_path: Path, command: list[str]) -> None:
    result = run(tmp_path / "nothing", *command, ok=False)
    assert result.exit_code == EXIT_CODES["store_error"] and "vigil init" in one_error_line(result)
    assert not (tmp_path / "nothing").exists()


def test_installed_executable_help_and_error(home: Path, tmp_path: Path) -> None:
    exe = shutil.which("vigil", path=str(Path(sys.executable).parent)) or shutil.which("vigil")
    assert exe is not None, "the vigil entry point is not installed"
    env = {k: v for k, v in os.environ.items() if k != "VIGIL_HOME"}
    shown = subprocess.run([exe, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0 and "ingest" in shown.stdout
    failed = subprocess.run([exe, "--home", str(home), "ingest", "credit", "1", str(tmp_path / "missing.parquet")],
                            capture_output=True, text=True, env=env, timeout=60)
    assert failed.returncode == EXIT_CODES["batch_error"]
    assert failed.stderr.strip().splitlines() == [f"error: no such file: {str(tmp_path / 'missing.parquet')!r}"]
    assert "Traceback" not in failed.stdout + failed.stderr


# -- help that says what the commands do -----------------------------------------------------------------------


def test_report_help_lists_every_section_of_the_report() -> None:
    text = " ".join(CliRunner().invoke(app, ["report", "--help"], env=ENV).output.split()).lower()
    for section in ("summary", "performance", "drift", "data integrity", "traffic", "explanations", "fairness"):
        assert section in text, section


def test_demo_help_does_not_promise_a_dashboard() -> None:
    text = " ".join(CliRunner().invoke(app, ["demo", "--help"], env=ENV).output.split())
    assert "no dashboard is served" in text and "[default: no-serve]" in text
    assert "Open the dashboard" not in text


# -- fairness: flagged disparities as one table ----------------------------------------------------------------


@pytest.fixture
def biased_home(tmp_path: Path, files: dict[str, Path]) -> Path:
    """Model ``credit`` with 600 labelled events whose predictions favour M over F."""
    home = tmp_path / "biased"
    run(home, "model", "register", "credit", "--version", "1", "--task", "binary", "--training-data",
        str(files["train.csv"]), "--target", "default", "--protected", "sex")
    rng = np.random.default_rng(5)
    n = 600
    events = pd.DataFrame({"event_id": [f"b{i}" for i in range(n)],
                           "timestamp": pd.date_range("2026-01-05", periods=n, freq="30min", tz="UTC"),
                           "income": rng.normal(50, 15, n).round(1), "sex": np.where(np.arange(n) % 2, "M", "F")})
    events["score"] = np.clip(np.where(events["sex"] == "M", 0.7, 0.2) + rng.normal(0, 0.1, n), 0, 1)
    events["prediction"] = (events["score"] > 0.5).astype(int)
    events.to_parquet(tmp_path / "biased.parquet", index=False)
    labels = pd.DataFrame({"event_id": events["event_id"], "default": rng.integers(0, 2, n)})
    labels.to_csv(tmp_path / "biased-labels.csv", index=False)
    run(home, "ingest", "credit", "1", str(tmp_path / "biased.parquet"))
    run(home, "labels", "credit", str(tmp_path / "biased-labels.csv"))
    return home


def test_fairness_disparities_show_the_flagged_ones_in_one_table(biased_home: Path) -> None:
    with vigil.open(biased_home, read_only=True) as store:
        every = store.fairness("credit", window="7d").disparities
    flagged = every[every["status"] == "flagged"]
    assert len(flagged) and len(flagged) < len(every)
    out = run(biased_home, "fairness", "credit", "--window", "7d", "--show", "disparities").stdout
    assert "-[ 1 ]" not in out  # one table, not a block per disparity
    body = [line for line in out.splitlines() if line.startswith("│")]
    assert len(body) == len(flagged)
    assert f"{len(flagged):,} flagged disparit" in out and f"{len(every) - len(flagged):,} not flagged" in out
    assert "--all shows every one" in out
    exported = json.loads(run(biased_home, "fairness", "credit", "-w", "7d", "--show", "disparities", "-f",
                              "json").stdout)
    assert len(exported) == len(flagged) and {r["status"] for r in exported} == {"flagged"}
    everything = json.loads(run(biased_home, "fairness", "credit", "-w", "7d", "--show", "disparities", "--all",
                                "-f", "json").stdout)
    assert len(everything) == len(every)
    table = run(biased_home, "fairness", "credit", "-w", "7d", "--show", "disparities", "--all").stdout
    assert len([line for line in table.splitlines() if line.startswith("│")]) == len(every)
    assert "not flagged" not in table


def test_fairness_segment_is_passed_to_the_store(biased_home: Path) -> None:
    groups = json.loads(run(biased_home, "fairness", "credit", "--show", "groups", "--segment", "sex = 'F'",
                            "-f", "json").stdout)
    assert groups and {g["group"] for g in groups} == {"F"}
