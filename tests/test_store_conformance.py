"""The store conformance suite: what every backend must do, written against :mod:`vigil.store.protocols` only.

Each test runs once per factory in :data:`store_conformance_cases.FACTORIES` (today the embedded DuckDB
home; a PostgreSQL + Parquet lake backend joins by adding its factory). Nothing here touches SQL or a
backend's files: the semantics checked are the ones the services rely on (registry, ingest, monitoring,
events, explaining), with pandas, scikit-learn and exact counts as oracles.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import (
    brier_score_loss,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from store_conformance_cases import (
    FACTORIES,
    REGIONS,
    SEGMENT_KINDS,
    SEXES,
    T0,
    TARGET,
    BackendFactory,
    append,
    append_labels,
    classifier_schema,
    event_frame,
    explanation_table,
    label_frame,
    new_batch_id,
    quarantine_record,
    register,
    regressor_schema,
    validated,
    validated_labels,
)
from vigil.core.profiles import (
    CategoricalProfile,
    ClassificationProfile,
    NumericProfile,
    Profile,
    RegressionProfile,
    profile_from_bytes,
)
from vigil.core.schema import Schema
from vigil.core.segments import Segment
from vigil.errors import (
    AlreadyExistsError,
    ArtifactError,
    ConflictError,
    InvalidParameterError,
    NotFoundError,
    ReadOnlyError,
    SchemaError,
    StoreError,
    UntrustedArtifactError,
    VigilError,
)
from vigil.store import SCHEMES, open_backend, signing
from vigil.store.protocols import (
    Appended,
    Backend,
    BlobStore,
    DatasetRecord,
    EventStore,
    ExplanationStore,
    MetadataStore,
    ProfileStore,
    VersionRecord,
)

KEY_A, KEY_B = "a1" * 32, "b2" * 32
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
CONTENT = ["event_id", "timestamp", "model_version", "age", "sex", "region", "prediction", "score"]


# -- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test signs artifacts with a key of its own (never the user's key file)."""
    monkeypatch.setenv(signing.SIGNING_KEY_ENV, KEY_A)
    return KEY_A


@pytest.fixture(scope="module", params=FACTORIES, ids=lambda f: f.name)
def factory(request: pytest.FixtureRequest) -> BackendFactory:
    return request.param


@pytest.fixture
def location(factory: BackendFactory, tmp_path: Path) -> str:
    return factory.new(tmp_path)


@pytest.fixture
def backend(factory: BackendFactory, location: str) -> Backend:
    opened = factory.open(location)
    yield opened
    opened.close()


@pytest.fixture
def clf(backend: Backend) -> int:
    """A registered classifier (versions "1" and "2"); its model id."""
    schema = classifier_schema()
    _, model_id = register(backend, "clf", "1", schema)
    register(backend, "clf", "2", schema)
    return model_id


@dataclass
class World:
    """A populated store for the read tests, and what it holds: ``events`` is the oracle (every stored event of
    the classifier, with its version, label and label time)."""

    backend: Backend
    project_id: int
    clf: int
    bare: int
    events: pd.DataFrame


def populate(backend: Backend) -> World:
    """Two versions of a classifier (240 + 60 events over three days; labels by a label batch for a third of
    version 1's events and inside the prediction batch for version 2), and a model without a target."""
    schema = classifier_schema()
    project_id, clf = register(backend, "clf", "1", schema)
    register(backend, "clf", "2", schema)
    v1 = event_frame(240, seed=1, prefix="a")
    v2 = event_frame(60, seed=2, prefix="b", labels=True)
    append(backend, clf, "1", validated(v1.iloc[:120], schema))
    append(backend, clf, "1", validated(v1.iloc[120:], schema))
    append(backend, clf, "2", validated(v2, schema))
    rng = np.random.default_rng(3)
    chosen = v1.iloc[::3]
    values = rng.choice(["no", "yes"], len(chosen))
    times = [t + dt.timedelta(hours=2, minutes=int(m)) for t, m in zip(chosen["timestamp"], rng.integers(0, 600,
                                                                                                      len(chosen)),
                                                                         strict=True)]
    append_labels(backend, clf, validated_labels(label_frame(chosen["event_id"], values, times), schema))
    v1 = v1.assign(model_version="1", **{TARGET: None}, label_time=pd.NaT)
    v1.loc[chosen.index, TARGET] = values
    v1.loc[chosen.index, "label_time"] = times
    v2 = v2.assign(model_version="2", label_time=v2["timestamp"].where(v2[TARGET].notna()))
    events = pd.concat([v1, v2], ignore_index=True)
    bare_schema = Schema.infer(pd.DataFrame({"x": [0.0, 1.0]}), task="regression")
    _, bare = register(backend, "bare", "1", bare_schema)
    append(backend, bare, "1", validated(pd.DataFrame({"event_id": ["z1"], "timestamp": [T0], "x": [0.5],
                                                       "prediction": [0.4]}), bare_schema), target=None)
    return World(backend, project_id, clf, bare, events)


