"""The registry in the embedded home: projects, datasets, models, versions and the audit log.

>>> import tempfile
>>> from vigil.store.duckdb.database import Database
>>> meta = DuckDBMetadata(Database.open(tempfile.mkdtemp()))
>>> pid = meta.ensure_project("default", actor="ada")
>>> meta.project_names(), meta.audit_log("default")["action"].tolist()
(['default'], ['create'])
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd

from vigil.core.schema import Schema
from vigil.errors import AlreadyExistsError, NotFoundError
from vigil.store.duckdb.database import Database
from vigil.store.duckdb.tables import ensure_event_tables
from vigil.store.protocols import DatasetRecord, VersionRecord


def utcnow() -> dt.datetime:
    """Now, in UTC, without tzinfo (the store keeps UTC throughout)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class DuckDBMetadata:
    """:class:`~vigil.store.protocols.MetadataStore` on a home's DuckDB file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- projects and audit --------------------------------------------------------------------------
    def ensure_project(self, name: str, *, actor: str) -> int:
        """The project's id, creating (and auditing) it on first use."""
        row = self.db.fetchone("SELECT project_id FROM projects WHERE name = ?", [name])
        if row is not None:
            return int(row[0])
        if self.db.read_only:
            raise NotFoundError(f"project {name!r} does not exist", field="project")
        with self.db.transaction() as con:
            row = con.execute("SELECT project_id FROM projects WHERE name = ?", [name]).fetchall()
            if row:
                return int(row[0][0])
            con.execute("INSERT INTO projects (name, created_at) VALUES (?, ?)", [name, utcnow()])
            (project_id,) = con.execute("SELECT project_id FROM projects WHERE name = ?", [name]).fetchall()[0]
            self._audit(con, name, "create", "project", name, {}, actor)
        return int(project_id)

    def project_names(self) -> list[str]:
        """Every project's name."""
        return [r[0] for r in self.db.fetchall("SELECT name FROM projects ORDER BY name")]

    def audit(self, project: str, action: str, object_type: str, object_id: str, details: dict[str, Any],
              actor: str) -> None:
        """Record one action in its own transaction."""
        with self.db.transaction() as con:
            self._audit(con, project, action, object_type, object_id, details, actor)

    @staticmethod
    def _audit(con: Any, project: str, action: str, object_type: str, object_id: str, details: dict[str, Any],
               actor: str) -> None:
        con.execute(
            "INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, details_json, project) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [utcnow(), actor, action, object_type, f"{project}/{object_id}",
             json.dumps(details, default=str, sort_keys=True), project])

    def audit_log(self, project: str) -> pd.DataFrame:
        """Every recorded action in a project, oldest first."""
        return self.db.df(
            "SELECT entry_id, occurred_at, actor, action, object_type, object_id, details_json FROM audit_log "
            "WHERE project = ? ORDER BY entry_id", [project])

    # -- datasets ------------------------------------------------------------------------------------
    _DATASET = ("SELECT dataset_id, name, version, content_hash, n_rows, columns_json, path, created_at, created_by "
                "FROM datasets ")

    @staticmethod
    def _dataset(row: tuple[Any, ...]) -> DatasetRecord:
        return DatasetRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], row[7], row[8])

    def find_dataset(self, project_id: int, name: str, content_hash: str) -> DatasetRecord | None:
        """The latest version of a dataset with this content, if any."""
        row = self.db.fetchone(self._DATASET + "WHERE project_id = ? AND name = ? AND content_hash = ? "
                               "ORDER BY version DESC LIMIT 1", [project_id, name, content_hash])
        return None if row is None else self._dataset(row)

    def add_dataset(self, project: str, project_id: int, *, name: str, content_hash: str, n_rows: int,
                    columns: dict[str, str], path: str, description: str | None, actor: str) -> DatasetRecord:
        """Register a new version of a dataset (numbered in the same transaction), audited."""
        with self.db.transaction() as con:
            (version,) = con.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM datasets WHERE project_id = ? AND name = ?",
                [project_id, name]).fetchall()[0]
            con.execute(
                "INSERT INTO datasets (project_id, name, version, content_hash, n_rows, columns_json, path, "
                "description, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [project_id, name, version, content_hash, n_rows, json.dumps(columns), path, description,
                 utcnow(), actor])
            self._audit(con, project, "register", "dataset", f"{name}@{version}",
                        {"content_hash": content_hash, "rows": n_rows}, actor)
            row = con.execute(self._DATASET + "WHERE project_id = ? AND name = ? AND version = ?",
                              [project_id, name, version]).fetchall()[0]
        return self._dataset(row)

    def dataset(self, project_id: int, name: str, version: int | None) -> DatasetRecord | None:
        """A dataset's latest version, or the one asked for."""
        row = self.db.fetchone(self._DATASET + "WHERE project_id = ? AND name = ? AND (? IS NULL OR version = ?) "
                               "ORDER BY version DESC LIMIT 1", [project_id, name, version, version])
        return None if row is None else self._dataset(row)

    def dataset_by_id(self, dataset_id: int) -> DatasetRecord:
        """A dataset by its internal id."""
        row = self.db.fetchone(self._DATASET + "WHERE dataset_id = ?", [dataset_id])
        if row is None:
            raise NotFoundError(f"no dataset has id {dataset_id!r}", field="dataset")
        return self._dataset(row)

    def dataset_names(self, project_id: int) -> list[str]:
        """The names of a project's datasets."""
        return [r[0] for r in self.db.fetchall(
            "SELECT DISTINCT name FROM datasets WHERE project_id = ? ORDER BY name", [project_id])]

    def datasets(self, project_id: int) -> pd.DataFrame:
        """Every dataset version of a project."""
        return self.db.df("SELECT name, version, content_hash, n_rows, created_at, created_by FROM datasets "
                          "WHERE project_id = ? ORDER BY name, version", [project_id])

    # -- models --------------------------------------------------------------------------------------
    def model(self, project_id: int, name: str) -> tuple[int, str, str | None] | None:
        """``(model_id, task, owner)`` of a model, if registered."""
        row = self.db.fetchone("SELECT model_id, task, owner FROM models WHERE project_id = ? AND name = ?",
                               [project_id, name])
        return None if row is None else (int(row[0]), row[1], row[2])

    def model_names(self, project_id: int) -> list[str]:
        """The names of a project's models."""
        return [r[0] for r in self.db.fetchall("SELECT name FROM models WHERE project_id = ? ORDER BY name",
                                               [project_id])]

    def version(self, project_id: int, name: str, version: str | None) -> VersionRecord | None:
        """A model version (the latest registered when ``version`` is None)."""
        row = self.db.fetchone(
            "SELECT m.model_id, m.name, m.task, m.owner, v.version, v.status, v.schema_json, v.artifact_sha256, "
            "v.artifact_type, v.training_dataset_id, v.created_at, v.created_by FROM models m "
            "JOIN model_versions v USING (model_id) WHERE m.project_id = ? AND m.name = ? "
            "AND (? IS NULL OR v.version = ?) ORDER BY v.created_at DESC LIMIT 1",
            [project_id, name, version, version])
        return None if row is None else VersionRecord(*row)

    def version_labels(self, model_id: int) -> list[str]:
        """A model's version labels, oldest first."""
        return [r[0] for r in self.db.fetchall(
            "SELECT version FROM model_versions WHERE model_id = ? ORDER BY created_at", [model_id])]

    def add_version(self, project: str, project_id: int, *, name: str, version: str, task: str,
                    owner: str | None, description: str | None, status: str, artifact: Any, schema: Schema,
                    dataset_id: int | None, actor: str, training_data: str | None) -> int:
        """Register a version (and its model on first use) with its event tables, in one transaction."""
        with self.db.transaction() as con:
            found = con.execute("SELECT model_id FROM models WHERE project_id = ? AND name = ?",
                                [project_id, name]).fetchall()
            if found:
                model_id = int(found[0][0])
                if con.execute("SELECT 1 FROM model_versions WHERE model_id = ? AND version = ?",
                               [model_id, version]).fetchall():
                    raise AlreadyExistsError(f"model {name!r} already has a version {version!r}; choose a new label",
                                             field="version")
                if owner is not None or description is not None:
                    con.execute("UPDATE models SET owner = coalesce(?, owner), description = coalesce(?, description) "
                                "WHERE model_id = ?", [owner, description, model_id])
            else:
                con.execute("INSERT INTO models (project_id, name, task, owner, description, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            [project_id, name, task, owner or actor, description, utcnow()])
                model_id = int(con.execute("SELECT model_id FROM models WHERE project_id = ? AND name = ?",
                                           [project_id, name]).fetchall()[0][0])
                self._audit(con, project, "register", "model", name, {"task": task, "owner": owner or actor}, actor)
            ensure_event_tables(con, model_id, schema)
            con.execute(
                "INSERT INTO model_versions (model_id, version, status, artifact_sha256, artifact_path, "
                "artifact_type, schema_json, training_dataset_id, description, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [model_id, version, status, artifact and artifact.sha256, artifact and artifact.path,
                 artifact and artifact.type_name, schema.to_json(), dataset_id, description, utcnow(), actor])
            self._audit(con, project, "register", "model_version", f"{name}@{version}", {
                "artifact_sha256": artifact and artifact.sha256, "training_data": training_data, "status": status},
                actor)
        return model_id

    def models(self, project_id: int) -> pd.DataFrame:
        """Every model and version of a project."""
        return self.db.df(
            "SELECT m.name AS model, v.version, m.task, v.status, m.owner, v.artifact_sha256, v.created_at, "
            "v.created_by FROM models m JOIN model_versions v USING (model_id) WHERE m.project_id = ? "
            "ORDER BY m.name, v.created_at", [project_id])

    def set_status(self, project: str, model_id: int, name: str, version: str, status: str, *,
                   actor: str, exclusive: str | None) -> None:
        """Move a version to ``status``; versions of the model holding ``exclusive`` move to "retired"."""
        with self.db.transaction() as con:
            found = con.execute("SELECT status FROM model_versions WHERE model_id = ? AND version = ?",
                                [model_id, version]).fetchall()
            if not found:
                raise NotFoundError(f"model {name!r} has no version {version!r}", field="version")
            (previous,) = found[0]
            if exclusive is not None:
                for (old,) in con.execute(
                        "SELECT version FROM model_versions WHERE model_id = ? AND status = ? AND version <> ?",
                        [model_id, exclusive, version]).fetchall():
                    con.execute("UPDATE model_versions SET status = 'retired' WHERE model_id = ? AND version = ?",
                                [model_id, old])
                    self._audit(con, project, "status", "model_version", f"{name}@{old}",
                                {"from": exclusive, "to": "retired"}, actor)
            con.execute("UPDATE model_versions SET status = ? WHERE model_id = ? AND version = ?",
                        [status, model_id, version])
            self._audit(con, project, "status", "model_version", f"{name}@{version}",
                        {"from": previous, "to": status}, actor)
