"""What a store backend provides, split by concern; services speak only these.

A backend is one object with five parts (:class:`Backend`): ``metadata``
(projects, datasets, models, versions, the audit log), ``events`` (events,
labels, quarantine and ingest batches), ``profiles`` (window profiles and
baselines), ``explanations`` and ``blobs`` (artifacts and dataset files).
The embedded home (:mod:`vigil.store.duckdb`) is one implementation; every
backend passes the same conformance suite (``tests/test_store_conformance.py``).

Rows cross the boundary as Arrow tables or plain Python values; a segment as
a typed :class:`~vigil.core.segments.Segment`, which each backend compiles
with bound parameters. Writes that belong together are one call, and one
transaction: where a decision needs what is stored (de-duplication, label
joins), the backend asks the caller through a ``decide`` callback inside
that transaction, so no other writer slips in between.

>>> from vigil.store.protocols import Backend, EventStore
>>> sorted(m for m in dir(EventStore) if not m.startswith("_"))[:3]
['append_labels', 'append_predictions', 'batches']
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:
    from vigil.core.schema import Schema
    from vigil.core.segments import Segment


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset's row in the registry."""

    dataset_id: int
    name: str
    version: int
    content_hash: str
    n_rows: int
    columns: dict[str, str]
    path: str
    created_at: dt.datetime
    created_by: str | None


@dataclass(frozen=True)
class VersionRecord:
    """A model version's row in the registry, with its model's."""

    model_id: int
    model: str
    task: str
    owner: str | None
    version: str
    status: str
    schema_json: str
    artifact_sha256: str | None
    artifact_type: str | None
    training_dataset_id: int | None
    created_at: dt.datetime
    created_by: str | None


@dataclass(frozen=True)
class Batch:
    """The record of one ingest call."""

    batch_id: str
    kind: str
    version: str | None
    source: str | None
    received: int
    accepted: int
    duplicates: int
    quarantined: int
    signals: dict[str, dict[str, int]]


@dataclass(frozen=True)
class Appended:
    """What the store found while appending predictions: rows kept, rows conflicting, exact duplicates."""

    keep: np.ndarray
    conflict: np.ndarray
    duplicates: int
    labels: int


#: ``decide(appended) -> (quarantine records, batch record)``, called inside the append's transaction.
DecidePredictions = Callable[[Appended], tuple[list[dict[str, Any]], Batch]]
#: ``decide(known, labelled, same) -> (keep, quarantine records, batch record)`` for labels.
DecideLabels = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, list[dict[str, Any]], Batch]]


@runtime_checkable
class MetadataStore(Protocol):
    """Projects, datasets, models and versions, and the audit log."""

    def ensure_project(self, name: str, *, actor: str) -> int: ...
    def project_names(self) -> list[str]: ...
    def audit(self, project: str, action: str, object_type: str, object_id: str, details: dict[str, Any],
              actor: str) -> None: ...
    def audit_log(self, project: str) -> pd.DataFrame: ...
    def find_dataset(self, project_id: int, name: str, content_hash: str) -> DatasetRecord | None: ...
    def add_dataset(self, project: str, project_id: int, *, name: str, content_hash: str, n_rows: int,
                    columns: dict[str, str], path: str, description: str | None, actor: str) -> DatasetRecord: ...
    def dataset(self, project_id: int, name: str, version: int | None) -> DatasetRecord | None: ...
    def dataset_by_id(self, dataset_id: int) -> DatasetRecord: ...
    def dataset_names(self, project_id: int) -> list[str]: ...
    def datasets(self, project_id: int) -> pd.DataFrame: ...
    def model(self, project_id: int, name: str) -> tuple[int, str, str | None] | None: ...
    def model_names(self, project_id: int) -> list[str]: ...
    def version(self, project_id: int, name: str, version: str | None) -> VersionRecord | None: ...
    def version_labels(self, model_id: int) -> list[str]: ...
    def add_version(self, project: str, project_id: int, *, name: str, version: str, task: str,
                    owner: str | None, description: str | None, status: str, artifact: Any, schema: Schema,
                    dataset_id: int | None, actor: str, training_data: str | None) -> int: ...
    def models(self, project_id: int) -> pd.DataFrame: ...
    def set_status(self, project: str, model_id: int, name: str, version: str, status: str, *,
                   actor: str, exclusive: str | None) -> None: ...


