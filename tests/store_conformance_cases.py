"""What the store conformance suite runs against: the backend factories, schemas, event batches and the
``decide`` callbacks the services pass to the event store.

Everything here speaks only the protocols of :mod:`vigil.store.protocols` and the core (schemas, validation,
segments, profiles); a new backend joins the suite by adding its :class:`BackendFactory` to
:data:`FACTORIES`.

>>> [f.name for f in FACTORIES]
['duckdb']
>>> frame = event_frame(4, seed=0, prefix="e")
>>> validated(frame, classifier_schema()).num_rows
4
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vigil.core.schema import Schema
from vigil.core.validation import LABEL_TIME, validate_labels, validate_predictions
from vigil.store import open_backend
from vigil.store.protocols import Appended, Backend, Batch

# -- backends -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendFactory:
    """How the suite makes a fresh, empty store and opens it again.

    ``new(folder)`` returns the location of a new store whose private files (if any) live under ``folder``;
    ``open(location, read_only=...)`` opens it. Opening the same location again must see everything a
    closed backend wrote.
    """

    name: str
    new: Callable[[Path], str]
    open: Callable[..., Backend]


def _duckdb_new(folder: Path) -> str:
    return f"duckdb://{(folder / 'home').resolve()}"


def _duckdb_open(location: str, *, read_only: bool = False) -> Backend:
    return open_backend(location, read_only=read_only)


#: Every backend the suite runs against (a new backend adds its factory here).
FACTORIES: list[BackendFactory] = [BackendFactory("duckdb", _duckdb_new, _duckdb_open)]


# -- schemas and events -------------------------------------------------------------------------------------

#: The Monday the suite's events start on (naive UTC, as the store keeps times).
T0 = dt.datetime(2025, 3, 3)
SEXES = ("F", "M", "X")
REGIONS = ("north", "south", "Zürich")
TARGET = "label"
#: The kind of literal each classifier column compares with in a segment.
SEGMENT_KINDS = {"age": "number", "sex": "string", "region": "string", "prediction": "string", "score": "number",
                 TARGET: "string"}


def classifier_schema(timestamp: str = "timestamp") -> Schema:
    """A binary classifier on age and sex, with a region in the metadata and string labels "no"/"yes".

    >>> s = classifier_schema()
    >>> s.task, s.target.name, [c.name for c in s.features]
    ('binary', 'label', ['age', 'sex'])
    """
    train = pd.DataFrame({"age": [18.0, 35.0, 52.0, 80.0], "sex": ["F", "M", "X", "F"],
                          TARGET: ["no", "yes", "no", "yes"]})
    return Schema.infer(train, target=TARGET, metadata={"region": "categorical"}, timestamp=timestamp)


def regressor_schema() -> Schema:
    """A regression model of ``y`` on ``x``.

    >>> regressor_schema().task
    'regression'
    """
    return Schema.infer(pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.5, 1.5, 2.5]}), target="y")


def event_frame(n: int, *, seed: int, prefix: str, start: dt.datetime = T0, days: int = 3,
                labels: bool = False) -> pd.DataFrame:
    """``n`` classifier events over ``days`` days from ``start``; half on whole hours (so times tie), some
    values missing; with ``labels`` a ``label`` column, missing for about a third.

    >>> f = event_frame(3, seed=1, prefix="x")
    >>> f["event_id"].tolist(), f["timestamp"].min() >= T0
    (['x00000', 'x00001', 'x00002'], True)
    """
    rng = np.random.default_rng(seed)
    whole_hours = rng.integers(0, days * 24, n) * 3600
    any_second = rng.integers(0, days * 86400, n)
    seconds = np.where(rng.random(n) < 0.5, whole_hours, any_second)
    age = rng.uniform(18, 80, n).round(1)
    age[rng.random(n) < 0.05] = np.nan
    sex = rng.choice(SEXES, n).astype(object)
    sex[rng.random(n) < 0.05] = None
    region = rng.choice(REGIONS, n).astype(object)
    region[rng.random(n) < 0.2] = None
    score = rng.uniform(0, 1, n).round(3)
    frame = pd.DataFrame({
        "event_id": [f"{prefix}{i:05d}" for i in range(n)],
        "timestamp": [start + dt.timedelta(seconds=int(s)) for s in seconds],
        "age": age, "sex": sex, "region": region,
        "prediction": np.where(score >= 0.5, "yes", "no"), "score": score,
    })
    if labels:
        truth = np.where(rng.random(n) < 0.7, frame["prediction"], np.where(frame["prediction"] == "yes", "no", "yes"))
        frame[TARGET] = pd.Series(truth, dtype=object).where(rng.random(n) >= 0.35, None)
    return frame


def validated(frame: pd.DataFrame, schema: Schema) -> pa.Table:
    """The accepted rows of a prediction batch, as the event store receives them (all must be accepted)."""
    checked = validate_predictions(frame, schema)
    assert checked.rejected.num_rows == 0, checked.rejected.to_pylist()
    return checked.table


def validated_labels(frame: pd.DataFrame, schema: Schema) -> pa.Table:
    """The accepted rows of a label batch (``event_id``, the target, ``label_time``)."""
    checked = validate_labels(frame, schema)
    assert checked.rejected.num_rows == 0, checked.rejected.to_pylist()
    return checked.table


def raw_row(table: pa.Table, position: int) -> str:
    """The JSON a quarantine row keeps of one input row, as the ingest service writes it."""
    return json.dumps(table.slice(position, 1).to_pylist()[0], default=str, sort_keys=True)


def quarantine_record(*, kind: str, version: str | None, batch_id: str, reason: str, raw_json: str,
                      event_id: str | None = None, row_number: int = 0, column: str | None = None,
                      value: str | None = None, at: dt.datetime = T0) -> dict[str, Any]:
    """One quarantine record as a ``decide`` callback returns it."""
    return {"row_number": row_number, "event_id": event_id, "reason": reason, "column_name": column,
            "value": value, "message": f"refused: {reason}", "version": version, "batch_id": batch_id,
            "kind": kind, "raw_json": raw_json, "quarantined_at": at}


# -- the decide callbacks -----------------------------------------------------------------------------------


@dataclass
class PredictionDecision:
    """A ``decide`` for :meth:`EventStore.append_predictions` as the ingest service makes it: conflicting rows are
    quarantined as ``duplicate_conflict``, ``extra`` records are quarantined too, and the batch is recorded.
    ``seen`` keeps every :class:`Appended` it was shown."""

    batch_id: str
    version: str
    table: pa.Table
    extra: Sequence[dict[str, Any]] = ()
    source: str | None = "conformance"
    seen: list[Appended] = field(default_factory=list)
    fail: bool = False

    def __call__(self, found: Appended) -> tuple[list[dict[str, Any]], Batch]:
        self.seen.append(found)
        if self.fail:
            raise RuntimeError("the caller gave up inside the transaction")
        ids = self.table.column("event_id").to_pylist()
        records = [quarantine_record(kind="predictions", version=self.version, batch_id=self.batch_id,
                                     reason="duplicate_conflict", event_id=ids[pos], row_number=pos,
                                     raw_json=raw_row(self.table, pos))
                   for pos in np.flatnonzero(found.conflict).tolist()]
        records += list(self.extra)
        batch = Batch(batch_id=self.batch_id, kind="predictions", version=self.version, source=self.source,
                      received=self.table.num_rows, accepted=int(found.keep.sum()), duplicates=found.duplicates,
                      quarantined=len(records), signals={"missing_value": {"age": 1}})
        return records, batch


@dataclass
class LabelDecision:
    """A ``decide`` for :meth:`EventStore.append_labels`: keep labels of known, unlabelled events; quarantine
    the others (``unknown_event``, ``label_conflict``) with their row; record the batch. ``seen`` keeps the
    ``(known, labelled, same)`` arrays it was shown."""

    batch_id: str
    table: pa.Table
    target: str = TARGET
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def __call__(self, known: np.ndarray, labelled: np.ndarray, same: np.ndarray
                 ) -> tuple[np.ndarray, list[dict[str, Any]], Batch]:
        self.seen.append((known.copy(), labelled.copy(), same.copy()))
        ids = self.table.column("event_id").to_pylist()
        keep = known & ~labelled
        records = []
        for pos in np.flatnonzero(~known | (labelled & ~same)).tolist():
            reason = "unknown_event" if not known[pos] else "label_conflict"
            records.append(quarantine_record(kind="labels", version=None, batch_id=self.batch_id, reason=reason,
                                             event_id=ids[pos], row_number=pos, column="event_id",
                                             raw_json=raw_row(self.table, pos)))
        duplicates = int((known & labelled & same).sum())
        batch = Batch(batch_id=self.batch_id, kind="labels", version=None, source="conformance",
                      received=self.table.num_rows, accepted=int(keep.sum()), duplicates=duplicates,
                      quarantined=len(records), signals={})
        return keep, records, batch


# -- writing through the protocols --------------------------------------------------------------------------

_batch_numbers = iter(range(10**9))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_batch_id() -> str:
    """A fresh batch id."""
    return f"batch-{next(_batch_numbers):06d}"


def register(backend: Backend, model: str, version: str, schema: Schema, *, project: str = "conformance",
             owner: str | None = None, status: str = "draft", artifact: Any = None,
             dataset_id: int | None = None, actor: str = "ada") -> tuple[int, int]:
    """Register a model version through the metadata store; returns ``(project_id, model_id)``."""
    project_id = backend.metadata.ensure_project(project, actor=actor)
    model_id = backend.metadata.add_version(
        project, project_id, name=model, version=version, task=schema.task, owner=owner, description=None,
        status=status, artifact=artifact, schema=schema, dataset_id=dataset_id, actor=actor, training_data=None)
    return project_id, model_id


def stored_columns(table: pa.Table, target: str | None) -> list[str]:
    """The columns of a validated batch the event store keeps besides the event id and time."""
    return [c for c in table.column_names if c not in ("event_id", "timestamp", target)]


def append(backend: Backend, model_id: int, version: str, table: pa.Table, *, target: str | None = TARGET,
           extra: Sequence[dict[str, Any]] = (), batch_id: str | None = None, fail: bool = False
           ) -> tuple[Appended, PredictionDecision]:
    """Append a validated batch of predictions as the ingest service does."""
    batch_id = batch_id or new_batch_id()
    decision = PredictionDecision(batch_id, version, table, extra, fail=fail)
    found = backend.events.append_predictions(model_id, version, table, columns=stored_columns(table, target),
                                              target=target, batch_id=batch_id, now=_utcnow(),
                                              decide=decision)
    return found, decision


def append_labels(backend: Backend, model_id: int, table: pa.Table, *, batch_id: str | None = None
                  ) -> tuple[np.ndarray, LabelDecision]:
    """Append a validated batch of labels as the ingest service does."""
    batch_id = batch_id or new_batch_id()
    decision = LabelDecision(batch_id, table)
    keep = backend.events.append_labels(model_id, table, target=TARGET, batch_id=batch_id,
                                        now=_utcnow(), decide=decision)
    return keep, decision


def label_frame(ids: Sequence[str], values: Sequence[str], times: Sequence[dt.datetime]) -> pd.DataFrame:
    """A batch of labels."""
    return pd.DataFrame({"event_id": list(ids), TARGET: list(values), LABEL_TIME: list(times)})


# -- explanations -------------------------------------------------------------------------------------------


def explanation_table(model_id: int, version: str, method: str, event_ids: Sequence[str],
                      times: Sequence[dt.datetime], *, features: Sequence[str] = ("age", "sex"),
                      scale: float = 1.0) -> pa.Table:
    """Explanations as the explaining service hands them to :meth:`ExplanationStore.save` (one per event,
    attributions ``scale * (i, -i)``)."""
    n = len(event_ids)
    return pa.table({
        "model_id": pa.array([model_id] * n, pa.int32()),
        "version": [version] * n,
        "event_id": list(event_ids),
        "method": [method] * n,
        "event_time": pa.array(list(times), pa.timestamp("us")),
        "explained_at": pa.array([T0 + dt.timedelta(days=30)] * n, pa.timestamp("us")),
        "output": ["yes"] * n,
        "baseline": ["training sample"] * n,
        "expected_value": pa.array([0.25] * n, pa.float64()),
        "model_output": pa.array([0.25 + scale * i for i in range(n)], pa.float64()),
        "features": [list(features)] * n,
        "attributions": pa.array([[scale * i, -scale * i][:len(features)] for i in range(n)],
                                 pa.list_(pa.float64())),
        "errors": pa.array([None] * n, pa.list_(pa.float64())),
        "row_json": [json.dumps({"age": 30.0 + i, "sex": "F"}) for i in range(n)],
        "extra_json": [json.dumps({"samples": 100})] * n,
    })
