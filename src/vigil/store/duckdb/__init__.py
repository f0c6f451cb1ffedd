"""The embedded home: one DuckDB file with the metadata, events, profiles and explanations, beside a
directory of artifacts, datasets and keys. The only package that imports ``duckdb`` or writes SQL.

>>> import tempfile
>>> backend = DuckDBBackend.open(tempfile.mkdtemp())
>>> backend.metadata.project_names(), backend.read_only
([], False)
>>> backend.close()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vigil.store.blobs import DirectoryBlobs
from vigil.store.duckdb.database import Database
from vigil.store.duckdb.events import DuckDBEvents
from vigil.store.duckdb.explanations import DuckDBExplanations
from vigil.store.duckdb.metadata import DuckDBMetadata
from vigil.store.duckdb.profiles import DuckDBProfiles


class DuckDBBackend:
    """:class:`~vigil.store.protocols.Backend` of an embedded home."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.uri = f"duckdb://{db.home.resolve()}"
        self.read_only = db.read_only
        self.metadata = DuckDBMetadata(db)
        self.events = DuckDBEvents(db)
        self.profiles = DuckDBProfiles(db)
        self.explanations = DuckDBExplanations(db)
        self.blobs = DirectoryBlobs(db.home, read_only=db.read_only)

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None, *, read_only: bool = False, **options: Any
             ) -> DuckDBBackend:
        """Open (creating if needed, unless ``read_only``) the home at ``home``."""
        return cls(Database.open(home, read_only=read_only, **options))

    @property
    def home(self) -> Path:
        """The home directory."""
        return self.db.home

    @property
    def lock(self) -> Any:
        """The lock every user of this file in the process shares."""
        return self.db.lock

    @property
    def shared(self) -> dict[str, Any]:
        """In-process state shared by every user of this file."""
        return self.db.shared

    def close(self) -> None:
        """Checkpoint and close the file."""
        self.db.close()


__all__ = ["DuckDBBackend"]