@runtime_checkable
class EventStore(Protocol):
    """Events, labels, quarantine and the record of ingest batches."""

    def append_predictions(self, model_id: int, version: str, table: pa.Table, *, columns: Sequence[str],
                           target: str | None, batch_id: str, now: dt.datetime,
                           decide: DecidePredictions) -> Appended: ...
    def append_labels(self, model_id: int, table: pa.Table, *, target: str, batch_id: str, now: dt.datetime,
                      decide: DecideLabels) -> np.ndarray: ...
    def labels_waiting(self, model_id: int) -> bool: ...
    def waiting_labels(self, model_id: int, arrived: pa.Array | None) -> list[tuple[int, str]]: ...
    def resolve_quarantine(self, entry_ids: Sequence[int], batch_id: str, now: dt.datetime) -> None: ...
    def has_labels(self, model_id: int) -> bool: ...
    def read(self, model_id: int, *, version: str | None = None, start: Any = None, end: Any = None,
             segment: Segment | None = None, target: str | None = None, labelled_only: bool = False,
             columns: Iterable[str] | None = None, limit: int | None = None, sample_rate: float | None = None,
             order: bool = True, readable_only: bool = False, offset: int = 0) -> pa.Table: ...
    def event_versions(self, model_id: int, event_ids: Sequence[str]) -> list[str]: ...
    def rows_by_id(self, model_id: int, event_ids: Sequence[str]) -> pa.Table: ...
    def ingested_through(self, model_id: int) -> dt.datetime | None: ...
    def event_span(self, model_id: int, version: str | None = None
                   ) -> tuple[dt.datetime | None, dt.datetime | None]: ...
    def delete(self, model_id: int, *, version: str | None, event_ids: Sequence[str] | None, start: Any,
               end: Any) -> tuple[int, list[tuple[str, dt.datetime]]]: ...
    def quarantine(self, model_id: int, *, reason: str | None, kind: str | None,
                   include_resolved: bool) -> pd.DataFrame: ...
    def quarantine_counts(self, model_id: int, version: str
                          ) -> list[tuple[dt.datetime, str | None, str, int, bool]]: ...
    def batches(self, model_id: int) -> pd.DataFrame: ...


@runtime_checkable
class ProfileStore(Protocol):
    """Window profiles at a base grain, the marks of what they cover, and version baselines."""

    def high_water(self, model_id: int, labels: bool) -> tuple[dt.datetime | None, dt.datetime | None]: ...
    def mark(self, model_id: int, version: str, segment: str, grain: str) -> tuple[Any, Any] | None: ...
    def dirty_windows(self, model_id: int, version: str, segment: Segment, grain: str,
                      marks: tuple[Any, Any] | None, target: str | None) -> list[dt.datetime]: ...
    def window_rows(self, model_id: int, version: str, start: dt.datetime, end: dt.datetime,
                    segment: Segment, target: str | None) -> pa.Table: ...
    def replace(self, model_id: int, version: str, segment: str, grain: str,
                windows: dict[dt.datetime, dict[str, bytes]], marks: tuple[Any, Any],
                stale: Iterable[dt.datetime] = ()) -> None: ...
    def forget(self, model_id: int, version: str, windows: Iterable[tuple[str, dt.datetime]]) -> None: ...
    def tracked(self, model_id: int, version: str) -> list[tuple[str, str]]: ...
    def first_day(self, model_id: int, version: str) -> pa.Table: ...
    def read(self, model_id: int, version: str, segment: str, grain: str, *, columns: Iterable[str] | None,
             start: Any, end: Any) -> list[tuple[dt.datetime, str, bytes]]: ...
    def read_stamped(self, model_id: int, version: str, segment: str, grain: str, *,
                     columns: Iterable[str] | None, start: Any, end: Any,
                     have: Collection[tuple[dt.datetime, str, Any]] = ()
                     ) -> list[tuple[dt.datetime, str, Any, bytes | None]]: ...
    def baseline(self, model_id: int, version: str) -> str | None: ...
    def save_baseline(self, model_id: int, version: str, payload: str) -> None: ...


@runtime_checkable
class ExplanationStore(Protocol):
    """Explanations of stored events, and of each version's training sample."""

    def stored(self, model_id: int, version: str, method: str, event_ids: Sequence[str]
               ) -> list[dict[str, Any]]: ...
    def save(self, table: pa.Table) -> None: ...
    def unexplained(self, model_id: int, version: str, method: str, *, rate: float, start: Any, end: Any,
                    since: Any, limit: int | None) -> list[str]: ...
    def frame(self, model_id: int, version: str, method: str, start: Any, end: Any) -> pd.DataFrame: ...
    def any(self, model_id: int, version: str) -> bool: ...
    def methods(self, model_id: int, version: str) -> list[str]: ...
    def baseline(self, model_id: int, version: str, method: str) -> str | None: ...
    def save_baseline(self, model_id: int, version: str, method: str, payload: str) -> None: ...


@runtime_checkable
class BlobStore(Protocol):
    """Model artifacts and dataset files."""

    root: Path

    def write_dataset(self, table: pa.Table, digest: str) -> str: ...
    def read_dataset(self, path: str) -> pa.Table: ...
    def save_artifact(self, model: Any) -> Any: ...
    def check_artifact(self, sha256: str) -> None: ...
    def load_artifact(self, sha256: str, *, trust: bool = False) -> Any: ...


@runtime_checkable
class Backend(Protocol):
    """One store: its five parts, and its lifecycle."""

    uri: str
    read_only: bool
    metadata: MetadataStore
    events: EventStore
    profiles: ProfileStore
    explanations: ExplanationStore
    blobs: BlobStore

    @property
    def home(self) -> Path: ...
    def close(self) -> None: ...
