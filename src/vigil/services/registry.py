"""Projects, datasets (by content hash), models and versions, lineage and the audit log.

>>> import tempfile, pandas as pd
>>> from vigil.store.database import Database
>>> reg = Registry(Database.open(tempfile.mkdtemp()), "default")
>>> ds = reg.register_dataset("train", pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}))
>>> (ds.name, ds.version), reg.register_dataset("train", pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})).version
(('train', 1), 1)
>>> reg.register_dataset("train", pd.DataFrame({"x": [3.0], "y": [1]})).version
2
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from vigil.core.frames import content_hash, to_arrow
from vigil.core.pii import project_key, redact_columns
from vigil.core.schema import TASKS, Role, Schema
from vigil.core.validation import LABEL_TIME, arrow_type
from vigil.errors import AlreadyExistsError, NotFoundError, SchemaError, VigilError
from vigil.store.artifacts import load_artifact, save_artifact
from vigil.store.database import Database, quote

STATUSES = ("draft", "validated", "production", "challenger", "shadow", "retired")


def utcnow() -> dt.datetime:
    """Now, in UTC, without tzinfo (the store keeps UTC throughout)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def current_user() -> str:
    """The name recorded as ``created_by`` when none is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Dataset:
    """A registered table, identified by its content hash."""

    dataset_id: int
    name: str
    version: int
    content_hash: str
    n_rows: int
    columns: dict[str, str]
    path: str
    created_at: dt.datetime
    created_by: str | None
    home: Path = field(repr=False, compare=False)

    def load(self) -> pd.DataFrame:
        """The dataset's rows."""
        return pq.read_table(self.home / self.path).to_pandas()


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
    home: Path = field(repr=False, compare=False)

    def load_model(self) -> Any:
        """The model object, unpickled from the home after checking its sha256."""
        if self.artifact_sha256 is None:
            raise NotFoundError(f"model {self.model!r} version {self.version!r} was registered without an artifact")
        return load_artifact(self.home, self.artifact_sha256)


def events_table(model_id: int) -> str:
    """Name of a model's event table."""
    return f"events_{model_id}"


def labels_table(model_id: int) -> str:
    """Name of a model's label table."""
    return f"labels_{model_id}"


#: Columns the event table has besides the schema's, in order, with their types.
SYSTEM_COLUMNS = {
    "event_id": "VARCHAR NOT NULL",
    "timestamp": "TIMESTAMP NOT NULL",
    "model_version": "VARCHAR NOT NULL",
    "ingested_at": "TIMESTAMP NOT NULL",
    "batch_id": "VARCHAR NOT NULL",
}