@pytest.fixture(scope="module")
def world(factory: BackendFactory, tmp_path_factory: pytest.TempPathFactory) -> World:
    opened = factory.open(factory.new(tmp_path_factory.mktemp(f"world-{factory.name}")))
    yield populate(opened)
    opened.close()


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the order reads return them: by time, then event id."""
    return frame.sort_values(["timestamp", "event_id"], kind="stable").reset_index(drop=True)


def assert_rows(table: pa.Table, expected: pd.DataFrame, columns: list[str] = CONTENT) -> None:
    """The read returned exactly ``expected``'s rows, in read order, with these columns' values."""
    got = table.to_pandas()
    want = ordered(expected)
    assert got["event_id"].tolist() == want["event_id"].tolist()
    for name in columns:
        a, b = got[name], want[name]
        if name in ("timestamp", "label_time"):
            a, b = pd.to_datetime(a).astype("datetime64[us]"), pd.to_datetime(b).astype("datetime64[us]")
        elif a.dtype.kind not in "fiub":  # text: one spelling of missing
            a, b = a.astype(object).where(a.notna(), None), b.astype(object).where(b.notna(), None)
        pd.testing.assert_series_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False,
                                       check_names=False, obj=name)


def ids(table: pa.Table) -> list[str]:
    return table.column("event_id").to_pylist()


def code_of(error: pytest.ExceptionInfo[VigilError]) -> str:
    return error.value.code


# =============================================================================================================
# Backend: the parts, opening, read-only, durability
# =============================================================================================================


def test_a_backend_and_each_part_satisfy_their_protocols(backend: Backend, location: str) -> None:
    assert isinstance(backend, Backend)
    parts = {"metadata": MetadataStore, "events": EventStore, "profiles": ProfileStore,
             "explanations": ExplanationStore, "blobs": BlobStore}
    for name, protocol in parts.items():
        assert isinstance(getattr(backend, name), protocol), name
    assert backend.read_only is False
    assert isinstance(backend.uri, str) and isinstance(backend.home, Path) and isinstance(backend.blobs.root, Path)
    # a protocol check that cannot fail proves nothing: an object missing one method is refused
    assert not isinstance(object(), EventStore) and not isinstance(backend.metadata, EventStore)


def test_a_new_store_is_empty(backend: Backend) -> None:
    assert backend.metadata.project_names() == []


def test_the_backend_uri_opens_the_same_store(backend: Backend, factory: BackendFactory) -> None:
    backend.metadata.ensure_project("by-uri", actor="ada")
    uri = backend.uri
    backend.close()
    again = open_backend(uri)
    try:
        assert again.metadata.project_names() == ["by-uri"]
        assert again.uri == uri
    finally:
        again.close()


@pytest.mark.parametrize("uri", ["mysql://db/vigil", "s3://bucket/lake", "POSTGRESQL+X://h/db"])
def test_an_unknown_uri_scheme_is_refused_with_the_valid_ones(uri: str) -> None:
    with pytest.raises(InvalidParameterError) as err:
        open_backend(uri)
    assert code_of(err) == "invalid_parameter" and err.value.field == "uri"
    scheme = uri.split("://")[0].lower()
    assert f"scheme {scheme!r} is not known" in str(err.value)
    assert all(s in str(err.value) for s in SCHEMES)


def test_closing_twice_is_harmless(factory: BackendFactory, location: str) -> None:
    opened = factory.open(location)
    opened.metadata.ensure_project("p", actor="ada")
    opened.close()
    opened.close()
    again = factory.open(location)
    try:
        assert again.metadata.project_names() == ["p"]
    finally:
        again.close()


def test_opening_a_missing_store_read_only_is_a_store_error(factory: BackendFactory, location: str) -> None:
    with pytest.raises(StoreError) as err:
        factory.open(location, read_only=True)
    assert code_of(err) == "store_error"


def _fill(backend: Backend) -> dict[str, Any]:
    """Something in every part of a store; returns what the checks need to find it again."""
    schema = classifier_schema()
    blobs = backend.blobs
    path = blobs.write_dataset(pa.table({"x": [1.5, None], "city": ["Zürich", "東京"]}), "d" * 64)
    saved = blobs.save_artifact({"weights": [0.5, 2.0]})
    project_id = backend.metadata.ensure_project("p", actor="ada")
    ds = backend.metadata.add_dataset("p", project_id, name="train", content_hash="d" * 64, n_rows=2,
                                      columns={"x": "double", "city": "string"}, path=path, description="t",
                                      actor="ada")
    _, model_id = register(backend, "clf", "1", schema, project="p", artifact=saved, dataset_id=ds.dataset_id)
    backend.metadata.set_status("p", model_id, "clf", "1", "production", actor="ada", exclusive="production")
    frame = event_frame(30, seed=5, prefix="e")
    table = validated(frame, schema)
    bad = quarantine_record(kind="predictions", version="1", batch_id="q", reason="not_finite", column="age",
                            raw_json=json.dumps({"event_id": "bad", "age": "inf"}))
    append(backend, model_id, "1", table, extra=[bad])
    append_labels(backend, model_id, validated_labels(label_frame(["e00001", "ghost"], ["yes", "no"],
                                                                  [T0 + DAY, T0 + DAY]), schema))
    marks = backend.profiles.high_water(model_id, True)
    profile = NumericProfile().update(frame["age"].to_numpy())
    backend.profiles.replace(model_id, "1", "", "1d", {T0: {"age": profile.to_bytes()}}, marks)
    backend.profiles.save_baseline(model_id, "1", '{"source": "training"}')
    backend.explanations.save(explanation_table(model_id, "1", "tree", ["e00002"], [frame["timestamp"][2]]))
    backend.explanations.save_baseline(model_id, "1", "tree", '{"values": [[1.0]]}')
    return {"project_id": project_id, "model_id": model_id, "path": path, "sha": saved.sha256,
            "dataset_id": ds.dataset_id}


def _snapshot(backend: Backend, found: dict[str, Any]) -> dict[str, Any]:
    """Every read of every part, as plain values."""
    meta, events, profiles, xs = backend.metadata, backend.events, backend.profiles, backend.explanations
    pid, mid = found["project_id"], found["model_id"]
    return {
        "projects": meta.project_names(),
        "audit": meta.audit_log("p").drop(columns=["entry_id"]).to_dict("records"),
        "datasets": meta.datasets(pid).to_dict("records"),
        "dataset": meta.dataset(pid, "train", None),
        "by_id": meta.dataset_by_id(found["dataset_id"]),
        "models": meta.models(pid).to_dict("records"),
        "version": meta.version(pid, "clf", "1"),
        "labels": meta.version_labels(mid),
        "events": events.read(mid, target=TARGET).to_pylist(),
        "quarantine": events.quarantine(mid, reason=None, kind=None, include_resolved=True).to_dict("records"),
        "batches": events.batches(mid).to_dict("records"),
        "ingested": events.ingested_through(mid),
        "waiting": events.labels_waiting(mid),
        "high_water": profiles.high_water(mid, True),
        "mark": profiles.mark(mid, "1", "", "1d"),
        "tracked": profiles.tracked(mid, "1"),
        "profiles": profiles.read(mid, "1", "", "1d", columns=None, start=None, end=None),
        "baseline": profiles.baseline(mid, "1"),
        "explained": xs.stored(mid, "1", "tree", ["e00002"]),
        "methods": xs.methods(mid, "1"),
        "x_baseline": xs.baseline(mid, "1", "tree"),
        "dataset_rows": backend.blobs.read_dataset(found["path"]).to_pylist(),
        "model": backend.blobs.load_artifact(found["sha"]),
    }


def test_close_and_reopen_keeps_everything(factory: BackendFactory, location: str) -> None:
    first = factory.open(location)
    found = _fill(first)
    before = _snapshot(first, found)
    first.close()
    again = factory.open(location)
    try:
        after = _snapshot(again, found)
        assert after.keys() == before.keys()
        for key in before:
            assert after[key] == before[key], key
        # and the stored content is what was written, not just stable
        assert before["events"] and len(before["events"]) == 30 and before["model"] == {"weights": [0.5, 2.0]}
        assert before["dataset_rows"] == [{"x": 1.5, "city": "Zürich"}, {"x": None, "city": "東京"}]
        assert [row["reason"] for row in before["quarantine"]] == ["not_finite", "unknown_event"]
        assert before["version"].status == "production" and before["waiting"] is True
    finally:
        again.close()


def test_duplicates_are_recognised_after_reopening(factory: BackendFactory, location: str) -> None:
    first = factory.open(location)
    schema = classifier_schema()
    _, model_id = register(first, "clf", "1", schema)
    table = validated(event_frame(50, seed=6, prefix="e"), schema)
    append(first, model_id, "1", table)
    first.close()
    again = factory.open(location)
    try:
        found, _ = append(again, model_id, "1", table)
        assert not found.keep.any() and found.duplicates == 50
        assert again.events.read(model_id).num_rows == 50
    finally:
        again.close()


def test_a_read_only_store_reads_everything_and_refuses_every_write(factory: BackendFactory, location: str) -> None:
    first = factory.open(location)
    found = _fill(first)
    before = _snapshot(first, found)
    first.close()
    ro = factory.open(location, read_only=True)
    try:
        assert ro.read_only is True and isinstance(ro, Backend)
        assert _snapshot(ro, found) == before
        pid, mid = found["project_id"], found["model_id"]
        schema = classifier_schema()
        meta, events, profiles, xs, blobs = ro.metadata, ro.events, ro.profiles, ro.explanations, ro.blobs
        assert meta.ensure_project("p", actor="ada") == pid  # finding an existing project is a read
        table = validated(event_frame(3, seed=9, prefix="new"), schema)
        labels = validated_labels(label_frame(["e00003"], ["no"], [T0]), schema)
        writes = {
            "audit": lambda: meta.audit("p", "look", "model", "clf", {}, "ada"),
            "add_dataset": lambda: meta.add_dataset("p", pid, name="d2", content_hash="e" * 64, n_rows=1,
                                                    columns={}, path="x", description=None, actor="ada"),
            "add_version": lambda: register(ro, "clf", "9", schema, project="p"),
            "set_status": lambda: meta.set_status("p", mid, "clf", "1", "retired", actor="ada", exclusive=None),
            "append_predictions": lambda: append(ro, mid, "1", table),
            "append_labels": lambda: append_labels(ro, mid, labels),
            "resolve_quarantine": lambda: events.resolve_quarantine([1], "b", T0),
            "delete": lambda: events.delete(mid, version=None, event_ids=["e00001"], start=None, end=None),
            "replace": lambda: profiles.replace(mid, "1", "", "1d", {}, (None, None), stale=[T0]),
            "forget": lambda: profiles.forget(mid, "1", [("1d", T0)]),
            "save_baseline": lambda: profiles.save_baseline(mid, "2", "{}"),
            "save_explanations": lambda: xs.save(explanation_table(mid, "1", "kernel", ["e00004"], [T0])),
            "save_explanation_baseline": lambda: xs.save_baseline(mid, "1", "kernel", "{}"),
            "write_dataset": lambda: blobs.write_dataset(pa.table({"y": [1]}), "f" * 64),
            "save_artifact": lambda: blobs.save_artifact({"another": "model"}),
        }
        for name, write in writes.items():
            with pytest.raises(ReadOnlyError) as err:
                write()
            assert code_of(err) == "read_only", name
        with pytest.raises(NotFoundError) as err:  # a project that is not there cannot be made
            meta.ensure_project("another", actor="ada")
        assert code_of(err) == "not_found"
        with pytest.raises(StoreError):  # the refused dataset was not written
            blobs.read_dataset("datasets/" + "f" * 64 + ".parquet")
        assert _snapshot(ro, found) == before
    finally:
        ro.close()
    again = factory.open(location)
    try:
        assert _snapshot(again, found) == before
    finally:
        again.close()


# =============================================================================================================
# MetadataStore
# =============================================================================================================


def test_projects_are_made_once_and_listed_by_name(backend: Backend) -> None:
    meta = backend.metadata
    b = meta.ensure_project("beta", actor="ada")
    a = meta.ensure_project("alpha", actor="bob")
    assert meta.ensure_project("beta", actor="carl") == b and a != b
    assert meta.project_names() == ["alpha", "beta"]
    log = meta.audit_log("beta")
    assert log[["actor", "action", "object_type", "object_id"]].values.tolist() == [
        ["ada", "create", "project", "beta/beta"]]


def test_audit_entries_are_kept_oldest_first_per_project(backend: Backend) -> None:
    meta = backend.metadata
    for project in ("p", "p2", "p/sub"):
        meta.ensure_project(project, actor="ada")
    details = {"rows": 3, "note": "naïve ✓", "nested": {"a": [1, 2]}}
    meta.audit("p", "delete", "events", "clf", details, "bob")
    meta.audit("p2", "delete", "events", "clf", {}, "carl")
    meta.audit("p/sub", "delete", "events", "clf", {}, "dora")
    meta.audit("p", "status", "model_version", "clf@1", {}, "eve")
    log = meta.audit_log("p")
    assert list(log.columns) == ["entry_id", "occurred_at", "actor", "action", "object_type", "object_id",
                                 "details_json"]
    assert log["actor"].tolist() == ["ada", "bob", "eve"]  # neither p2's nor p/sub's entries
    assert log["object_id"].tolist() == ["p/p", "p/clf", "p/clf@1"]
    assert log["entry_id"].is_monotonic_increasing and log["occurred_at"].is_monotonic_increasing
    assert json.loads(log["details_json"][1]) == details
    assert meta.audit_log("p/sub")["actor"].tolist() == ["ada", "dora"]
    assert meta.audit_log("nobody").empty


def test_datasets_are_versioned_by_name_and_found_by_content(backend: Backend) -> None:
    meta = backend.metadata
    pid = meta.ensure_project("p", actor="ada")
    other = meta.ensure_project("q", actor="ada")
    cols = {"x": "double", "ville": "string"}

    def add(project: str, project_id: int, name: str, digest: str, rows: int) -> DatasetRecord:
        return meta.add_dataset(project, project_id, name=name, content_hash=digest, n_rows=rows, columns=cols,
                                path=f"datasets/{digest}.parquet", description=None, actor="ada")

    first = add("p", pid, "train", "h1", 10)
    second = add("p", pid, "train", "h2", 20)
    add("p", pid, "holdout", "h3", 5)
    add("q", other, "train", "h9", 7)
    assert isinstance(first, DatasetRecord)
    assert (first.name, first.version, first.content_hash, first.n_rows, first.columns, first.created_by) == (
        "train", 1, "h1", 10, cols, "ada")
    assert first.path == "datasets/h1.parquet" and isinstance(first.created_at, dt.datetime)
    assert second.version == 2 and second.dataset_id != first.dataset_id
    assert meta.dataset(pid, "train", None) == second
    assert meta.dataset(pid, "train", 1) == first
    assert meta.dataset(pid, "train", 3) is None and meta.dataset(pid, "nothing", None) is None
    assert meta.dataset(other, "train", None).content_hash == "h9"  # projects are separate
    assert meta.dataset_by_id(first.dataset_id) == first
    assert meta.find_dataset(pid, "train", "h1") == first
    assert meta.find_dataset(pid, "train", "h3") is None and meta.find_dataset(pid, "holdout", "h1") is None
    assert meta.dataset_names(pid) == ["holdout", "train"]
    frame = meta.datasets(pid)
    assert frame[["name", "version", "content_hash", "n_rows"]].values.tolist() == [
        ["holdout", 1, "h3", 5], ["train", 1, "h1", 10], ["train", 2, "h2", 20]]
    registered = meta.audit_log("p")
    assert registered.loc[registered["object_type"] == "dataset", "object_id"].tolist() == [
        "p/train@1", "p/train@2", "p/holdout@1"]


def test_an_unknown_dataset_id_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFoundError) as err:
        backend.metadata.dataset_by_id(987654)
    assert code_of(err) == "not_found" and err.value.field == "dataset"


def test_versions_are_registered_with_their_model(backend: Backend) -> None:
    meta = backend.metadata
    schema = classifier_schema()
    saved = backend.blobs.save_artifact({"coef": [1.0, -1.0]})
    pid = meta.ensure_project("p", actor="ada")
    ds = meta.add_dataset("p", pid, name="train", content_hash="h", n_rows=4, columns={}, path="d", description=None,
                          actor="ada")
    _, mid = register(backend, "clf", "1", schema, project="p", artifact=saved, dataset_id=ds.dataset_id,
                      actor="bob")
    _, again = register(backend, "clf", "2", schema, project="p", status="shadow", owner="carl")
    _, other = register(backend, "aaa", "1", regressor_schema(), project="p")
    assert again == mid and other != mid
    assert meta.model(pid, "clf") == (mid, "binary", "carl")  # the owner defaults to the actor, and can change
    assert meta.model(pid, "aaa") == (other, "regression", "ada")
    assert meta.model(pid, "nothing") is None
    assert meta.model_names(pid) == ["aaa", "clf"]
    assert meta.version_labels(mid) == ["1", "2"]
    one = meta.version(pid, "clf", "1")
    assert isinstance(one, VersionRecord)
    assert (one.model_id, one.model, one.task, one.version, one.status, one.created_by) == (
        mid, "clf", "binary", "1", "draft", "bob")
    assert (one.artifact_sha256, one.artifact_type, one.training_dataset_id) == (
        saved.sha256, saved.type_name, ds.dataset_id)
    assert Schema.from_json(one.schema_json) == schema
    latest = meta.version(pid, "clf", None)
    assert (latest.version, latest.status, latest.artifact_sha256, latest.training_dataset_id) == (
        "2", "shadow", None, None)
    assert meta.version(pid, "clf", "3") is None and meta.version(pid, "nothing", None) is None
    frame = meta.models(pid)
    assert frame[["model", "version", "task", "status"]].values.tolist() == [
        ["aaa", "1", "regression", "draft"], ["clf", "1", "binary", "draft"], ["clf", "2", "binary", "shadow"]]
    log = meta.audit_log("p")
    assert log.loc[log["object_type"] == "model_version", "object_id"].tolist() == ["p/clf@1", "p/clf@2",
                                                                                   "p/aaa@1"]
    assert log.loc[log["object_type"] == "model", "object_id"].tolist() == ["p/clf", "p/aaa"]


def test_the_same_version_twice_is_already_exists_and_changes_nothing(backend: Backend) -> None:
    schema = classifier_schema()
    pid, mid = register(backend, "clf", "1", schema)
    audit = len(backend.metadata.audit_log("conformance"))
    with pytest.raises(AlreadyExistsError) as err:
        register(backend, "clf", "1", schema, status="production")
    assert code_of(err) == "already_exists" and isinstance(err.value, ConflictError)
    assert backend.metadata.version_labels(mid) == ["1"]
    assert backend.metadata.version(pid, "clf", "1").status == "draft"
    assert len(backend.metadata.audit_log("conformance")) == audit


def test_a_version_that_changes_a_stored_kind_or_the_target_is_refused(backend: Backend) -> None:
    schema = classifier_schema()
    pid, mid = register(backend, "clf", "1", schema)
    as_text = Schema.infer(pd.DataFrame({"age": ["young", "old"], "sex": ["F", "M"], TARGET: ["no", "yes"]}),
                           target=TARGET, metadata={"region": "categorical"})
    with pytest.raises(SchemaError) as err:
        register(backend, "clf", "2", as_text)
    assert code_of(err) == "schema_error" and err.value.field == "age"
    other_target = Schema.infer(pd.DataFrame({"age": [1.0, 2.0], "sex": ["F", "M"], "outcome": ["no", "yes"]}),
                                target="outcome")
    with pytest.raises(SchemaError) as err:
        register(backend, "clf", "3", other_target)
    assert err.value.field == "target"
    assert backend.metadata.version_labels(mid) == ["1"]
    # a version adding a column is fine, and its events keep it
    wider = Schema.infer(pd.DataFrame({"age": [18.0, 80.0], "sex": ["F", "M"], "income": [1.0, 2.0],
                                       TARGET: ["no", "yes"]}), target=TARGET, metadata={"region": "categorical"})
    register(backend, "clf", "4", wider)
    frame = event_frame(3, seed=1, prefix="w").assign(income=[10.0, 20.0, 30.0])
    append(backend, mid, "4", validated(frame, wider))
    stored = backend.events.read(mid, version="4", columns=["income"]).to_pandas().set_index("event_id")
    assert stored.loc[frame["event_id"], "income"].tolist() == [10.0, 20.0, 30.0]
    assert backend.events.read(mid, version="1", columns=["income"]).num_rows == 0


def test_status_changes_and_the_exclusive_status_retires_the_holder(backend: Backend) -> None:
    meta = backend.metadata
    schema = classifier_schema()
    pid, mid = register(backend, "clf", "1", schema)
    for version in ("2", "3"):
        register(backend, "clf", version, schema)
    meta.set_status("conformance", mid, "clf", "1", "production", actor="ada", exclusive="production")
    meta.set_status("conformance", mid, "clf", "3", "shadow", actor="ada", exclusive=None)
    meta.set_status("conformance", mid, "clf", "2", "production", actor="bob", exclusive="production")
    status = {v: meta.version(pid, "clf", v).status for v in ("1", "2", "3")}
    assert status == {"1": "retired", "2": "production", "3": "shadow"}
    moves = [(r.object_id, json.loads(r.details_json), r.actor)
             for r in meta.audit_log("conformance").itertuples() if r.action == "status"]
    assert moves == [("conformance/clf@1", {"from": "draft", "to": "production"}, "ada"),
                     ("conformance/clf@3", {"from": "draft", "to": "shadow"}, "ada"),
                     ("conformance/clf@1", {"from": "production", "to": "retired"}, "bob"),
                     ("conformance/clf@2", {"from": "draft", "to": "production"}, "bob")]


def test_the_status_of_an_unknown_version_is_not_found(backend: Backend) -> None:
    pid, mid = register(backend, "clf", "1", classifier_schema())
    audit = len(backend.metadata.audit_log("conformance"))
    with pytest.raises(NotFoundError) as err:
        backend.metadata.set_status("conformance", mid, "clf", "7", "production", actor="ada",
                                    exclusive="production")
    assert code_of(err) == "not_found" and err.value.field == "version"
    assert backend.metadata.version(pid, "clf", "1").status == "draft"
    assert len(backend.metadata.audit_log("conformance")) == audit


# =============================================================================================================
# EventStore: appending
# =============================================================================================================


def test_a_first_batch_is_stored_whole_and_recorded(backend: Backend, clf: int) -> None:
    table = validated(event_frame(40, seed=1, prefix="e", labels=True), classifier_schema())
    found, decision = append(backend, clf, "1", table)
    assert isinstance(found, Appended) and decision.seen == [found]  # decide is asked once, with the result
    assert found.keep.tolist() == [True] * 40 and not found.conflict.any() and found.duplicates == 0
    assert found.labels == table.column(TARGET).drop_null().__len__()
    stored = backend.events.read(clf)
    assert stored.num_rows == 40 and sorted(ids(stored)) == sorted(table.column("event_id").to_pylist())
    assert "ingested_at" not in stored.column_names and "batch_id" not in stored.column_names
    batches = backend.events.batches(clf)
    assert batches[["batch_id", "kind", "version", "source", "received", "accepted", "duplicates",
                    "quarantined"]].values.tolist() == [[decision.batch_id, "predictions", "1", "conformance", 40, 40,
                                                         0, 0]]


def test_resending_a_batch_stores_nothing_and_counts_duplicates(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    frame = event_frame(60, seed=2, prefix="e")
    append(backend, clf, "1", validated(frame, schema))
    later = frame.assign(timestamp=frame["timestamp"] + dt.timedelta(hours=5))  # a re-send stamped again
    for batch in (frame, later):
        found, _ = append(backend, clf, "1", validated(batch, schema))
        assert not found.keep.any() and not found.conflict.any() and found.duplicates == 60
    stored = backend.events.read(clf).to_pandas()
    assert len(stored) == 60
    assert sorted(stored["timestamp"]) == sorted(frame["timestamp"])  # the first time stays
    assert backend.events.batches(clf)["duplicates"].tolist() == [0, 60, 60]


def test_overlapping_batches_store_each_event_once(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    frame = event_frame(150, seed=3, prefix="e")
    append(backend, clf, "1", validated(frame.iloc[:100], schema))
    found, _ = append(backend, clf, "1", validated(frame.iloc[50:], schema))
    assert found.keep.tolist() == [False] * 50 + [True] * 50
    assert found.duplicates == 50 and not found.conflict.any()
    assert sorted(ids(backend.events.read(clf))) == sorted(frame["event_id"])


def test_a_resent_id_with_other_content_or_version_is_a_conflict(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    frame = event_frame(10, seed=4, prefix="e")
    append(backend, clf, "1", validated(frame, schema))
    changed = frame.iloc[:4].copy()
    changed.loc[changed.index[1], "score"] = 0.999
    changed.loc[changed.index[1], "prediction"] = "yes"
    changed.loc[changed.index[2], "region"] = "elsewhere"
    found, decision = append(backend, clf, "1", validated(changed, schema))
    assert found.keep.tolist() == [False] * 4
    assert found.conflict.tolist() == [False, True, True, False] and found.duplicates == 2
    moved, _ = append(backend, clf, "2", validated(frame.iloc[5:7], schema))  # the same events under another version
    assert moved.conflict.tolist() == [True, True] and moved.duplicates == 0
    stored = backend.events.read(clf).to_pandas().set_index("event_id")
    assert len(stored) == 10 and set(stored["model_version"]) == {"1"}
    assert stored.loc["e00001", "score"] == frame["score"][1]  # the stored row stays
    held = backend.events.quarantine(clf, reason="duplicate_conflict", kind=None, include_resolved=False)
    assert held["event_id"].tolist() == ["e00001", "e00002", "e00005", "e00006"]
    assert held["batch_id"].tolist()[:2] == [decision.batch_id] * 2


def test_an_id_repeated_in_one_batch_keeps_its_first_row(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    frame = event_frame(4, seed=5, prefix="e")
    frame["event_id"] = ["x", "x", "y", "y"]
    frame.loc[1, ["age", "sex", "region", "prediction", "score"]] = frame.loc[0, ["age", "sex", "region",
                                                                                  "prediction", "score"]].values
    frame.loc[3, "score"] = 1.0 - frame.loc[2, "score"]
    frame.loc[3, "prediction"] = "yes" if frame.loc[3, "score"] >= 0.5 else "no"
    found, _ = append(backend, clf, "1", validated(frame, schema))
    assert found.keep.tolist() == [True, False, True, False]
    assert found.conflict.tolist() == [False, False, False, True] and found.duplicates == 1
    stored = backend.events.read(clf).to_pandas().set_index("event_id")
    assert stored.loc["y", "score"] == frame.loc[2, "score"]


def test_a_failed_decision_writes_nothing_and_leaves_the_ids_free(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    table = validated(event_frame(20, seed=6, prefix="e", labels=True), schema)
    with pytest.raises(RuntimeError, match="gave up"):
        append(backend, clf, "1", table, fail=True)
    assert backend.events.read(clf).num_rows == 0 and backend.events.batches(clf).empty
    assert backend.events.ingested_through(clf) is None
    found, _ = append(backend, clf, "1", table)
    assert found.keep.all() and backend.events.read(clf).num_rows == 20


def test_every_append_moves_ingested_through_strictly_forward(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    events, profiles = backend.events, backend.profiles
    assert events.ingested_through(clf) is None
    assert profiles.high_water(clf, False) == (None, None)
    seen: list[dt.datetime] = []
    label_marks: list[dt.datetime] = []
    for i in range(6):  # back to back: faster than a clock tick on some machines
        append(backend, clf, "1", validated(event_frame(2, seed=i, prefix=f"e{i}-"), schema))
        seen.append(events.ingested_through(clf))
        assert profiles.high_water(clf, False) == (seen[-1], None)
        append_labels(backend, clf, validated_labels(label_frame([f"e{i}-00000"], ["yes"], [T0]), schema))
        events_mark, labels_mark = profiles.high_water(clf, True)
        assert events_mark == seen[-1]
        label_marks.append(labels_mark)
    assert all(a < b for a, b in zip(seen, seen[1:], strict=False))
    assert all(a < b for a, b in zip(label_marks, label_marks[1:], strict=False))
    assert all(e < lab for e, lab in zip(seen, label_marks, strict=True))  # one clock for events and labels
    found, _ = append(backend, clf, "1", validated(event_frame(2, seed=0, prefix="e0-"), schema))
    assert found.duplicates == 2 and events.ingested_through(clf) == seen[-1]  # nothing stored, nothing moves
    committed = events.batches(clf)["committed_at"]
    assert committed.is_monotonic_increasing and committed.is_unique


# =============================================================================================================
# EventStore: reading
# =============================================================================================================


def test_read_returns_a_version_oldest_first_with_its_columns(world: World) -> None:
    oracle = world.events
    for version in ("1", "2"):
        table = world.backend.events.read(world.clf, version=version)
        assert_rows(table, oracle[oracle["model_version"] == version])
        assert set(table.column_names) == set(CONTENT)
    assert_rows(world.backend.events.read(world.clf), oracle)
    unordered = world.backend.events.read(world.clf, order=False)
    assert sorted(ids(unordered)) == sorted(oracle["event_id"])


def _bounds(oracle: pd.DataFrame) -> list[tuple[Any, Any]]:
    times = sorted(oracle["timestamp"].unique())
    tied = oracle["timestamp"].value_counts()
    tie = tied[tied > 1].index.sort_values()
    start, end = pd.Timestamp(tie[0]).to_pydatetime(), pd.Timestamp(tie[-1]).to_pydatetime()
    return [(start, end), (start, None), (None, end), (pd.Timestamp(times[0]).to_pydatetime(), None),
            (T0 + DAY, T0 + 2 * DAY), (T0 + 5 * DAY, None), (start, start)]


def test_read_a_time_range_includes_its_start_and_excludes_its_end(world: World) -> None:
    oracle = world.events[world.events["model_version"] == "1"]
    for start, end in _bounds(oracle):
        keep = pd.Series(True, index=oracle.index)
        if start is not None:
            keep &= oracle["timestamp"] >= start
        if end is not None:
            keep &= oracle["timestamp"] < end
        table = world.backend.events.read(world.clf, version="1", start=start, end=end)
        assert_rows(table, oracle[keep])
    # the bounds are tied timestamps: events exactly at the start come, events exactly at the end do not
    start, end = _bounds(oracle)[0]
    got = world.backend.events.read(world.clf, version="1", start=start, end=end).column("timestamp").to_pylist()
    assert got[0] == start and got[-1] < end and (oracle["timestamp"] == end).sum() > 1


#: (expression, the same as a mapping or None, the pandas oracle); missing values never match a comparison,
#: and ``not`` of unknown stays unknown (SQL's three-valued logic).
SEGMENTS = [
    ("sex == 'F'", {"sex": "F"}, lambda f: f["sex"] == "F"),
    ("age >= 40 and age < 60", {"age": {"ge": 40, "lt": 60}}, lambda f: (f["age"] >= 40) & (f["age"] < 60)),
    ("sex in ('F', 'X') and region is null", {"sex": ["F", "X"], "region": None},
     lambda f: f["sex"].isin(["F", "X"]) & f["region"].isna()),
    ("age between 30 and 50.5", {"age": {"between": [30, 50.5]}}, lambda f: f["age"].between(30, 50.5)),
    ("sex not in ('M')", {"sex": {"not_in": ["M"]}}, lambda f: f["sex"].notna() & (f["sex"] != "M")),
    ("region is not null and score > 0.5", {"region": {"is_null": False}, "score": {"gt": 0.5}},
     lambda f: f["region"].notna() & (f["score"] > 0.5)),
    ("region == 'Zürich'", {"region": "Zürich"}, lambda f: f["region"] == "Zürich"),
    ("prediction != 'yes'", {"prediction": {"ne": "yes"}}, lambda f: f["prediction"] != "yes"),
    ("age < 30 or sex = 'M'", None, lambda f: (f["age"] < 30) | (f["sex"] == "M")),
    ("not (age >= 50)", None, lambda f: f["age"] < 50),
    ("not (sex = 'F' or region = 'north')", None,
     lambda f: f["sex"].notna() & (f["sex"] != "F") & f["region"].notna() & (f["region"] != "north")),
]


@pytest.mark.parametrize("expression, mapping, oracle", SEGMENTS, ids=[s[0] for s in SEGMENTS])
def test_read_a_segment_returns_exactly_the_rows_pandas_selects(world: World, expression: str, mapping: Any,
                                                                oracle: Any) -> None:
    frame = world.events
    want = frame[oracle(frame).fillna(False).astype(bool)]
    assert 0 < len(want) < len(frame)  # the segment selects something, and not everything
    segments = [Segment.parse(expression).check(SEGMENT_KINDS)]
    if mapping is not None:
        segments.append(Segment.from_dict(mapping).check(SEGMENT_KINDS))
        assert segments[0] == segments[1] and segments[0].canonical == segments[1].canonical
    for segment in segments:
        assert_rows(world.backend.events.read(world.clf, segment=segment), want)


def test_read_combines_version_time_and_segment(world: World) -> None:
    frame = world.events
    start, end = T0 + dt.timedelta(hours=10), T0 + dt.timedelta(days=2, hours=3)
    segment = Segment.parse("sex in ('F', 'M') and age > 25").check(SEGMENT_KINDS)
    keep = ((frame["model_version"] == "1") & (frame["timestamp"] >= start) & (frame["timestamp"] < end)
            & frame["sex"].isin(["F", "M"]) & (frame["age"] > 25))
    table = world.backend.events.read(world.clf, version="1", start=start, end=end, segment=segment)
    assert_rows(table, frame[keep])
    assert 10 < keep.sum() < 200
    everything = world.backend.events.read(world.clf, segment=Segment.all())
    assert everything.num_rows == len(frame)


def test_read_with_the_target_joins_labels_and_their_time(world: World) -> None:
    frame = world.events
    with_labels = CONTENT + [TARGET, "label_time"]
    table = world.backend.events.read(world.clf, target=TARGET)
    assert set(table.column_names) == set(with_labels)
    assert_rows(table, frame, with_labels)
    labelled = world.backend.events.read(world.clf, target=TARGET, labelled_only=True)
    assert_rows(labelled, frame[frame[TARGET].notna()], with_labels)
    assert 50 < labelled.num_rows < len(frame)
    assert TARGET not in world.backend.events.read(world.clf).column_names


@pytest.mark.parametrize("expression, oracle", [
    ("label == 'yes'", lambda f: f[TARGET] == "yes"),
    ("label is null", lambda f: f[TARGET].isna()),
    ("label != 'yes' and sex == 'F'", lambda f: (f[TARGET] == "no") & (f["sex"] == "F")),
])
def test_a_segment_on_the_target_reads_the_joined_labels(world: World, expression: str, oracle: Any) -> None:
    frame = world.events
    want = frame[oracle(frame).fillna(False).astype(bool)]
    assert len(want)
    table = world.backend.events.read(world.clf, target=TARGET, segment=Segment.parse(expression).check(
        SEGMENT_KINDS))
    assert_rows(table, want, CONTENT + [TARGET, "label_time"])


def test_read_in_pages_with_limit_and_offset(world: World) -> None:
    events = world.backend.events
    whole = ids(events.read(world.clf, version="1", target=TARGET))
    pages = [ids(events.read(world.clf, version="1", target=TARGET, limit=37, offset=k)) for k in
             range(0, len(whole), 37)]
    assert [len(p) for p in pages[:-1]] == [37] * (len(pages) - 1) and 0 < len(pages[-1]) <= 37
    assert sum(pages, []) == whole
    assert ids(events.read(world.clf, version="1", offset=len(whole) - 3)) == whole[-3:]
    assert events.read(world.clf, version="1", offset=len(whole)).num_rows == 0
    assert events.read(world.clf, version="1", limit=0).num_rows == 0
    labelled = ids(events.read(world.clf, target=TARGET, labelled_only=True))
    assert ids(events.read(world.clf, target=TARGET, labelled_only=True, limit=5, offset=10)) == labelled[10:15]


def test_read_only_the_columns_asked_for(world: World) -> None:
    events = world.backend.events
    assert set(events.read(world.clf, columns=["age"]).column_names) == {"event_id", "timestamp", "age"}
    assert set(events.read(world.clf, columns=["score", "region"], target=TARGET).column_names) == {
        "event_id", "timestamp", "score", "region", TARGET, "label_time"}
    table = events.read(world.clf, columns=["sex"], version="2")
    assert_rows(table, world.events[world.events["model_version"] == "2"], ["event_id", "timestamp", "sex"])


def test_a_sample_is_stable_nested_and_of_the_share_asked(world: World) -> None:
    events = world.backend.events
    n = len(world.events)
    everything = set(world.events["event_id"])
    half = ids(events.read(world.clf, sample_rate=0.5))
    assert half == ids(events.read(world.clf, sample_rate=0.5))  # the same events every time
    assert abs(len(half) - n / 2) <= 4 * math.sqrt(n / 4)  # a binomial share, within four standard deviations
    fifth = set(ids(events.read(world.clf, sample_rate=0.2)))
    assert fifth < set(half) < everything  # a smaller share is part of a larger one
    assert set(ids(events.read(world.clf, sample_rate=1.0))) == everything
    assert events.read(world.clf, sample_rate=0.0).num_rows == 0
    in_version = set(ids(events.read(world.clf, version="1", sample_rate=0.5)))
    assert in_version == set(half) & set(world.events.loc[world.events["model_version"] == "1", "event_id"])


def test_rows_by_id_and_the_versions_that_predicted_them(world: World) -> None:
    events = world.backend.events
    rows = events.rows_by_id(world.clf, ["b00007", "a00011", "missing"])
    assert sorted(ids(rows)) == ["a00011", "b00007"]
    assert set(rows.column_names) == set(CONTENT)
    want = world.events.set_index("event_id").loc[["a00011", "b00007"]].reset_index()
    got = rows.to_pandas().set_index("event_id").loc[["a00011", "b00007"]].reset_index()
    assert got["score"].tolist() == want["score"].tolist() and got["model_version"].tolist() == ["1", "2"]
    assert events.rows_by_id(world.clf, []).num_rows == 0
    assert events.event_versions(world.clf, ["b00001", "a00002", "a00003"]) == ["1", "2"]
    assert events.event_versions(world.clf, ["a00002"]) == ["1"]
    assert events.event_versions(world.clf, ["missing"]) == [] and events.event_versions(world.clf, []) == []


def test_has_labels_tells_models_with_labels_from_models_without_a_target(world: World) -> None:
    assert world.backend.events.has_labels(world.clf) is True
    assert world.backend.events.has_labels(world.bare) is False
    # reading a model without labels with no target works the same
    assert ids(world.backend.events.read(world.bare)) == ["z1"]


# =============================================================================================================
# EventStore: labels
# =============================================================================================================


def test_labels_join_stored_events_and_decide_sees_what_is_stored(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    frame = event_frame(5, seed=7, prefix="e")
    append(backend, clf, "1", validated(frame, schema))
    first_time = T0 + dt.timedelta(days=1, minutes=7)
    keep, _ = append_labels(backend, clf, validated_labels(label_frame(["e00001", "e00002"], ["yes", "no"],
                                                                       [first_time] * 2), schema))
    assert keep.tolist() == [True, True]
    batch = label_frame(["e00000", "e00001", "e00002", "ghost"], ["no", "yes", "yes", "yes"], [T0 + 3 * DAY] * 4)
    keep, decision = append_labels(backend, clf, validated_labels(batch, schema))
    known, labelled, same = decision.seen[0]
    assert known.tolist() == [True, True, True, False]
    assert labelled.tolist() == [False, True, True, False]
    assert same[labelled].tolist() == [True, False]
    assert keep.tolist() == [True, False, False, False]
    stored = backend.events.read(clf, target=TARGET).to_pandas().set_index("event_id")
    assert stored.loc[["e00000", "e00001", "e00002"], TARGET].tolist() == ["no", "yes", "no"]  # the first label stays
    assert stored.loc["e00002", "label_time"] == first_time and stored.loc["e00000", "label_time"] == T0 + 3 * DAY
    assert pd.isna(stored.loc["e00003", TARGET])
    held = backend.events.quarantine(clf, reason=None, kind="labels", include_resolved=False)
    assert held[["event_id", "reason"]].values.tolist() == [["e00002", "label_conflict"], ["ghost", "unknown_event"]]
    assert backend.events.batches(clf)["kind"].tolist() == ["predictions", "labels", "labels"]


def test_labels_inside_a_prediction_batch_are_stored_with_the_event_time(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    frame = event_frame(30, seed=8, prefix="e", labels=True)
    found, _ = append(backend, clf, "1", validated(frame, schema))
    assert found.labels == frame[TARGET].notna().sum() > 0
    stored = backend.events.read(clf, target=TARGET).to_pandas().set_index("event_id").loc[frame["event_id"]]
    assert stored[TARGET].fillna("-").tolist() == frame[TARGET].fillna("-").tolist()
    labelled = frame[TARGET].notna().to_numpy()
    assert (stored["label_time"].to_numpy()[labelled] == stored["timestamp"].to_numpy()[labelled]).all()
    assert stored["label_time"][~labelled].isna().all()
    again, _ = append(backend, clf, "1", validated(frame, schema))  # a duplicate brings no label again
    assert again.labels == 0


def test_labels_that_come_before_their_events_wait_and_join_later(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    events = backend.events
    assert events.labels_waiting(clf) is False
    early = validated_labels(label_frame(["late-1", "late-2"], ["yes", "no"], [T0 + DAY] * 2), schema)
    keep, _ = append_labels(backend, clf, early)
    assert not keep.any() and events.labels_waiting(clf) is True
    assert events.waiting_labels(clf, None) == []  # their events have not come
    frame = event_frame(3, seed=9, prefix="x")
    frame["event_id"] = ["late-1", "other", "late-3"]
    append(backend, clf, "1", validated(frame, schema))
    arrived = pa.array(["late-1", "other", "late-3"])
    waiting = events.waiting_labels(clf, arrived)
    assert [json.loads(raw)["event_id"] for _, raw in waiting] == ["late-1"]
    assert events.waiting_labels(clf, None) == waiting
    assert events.waiting_labels(clf, pa.chunked_array([pa.array(["other"])])) == []
    rows = pa.Table.from_pylist([json.loads(raw) for _, raw in waiting])
    batch = new_batch_id()
    keep, _ = append_labels(backend, clf, validated_labels(rows.to_pandas(), schema), batch_id=batch)
    assert keep.tolist() == [True]
    events.resolve_quarantine([entry for entry, _ in waiting], batch, T0 + 2 * DAY)
    assert events.waiting_labels(clf, None) == [] and events.labels_waiting(clf) is True  # late-2 still waits
    stored = events.read(clf, target=TARGET).to_pandas().set_index("event_id")
    assert stored.loc["late-1", TARGET] == "yes" and stored.loc["late-1", "label_time"] == T0 + DAY
    open_rows = events.quarantine(clf, reason="unknown_event", kind="labels", include_resolved=False)
    assert open_rows["event_id"].tolist() == ["late-2"]
    every = events.quarantine(clf, reason="unknown_event", kind="labels", include_resolved=True)
    assert every["event_id"].tolist() == ["late-1", "late-2"]
    assert every["resolved_at"].tolist()[0] == T0 + 2 * DAY and pd.isna(every["resolved_at"].tolist()[1])


# =============================================================================================================
# EventStore: quarantine
# =============================================================================================================


def _held(reason: str, raw: dict[str, Any], *, column: str | None = "age", version: str = "1") -> dict[str, Any]:
    return quarantine_record(kind="predictions", version=version, batch_id="", reason=reason, column=column,
                             raw_json=json.dumps(raw, sort_keys=True), value="inf")


def test_a_row_resent_for_the_same_reason_is_held_once(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    table = validated(event_frame(2, seed=10, prefix="e"), schema)
    bad = {"event_id": "bad-1", "age": "inf", "timestamp": "2025-03-03 05:00:00"}
    other = {"event_id": "bad-2", "age": "inf"}
    append(backend, clf, "1", table, extra=[_held("not_finite", bad), _held("not_finite", other),
                                            _held("not_finite", other)])  # twice in one batch: held twice
    append(backend, clf, "1", table, extra=[_held("not_finite", bad), _held("not_finite", other)])
    append(backend, clf, "1", table, extra=[_held("type_mismatch", bad)])  # another reason is held again
    other_events = validated(event_frame(2, seed=11, prefix="v2-"), schema)
    append(backend, clf, "2", other_events, extra=[_held("not_finite", bad, version="2")])  # and another version
    held = backend.events.quarantine(clf, reason=None, kind=None, include_resolved=False)
    assert Counter(zip(held["reason"], held["raw"].map(lambda r: json.loads(r)["event_id"]), held["version"],
                       strict=True)) == Counter({("not_finite", "bad-1", "1"): 1, ("not_finite", "bad-2", "1"): 2,
                                                 ("type_mismatch", "bad-1", "1"): 1, ("not_finite", "bad-1", "2"): 1})
    assert list(held.columns) == ["batch_id", "kind", "version", "row_number", "event_id", "reason", "column",
                                  "value", "message", "raw", "quarantined_at", "resolved_at"]
    assert held["column"].tolist()[0] == "age" and held["value"].tolist()[0] == "inf"
    only = backend.events.quarantine(clf, reason="type_mismatch", kind="predictions", include_resolved=False)
    assert len(only) == 1 and backend.events.quarantine(clf, reason=None, kind="labels",
                                                        include_resolved=True).empty


def test_a_resolved_row_sent_again_is_held_again(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    ghost = validated_labels(label_frame(["ghost"], ["yes"], [T0]), schema)
    append_labels(backend, clf, ghost)
    frame = event_frame(1, seed=11, prefix="g")
    frame["event_id"] = ["ghost"]
    append(backend, clf, "1", validated(frame, schema))
    (entry, _), = backend.events.waiting_labels(clf, pa.array(["ghost"]))
    backend.events.resolve_quarantine([entry], "fixed", T0 + DAY)
    backend.events.delete(clf, version=None, event_ids=["ghost"], start=None, end=None)
    for _ in range(2):
        keep, _ = append_labels(backend, clf, ghost)
        assert not keep.any()
    every = backend.events.quarantine(clf, reason="unknown_event", kind=None, include_resolved=True)
    assert every["resolved_at"].notna().tolist() == [True, False]
    assert backend.events.labels_waiting(clf) is True


def test_quarantine_counts_place_rows_at_their_own_time_when_it_parses(backend: Backend) -> None:
    schema = classifier_schema(timestamp="ts")
    _, model_id = register(backend, "clf", "1", schema)
    refused_at = T0 + 10 * DAY
    records = [
        quarantine_record(kind="predictions", version="1", batch_id="", reason="not_finite", column="age",
                          raw_json=json.dumps({"ts": "2025-03-03 05:10:00", "age": "inf", "n": i}), at=refused_at)
        for i in range(3)
    ] + [
        quarantine_record(kind="predictions", version="1", batch_id="", reason="not_finite", column="age",
                          raw_json=json.dumps({"ts": "2025-03-04T03:00:00+02:00", "age": "inf"}), at=refused_at),
        quarantine_record(kind="predictions", version="1", batch_id="", reason="implausible_timestamp",
                          column="ts", raw_json=json.dumps({"ts": "soon", "age": 3}), at=refused_at),
        quarantine_record(kind="predictions", version="2", batch_id="", reason="not_finite", column="age",
                          raw_json=json.dumps({"ts": "2025-03-03 05:10:00"}), at=refused_at),
    ]
    frame = event_frame(1, seed=12, prefix="e").rename(columns={"timestamp": "ts"})
    append(backend, model_id, "1", validated(frame, schema), extra=records)
    counts = sorted(backend.events.quarantine_counts(model_id, "1"), key=lambda r: (r[0], r[2]))
    assert counts == [
        (dt.datetime(2025, 3, 3, 5, 10), "age", "not_finite", 3, True),
        (dt.datetime(2025, 3, 4, 1, 0), "age", "not_finite", 1, True),  # an offset is a time in UTC
        (refused_at, "ts", "implausible_timestamp", 1, False),  # its own time is what was wrong
    ]
    assert backend.events.quarantine_counts(model_id, "3") == []


# =============================================================================================================
# EventStore: deleting
# =============================================================================================================


def test_deleting_by_id_removes_events_labels_and_explanations(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    frame = event_frame(20, seed=13, prefix="e", labels=True)
    append(backend, clf, "1", validated(frame, schema))
    labelled = frame.loc[frame[TARGET].notna(), "event_id"].tolist()
    doomed = [labelled[0], labelled[1], labelled[5], "not-stored"]
    kept = labelled[2]
    backend.explanations.save(explanation_table(clf, "1", "tree", doomed[:3] + [kept],
                                                frame.set_index("event_id").loc[doomed[:3] + [kept],
                                                                                "timestamp"].tolist()))
    deleted, touched = backend.events.delete(clf, version=None, event_ids=doomed, start=None, end=None)
    assert deleted == 3
    hours = {("1", t.replace(minute=0, second=0)) for t in frame.set_index("event_id").loc[doomed[:3], "timestamp"]}
    assert sorted(touched) == sorted(hours)
    left = backend.events.read(clf, target=TARGET)
    assert sorted(ids(left)) == sorted(set(frame["event_id"]) - set(doomed))
    assert [r["event_id"] for r in backend.explanations.stored(clf, "1", "tree", doomed + [kept])] == [kept]
    # an id deleted is free again: sent again it is stored, with no label left behind
    again, _ = append(backend, clf, "1", validated(frame[frame["event_id"] == doomed[0]].drop(columns=TARGET), schema))
    assert again.keep.tolist() == [True] and again.duplicates == 0
    joined = backend.events.read(clf, target=TARGET).to_pandas().set_index("event_id")
    assert pd.isna(joined.loc[doomed[0], TARGET]) and joined.loc[kept, TARGET] == frame.set_index("event_id").loc[
        kept, TARGET]
    assert backend.events.delete(clf, version=None, event_ids=[], start=None, end=None) == (0, [])


def test_deleting_a_time_range_of_a_version(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    one = event_frame(80, seed=14, prefix="a")
    two = event_frame(40, seed=15, prefix="b")
    append(backend, clf, "1", validated(one, schema))
    append(backend, clf, "2", validated(two, schema))
    start, end = T0 + dt.timedelta(hours=6), T0 + dt.timedelta(days=1, hours=6)
    deleted, touched = backend.events.delete(clf, version="1", event_ids=None, start=start, end=end)
    gone = one[(one["timestamp"] >= start) & (one["timestamp"] < end)]
    assert deleted == len(gone) > 0
    assert sorted(touched) == sorted({("1", t.replace(minute=0, second=0)) for t in gone["timestamp"]})
    assert sorted(ids(backend.events.read(clf))) == sorted(set(one["event_id"]) - set(gone["event_id"])
                                                            | set(two["event_id"]))
    deleted, touched = backend.events.delete(clf, version="2", event_ids=None, start=None, end=None)
    assert deleted == 40 and {v for v, _ in touched} == {"2"}
    assert backend.events.read(clf, version="2").num_rows == 0
    assert backend.events.read(clf, version="1").num_rows == 80 - len(gone)


# =============================================================================================================
# ProfileStore
# =============================================================================================================


def _payload(text: str) -> bytes:
    return json.dumps({"text": text}, ensure_ascii=False).encode()


def test_profiles_are_stored_replaced_and_read_by_segment_and_grain(backend: Backend, clf: int) -> None:
    profiles = backend.profiles
    seg = Segment.parse("sex == 'F' and age >= 40").check(SEGMENT_KINDS).canonical
    days = [T0 + i * DAY for i in range(4)]
    assert profiles.mark(clf, "1", "", "1d") is None and profiles.tracked(clf, "1") == []
    assert profiles.read(clf, "1", "", "1d", columns=None, start=None, end=None) == []
    marks = (T0 + 9 * DAY, None)
    profiles.replace(clf, "1", "", "1d", {d: {"age": _payload(f"age {i}"), "sex": _payload(f"sex {i} Zürich ✓")}
                                          for i, d in enumerate(days)}, marks)
    profiles.replace(clf, "1", seg, "1d", {days[0]: {"age": _payload("segment")}}, (T0, T0))
    profiles.replace(clf, "1", "", "1h", {days[0]: {"age": _payload("hourly")}}, (T0, None))
    profiles.replace(clf, "2", "", "1d", {days[0]: {"age": _payload("version 2")}}, (T0, None))
    rows = profiles.read(clf, "1", "", "1d", columns=None, start=None, end=None)
    assert sorted((at, name) for at, name, _ in rows) == [(d, c) for d in days for c in ("age", "sex")]
    assert [at for at, _, _ in rows] == sorted(at for at, _, _ in rows)  # oldest first
    assert dict(((at, name), p) for at, name, p in rows)[(days[1], "sex")] == _payload("sex 1 Zürich ✓")
    assert all(isinstance(p, bytes) for _, _, p in rows)
    assert profiles.mark(clf, "1", "", "1d") == marks and profiles.mark(clf, "1", seg, "1d") == (T0, T0)
    assert [p for _, _, p in profiles.read(clf, "1", seg, "1d", columns=None, start=None, end=None)] == [
        _payload("segment")]
    assert [p for _, _, p in profiles.read(clf, "1", "", "1h", columns=None, start=None, end=None)] == [
        _payload("hourly")]
    assert profiles.tracked(clf, "1") == [("1d", ""), ("1d", seg), ("1h", "")]
    assert profiles.tracked(clf, "2") == [("1d", "")]
    some = profiles.read(clf, "1", "", "1d", columns=["sex"], start=days[1], end=days[3])
    assert [(at, name) for at, name, _ in some] == [(days[1], "sex"), (days[2], "sex")]
    assert profiles.read(clf, "1", "", "1d", columns=[], start=None, end=None) == []
    # replacing a window replaces all it held; stale windows are emptied; the others stay
    new_marks = (T0 + 10 * DAY, None)
    profiles.replace(clf, "1", "", "1d", {days[1]: {"age": _payload("age 1 again")}}, new_marks, stale=[days[2]])
    rows = profiles.read(clf, "1", "", "1d", columns=None, start=None, end=None)
    assert sorted((at, name, p) for at, name, p in rows) == sorted(
        [(days[0], "age", _payload("age 0")), (days[0], "sex", _payload("sex 0 Zürich ✓")),
         (days[1], "age", _payload("age 1 again")),
         (days[3], "age", _payload("age 3")), (days[3], "sex", _payload("sex 3 Zürich ✓"))])
    assert profiles.mark(clf, "1", "", "1d") == new_marks
    assert [p for _, _, p in profiles.read(clf, "1", seg, "1d", columns=None, start=None, end=None)] == [
        _payload("segment")]


def test_stamped_reads_leave_out_the_payloads_the_caller_holds(backend: Backend, clf: int) -> None:
    profiles = backend.profiles
    days = [T0 + i * DAY for i in range(3)]
    profiles.replace(clf, "1", "", "1d", {d: {"age": _payload(f"age {i}")} for i, d in enumerate(days)}, (T0, None))
    first = profiles.read_stamped(clf, "1", "", "1d", columns=None, start=None, end=None)
    assert [(at, name, p) for at, name, _, p in first] == profiles.read(clf, "1", "", "1d", columns=None,
                                                                         start=None, end=None)
    held = {(at, name, stamp) for at, name, stamp, _ in first}
    again = profiles.read_stamped(clf, "1", "", "1d", columns=None, start=None, end=None, have=held)
    assert [(at, p) for at, _, _, p in again] == [(d, None) for d in days]  # all held: no payload read
    time.sleep(0.002)  # a later computation gets a later stamp
    profiles.replace(clf, "1", "", "1d", {days[1]: {"age": _payload("age 1 again")}}, (T0 + DAY, None))
    changed = profiles.read_stamped(clf, "1", "", "1d", columns=None, start=None, end=None, have=held)
    assert [(at, p) for at, _, _, p in changed] == [(days[0], None), (days[1], _payload("age 1 again")),
                                                    (days[2], None)]
    assert changed[1][2] != first[1][2]


def test_forgetting_windows_drops_them_and_every_mark_of_the_version(backend: Backend, clf: int) -> None:
    profiles = backend.profiles
    days = [T0 + i * DAY for i in range(3)]
    for segment in ("", "sex == 'F'"):
        profiles.replace(clf, "1", segment, "1d", {d: {"age": _payload(f"{segment}{d}")} for d in days}, (T0, None))
    profiles.replace(clf, "1", "", "1h", {days[1]: {"age": _payload("h")}, days[2]: {"age": _payload("h2")}},
                     (T0, None))
    profiles.replace(clf, "2", "", "1d", {days[1]: {"age": _payload("v2")}}, (T0, None))
    profiles.forget(clf, "1", [("1d", days[1]), ("1h", days[1])])
    for segment in ("", "sex == 'F'"):
        left = profiles.read(clf, "1", segment, "1d", columns=None, start=None, end=None)
        assert [at for at, _, _ in left] == [days[0], days[2]]
        assert profiles.mark(clf, "1", segment, "1d") is None
    assert [at for at, _, _ in profiles.read(clf, "1", "", "1h", columns=None, start=None, end=None)] == [days[2]]
    assert profiles.mark(clf, "2", "", "1d") == (T0, None)  # another version keeps its profiles and marks
    assert len(profiles.read(clf, "2", "", "1d", columns=None, start=None, end=None)) == 1


def test_baselines_are_kept_once(backend: Backend, clf: int) -> None:
    profiles = backend.profiles
    assert profiles.baseline(clf, "1") is None
    profiles.save_baseline(clf, "1", '{"source": "training", "city": "Zürich"}')
    profiles.save_baseline(clf, "1", '{"source": "later"}')
    profiles.save_baseline(clf, "2", '{"source": "v2"}')
    assert profiles.baseline(clf, "1") == '{"source": "training", "city": "Zürich"}'
    assert profiles.baseline(clf, "2") == '{"source": "v2"}'


def _day(t: Any) -> dt.datetime:
    return pd.Timestamp(t).floor("D").to_pydatetime()


def test_dirty_windows_are_those_with_events_or_labels_after_the_marks(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    profiles = backend.profiles
    everything = Segment.all()
    women = Segment.parse("sex == 'F'").check(SEGMENT_KINDS)
    assert profiles.dirty_windows(clf, "1", everything, "1d", None, TARGET) == []
    frame = event_frame(60, seed=16, prefix="e")
    append(backend, clf, "1", validated(frame, schema))
    append(backend, clf, "2", validated(event_frame(5, seed=17, prefix="v2-", start=T0 + 20 * DAY, days=1), schema))
    assert profiles.dirty_windows(clf, "1", everything, "1d", None, TARGET) == sorted(
        {_day(t) for t in frame["timestamp"]})
    hours = sorted({pd.Timestamp(t).floor("h").to_pydatetime() for t in frame["timestamp"]})
    assert profiles.dirty_windows(clf, "1", everything, "1h", None, None) == hours
    assert profiles.dirty_windows(clf, "1", women, "1d", None, TARGET) == sorted(
        {_day(t) for t in frame.loc[frame["sex"] == "F", "timestamp"]})
    marks = profiles.high_water(clf, True)
    assert profiles.dirty_windows(clf, "1", everything, "1d", marks, TARGET) == []
    later = event_frame(4, seed=18, prefix="late-", start=T0 + 6 * DAY, days=1)
    later["sex"] = ["M", "M", "X", "M"]
    append(backend, clf, "1", validated(later, schema))
    assert profiles.dirty_windows(clf, "1", everything, "1d", marks, TARGET) == [T0 + 6 * DAY]
    assert profiles.dirty_windows(clf, "1", women, "1d", marks, TARGET) == []  # nothing new in the segment
    marks = profiles.high_water(clf, True)
    labelled = frame.iloc[[0, 1]]
    append_labels(backend, clf, validated_labels(label_frame(labelled["event_id"], ["yes", "no"], [T0 + 9 * DAY] * 2),
                                                 schema))
    assert profiles.dirty_windows(clf, "1", everything, "1d", marks, TARGET) == sorted(
        {_day(t) for t in labelled["timestamp"]})  # the windows of the events, not of the labels' time
    assert profiles.dirty_windows(clf, "1", everything, "1d", marks, None) == []  # without labels, nothing
    on_label = Segment.parse("label == 'yes'").check(SEGMENT_KINDS)
    assert profiles.dirty_windows(clf, "1", on_label, "1d", marks, TARGET) == [_day(labelled["timestamp"].iloc[0])]


def test_window_rows_and_first_day(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    profiles = backend.profiles
    assert profiles.first_day(clf, "1").num_rows == 0
    frame = event_frame(90, seed=19, prefix="e", labels=True, start=T0 + dt.timedelta(hours=7))
    append(backend, clf, "1", validated(frame, schema))
    append(backend, clf, "2", validated(event_frame(5, seed=20, prefix="v2-", start=T0 - 5 * DAY), schema))
    start, end = T0 + DAY, T0 + 2 * DAY
    women = Segment.parse("sex == 'F'").check(SEGMENT_KINDS)
    rows = profiles.window_rows(clf, "1", start, end, women, TARGET).to_pandas()
    keep = (frame["timestamp"] >= start) & (frame["timestamp"] < end) & (frame["sex"] == "F")
    assert sorted(rows["event_id"]) == sorted(frame.loc[keep, "event_id"]) and keep.sum() > 3
    assert {TARGET, "label_time", "timestamp", "age"} <= set(rows.columns)
    by_id = rows.set_index("event_id")[TARGET].fillna("-").to_dict()
    assert by_id == frame[keep].set_index("event_id")[TARGET].fillna("-").to_dict()
    assert set(by_id.values()) == {"no", "yes", "-"}
    bare = profiles.window_rows(clf, "1", start, end, Segment.all(), None)
    assert TARGET not in bare.column_names and bare.num_rows == ((frame["timestamp"] >= start)
                                                                 & (frame["timestamp"] < end)).sum()
    first = profiles.first_day(clf, "1").to_pandas()
    since = frame["timestamp"].min()
    assert sorted(first["event_id"]) == sorted(frame.loc[frame["timestamp"] < since + DAY, "event_id"])
    assert set(first["model_version"]) == {"1"}


def test_event_span_is_the_first_and_last_readable_event_of_a_version(backend: Backend, clf: int) -> None:
    schema = classifier_schema()
    assert backend.events.event_span(clf, "1") == (None, None)
    frame = event_frame(40, seed=23, prefix="e", start=T0 + dt.timedelta(hours=3))
    append(backend, clf, "1", validated(frame, schema))
    older = event_frame(5, seed=24, prefix="v2-", start=T0 - 5 * DAY)
    append(backend, clf, "2", validated(older, schema))
    expected = (frame["timestamp"].min(), frame["timestamp"].max())
    assert tuple(pd.Timestamp(t) for t in backend.events.event_span(clf, "1")) == expected
    assert pd.Timestamp(backend.events.event_span(clf)[0]) == older["timestamp"].min() < expected[0]  # every version


# -- the profile algebra through the store --------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileCase:
    """One profile class: its empty profile, a day of data, how to add data, the union of data, the exact
    fields, and the check against an oracle on the raw data."""

    name: str
    empty: Any
    day: Any
    update: Any
    union: Any
    exact: Any
    check: Any


def assert_fields(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Exact fields equal; float sums and moments equal up to rounding (they are added in another order)."""
    assert got.keys() == want.keys()
    for key in got:
        a, b = got[key], want[key]
        if isinstance(a, float) or (isinstance(a, list) and a and isinstance(a[0], float)):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9), key
        else:
            assert a == b, key


