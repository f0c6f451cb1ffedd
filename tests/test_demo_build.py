"""The demo project: build_demo into a real store, re-running it, and `vigil demo` through the CLI."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

import vigil
from vigil.demo import DemoSummary, build_demo
from vigil.demo.build import BROKEN_REASONS, BROKEN_ROWS, DATASET_NAME, MODEL_NAME, MODEL_VERSION
from vigil.interfaces.cli import app

DAYS = 5
EVENTS_PER_DAY = 100


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary, list[tuple[str, int, int]]]:
    home = tmp_path_factory.mktemp("demo")
    steps: list[tuple[str, int, int]] = []
    with vigil.open(home) as store:
        summary = build_demo(store, days=DAYS, events_per_day=EVENTS_PER_DAY,
                             progress=lambda *step: steps.append(step))
    return home, summary, steps


def test_model_is_registered_in_production_with_lineage(built) -> None:
    home, summary, _ = built
    with vigil.open(home) as store:
        mv = store.model(MODEL_NAME, MODEL_VERSION)
        lineage = store.lineage(MODEL_NAME, MODEL_VERSION)
        dataset = store.dataset(DATASET_NAME)
        models = store.models()
    assert (mv.status, mv.task, mv.owner) == ("production", "binary", "risk-team")
    assert len(models) == 1
    assert sorted(c.name for c in mv.schema.protected) == ["race", "sex"]
    assert mv.schema.column("channel").role.value == "metadata"
    assert lineage["training_data"]["content_hash"] == dataset.content_hash
    assert lineage["training_data"]["name"] == DATASET_NAME
    assert summary.training_data["content_hash"] == dataset.content_hash
    assert summary.artifact_sha256 == mv.artifact_sha256 is not None
    assert (summary.status, summary.reused) == ("production", False)


def test_events_are_the_simulated_ones_minus_the_broken_rows(built) -> None:
    home, summary, steps = built
    with vigil.open(home) as store:
        events = store.events(MODEL_NAME)
        batches = store.batches(MODEL_NAME)
    assert summary.broken_rows == BROKEN_ROWS
    assert len(events) == summary.events_simulated - BROKEN_ROWS == summary.events_ingested == summary.events_stored
    assert (batches["kind"] == "predictions").sum() == DAYS  # one transaction per simulated day
    assert [s for s in steps if s[0] == "events"] == [("events", d, DAYS) for d in range(1, DAYS + 1)]
    assert events["timestamp"].min() == summary.start and events["timestamp"].max() == summary.end


def test_quarantine_holds_exactly_the_broken_rows(built) -> None:
    home, summary, _ = built
    with vigil.open(home) as store:
        quarantined = store.quarantine(MODEL_NAME)
        stored_ids = set(store.events(MODEL_NAME)["event_id"])
    assert len(quarantined) == BROKEN_ROWS == summary.quarantined
    expected = {reason: len(range(i, BROKEN_ROWS, len(BROKEN_REASONS))) for i, reason in enumerate(BROKEN_REASONS)}
    assert quarantined["reason"].value_counts().to_dict() == expected == summary.quarantine_reasons
    assert set(quarantined["kind"]) == {"predictions"}
    columns = dict(zip(quarantined["reason"], quarantined["column"], strict=False))
    assert columns == {"probability_out_of_range": "score", "type_mismatch": "age", "missing_value": "prediction"}
    assert not stored_ids & set(quarantined["event_id"])


def test_labels_are_joined(built) -> None:
    home, summary, _ = built
    with vigil.open(home) as store:
        events = store.events(MODEL_NAME)
    labelled = events["income"].notna()
    assert labelled.sum() == summary.labels_joined == summary.labels_stored > 0
    assert set(events.loc[labelled, "income"]) <= {"<=50K", ">50K"}
    assert summary.label_coverage == pytest.approx(labelled.mean())


def test_building_again_adds_nothing(built) -> None:
    home, first, _ = built
    with vigil.open(home) as store:
        again = build_demo(store, days=DAYS, events_per_day=EVENTS_PER_DAY)
        assert len(store.events(MODEL_NAME)) == first.events_stored
        assert len(store.quarantine(MODEL_NAME)) == BROKEN_ROWS
        assert len(store.models()) == 1
    assert again.reused
    assert (again.events_ingested, again.labels_joined, again.quarantined) == (0, 0, 0)
    assert again.duplicates == first.events_stored
    assert (again.events_stored, again.labels_stored) == (first.events_stored, first.labels_stored)


def test_vigil_demo_command(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    result = CliRunner().invoke(app, ["demo", "--home", str(home), "--no-serve", "--days", "3"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    out = result.stdout
    assert f"Vigil demo in {home.resolve()}" in out
    assert "adult-income version 1 (binary, production)" in out
    assert f"quarantined:    {BROKEN_ROWS} (as intended: malformed rows in the simulated feed" in out
    assert "label coverage:" in out and "training data:  adult-income-train@1, content hash" in out
    assert f"vigil --home {home} events adult-income --limit 5" in out
    assert "dashboard is not available" in out
    with vigil.open(home) as store:
        assert store.model(MODEL_NAME).status == "production"
