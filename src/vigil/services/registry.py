"""Projects, datasets (by content hash), models and versions, lineage and the audit log.

The registry speaks only the store protocols (:mod:`vigil.store.protocols`).

>>> import tempfile, pandas as pd
>>> from vigil.store import open_backend
>>> reg = Registry(open_backend(tempfile.mkdtemp()), "default")
>>> ds = reg.register_dataset("train", pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}))
>>> (ds.name, ds.version), reg.register_dataset("train", pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})).version
(('train', 1), 1)
>>> reg.register_dataset("train", pd.DataFrame({"x": [3.0], "y": [1]})).version
2
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vigil.core.frames import content_hash
from vigil.core.pii import check_pii_columns, pii_actions, redact_columns
from vigil.core.schema import TASKS, Kind, Schema, check_name
from vigil.errors import AlreadyExistsError, InvalidParameterError, NotFoundError, SchemaError
from vigil.services.sources import load_table
from vigil.store.keys import project_key
from vigil.store.protocols import Backend, DatasetRecord, VersionRecord

STATUSES = ("draft", "validated", "production", "challenger", "shadow", "retired")
#: The columns of the registry's listings and their dtypes (see ``docs/frames.md``).
DATASET_COLUMNS = {"name": "str", "version": "int32", "content_hash": "str", "n_rows": "int64",
                   "created_at": "datetime64[us]", "created_by": "str"}
MODEL_COLUMNS = {"model": "str", "version": "str", "task": "str", "status": "str", "owner": "str",
                 "artifact_sha256": "str", "created_at": "datetime64[us]", "created_by": "str"}
AUDIT_COLUMNS = {"entry_id": "int64", "occurred_at": "datetime64[us]", "actor": "str", "action": "str",
                 "object_type": "str", "object_id": "str", "details_json": "str"}


def utcnow() -> dt.datetime:
    """Now, in UTC, without tzinfo (the store keeps UTC throughout)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def current_user() -> str:
    """The name recorded as ``created_by`` when none is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


#: The dtype of text columns in result frames: pandas' string dtype (``str``, NaN for missing) from pandas 3 on,
#: plain objects before.
TEXT = "str" if int(pd.__version__.split(".")[0]) >= 3 else "object"


def _typed_column(values: pd.Series, dtype: str) -> pd.Series:
    if dtype == "str":
        dtype = TEXT
    if str(values.dtype) == dtype:
        return values
    if dtype.startswith("datetime64"):
        unit, _, tz = dtype[len("datetime64["):-1].partition(", ")
        times = values if pd.api.types.is_datetime64_any_dtype(values) else pd.to_datetime(values)
        if tz and times.dt.tz is None:
            times = times.dt.tz_localize(tz)
        elif not tz and times.dt.tz is not None:
            times = times.dt.tz_convert("UTC").dt.tz_localize(None)
        return times.dt.as_unit(unit)
    return values.astype(dtype)


def typed_frame(data: pd.DataFrame | list[dict[str, Any]], dtypes: dict[str, str]) -> pd.DataFrame:
    """A result frame with the columns of ``dtypes`` first, in that order, each of its dtype, whatever the rows.

    ``data`` is a frame or a list of row mappings. Columns it lacks are added (all missing), columns it has
    beyond ``dtypes`` follow them. Empty results get the same columns and dtypes as any other (see
    ``docs/frames.md``). ``"str"`` is pandas' string dtype (plain objects before pandas 3); datetimes are
    converted to the unit and time zone named (``"datetime64[us, UTC]"``).

    >>> frame = typed_frame([], {"window": "datetime64[us, UTC]", "metric": "str", "value": "float64"})
    >>> [str(t) for t in frame.dtypes] == ["datetime64[us, UTC]", TEXT, "float64"]
    True
    >>> typed_frame([{"value": 1, "extra": "x"}], {"metric": "str", "value": "float64"}).to_dict("list")
    {'metric': [nan], 'value': [1.0], 'extra': ['x']}
    """
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    columns = list(dtypes) + [c for c in frame.columns if c not in dtypes]
    frame = frame.reindex(columns=columns)
    return frame.assign(**{name: _typed_column(frame[name], dtype) for name, dtype in dtypes.items()})


def version_label(version: object) -> str:
    """A model version's label: a string, or an integer taken as its text.

    >>> version_label("2"), version_label(3)
    ('2', '3')
    >>> version_label(1.5)
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: a model version is a label such as '1', got float
    """
    if isinstance(version, int | np.integer) and not isinstance(version, bool | np.bool_):
        return str(version)
    if not isinstance(version, str):
        raise InvalidParameterError(f"a model version is a label such as '1', got {type(version).__name__}",
                                    field="version")
    return check_name(version, "version")


@dataclass(frozen=True)
class Dataset(DatasetRecord):
    """A registered table, identified by its content hash: its registry record and where its rows lie."""

    blobs: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, record: DatasetRecord, blobs: Any) -> Dataset:
        """A dataset from its registry record."""
        return cls(**{f.name: getattr(record, f.name) for f in fields(DatasetRecord)}, blobs=blobs)

    @property
    def home(self) -> Path:
        """The directory the dataset file lies under."""
        return self.blobs.root

    def table(self) -> pa.Table:
        """The dataset's rows as Arrow."""
        return self.blobs.read_dataset(self.path)

    def load(self) -> pd.DataFrame:
        """The dataset's rows."""
        return self.table().to_pandas()

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, version={self.version}, rows={self.n_rows}, hash={self.content_hash[:12]})"