class Registry:
    """The registry of one project in a store."""

    def __init__(self, db: Database, project: str) -> None:
        self.db = db
        self.project = project
        row = db.fetchone("SELECT project_id FROM projects WHERE name = ?", [project])
        if row is None:
            if db.read_only:
                raise NotFoundError(f"project {project!r} does not exist")
            with db.transaction() as con:
                con.execute("INSERT INTO projects (name, created_at) VALUES (?, ?)", [project, utcnow()])
                row = con.execute("SELECT project_id FROM projects WHERE name = ?", [project]).fetchall()[0]
                self._audit(con, "create", "project", project, {})
        self.project_id: int = row[0]
        self._versions: dict[tuple[str, str], ModelVersion] = {}

    @property
    def home(self) -> Path:
        """The store's home directory."""
        return self.db.home

    def pii_key(self) -> bytes:
        """This project's key for hashing PII."""
        return project_key(self.home, self.project)

    # -- audit ---------------------------------------------------------------------------------------
    def _audit(self, con: Any, action: str, object_type: str, object_id: str, details: dict[str, Any],
               actor: str | None = None) -> None:
        con.execute(
            "INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, details_json) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [utcnow(), actor or current_user(), action, object_type, f"{self.project}/{object_id}",
             json.dumps(details, default=str, sort_keys=True)],
        )

    def audit_log(self) -> pd.DataFrame:
        """Every recorded action in this project, oldest first."""
        return self.db.execute(
            "SELECT entry_id, occurred_at, actor, action, object_type, object_id, details_json FROM audit_log "
            "WHERE object_id LIKE ? ORDER BY entry_id",
            [f"{self.project}/%"],
        ).df()

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
        table = to_arrow(data)
        if pii:
            actions = dict(pii) if isinstance(pii, dict) else {c: "hash" for c in pii}
            unknown = [c for c in actions if c not in table.column_names]
            if unknown:
                raise SchemaError(f"pii columns {unknown} are not in dataset {name!r}")
            table = redact_columns(table, actions, self.pii_key())
        digest = content_hash(table)
        existing = self.db.fetchone(
            "SELECT dataset_id FROM datasets WHERE project_id = ? AND name = ? AND content_hash = ? "
            "ORDER BY version DESC LIMIT 1",
            [self.project_id, name, digest],
        )
        if existing:
            return self._dataset_by_id(existing[0])
        path = Path("datasets") / f"{digest}.parquet"
        if not (self.home / path).exists():
            tmp = self.home / f"{path}.tmp"
            pq.write_table(table, tmp)
            tmp.replace(self.home / path)
        columns = {f.name: str(f.type) for f in table.schema}
        with self.db.transaction() as con:
            (version,) = con.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM datasets WHERE project_id = ? AND name = ?",
                [self.project_id, name],
            ).fetchall()[0]
            con.execute(
                "INSERT INTO datasets (project_id, name, version, content_hash, n_rows, columns_json, path, "
                "description, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self.project_id, name, version, digest, table.num_rows, json.dumps(columns), str(path),
                 description, utcnow(), created_by or current_user()],
            )
            self._audit(con, "register", "dataset", f"{name}@{version}", {"content_hash": digest,
                                                                           "rows": table.num_rows}, created_by)
            (dataset_id,) = con.execute(
                "SELECT dataset_id FROM datasets WHERE project_id = ? AND name = ? AND version = ?",
                [self.project_id, name, version],
            ).fetchall()[0]
        return self._dataset_by_id(dataset_id)

    def dataset(self, name: str, version: int | None = None) -> Dataset:
        """A registered dataset (its latest version unless one is given)."""
        row = self.db.fetchone(
            "SELECT dataset_id FROM datasets WHERE project_id = ? AND name = ? AND (? IS NULL OR version = ?) "
            "ORDER BY version DESC LIMIT 1",
            [self.project_id, name, version, version],
        )
        if row is None:
            known = [r[0] for r in self.db.fetchall(
                "SELECT DISTINCT name FROM datasets WHERE project_id = ? ORDER BY name", [self.project_id])]
            what = f"dataset {name!r}" + (f" version {version}" if version is not None else "")
            raise NotFoundError(f"{what} is not registered in project {self.project!r}; datasets: {known}")
        return self._dataset_by_id(row[0])

    def datasets(self) -> pd.DataFrame:
        """All registered datasets and versions."""
        return self.db.execute(
            "SELECT name, version, content_hash, n_rows, created_at, created_by FROM datasets "
            "WHERE project_id = ? ORDER BY name, version", [self.project_id]).df()

    def _dataset_by_id(self, dataset_id: int) -> Dataset:
        row = self.db.fetchone(
            "SELECT dataset_id, name, version, content_hash, n_rows, columns_json, path, created_at, created_by "
            "FROM datasets WHERE dataset_id = ?", [dataset_id])
        return Dataset(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], row[7], row[8],
                       home=self.home)

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
        version = str(version)
        if status not in STATUSES:
            raise VigilError(f"status must be one of {STATUSES}, got {status!r}")
        if task is not None and task not in TASKS:
            raise SchemaError(f"task must be one of {TASKS}, got {task!r}")
        dataset = self._training_dataset(name, training_data, created_by)
        if schema is None:
            if dataset is None:
                raise SchemaError(
                    f"model {name!r}: give training_data to infer the schema from, or an explicit schema="
                )
            schema = Schema.infer(pq.read_table(self.home / dataset.path), target=target, task=task,
                                  **schema_options)
        elif schema_options or target is not None:
            raise SchemaError("give either schema= or the options to infer one (target=, protected=...), not both")
        if task is not None and schema.task != task:
            raise SchemaError(f"task {task!r} differs from the schema's task {schema.task!r}")
        task = schema.task
        existing_model = self.db.fetchone(
            "SELECT model_id, task FROM models WHERE project_id = ? AND name = ?", [self.project_id, name])
        if existing_model and existing_model[1] != task:
            raise SchemaError(f"model {name!r} is registered with task {existing_model[1]!r}, not {task!r}")
        if existing_model and self.db.fetchone(
                "SELECT 1 FROM model_versions WHERE model_id = ? AND version = ?", [existing_model[0], version]):
            raise AlreadyExistsError(f"model {name!r} already has a version {version!r}; choose a new label")
        saved = save_artifact(self.home, model) if model is not None else None
        who = created_by or current_user()
        with self.db.transaction() as con:
            if existing_model:
                model_id = existing_model[0]
                if owner is not None or description is not None:
                    con.execute("UPDATE models SET owner = coalesce(?, owner), description = coalesce(?, description) "
                                "WHERE model_id = ?", [owner, description, model_id])
            else:
                con.execute(
                    "INSERT INTO models (project_id, name, task, owner, description, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", [self.project_id, name, task, owner or who, description, utcnow()])
                (model_id,) = con.execute(
                    "SELECT model_id FROM models WHERE project_id = ? AND name = ?", [self.project_id, name]
                ).fetchall()[0]
                self._audit(con, "register", "model", name, {"task": task, "owner": owner or who}, created_by)
            self._ensure_event_tables(con, model_id, schema)
            con.execute(
                "INSERT INTO model_versions (model_id, version, status, artifact_sha256, artifact_path, "
                "artifact_type, schema_json, training_dataset_id, description, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [model_id, version, status, saved and saved.sha256, saved and saved.path,
                 saved and saved.type_name, schema.to_json(), dataset and dataset.dataset_id, description,
                 utcnow(), who],
            )
            self._audit(con, "register", "model_version", f"{name}@{version}", {
                "artifact_sha256": saved and saved.sha256,
                "training_data": dataset and f"{dataset.name}@{dataset.version}", "status": status}, created_by)
        return self.model_version(name, version)

    def _training_dataset(self, model: str, training_data: Any, created_by: str | None) -> Dataset | None:
        if training_data is None or isinstance(training_data, Dataset):
            return training_data
        if isinstance(training_data, str) and not Path(training_data).suffix:
            return self.dataset(training_data)
        return self.register_dataset(f"{model}-training", training_data, created_by=created_by)

    def _ensure_event_tables(self, con: Any, model_id: int, schema: Schema) -> None:
        """Create the model's event and label tables, or add the columns a new version brings."""
        table = events_table(model_id)
        stored = [c for c in schema.columns if c.role not in (Role.EVENT_ID, Role.TIMESTAMP, Role.TARGET)
                  and c.pii != "drop"]
        existing = {r[0]: r[1] for r in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?", [table]).fetchall()}
        if not existing:
            cols = [f"{quote(n)} {t}" for n, t in SYSTEM_COLUMNS.items()]
            cols += [f"{quote(c.name)} {c.storage_type}" for c in stored]
            con.execute(f"CREATE TABLE {table} ({', '.join(cols)})")
        else:
            for col in stored:
                have = existing.get(col.name)
                if have is None:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {quote(col.name)} {col.storage_type}")
                elif have != col.storage_type:
                    raise SchemaError(
                        f"column {col.name!r} is stored as {have} for earlier versions of this model; "
                        f"this version's schema makes it {col.storage_type}: rename it or keep its kind"
                    )
        target = schema.target
        if target is None:
            return
        ltable = labels_table(model_id)
        existing = {r[0]: r[1] for r in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?", [ltable]).fetchall()}
        if not existing:
            con.execute(
                f"CREATE TABLE {ltable} (event_id VARCHAR NOT NULL, {quote(target.name)} {target.storage_type}, "
                f"{LABEL_TIME} TIMESTAMP NOT NULL, ingested_at TIMESTAMP NOT NULL, batch_id VARCHAR NOT NULL)")
        elif existing.get(target.name) is None:
            raise SchemaError(f"this model's target is {[c for c in existing if c not in SYSTEM_COLUMNS]}; "
                              f"a version cannot change it to {target.name!r}")
        _ = arrow_type(target)  # every target kind must be storable

    def model_version(self, name: str, version: str | None = None) -> ModelVersion:
        """A registered version (the latest one when ``version`` is None)."""
        model = self.db.fetchone(
            "SELECT model_id, task, owner FROM models WHERE project_id = ? AND name = ?", [self.project_id, name])
        if model is None:
            known = [r[0] for r in self.db.fetchall(
                "SELECT name FROM models WHERE project_id = ? ORDER BY name", [self.project_id])]
            raise NotFoundError(f"model {name!r} is not registered in project {self.project!r}; models: {known}")
        model_id, task, owner = model
        row = self.db.fetchone(
            "SELECT version, status, schema_json, artifact_sha256, artifact_type, training_dataset_id, created_at, "
            "created_by FROM model_versions WHERE model_id = ? AND (? IS NULL OR version = ?) "
            "ORDER BY created_at DESC LIMIT 1", [model_id, version, version])
        if row is None:
            known = [r[0] for r in self.db.fetchall(
                "SELECT version FROM model_versions WHERE model_id = ? ORDER BY created_at", [model_id])]
            raise NotFoundError(f"model {name!r} has no version {version!r}; versions: {known}")
        key = (name, row[0])
        cached = self._versions.get(key)
        if cached is not None and cached.status == row[1]:
            return cached
        mv = ModelVersion(
            model=name, version=row[0], task=task, status=row[1], schema=Schema.from_json(row[2]),
            artifact_sha256=row[3], artifact_type=row[4],
            training_dataset=self._dataset_by_id(row[5]) if row[5] is not None else None,
            owner=owner, created_at=row[6], created_by=row[7], model_id=model_id, home=self.home)
        self._versions[key] = mv
        return mv

    def version_for_writing(self, name: str, version: str) -> ModelVersion:
        """A version to write events for, from a per-process cache.

        What writing needs (the model's id and the version's schema) never
        changes once registered, so only the first call reads the registry;
        the cached status may be stale, which writing does not look at.
        """
        cached = self._versions.get((name, version))
        return cached if cached is not None else self.model_version(name, version)

    def model_id(self, name: str) -> int:
        """The internal id of a model (for its tables)."""
        row = self.db.fetchone("SELECT model_id FROM models WHERE project_id = ? AND name = ?",
                               [self.project_id, name])
        if row is None:
            self.model_version(name)  # raises the helpful NotFoundError
        return row[0]

    def models(self) -> pd.DataFrame:
        """Every model and version in the project."""
        return self.db.execute(
            "SELECT m.name AS model, v.version, m.task, v.status, m.owner, v.artifact_sha256, v.created_at, "
            "v.created_by FROM models m JOIN model_versions v USING (model_id) WHERE m.project_id = ? "
            "ORDER BY m.name, v.created_at", [self.project_id]).df()

    def set_status(self, name: str, version: str, status: str, *, actor: str | None = None) -> ModelVersion:
        """Move a version to another status; promoting one to production retires the previous one."""
        if status not in STATUSES:
            raise VigilError(f"status must be one of {STATUSES}, got {status!r}")
        mv = self.model_version(name, version)
        with self.db.transaction() as con:
            if status == "production":
                for (old,) in con.execute(
                        "SELECT version FROM model_versions WHERE model_id = ? AND status = 'production' "
                        "AND version <> ?", [mv.model_id, mv.version]).fetchall():
                    con.execute("UPDATE model_versions SET status = 'retired' WHERE model_id = ? AND version = ?",
                                [mv.model_id, old])
                    self._audit(con, "status", "model_version", f"{name}@{old}",
                                {"from": "production", "to": "retired"}, actor)
            con.execute("UPDATE model_versions SET status = ? WHERE model_id = ? AND version = ?",
                        [status, mv.model_id, mv.version])
            self._audit(con, "status", "model_version", f"{name}@{mv.version}", {"from": mv.status, "to": status},
                        actor)
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