def _numeric_day(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(40 + 5 * seed, 12, 1500 + 400 * seed)
    x[rng.random(x.size) < 0.03] = np.nan
    x[rng.random(x.size) < 0.01] = np.inf
    return np.round(x, 1)


def _assert_ranks(quantiles: Any, rank_error: float, values: np.ndarray) -> None:
    """The rank of each answered quantile is within the sketch's stated normalised rank error of the rank asked."""
    data = np.sort(values)
    n = data.size
    qs = np.linspace(0.01, 0.99, 25)
    for q, v in zip(qs, quantiles(qs), strict=True):
        below, at_or_below = np.searchsorted(data, v, "left") / n, np.searchsorted(data, v, "right") / n
        assert below - rank_error - 1 / n <= q <= at_or_below + rank_error + 1 / n, (q, v, rank_error)


def _numeric_exact(p: NumericProfile) -> dict[str, Any]:
    return {"count": p.count, "missing": p.missing, "nonfinite": p.nonfinite, "min_max": (p.min, p.max),
            "hist": p.hist.tolist(), "sum": p.sum, "mean": p.mean, "m2": p.m2, "hist_sums": p.hist_sums.tolist()}


def _numeric_check(p: NumericProfile, x: np.ndarray) -> None:
    finite = x[np.isfinite(x)]
    assert (p.count, p.missing, p.nonfinite) == (finite.size, np.isnan(x).sum(), np.isinf(x).sum())
    assert (p.min, p.max) == (finite.min(), finite.max())
    assert p.mean == pytest.approx(finite.mean(), rel=1e-12) and p.variance == pytest.approx(finite.var(), rel=1e-9)
    edges, hist = p.histogram()
    assert hist.tolist() == np.bincount(np.searchsorted(edges, finite, side="right"), minlength=edges.size + 1
                                        ).tolist()
    assert 0 < p.rank_error < 0.05
    _assert_ranks(p.quantiles, p.rank_error, finite)


_CITIES = ["Zürich", "東京", "São Paulo", "north", "south", ""] + [f"c{i}" for i in range(40)]


def _categorical_day(seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(_CITIES) + 1) ** 1.2
    values = rng.choice(np.array(_CITIES, dtype=object), 2000 + 300 * seed, p=weights / weights.sum()).tolist()
    return [None if rng.random() < 0.02 else v for v in values]


def _categorical_exact(p: CategoricalProfile) -> dict[str, Any]:
    # a sketch's estimates depend on the order of merges (each within its bounds): only exact profiles
    # compare their frequencies
    return {"count": p.count, "missing": p.missing, "exact": p.is_exact,
            "frequencies": p.frequencies() if p.is_exact else None}


def _categorical_check(p: CategoricalProfile, values: list[Any]) -> None:
    truth = Counter(v for v in values if v is not None)
    assert (p.count, p.missing) == (sum(truth.values()), values.count(None))
    if p.is_exact:
        assert p.frequencies() == dict(truth)
    for value, n in truth.items():
        _, lower, upper = p.frequency_bounds(value)
        assert lower <= n <= upper, (value, n, lower, upper)
    for heavy in _CITIES[:3]:  # the heavy hitters are found
        assert heavy in p.frequencies()
    low, high = p.distinct_bounds(3)
    assert low <= len(truth) <= high


def _classification_day(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 800 + 200 * seed
    score = rng.uniform(0, 1, n)
    y_true = np.where(rng.random(n) < score, "yes", "no").astype(object)
    y_pred = np.where(score >= 0.5, "yes", "no").astype(object)
    y_true[rng.random(n) < 0.02] = "maybe"  # not a class: counted apart
    return y_true, y_pred, score


def _classification_exact(p: ClassificationProfile) -> dict[str, Any]:
    return {"count": p.count, "unknown": p.unknown_label, "scored": p.scored, "confusion": p.confusion.tolist(),
            "score_hist": p.score_hist.tolist(), "log_loss": p.log_loss_sum, "brier": p.brier_sum}


def _classification_check(p: ClassificationProfile, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    y_true, y_pred, score = batch
    known = y_true != "maybe"
    assert p.unknown_label == (~known).sum() and p.count == known.sum() == p.scored
    assert p.confusion.tolist() == confusion_matrix(y_true[known], y_pred[known], labels=["no", "yes"]).tolist()
    truth = (y_true[known] == "yes").astype(int)
    assert p.log_loss == pytest.approx(log_loss(truth, score[known], labels=[0, 1]), rel=1e-9)
    assert p.brier_score == pytest.approx(brier_score_loss(truth, score[known]), rel=1e-9)
    bins = np.minimum((score[known] * p.bins).astype(int), p.bins - 1)
    assert p.score_hist.sum() == known.sum() and (p.score_hist.sum(axis=0) == np.bincount(
        bins, minlength=p.bins)).sum() >= p.bins - 2  # equal-width bins (a score on an edge may fall either side)


def _regression_day(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 1200 + 300 * seed
    y_true = rng.normal(10, 3, n)
    y_true[rng.random(n) < 0.05] = 0.0
    y_pred = y_true + rng.normal(0, 1 + seed, n)
    y_pred[rng.random(n) < 0.02] = np.nan
    return y_true, y_pred


def _regression_exact(p: RegressionProfile) -> dict[str, Any]:
    return {"count": p.count, "missing": p.missing, "zero_true": p.zero_true,
            "abs": p.abs_err_sum, "sq": p.sq_err_sum, "ape": p.ape_sum, "y_mean": p.y_mean, "y_m2": p.y_m2,
            "residual_mean": p.residual_mean, "residual_m2": p.residual_m2}


def _regression_check(p: RegressionProfile, batch: tuple[np.ndarray, np.ndarray]) -> None:
    y_true, y_pred = batch
    ok = np.isfinite(y_true) & np.isfinite(y_pred)
    yt, yp = y_true[ok], y_pred[ok]
    assert (p.count, p.missing, p.zero_true) == (ok.sum(), (~ok).sum(), (yt == 0).sum())
    assert p.mae == pytest.approx(mean_absolute_error(yt, yp), rel=1e-9)
    assert p.mse == pytest.approx(mean_squared_error(yt, yp), rel=1e-9)
    assert p.r2 == pytest.approx(r2_score(yt, yp), rel=1e-9)
    nonzero = yt != 0
    assert p.mape == pytest.approx(np.mean(np.abs(yt - yp)[nonzero] / np.abs(yt[nonzero])), rel=1e-9)
    _assert_ranks(p.residual_quantiles, p.rank_error, yt - yp)


def _concat_tuples(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate(columns) for columns in zip(*parts, strict=True))


EDGES = np.linspace(10, 80, 15)
PROFILE_CASES = [
    ProfileCase("numeric", lambda: NumericProfile(edges=EDGES), _numeric_day, lambda p, x: p.update(x),
                np.concatenate, _numeric_exact, _numeric_check),
    ProfileCase("categorical", lambda: CategoricalProfile(), _categorical_day, lambda p, v: p.update(v),
                lambda parts: sum(parts, []), _categorical_exact, _categorical_check),
    ProfileCase("categorical-sketch", lambda: CategoricalProfile(cap=8, lg_max_k=4), _categorical_day,
                lambda p, v: p.update(v), lambda parts: sum(parts, []), _categorical_exact, _categorical_check),
    ProfileCase("classification", lambda: ClassificationProfile(["no", "yes"], bins=50), _classification_day,
                lambda p, b: p.update(*b), _concat_tuples, _classification_exact, _classification_check),
    ProfileCase("regression", lambda: RegressionProfile(k=64), _regression_day, lambda p, b: p.update(*b),
                _concat_tuples, _regression_exact, _regression_check),
]


def _store_days(backend: Backend, model_id: int, case: ProfileCase) -> tuple[list[Profile], list[Any], Profile]:
    """Profiles of four days (and an empty fifth) stored as daily windows; returns them, the days' data and
    the empty profile."""
    days = [case.day(seed) for seed in range(4)]
    made = [case.update(case.empty(), data) for data in days]
    empty = case.empty()
    windows = {T0 + i * DAY: {case.name: p.to_bytes()} for i, p in enumerate([*made, empty])}
    backend.profiles.replace(model_id, "1", "", "1d", windows, (T0, None))
    return made, days, empty


@pytest.mark.parametrize("case", PROFILE_CASES, ids=lambda c: c.name)
def test_stored_daily_profiles_merge_into_the_profile_of_the_union(backend: Backend, clf: int,
                                                                   case: ProfileCase) -> None:
    made, days, empty = _store_days(backend, clf, case)
    rows = backend.profiles.read(clf, "1", "", "1d", columns=[case.name], start=None, end=None)
    assert [at for at, _, _ in rows] == [T0 + i * DAY for i in range(5)]
    assert [payload for _, _, payload in rows] == [p.to_bytes() for p in [*made, empty]]  # bytes round trip exact
    read = [profile_from_bytes(payload) for _, _, payload in rows]
    assert all(type(r) is type(p) and r == p for r, p in zip(read, [*made, empty], strict=True))
    merged = read[0]
    for p in read[1:]:
        merged = merged.merge(p)
    direct = case.update(case.empty(), case.union(days))
    assert_fields(case.exact(merged), case.exact(direct))
    case.check(merged, case.union(days))
    case.check(direct, case.union(days))
    # a week read by range is the merge of just its days
    middle = backend.profiles.read(clf, "1", "", "1d", columns=None, start=T0 + DAY, end=T0 + 3 * DAY)
    two = profile_from_bytes(middle[0][2]).merge(profile_from_bytes(middle[1][2]))
    assert_fields(case.exact(two), case.exact(case.update(case.empty(), case.union(days[1:3]))))


@pytest.mark.parametrize("case", PROFILE_CASES, ids=lambda c: c.name)
def test_merging_stored_profiles_is_associative_commutative_with_the_empty_identity(
        backend: Backend, clf: int, case: ProfileCase) -> None:
    _store_days(backend, clf, case)
    rows = backend.profiles.read(clf, "1", "", "1d", columns=None, start=None, end=None)
    a, b, c, _, empty = (profile_from_bytes(payload) for _, _, payload in rows)
    assert empty.is_empty and not a.is_empty
    frozen = [p.to_bytes() for p in (a, b, c)]
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    swapped = c.merge(a).merge(b)
    assert_fields(case.exact(left), case.exact(right))
    assert_fields(case.exact(left), case.exact(swapped))
    assert_fields(case.exact(a.merge(b)), case.exact(b.merge(a)))
    union = case.union([case.day(seed) for seed in range(3)])
    for p in (left, right, swapped):
        case.check(p, union)
    assert a.merge(empty) == a and empty.merge(a) == a and empty.merge(empty) == empty
    assert [p.to_bytes() for p in (a, b, c)] == frozen  # merging changes neither input
    # a merged profile stored and read back is the same profile
    backend.profiles.replace(clf, "1", "", "1d", {T0 + 10 * DAY: {"merged": left.to_bytes()}}, (T0, None))
    (_, _, payload), = backend.profiles.read(clf, "1", "", "1d", columns=["merged"], start=None, end=None)
    assert payload == left.to_bytes() and profile_from_bytes(payload) == left


# =============================================================================================================
# ExplanationStore
# =============================================================================================================


@pytest.fixture
def explained(backend: Backend, clf: int) -> pd.DataFrame:
    """Forty events of version 1 (ten explained by "tree", three by "kernel") and five of version 2."""
    schema = classifier_schema()
    frame = event_frame(40, seed=21, prefix="e")
    append(backend, clf, "1", validated(frame, schema))
    append(backend, clf, "2", validated(event_frame(5, seed=22, prefix="v2-"), schema))
    first = ordered(frame)
    tree = first.iloc[:10]
    backend.explanations.save(explanation_table(clf, "1", "tree", tree["event_id"], tree["timestamp"]))
    kernel = first.iloc[5:8]
    backend.explanations.save(explanation_table(clf, "1", "kernel", kernel["event_id"], kernel["timestamp"],
                                                scale=2.0))
    return first


def test_stored_explanations_come_back_as_they_were_saved(backend: Backend, clf: int,
                                                          explained: pd.DataFrame) -> None:
    xs = backend.explanations
    wanted = [explained["event_id"][3], explained["event_id"][6], "never-explained"]
    rows = {r["event_id"]: r for r in xs.stored(clf, "1", "kernel", wanted)}
    assert sorted(rows) == [explained["event_id"][6]]
    row = rows[explained["event_id"][6]]
    assert set(row) >= {"event_id", "output", "baseline", "expected_value", "model_output", "features",
                        "attributions", "errors", "row_json", "extra_json", "explained_at"}
    assert (row["output"], row["baseline"], row["expected_value"], row["model_output"]) == (
        "yes", "training sample", 0.25, 2.25)
    assert list(row["features"]) == ["age", "sex"] and list(row["attributions"]) == [2.0, -2.0]
    assert row["errors"] is None and json.loads(row["row_json"]) == {"age": 31.0, "sex": "F"}
    assert json.loads(row["extra_json"]) == {"samples": 100} and row["explained_at"] == T0 + 30 * DAY
    assert len(xs.stored(clf, "1", "tree", wanted)) == 2
    assert xs.stored(clf, "1", "tree", []) == [] and xs.stored(clf, "2", "tree", wanted) == []


def test_an_explanation_saved_twice_is_kept_as_it_was(backend: Backend, clf: int, explained: pd.DataFrame) -> None:
    xs = backend.explanations
    event, new = explained["event_id"][3], explained["event_id"][20]
    again = explanation_table(clf, "1", "tree", [new, event], explained["timestamp"][[20, 3]], scale=9.0)
    xs.save(again)
    xs.save(again)
    rows = {r["event_id"]: r for r in xs.stored(clf, "1", "tree", [event, new])}
    assert list(rows[event]["attributions"]) == [3.0, -3.0]  # the first one stays
    assert rows[event]["model_output"] == 3.25
    assert list(rows[new]["attributions"]) == [0.0, -0.0] and len(xs.frame(clf, "1", "tree", None, None)) == 11


def test_unexplained_events_are_a_stable_sample_oldest_first(backend: Backend, clf: int,
                                                             explained: pd.DataFrame) -> None:
    xs = backend.explanations
    todo = xs.unexplained(clf, "1", "tree", rate=1.0, start=None, end=None, since=None, limit=None)
    assert todo == explained["event_id"].iloc[10:].tolist()
    assert xs.unexplained(clf, "1", "kernel", rate=1.0, start=None, end=None, since=None, limit=4) == (
        explained["event_id"].iloc[:4].tolist())
    assert xs.unexplained(clf, "1", "tree", rate=0.0, start=None, end=None, since=None, limit=None) == []
    start, end = explained["timestamp"].iloc[15], explained["timestamp"].iloc[30]
    window = explained[(explained["timestamp"] >= start) & (explained["timestamp"] < end)]["event_id"].tolist()
    assert xs.unexplained(clf, "1", "tree", rate=1.0, start=start, end=end, since=None, limit=None) == window
    sampled = xs.unexplained(clf, "1", "tree", rate=0.5, start=None, end=None, since=None, limit=None)
    assert set(sampled) <= set(todo) and sampled == xs.unexplained(clf, "1", "tree", rate=0.5, start=None, end=None,
                                                                  since=None, limit=None)
    # the sample is the event store's: the same events a read of that share returns
    assert set(sampled) == set(ids(backend.events.read(clf, version="1", sample_rate=0.5))) & set(todo)
    mark = backend.events.ingested_through(clf)
    assert xs.unexplained(clf, "1", "tree", rate=1.0, start=None, end=None, since=mark, limit=None) == []
    late = event_frame(3, seed=23, prefix="late-", start=T0 + 9 * DAY, days=1)
    append(backend, clf, "1", validated(late, classifier_schema()))
    assert xs.unexplained(clf, "1", "tree", rate=1.0, start=None, end=None, since=mark, limit=None) == (
        ordered(late)["event_id"].tolist())


def test_explanation_frames_methods_and_baselines(backend: Backend, clf: int, explained: pd.DataFrame) -> None:
    xs = backend.explanations
    frame = xs.frame(clf, "1", "tree", None, None)
    assert list(frame.columns) == ["timestamp", "output", "features", "attributions"] and len(frame) == 10
    assert sorted(pd.to_datetime(frame["timestamp"])) == sorted(explained["timestamp"].iloc[:10])
    start, end = explained["timestamp"].iloc[2], explained["timestamp"].iloc[6]
    some = xs.frame(clf, "1", "tree", start, end)
    assert sorted(pd.to_datetime(some["timestamp"])) == sorted(explained["timestamp"][
        (explained["timestamp"] >= start) & (explained["timestamp"] < end)].iloc[:10])
    assert xs.any(clf, "1") is True and xs.any(clf, "2") is False
    assert xs.methods(clf, "1") == ["tree", "kernel"]  # most used first
    assert xs.methods(clf, "2") == []
    assert xs.baseline(clf, "1", "tree") is None
    xs.save_baseline(clf, "1", "tree", '{"values": [[1.0, -1.0]]}')
    xs.save_baseline(clf, "1", "tree", '{"values": "later"}')
    xs.save_baseline(clf, "2", "linear", '{"values": [[0.5]]}')
    assert xs.baseline(clf, "1", "tree") == '{"values": [[1.0, -1.0]]}'
    assert xs.baseline(clf, "1", "kernel") is None
    assert xs.methods(clf, "2") == ["linear"]  # a method with only a training-sample baseline counts
    assert xs.any(clf, "2") is False


# =============================================================================================================
# BlobStore
# =============================================================================================================


def test_datasets_round_trip_and_are_written_once_per_content(backend: Backend) -> None:
    blobs = backend.blobs
    table = pa.table({"x": pa.array([1.5, None, -0.0], pa.float64()), "n": pa.array([1, 2, None], pa.int64()),
                      "city": ["Zürich", "東京", "x" * 10_000], "flag": [True, None, False],
                      "when": pa.array([T0, None, T0 + DAY], pa.timestamp("us"))})
    path = blobs.write_dataset(table, "c" * 64)
    assert isinstance(path, str)
    back = blobs.read_dataset(path)
    assert back.equals(table) and back.schema == table.schema
    assert blobs.write_dataset(pa.table({"other": [1]}), "c" * 64) == path  # content-addressed: the first stays
    assert blobs.read_dataset(path).equals(table)
    empty = pa.table({"x": pa.array([], pa.float64())})
    assert blobs.read_dataset(blobs.write_dataset(empty, "0" * 64)).equals(empty)


def test_a_missing_dataset_file_is_a_store_error_naming_it(backend: Backend) -> None:
    with pytest.raises(StoreError) as err:
        backend.blobs.read_dataset("datasets/" + "9" * 64 + ".parquet")
    assert code_of(err) == "store_error" and err.value.field == "dataset" and "9" * 64 in str(err.value)


def test_artifacts_are_signed_checked_and_loaded(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = backend.blobs
    model = {"coef": [0.25, -1.5], "name": "modèle"}
    saved = blobs.save_artifact(model)
    assert len(saved.sha256) == 64 and saved.type_name == "builtins.dict"
    assert blobs.save_artifact(model).sha256 == saved.sha256  # named by content
    blobs.check_artifact(saved.sha256)
    assert blobs.load_artifact(saved.sha256) == model
    monkeypatch.setenv(signing.SIGNING_KEY_ENV, KEY_B)  # someone else opens the store
    with pytest.raises(UntrustedArtifactError) as err:
        blobs.check_artifact(saved.sha256)
    assert code_of(err) == "untrusted_artifact" and err.value.details["reason"] == "other_key"
    with pytest.raises(UntrustedArtifactError):
        blobs.load_artifact(saved.sha256)
    assert blobs.load_artifact(saved.sha256, trust=True) == model
    resaved = blobs.save_artifact(model)  # saving it again under this key makes this key its signer
    assert resaved.sha256 == saved.sha256
    blobs.check_artifact(saved.sha256)


def test_a_missing_or_misnamed_artifact_is_refused_by_code(backend: Backend) -> None:
    blobs = backend.blobs
    for call in (blobs.check_artifact, blobs.load_artifact):
        with pytest.raises(ArtifactError) as err:
            call("e" * 64)
        assert code_of(err) == "artifact_error" and not isinstance(err.value, UntrustedArtifactError)
        with pytest.raises(InvalidParameterError) as err:
            call("../../etc/passwd")
        assert code_of(err) == "invalid_parameter"


def test_sexes_and_regions_cover_the_segments() -> None:
    """The data the segment tests rely on has every category it names."""
    frame = event_frame(300, seed=1, prefix="a")
    assert set(frame["sex"].dropna()) == set(SEXES) and set(frame["region"].dropna()) == set(REGIONS)