@dataclass(frozen=True)
class ModelVersion:
    """One version of a model: its artifact, schema, training data and status."""

    model: str
    version: str
    task: str
    status: str
    schema: Schema
    artifact_sha256: str | None
    artifact_type: str | None
    training_dataset: Dataset | None
    owner: str | None
    created_at: dt.datetime
    created_by: str | None
    model_id: int = field(repr=False)
    blobs: Any = field(repr=False, compare=False)

    @property
    def home(self) -> Path:
        """The directory the artifact lies under."""
        return self.blobs.root

    def load_model(self, *, trust: bool = False) -> Any:
        """The model object, unpickled only when its signature verifies under your signing key.

        An artifact signed by another key (a home someone else built) raises
        :class:`~vigil.errors.UntrustedArtifactError`; ``trust=True`` loads it
        anyway (see ``docs/security.md``).
        """
        if self.artifact_sha256 is None:
            raise NotFoundError(f"model {self.model!r} version {self.version!r} was registered without an artifact",
                                field="model")
        return self.blobs.load_artifact(self.artifact_sha256, trust=trust)

    def __repr__(self) -> str:
        data = f", training={self.training_dataset.name}@{self.training_dataset.version}" \
            if self.training_dataset is not None else ""
        return (f"ModelVersion({self.model!r}, version={self.version!r}, task={self.task!r}, "
                f"status={self.status!r}, columns={len(self.schema.columns)}{data})")


def model_inputs(model: Any) -> list[str] | None:
    """The input columns a fitted model records that it reads, when it does.

    >>> import pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> model_inputs(LinearRegression().fit(pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]}), [0, 1]))
    ['a', 'b']
    >>> model_inputs(lambda rows: rows) is None
    True
    """
    for get in (lambda m: m.feature_names_in_, lambda m: m.get_booster().feature_names,
                lambda m: m.booster_.feature_name(), lambda m: m.feature_name()):
        try:
            names = get(model)
        except Exception:  # noqa: BLE001 - each library records its inputs its own way, or not at all
            continue
        if names is not None and len(names) and all(isinstance(n, str) for n in names):
            return [str(n) for n in names]
    return None


def _metadata_kind(field_type: pa.DataType) -> str:
    if pa.types.is_boolean(field_type):
        return Kind.BOOLEAN.value
    if pa.types.is_integer(field_type) or pa.types.is_floating(field_type):
        return Kind.NUMERIC.value
    return Kind.CATEGORICAL.value


class Registry:
    """The registry of one project in a store."""

    def __init__(self, store: Backend, project: str) -> None:
        self.store = store
        self.meta = store.metadata
        self.project = check_name(project, "project")
        self.project_id: int = self.meta.ensure_project(self.project, actor=current_user())
        self._versions: dict[tuple[str, str], ModelVersion] = {}

    @property
    def home(self) -> Path:
        """The store's home directory."""
        return self.store.home

    def pii_key(self) -> bytes:
        """This project's key for hashing PII."""
        return project_key(self.home, self.project)

    # -- audit ---------------------------------------------------------------------------------------
    def audit(self, action: str, object_type: str, object_id: str, details: dict[str, Any],
              actor: str | None = None) -> None:
        """Record an action in the audit log."""
        self.meta.audit(self.project, action, object_type, object_id, details, actor or current_user())

    def audit_log(self) -> pd.DataFrame:
        """Every recorded action in this project, oldest first (columns: ``AUDIT_COLUMNS``)."""
        return typed_frame(self.meta.audit_log(self.project), AUDIT_COLUMNS)

    # -- datasets ------------------------------------------------------------------------------------
    def register_dataset(
        self, name: str, data: Any, *, description: str | None = None, created_by: str | None = None,
        pii: dict[str, str] | list[str] | None = None,
    ) -> Dataset:
        """Register a table by content: the same content under the same name is the same dataset.

        New content under a name already used becomes its next version.
        ``pii`` names columns to hash (list) or maps them to ``"hash"`` or
        ``"drop"``; they are redacted before the table is written.
        """
        name = check_name(name, "name")
        table = load_table(data)
        if pii:
            table = redact_columns(table, check_pii_columns(pii, table.column_names), self.pii_key())
        digest = content_hash(table)
        existing = self.meta.find_dataset(self.project_id, name, digest)
        if existing is not None:
            return Dataset.of(existing, self.store.blobs)
        path = self.store.blobs.write_dataset(table, digest)
        record = self.meta.add_dataset(
            self.project, self.project_id, name=name, content_hash=digest, n_rows=table.num_rows,
            columns={f.name: str(f.type) for f in table.schema}, path=path, description=description,
            actor=created_by or current_user())
        return Dataset.of(record, self.store.blobs)

    def dataset(self, name: str, version: int | None = None) -> Dataset:
        """A registered dataset (its latest version unless one is given)."""
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
                raise InvalidParameterError(f"a dataset version is a positive integer, got {version!r}",
                                            field="version")
            version = int(version)
        record = self.meta.dataset(self.project_id, check_name(name, "name"), version)
        if record is None:
            known = self.meta.dataset_names(self.project_id)
            what = f"dataset {name!r}" + (f" version {version}" if version is not None else "")
            raise NotFoundError(f"{what} is not registered in project {self.project!r}; datasets: {known}",
                                field="dataset")
        return Dataset.of(record, self.store.blobs)

    def datasets(self) -> pd.DataFrame:
        """All registered datasets and versions (columns: ``DATASET_COLUMNS``)."""
        return typed_frame(self.meta.datasets(self.project_id), DATASET_COLUMNS)

    # -- models --------------------------------------------------------------------------------------
    def register_model(
        self,
        name: str,
        *,
        version: str,
        task: str | None = None,
        model: Any = None,
        training_data: Any = None,
        target: str | None = None,
        schema: Schema | None = None,
        owner: str | None = None,
        description: str | None = None,
        status: str = "draft",
        created_by: str | None = None,
        **schema_options: Any,
    ) -> ModelVersion:
        """Register a model version with its artifact, schema and training data (see ``Store``)."""
        name = check_name(name, "name")
        if version is None:
            raise InvalidParameterError("give the version a label: version='1'", field="version")
        version = version_label(version)
        if status not in STATUSES:
            raise InvalidParameterError(f"status must be one of {STATUSES}, got {status!r}", field="status")
        if task is not None and task not in TASKS:
            raise SchemaError(f"task must be one of {TASKS}, got {task!r}", field="task")
        if isinstance(model, str | bytes):
            raise InvalidParameterError("model= takes the fitted model object, not a string (the CLI reads a model "
                                        "file: vigil model register --model path.pkl)", field="model")
        pii = schema_options.get("pii")
        dataset = self._training_dataset(name, training_data, created_by, pii)
        if schema is None:
            if dataset is None:
                raise SchemaError(
                    f"model {name!r}: give training_data to infer the schema from, or an explicit schema=",
                    field="training_data")
            table = dataset.table()
            _check_training_table(table, target)
            reads = model_inputs(model) if model is not None and "features" not in schema_options else None
            if reads is not None:
                schema_options = _unread_as_metadata(table, reads, target, schema_options)
            schema = Schema.infer(table, target=target, task=task, **schema_options)
        elif schema_options or target is not None:
            raise SchemaError("give either schema= or the options to infer one (target=, protected=...), not both",
                              field="schema")
        if task is not None and schema.task != task:
            raise SchemaError(f"task {task!r} differs from the schema's task {schema.task!r}", field="task")
        task = schema.task
        existing_model = self.meta.model(self.project_id, name)
        if existing_model and existing_model[1] != task:
            raise SchemaError(f"model {name!r} is registered with task {existing_model[1]!r}, not {task!r}",
                              field="task")
        if existing_model and version in self.meta.version_labels(existing_model[0]):
            raise AlreadyExistsError(f"model {name!r} already has a version {version!r}; choose a new label",
                                     field="version")
        saved = self.store.blobs.save_artifact(model) if model is not None else None
        who = created_by or current_user()
        self.meta.add_version(
            self.project, self.project_id, name=name, version=version, task=task, owner=owner,
            description=description, status=status, artifact=saved, schema=schema,
            dataset_id=dataset and dataset.dataset_id, actor=who,
            training_data=dataset and f"{dataset.name}@{dataset.version}")
        return self.model_version(name, version)

    def _training_dataset(self, model: str, training_data: Any, created_by: str | None, pii: Any) -> Dataset | None:
        if training_data is None or isinstance(training_data, Dataset):
            return training_data
        if isinstance(training_data, str) and not Path(training_data).suffix:
            return self.dataset(training_data)
        # the training rows are stored redacted exactly as events will be
        table = load_table(training_data)
        actions = None
        if pii:
            actions = {c: a for c, a in pii_actions(pii).items() if c in table.column_names}
        return self.register_dataset(f"{model}-training", table, created_by=created_by, pii=actions or None)

    def model_version(self, name: str, version: str | None = None) -> ModelVersion:
        """A registered version (the latest one when ``version`` is None)."""
        if not isinstance(name, str):
            raise InvalidParameterError(f"a model is named by a string, got {type(name).__name__}", field="model")
        record = self.meta.version(self.project_id, name, None if version is None else version_label(version))
        if record is None:
            found = self.meta.model(self.project_id, name)
            if found is None:
                known = self.meta.model_names(self.project_id)
                raise NotFoundError(f"model {name!r} is not registered in project {self.project!r}; models: {known}",
                                    field="model")
            known = self.meta.version_labels(found[0])
            raise NotFoundError(f"model {name!r} has no version {version!r}; versions: {known}", field="version")
        key = (name, record.version)
        cached = self._versions.get(key)
        if cached is not None and cached.status == record.status:
            return cached
        mv = self._version(record)
        self._versions[key] = mv
        return mv

    def _version(self, r: VersionRecord) -> ModelVersion:
        dataset = (Dataset.of(self.meta.dataset_by_id(r.training_dataset_id), self.store.blobs)
                   if r.training_dataset_id is not None else None)
        return ModelVersion(model=r.model, version=r.version, task=r.task, status=r.status,
                            schema=Schema.from_json(r.schema_json), artifact_sha256=r.artifact_sha256,
                            artifact_type=r.artifact_type, training_dataset=dataset, owner=r.owner,
                            created_at=r.created_at, created_by=r.created_by, model_id=r.model_id,
                            blobs=self.store.blobs)

    def version_for_writing(self, name: str, version: str) -> ModelVersion:
        """A version to write events for, from a per-process cache.

        What writing needs (the model's id and the version's schema) never
        changes once registered, so only the first call reads the registry;
        the cached status may be stale, which writing does not look at.
        """
        cached = self._versions.get((check_name(name, "model"), version_label(version)))
        return cached if cached is not None else self.model_version(name, version)

    def model_id(self, name: str) -> int:
        """The internal id of a model (for its tables)."""
        found = self.meta.model(self.project_id, name) if isinstance(name, str) else None
        if found is None:
            self.model_version(name)  # raises the helpful NotFoundError
        return found[0]

    def models(self) -> pd.DataFrame:
        """Every model and version in the project (columns: ``MODEL_COLUMNS``)."""
        return typed_frame(self.meta.models(self.project_id), MODEL_COLUMNS)

    def set_status(self, name: str, version: str, status: str, *, actor: str | None = None) -> ModelVersion:
        """Move a version to another status; promoting one to production retires the previous one."""
        if status not in STATUSES:
            raise InvalidParameterError(f"status must be one of {STATUSES}, got {status!r}", field="status")
        mv = self.model_version(name, version)
        self.meta.set_status(self.project, mv.model_id, name, mv.version, status, actor=actor or current_user(),
                             exclusive="production" if status == "production" else None)
        return self.model_version(name, mv.version)

    def lineage(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Where a version came from: artifact hash, training data hash and schema.

        The keys are ``model``, ``version``, ``task``, ``status``, ``owner``,
        ``created_at``, ``created_by``, ``artifact`` (sha256, type),
        ``training_data`` (name, version, content_hash, rows, columns) and
        ``schema`` (the schema as a dict).
        """
        mv = self.model_version(name, version)
        ds = mv.training_dataset
        return {
            "project": self.project,
            "model": mv.model,
            "version": mv.version,
            "task": mv.task,
            "status": mv.status,
            "owner": mv.owner,
            "created_at": mv.created_at,
            "created_by": mv.created_by,
            "artifact": {"sha256": mv.artifact_sha256, "type": mv.artifact_type},
            "training_data": None if ds is None else {
                "name": ds.name, "version": ds.version, "content_hash": ds.content_hash, "rows": ds.n_rows,
                "columns": ds.columns,
            },
            "schema": mv.schema.to_dict(),
        }


def _check_training_table(table: pa.Table, target: str | None) -> None:
    if table.num_rows == 0:
        raise SchemaError("the training data has no rows: a schema and baseline need at least one",
                          field="training_data")
    if target is not None and target in table.column_names and table.column(target).null_count == table.num_rows:
        raise SchemaError(f"the target column {target!r} of the training data holds no values", field="target")


def _unread_as_metadata(table: pa.Table, reads: list[str], target: str | None,
                        options: dict[str, Any]) -> dict[str, Any]:
    """Schema options where training columns the model does not read are metadata, not features."""
    reserved = {target, options.get("event_id", "event_id"), options.get("timestamp", "timestamp"),
                options.get("prediction", "prediction")}
    scores = options.get("scores")
    if isinstance(scores, str):
        reserved.add(scores)
    elif scores is not None:
        reserved.update(scores)
    metadata = options.get("metadata", ())
    metadata = dict(metadata) if isinstance(metadata, dict) else {m: None for m in metadata}
    types = {f.name: f.type for f in table.schema}
    for column in table.column_names:
        if column not in reads and column not in reserved and column not in metadata:
            metadata[column] = _metadata_kind(types[column])
    if not metadata:
        return options
    kinds = {m: (k or (_metadata_kind(types[m]) if m in types else Kind.CATEGORICAL.value))
             for m, k in metadata.items()}
    return {**options, "features": [c for c in reads if c in types], "metadata": kinds}
